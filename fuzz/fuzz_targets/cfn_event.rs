//! CloudFormation custom resource events as stack-handler reads them: any bytes, parsed as
//! JSON and then as `CloudFormationCustomResourceRequest` (stack-handler's first step), then
//! the properties (`TransferPlanProperties::from_properties`) of Create/Update/Delete, old
//! ones included. A JSON object that is not a request is read as properties itself.
//!
//! Properties: refusals list problems that each name a template property (never a spec path
//! such as `destination.region`), with a message; accepted properties make a plan.
#![no_main]

use aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest as Request;
use ferry_plan::stack::{approval_granted, TransferPlanProperties};
use ferry_plan::{FerryError, Plan};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_properties(props: &Value) {
    match TransferPlanProperties::from_properties(props) {
        Ok(p) => {
            if let Err(e) = Plan::build(&p.spec) {
                panic!("accepted properties make no plan: {e}");
            }
        }
        Err(FerryError::InvalidSpec(problems)) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in &problems {
                assert!(!p.field.is_empty(), "a problem names no field: {p:?}");
                assert!(
                    !p.field.contains('.'),
                    "a problem names a spec path, not a template property: {p:?}"
                );
                assert!(
                    !p.message.trim().is_empty(),
                    "a problem without a message: {p:?}"
                );
            }
        }
        Err(e @ FerryError::SpecSyntax { .. }) => panic!("properties gave a syntax error: {e}"),
    }
    if let Some(Value::String(a)) = props.get("Approval") {
        approval_granted(a);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match serde_json::from_value::<Request>(payload.clone()) {
        Ok(Request::Create(r)) => check_properties(&r.resource_properties),
        Ok(Request::Update(r)) => {
            check_properties(&r.resource_properties);
            check_properties(&r.old_resource_properties);
        }
        Ok(Request::Delete(r)) => check_properties(&r.resource_properties),
        Ok(_) => {}
        Err(_) => check_properties(&payload),
    }
});
