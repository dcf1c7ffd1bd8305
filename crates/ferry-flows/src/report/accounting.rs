//! Whether a finished job of an inventory run may move the run's delta state forward.
//!
//! A run's pending index lists every object of its inventory as copied; only the objects of
//! failed tasks are taken out of it before it becomes the base of the next delta
//! ([`crate::inventory::delta`]), and an object left in it is skipped by later deltas for as
//! long as it is unchanged. So every failed task must be known. They are read from the
//! completion report, which lives in the report bucket, which others may write (a report can be
//! deleted, its rows removed), and job-monitor can be invoked with a hand-made event. A
//! `Complete` job's failed tasks are therefore taken as accounted for only when
//!
//! - the job is the run's own, as DescribeJob and GetJobTagging describe it, never as the event
//!   says: DescribeJob answered for that job id; its `ferry:transfer` and `ferry:plan` tags are
//!   the run's transfer and plan; it is one of the jobs the run recorded (tags are anyone's to
//!   set with `s3:PutJobTagging`, a job id only what CreateJob answered the run); it read the
//!   manifest (object and ETag) the run launched it on, as the transfer's batch role, and
//!   reports where the transfer's reports go;
//! - DescribeJob's counts add up: succeeded + failed = total;
//! - the report exists where DescribeJob says (`<prefix>/job-<id>/manifest.json`), unless the
//!   job had no task at all;
//! - the report names at least as many distinct failed tasks of the source bucket as
//!   DescribeJob's `NumberOfTasksFailed`. Duplicated rows count once; unreadable rows don't
//!   count, since their objects could not be taken out of the index.
//!
//! Otherwise the job's end is recorded [`crate::inventory::delta::FailedTasks::Unaccounted`]
//! with the reason these checks give, and the run never commits: the next inventory's delta is
//! computed against the previous base and includes the run's objects again.
//!
//! What this can't see: someone who rewrites the report with as many failed rows as
//! DescribeJob counts, naming other objects of the run, still chooses which objects are
//! recorded as copied (`docs/security.md`, "What remains").

use std::collections::BTreeMap;

use super::jobs::JobInfo;
use super::read::ReportReading;
use crate::inventory::delta::{JobRun, ObjectRef, RunRecord};
use ferry_listings::report::results::{TaskResult, TaskStatus};
use ferry_plan::spec::TransferSpec;

/// The failed rows of a job's completion report, each object once.
#[derive(Debug, Clone, Default)]
pub struct FailedRows {
    source_bucket: String,
    /// Each failed (key, version), and whether a row naming the source bucket listed it.
    objects: BTreeMap<ObjectRef, bool>,
    /// The report's own text of keys that held `%XX` escapes, also left out of the index
    /// ([`TaskResult::key_as_reported`]); never counted.
    as_reported: Vec<ObjectRef>,
    rows: u64,
}

impl FailedRows {
    pub fn new(source_bucket: &str) -> Self {
        Self {
            source_bucket: source_bucket.to_string(),
            ..Self::default()
        }
    }

    /// Takes one task of the report; succeeded ones are ignored.
    pub fn add(&mut self, task: &TaskResult) {
        if task.status != TaskStatus::Failed {
            return;
        }
        self.rows += 1;
        // `null` and an empty version are both the null version (as in the delta index).
        let version_id = task
            .version_id
            .clone()
            .filter(|v| !v.is_empty() && v != "null");
        if let Some(raw) = &task.key_as_reported {
            let plus_as_space = ferry_listings::manifest::decode_inventory_key(raw).ok();
            for key in std::iter::once(raw.clone()).chain(plus_as_space) {
                self.as_reported.push(ObjectRef {
                    key,
                    version_id: version_id.clone(),
                });
            }
        }
        let object = ObjectRef {
            key: task.key.clone(),
            version_id,
        };
        let of_source = task.bucket == self.source_bucket;
        *self.objects.entry(object).or_default() |= of_source;
    }

    /// Failed rows read, duplicates and other buckets included.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Distinct objects of the source bucket named by failed rows.
    pub fn distinct_of_source(&self) -> u64 {
        self.objects.values().filter(|s| **s).count() as u64
    }

    /// Every distinct object a failed row named, whatever its bucket, under both readings of
    /// its key: all are left out of the index (an extra copy at worst).
    pub fn into_objects(self) -> Vec<ObjectRef> {
        let mut objects: Vec<ObjectRef> = self.objects.into_keys().collect();
        objects.extend(self.as_reported);
        objects.sort();
        objects.dedup();
        objects
    }
}

/// What the state bucket and the job's tags say the job should be.
#[derive(Debug, Clone, Copy)]
pub struct RunJobContext<'a> {
    /// The job id the event named (DescribeJob must answer for it).
    pub event_job_id: &'a str,
    /// The job's `ferry:transfer` and `ferry:plan` tags (GetJobTagging).
    pub transfer_tag: &'a str,
    pub plan_tag: &'a str,
    /// The stored plan's spec of that fingerprint.
    pub spec: &'a TransferSpec,
    /// `inventory/jobs/<job>.json` and the run's `run.json`.
    pub link: &'a JobRun,
    pub run: &'a RunRecord,
}

/// The job is the run's own, as DescribeJob describes it. `Err`: why not, for the e-mail.
pub fn check_job_is_the_runs(job: &JobInfo, ctx: &RunJobContext<'_>) -> Result<(), String> {
    if job.job_id != ctx.event_job_id {
        return Err(format!(
            "DescribeJob answered for job {}, not {}",
            job.job_id, ctx.event_job_id
        ));
    }
    if ctx.transfer_tag != ctx.spec.name {
        return Err(format!(
            "its ferry:transfer tag is {}, not the plan's transfer {}",
            ctx.transfer_tag, ctx.spec.name
        ));
    }
    if ctx.plan_tag != ctx.link.plan_fingerprint {
        return Err(format!(
            "its ferry:plan tag is {}, but run {} is of plan {}",
            ctx.plan_tag, ctx.link.run_id, ctx.link.plan_fingerprint
        ));
    }
    let Some(launched) = ctx.run.jobs.iter().find(|j| j.job_id == job.job_id) else {
        return Err(format!(
            "run {} did not record it among the jobs it launched",
            ctx.run.run_id
        ));
    };
    let Some(manifest) = &job.manifest else {
        return Err("DescribeJob names no manifest for it".to_string());
    };
    let described = manifest
        .bucket_and_key()
        .map(|(bucket, key)| format!("s3://{bucket}/{key}"));
    let etag = |e: &str| e.trim().trim_matches('"').to_string();
    if described.as_deref() != Some(launched.manifest.as_str())
        || etag(&manifest.etag) != etag(&launched.manifest_etag)
    {
        return Err(format!(
            "DescribeJob says it read {} (ETag {}), but run {} launched it on {} (ETag {})",
            described.as_deref().unwrap_or(&manifest.object_arn),
            etag(&manifest.etag),
            ctx.run.run_id,
            launched.manifest,
            etag(&launched.manifest_etag)
        ));
    }
    // Each row of the manifest the run wrote is one task: a job that ran another number of
    // tasks did not read the rows the run counted (a data file of its manifest changed, say),
    // so its objects are not recorded as copied.
    if let Some(total) = job.total_tasks.filter(|t| *t != launched.objects) {
        return Err(format!(
            "DescribeJob counts {total} task(s), but run {} wrote {} object(s) into its manifest",
            ctx.run.run_id, launched.objects
        ));
    }
    let role = ferry_plan::policy::batch_role::role_arn(ctx.spec);
    if job.role_arn.as_deref() != Some(role.as_str()) {
        return Err(format!(
            "it runs as {}, not as the transfer's batch role {role}",
            job.role_arn
                .as_deref()
                .unwrap_or("no role (DescribeJob names none)")
        ));
    }
    let report = &ctx.spec.report;
    let prefix = |p: &str| p.trim_matches('/').to_string();
    match job.report.as_ref().filter(|r| r.enabled) {
        Some(r) if r.bucket == report.bucket && prefix(&r.prefix) == prefix(&report.prefix) => {}
        Some(r) => {
            return Err(format!(
                "its completion report goes to s3://{}/{}, not the transfer's s3://{}/{}",
                r.bucket, r.prefix, report.bucket, report.prefix
            ))
        }
        None => {
            return Err(
                "it writes no completion report (DescribeJob names none, or it is disabled)"
                    .to_string(),
            )
        }
    }
    Ok(())
}

/// Every task DescribeJob counts as failed is a row of the report. `report` is what was read
/// from the location DescribeJob gives (`None`: no report configured). `Err`: why not.
pub fn check_failed_tasks_accounted(
    job: &JobInfo,
    report: Option<&ReportReading>,
    rows: &FailedRows,
) -> Result<(), String> {
    let (Some(total), Some(succeeded), Some(failed)) =
        (job.total_tasks, job.succeeded_tasks, job.failed_tasks)
    else {
        return Err(
            "DescribeJob gives no task counts for it (ProgressSummary), so its failed tasks can't be counted"
                .to_string(),
        );
    };
    let done = succeeded.saturating_add(failed);
    if done != total {
        return Err(format!(
            "DescribeJob counts {succeeded} succeeded and {failed} failed of {total} task(s): \
             the outcome of {} task(s) is unknown",
            total.abs_diff(done)
        ));
    }
    if total == 0 || failed == 0 {
        // No task ran, or none failed by S3's own count (DescribeJob, which nobody can forge):
        // there is nothing for a report to account for. AWS doesn't say whether a
        // FailedTasksOnly report with no failures is written at all (S3 User Guide, "Examples:
        // completion reports"), so none is required.
        return Ok(());
    }
    let Some(reading) = report else {
        return Err("it writes no completion report, so its failed tasks can't be known".into());
    };
    if !reading.found {
        return Err(format!(
            "its completion report is missing: there is no {} (Batch Operations writes one for \
             every job that ran a task); DescribeJob counts {failed} failed task(s)",
            reading.manifest_uri()
        ));
    }
    let listed = rows.distinct_of_source();
    if listed < failed {
        let mut why = format!(
            "the completion report {} lists {listed} distinct failed task(s) of s3://{}, but \
             DescribeJob counts {failed}",
            reading.manifest_uri(),
            rows.source_bucket
        );
        let others = rows.rows().saturating_sub(listed);
        if others > 0 {
            why.push_str(&format!(
                "; {others} more failed row(s) repeat a task or name another bucket"
            ));
        }
        if reading.stats.unreadable > 0 {
            why.push_str(&format!(
                "; {} row(s) could not be read",
                reading.stats.unreadable
            ));
        }
        return Err(why);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::delta::{RunJob, RunJobKind};
    use crate::report::jobs::{JobManifestRef, ReportLocation};
    use ferry_listings::inventory::route::RouteStats;
    use ferry_listings::report::results::ParseStats;

    fn spec() -> TransferSpec {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/inventory-driven.toml"),
        )
        .unwrap();
        TransferSpec::from_toml_str(&text).unwrap()
    }

    fn run() -> RunRecord {
        RunRecord {
            run_id: "run-1".into(),
            plan_fingerprint: "fp".into(),
            transfer_name: "t".into(),
            inventory_bucket: "inv".into(),
            manifest_key: "m".into(),
            creation_timestamp_ms: 1,
            previous_run_id: None,
            jobs: vec![RunJob {
                job_id: "job-1".into(),
                kind: RunJobKind::Copy,
                manifest: "s3://inv/dir/ferry-run-1/copy.csv".into(),
                manifest_etag: "\"abc\"".into(),
                client_request_token: "t".into(),
                objects: 3,
                bytes: 3,
            }],
            stats: RouteStats::default(),
            index_key: Some("i".into()),
            index: None,
            index_objects: 3,
        }
    }

    fn job(spec: &TransferSpec) -> JobInfo {
        let mut job = JobInfo::new("job-1", "Complete");
        job.total_tasks = Some(3);
        job.succeeded_tasks = Some(1);
        job.failed_tasks = Some(2);
        job.role_arn = Some(ferry_plan::policy::batch_role::role_arn(spec));
        job.report = Some(ReportLocation {
            enabled: true,
            bucket: spec.report.bucket.clone(),
            prefix: spec.report.prefix.clone(),
            scope: "AllTasks".into(),
        });
        job.manifest = Some(JobManifestRef {
            format: "S3BatchOperations_CSV_20180820".into(),
            fields: vec!["Bucket".into(), "Key".into()],
            object_arn: "arn:aws:s3:::inv/dir/ferry-run-1/copy.csv".into(),
            object_version_id: None,
            etag: "abc".into(),
        });
        job
    }

    fn reading(found: bool) -> ReportReading {
        ReportReading {
            bucket: "reports".into(),
            manifest_key: "r/job-job-1/manifest.json".into(),
            found,
            files_read: Vec::new(),
            bytes_read: 0,
            stats: ParseStats::default(),
        }
    }

    fn failed(bucket: &str, key: &str, version: Option<&str>) -> TaskResult {
        TaskResult {
            bucket: bucket.into(),
            key: key.into(),
            key_as_reported: None,
            version_id: version.map(str::to_string),
            status: TaskStatus::Failed,
            error_code: "AccessDenied".into(),
            http_status: Some(403),
            message: String::new(),
        }
    }

    #[test]
    fn the_runs_own_job_passes_and_every_difference_is_named() {
        let spec = spec();
        let (link, run) = (
            JobRun {
                plan_fingerprint: "fp".into(),
                run_id: "run-1".into(),
            },
            run(),
        );
        let ctx = RunJobContext {
            event_job_id: "job-1",
            transfer_tag: &spec.name,
            plan_tag: "fp",
            spec: &spec,
            link: &link,
            run: &run,
        };
        assert_eq!(check_job_is_the_runs(&job(&spec), &ctx), Ok(()));

        let other_event = RunJobContext {
            event_job_id: "job-2",
            ..ctx
        };
        assert!(check_job_is_the_runs(&job(&spec), &other_event)
            .unwrap_err()
            .contains("not job-2"));
        let other_transfer = RunJobContext {
            transfer_tag: "someone-else",
            ..ctx
        };
        assert!(check_job_is_the_runs(&job(&spec), &other_transfer)
            .unwrap_err()
            .contains("ferry:transfer tag is someone-else"));
        let other_plan = RunJobContext {
            plan_tag: "other",
            ..ctx
        };
        assert!(check_job_is_the_runs(&job(&spec), &other_plan)
            .unwrap_err()
            .contains("ferry:plan tag is other"));

        let mut not_listed = job(&spec);
        not_listed.job_id = "job-9".into();
        let ctx9 = RunJobContext {
            event_job_id: "job-9",
            ..ctx
        };
        assert!(check_job_is_the_runs(&not_listed, &ctx9)
            .unwrap_err()
            .contains("did not record it"));

        let mut other_etag = job(&spec);
        other_etag.manifest.as_mut().unwrap().etag = "zzz".into();
        assert!(check_job_is_the_runs(&other_etag, &ctx)
            .unwrap_err()
            .contains("ETag zzz"));
        let mut no_manifest = job(&spec);
        no_manifest.manifest = None;
        assert!(check_job_is_the_runs(&no_manifest, &ctx).is_err());

        let mut other_role = job(&spec);
        other_role.role_arn = Some("arn:aws:iam::222222222222:role/attacker".into());
        assert!(check_job_is_the_runs(&other_role, &ctx)
            .unwrap_err()
            .contains("role/attacker"));

        let mut other_report = job(&spec);
        other_report.report.as_mut().unwrap().bucket = "elsewhere".into();
        assert!(check_job_is_the_runs(&other_report, &ctx)
            .unwrap_err()
            .contains("s3://elsewhere/"));

        // #18 review: a job that ran fewer (or more) tasks than the run wrote rows did not
        // read the manifest the run counted.
        let mut fewer = job(&spec);
        fewer.total_tasks = Some(2);
        assert!(check_job_is_the_runs(&fewer, &ctx)
            .unwrap_err()
            .contains("counts 2 task(s), but run run-1 wrote 3"));
    }

    /// #16 review: AWS doesn't document that completion reports URL-encode keys. A failed key
    /// read with `%XX` escapes leaves the index under both readings, so whichever AWS means,
    /// the failed object is copied again; it is counted once.
    #[test]
    fn a_failed_key_with_escapes_leaves_the_index_under_both_readings() {
        let source = "src";
        let mut rows = FailedRows::new(source);
        let (tasks, _) = ferry_listings::report::results::parse_all(
            b"src,50%25%20off.txt,,failed,403,AccessDenied,Access Denied\nsrc,plain.txt,,failed,403,AccessDenied,Access Denied\nsrc,a+b.txt,,failed,403,AccessDenied,Access Denied\n",
        );
        for task in &tasks {
            rows.add(task);
        }
        assert_eq!(rows.distinct_of_source(), 3);
        let keys: Vec<String> = rows.into_objects().into_iter().map(|o| o.key).collect();
        assert_eq!(
            keys,
            [
                "50% off.txt",
                "50%25%20off.txt",
                "a b.txt",
                "a+b.txt",
                "plain.txt"
            ]
        );
    }

    #[test]
    fn the_report_must_name_as_many_distinct_failed_tasks_as_describe_job_counts() {
        let spec = spec();
        let job = job(&spec);
        let source = spec.source.bucket.as_str();
        let mut rows = FailedRows::new(source);
        rows.add(&failed(source, "a", None));
        rows.add(&failed(source, "b", Some("null")));
        assert_eq!(
            check_failed_tasks_accounted(&job, Some(&reading(true)), &rows),
            Ok(())
        );

        // A missing report: not accounted, and the message names where it should be.
        let why = check_failed_tasks_accounted(&job, Some(&reading(false)), &rows).unwrap_err();
        assert!(
            why.contains("missing") && why.contains("s3://reports/r/job-job-1/manifest.json"),
            "{why}"
        );
        assert!(check_failed_tasks_accounted(&job, None, &rows).is_err());

        // One row removed; a duplicate, a row of another bucket and unreadable rows don't
        // make up for it.
        let mut short = FailedRows::new(source);
        short.add(&failed(source, "a", None));
        short.add(&failed(source, "a", Some("")));
        short.add(&failed("another-bucket", "b", None));
        let mut damaged = reading(true);
        damaged.stats.unreadable = 5;
        let why = check_failed_tasks_accounted(&job, Some(&damaged), &short).unwrap_err();
        assert!(
            why.contains("lists 1 distinct failed task(s)")
                && why.contains("DescribeJob counts 2")
                && why.contains("2 more failed row(s)")
                && why.contains("5 row(s) could not be read"),
            "{why}"
        );
        // Every named object still leaves the index.
        assert_eq!(short.into_objects().len(), 2);

        // Counts that don't add up, or none at all.
        let mut odd = job.clone();
        odd.succeeded_tasks = Some(0);
        assert!(
            check_failed_tasks_accounted(&odd, Some(&reading(true)), &rows)
                .unwrap_err()
                .contains("the outcome of 1 task(s) is unknown")
        );
        let mut none = job.clone();
        none.failed_tasks = None;
        assert!(check_failed_tasks_accounted(&none, Some(&reading(true)), &rows).is_err());

        // A job none of whose tasks failed (S3's count) needs no report: a FailedTasksOnly
        // report of no failures may never be written.
        let mut clean = job.clone();
        (clean.succeeded_tasks, clean.failed_tasks) = (Some(3), Some(0));
        assert_eq!(
            check_failed_tasks_accounted(&clean, Some(&reading(false)), &FailedRows::new(source)),
            Ok(())
        );
        assert_eq!(
            check_failed_tasks_accounted(&clean, None, &FailedRows::new(source)),
            Ok(())
        );

        // A job without tasks needs no report.
        let mut empty = job;
        (empty.total_tasks, empty.succeeded_tasks, empty.failed_tasks) =
            (Some(0), Some(0), Some(0));
        assert_eq!(
            check_failed_tasks_accounted(&empty, None, &FailedRows::new(source)),
            Ok(())
        );
    }
}
