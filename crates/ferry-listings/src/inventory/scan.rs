//! Splitting an inventory's data files on every core: each downloaded data file is checked
//! against its `files[].MD5checksum`, read (CSV, Parquet or ORC), filtered, routed and compared
//! with the delta base on its own thread, into its own parts:
//!
//! - the copy rows as one gzip part of an inventory-format manifest ([`super::part`]), listed
//!   by the `manifest.json` Ferry writes ([`super::copy_manifest`]); or, for rows with version
//!   ids, as plain CSV manifest rows to be concatenated in file order (see
//!   [`ScanInput::copy_as_inventory`]);
//! - the large-object rows as plain CSV manifest rows, concatenated in file order into the one
//!   CSV manifest the large-object copier reads;
//! - the file's [`RouteStats`] and delta-index entries.
//!
//! Same output whatever the thread count: the results come back in file order, each file's
//! rows in their order, and [`ScanTotals::add`] merges them in that order (the first
//! [`super::MAX_LISTED_EXAMPLES`] bad rows are the same ones a single thread lists). A thread
//! holds one file's reader and two output buffers (about 1 MiB, or one Parquet row group or ORC
//! stripe), so memory is bounded by the thread count, not by the inventory's size; the delta
//! base is shared between threads, which only read it and set bits in its [`DeltaBase::seen`].
//!
//! Why rayon: a work-stealing pool from a well-kept crate, ordered results from `collect`; data
//! files differ in size, so a static split would leave cores idle.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::inventory::csv_reader::CsvInventoryReader;
use crate::inventory::filter::RowFilter;
use crate::inventory::index::{DeltaBase, IndexEntry};
use crate::inventory::manifest_json::{FileFormat, InventoryFile, InventoryManifest};
use crate::inventory::orc::OrcInventoryReader;
use crate::inventory::parquet_reader::ParquetInventoryReader;
use crate::inventory::part::{file_md5, md5_matches, PartDigest, PartWriter};
use crate::inventory::route::{ManifestSplitter, RouteStats};
use crate::inventory::row::{InventoryError, InventoryRow};
use ferry_plan::job::hex;

pub(crate) const BUFFER_BYTES: usize = 256 * 1024;

/// What every data file of one run is split with.
#[derive(Clone, Copy)]
pub struct ScanInput<'a> {
    pub manifest: &'a InventoryManifest,
    pub filter: &'a RowFilter,
    /// Collect the delta index (and, with `previous`, skip unchanged objects).
    pub delta: bool,
    /// The last successful run's index (read, and what is found unchanged marked).
    pub previous: Option<&'a DeltaBase>,
    /// Where the parts are written (`copy-<position>.csv.gz` or `.csv`, `large-<position>.csv`).
    pub out_dir: &'a Path,
    /// Copy rows as gzip inventory-format data files (`true`) or as plain CSV manifest rows.
    /// S3's guide documents `null` version ids only for CSV manifests ("Converting empty version
    /// ID strings in Amazon S3 Inventory reports to null strings" ends in a CSV manifest), so
    /// rows with version ids take that form.
    pub copy_as_inventory: bool,
}

/// A data file downloaded to `path`; `position` is its place in `manifest.json`'s `files[]`.
#[derive(Debug, Clone)]
pub struct LocalDataFile<'a> {
    pub position: usize,
    pub file: &'a InventoryFile,
    pub path: PathBuf,
}

/// A part written from one data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPart {
    /// The data file's place in `files[]`.
    pub position: usize,
    pub path: PathBuf,
    pub rows: u64,
    /// Size and MD5 of the stored bytes (the gzip copy parts; for a plain large-object part,
    /// its size and MD5 as written too).
    pub digest: PartDigest,
}

impl<'a> LocalDataFile<'a> {
    /// Every data file of `manifest`, each to be downloaded to `path(position, file)`.
    pub fn all_of(
        manifest: &'a InventoryManifest,
        path: impl Fn(usize, &InventoryFile) -> PathBuf,
    ) -> Vec<Self> {
        manifest
            .files
            .iter()
            .enumerate()
            .map(|(position, file)| LocalDataFile {
                position,
                file,
                path: path(position, file),
            })
            .collect()
    }
}

/// One data file's share of the run.
#[derive(Debug)]
pub struct ScannedFile {
    pub position: usize,
    /// Its copy rows, a gzip inventory-format data file; `None` when it has none.
    pub copy: Option<WrittenPart>,
    /// Its large-object rows, CSV manifest rows; `None` when it has none.
    pub large: Option<WrittenPart>,
    pub stats: RouteStats,
    /// Delta runs: the entries it adds to the next index (new and changed objects, unsorted;
    /// unchanged ones are marked in [`DeltaBase::seen`]).
    pub next_index: Vec<IndexEntry>,
}

/// The run's figures so far, files merged in order.
#[derive(Debug, Default)]
pub struct ScanTotals {
    pub stats: RouteStats,
    pub next_index: Vec<IndexEntry>,
}

impl ScanTotals {
    /// Starts with what the schema alone says ([`RowFilter::schema_warnings`]), as a splitter does.
    pub fn new(manifest: &InventoryManifest) -> Self {
        Self {
            stats: RouteStats {
                warnings: RowFilter::schema_warnings(&manifest.schema),
                ..RouteStats::default()
            },
            next_index: Vec::new(),
        }
    }

    /// Adds one file's figures; call in file order.
    pub fn add(&mut self, file: &mut ScannedFile) {
        self.stats.merge(&file.stats);
        self.next_index.append(&mut file.next_index);
    }
}

/// Splits `files` on up to `threads` threads; the results are in the order of `files`. The
/// first failing file (in that order) is the error; its siblings' parts are left in `out_dir`
/// for the caller to remove with the directory.
pub fn scan_data_files(
    input: ScanInput<'_>,
    files: &[LocalDataFile<'_>],
    threads: usize,
) -> Result<Vec<ScannedFile>, InventoryError> {
    on_threads(files, threads, |f| scan_data_file(input, f))
}

/// `each` of `files` on up to `threads` threads; the results in the order of `files`, the first
/// failing file (in that order) the error.
pub(crate) fn on_threads<T: Send>(
    files: &[LocalDataFile<'_>],
    threads: usize,
    each: impl Fn(&LocalDataFile<'_>) -> Result<T, InventoryError> + Sync,
) -> Result<Vec<T>, InventoryError> {
    let threads = threads.clamp(1, files.len().max(1));
    let results: Vec<Result<T, InventoryError>> = if threads == 1 {
        files.iter().map(&each).collect()
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ferry-scan-{i}"))
            .build()
            .map_err(|e| InventoryError::Threads {
                threads,
                message: e.to_string(),
            })?;
        pool.install(|| files.par_iter().map(&each).collect())
    };
    results.into_iter().collect()
}

/// Refuses a downloaded data file whose MD5 is not its `files[].MD5checksum`, so no row of a
/// file S3 Inventory did not write is used (S3 User Guide, "Locating your inventory list",
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html>).
pub(crate) fn check_md5(data: &LocalDataFile<'_>) -> Result<(), InventoryError> {
    let found = file_md5(&data.path).map_err(|source| InventoryError::WorkDir {
        path: data.path.display().to_string(),
        source,
    })?;
    if !md5_matches(&data.file.md5_checksum, &found) {
        return Err(InventoryError::Checksum {
            file: data.file.key.clone(),
            found: hex(&found),
            expected: data.file.md5_checksum.chars().take(64).collect(),
        });
    }
    Ok(())
}

/// Feeds every row of a downloaded data file (CSV, Parquet or ORC, as `manifest.json` says) to
/// `sink`, in order; bad rows are items too (see [`InventoryError::is_row_error`]).
pub(crate) fn read_rows(
    manifest: &InventoryManifest,
    data: &LocalDataFile<'_>,
    mut sink: impl FnMut(Result<InventoryRow, InventoryError>) -> Result<(), InventoryError>,
) -> Result<(), InventoryError> {
    let file = File::open(&data.path).map_err(|source| InventoryError::WorkDir {
        path: data.path.display().to_string(),
        source,
    })?;
    let key = data.file.key.as_str();
    match manifest.file_format {
        FileFormat::Csv => CsvInventoryReader::bounded(
            manifest,
            key,
            BufReader::with_capacity(BUFFER_BYTES, file),
            data.file.size,
        )?
        .try_for_each(&mut sink),
        FileFormat::Parquet => {
            ParquetInventoryReader::new(manifest, key, file)?.try_for_each(&mut sink)
        }
        FileFormat::Orc => OrcInventoryReader::new(manifest, key, file)?.try_for_each(&mut sink),
    }
}

/// Splits one data file (see the module documentation). Its MD5 is checked first ([`check_md5`]).
pub fn scan_data_file(
    input: ScanInput<'_>,
    data: &LocalDataFile<'_>,
) -> Result<ScannedFile, InventoryError> {
    check_md5(data)?;
    let (copy_name, copy_form): (_, fn(_) -> _) = if input.copy_as_inventory {
        (
            format!("copy-{:06}.csv.gz", data.position),
            PartWriter::gzip,
        )
    } else {
        (format!("copy-{:06}.csv", data.position), PartWriter::plain)
    };
    let copy_path = input.out_dir.join(copy_name);
    let large_path = input
        .out_dir
        .join(format!("large-{:06}.csv", data.position));
    let (copy_out, large_out) = (
        copy_form(create_part_file(&copy_path)?),
        PartWriter::plain(create_part_file(&large_path)?),
    );
    let (schema, filter) = (&input.manifest.schema, input.filter.clone());
    let mut splitter = if input.copy_as_inventory {
        ManifestSplitter::with_inventory_copy_rows(schema, filter, copy_out, large_out)?
    } else {
        ManifestSplitter::new(schema, filter, copy_out, large_out)?
    };
    if input.delta {
        splitter = splitter.with_delta(input.previous.cloned(), 0);
    }
    read_rows(input.manifest, data, |item| {
        splitter.push_result(item).map(|_| ())
    })?;
    let out = splitter.finish().map_err(InventoryError::Write)?;
    let copy = finish_part(out.copy, data.position, &copy_path, out.copy_counts.rows)?;
    let large = finish_part(out.large, data.position, &large_path, out.large_counts.rows)?;
    Ok(ScannedFile {
        position: data.position,
        copy,
        large,
        stats: out.stats,
        next_index: out.next_index,
    })
}

/// A part's local file, buffered.
pub(crate) fn create_part_file(path: &Path) -> Result<BufWriter<File>, InventoryError> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(BUFFER_BYTES, f))
        .map_err(|source| InventoryError::WorkDir {
            path: path.display().to_string(),
            source,
        })
}

/// Ends a part; one without rows is removed (a manifest lists no empty files).
pub(crate) fn finish_part(
    part: PartWriter<BufWriter<File>>,
    position: usize,
    path: &Path,
    rows: u64,
) -> Result<Option<WrittenPart>, InventoryError> {
    let (out, digest) = part.finish().map_err(InventoryError::Write)?;
    out.into_inner()
        .map_err(|e| InventoryError::Write(e.into_error()))?;
    if rows == 0 {
        let _ = std::fs::remove_file(path);
        return Ok(None);
    }
    Ok(Some(WrittenPart {
        position,
        path: path.to_path_buf(),
        rows,
        digest,
    }))
}
