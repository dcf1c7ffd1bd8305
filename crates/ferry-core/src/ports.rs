//! The small set of AWS calls the stack's workflows make, as traits. `ferry-aws` implements
//! them with the SDK; tests implement them against moto or in memory.

use std::future::Future;

use crate::launch::AwsCallError;
use crate::policy::batch_role::BatchRole;

/// Ferry's state: small JSON objects in the stack's state bucket.
pub trait StateStore {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, AwsCallError>> + Send;
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
    /// Writes only if nothing is there yet (`If-None-Match: *`); `false` when something was.
    /// This is what makes a token single-use across concurrent deliveries.
    fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<bool, AwsCallError>> + Send;
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, AwsCallError>> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// Messages to people (the notification topic's e-mail subscribers).
pub trait Notifier {
    fn notify(
        &self,
        subject: &str,
        body: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// Starts an event-driven inventory run: invokes the stack's inventory-handler asynchronously
/// (Lambda `Invoke`, `InvocationType=Event`) with `event`, an S3 `Object Created` event for an
/// inventory's `manifest.checksum`. The function is the one the template pins; the event names
/// only what inventory-handler checks against the stored plan anyway.
pub trait InventoryRunTrigger {
    fn start_inventory_run(
        &self,
        event: &serde_json::Value,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// CloudFormation's view of the stack stack-handler serves: is it in an operation now?
/// (`ferry_core::stack_status`.)
pub trait StackStatusApi {
    /// `DescribeStacks` with `StackName` = `stack_id` (the stack's ARN, as the template pins it
    /// in `FERRY_STACK_ID`): the stack's `StackStatus`, e.g. `UPDATE_IN_PROGRESS`. A deleted
    /// stack is still described by its id (`DELETE_COMPLETE`).
    fn stack_status(
        &self,
        stack_id: &str,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
}

/// The Batch Operations role, created and kept equal to the plan.
pub trait RoleAdmin {
    /// Creates the role or, if it exists, replaces its trust policy; then puts the inline
    /// permissions policy. Idempotent.
    fn apply_role(&self, role: &BatchRole)
        -> impl Future<Output = Result<(), AwsCallError>> + Send;
    /// Deletes the inline policy and the role; a missing role is not an error.
    fn delete_role(
        &self,
        role: &BatchRole,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// A CloudFormation WaitConditionHandle.
pub trait WaitSignal {
    fn signal(
        &self,
        handle_url: &str,
        signal: &WaitConditionSignal,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// The body PUT to a WaitConditionHandle. Note `FAILURE`, not `FAILED`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WaitConditionSignal {
    #[serde(rename = "Status")]
    pub status: WaitStatus,
    #[serde(rename = "UniqueId")]
    pub unique_id: String,
    #[serde(rename = "Data")]
    pub data: String,
    #[serde(rename = "Reason")]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WaitStatus {
    Success,
    Failure,
}

/// Batch Operations jobs after creation.
pub trait JobControl {
    fn job_status(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
    fn cancel_job(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
    /// The job's tags (`GetJobTagging`).
    fn job_tags(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> impl Future<Output = Result<Vec<crate::job::S3Tag>, AwsCallError>> + Send;
}

/// Job states after which nothing more happens.
pub fn is_terminal_job_status(status: &str) -> bool {
    matches!(status, "Complete" | "Failed" | "Cancelled")
}

/// A state object that could not be put back after a failure (#16 item 6): which object, what
/// it now means, and why the delete or restore failed. Flows carry it in the error they return,
/// so it reaches the function's log and, where that error is e-mailed, the e-mail; a failed
/// undo is never swallowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("s3://<state bucket>/{key} could not be {action} ({cause}): {consequence}")]
pub struct UndoFailure {
    pub key: String,
    /// `deleted`, `restored` or `written`.
    pub action: &'static str,
    /// What the object left in place means, and what a person can do about it.
    pub consequence: String,
    pub cause: AwsCallError,
}

/// Every undo failure of one step, joined for an error message.
pub fn describe_undo_failures(failures: &[UndoFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Deletes `key` to undo a step that failed; `consequence` says what the object means if it
/// stays.
pub async fn undo_by_delete<S: StateStore + Sync>(
    store: &S,
    key: &str,
    consequence: impl Into<String>,
) -> Result<(), UndoFailure> {
    undo_with_retries(|| store.delete(key))
        .await
        .map_err(|cause| UndoFailure {
            key: key.to_string(),
            action: "deleted",
            consequence: consequence.into(),
            cause,
        })
}

/// An undo is asked again while S3 answers throttling or 5xx (the SDK retried each call
/// already): what it leaves behind otherwise needs a person.
const UNDO_ATTEMPTS: u32 = 3;

async fn undo_with_retries<F, Fut>(mut step: F) -> Result<(), AwsCallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), AwsCallError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match step().await {
            Err(cause) if cause.is_retryable() && attempt < UNDO_ATTEMPTS => {}
            done => return done,
        }
    }
}

/// Puts `key` back as it was before a step that failed: `before` (`None`: it did not exist).
pub async fn undo_by_restore<S: StateStore + Sync>(
    store: &S,
    key: &str,
    before: Option<Vec<u8>>,
    consequence: impl Into<String>,
) -> Result<(), UndoFailure> {
    let put_back = undo_with_retries(|| {
        let before = before.clone();
        async move {
            match before {
                Some(bytes) => store.put(key, bytes).await,
                None => store.delete(key).await,
            }
        }
    })
    .await;
    put_back.map_err(|cause| UndoFailure {
        key: key.to_string(),
        action: "restored",
        consequence: consequence.into(),
        cause,
    })
}
