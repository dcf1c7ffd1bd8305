//! stack-handler: the CloudFormation custom resources `Custom::FerryTransferPlan` and
//! `Custom::FerryJob` (see `docs/stack.md`).
//!
//! It always answers CloudFormation: the work runs in its own task, so an error, a panic or
//! running out of time each still end in a PUT to the ResponseURL. Without that answer a
//! stack hangs for an hour. Deletes answer SUCCESS (a FAILED delete blocks the stack's
//! deletion) and say in `Reason` what they could not do, with one exception below.
//!
//! Before acting on an event it checks that the event could be CloudFormation's (#15): equal to
//! the template's pins (`ferry_core::stack_pins`), and its stack in an operation
//! (`DescribeStacks` of the pinned `FERRY_STACK_ID`: `ferry_core::stack_status`). A refused
//! event is answered (FAILED, a Delete SUCCESS with the reason) and nothing of it is done. If
//! the stack's status can't be read, even a Delete is answered FAILED: answering SUCCESS without
//! acting would let a real deletion finish with the batch role (which the source account
//! trusts) left behind unseen, while a `DELETE_FAILED` stack names the reason and is deleted
//! again once `DescribeStacks` works.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as Request,
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use ferry_aws::http::{presigned_put_client, put_presigned, PresignedUrlRule};
use ferry_aws::runtime::{random_token, unix_now};
use ferry_core::approval::ApprovalToken;
use ferry_core::launch::{AwsCallError, AwsErrorKind, LaunchApi, RetryPolicy};
use ferry_core::ports::{
    InventoryRunTrigger, JobControl, Notifier, RoleAdmin, StackStatusApi, StateStore,
};
use ferry_core::stack::TransferPlanProperties;
use ferry_core::stack_pins::{
    StackPins, PINNED_FIRST_JOB_PROPERTIES, PINNED_TRANSFER_PLAN_PROPERTIES,
};
use ferry_core::stack_status::{self, NotInOperation};
use ferry_core::workflow::{self, StackContext};
use ferry_core::Plan;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

mod inventory_trigger;

pub use inventory_trigger::INVENTORY_TRIGGER_TYPE;

pub const TRANSFER_PLAN_TYPE: &str = "Custom::FerryTransferPlan";
pub const FIRST_JOB_TYPE: &str = "Custom::FerryJob";
/// CloudFormation rejects response bodies over 4096 bytes.
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// Every AWS call the custom resources make.
pub trait StackPorts:
    StateStore
    + Notifier
    + RoleAdmin
    + LaunchApi
    + JobControl
    + InventoryRunTrigger
    + StackStatusApi
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
        + Send
        + Sync
        + 'static
{
}

pub struct StackHandler<P> {
    pub ports: Arc<P>,
    pub http: reqwest::Client,
    pub approval_topic_arn: String,
    pub retry: RetryPolicy,
    /// Time kept back from the Lambda deadline to send the answer.
    pub answer_margin: Duration,
    /// Budget when the context carries no deadline (local runs).
    pub default_budget: Duration,
    pub clock: fn() -> u64,
    /// `None` when the OS has no entropy to give (the request then fails, never a weak token).
    pub new_token: fn() -> Option<ApprovalToken>,
    /// What the template pinned in the environment: an event that differs is refused.
    pub pins: StackPins,
    /// Where an event's ResponseURL may point; an event whose URL doesn't qualify gets no
    /// answer at all (only CloudFormation's presigned S3 URLs).
    pub response_urls: PresignedUrlRule,
}

impl<P> StackHandler<P> {
    fn budget(&self, deadline_ms: u64) -> Duration {
        let Some(remaining) = ferry_aws::runtime::time_left(deadline_ms) else {
            return self.default_budget;
        };
        // Keep back the margin, but never more than a quarter of a short timeout (Lambda's
        // default is 3 s, as in local emulators), so short runs still get to work.
        remaining.saturating_sub(self.answer_margin.min(remaining / 4))
    }
}

impl<P: StackPorts> StackHandler<P> {
    pub fn new(ports: P, approval_topic_arn: String, pins: StackPins) -> Self {
        Self {
            ports: Arc::new(ports),
            http: presigned_put_client(),
            approval_topic_arn,
            retry: RetryPolicy::default(),
            answer_margin: Duration::from_secs(10),
            default_budget: Duration::from_secs(240),
            clock: unix_now,
            new_token: random_token,
            pins,
            response_urls: PresignedUrlRule::default(),
        }
    }

    /// The Lambda entry point: parse, work within the deadline, answer CloudFormation.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<(), Error> {
        let (payload, context) = event.into_parts();
        let request: Request = match serde_json::from_value(payload.clone()) {
            Ok(r) => r,
            Err(e) => return self.answer_unparseable(&payload, &e.to_string()).await,
        };
        let head = Head::of(&request);
        if let Err(why) = self.response_urls.check(&head.response_url) {
            // Not CloudFormation's: no request to it, and nothing done for the event.
            tracing::warn!(%why, resource_type = %head.resource_type, "refused an event whose ResponseURL is not a presigned AWS URL");
            return Err(format!("refused: the event's ResponseURL {why}").into());
        }
        tracing::info!(
            request_type = head.request_type,
            resource_type = %head.resource_type,
            logical_resource_id = %head.logical_resource_id,
            "custom resource request"
        );
        let budget = self.budget(context.deadline);
        tracing::info!(
            budget_ms = budget.as_millis() as u64,
            deadline_ms = context.deadline,
            "working budget"
        );
        let ports = self.ports.clone();
        let ctx = StackContext {
            approval_topic_arn: self.approval_topic_arn.clone(),
            now_unix: (self.clock)(),
            retry: self.retry,
        };
        // Drawn here (only TransferPlan Create/Update use it); `None` fails those, never a Delete.
        let token = (self.new_token)();
        let mut work = match self.refusal(&request, &head) {
            // Refused before any work: a forged Delete answers SUCCESS below with the reason,
            // having done nothing.
            Some(refused) => tokio::spawn(async move { Answer::of(refused) }),
            None => {
                let (stack_id, retry) = (self.pins.stack_id.clone(), self.status_retry());
                let request_type = head.request_type.to_string();
                // At most half the budget to read the status, so an answer always goes out.
                let check_budget = budget / 2;
                tokio::spawn(async move {
                    match in_operation(
                        ports.as_ref(),
                        &stack_id,
                        &request_type,
                        retry,
                        check_budget,
                    )
                    .await
                    {
                        Ok(()) => Answer::of(process(ports, request, ctx, token).await),
                        Err(refused) => Answer {
                            // Unverified (the status couldn't be read): FAILED even for a Delete.
                            as_is: matches!(refused, NotInOperation::Unknown { .. }),
                            outcome: Outcome::failed(refused.to_string()),
                        },
                    }
                })
            }
        };
        let (outcome, as_is) = match tokio::time::timeout(budget, &mut work).await {
            Ok(Ok(answer)) => (answer.outcome, answer.as_is),
            Ok(Err(join)) => (
                Outcome::failed(format!(
                    "stack-handler failed unexpectedly ({}); see its log group",
                    if join.is_panic() {
                        "panic"
                    } else {
                        "task cancelled"
                    }
                )),
                false,
            ),
            Err(_) => {
                // Stop the work: CloudFormation is told FAILED, so nothing may happen after.
                work.abort();
                (
                    Outcome::failed(format!(
                        "stack-handler ran out of time after {} s (Lambda deadline); the step may be retried with a stack update",
                        budget.as_secs()
                    )),
                    false,
                )
            }
        };
        let outcome = if head.request_type == "Delete" && outcome.status == Status::Failed && !as_is
        {
            // A FAILED delete would leave the stack undeletable; say what went wrong instead.
            Outcome {
                status: Status::Success,
                reason: outcome
                    .reason
                    .map(|r| format!("Deleted with a problem: {r}")),
                physical_resource_id: outcome.physical_resource_id,
                data: HashMap::new(),
            }
        } else {
            outcome
        };
        if let Some(reason) = &outcome.reason {
            tracing::warn!(status = ?outcome.status, %reason, "answering CloudFormation");
        }
        let response = response_for(&head, outcome);
        self.send(&head.response_url, &response).await
    }

    /// How patiently the stack's status is asked for: briefly (at most 3 attempts), since the
    /// answer to CloudFormation waits on it.
    fn status_retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retry.max_attempts.clamp(1, 3),
            ..self.retry
        }
    }

    /// `Some(FAILED)` when the event differs from what the template pinned (#15 item 1).
    fn refusal(&self, request: &Request, head: &Head) -> Option<Outcome> {
        let (properties, pinned): (&Value, &[&str]) = match request {
            Request::Create(r) => (&r.resource_properties, pinned_for(&r.resource_type)),
            Request::Update(r) => (&r.resource_properties, pinned_for(&r.resource_type)),
            Request::Delete(r) => (&r.resource_properties, pinned_for(&r.resource_type)),
            _ => return None,
        };
        let refused = self
            .pins
            .check(&head.resource_type, &head.stack_id, properties, pinned)
            .err()?;
        tracing::warn!(
            request_type = head.request_type,
            resource_type = %head.resource_type,
            mismatches = refused.mismatches.len(),
            "refused a custom resource event that differs from the pinned values"
        );
        Some(Outcome::failed(refused.to_string()))
    }

    /// An event that isn't a custom resource request: answer FAILED if it has a ResponseURL.
    async fn answer_unparseable(&self, payload: &Value, why: &str) -> Result<(), Error> {
        let text = |k: &str| text_property(payload, k);
        let url = text("ResponseURL");
        if url.is_empty() {
            return Err(format!("not a CloudFormation custom resource request: {why}").into());
        }
        if let Err(url_why) = self.response_urls.check(&url) {
            return Err(format!("refused: the event's ResponseURL {url_why}").into());
        }
        let head = Head {
            request_type: "Unknown",
            response_url: url.clone(),
            stack_id: text("StackId"),
            request_id: text("RequestId"),
            logical_resource_id: text("LogicalResourceId"),
            resource_type: text("ResourceType"),
            physical_resource_id: Some(text("PhysicalResourceId")).filter(|s| !s.is_empty()),
        };
        let outcome = Outcome::failed(format!("the request could not be read: {why}"));
        self.send(&url, &response_for(&head, outcome)).await
    }

    async fn send(&self, url: &str, response: &Response) -> Result<(), Error> {
        let body = response_body(response);
        let mut last = None;
        for attempt in 0..3u64 {
            match put_presigned(&self.http, url, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "sending the response to CloudFormation failed");
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
                }
            }
        }
        Err(format!(
            "could not answer CloudFormation: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )
        .into())
    }
}

/// The properties pinned for a resource type (every type's events must name this stack).
fn pinned_for(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        TRANSFER_PLAN_TYPE => PINNED_TRANSFER_PLAN_PROPERTIES,
        FIRST_JOB_TYPE => PINNED_FIRST_JOB_PROPERTIES,
        _ => &[],
    }
}

/// The fields of a request every answer copies.
#[derive(Debug, Clone)]
struct Head {
    request_type: &'static str,
    response_url: String,
    stack_id: String,
    request_id: String,
    logical_resource_id: String,
    resource_type: String,
    physical_resource_id: Option<String>,
}

impl Head {
    fn of(request: &Request) -> Self {
        match request {
            Request::Create(r) => Head {
                request_type: "Create",
                response_url: r.response_url.clone(),
                stack_id: r.stack_id.clone(),
                request_id: r.request_id.clone(),
                logical_resource_id: r.logical_resource_id.clone(),
                resource_type: r.resource_type.clone(),
                physical_resource_id: None,
            },
            Request::Update(r) => Head {
                request_type: "Update",
                response_url: r.response_url.clone(),
                stack_id: r.stack_id.clone(),
                request_id: r.request_id.clone(),
                logical_resource_id: r.logical_resource_id.clone(),
                resource_type: r.resource_type.clone(),
                physical_resource_id: Some(r.physical_resource_id.clone()),
            },
            Request::Delete(r) => Head {
                request_type: "Delete",
                response_url: r.response_url.clone(),
                stack_id: r.stack_id.clone(),
                request_id: r.request_id.clone(),
                logical_resource_id: r.logical_resource_id.clone(),
                resource_type: r.resource_type.clone(),
                physical_resource_id: Some(r.physical_resource_id.clone()),
            },
            _ => Head {
                request_type: "Unknown",
                response_url: String::new(),
                stack_id: String::new(),
                request_id: String::new(),
                logical_resource_id: String::new(),
                resource_type: String::new(),
                physical_resource_id: None,
            },
        }
    }
}

/// Whether the stack (`stack_id`, the pinned `FERRY_STACK_ID`) is in an operation, so that the
/// event may be CloudFormation's (#15; `ferry_core::stack_status`). A status not read within
/// `budget` is unknown.
async fn in_operation<P: StackPorts>(
    ports: &P,
    stack_id: &str,
    request_type: &str,
    retry: RetryPolicy,
    budget: Duration,
) -> Result<(), NotInOperation> {
    let check = stack_status::check_in_operation(ports, stack_id, retry);
    let checked = tokio::time::timeout(budget, check)
        .await
        .unwrap_or_else(|_| {
            Err(NotInOperation::Unknown {
                stack_id: stack_id.to_string(),
                attempts: 1,
                cause: AwsCallError {
                    kind: AwsErrorKind::Transient,
                    code: "Timeout".to_string(),
                    message: format!("no answer within {} ms", budget.as_millis()),
                },
            })
        });
    match checked {
        Ok(status) if !stack_status::may_send(request_type, &status) => {
            let refused = NotInOperation::WrongPhase {
                stack_id: stack_id.to_string(),
                status,
                request_type: request_type.to_string(),
            };
            tracing::warn!(%refused, "refused a custom resource event");
            Err(refused)
        }
        Ok(status) => {
            tracing::info!(%status, "the stack is in an operation");
            Ok(())
        }
        Err(refused) => {
            tracing::warn!(%refused, "refused a custom resource event: its stack is in no operation, or its status is unknown");
            Err(refused)
        }
    }
}

/// What the work task hands back: the outcome, and whether a FAILED Delete is answered FAILED
/// as it is (the stack's status could not be read, so nothing was done and nothing is known;
/// see the module documentation) instead of SUCCESS with the reason.
struct Answer {
    outcome: Outcome,
    as_is: bool,
}

impl Answer {
    fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            as_is: false,
        }
    }
}

/// What the work decided; turned into a response with the request's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub reason: Option<String>,
    /// `None`: keep the request's (Update/Delete) or derive one (Create).
    pub physical_resource_id: Option<String>,
    pub data: HashMap<String, String>,
}

impl Outcome {
    fn failed(reason: String) -> Self {
        Self {
            status: Status::Failed,
            reason: Some(reason),
            physical_resource_id: None,
            data: HashMap::new(),
        }
    }
    fn success(
        physical_resource_id: Option<String>,
        data: &[(&str, String)],
        reason: Option<String>,
    ) -> Self {
        Self {
            status: Status::Success,
            reason,
            physical_resource_id,
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

fn response_for(head: &Head, outcome: Outcome) -> Response {
    let mut r = Response::default();
    r.status = outcome.status;
    r.reason = outcome.reason;
    // Stable: the request's id on Update/Delete; on a failed Create one that Delete recognises.
    r.physical_resource_id = outcome
        .physical_resource_id
        .or_else(|| head.physical_resource_id.clone())
        .unwrap_or_else(|| format!("ferry-failed-{}", head.request_id));
    r.stack_id = head.stack_id.clone();
    r.request_id = head.request_id.clone();
    r.logical_resource_id = head.logical_resource_id.clone();
    r.no_echo = false;
    r.data = outcome.data;
    r
}

/// The JSON body, cut to CloudFormation's 4096 bytes by shortening `Reason` (never the ids).
/// The cut is measured in escaped JSON, where a quote or a control character takes more
/// bytes than in the text.
pub fn response_body(response: &Response) -> Vec<u8> {
    let body = serde_json::to_vec(response).unwrap_or_default();
    if body.len() <= MAX_RESPONSE_BYTES {
        return body;
    }
    let suffix = " … (cut; the full text is in the function's log)";
    let mut trimmed = response.clone();
    let reason = trimmed.reason.take().unwrap_or_default();
    trimmed.reason = Some(suffix.to_string());
    let skeleton = serde_json::to_vec(&trimmed).unwrap_or_default().len();
    if skeleton > MAX_RESPONSE_BYTES {
        // Only possible if Data is huge: drop it rather than send something CloudFormation refuses.
        trimmed.data.clear();
        return serde_json::to_vec(&trimmed).unwrap_or_default();
    }
    let mut room = MAX_RESPONSE_BYTES - skeleton;
    let mut kept = String::new();
    for c in reason.chars() {
        let escaped = serde_json::to_string(&c.to_string()).map_or(6, |e| e.len() - 2);
        if escaped > room {
            break;
        }
        room -= escaped;
        kept.push(c);
    }
    trimmed.reason = Some(format!("{kept}{suffix}"));
    serde_json::to_vec(&trimmed).unwrap_or_default()
}

async fn process<P: StackPorts>(
    ports: Arc<P>,
    request: Request,
    ctx: StackContext,
    token: Option<ApprovalToken>,
) -> Outcome {
    let ports = ports.as_ref();
    match &request {
        Request::Create(r) if r.resource_type == TRANSFER_PLAN_TYPE => {
            transfer_plan_create_or_update(
                ports,
                &r.resource_properties,
                None,
                token.as_ref(),
                &ctx,
            )
            .await
        }
        Request::Update(r) if r.resource_type == TRANSFER_PLAN_TYPE => {
            let old = TransferPlanProperties::from_properties(&r.old_resource_properties)
                .ok()
                .and_then(|p| Plan::build(&p.spec).ok())
                .map(|p| p.transfer.fingerprint);
            transfer_plan_create_or_update(
                ports,
                &r.resource_properties,
                Some(old),
                token.as_ref(),
                &ctx,
            )
            .await
        }
        Request::Delete(r) if r.resource_type == TRANSFER_PLAN_TYPE => {
            transfer_plan_delete(ports, &r.resource_properties).await
        }
        Request::Create(r) if r.resource_type == FIRST_JOB_TYPE => {
            first_job(
                ports,
                &r.resource_properties,
                false,
                first_job_id(&r.stack_id),
                &ctx,
            )
            .await
        }
        Request::Update(r) if r.resource_type == FIRST_JOB_TYPE => {
            first_job(
                ports,
                &r.resource_properties,
                true,
                r.physical_resource_id.clone(),
                &ctx,
            )
            .await
        }
        Request::Delete(r) if r.resource_type == FIRST_JOB_TYPE => {
            first_job_delete(ports, &r.resource_properties).await
        }
        Request::Create(r) if r.resource_type == INVENTORY_TRIGGER_TYPE => {
            inventory_trigger::enable(&r.resource_properties).await
        }
        Request::Update(r) if r.resource_type == INVENTORY_TRIGGER_TYPE => {
            inventory_trigger::enable(&r.resource_properties).await
        }
        Request::Delete(r) if r.resource_type == INVENTORY_TRIGGER_TYPE => {
            inventory_trigger::delete()
        }
        other => Outcome::failed(format!(
            "stack-handler serves {TRANSFER_PLAN_TYPE}, {FIRST_JOB_TYPE} and {INVENTORY_TRIGGER_TYPE}, not {}",
            Head::of(other).resource_type
        )),
    }
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

/// A string field of a JSON object, trimmed; empty when absent or not a string.
fn text_property(object: &Value, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPorts;

    fn handler() -> StackHandler<NoPorts> {
        StackHandler {
            ports: Arc::new(NoPorts),
            http: reqwest::Client::new(),
            approval_topic_arn: String::new(),
            retry: RetryPolicy::default(),
            answer_margin: Duration::from_secs(10),
            default_budget: Duration::from_secs(240),
            clock: unix_now,
            new_token: random_token,
            pins: StackPins {
                stack_id: String::new(),
                properties: Default::default(),
            },
            response_urls: PresignedUrlRule::default(),
        }
    }

    #[test]
    fn budgets_from_real_and_emulated_deadlines() {
        let h = handler();
        // Context::default() and `cargo lambda watch` (which sends its 600 s timeout).
        assert_eq!(h.budget(0), Duration::from_secs(240));
        assert_eq!(h.budget(600_000), Duration::from_secs(240));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        // 300 s left: 10 s kept back for the answer.
        let b = h.budget(now_ms + 300_000);
        assert!(
            b <= Duration::from_secs(290) && b > Duration::from_secs(285),
            "{b:?}"
        );
        // Lambda's default 3 s: a quarter kept back, not the whole 10 s.
        let b = h.budget(now_ms + 3_000);
        assert!(
            b > Duration::from_millis(2_000) && b <= Duration::from_millis(2_250),
            "{b:?}"
        );
        // Past the deadline: nothing left.
        assert_eq!(h.budget(now_ms - 1_000), Duration::ZERO);
    }

    #[test]
    fn response_body_cut_keeps_ids_and_valid_json() {
        let mut r = Response::default();
        r.status = Status::Failed;
        r.reason = Some("\"quoted\"\n".repeat(2_000));
        r.physical_resource_id = "ferry-transfer-x".into();
        r.request_id = "req".into();
        let body = response_body(&r);
        assert!(body.len() <= MAX_RESPONSE_BYTES);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["PhysicalResourceId"], "ferry-transfer-x");
        assert!(v["Reason"]
            .as_str()
            .unwrap()
            .starts_with("\"quoted\"\n\"quoted\""));
    }
}
