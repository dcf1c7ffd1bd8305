//! Redrive: a new job over only the failed tasks of a finished one, once their cause is fixed.
//!
//! What may be redriven (#15 item 8): the report bucket can be written by others, and the
//! redrive message can be sent by anyone who may invoke approval-handler, so neither is proof
//! of anything. A redrive therefore
//!
//! - refuses a job whose plan (its `ferry:plan` tag) has no recorded `approve` decision
//!   (`decisions/<fingerprint>.json`): a redrive is never the first copy of an unapproved plan;
//! - refuses a job of a plan that is not the stack's current one (`plans/current.json`, #15
//!   items 2 and 5): a replaced plan, approved once, copies nothing more;
//! - re-copies only tasks of the job's own manifest ([`super::job_manifest`]): the failed rows
//!   of the report (at most [`MAX_REDRIVE_TASKS`]) are kept as digests, the manifest DescribeJob
//!   names is streamed once (pinned to its recorded ETag), and the manifest's own rows that
//!   failed become the redrive manifest. Report rows not in the job's manifest are counted and
//!   described in the outcome and e-mail, never redriven.
//!
//! The selected rows are written as a CSV manifest
//! ([`ferry_listings::manifest::CsvManifestWriter`]) stored at `redrive/<job-id>/manifest.csv` in the state bucket (the
//! stack's bucket policy lets the transfer's Batch Operations role read `redrive/*`), and the
//! job is created with the same operation, role, report and tags as the plan's, plus the tag
//! `ferry:redrive-of`. Its client request token is derived from the plan, the finished job's
//! id and the manifest's ETag, so redriving the same job twice (two e-mails acted on, a
//! redelivered message, a retried Lambda) finds the same job instead of creating another; the
//! redrive is also recorded, and a second request answers with the first one's job.

use serde::{Deserialize, Serialize};

use super::job_manifest::{
    select_failed_rows, FailedTasks, JobManifestError, MAX_DESCRIBED, MAX_REDRIVE_TASKS,
};
use super::jobs::{ferry_tags, JobOperationKind, JobsApi, ManifestObjects, ReportObjects};
use super::read::{for_each_failed_task, ReportReadError};
use super::{load_stored_spec, StoredSpec};
use crate::aws_error::{AwsCallError, AwsCaused, RetryPolicy};
use crate::launch::{launch, LaunchError, LaunchRequest};
use crate::ports::LaunchApi;
use ferry_listings::report::results::TaskStatus;
use ferry_plan::approval::keys as state_keys;
use ferry_plan::aws_names::partition_for_region;
use ferry_plan::job::{create_job_request, large_object_job_request, CreateJobRequest, S3Tag};

use crate::ports::{is_terminal_job_status, Notifier, StateStore};
use crate::workflow::{JobRecord, WorkflowError};
use ferry_plan::Plan;

/// Tag on a redrive job naming the job it redrives.
pub const REDRIVE_OF_TAG: &str = "ferry:redrive-of";
/// Failed rows the writer refused (mixed buckets, say), described in the outcome; all counted.
const MAX_DESCRIBED_SKIPS: usize = 10;

pub mod keys {
    pub fn manifest(job_id: &str) -> String {
        format!("redrive/{job_id}/manifest.csv")
    }
    pub fn record(job_id: &str) -> String {
        format!("redrive/{job_id}/redrive.json")
    }
}

#[derive(Debug, Clone)]
pub struct RedriveContext {
    pub state_bucket: String,
    /// The job region (the destination region): the state bucket is there too.
    pub region: String,
    pub retry: RetryPolicy,
}

/// A redrive that happened, stored at `redrive/<job-id>/redrive.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveRecord {
    pub transfer_name: String,
    pub redriven_job_id: String,
    pub new_job_id: String,
    pub tasks: u64,
    pub manifest_uri: String,
    pub manifest_etag: String,
    /// Failed rows that could not go into the manifest, counted (see `skipped_examples`).
    pub skipped: u64,
    #[serde(default)]
    pub skipped_examples: Vec<String>,
    /// Failed rows of the report naming a task that is not in the job's own manifest (a report
    /// rewritten in the report bucket): counted, described, never redriven.
    #[serde(default)]
    pub not_in_manifest: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_in_manifest_examples: Vec<String>,
    /// The plan asks for confirmation: the new job waits in Suspended.
    #[serde(default)]
    pub awaits_confirmation: bool,
}

impl RedriveRecord {
    /// The e-mail announcing the new job.
    pub fn email(&self) -> (String, String) {
        let mut body = format!(
            "Ferry started job {} for transfer {}: it copies again the {} task(s) that failed in job {}.\n\
             Manifest: {}\n",
            self.new_job_id, self.transfer_name, self.tasks, self.redriven_job_id, self.manifest_uri
        );
        if self.skipped > 0 {
            body.push_str(&format!(
                "{} failed row(s) of the report could not go into the manifest: {}\n",
                self.skipped,
                self.skipped_examples.join("; ")
            ));
        }
        if self.not_in_manifest > 0 {
            body.push_str(&format!(
                "{} failed row(s) of the report name a task that is not in job {}'s manifest, so they were \
                 not redriven (the report may have been rewritten in the report bucket: find out who wrote \
                 it): {}\n",
                self.not_in_manifest,
                self.redriven_job_id,
                self.not_in_manifest_examples.join("; ")
            ));
        }
        if self.awaits_confirmation {
            body.push_str(
                "The job waits in Suspended for your confirmation (a separate e-mail says how).\n",
            );
        }
        (
            format!(
                "Ferry {}: redrive of job {} started as {}",
                self.transfer_name, self.redriven_job_id, self.new_job_id
            ),
            body,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveOutcome {
    /// The new job, as recorded with the plan's jobs.
    Launched {
        record: RedriveRecord,
        job: JobRecord,
    },
    /// This job was redriven before: the earlier redrive's record.
    AlreadyRedriven(RedriveRecord),
    /// The report lists no failed task.
    NothingToRedrive { job_id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("{what}: {cause}")]
    Aws { what: String, cause: AwsCallError },
    #[error("job {job_id} is not one of Ferry's (it has no ferry:transfer tag): redrive it with the S3 console")]
    NotFerrys { job_id: String },
    #[error("job {job_id} is {status}: only a finished job (Complete, Failed, Cancelled) can be redriven")]
    NotFinished { job_id: String, status: String },
    #[error("job {job_id} wrote no completion report, so its failed tasks are unknown: create a new job from the plan instead")]
    NoReport { job_id: String },
    #[error(
        "the plan of job {job_id} ({fingerprint}) is not in the state bucket (plans/{fingerprint}.json): \
         redrive needs the plan's operation and role; update the stack to store it again"
    )]
    PlanMissing { job_id: String, fingerprint: String },
    #[error("job {job_id} runs {operation}, which Ferry doesn't launch")]
    UnsupportedOperation { job_id: String, operation: String },
    #[error(transparent)]
    Report(#[from] ReportReadError),
    #[error(transparent)]
    Launch(Box<LaunchError>),
    #[error("the large-object job settings don't fit UserArguments: {0}")]
    UserArguments(String),
    #[error("writing the redrive manifest: {0}")]
    Manifest(String),
    #[error(
        "the plan of job {job_id} ({fingerprint}) has no recorded approval (decisions/{fingerprint}.json in \
         the state bucket): a redrive re-copies tasks of an approved plan only, never a plan's first copy. \
         Approve the plan with the approve command from its instructions e-mail first"
    )]
    NotApproved { job_id: String, fingerprint: String },
    #[error(
        "job {job_id} belongs to plan {fingerprint}, which is not the stack's current plan (that is {current}: \
         plans/current.json in the state bucket): the stack was updated since, and a replaced plan copies \
         nothing more, so nothing was redriven. Copy the failed objects with the current plan instead"
    )]
    NotCurrentPlan {
        job_id: String,
        fingerprint: String,
        current: String,
    },
    #[error("the stack's current plan could not be read (plans/current.json): {0}; nothing was redriven")]
    CurrentPlanUnreadable(String),
    #[error(
        "the completion report of job {job_id} lists more than {limit} failed tasks: a redrive carries at most \
         {limit}. Fix the cause, then create a new job from the plan (`ferry apply`) instead"
    )]
    TooManyFailed { job_id: String, limit: usize },
    #[error(
        "job {job_id} is not one of this plan's: it is tagged for transfer {transfer:?} and runs as {role_arn:?}, \
         but plan {plan_transfer:?} runs as {plan_role_arn:?}. Someone tagged another job with this plan's \
         fingerprint (s3:PutJobTagging): nothing was redriven"
    )]
    NotThisPlans {
        job_id: String,
        transfer: String,
        role_arn: String,
        plan_transfer: String,
        plan_role_arn: String,
    },
    #[error(
        "job {job_id} is not recorded as launched for plan {fingerprint} (jobs/{fingerprint}/{job_id}.json in \
         the state bucket): Ferry redrives only jobs it launched for the plan the job's tags name, so \
         nothing was redriven"
    )]
    NotRecorded { job_id: String, fingerprint: String },
    #[error(
        "the completion report of job {job_id} lists {report_rows} failed task(s), but S3 counted {counted} \
         (DescribeJob): the report was cut after the job wrote it (find out who wrote to the report bucket), \
         so nothing was redriven. Create a new job from the plan instead"
    )]
    ReportIncomplete {
        job_id: String,
        report_rows: u64,
        counted: u64,
    },
    #[error(transparent)]
    JobManifest(#[from] JobManifestError),
    #[error(
        "none of the {count} failed task(s) in the completion report of job {job_id} is in the job's own \
         manifest, so nothing was redriven. The report was changed after the job wrote it (find out who wrote \
         to the report bucket): {}",
        examples.join("; ")
    )]
    NoneInManifest {
        job_id: String,
        count: u64,
        examples: Vec<String>,
    },
}

impl From<LaunchError> for RedriveError {
    fn from(e: LaunchError) -> Self {
        RedriveError::Launch(Box::new(e))
    }
}

impl AwsCaused for RedriveError {
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            RedriveError::Aws { cause, .. } => Some(cause),
            RedriveError::Report(r) => r.aws_cause(),
            RedriveError::JobManifest(m) => m.aws_cause(),
            RedriveError::Launch(l) => l.aws_cause(),
            _ => None,
        }
    }
}

fn aws(what: impl Into<String>) -> impl FnOnce(AwsCallError) -> RedriveError {
    let what = what.into();
    move |cause| RedriveError::Aws { what, cause }
}

/// The failed rows of the report, bounded: only the spec's source bucket's (a report row
/// naming any other bucket is not Ferry's task and is never redriven), at most
/// [`MAX_REDRIVE_TASKS`].
struct FailedRows {
    source_bucket: String,
    tasks: FailedTasks,
    skipped: u64,
    skipped_examples: Vec<String>,
}

impl FailedRows {
    fn for_source(bucket: &str) -> Self {
        Self {
            source_bucket: bucket.to_string(),
            tasks: FailedTasks::default(),
            skipped: 0,
            skipped_examples: Vec::new(),
        }
    }

    fn add(&mut self, bucket: &str, key: &str, version_id: Option<&str>) {
        if bucket != self.source_bucket {
            self.skipped += 1;
            if self.skipped_examples.len() < MAX_DESCRIBED_SKIPS {
                self.skipped_examples.push(format!(
                    "a failed task of bucket {bucket:?}, which is not the transfer's source bucket {:?}: not redriven",
                    self.source_bucket
                ));
            }
            return;
        }
        self.tasks.insert(bucket, key, version_id);
    }
}

/// A report row, as the e-mail describes it (its text is the report's: untrusted).
fn describe_task(key: &str, version_id: Option<&str>) -> String {
    let key = ferry_plan::untrusted::untrusted(key);
    match version_id {
        Some(v) if !v.is_empty() => {
            format!("{key:?} version {:?}", ferry_plan::untrusted::untrusted(v))
        }
        _ => format!("{key:?}"),
    }
}

/// Where the state bucket is (the redrive manifest is written there and named by ARN).
pub trait StateBucketName {
    fn state_bucket(&self) -> &str;
}

/// The new job's request: the plan's operation (Copy, or the large-object LambdaInvoke the
/// finished job ran) over the redrive manifest.
pub fn redrive_request(
    stored: &StoredSpec,
    operation: &JobOperationKind,
    redriven_job_id: &str,
    manifest_object_arn: &str,
    version_ids: bool,
) -> Result<CreateJobRequest, RedriveError> {
    let fp = &stored.fingerprint;
    let template = match operation {
        JobOperationKind::Copy => create_job_request(&stored.spec, fp),
        JobOperationKind::LambdaInvoke { function_arn } => {
            large_object_job_request(&stored.spec, fp, function_arn)
                .map_err(|e| RedriveError::UserArguments(e.to_string()))?
        }
        JobOperationKind::Other { name } => {
            return Err(RedriveError::UnsupportedOperation {
                job_id: redriven_job_id.to_string(),
                operation: name.clone(),
            })
        }
    };
    let mut request = template.with_csv_manifest(manifest_object_arn, version_ids);
    request.description = Some(
        format!(
            "Ferry {}: redrive of job {redriven_job_id} (failed tasks only)",
            stored.spec.name
        )
        .chars()
        .take(256)
        .collect(),
    );
    request.tags.push(S3Tag {
        key: REDRIVE_OF_TAG.to_string(),
        value: redriven_job_id.to_string(),
    });
    Ok(request)
}

/// The seed the redrive job's token is derived from (with the manifest's ETag).
pub fn redrive_token_seed(plan_fingerprint: &str, job_id: &str) -> String {
    format!("{plan_fingerprint}:redrive:{job_id}")
}

/// [`redrive`], then the e-mail announcing a new job.
pub async fn redrive_and_announce<P>(
    ports: &P,
    account_id: &str,
    job_id: &str,
    ctx: &RedriveContext,
) -> Result<RedriveOutcome, RedriveError>
where
    P: JobsApi + ReportObjects + ManifestObjects + StateStore + LaunchApi + Notifier + Sync,
{
    let outcome = redrive(ports, account_id, job_id, ctx).await?;
    if let RedriveOutcome::Launched { record, .. } = &outcome {
        let (subject, body) = record.email();
        ports
            .notify(&subject, &body)
            .await
            .map_err(aws("announcing the redrive"))?;
    }
    Ok(outcome)
}

/// Redrives job `job_id` of `account_id`. See the module documentation.
pub async fn redrive<P>(
    ports: &P,
    account_id: &str,
    job_id: &str,
    ctx: &RedriveContext,
) -> Result<RedriveOutcome, RedriveError>
where
    P: JobsApi + ReportObjects + ManifestObjects + StateStore + LaunchApi + Sync,
{
    let tags = ports
        .job_tags(account_id, job_id)
        .await
        .map_err(aws(format!("reading the tags of job {job_id}")))?;
    let (transfer, fingerprint) = ferry_tags(&tags).ok_or_else(|| RedriveError::NotFerrys {
        job_id: job_id.to_string(),
    })?;
    let fingerprint = fingerprint.unwrap_or_default();
    let job = ports
        .describe_job(account_id, job_id)
        .await
        .map_err(aws(format!("describing job {job_id}")))?;
    if !is_terminal_job_status(&job.status) {
        return Err(RedriveError::NotFinished {
            job_id: job_id.to_string(),
            status: job.status,
        });
    }
    // Never the first copy of a plan: the plan must have been approved (the redrive message
    // itself proves no approver: anyone allowed to invoke approval-handler can forge it).
    if !plan_approved(ports, &fingerprint).await? {
        return Err(RedriveError::NotApproved {
            job_id: job_id.to_string(),
            fingerprint,
        });
    }
    // And only of the stack's current plan: an approval stays recorded after the stack replaced
    // its plan (without a record, a stack of an earlier Ferry: accepted, as
    // `workflow::ensure_current_plan` says why).
    match crate::workflow::ensure_current_plan(ports, &fingerprint).await {
        Ok(()) => {}
        Err(WorkflowError::PlanNotCurrent { current, .. }) => {
            return Err(RedriveError::NotCurrentPlan {
                job_id: job_id.to_string(),
                fingerprint,
                current,
            })
        }
        Err(WorkflowError::Aws { what, cause }) => return Err(RedriveError::Aws { what, cause }),
        Err(other) => return Err(RedriveError::CurrentPlanUnreadable(other.to_string())),
    }
    if let Some(bytes) = ports
        .get(&keys::record(job_id))
        .await
        .map_err(aws("reading an earlier redrive"))?
    {
        if let Ok(record) = serde_json::from_slice::<RedriveRecord>(&bytes) {
            return Ok(RedriveOutcome::AlreadyRedriven(record));
        }
    }
    let location =
        job.report
            .clone()
            .filter(|r| r.enabled)
            .ok_or_else(|| RedriveError::NoReport {
                job_id: job_id.to_string(),
            })?;
    let stored = load_stored_spec(ports, &fingerprint)
        .await
        .map_err(aws("reading the stored plan"))?
        .ok_or_else(|| RedriveError::PlanMissing {
            job_id: job_id.to_string(),
            fingerprint: fingerprint.clone(),
        })?;
    // Tags are anyone's to set (s3:PutJobTagging): a job of another transfer re-tagged with
    // this plan's fingerprint must not be redriven with this plan's settings. Ferry's jobs of
    // this plan carry its transfer name and run as its batch role (DescribeJob's RoleArn,
    // which nobody can change after CreateJob).
    let batch_role = Plan::build(&stored.spec)
        .map(|plan| plan.batch_role.arn)
        .unwrap_or_default();
    if transfer != stored.spec.name || job.role_arn.as_deref() != Some(batch_role.as_str()) {
        return Err(RedriveError::NotThisPlans {
            job_id: job_id.to_string(),
            transfer,
            role_arn: job.role_arn.clone().unwrap_or_default(),
            plan_transfer: stored.spec.name.clone(),
            plan_role_arn: batch_role,
        });
    }

    // And Ferry launched it for this plan: every launch (FirstJob, an inventory run, a
    // redrive) records `jobs/<fingerprint>/<job>.json` in the state bucket, which only the
    // stack's functions write. Tags and role alone would let a job of an earlier plan of this
    // transfer, re-tagged, be redriven under this plan.
    let recorded = ports
        .get(&state_keys::job(&fingerprint, job_id))
        .await
        .map_err(aws("reading the job's record"))?
        .is_some();
    if !recorded {
        return Err(RedriveError::NotRecorded {
            job_id: job_id.to_string(),
            fingerprint: fingerprint.clone(),
        });
    }

    let mut failed = FailedRows::for_source(&stored.spec.source.bucket);
    let reading = for_each_failed_task(ports, &location, job_id, &mut |task| {
        if task.status == TaskStatus::Failed {
            failed.add(&task.bucket, &task.key, task.version_id.as_deref());
        }
    })
    .await?;
    // Distinct failed tasks of the source bucket: repeated rows or rows of other buckets don't
    // make up for rows cut from the report.
    let failed_rows = failed.tasks.len() as u64;
    if !reading.found {
        return Err(RedriveError::NoReport {
            job_id: job_id.to_string(),
        });
    }
    // The report lives where others may write: one with fewer failed rows than the job counted
    // was cut (and a redrive of part of it would be recorded, making the rest "already
    // redriven"). DescribeJob's ProgressSummary is S3's own count.
    if let Some(counted) = job
        .failed_tasks
        .filter(|n| !failed.tasks.over_limit && failed_rows < *n)
    {
        return Err(RedriveError::ReportIncomplete {
            job_id: job_id.to_string(),
            report_rows: failed_rows,
            counted,
        });
    }
    if failed.tasks.over_limit {
        return Err(RedriveError::TooManyFailed {
            job_id: job_id.to_string(),
            limit: MAX_REDRIVE_TASKS,
        });
    }
    let FailedRows {
        source_bucket,
        tasks: mut failed_tasks,
        mut skipped,
        mut skipped_examples,
    } = failed;
    if failed_tasks.is_empty() {
        return Ok(RedriveOutcome::NothingToRedrive {
            job_id: job_id.to_string(),
        });
    }
    // Only the job's own manifest's tasks: streamed once, its failed rows kept.
    let manifest = job
        .manifest
        .as_ref()
        .ok_or_else(|| JobManifestError::NoManifest {
            job_id: job_id.to_string(),
        })?;
    let selection = select_failed_rows(ports, job_id, manifest, &mut failed_tasks).await?;
    skipped += selection.refused_count;
    skipped_examples.extend(
        selection
            .refused
            .iter()
            .take(MAX_DESCRIBED_SKIPS.saturating_sub(skipped_examples.len()))
            .cloned(),
    );
    let not_in_manifest = failed_tasks.unmatched();
    let mut not_in_manifest_examples = Vec::new();
    if not_in_manifest > 0 {
        // Rare (a rewritten report): the report is read again for a few examples, so the
        // failed set needs no keys.
        let mut seen = FailedTasks::default();
        for_each_failed_task(ports, &location, job_id, &mut |task| {
            let version = task.version_id.as_deref();
            if task.status == TaskStatus::Failed
                && task.bucket == source_bucket
                && not_in_manifest_examples.len() < MAX_DESCRIBED
                && failed_tasks.is_unmatched(&task.bucket, &task.key, version)
            {
                let before = seen.len();
                seen.insert(&task.bucket, &task.key, version);
                if seen.len() > before {
                    not_in_manifest_examples.push(describe_task(&task.key, version));
                }
            }
        })
        .await?;
    }
    if selection.rows == 0 {
        if not_in_manifest > 0 {
            return Err(RedriveError::NoneInManifest {
                job_id: job_id.to_string(),
                count: not_in_manifest,
                examples: not_in_manifest_examples,
            });
        }
        return Ok(RedriveOutcome::NothingToRedrive {
            job_id: job_id.to_string(),
        });
    }
    let (body, version_ids, rows) = (selection.body, selection.version_ids, selection.rows);
    let manifest_key = keys::manifest(job_id);
    ports
        .put(&manifest_key, body)
        .await
        .map_err(aws("storing the redrive manifest"))?;
    let manifest_arn = format!(
        "arn:{}:s3:::{}/{manifest_key}",
        partition_for_region(&ctx.region),
        ctx.state_bucket
    );
    let request = redrive_request(&stored, &job.operation, job_id, &manifest_arn, version_ids)?;
    let seed = redrive_token_seed(&stored.fingerprint, job_id);
    let launched = launch(
        ports,
        LaunchRequest {
            template: &request,
            plan_fingerprint: &seed,
            manifest_region: &ctx.region,
            expected_etag: None,
        },
        ctx.retry,
    )
    .await?;
    let record = RedriveRecord {
        transfer_name: stored.spec.name.clone(),
        redriven_job_id: job_id.to_string(),
        new_job_id: launched.job_id.clone(),
        tasks: rows,
        manifest_uri: format!("s3://{}/{manifest_key}", ctx.state_bucket),
        manifest_etag: launched.manifest_etag.clone(),
        skipped,
        skipped_examples,
        not_in_manifest,
        not_in_manifest_examples,
        awaits_confirmation: stored.spec.job.confirmation_required,
    };
    ports
        .put(&keys::record(job_id), to_json(&record))
        .await
        .map_err(aws("recording the redrive"))?;
    // Listed with the plan's jobs, so stack teardown sees (and may cancel) it too.
    let job_record = JobRecord {
        job_id: launched.job_id.clone(),
        plan_fingerprint: stored.fingerprint.clone(),
        account_id: account_id.to_string(),
        region: ctx.region.clone(),
        manifest_etag: launched.manifest_etag,
        client_request_token: launched.client_request_token,
    };
    ports
        .put(
            &state_keys::job(&stored.fingerprint, &launched.job_id),
            to_json(&job_record),
        )
        .await
        .map_err(aws("recording the redrive job"))?;
    Ok(RedriveOutcome::Launched {
        record,
        job: job_record,
    })
}

/// Whether plan `fingerprint` has a recorded `approve` decision (`decisions/<fingerprint>.json`,
/// written by approval-handler when the approve command is taken: ferry-flows workflow).
async fn plan_approved<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<bool, RedriveError> {
    if fingerprint.is_empty() {
        return Ok(false);
    }
    let Some(bytes) = ports
        .get(&state_keys::plan_decision(fingerprint))
        .await
        .map_err(aws("reading the plan's approval"))?
    else {
        return Ok(false);
    };
    let decision = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    let approved = decision.as_ref().is_some_and(|d| {
        d.get("decision").and_then(serde_json::Value::as_str) == Some("approve")
            && d.get("plan_fingerprint")
                .and_then(serde_json::Value::as_str)
                == Some(fingerprint)
    });
    if !approved {
        return Ok(false);
    }
    // Only an approval taken since the plan became current counts (a plan made current again
    // needs a fresh one: workflow::approval_in_force); a plan that is not current at all is
    // refused next, with its own reason (`ensure_current_plan`).
    let at = decision
        .as_ref()
        .and_then(|d| d.get("at_unix"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let current = crate::workflow::current_plan(ports)
        .await
        .map_err(|e| RedriveError::CurrentPlanUnreadable(e.to_string()))?;
    Ok(match current {
        Some(c) if c.fingerprint == fingerprint => at >= c.since_unix,
        _ => true,
    })
}

/// State records are pretty JSON, like the rest of the state bucket.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report row of another bucket is never redriven, even as the first row (a rewritten
    /// report must not pick what the batch role copies).
    #[test]
    fn only_the_source_buckets_tasks_are_kept() {
        let mut m = FailedRows::for_source("src");
        m.add("someone-elses", "secret", None);
        m.add("src", "a", None);
        m.add("src", "a", None);
        assert_eq!(m.skipped, 1);
        assert!(
            m.skipped_examples[0].contains("not the transfer's source bucket"),
            "{:?}",
            m.skipped_examples
        );
        assert_eq!(m.tasks.len(), 1);
    }

    #[test]
    fn the_token_seed_names_plan_and_job() {
        assert_eq!(redrive_token_seed("f00d", "j-1"), "f00d:redrive:j-1");
        assert_ne!(
            redrive_token_seed("f00d", "j-1"),
            redrive_token_seed("f00d", "j-2")
        );
    }
}
