//! An S3 Batch Operations emulator: runs the `CreateJob` request the code under test sent (as
//! the SDK saw it, [`CreateJobInput`]) against the moto server, as the job's role, through the
//! authorizing gateway, following AWS's documented rules. moto implements no S3 Control jobs: a
//! job created through the gateway ([`crate::s3control`]) is moved through its statuses there, so
//! DescribeJob, ListJobs and UpdateJobStatus see what AWS would.
//!
//! What it does, as AWS documents it (S3 User Guide, "S3 Batch Operations" and its pages on
//! granting permissions, creating a job, Copy, Invoke Lambda and completion reports):
//! - assumes the role as `batchoperations.s3.amazonaws.com`: the trust policy must let that
//!   service assume it; a trust policy that needs `aws:SourceAccount`/`aws:SourceArn` is not
//!   satisfied, since AWS does not document that Batch Operations sends them;
//! - reads the manifest as the role: its ETag must be the request's; a CSV manifest stored with
//!   SSE-KMS is refused ("Creating a job"); an inventory `manifest.json` is followed to its CSV
//!   data files; keys are URL-decoded; an empty version id fails its task;
//! - per task, `S3PutObjectCopy`: HeadObject (objects over 5 GiB, archived and SSE-C objects
//!   fail), GetObjectTagging when the tags are copied, then CopyObject with the operation's
//!   settings, the key `<TargetKeyPrefix>/<key>`; `LambdaInvoke`: the schema 2.0 payload to the
//!   given handler, `TemporaryFailure` retried;
//! - a job of at least 1,000 tasks with more than half failed stops as `Failed`;
//!   `ConfirmationRequired` leaves it `Suspended` (after Preparing: role, manifest, the Copy
//!   target's Region) until [`EmulatedJob::confirm`];
//! - writes the completion report under `<prefix>/job-<id>/` as the role, SSE-S3, in AWS's
//!   layout (`manifest.json` and `results/<name>.csv`), and gives the `DescribeJob` output and
//!   the `JobStatusChanged` event job-monitor receives.
//!
//! It is independent of Ferry's code: it reads manifests with the `csv` crate and decodes keys
//! itself, so a manifest Ferry writes wrongly fails here as it would on AWS.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, MetadataDirective, ServerSideEncryption, StorageClass, TaggingDirective,
};
use aws_sdk_s3control::operation::create_job::CreateJobInput;
use aws_sdk_s3control::operation::describe_job::DescribeJobOutput;
use aws_sdk_s3control::operation::get_job_tagging::GetJobTaggingOutput;
use aws_sdk_s3control::types::{
    JobDescriptor, JobFailure, JobManifestFormat, JobProgressSummary, JobReportScope, JobStatus,
    S3CopyObjectOperation, S3SseAlgorithm,
};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

pub use crate::accounts::job_id_for;
use crate::inventory::md5_hex;
use crate::moto::{s3_client, MotoServer};
use crate::s3control::{gateway_job, publish_job};

/// Copy handles objects up to 5 GiB (S3 User Guide, "Copy objects").
pub const MAX_COPY_BYTES: i64 = 5 * 1024 * 1024 * 1024;
/// The failure rule: at least this many tasks run, more than half failed.
pub const FAILURE_RULE_MIN_TASKS: u64 = 1000;
const BATCH_OPERATIONS: &str = "batchoperations.s3.amazonaws.com";
/// Attempts per task of a LambdaInvoke job that answers `TemporaryFailure`.
const LAMBDA_ATTEMPTS: u32 = 3;

/// The function a LambdaInvoke job calls: the request payload in, the response out.
pub type LambdaTarget<'a> =
    &'a (dyn Fn(Value) -> Pin<Box<dyn Future<Output = Value> + Send>> + Sync);

/// One task's outcome, as the completion report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    pub bucket: String,
    /// As in the manifest (URL-encoded).
    pub key: String,
    pub version_id: String,
    pub succeeded: bool,
    pub error_code: String,
    pub http_status: u16,
    pub message: String,
}

/// A job the emulator created.
#[derive(Debug, Clone)]
pub struct EmulatedJob {
    pub job_id: String,
    pub account_id: String,
    pub region: String,
    pub input: CreateJobInput,
    pub status: JobStatus,
    pub tasks: Vec<TaskOutcome>,
    pub failure_reasons: Vec<(String, String)>,
    /// The manifest's tasks, read while the job was Preparing, not yet run.
    prepared: Vec<ManifestTask>,
}

impl EmulatedJob {
    pub fn succeeded(&self) -> u64 {
        self.tasks.iter().filter(|t| t.succeeded).count() as u64
    }

    pub fn failed(&self) -> u64 {
        self.tasks.iter().filter(|t| !t.succeeded).count() as u64
    }

    /// Runs a `Suspended` job (UpdateJobStatus to `Ready`).
    /// A job S3 Control created (through the gateway) must have been confirmed there
    /// (UpdateJobStatus `requestedJobStatus=Ready`) by the code under test.
    pub async fn confirm(self, moto: &MotoServer, lambda: Option<LambdaTarget<'_>>) -> Self {
        assert_eq!(
            self.status,
            JobStatus::Suspended,
            "only a suspended job is confirmed"
        );
        if let Some(seen) = gateway_job(moto, &self.account_id, &self.region, &self.job_id).await {
            assert_eq!(
                seen["requestedStatus"], "Ready",
                "job {} was never confirmed with UpdateJobStatus: {seen}",
                self.job_id
            );
        }
        let job = run(moto, self, lambda).await;
        publish(moto, &job).await;
        job
    }

    fn failed_with(mut self, code: &str, reason: String) -> Self {
        self.status = JobStatus::Failed;
        self.failure_reasons.push((code.to_string(), reason));
        self
    }

    /// `DescribeJob`'s answer for this job.
    pub fn describe_job_output(&self) -> DescribeJobOutput {
        let report = self.input.report().cloned();
        let mut descriptor = JobDescriptor::builder()
            .job_id(&self.job_id)
            .job_arn(self.job_arn())
            .status(self.status.clone())
            .set_operation(self.input.operation().cloned())
            .set_manifest(self.input.manifest().cloned())
            .set_report(report)
            .set_role_arn(self.input.role_arn().map(str::to_string))
            .set_description(self.input.description().map(str::to_string))
            .confirmation_required(self.input.confirmation_required().unwrap_or(false))
            .progress_summary(
                JobProgressSummary::builder()
                    .total_number_of_tasks(self.tasks.len() as i64)
                    .number_of_tasks_succeeded(self.succeeded() as i64)
                    .number_of_tasks_failed(self.failed() as i64)
                    .build(),
            );
        for (code, reason) in &self.failure_reasons {
            descriptor = descriptor.failure_reasons(
                JobFailure::builder()
                    .failure_code(code)
                    .failure_reason(reason)
                    .build(),
            );
        }
        DescribeJobOutput::builder().job(descriptor.build()).build()
    }

    /// `GetJobTagging`'s answer: the tags the job was created with.
    pub fn job_tagging_output(&self) -> GetJobTaggingOutput {
        GetJobTaggingOutput::builder()
            .set_tags(Some(self.input.tags().to_vec()))
            .build()
    }

    pub fn job_arn(&self) -> String {
        format!(
            "arn:aws:s3:{}:{}:job/{}",
            self.region, self.account_id, self.job_id
        )
    }

    /// The `JobStatusChanged` event EventBridge delivers for this job's status (CloudTrail's
    /// "AWS Service Event via CloudTrail" shape, as in `events/job-monitor.json`).
    pub fn status_changed_event(&self) -> Value {
        json!({
            "version": "0",
            "id": format!("event-{}", self.job_id),
            "detail-type": "AWS Service Event via CloudTrail",
            "source": "aws.s3",
            "account": self.account_id,
            "time": "2026-12-07T00:00:00Z",
            "region": self.region,
            "resources": [],
            "detail": {
                "eventVersion": "1.08",
                "eventSource": "s3.amazonaws.com",
                "eventName": "JobStatusChanged",
                "awsRegion": self.region,
                "eventType": "AwsServiceEvent",
                "recipientAccountId": self.account_id,
                "serviceEventDetails": {
                    "jobId": self.job_id,
                    "jobArn": self.job_arn(),
                    "status": self.status.as_str(),
                    "failureCodes": self.failure_reasons.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
                    "statusChangeReason": []
                }
            }
        })
    }
}

/// Creates the job `input` describes in `region` and, unless it needs confirmation, runs it.
pub async fn create_job(
    moto: &MotoServer,
    region: &str,
    input: &CreateJobInput,
    lambda: Option<LambdaTarget<'_>>,
) -> EmulatedJob {
    // A job S3 Control created (through the gateway) runs in the Region it was created in.
    let account = input.account_id().unwrap_or_default();
    gateway_job(moto, account, region, &job_id_for(input)).await;
    let job = EmulatedJob {
        job_id: job_id_for(input),
        account_id: input.account_id().unwrap_or_default().to_string(),
        region: region.to_string(),
        input: input.clone(),
        status: JobStatus::Preparing,
        tasks: Vec::new(),
        failure_reasons: Vec::new(),
        prepared: Vec::new(),
    };
    // Preparing: the role is assumed and the manifest read before the job waits for
    // confirmation (S3 User Guide, "Job statuses"), so a bad manifest fails it then.
    let mut job = match prepare(moto, job).await {
        Ok(job) => job,
        Err(failed) => {
            publish(moto, &failed).await;
            return failed;
        }
    };
    if input.confirmation_required() == Some(true) {
        job.status = JobStatus::Suspended;
        publish(moto, &job).await;
        return job;
    }
    let job = run(moto, job, lambda).await;
    publish(moto, &job).await;
    job
}

/// Tells S3 Control (the gateway's job table) where the job is, so DescribeJob, ListJobs and
/// UpdateJobStatus through the gateway see what AWS would. A job that never went through S3
/// Control (a mocked CreateJob) is not there, and that is fine.
async fn publish(moto: &MotoServer, job: &EmulatedJob) {
    let update = json!({
        "status": job.status.as_str(),
        "total": job.tasks.len() + job.prepared.len(),
        "succeeded": job.succeeded(),
        "failed": job.failed(),
        "failureReasons": job.failure_reasons,
    });
    publish_job(moto, &job.account_id, &job.region, &job.job_id, &update).await;
}

/// The role and the manifest; a Copy job also runs in its destination's Region ("Copy jobs must
/// be created in the destination Region", S3 User Guide, "Copy objects").
async fn prepare(moto: &MotoServer, mut job: EmulatedJob) -> Result<EmulatedJob, EmulatedJob> {
    let role_arn = job.input.role_arn().unwrap_or_default().to_string();
    let s3 = match assume_as_batch_operations(moto, &job.region, &role_arn).await {
        Ok(s3) => s3,
        Err(reason) => return Err(job.failed_with("AccessDenied", reason)),
    };
    if let Some(copy) = job.input.operation().and_then(|o| o.s3_put_object_copy()) {
        let bucket = copy
            .target_resource()
            .and_then(|arn| arn.split_once(":::").map(|(_, b)| b.to_string()))
            .unwrap_or_default();
        let admin = moto
            .sdk_config_for_account(&job.account_id, &job.region)
            .await;
        let location = s3_client(&admin)
            .get_bucket_location()
            .bucket(&bucket)
            .send()
            .await
            .ok()
            .and_then(|l| l.location_constraint().map(|c| c.as_str().to_string()))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "us-east-1".to_string());
        if location != job.region {
            let reason = format!(
                "the destination bucket {bucket} is in {location}: a Copy job must be created in the \
                 destination's Region, not {}",
                job.region
            );
            return Err(job.failed_with("InvalidRegion", reason));
        }
    }
    match read_manifest(&s3, &job.input).await {
        Ok(tasks) => {
            job.prepared = tasks;
            Ok(job)
        }
        Err(reason) => Err(job.failed_with("ManifestNotReadable", reason)),
    }
}

async fn run(
    moto: &MotoServer,
    mut job: EmulatedJob,
    lambda: Option<LambdaTarget<'_>>,
) -> EmulatedJob {
    job.status = JobStatus::Active;
    let role_arn = job.input.role_arn().unwrap_or_default().to_string();
    let s3 = match assume_as_batch_operations(moto, &job.region, &role_arn).await {
        Ok(s3) => s3,
        Err(reason) => return job.failed_with("AccessDenied", reason),
    };
    let operation = job.input.operation().cloned();
    let tasks = std::mem::take(&mut job.prepared);
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = match (&task, operation.as_ref()) {
            (Err(bad), _) => bad.clone(),
            (Ok(t), Some(op)) if op.s3_put_object_copy().is_some() => {
                copy(
                    &s3,
                    op.s3_put_object_copy().unwrap_or_else(|| unreachable!()),
                    t,
                )
                .await
            }
            (Ok(t), Some(op)) if op.lambda_invoke().is_some() => {
                let invoke = op.lambda_invoke().unwrap_or_else(|| unreachable!());
                invoke_lambda(&job.job_id, invoke, t, i, lambda).await
            }
            (Ok(t), _) => TaskOutcome {
                message: "the emulator runs S3PutObjectCopy and LambdaInvoke jobs only".into(),
                ..t.failed("Unsupported", 400)
            },
        };
        job.tasks.push(outcome);
        let (ran, failed) = (job.tasks.len() as u64, job.failed());
        if ran >= FAILURE_RULE_MIN_TASKS && failed * 2 > ran {
            job = job.failed_with(
                "TaskFailureThresholdExceeded",
                format!("Task failure threshold exceeded: {failed} of {ran} tasks failed"),
            );
            break;
        }
    }
    if job.status != JobStatus::Failed {
        job.status = JobStatus::Complete;
    }
    // "As long as S3 Batch Operations successfully invoke at least one task, Amazon S3 generates
    // a completion report" (S3 User Guide, "Tracking job status and completion reports").
    if !job.tasks.is_empty() {
        if let Err(reason) = write_report(&s3, &job).await {
            return job.failed_with("ReportNotWritable", reason);
        }
    }
    job
}

/// STS AssumeRole for the service, after checking the trust policy lets the service assume the
/// role with nothing else asked of it.
async fn assume_as_batch_operations(
    moto: &MotoServer,
    region: &str,
    role_arn: &str,
) -> Result<aws_sdk_s3::Client, String> {
    let account = role_arn.split(':').nth(4).unwrap_or_default().to_string();
    let role_name = role_arn.rsplit('/').next().unwrap_or_default().to_string();
    let admin = moto.sdk_config_for_account(&account, region).await;
    let role = aws_sdk_iam::Client::new(&admin)
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .map_err(|e| format!("the role {role_arn} does not exist: {e:?}"))?;
    let document = role
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .unwrap_or_default();
    let document = percent_decode_str(document).decode_utf8_lossy().to_string();
    let trust: Value = serde_json::from_str(&document)
        .map_err(|e| format!("the trust policy of {role_arn} is not JSON: {e}"))?;
    if !trusts_batch_operations(&trust) {
        return Err(format!(
            "Batch Operations can't assume {role_arn}: its trust policy has no Allow of sts:AssumeRole for \
             {BATCH_OPERATIONS} without conditions (AWS documents none that Batch Operations satisfies)"
        ));
    }
    let base = moto.sdk_config(region).await;
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("s3-batch-operations")
        .send()
        .await
        .map_err(|e| format!("sts:AssumeRole {role_arn}: {e:?}"))?;
    let c = out.credentials().ok_or("no credentials")?;
    let credentials = aws_sdk_s3::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "batch-operations-emulator",
    );
    Ok(s3_client(&moto.sdk_config_with(credentials, region).await))
}

fn trusts_batch_operations(trust: &Value) -> bool {
    let statements = match trust.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let has = |v: Option<&Value>, wanted: &str| match v {
        Some(Value::String(s)) => s == wanted,
        Some(Value::Array(list)) => list.iter().any(|x| x.as_str() == Some(wanted)),
        _ => false,
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && has(s.get("Action"), "sts:AssumeRole")
            && has(
                s.get("Principal").and_then(|p| p.get("Service")),
                BATCH_OPERATIONS,
            )
            && s.get("Condition")
                .is_none_or(|c| c.as_object().is_none_or(|o| o.is_empty()))
    })
}

impl TaskOutcome {
    fn failed(&self, code: &str, status: u16) -> TaskOutcome {
        TaskOutcome {
            succeeded: false,
            error_code: code.to_string(),
            http_status: status,
            ..self.clone()
        }
    }
}

/// A task from the manifest, or a row that fails as a task (empty version id, bad encoding).
type ManifestTask = Result<TaskOutcome, TaskOutcome>;

fn pending(bucket: &str, key: &str, version: &str) -> TaskOutcome {
    TaskOutcome {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version.to_string(),
        succeeded: true,
        error_code: String::new(),
        http_status: 200,
        message: String::new(),
    }
}

/// The manifest's tasks, read as the role.
async fn read_manifest(
    s3: &aws_sdk_s3::Client,
    input: &CreateJobInput,
) -> Result<Vec<ManifestTask>, String> {
    let manifest = input.manifest().ok_or("the request has no Manifest")?;
    let location = manifest.location().ok_or("no Manifest.Location")?;
    let (bucket, key) = object_of(location.object_arn())?;
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "Reading the manifest is forbidden or failed: {} (s3://{bucket}/{key})",
                e.code().unwrap_or("error")
            )
        })?;
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    if etag != location.e_tag().trim_matches('"') {
        return Err(format!(
            "the manifest's ETag is {etag}, not the request's {}",
            location.e_tag()
        ));
    }
    let body = get(s3, &bucket, &key).await?;
    let spec = manifest.spec().ok_or("no Manifest.Spec")?;
    match spec.format() {
        JobManifestFormat::S3BatchOperationsCsv20180820 => {
            if head.server_side_encryption() == Some(&ServerSideEncryption::AwsKms) {
                return Err(
                    "S3 Batch Operations does not support CSV manifest files that are AWS KMS-encrypted"
                        .to_string(),
                );
            }
            let fields: Vec<String> = spec
                .fields()
                .iter()
                .map(|f| f.as_str().to_string())
                .collect();
            csv_tasks(&body, &fields)
        }
        JobManifestFormat::S3InventoryReportCsv20161130 => {
            let manifest: Value = serde_json::from_slice(&body)
                .map_err(|e| format!("the inventory manifest.json is not JSON: {e}"))?;
            if manifest.get("fileFormat").and_then(Value::as_str) != Some("CSV") {
                return Err("only CSV inventories can be a job's manifest".to_string());
            }
            let fields: Vec<String> = manifest
                .get("fileSchema")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split(',')
                .map(|f| f.trim().to_string())
                .collect();
            let mut tasks = Vec::new();
            for file in manifest
                .get("files")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let file_key = file.get("key").and_then(Value::as_str).unwrap_or_default();
                let gz = get(s3, &bucket, file_key).await?;
                let mut text = Vec::new();
                flate2::read::GzDecoder::new(gz.as_slice())
                    .read_to_end(&mut text)
                    .map_err(|e| format!("inventory file {file_key} is not gzip: {e}"))?;
                tasks.extend(csv_tasks(&text, &fields)?);
            }
            Ok(tasks)
        }
        other => Err(format!("manifest format {other:?} is not emulated")),
    }
}

fn csv_tasks(body: &[u8], fields: &[String]) -> Result<Vec<ManifestTask>, String> {
    let position = |name: &str| fields.iter().position(|f| f == name);
    let (b, k) = (
        position("Bucket").ok_or("no Bucket field")?,
        position("Key").ok_or("no Key field")?,
    );
    let v = position("VersionId");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut tasks = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("manifest row {}: {e}", n + 1))?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        let version = v.map(field).unwrap_or_default();
        let task = pending(&field(b), &field(k), &version);
        tasks.push(if v.is_some() && version.is_empty() {
            Err(TaskOutcome {
                message: "Task failed: the version ID is empty".to_string(),
                ..task.failed("InvalidVersionId", 400)
            })
        } else {
            Ok(task)
        });
    }
    Ok(tasks)
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading s3://{bucket}/{key}: {}",
                e.code().unwrap_or("error")
            )
        })?;
    Ok(out
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .into_bytes()
        .to_vec())
}

fn object_of(arn: &str) -> Result<(String, String), String> {
    let rest = arn
        .split_once(":::")
        .map(|(_, r)| r)
        .ok_or("not an object ARN")?;
    let (bucket, key) = rest.split_once('/').ok_or("not an object ARN")?;
    Ok((bucket.to_string(), key.to_string()))
}

/// A manifest key as Batch Operations reads it: URL-encoded, with `+` a space (S3 Inventory
/// writes a space as `+`, and AWS's own LambdaInvoke examples read task keys with
/// `unquote_plus`), so a real `+` must come as `%2B`.
fn decode(key: &str) -> String {
    percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .to_string()
}

/// Characters left unencoded in `x-amz-copy-source`'s key (RFC 3986 unreserved and `/`).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn sdk_failure<E: ProvideErrorMetadata>(
    task: &TaskOutcome,
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> TaskOutcome {
    let status = e.raw_response().map_or(0, |r| r.status().as_u16());
    TaskOutcome {
        message: e.message().unwrap_or("").to_string(),
        ..task.failed(e.code().unwrap_or("Error"), status)
    }
}

async fn copy(
    s3: &aws_sdk_s3::Client,
    op: &S3CopyObjectOperation,
    task: &TaskOutcome,
) -> TaskOutcome {
    let key = decode(&task.key);
    // `null` is a version id (the null version): "Batch Operations recognizes null strings as
    // version IDs" (S3 User Guide, "Converting empty version ID strings ... to null strings").
    let version = (!task.version_id.is_empty()).then(|| task.version_id.clone());
    // AWS documents CopyObject per task; the object's size and class decide some tasks before
    // it. Where HeadObject is refused, CopyObject's own error is what the report shows.
    let head = s3
        .head_object()
        .bucket(&task.bucket)
        .key(&key)
        .set_version_id(version.clone())
        .send()
        .await
        .unwrap_or_else(|_| {
            aws_sdk_s3::operation::head_object::HeadObjectOutput::builder().build()
        });
    if head.content_length().unwrap_or(0) > MAX_COPY_BYTES {
        return TaskOutcome {
            message:
                "The specified copy source is larger than the maximum allowable size for a copy \
                      source: 5368709120"
                    .to_string(),
            ..task.failed("InvalidRequest", 400)
        };
    }
    if matches!(
        head.storage_class(),
        Some(StorageClass::Glacier | StorageClass::DeepArchive)
    ) && head
        .restore()
        .is_none_or(|r| r.contains("ongoing-request=\"true\""))
    {
        return TaskOutcome {
            message: "The operation is not valid for the object's storage class".to_string(),
            ..task.failed("InvalidObjectState", 403)
        };
    }
    // Copying the tags reads them as the role (s3:GetObjectTagging).
    let tags = match op.new_object_tagging() {
        [] if op.new_object_tagging.is_none() && head.e_tag().is_some() => {
            match s3
                .get_object_tagging()
                .bucket(&task.bucket)
                .key(&key)
                .set_version_id(version.clone())
                .send()
                .await
            {
                Ok(out) => out
                    .tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect::<BTreeMap<_, _>>(),
                Err(e) => return sdk_failure(task, &e),
            }
        }
        given => given
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    };
    let (target_bucket, _) = op
        .target_resource()
        .and_then(|arn| arn.split_once(":::").map(|(_, b)| (b.to_string(), ())))
        .unwrap_or_default();
    // Batch Operations puts a '/' between TargetKeyPrefix and the key (see ferry-plan
    // destination_key::target_key_prefix for what is and isn't documented).
    let target_key = match op.target_key_prefix() {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}/{key}"),
        _ => key.clone(),
    };
    let mut source = format!("{}/{}", task.bucket, utf8_percent_encode(&key, COPY_SOURCE));
    if let Some(v) = &version {
        source.push_str(&format!("?versionId={v}"));
    }
    let tagging = tags
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let meta = op.new_object_metadata();
    let mut request = s3
        .copy_object()
        .bucket(&target_bucket)
        .key(&target_key)
        .copy_source(source)
        .tagging_directive(TaggingDirective::Replace)
        .tagging(tagging)
        .set_storage_class(op.storage_class().map(|c| StorageClass::from(c.as_str())))
        .set_checksum_algorithm(
            op.checksum_algorithm()
                .map(|c| ChecksumAlgorithm::from(c.as_str())),
        );
    request = match meta.and_then(|m| m.sse_algorithm()) {
        Some(S3SseAlgorithm::Kms) => request
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(op.sse_aws_kms_key_id().map(str::to_string))
            .bucket_key_enabled(op.bucket_key_enabled()),
        Some(S3SseAlgorithm::Aes256) => {
            request.server_side_encryption(ServerSideEncryption::Aes256)
        }
        _ => request,
    };
    let replace = op.metadata_directive().map(|d| d.as_str()) == Some("REPLACE");
    if replace {
        let m = meta
            .cloned()
            .unwrap_or_else(|| aws_sdk_s3control::types::S3ObjectMetadata::builder().build());
        request = request
            .metadata_directive(MetadataDirective::Replace)
            .set_cache_control(m.cache_control().map(str::to_string))
            .set_content_disposition(m.content_disposition().map(str::to_string))
            .set_content_encoding(m.content_encoding().map(str::to_string))
            .set_content_language(m.content_language().map(str::to_string))
            .set_content_type(m.content_type().map(str::to_string))
            .set_metadata(m.user_metadata().cloned());
    } else {
        request = request.metadata_directive(MetadataDirective::Copy);
    }
    match request.send().await {
        Ok(_) => task.clone(),
        Err(e) => sdk_failure(task, &e),
    }
}

async fn invoke_lambda(
    job_id: &str,
    invoke: &aws_sdk_s3control::types::LambdaInvokeOperation,
    task: &TaskOutcome,
    n: usize,
    lambda: Option<LambdaTarget<'_>>,
) -> TaskOutcome {
    let user_arguments = invoke.user_arguments();
    // Schema 1.0 is the default; 2.0 is what carries UserArguments and the bucket's name
    // (service model, LambdaInvokeOperation.InvocationSchemaVersion).
    let version = invoke.invocation_schema_version().unwrap_or("1.0");
    if version != "2.0" && user_arguments.is_some_and(|a| !a.is_empty()) {
        return TaskOutcome {
            message: "UserArguments need InvocationSchemaVersion 2.0".to_string(),
            ..task.failed("InvalidRequest", 400)
        };
    }
    let Some(lambda) = lambda else {
        return TaskOutcome {
            message: "no function to invoke was given to the emulator".to_string(),
            ..task.failed("Lambda.ResourceNotFoundException", 404)
        };
    };
    let task_id = format!("task-{n}");
    let version_id = (!task.version_id.is_empty()).then(|| task.version_id.clone());
    let payload = if version == "2.0" {
        json!({
            "invocationSchemaVersion": "2.0",
            "invocationId": format!("{job_id}-{n}"),
            "job": {"id": job_id, "userArguments": user_arguments.cloned().unwrap_or_default()},
            "tasks": [{
                "taskId": task_id,
                "s3Key": task.key,
                "s3VersionId": version_id,
                "s3Bucket": task.bucket,
            }]
        })
    } else {
        json!({
            "invocationSchemaVersion": "1.0",
            "invocationId": format!("{job_id}-{n}"),
            "job": {"id": job_id},
            "tasks": [{
                "taskId": task_id,
                "s3Key": task.key,
                "s3VersionId": version_id,
                "s3BucketArn": format!("arn:aws:s3:::{}", task.bucket),
            }]
        })
    };
    let mut last = Value::Null;
    for _ in 0..LAMBDA_ATTEMPTS {
        last = lambda(payload.clone()).await;
        let result = &last["results"][0];
        let text = result["resultString"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match result["resultCode"].as_str() {
            Some("Succeeded") => {
                return TaskOutcome {
                    message: text,
                    ..task.clone()
                }
            }
            Some("TemporaryFailure") => continue,
            _ => {
                return TaskOutcome {
                    message: text,
                    ..task.failed("PermanentFailure", 200)
                }
            }
        }
    }
    TaskOutcome {
        message: last["results"][0]["resultString"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ..task.failed("TemporaryFailure", 200)
    }
}

/// `<prefix>/job-<id>/manifest.json` and `results/<name>.csv`, written as the role with SSE-S3
/// (completion reports are always SSE-S3: S3 User Guide, "Examples: S3 Batch Operations
/// completion reports").
async fn write_report(s3: &aws_sdk_s3::Client, job: &EmulatedJob) -> Result<(), String> {
    let Some(report) = job.input.report().filter(|r| r.enabled()) else {
        return Ok(());
    };
    let bucket = report
        .bucket()
        .and_then(|arn| arn.split_once(":::").map(|(_, b)| b.to_string()))
        .ok_or("the report has no bucket")?;
    let base = format!("{}/job-{}", report.prefix().unwrap_or_default(), job.job_id);
    let failed_only = report.report_scope() == Some(&JobReportScope::FailedTasksOnly);
    let mut results = Vec::new();
    for succeeded in [true, false] {
        if succeeded && failed_only {
            continue;
        }
        let mut writer = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        let mut rows = 0;
        for t in job.tasks.iter().filter(|t| t.succeeded == succeeded) {
            rows += 1;
            let status = if succeeded { "succeeded" } else { "failed" };
            let http = if succeeded {
                "200".to_string()
            } else {
                t.http_status.to_string()
            };
            writer
                // AWS's sample rows put the HTTP status before the error code, whatever
                // ReportSchema lists (S3 User Guide, "Examples: S3 Batch Operations completion
                // reports"): `bucket,key,,failed,200,PermanentFailure,"message"`.
                .write_record([
                    t.bucket.as_str(),
                    t.key.as_str(),
                    t.version_id.as_str(),
                    status,
                    http.as_str(),
                    t.error_code.as_str(),
                    t.message.as_str(),
                ])
                .map_err(|e| e.to_string())?;
        }
        if rows == 0 {
            continue;
        }
        let body = writer.into_inner().map_err(|e| e.to_string())?;
        let md5 = md5_hex(&body);
        let key = format!("{base}/results/{md5}.csv");
        put(s3, &bucket, &key, body).await?;
        results.push(json!({
            "TaskExecutionStatus": if succeeded { "succeeded" } else { "failed" },
            "Bucket": bucket, "MD5Checksum": md5, "Key": key
        }));
    }
    let manifest = json!({
        "Format": "Report_CSV_20180820",
        "ReportCreationDate": "2026-12-07T00:00:00.000Z",
        "Results": results,
        "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    });
    put(
        s3,
        &bucket,
        &format!("{base}/manifest.json"),
        manifest.to_string().into_bytes(),
    )
    .await
}

async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "writing the completion report s3://{bucket}/{key}: {}",
                e.code().unwrap_or("error")
            )
        })
}
