//! job-monitor: takes Batch Operations `JobStatusChanged` events (CloudTrail, through an
//! EventBridge rule) and, for Ferry's jobs, e-mails what a person needs: the summary of a
//! finished job with its failures grouped by cause and the fix for each, or the commands to
//! confirm a suspended one. See `docs/monitoring.md`.
//!
//! A job of an inventory run also ends that run: its delta is committed only when DescribeJob
//! (never the event) says the job is the run's own and `Complete`, and its completion report
//! accounts for every failed task DescribeJob counts; otherwise the run stays uncommitted and
//! the e-mail says why (`ferry_flows::report::accounting`, `docs/inventory.md`).
//!
//! Jobs that aren't Ferry's, or belong to another stack's plan, are ignored with a log line. Throttling and server errors return an
//! error so Lambda retries the event (each announcement is claimed once, so a retry never
//! e-mails twice); anything else is e-mailed as "summary failed" with the reason.

use ferry_flows::aws_error::{AwsCallError, AwsCaused};
use ferry_flows::ports::{Notifier, StateStore};
use ferry_flows::report::jobs::{JobsApi, ReportObjects};
use ferry_flows::report::monitor::{
    on_job_status_changed, JobStatusEvent, MonitorContext, MonitorOutcome,
};
use ferry_flows::report::redrive::StateBucketName;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub trait MonitorPorts:
    JobsApi + ReportObjects + StateStore + Notifier + Send + Sync + 'static
{
}
impl<T> MonitorPorts for T where
    T: JobsApi + ReportObjects + StateStore + Notifier + Send + Sync + 'static
{
}

pub struct JobMonitor<P> {
    pub ports: P,
    pub approval_topic_arn: String,
    /// The stack's own account (`FERRY_ACCOUNT_ID`, pinned by the template) and Region (the
    /// function's `AWS_REGION`): events of jobs anywhere else are ignored, whatever an event says.
    pub account_id: String,
    pub region: String,
    pub clock: fn() -> u64,
}

/// What one invocation did, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    Outcome(MonitorOutcome),
    /// Not an event this function takes (logged; not retried).
    BadEvent(String),
    /// The summary could not be made for a reason a retry won't fix (e-mailed).
    Failed(String),
}

impl<P: MonitorPorts + StateBucketName> JobMonitor<P> {
    pub fn new(ports: P, approval_topic_arn: String, account_id: String, region: String) -> Self {
        Self {
            ports,
            approval_topic_arn,
            account_id,
            region,
            clock: ferry_aws::runtime::unix_now,
        }
    }

    /// Lambda entry point.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Handled, Error> {
        let parsed = match JobStatusEvent::from_eventbridge(&event.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "event ignored");
                return Ok(Handled::BadEvent(e.to_string()));
            }
        };
        if parsed.account_id != self.account_id || parsed.region != self.region {
            let why = format!(
                "job {} belongs to account {} in {}, not this stack's account {} in {}: ignored",
                parsed.job_id, parsed.account_id, parsed.region, self.account_id, self.region
            );
            tracing::warn!(job_id = %parsed.job_id, account = %parsed.account_id, region = %parsed.region, "event of another account or Region ignored");
            return Ok(Handled::BadEvent(why));
        }
        let ctx = MonitorContext {
            state_bucket: self.ports.state_bucket().to_string(),
            approval_topic_arn: self.approval_topic_arn.clone(),
            now_unix: (self.clock)(),
        };
        match on_job_status_changed(&self.ports, &parsed, &ctx).await {
            Ok(outcome) => {
                log(&parsed, &outcome);
                Ok(Handled::Outcome(outcome))
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(job_id = %parsed.job_id, error = %e, "summary failed for now; will be retried");
                Err(e.to_string().into())
            }
            Err(e) => {
                tracing::error!(job_id = %parsed.job_id, error = %e, "summary failed");
                self.ports
                    .notify(
                        &format!(
                            "Ferry: job {} is {}, but its summary failed",
                            parsed.job_id, parsed.status
                        ),
                        &format!(
                            "Job {} ({} in {}) changed to {}. Ferry could not summarise it: {}\n\n\
                             Look at it with: ferry status {} --region {} --account-id {}\n",
                            parsed.job_id,
                            parsed.account_id,
                            parsed.region,
                            parsed.status,
                            ferry_plan::untrusted::untrusted(&e.to_string()),
                            parsed.job_id,
                            parsed.region,
                            parsed.account_id
                        ),
                    )
                    .await
                    .map_err(|n: AwsCallError| {
                        Error::from(format!("{e}; and e-mailing that failed: {n}"))
                    })?;
                Ok(Handled::Failed(e.to_string()))
            }
        }
    }
}

fn log(event: &JobStatusEvent, outcome: &MonitorOutcome) {
    match outcome {
        MonitorOutcome::NotFerrys { job_id } => {
            tracing::info!(job_id = %job_id, status = %event.status, "not a Ferry job (no ferry:transfer tag): ignored")
        }
        MonitorOutcome::OtherStack {
            job_id,
            transfer_name,
        } => {
            tracing::info!(job_id = %job_id, transfer = %transfer_name, "a Ferry job of a plan this stack didn't store: its own stack announces it")
        }
        MonitorOutcome::Ignored { status } => {
            tracing::info!(job_id = %event.job_id, status = %status, "status needs no message")
        }
        MonitorOutcome::AlreadyAnnounced { job_id, status } => {
            tracing::info!(job_id = %job_id, status = %status, "already announced (redelivered event)")
        }
        MonitorOutcome::AwaitingConfirmation { job_id } => {
            tracing::info!(job_id = %job_id, "suspended job announced")
        }
        MonitorOutcome::Summarised(s) => tracing::info!(
            job_id = %s.job_id,
            status = %s.status,
            failed = s.failed_in_report,
            causes = s.causes.len(),
            "summary published"
        ),
    }
}
