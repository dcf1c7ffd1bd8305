//! Shared checks of the fuzz targets: the promises Ferry's readers and router make about any
//! input, asserted so that a broken promise is a crash libFuzzer keeps.
//!
//! - A reader yields rows that satisfy [`InventoryRow`]'s invariants, or `Err`; a row error
//!   lets reading go on, any other error ends the file.
//! - Routing accounts for every row exactly once (`RouteStats::is_balanced`) and never needs
//!   its safety net (`SkipReason::Rejected`): the readers refuse what the writer would.
//! - Every manifest Ferry writes passes Ferry's own checker and reads back to the same rows.

use std::io::Cursor;

use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::route::ManifestSplitter;
use ferry_listings::inventory::filter::{RowFilter, SkipReason};
use ferry_listings::manifest::{check_csv_manifest, CheckOptions, CsvManifestReader, ManifestRow, MAX_KEY_BYTES};

/// A `manifest.json` as S3 writes it, for a data file of `format` with `schema`.
pub fn inventory_manifest(format: &str, schema: &str) -> InventoryManifest {
    let json = serde_json::json!({
        "sourceBucket": SOURCE_BUCKET,
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "version": "2016-11-30",
        "creationTimestamp": "1714521600000",
        "fileFormat": format,
        "fileSchema": schema,
        "files": [{"key": DATA_KEY, "size": 1, "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"}],
    });
    match InventoryManifest::from_json(json.to_string().as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("the fuzz harness's own manifest.json is refused: {e}"),
    }
}

pub const SOURCE_BUCKET: &str = "src-bucket";
pub const DATA_KEY: &str = "inv/src-bucket/all/data/fuzz";

/// Every CSV column, in the S3 user guide's order.
pub const CSV_ALL_VERSIONS: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, \
    LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, \
    ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, \
    IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm, ObjectAccessControlList, \
    ObjectOwner, LifecycleExpirationDate";
pub const CSV_CURRENT: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, \
    EncryptionStatus, BucketKeyStatus, IntelligentTieringAccessTier";
pub const CSV_VERSIONS_SMALL: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size";
/// No Size column: readable, but the router refuses it (it routes by size).
pub const CSV_NO_SIZE: &str = "Bucket, Key";

/// Reads every item of `rows` (at most `limit`, so a reader that never ends is a finding),
/// checks each, routes them with the default filter and checks what was written.
pub fn read_route_and_check<I>(manifest: &InventoryManifest, rows: I, limit: usize)
where
    I: Iterator<Item = Result<InventoryRow, InventoryError>>,
{
    let size_column = manifest.schema.has(ferry_plan::inventory_fields::Column::Size);
    let splitter = ManifestSplitter::new(
        &manifest.schema,
        RowFilter::default(),
        Vec::new(),
        Vec::new(),
    );
    let mut splitter = match splitter {
        Ok(s) => Some(s),
        Err(e) => {
            assert!(!size_column, "a schema with Size was refused: {e}");
            None
        }
    };
    let mut copied = Vec::new();
    let mut large = Vec::new();
    let mut ended = false;
    let mut rows = rows;
    let mut seen = 0usize;
    for item in rows.by_ref() {
        seen += 1;
        assert!(seen <= limit, "the reader yielded more than {limit} items");
        assert!(
            !ended,
            "the reader went on after an error that ends the file"
        );
        match &item {
            Ok(row) => check_row(row, size_column),
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains(DATA_KEY),
                    "the error does not name the file: {text}"
                );
                if !e.is_row_error() {
                    ended = true;
                }
            }
        }
        let Some(s) = splitter.as_mut() else { continue };
        let row = item.as_ref().ok().cloned();
        match s.push_result(item) {
            Ok(ferry_listings::inventory::filter::Outcome::Copy) => copied.extend(row),
            Ok(ferry_listings::inventory::filter::Outcome::Large) => large.extend(row),
            Ok(ferry_listings::inventory::filter::Outcome::Skip(_)) => {}
            Err(e) => assert!(!e.is_row_error(), "push_result returned a row error: {e}"),
        }
    }
    let Some(s) = splitter else { return };
    let out = match s.finish() {
        Ok(out) => out,
        Err(e) => panic!("writing to memory failed: {e}"),
    };
    let stats = &out.stats;
    assert!(stats.is_balanced(), "rows not accounted for: {stats:?}");
    assert_eq!(
        stats.skipped(SkipReason::Rejected).objects,
        0,
        "the writer refused a row the reader passed: {:?}",
        stats.examples
    );
    let versions = manifest.has_version_ids();
    check_written_manifest(&out.copy, &copied, versions);
    check_written_manifest(&out.large, &large, versions);
}

/// What every reader promises about a row it yields.
pub fn check_row(row: &InventoryRow, size_column: bool) {
    assert_eq!(row.bucket, SOURCE_BUCKET, "a row of another bucket");
    assert!(!row.key.is_empty(), "a row with an empty key");
    assert!(row.key.len() <= MAX_KEY_BYTES, "a key over 1024 bytes");
    if let Some(v) = &row.version_id {
        assert!(
            v.bytes().all(|b| b.is_ascii_graphic()),
            "version id {v:?} is not printable ASCII"
        );
    }
    if size_column && row.is_delete_marker != Some(true) {
        assert!(row.size.is_some(), "an object without a size");
    }
}

/// A manifest Ferry wrote checks clean and reads back to exactly the rows written.
pub fn check_written_manifest(bytes: &[u8], rows: &[InventoryRow], versions: bool) {
    if rows.is_empty() {
        assert!(bytes.is_empty(), "rows written that were not counted");
        return;
    }
    let expect = CheckOptions {
        bucket: Some(SOURCE_BUCKET.to_string()),
        version_ids: Some(versions),
    };
    let report = match check_csv_manifest(Cursor::new(bytes), expect.clone()) {
        Ok(r) => r,
        Err(e) => panic!("reading from memory failed: {e}"),
    };
    assert!(
        report.is_ok(),
        "Ferry's own manifest fails its checker: {:?}\n{}",
        report.problems,
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(report.rows, rows.len() as u64);
    let back: Vec<ManifestRow> = CsvManifestReader::with_options(Cursor::new(bytes), expect)
        .map(|r| match r {
            Ok(row) => row,
            Err(e) => panic!("Ferry's own manifest does not read back: {e}"),
        })
        .collect();
    assert_eq!(back.len(), rows.len());
    for (read, written) in back.iter().zip(rows) {
        assert_eq!(read.bucket, written.bucket);
        assert_eq!(read.key, written.key, "a key changed on the way through");
        let want = match (versions, written.version_id.as_deref()) {
            (false, _) => None,
            (true, None | Some("") | Some("null")) => None,
            (true, Some(v)) => Some(v),
        };
        let got = read.version_id.as_deref().filter(|v| *v != "null");
        assert_eq!(got, want, "a version id changed on the way through");
    }
}

/// Splits fuzz input into a selector byte and the rest.
pub fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (*b, rest),
        None => (0, data),
    }
}

/// A valid file with fuzz-chosen damage: each 3 bytes of `patches` overwrite one byte (2-byte
/// offset, new value); a last odd byte cuts that many bytes off the end.
pub fn patched(file: &[u8], patches: &[u8]) -> Vec<u8> {
    let mut file = file.to_vec();
    let len = file.len();
    if len == 0 {
        return file;
    }
    let mut chunks = patches.chunks_exact(3);
    for p in chunks.by_ref() {
        let at = usize::from(u16::from_le_bytes([p[0], p[1]])) % len;
        file[at] = p[2];
    }
    if let [cut, ..] = chunks.remainder() {
        file.truncate(len - usize::from(*cut) % len);
    }
    file
}
