//! The stack's custom resources as flows: what a `Custom::FerryTransferPlan`,
//! `Custom::FerryJob` or `Custom::FerryInventoryTrigger` request does, and the [`Outcome`] it
//! ends in (see `docs/stack.md`). The event reaches here only after the shared runner
//! (`ferry_aws::custom_resource`) checked it against the template's pins and the stack's status;
//! the runner also turns the outcome into CloudFormation's answer, always.

use std::collections::HashMap;

use ferry_plan::approval::ApprovalToken;
use ferry_plan::stack::TransferPlanProperties;
use ferry_plan::Plan;
use serde_json::Value;

use crate::ports::LaunchApi;
use crate::ports::{
    BucketEventDelivery, InventoryRunTrigger, JobControl, Notifier, RoleAdmin, StackStatusApi,
    StateStore,
};
use crate::stack_pins::{PINNED_FIRST_JOB_PROPERTIES, PINNED_TRANSFER_PLAN_PROPERTIES};
use crate::workflow::{self, StackContext};

pub const TRANSFER_PLAN_TYPE: &str = "Custom::FerryTransferPlan";
pub const FIRST_JOB_TYPE: &str = "Custom::FerryJob";
/// Makes the inventory bucket send its events to EventBridge, where the stack's rule picks up
/// each new `manifest.checksum` for the inventory-handler.
///
/// Why a custom resource: the inventory bucket is not the stack's, and S3 keeps one notification
/// configuration per bucket, so setting it from a template would overwrite the owner's topic,
/// queue and Lambda notifications. The port reads the configuration, adds
/// `EventBridgeConfiguration` and puts the rest back as read. Properties: `Bucket`,
/// `ExpectedBucketOwner` (the account that must own it). Delete leaves EventBridge delivery
/// on: other rules may have come to rely on it, and by itself it costs nothing and sends
/// nothing anywhere.
pub const INVENTORY_TRIGGER_TYPE: &str = "Custom::FerryInventoryTrigger";

/// Every AWS call the custom resources make.
pub trait StackPorts:
    StateStore
    + Notifier
    + RoleAdmin
    + LaunchApi
    + JobControl
    + InventoryRunTrigger
    + StackStatusApi
    + BucketEventDelivery
    + Send
    + Sync
    + 'static
{
}
impl<T> StackPorts for T where
    T: StateStore
        + Notifier
        + RoleAdmin
        + LaunchApi
        + JobControl
        + InventoryRunTrigger
        + StackStatusApi
        + BucketEventDelivery
        + Send
        + Sync
        + 'static
{
}

/// A custom resource request, as the runner hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// What a request says, once it was read and checked.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRequest<'a> {
    pub request_type: RequestType,
    pub resource_type: &'a str,
    pub stack_id: &'a str,
    /// Update and Delete: the id the resource was given.
    pub physical_resource_id: Option<&'a str>,
    pub properties: &'a Value,
    /// Update: the properties before.
    pub old_properties: Option<&'a Value>,
}

/// The properties pinned for a resource type (every type's events must name this stack).
pub fn pinned_for(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        TRANSFER_PLAN_TYPE => PINNED_TRANSFER_PLAN_PROPERTIES,
        FIRST_JOB_TYPE => PINNED_FIRST_JOB_PROPERTIES,
        _ => &[],
    }
}

/// What the work decided; the runner turns it into a response with the request's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    pub reason: Option<String>,
    /// `None`: keep the request's (Update/Delete) or derive one (Create).
    pub physical_resource_id: Option<String>,
    pub data: HashMap<String, String>,
}

impl Outcome {
    pub fn failed(reason: String) -> Self {
        Self {
            success: false,
            reason: Some(reason),
            physical_resource_id: None,
            data: HashMap::new(),
        }
    }

    pub fn success(
        physical_resource_id: Option<String>,
        data: &[(&str, String)],
        reason: Option<String>,
    ) -> Self {
        Self {
            success: true,
            reason,
            physical_resource_id,
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

/// One request of a checked event. `token` is the approval token drawn for it (only
/// TransferPlan Create/Update use it; `None` fails those, never a Delete).
///
/// It acts on what the request says: call it only for an event the runner
/// (`ferry_aws::custom_resource`) found equal to the template's pins while the stack is in an
/// operation, as stack-handler does. The inventory trigger's S3 calls are the ports' (the
/// function's own role, in its Region, as the per-event client before the split was).
pub async fn handle_request<P: StackPorts>(
    ports: &P,
    request: ResourceRequest<'_>,
    ctx: &StackContext,
    token: Option<&ApprovalToken>,
) -> Outcome {
    use RequestType::{Create, Delete, Update};
    let properties = request.properties;
    match (request.resource_type, request.request_type) {
        (TRANSFER_PLAN_TYPE, Create) => {
            transfer_plan_create_or_update(ports, properties, None, token, ctx).await
        }
        (TRANSFER_PLAN_TYPE, Update) => {
            let old = request
                .old_properties
                .and_then(|old| TransferPlanProperties::from_properties(old).ok())
                .and_then(|p| Plan::build(&p.spec).ok())
                .map(|p| p.transfer.fingerprint);
            transfer_plan_create_or_update(ports, properties, Some(old), token, ctx).await
        }
        (TRANSFER_PLAN_TYPE, Delete) => transfer_plan_delete(ports, properties).await,
        (FIRST_JOB_TYPE, Create) => {
            let id = first_job_id(request.stack_id);
            first_job(ports, properties, false, id, ctx).await
        }
        (FIRST_JOB_TYPE, Update) => {
            let id = request.physical_resource_id.unwrap_or_default().to_string();
            first_job(ports, properties, true, id, ctx).await
        }
        (FIRST_JOB_TYPE, Delete) => first_job_delete(ports, properties).await,
        (INVENTORY_TRIGGER_TYPE, Create | Update) => {
            inventory_trigger_enable(ports, properties).await
        }
        // Nothing to undo (see INVENTORY_TRIGGER_TYPE).
        (INVENTORY_TRIGGER_TYPE, Delete) => Outcome::success(None, &[], None),
        (other, _) => not_served(other),
    }
}

/// The answer to a request of a resource type (or a request type) stack-handler doesn't serve.
pub fn not_served(resource_type: &str) -> Outcome {
    Outcome::failed(format!(
        "stack-handler serves {TRANSFER_PLAN_TYPE}, {FIRST_JOB_TYPE} and {INVENTORY_TRIGGER_TYPE}, not {resource_type}"
    ))
}

async fn transfer_plan_create_or_update<P: StackPorts>(
    ports: &P,
    properties: &Value,
    old_fingerprint: Option<Option<String>>,
    token: Option<&ApprovalToken>,
    ctx: &StackContext,
) -> Outcome {
    let props = match TransferPlanProperties::from_properties(properties) {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e.to_string()),
    };
    let Some(token) = token else {
        return Outcome::failed(
            "the operating system gave no random bytes for the approval token".into(),
        );
    };
    let physical_id = format!("ferry-transfer-{}", props.spec.name);
    let result = match old_fingerprint {
        None => workflow::create_transfer(ports, &props, token, ctx).await,
        Some(old) => workflow::update_transfer(ports, old.as_deref(), &props, token, ctx).await,
    };
    match result {
        Ok(ready) => Outcome::success(
            Some(physical_id),
            &[
                ("Fingerprint", ready.fingerprint),
                ("RoleArn", ready.role_arn),
            ],
            None,
        ),
        Err(e) => Outcome::failed(e.to_string()),
    }
}

/// TransferPlan Delete. The record of the stack's current plan (`plans/current.json`) is left as
/// it is: CloudFormation also sends a Delete in an update's cleanup, for the TransferPlan a
/// replacement left behind, after the new plan was recorded (or, in a rollback, after the old
/// one was recorded again), so removing it could drop the current plan's record, and a stack
/// without one accepts every stored plan (`workflow::ensure_current_plan`). After the stack's
/// own deletion it names a plan whose role and functions are gone; a new stack on the same state
/// bucket records its own on Create.
async fn transfer_plan_delete<P: StackPorts>(ports: &P, properties: &Value) -> Outcome {
    // A Create that failed validation created nothing, so there is nothing to delete.
    let Ok(props) = TransferPlanProperties::from_properties(properties) else {
        return Outcome::success(None, &[], None);
    };
    if Plan::build(&props.spec).is_err() {
        return Outcome::success(None, &[], None);
    }
    let running = match workflow::delete_jobs(ports, false).await {
        Ok(t) => t.left_running,
        Err(e) => {
            return Outcome::failed(format!(
                "could not check for running jobs, so the role was kept: {e}"
            ))
        }
    };
    match workflow::delete_transfer(ports, &props.spec, &running).await {
        Ok(t) if t.role_deleted => Outcome::success(None, &[], None),
        Ok(t) => Outcome::success(
            None,
            &[],
            Some(format!(
                "kept role {} for jobs still running: {}",
                props.spec.role_name(),
                t.left_running.join(", ")
            )),
        ),
        Err(e) => Outcome::failed(e.to_string()),
    }
}

fn first_job_id(stack_id: &str) -> String {
    // The stack's UUID (last segment of its ARN) keeps the id stable and unique per stack.
    format!(
        "ferry-first-job-{}",
        stack_id.rsplit('/').next().unwrap_or("stack")
    )
}

async fn first_job<P: StackPorts>(
    ports: &P,
    properties: &Value,
    on_update: bool,
    physical_id: String,
    ctx: &StackContext,
) -> Outcome {
    let text = |k: &str| text_property(properties, k);
    let fingerprint = text("PlanFingerprint");
    if fingerprint.is_empty() {
        return Outcome::failed(
            "PlanFingerprint is required (!GetAtt TransferPlan.Fingerprint)".to_string(),
        );
    }
    match workflow::first_job(ports, &fingerprint, &text("Approval"), on_update, ctx).await {
        Ok(job_id) => Outcome::success(Some(physical_id), &[("JobId", job_id)], None),
        Err(e) => Outcome::failed(e.to_string()),
    }
}

async fn first_job_delete<P: StackPorts>(ports: &P, properties: &Value) -> Outcome {
    let cancel = properties.get("CancelJobsOnDelete").and_then(Value::as_str) == Some("true");
    match workflow::delete_jobs(ports, cancel).await {
        Ok(t) => {
            let mut notes = Vec::new();
            if !t.cancelled.is_empty() {
                notes.push(format!("cancelled jobs {}", t.cancelled.join(", ")));
            }
            if !t.left_running.is_empty() {
                let why = if cancel {
                    ""
                } else {
                    " (CancelJobsOnDelete=false)"
                };
                notes.push(format!("left running{why}: {}", t.left_running.join(", ")));
            }
            Outcome::success(None, &[], (!notes.is_empty()).then(|| notes.join("; ")))
        }
        Err(e) => Outcome::failed(e.to_string()),
    }
}

/// InventoryTrigger Create and Update: turn EventBridge delivery on.
async fn inventory_trigger_enable<P: StackPorts>(ports: &P, properties: &Value) -> Outcome {
    let bucket = text_property(properties, "Bucket");
    let owner = text_property(properties, "ExpectedBucketOwner");
    if bucket.is_empty() || owner.is_empty() {
        return Outcome::failed(format!(
            "{INVENTORY_TRIGGER_TYPE} needs Bucket and ExpectedBucketOwner (got Bucket={bucket:?}, \
             ExpectedBucketOwner={owner:?})"
        ));
    }
    match ports.enable_eventbridge_delivery(&bucket, &owner).await {
        Ok(changed) => Outcome::success(
            Some(format!("ferry-inventory-trigger-{bucket}")),
            &[("EventBridgeEnabledByFerry", changed.to_string())],
            None,
        ),
        Err(e) => Outcome::failed(format!(
            "turning on EventBridge delivery for s3://{bucket} failed ({e}): the stack-handler role needs \
             s3:GetBucketNotification and s3:PutBucketNotification on it, and the bucket must be owned by \
             {owner}. Or turn it on yourself: aws s3api put-bucket-notification-configuration (keeping the \
             existing configurations) with \"EventBridgeConfiguration\": {{}}"
        )),
    }
}

/// A string field of a JSON object, trimmed; empty when absent or not a string.
pub fn text_property(object: &Value, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string()
}
