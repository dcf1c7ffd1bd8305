//! An event-driven run: a new inventory landed (its `manifest.checksum` was written), so copy
//! what changed — once, however many times and in whatever order the event arrives.
//!
//! [`handle_inventory`] does, in order:
//!
//! 1. Ignore what is not this transfer's inventory: another key than `manifest.checksum`,
//!    another bucket or configuration, another source bucket in `manifest.json`.
//! 2. Claim the run with `If-None-Match: *` on `runs/<run>/claim.json`: the run id is a hash of
//!    plan, inventory manifest key and `manifest.checksum`, so duplicate and concurrent events
//!    find the claim taken and do nothing. A claim left by a crashed run (no `run.json` after
//!    [`CLAIM_TIMEOUT_SECONDS`]) is taken over; the launcher's deterministic client request
//!    token then still gives one job per manifest.
//! 3. Refuse an inventory older than the newest one seen (reported once).
//! 4. Read the data files, a batch at a time (as many as the function has vCPUs, at most half
//!    the work directory), each on its own thread ([`scan_data_files`]): size and MD5 checked,
//!    filtered, routed by size, compared with the last successful run's index.
//! 5. Launch: directly on the inventory's `manifest.json` when nothing was filtered, nothing
//!    is large and no delta applies ([`fast_path`]); otherwise on Ferry's own inventory-format
//!    copy list in the state bucket ([`RunJobContext::launch_parts`]; a CSV manifest beside the
//!    inventory for rows with version ids), and a LambdaInvoke job on `ferry-<run>/large.csv`
//!    for objects over 5 GiB.
//! 6. Record the run, its pending index and its jobs; e-mail a summary. The index becomes the
//!    delta base only once the jobs complete ([`super::delta::job_finished`]).
//!
//! A failure worth retrying (throttling, 5xx) releases the claim and returns an error, so the
//! event's retry runs again. A permanent one (damaged manifest, ORC, missing columns) keeps the
//! claim and is e-mailed once.

use std::future::Future;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use md5::Md5;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::delta::{
    self, keys, CurrentIndex, DeltaError, JobRun, LatestInventory, RunJob, RunJobKind, RunRecord,
    StoredIndex,
};
use super::fanout_records::{
    batches_of, fanout_keys, shape, FanOutEngine, FanOutRun, FanOutSettings, FanOutShape,
    BATCH_BYTES, FANOUT_LAYOUT, MAX_SCAN_BATCHES,
};
use crate::aws_error::{AwsCallError, AwsCaused, AwsErrorKind, RetryPolicy};
use crate::launch::{launch, LaunchError, LaunchRequest};
use crate::ports::LaunchApi;
use crate::ports::{describe_undo_failures, undo_by_delete, Notifier, StateStore, UndoFailure};
use crate::workflow::{JobRecord, StoredPlan, WorkflowError};
use ferry_listings::inventory::copy_manifest::CopyManifestJson;
use ferry_listings::inventory::filter::RowFilter;
use ferry_listings::inventory::index::{DeltaBase, IndexEntry, ObjectIndex};
use ferry_listings::inventory::manifest_json::{InventoryFile, InventoryManifest};
use ferry_listings::inventory::part::md5_matches;
use ferry_listings::inventory::route::{fast_path, FastPath, RouteStats};
use ferry_listings::inventory::row::InventoryError;
use ferry_listings::inventory::scan::{
    scan_data_files, LocalDataFile, ScanInput, ScanTotals, WrittenPart,
};
use ferry_plan::aws_names::partition_for_region;
use ferry_plan::inventory_setup::{InventoryLocation, CHECKSUM_FILE, MANIFEST_FILE};
use ferry_plan::job::{hex, large_object_job_request, CreateJobRequest};
use ferry_plan::plan::Plan;
use ferry_plan::spec::TransferSpec;
use ferry_plan::untrusted::untrusted;

/// A claim without a run record after this long was left by a run that died (Lambda's limit is
/// 15 minutes): another event may take the run over.
pub const CLAIM_TIMEOUT_SECONDS: u64 = 16 * 60;
/// How far ahead of the function's clock an inventory's `creationTimestamp` may be (clock skew).
pub const MAX_CLOCK_AHEAD_SECONDS: u64 = 3600;
/// The most a run reads whole from the inventory bucket (a `manifest.json`, a
/// `manifest.checksum`): a `manifest.json` is a few kilobytes per thousand data files. The
/// adapter refuses a larger object without reading it whole (error code [`OBJECT_TOO_LARGE`]);
/// the run checks again what it got.
pub const MAX_SMALL_OBJECT_BYTES: usize = 16 * 1024 * 1024;
/// [`AwsCallError::code`] of [`InventoryObjects::get_small`] for an object over
/// [`MAX_SMALL_OBJECT_BYTES`].
pub const OBJECT_TOO_LARGE: &str = "ObjectTooLarge";
/// Copy parts uploaded at once (each a PutObject, or a multipart upload past the adapter's
/// threshold).
pub const PART_UPLOADS_AT_ONCE: usize = 8;
/// While a first run may still launch directly on the inventory, its copy parts stay in the
/// work directory rather than in S3, up to this many bytes (gzip); past it they are uploaded and
/// the run launches on Ferry's `manifest.json` (Lambda's `/tmp` is at most 10 GB).
pub const LOCAL_PART_BYTES: u64 = 1 << 30;

/// A small object as one GetObject returned it: the body and the ETag of that very body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallObject {
    pub body: Vec<u8>,
    /// As S3 returned it (quotes allowed); empty when S3 gave none.
    pub etag: String,
}

/// The objects an inventory run reads and writes in the inventory bucket.
pub trait InventoryObjects {
    /// A small object whole (`manifest.json`, `manifest.checksum`) with its ETag; `None` when
    /// absent. An object over [`MAX_SMALL_OBJECT_BYTES`] is an error with code
    /// [`OBJECT_TOO_LARGE`], found without reading it whole.
    fn get_small(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<SmallObject>, AwsCallError>> + Send;
    /// Streams an object into a local file; returns the bytes written. An object over
    /// `max_bytes` is an error with code [`OBJECT_TOO_LARGE`], found from its `Content-Length`
    /// or, failing that, by stopping once more has arrived: never more than `max_bytes` (and one
    /// chunk) on disk.
    fn download(
        &self,
        bucket: &str,
        key: &str,
        to: &Path,
        max_bytes: u64,
    ) -> impl Future<Output = Result<u64, AwsCallError>> + Send;
    /// Uploads a local file (`text/csv`); returns its ETag.
    fn upload(
        &self,
        bucket: &str,
        key: &str,
        from: &Path,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
}

/// What a run needs besides the ports.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// `large-object-copier`'s ARN (env `FERRY_LARGE_OBJECT_COPIER_ARN`).
    pub large_object_function_arn: Option<String>,
    /// Local scratch space (Lambda: `/tmp`); each run uses and removes its own subdirectory.
    pub work_dir: PathBuf,
    pub now_unix: u64,
    pub retry: RetryPolicy,
    /// Data files read at once, one per thread (Lambda: its vCPUs,
    /// [`std::thread::available_parallelism`]); as many are on local disk at a time.
    pub scan_threads: usize,
    /// Bytes the work directory holds (Lambda: the function's ephemeral storage). Half of it
    /// is for downloaded data files: a batch holds no more, and a single data file larger than
    /// that is refused by name.
    pub work_dir_bytes: u64,
    /// The stack's state bucket (`FERRY_STATE_BUCKET`), in the job's Region: Ferry's own
    /// inventory-format copy lists go there (see [`RunJobContext::launch_parts`]).
    pub state_bucket: String,
    /// When the invocation is killed (Lambda's timeout), if known: a run whose data files would
    /// not all be read by then, at the rate of the first ones, stops and says so.
    pub deadline: Option<std::time::Instant>,
    /// The stack's fan-out across functions, when it has one (see [`super::fanout`]).
    pub fan_out: Option<FanOutSettings>,
}

/// The slowest a thread is assumed to read compressed data files before a rate is measured:
/// about a third of the 28 MB/s measured on one thread (`docs/proof.md`, #18).
pub const FLOOR_BYTES_PER_SECOND_PER_THREAD: u64 = 8 * 1024 * 1024;
/// Kept free before the deadline for what follows the scan (index, manifests, launch, e-mail).
pub const AFTER_SCAN_RESERVE: std::time::Duration = std::time::Duration::from_secs(90);

impl RunSettings {
    /// Bytes of data files on local disk at once: half the work directory (the rest is for
    /// the parts and CSV manifests written from them).
    pub fn data_file_budget(&self) -> u64 {
        self.work_dir_bytes / 2
    }
}

/// What an event led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Not an inventory of this transfer (or a test event): nothing done.
    Ignored { reason: String },
    /// The plan is not approved yet: nothing copied (announced once).
    NotApproved { manifest_key: String },
    /// Older than the newest inventory seen: refused (announced once).
    Stale {
        manifest_key: String,
        newest_manifest_key: String,
    },
    /// Another event already claimed this inventory.
    Duplicate { run_id: String },
    /// Refused for good (announced once); the claim is kept so duplicates stay quiet.
    Refused { run_id: String, reason: String },
    /// Jobs launched (or none needed, when nothing changed).
    Ran(Box<RunRecord>),
    /// Too large for one function: handed to the stack's fan-out (see [`super::fanout`]).
    FannedOut {
        run_id: String,
        execution_arn: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error(transparent)]
    Workflow(Box<WorkflowError>),
    #[error(transparent)]
    Launch(Box<LaunchError>),
    #[error("{what}: {cause}")]
    Aws { what: String, cause: AwsCallError },
    #[error("the work directory {path}: {source}")]
    WorkDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    /// A run failed after it launched jobs. It keeps its claim (a second run could launch a
    /// second job), is not committed, and says which jobs run.
    #[error(
        "{error}. This happened after job(s) {} were launched: they run; unless the run was recorded \
         before the failure, it never commits and the next inventory copies its objects again. The \
         inventory is not run a second time (its claim is kept, so no second job is launched)",
        job_ids.join(", ")
    )]
    AfterLaunch {
        job_ids: Vec<String>,
        error: Box<RunError>,
    },
    /// A refusal whose e-mail could not be sent: the reason, for the log, and why it wasn't
    /// sent (the run's claim is given back, so the retry refuses and e-mails again).
    #[error("the inventory was refused ({reason}), and e-mailing that failed: {error}")]
    RefusalNotSent {
        reason: String,
        error: Box<RunError>,
    },
    /// A step failed and putting the state back failed too (#16 item 6): both are said, and
    /// it is not retried (the state left behind would turn the retry away).
    #[error("{error}\n\nPutting the state back after this failure failed too: {}", describe_undo_failures(.undo))]
    UndoFailed {
        error: Box<RunError>,
        undo: Vec<UndoFailure>,
    },
}

impl From<WorkflowError> for RunError {
    fn from(e: WorkflowError) -> Self {
        RunError::Workflow(Box::new(e))
    }
}

impl AwsCaused for RunError {
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            RunError::Aws { cause, .. } => Some(cause),
            RunError::Delta(d) => d.aws_cause(),
            RunError::Workflow(w) => w.aws_cause(),
            RunError::Launch(l) => l.aws_cause(),
            RunError::RefusalNotSent { error, .. } => error.aws_cause(),
            _ => None,
        }
    }

    /// Worth running again later (the event's retry): the AWS rule, or the work directory
    /// (local disk) failing.
    fn is_retryable(&self) -> bool {
        matches!(self, RunError::WorkDir { .. })
            || self.aws_cause().is_some_and(AwsCallError::is_retryable)
    }
}

pub(super) fn aws(what: impl Into<String>) -> impl FnOnce(AwsCallError) -> RunError {
    let what = what.into();
    move |cause| RunError::Aws { what, cause }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    manifest_key: String,
    checksum: String,
    claimed_unix: u64,
}

/// The run id: `hex(sha256("<plan>:<bucket>/<manifest key>:<checksum>"))`, first 32 digits.
/// The checksum is taken as the MD5 it spells ([`canonical_md5`]): `md5_matches` accepts hex in
/// either case and base64, so a rewritten spelling of the same `manifest.checksum` must not make
/// the same inventory a new run (a second claim, a second job).
pub fn run_id(fingerprint: &str, bucket: &str, manifest_key: &str, checksum: &str) -> String {
    let checksum = canonical_md5(checksum).unwrap_or_else(|| checksum.trim().to_string());
    hex(&Sha256::digest(
        format!("{fingerprint}:{bucket}/{manifest_key}:{checksum}").as_bytes(),
    ))[..32]
        .to_string()
}

/// An MD5 as lower-case hex, from the hex (either case) or base64 spelling `md5_matches`
/// accepts; `None` for anything else.
fn canonical_md5(text: &str) -> Option<String> {
    use base64::Engine;
    let text = text.trim();
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(text.to_ascii_lowercase());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .filter(|bytes| bytes.len() == 16)
        .map(|bytes| hex(&bytes))
}

/// Handles one created object for the stored plan `fingerprint`. See the module documentation.
pub async fn handle_inventory<P>(
    ports: &P,
    fingerprint: &str,
    bucket: &str,
    keys_to_try: &[String],
    settings: &RunSettings,
) -> Result<RunOutcome, RunError>
where
    P: StateStore + InventoryObjects + LaunchApi + Notifier + FanOutEngine + Sync,
{
    let (stored, plan) = crate::workflow::load_plan(ports, fingerprint).await?;
    let spec = &stored.spec;
    let ignored = |reason: String| Ok(RunOutcome::Ignored { reason });
    let Some(run_spec) = spec.inventory.clone() else {
        return ignored(format!(
            "transfer {} has no [inventory] section: event-driven runs are off",
            spec.name
        ));
    };
    let Some(location) = InventoryLocation::of(spec) else {
        return ignored(format!(
            "manifest.key {:?} is not an inventory's …/{}/<configuration-id>/<date>/manifest.json",
            spec.manifest.key, spec.source.bucket
        ));
    };
    if bucket != location.bucket {
        return ignored(format!(
            "s3://{bucket} is not this transfer's inventory bucket {}",
            location.bucket
        ));
    }
    let Some(checksum_key) = keys_to_try
        .iter()
        .find(|k| location.is_checksum_key(k))
        .cloned()
    else {
        return ignored(format!(
            "{:?} is not a {CHECKSUM_FILE} under s3://{}/{}<date>/",
            keys_to_try.first().map(String::as_str).unwrap_or(""),
            location.bucket,
            location.dir
        ));
    };
    let inventory_dir = &checksum_key[..checksum_key.len() - CHECKSUM_FILE.len()];
    let manifest_key = format!("{inventory_dir}{MANIFEST_FILE}");

    let checksum = ports
        .get_small(bucket, &checksum_key)
        .await
        .map_err(|cause| {
            too_large_or(
                cause,
                CHECKSUM_FILE,
                format!("reading s3://{bucket}/{checksum_key}"),
            )
        })?
        .map(|o| String::from_utf8_lossy(&o.body).trim().to_string())
        .unwrap_or_default();
    let id = run_id(fingerprint, bucket, &manifest_key, &checksum);

    let decision = plan_decision(ports, fingerprint).await?;
    if decision.as_deref() != Some("approve") {
        let (why, what_now) = if decision.as_deref() == Some("reject") {
            (
                "rejected",
                "It was rejected, so nothing is copied for it; to copy after all, update the stack \
                 (a changed transfer brings a new approval e-mail).",
            )
        } else {
            (
                "not approved yet",
                "Approve it with the command from the instructions e-mail; the next inventory is \
                 then copied.",
            )
        };
        notice_once(
            ports,
            fingerprint,
            &id,
            "not-approved",
            &format!("Ferry {}: inventory not copied ({why})", spec.name),
            &format!(
                "The inventory s3://{bucket}/{} arrived, but the transfer's plan {fingerprint} is {why}, \
                 so nothing was copied. {what_now}",
                untrusted(&manifest_key)
            ),
        )
        .await?;
        return Ok(RunOutcome::NotApproved { manifest_key });
    }

    let manifest_object = match ports.get_small(bucket, &manifest_key).await {
        Ok(Some(object)) => object,
        Ok(None) => {
            return Err(RunError::Aws {
                what: format!("reading s3://{bucket}/{manifest_key}"),
                cause: AwsCallError {
                    // manifest.json is written before manifest.checksum: a retry will find it.
                    kind: AwsErrorKind::Transient,
                    code: "NoSuchKey".to_string(),
                    message: "the inventory's manifest.json is not there (yet)".to_string(),
                },
            });
        }
        Err(cause) if cause.code == OBJECT_TOO_LARGE => {
            let reason = too_large_reason(MANIFEST_FILE, &cause);
            return refuse(ports, spec, fingerprint, &id, &manifest_key, reason).await;
        }
        Err(cause) => return Err(aws(format!("reading s3://{bucket}/{manifest_key}"))(cause)),
    };
    // The plan's own inventory (the first run, FirstJob's) is the one the approver was shown:
    // its manifest.json must still be the ETag the approval recorded (#15 item 13). Later
    // days' inventories were never e-mailed; they have only the checks below.
    if bucket == spec.manifest.bucket && manifest_key == spec.manifest.key {
        if let Some(pinned) = approved_manifest_etag(ports, fingerprint).await? {
            let read = manifest_object.etag.trim().trim_matches('"');
            if read != pinned.trim().trim_matches('"') {
                let reason = format!(
                    "{MANIFEST_FILE} has ETag {read:?}, but the approval was given for ETag {pinned:?}: it was \
                     rewritten after the plan was e-mailed, so this inventory is not the one approved"
                );
                return refuse(ports, spec, fingerprint, &id, &manifest_key, reason).await;
            }
        }
    }
    // #15 item 9: whoever can write the inventory bucket can write an inventory. What S3
    // Inventory always does, a forged or damaged one may not: each check refuses the run.
    if let Err(reason) = check_manifest_bytes(&manifest_object.body, &checksum) {
        return refuse(ports, spec, fingerprint, &id, &manifest_key, reason).await;
    }
    let manifest = match InventoryManifest::from_json(&manifest_object.body) {
        Ok(m) => m,
        Err(e) => {
            return refuse(ports, spec, fingerprint, &id, &manifest_key, e.to_string()).await;
        }
    };
    if manifest.source_bucket != spec.source.bucket {
        return ignored(format!(
            "the inventory lists s3://{}, not the transfer's source bucket {}",
            manifest.source_bucket, spec.source.bucket
        ));
    }
    if let Err(reason) = check_manifest(&manifest, bucket, &location, settings.now_unix) {
        return refuse(ports, spec, fingerprint, &id, &manifest_key, reason).await;
    }

    // Claimed first, so a duplicate of an inventory already handled is a duplicate, not stale.
    if !claim(
        ports,
        fingerprint,
        &id,
        &manifest_key,
        &checksum,
        settings.now_unix,
    )
    .await?
    {
        return Ok(RunOutcome::Duplicate { run_id: id });
    }
    // Boxed: the run's state machine is large, and on the stack it overflows a test thread's.
    let claimed: Result<RunOutcome, RunError> = Box::pin(async {
        // Out of order: an inventory older than the newest seen is refused (the claim is kept, so
        // it is said once).
        let latest =
            delta::read_json::<LatestInventory, _>(ports, &keys::latest(fingerprint)).await?;
        if let Some(newest) = &latest {
            if manifest.creation_timestamp_ms < newest.creation_timestamp_ms {
                notice_once(
                    ports,
                    fingerprint,
                    &id,
                    "stale",
                    &format!("Ferry {}: older inventory ignored", spec.name),
                    &format!(
                        "The inventory s3://{bucket}/{} (created {}) arrived after the newer one \
                         s3://{bucket}/{} (created {}); it was not copied, because the newer inventory already \
                         describes the source bucket more recently.",
                        untrusted(&manifest_key),
                        ferry_plan::time::format_rfc3339_ms(manifest.creation_timestamp_ms as i64),
                        untrusted(&newest.manifest_key),
                        ferry_plan::time::format_rfc3339_ms(newest.creation_timestamp_ms as i64),
                    ),
                )
                .await?;
                return Ok(RunOutcome::Stale {
                    manifest_key,
                    newest_manifest_key: newest.manifest_key.clone(),
                });
            }
        }

        if latest
            .as_ref()
            .is_none_or(|l| manifest.creation_timestamp_ms > l.creation_timestamp_ms)
        {
            let newest = LatestInventory {
                manifest_key: manifest_key.clone(),
                creation_timestamp_ms: manifest.creation_timestamp_ms,
                run_id: id.clone(),
            };
            ports
                .put(&keys::latest(fingerprint), delta::to_json(&newest))
                .await
                .map_err(aws("recording the newest inventory"))?;
        }

        // A Lambda environment runs one invocation at a time: what an earlier, killed run left in
        // the work directory is garbage that would eat the 10 GB of /tmp.
        remove_leftover_runs(&settings.work_dir);
        let work = settings.work_dir.join(format!("ferry-run-{id}"));
        let job = RunJobContext {
            ports,
            stored: &stored,
            plan: &plan,
            fingerprint,
            run_id: &id,
            bucket,
            inventory_dir,
            manifest_key: &manifest_key,
            manifest_etag: &manifest_object.etag,
            manifest: &manifest,
            delta: run_spec.delta,
            settings,
            work: &work,
        };
        let result = match Box::pin(job.fan_out_shape()).await {
            Ok(Some((fan, shape, previous))) => {
                Box::pin(job.start_fan_out(fan, shape, &manifest_object.body, previous))
                    .await
                    .map(|execution_arn| RunOutcome::FannedOut {
                        run_id: id.clone(),
                        execution_arn,
                    })
            }
            Ok(None) => Box::pin(job.run())
                .await
                .map(|record| RunOutcome::Ran(Box::new(record))),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&work);
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e @ RunError::AfterLaunch { .. }) => Err(e),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                let reason = e.to_string();
                match refuse(ports, spec, fingerprint, &id, &manifest_key, reason.clone()).await {
                    Ok(refused) => Ok(refused),
                    // Not e-mailed: the claim goes back too (below), so the retry refuses again
                    // and says so, rather than finding the run taken and staying silent (#16
                    // item 10); the error keeps the reason for the log.
                    Err(not_said) => Err(RunError::RefusalNotSent {
                        reason,
                        error: Box::new(not_said),
                    }),
                }
            }
        }
    })
    .await;
    // Any failure once claimed gives the claim back, so the event's retry runs again (a stale
    // inventory's notice that could not be sent included): a kept claim would turn the retry
    // away as a duplicate, and the day's copy would be skipped unsaid.
    let error = match claimed {
        Ok(outcome) => return Ok(outcome),
        // Jobs run: the claim stays, so the inventory is not run (and launched) again.
        Err(error @ RunError::AfterLaunch { .. }) => return Err(error),
        Err(error) => error,
    };
    match release_claim(ports, fingerprint, &id).await {
        Ok(()) => Err(error),
        Err(undo) => Err(RunError::UndoFailed {
            error: Box::new(error),
            undo: vec![undo],
        }),
    }
}

/// A run's failure once `jobs` were launched: kept claimed (see [`RunJobContext::run`]).
fn after_launch(jobs: &[RunJob], error: RunError) -> RunError {
    if jobs.is_empty() {
        return error;
    }
    RunError::AfterLaunch {
        job_ids: jobs.iter().map(|j| j.job_id.clone()).collect(),
        error: Box::new(error),
    }
}

async fn release_claim<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
) -> Result<(), UndoFailure> {
    undo_by_delete(
        ports,
        &keys::claim(fingerprint, run_id),
        format!(
            "the run stays claimed, so a retry of this event within {CLAIM_TIMEOUT_SECONDS} s finds it taken and \
             does nothing; a delivery after that takes it over, and otherwise the next inventory's run copies \
             what this one would have (the delta is taken against the last run whose jobs completed)"
        ),
    )
    .await
}

/// The error of a read whole: an object over [`MAX_SMALL_OBJECT_BYTES`] is refused for good,
/// anything else is an AWS error (maybe worth a retry).
fn too_large_or(cause: AwsCallError, name: &str, what: String) -> RunError {
    if cause.code == OBJECT_TOO_LARGE {
        RunError::Refused(format!("{what}: {}", too_large_reason(name, &cause)))
    } else {
        RunError::Aws { what, cause }
    }
}

fn too_large_reason(name: &str, cause: &AwsCallError) -> String {
    format!(
        "{name} is larger than the {MAX_SMALL_OBJECT_BYTES} bytes Ferry reads whole ({}): S3 Inventory writes \
         a few kilobytes per thousand data files, so it was not written by S3 Inventory",
        cause.message
    )
}

/// `manifest.json` as read, before it is parsed: bounded, and the very content whose MD5 S3
/// Inventory wrote into `manifest.checksum` (S3 User Guide, "Locating your inventory list":
/// "manifest.checksum is the MD5 hash of the content of the manifest.json file").
fn check_manifest_bytes(body: &[u8], checksum: &str) -> Result<(), String> {
    // The adapter refuses a larger object unread; this holds for any adapter.
    if body.len() > MAX_SMALL_OBJECT_BYTES {
        return Err(format!(
            "{MANIFEST_FILE} is {} bytes, more than the {MAX_SMALL_OBJECT_BYTES} bytes Ferry reads whole: S3 \
             Inventory writes a few kilobytes per thousand data files, so it was not written by S3 Inventory",
            body.len()
        ));
    }
    let found = Md5::digest(body);
    if !md5_matches(checksum, &found) {
        return Err(format!(
            "the MD5 of {MANIFEST_FILE} is {}, but {CHECKSUM_FILE} says {:?}: S3 Inventory writes the MD5 of \
             manifest.json there, so manifest.json was changed after S3 Inventory wrote it (or is still being \
             written)",
            hex(&found),
            shorten(checksum)
        ));
    }
    Ok(())
}

/// What S3 Inventory always writes and a crafted `manifest.json` might not (#15 item 9): a
/// `creationTimestamp` not ahead of the clock (one dated ahead would make every real inventory
/// "older" and stop the runs for good), a `destinationBucket` that is the bucket it is in, and
/// data files only under the inventory's own `<prefix>/<source-bucket>/<config-id>/data/`
/// (S3 User Guide, "Locating your inventory list"), never elsewhere in the bucket.
fn check_manifest(
    manifest: &InventoryManifest,
    bucket: &str,
    location: &InventoryLocation,
    now_unix: u64,
) -> Result<(), String> {
    let latest_ms = now_unix
        .saturating_add(MAX_CLOCK_AHEAD_SECONDS)
        .saturating_mul(1000);
    if manifest.creation_timestamp_ms > latest_ms {
        return Err(format!(
            "its creationTimestamp \"{}\" ({}) is later than now ({}) by more than {MAX_CLOCK_AHEAD_SECONDS} s: \
             S3 Inventory dates a report when its scan begins, never ahead, so it was not written by S3 Inventory",
            manifest.creation_timestamp_ms,
            ferry_plan::time::format_rfc3339_ms(manifest.creation_timestamp_ms.min(i64::MAX as u64) as i64),
            ferry_plan::time::format_rfc3339_ms(now_unix.saturating_mul(1000).min(i64::MAX as u64) as i64),
        ));
    }
    if manifest.destination_bucket_name() != bucket {
        return Err(format!(
            "its destinationBucket {} is not the bucket it is in (s3://{bucket}): S3 Inventory names the bucket \
             it writes to",
            manifest.destination_bucket
        ));
    }
    // Each data file once: a file listed many times would be read (and its rows copied) as
    // many times over (#18 review).
    let mut keys: Vec<&str> = manifest.files.iter().map(|f| f.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(twice) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "files[] lists the data file {:?} more than once: S3 Inventory lists each of its data files once",
            twice[0]
        ));
    }
    let data_dir = location.data_dir();
    if let Some(file) = manifest
        .files
        .iter()
        .find(|f| !f.key.starts_with(data_dir.as_str()) || f.key.contains("/../"))
    {
        return Err(format!(
            "files[].key {:?} is not under the inventory's own data directory s3://{bucket}/{data_dir}: S3 \
             Inventory writes its data files there, so the run would read an object it did not write",
            file.key
        ));
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

pub(super) fn remove_leftover_runs(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A single run's, or a fan-out worker's (`fanout::worker_dir`).
        if name.starts_with("ferry-run-") || name.starts_with("ferry-fanout-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The plan's recorded decision (`approve`, `reject`), if any.
async fn plan_decision<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<Option<String>, RunError> {
    decision_field(ports, fingerprint, "decision").await
}

/// The manifest ETag the plan's approval recorded (`manifest_etag`), if it recorded one.
async fn approved_manifest_etag<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<Option<String>, RunError> {
    decision_field(ports, fingerprint, "manifest_etag").await
}

/// A non-blank text field of the plan's decision (`decisions/<fingerprint>.json`).
async fn decision_field<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    field: &str,
) -> Result<Option<String>, RunError> {
    let key = ferry_plan::approval::keys::plan_decision(fingerprint);
    let decision = delta::read_json::<Value, _>(ports, &key).await?;
    Ok(decision
        .as_ref()
        .and_then(|d| d.get(field))
        .and_then(Value::as_str)
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string))
}

/// Takes the run; `false` when another event holds it (a claim left by a dead run is taken
/// over after [`CLAIM_TIMEOUT_SECONDS`]).
async fn claim<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    manifest_key: &str,
    checksum: &str,
    now_unix: u64,
) -> Result<bool, RunError> {
    let key = keys::claim(fingerprint, run_id);
    let body = delta::to_json(&Claim {
        manifest_key: manifest_key.to_string(),
        checksum: checksum.to_string(),
        claimed_unix: now_unix,
    });
    if ports
        .put_if_absent(&key, body.clone())
        .await
        .map_err(aws("claiming the inventory run"))?
    {
        return Ok(true);
    }
    let held = delta::read_json::<Claim, _>(ports, &key).await?;
    // A fanned-out run records itself before its execution starts, and runs for longer than
    // one function: its claim is live.
    let mut has_run = false;
    for record in [
        keys::run(fingerprint, run_id),
        fanout_keys::run(fingerprint, run_id),
    ] {
        has_run |= ports
            .get(&record)
            .await
            .map_err(aws("reading the run record"))?
            .is_some();
    }
    let abandoned = !has_run
        && held.is_some_and(|c| now_unix.saturating_sub(c.claimed_unix) > CLAIM_TIMEOUT_SECONDS);
    if abandoned {
        ports
            .put(&key, body)
            .await
            .map_err(aws("taking over an abandoned run"))?;
    }
    Ok(abandoned)
}

async fn notice_once<P: StateStore + Notifier + Sync>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    what: &str,
    subject: &str,
    body: &str,
) -> Result<(), RunError> {
    let first = ports
        .put_if_absent(
            &keys::notice(fingerprint, run_id, what),
            body.as_bytes().to_vec(),
        )
        .await
        .map_err(aws("recording a notice"))?;
    if first {
        if let Err(cause) = ports.notify(subject, body).await {
            // The mark would keep the retry from sending it: take it back (#16 item 10).
            let error = aws("sending a notice")(cause);
            return match undo_by_delete(
                ports,
                &keys::notice(fingerprint, run_id, what),
                format!("the notice \"{subject}\" is recorded as sent but was not, and is not sent again"),
            )
            .await
            {
                Ok(()) => Err(error),
                Err(undo) => Err(RunError::UndoFailed {
                    error: Box::new(error),
                    undo: vec![undo],
                }),
            };
        }
    }
    Ok(())
}

pub(super) async fn put_record<P: StateStore + Sync, T: Serialize>(
    ports: &P,
    key: &str,
    value: &T,
) -> Result<(), RunError> {
    ports
        .put(key, delta::to_json(value))
        .await
        .map_err(aws(format!("writing {key}")))
}

/// A fanned-out run that ended without being recorded ([`super::fanout::failed_step`],
/// [`super::fanout::execution_ended`]): e-mailed once. `headline` and each of `details` are
/// escaped on their own (they quote keys and the workers' errors), so the list keeps its lines.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fanned_out_failed<P: StateStore + Notifier + Sync>(
    ports: &P,
    spec: &TransferSpec,
    fingerprint: &str,
    run_id: &str,
    manifest_key: &str,
    headline: &str,
    details: &[String],
    launching: bool,
) -> Result<(), RunError> {
    let list: String = details
        .iter()
        .map(|d| format!("\n- {}", untrusted(d)))
        .collect();
    let after = if launching {
        "Its jobs may have been created before the failure (tagged with this plan): the run was not recorded, \
         so it never commits, and the next inventory copies its objects again."
    } else {
        "Nothing was launched and the delta base is unchanged, so the next inventory copies everything this \
         one would have."
    };
    notice_once(
        ports,
        fingerprint,
        run_id,
        "refused",
        &format!("Ferry {}: inventory not copied", spec.name),
        &format!(
            "The inventory s3://{}/{} was not copied: {}{list}\n\n{after}",
            spec.manifest.bucket,
            untrusted(manifest_key),
            untrusted(headline)
        ),
    )
    .await
}

async fn refuse<P: StateStore + Notifier + Sync>(
    ports: &P,
    spec: &TransferSpec,
    fingerprint: &str,
    run_id: &str,
    manifest_key: &str,
    reason: String,
) -> Result<RunOutcome, RunError> {
    notice_once(
        ports,
        fingerprint,
        run_id,
        "refused",
        &format!("Ferry {}: inventory not copied", spec.name),
        &format!(
            "The inventory s3://{}/{} was not copied:\n\n{}\n\nNothing was launched; \
             the next inventory is handled on its own.",
            spec.manifest.bucket,
            untrusted(manifest_key),
            untrusted(&reason)
        ),
    )
    .await?;
    Ok(RunOutcome::Refused {
        run_id: run_id.to_string(),
        reason,
    })
}

/// One claimed run's work.
pub(super) struct RunJobContext<'a, P> {
    pub(super) ports: &'a P,
    pub(super) stored: &'a StoredPlan,
    pub(super) plan: &'a Plan,
    pub(super) fingerprint: &'a str,
    pub(super) run_id: &'a str,
    pub(super) bucket: &'a str,
    pub(super) inventory_dir: &'a str,
    pub(super) manifest_key: &'a str,
    /// The ETag of the `manifest.json` that was read: the direct job gets exactly that one.
    pub(super) manifest_etag: &'a str,
    pub(super) manifest: &'a InventoryManifest,
    pub(super) delta: bool,
    pub(super) settings: &'a RunSettings,
    pub(super) work: &'a Path,
}

impl<P> RunJobContext<'_, P>
where
    P: StateStore + InventoryObjects + LaunchApi + Notifier + Sync,
{
    /// Whether this run is too large for one function (and the stack has a fan-out): the
    /// fan-out's settings and shape, and the base it compares with (its record only; migrated to
    /// layout 2 first if need be). `None`: this function reads it ([`RunJobContext::run`]).
    async fn fan_out_shape(
        &self,
    ) -> Result<Option<(&FanOutSettings, FanOutShape, Option<CurrentIndex>)>, RunError> {
        let Some(fan) = &self.settings.fan_out else {
            return Ok(None);
        };
        let mut previous = if self.delta {
            delta::read_json::<CurrentIndex, _>(self.ports, &keys::current(self.fingerprint))
                .await?
        } else {
            None
        };
        let data_bytes = self.manifest.files.iter().map(|f| f.size).sum::<u64>();
        let objects = previous.as_ref().map_or(0, |c| c.objects);
        let Some(shape) = shape(fan, self.settings.work_dir_bytes, data_bytes, objects) else {
            return Ok(None);
        };
        if previous.as_ref().is_some_and(|c| c.index.is_none()) {
            // Layout 1 (written before #18): one object, small enough to migrate here.
            previous = delta::current_index(self.ports, self.fingerprint)
                .await?
                .map(|(current, _)| current);
        }
        Ok(Some((fan, shape, previous)))
    }

    /// Starts a fan-out for a claimed run that [`shape`] says is too large for one function: writes
    /// the run record and the item lists, then starts the execution. Returns the execution's ARN.
    async fn start_fan_out(
        &self,
        settings: &FanOutSettings,
        fan: FanOutShape,
        manifest_json: &[u8],
        previous: Option<CurrentIndex>,
    ) -> Result<String, RunError>
    where
        P: FanOutEngine,
    {
        let job = self;
        let (fp, run_id) = (job.fingerprint, job.run_id);
        if job.manifest.has_version_ids() {
            return Err(RunError::Refused(format!(
            "this inventory lists version ids and is too large for one function ({} data files, {} bytes): the \
             fan-out across functions writes its copy list in S3 Inventory's own format, which AWS documents \
             with version ids only for CSV manifests, so it does not take them. Copy it with a current-versions \
             inventory, or split the transfer by prefix",
            job.manifest.files.len(),
            job.manifest.files.iter().map(|f| f.size).sum::<u64>()
        )));
        }
        // A scan worker holds a chunk of data files and their spill parts (gzip, about 1.5× the
        // data files' size: docs/proof.md) on its disk at once: a file may take 30 % of it, a
        // batch 25 % (more files are cut into more batches).
        let work_dir = job.settings.work_dir_bytes;
        let largest_file = work_dir / 10 * 3;
        if let Some(file) = job.manifest.files.iter().find(|f| f.size > largest_file) {
            return Err(RunError::Refused(format!(
                "the data file {:?} is {} bytes (files[].size), more than the {largest_file} bytes a fan-out worker \
                 reads at once (30 % of FERRY_WORK_DIR_BYTES, {work_dir} bytes: the file and its spill must fit)",
                file.key, file.size
            )));
        }
        let batches = batches_of(&job.manifest.files, BATCH_BYTES.min(work_dir / 4));
        if batches.len() > MAX_SCAN_BATCHES {
            return Err(RunError::Refused(format!(
            "this inventory's {} data files make {} batches, more than the {MAX_SCAN_BATCHES} one fan-out runs",
            job.manifest.files.len(),
            batches.len()
        )));
        }
        let nonce = &settings.execution_nonce;
        if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RunError::Refused(format!(
                "the fan-out's execution nonce {nonce:?} is not 16 hex digits (the handler draws it)"
            )));
        }
        let execution_name = format!("ferry-{run_id}-{nonce}");
        let run = FanOutRun {
            layout: FANOUT_LAYOUT,
            run_id: run_id.to_string(),
            plan_fingerprint: fp.to_string(),
            inventory_bucket: job.bucket.to_string(),
            inventory_dir: job.inventory_dir.to_string(),
            manifest_key: job.manifest_key.to_string(),
            manifest_etag: job.manifest_etag.to_string(),
            manifest_json: String::from_utf8(manifest_json.to_vec())
                .map_err(|_| RunError::Refused("manifest.json is not UTF-8".to_string()))?,
            shard_bits: fan.shard_bits,
            index_shard_bits: fan.index_shard_bits,
            batches: batches.clone(),
            delta: job.delta,
            previous,
            execution_name: execution_name.clone(),
        };
        let scan_items: Vec<serde_json::Value> = batches
            .iter()
            .enumerate()
            .map(|(n, b)| serde_json::json!({"Batch": n, "First": b.first, "End": b.end}))
            .collect();
        let shard_items: Vec<serde_json::Value> = (0..run.shards())
            .map(|s| serde_json::json!({ "Shard": s }))
            .collect();
        put_record(job.ports, &fanout_keys::scan_items(fp, run_id), &scan_items).await?;
        put_record(
            job.ports,
            &fanout_keys::shard_items(fp, run_id),
            &shard_items,
        )
        .await?;
        // Last: a run record is what makes the claim a live run (`run::claim`).
        put_record(job.ports, &fanout_keys::run(fp, run_id), &run).await?;
        let input = serde_json::json!({"Fingerprint": fp, "Run": run_id}).to_string();
        job.ports
            .start_execution(&settings.state_machine_arn, &execution_name, &input)
            .await
            .map_err(aws(format!(
                "starting the fan-out {execution_name} of {}",
                settings.state_machine_arn
            )))
    }

    async fn run(&self) -> Result<RunRecord, RunError> {
        let spec = &self.stored.spec;
        let fp = self.fingerprint;
        let filter = RowFilter::new(spec.filter.as_ref()).map_err(RunError::Refused)?;
        let previous = if self.delta {
            delta::current_index(self.ports, fp).await?
        } else {
            None
        };
        let previous_run_id = previous.as_ref().map(|(c, _)| c.run_id.clone());
        let previous_objects = previous.as_ref().map_or(0, |(_, index)| index.len());
        std::fs::create_dir_all(self.work).map_err(|source| RunError::WorkDir {
            path: self.work.display().to_string(),
            source,
        })?;
        // A first run with nothing filtered out may launch on the inventory itself: decided
        // once the rows are read ([`fast_path`]), so its parts stay local meanwhile.
        let may_go_direct = previous_run_id.is_none()
            && fast_path(self.manifest, &filter, None) == FastPath::NeedsScan;
        // Unchanged objects are marked in the base, not collected again: the next index is
        // built from it in place (about 16 bytes per object in memory, not 32).
        let base = previous.map(|(_, index)| DeltaBase::new(index));
        let Scanned {
            stats,
            next_index,
            copy,
        } = self.scan(&filter, base.as_ref(), may_go_direct).await?;
        refuse_sudden_empty(self.delta, stats.rows, previous_objects as u64)?;

        let (index, index_objects) = if self.delta {
            let next = match base {
                Some(base) => base.into_next(next_index),
                None => ObjectIndex::from_entries(next_index),
            }
            .map_err(|e| RunError::Refused(e.to_string()))?;
            let dir = keys::pending_index_dir(fp, self.run_id);
            let stored = delta::write_index(self.ports, &dir, &next).await?;
            (Some(stored), next.len() as u64)
        } else {
            (None, 0)
        };

        let direct = may_go_direct
            && matches!(&copy, CopyList::Parts { uploaded, .. } if uploaded.is_empty())
            && fast_path(self.manifest, &filter, Some(&stats)) == FastPath::Direct;
        Box::pin(self.launch_and_record(
            Scanned {
                stats,
                next_index: Vec::new(),
                copy,
            },
            index,
            index_objects,
            previous_run_id,
            direct,
        ))
        .await
    }

    /// Launches the run's jobs on what the scan (or the fan-out's shards) left — the copy list,
    /// and `large.csv` in the work directory — then records the run and e-mails its summary.
    pub(super) async fn launch_and_record(
        &self,
        scanned: Scanned,
        index: Option<StoredIndex>,
        index_objects: u64,
        previous_run_id: Option<String>,
        direct: bool,
    ) -> Result<RunRecord, RunError> {
        let spec = &self.stored.spec;
        let fp = self.fingerprint;
        let Scanned { stats, copy, .. } = scanned;
        let mut jobs = Vec::new();
        // Once a job is launched, a failure keeps the run's claim (#16 review): a second run
        // of this inventory, on a delta base that moved meanwhile, would write another
        // manifest and so launch a second job. The run is then not recorded and never
        // commits, so the next inventory copies its objects again.
        let launching: Result<(), RunError> = async {
            if direct && stats.copy.objects > 0 {
                jobs.push(self.launch_direct(&stats).await?);
            } else {
                if stats.copy.objects > 0 {
                    jobs.push(match copy {
                        CopyList::Parts { uploaded, local } => {
                            self.launch_parts(uploaded, local, &stats).await?
                        }
                        CopyList::Csv => {
                            let path = self.work.join("copy.csv");
                            let request = self.plan.create_job.clone();
                            self.launch_csv(RunJobKind::Copy, &path, "copy.csv", &request, &stats)
                                .await?
                        }
                    });
                }
                if stats.large.objects > 0 {
                    let arn = self.settings.large_object_function_arn.as_deref().ok_or_else(|| {
                        RunError::Refused(format!(
                            "{} objects are over 5 GiB, but FERRY_LARGE_OBJECT_COPIER_ARN is not set: deploy the \
                             stack's large-object-copier function",
                            stats.large.objects
                        ))
                    })?;
                    let request = large_object_job_request(spec, fp, arn)
                        .map_err(|e| RunError::Refused(e.to_string()))?;
                    let path = self.work.join("large.csv");
                    jobs.push(
                        self.launch_csv(
                            RunJobKind::LargeObjects,
                            &path,
                            "large.csv",
                            &request,
                            &stats,
                        )
                        .await?,
                    );
                }
            }
            Ok(())
        }
        .await;
        if let Err(error) = launching {
            return Err(after_launch(&jobs, error));
        }

        let record = RunRecord {
            run_id: self.run_id.to_string(),
            plan_fingerprint: fp.to_string(),
            transfer_name: spec.name.clone(),
            inventory_bucket: self.bucket.to_string(),
            manifest_key: self.manifest_key.to_string(),
            creation_timestamp_ms: self.manifest.creation_timestamp_ms,
            previous_run_id,
            jobs,
            stats,
            index_key: None,
            index,
            index_objects,
        };
        let recorded: Result<(), RunError> = async {
            self.ports
                .put(&keys::run(fp, self.run_id), delta::to_json(&record))
                .await
                .map_err(aws("recording the run"))?;
            if record.jobs.is_empty() {
                // Nothing to wait for: what this inventory lists is already copied.
                delta::commit_run(self.ports, fp, self.run_id, &[]).await?;
            }
            self.ports
                .notify(&summary_subject(&record), &summary_body(&record, spec))
                .await
                .map_err(aws("announcing the run"))?;
            Ok(())
        }
        .await;
        match recorded {
            Ok(()) => Ok(record),
            Err(error) => Err(after_launch(&record.jobs, error)),
        }
    }

    /// Reads every data file, [`RunSettings::scan_threads`] at a time: a batch is downloaded
    /// concurrently, split on as many threads ([`scan_data_files`]: MD5 check, filter, routing,
    /// delta), then removed. Large-object rows (and copy rows with version ids) are appended in
    /// file order to `large.csv` (`copy.csv`); copy parts are uploaded as they come, unless the
    /// run may still go direct (`keep_local`) and they fit [`LOCAL_PART_BYTES`].
    async fn scan(
        &self,
        filter: &RowFilter,
        previous: Option<&DeltaBase>,
        keep_local: bool,
    ) -> Result<Scanned, RunError> {
        let work_dir = |source| RunError::WorkDir {
            path: self.work.display().to_string(),
            source,
        };
        let parts_dir = self.work.join("parts");
        std::fs::create_dir_all(&parts_dir).map_err(work_dir)?;
        let copy_as_inventory = !self.manifest.has_version_ids();
        let mut large_csv = std::fs::File::create(self.work.join("large.csv")).map_err(work_dir)?;
        let mut copy_csv = std::fs::File::create(self.work.join("copy.csv")).map_err(work_dir)?;
        let input = ScanInput {
            manifest: self.manifest,
            filter,
            delta: self.delta,
            previous,
            out_dir: &parts_dir,
            copy_as_inventory,
        };
        let mut totals = ScanTotals::new(self.manifest);
        let (mut uploaded, mut local) = (Vec::new(), Vec::<WrittenPart>::new());
        let threads = self.settings.scan_threads.max(1);
        let budget = self.settings.data_file_budget();
        if let Some(file) = self.manifest.files.iter().find(|f| f.size > budget) {
            return Err(RunError::Refused(format!(
                "the data file {:?} is {} bytes (files[].size), more than the {budget} bytes of data files the work \
                 directory holds at once (half of FERRY_WORK_DIR_BYTES, {} bytes): give the function more ephemeral \
                 storage (EphemeralStorage, up to 10240 MB, and FERRY_WORK_DIR_BYTES with it)",
                file.key, file.size, self.settings.work_dir_bytes
            )));
        }
        let files = LocalDataFile::all_of(self.manifest, |position, _| {
            self.work.join(format!("data-{position}"))
        });
        let (started, total_bytes) = (
            std::time::Instant::now(),
            self.manifest.files.iter().map(|f| f.size).sum::<u64>(),
        );
        let mut done_bytes = 0u64;
        for batch in batches(&files, threads, budget) {
            self.check_time_left(started, done_bytes, total_bytes, threads)?;
            done_bytes += batch.iter().map(|d| d.file.size).sum::<u64>();
            let written = futures_util::future::try_join_all(batch.iter().map(|data| {
                self.download(data.file.key.clone(), data.path.clone(), data.file.size)
            }))
            .await;
            // A file whose size is not the manifest's is refused (by the download) before its
            // MD5 is taken: the batch's disk budget was counted with the manifest's sizes.
            written.inspect_err(|_| remove_local(batch))?;
            let scanned = scan_data_files(input, batch, threads);
            remove_local(batch);
            for mut file in scanned.map_err(|e| self.inventory_error(e))? {
                totals.add(&mut file);
                if let Some(part) = file.large.take() {
                    append_part(&part, &mut large_csv)?;
                }
                match file.copy.take() {
                    Some(part) if copy_as_inventory => local.push(part),
                    Some(part) => append_part(&part, &mut copy_csv)?,
                    None => {}
                }
            }
            // Still direct so far (the same rule the launch applies), and the parts fit.
            let held: u64 = local.iter().map(|p| p.digest.size).sum();
            let still_direct = keep_local
                && uploaded.is_empty()
                && held <= LOCAL_PART_BYTES
                && fast_path(self.manifest, filter, Some(&totals.stats)) == FastPath::Direct;
            if !still_direct {
                uploaded.extend(self.upload_parts(std::mem::take(&mut local)).await?);
            }
        }
        let copy = if copy_as_inventory {
            CopyList::Parts { uploaded, local }
        } else {
            CopyList::Csv
        };
        Ok(Scanned {
            stats: totals.stats,
            next_index: totals.next_index,
            copy,
        })
    }

    /// Refuses a run that would not finish reading before the deadline at the rate measured so
    /// far (plus [`AFTER_SCAN_RESERVE`]): killed by the timeout, it would leave its claim taken
    /// and the event's retries would find it so, and the inventory would go uncopied unsaid.
    fn check_time_left(
        &self,
        started: std::time::Instant,
        done_bytes: u64,
        total_bytes: u64,
        threads: usize,
    ) -> Result<(), RunError> {
        let Some(deadline) = self.settings.deadline else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        let left = deadline.saturating_duration_since(now);
        let elapsed = now.saturating_duration_since(started);
        let remaining = total_bytes.saturating_sub(done_bytes);
        // A rate is only taken from a fair sample (a tenth of the bytes, or half a minute): a
        // first batch of small files is mostly request latency and would overstate the rest.
        let sampled = done_bytes > 0
            && (done_bytes.saturating_mul(10) >= total_bytes
                || elapsed >= std::time::Duration::from_secs(30));
        // Before that, a pessimistic floor (about a third of the rate measured in docs/proof.md),
        // so an inventory read in one batch is checked too.
        let needed = if sampled {
            elapsed.mul_f64(remaining as f64 / done_bytes as f64)
        } else {
            let floor = FLOOR_BYTES_PER_SECOND_PER_THREAD.saturating_mul(threads.max(1) as u64);
            std::time::Duration::from_secs_f64(remaining as f64 / floor as f64)
        };
        if needed + AFTER_SCAN_RESERVE <= left {
            return Ok(());
        }
        Err(RunError::Refused(format!(
            "this inventory's {} data files ({total_bytes} bytes) would not all be read before the function's \
             timeout: {done_bytes} bytes took {:.0} s on {threads} threads, so the other {remaining} would take about \
             {:.0} s (at the rate measured so far, or at {FLOOR_BYTES_PER_SECOND_PER_THREAD} bytes/s per thread \
             before one is), and {:.0} s are left (keeping {} s for the launch). Nothing was launched and the delta base is \
             unchanged, so the next inventory still copies everything this one would have, but one as large is \
             refused the same way. Give inventory-handler more memory (InventoryHandlerMemoryMB, up to 10240 MB: \
             more vCPUs read more files at once), or lower InventoryFanOutDataBytes so that inventories this large \
             are read by the fan-out across functions",
            self.manifest.files.len(),
            elapsed.as_secs_f64(),
            needed.as_secs_f64(),
            left.as_secs_f64(),
            AFTER_SCAN_RESERVE.as_secs(),
        )))
    }

    /// A reader's error: the local disk's is worth a retry, the inventory's refuses the run.
    fn inventory_error(&self, error: InventoryError) -> RunError {
        match error {
            InventoryError::WorkDir { path, source } => RunError::WorkDir { path, source },
            InventoryError::Write(source) => RunError::WorkDir {
                path: self.work.display().to_string(),
                source,
            },
            InventoryError::Threads { message, .. } => RunError::WorkDir {
                path: self.work.display().to_string(),
                source: std::io::Error::other(message),
            },
            other => RunError::Refused(other.to_string()),
        }
    }

    /// The state-bucket key of copy part `position`: `runs/<run>/data/`, to
    /// `runs/<run>/copy/manifest.json` what an inventory's `data/` is to its `<date>/manifest.json`
    /// (S3 User Guide, "Locating your inventory list"), the layout a redrive reads an
    /// inventory-format manifest in (`report::job_manifest`).
    pub(super) fn part_key(&self, position: usize) -> String {
        format!(
            "{}data/{position:06}.csv.gz",
            keys::run_dir(self.fingerprint, self.run_id)
        )
    }

    /// Uploads copy parts, [`PART_UPLOADS_AT_ONCE`] at a time, removing each local copy; gives
    /// them back as `manifest.json` lists them, in order.
    pub(super) async fn upload_parts(
        &self,
        parts: Vec<WrittenPart>,
    ) -> Result<Vec<InventoryFile>, RunError> {
        futures_util::stream::iter(parts)
            .map(|part| self.upload_part(part))
            .buffered(PART_UPLOADS_AT_ONCE)
            .try_collect()
            .await
    }

    async fn upload_part(&self, part: WrittenPart) -> Result<InventoryFile, RunError> {
        let (bucket, key) = (&self.settings.state_bucket, self.part_key(part.position));
        self.ports
            .upload(bucket, &key, &part.path)
            .await
            .map_err(aws(format!(
                "writing the manifest part s3://{bucket}/{key}"
            )))?;
        let _ = std::fs::remove_file(&part.path);
        Ok(InventoryFile {
            key,
            size: part.digest.size,
            md5_checksum: part.digest.md5_hex,
        })
    }

    /// Downloads a data file of `size` bytes (its `files[].size`); a larger one (which would
    /// overrun the batch's disk budget) refuses the run by name.
    async fn download(&self, key: String, to: PathBuf, size: u64) -> Result<u64, RunError> {
        download_data_file(self.ports, self.bucket, key, to, size).await
    }

    fn object_arn(&self, bucket: &str, key: &str) -> String {
        let partition = partition_for_region(&self.stored.spec.destination.region);
        format!("arn:{partition}:s3:::{bucket}/{key}")
    }

    /// A manifest of the inventory bucket (S3's own, or Ferry's CSV ones beside it).
    fn in_inventory_bucket<'k>(&'k self, key: &'k str, etag: &'k str) -> ManifestAt<'k> {
        ManifestAt {
            bucket: self.bucket,
            key,
            region: self.stored.spec.manifest_region(),
            etag,
        }
    }

    async fn launch_direct(&self, stats: &RouteStats) -> Result<RunJob, RunError> {
        let request = self
            .plan
            .create_job
            .with_inventory_manifest(&self.object_arn(self.bucket, self.manifest_key));
        // #15 item 9: the job reads the manifest.json this run read and checked, not one written
        // since. The launcher refuses another ETag, and CreateJob carries this one, which Batch
        // Operations holds the object to.
        let etag = self.manifest_etag.trim().trim_matches('"');
        if etag.is_empty() {
            return Err(RunError::Refused(format!(
                "S3 returned no ETag with s3://{}/{}, so the job can't be held to the manifest.json that \
                 was checked",
                self.bucket, self.manifest_key
            )));
        }
        self.launch_one(
            RunJobKind::CopyDirect,
            &request,
            self.in_inventory_bucket(self.manifest_key, etag),
            stats.copy,
        )
        .await
    }

    /// The copy job on Ferry's own inventory-format `manifest.json` listing the copy parts
    /// (the rest uploaded first), written beside them: `runs/<run>/copy/manifest.json`.
    ///
    /// In the state bucket, not beside the inventory (#18 review): the job is pinned to the
    /// `manifest.json`'s ETag, but not to its parts, and AWS doesn't say whether Batch
    /// Operations checks their `MD5checksum`. Whoever may write the inventory bucket could
    /// otherwise swap a part between its upload and the job's read and choose what is copied
    /// (and, with rows naming nothing, have the run's real objects recorded as copied). The
    /// state bucket is written only by the stack's functions (bucket policy
    /// `OnlyTheStackWritesState`), and the transfer's batch role may read these keys there
    /// (`BatchRoleReadsFerrysManifests`).
    async fn launch_parts(
        &self,
        mut uploaded: Vec<InventoryFile>,
        local: Vec<WrittenPart>,
        stats: &RouteStats,
    ) -> Result<RunJob, RunError> {
        uploaded.extend(self.upload_parts(local).await?);
        let state = self.settings.state_bucket.as_str();
        let json = CopyManifestJson {
            source_bucket: &self.manifest.source_bucket,
            report_bucket: state,
            partition: partition_for_region(&self.stored.spec.destination.region),
            creation_timestamp_ms: self.manifest.creation_timestamp_ms,
            files: &uploaded,
        }
        .to_bytes()
        .map_err(|e| RunError::Refused(format!("Ferry's own manifest.json: {e}")))?;
        let path = self.work.join("copy-manifest.json");
        std::fs::write(&path, json).map_err(|source| RunError::WorkDir {
            path: path.display().to_string(),
            source,
        })?;
        let key = format!(
            "{}copy/manifest.json",
            keys::run_dir(self.fingerprint, self.run_id)
        );
        let etag = self
            .ports
            .upload(state, &key, &path)
            .await
            .map_err(aws(format!("writing the manifest s3://{state}/{key}")))?;
        let request = self
            .plan
            .create_job
            .with_inventory_manifest(&self.object_arn(state, &key));
        let manifest = ManifestAt {
            bucket: state,
            key: &key,
            region: &self.plan.transfer.job_region,
            etag: &etag,
        };
        self.launch_one(RunJobKind::Copy, &request, manifest, stats.copy)
            .await
    }

    async fn launch_csv(
        &self,
        kind: RunJobKind,
        path: &Path,
        name: &str,
        template: &CreateJobRequest,
        stats: &RouteStats,
    ) -> Result<RunJob, RunError> {
        let key = format!("{}ferry-{}/{name}", self.inventory_dir, self.run_id);
        let etag = self
            .ports
            .upload(self.bucket, &key, path)
            .await
            .map_err(aws(format!(
                "writing the manifest s3://{}/{key}",
                self.bucket
            )))?;
        let request = template.with_csv_manifest(
            &self.object_arn(self.bucket, &key),
            self.manifest.has_version_ids(),
        );
        let tally = match kind {
            RunJobKind::LargeObjects => stats.large,
            _ => stats.copy,
        };
        self.launch_one(kind, &request, self.in_inventory_bucket(&key, &etag), tally)
            .await
    }

    async fn launch_one(
        &self,
        kind: RunJobKind,
        request: &CreateJobRequest,
        manifest: ManifestAt<'_>,
        tally: ferry_listings::inventory::route::Tally,
    ) -> Result<RunJob, RunError> {
        let fp = self.fingerprint;
        // The scan takes minutes: a reject in the meantime stops the launch (#16 review).
        if plan_decision(self.ports, fp).await?.as_deref() != Some("approve") {
            return Err(RunError::Refused(format!(
                "the plan {fp} is no longer approved (its decision changed while the inventory was read): \
                 no job was launched"
            )));
        }
        // One token per (plan, run, job kind): a re-run of this inventory finds its jobs again,
        // and another inventory with a byte-identical manifest still gets its own job.
        let seed = format!("{fp}:{}:{kind:?}", self.run_id);
        let launched = launch(
            self.ports,
            LaunchRequest {
                template: request,
                plan_fingerprint: &seed,
                manifest_region: manifest.region,
                expected_etag: Some(manifest.etag),
            },
            self.settings.retry,
        )
        .await
        .map_err(|e| RunError::Launch(Box::new(e)))?;
        let link = JobRun {
            plan_fingerprint: fp.to_string(),
            run_id: self.run_id.to_string(),
        };
        self.ports
            .put(&keys::job_run(&launched.job_id), delta::to_json(&link))
            .await
            .map_err(aws("linking the job to its run"))?;
        // Also where the stack's teardown looks for running jobs.
        let job_record = JobRecord {
            job_id: launched.job_id.clone(),
            plan_fingerprint: fp.to_string(),
            account_id: self.stored.spec.destination.account_id.clone(),
            region: self.plan.transfer.job_region.clone(),
            manifest_etag: launched.manifest_etag.clone(),
            client_request_token: launched.client_request_token.clone(),
        };
        self.ports
            .put(
                &ferry_plan::approval::keys::job(fp, &launched.job_id),
                delta::to_json(&job_record),
            )
            .await
            .map_err(aws("recording the job"))?;
        Ok(RunJob {
            job_id: launched.job_id,
            kind,
            manifest: format!("s3://{}/{}", manifest.bucket, manifest.key),
            manifest_etag: launched.manifest_etag,
            client_request_token: launched.client_request_token,
            objects: tally.objects,
            bytes: tally.bytes,
        })
    }
}

/// The object a job is created on, and the ETag it must have.
#[derive(Clone, Copy)]
struct ManifestAt<'a> {
    bucket: &'a str,
    key: &'a str,
    region: &'a str,
    etag: &'a str,
}

/// What [`RunJobContext::scan`] leaves for the launch.
pub(super) struct Scanned {
    pub(super) stats: RouteStats,
    pub(super) next_index: Vec<IndexEntry>,
    pub(super) copy: CopyList,
}

/// Where the copy rows are.
pub(super) enum CopyList {
    /// Gzip inventory-format parts: those in S3 (as `manifest.json` lists them) and those still
    /// in the work directory, both in file order (every local one comes after every uploaded one).
    Parts {
        uploaded: Vec<InventoryFile>,
        local: Vec<WrittenPart>,
    },
    /// Rows with version ids: the work directory's `copy.csv`, a CSV manifest.
    Csv,
}

/// Downloads a data file of `size` bytes (its `files[].size`) and checks it has that size: a
/// larger or smaller one refuses the run by name (a larger one would overrun the disk budget).
pub(super) async fn download_data_file<P: InventoryObjects + Sync>(
    ports: &P,
    bucket: &str,
    key: String,
    to: PathBuf,
    size: u64,
) -> Result<u64, RunError> {
    match ports.download(bucket, &key, &to, size).await {
        Ok(written) if written != size => Err(RunError::Refused(format!(
            "the data file {key:?} is {written} bytes, but manifest.json's files[].size says {size}: it was changed \
             after S3 Inventory wrote it, so none of its rows is used"
        ))),
        Ok(written) => Ok(written),
        Err(cause) if cause.code == OBJECT_TOO_LARGE => Err(RunError::Refused(format!(
            "the data file {key:?} is larger than manifest.json's files[].size says ({size} bytes; {}): it \
             was changed after S3 Inventory wrote it, so none of its rows is used",
            cause.message
        ))),
        Err(cause) => Err(aws(format!("downloading s3://{bucket}/{key}"))(cause)),
    }
}

/// #15 item 9: an inventory that suddenly lists nothing must not become the base of the next
/// delta (the one after would copy the whole bucket again). Refusing it loses nothing: an empty
/// inventory has nothing to copy. Whoever can write the inventory bucket could otherwise force a
/// full recopy with one empty file.
pub(super) fn refuse_sudden_empty(
    delta: bool,
    rows: u64,
    previous_objects: u64,
) -> Result<(), RunError> {
    if delta && rows == 0 && previous_objects > 0 {
        return Err(RunError::Refused(format!(
            "this inventory lists no objects, but the last one copied listed {previous_objects}: it is not \
             used as the base of the next delta, so later inventories are still compared with that one. \
             If the source bucket was emptied on purpose there is nothing to copy anyway; runs go on \
             with the next inventory that lists objects"
        )));
    }
    Ok(())
}

/// `files` in order, cut into batches of at most `threads` files and `budget` bytes (each file
/// is at most `budget`, checked before).
fn batches<'f, 'a>(
    files: &'f [LocalDataFile<'a>],
    threads: usize,
    budget: u64,
) -> Vec<&'f [LocalDataFile<'a>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, data) in files.iter().enumerate() {
        let full = i - start == threads || bytes.saturating_add(data.file.size) > budget;
        if full && i > start {
            out.push(&files[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(data.file.size);
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

/// Removes a batch's downloaded data files (read, or refused).
fn remove_local(batch: &[LocalDataFile<'_>]) {
    for data in batch {
        let _ = std::fs::remove_file(&data.path);
    }
}

/// Appends a local CSV part to the run's CSV manifest, then removes it.
fn append_part(part: &WrittenPart, to: &mut std::fs::File) -> Result<(), RunError> {
    let io = |source| RunError::WorkDir {
        path: part.path.display().to_string(),
        source,
    };
    let mut from = std::fs::File::open(&part.path).map_err(io)?;
    std::io::copy(&mut from, to).map_err(io)?;
    let _ = std::fs::remove_file(&part.path);
    Ok(())
}

fn summary_subject(record: &RunRecord) -> String {
    let s = &record.stats;
    if record.jobs.is_empty() {
        format!(
            "Ferry {}: inventory checked, nothing new to copy",
            record.transfer_name
        )
    } else {
        format!(
            "Ferry {}: {} objects to copy from the new inventory",
            record.transfer_name,
            s.copy.objects + s.large.objects
        )
    }
}

fn summary_body(record: &RunRecord, spec: &TransferSpec) -> String {
    let s = &record.stats;
    let mut b = format!(
        "Inventory s3://{}/{} (created {}), {} rows.\n\n",
        record.inventory_bucket,
        untrusted(&record.manifest_key),
        ferry_plan::time::format_rfc3339_ms(record.creation_timestamp_ms as i64),
        s.rows
    );
    b.push_str(&format!(
        "To copy: {} objects ({} bytes) up to 5 GiB, {} objects ({} bytes) over 5 GiB; {} of them changed since \
         the last successful run{}.\n",
        s.copy.objects,
        s.copy.bytes,
        s.large.objects,
        s.large.bytes,
        s.changed,
        record
            .previous_run_id
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_else(|| " (none: first run, everything is new)".to_string())
    ));
    if !s.skipped.is_empty() {
        b.push_str("Not copied:\n");
        for (reason, t) in &s.skipped {
            b.push_str(&format!(
                "  {reason}: {} objects, {} bytes\n",
                t.objects, t.bytes
            ));
        }
    }
    for w in &s.warnings {
        b.push_str(&format!("Warning: {w}\n"));
    }
    if !s.examples.is_empty() {
        b.push_str("\nRows that could not be read (first ones):\n");
        // They quote rows and data-file keys, which come from the inventory bucket.
        for e in &s.examples {
            b.push_str(&format!("  {}\n", untrusted(&e.to_string())));
        }
    }
    for job in &record.jobs {
        b.push_str(&format!(
            "\nJob {} ({:?}): {} objects, manifest {}\n",
            job.job_id, job.kind, job.objects, job.manifest
        ));
    }
    if spec.job.confirmation_required && !record.jobs.is_empty() {
        b.push_str(&format!(
            "\nThe jobs wait in Suspended for your confirmation:\n  aws s3control update-job-status --region {} \
             --account-id {} --job-id <id> --requested-job-status Ready\n",
            spec.job_region(),
            spec.destination.account_id
        ));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_spelled_otherwise_is_the_same_run() {
        let id = |checksum: &str| run_id("fp", "inv", "a/manifest.json", checksum);
        let hex = "d41d8cd98f00b204e9800998ecf8427e";
        for spelling in [
            "D41D8CD98F00B204E9800998ECF8427E",
            "d41d8CD98f00b204e9800998ecf8427e\n",
            "1B2M2Y8AsgTpgAmY7PhCfg==",
        ] {
            assert_eq!(id(spelling), id(hex), "{spelling:?}");
        }
        assert_ne!(id("0cc175b9c0f1b6a831c399e269772661"), id(hex));
    }

    #[test]
    fn checksum_keys_of_the_location() {
        let loc = InventoryLocation {
            bucket: "inv".into(),
            prefix: "p".into(),
            configuration_id: "cfg".into(),
            dir: "p/src/cfg/".into(),
        };
        assert!(loc.is_checksum_key("p/src/cfg/2024-05-01T01-00Z/manifest.checksum"));
        assert!(!loc.is_checksum_key("p/src/cfg/2024-05-01T01-00Z/manifest.json"));
        assert!(!loc.is_checksum_key("p/src/cfg/manifest.checksum"));
        assert!(!loc.is_checksum_key("p/src/cfg/a/b/manifest.checksum"));
        assert!(!loc.is_checksum_key("p/src/other/2024/manifest.checksum"));
    }
}
