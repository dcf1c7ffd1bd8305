//! Transfer specs (`TransferSpec::from_toml_str` + `validate`): any text. Problems each name a
//! field and say what to do; a spec that validates makes a plan whose text and JSON render.
#![no_main]

use ferry_plan::render::render_text;
use ferry_plan::validate::validate;
use ferry_plan::{FerryError, Plan, TransferSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = match TransferSpec::from_toml_str(text) {
        Ok(spec) => spec,
        Err(FerryError::SpecSyntax { message }) => {
            assert!(
                !message.trim().is_empty(),
                "a syntax error without a message"
            );
            return;
        }
        Err(e) => panic!("parsing gave a non-syntax error: {e}"),
    };
    match validate(&spec) {
        Ok(()) => {
            let plan = match Plan::build(&spec) {
                Ok(plan) => plan,
                Err(e) => panic!("a valid spec makes no plan: {e}"),
            };
            assert!(!render_text(&plan, &spec).is_empty());
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&plan.to_pretty_json()) {
                panic!("the plan's JSON does not parse: {e}");
            }
        }
        Err(FerryError::InvalidSpec(problems)) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in &problems {
                assert!(!p.field.is_empty(), "a problem names no field: {p:?}");
                assert!(
                    !p.message.trim().is_empty(),
                    "a problem without a message: {p:?}"
                );
            }
        }
        Err(e) => panic!("validation gave a syntax error: {e}"),
    }
});
