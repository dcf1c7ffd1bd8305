//! The CloudFormation stack on moto that stands in for the deployed Ferry stack, and the status the
//! gateway reports for it (stack-handler acts only while a stack operation runs).

use aws_config::SdkConfig;

use crate::moto::MotoServer;

/// The status [`deploy_cloudformation_stack`] leaves a stack in: in an operation, as the stack is
/// while CloudFormation sends its custom resources their events (stack-handler acts on events
/// only then: `ferry_flows::stack_status`).
pub const STACK_STATUS_IN_OPERATION: &str = "CREATE_IN_PROGRESS";

/// The CloudFormation stack `name` in `config`'s account and Region (made by that account's
/// administrator, `config`), created on moto if there is none yet: a stand-in for the deployed
/// Ferry stack, with one `AWS::CloudFormation::WaitConditionHandle` (moto needs a resource).
/// Returns its id, the ARN `AWS::StackId` resolves to. moto finishes the stack at once
/// (`CREATE_COMPLETE`), so the gateway is told to report it as
/// [`STACK_STATUS_IN_OPERATION`] ([`set_stack_status`] changes that); with `FERRY_GATEWAY=off`
/// nothing can, and stack-handler refuses every event.
pub async fn deploy_cloudformation_stack(
    moto: &MotoServer,
    config: &SdkConfig,
    name: &str,
) -> String {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let existing = cfn.describe_stacks().stack_name(name).send().await.ok();
    if let Some(id) = existing
        .as_ref()
        .and_then(|out| out.stacks().first())
        .and_then(|s| s.stack_id())
    {
        return id.to_string();
    }
    let template = serde_json::json!({"AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}});
    let id = cfn
        .create_stack()
        .stack_name(name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("cloudformation:CreateStack {name}: {e:?}"))
        .stack_id()
        .unwrap_or_else(|| panic!("cloudformation:CreateStack {name} returned no StackId"))
        .to_string();
    if moto.authorizes() {
        set_stack_status(moto, &id, STACK_STATUS_IN_OPERATION).await;
    } else {
        eprintln!(
            "ferry-testkit: FERRY_GATEWAY=off: stack {id} stays CREATE_COMPLETE, as moto made it \
             (no gateway to report it in an operation)"
        );
    }
    id
}

/// Makes the gateway report `status` (a CloudFormation `StackStatus`, e.g. `UPDATE_COMPLETE`)
/// as the status of the stack `stack_id` in every DescribeStacks answer, whoever asks (the
/// harness API `POST /_ferry/cloudformation/stack-status`, `tests/gateway/README.md`). moto's
/// own stack is not changed. Panics without the gateway or if it refuses the status.
pub async fn set_stack_status(moto: &MotoServer, stack_id: &str, status: &str) {
    let body = serde_json::json!({"stackId": stack_id, "status": status}).to_string();
    let answer = crate::s3control::harness_call(
        moto,
        "POST",
        "/_ferry/cloudformation/stack-status".to_string(),
        body,
    )
    .await;
    match answer {
        Some((200, _)) => {}
        None => panic!(
            "the stack status control needs the gateway (FERRY_GATEWAY=off, or it didn't answer)"
        ),
        Some((code, text)) => {
            panic!("the gateway refused status {status} for {stack_id}: {code} {text}")
        }
    }
}
