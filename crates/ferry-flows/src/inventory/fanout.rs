//! The fan-out across functions (#18 part 4): an inventory too large for one inventory-handler
//! invocation is read by many, on AWS Step Functions Distributed Map (the stack's
//! `InventoryFanOut` state machine), in three stages:
//!
//! 1. `ScanDataFiles`: one worker per batch of data files ([`scan_step`]) spills each file's
//!    rows by shard ([`ferry_listings::inventory::spill`]) into the state bucket.
//! 2. `DiffShards`: one worker per shard ([`diff_step`]) compares the shard's spilled rows with
//!    that shard of the last index, writes the shard's copy part and its shards of the next index.
//! 3. `LaunchJobs` ([`finish_step`]): the figures added up, the copy parts listed in Ferry's
//!    inventory-format `manifest.json`, the jobs launched and the run recorded exactly as a
//!    single-function run does ([`RunJobContext::launch_and_record`]). A failed stage ends in
//!    `RunFailed` ([`failed_step`]): e-mailed once, nothing launched, the delta base unchanged.
//!
//! [`start`] decides it (from the data files' bytes and the last index's size), writes Ferry's
//! record of the run (`fanout/run.json`) and the two item lists the Maps read, and starts the
//! execution, named after the run so a repeated start is the same execution.
//!
//! Trust: a payload names only a plan and a run. Everything else a worker uses comes from the
//! state bucket, which only the stack's functions may write (`OnlyTheStackWritesState`): the run
//! record, the stored plan (checked against its fingerprint) and the parts other workers wrote
//! (checked against the size and MD5 their writer recorded). A forged execution can at most
//! repeat the work of a real run, whose outputs are the same every time.

use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};

use super::delta::{self, keys, StoredIndex, INDEX_LAYOUT};
pub use super::fanout_records::*;
use super::run::{
    aws, download_data_file, put_record, refuse_sudden_empty, CopyList, InventoryObjects, RunError,
    RunJobContext, RunSettings, Scanned, PART_UPLOADS_AT_ONCE,
};
use crate::ports::{LaunchApi, Notifier, StateStore};
use ferry_listings::inventory::filter::RowFilter;
use ferry_listings::inventory::index::{DeltaBase, IndexEntry, ObjectIndex};
use ferry_listings::inventory::manifest_json::{InventoryFile, InventoryManifest};
use ferry_listings::inventory::part::PartDigest;
use ferry_listings::inventory::route::RouteStats;
use ferry_listings::inventory::row::InventoryError;
use ferry_listings::inventory::scan::{LocalDataFile, ScanTotals};
use ferry_listings::inventory::spill::{
    check_spill_part, shard_of, spill_data_files, DiffInput, ShardDiffer, SpillInput,
};

fn work_dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::WorkDir {
        path: path.display().to_string(),
        source,
    }
}

/// Ferry's record of a run, which must exist: a payload naming a run Ferry never fanned out is
/// refused.
pub async fn read_fan_out_run<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
) -> Result<FanOutRun, RunError> {
    let key = fanout_keys::run(fingerprint, run_id);
    let run = delta::read_json::<FanOutRun, _>(ports, &key)
        .await?
        .ok_or_else(|| {
            RunError::Refused(format!(
                "no fanned-out run {run_id} of plan {fingerprint} is recorded ({key}): only runs inventory-handler \
                 started are worked on"
            ))
        })?;
    if run.layout != FANOUT_LAYOUT || run.run_id != run_id || run.plan_fingerprint != fingerprint {
        return Err(RunError::Refused(format!(
            "{key} describes run {} of plan {} (layout {}), not run {run_id} of plan {fingerprint}",
            run.run_id, run.plan_fingerprint, run.layout
        )));
    }
    Ok(run)
}

/// The run record, for a step of `execution`: only the execution the record names may work on
/// the run (an execution someone else started with the run's ids is refused before any work).
pub async fn run_for_execution<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    execution: &str,
) -> Result<FanOutRun, RunError> {
    let run = read_fan_out_run(ports, fingerprint, run_id).await?;
    if run.execution_name != execution {
        return Err(RunError::Refused(format!(
            "execution {:?} is not run {run_id}'s (its record names {}): nothing done",
            ferry_plan::untrusted::untrusted(execution),
            run.execution_name
        )));
    }
    Ok(run)
}

/// The run for a step of `execution` ([`run_for_execution`]), or `None` once the run is
/// recorded (launched, or found nothing to copy): its workers' outputs are then spent, and a
/// repeated or forged step does nothing.
async fn unrecorded_run<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    execution: &str,
) -> Result<Option<FanOutRun>, RunError> {
    let run = run_for_execution(ports, fingerprint, run_id, execution).await?;
    let recorded = ports
        .get(&keys::run(fingerprint, run_id))
        .await
        .map_err(aws("reading the run record"))?
        .is_some();
    Ok((!recorded).then_some(run))
}

impl FanOutRun {
    pub fn manifest(&self) -> Result<InventoryManifest, RunError> {
        InventoryManifest::from_json(self.manifest_json.as_bytes())
            .map_err(|e| RunError::Refused(format!("the run's recorded manifest.json: {e}")))
    }

    fn batch(&self, batch: usize) -> Result<FanOutBatch, RunError> {
        self.batches.get(batch).copied().ok_or_else(|| {
            RunError::Refused(format!(
                "run {} has {} batches of data files, not a batch {batch}",
                self.run_id,
                self.batches.len()
            ))
        })
    }
}

/// A worker's scratch directory for this run (its own, removed after).
fn worker_dir(settings: &RunSettings, run_id: &str, what: &str) -> Result<PathBuf, RunError> {
    // A Lambda environment runs one invocation at a time: what a killed one left is garbage.
    super::run::remove_leftover_runs(&settings.work_dir);
    let dir = settings
        .work_dir
        .join(format!("ferry-fanout-{run_id}-{what}"));
    std::fs::create_dir_all(&dir).map_err(work_dir_error(&dir))?;
    Ok(dir)
}

/// `ScanDataFiles`' worker: batch `batch` of the run's data files, downloaded (size checked),
/// MD5-checked, filtered and spilled by shard into the state bucket; its record last.
pub async fn scan_step<P>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    execution: &str,
    batch: usize,
    settings: &RunSettings,
) -> Result<(), RunError>
where
    P: StateStore + InventoryObjects + Sync,
{
    let Some(run) = unrecorded_run(ports, fingerprint, run_id, execution).await? else {
        return Ok(());
    };
    let (stored, _plan) = crate::workflow::load_plan(ports, fingerprint).await?;
    let filter = RowFilter::new(stored.spec.filter.as_ref()).map_err(RunError::Refused)?;
    let manifest = run.manifest()?;
    let range = run.batch(batch)?;
    if range.first >= range.end || range.end > manifest.files.len() {
        return Err(RunError::Refused(format!(
            "batch {batch} of run {run_id} names files {}..{} of {}",
            range.first,
            range.end,
            manifest.files.len()
        )));
    }
    let work = worker_dir(settings, run_id, &format!("scan-{batch}"))?;
    let result = Box::pin(scan_batch(
        ports, &run, &manifest, &filter, batch, range, settings, &work,
    ))
    .await;
    let _ = std::fs::remove_dir_all(&work);
    noted(ports, &run, &format!("scan-{batch:05}"), result).await
}

/// Keeps a step's failure in the run's state (`fanout/failures/<step>.txt`) for `RunFailed`,
/// which Step Functions tells only that a Map failed, not which worker or why; a later
/// success of the same step takes it back. Best effort: the step's own error is returned
/// either way, and Step Functions retries on it.
async fn noted<P: StateStore + Sync>(
    ports: &P,
    run: &FanOutRun,
    step: &str,
    result: Result<(), RunError>,
) -> Result<(), RunError> {
    let key = fanout_keys::failure(&run.plan_fingerprint, &run.run_id, step);
    let kept = match &result {
        Err(e) => ports.put(&key, format!("{step}: {e}").into_bytes()).await,
        Ok(()) => ports.delete(&key).await,
    };
    if let Err(cause) = kept {
        tracing::warn!(step, error = %cause, "the step's failure record could not be kept or removed");
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn scan_batch<P>(
    ports: &P,
    run: &FanOutRun,
    manifest: &InventoryManifest,
    filter: &RowFilter,
    batch: usize,
    range: FanOutBatch,
    settings: &RunSettings,
    work: &Path,
) -> Result<(), RunError>
where
    P: StateStore + InventoryObjects + Sync,
{
    let (fp, run_id) = (run.plan_fingerprint.as_str(), run.run_id.as_str());
    let files: Vec<LocalDataFile<'_>> = LocalDataFile::all_of(manifest, |position, _| {
        work.join(format!("data-{position}"))
    })
    .into_iter()
    .skip(range.first)
    .take(range.end - range.first)
    .collect();
    let spill_dir = work.join("spill");
    std::fs::create_dir_all(&spill_dir).map_err(work_dir_error(&spill_dir))?;
    let threads = settings.scan_threads.max(1);
    let mut stats = RouteStats::default();
    let mut spills = Vec::new();
    // As many files on disk at once as there are threads (each at most the budget over threads
    // would be too strict for one large file: the batch as a whole is within the budget).
    for chunk in files.chunks(threads) {
        futures_util::stream::iter(chunk)
            .map(|data| {
                download_data_file(
                    ports,
                    &run.inventory_bucket,
                    data.file.key.clone(),
                    data.path.clone(),
                    data.file.size,
                )
            })
            .buffered(threads)
            .try_collect::<Vec<u64>>()
            .await?;
        let input = SpillInput {
            manifest,
            filter,
            shard_bits: run.shard_bits,
            out_dir: &spill_dir,
        };
        let spilled = spill_data_files(input, chunk, threads);
        for data in chunk {
            let _ = std::fs::remove_file(&data.path);
        }
        for file in spilled.map_err(|e| inventory_error(e, work))? {
            stats.merge(&file.stats);
            let uploads = file.parts.into_iter().map(|part| async move {
                let key = fanout_keys::spill(fp, run_id, part.shard, part.position);
                ports
                    .upload(&settings.state_bucket, &key, &part.path)
                    .await
                    .map_err(aws(format!("writing the spill part {key}")))?;
                let _ = std::fs::remove_file(&part.path);
                Ok::<_, RunError>(StoredSpill {
                    position: part.position,
                    shard: part.shard,
                    key,
                    records: part.records,
                    size: part.digest.size,
                    md5_hex: part.digest.md5_hex,
                })
            });
            let stored: Vec<StoredSpill> = futures_util::stream::iter(uploads)
                .buffered(PART_UPLOADS_AT_ONCE)
                .try_collect()
                .await?;
            spills.extend(stored);
        }
    }
    put_record(
        ports,
        &fanout_keys::scanned(fp, run_id, batch),
        &ScannedBatch {
            batch,
            first: range.first,
            end: range.end,
            stats,
            spills,
        },
    )
    .await
}

/// A reader's error: the local disk's is worth a retry, the inventory's refuses the run.
fn inventory_error(error: InventoryError, work: &Path) -> RunError {
    match error {
        InventoryError::WorkDir { path, source } => RunError::WorkDir { path, source },
        InventoryError::Write(source) | InventoryError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::StorageFull =>
        {
            RunError::WorkDir {
                path: work.display().to_string(),
                source,
            }
        }
        InventoryError::Write(source) => RunError::WorkDir {
            path: work.display().to_string(),
            source,
        },
        other => RunError::Refused(other.to_string()),
    }
}

/// Every scan worker's record, in batch order; a missing or inconsistent one fails the step.
async fn read_scanned<P: StateStore + Sync>(
    ports: &P,
    run: &FanOutRun,
) -> Result<Vec<ScannedBatch>, RunError> {
    let (fp, run_id) = (run.plan_fingerprint.as_str(), run.run_id.as_str());
    let read = (0..run.batches.len()).map(|batch| async move {
        let key = fanout_keys::scanned(fp, run_id, batch);
        let scanned = delta::read_json::<ScannedBatch, _>(ports, &key)
            .await?
            .ok_or_else(|| {
                RunError::Refused(format!(
                    "batch {batch} of run {run_id} left no record ({key}): its scan did not finish"
                ))
            })?;
        let expected = run.batches[batch];
        if scanned.batch != batch || scanned.first != expected.first || scanned.end != expected.end
        {
            return Err(RunError::Refused(format!(
                "{key} describes files {}..{} of batch {}, not files {}..{} of batch {batch}",
                scanned.first, scanned.end, scanned.batch, expected.first, expected.end
            )));
        }
        Ok(scanned)
    });
    futures_util::stream::iter(read)
        .buffered(PART_UPLOADS_AT_ONCE)
        .try_collect()
        .await
}

/// The last index's entries of fan-out shard `shard` (of 2^`bits`), read from the stored shards
/// that cover it: every stored shard is checked whole, as [`delta::read_stored_index`] does.
async fn previous_shard<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    previous: &StoredIndex,
    bits: u32,
    shard: usize,
) -> Result<ObjectIndex, RunError> {
    let stored_bits = previous.shard_bits;
    let (first, end) = if stored_bits >= bits {
        let per = 1usize << (stored_bits - bits);
        (shard * per, (shard + 1) * per)
    } else {
        let of = shard >> (bits - stored_bits);
        (of, of + 1)
    };
    let index = delta::read_stored_shards(ports, fingerprint, previous, first..end).await?;
    if stored_bits >= bits {
        return Ok(index);
    }
    let entries: Vec<IndexEntry> = index
        .entries()
        .iter()
        .filter(|e| shard_of(e.identity, bits) == shard)
        .copied()
        .collect();
    ObjectIndex::from_entries(entries).map_err(|e| RunError::Refused(e.to_string()))
}

/// `DiffShards`' worker: shard `shard`'s spill parts (every batch's, in data-file order) compared
/// with that shard of the last index; its copy part, large-object part and next-index shards
/// written to the state bucket; its record last.
pub async fn diff_step<P>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    execution: &str,
    shard: usize,
    settings: &RunSettings,
) -> Result<(), RunError>
where
    P: StateStore + InventoryObjects + Sync,
{
    let Some(run) = unrecorded_run(ports, fingerprint, run_id, execution).await? else {
        return Ok(());
    };
    if shard >= run.shards() {
        return Err(RunError::Refused(format!(
            "run {run_id} has {} shards, not a shard {shard}",
            run.shards()
        )));
    }
    let work = worker_dir(settings, run_id, &format!("diff-{shard}"))?;
    let result = Box::pin(diff_one(ports, &run, shard, settings, &work)).await;
    let _ = std::fs::remove_dir_all(&work);
    noted(ports, &run, &format!("diff-{shard:05}"), result).await
}

async fn diff_one<P>(
    ports: &P,
    run: &FanOutRun,
    shard: usize,
    settings: &RunSettings,
    work: &Path,
) -> Result<(), RunError>
where
    P: StateStore + InventoryObjects + Sync,
{
    let (fp, run_id) = (run.plan_fingerprint.as_str(), run.run_id.as_str());
    let spills: Vec<StoredSpill> = read_scanned(ports, run)
        .await?
        .into_iter()
        .flat_map(|s| s.spills)
        .filter(|s| s.shard == shard)
        .collect();
    // The shard's size was guessed before the rows were counted: what it really holds must fit
    // this worker (its index entries and the ones it adds), or the run is refused by name.
    let records: u64 = spills.iter().map(|s| s.records).sum();
    let base_objects = run.previous.as_ref().map_or(0, |c| c.objects) >> run.shard_bits;
    if let Some(fan) = &settings.fan_out {
        let room = fan.index_objects_per_function();
        if records.saturating_add(base_objects) > room.saturating_mul(2) {
            return Err(RunError::Refused(format!(
                "shard {shard} holds {records} rows (and about {base_objects} objects of the last index), more than \
                 a {} MB worker takes ({room} objects with room to spare): the inventory has far more rows than \
                 its size suggested. Give inventory-handler more memory (InventoryHandlerMemoryMB)",
                fan.memory_mb
            )));
        }
    }
    let root = keys::root(fp);
    if let Some(bad) = spills.iter().find(|s| !s.key.starts_with(&root)) {
        return Err(RunError::Refused(format!(
            "a spill part at {:?}, outside the transfer's state {root}",
            bad.key
        )));
    }
    let base = match (&run.previous, run.delta) {
        (Some(current), true) => {
            let stored = current.index.as_ref().ok_or_else(|| {
                RunError::Refused("the fan-out's base index is not in layout 2".to_string())
            })?;
            Some(DeltaBase::new(
                previous_shard(ports, fp, stored, run.shard_bits, shard).await?,
            ))
        }
        _ => None,
    };
    let out_dir = work.join("out");
    std::fs::create_dir_all(&out_dir).map_err(work_dir_error(&out_dir))?;
    let mut differ = ShardDiffer::new(DiffInput {
        shard,
        shard_bits: run.shard_bits,
        base: base.as_ref(),
        delta: run.delta,
        with_version_ids: false,
        out_dir: &out_dir,
    })
    .map_err(|e| inventory_error(e, work))?;
    // One part on disk at a time, downloaded, checked against what its spill recorded, read,
    // removed: the shard's spill as a whole may be larger than the work directory.
    let budget = settings.data_file_budget();
    for (n, spill) in spills.iter().enumerate() {
        if spill.size > budget {
            return Err(RunError::Refused(format!(
                "the spill part {} is {} bytes, more than the {budget} bytes a worker holds at once",
                spill.key, spill.size
            )));
        }
        let path = work.join(format!("spill-{n:06}.bin"));
        let written = ports
            .download(&settings.state_bucket, &spill.key, &path, spill.size)
            .await
            .map_err(aws(format!("reading the spill part {}", spill.key)))?;
        if written != spill.size {
            return Err(RunError::Refused(format!(
                "the spill part {} is {written} bytes, its spill recorded {}",
                spill.key, spill.size
            )));
        }
        let digest = PartDigest {
            size: spill.size,
            md5_hex: spill.md5_hex.clone(),
        };
        check_spill_part(&path, &digest).map_err(|e| inventory_error(e, work))?;
        let file = std::fs::File::open(&path).map_err(work_dir_error(&path))?;
        differ
            .push(spill.key.clone(), file)
            .map_err(|e| inventory_error(e, work))?;
        let _ = std::fs::remove_file(&path);
    }
    let diffed = differ.finish().map_err(|e| inventory_error(e, work))?;
    let upload = |key: String, part: ferry_listings::inventory::scan::WrittenPart| async move {
        ports
            .upload(&settings.state_bucket, &key, &part.path)
            .await
            .map_err(aws(format!("writing {key}")))?;
        Ok::<_, RunError>(StoredPart {
            key,
            size: part.digest.size,
            md5_hex: part.digest.md5_hex,
            rows: part.rows,
        })
    };
    let copy = match diffed.copy {
        // The copy parts sit where a single-function run puts its own (`data/`), numbered by
        // shard: Ferry's manifest.json lists them and the batch role may read them there.
        Some(part) => Some(upload(copy_part_key(fp, run_id, shard), part).await?),
        None => None,
    };
    let large = match diffed.large {
        Some(part) => Some(upload(fanout_keys::large_part(fp, run_id, shard), part).await?),
        None => None,
    };
    let index_shards = if run.delta {
        let next = match base {
            Some(base) => base.into_next(diffed.added),
            None => ObjectIndex::from_entries(diffed.added),
        }
        .map_err(|e| RunError::Refused(e.to_string()))?;
        delta::write_index_range(
            ports,
            &keys::pending_index_dir(fp, run_id),
            &next,
            run.index_shard_bits,
            run.shard_bits,
            shard,
        )
        .await?
    } else {
        Vec::new()
    };
    put_record(
        ports,
        &fanout_keys::diffed(fp, run_id, shard),
        &Diffed {
            shard,
            stats: diffed.stats,
            copy,
            large,
            index_shards,
        },
    )
    .await
}

/// Where a single-function run puts copy part `n` (`runs/<run>/data/<n>.csv.gz`).
fn copy_part_key(fingerprint: &str, run_id: &str, n: usize) -> String {
    format!("{}data/{n:06}.csv.gz", keys::run_dir(fingerprint, run_id))
}

/// `LaunchJobs`: every scan and diff record read (each must be there), the figures added up in
/// the order a single function adds them, the next index described from its shards, then the
/// jobs launched and the run recorded and e-mailed as a single-function run is. A repeated call
/// finds the run recorded and does nothing.
pub async fn finish_step<P>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    execution: &str,
    settings: &RunSettings,
) -> Result<(), RunError>
where
    P: StateStore + InventoryObjects + LaunchApi + Notifier + Sync,
{
    let Some(run) = unrecorded_run(ports, fingerprint, run_id, execution).await? else {
        return Ok(());
    };
    let (stored, plan) = crate::workflow::load_plan(ports, fingerprint).await?;
    let manifest = run.manifest()?;
    let work = worker_dir(settings, run_id, "finish")?;
    let job = RunJobContext {
        ports,
        stored: &stored,
        plan: &plan,
        fingerprint,
        run_id,
        bucket: &run.inventory_bucket,
        inventory_dir: &run.inventory_dir,
        manifest_key: &run.manifest_key,
        manifest_etag: &run.manifest_etag,
        manifest: &manifest,
        delta: run.delta,
        settings,
        work: &work,
    };
    let result = Box::pin(finish(&job, &run)).await;
    let _ = std::fs::remove_dir_all(&work);
    noted(ports, &run, "finish", result).await
}

async fn finish<P>(job: &RunJobContext<'_, P>, run: &FanOutRun) -> Result<(), RunError>
where
    P: StateStore + InventoryObjects + LaunchApi + Notifier + Sync,
{
    let (fp, run_id) = (job.fingerprint, job.run_id);
    let mut totals = ScanTotals::new(job.manifest);
    for scanned in read_scanned(job.ports, run).await? {
        totals.stats.merge(&scanned.stats);
    }
    let mut copy_parts = Vec::new();
    let mut index_shards = Vec::new();
    let large_path = job.work.join("large.csv");
    let mut large_csv = std::fs::File::create(&large_path).map_err(work_dir_error(&large_path))?;
    for shard in 0..run.shards() {
        let key = fanout_keys::diffed(fp, run_id, shard);
        let diffed = delta::read_json::<Diffed, _>(job.ports, &key)
            .await?
            .ok_or_else(|| {
                RunError::Refused(format!(
                    "shard {shard} of run {run_id} left no record ({key}): its diff did not finish"
                ))
            })?;
        if diffed.shard != shard {
            return Err(RunError::Refused(format!(
                "{key} describes shard {}",
                diffed.shard
            )));
        }
        totals.stats.merge(&diffed.stats);
        if let Some(part) = diffed.copy {
            copy_parts.push(InventoryFile {
                key: part.key,
                size: part.size,
                md5_checksum: part.md5_hex,
            });
        }
        if let Some(part) = diffed.large {
            // Objects over 5 GiB are few: their rows are put end to end in one CSV manifest.
            let path = job.work.join(format!("large-{shard}.csv"));
            job.ports
                .download(&job.settings.state_bucket, &part.key, &path, part.size)
                .await
                .map_err(aws(format!("reading {}", part.key)))?;
            check_stored_part(&path, &part)?;
            let mut from = std::fs::File::open(&path).map_err(work_dir_error(&path))?;
            std::io::copy(&mut from, &mut large_csv).map_err(work_dir_error(&large_path))?;
            let _ = std::fs::remove_file(&path);
        }
        index_shards.extend(diffed.index_shards);
    }
    let stats = totals.stats;
    if !stats.is_balanced() {
        return Err(RunError::Refused(format!(
            "the shards' figures do not add up: {} rows read, {} to copy, {} large, {} skipped",
            stats.rows,
            stats.copy.objects,
            stats.large.objects,
            stats.skipped_total().objects
        )));
    }
    let previous_objects = run.previous.as_ref().map_or(0, |c| c.objects);
    refuse_sudden_empty(run.delta, stats.rows, previous_objects)?;
    let (index, index_objects) = if run.delta {
        let objects = index_shards.iter().map(|s| s.objects).sum();
        if index_shards.len() != 1usize << run.index_shard_bits {
            return Err(RunError::Refused(format!(
                "the shards wrote {} shards of the next index, not {}",
                index_shards.len(),
                1usize << run.index_shard_bits
            )));
        }
        (
            Some(StoredIndex {
                layout: INDEX_LAYOUT,
                shard_bits: run.index_shard_bits,
                objects,
                shards: index_shards,
            }),
            objects,
        )
    } else {
        (None, 0)
    };
    // From here jobs may be created: a failure after this says so (`failed_step`).
    put_record(
        job.ports,
        &fanout_keys::launching(fp, run_id),
        &serde_json::json!({}),
    )
    .await?;
    let record = job
        .launch_and_record(
            Scanned {
                stats,
                next_index: Vec::new(),
                copy: CopyList::Parts {
                    uploaded: copy_parts,
                    local: Vec::new(),
                },
            },
            index,
            index_objects,
            run.previous.as_ref().map(|c| c.run_id.clone()),
            false,
        )
        .await?;
    tracing::info!(run_id = %record.run_id, jobs = record.jobs.len(), "fanned-out run launched");
    Ok(())
}

/// A part a diff worker wrote, checked against its record before it is used.
fn check_stored_part(path: &Path, part: &StoredPart) -> Result<(), RunError> {
    let digest = PartDigest {
        size: part.size,
        md5_hex: part.md5_hex.clone(),
    };
    check_spill_part(path, &digest).map_err(|e| RunError::Refused(e.to_string()))
}

/// Failed steps named in `RunFailed`'s e-mail (the rest are counted).
pub const MAX_FAILURES_SAID: usize = 10;

/// `RunFailed`: a stage failed for good (after Step Functions' retries). Said once by e-mail
/// with each failing worker's own reason; nothing was launched (or, if the launch step failed
/// midway, jobs may have been: said so) and the delta base is unchanged, so the next inventory
/// still copies everything this one would have. The claim is kept: this inventory is not run
/// again. A run already recorded (launched) has nothing to say here.
pub async fn failed_step<P>(
    ports: &P,
    fingerprint: &str,
    run_id: &str,
    execution: &str,
    error: &str,
    cause: &str,
) -> Result<(), RunError>
where
    P: StateStore + Notifier + Sync,
{
    let Some(run) = unrecorded_run(ports, fingerprint, run_id, execution).await? else {
        return Ok(());
    };
    let (stored, _) = crate::workflow::load_plan(ports, fingerprint).await?;
    // Whatever Step Functions or the failing step said (a Lambda error's message, as JSON), cut
    // to a readable length; escaped with the rest.
    let short = |text: &str, max: usize| -> String { text.chars().take(max).collect() };
    let mut details = vec![format!("{}: {}", short(error, 200), short(cause, 2000))];
    // A Map's failure names no worker: the workers' own records say which failed and why.
    let failures = ports
        .list(&fanout_keys::failures(fingerprint, run_id))
        .await
        .map_err(aws("listing the fan-out's failed steps"))?;
    for key in failures.iter().take(MAX_FAILURES_SAID) {
        if let Some(text) = ports
            .get(key)
            .await
            .map_err(aws(format!("reading {key}")))?
        {
            details.push(short(&String::from_utf8_lossy(&text), 2000));
        }
    }
    if failures.len() > MAX_FAILURES_SAID {
        details.push(format!(
            "and {} more failed steps",
            failures.len() - MAX_FAILURES_SAID
        ));
    }
    say_ended(
        ports,
        &stored.spec,
        &run,
        &format!(
            "the fan-out across functions ({}) failed",
            run.execution_name
        ),
        &details,
    )
    .await
}

/// E-mails, once, that a fanned-out run ended unrecorded: whether jobs may have been created
/// depends on whether the launch step had begun (its mark).
async fn say_ended<P: StateStore + Notifier + Sync>(
    ports: &P,
    spec: &ferry_plan::spec::TransferSpec,
    run: &FanOutRun,
    headline: &str,
    details: &[String],
) -> Result<(), RunError> {
    let (fp, run_id) = (run.plan_fingerprint.as_str(), run.run_id.as_str());
    let launching = ports
        .get(&fanout_keys::launching(fp, run_id))
        .await
        .map_err(aws("reading the launch mark"))?
        .is_some();
    super::run::fanned_out_failed(
        ports,
        spec,
        fp,
        run_id,
        &run.manifest_key,
        headline,
        details,
        launching,
    )
    .await
}

/// Step Functions' "Execution Status Change" event for an execution of the stack's state
/// machine (`execution_arn`): if it is a run's, the run is not recorded, and the execution
/// really ended without success (DescribeExecution: `ABORTED`, `TIMED_OUT` or `FAILED`), it is
/// e-mailed once. An execution stopped by hand never reaches `RunFailed`; this is what says so.
/// Returns the status it reported, if any.
pub async fn execution_ended<P>(
    ports: &P,
    fingerprint: &str,
    state_machine_arn: &str,
    execution_arn: &str,
) -> Result<Option<String>, RunError>
where
    P: StateStore + Notifier + FanOutEngine + Sync,
{
    let prefix = format!(
        "{}:",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    );
    let Some(name) = execution_arn.strip_prefix(&prefix) else {
        return Ok(None);
    };
    // `ferry-<run: 32 hex>-<nonce: 16 hex>`
    let parts: Vec<&str> = name.split('-').collect();
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
    if parts.len() != 3 || parts[0] != "ferry" || !hex(parts[1], 32) || !hex(parts[2], 16) {
        return Ok(None);
    }
    let run_id = parts[1];
    let Some(run) = unrecorded_run(ports, fingerprint, run_id, name).await? else {
        return Ok(None);
    };
    // The event is only a hint: the status is Step Functions' own answer.
    let status = ports
        .execution_status(execution_arn)
        .await
        .map_err(aws(format!("describing the fan-out execution {name}")))?;
    if !matches!(status.as_str(), "ABORTED" | "TIMED_OUT" | "FAILED") {
        return Ok(None);
    }
    let (stored, _) = crate::workflow::load_plan(ports, fingerprint).await?;
    say_ended(
        ports,
        &stored.spec,
        &run,
        &format!(
            "the fan-out across functions ({}) ended {status} before the run was recorded",
            run.execution_name
        ),
        &[],
    )
    .await?;
    Ok(Some(status))
}
