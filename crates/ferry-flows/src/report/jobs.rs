//! The Batch Operations calls monitoring makes, as ports: what DescribeJob, ListJobs and
//! GetJobTagging say about a job, and reading objects of a completion report.
//! `ferry-aws` implements them with the SDK (`jobs.rs`); tests use mocks or moto.

use std::future::Future;

use serde::Serialize;

use crate::aws_error::AwsCallError;
use ferry_plan::job::{S3Tag, TRANSFER_TAG};

/// Don't ask S3 Control about a job more often than this (AWS's guidance for DescribeJob).
pub const MIN_POLL_SECONDS: u64 = 30;

/// What the job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JobOperationKind {
    Copy,
    LambdaInvoke {
        function_arn: String,
    },
    /// An operation Ferry doesn't launch (only foreign jobs have these).
    Other {
        name: String,
    },
}

/// Where a job writes its completion report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportLocation {
    pub enabled: bool,
    /// Bucket name (DescribeJob gives the ARN; the name is what GetObject takes).
    pub bucket: String,
    pub prefix: String,
    pub scope: String,
}

/// DescribeJob's answer, reduced to what Ferry shows and acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobInfo {
    pub job_id: String,
    pub job_arn: Option<String>,
    pub status: String,
    pub description: Option<String>,
    pub operation: JobOperationKind,
    pub total_tasks: Option<u64>,
    pub succeeded_tasks: Option<u64>,
    pub failed_tasks: Option<u64>,
    pub active_seconds: Option<u64>,
    pub created_unix: Option<i64>,
    pub terminated_unix: Option<i64>,
    /// `(FailureCode, FailureReason)` pairs.
    pub failure_reasons: Vec<(String, String)>,
    pub status_update_reason: Option<String>,
    pub suspended_cause: Option<String>,
    pub report: Option<ReportLocation>,
    pub role_arn: Option<String>,
    pub priority: i32,
    /// The manifest the job ran on (DescribeJob's `Manifest`). Not shown by `ferry status`:
    /// redrive uses it to re-copy only tasks of the job's own manifest.
    #[serde(skip)]
    pub manifest: Option<JobManifestRef>,
}

/// DescribeJob's `Manifest`: one type for every flow that reads it ([`crate::job_manifest`]).
pub use crate::job_manifest::JobManifestRef;

impl JobInfo {
    /// A Copy job known only by id and status (the rest unknown until described).
    pub fn new(job_id: &str, status: &str) -> Self {
        Self {
            job_id: job_id.to_string(),
            job_arn: None,
            status: status.to_string(),
            description: None,
            operation: JobOperationKind::Copy,
            total_tasks: None,
            succeeded_tasks: None,
            failed_tasks: None,
            active_seconds: None,
            created_unix: None,
            terminated_unix: None,
            failure_reasons: Vec::new(),
            status_update_reason: None,
            suspended_cause: None,
            report: None,
            role_arn: None,
            priority: 0,
            manifest: None,
        }
    }

    /// Seconds from creation to termination (or to `now` while it runs).
    pub fn elapsed_seconds(&self, now_unix: u64) -> Option<u64> {
        let start = self.created_unix?;
        let end = self
            .terminated_unix
            .unwrap_or(i64::try_from(now_unix).unwrap_or(i64::MAX));
        u64::try_from(end.saturating_sub(start)).ok()
    }

    /// Batch Operations' own rule: a job fails once ≥ 1,000 tasks ran and > 50 % failed (S3 User
    /// Guide, "Tracking job status and completion reports", "Tracking job failure": "When a job
    /// has run at least 1,000 tasks, Amazon S3 monitors the task failure rate"). The rule never
    /// applies below 1,000 tasks run, so nothing below is called so. At or above, the counts
    /// decide, or the failure reasons when they name the rule (the failed share DescribeJob
    /// reports may trail the one that stopped the job); AWS documents no FailureReasons text, so
    /// the words looked for are a guess (verify).
    pub fn hit_failure_threshold(&self) -> bool {
        let (Some(ok), Some(failed)) = (self.succeeded_tasks, self.failed_tasks) else {
            return false;
        };
        let ran = ok.saturating_add(failed);
        let reasons_say_so = self.failure_reasons.iter().any(|(code, reason)| {
            let text = format!("{code} {reason}").to_ascii_lowercase();
            text.contains("threshold") || text.contains("50%") || text.contains("failure rate")
        });
        self.status == "Failed" && ran >= 1000 && (reasons_say_so || failed.saturating_mul(2) > ran)
    }
}

/// One row of ListJobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobListing {
    pub job_id: String,
    pub status: String,
    pub description: Option<String>,
    pub operation: String,
    pub created_unix: Option<i64>,
    pub terminated_unix: Option<i64>,
    pub total_tasks: Option<u64>,
    pub succeeded_tasks: Option<u64>,
    pub failed_tasks: Option<u64>,
}

/// S3 Control's job calls.
pub trait JobsApi {
    fn describe_job(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> impl Future<Output = Result<JobInfo, AwsCallError>> + Send;
    fn job_tags(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> impl Future<Output = Result<Vec<S3Tag>, AwsCallError>> + Send;
    /// Every job of the account ListJobs returns (the last 90 days), newest first.
    fn list_jobs(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<JobListing>, AwsCallError>> + Send;
}

/// Reading a completion report.
pub trait ReportObjects {
    /// A small object whole; `None` when it doesn't exist.
    fn read_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, AwsCallError>> + Send;
    /// A large object, chunk by chunk as it arrives. Returns the bytes read.
    fn stream_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> impl Future<Output = Result<u64, AwsCallError>> + Send + 'a;
}

/// Reading the manifest a job ran on, exactly as it was: GetObject with `If-Match` on the ETag
/// the job recorded (and `versionId` when it recorded one), as the function's own role.
pub trait ManifestObjects {
    /// Streams the object chunk by chunk. A changed object fails with S3's
    /// `PreconditionFailed` (HTTP 412). Returns the bytes read.
    fn stream_object_if_match<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        etag: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> impl Future<Output = Result<u64, AwsCallError>> + Send + 'a;
}

/// A job's Ferry tags: `(transfer name, plan fingerprint)`, or `None` for a job that isn't
/// Ferry's.
pub fn ferry_tags(tags: &[S3Tag]) -> Option<(String, Option<String>)> {
    let find = |key: &str| tags.iter().find(|t| t.key == key).map(|t| t.value.clone());
    Some((find(TRANSFER_TAG)?, find(ferry_plan::job::PLAN_TAG)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminated job with these counts and failure reasons.
    fn job(status: &str, ok: u64, failed: u64, reasons: &[(&str, &str)]) -> JobInfo {
        JobInfo {
            total_tasks: Some(ok + failed),
            succeeded_tasks: Some(ok),
            failed_tasks: Some(failed),
            failure_reasons: reasons
                .iter()
                .map(|(c, r)| (c.to_string(), r.to_string()))
                .collect(),
            ..JobInfo::new("j-1", status)
        }
    }

    // The rule, S3 User Guide, "Tracking job status and completion reports", section "Tracking
    // job failure" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-job-status.html#batch-ops-job-status-failure):
    // "When a job has run at least 1,000 tasks, Amazon S3 monitors the task failure rate. At any
    // point, if the failure rate (the number of tasks that have failed as a proportion of the
    // total number of tasks that have run) exceeds 50 percent, the job fails."
    // AWS documents no FailureCode or FailureReason text for it (the API reference's JobFailure
    // only says "the failure code/reason, if any"), so the counts are the authority and the
    // reasons a second signal; each detector has its own test.

    #[test]
    fn the_reasons_say_so_when_the_counts_lag_the_rule_but_never_below_1000_tasks() {
        // 1,100 tasks ran, 45 % failed by DescribeJob's counts: only the reasons show the rule.
        let by_reasons = job(
            "Failed",
            600,
            500,
            &[(
                "TaskFailureThresholdExceeded",
                "Task failure threshold exceeded",
            )],
        );
        assert!(by_reasons.hit_failure_threshold());
        // Each wording the detector knows, on its own.
        for (code, reason) in [
            ("", "More than 50% of tasks failed"),
            ("JobFailed", "The task failure rate was too high"),
            ("JobFailed", "threshold"),
        ] {
            assert!(
                job("Failed", 600, 500, &[(code, reason)]).hit_failure_threshold(),
                "{code} {reason}"
            );
            // AWS applies the rule only once 1,000 tasks ran: 15 tasks never hit it.
            assert!(
                !job("Failed", 10, 5, &[(code, reason)]).hit_failure_threshold(),
                "{code} {reason}"
            );
        }
        // Another failure's reason, with the same counts, is not the rule.
        let other = job(
            "Failed",
            600,
            500,
            &[("AccessDenied", "Reading the manifest failed: Access Denied")],
        );
        assert!(!other.hit_failure_threshold());
    }

    #[test]
    fn the_counts_alone_say_so_when_the_reasons_are_empty() {
        assert!(job("Failed", 400, 1100, &[]).hit_failure_threshold());
        // and when the reasons name something else
        assert!(
            job("Failed", 400, 1100, &[("InternalError", "Service error")]).hit_failure_threshold()
        );
    }

    #[test]
    fn the_counts_rule_starts_at_1000_tasks_and_needs_more_than_half_failed() {
        let by_counts = |ok, failed| job("Failed", ok, failed, &[]).hit_failure_threshold();
        // 999 tasks: not yet watched, even all failed.
        assert!(!by_counts(0, 999));
        assert!(!by_counts(498, 501));
        // 1,000 tasks: exactly half failed is not "exceeds 50 percent"; 501 is.
        assert!(!by_counts(500, 500));
        assert!(by_counts(499, 501));
        assert!(by_counts(0, 1000));
        // Exactly half of a larger job, and one more.
        assert!(!by_counts(5000, 5000));
        assert!(by_counts(4999, 5001));
    }

    #[test]
    fn only_a_failed_job_hit_the_threshold() {
        let reasons = [(
            "TaskFailureThresholdExceeded",
            "Task failure threshold exceeded",
        )];
        for status in ["Complete", "Cancelled", "Active", "Suspended"] {
            assert!(
                !job(status, 400, 1100, &reasons).hit_failure_threshold(),
                "{status}"
            );
            assert!(
                !job(status, 400, 1100, &[]).hit_failure_threshold(),
                "{status}"
            );
        }
        assert!(job("Failed", 400, 1100, &reasons).hit_failure_threshold());
    }
}
