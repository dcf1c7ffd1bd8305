//! The job monitor's workflow: a Batch Operations `JobStatusChanged` event in, a message a
//! person can act on out.
//!
//! Only Ferry's jobs (tag `ferry:transfer`) of plans stored in this stack's state bucket (tag
//! `ferry:plan`) are handled; others are ignored with a log line by the caller. A terminal job (Complete, Failed, Cancelled) gets its summary: the report is read,
//! failures grouped by cause with their fixes, the full breakdown stored in the state bucket and
//! a short e-mail published. A job suspended awaiting confirmation gets the commands to confirm
//! or cancel it. EventBridge delivers at least once, so each (job, status) is announced once: a
//! conditional write claims it, and is given back if announcing fails so a retry can.
//!
//! A job of an inventory run also ends that run ([`crate::inventory::delta::job_finished_with`]):
//! its end moves the delta state forward only if the job is the run's own and its report
//! accounts for every failed task, as DescribeJob describes the job ([`super::accounting`]);
//! nothing the event says counts. Otherwise the run is recorded as not committed and the e-mail
//! says why.

use serde::Serialize;
use serde_json::Value;

use super::accounting::{
    check_failed_tasks_accounted, check_job_is_the_runs, FailedRows, RunJobContext,
};
use super::jobs::{ferry_tags, JobInfo, JobsApi, ReportObjects};
use super::read::{for_each_failed_task, ReportReadError};
use super::summary::{thousands, FailureTally, JobSummary, RedriveHint, SummaryInput};
use super::{load_stored_spec, StoredSpec};
use crate::aws_error::{AwsCallError, AwsCaused};
use crate::inventory::delta;
use crate::inventory::delta::{CommitOutcome, DeltaError, FailedTasks, JobFinished};
use crate::ports::{
    describe_undo_failures, is_terminal_job_status, undo_by_delete, Notifier, StateStore,
    UndoFailure,
};
use ferry_plan::spec::TransferSpec;

/// A job status change, from the CloudTrail event EventBridge delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatusEvent {
    pub account_id: String,
    pub region: String,
    pub job_id: String,
    pub status: String,
    pub failure_codes: Vec<String>,
    pub status_change_reason: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error(
        "the event is not a Batch Operations JobStatusChanged event (detail.eventName is {0:?}); \
         the rule must match source aws.s3, eventName JobStatusChanged"
    )]
    NotJobStatusChanged(String),
    #[error("the event has no {0}: expected the CloudTrail AWS Service Event shape (see events/job-monitor.json)")]
    Missing(&'static str),
    /// The job ARN names another account or Region than the envelope EventBridge filled in:
    /// not a job of the account whose bus delivered it.
    #[error(
        "the event's job {job_arn} is not in the account and Region the event came from \
         ({account}, {region}): ignored"
    )]
    OtherAccount {
        job_arn: String,
        account: String,
        region: String,
    },
}

impl JobStatusEvent {
    /// Reads `detail.serviceEventDetails` of an "AWS Service Event via CloudTrail" event.
    pub fn from_eventbridge(event: &Value) -> Result<Self, EventError> {
        let detail = event.get("detail").ok_or(EventError::Missing("detail"))?;
        let name = detail
            .get("eventName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name != "JobStatusChanged" {
            return Err(EventError::NotJobStatusChanged(name.to_string()));
        }
        let details = detail
            .get("serviceEventDetails")
            .ok_or(EventError::Missing("detail.serviceEventDetails"))?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let job_id = text(details.get("jobId"))
            .filter(|j| !j.is_empty())
            .ok_or(EventError::Missing("detail.serviceEventDetails.jobId"))?;
        // S3 Control's job ids are at most 36 characters of letters, digits and '-' (service
        // model, JobId: `[a-zA-Z0-9\-\_]+`, 5–36); anything else goes nowhere near a state key
        // or an e-mailed command.
        let id_ok = (5..=36).contains(&job_id.len())
            && job_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(EventError::Missing(
                "a valid detail.serviceEventDetails.jobId",
            ));
        }
        let status = text(details.get("status"))
            .filter(|s| !s.is_empty())
            .ok_or(EventError::Missing("detail.serviceEventDetails.status"))?;
        // The account and Region are the envelope's, which EventBridge itself fills in (the
        // account and Region whose bus received the event); the text inside `detail` is
        // CloudTrail's record and is only checked against them.
        let account_id = text(event.get("account"))
            .filter(|a| !a.is_empty())
            .ok_or(EventError::Missing("account"))?;
        let region = text(event.get("region"))
            .filter(|r| !r.is_empty())
            .ok_or(EventError::Missing("region"))?;
        // arn:<partition>:s3:<region>:<account>:job/<id>
        if let Some(arn) = text(details.get("jobArn")).filter(|a| !a.is_empty()) {
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.get(3) != Some(&region.as_str()) || parts.get(4) != Some(&account_id.as_str())
            {
                return Err(EventError::OtherAccount {
                    job_arn: arn,
                    account: account_id,
                    region,
                });
            }
        }
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Self {
            account_id,
            region,
            job_id,
            status,
            failure_codes: strings(details.get("failureCodes")),
            status_change_reason: strings(details.get("statusChangeReason")),
        })
    }
}

/// What the monitor needs besides its ports.
#[derive(Debug, Clone)]
pub struct MonitorContext {
    pub state_bucket: String,
    pub approval_topic_arn: String,
    pub now_unix: u64,
}

/// What one event led to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum MonitorOutcome {
    /// A status nobody needs to hear about (New, Preparing, Active, …).
    Ignored {
        status: String,
    },
    /// Not one of Ferry's jobs.
    NotFerrys {
        job_id: String,
    },
    /// A Ferry job of a plan this stack didn't store (another transfer's stack speaks for it).
    OtherStack {
        job_id: String,
        transfer_name: String,
    },
    /// This (job, status) was announced already (a redelivered event).
    AlreadyAnnounced {
        job_id: String,
        status: String,
    },
    AwaitingConfirmation {
        job_id: String,
    },
    Summarised(Box<JobSummary>),
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{what}: {cause}")]
    Aws { what: String, cause: AwsCallError },
    #[error(transparent)]
    Report(#[from] ReportReadError),
    #[error("recording the inventory run's end: {0}")]
    Delta(#[from] DeltaError),
    /// Announcing failed and the announcement's mark could not be taken back (#16 item 6).
    #[error("{error}\n\nPutting the state back after this failure failed too: {}", describe_undo_failures(.undo))]
    UndoFailed {
        error: Box<MonitorError>,
        undo: Vec<UndoFailure>,
    },
}

impl AwsCaused for MonitorError {
    /// Worth a retry by Lambda: the one rule of [`AwsCaused`].
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            MonitorError::Aws { cause, .. } => Some(cause),
            MonitorError::Report(r) => r.aws_cause(),
            MonitorError::Delta(d) => d.aws_cause(),
            MonitorError::UndoFailed { .. } => None,
        }
    }
}

fn aws(what: impl Into<String>) -> impl FnOnce(AwsCallError) -> MonitorError {
    let what = what.into();
    move |cause| MonitorError::Aws { what, cause }
}

/// State bucket keys of the monitor.
pub mod keys {
    pub fn announced(job_id: &str, status: &str) -> String {
        format!("monitor/{job_id}/{status}.announced")
    }
    pub fn breakdown(job_id: &str) -> String {
        format!("reports/{job_id}/breakdown.json")
    }
}

/// Handles one event. See the module documentation.
pub async fn on_job_status_changed<P>(
    ports: &P,
    event: &JobStatusEvent,
    ctx: &MonitorContext,
) -> Result<MonitorOutcome, MonitorError>
where
    P: JobsApi + ReportObjects + StateStore + Notifier + Sync,
{
    // Cheap filter first: most status changes need no call at all.
    if !(is_terminal_job_status(&event.status) || event.status == "Suspended") {
        return Ok(MonitorOutcome::Ignored {
            status: event.status.clone(),
        });
    }
    let tags = ports
        .job_tags(&event.account_id, &event.job_id)
        .await
        .map_err(aws(format!("reading the tags of job {}", event.job_id)))?;
    let Some((transfer_name, fingerprint)) = ferry_tags(&tags) else {
        return Ok(MonitorOutcome::NotFerrys {
            job_id: event.job_id.clone(),
        });
    };
    // Every stack's monitor sees every Ferry job of the account and Region: a stack speaks only
    // for the jobs of plans it stored, so one job is announced once, by its own stack.
    let stored = load_stored_spec(ports, fingerprint.as_deref().unwrap_or_default())
        .await
        .map_err(aws("reading the stored plan"))?;
    let Some(stored) = stored else {
        return Ok(MonitorOutcome::OtherStack {
            job_id: event.job_id.clone(),
            transfer_name,
        });
    };
    let job = ports
        .describe_job(&event.account_id, &event.job_id)
        .await
        .map_err(aws(format!("describing job {}", event.job_id)))?;
    // The job's status now, not the event's: a late event must not announce a stale state.
    let status = job.status.clone();
    if !(is_terminal_job_status(&status) || status == "Suspended") {
        return Ok(MonitorOutcome::Ignored { status });
    }
    let marker = keys::announced(&job.job_id, &status);
    let claimed = ports
        .put_if_absent(&marker, ctx.now_unix.to_string().into_bytes())
        .await
        .map_err(aws("claiming the announcement"))?;
    if !claimed {
        return Ok(MonitorOutcome::AlreadyAnnounced {
            job_id: job.job_id,
            status,
        });
    }
    let error = match announce(ports, event, &job, &transfer_name, &stored, ctx).await {
        Ok(outcome) => return Ok(outcome),
        Err(error) => error,
    };
    // Give the claim back so Lambda's retry can announce; a mark that stays is said.
    match undo_by_delete(
        ports,
        &marker,
        format!(
            "job {}'s {status} is recorded as announced, so Lambda's retry will not announce it; for an \
             inventory run's job, the run's delta may or may not have moved forward (it does before the \
             e-mail; if it didn't, the next inventory copies the run's objects again). Look at the job with \
             `ferry status {}`",
            job.job_id, job.job_id
        ),
    )
    .await
    {
        Ok(()) => Err(error),
        Err(undo) => Err(MonitorError::UndoFailed {
            error: Box::new(error),
            undo: vec![undo],
        }),
    }
}

async fn announce<P>(
    ports: &P,
    event: &JobStatusEvent,
    job: &JobInfo,
    transfer_name: &str,
    stored: &StoredSpec,
    ctx: &MonitorContext,
) -> Result<MonitorOutcome, MonitorError>
where
    P: ReportObjects + StateStore + Notifier + Sync,
{
    if job.status == "Suspended" {
        let (subject, body) = suspended_email(event, job, transfer_name);
        ports
            .notify(&subject, &body)
            .await
            .map_err(aws("announcing the suspended job"))?;
        return Ok(MonitorOutcome::AwaitingConfirmation {
            job_id: job.job_id.clone(),
        });
    }
    let spec: Option<&TransferSpec> = Some(&stored.spec);
    let mut tally = FailureTally::default();
    // A job of an inventory run also ends that run: its failed objects stay out of the delta
    // index (so the next inventory copies them again), and only then may the run advance it.
    let inventory_run = delta::run_of_job(ports, &job.job_id).await?;
    let mut failed_rows = FailedRows::new(&stored.spec.source.bucket);
    // The report where DescribeJob says it is, never where an event would.
    let report = match job.report.as_ref().filter(|r| r.enabled) {
        Some(location) => Some(
            for_each_failed_task(ports, location, &job.job_id, &mut |task| {
                if inventory_run.is_some() {
                    failed_rows.add(&task);
                }
                tally.add(task, spec)
            })
            .await?,
        ),
        None => None,
    };
    let run_note = match &inventory_run {
        Some((link, run)) => {
            // Failed and Cancelled jobs never let their run commit; a Complete one only when its
            // failed tasks are all known.
            let accounted = if job.status == "Complete" {
                let ctx = RunJobContext {
                    event_job_id: &event.job_id,
                    transfer_tag: transfer_name,
                    plan_tag: &stored.fingerprint,
                    spec: &stored.spec,
                    link,
                    run,
                };
                check_job_is_the_runs(job, &ctx)
                    .and_then(|()| check_failed_tasks_accounted(job, report.as_ref(), &failed_rows))
            } else {
                Ok(())
            };
            let objects = failed_rows.into_objects();
            let failed = match &accounted {
                Ok(()) => FailedTasks::Accounted(&objects),
                Err(why) => FailedTasks::Unaccounted(why),
            };
            let finished =
                delta::job_finished_with(ports, &job.job_id, &job.status, failed).await?;
            run_note(&finished, event, ctx)
        }
        None => None,
    };
    let breakdown_key = keys::breakdown(&job.job_id);
    let summary = JobSummary::build(
        SummaryInput {
            job,
            transfer_name: Some(transfer_name),
            spec,
            report,
            bytes: None,
            now_unix: ctx.now_unix,
            breakdown_uri: Some(format!("s3://{}/{breakdown_key}", ctx.state_bucket)),
            redrive: Some(redrive_hint(event, &job.job_id, ctx)),
        },
        &tally,
    );
    ports
        .put(
            &breakdown_key,
            serde_json::to_vec_pretty(&summary).unwrap_or_default(),
        )
        .await
        .map_err(aws("storing the breakdown"))?;
    let (mut subject, mut body) = summary.email();
    if let Some(note) = run_note {
        if note.needs_attention {
            subject.push_str("; inventory run NOT recorded as copied");
        }
        body.push_str(&format!("\n{}\n", note.text));
    }
    ports
        .notify(&subject, &body)
        .await
        .map_err(aws("publishing the summary"))?;
    Ok(MonitorOutcome::Summarised(Box::new(summary)))
}

/// What the summary says about the job's inventory run.
struct RunNote {
    text: String,
    /// The run was not recorded as copied for a reason a person must look at.
    needs_attention: bool,
}

/// A paragraph for the summary on what the job's end did to its inventory run's delta state.
fn run_note(
    finished: &JobFinished,
    event: &JobStatusEvent,
    ctx: &MonitorContext,
) -> Option<RunNote> {
    let text = match finished {
        JobFinished::NotAnInventoryJob | JobFinished::NotTerminal => return None,
        JobFinished::Waiting { run_id, remaining } => format!(
            "Inventory run {run_id}: {remaining} other job(s) of this run still running; the delta state advances when all complete."
        ),
        JobFinished::RunFailed { run_id, status } => format!(
            "Inventory run {run_id}: {status}, so the delta state stays where it was: the next inventory copies this run's objects again."
        ),
        JobFinished::NotAccounted { run_id, job_id, why } => {
            let (r, a) = (&event.region, &event.account_id);
            return Some(RunNote {
                needs_attention: true,
                text: format!(
                    "Inventory run {run_id} is NOT recorded as copied: the failed tasks of job {job_id} \
                     are not all known, because {why}.\n\
                     Nothing that may not have been copied is recorded as copied: the delta state stays \
                     where it was, so the next inventory copies this run's objects again. Until then \
                     some of them may be missing from the destination.\n\
                     What to do: find out why. Batch Operations writes the completion report itself, so \
                     a missing report or missing rows mean someone else deleted or rewrote it: check who \
                     may write the report bucket (docs/security.md). Compare with what DescribeJob says:\n  \
                     aws s3control describe-job --region {r} --account-id {a} --job-id {job_id}\n\
                     Then wait for the next inventory, or copy the failed tasks now once the report is \
                     whole again: ferry redrive {job_id} --region {r} --account-id {a} --state-bucket {bucket}\n",
                    // DescribeJob's text, tags and report paths: escaped like any text from outside.
                    why = ferry_plan::untrusted::untrusted(why),
                    bucket = ctx.state_bucket,
                ),
            });
        }
        JobFinished::Commit { run_id, outcome } => match outcome {
            CommitOutcome::Committed { objects, dropped } => format!(
                "Inventory run {run_id}: complete; the delta state now holds {} object(s){}.",
                thousands(*objects),
                if *dropped > 0 {
                    format!(", leaving out {} whose task failed (the next inventory copies them again)", thousands(*dropped as u64))
                } else {
                    String::new()
                }
            ),
            CommitOutcome::AlreadyCommitted => format!("Inventory run {run_id}: already recorded."),
            CommitOutcome::Superseded { current_run_id } => format!(
                "Inventory run {run_id}: complete, but the newer run {current_run_id} already advanced the delta state; it stays."
            ),
            CommitOutcome::NotTracked => format!("Inventory run {run_id}: complete (delta copies are off)."),
        },
    };
    Some(RunNote {
        text,
        needs_attention: false,
    })
}

fn redrive_hint(event: &JobStatusEvent, job_id: &str, ctx: &MonitorContext) -> RedriveHint {
    RedriveHint {
        cli: format!(
            "ferry redrive {job_id} --region {} --account-id {} --state-bucket {}",
            event.region, event.account_id, ctx.state_bucket
        ),
        sns: format!(
            "aws sns publish --region {} --topic-arn {} --message '{{\"action\":\"redrive\",\"job_id\":\"{job_id}\"}}'",
            event.region, ctx.approval_topic_arn
        ),
    }
}

fn suspended_email(event: &JobStatusEvent, job: &JobInfo, transfer_name: &str) -> (String, String) {
    // The name is the job's ferry:transfer tag: escaped like any text from outside.
    let transfer_name = ferry_plan::untrusted::untrusted(transfer_name);
    let (r, a, j) = (&event.region, &event.account_id, &job.job_id);
    let tasks = job
        .total_tasks
        .map_or("an unknown number of".to_string(), thousands);
    let subject = format!("Ferry {transfer_name}: job {j} awaits your confirmation");
    let body = format!(
        "Job {j} of transfer {transfer_name} is Suspended{cause}: it has read its manifest ({tasks} tasks) and \
         waits for confirmation before copying anything. A job left suspended for 30 days fails.\n\n\
         Look at it:\n  aws s3control describe-job --region {r} --account-id {a} --job-id {j}\n\
         Let it run:\n  aws s3control update-job-status --region {r} --account-id {a} --job-id {j} --requested-job-status Ready\n\
         Or cancel it:\n  aws s3control update-job-status --region {r} --account-id {a} --job-id {j} --requested-job-status Cancelled\n\n\
         Follow it with: ferry status {j} --region {r} --account-id {a}\n",
        cause = job
            .suspended_cause
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_fields_come_from_the_envelope_and_the_job_arn_must_agree() {
        let event = serde_json::json!({
            "account": "222222222222", "region": "eu-west-1",
            "detail": {"eventName": "JobStatusChanged", "serviceEventDetails": {
                "jobId": "job-1", "status": "Failed",
                "failureCodes": ["X"], "statusChangeReason": ["why"]}}
        });
        let parsed = JobStatusEvent::from_eventbridge(&event).unwrap();
        assert_eq!(
            (
                parsed.account_id.as_str(),
                parsed.region.as_str(),
                parsed.job_id.as_str()
            ),
            ("222222222222", "eu-west-1", "job-1")
        );
        assert_eq!(parsed.failure_codes, ["X"]);
        // The envelope decides; a job ARN naming another account or Region is refused.
        let mut with_arn = event.clone();
        with_arn["detail"]["serviceEventDetails"]["jobArn"] =
            "arn:aws:s3:eu-west-1:222222222222:job/job-1".into();
        assert!(JobStatusEvent::from_eventbridge(&with_arn).is_ok());
        for other in [
            "arn:aws:s3:us-west-2:222222222222:job/job-1",
            "arn:aws:s3:eu-west-1:333333333333:job/job-1",
        ] {
            with_arn["detail"]["serviceEventDetails"]["jobArn"] = other.into();
            assert!(matches!(
                JobStatusEvent::from_eventbridge(&with_arn),
                Err(EventError::OtherAccount { .. })
            ));
        }
        let mut odd_id = event.clone();
        odd_id["detail"]["serviceEventDetails"]["jobId"] = "../../plans/x".into();
        assert!(JobStatusEvent::from_eventbridge(&odd_id).is_err());
        let mut no_id = event;
        no_id["detail"]["serviceEventDetails"]
            .as_object_mut()
            .unwrap()
            .remove("jobId");
        assert_eq!(
            JobStatusEvent::from_eventbridge(&no_id),
            Err(EventError::Missing("detail.serviceEventDetails.jobId"))
        );
    }
}
