//! stack-handler's "always answer CloudFormation" runner, shared by every custom resource of the
//! stack (its answers name stack-handler, the one function that serves them): read the event,
//! check it, run its work within the Lambda deadline, and PUT the answer to the ResponseURL
//! whatever happens (see `docs/stack.md`).
//!
//! The work runs in its own task, so an error, a panic or running out of time each still end
//! in an answer: without one a stack hangs for an hour. Deletes answer SUCCESS (a FAILED delete
//! blocks the stack's deletion) and say in `Reason` what they could not do, with one exception
//! below.
//!
//! Before the work, the event must be one CloudFormation could have sent (#15): its ResponseURL
//! a presigned AWS URL (else no request is made at all), its properties equal to the template's
//! pins (`ferry_flows::stack_pins`), and its stack in an operation (`DescribeStacks` of the
//! pinned `FERRY_STACK_ID`: `ferry_flows::stack_status`). A refused event is answered (FAILED,
//! a Delete SUCCESS with the reason) and nothing of it is done. If the stack's status can't be
//! read, even a Delete is answered FAILED: answering SUCCESS without acting would let a real
//! deletion finish with what the stack made (the batch role, which the source account trusts)
//! left behind unseen, while a `DELETE_FAILED` stack names the reason and is deleted again once
//! `DescribeStacks` works.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as Request,
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind, RetryPolicy};
use ferry_flows::custom_resources::{pinned_for, Outcome, RequestType, ResourceRequest};
use ferry_flows::ports::{LaunchApi, StackStatusApi};
use ferry_flows::stack_pins::StackPins;
use ferry_flows::stack_status::{self, NotInOperation};
use serde_json::Value;

use crate::http::{put_presigned, PresignedUrlRule};

/// CloudFormation rejects response bodies over 4096 bytes (CloudFormation User Guide, "Custom
/// resource response objects").
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// What the runner needs from its function: how to reach CloudFormation and how long to work.
pub struct CustomResourceRunner<'a> {
    pub http: &'a reqwest::Client,
    pub retry: RetryPolicy,
    /// Time kept back from the Lambda deadline to send the answer.
    pub answer_margin: Duration,
    /// Budget when the context carries no deadline (local runs).
    pub default_budget: Duration,
    /// What the template pinned in the environment: an event that differs is refused (the
    /// properties of each resource type: `ferry_flows::custom_resources::pinned_for`).
    pub pins: &'a StackPins,
    /// Where an event's ResponseURL may point; an event whose URL doesn't qualify gets no
    /// answer at all (only CloudFormation's presigned S3 URLs).
    pub response_urls: &'a PresignedUrlRule,
}

impl CustomResourceRunner<'_> {
    /// The working budget: time to the Lambda deadline (`deadline_ms`, Unix milliseconds; 0 or
    /// an emulator's relative value: none), less the margin kept for the answer.
    pub fn budget(&self, deadline_ms: u64) -> Duration {
        let Some(remaining) = crate::runtime::time_left(deadline_ms) else {
            return self.default_budget;
        };
        // Keep back the margin, but never more than a quarter of a short timeout (Lambda's
        // default is 3 s, as in local emulators), so short runs still get to work.
        remaining.saturating_sub(self.answer_margin.min(remaining / 4))
    }

    /// Reads the event, checks it, runs `work` on it within the deadline and answers
    /// CloudFormation. `prepare` runs once the event was read and its ResponseURL found
    /// CloudFormation's, before the pins are checked (the function's clock and a fresh approval
    /// token); `work` gets what it made, and runs only on an event that passed every check.
    /// `Err` only when no answer could be sent (or none may be).
    pub async fn answer<P, C, Prep, W, Fut>(
        &self,
        ports: Arc<P>,
        payload: Value,
        deadline_ms: u64,
        prepare: Prep,
        work: W,
    ) -> Result<(), String>
    where
        P: StackStatusApi + LaunchApi + Send + Sync + 'static,
        Prep: FnOnce() -> C,
        C: Send + 'static,
        W: FnOnce(Arc<P>, Request, C) -> Fut + Send + 'static,
        Fut: Future<Output = Outcome> + Send,
    {
        let request: Request = match serde_json::from_value(payload.clone()) {
            Ok(r) => r,
            Err(e) => return self.answer_unparseable(&payload, &e.to_string()).await,
        };
        let head = Head::of(&request);
        if let Err(why) = self.response_urls.check(&head.response_url) {
            // Not CloudFormation's: no request to it, and nothing done for the event.
            tracing::warn!(%why, resource_type = %head.resource_type, "refused an event whose ResponseURL is not a presigned AWS URL");
            return Err(format!("refused: the event's ResponseURL {why}"));
        }
        tracing::info!(
            request_type = head.request_type,
            resource_type = %head.resource_type,
            logical_resource_id = %head.logical_resource_id,
            "custom resource request"
        );
        let budget = self.budget(deadline_ms);
        tracing::info!(
            budget_ms = budget.as_millis() as u64,
            deadline_ms,
            "working budget"
        );
        let prepared = prepare();
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
                        Ok(()) => Answer::of(work(ports, request, prepared).await),
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
        let outcome = if head.request_type == "Delete" && !outcome.success && !as_is {
            // A FAILED delete would leave the stack undeletable; say what went wrong instead.
            Outcome {
                success: true,
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
            tracing::warn!(success = outcome.success, %reason, "answering CloudFormation");
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
    async fn answer_unparseable(&self, payload: &Value, why: &str) -> Result<(), String> {
        let text = |k: &str| ferry_flows::custom_resources::text_property(payload, k);
        let url = text("ResponseURL");
        if url.is_empty() {
            return Err(format!(
                "not a CloudFormation custom resource request: {why}"
            ));
        }
        if let Err(url_why) = self.response_urls.check(&url) {
            return Err(format!("refused: the event's ResponseURL {url_why}"));
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

    async fn send(&self, url: &str, response: &Response) -> Result<(), String> {
        let body = response_body(response);
        let mut last = None;
        for attempt in 0..3u64 {
            match put_presigned(self.http, url, body.clone()).await {
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
        ))
    }
}

/// A checked request as the flows take it (`None` for a request type CloudFormation doesn't
/// send).
pub fn resource_request(request: &Request) -> Option<ResourceRequest<'_>> {
    Some(match request {
        Request::Create(r) => ResourceRequest {
            request_type: RequestType::Create,
            resource_type: &r.resource_type,
            stack_id: &r.stack_id,
            physical_resource_id: None,
            properties: &r.resource_properties,
            old_properties: None,
        },
        Request::Update(r) => ResourceRequest {
            request_type: RequestType::Update,
            resource_type: &r.resource_type,
            stack_id: &r.stack_id,
            physical_resource_id: Some(&r.physical_resource_id),
            properties: &r.resource_properties,
            old_properties: Some(&r.old_resource_properties),
        },
        Request::Delete(r) => ResourceRequest {
            request_type: RequestType::Delete,
            resource_type: &r.resource_type,
            stack_id: &r.stack_id,
            physical_resource_id: Some(&r.physical_resource_id),
            properties: &r.resource_properties,
            old_properties: None,
        },
        _ => return None,
    })
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
/// event may be CloudFormation's (#15; `ferry_flows::stack_status`). A status not read within
/// `budget` is unknown.
async fn in_operation<P: StackStatusApi + LaunchApi + Sync>(
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

fn response_for(head: &Head, outcome: Outcome) -> Response {
    let mut r = Response::default();
    r.status = if outcome.success {
        Status::Success
    } else {
        Status::Failed
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn runner<'a>(
        http: &'a reqwest::Client,
        pins: &'a StackPins,
        urls: &'a PresignedUrlRule,
    ) -> CustomResourceRunner<'a> {
        CustomResourceRunner {
            http,
            retry: RetryPolicy::default(),
            answer_margin: Duration::from_secs(10),
            default_budget: Duration::from_secs(240),
            pins,
            response_urls: urls,
        }
    }

    #[test]
    fn budgets_from_real_and_emulated_deadlines() {
        let (http, urls) = (reqwest::Client::new(), PresignedUrlRule::default());
        let pins = StackPins {
            stack_id: String::new(),
            properties: Default::default(),
        };
        let h = runner(&http, &pins, &urls);
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
