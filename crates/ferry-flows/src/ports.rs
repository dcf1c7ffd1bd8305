//! The small set of AWS calls the stack's workflows make, as traits: the bottom of the flows with
//! [`crate::aws_error`], importing no workflow. `ferry-aws` implements them with the SDK; tests
//! implement them against moto or in memory. A port only one flow uses is declared beside it
//! (`report::jobs`, `inventory::run::InventoryObjects`, `grant::ResourcePolicies`,
//! `large_object::copy::MultipartCopyApi`, `large_object::invocation::CopierPorts`).

use std::future::Future;
use std::time::Duration;

use ferry_plan::approval::ManifestPin;
use ferry_plan::job::CreateJobRequest;
use ferry_plan::policy::batch_role::BatchRole;

use crate::aws_error::AwsCallError;

/// The manifest object as HeadObject sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestHead {
    /// As S3 returns it (quoted); the launcher strips the quotes.
    pub etag: String,
    /// From `x-amz-bucket-region`, when S3 said it.
    pub bucket_region: Option<String>,
    /// `x-amz-version-id`, in a bucket with versioning (on or suspended: `null`).
    pub version_id: Option<String>,
    /// Content-Length.
    pub size: Option<u64>,
    /// Last-Modified, RFC 3339 (`2026-11-24T02:15:00Z`).
    pub last_modified: Option<String>,
}

impl ManifestHead {
    /// The pin of what HeadObject answered; `None` without an ETag (an answer from another
    /// Region has none). A `null` version id (an object written while versioning was off) names
    /// no version.
    pub fn pin(&self) -> Option<ManifestPin> {
        let etag = self.etag.trim().trim_matches('"');
        (!etag.is_empty()).then(|| ManifestPin {
            etag: etag.to_string(),
            version_id: self
                .version_id
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty() && *v != "null")
                .map(str::to_string),
            size: self.size,
            last_modified: self.last_modified.clone(),
        })
    }
}

/// The AWS calls a launch makes: the port the launcher is written against.
pub trait LaunchApi {
    fn head_manifest(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<ManifestHead, AwsCallError>> + Send;

    /// The manifest object whole, only if its ETag is still `etag` (`If-Match`, so what is read
    /// is what the job gets): an inventory's `manifest.json`, read to see what it lists before a
    /// job is given it. The adapter bounds the size.
    fn get_manifest(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> impl Future<Output = Result<Vec<u8>, AwsCallError>> + Send;

    /// Returns the job id.
    fn create_job(
        &self,
        request: &CreateJobRequest,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;

    /// Waits between retries (a real sleep in production, nothing in tests).
    fn pause(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The reads preflight makes, with the destination account's credentials.
pub trait PreflightApi: LaunchApi {
    /// The role's trust policy and its inline policy `policy_name` (as JSON text), or `None`
    /// when the role doesn't exist.
    fn role_documents(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> impl Future<Output = Result<Option<(String, Option<String>)>, AwsCallError>> + Send;
    /// The region S3 names for the bucket (`x-amz-bucket-region`, present even on a 403).
    fn bucket_region(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsCallError>> + Send;
    /// The bucket's object ownership setting, `None` when none is set.
    fn object_ownership(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsCallError>> + Send;
    fn describe_key(
        &self,
        key_arn: &str,
    ) -> impl Future<Output = Result<KeyInfo, AwsCallError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub enabled: bool,
    /// `CUSTOMER` or `AWS`.
    pub manager: String,
}

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
/// (`crate::stack_status`.)
pub trait StackStatusApi {
    /// `DescribeStacks` with `StackName` = `stack_id` (the stack's ARN, as the template pins it
    /// in `FERRY_STACK_ID`): the stack's `StackStatus`, e.g. `UPDATE_IN_PROGRESS`. A deleted
    /// stack is still described by its id (`DELETE_COMPLETE`).
    fn stack_status(
        &self,
        stack_id: &str,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
}

/// The inventory bucket's event delivery (the stack's `Custom::FerryInventoryTrigger`,
/// `crate::custom_resources`).
pub trait BucketEventDelivery {
    /// Turns on EventBridge delivery for `bucket`, owned by `expected_owner`, keeping every other
    /// notification of its configuration as it is: `PutBucketNotificationConfiguration` replaces
    /// the whole configuration (S3 API Reference), so it is read first and written back whole. `true` when Ferry turned it on now.
    fn enable_eventbridge_delivery(
        &self,
        bucket: &str,
        expected_owner: &str,
    ) -> impl Future<Output = Result<bool, AwsCallError>> + Send;
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
    ) -> impl Future<Output = Result<Vec<ferry_plan::job::S3Tag>, AwsCallError>> + Send;
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
