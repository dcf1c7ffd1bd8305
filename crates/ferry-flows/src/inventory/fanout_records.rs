//! The fan-out's records in the state bucket and its shape (#18 part 4): what inventory-handler
//! writes when it hands a run to the stack's `InventoryFanOut` state machine, and what each of
//! its workers leaves for the next stage (see [`super::fanout`] for the stages). Also the
//! [`FanOutEngine`] port (Step Functions' StartExecution) and [`shape`], which decides whether a
//! run fans out and how wide.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::delta::{keys, CurrentIndex, StoredShard};
use crate::aws_error::AwsCallError;
use ferry_listings::inventory::index::{ObjectIndex, MAX_SHARD_BITS};
use ferry_listings::inventory::manifest_json::InventoryFile;
use ferry_listings::inventory::route::RouteStats;
use ferry_listings::inventory::spill::MAX_FANOUT_SHARD_BITS;

/// The layout of [`FanOutRun`].
pub const FANOUT_LAYOUT: u32 = 1;
/// The most scan items (batches) a run has: each Map item's output is `{}`, so the Map's
/// aggregated output stays far under Step Functions' 256 KiB payload quota
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>, "Maximum input or
/// output size for a task, state, or execution").
pub const MAX_SCAN_BATCHES: usize = 4096;
/// Data-file bytes one scan worker reads, at most (and at most a quarter of its work directory,
/// which also holds the spill): at the floor rate of 8 MiB/s per thread even a 2-vCPU worker
/// reads this in about 4 minutes, inside Lambda's 15.
pub const BATCH_BYTES: u64 = 4 << 30;
/// Objects of the last index one diff worker holds per GiB of its memory: about 17 bytes each
/// for the index and the next one built in place, with room for the spill parts' buffers and
/// the added entries (docs/proof.md, "delta memory").
pub const INDEX_OBJECTS_PER_GIB: u64 = 24 << 20;
/// Compressed inventory bytes per row, at most, to size the shards before the rows are counted
/// (a first run; later runs know the last index's count): gzip CSV takes about 33 bytes a row
/// (`docs/proof.md`, 5 M rows in 165 MB), so half of that overestimates the rows about twice,
/// which only makes more, smaller shards.
pub const DATA_BYTES_PER_ROW_AT_MOST: u64 = 16;

/// Work-directory bytes a diff worker needs per object of its shard, at most: its gzip copy
/// part (about 40 bytes a row for 40–120-byte keys; a first run lists every object) and one
/// spill part at a time, with room for longer keys.
pub const SHARD_DISK_BYTES_PER_OBJECT: u64 = 64;

/// The stack's state machine (`FERRY_FANOUT_STATE_MACHINE_ARN`) and when to use it.
#[derive(Debug, Clone)]
pub struct FanOutSettings {
    pub state_machine_arn: String,
    /// Fan out when the data files add up to more than this (`FERRY_FANOUT_DATA_BYTES`).
    pub data_bytes: u64,
    /// The function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, MB): fan out when the last
    /// index would not fit, and size the shards to it.
    pub memory_mb: u64,
    /// Random, per invocation (16 hex digits): the end of the execution's name,
    /// `ferry-<run>-<nonce>`, so nobody can start an execution of that name first, and the
    /// workers act only for the one execution the run record names.
    pub execution_nonce: String,
}

impl FanOutSettings {
    /// Objects of an index one function holds with room to spare.
    pub fn index_objects_per_function(&self) -> u64 {
        (self.memory_mb / 1024).max(1) * INDEX_OBJECTS_PER_GIB
    }
}

/// Step Functions, as the fan-out uses it.
pub trait FanOutEngine {
    /// `StartExecution` of `state_machine_arn` named `name` with `input` (JSON); the execution's
    /// ARN. Step Functions answers a repeated start of the same name and input with the same
    /// execution (API Reference, StartExecution: "idempotent"), which is what a retried event
    /// needs; an `ExecutionAlreadyExists` (same name, other input, or a closed execution) is the
    /// error code the caller sees.
    fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;

    /// DescribeExecution's `status` of `execution_arn` (`RUNNING`, `SUCCEEDED`, `FAILED`,
    /// `TIMED_OUT`, `ABORTED`, `PENDING_REDRIVE`).
    fn execution_status(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
}

/// State keys of a fan-out, beside the run's own.
pub mod fanout_keys {
    use super::keys;

    pub fn dir(fingerprint: &str, run_id: &str) -> String {
        format!("{}fanout/", keys::run_dir(fingerprint, run_id))
    }
    pub fn run(fingerprint: &str, run_id: &str) -> String {
        format!("{}run.json", dir(fingerprint, run_id))
    }
    /// The `ScanDataFiles` Map's items (its ItemReader reads them; the template's definition
    /// spells this key with `States.Format`).
    pub fn scan_items(fingerprint: &str, run_id: &str) -> String {
        format!("{}scan-items.json", dir(fingerprint, run_id))
    }
    /// The `DiffShards` Map's items.
    pub fn shard_items(fingerprint: &str, run_id: &str) -> String {
        format!("{}shard-items.json", dir(fingerprint, run_id))
    }
    pub fn spill(fingerprint: &str, run_id: &str, shard: usize, position: usize) -> String {
        format!(
            "{}spill/{shard:05}/{position:06}.bin",
            dir(fingerprint, run_id)
        )
    }
    pub fn scanned(fingerprint: &str, run_id: &str, batch: usize) -> String {
        format!("{}scanned/{batch:05}.json", dir(fingerprint, run_id))
    }
    pub fn diffed(fingerprint: &str, run_id: &str, shard: usize) -> String {
        format!("{}diffed/{shard:05}.json", dir(fingerprint, run_id))
    }
    /// A step's failure (`scan-<batch>`, `diff-<shard>`, `finish`), for `RunFailed`'s e-mail.
    pub fn failure(fingerprint: &str, run_id: &str, step: &str) -> String {
        format!("{}{step}.txt", failures(fingerprint, run_id))
    }
    /// Written by the launch step just before it creates jobs.
    pub fn launching(fingerprint: &str, run_id: &str) -> String {
        format!("{}launching.json", dir(fingerprint, run_id))
    }
    pub fn failures(fingerprint: &str, run_id: &str) -> String {
        format!("{}failures/", dir(fingerprint, run_id))
    }
    pub fn large_part(fingerprint: &str, run_id: &str, shard: usize) -> String {
        format!("{}large/{shard:05}.csv", dir(fingerprint, run_id))
    }
}

/// One batch of data files: positions `first..end` of `files[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOutBatch {
    pub first: usize,
    pub end: usize,
}

/// Ferry's record of a fanned-out run: what every worker reads instead of its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOutRun {
    pub layout: u32,
    pub run_id: String,
    pub plan_fingerprint: String,
    pub inventory_bucket: String,
    /// `<prefix>/<source>/<config>/<date>/`, where the run's CSV manifests go.
    pub inventory_dir: String,
    pub manifest_key: String,
    pub manifest_etag: String,
    /// `manifest.json` as read and checked (its MD5 is what `manifest.checksum` says).
    pub manifest_json: String,
    /// 2^`shard_bits` diff workers.
    pub shard_bits: u32,
    /// The next index is stored in 2^`index_shard_bits` shards (≥ `shard_bits`).
    pub index_shard_bits: u32,
    pub batches: Vec<FanOutBatch>,
    pub delta: bool,
    /// The base the delta compares with (layout 2), if any.
    pub previous: Option<CurrentIndex>,
    pub execution_name: String,
}

/// A spill part in the state bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSpill {
    pub position: usize,
    pub shard: usize,
    pub key: String,
    pub records: u64,
    pub size: u64,
    pub md5_hex: String,
}

/// What a scan worker left: its files' figures and spill parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedBatch {
    pub batch: usize,
    pub first: usize,
    pub end: usize,
    /// The batch's files' figures, merged in file order.
    pub stats: RouteStats,
    pub spills: Vec<StoredSpill>,
}

/// A part a diff worker wrote to the state bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPart {
    pub key: String,
    pub size: u64,
    pub md5_hex: String,
    pub rows: u64,
}

/// What a diff worker left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diffed {
    pub shard: usize,
    pub stats: RouteStats,
    pub copy: Option<StoredPart>,
    pub large: Option<StoredPart>,
    /// Its shards of the next index (delta runs), in order.
    pub index_shards: Vec<StoredShard>,
}

/// Whether this run fans out, and how wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutShape {
    pub shard_bits: u32,
    pub index_shard_bits: u32,
}

/// The fan-out's shape for an inventory of `data_bytes` whose last index holds
/// `previous_objects`; `None` when one function takes it. A diff worker's shard is bounded by its
/// memory ([`FanOutSettings::index_objects_per_function`]) and by its work directory
/// (`work_dir_bytes`): half of it for the shard's copy part, which on a first run lists every
/// object of the shard ([`SHARD_DISK_BYTES_PER_OBJECT`]).
pub fn shape(
    settings: &FanOutSettings,
    work_dir_bytes: u64,
    data_bytes: u64,
    previous_objects: u64,
) -> Option<FanOutShape> {
    let in_memory = settings.index_objects_per_function();
    if data_bytes <= settings.data_bytes && previous_objects <= in_memory {
        return None;
    }
    let per_shard = in_memory.min(work_dir_bytes / 2 / SHARD_DISK_BYTES_PER_OBJECT);
    let objects = previous_objects.max(data_bytes / DATA_BYTES_PER_ROW_AT_MOST);
    let bits_for = |objects: u64, per: u64| -> u32 {
        let shards = objects.div_ceil(per.max(1)).max(1);
        u64::BITS - (shards - 1).leading_zeros()
    };
    let shard_bits = bits_for(objects, per_shard).clamp(1, MAX_FANOUT_SHARD_BITS);
    let index_shard_bits =
        ObjectIndex::shard_bits_for(usize::try_from(objects).unwrap_or(usize::MAX))
            .max(shard_bits)
            .min(MAX_SHARD_BITS);
    Some(FanOutShape {
        shard_bits,
        index_shard_bits,
    })
}

/// `files` cut into batches of consecutive files of at most `max_bytes` (a larger file alone).
pub fn batches_of(files: &[InventoryFile], max_bytes: u64) -> Vec<FanOutBatch> {
    let mut out = Vec::new();
    let (mut first, mut bytes) = (0usize, 0u64);
    for (i, file) in files.iter().enumerate() {
        if i > first && bytes.saturating_add(file.size) > max_bytes {
            out.push(FanOutBatch { first, end: i });
            (first, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(file.size);
    }
    if first < files.len() {
        out.push(FanOutBatch {
            first,
            end: files.len(),
        });
    }
    out
}

impl FanOutRun {
    /// The diff workers: 2^`shard_bits`.
    pub fn shards(&self) -> usize {
        1usize << self.shard_bits
    }
}
