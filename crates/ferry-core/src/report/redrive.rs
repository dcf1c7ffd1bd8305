//! Redrive: a new job over only the failed tasks of a finished one, once their cause is fixed.
//!
//! The failed rows of the completion report are streamed into a CSV manifest
//! ([`CsvManifestWriter`]) stored at `redrive/<job-id>/manifest.csv` in the state bucket (the
//! stack's bucket policy lets the transfer's Batch Operations role read `redrive/*`), and the
//! job is created with the same operation, role, report and tags as the plan's, plus the tag
//! `ferry:redrive-of`. Its client request token is derived from the plan, the finished job's
//! id and the manifest's ETag, so redriving the same job twice (two e-mails acted on, a
//! redelivered message, a retried Lambda) finds the same job instead of creating another; the
//! redrive is also recorded, and a second request answers with the first one's job.

use serde::{Deserialize, Serialize};

use super::jobs::{ferry_tags, JobOperationKind, JobsApi, ReportObjects};
use super::read::{for_each_failed_task, ReportReadError};
use super::results::TaskStatus;
use super::{load_stored_spec, StoredSpec};
use crate::approval::keys as state_keys;
use crate::aws_names::partition_for_region;
use crate::job::{create_job_request, large_object_job_request, CreateJobRequest, S3Tag};
use crate::launch::{launch, AwsCallError, LaunchApi, LaunchError, LaunchRequest, RetryPolicy};
use crate::manifest::{CsvManifestWriter, ManifestWriteError};
use crate::ports::{is_terminal_job_status, Notifier, StateStore};
use crate::workflow::JobRecord;

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
}

impl From<LaunchError> for RedriveError {
    fn from(e: LaunchError) -> Self {
        RedriveError::Launch(Box::new(e))
    }
}

impl RedriveError {
    pub fn is_retryable(&self) -> bool {
        let cause = match self {
            RedriveError::Aws { cause, .. } => Some(cause),
            RedriveError::Report(r) => r.aws_cause(),
            RedriveError::Launch(l) => return l.is_retryable(),
            _ => None,
        };
        cause.is_some_and(|c| {
            matches!(
                c.kind,
                crate::launch::AwsErrorKind::Throttled | crate::launch::AwsErrorKind::Transient
            )
        })
    }
}

fn aws(what: impl Into<String>) -> impl FnOnce(AwsCallError) -> RedriveError {
    let what = what.into();
    move |cause| RedriveError::Aws { what, cause }
}

/// The failed tasks as a CSV manifest. The column count is fixed by the first failed row:
/// reports of a manifest with version ids carry them on every row.
#[derive(Default)]
struct FailedManifest {
    /// The spec's source bucket: a report row naming any other bucket is not Ferry's task (a
    /// report can be rewritten by whoever may write the report bucket) and is never redriven.
    source_bucket: String,
    writer: Option<CsvManifestWriter<Vec<u8>>>,
    version_ids: bool,
    skipped: u64,
    skipped_examples: Vec<String>,
}

impl FailedManifest {
    fn for_source(bucket: &str) -> Self {
        Self {
            source_bucket: bucket.to_string(),
            ..Self::default()
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
        if self.writer.is_none() {
            self.version_ids = version_id.is_some();
        }
        let with_versions = self.version_ids;
        let writer = self
            .writer
            .get_or_insert_with(|| CsvManifestWriter::new(Vec::new(), with_versions));
        if let Err(e) = writer.write(bucket, key, version_id) {
            self.skip(e);
        }
    }

    fn skip(&mut self, e: ManifestWriteError) {
        self.skipped += 1;
        if self.skipped_examples.len() < MAX_DESCRIBED_SKIPS {
            self.skipped_examples.push(e.to_string());
        }
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
    P: JobsApi + ReportObjects + StateStore + LaunchApi + Notifier + Sync,
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
    P: JobsApi + ReportObjects + StateStore + LaunchApi + Sync,
{
    let tags = ports
        .job_tags(account_id, job_id)
        .await
        .map_err(aws(format!("reading the tags of job {job_id}")))?;
    let (_, fingerprint) = ferry_tags(&tags).ok_or_else(|| RedriveError::NotFerrys {
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

    let mut failed = FailedManifest::for_source(&stored.spec.source.bucket);
    let reading = for_each_failed_task(ports, &location, job_id, &mut |task| {
        if task.status == TaskStatus::Failed {
            failed.add(&task.bucket, &task.key, task.version_id.as_deref());
        }
    })
    .await?;
    if !reading.found {
        return Err(RedriveError::NoReport {
            job_id: job_id.to_string(),
        });
    }
    let (skipped, skipped_examples, version_ids) =
        (failed.skipped, failed.skipped_examples, failed.version_ids);
    let Some(writer) = failed.writer else {
        return Ok(RedriveOutcome::NothingToRedrive {
            job_id: job_id.to_string(),
        });
    };
    let (body, counts) = writer
        .finish()
        .map_err(|e| RedriveError::Manifest(e.to_string()))?;
    if counts.rows == 0 {
        return Ok(RedriveOutcome::NothingToRedrive {
            job_id: job_id.to_string(),
        });
    }
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
        tasks: counts.rows,
        manifest_uri: format!("s3://{}/{manifest_key}", ctx.state_bucket),
        manifest_etag: launched.manifest_etag.clone(),
        skipped,
        skipped_examples,
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

/// State records are pretty JSON, like the rest of the state bucket.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(m: FailedManifest) -> String {
        let (body, _) = m.writer.unwrap().finish().unwrap();
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn version_ids_follow_the_first_failed_row() {
        let mut m = FailedManifest::for_source("src");
        m.add("src", "a b", Some("v1"));
        m.add("src", "c", None);
        assert!(m.version_ids);
        // A task of a null version (no id in the report) is written as `null`.
        assert_eq!(written(m), "src,a%20b,v1\nsrc,c,null\n");

        let mut m = FailedManifest::for_source("src");
        m.add("src", "a", None);
        m.add("src", "b", Some("v2"));
        m.add("other-bucket", "c", None);
        assert!(!m.version_ids);
        assert_eq!(m.skipped, 2);
        assert!(
            m.skipped_examples[0].contains("row 2"),
            "{:?}",
            m.skipped_examples
        );
        assert!(
            m.skipped_examples[1].contains("other-bucket")
                && m.skipped_examples[1].contains("not the transfer's source bucket"),
            "{:?}",
            m.skipped_examples
        );
        assert_eq!(written(m), "src,a\n");
    }

    /// A report row of another bucket is never redriven, even as the first row (a rewritten
    /// report must not pick what the batch role copies).
    #[test]
    fn only_the_source_buckets_tasks_are_redriven() {
        let mut m = FailedManifest::for_source("src");
        m.add("someone-elses", "secret", None);
        m.add("src", "a", None);
        assert_eq!(m.skipped, 1);
        assert_eq!(written(m), "src,a\n");
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
