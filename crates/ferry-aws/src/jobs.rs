//! [`JobsApi`] and [`ReportObjects`] with the SDK: DescribeJob, GetJobTagging and ListJobs
//! through S3 Control, completion-report objects through S3 (streamed chunk by chunk).

use aws_sdk_s3control::types::{JobDescriptor, JobListDescriptor, JobProgressSummary};
use aws_smithy_types::DateTime;
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::report::jobs::{
    JobInfo, JobListing, JobManifestRef, JobOperationKind, JobsApi, ManifestObjects,
    ReportLocation, ReportObjects,
};
use ferry_listings::report::manifest_json::bucket_name;
use ferry_plan::job::S3Tag;

use crate::errors::classify;
use crate::launch_api::AwsLaunchApi;
use crate::ports::AwsPorts;

fn unix(t: Option<&DateTime>) -> Option<i64> {
    t.map(DateTime::secs)
}

fn count(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

/// `(total, succeeded, failed, active seconds)` of a progress summary.
fn progress(
    p: Option<&JobProgressSummary>,
) -> (Option<u64>, Option<u64>, Option<u64>, Option<u64>) {
    match p {
        Some(p) => (
            count(p.total_number_of_tasks()),
            count(p.number_of_tasks_succeeded()),
            count(p.number_of_tasks_failed()),
            count(p.timers().and_then(|t| t.elapsed_time_in_active_seconds())),
        ),
        None => (None, None, None, None),
    }
}

/// DescribeJob's descriptor as Ferry's [`JobInfo`].
pub fn job_info(job: &JobDescriptor) -> JobInfo {
    let operation = match job.operation() {
        Some(op) if op.s3_put_object_copy().is_some() => JobOperationKind::Copy,
        Some(op) => match op.lambda_invoke() {
            Some(invoke) => JobOperationKind::LambdaInvoke {
                function_arn: invoke.function_arn().unwrap_or_default().to_string(),
            },
            None => JobOperationKind::Other {
                name: operation_name(op),
            },
        },
        None => JobOperationKind::Other {
            name: "unknown".to_string(),
        },
    };
    let (total, succeeded, failed, active) = progress(job.progress_summary());
    JobInfo {
        job_id: job.job_id().unwrap_or_default().to_string(),
        job_arn: job.job_arn().map(str::to_string),
        status: job
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        description: job.description().map(str::to_string),
        operation,
        total_tasks: total,
        succeeded_tasks: succeeded,
        failed_tasks: failed,
        active_seconds: active,
        created_unix: unix(job.creation_time()),
        terminated_unix: unix(job.termination_date()),
        failure_reasons: job
            .failure_reasons()
            .iter()
            .map(|f| {
                (
                    f.failure_code().unwrap_or_default().to_string(),
                    f.failure_reason().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        status_update_reason: job.status_update_reason().map(str::to_string),
        suspended_cause: job.suspended_cause().map(str::to_string),
        report: job.report().map(|r| ReportLocation {
            enabled: r.enabled(),
            bucket: bucket_name(r.bucket().unwrap_or_default()).to_string(),
            prefix: r.prefix().unwrap_or_default().to_string(),
            scope: r
                .report_scope()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        }),
        role_arn: job.role_arn().map(str::to_string),
        priority: job.priority(),
        manifest: job.manifest().and_then(manifest_ref),
    }
}

/// DescribeJob's `Job` (S3 Control API Reference, "DescribeJob": `Job`, a JobDescriptor); a
/// reply without one is an error.
pub(crate) async fn describe(
    s3control: &aws_sdk_s3control::Client,
    account_id: &str,
    job_id: &str,
) -> Result<JobDescriptor, AwsCallError> {
    let out = s3control
        .describe_job()
        .account_id(account_id)
        .job_id(job_id)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    out.job.ok_or_else(|| AwsCallError {
        kind: AwsErrorKind::Other,
        code: "MissingJob".to_string(),
        message: format!("DescribeJob answered without a job for {job_id}"),
    })
}

/// DescribeJob's `Manifest` (S3 Control API Reference, "JobManifest"): `None` without a
/// location (a job with a ManifestGenerator has none Ferry could read).
pub(crate) fn manifest_ref(m: &aws_sdk_s3control::types::JobManifest) -> Option<JobManifestRef> {
    let location = m.location()?;
    Some(JobManifestRef {
        format: m
            .spec()
            .map(|s| s.format().as_str().to_string())
            .unwrap_or_default(),
        fields: m
            .spec()
            .map(|s| s.fields().iter().map(|f| f.as_str().to_string()).collect())
            .unwrap_or_default(),
        object_arn: location.object_arn().to_string(),
        object_version_id: location.object_version_id().map(str::to_string),
        etag: location.e_tag().to_string(),
    })
}

/// The operation's name as AWS writes it, for jobs Ferry doesn't launch.
fn operation_name(op: &aws_sdk_s3control::types::JobOperation) -> String {
    let names = [
        (op.s3_put_object_tagging().is_some(), "S3PutObjectTagging"),
        (
            op.s3_delete_object_tagging().is_some(),
            "S3DeleteObjectTagging",
        ),
        (
            op.s3_initiate_restore_object().is_some(),
            "S3InitiateRestoreObject",
        ),
        (op.s3_put_object_acl().is_some(), "S3PutObjectAcl"),
        (
            op.s3_put_object_legal_hold().is_some(),
            "S3PutObjectLegalHold",
        ),
        (
            op.s3_put_object_retention().is_some(),
            "S3PutObjectRetention",
        ),
        (op.s3_replicate_object().is_some(), "S3ReplicateObject"),
        (
            op.s3_compute_object_checksum().is_some(),
            "S3ComputeObjectChecksum",
        ),
    ];
    names
        .into_iter()
        .find(|(present, _)| *present)
        .map_or("unknown", |(_, name)| name)
        .to_string()
}

fn listing(job: &JobListDescriptor) -> JobListing {
    let (total, succeeded, failed, _) = progress(job.progress_summary());
    JobListing {
        job_id: job.job_id().unwrap_or_default().to_string(),
        status: job
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        description: job.description().map(str::to_string),
        operation: job
            .operation()
            .map(|o| o.as_str().to_string())
            .unwrap_or_default(),
        created_unix: unix(job.creation_time()),
        terminated_unix: unix(job.termination_date()),
        total_tasks: total,
        succeeded_tasks: succeeded,
        failed_tasks: failed,
    }
}

impl JobsApi for AwsLaunchApi {
    async fn describe_job(&self, account_id: &str, job_id: &str) -> Result<JobInfo, AwsCallError> {
        describe(&self.s3control, account_id, job_id)
            .await
            .map(|job| job_info(&job))
    }

    async fn job_tags(&self, account_id: &str, job_id: &str) -> Result<Vec<S3Tag>, AwsCallError> {
        let out = self
            .s3control
            .get_job_tagging()
            .account_id(account_id)
            .job_id(job_id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .tags()
            .iter()
            .map(|t| S3Tag {
                key: t.key().to_string(),
                value: t.value().to_string(),
            })
            .collect())
    }

    async fn list_jobs(&self, account_id: &str) -> Result<Vec<JobListing>, AwsCallError> {
        let mut jobs = Vec::new();
        let mut pages = self
            .s3control
            .list_jobs()
            .account_id(account_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e))?;
            jobs.extend(page.jobs().iter().map(listing));
        }
        jobs.sort_by_key(|j| std::cmp::Reverse(j.created_unix));
        Ok(jobs)
    }
}

// The report and manifest buckets may be in another Region than the function (an inventory is
// delivered only in the source bucket's Region: S3 User Guide, "Cataloging and analyzing your
// data with S3 Inventory"), so every read goes through `BucketRegions::call`.
impl ReportObjects for AwsLaunchApi {
    async fn read_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        let (result, _) = self
            .regions
            .call(&self.s3, bucket, |s3| {
                s3.get_object().bucket(bucket).key(key).send()
            })
            .await;
        match result {
            Ok(out) => out
                .body
                .collect()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(read_error),
            Err(e) => {
                let err = classify(&e);
                if err.kind == AwsErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn stream_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        self.stream_get(bucket, |s3| s3.get_object().bucket(bucket).key(key), sink)
            .await
    }
}

impl ManifestObjects for AwsLaunchApi {
    /// GetObject with `If-Match` (S3 API Reference, "GetObject": "Return the object only if its
    /// entity tag (ETag) is the same as the one specified in this header; otherwise, return a
    /// 412 Precondition Failed error") and `versionId` when the job recorded one.
    async fn stream_object_if_match<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        etag: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        let if_match = ferry_flows::job_manifest::if_match(etag);
        self.stream_get(
            bucket,
            |s3| {
                s3.get_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version_id.map(str::to_string))
                    .if_match(&if_match)
            },
            sink,
        )
        .await
    }
}

impl AwsLaunchApi {
    /// Sends the GetObject `get` builds (in the bucket's Region) and hands its body to `sink`
    /// chunk by chunk; the bytes read.
    async fn stream_get(
        &self,
        bucket: &str,
        get: impl Fn(
            aws_sdk_s3::Client,
        ) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        let (result, _) = self
            .regions
            .call(&self.s3, bucket, |s3| get(s3).send())
            .await;
        let mut body = result.map_err(|e| classify(&e))?.body;
        let mut read = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(read_error)?;
            read += chunk.len() as u64;
            sink(&chunk);
        }
        Ok(read)
    }
}

impl ManifestObjects for AwsPorts {
    async fn stream_object_if_match<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        etag: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        self.launch
            .stream_object_if_match(bucket, key, version_id, etag, sink)
            .await
    }
}

fn read_error(e: impl std::fmt::Display) -> AwsCallError {
    AwsCallError {
        kind: AwsErrorKind::Transient,
        code: "ReadError".to_string(),
        message: e.to_string(),
    }
}

impl JobsApi for AwsPorts {
    async fn describe_job(&self, account_id: &str, job_id: &str) -> Result<JobInfo, AwsCallError> {
        self.launch.describe_job(account_id, job_id).await
    }
    async fn job_tags(&self, account_id: &str, job_id: &str) -> Result<Vec<S3Tag>, AwsCallError> {
        self.launch.job_tags(account_id, job_id).await
    }
    async fn list_jobs(&self, account_id: &str) -> Result<Vec<JobListing>, AwsCallError> {
        self.launch.list_jobs(account_id).await
    }
}

impl ReportObjects for AwsPorts {
    async fn read_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        self.launch.read_object(bucket, key).await
    }
    async fn stream_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        self.launch.stream_object(bucket, key, sink).await
    }
}

impl ferry_flows::report::redrive::StateBucketName for AwsPorts {
    fn state_bucket(&self) -> &str {
        &self.state_bucket
    }
}
