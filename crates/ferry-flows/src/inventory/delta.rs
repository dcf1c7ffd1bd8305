//! Delta state: which objects the last *successful* run copied, kept in the state bucket.
//!
//! A run writes its candidate index as "pending" (`runs/<run>/index.bin`). It becomes the
//! "current" index (the one the next delta compares against) only when every job of the run has
//! completed: the job-monitor calls [`job_finished`] with each job's terminal status, which
//! calls [`commit_run`] once all are `Complete`. A `Failed` or `Cancelled` job leaves the current
//! index where it was, so the next inventory copies those objects again. Objects whose task
//! failed inside a `Complete` job are taken out of the index before it becomes current; a
//! `Complete` job whose failed tasks are not all known ([`FailedTasks::Unaccounted`]: its
//! completion report is missing, or lists fewer than DescribeJob counts) leaves it where it was
//! too: an object that may not have been copied is never recorded as copied.
//!
//! Layout under `inventory/<plan-fingerprint>/` in the state bucket (a changed plan starts a
//! fresh history, because a changed destination or filter means a different copy):
//!
//! | key | what |
//! |---|---|
//! | `latest.json` | newest inventory seen ([`LatestInventory`]): older ones are refused |
//! | `current.json` | the committed index ([`CurrentIndex`]) |
//! | `runs/<run>/claim.json` | the run's claim (`If-None-Match: *`): one run per inventory |
//! | `runs/<run>/run.json` | [`RunRecord`]: jobs launched, figures |
//! | `runs/<run>/index/shard-<bits>-<n>.bin` | the pending index, in shards ([`StoredIndex`]) |
//! | `runs/<run>/index-committed/…` | the committed index, when failed objects were taken out |
//! | `runs/<run>/index-migrated/…` | a layout-1 index rewritten in shards on first use |
//! | `runs/<run>/jobs/<job>.json` | a job's terminal status ([`JobResult`]) |
//!
//! and `inventory/jobs/<job-id>.json` ([`JobRun`]) maps a job id back to its run.
//!
//! **Index layouts.** Layout 1 (before #18) stored an index as one object, `runs/<run>/index.bin`,
//! named by `index_key`: one PutObject of 16 bytes per object, which S3's 5 GB single-PUT limit
//! (S3 User Guide, "Uploading objects", <https://docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html>)
//! ends near 312 M objects. Layout 2 ([`StoredIndex`]) stores it in 2^bits shards by the top bits
//! of each object's identity hash ([`ObjectIndex::shard_bits_for`]: at most
//! [`ferry_listings::inventory::index::SHARD_TARGET_OBJECTS`] each), read and written a few at a
//! time, each checked whole (and that it holds only its own shard's objects). A layout-1
//! `current.json` is read as it is and rewritten in layout 2 on first use ([`current_index`]);
//! a layout-1 run (launched before the upgrade) still commits.

use serde::{Deserialize, Serialize};

use std::ops::Range;

use futures_util::{StreamExt, TryStreamExt};

use crate::aws_error::AwsCallError;
use crate::ports::{is_terminal_job_status, StateStore};
use ferry_listings::inventory::index::{EntryHasher, IndexError, ObjectIndex, ShardedIndexReader};
use ferry_listings::inventory::route::RouteStats;

/// State keys (all in the stack's state bucket).
pub mod keys {
    pub fn root(fingerprint: &str) -> String {
        format!("inventory/{fingerprint}/")
    }
    pub fn latest(fingerprint: &str) -> String {
        format!("inventory/{fingerprint}/latest.json")
    }
    pub fn current(fingerprint: &str) -> String {
        format!("inventory/{fingerprint}/current.json")
    }
    pub fn run_dir(fingerprint: &str, run_id: &str) -> String {
        format!("inventory/{fingerprint}/runs/{run_id}/")
    }
    pub fn claim(fingerprint: &str, run_id: &str) -> String {
        format!("{}claim.json", run_dir(fingerprint, run_id))
    }
    pub fn run(fingerprint: &str, run_id: &str) -> String {
        format!("{}run.json", run_dir(fingerprint, run_id))
    }
    /// Layout 1's pending index (one object), as runs before #18 wrote it.
    pub fn pending_index(fingerprint: &str, run_id: &str) -> String {
        format!("{}index.bin", run_dir(fingerprint, run_id))
    }
    /// Where a run's pending index's shards go.
    pub fn pending_index_dir(fingerprint: &str, run_id: &str) -> String {
        format!("{}index/", run_dir(fingerprint, run_id))
    }
    pub fn committed_index_dir(fingerprint: &str, run_id: &str) -> String {
        format!("{}index-committed/", run_dir(fingerprint, run_id))
    }
    pub fn migrated_index_dir(fingerprint: &str, run_id: &str) -> String {
        format!("{}index-migrated/", run_dir(fingerprint, run_id))
    }
    pub fn job_result(fingerprint: &str, run_id: &str, job_id: &str) -> String {
        format!("{}jobs/{job_id}.json", run_dir(fingerprint, run_id))
    }
    /// Marks a one-time notice (a refused or failed run is announced once, however many
    /// duplicate events arrive).
    pub fn notice(fingerprint: &str, run_id: &str, what: &str) -> String {
        format!("{}notice-{what}", run_dir(fingerprint, run_id))
    }
    pub fn job_run(job_id: &str) -> String {
        format!("inventory/jobs/{job_id}.json")
    }
}

/// The newest inventory a transfer has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestInventory {
    pub manifest_key: String,
    pub creation_timestamp_ms: u64,
    pub run_id: String,
}

/// The index the next delta compares against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentIndex {
    pub run_id: String,
    pub manifest_key: String,
    pub creation_timestamp_ms: u64,
    /// Layout 1: the one object holding the index (read, and rewritten in layout 2 on first use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_key: Option<String>,
    /// Layout 2: the shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<StoredIndex>,
    pub objects: u64,
}

/// The layout [`StoredIndex`] describes.
pub const INDEX_LAYOUT: u32 = 2;
/// Shards read or written at once (each at most ~128 MiB in memory while in flight).
pub const SHARDS_AT_ONCE: usize = 4;

/// An index stored in shards (layout 2): shard `n` holds the objects whose identity hash's top
/// `shard_bits` bits are `n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIndex {
    pub layout: u32,
    pub shard_bits: u32,
    pub objects: u64,
    /// In shard order, 2^`shard_bits` of them.
    pub shards: Vec<StoredShard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredShard {
    pub key: String,
    pub objects: u64,
}

/// Which job of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunJobKind {
    /// Batch Operations Copy (objects ≤ 5 GiB), on Ferry's CSV manifest.
    Copy,
    /// Copy job on the inventory's own `manifest.json` (fast path).
    CopyDirect,
    /// LambdaInvoke job for objects over 5 GiB.
    LargeObjects,
}

/// One job a run launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub job_id: String,
    pub kind: RunJobKind,
    /// `s3://bucket/key` of the manifest the job reads.
    pub manifest: String,
    pub manifest_etag: String,
    pub client_request_token: String,
    pub objects: u64,
    pub bytes: u64,
}

/// What a run did, stored at `runs/<run>/run.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub plan_fingerprint: String,
    pub transfer_name: String,
    pub inventory_bucket: String,
    pub manifest_key: String,
    pub creation_timestamp_ms: u64,
    /// The committed run this delta was computed against (`None`: everything was new).
    pub previous_run_id: Option<String>,
    pub jobs: Vec<RunJob>,
    pub stats: RouteStats,
    /// Layout 1's pending index (runs launched before #18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_key: Option<String>,
    /// The pending index in shards; `None` (and no `index_key`) when the spec turned delta off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<StoredIndex>,
    pub index_objects: u64,
}

/// A job's end, stored by [`job_finished`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub status: String,
    pub failed_tasks: Vec<ObjectRef>,
    /// Set when the job's failed tasks are not all known ([`FailedTasks::Unaccounted`]): why.
    /// Such a job never lets its run commit, whatever its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unaccounted: Option<String>,
}

/// What the caller of [`job_finished_with`] knows about a finished job's failed tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedTasks<'a> {
    /// Every task that failed (decoded keys and versions): its completion report accounts for
    /// every failed task DescribeJob counts. Empty when none failed.
    Accounted(&'a [ObjectRef]),
    /// Some failed tasks may be unknown (the report is missing, lists fewer failed tasks than
    /// DescribeJob counts, or the job is not the run's as DescribeJob describes it): why, for
    /// the e-mail. The run never commits.
    Unaccounted(&'a str),
}

/// Which run a job belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    pub plan_fingerprint: String,
    pub run_id: String,
}

/// An object named by a completion report's failed task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Decoded (not URL-encoded).
    pub key: String,
    pub version_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("{what}: {cause}")]
    Aws { what: String, cause: AwsCallError },
    #[error("the state object {key} is unreadable ({message}); it was not written by this Ferry version")]
    Corrupt { key: String, message: String },
    #[error("the delta index {key}: {source}")]
    Index {
        key: String,
        #[source]
        source: IndexError,
    },
    #[error("no inventory run {run_id} for plan {fingerprint} in the state bucket")]
    RunUnknown { fingerprint: String, run_id: String },
}

impl crate::aws_error::AwsCaused for DeltaError {
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            DeltaError::Aws { cause, .. } => Some(cause),
            DeltaError::Corrupt { .. }
            | DeltaError::Index { .. }
            | DeltaError::RunUnknown { .. } => None,
        }
    }
}

pub(crate) fn aws(what: impl Into<String>) -> impl FnOnce(AwsCallError) -> DeltaError {
    let what = what.into();
    move |cause| DeltaError::Aws { what, cause }
}

pub(crate) async fn read_json<T, S>(store: &S, key: &str) -> Result<Option<T>, DeltaError>
where
    T: serde::de::DeserializeOwned,
    S: StateStore + Sync,
{
    match store
        .get(key)
        .await
        .map_err(aws(format!("reading {key}")))?
    {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DeltaError::Corrupt {
                key: key.to_string(),
                message: e.to_string(),
            }),
        None => Ok(None),
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// Reads a stored index.
pub async fn read_index<S: StateStore + Sync>(
    store: &S,
    key: &str,
) -> Result<Option<ObjectIndex>, DeltaError> {
    match store
        .get(key)
        .await
        .map_err(aws(format!("reading the delta index {key}")))?
    {
        Some(bytes) => {
            ObjectIndex::from_bytes(&bytes)
                .map(Some)
                .map_err(|source| DeltaError::Index {
                    key: key.to_string(),
                    source,
                })
        }
        None => Ok(None),
    }
}

/// Stores `index` in shards under `dir` (a directory of the plan's state), as many as its size
/// calls for ([`ObjectIndex::shard_bits_for`]); returns what names it.
pub async fn write_index<S: StateStore + Sync>(
    store: &S,
    dir: &str,
    index: &ObjectIndex,
) -> Result<StoredIndex, DeltaError> {
    write_index_in_shards(store, dir, index, ObjectIndex::shard_bits_for(index.len())).await
}

/// [`write_index`] in 2^`bits` shards.
pub async fn write_index_in_shards<S: StateStore + Sync>(
    store: &S,
    dir: &str,
    index: &ObjectIndex,
    bits: u32,
) -> Result<StoredIndex, DeltaError> {
    let shards = put_shards(store, dir, index, bits, 0..1usize << bits).await?;
    Ok(StoredIndex {
        layout: INDEX_LAYOUT,
        shard_bits: bits,
        objects: index.len() as u64,
        shards,
    })
}

/// One fan-out worker's share of a next index stored in 2^`bits` shards: `index` holds the
/// entries of fan-out shard `fan_shard` of 2^`fan_bits` (`fan_bits` ≤ `bits`), which are stored
/// shards `fan_shard << (bits - fan_bits)` up to the next fan-out shard's. The shards of all
/// workers, in order, are the [`StoredIndex`] [`write_index_in_shards`] would have written.
pub async fn write_index_range<S: StateStore + Sync>(
    store: &S,
    dir: &str,
    index: &ObjectIndex,
    bits: u32,
    fan_bits: u32,
    fan_shard: usize,
) -> Result<Vec<StoredShard>, DeltaError> {
    let per = 1usize << bits.saturating_sub(fan_bits);
    let range = fan_shard * per..(fan_shard + 1) * per;
    let outside: usize = index
        .shard_ranges(bits)
        .iter()
        .enumerate()
        .filter(|(n, _)| !range.contains(n))
        .map(|(_, r)| r.len())
        .sum();
    if fan_bits > bits || outside > 0 {
        return Err(DeltaError::Corrupt {
            key: dir.to_string(),
            message: format!(
                "fan-out shard {fan_shard} of {fan_bits} bits holds {outside} entries outside its stored shards \
                 {}..{} of {bits} bits",
                range.start, range.end
            ),
        });
    }
    put_shards(store, dir, index, bits, range).await
}

async fn put_shards<S: StateStore + Sync>(
    store: &S,
    dir: &str,
    index: &ObjectIndex,
    bits: u32,
    which: Range<usize>,
) -> Result<Vec<StoredShard>, DeltaError> {
    let ranges = index.shard_ranges(bits);
    futures_util::stream::iter(which)
        .map(|n| {
            let key = format!("{dir}shard-{bits:02}-{n:05}.bin");
            let range = ranges[n].clone();
            put_shard(store, key, index.slice_to_bytes(range.clone()), range.len())
        })
        .buffered(SHARDS_AT_ONCE)
        .try_collect()
        .await
}

async fn put_shard<S: StateStore + Sync>(
    store: &S,
    key: String,
    bytes: Vec<u8>,
    objects: usize,
) -> Result<StoredShard, DeltaError> {
    store
        .put(&key, bytes)
        .await
        .map_err(aws(format!("storing the delta index shard {key}")))?;
    Ok(StoredShard {
        key,
        objects: objects as u64,
    })
}

async fn get_shard<S: StateStore + Sync>(store: &S, key: String) -> Result<Vec<u8>, DeltaError> {
    store
        .get(&key)
        .await
        .map_err(aws(format!("reading the delta index shard {key}")))?
        .ok_or_else(|| DeltaError::Corrupt {
            key,
            message: "a shard of the delta index is missing".to_string(),
        })
}

/// Reads a sharded index whole, a few shards at a time; `fingerprint`'s state is the only place
/// its shards may be (the record naming them is state too, but a key elsewhere is refused).
pub async fn read_stored_index<S: StateStore + Sync>(
    store: &S,
    fingerprint: &str,
    stored: &StoredIndex,
) -> Result<ObjectIndex, DeltaError> {
    read_stored_shards(store, fingerprint, stored, 0..stored.shards.len()).await
}

/// Stored shards `which` of an index as one index of their entries (a fan-out worker's share),
/// checked as [`read_stored_index`] checks the whole.
pub async fn read_stored_shards<S: StateStore + Sync>(
    store: &S,
    fingerprint: &str,
    stored: &StoredIndex,
    which: Range<usize>,
) -> Result<ObjectIndex, DeltaError> {
    let described = |message: String| DeltaError::Corrupt {
        key: keys::root(fingerprint),
        message,
    };
    if stored.layout != INDEX_LAYOUT {
        return Err(described(format!(
            "a delta index of layout {}, which this Ferry version does not read (it reads {INDEX_LAYOUT})",
            stored.layout
        )));
    }
    let expected = 1usize.checked_shl(stored.shard_bits).unwrap_or(0);
    let total: u64 = stored.shards.iter().map(|s| s.objects).sum();
    if stored.shard_bits > ferry_listings::inventory::index::MAX_SHARD_BITS
        || stored.shards.len() != expected
        || total != stored.objects
    {
        return Err(described(format!(
            "a delta index of {} shards ({} bits) and {} objects whose shards hold {total}",
            stored.shards.len(),
            stored.shard_bits,
            stored.objects
        )));
    }
    let root = keys::root(fingerprint);
    if let Some(shard) = stored.shards.iter().find(|s| !s.key.starts_with(&root)) {
        return Err(described(format!(
            "a delta index shard at {:?}, outside the transfer's state {root}",
            shard.key
        )));
    }
    if which.start > which.end || which.end > stored.shards.len() {
        return Err(described(format!(
            "shards {}..{} of a delta index of {} shards asked for",
            which.start,
            which.end,
            stored.shards.len()
        )));
    }
    let objects: u64 = stored.shards[which.clone()].iter().map(|s| s.objects).sum();
    let objects = usize::try_from(objects).map_err(|_| described("too many objects".into()))?;
    let mut reader = ShardedIndexReader::for_shards(stored.shard_bits, which.clone(), objects);
    let keys: Vec<(usize, String)> = which.map(|n| (n, stored.shards[n].key.clone())).collect();
    let mut shards = futures_util::stream::iter(keys)
        .map(|(n, key)| async move { (n, get_shard(store, key).await) })
        .buffered(SHARDS_AT_ONCE);
    while let Some((n, bytes)) = shards.next().await {
        let bytes = bytes?;
        let shard = &stored.shards[n];
        let index_error = |source| DeltaError::Index {
            key: shard.key.clone(),
            source,
        };
        let before = reader.len();
        reader.push(n, &bytes).map_err(index_error)?;
        if (reader.len() - before) as u64 != shard.objects {
            return Err(DeltaError::Corrupt {
                key: shard.key.clone(),
                message: format!(
                    "the shard holds {} objects, its record says {}",
                    reader.len() - before,
                    shard.objects
                ),
            });
        }
    }
    reader
        .finish()
        .map_err(|source| DeltaError::Index { key: root, source })
}

/// A layout-1 index (one object) whole, the record naming it being `named_by`.
async fn read_layout1_index<S: StateStore + Sync>(
    store: &S,
    key: &str,
    named_by: &str,
) -> Result<ObjectIndex, DeltaError> {
    read_index(store, key)
        .await?
        .ok_or_else(|| DeltaError::Corrupt {
            key: key.to_string(),
            message: format!("{named_by} names it as the index, but it is missing"),
        })
}

/// The committed index and what it came from; `None` before the first successful run. A
/// layout-1 `current.json` is rewritten in layout 2 on first use (its index's shards under the
/// committed run's `index-migrated/`). That write and a commit landing meanwhile race without a
/// lock: whichever is later wins, and a lost commit only means the next run copies that run's
/// objects again, never that an object is taken for copied.
pub async fn current_index<S: StateStore + Sync>(
    store: &S,
    fingerprint: &str,
) -> Result<Option<(CurrentIndex, ObjectIndex)>, DeltaError> {
    let current_key = keys::current(fingerprint);
    let Some(mut current) = read_json::<CurrentIndex, _>(store, &current_key).await? else {
        return Ok(None);
    };
    if let Some(stored) = &current.index {
        let index = read_stored_index(store, fingerprint, stored).await?;
        return Ok(Some((current, index)));
    }
    let Some(key) = current.index_key.clone() else {
        return Err(DeltaError::Corrupt {
            key: current_key,
            message: "it names no index (neither index nor index_key)".to_string(),
        });
    };
    let index = read_layout1_index(store, &key, &current_key).await?;
    let dir = keys::migrated_index_dir(fingerprint, &current.run_id);
    current.index = Some(write_index(store, &dir, &index).await?);
    current.index_key = None;
    current.objects = index.len() as u64;
    store
        .put(&current_key, to_json(&current))
        .await
        .map_err(aws("recording the delta index in its new layout"))?;
    Ok(Some((current, index)))
}

/// A run's pending index, whichever layout its record names.
async fn read_pending<S: StateStore + Sync>(
    store: &S,
    fingerprint: &str,
    run: &RunRecord,
) -> Result<ObjectIndex, DeltaError> {
    match (&run.index, &run.index_key) {
        (Some(stored), _) => read_stored_index(store, fingerprint, stored).await,
        (None, Some(key)) => {
            read_layout1_index(store, key, &keys::run(fingerprint, &run.run_id)).await
        }
        (None, None) => Err(DeltaError::Corrupt {
            key: keys::run(fingerprint, &run.run_id),
            message: "the run has no pending index".to_string(),
        }),
    }
}

/// The inventory run a job belongs to (`inventory/jobs/<job>.json`, then its `run.json`);
/// `None` for a job no run launched.
pub async fn run_of_job<S: StateStore + Sync>(
    store: &S,
    job_id: &str,
) -> Result<Option<(JobRun, RunRecord)>, DeltaError> {
    let Some(link) = read_json::<JobRun, _>(store, &keys::job_run(job_id)).await? else {
        return Ok(None);
    };
    let run = read_json::<RunRecord, _>(store, &keys::run(&link.plan_fingerprint, &link.run_id))
        .await?
        .ok_or_else(|| DeltaError::RunUnknown {
            fingerprint: link.plan_fingerprint.clone(),
            run_id: link.run_id.clone(),
        })?;
    Ok(Some((link, run)))
}

/// What [`commit_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The run's index is now current; `dropped` objects (failed tasks) were left out of it.
    Committed { objects: u64, dropped: usize },
    /// It already was (a repeated call).
    AlreadyCommitted,
    /// A newer inventory's run committed first: the current index stays (never goes back).
    Superseded { current_run_id: String },
    /// The spec turned delta off: nothing to commit.
    NotTracked,
}

/// Makes a run's pending index the current one. Call it when every job of the run completed
/// (normally through [`job_finished`]); `uncopied` are objects whose tasks failed in those jobs,
/// dropped from the index so the next run copies them again. Idempotent.
pub async fn commit_run<S: StateStore + Sync>(
    store: &S,
    fingerprint: &str,
    run_id: &str,
    uncopied: &[ObjectRef],
) -> Result<CommitOutcome, DeltaError> {
    let run = read_json::<RunRecord, _>(store, &keys::run(fingerprint, run_id))
        .await?
        .ok_or_else(|| DeltaError::RunUnknown {
            fingerprint: fingerprint.to_string(),
            run_id: run_id.to_string(),
        })?;
    if run.index.is_none() && run.index_key.is_none() {
        return Ok(CommitOutcome::NotTracked);
    }
    if let Some(current) = read_json::<CurrentIndex, _>(store, &keys::current(fingerprint)).await? {
        if current.run_id == run_id {
            return Ok(CommitOutcome::AlreadyCommitted);
        }
        if current.creation_timestamp_ms > run.creation_timestamp_ms {
            return Ok(CommitOutcome::Superseded {
                current_run_id: current.run_id,
            });
        }
    }
    let (index_key, index, objects, dropped) = if uncopied.is_empty() {
        (
            run.index_key.clone(),
            run.index.clone(),
            run.index_objects,
            0,
        )
    } else {
        let mut hasher = EntryHasher::new();
        let gone: Vec<u64> = uncopied
            .iter()
            .map(|o| hasher.identity(&o.key, o.version_id.as_deref()))
            .collect();
        let dir = keys::committed_index_dir(fingerprint, run_id);
        if let Some(stored) = &run.index {
            // Shard by shard: a fanned-out run's index may be far larger than this function's
            // memory, and only the shards of failed objects change.
            let (stored, dropped) =
                Box::pin(remove_in_shards(store, fingerprint, stored, &gone, &dir)).await?;
            let objects = stored.objects;
            (None, Some(stored), objects, dropped)
        } else {
            let mut index = read_pending(store, fingerprint, &run).await?;
            let dropped = index.remove_identities(&gone);
            let stored = write_index(store, &dir, &index).await?;
            (None, Some(stored), index.len() as u64, dropped)
        }
    };
    let current = CurrentIndex {
        run_id: run_id.to_string(),
        manifest_key: run.manifest_key.clone(),
        creation_timestamp_ms: run.creation_timestamp_ms,
        index_key,
        index,
        objects,
    };
    store
        .put(&keys::current(fingerprint), to_json(&current))
        .await
        .map_err(aws("committing the delta index"))?;
    Ok(CommitOutcome::Committed { objects, dropped })
}

/// `stored` without the objects whose identity is in `gone`, written to `dir` shard by shard
/// (each checked as [`read_stored_shards`] checks it; one shard in memory at a time, a few in
/// flight); how many entries were dropped.
async fn remove_in_shards<S: StateStore + Sync>(
    store: &S,
    fingerprint: &str,
    stored: &StoredIndex,
    gone: &[u64],
    dir: &str,
) -> Result<(StoredIndex, usize), DeltaError> {
    let bits = stored.shard_bits;
    let shard_of = |identity: u64| {
        if bits == 0 {
            0
        } else {
            (identity >> (64 - bits)) as usize
        }
    };
    let shards: Vec<(StoredShard, usize)> = futures_util::stream::iter(0..stored.shards.len())
        .map(|n| async move {
            let mut index = read_stored_shards(store, fingerprint, stored, n..n + 1).await?;
            let mine: Vec<u64> = gone.iter().copied().filter(|g| shard_of(*g) == n).collect();
            let dropped = index.remove_identities(&mine);
            let key = format!("{dir}shard-{bits:02}-{n:05}.bin");
            let shard = put_shard(
                store,
                key,
                index.slice_to_bytes(0..index.len()),
                index.len(),
            )
            .await?;
            Ok::<_, DeltaError>((shard, dropped))
        })
        .buffered(SHARDS_AT_ONCE)
        .try_collect()
        .await?;
    let dropped = shards.iter().map(|(_, d)| d).sum();
    let shards: Vec<StoredShard> = shards.into_iter().map(|(s, _)| s).collect();
    Ok((
        StoredIndex {
            layout: INDEX_LAYOUT,
            shard_bits: bits,
            objects: shards.iter().map(|s| s.objects).sum(),
            shards,
        },
        dropped,
    ))
}

/// What [`job_finished`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFinished {
    /// Not a job of an inventory run (e.g. the stack's first job): nothing to do.
    NotAnInventoryJob,
    /// The status is not terminal yet; nothing recorded.
    NotTerminal,
    /// Recorded; other jobs of the run are still running.
    Waiting { run_id: String, remaining: usize },
    /// A job failed or was cancelled: the run never advances the delta state.
    RunFailed { run_id: String, status: String },
    /// A job's failed tasks are not all known ([`FailedTasks::Unaccounted`]): the run never
    /// advances the delta state, so the next inventory copies its objects again.
    NotAccounted {
        run_id: String,
        job_id: String,
        why: String,
    },
    Commit {
        run_id: String,
        outcome: CommitOutcome,
    },
}

/// Records a job's end when the caller vouches for `failed_tasks` being *every* failed task of
/// the job (tests, and callers that checked the report themselves): [`job_finished_with`]
/// with [`FailedTasks::Accounted`].
///
/// ```text
/// crate::inventory::delta::job_finished(&ports, &job_id, &status, &failed_tasks).await
/// ```
pub async fn job_finished<S: StateStore + Sync>(
    store: &S,
    job_id: &str,
    status: &str,
    failed_tasks: &[ObjectRef],
) -> Result<JobFinished, DeltaError> {
    job_finished_with(store, job_id, status, FailedTasks::Accounted(failed_tasks)).await
}

/// The job-monitor's call for every terminal job status (`Complete`, `Failed`, `Cancelled`),
/// with what its completion report and DescribeJob established about the failed tasks
/// ([`crate::report::accounting`]). Records the status, and commits the run once all its jobs
/// are `Complete` with their failed tasks accounted for. A job recorded
/// [`FailedTasks::Unaccounted`] keeps the run from ever committing ([`JobFinished::NotAccounted`]).
/// Safe to call again for the same job.
pub async fn job_finished_with<S: StateStore + Sync>(
    store: &S,
    job_id: &str,
    status: &str,
    failed: FailedTasks<'_>,
) -> Result<JobFinished, DeltaError> {
    let Some(link) = read_json::<JobRun, _>(store, &keys::job_run(job_id)).await? else {
        return Ok(JobFinished::NotAnInventoryJob);
    };
    if !is_terminal_job_status(status) {
        return Ok(JobFinished::NotTerminal);
    }
    let (fp, run_id) = (&link.plan_fingerprint, &link.run_id);
    let (failed_tasks, unaccounted) = match failed {
        FailedTasks::Accounted(tasks) => (tasks.to_vec(), None),
        FailedTasks::Unaccounted(why) => (Vec::new(), Some(why.to_string())),
    };
    let result = JobResult {
        job_id: job_id.to_string(),
        status: status.to_string(),
        failed_tasks,
        unaccounted,
    };
    store
        .put(&keys::job_result(fp, run_id, job_id), to_json(&result))
        .await
        .map_err(aws("recording the job's end"))?;
    if let Some(why) = result.unaccounted {
        // Whatever the run's other jobs do, this one's objects may not all have been copied.
        return Ok(JobFinished::NotAccounted {
            run_id: run_id.clone(),
            job_id: job_id.to_string(),
            why,
        });
    }
    let run = read_json::<RunRecord, _>(store, &keys::run(fp, run_id))
        .await?
        .ok_or_else(|| DeltaError::RunUnknown {
            fingerprint: fp.clone(),
            run_id: run_id.clone(),
        })?;
    let mut remaining = 0;
    let mut uncopied = Vec::new();
    for job in &run.jobs {
        match read_json::<JobResult, _>(store, &keys::job_result(fp, run_id, &job.job_id)).await? {
            None => remaining += 1,
            Some(JobResult {
                job_id,
                unaccounted: Some(why),
                ..
            }) => {
                return Ok(JobFinished::NotAccounted {
                    run_id: run_id.clone(),
                    job_id,
                    why,
                })
            }
            Some(r) if r.status == "Complete" => uncopied.extend(r.failed_tasks),
            Some(r) => {
                return Ok(JobFinished::RunFailed {
                    run_id: run_id.clone(),
                    status: format!("job {} {}", r.job_id, r.status),
                })
            }
        }
    }
    if remaining > 0 {
        return Ok(JobFinished::Waiting {
            run_id: run_id.clone(),
            remaining,
        });
    }
    let outcome = commit_run(store, fp, run_id, &uncopied).await?;
    Ok(JobFinished::Commit {
        run_id: run_id.clone(),
        outcome,
    })
}
