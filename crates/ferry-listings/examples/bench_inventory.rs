//! Inventory engine benchmark (run through `scripts/bench-inventory`, not a test).
//!
//! ```text
//! bench_inventory generate <rows> <dir>   # dir/inv1.csv.gz and dir/inv2.csv.gz (1 % changed, 1 % new)
//! bench_inventory scan <dir>/inv1.csv.gz <out.csv>
//! bench_inventory delta <dir>/inv1.csv.gz <dir>/inv2.csv.gz <out.csv>
//! bench_inventory scan-orc <dir>/inv1.orc <out.csv>   # the same inventory as ORC (ORC_SCHEMA)
//! ```
//!
//! Rows look like a real current-versions inventory: `Bucket, Key, Size, LastModifiedDate,
//! ETag, StorageClass, EncryptionStatus`, keys of 40–120 bytes in nested prefixes, URL-encoded
//! as S3 writes them. The filter is the example spec's: exclude `tmp/`, three storage classes.
//! Each command prints one JSON line: rows, seconds, rows/s, peak RSS.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_listings::inventory::filter::RowFilter;
use ferry_listings::inventory::index::{ObjectIndex, INDEX_ENTRY_BYTES};
use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::orc::OrcInventoryReader;
use ferry_listings::inventory::route::ManifestSplitter;
use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_plan::spec::FilterSpec;
use flate2::write::GzEncoder;
use flate2::Compression;

const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, EncryptionStatus";
const BUCKET: &str = "acme-media-prod";
/// The same columns as an ORC inventory names them (`scripts/bench-inventory` converts).
const ORC_SCHEMA: &str =
    "struct<bucket:string,key:string,size:bigint,last_modified_date:timestamp,\
    e_tag:string,storage_class:string,encryption_status:string>";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("generate") if args.len() == 4 => generate(&args[2], &args[3]),
        Some("scan") if args.len() == 4 => scan(&args[2], &args[3]),
        Some("delta") if args.len() == 5 => delta(&args[2], &args[3], &args[4]),
        Some("scan-orc") if args.len() == 4 => scan_orc(&args[2], &args[3]),
        _ => Err("usage: bench_inventory generate <rows> <dir> | scan <inv.csv.gz> <out.csv> | delta <old.csv.gz> <new.csv.gz> <out.csv>".to_string()),
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

fn generate(rows: &str, dir: &str) -> Result<(), String> {
    let rows: u64 = rows
        .parse()
        .map_err(|_| format!("rows {rows:?} is not a number"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let open = |name: &str| -> Result<GzEncoder<BufWriter<File>>, String> {
        let f = File::create(format!("{dir}/{name}")).map_err(|e| e.to_string())?;
        Ok(GzEncoder::new(BufWriter::new(f), Compression::new(6)))
    };
    let (mut one, mut two) = (open("inv1.csv.gz")?, open("inv2.csv.gz")?);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut a, mut b) = (String::new(), String::new());
    for i in 0..rows {
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
        if a.len() > 1 << 20 {
            one.write_all(a.as_bytes()).map_err(|e| e.to_string())?;
            two.write_all(b.as_bytes()).map_err(|e| e.to_string())?;
            a.clear();
            b.clear();
        }
    }
    one.write_all(a.as_bytes()).map_err(|e| e.to_string())?;
    two.write_all(b.as_bytes()).map_err(|e| e.to_string())?;
    one.finish().map_err(|e| e.to_string())?;
    two.finish().map_err(|e| e.to_string())?;
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

/// Peak resident memory of this process, from /proc (Linux), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Splits one inventory file; returns (rows, stats JSON, next index).
fn split(
    path: &str,
    out: &str,
    previous: Option<ObjectIndex>,
    delta: bool,
) -> Result<
    (
        u64,
        String,
        Vec<ferry_listings::inventory::index::IndexEntry>,
    ),
    String,
> {
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
    previous: Option<ObjectIndex>,
    delta: bool,
) -> Result<
    (
        u64,
        String,
        Vec<ferry_listings::inventory::index::IndexEntry>,
    ),
    String,
> {
    let copy = BufWriter::with_capacity(1 << 20, File::create(out).map_err(|e| e.to_string())?);
    let large = BufWriter::new(File::create(format!("{out}.large")).map_err(|e| e.to_string())?);
    let mut splitter = ManifestSplitter::new(&manifest.schema, filter(), copy, large)
        .map_err(|e| e.to_string())?;
    if delta {
        let expected = previous.as_ref().map_or(0, ObjectIndex::len);
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

fn delta(old: &str, new: &str, out: &str) -> Result<(), String> {
    // The committed index of the first inventory, as the state bucket would hold it.
    let (_, _, entries) = split(old, &format!("{out}.base"), None, true)?;
    let base = ObjectIndex::from_entries(entries).map_err(|e| e.to_string())?;
    let bytes = base.to_bytes();
    let base_rows = base.len() as u64;
    drop(base);
    let before = peak_rss();
    let start = Instant::now();
    let previous = ObjectIndex::from_bytes(&bytes).map_err(|e| e.to_string())?;
    drop(bytes);
    let (rows, stats, next) = split(new, out, Some(previous), true)?;
    let index = ObjectIndex::from_entries(next).map_err(|e| e.to_string())?;
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
