//! One invocation of the large-object copier: a Batch Operations LambdaInvoke request for
//! objects over 5 GiB, each task copied with a multipart server-side copy ([`super::copy`]) and
//! answered `Succeeded`, `TemporaryFailure` (throttling, 5xx, out of time: Batch Operations
//! retries, and the retry resumes the open upload) or `PermanentFailure`. See
//! `docs/large-objects.md`.
//!
//! It works as the transfer's Batch Operations role, the one principal the source account's
//! bucket and key policies name ([`CopierPorts::act_as`]). The role session is named after the
//! task's source object, which lets a retry recognise its upload.
//!
//! The payload is untrusted (#15, item 6): anyone allowed `lambda:InvokeFunction` on the
//! function can send one. Before it acts as the batch role, the copier
//! 1. checks the task's bucket and the job's arguments against what the stack pinned in its
//!    environment ([`super::pins`]);
//! 2. looks up the job the payload names, as its own role, and acts only for an active
//!    LambdaInvoke job of this function, run as the batch role, tagged for this transfer,
//!    created with exactly the payload's arguments ([`super::invoking_job`]; looked up once per
//!    job id and kept [`JOB_CACHE_TTL`]);
//! 3. requires the task's (bucket, key, version id) to be a row of that job's manifest, read
//!    as the batch role with `If-Match` the ETag the job was created with
//!    ([`super::job_manifest`]; the rows are kept per job as hashes, at most
//!    [`MANIFEST_CACHE_ROWS`] over all jobs);
//!
//! and once acting, resumes only uploads its own session initiated ([`super::resume`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_plan::large_object_arguments::LargeObjectCopyArguments;

use crate::aws_error::AwsCallError;
use crate::large_object::copy::{copy_task, CopyClock, CopyContext, CopyTuning, MultipartCopyApi};
use crate::large_object::invoking_job::{
    check_invoking_job, InvokingJob, JobExpectations, JobRefusal,
};
use crate::large_object::job_manifest::{
    FetchedManifest, ManifestLocation, ManifestRefusal, ManifestRows, MAX_MANIFEST_BYTES,
    MAX_MANIFEST_ROWS,
};
use crate::large_object::parts::{PartSizing, MIB};
use crate::large_object::pins::{CopierPins, PinError};
use crate::large_object::resume::{session_name, SessionIdentity};
use crate::large_object::task::{
    InvocationRequest, InvocationResponse, RawTask, ResultCode, TaskResult,
};

/// How long a job looked up with DescribeJob is trusted before it is looked up again (its
/// status and tags can change; its function, role, arguments and manifest can't). This is the
/// window in which a warm execution environment still acts for a job that has just finished or
/// been cancelled: only for a task its manifest lists, with its pinned settings, which is what
/// the job itself would have done. It is not zero so that a burst of quick tasks (each a
/// separate invocation) doesn't become a burst of DescribeJob calls.
pub const JOB_CACHE_TTL: Duration = Duration::from_secs(30);
/// Jobs kept at most; a stack runs a handful.
const JOB_CACHE_ENTRIES: usize = 64;
/// Manifest rows kept over all cached jobs (16-byte hashes: about 32 MiB with the set's
/// overhead); the oldest jobs' rows are dropped first, and read again when needed.
pub const MANIFEST_CACHE_ROWS: usize = 2 * MAX_MANIFEST_ROWS;

/// How the copier gets S3 access as the Batch Operations role, and looks up jobs as itself.
pub trait CopierPorts: Send + Sync + 'static {
    type Api: MultipartCopyApi;
    /// The batch role's session `session_name`: an S3 API acting as it, and who it is.
    fn act_as(
        &self,
        role_arn: &str,
        session_name: &str,
    ) -> impl Future<Output = Result<(Self::Api, SessionIdentity), AwsCallError>> + Send;
    /// DescribeJob and GetJobTagging of `job_id` in `account_id`, with the copier's own role.
    fn describe_job(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> impl Future<Output = Result<InvokingJob, AwsCallError>> + Send;
    /// GetObject of a job's manifest with `api` (acting as the batch role), `If-Match` its
    /// ETag, reading at most `max_bytes`.
    fn read_manifest(
        &self,
        api: &Self::Api,
        location: &ManifestLocation,
        max_bytes: u64,
    ) -> impl Future<Output = Result<FetchedManifest, AwsCallError>> + Send;
}

/// The copier's environment is missing or has a bad value: it doesn't start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("large-object-copier can't start: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// The copier of one execution environment: its ports and pins, and what it keeps between
/// invocations (the jobs it looked up and their manifests' rows).
pub struct InvocationHandler<P> {
    pub ports: P,
    /// The transfer's Batch Operations role (`FERRY_BATCH_ROLE_ARN`).
    pub batch_role_arn: String,
    /// What the stack pinned: the source bucket and every setting of the copies.
    pub pins: CopierPins,
    pub tuning: CopyTuning,
    /// Jobs looked up, by id, with when.
    jobs: Mutex<HashMap<String, (Instant, InvokingJob)>>,
    /// Manifest rows read, by job id, with when they were read (a job's manifest never
    /// changes: kept until room is needed).
    manifests: Mutex<HashMap<String, (Instant, Arc<ManifestRows>)>>,
}

impl<P: CopierPorts> InvocationHandler<P> {
    pub fn new(ports: P, batch_role_arn: String, pins: CopierPins) -> Self {
        Self {
            ports,
            batch_role_arn,
            pins,
            tuning: CopyTuning::default(),
            jobs: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
        }
    }

    /// From the process environment: see [`Self::from_vars`].
    pub fn from_env(ports: P) -> Result<Self, ConfigError> {
        Self::from_vars(ports, |name| std::env::var(name).ok())
    }

    /// Reads `FERRY_BATCH_ROLE_ARN` (required), the pins (`ferry_flows::large_object::pins`,
    /// required as the template sets them), `FERRY_COPY_PARALLELISM` and `FERRY_PART_SIZE_MIB`,
    /// naming every bad value.
    pub fn from_vars(ports: P, var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let role = get("FERRY_BATCH_ROLE_ARN").unwrap_or_else(|| {
            problems.push(
                "environment variable FERRY_BATCH_ROLE_ARN is not set (the batch role to copy as)"
                    .to_string(),
            );
            String::new()
        });
        let pins = CopierPins::from_vars(&var).map_err(|errors| {
            problems.extend(errors.iter().map(PinError::to_string));
        });
        let mut tuning = CopyTuning::default();
        if let Some(p) = get("FERRY_COPY_PARALLELISM") {
            match p.parse::<usize>().ok().filter(|n| (1..=64).contains(n)) {
                Some(n) => tuning.parallelism = n,
                None => problems.push(format!(
                    "FERRY_COPY_PARALLELISM = {p:?}: expected a whole number 1–64"
                )),
            }
        }
        if let Some(mib) = get("FERRY_PART_SIZE_MIB") {
            match mib.parse::<u64>() {
                Ok(mib) => tuning.sizing = PartSizing::with_preferred_part_size(mib * MIB),
                Err(_) => problems.push(format!(
                    "FERRY_PART_SIZE_MIB = {mib:?}: expected a whole number of MiB (5–5120)"
                )),
            }
        }
        match pins {
            Ok(pins) if problems.is_empty() => {
                let mut copier = Self::new(ports, role, pins);
                copier.tuning = tuning;
                Ok(copier)
            }
            _ => Err(ConfigError { problems }),
        }
    }

    /// Every task of one invocation, each answered (see the module's head).
    pub async fn handle_request<C: CopyClock>(
        &self,
        request: &InvocationRequest,
        clock: &C,
    ) -> InvocationResponse {
        let mut results = Vec::with_capacity(request.tasks.len());
        for raw in &request.tasks {
            let result = self.copy_one(request, raw, clock).await;
            tracing::info!(
                job_id = %request.job.id,
                task_id = %result.task_id,
                result_code = ?result.result_code,
                result = %result.result_string,
                "task done"
            );
            results.push(result);
        }
        InvocationResponse::new(request, results)
    }

    /// The job the request names, from the cache while fresh, else from S3 Control.
    async fn invoking_job(&self, job_id: &str) -> Result<InvokingJob, JobRefusal> {
        let cached = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
            .filter(|(at, _)| at.elapsed() < JOB_CACHE_TTL)
            .map(|(_, job)| job.clone());
        if let Some(job) = cached {
            return Ok(job);
        }
        let account = &self.pins.arguments.destination_account;
        // Boxed: the SDK's futures are deep, and the handler's future holds this one.
        let job = Box::pin(self.ports.describe_job(account, job_id))
            .await
            .map_err(|e| JobRefusal::from_lookup(job_id, account, &e))?;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() >= JOB_CACHE_ENTRIES {
            jobs.retain(|_, (at, _)| at.elapsed() < JOB_CACHE_TTL);
            if jobs.len() >= JOB_CACHE_ENTRIES {
                jobs.clear();
            }
        }
        jobs.insert(job_id.to_string(), (Instant::now(), job.clone()));
        Ok(job)
    }

    /// Whether the request comes from one of this stack's jobs (see the module's head); the
    /// job, when it does.
    async fn check_job(&self, request: &InvocationRequest) -> Result<InvokingJob, JobRefusal> {
        let id = &request.job.id;
        if id.trim().is_empty() {
            return Err(JobRefusal::NoJobId);
        }
        // S3 Control's job ids are 5 to 36 of [a-zA-Z0-9-_] (S3 Control API Reference,
        // JobDescriptor.JobId): anything else is refused without a call.
        if !(5..=36).contains(&id.len())
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(JobRefusal::UnknownJob {
                job_id: id.chars().take(64).collect(),
                account_id: self.pins.arguments.destination_account.clone(),
                detail: "not a job id: S3 Control's are 5 to 36 of [a-zA-Z0-9-_]".into(),
            });
        }
        let job = self.invoking_job(&request.job.id).await?;
        let expect = JobExpectations {
            account_id: self.pins.arguments.destination_account.clone(),
            function_arn: self.pins.function_arn.clone(),
            role_arn: self.batch_role_arn.clone(),
            transfer_name: self.pins.transfer_name.clone(),
        };
        check_invoking_job(&job, &expect, request)?;
        Ok(job)
    }

    /// The job's manifest rows, when read before (for this very location).
    fn cached_manifest(
        &self,
        location: &ManifestLocation,
        job_id: &str,
    ) -> Option<Arc<ManifestRows>> {
        self.manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
            .filter(|(_, rows)| rows.location == *location)
            .map(|(_, rows)| rows.clone())
    }

    /// Reads the job's manifest as the batch role (`api`) and keeps its rows.
    async fn read_manifest(
        &self,
        api: &P::Api,
        location: &ManifestLocation,
        job_id: &str,
    ) -> Result<Arc<ManifestRows>, ManifestRefusal> {
        let fetched = Box::pin(self.ports.read_manifest(api, location, MAX_MANIFEST_BYTES))
            .await
            .map_err(|e| ManifestRefusal::from_read(job_id, location, &e))?;
        let rows = Arc::new(ManifestRows::read(
            job_id,
            location,
            &fetched,
            &self.pins.source_bucket,
        )?);
        drop(fetched);
        tracing::info!(job_id, manifest = %location.object_arn, rows = rows.len(), "manifest read");
        let mut manifests = self.manifests.lock().unwrap_or_else(|e| e.into_inner());
        manifests.remove(job_id);
        // Room for this one: the oldest go first.
        let mut total: usize = manifests.values().map(|(_, r)| r.len()).sum();
        while !manifests.is_empty()
            && (total + rows.len() > MANIFEST_CACHE_ROWS || manifests.len() >= JOB_CACHE_ENTRIES)
        {
            let oldest = manifests
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                if let Some((_, r)) = manifests.remove(&id) {
                    total -= r.len();
                }
            }
        }
        manifests.insert(job_id.to_string(), (Instant::now(), rows.clone()));
        Ok(rows)
    }

    /// The task's settings: the job's arguments (schema 2.0), or the pinned ones for a job
    /// that carries none (schema 1.0); either way they must be the pinned settings.
    fn arguments(
        &self,
        user_arguments: Option<&BTreeMap<String, String>>,
    ) -> Result<LargeObjectCopyArguments, String> {
        let Some(args) = user_arguments.filter(|a| !a.is_empty()) else {
            return Ok(self.pins.arguments.clone());
        };
        let arguments =
            LargeObjectCopyArguments::from_user_arguments(args).map_err(|problems| {
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
        self.pins
            .check_arguments(&arguments)
            .map_err(|mismatches| {
                mismatches
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
        Ok(arguments)
    }

    async fn copy_one<C: CopyClock>(
        &self,
        request: &InvocationRequest,
        raw: &RawTask,
        clock: &C,
    ) -> TaskResult {
        let permanent =
            |message: String| TaskResult::new(&raw.task_id, ResultCode::PermanentFailure, message);
        let task = match raw.decode() {
            Ok(task) => task,
            Err(message) => return permanent(message),
        };
        // What the stack pinned: checked first, nothing is called for a payload that differs.
        if let Err(mismatch) = self.pins.check_task(&task) {
            return permanent(mismatch.to_string());
        }
        let arguments = match self.arguments(request.job.user_arguments.as_ref()) {
            Ok(a) => a,
            Err(message) => return permanent(message),
        };
        // Who sent it: one of this stack's jobs, with these very arguments.
        let job = match self.check_job(request).await {
            Ok(job) => job,
            Err(refusal) => {
                let code = if refusal.is_temporary() {
                    ResultCode::TemporaryFailure
                } else {
                    ResultCode::PermanentFailure
                };
                return TaskResult::new(&task.task_id, code, refusal.to_string());
            }
        };
        let refused = |refusal: ManifestRefusal| {
            let code = if refusal.is_temporary() {
                ResultCode::TemporaryFailure
            } else {
                ResultCode::PermanentFailure
            };
            TaskResult::new(&task.task_id, code, refusal.to_string())
        };
        // Which objects: the job's manifest must list the task's (bucket, key, version id).
        let location = match job.manifest.as_ref() {
            Some(manifest) => match ManifestLocation::of(manifest, &job.job_id) {
                Ok(location) => location,
                Err(refusal) => return refused(refusal),
            },
            None => {
                return refused(ManifestRefusal::NoManifest {
                    job_id: job.job_id.clone(),
                })
            }
        };
        // Rows read before are checked before anything is done as the batch role.
        let listed = self.cached_manifest(&location, &job.job_id);
        if let Some(rows) = &listed {
            if let Err(refusal) = rows.check(&task) {
                return refused(refusal);
            }
        }
        let session = session_name(
            &task.bucket,
            &task.key,
            task.version_id.as_deref(),
            &arguments,
        );
        let (api, session) = match self.ports.act_as(&self.batch_role_arn, &session).await {
            Ok(acting) => acting,
            Err(e) => {
                let code = if e.is_retryable() {
                    ResultCode::TemporaryFailure
                } else {
                    ResultCode::PermanentFailure
                };
                return TaskResult::new(
                    &task.task_id,
                    code,
                    format!("sts:AssumeRole {} refused: {e}", self.batch_role_arn),
                );
            }
        };
        if listed.is_none() {
            // Read as the batch role, the identity Batch Operations reads it as; no object of
            // the task is touched before its row is found.
            let rows = match self.read_manifest(&api, &location, &job.job_id).await {
                Ok(rows) => rows,
                Err(refusal) => return refused(refusal),
            };
            if let Err(refusal) = rows.check(&task) {
                return refused(refusal);
            }
        }
        let ctx = CopyContext {
            role_arn: self.batch_role_arn.clone(),
            session,
            arguments,
            tuning: self.tuning,
        };
        let (result, stats) = copy_task(&api, clock, &ctx, &task).await;
        tracing::info!(
            parts_total = stats.parts_total,
            parts_reused = stats.parts_reused,
            parts_copied = stats.parts_copied,
            part_retries = stats.part_retries,
            upload_id = ?stats.upload_id,
            aborted = ?stats.aborted,
            foreign = ?stats.foreign,
            "multipart copy"
        );
        result
    }
}
