//! Inventory reports in the exact layout S3 writes, written by another writer than Ferry's.
//!
//! `inventory_parquet.rs` writes its files with the `parquet` crate Ferry reads them with, so a
//! misreading shared by both sides would pass. The reports under `fixtures/s3-written/` were
//! written by Apache Arrow (pyarrow 26: Arrow's C++ Parquet writer, the Apache ORC C++ writer) in
//! S3's documented schema, column order, types and codecs: Parquet with Snappy, dictionary pages
//! and format-1.0 data pages, timestamps INT64 `TIMESTAMP(MILLIS,true)`, `bucket`/`key`
//! required and the rest optional; ORC with ZLIB, RLE v2 and dictionary strings, timestamps
//! `timestamp`. Their `manifest.json` files are printed as S3 prints them (Jackson's layout,
//! parquet-mr's schema string, MD5s of the files) with a `manifest.checksum` beside each.
//! `fixtures/s3-written/generate.py` wrote them and says where each fact comes from.
//!
//! Every row is compared field by field with values spelled out here, independently of the
//! writer: keys byte for byte (spaces, `+`, a literal `%20`, UTF-8, control characters, 1,024
//! bytes), version ids (also the two spellings of a null version: `""` and a real null), sizes
//! up to and past 5 GiB, milliseconds (before ORC's 2015 epoch too), ETags of multipart uploads,
//! storage classes, tiers, encryption, Object Lock. Two larger reports give small files the
//! structure of large ones: several row groups and stripes, many pages, a key dictionary that
//! falls back to plain pages. Then the rows are routed: delete markers, archived objects and
//! SSE-C objects are counted as skipped with their reason, never dropped, and the CSV manifests
//! are compared byte for byte.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_listings::inventory::filter::{RowFilter, SkipReason};
use ferry_listings::inventory::manifest_json::{FileFormat, InventoryManifest};
use ferry_listings::inventory::orc::OrcInventoryReader;
use ferry_listings::inventory::parquet_reader::ParquetInventoryReader;
use ferry_listings::inventory::route::{ManifestSplitter, RouteStats, SplitOutput, Tally};
use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_listings::manifest::{CsvManifestReader, ManifestRow};
use ferry_plan::spec::FilterSpec;
use md5::{Digest, Md5};

const SOURCE: &str = "example-source-bucket";
/// The S3 user guide's example canonical user id, the owner of every object here.
const OWNER: &str = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";

const GIB: u64 = 1024 * 1024 * 1024;

/// One report: its folder and its `manifest.json`.
struct Report {
    dir: PathBuf,
    manifest: InventoryManifest,
}

fn report(name: &str) -> Report {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/s3-written")
        .join(name);
    let json = fs::read(dir.join("manifest.json")).expect("manifest.json");
    let manifest = InventoryManifest::from_json(&json)
        .unwrap_or_else(|e| panic!("{name}/manifest.json as S3 writes it is refused: {e}"));
    Report { dir, manifest }
}

impl Report {
    /// The local copy of `files[i]` (`data/<file name>`).
    fn data_path(&self, i: usize) -> PathBuf {
        let key = &self.manifest.files[i].key;
        self.dir
            .join("data")
            .join(key.rsplit('/').next().expect("a file name"))
    }

    /// Every item the format's reader yields, file after file, read from disk.
    fn items(&self) -> Vec<Result<InventoryRow, InventoryError>> {
        let mut items = Vec::new();
        for (i, f) in self.manifest.files.iter().enumerate() {
            let file = fs::File::open(self.data_path(i)).expect("data file");
            match self.manifest.file_format {
                FileFormat::Parquet => items.extend(
                    ParquetInventoryReader::new(&self.manifest, &f.key, file)
                        .unwrap_or_else(|e| panic!("{} does not open: {e}", f.key)),
                ),
                FileFormat::Orc => items.extend(
                    OrcInventoryReader::new(&self.manifest, &f.key, file)
                        .unwrap_or_else(|e| panic!("{} does not open: {e}", f.key)),
                ),
                FileFormat::Csv => unreachable!("no CSV report here"),
            }
        }
        items
    }

    fn rows(&self) -> Vec<InventoryRow> {
        self.items()
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("a row S3 wrote is refused: {e}")))
            .collect()
    }

    fn split(&self, filter: Option<&FilterSpec>) -> SplitOutput<Vec<u8>, Vec<u8>> {
        let mut splitter = ManifestSplitter::new(
            &self.manifest.schema,
            RowFilter::new(filter).expect("a valid filter"),
            Vec::new(),
            Vec::new(),
        )
        .expect("the inventory has the columns routing needs");
        for item in self.items() {
            splitter.push_result(item).expect("no file error");
        }
        splitter.finish().expect("in memory")
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An object version with the values most rows share.
fn object(key: &str, version: Option<&str>, size: u64, last_modified_ms: i64) -> InventoryRow {
    InventoryRow {
        bucket: SOURCE.into(),
        key: key.into(),
        version_id: version.map(Into::into),
        is_latest: Some(true),
        is_delete_marker: Some(false),
        size: Some(size),
        last_modified_ms: Some(last_modified_ms),
        etag: None,
        storage_class: Some("STANDARD".into()),
        is_multipart_uploaded: Some(false),
        replication_status: None,
        encryption_status: Some("SSE-S3".into()),
        object_lock_retain_until_ms: None,
        object_lock_mode: None,
        object_lock_legal_hold_status: None,
        intelligent_tiering_access_tier: None,
        bucket_key_status: Some("DISABLED".into()),
        checksum_algorithm: None,
        object_owner: Some(OWNER.into()),
        lifecycle_expiration_ms: None,
    }
}

fn text(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// 1,024 bytes: `long/`, 509 times `ü` (two bytes each), `x`.
fn long_key() -> String {
    format!("long/{}x", "\u{fc}".repeat(509))
}

/// The rows of both all-versions reports (Parquet and ORC), in S3's order.
fn all_versions_rows() -> Vec<InventoryRow> {
    vec![
        // 2019-03-14T09:26:53.589Z
        InventoryRow {
            etag: text("5d41402abc4b2a76b9719d911017c592"),
            storage_class: text("DEEP_ARCHIVE"),
            ..object(
                "archive/2019/backup.tar",
                Some("Lj2.3bZ9Q0nq8r_Fv5sT1uWx0yA7cD3e"),
                73_400_320,
                1_552_555_613_589,
            )
        },
        // A null version written as "" (as S3 documents for inventories): no version id.
        InventoryRow {
            etag: text("9e107d9d372bb6826bd81d3542a419d6"),
            encryption_status: text("NOT-SSE"),
            checksum_algorithm: text("CRC64NVME"),
            ..object("c++/a+b=c.txt", None, 42, 1_625_097_600_000)
        },
        // 2025-05-31T12:34:56.789Z
        InventoryRow {
            etag: text("e4d909c290d0fb1ca068ffaddf22cbd0"),
            replication_status: text("COMPLETED"),
            encryption_status: text("SSE-KMS"),
            bucket_key_status: text("ENABLED"),
            // 2030-01-01T00:00:00Z
            object_lock_retain_until_ms: Some(1_893_456_000_000),
            object_lock_mode: text("COMPLIANCE"),
            object_lock_legal_hold_status: text("ON"),
            checksum_algorithm: text("SHA256"),
            ..object(
                "docs/Q1 report (final).pdf",
                Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"),
                1_048_576,
                1_748_694_896_789,
            )
        },
        InventoryRow {
            is_latest: Some(false),
            etag: text("d8e8fca2dc0f896fd7cb4cb0031ba249"),
            storage_class: text("STANDARD_IA"),
            encryption_status: text("SSE-KMS"),
            replication_status: text("REPLICA"),
            ..object(
                "docs/Q1 report (final).pdf",
                Some("QUpfdndhfd8438MNFDN93jdnJFkdmqnh893"),
                1_000_000,
                1_743_494_400_001,
            )
        },
        // The delete marker: no size, ETag, class, encryption, multipart flag.
        InventoryRow {
            bucket: SOURCE.into(),
            key: "logs/app.log".into(),
            version_id: text("AbCdEf0123456789.zYxWvUtSrQpOnMlK"),
            is_latest: Some(true),
            is_delete_marker: Some(true),
            last_modified_ms: Some(1_748_822_399_999),
            object_owner: text(OWNER),
            ..InventoryRow::default()
        },
        InventoryRow {
            is_latest: Some(false),
            etag: text("0cc175b9c0f1b6a831c399e269772661"),
            storage_class: text("GLACIER"),
            ..object(
                "logs/app.log",
                Some("9sT8rQ7pO6nM5lK4jI3hG2fE1dC0bA.z"),
                2048,
                1_704_164_645_006,
            )
        },
        // The longest key S3 allows: 1,024 bytes of UTF-8.
        InventoryRow {
            etag: text("8f14e45fceea167a5a36dedd4bea2543"),
            ..object(
                &long_key(),
                Some("l0ng.K3y_1024_bytes_utf8_00000000"),
                7,
                1_709_208_000_000,
            )
        },
        InventoryRow {
            etag: text("7215ee9c7d9dc229d2921a40e899ec5f-1024"),
            storage_class: text("GLACIER_IR"),
            is_multipart_uploaded: Some(true),
            ..object(
                "media/exactly-5gib.bin",
                Some("f0u2WqkPq9xJ7cL1mN3bV5zX8aS4dF6g"),
                5 * GIB,
                1_740_783_600_000,
            )
        },
        InventoryRow {
            etag: text("a7c5ab2e9d9f1f8b3b0c8e1d5f6a4b2c-1229"),
            is_multipart_uploaded: Some(true),
            encryption_status: text("SSE-KMS"),
            bucket_key_status: text("ENABLED"),
            checksum_algorithm: text("CRC32"),
            ..object(
                "media/movie-4k.mkv",
                Some("Zx9Yw8Xv7Wu6Vt5Us4Tr3Sq2Rp1Qo0Pn"),
                6 * GIB + 1,
                1_742_034_030_400,
            )
        },
        // Control characters in a key.
        InventoryRow {
            etag: text("45c48cce2e2d7fbdea1afc51c7c6ad26"),
            ..object(
                "notes/tab\there\nnewline.txt",
                Some("n3wL1ne.tAb_0000000000000000000"),
                99,
                1_677_812_583_003,
            )
        },
        // A null version written as a real null.
        InventoryRow {
            etag: text("b1946ac92492d2347c6235b4d2611184"),
            storage_class: text("INTELLIGENT_TIERING"),
            intelligent_tiering_access_tier: text("ARCHIVE_INSTANT_ACCESS"),
            ..object(
                "photos/\u{e9}t\u{e9}/caf\u{e9} cr\u{e8}me \u{2615}.jpg",
                None,
                204_800,
                1_691_482_088_080,
            )
        },
        InventoryRow {
            etag: text("6f8db599de986fab7a21625b7916589c"),
            ..object(
                "reports/100%20done?.csv",
                Some("UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ"),
                1234,
                1_672_531_199_000,
            )
        },
        InventoryRow {
            etag: text("c4ca4238a0b923820dcc509a6f75849b"),
            encryption_status: text("SSE-C"),
            bucket_key_status: None,
            ..object(
                "secret/customer-key.bin",
                Some("sSeC.cUsToMeR_kEy0123456789abcdef"),
                512,
                1_735_689_600_000,
            )
        },
        InventoryRow {
            etag: text("c81e728d9d4c2f636f067f89cc14862c"),
            storage_class: text("INTELLIGENT_TIERING"),
            intelligent_tiering_access_tier: text("DEEP_ARCHIVE_ACCESS"),
            ..object(
                "tiered/cold.bin",
                Some("t1eRed.C0ld_ArchiveAccess0000000"),
                3_000_000,
                1_592_222_400_000,
            )
        },
        InventoryRow {
            etag: text("d41d8cd98f00b204e9800998ecf8427e"),
            ..object(
                "zero/",
                Some("z3r0.bYt3sF0ld3rM4rk3r_000000000"),
                0,
                // 2012-06-30T23:59:59.999Z: before ORC's 2015 epoch, with milliseconds.
                1_341_100_799_999,
            )
        },
    ]
}

/// A current-versions row: only the columns of the live report's layout.
fn current(key: &str, size: u64, ms: i64, etag: &str, class: &str) -> InventoryRow {
    InventoryRow {
        bucket: SOURCE.into(),
        key: key.into(),
        size: Some(size),
        last_modified_ms: Some(ms),
        etag: text(etag),
        storage_class: text(class),
        ..InventoryRow::default()
    }
}

fn current_rows() -> Vec<InventoryRow> {
    vec![
        current(
            "index.html",
            5120,
            1_748_736_000_123,
            "5eb63bbbe01eeed093cb22bb8f5acdc3",
            "STANDARD",
        ),
        current(
            "nar/0a1b2c3d4e5f.nar.xz",
            5 * GIB + 1,
            1_747_717_567_890,
            "3858f62230ac3c915f300c664312c63f-1025",
            "STANDARD",
        ),
        current(
            "old/\u{3a9} snapshot.tar",
            10,
            1_478_467_920_000,
            "e2fc714c4727ee9395f324cd2e7f331f",
            "DEEP_ARCHIVE",
        ),
    ]
}

fn assert_rows(report_name: &str, actual: &[InventoryRow], expected: &[InventoryRow]) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{report_name}: {} rows read, {} written",
        actual.len(),
        expected.len()
    );
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        // The key byte for byte first, for a clear message.
        assert_eq!(
            a.key.as_bytes(),
            e.key.as_bytes(),
            "{report_name} row {}: key",
            i + 1
        );
        assert_eq!(a, e, "{report_name} row {} ({:?})", i + 1, e.key);
    }
}

#[test]
fn manifests_and_checksums_are_as_s3_writes_them() {
    for (name, format, files) in [
        ("parquet-all-versions", FileFormat::Parquet, 2),
        ("orc-all-versions", FileFormat::Orc, 1),
        ("parquet-current", FileFormat::Parquet, 1),
        ("parquet-paged", FileFormat::Parquet, 1),
        ("orc-striped", FileFormat::Orc, 1),
    ] {
        let r = report(name);
        let json = fs::read(r.dir.join("manifest.json")).unwrap();
        let checksum = fs::read_to_string(r.dir.join("manifest.checksum")).unwrap();
        // 32 hex digits and a newline: 33 bytes, as a live report's manifest.checksum.
        assert_eq!(checksum.len(), 33, "{name}");
        assert_eq!(checksum.trim_end(), md5_hex(&json), "{name}");
        let m = &r.manifest;
        assert_eq!(m.source_bucket, SOURCE);
        assert_eq!(
            m.destination_bucket_name(),
            "example-inventory-destination-bucket"
        );
        assert_eq!(m.version, "2016-11-30");
        assert_eq!(m.creation_timestamp_ms, 1_748_826_000_000);
        assert_eq!(m.file_format, format, "{name}");
        assert_eq!(m.files.len(), files, "{name}");
        for (i, f) in m.files.iter().enumerate() {
            let bytes = fs::read(r.data_path(i)).unwrap();
            assert_eq!(f.size, bytes.len() as u64, "{}", f.key);
            assert_eq!(f.md5_checksum, md5_hex(&bytes), "{}", f.key);
            assert!(
                f.key.starts_with(&format!("inventory/{SOURCE}/")) && f.key.contains("/data/"),
                "{}",
                f.key
            );
        }
    }
}

#[test]
fn file_schemas_as_s3_prints_them_name_every_column_in_order() {
    let all = [
        "bucket",
        "key",
        "version_id",
        "is_latest",
        "is_delete_marker",
        "size",
        "last_modified_date",
        "e_tag",
        "storage_class",
        "is_multipart_uploaded",
        "replication_status",
        "encryption_status",
        "object_lock_retain_until_date",
        "object_lock_mode",
        "object_lock_legal_hold_status",
        "intelligent_tiering_access_tier",
        "bucket_key_status",
        "checksum_algorithm",
        "object_access_control_list",
        "object_owner",
    ];
    for name in ["parquet-all-versions", "orc-all-versions"] {
        let r = report(name);
        assert_eq!(r.manifest.schema.names(), all, "{name}");
        assert!(
            r.manifest.schema.columns().iter().all(Option::is_some),
            "{name}: every column S3 documents is one Ferry knows"
        );
    }
    // parquet-mr's printing, word for word as in a live report's manifest.json.
    let current = report("parquet-current");
    assert_eq!(
        current.manifest.file_schema,
        "message s3.inventory {  required binary bucket (STRING);  required binary key (STRING);  \
         optional int64 size;  optional int64 last_modified_date (TIMESTAMP(MILLIS,true));  \
         optional binary e_tag (STRING);  optional binary storage_class (STRING);}"
    );
    assert_eq!(
        current.manifest.schema.names(),
        [
            "bucket",
            "key",
            "size",
            "last_modified_date",
            "e_tag",
            "storage_class"
        ]
    );
    assert!(report("orc-all-versions")
        .manifest
        .file_schema
        .starts_with("struct<bucket:string,key:string,version_id:string,is_latest:boolean,"));
}

#[test]
fn parquet_all_versions_rows_are_read_exactly() {
    let r = report("parquet-all-versions");
    let rows = r.rows();
    assert_rows("parquet-all-versions", &rows, &all_versions_rows());
    // The two files split the rows 6 + 9.
    let first = ParquetInventoryReader::new(
        &r.manifest,
        &r.manifest.files[0].key,
        fs::File::open(r.data_path(0)).unwrap(),
    )
    .unwrap()
    .count();
    assert_eq!(first, 6);
}

#[test]
fn orc_all_versions_rows_are_read_exactly() {
    let r = report("orc-all-versions");
    assert_rows("orc-all-versions", &r.rows(), &all_versions_rows());
}

#[test]
fn parquet_current_versions_with_few_columns_are_read_exactly() {
    let r = report("parquet-current");
    assert_rows("parquet-current", &r.rows(), &current_rows());
}

#[test]
fn keys_are_taken_as_written_not_url_decoded() {
    for name in ["parquet-all-versions", "orc-all-versions"] {
        let rows = report(name).rows();
        let keys: Vec<&[u8]> = rows.iter().map(|r| r.key.as_bytes()).collect();
        assert!(
            keys.contains(&&b"c++/a+b=c.txt"[..]),
            "{name}: '+' stays '+'"
        );
        assert!(
            keys.contains(&&b"reports/100%20done?.csv"[..]),
            "{name}: a literal %20 stays"
        );
        assert!(
            keys.contains(
                &&b"photos/\xc3\xa9t\xc3\xa9/caf\xc3\xa9 cr\xc3\xa8me \xe2\x98\x95.jpg"[..]
            ),
            "{name}: UTF-8 (NFC) and spaces as they are"
        );
        assert!(
            keys.contains(&&b"notes/tab\there\nnewline.txt"[..]),
            "{name}: control characters as they are"
        );
        assert_eq!(
            keys.iter().map(|k| k.len()).max(),
            Some(1024),
            "{name}: the longest key S3 allows is read whole"
        );
    }
}

/// Rows all-versions reports route to with no filter: 9 copied, 1 large, 5 skipped.
fn assert_all_versions_routed(name: &str, stats: &RouteStats) {
    assert_eq!(stats.rows, 15, "{name}");
    assert!(stats.is_balanced(), "{name}: {stats:?}");
    assert_eq!(
        stats.copy,
        Tally {
            objects: 9,
            bytes: 42 + 1_048_576 + 1_000_000 + 7 + 5 * GIB + 99 + 204_800 + 1234,
        },
        "{name}"
    );
    assert_eq!(
        stats.large,
        Tally {
            objects: 1,
            bytes: 6 * GIB + 1
        },
        "{name}"
    );
    assert_eq!(
        stats.skipped(SkipReason::DeleteMarker),
        Tally {
            objects: 1,
            bytes: 0
        },
        "{name}"
    );
    assert_eq!(
        stats.skipped(SkipReason::Archived),
        Tally {
            objects: 3,
            bytes: 73_400_320 + 2048 + 3_000_000
        },
        "{name}: DEEP_ARCHIVE, GLACIER and an Intelligent-Tiering deep archive tier"
    );
    assert_eq!(
        stats.skipped(SkipReason::SseC),
        Tally {
            objects: 1,
            bytes: 512
        },
        "{name}"
    );
    assert_eq!(stats.skipped.len(), 3, "{name}: {:?}", stats.skipped);
    assert!(stats.examples.is_empty(), "{name}: {:?}", stats.examples);
    assert!(stats.warnings.is_empty(), "{name}: {:?}", stats.warnings);
}

/// The copy manifest of both all-versions reports: URL-encoded keys, `null` for both spellings
/// of a null version.
fn all_versions_copy_csv() -> String {
    [
        "example-source-bucket,c%2B%2B/a%2Bb%3Dc.txt,null".to_string(),
        "example-source-bucket,docs/Q1%20report%20%28final%29.pdf,\
         3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
            .to_string(),
        "example-source-bucket,docs/Q1%20report%20%28final%29.pdf,\
         QUpfdndhfd8438MNFDN93jdnJFkdmqnh893"
            .to_string(),
        format!(
            "example-source-bucket,long/{}x,l0ng.K3y_1024_bytes_utf8_00000000",
            "%C3%BC".repeat(509)
        ),
        "example-source-bucket,media/exactly-5gib.bin,f0u2WqkPq9xJ7cL1mN3bV5zX8aS4dF6g".to_string(),
        "example-source-bucket,notes/tab%09here%0Anewline.txt,n3wL1ne.tAb_0000000000000000000"
            .to_string(),
        "example-source-bucket,photos/%C3%A9t%C3%A9/caf%C3%A9%20cr%C3%A8me%20%E2%98%95.jpg,null"
            .to_string(),
        "example-source-bucket,reports/100%2520done%3F.csv,\
         UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ"
            .to_string(),
        "example-source-bucket,zero/,z3r0.bYt3sF0ld3rM4rk3r_000000000".to_string(),
    ]
    .map(|line| line + "\n")
    .concat()
}

#[test]
fn all_versions_rows_are_routed_and_every_skip_is_counted() {
    for name in ["parquet-all-versions", "orc-all-versions"] {
        let split = report(name).split(None);
        assert_all_versions_routed(name, &split.stats);
        assert_eq!(
            String::from_utf8(split.copy.clone()).unwrap(),
            all_versions_copy_csv(),
            "{name}"
        );
        assert_eq!(
            String::from_utf8(split.large.clone()).unwrap(),
            "example-source-bucket,media/movie-4k.mkv,Zx9Yw8Xv7Wu6Vt5Us4Tr3Sq2Rp1Qo0Pn\n",
            "{name}"
        );
        // And the manifest reads back to the keys as S3 stores them.
        let back: Vec<ManifestRow> = CsvManifestReader::new(&split.copy[..])
            .map(|r| r.expect("a clean manifest row"))
            .collect();
        let expected = all_versions_rows();
        let copied: Vec<&InventoryRow> = expected
            .iter()
            .filter(|r| {
                matches!(
                    r.key.as_str(),
                    "c++/a+b=c.txt"
                        | "docs/Q1 report (final).pdf"
                        | "media/exactly-5gib.bin"
                        | "notes/tab\there\nnewline.txt"
                        | "reports/100%20done?.csv"
                        | "zero/"
                ) || r.key.starts_with("photos/")
                    || r.key.starts_with("long/")
            })
            .collect();
        assert_eq!(back.len(), copied.len(), "{name}");
        for (b, e) in back.iter().zip(copied) {
            assert_eq!(b.bucket, SOURCE);
            assert_eq!(b.key, e.key, "{name}");
            assert_eq!(
                b.version_id.as_deref().filter(|v| *v != "null"),
                e.version_id.as_deref(),
                "{name} {}",
                e.key
            );
        }
    }
}

#[test]
fn latest_only_skips_noncurrent_versions_before_anything_else() {
    let filter = FilterSpec {
        latest_only: true,
        ..FilterSpec::default()
    };
    for name in ["parquet-all-versions", "orc-all-versions"] {
        let stats = report(name).split(Some(&filter)).stats;
        assert!(stats.is_balanced(), "{name}");
        assert_eq!(
            stats.skipped(SkipReason::NotLatest),
            Tally {
                objects: 2,
                bytes: 1_000_000 + 2048
            },
            "{name}: the STANDARD_IA and the GLACIER noncurrent versions"
        );
        assert_eq!(stats.skipped(SkipReason::Archived).objects, 2, "{name}");
        assert_eq!(stats.skipped(SkipReason::DeleteMarker).objects, 1, "{name}");
        assert_eq!(stats.skipped(SkipReason::SseC).objects, 1, "{name}");
        assert_eq!(stats.copy.objects, 8, "{name}");
        assert_eq!(stats.large.objects, 1, "{name}");
    }
}

#[test]
fn current_versions_report_routes_without_version_ids() {
    let split = report("parquet-current").split(None);
    let stats = &split.stats;
    assert_eq!(stats.rows, 3);
    assert!(stats.is_balanced());
    assert_eq!(
        stats.copy,
        Tally {
            objects: 1,
            bytes: 5120
        }
    );
    assert_eq!(
        stats.large,
        Tally {
            objects: 1,
            bytes: 5 * GIB + 1
        }
    );
    assert_eq!(
        stats.skipped(SkipReason::Archived),
        Tally {
            objects: 1,
            bytes: 10
        }
    );
    assert_eq!(stats.skipped.len(), 1, "{:?}", stats.skipped);
    // No EncryptionStatus column: SSE-C objects can't be told apart, and the run says so.
    assert_eq!(stats.warnings.len(), 1, "{:?}", stats.warnings);
    assert!(
        stats.warnings[0].contains("EncryptionStatus"),
        "{:?}",
        stats.warnings
    );
    assert_eq!(
        String::from_utf8(split.copy).unwrap(),
        "example-source-bucket,index.html\n"
    );
    assert_eq!(
        String::from_utf8(split.large).unwrap(),
        "example-source-bucket,nar/0a1b2c3d4e5f.nar.xz\n"
    );
}

const BULK_ROWS: u64 = 400;
const BULK_CLASSES: [&str; 6] = [
    "STANDARD",
    "STANDARD_IA",
    "GLACIER",
    "DEEP_ARCHIVE",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
];
const BULK_ENCRYPTION: [&str; 4] = ["SSE-S3", "SSE-KMS", "NOT-SSE", "SSE-C"];

/// Row `i` of the bulk reports (`bulk_row` in generate.py): every 11th a delete marker, every
/// 7th a null version written as "", sizes past 5 GiB, nulls in every optional column.
fn bulk_row(i: u64) -> InventoryRow {
    let key = format!("bulk/{i:04}{}", "x".repeat((i % 5) as usize));
    let version = (i % 7 != 3).then(|| format!("v{i:04}.{:03}", (i * 7919) % 1000));
    let ms = 1_600_000_000_000 + i as i64 * 86_400_123;
    let is_latest = Some(i % 3 != 1);
    if i % 11 == 5 {
        return InventoryRow {
            bucket: SOURCE.into(),
            key,
            version_id: version,
            is_latest,
            is_delete_marker: Some(true),
            last_modified_ms: Some(ms),
            object_owner: text(OWNER),
            ..InventoryRow::default()
        };
    }
    let class = BULK_CLASSES[(i % 6) as usize];
    let encryption = BULK_ENCRYPTION[(i % 4) as usize];
    let size = i * 4_294_967 + if i.is_multiple_of(97) { 7 * GIB } else { 0 };
    InventoryRow {
        is_latest,
        etag: Some(format!(
            "{i:032x}{}",
            if i.is_multiple_of(5) { "-3" } else { "" }
        )),
        storage_class: text(class),
        is_multipart_uploaded: Some(i.is_multiple_of(5)),
        encryption_status: text(encryption),
        bucket_key_status: text(if encryption == "SSE-KMS" {
            "ENABLED"
        } else {
            "DISABLED"
        }),
        intelligent_tiering_access_tier: (class == "INTELLIGENT_TIERING").then(|| {
            if i.is_multiple_of(2) {
                "ARCHIVE_ACCESS"
            } else {
                "FREQUENT"
            }
            .to_string()
        }),
        ..object(&key, version.as_deref(), size, ms)
    }
}

#[test]
fn many_row_groups_stripes_pages_and_a_dictionary_fallback_are_read_exactly() {
    let expected: Vec<InventoryRow> = (0..BULK_ROWS).map(bulk_row).collect();
    // Parquet: row groups of 160, 160 and 80 rows, pages of about 2 KiB, the key column's
    // dictionary page full after a few dozen keys and the rest of its chunk plain-encoded.
    // ORC: four stripes, dictionary and direct strings.
    for name in ["parquet-paged", "orc-striped"] {
        let r = report(name);
        assert_rows(name, &r.rows(), &expected);
    }
}

#[test]
fn bulk_rows_are_routed_by_what_each_row_says() {
    let mut want = RouteStats::default();
    for i in 0..BULK_ROWS {
        let row = bulk_row(i);
        let size = row.size.unwrap_or(0);
        let tally = |t: &mut Tally| {
            t.objects += 1;
            t.bytes += size;
        };
        let class = row.storage_class.as_deref();
        let tier = row.intelligent_tiering_access_tier.as_deref();
        if row.is_delete_marker == Some(true) {
            tally(want.skipped.entry(SkipReason::DeleteMarker).or_default());
        } else if row.encryption_status.as_deref() == Some("SSE-C") {
            tally(want.skipped.entry(SkipReason::SseC).or_default());
        } else if matches!(class, Some("GLACIER" | "DEEP_ARCHIVE"))
            || tier == Some("ARCHIVE_ACCESS")
        {
            tally(want.skipped.entry(SkipReason::Archived).or_default());
        } else if size > 5 * GIB {
            tally(&mut want.large);
        } else {
            tally(&mut want.copy);
        }
    }
    want.rows = BULK_ROWS;
    assert!(want.large.objects > 0 && want.copy.objects > 0);
    for name in ["parquet-paged", "orc-striped"] {
        let split = report(name).split(None);
        assert_eq!(split.stats, want, "{name}");
        assert_eq!(split.copy_counts.rows, want.copy.objects, "{name}");
        assert_eq!(split.large_counts.rows, want.large.objects, "{name}");
    }
}
