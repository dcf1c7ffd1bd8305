//! Routing rows into the two manifests and counting everything else, and the fast-path check.
//!
//! Accounting rule: every row read is in exactly one of `copy`, `large` or `skipped[reason]`,
//! so `copy + large + Σ skipped == rows` always holds ([`RouteStats::is_balanced`]).

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::inventory::filter::{Outcome, RowFilter, SkipReason};
use crate::inventory::index::{DeltaBase, EntryHasher, IndexEntry, Lookup};
use crate::inventory::manifest_json::{FileFormat, InventoryManifest, InventorySchema};
use crate::inventory::row::{InventoryError, InventoryRow};
use crate::manifest::{CsvManifestWriter, ManifestCounts, ManifestWriteError};
use ferry_plan::inventory_fields::Column;

/// Row errors kept word for word in [`RouteStats::examples`]; the rest are only counted.
pub const MAX_LISTED_EXAMPLES: usize = 100;

/// Objects and their bytes. Rows without a size (delete markers) add no bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub objects: u64,
    pub bytes: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, size: Option<u64>) {
        self.objects += 1;
        self.bytes = self.bytes.saturating_add(size.unwrap_or(0));
    }
}

/// What became of every row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    /// Rows read, bad ones included.
    pub rows: u64,
    /// Written to the copy manifest.
    pub copy: Tally,
    /// Written to the large-object manifest.
    pub large: Tally,
    /// Delta runs: of `copy` and `large`, the objects the last successful run copied with
    /// another ETag or size (the rest are new).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changed: u64,
    /// Everything else, by reason (only reasons that occurred).
    pub skipped: BTreeMap<SkipReason, Tally>,
    /// The first [`MAX_LISTED_EXAMPLES`] malformed or rejected rows, with file and row.
    pub examples: Vec<String>,
    /// Things the inventory's columns can't show (see [`RowFilter::schema_warnings`]).
    pub warnings: Vec<String>,
}

impl RouteStats {
    pub fn skipped(&self, reason: SkipReason) -> Tally {
        self.skipped.get(&reason).copied().unwrap_or_default()
    }

    pub fn skipped_total(&self) -> Tally {
        self.skipped.values().fold(Tally::default(), |a, t| Tally {
            objects: a.objects + t.objects,
            bytes: a.bytes.saturating_add(t.bytes),
        })
    }

    /// Every row accounted for exactly once.
    pub fn is_balanced(&self) -> bool {
        self.copy.objects + self.large.objects + self.skipped_total().objects == self.rows
    }

    /// Adds another data file's figures (an inventory is several files).
    pub fn merge(&mut self, other: &RouteStats) {
        self.rows += other.rows;
        self.changed += other.changed;
        for (mine, theirs) in [(&mut self.copy, other.copy), (&mut self.large, other.large)] {
            mine.objects += theirs.objects;
            mine.bytes = mine.bytes.saturating_add(theirs.bytes);
        }
        for (reason, t) in &other.skipped {
            let mine = self.skipped.entry(*reason).or_default();
            mine.objects += t.objects;
            mine.bytes = mine.bytes.saturating_add(t.bytes);
        }
        for e in &other.examples {
            self.note(e.clone());
        }
        for w in &other.warnings {
            if !self.warnings.contains(w) {
                self.warnings.push(w.clone());
            }
        }
    }

    pub(crate) fn skip(&mut self, reason: SkipReason, size: Option<u64>) {
        self.skipped.entry(reason).or_default().add(size);
    }

    pub(crate) fn note(&mut self, example: String) {
        if self.examples.len() < MAX_LISTED_EXAMPLES {
            self.examples.push(example);
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Writes passing rows to the copy manifest or the large-object manifest and counts the rest.
/// Both manifests are `Bucket,Key[,VersionId]` CSV from [`CsvManifestWriter`], with version ids
/// exactly when the inventory has a VersionId column (a null version is written `null`).
///
/// With [`ManifestSplitter::with_delta`] it also collects the index of every object that passes
/// the filter, and skips those the previous index holds unchanged ([`SkipReason::Unchanged`]).
pub struct ManifestSplitter<C: Write, L: Write> {
    filter: RowFilter,
    copy: CsvManifestWriter<C>,
    large: CsvManifestWriter<L>,
    stats: RouteStats,
    delta: Option<Delta>,
}

struct Delta {
    /// Shared: the data files of one inventory are split on several threads at once.
    previous: Option<DeltaBase>,
    hasher: EntryHasher,
    next: Vec<IndexEntry>,
}

/// What [`ManifestSplitter::finish`] hands back.
#[derive(Debug)]
pub struct SplitOutput<C, L> {
    pub copy: C,
    pub copy_counts: ManifestCounts,
    pub large: L,
    pub large_counts: ManifestCounts,
    pub stats: RouteStats,
    /// With [`ManifestSplitter::with_delta`]: the entries this run adds to the next index (the
    /// objects written: new or changed), unsorted. Those found unchanged are marked in the
    /// base's [`DeltaBase::seen`] instead; [`DeltaBase::into_next`] makes the whole next index.
    pub next_index: Vec<IndexEntry>,
}

impl<C: Write, L: Write> ManifestSplitter<C, L> {
    /// Refuses an inventory without the columns the filter and routing need (Size always).
    pub fn new(
        schema: &InventorySchema,
        filter: RowFilter,
        copy_out: C,
        large_out: L,
    ) -> Result<Self, InventoryError> {
        Self::build(schema, filter, copy_out, large_out, false)
    }

    /// As [`ManifestSplitter::new`], the copy rows written as an inventory-format data file
    /// ([`CsvManifestWriter::inventory_data`]: every field quoted) for a Ferry-written
    /// `manifest.json`; the large-object rows stay a CSV manifest (the copier reads only those).
    pub fn with_inventory_copy_rows(
        schema: &InventorySchema,
        filter: RowFilter,
        copy_out: C,
        large_out: L,
    ) -> Result<Self, InventoryError> {
        Self::build(schema, filter, copy_out, large_out, true)
    }

    fn build(
        schema: &InventorySchema,
        filter: RowFilter,
        copy_out: C,
        large_out: L,
        inventory_copy_rows: bool,
    ) -> Result<Self, InventoryError> {
        let versions = schema.has(Column::VersionId);
        let copy = if inventory_copy_rows {
            CsvManifestWriter::inventory_data(copy_out, versions)
        } else {
            CsvManifestWriter::new(copy_out, versions)
        };
        let large = CsvManifestWriter::new(large_out, versions);
        filter.check_schema(schema)?;
        Ok(Self {
            filter,
            copy,
            large,
            stats: RouteStats {
                warnings: RowFilter::schema_warnings(schema),
                ..RouteStats::default()
            },
            delta: None,
        })
    }

    /// Collects this run's index and, given the last successful run's, skips unchanged objects
    /// (marking them in its [`DeltaBase::seen`]). `expected_rows` sizes the added entries up
    /// front (0 when unknown).
    pub fn with_delta(mut self, previous: Option<DeltaBase>, expected_rows: usize) -> Self {
        self.delta = Some(Delta {
            previous,
            hasher: EntryHasher::new(),
            next: Vec::with_capacity(expected_rows),
        });
        self
    }

    /// Routes one row. Only a failed write is an error.
    pub fn push(&mut self, row: &InventoryRow) -> io::Result<Outcome> {
        self.stats.rows += 1;
        let outcome = self.filter.classify(row);
        let mut entry = None;
        let mut changed = false;
        if let (Outcome::Copy | Outcome::Large, Some(delta)) = (outcome, &mut self.delta) {
            let e = delta.hasher.row(row);
            match delta.previous.as_ref().map(|p| (p, p.index.lookup(e))) {
                Some((base, Lookup::Unchanged(position))) => {
                    base.seen.mark(position);
                    self.stats.skip(SkipReason::Unchanged, row.size);
                    return Ok(Outcome::Skip(SkipReason::Unchanged));
                }
                Some((_, Lookup::Changed)) => changed = true,
                Some((_, Lookup::New)) | None => {}
            }
            entry = Some(e);
        }
        let writer_result = match outcome {
            Outcome::Skip(reason) => {
                self.stats.skip(reason, row.size);
                return Ok(outcome);
            }
            Outcome::Copy => self
                .copy
                .write(&row.bucket, &row.key, row.version_id.as_deref()),
            Outcome::Large => self
                .large
                .write(&row.bucket, &row.key, row.version_id.as_deref()),
        };
        match writer_result {
            Ok(()) => {
                // Only what was written (or found unchanged) enters the next index.
                if let (Some(e), Some(delta)) = (entry, &mut self.delta) {
                    delta.next.push(e);
                }
                self.stats.changed += u64::from(changed);
                match outcome {
                    Outcome::Large => self.stats.large.add(row.size),
                    _ => self.stats.copy.add(row.size),
                }
                Ok(outcome)
            }
            Err(ManifestWriteError::Io(e)) => Err(e),
            // The readers check what the writer would refuse; this is the safety net, counted
            // like any other skip.
            Err(e) => {
                self.stats.skip(SkipReason::Rejected, row.size);
                self.stats.note(format!("key {:?}: {e}", row.key));
                Ok(Outcome::Skip(SkipReason::Rejected))
            }
        }
    }

    /// Routes a reader's item: a bad row is counted as [`SkipReason::Malformed`] (its message
    /// kept among the examples); any other reader error is returned and ends the file.
    pub fn push_result(
        &mut self,
        item: Result<InventoryRow, InventoryError>,
    ) -> Result<Outcome, InventoryError> {
        match item {
            Ok(row) => self.push(&row).map_err(InventoryError::Write),
            Err(e) if e.is_row_error() => {
                self.stats.rows += 1;
                self.stats.skip(SkipReason::Malformed, None);
                self.stats.note(e.to_string());
                Ok(Outcome::Skip(SkipReason::Malformed))
            }
            Err(e) => Err(e),
        }
    }

    pub fn stats(&self) -> &RouteStats {
        &self.stats
    }

    /// Flushes both manifests.
    pub fn finish(self) -> io::Result<SplitOutput<C, L>> {
        let (copy, copy_counts) = self.copy.finish()?;
        let (large, large_counts) = self.large.finish()?;
        Ok(SplitOutput {
            copy,
            copy_counts,
            large,
            large_counts,
            stats: self.stats,
            next_index: self.delta.map(|d| d.next).unwrap_or_default(),
        })
    }
}

/// Counts where `rows` would go without writing anything (the rows are still checked as the
/// manifest writer would). Stops at the first error that is not a bad row.
pub fn route<I>(
    schema: &InventorySchema,
    rows: I,
    filter: &RowFilter,
) -> Result<RouteStats, InventoryError>
where
    I: IntoIterator<Item = Result<InventoryRow, InventoryError>>,
{
    let mut splitter = ManifestSplitter::new(schema, filter.clone(), io::sink(), io::sink())?;
    for item in rows {
        splitter.push_result(item)?;
    }
    Ok(splitter.stats)
}

/// Whether a job can read the inventory's `manifest.json` as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reasons", rename_all = "snake_case")]
pub enum FastPath {
    /// Launch the Copy job on `manifest.json` (`S3InventoryReport_CSV_20161130`): no rewrite.
    Direct,
    /// Undecidable from the manifest alone: route the rows (see [`fast_path`]) and ask again.
    NeedsScan,
    /// Ferry must write its own manifests (or, without a Size column, can't route at all).
    NotDirect(Vec<String>),
}

/// Decides the fast path: when nothing would be filtered and nothing is large, the job reads the
/// inventory directly.
///
/// How it is decided: the manifest alone never says yes, because any row may be over 5 GiB, a
/// delete marker, archived or SSE-C. It says no when the inventory is not CSV (Batch Operations
/// reads only CSV inventories) or lacks a column routing needs (Size, so large objects can be
/// told apart) or the filter needs. With
/// an empty filter and a Size column, one pass of [`route`] (or the [`ManifestSplitter`] run
/// that writes the manifests anyway) gives `stats`; the answer is yes when every row went to the
/// copy manifest. The same holds for a non-empty filter that happened to skip nothing. Assumed
/// (verify): whether a job on an inventory skips delete-marker rows is undocumented, so any
/// delete marker rules the fast path out.
pub fn fast_path(
    manifest: &InventoryManifest,
    filter: &RowFilter,
    stats: Option<&RouteStats>,
) -> FastPath {
    let mut reasons = Vec::new();
    if manifest.file_format != FileFormat::Csv {
        reasons.push(format!(
            "the inventory is {}: Batch Operations reads only CSV inventories, so Ferry writes a \
             CSV manifest",
            manifest.file_format
        ));
    }
    // An inventory of all versions marks a null version with an empty VersionId, which fails
    // its task; Ferry's CSV writer writes `null` (S3 User Guide, "Converting empty version ID
    // strings in Amazon S3 Inventory reports to null strings").
    if manifest.has_version_ids() {
        reasons.push(
            "the inventory lists versions: a null version's VersionId is empty there, which fails its task, so \
             Ferry writes a CSV manifest with `null`"
                .to_string(),
        );
    }
    // Size always (large objects), and whatever the filter reads.
    if let Err(e) = filter.check_schema(&manifest.schema) {
        reasons.push(e.to_string());
    }
    if !reasons.is_empty() {
        return FastPath::NotDirect(reasons);
    }
    let Some(stats) = stats else {
        return FastPath::NeedsScan;
    };
    if stats.large.objects > 0 {
        reasons.push(format!(
            "{} objects are over 5 GiB and go to the large-object job",
            stats.large.objects
        ));
    }
    for (reason, tally) in &stats.skipped {
        reasons.push(format!("{} rows skipped ({reason})", tally.objects));
    }
    // A filter that skipped nothing changed nothing: the inventory is the manifest.
    if reasons.is_empty() {
        FastPath::Direct
    } else {
        FastPath::NotDirect(reasons)
    }
}

/// `true` when [`fast_path`] says [`FastPath::Direct`].
pub fn can_use_inventory_directly(
    manifest: &InventoryManifest,
    filter: &RowFilter,
    stats: Option<&RouteStats>,
) -> bool {
    fast_path(manifest, filter, stats) == FastPath::Direct
}
