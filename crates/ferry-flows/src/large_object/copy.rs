//! One task's multipart server-side copy, written against [`MultipartCopyApi`], and the
//! Batch Operations result it ends in.
//!
//! Steps: HeadObject on the source (refusing archived and SSE-C objects), the part plan, an
//! open upload to resume or a new one (metadata, content headers, tags, SSE-KMS and Bucket Key,
//! storage class and checksum algorithm set on it, since a multipart copy copies only bytes),
//! UploadPartCopy for the missing parts with bounded parallelism, each pinned to the source's
//! ETag with `x-amz-copy-source-if-match` so no part can come from other content,
//! CompleteMultipartUpload, then a check of the copy (size, encryption, and a full-object
//! checksum where both sides have one).
//!
//! Results: throttling, 5xx and running out of time are `TemporaryFailure` and leave the
//! upload open for the retry to resume ([`super::resume`]); everything else that fails is
//! `PermanentFailure` and aborts the upload, so nothing is left behind.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::parts::{CopiedPart, PartPlan, PartRange, PartSizing, UploadSummary, GIB, MIB};
use super::resume::{check_parts, triage, SessionIdentity};
use super::task::{CopyTask, ResultCode, TaskResult};
use crate::aws_error::{AwsCallError, AwsErrorKind};
use ferry_plan::large_object_arguments::{
    LargeObjectCopyArguments, MetadataArgument, TagsArgument,
};

/// Content headers a copy carries (the multipart upload sets them; parts carry only bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_type: Option<String>,
}

/// A checksum S3 reports for a whole object (`ChecksumType: FULL_OBJECT`), so two objects'
/// values are comparable whatever their part layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullObjectChecksum {
    /// `CRC64NVME`, `CRC32`, `CRC32C`.
    pub algorithm: String,
    pub value: String,
}

/// The source object as HeadObject describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceObject {
    pub size: u64,
    /// As S3 returns it (quoted).
    pub etag: String,
    pub last_modified_ms: Option<i64>,
    pub version_id: Option<String>,
    pub storage_class: Option<String>,
    /// `x-amz-archive-status` (Intelligent-Tiering archive tiers).
    pub archive_status: Option<String>,
    /// `x-amz-restore`, e.g. `ongoing-request="false", expiry-date="…"`.
    pub restore: Option<String>,
    /// Set for SSE-C objects.
    pub sse_customer_algorithm: Option<String>,
    pub kms_key_id: Option<String>,
    pub headers: ContentHeaders,
    pub user_metadata: BTreeMap<String, String>,
    pub full_object_checksum: Option<FullObjectChecksum>,
}

/// CreateMultipartUpload's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub bucket: String,
    pub key: String,
    pub expected_bucket_owner: String,
    pub storage_class: Option<String>,
    pub kms_key_arn: Option<String>,
    pub bucket_key_enabled: bool,
    pub checksum_algorithm: Option<String>,
    pub headers: ContentHeaders,
    pub user_metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// One UploadPartCopy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartCopy {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub expected_bucket_owner: String,
    pub part: PartRange,
    pub source_bucket: String,
    pub source_key: String,
    pub source_version_id: Option<String>,
    pub expected_source_owner: String,
    pub source_if_match: String,
}

/// CompleteMultipartUpload's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteUpload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub expected_bucket_owner: String,
    pub checksum_algorithm: Option<String>,
    pub parts: Vec<CopiedPart>,
}

/// What CompleteMultipartUpload answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletedObject {
    pub etag: String,
    pub version_id: Option<String>,
}

/// The copy as HeadObject describes it, for the check after completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationObject {
    pub size: u64,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
    pub full_object_checksum: Option<FullObjectChecksum>,
}

/// The S3 calls a large-object copy makes (as the Batch Operations role): the port the copy is
/// written against. `ferry-aws` implements it with the SDK; tests with moto or with faults.
pub trait MultipartCopyApi: Send + Sync {
    fn head_source(
        &self,
        task: &CopyTask,
        expected_owner: &str,
    ) -> impl Future<Output = Result<SourceObject, AwsCallError>> + Send;
    fn source_tags(
        &self,
        task: &CopyTask,
        expected_owner: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, AwsCallError>> + Send;
    /// Uploads whose key is exactly `key`.
    fn list_uploads(
        &self,
        bucket: &str,
        key: &str,
        expected_owner: &str,
    ) -> impl Future<Output = Result<Vec<UploadSummary>, AwsCallError>> + Send;
    /// Every part of the upload (all pages).
    fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        expected_owner: &str,
    ) -> impl Future<Output = Result<Vec<CopiedPart>, AwsCallError>> + Send;
    /// Returns the upload id.
    fn create_upload(
        &self,
        request: &NewUpload,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
    fn copy_part(
        &self,
        request: &PartCopy,
    ) -> impl Future<Output = Result<CopiedPart, AwsCallError>> + Send;
    fn complete_upload(
        &self,
        request: &CompleteUpload,
    ) -> impl Future<Output = Result<CompletedObject, AwsCallError>> + Send;
    fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        expected_owner: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
    fn head_destination(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        expected_owner: &str,
    ) -> impl Future<Output = Result<DestinationObject, AwsCallError>> + Send;
}

/// The invocation's time: how much is left, and waiting between retries.
pub trait CopyClock: Send + Sync {
    fn remaining(&self) -> Duration;
    fn pause(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// How hard one invocation pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyTuning {
    pub sizing: PartSizing,
    /// UploadPartCopy requests in flight at once.
    pub parallelism: usize,
    /// No new part is started with less time left than this: parts in flight finish, the
    /// answer is sent, and nothing is cut off mid-request by the Lambda timeout.
    pub reserve: Duration,
    /// Attempts per part for throttling and 5xx (on top of the SDK's own retries).
    pub part_attempts: u32,
    pub first_pause: Duration,
}

impl Default for CopyTuning {
    /// 16 parts of 256 MiB in flight; 2 minutes kept back, in which a part of the largest
    /// planned size (525 MiB at 5 TiB) finishes at ≥ 5 MB/s.
    fn default() -> Self {
        Self {
            sizing: PartSizing::default(),
            parallelism: 16,
            reserve: Duration::from_secs(120),
            part_attempts: 4,
            first_pause: Duration::from_millis(500),
        }
    }
}

/// Who the copier acts as, for failure messages that say who must fix what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyContext {
    pub role_arn: String,
    /// The batch-role session the copy runs in: only uploads it initiated are resumed.
    pub session: SessionIdentity,
    pub arguments: LargeObjectCopyArguments,
    pub tuning: CopyTuning,
}

/// Counts for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub parts_total: u32,
    pub parts_reused: u32,
    pub parts_copied: u32,
    pub part_retries: u32,
    pub upload_id: Option<String>,
    pub aborted: Vec<String>,
    /// Uploads on the key this session did not initiate, left alone.
    pub foreign: Vec<String>,
}

/// Copies one task and says how it went. Never panics; every path ends in a result.
pub async fn copy_task<A: MultipartCopyApi, C: CopyClock>(
    api: &A,
    clock: &C,
    ctx: &CopyContext,
    task: &CopyTask,
) -> (TaskResult, CopyStats) {
    let mut stats = CopyStats::default();
    let result = match run(api, clock, ctx, task, &mut stats).await {
        Ok(message) => TaskResult::new(&task.task_id, ResultCode::Succeeded, message),
        Err(failure) => TaskResult::new(&task.task_id, failure.code, failure.message),
    };
    (result, stats)
}

struct Failure {
    code: ResultCode,
    message: String,
}

impl Failure {
    fn temporary(message: impl Into<String>) -> Self {
        Self {
            code: ResultCode::TemporaryFailure,
            message: message.into(),
        }
    }
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            code: ResultCode::PermanentFailure,
            message: message.into(),
        }
    }
}

/// Which call failed: decides which account's policy a refusal points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    HeadSource,
    SourceTags,
    ListUploads,
    CreateUpload,
    CopyPart,
    Complete,
    Verify,
}

impl Step {
    fn action(self) -> &'static str {
        match self {
            Step::HeadSource => "s3:GetObject (HeadObject) on the source",
            Step::SourceTags => "s3:GetObjectTagging on the source",
            Step::ListUploads => {
                "s3:ListBucketMultipartUploads / s3:ListMultipartUploadParts on the destination"
            }
            Step::CreateUpload => "s3:PutObject (CreateMultipartUpload) on the destination",
            Step::CopyPart => {
                "UploadPartCopy (s3:GetObject on the source, s3:PutObject on the destination)"
            }
            Step::Complete => "s3:PutObject (CompleteMultipartUpload) on the destination",
            Step::Verify => "s3:GetObject (HeadObject) on the destination",
        }
    }
}

async fn run<A: MultipartCopyApi, C: CopyClock>(
    api: &A,
    clock: &C,
    ctx: &CopyContext,
    task: &CopyTask,
    stats: &mut CopyStats,
) -> Result<String, Failure> {
    let args = &ctx.arguments;
    let source_text = source_text(task);
    let source = api
        .head_source(task, &args.source_account)
        .await
        .map_err(|e| describe_failure(ctx, task, Step::HeadSource, &e, None))?;
    refuse_uncopyable(&source, &source_text)?;
    let plan = PartPlan::for_size(source.size, &ctx.tuning.sizing)
        .map_err(|e| Failure::permanent(format!("{source_text}: {e}")))?;
    stats.parts_total = plan.part_count;
    let dest_key = args.destination_key(&task.key);
    let dest = (
        &args.destination_bucket,
        &dest_key,
        &args.destination_account,
    );

    // Resume: an upload this task's session left open, or a new one. Uploads of anyone else
    // are foreign: not resumed, not completed, not aborted (see `resume`).
    let uploads = api
        .list_uploads(dest.0, dest.1, dest.2)
        .await
        .map_err(|e| describe_failure(ctx, task, Step::ListUploads, &e, None))?;
    let sorted = triage(&uploads, source.last_modified_ms, &ctx.session);
    stats.foreign = sorted.foreign.iter().map(|u| u.upload_id.clone()).collect();
    let foreign_note = foreign_note(&sorted.foreign);
    for stale in &sorted.stale {
        abort(api, ctx, &dest_key, &stale.upload_id, stats).await;
    }
    let mut resumed: Option<(String, Vec<CopiedPart>)> = None;
    for candidate in &sorted.candidates {
        let listed = api
            .list_parts(dest.0, dest.1, &candidate.upload_id, dest.2)
            .await
            .map_err(|e| describe_failure(ctx, task, Step::ListUploads, &e, None))?;
        match check_parts(&plan, &listed) {
            Ok(parts) if resumed.is_none() => resumed = Some((candidate.upload_id.clone(), parts)),
            Ok(_) => abort(api, ctx, &dest_key, &candidate.upload_id, stats).await,
            Err(why) => {
                tracing_note(&format!(
                    "upload {} doesn't fit the plan ({why}): aborting it",
                    candidate.upload_id
                ));
                abort(api, ctx, &dest_key, &candidate.upload_id, stats).await;
            }
        }
    }
    let (upload_id, mut done) = match resumed {
        Some(found) => found,
        None => {
            let request = new_upload(api, ctx, task, &source, &dest_key).await?;
            let id = api
                .create_upload(&request)
                .await
                .map_err(|e| describe_failure(ctx, task, Step::CreateUpload, &e, None))?;
            (id, Vec::new())
        }
    };
    stats.upload_id = Some(upload_id.clone());
    stats.parts_reused = done.len() as u32;

    // Parts, in order, at most `parallelism` at once.
    let mut pending: VecDeque<PartRange> = plan
        .parts()
        .filter(|p| !done.iter().any(|d| d.part_number == p.part_number))
        .collect();
    let mut in_flight = FuturesUnordered::new();
    let mut failed: Option<AwsCallError> = None;
    let mut out_of_time = false;
    loop {
        while failed.is_none() && !out_of_time && in_flight.len() < ctx.tuning.parallelism.max(1) {
            let Some(part) = pending.pop_front() else {
                break;
            };
            if clock.remaining() < ctx.tuning.reserve {
                pending.push_front(part);
                out_of_time = true;
                break;
            }
            let request = PartCopy {
                bucket: args.destination_bucket.clone(),
                key: dest_key.clone(),
                upload_id: upload_id.clone(),
                expected_bucket_owner: args.destination_account.clone(),
                part,
                source_bucket: task.bucket.clone(),
                source_key: task.key.clone(),
                source_version_id: task.version_id.clone(),
                expected_source_owner: args.source_account.clone(),
                source_if_match: source.etag.clone(),
            };
            in_flight.push(copy_part_with_retries(api, clock, &ctx.tuning, request));
        }
        match in_flight.next().await {
            None => break,
            Some((Ok(part), retries)) => {
                stats.part_retries += retries;
                stats.parts_copied += 1;
                done.push(part);
            }
            Some((Err(e), retries)) => {
                stats.part_retries += retries;
                // Let the parts in flight finish (their work is kept), start no more.
                failed.get_or_insert(e);
            }
        }
    }
    let progress = format!(
        "{} of {} parts ({}) in upload {upload_id}",
        done.len(),
        plan.part_count,
        bytes_text(done.len() as u64 * plan.part_size).replace(".0 ", " ")
    );
    if let Some(e) = failed {
        let failure = describe_failure(ctx, task, Step::CopyPart, &e, Some(&source));
        if failure.code == ResultCode::PermanentFailure || source_changed(&e) {
            abort(api, ctx, &dest_key, &upload_id, stats).await;
            return Err(Failure {
                message: format!("{} (upload aborted)", failure.message),
                ..failure
            });
        }
        return Err(Failure::temporary(format!(
            "{}; kept {progress} for the retry to resume",
            failure.message
        )));
    }
    if out_of_time || !pending.is_empty() {
        return Err(Failure::temporary(format!(
            "out of time for this invocation after {progress}: the retry resumes the upload"
        )));
    }

    done.sort_by_key(|p| p.part_number);
    let completed = api
        .complete_upload(&CompleteUpload {
            bucket: args.destination_bucket.clone(),
            key: dest_key.clone(),
            upload_id: upload_id.clone(),
            expected_bucket_owner: args.destination_account.clone(),
            checksum_algorithm: upload_checksum_algorithm(args),
            parts: done,
        })
        .await;
    let completed = match completed {
        Ok(c) => c,
        Err(e) => {
            let failure = describe_failure(ctx, task, Step::Complete, &e, Some(&source));
            if failure.code == ResultCode::PermanentFailure {
                abort(api, ctx, &dest_key, &upload_id, stats).await;
            }
            return Err(failure);
        }
    };
    let copy = api
        .head_destination(dest.0, dest.1, completed.version_id.as_deref(), dest.2)
        .await
        .map_err(|e| describe_failure(ctx, task, Step::Verify, &e, Some(&source)))?;
    let verified = verify(ctx, &source, &copy).map_err(|why| {
        Failure::permanent(format!("copy of {source_text} failed its check: {why}"))
    })?;
    Ok(format!(
        "copied {source_text} ({}) to s3://{}/{dest_key}{} in {} parts of {} ({} resumed); {verified}{foreign_note}",
        bytes_text(source.size),
        args.destination_bucket,
        completed
            .version_id
            .as_deref()
            .map(|v| format!(" version {v}"))
            .unwrap_or_default(),
        plan.part_count,
        bytes_text(plan.part_size),
        stats.parts_reused,
    ))
}

/// `; left N upload(s) of other initiators alone (…)`, naming whom S3 reported, or nothing.
fn foreign_note(foreign: &[UploadSummary]) -> String {
    if foreign.is_empty() {
        return String::new();
    }
    let mut initiators: Vec<&str> = foreign
        .iter()
        .map(|u| u.initiator_id.as_deref().unwrap_or("no initiator"))
        .collect();
    initiators.sort_unstable();
    initiators.dedup();
    format!(
        "; left {} upload(s) on the key alone, not initiated by this session (initiator: {})",
        foreign.len(),
        initiators.join(", ")
    )
}

/// Archived and SSE-C objects can't be copied: say so once, not 10,000 times.
fn refuse_uncopyable(source: &SourceObject, source_text: &str) -> Result<(), Failure> {
    if let Some(alg) = &source.sse_customer_algorithm {
        return Err(Failure::permanent(format!(
            "{source_text} is encrypted with a customer-provided key (SSE-C, {alg}): S3 can't copy it \
             without that key, and Ferry never holds one; copy it with the key by other means"
        )));
    }
    let restored = source
        .restore
        .as_deref()
        .is_some_and(|r| r.contains("ongoing-request=\"false\""));
    let archived_class = matches!(
        source.storage_class.as_deref(),
        Some("GLACIER" | "DEEP_ARCHIVE")
    );
    if (archived_class || source.archive_status.is_some()) && !restored {
        let class = source
            .archive_status
            .clone()
            .or_else(|| source.storage_class.clone())
            .unwrap_or_default();
        return Err(Failure::permanent(format!(
            "{source_text} is archived ({class}){}: restore it (RestoreObject) in the source account, then run the \
             task again",
            if source.restore.is_some() {
                ", its restore is still in progress"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

async fn new_upload<A: MultipartCopyApi>(
    api: &A,
    ctx: &CopyContext,
    task: &CopyTask,
    source: &SourceObject,
    dest_key: &str,
) -> Result<NewUpload, Failure> {
    let args = &ctx.arguments;
    let (headers, user_metadata) = match &args.metadata {
        MetadataArgument::Copy => (source.headers.clone(), source.user_metadata.clone()),
        MetadataArgument::Replace(m) => (
            ContentHeaders {
                cache_control: m.cache_control.clone(),
                content_disposition: m.content_disposition.clone(),
                content_encoding: m.content_encoding.clone(),
                content_language: m.content_language.clone(),
                content_type: m.content_type.clone(),
            },
            m.user_metadata.clone(),
        ),
    };
    let tags = match &args.tags {
        TagsArgument::Copy => api
            .source_tags(task, &args.source_account)
            .await
            .map_err(|e| describe_failure(ctx, task, Step::SourceTags, &e, Some(source)))?,
        TagsArgument::Remove => BTreeMap::new(),
        TagsArgument::Replace(tags) => tags.clone(),
    };
    Ok(NewUpload {
        bucket: args.destination_bucket.clone(),
        key: dest_key.to_string(),
        expected_bucket_owner: args.destination_account.clone(),
        storage_class: args.storage_class.clone(),
        kms_key_arn: args.kms_key_arn.clone(),
        bucket_key_enabled: args.bucket_key_enabled,
        checksum_algorithm: upload_checksum_algorithm(args),
        headers,
        user_metadata,
        tags,
    })
}

/// The spec's checksum algorithm, upper-cased as S3 spells it.
fn upload_checksum_algorithm(args: &LargeObjectCopyArguments) -> Option<String> {
    args.checksum_algorithm
        .as_ref()
        .map(|a| a.to_ascii_uppercase())
}

/// One part, retried on throttling and 5xx while time allows. Returns the retries made.
async fn copy_part_with_retries<A: MultipartCopyApi, C: CopyClock>(
    api: &A,
    clock: &C,
    tuning: &CopyTuning,
    request: PartCopy,
) -> (Result<CopiedPart, AwsCallError>, u32) {
    let mut attempt = 1;
    loop {
        match api.copy_part(&request).await {
            Ok(mut part) => {
                part.size = Some(request.part.size);
                return (Ok(part), attempt - 1);
            }
            Err(e) => {
                let retryable = e.is_retryable();
                let pause = tuning.first_pause.saturating_mul(1 << (attempt - 1).min(6));
                if !retryable
                    || attempt >= tuning.part_attempts
                    || clock.remaining() < tuning.reserve + pause
                {
                    return (Err(e), attempt - 1);
                }
                clock.pause(pause).await;
                attempt += 1;
            }
        }
    }
}

async fn abort<A: MultipartCopyApi>(
    api: &A,
    ctx: &CopyContext,
    key: &str,
    upload_id: &str,
    stats: &mut CopyStats,
) {
    let args = &ctx.arguments;
    match api
        .abort_upload(
            &args.destination_bucket,
            key,
            upload_id,
            &args.destination_account,
        )
        .await
    {
        Ok(()) => stats.aborted.push(upload_id.to_string()),
        // Not fatal to the answer: the lifecycle rule is the backstop, and the log says which.
        Err(e) => tracing_note(&format!(
            "AbortMultipartUpload s3://{}/{key} {upload_id} failed: {e}",
            args.destination_bucket
        )),
    }
}

/// Core has no logger; the function logs results. This keeps a trace on stderr in tests only.
fn tracing_note(_message: &str) {
    #[cfg(test)]
    eprintln!("{_message}");
}

fn source_changed(e: &AwsCallError) -> bool {
    e.code == "PreconditionFailed" || e.code == "HTTP 412"
}

/// Size always; SSE-KMS key and Bucket Key when asked for; full-object checksums when both
/// objects have one of the same algorithm.
fn verify(
    ctx: &CopyContext,
    source: &SourceObject,
    copy: &DestinationObject,
) -> Result<String, String> {
    let args = &ctx.arguments;
    if copy.size != source.size {
        return Err(format!(
            "the copy is {} bytes, the source {}",
            copy.size, source.size
        ));
    }
    let mut checked = vec!["size"];
    if let Some(wanted) = &args.kms_key_arn {
        match &copy.kms_key_id {
            Some(actual) if same_kms_key(actual, wanted) => checked.push("SSE-KMS key"),
            other => {
                return Err(format!(
                    "the copy is encrypted with {other:?}, not {wanted}"
                ))
            }
        }
        // Bucket Key only changes KMS request costs, not what is stored: noted, not failed.
        if args.bucket_key_enabled {
            checked.push(if copy.bucket_key_enabled {
                "Bucket Key"
            } else {
                "(Bucket Key asked for, not reported by S3)"
            });
        }
    }
    match (&source.full_object_checksum, &copy.full_object_checksum) {
        (Some(s), Some(c)) if s.algorithm == c.algorithm => {
            if s.value != c.value {
                return Err(format!(
                    "{} checksum {} differs from the source's {}",
                    c.algorithm, c.value, s.value
                ));
            }
            checked.push("full-object checksum");
        }
        _ => {}
    }
    Ok(format!("verified {}", checked.join(", ")))
}

/// S3 reports the key's full ARN; the argument may be an ARN or (same account) an id.
fn same_kms_key(actual: &str, wanted: &str) -> bool {
    actual == wanted
        || actual.ends_with(&format!("/{wanted}"))
        || wanted.ends_with(&format!("/{actual}"))
}

fn source_text(task: &CopyTask) -> String {
    match &task.version_id {
        Some(v) => format!("s3://{}/{} (version {v})", task.bucket, task.key),
        None => format!("s3://{}/{}", task.bucket, task.key),
    }
}

fn bytes_text(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// The result for a failed call: temporary for throttling and 5xx, permanent otherwise, with
/// which service refused and which account must fix what.
fn describe_failure(
    ctx: &CopyContext,
    task: &CopyTask,
    step: Step,
    e: &AwsCallError,
    source: Option<&SourceObject>,
) -> Failure {
    let args = &ctx.arguments;
    let what = format!("{} for {}", step.action(), source_text(task));
    let role = &ctx.role_arn;
    let text = format!("{} {}", e.code, e.message);
    if e.is_retryable() {
        return Failure::temporary(format!("{what}: {e} (throttled or a server error)"));
    }
    if e.code == "NoSuchUpload" {
        return Failure::temporary(format!(
            "{what}: the multipart upload is gone (aborted by a lifecycle rule or another attempt); the retry starts \
             a new one"
        ));
    }
    if source_changed(e) {
        return Failure::temporary(format!(
            "{what}: the source object changed during the copy (its ETag no longer matches); the retry copies its \
             current content"
        ));
    }
    if e.code == "InvalidObjectState" {
        return Failure::permanent(format!(
            "{what}: {e}. The object is archived: restore it in the source account, then run the task again"
        ));
    }
    let kms = text.contains("kms:") || text.contains("KMS") || e.code.starts_with("KMS.");
    if e.kind == AwsErrorKind::AccessDenied || e.code.starts_with("KMS.") {
        if kms {
            let source_key = source.and_then(|s| s.kms_key_id.clone());
            let points_at_source = source_key
                .as_deref()
                .is_some_and(|k| text.contains(k) || text.contains(key_id(k)))
                || (text.contains("kms:Decrypt")
                    && !text.contains("GenerateDataKey")
                    && step == Step::CopyPart
                    && args
                        .kms_key_arn
                        .as_deref()
                        .is_none_or(|k| !text.contains(key_id(k))));
            return Failure::permanent(if points_at_source {
                format!(
                    "{what}: KMS refused ({e}). The source account {} must allow kms:Decrypt for {role} in the key \
                     policy of {} (with kms:ViaService s3), and the object must use that customer managed key \
                     (aws/s3 can't be shared); `ferry grant` in the source account writes the statement",
                    args.source_account,
                    source_key.as_deref().unwrap_or("the source objects' key")
                )
            } else {
                format!(
                    "{what}: KMS refused ({e}). The destination account {} must allow kms:GenerateDataKey and \
                     kms:Decrypt for {role} on {} (key policy and the role's policy; multipart copies need both)",
                    args.destination_account,
                    args.kms_key_arn.as_deref().unwrap_or("the destination bucket's default key")
                )
            });
        }
        let source_side = matches!(step, Step::HeadSource | Step::SourceTags)
            || (step == Step::CopyPart
                && text.contains(&task.bucket)
                && !text.contains(&args.destination_bucket));
        return Failure::permanent(if source_side {
            format!(
                "{what}: S3 refused ({e}). The source account {} must allow {role} to read s3://{}/* in the bucket \
                 policy (s3:GetObject{}{}); `ferry grant` in the source account writes it",
                args.source_account,
                task.bucket,
                if task.version_id.is_some() { ", s3:GetObjectVersion" } else { "" },
                if matches!(args.tags, TagsArgument::Copy) { ", s3:GetObjectTagging" } else { "" },
            )
        } else if step == Step::CopyPart {
            format!(
                "{what}: S3 refused ({e}). Either the source account {} must allow {role} s3:GetObject on s3://{}/* \
                 in its bucket policy, or the destination account {} must allow it s3:PutObject on s3://{}/{}*",
                args.source_account,
                task.bucket,
                args.destination_account,
                args.destination_bucket,
                args.destination_folder()
            )
        } else {
            format!(
                "{what}: S3 refused ({e}). The destination account {} must allow {role} s3:PutObject{} and \
                 s3:AbortMultipartUpload, s3:ListBucketMultipartUploads, s3:ListMultipartUploadParts on s3://{}/{}* \
                 (the stack's role policy; check for a Deny in the bucket policy)",
                args.destination_account,
                if matches!(args.tags, TagsArgument::Remove) { "" } else { ", s3:PutObjectTagging" },
                args.destination_bucket,
                args.destination_folder()
            )
        });
    }
    match (step, e.kind) {
        (Step::HeadSource, AwsErrorKind::NotFound) => Failure::permanent(format!(
            "{what}: no such {} ({e})",
            if task.version_id.is_some() { "object version" } else { "object" }
        )),
        (Step::HeadSource, AwsErrorKind::BadRequest) => Failure::permanent(format!(
            "{what}: S3 refused to describe it ({e}); this is how S3 answers for an object encrypted with a \
             customer-provided key (SSE-C), which can't be copied without that key"
        )),
        (_, AwsErrorKind::WrongRegion) => Failure::permanent(format!(
            "{what}: the bucket is in another region than the function ({e}); run the job and function in the \
             destination region"
        )),
        _ => Failure::permanent(format!("{what}: {e}")),
    }
}

/// `…:key/<id>` → `<id>`, for matching messages that quote either form.
fn key_id(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
