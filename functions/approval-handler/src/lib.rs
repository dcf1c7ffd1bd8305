//! approval-handler: takes approvals, rejections, re-send requests and redrives from the
//! approval topic (`ferry_flows::approval_topic`), and (on a schedule) hands over stack waits
//! that are about to time out (`ferry_flows::workflow::release_expiring_waits`). See
//! `docs/stack.md`.

use aws_lambda_events::sns::SnsEvent;
use ferry_flows::approval_topic::ApprovalTopic;
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::workflow::{self, ApprovalOutcome};
use ferry_plan::approval::ApprovalToken;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub use ferry_flows::approval_topic::{
    parse_approvers, ApprovalPorts, ApproverArnsError, RedrivePorts,
};

/// The scheduled input the template's rule sends.
pub const DEADLINE_CHECK: &str = "approval-deadline-check";

pub struct ApprovalHandler<P> {
    pub ports: P,
    pub approval_topic_arn: String,
    /// Who the approval topic's policy lets publish (the stack's ApproverArns, env
    /// `FERRY_APPROVER_ARNS`, pinned by the template; the account's root user is added).
    pub approvers: Vec<String>,
    pub retry: RetryPolicy,
    pub clock: fn() -> u64,
    pub new_token: fn() -> Option<ApprovalToken>,
}

/// What one invocation did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Messages(Vec<Result<ApprovalOutcome, String>>),
    WaitsReleased(Vec<String>),
}

impl<P: ApprovalPorts> ApprovalHandler<P> {
    pub fn new(ports: P, approval_topic_arn: String, approvers: Vec<String>) -> Self {
        Self {
            ports,
            approval_topic_arn,
            approvers,
            retry: RetryPolicy::default(),
            clock: ferry_aws::runtime::unix_now,
            new_token: ferry_aws::runtime::random_token,
        }
    }

    /// Lambda entry point. Returns an error only for failures worth a retry (throttling, 5xx,
    /// a refusal that could not be e-mailed): Lambda then redelivers, and since a failed
    /// attempt gives its token back, a retry is safe.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Handled, Error> {
        let payload = event.payload;
        let topic = ApprovalTopic {
            approval_topic_arn: &self.approval_topic_arn,
            approvers: &self.approvers,
            retry: self.retry,
            clock: self.clock,
            new_token: self.new_token,
        };
        if payload.get("ferry").and_then(Value::as_str) == Some(DEADLINE_CHECK)
            || payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        {
            let released = workflow::release_expiring_waits(&self.ports, &topic.ctx())
                .await
                .map_err(|e| Error::from(e.to_string()))?;
            tracing::info!(released = ?released, "approval deadline check");
            return Ok(Handled::WaitsReleased(released));
        }
        let sns: SnsEvent = serde_json::from_value(payload).map_err(|e| {
            Error::from(format!(
                "approval-handler takes SNS messages from the approval topic or {{\"ferry\":\"{DEADLINE_CHECK}\"}}: {e}"
            ))
        })?;
        let mut results = Vec::new();
        for record in sns.records {
            let handled = topic
                .handle_message(&self.ports, &record.sns.message, &record.sns.message_id)
                .await;
            results.push(handled.map_err(Error::from)?);
        }
        Ok(Handled::Messages(results))
    }
}
