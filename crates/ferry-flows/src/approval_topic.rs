//! One message of the approval topic, as approval-handler takes it: an approval, a rejection, a
//! re-send request (`crate::workflow::handle_approval_from`) or a redrive
//! (`crate::report::redrive`), with who may have published it, and a refusal e-mailed to the
//! people. See `docs/stack.md`.
//!
//! Tokens are never logged: log lines carry the outcome and, at most, the first characters of
//! the token's SHA-256.

use ferry_plan::approval::{ApprovalMessage, ApprovalToken};
use ferry_plan::untrusted::untrusted;

use crate::aws_error::{AwsCaused, RetryPolicy};
use crate::ports::PreflightApi;
use crate::ports::{InventoryRunTrigger, Notifier, StateStore, WaitSignal};
use crate::report::jobs::{JobsApi, ManifestObjects, ReportObjects};
use crate::report::redrive::{self, RedriveContext, RedriveOutcome, StateBucketName};
use crate::workflow::{self, ApprovalOutcome, Publisher, StackContext, WorkflowError};

pub trait ApprovalPorts:
    StateStore
    + WaitSignal
    + PreflightApi
    + Notifier
    + InventoryRunTrigger
    + RedrivePorts
    + Send
    + Sync
    + 'static
{
}
impl<T> ApprovalPorts for T where
    T: StateStore
        + WaitSignal
        + PreflightApi
        + Notifier
        + InventoryRunTrigger
        + RedrivePorts
        + Send
        + Sync
        + 'static
{
}

/// What a redrive needs besides the approval ports.
/// (ManifestObjects: a redrive re-copies only tasks of the job's own manifest, read as the job
/// recorded it.)
pub trait RedrivePorts: JobsApi + ReportObjects + ManifestObjects + StateBucketName {}
impl<T: JobsApi + ReportObjects + ManifestObjects + StateBucketName> RedrivePorts for T {}

/// `FERRY_APPROVER_ARNS` that is not a comma-separated list of this account's IAM role and user
/// ARNs (the template's ApproverArns pattern lets no other through; this is for a hand-set
/// environment).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "FERRY_APPROVER_ARNS: {value:?} is not an IAM role or user ARN of account {account} \
     (arn:<partition>:iam::{account}:role/<name> or :user/<name>, comma-separated, no spaces): set the stack's \
     ApproverArns parameter to the principals who approve"
)]
pub struct ApproverArnsError {
    pub value: String,
    pub account: String,
}

/// The approvers named in `FERRY_APPROVER_ARNS` (`value`; empty: none), each an IAM role or user
/// of the approval topic's account.
pub fn parse_approvers(
    value: &str,
    approval_topic_arn: &str,
) -> Result<Vec<String>, ApproverArnsError> {
    let account = approval_topic_arn.split(':').nth(4).unwrap_or_default();
    let valid = |arn: &str| {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "iam"
            && parts[3].is_empty()
            && parts[4] == account
            && (parts[5] == "root"
                || ["role/", "user/"].iter().any(|p| {
                    parts[5].strip_prefix(p).is_some_and(|name| {
                        !name.is_empty()
                            && name
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"+=.@_/-".contains(&b))
                    })
                }))
    };
    value
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|arn| {
            if valid(arn) {
                Ok(arn.to_string())
            } else {
                Err(ApproverArnsError {
                    value: arn.to_string(),
                    account: account.to_string(),
                })
            }
        })
        .collect()
}

/// What approval-handler knows besides the message: the topic and who may publish there (both
/// from the environment the template sets, never from a message), the clock and the retries.
#[derive(Debug, Clone)]
pub struct ApprovalTopic<'a> {
    pub approval_topic_arn: &'a str,
    /// Who the approval topic's policy lets publish (the stack's ApproverArns, env
    /// `FERRY_APPROVER_ARNS`, pinned by the template; the account's root user is added):
    /// recorded with each decision as its publisher, since SNS names none (#15).
    pub approvers: &'a [String],
    pub retry: RetryPolicy,
    /// Unix seconds now.
    pub clock: fn() -> u64,
    /// `None` when the OS has no entropy to give (the message then fails, never a weak token).
    pub new_token: fn() -> Option<ApprovalToken>,
}

impl ApprovalTopic<'_> {
    /// The workflows' context as of now (the clock is read here).
    pub fn ctx(&self) -> StackContext {
        StackContext {
            approval_topic_arn: self.approval_topic_arn.to_string(),
            now_unix: (self.clock)(),
            retry: self.retry,
        }
    }

    /// Who may have published a message of the approval topic: what its policy lets publish.
    /// Taken from the environment the template sets, never from the message.
    fn publisher(&self, message_id: &str) -> Publisher {
        let arn: Vec<&str> = self.approval_topic_arn.split(':').collect();
        let (partition, account) = (
            arn.get(1).copied().unwrap_or("aws"),
            arn.get(4).copied().unwrap_or_default(),
        );
        let root = format!("arn:{partition}:iam::{account}:root");
        let mut one_of = self.approvers.to_vec();
        if !one_of.contains(&root) {
            one_of.push(root);
        }
        Publisher {
            topic_arn: self.approval_topic_arn.to_string(),
            message_id: message_id.to_string(),
            one_of,
        }
    }

    /// One SNS message of the approval topic (`message_id`: SNS's id of it). `Ok(Err(why))`:
    /// refused for good (and e-mailed, unless a re-send came too soon); `Err`: worth a retry
    /// (throttling, 5xx, a refusal that could not be e-mailed), so Lambda redelivers, and since
    /// a failed attempt gives its token back, a retry is safe.
    pub async fn handle_message<P: ApprovalPorts>(
        &self,
        ports: &P,
        message: &str,
        message_id: &str,
    ) -> Result<Result<ApprovalOutcome, String>, String> {
        let publisher = self.publisher(message_id);
        self.one_message(ports, message, &publisher).await
    }

    async fn one_message<P: ApprovalPorts>(
        &self,
        ports: &P,
        message: &str,
        publisher: &Publisher,
    ) -> Result<Result<ApprovalOutcome, String>, String> {
        if let Ok(ApprovalMessage::Redrive { job_id }) = ApprovalMessage::parse(message) {
            return self.redrive(ports, &job_id).await;
        }
        let token_ref = ApprovalMessage::parse(message)
            .ok()
            .and_then(|m| m.token().map(|t| t.hash()[..12].to_string()))
            .unwrap_or_default();
        let Some(fresh) = (self.new_token)() else {
            return Err("the operating system gave no random bytes for a new token".to_string());
        };
        match workflow::handle_approval_from(ports, message, Some(publisher), &fresh, &self.ctx())
            .await
        {
            Ok(outcome) => {
                tracing::info!(token_sha256_prefix = %token_ref, outcome = ?summary(&outcome), "approval message handled");
                Ok(Ok(outcome))
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(token_sha256_prefix = %token_ref, error = %e, "approval failed for now; will be retried");
                Err(e.to_string())
            }
            Err(e @ WorkflowError::ResendTooSoon { .. }) => {
                // Not e-mailed: a flood of re-send requests must not become a flood of e-mails.
                // The pending token is untouched and the last approval-token e-mail still works.
                tracing::warn!(error = %e, "re-send refused: one per quarter hour");
                Ok(Err(e.to_string()))
            }
            Err(e) => {
                // Refused for good: say so to the people (without the message, which may hold a token).
                tracing::warn!(token_sha256_prefix = %token_ref, error = %e, "approval message refused");
                say_refusal(
                    ports,
                    "Ferry: an approval message was not acted on",
                    &e.to_string(),
                )
                .await?;
                Ok(Err(e.to_string()))
            }
        }
    }

    /// `{"action":"redrive","job_id":…}`: a new job from the failed tasks of a finished job of
    /// this account and region (both read from the approval topic's ARN). The outcome is
    /// e-mailed either way.
    async fn redrive<P: ApprovalPorts>(
        &self,
        ports: &P,
        job_id: &str,
    ) -> Result<Result<ApprovalOutcome, String>, String> {
        // arn:<partition>:sns:<region>:<account>:<name>
        let arn: Vec<&str> = self.approval_topic_arn.split(':').collect();
        let (Some(region), Some(account_id)) = (arn.get(3), arn.get(4)) else {
            return Err(format!(
                "FERRY_APPROVAL_TOPIC_ARN {:?} is not an SNS topic ARN",
                self.approval_topic_arn
            ));
        };
        let ctx = RedriveContext {
            state_bucket: ports.state_bucket().to_string(),
            region: region.to_string(),
            retry: self.retry,
        };
        let refusal = match redrive::redrive_and_announce(ports, account_id, job_id, &ctx).await {
            Ok(RedriveOutcome::Launched { record, job }) => {
                tracing::info!(job_id, new_job_id = %record.new_job_id, tasks = record.tasks, "redrive launched");
                return Ok(Ok(ApprovalOutcome::JobLaunched(job)));
            }
            Ok(RedriveOutcome::AlreadyRedriven(record)) => format!(
                "job {job_id} was already redriven as job {} ({} tasks); that job is the redrive",
                record.new_job_id, record.tasks
            ),
            Ok(RedriveOutcome::NothingToRedrive { .. }) => {
                format!(
                    "job {job_id} has no failed task in its completion report: nothing to redrive"
                )
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(job_id, error = %e, "redrive failed for now; will be retried");
                return Err(e.to_string());
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(job_id, reason = %refusal, "redrive not done");
        // The job id comes from the message, which anyone allowed to publish writes.
        say_refusal(
            ports,
            &format!("Ferry: redrive of job {} not done", untrusted(job_id)),
            &untrusted(&refusal),
        )
        .await?;
        Ok(Err(refusal))
    }
}

/// E-mails a refusal. One that could not be sent fails the invocation (#16 item 10), so
/// the SNS delivery is retried (the message is refused again and the e-mail tried again)
/// and, once retries run out, lands in the dead-letter queue: never only a log line.
async fn say_refusal<P: Notifier + Sync>(
    ports: &P,
    subject: &str,
    body: &str,
) -> Result<(), String> {
    ports.notify(subject, body).await.map_err(|cause| {
        tracing::error!(subject, error = %cause, "the refusal could not be e-mailed");
        format!("{subject}: {body}; and e-mailing that failed: {cause}")
    })
}

/// A compact, token-free description of an outcome for the log.
fn summary(outcome: &ApprovalOutcome) -> String {
    match outcome {
        ApprovalOutcome::WaitSignalled => "stack wait signalled".to_string(),
        ApprovalOutcome::JobLaunched(job) => format!("job {} launched", job.job_id),
        ApprovalOutcome::InventoryRunStarted { manifest_key } => {
            format!("inventory run started on {manifest_key}")
        }
        ApprovalOutcome::Rejected { stack_signalled } => {
            format!("rejected (stack signalled: {stack_signalled})")
        }
        ApprovalOutcome::Resent { transfer_name } => {
            format!("instructions re-sent for {transfer_name}")
        }
    }
}
