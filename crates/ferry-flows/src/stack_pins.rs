//! What the template pins in stack-handler's environment, and the check every custom-resource
//! event passes before stack-handler acts on it (#15, item 1).
//!
//! Why: CloudFormation invokes a custom resource's function with the credentials of whoever
//! runs the stack operation, not as a service principal, so the function's resource policy
//! can't tell CloudFormation apart from anyone else allowed `lambda:InvokeFunction`. An event
//! is therefore untrusted text. Whatever decides what the Batch Operations role may reach and
//! who may act as it (buckets, keys, manifest, report, the copier and its role, the transfer's
//! name, the stack) is set by the template twice: as the custom resource's properties and as
//! `FERRY_PIN_<Property>` variables of the function. An event whose values differ is refused
//! before anything is done, so a hand-made Update can't name another trust principal or bucket.
//!
//! Rollbacks: CloudFormation updates a function before the custom resources that depend on it
//! (they name it in `ServiceToken`), so an update's event meets the new variables. If a
//! rollback ever reached the custom resource before the function's own rollback (AWS doesn't
//! document the order), the refusal says which property differs, and `ContinueUpdateRollback`
//! retries it once the function is back: it never acts on values the template didn't pin.

use std::collections::BTreeMap;

use serde_json::Value;

/// Prefix of the pinned properties' environment variables: `FERRY_PIN_SourceBucket`, ...
pub const PIN_PREFIX: &str = "FERRY_PIN_";
/// The stack's id (`!Ref AWS::StackId`): every event must come for this stack.
pub const STACK_ID_VARIABLE: &str = "FERRY_STACK_ID";

/// `Custom::FerryTransferPlan` properties that decide what the batch role may reach, who may
/// assume it and what the first job is: each one goes into the role's documents or the job.
pub const PINNED_TRANSFER_PLAN_PROPERTIES: &[&str] = &[
    "TransferName",
    "SourceAccountId",
    "SourceRegion",
    "SourceBucket",
    "SourceKmsKeyArn",
    "SourceVersioned",
    "DestinationAccountId",
    "DestinationRegion",
    "DestinationBucket",
    "DestinationKmsKeyArn",
    "DestinationTags",
    "ManifestKind",
    "ManifestBucket",
    "ManifestAccountId",
    "ManifestKey",
    "ManifestKmsKeyArn",
    "ReportBucket",
    "ReportAccountId",
    "ReportPrefix",
    "ReportKmsKeyArn",
    "LargeObjectCopierArn",
    "LargeObjectCopierRoleArn",
];

/// `Custom::FerryJob` properties pinned: whether a teardown cancels the transfer's jobs.
pub const PINNED_FIRST_JOB_PROPERTIES: &[&str] = &["CancelJobsOnDelete"];

/// The values the template pinned, read once from the function's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackPins {
    pub stack_id: String,
    /// Property name → value, for every name of the lists above.
    pub properties: BTreeMap<String, String>,
}

/// The environment lacks pins: the function refuses to start rather than trust events.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "stack-handler's environment lacks {}: the template sets them (FERRY_PIN_<Property> beside each \
     custom resource property it pins); deploy the stack's template unchanged",
    missing.join(", ")
)]
pub struct MissingPins {
    pub missing: Vec<String>,
}

/// One property of an event that differs from its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinMismatch {
    pub property: String,
    pub event_value: String,
    pub pinned_value: String,
}

/// An event that differs from what the template pinned: nothing of it is acted on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "refused: this {resource_type} event differs from what the stack's template pinned in \
     stack-handler's environment, so it was not sent by this stack's CloudFormation operation \
     (or the function's own update hasn't reached it yet: retry the operation, e.g. \
     ContinueUpdateRollback): {}",
    crate::stack_pins::describe(mismatches)
)]
pub struct EventNotPinned {
    pub resource_type: String,
    pub mismatches: Vec<PinMismatch>,
}

fn describe(mismatches: &[PinMismatch]) -> String {
    mismatches
        .iter()
        .map(|m| {
            format!(
                "{} is {:?} but the template pinned {:?}",
                m.property,
                ferry_plan::untrusted::untrusted(&m.event_value),
                ferry_plan::untrusted::untrusted(&m.pinned_value)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl StackPins {
    /// Reads the pins from environment variables (`std::env::vars()` in the function). Every
    /// pinned name must be present (empty is a value: an optional parameter left empty).
    pub fn from_environment(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, MissingPins> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let mut missing = Vec::new();
        let stack_id = vars.get(STACK_ID_VARIABLE).cloned().unwrap_or_default();
        if stack_id.trim().is_empty() {
            missing.push(STACK_ID_VARIABLE.to_string());
        }
        let mut properties = BTreeMap::new();
        for name in pinned_names() {
            let variable = format!("{PIN_PREFIX}{name}");
            match vars.get(&variable) {
                Some(value) => {
                    properties.insert(name.to_string(), value.trim().to_string());
                }
                None => missing.push(variable),
            }
        }
        if !missing.is_empty() {
            return Err(MissingPins { missing });
        }
        Ok(Self {
            stack_id: stack_id.trim().to_string(),
            properties,
        })
    }

    /// Checks one event: it must name this stack, and every pinned property it carries for
    /// `resource_type` must equal its pin (an absent property counts as empty, as
    /// CloudFormation leaves an empty parameter). Every mismatch is listed at once.
    pub fn check(
        &self,
        resource_type: &str,
        stack_id: &str,
        properties: &Value,
        pinned: &[&str],
    ) -> Result<(), EventNotPinned> {
        let mut mismatches = Vec::new();
        if stack_id.trim() != self.stack_id {
            mismatches.push(PinMismatch {
                property: "StackId".to_string(),
                event_value: stack_id.to_string(),
                pinned_value: self.stack_id.clone(),
            });
        }
        for name in pinned {
            let event_value = property_text(properties, name);
            let pinned_value = self.properties.get(*name).cloned().unwrap_or_default();
            if event_value != pinned_value {
                mismatches.push(PinMismatch {
                    property: name.to_string(),
                    event_value,
                    pinned_value,
                });
            }
        }
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(EventNotPinned {
                resource_type: resource_type.to_string(),
                mismatches,
            })
        }
    }
}

/// Every pinned property name, TransferPlan's then FirstJob's.
pub fn pinned_names() -> impl Iterator<Item = &'static str> {
    PINNED_TRANSFER_PLAN_PROPERTIES
        .iter()
        .chain(PINNED_FIRST_JOB_PROPERTIES)
        .copied()
}

/// A property as text, trimmed (CloudFormation sends strings; numbers and booleans of a
/// hand-written event compare by their JSON text); absent or null is empty.
fn property_text(properties: &Value, name: &str) -> String {
    match properties.get(name) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env_of(stack: &str, props: &Value) -> Vec<(String, String)> {
        let mut vars = vec![(STACK_ID_VARIABLE.to_string(), stack.to_string())];
        for name in pinned_names() {
            vars.push((format!("{PIN_PREFIX}{name}"), property_text(props, name)));
        }
        vars
    }

    const STACK: &str = "arn:aws:cloudformation:eu-west-1:222233334444:stack/ferry/abc";

    fn props() -> Value {
        json!({"TransferName": "photos", "SourceBucket": "src", "SourceKmsKeyArn": "",
               "LargeObjectCopierRoleArn": "arn:aws:iam::222233334444:role/copier",
               "CancelJobsOnDelete": "false"})
    }

    #[test]
    fn missing_variables_are_all_named() {
        let err = StackPins::from_environment(vec![(
            "FERRY_PIN_SourceBucket".to_string(),
            "src".to_string(),
        )])
        .unwrap_err();
        assert!(err.missing.contains(&STACK_ID_VARIABLE.to_string()));
        assert!(err
            .missing
            .contains(&"FERRY_PIN_LargeObjectCopierRoleArn".to_string()));
        assert!(!err.missing.contains(&"FERRY_PIN_SourceBucket".to_string()));
        assert_eq!(err.missing.len(), 1 + pinned_names().count() - 1);
    }

    #[test]
    fn an_event_equal_to_the_pins_passes() {
        let pins = StackPins::from_environment(env_of(STACK, &props())).unwrap();
        pins.check(
            "Custom::FerryTransferPlan",
            STACK,
            &props(),
            PINNED_TRANSFER_PLAN_PROPERTIES,
        )
        .unwrap();
    }

    #[test]
    fn a_forged_trust_principal_bucket_and_stack_are_each_refused() {
        let pins = StackPins::from_environment(env_of(STACK, &props())).unwrap();
        let mut forged = props();
        forged["LargeObjectCopierRoleArn"] = json!("arn:aws:iam::222233334444:user/mallory");
        forged["SourceBucket"] = json!("other");
        // An optional pin left empty may not be filled in by an event either.
        forged["SourceKmsKeyArn"] = json!("arn:aws:kms:eu-west-1:111122223333:key/x");
        let err = pins
            .check(
                "Custom::FerryTransferPlan",
                "arn:aws:cloudformation:eu-west-1:222233334444:stack/other/def",
                &forged,
                PINNED_TRANSFER_PLAN_PROPERTIES,
            )
            .unwrap_err();
        let named: Vec<&str> = err.mismatches.iter().map(|m| m.property.as_str()).collect();
        assert_eq!(
            named,
            [
                "StackId",
                "SourceBucket",
                "SourceKmsKeyArn",
                "LargeObjectCopierRoleArn"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("user/mallory"), "{text}");
    }

    #[test]
    fn a_dropped_property_is_a_mismatch() {
        let pins = StackPins::from_environment(env_of(STACK, &props())).unwrap();
        let mut forged = props();
        forged.as_object_mut().unwrap().remove("SourceBucket");
        let err = pins
            .check("t", STACK, &forged, PINNED_TRANSFER_PLAN_PROPERTIES)
            .unwrap_err();
        assert_eq!(err.mismatches[0].property, "SourceBucket");
        assert_eq!(err.mismatches[0].event_value, "");
    }

    #[test]
    fn cancel_jobs_on_delete_is_pinned_for_first_job() {
        let pins = StackPins::from_environment(env_of(STACK, &props())).unwrap();
        let err = pins
            .check(
                "Custom::FerryJob",
                STACK,
                &json!({"CancelJobsOnDelete": "true"}),
                PINNED_FIRST_JOB_PROPERTIES,
            )
            .unwrap_err();
        assert_eq!(err.mismatches[0].property, "CancelJobsOnDelete");
    }
}
