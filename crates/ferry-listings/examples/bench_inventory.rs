//! Inventory engine benchmark (run through `scripts/bench-inventory`, not a test).
//!
//! ```text
//! bench_inventory generate <rows> <dir> [files]   # dir/inv1.csv.gz and dir/inv2.csv.gz (1 % changed,
//!                                                 # 1 % new), and the same rows as S3 Inventory's
//!                                                 # multi-file form: dir/multi/ (inv1) and
//!                                                 # dir/multi2/ (inv2), `files` (16) gzip data
//!                                                 # files each plus manifest.json
//! bench_inventory scan <dir>/inv1.csv.gz <out.csv>
//! bench_inventory delta <dir>/inv1.csv.gz <dir>/inv2.csv.gz <out.csv>
//! bench_inventory scan-orc <dir>/inv1.orc <out.csv>   # the same inventory as ORC (ORC_SCHEMA)
//! bench_inventory scan-multi <dir>/multi <threads> <out_dir>   # scan::scan_data_files
//! bench_inventory scan-multi-delta <dir>/multi <dir>/multi2 <threads> <out_dir>
//! bench_inventory fanout-spill <dir>/multi2 <threads> <spill_dir>   # a fan-out scan worker
//! bench_inventory fanout-diff <shards_dir> <spill_dir> <out_dir>     # a fan-out diff worker
//! ```
//!
//! `fanout-spill` and `fanout-diff` are one worker of each of the fan-out's two Maps
//! (`ferry_listings::inventory::spill`) on one whole shard: every row of the inventory spilled
//! to shard 0 of 2^0, then that shard diffed against the index `index-shards` stored (with 0
//! bits), the next index written. A fan-out worker's shard is exactly this work on its share.
//!
//! `scan-multi` runs the engine's multi-file scan (MD5 check, read, filter, route, gzip copy
//! parts) on `threads` threads; after the clock stops it writes `<out_dir>/bucket-key.csv`, the
//! copy parts' rows as `bucket,encodedkey` lines (quotes stripped), for comparison with DuckDB.
//! `scan-multi-delta` first builds the index of the first inventory (untimed), then times the
//! delta of the second against it, the next index included.
//!
//! Rows look like a real current-versions inventory: `Bucket, Key, Size, LastModifiedDate,
//! ETag, StorageClass, EncryptionStatus`, keys of 40–120 bytes in nested prefixes, URL-encoded
//! as S3 writes them. The filter is the example spec's: exclude `tmp/`, three storage classes.
//! Each command prints one JSON line: rows, seconds, rows/s, peak RSS.

mod bench_support;
use bench_support::peak_rss;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_listings::inventory::filter::RowFilter;
use ferry_listings::inventory::index::{DeltaBase, IndexEntry, ObjectIndex, INDEX_ENTRY_BYTES};
use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::orc::OrcInventoryReader;
use ferry_listings::inventory::route::ManifestSplitter;
use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_listings::inventory::scan::{
    scan_data_files, LocalDataFile, ScanInput, ScanTotals, ScannedFile,
};
use ferry_plan::spec::FilterSpec;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use md5::{Digest, Md5};

const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, EncryptionStatus";
const BUCKET: &str = "acme-media-prod";
/// The same columns as an ORC inventory names them (`scripts/bench-inventory` converts).
const ORC_SCHEMA: &str =
    "struct<bucket:string,key:string,size:bigint,last_modified_date:timestamp,\
    e_tag:string,storage_class:string,encryption_status:string>";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("generate") if args.len() == 4 || args.len() == 5 => generate(
            &args[2],
            &args[3],
            args.get(4).map_or("16", String::as_str),
        ),
        Some("scan") if args.len() == 4 => scan(&args[2], &args[3]),
        Some("delta") if args.len() == 5 => delta(&args[2], &args[3], &args[4]),
        Some("scan-orc") if args.len() == 4 => scan_orc(&args[2], &args[3]),
        Some("scan-multi") if args.len() == 5 => scan_multi(&args[2], &args[3], &args[4]),
        Some("scan-multi-delta") if args.len() == 6 => {
            scan_multi_delta(&args[2], &args[3], &args[4], &args[5])
        }
        Some("index-shards") if args.len() == 5 => index_shards(&args[2], &args[3], &args[4]),
        Some("fanout-spill") if args.len() == 5 => fanout_spill(&args[2], &args[3], &args[4]),
        Some("fanout-diff") if args.len() == 5 => fanout_diff(&args[2], &args[3], &args[4]),
        Some("delta-from-shards") if args.len() == 5 => {
            delta_from_shards(&args[2], &args[3], &args[4])
        }
        _ => Err("usage: bench_inventory generate <rows> <dir> [files] | scan <inv.csv.gz> <out.csv> | delta <old.csv.gz> <new.csv.gz> <out.csv> | scan-orc <inv.orc> <out.csv> | scan-multi <dir/multi> <threads> <out_dir> | scan-multi-delta <dir/multi> <dir/multi2> <threads> <out_dir> | index-shards <old.csv.gz> <bits> <dir> | delta-from-shards <dir> <new.csv.gz> <out.csv> | fanout-spill <dir/multi> <threads> <spill_dir> | fanout-diff <shards_dir> <spill_dir> <out_dir>".to_string()),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(2);
    }
}

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: [&str; 16] = [
    "photos",
    "raw",
    "2024",
    "2025",
    "campaign",
    "thumbnails",
    "video",
    "exports",
    "client files",
    "archive",
    "déjà-vu",
    "final+v2",
    "masters",
    "proxies",
    "audio",
    "docs",
];
const CLASSES: [&str; 5] = [
    "STANDARD",
    "STANDARD",
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
];

fn key(rng: &mut Rng, i: u64) -> String {
    let mut k = String::new();
    if rng.below(50) == 0 {
        k.push_str("tmp/");
    }
    for _ in 0..(2 + rng.below(4)) {
        k.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        k.push('/');
    }
    k.push_str(&format!("IMG_{i:010}_{:08x}.jpg", rng.next() as u32));
    k
}

fn encode(key: &str, out: &mut String) {
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

fn row(out: &mut String, key: &str, size: u64, etag: u64, class: &str) {
    out.push('"');
    out.push_str(BUCKET);
    out.push_str("\",\"");
    encode(key, out);
    out.push_str(&format!(
        "\",\"{size}\",\"2025-06-01T12:00:00.000Z\",\"{etag:016x}{etag:016x}\",\"{class}\",\"SSE-S3\"\n"
    ));
}

type GzFile = GzEncoder<BufWriter<File>>;

fn gz_create(path: &Path) -> Result<GzFile, String> {
    let f = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(GzEncoder::new(BufWriter::new(f), Compression::new(6)))
}

fn gz_finish(gz: GzFile) -> Result<(), String> {
    gz.finish()
        .map_err(|e| e.to_string())?
        .into_inner()
        .map_err(|e| e.error().to_string())?;
    Ok(())
}

/// One inventory written as S3 Inventory writes a large one: `dir/data-<i>.csv.gz`, consecutive
/// chunks of its rows, each its own gzip file, and `dir/manifest.json` listing them.
struct MultiWriter {
    dir: PathBuf,
    files: u64,
    rows: u64,
    /// The file being written and its number.
    current: Option<(u64, GzFile)>,
    text: String,
}

impl MultiWriter {
    fn new(dir: PathBuf, files: u64, rows: u64) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            dir,
            files,
            rows,
            current: None,
            text: String::new(),
        })
    }

    fn path(&self, file: u64) -> PathBuf {
        self.dir.join(format!("data-{file}.csv.gz"))
    }

    /// Makes `file` the one written to, finishing (and creating, if empty) those before it.
    fn switch_to(&mut self, file: u64) -> Result<(), String> {
        let next = match &self.current {
            Some((n, _)) if *n == file => return Ok(()),
            Some((n, _)) => n + 1,
            None => 0,
        };
        if let Some((_, mut gz)) = self.current.take() {
            gz.write_all(self.text.as_bytes())
                .map_err(|e| e.to_string())?;
            self.text.clear();
            gz_finish(gz)?;
        }
        for empty in next..file {
            gz_finish(gz_create(&self.path(empty))?)?;
        }
        self.current = Some((file, gz_create(&self.path(file))?));
        Ok(())
    }

    /// Adds the rows `text` of source row `i` (of `rows`) to its chunk's file.
    fn push(&mut self, i: u64, text: &str) -> Result<(), String> {
        let file = (u128::from(i) * u128::from(self.files) / u128::from(self.rows.max(1))) as u64;
        self.switch_to(file.min(self.files - 1))?;
        self.text.push_str(text);
        if self.text.len() > 1 << 20 {
            let gz = &mut self.current.as_mut().expect("a file is open").1;
            gz.write_all(self.text.as_bytes())
                .map_err(|e| e.to_string())?;
            self.text.clear();
        }
        Ok(())
    }

    /// Finishes the files and writes `manifest.json` with their sizes and MD5s.
    fn finish(mut self) -> Result<(), String> {
        self.switch_to(self.files - 1)?;
        let (_, mut gz) = self.current.take().expect("a file is open");
        gz.write_all(self.text.as_bytes())
            .map_err(|e| e.to_string())?;
        gz_finish(gz)?;
        let mut files = Vec::new();
        for i in 0..self.files {
            let path = self.path(i);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let md5: String = Md5::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            files.push(serde_json::json!({
                "key": format!("data/data-{i}.csv.gz"),
                "size": bytes.len(),
                "MD5checksum": md5,
            }));
        }
        let manifest = serde_json::json!({
            "sourceBucket": BUCKET,
            "destinationBucket": "arn:aws:s3:::acme-dr-inventory",
            "version": "2016-11-30",
            "creationTimestamp": "1748779200000",
            "fileFormat": "CSV",
            "fileSchema": SCHEMA,
            "files": files,
        });
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
        std::fs::write(self.dir.join("manifest.json"), text).map_err(|e| e.to_string())
    }
}

fn generate(rows: &str, dir: &str, files: &str) -> Result<(), String> {
    let rows: u64 = rows
        .parse()
        .map_err(|_| format!("rows {rows:?} is not a number"))?;
    let files: u64 = match files.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(format!("files {files:?} is not a positive number")),
    };
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let dir = Path::new(dir);
    let mut one = gz_create(&dir.join("inv1.csv.gz"))?;
    let mut two = gz_create(&dir.join("inv2.csv.gz"))?;
    let mut multi_one = MultiWriter::new(dir.join("multi"), files, rows)?;
    let mut multi_two = MultiWriter::new(dir.join("multi2"), files, rows)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut a, mut b) = (String::new(), String::new());
    for i in 0..rows {
        let (a_start, b_start) = (a.len(), b.len());
        let k = key(&mut rng, i);
        let size = rng.below(50_000_000);
        let etag = rng.next();
        let class = CLASSES[rng.below(CLASSES.len() as u64) as usize];
        row(&mut a, &k, size, etag, class);
        // The second inventory: 1 % changed, the rest as before.
        if rng.below(100) == 0 {
            row(&mut b, &k, size + 1, etag ^ 1, class);
        } else {
            row(&mut b, &k, size, etag, class);
        }
        if i % 100 == 0 {
            // 1 % new objects.
            let k = key(&mut rng, rows + i);
            row(&mut b, &k, 1234, rng.next(), "STANDARD");
        }
        multi_one.push(i, &a[a_start..])?;
        multi_two.push(i, &b[b_start..])?;
        if a.len() > 1 << 20 {
            one.write_all(a.as_bytes()).map_err(|e| e.to_string())?;
            two.write_all(b.as_bytes()).map_err(|e| e.to_string())?;
            a.clear();
            b.clear();
        }
    }
    one.write_all(a.as_bytes()).map_err(|e| e.to_string())?;
    two.write_all(b.as_bytes()).map_err(|e| e.to_string())?;
    gz_finish(one)?;
    gz_finish(two)?;
    multi_one.finish()?;
    multi_two.finish()?;
    Ok(())
}

fn manifest() -> InventoryManifest {
    manifest_of("CSV", SCHEMA)
}

fn manifest_of(format: &str, schema: &str) -> InventoryManifest {
    let json = serde_json::json!({
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::acme-dr-inventory",
        "version": "2016-11-30",
        "creationTimestamp": "1748779200000",
        "fileFormat": format,
        "fileSchema": schema,
        "files": [{"key": "data/bench.csv.gz", "size": 1, "MD5checksum": "0"}],
    });
    InventoryManifest::from_json(json.to_string().as_bytes()).expect("benchmark manifest")
}

fn filter() -> RowFilter {
    let spec = FilterSpec {
        exclude_prefixes: vec!["tmp/".to_string()],
        storage_classes: vec![
            "STANDARD".to_string(),
            "STANDARD_IA".to_string(),
            "INTELLIGENT_TIERING".to_string(),
        ],
        ..FilterSpec::default()
    };
    RowFilter::new(Some(&spec)).expect("benchmark filter")
}

/// Splits one inventory file; returns (rows, stats JSON, next index).
fn split(
    path: &str,
    out: &str,
    previous: Option<DeltaBase>,
    delta: bool,
) -> Result<(u64, String, Vec<IndexEntry>), String> {
    let manifest = manifest();
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let reader = CsvInventoryReader::new(
        &manifest,
        "data/bench.csv.gz",
        BufReader::with_capacity(1 << 20, file),
    )
    .map_err(|e| e.to_string())?;
    split_rows(&manifest, reader, out, previous, delta)
}

/// Routes `rows` into `out`; returns (rows, stats JSON, next index).
fn split_rows(
    manifest: &InventoryManifest,
    reader: impl Iterator<Item = Result<InventoryRow, InventoryError>>,
    out: &str,
    previous: Option<DeltaBase>,
    delta: bool,
) -> Result<(u64, String, Vec<IndexEntry>), String> {
    let copy = BufWriter::with_capacity(1 << 20, File::create(out).map_err(|e| e.to_string())?);
    let large = BufWriter::new(File::create(format!("{out}.large")).map_err(|e| e.to_string())?);
    let mut splitter = ManifestSplitter::new(&manifest.schema, filter(), copy, large)
        .map_err(|e| e.to_string())?;
    if delta {
        // The entries added (new and changed objects): about 2 % of the previous index.
        let expected = previous.as_ref().map_or(0, |p| p.index.len() / 32);
        splitter = splitter.with_delta(previous, expected);
    }
    for item in reader {
        splitter.push_result(item).map_err(|e| e.to_string())?;
    }
    let done = splitter.finish().map_err(|e| e.to_string())?;
    let stats = serde_json::to_string(&done.stats).unwrap_or_default();
    Ok((done.stats.rows, stats, done.next_index))
}

fn report(what: &str, rows: u64, secs: f64, extra: &str) {
    println!(
        "{{\"what\":\"{what}\",\"rows\":{rows},\"seconds\":{secs:.3},\"rows_per_second\":{:.0},\"peak_rss_bytes\":{}{extra}}}",
        rows as f64 / secs,
        peak_rss()
    );
}

fn scan(path: &str, out: &str) -> Result<(), String> {
    let start = Instant::now();
    let (rows, stats, _) = split(path, out, None, false)?;
    report(
        "scan+filter+write",
        rows,
        start.elapsed().as_secs_f64(),
        &format!(",\"stats\":{stats}"),
    );
    Ok(())
}

fn scan_orc(path: &str, out: &str) -> Result<(), String> {
    let start = Instant::now();
    let manifest = manifest_of("ORC", ORC_SCHEMA);
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let reader =
        OrcInventoryReader::new(&manifest, "data/bench.orc", file).map_err(|e| e.to_string())?;
    let (rows, stats, _) = split_rows(&manifest, reader, out, None, false)?;
    report(
        "orc scan+filter+write",
        rows,
        start.elapsed().as_secs_f64(),
        &format!(",\"stats\":{stats}"),
    );
    Ok(())
}

/// The committed index of `old` in 2^`bits` shard files under `dir` (`shard-<n>.bin`, the stored
/// form) and `dir/shards.json` (bits, objects): what the state bucket holds, for a delta measured
/// in a fresh process ([`delta_from_shards`]).
fn index_shards(old: &str, bits: &str, dir: &str) -> Result<(), String> {
    let bits: u32 = bits.parse().map_err(|_| format!("bits {bits:?}"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let (_, _, entries) = split(old, &format!("{dir}/base.csv"), None, true)?;
    let index = ObjectIndex::from_entries(entries).map_err(|e| e.to_string())?;
    for (n, range) in index.shard_ranges(bits).into_iter().enumerate() {
        std::fs::write(format!("{dir}/shard-{n}.bin"), index.slice_to_bytes(range))
            .map_err(|e| e.to_string())?;
    }
    let json = serde_json::json!({"bits": bits, "objects": index.len()});
    std::fs::write(format!("{dir}/shards.json"), json.to_string()).map_err(|e| e.to_string())
}

/// A delta as a run does it, in this fresh process: the shards read one at a time into one
/// index (`ShardedIndexReader`), the new inventory split against it (unchanged objects marked),
/// the next index built in place and written shard by shard. Reports the peak memory above the
/// process's own before it started, per object of the previous index.
fn delta_from_shards(dir: &str, new: &str, out: &str) -> Result<(), String> {
    use ferry_listings::inventory::index::ShardedIndexReader;
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{dir}/shards.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let bits = meta["bits"].as_u64().unwrap_or(0) as u32;
    let objects = meta["objects"].as_u64().unwrap_or(0) as usize;
    let before = peak_rss();
    let start = Instant::now();
    let mut reader = ShardedIndexReader::new(bits, objects);
    for n in 0..(1usize << bits) {
        let bytes = std::fs::read(format!("{dir}/shard-{n}.bin")).map_err(|e| e.to_string())?;
        reader.push(n, &bytes).map_err(|e| e.to_string())?;
    }
    let previous = DeltaBase::new(reader.finish().map_err(|e| e.to_string())?);
    let (rows, stats, added) = split(new, out, Some(previous.clone()), true)?;
    let next = previous.into_next(added).map_err(|e| e.to_string())?;
    let next_bits = ObjectIndex::shard_bits_for(next.len()).max(bits);
    for (n, range) in next.shard_ranges(next_bits).into_iter().enumerate() {
        std::fs::write(format!("{dir}/next-{n}.bin"), next.slice_to_bytes(range))
            .map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    let peak = peak_rss();
    let grown = peak.saturating_sub(before);
    report(
        "delta from shards",
        rows,
        secs,
        &format!(
            ",\"previous_objects\":{objects},\"shard_bits\":{bits},\"next_objects\":{},\"peak_rss_before\":{before},\"peak_rss_grown\":{grown},\"grown_bytes_per_previous_object\":{:.1},\"stats\":{stats}",
            next.len(),
            grown as f64 / objects.max(1) as f64
        ),
    );
    Ok(())
}

/// A fan-out scan worker on every data file of `dir`: read, MD5-checked, filtered and spilled to
/// one shard (the bytes a diff worker of that shard reads).
fn fanout_spill(dir: &str, threads: &str, spill_dir: &str) -> Result<(), String> {
    use ferry_listings::inventory::spill::{spill_data_files, SpillInput};
    let threads = parse_threads(threads)?;
    let _ = std::fs::remove_dir_all(spill_dir);
    std::fs::create_dir_all(spill_dir).map_err(|e| format!("{spill_dir}: {e}"))?;
    let start = Instant::now();
    let manifest = read_multi(dir)?;
    let files = local_files(dir, &manifest);
    let filter = filter();
    let input = SpillInput {
        manifest: &manifest,
        filter: &filter,
        shard_bits: 0,
        out_dir: Path::new(spill_dir),
    };
    let spilled = spill_data_files(input, &files, threads).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let rows: u64 = spilled.iter().map(|f| f.stats.rows).sum();
    let records: u64 = spilled
        .iter()
        .flat_map(|f| &f.parts)
        .map(|p| p.records)
        .sum();
    let bytes: u64 = spilled
        .iter()
        .flat_map(|f| &f.parts)
        .map(|p| p.digest.size)
        .sum();
    report(
        "fan-out spill (one scan worker)",
        rows,
        secs,
        &format!(
            ",\"threads\":{threads},\"files\":{},\"spilled_records\":{records},\"spill_bytes\":{bytes},\"spill_bytes_per_record\":{:.1}",
            files.len(),
            bytes as f64 / records.max(1) as f64
        ),
    );
    Ok(())
}

/// A fan-out diff worker on one shard: the stored index read, every spill part in `spill_dir`
/// compared with it (copy and large-object parts written), the next index built in place and
/// written. Reports time and the peak memory above the process's own, per object of the index.
fn fanout_diff(shards_dir: &str, spill_dir: &str, out_dir: &str) -> Result<(), String> {
    use ferry_listings::inventory::index::ShardedIndexReader;
    use ferry_listings::inventory::spill::{diff_shard, DiffInput};
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{shards_dir}/shards.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let bits = meta["bits"].as_u64().unwrap_or(0) as u32;
    if bits != 0 {
        return Err(format!(
            "{shards_dir} holds {bits} bits of shards: store one (index-shards … 0 …)"
        ));
    }
    let objects = meta["objects"].as_u64().unwrap_or(0) as usize;
    let mut parts: Vec<PathBuf> = std::fs::read_dir(spill_dir)
        .map_err(|e| format!("{spill_dir}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    parts.sort();
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{out_dir}: {e}"))?;
    let before = peak_rss();
    let start = Instant::now();
    let mut reader = ShardedIndexReader::new(0, objects);
    let bytes = std::fs::read(format!("{shards_dir}/shard-0.bin")).map_err(|e| e.to_string())?;
    reader.push(0, &bytes).map_err(|e| e.to_string())?;
    drop(bytes);
    let base = DeltaBase::new(reader.finish().map_err(|e| e.to_string())?);
    let mut spills = Vec::with_capacity(parts.len());
    for p in &parts {
        spills.push((
            p.display().to_string(),
            File::open(p).map_err(|e| format!("{}: {e}", p.display()))?,
        ));
    }
    let diffed = diff_shard(
        DiffInput {
            shard: 0,
            shard_bits: 0,
            base: Some(&base),
            delta: true,
            with_version_ids: false,
            out_dir: Path::new(out_dir),
        },
        spills,
    )
    .map_err(|e| e.to_string())?;
    let next = base.into_next(diffed.added).map_err(|e| e.to_string())?;
    std::fs::write(format!("{out_dir}/next-0.bin"), next.to_bytes()).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let grown = peak_rss().saturating_sub(before);
    let records = diffed.stats.copy.objects
        + diffed.stats.large.objects
        + diffed.stats.skipped_total().objects;
    report(
        "fan-out diff (one shard)",
        records,
        secs,
        &format!(
            ",\"previous_objects\":{objects},\"next_objects\":{},\"spill_parts\":{},\"copy_objects\":{},\"changed\":{},\"peak_rss_before\":{before},\"peak_rss_grown\":{grown},\"grown_bytes_per_previous_object\":{:.1}",
            next.len(),
            parts.len(),
            diffed.stats.copy.objects,
            diffed.stats.changed,
            grown as f64 / objects.max(1) as f64
        ),
    );
    Ok(())
}

/// The committed index of `entries` as the state bucket would hold it, and its object count.
fn stored_base(
    entries: Vec<ferry_listings::inventory::index::IndexEntry>,
) -> Result<(Vec<u8>, u64), String> {
    let base = ObjectIndex::from_entries(entries).map_err(|e| e.to_string())?;
    Ok((base.to_bytes(), base.len() as u64))
}

fn delta(old: &str, new: &str, out: &str) -> Result<(), String> {
    // The committed index of the first inventory, as the state bucket would hold it.
    let (_, _, entries) = split(old, &format!("{out}.base"), None, true)?;
    let (bytes, base_rows) = stored_base(entries)?;
    let before = peak_rss();
    let start = Instant::now();
    let previous = DeltaBase::new(ObjectIndex::from_bytes(&bytes).map_err(|e| e.to_string())?);
    drop(bytes);
    let (rows, stats, added) = split(new, out, Some(previous.clone()), true)?;
    // The splitter marked the unchanged entries in `previous.seen` and handed back the added
    // ones; the next index is both.
    let index = previous.into_next(added).map_err(|e| e.to_string())?;
    let serialized = index.to_bytes();
    let secs = start.elapsed().as_secs_f64();
    report(
        "delta",
        rows,
        secs,
        &format!(
            ",\"previous_rows\":{base_rows},\"index_bytes_per_object\":{INDEX_ENTRY_BYTES},\"next_index_bytes\":{},\"peak_rss_before_delta\":{before},\"stats\":{stats}",
            serialized.len()
        ),
    );
    Ok(())
}

fn parse_threads(threads: &str) -> Result<usize, String> {
    match threads.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("threads {threads:?} is not a positive number")),
    }
}

/// A multi-file inventory's `manifest.json` (in `dir`, as `generate` writes it).
fn read_multi(dir: &str) -> Result<InventoryManifest, String> {
    let path = Path::new(dir).join("manifest.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    InventoryManifest::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Its data files as downloaded: key `data/<name>` is `dir/<name>`.
fn local_files<'a>(dir: &str, manifest: &'a InventoryManifest) -> Vec<LocalDataFile<'a>> {
    LocalDataFile::all_of(manifest, |_, file| {
        Path::new(dir).join(file.key.rsplit('/').next().unwrap_or(&file.key))
    })
}

/// Scans `dir`'s data files into `out_dir` and merges the results in file order.
fn scan_multi_run(
    manifest: &InventoryManifest,
    dir: &str,
    threads: usize,
    out_dir: &Path,
    previous: Option<&DeltaBase>,
    delta: bool,
) -> Result<(Vec<ScannedFile>, ScanTotals), String> {
    let files = local_files(dir, manifest);
    let filter = filter();
    let input = ScanInput {
        manifest,
        filter: &filter,
        delta,
        previous,
        out_dir,
        copy_as_inventory: true,
    };
    let mut scanned = scan_data_files(input, &files, threads).map_err(|e| e.to_string())?;
    let mut totals = ScanTotals::new(manifest);
    for file in &mut scanned {
        totals.add(file);
    }
    Ok((scanned, totals))
}

/// The JSON fields of a multi-file run's parts and figures.
fn multi_extra(threads: usize, scanned: &[ScannedFile], totals: &ScanTotals) -> String {
    let copies = || scanned.iter().filter_map(|f| f.copy.as_ref());
    let copy_objects: u64 = copies().map(|p| p.rows).sum();
    let copy_bytes: u64 = copies().map(|p| p.digest.size).sum();
    format!(
        ",\"threads\":{threads},\"files\":{},\"copy_objects\":{copy_objects},\"copy_parts\":{},\"copy_part_bytes\":{copy_bytes},\"stats\":{}",
        scanned.len(),
        copies().count(),
        serde_json::to_string(&totals.stats).unwrap_or_default()
    )
}

/// Writes `out_dir/bucket-key.csv`: the copy parts' rows in order, quotes stripped
/// (`bucket,encodedkey`). Returns the number of lines.
fn write_bucket_key(scanned: &[ScannedFile], out_dir: &Path) -> Result<u64, String> {
    let path = out_dir.join("bucket-key.csv");
    let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let (mut lines, mut line) = (0u64, Vec::new());
    for part in scanned.iter().filter_map(|f| f.copy.as_ref()) {
        let file = File::open(&part.path).map_err(|e| format!("{}: {e}", part.path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, MultiGzDecoder::new(file));
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("{}: {e}", part.path.display()))?;
            if n == 0 {
                break;
            }
            line.retain(|&b| b != b'"');
            out.write_all(&line).map_err(|e| e.to_string())?;
            lines += 1;
        }
    }
    out.into_inner().map_err(|e| e.error().to_string())?;
    Ok(lines)
}

fn scan_multi(dir: &str, threads: &str, out_dir: &str) -> Result<(), String> {
    let threads = parse_threads(threads)?;
    let out = Path::new(out_dir);
    std::fs::create_dir_all(out).map_err(|e| format!("{out_dir}: {e}"))?;
    let start = Instant::now();
    let manifest = read_multi(dir)?;
    let (scanned, totals) = scan_multi_run(&manifest, dir, threads, out, None, false)?;
    let secs = start.elapsed().as_secs_f64();
    report(
        "multi scan+filter+write",
        totals.stats.rows,
        secs,
        &multi_extra(threads, &scanned, &totals),
    );
    // The check, after the clock: the copy rows as plain `bucket,key` lines.
    write_bucket_key(&scanned, out)?;
    Ok(())
}

fn scan_multi_delta(
    old_dir: &str,
    new_dir: &str,
    threads: &str,
    out_dir: &str,
) -> Result<(), String> {
    let threads = parse_threads(threads)?;
    let out = Path::new(out_dir);
    // The committed index of the first inventory, as the state bucket would hold it (untimed).
    let base_out = out.join("base");
    std::fs::create_dir_all(&base_out).map_err(|e| format!("{}: {e}", base_out.display()))?;
    let old = read_multi(old_dir)?;
    let (_, totals) = scan_multi_run(&old, old_dir, threads, &base_out, None, true)?;
    let (bytes, base_rows) = stored_base(totals.next_index)?;
    let before = peak_rss();
    let start = Instant::now();
    let previous = DeltaBase::new(ObjectIndex::from_bytes(&bytes).map_err(|e| e.to_string())?);
    drop(bytes);
    let manifest = read_multi(new_dir)?;
    let (scanned, mut totals) =
        scan_multi_run(&manifest, new_dir, threads, out, Some(&previous), true)?;
    let added = std::mem::take(&mut totals.next_index);
    let index = previous.into_next(added).map_err(|e| e.to_string())?;
    let serialized = index.to_bytes();
    let secs = start.elapsed().as_secs_f64();
    report(
        "multi delta",
        totals.stats.rows,
        secs,
        &format!(
            "{},\"previous_rows\":{base_rows},\"next_index_objects\":{},\"next_index_bytes\":{},\"peak_rss_before_delta\":{before}",
            multi_extra(threads, &scanned, &totals),
            index.len(),
            serialized.len()
        ),
    );
    write_bucket_key(&scanned, out)?;
    Ok(())
}
