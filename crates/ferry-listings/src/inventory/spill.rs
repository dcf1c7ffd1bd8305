//! The fan-out's two halves (#18 part 4), for an inventory too large for one function: the same
//! rows, filter, routing and delta as [`super::scan`], split so that no worker holds more than
//! one shard of the delta index.
//!
//! 1. **Spill** ([`spill_data_files`]), one worker per batch of data files: each row is checked
//!    and filtered as the single path does (skips counted in the file's [`RouteStats`]); a row to
//!    copy or to hand to the large-object copier is hashed into its [`IndexEntry`] and appended to
//!    the spill part of its shard ([`shard_of`]: the top bits of the identity hash, the same
//!    split as the stored index's shards). No delta index is needed here.
//! 2. **Diff** ([`diff_shard`]), one worker per shard: the shard's spill parts, in data-file
//!    order, are compared with that shard of the last index, exactly as
//!    [`super::route::ManifestSplitter`] compares rows; what is new or changed is written to the
//!    shard's copy part (a gzip inventory-format data file) or large-object part, and the
//!    shard's entries of the next index are collected.
//!
//! Shards are identity ranges, so the shards' next indexes put end to end are the next index,
//! and the union of their parts is what the single path writes (a property test,
//! `tests/inventory_fanout.rs`, checks both for several shard counts).
//!
//! A spill part is Ferry's own format, gzip (one member per 64 KiB flush, level 1: about a third
//! of the raw size, so a worker's disk holds its data files and their spill, and the diff reads
//! a third of the bytes from S3): `FERRYSP1`, then records of
//! `kind u8 (1 copy, 2 large) | identity u64 | content u64 | has_size u8 | size u64 |
//! bucket_len u16 | bucket | key_len u32 | key | version_len u32 (u32::MAX: none) | version`,
//! little-endian. Why not CSV: the diff needs the entry (hashed once, in the spill) and never
//! the other columns; records are read back exactly, with no re-parsing or re-filtering.
//!
//! Memory: a spill thread holds one 64 KiB buffer per shard it has rows for (at most
//! 2^[`MAX_FANOUT_SHARD_BITS`]), appended to that shard's local file when full and the file
//! closed again, so no more than one file per thread is open at a time (Lambda allows 1,024
//! descriptors). A diff worker holds its shard of the last index and the entries it adds.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use md5::{Digest, Md5};

use crate::inventory::filter::{Outcome, RowFilter, SkipReason};
use crate::inventory::index::{DeltaBase, EntryHasher, IndexEntry, Lookup};
use crate::inventory::manifest_json::InventoryManifest;
use crate::inventory::part::{PartDigest, PartWriter};
use crate::inventory::route::RouteStats;
use crate::inventory::row::{InventoryError, InventoryRow};
use crate::inventory::scan::{
    check_md5, create_part_file, finish_part, on_threads, read_rows, LocalDataFile, WrittenPart,
};
use crate::manifest::{CsvManifestWriter, ManifestWriteError};
use ferry_plan::job::hex;

/// At most 2^9 = 512 shards in a fan-out: a spill thread's buffers stay under 32 MiB, and at the
/// shard size a 10 GB worker diffs (about 128 Mi objects) that covers 64 billion objects, past
/// Batch Operations' 20 billion per job.
pub const MAX_FANOUT_SHARD_BITS: u32 = 9;
/// The first bytes of every spill part.
pub const SPILL_MAGIC: &[u8; 8] = b"FERRYSP1";
const FLUSH_BYTES: usize = 64 * 1024;
const KIND_COPY: u8 = 1;
const KIND_LARGE: u8 = 2;
const NO_VERSION: u32 = u32::MAX;

/// The shard of an identity among 2^`bits`: its top `bits` bits (shard 0 when `bits` is 0), as
/// [`super::index::ObjectIndex::shard_ranges`] splits a stored index.
pub fn shard_of(identity: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (identity >> (64 - bits)) as usize
    }
}

/// What every data file of a fan-out's spill is read with.
#[derive(Clone, Copy)]
pub struct SpillInput<'a> {
    pub manifest: &'a InventoryManifest,
    pub filter: &'a RowFilter,
    /// 2^`shard_bits` shards (at most [`MAX_FANOUT_SHARD_BITS`]).
    pub shard_bits: u32,
    /// Where the spill parts are written (`spill-<position>-<shard>.bin`).
    pub out_dir: &'a Path,
}

/// One shard's rows of one data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillPart {
    /// The data file's place in `files[]`.
    pub position: usize,
    pub shard: usize,
    pub path: PathBuf,
    pub records: u64,
    pub digest: PartDigest,
}

/// One data file spilled: its figures (rows read, what was skipped and why) and its spill parts,
/// by shard (only shards it has rows for).
#[derive(Debug)]
pub struct SpilledFile {
    pub position: usize,
    pub stats: RouteStats,
    pub parts: Vec<SpillPart>,
}

/// Spills `files` on up to `threads` threads; results in the order of `files` (see
/// [`super::scan::scan_data_files`] for the threads and the first error).
pub fn spill_data_files(
    input: SpillInput<'_>,
    files: &[LocalDataFile<'_>],
    threads: usize,
) -> Result<Vec<SpilledFile>, InventoryError> {
    if input.shard_bits > MAX_FANOUT_SHARD_BITS {
        return Err(InventoryError::Spill {
            part: input.out_dir.display().to_string(),
            message: format!(
                "{} shard bits asked for, at most {MAX_FANOUT_SHARD_BITS} are written",
                input.shard_bits
            ),
        });
    }
    on_threads(files, threads, |f| spill_data_file(input, f))
}

/// Spills one data file; its MD5 is checked first.
pub fn spill_data_file(
    input: SpillInput<'_>,
    data: &LocalDataFile<'_>,
) -> Result<SpilledFile, InventoryError> {
    check_md5(data)?;
    // As `ManifestSplitter::new` refuses it for the single path.
    input.filter.check_schema(&input.manifest.schema)?;
    let mut spiller = Spiller {
        filter: input.filter,
        hasher: EntryHasher::new(),
        bits: input.shard_bits,
        out_dir: input.out_dir,
        position: data.position,
        shards: Vec::new(),
        stats: RouteStats {
            warnings: RowFilter::schema_warnings(&input.manifest.schema),
            ..RouteStats::default()
        },
        record: Vec::with_capacity(256),
    };
    read_rows(input.manifest, data, |item| spiller.push_result(item))?;
    spiller.finish()
}

struct ShardSpill {
    path: PathBuf,
    buf: Vec<u8>,
    md5: Md5,
    bytes: u64,
    records: u64,
    created: bool,
}

struct Spiller<'a> {
    filter: &'a RowFilter,
    hasher: EntryHasher,
    bits: u32,
    out_dir: &'a Path,
    position: usize,
    /// Indexed by shard; `None` until the shard has a row.
    shards: Vec<Option<ShardSpill>>,
    stats: RouteStats,
    record: Vec<u8>,
}

impl Spiller<'_> {
    fn push_result(
        &mut self,
        item: Result<InventoryRow, InventoryError>,
    ) -> Result<(), InventoryError> {
        match item {
            Ok(row) => self.push(&row),
            // Counted as the single path counts them (`ManifestSplitter::push_result`).
            Err(e) if e.is_row_error() => {
                self.stats.rows += 1;
                self.stats.skip(SkipReason::Malformed, None);
                self.stats.note(e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn push(&mut self, row: &InventoryRow) -> Result<(), InventoryError> {
        self.stats.rows += 1;
        let kind = match self.filter.classify(row) {
            Outcome::Skip(reason) => {
                self.stats.skip(reason, row.size);
                return Ok(());
            }
            Outcome::Copy => KIND_COPY,
            Outcome::Large => KIND_LARGE,
        };
        let entry = self.hasher.row(row);
        encode_record(&mut self.record, kind, entry, row);
        let shard = shard_of(entry.identity, self.bits);
        if self.shards.len() <= shard {
            self.shards.resize_with(shard + 1, || None);
        }
        let (out_dir, position) = (self.out_dir, self.position);
        let spill = self.shards[shard].get_or_insert_with(|| ShardSpill {
            path: out_dir.join(format!("spill-{position:06}-{shard:05}.bin")),
            buf: Vec::with_capacity(FLUSH_BYTES),
            md5: Md5::new(),
            bytes: 0,
            records: 0,
            created: false,
        });
        spill.buf.extend_from_slice(&self.record);
        spill.records += 1;
        if spill.buf.len() >= FLUSH_BYTES {
            spill.flush()?;
        }
        Ok(())
    }

    fn finish(self) -> Result<SpilledFile, InventoryError> {
        let mut parts = Vec::new();
        for (shard, spill) in self.shards.into_iter().enumerate() {
            let Some(mut spill) = spill else { continue };
            spill.flush()?;
            parts.push(SpillPart {
                position: self.position,
                shard,
                path: spill.path,
                records: spill.records,
                digest: PartDigest {
                    size: spill.bytes,
                    md5_hex: hex(&spill.md5.finalize()),
                },
            });
        }
        Ok(SpilledFile {
            position: self.position,
            stats: self.stats,
            parts,
        })
    }
}

impl ShardSpill {
    /// Appends the buffer to the shard's file as one gzip member (the first one starting with
    /// the magic) and closes the file again.
    fn flush(&mut self) -> Result<(), InventoryError> {
        let local = |source| InventoryError::WorkDir {
            path: self.path.display().to_string(),
            source,
        };
        let mut file = if self.created {
            OpenOptions::new().append(true).open(&self.path)
        } else {
            File::create(&self.path)
        }
        .map_err(local)?;
        let mut member = GzEncoder::new(
            Vec::with_capacity(self.buf.len() / 2 + 64),
            Compression::fast(),
        );
        if !self.created {
            member.write_all(SPILL_MAGIC).map_err(local)?;
        }
        member.write_all(&self.buf).map_err(local)?;
        let member = member.finish().map_err(local)?;
        file.write_all(&member).map_err(local)?;
        self.created = true;
        self.md5.update(&member);
        self.bytes += member.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

fn encode_record(out: &mut Vec<u8>, kind: u8, entry: IndexEntry, row: &InventoryRow) {
    out.clear();
    out.push(kind);
    out.extend_from_slice(&entry.identity.to_le_bytes());
    out.extend_from_slice(&entry.content.to_le_bytes());
    out.push(u8::from(row.size.is_some()));
    out.extend_from_slice(&row.size.unwrap_or(0).to_le_bytes());
    // A bucket name is at most 63 bytes and a key 1,024: the lengths can't overflow, but a
    // longer one is cut to what its length field says rather than written wrong.
    let bucket = &row.bucket.as_bytes()[..row.bucket.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bucket.len() as u16).to_le_bytes());
    out.extend_from_slice(bucket);
    let key = &row.key.as_bytes()[..row.key.len().min(NO_VERSION as usize - 1)];
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    match &row.version_id {
        Some(v) => {
            let v = &v.as_bytes()[..v.len().min(NO_VERSION as usize - 1)];
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        None => out.extend_from_slice(&NO_VERSION.to_le_bytes()),
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SpillRecord {
    large: bool,
    entry: IndexEntry,
    size: Option<u64>,
    bucket: String,
    key: String,
    version_id: Option<String>,
}

/// Reads a spill part's records; any damage is an [`InventoryError::Spill`] naming `part`.
struct SpillReader<R: Read> {
    part: String,
    input: BufReader<MultiGzDecoder<BufReader<R>>>,
}

impl<R: Read> SpillReader<R> {
    fn new(part: String, input: R) -> Result<Self, InventoryError> {
        let mut reader = Self {
            part,
            input: BufReader::with_capacity(
                256 * 1024,
                MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, input)),
            ),
        };
        let mut magic = [0u8; 8];
        reader
            .input
            .read_exact(&mut magic)
            .map_err(|e| reader.damaged(format!("no {SPILL_MAGIC:?} header ({e})")))?;
        if &magic != SPILL_MAGIC {
            return Err(reader.damaged(format!("it starts {magic:?}, not {SPILL_MAGIC:?}")));
        }
        Ok(reader)
    }

    fn damaged(&self, message: String) -> InventoryError {
        InventoryError::Spill {
            part: self.part.clone(),
            message,
        }
    }

    fn exact<const N: usize>(&mut self) -> Result<[u8; N], InventoryError> {
        let mut b = [0u8; N];
        self.input
            .read_exact(&mut b)
            .map_err(|e| self.damaged(format!("a record ends early ({e})")))?;
        Ok(b)
    }

    fn text(&mut self, len: usize, what: &str) -> Result<String, InventoryError> {
        let mut b = vec![0u8; len];
        self.input
            .read_exact(&mut b)
            .map_err(|e| self.damaged(format!("a record's {what} ends early ({e})")))?;
        String::from_utf8(b).map_err(|_| self.damaged(format!("a record's {what} is not UTF-8")))
    }

    /// The next record; `None` at the end of the part (only between records).
    fn next_record(&mut self) -> Result<Option<SpillRecord>, InventoryError> {
        let mut kind = [0u8; 1];
        match self.input.read(&mut kind) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(self.damaged(format!("reading failed ({e})"))),
        }
        let large = match kind[0] {
            KIND_COPY => false,
            KIND_LARGE => true,
            other => return Err(self.damaged(format!("a record of unknown kind {other}"))),
        };
        let identity = u64::from_le_bytes(self.exact::<8>()?);
        let content = u64::from_le_bytes(self.exact::<8>()?);
        let has_size = self.exact::<1>()?[0] != 0;
        let size = u64::from_le_bytes(self.exact::<8>()?);
        let bucket_len = u16::from_le_bytes(self.exact::<2>()?) as usize;
        let bucket = self.text(bucket_len, "bucket")?;
        let key_len = u32::from_le_bytes(self.exact::<4>()?);
        if key_len == NO_VERSION {
            return Err(self.damaged("a record without a key".to_string()));
        }
        let key = self.text(key_len as usize, "key")?;
        let version_len = u32::from_le_bytes(self.exact::<4>()?);
        let version_id = if version_len == NO_VERSION {
            None
        } else {
            Some(self.text(version_len as usize, "version id")?)
        };
        Ok(Some(SpillRecord {
            large,
            entry: IndexEntry { identity, content },
            size: has_size.then_some(size),
            bucket,
            key,
            version_id,
        }))
    }
}

/// What one shard's diff is made with.
pub struct DiffInput<'a> {
    pub shard: usize,
    /// Of 2^`shard_bits` shards: every record read must be of `shard`.
    pub shard_bits: u32,
    /// This shard's entries of the last successful run's index (delta runs that have one).
    pub base: Option<&'a DeltaBase>,
    /// Collect the shard's entries of the next index (delta runs).
    pub delta: bool,
    /// The inventory lists version ids (a `Bucket, Key, VersionId` copy part).
    pub with_version_ids: bool,
    /// Where the parts are written (`copy-s<shard>.csv.gz`, `large-s<shard>.csv`).
    pub out_dir: &'a Path,
}

/// One shard diffed.
#[derive(Debug)]
pub struct DiffedShard {
    pub shard: usize,
    /// The shard's copy rows, a gzip inventory-format data file; `None` when it has none.
    pub copy: Option<WrittenPart>,
    /// Its large-object rows, CSV manifest rows; `None` when it has none.
    pub large: Option<WrittenPart>,
    /// What became of its records (rows are counted by the spill, not here).
    pub stats: RouteStats,
    /// Delta runs: the entries it adds to the next index (new and changed objects); unchanged
    /// ones are marked in the base's [`DeltaBase::seen`].
    pub added: Vec<IndexEntry>,
}

/// Diffs one shard: `spills` are its spill parts (a name for errors, and the bytes), in the
/// order of the data files they came from ([`ShardDiffer`] one part at a time).
pub fn diff_shard<R: Read>(
    input: DiffInput<'_>,
    spills: impl IntoIterator<Item = (String, R)>,
) -> Result<DiffedShard, InventoryError> {
    let mut differ = ShardDiffer::new(input)?;
    for (name, bytes) in spills {
        differ.push(name, bytes)?;
    }
    differ.finish()
}

/// One shard's diff, fed its spill parts one at a time (so a worker holds one on disk).
pub struct ShardDiffer<'a> {
    input: DiffInput<'a>,
    copy: CsvManifestWriter<PartWriter<std::io::BufWriter<File>>>,
    large: CsvManifestWriter<PartWriter<std::io::BufWriter<File>>>,
    copy_path: PathBuf,
    large_path: PathBuf,
    stats: RouteStats,
    added: Vec<IndexEntry>,
}

impl<'a> ShardDiffer<'a> {
    pub fn new(input: DiffInput<'a>) -> Result<Self, InventoryError> {
        let copy_path = input
            .out_dir
            .join(format!("copy-s{:05}.csv.gz", input.shard));
        let large_path = input.out_dir.join(format!("large-s{:05}.csv", input.shard));
        let copy = CsvManifestWriter::inventory_data(
            PartWriter::gzip(create_part_file(&copy_path)?),
            input.with_version_ids,
        );
        let large = CsvManifestWriter::new(
            PartWriter::plain(create_part_file(&large_path)?),
            input.with_version_ids,
        );
        Ok(Self {
            input,
            copy,
            large,
            copy_path,
            large_path,
            stats: RouteStats::default(),
            added: Vec::new(),
        })
    }

    /// Compares the records of the next spill part (in data-file order).
    pub fn push<R: Read>(&mut self, name: String, bytes: R) -> Result<(), InventoryError> {
        let input = &self.input;
        let mut reader = SpillReader::new(name, bytes)?;
        while let Some(record) = reader.next_record()? {
            let of = shard_of(record.entry.identity, input.shard_bits);
            if of != input.shard {
                return Err(reader.damaged(format!(
                    "a record of shard {of} among the records of shard {}",
                    input.shard
                )));
            }
            let mut changed = false;
            if let Some(base) = input.base {
                match base.index.lookup(record.entry) {
                    Lookup::Unchanged(position) => {
                        base.seen.mark(position);
                        self.stats.skip(SkipReason::Unchanged, record.size);
                        continue;
                    }
                    Lookup::Changed => changed = true,
                    Lookup::New => {}
                }
            }
            let out = if record.large {
                &mut self.large
            } else {
                &mut self.copy
            };
            match out.write(&record.bucket, &record.key, record.version_id.as_deref()) {
                Ok(()) => {
                    if input.delta {
                        self.added.push(record.entry);
                    }
                    self.stats.changed += u64::from(changed);
                    if record.large {
                        self.stats.large.add(record.size);
                    } else {
                        self.stats.copy.add(record.size);
                    }
                }
                Err(ManifestWriteError::Io(e)) => return Err(InventoryError::Write(e)),
                // As `ManifestSplitter::push`: counted like any other skip.
                Err(e) => {
                    self.stats.skip(SkipReason::Rejected, record.size);
                    self.stats.note(format!("key {:?}: {e}", record.key));
                }
            }
        }
        Ok(())
    }

    /// Ends the shard's parts (one without rows is removed).
    pub fn finish(self) -> Result<DiffedShard, InventoryError> {
        let shard = self.input.shard;
        let (copy_out, copy_counts) = self.copy.finish().map_err(InventoryError::Write)?;
        let (large_out, large_counts) = self.large.finish().map_err(InventoryError::Write)?;
        Ok(DiffedShard {
            shard,
            copy: finish_part(copy_out, shard, &self.copy_path, copy_counts.rows)?,
            large: finish_part(large_out, shard, &self.large_path, large_counts.rows)?,
            stats: self.stats,
            added: self.added,
        })
    }
}

/// A spill part's bytes checked against the size and MD5 its spill recorded (the diff reads
/// parts another worker wrote).
pub fn check_spill_part(path: &Path, expected: &PartDigest) -> Result<(), InventoryError> {
    let local = |source| InventoryError::WorkDir {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(local)?.len();
    let md5 = crate::inventory::part::file_md5(path).map_err(local)?;
    if size != expected.size || hex(&md5) != expected.md5_hex {
        return Err(InventoryError::Spill {
            part: path.display().to_string(),
            message: format!(
                "{size} bytes with MD5 {}, but its spill recorded {} bytes with MD5 {}",
                hex(&md5),
                expected.size,
                expected.md5_hex
            ),
        });
    }
    Ok(())
}
