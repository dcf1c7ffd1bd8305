//! Test helpers: S3 Inventory reports built the way S3 writes them (gzip CSV, every field quoted,
//! keys URL-encoded with a space as `+`), and a run of the splitter over one.

#![allow(dead_code)]

use std::io::Write;

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_listings::inventory::filter::{RowFilter, SkipReason};
use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::route::{ManifestSplitter, RouteStats};
use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_plan::spec::FilterSpec;
use flate2::write::GzEncoder;
use flate2::Compression;

pub const BUCKET: &str = "src-bucket";
pub const DATA_KEY: &str = "inv/src-bucket/all/data/0f3c.csv.gz";

/// Every column, in the order of the S3 user guide's CSV example.
pub const ALL_VERSIONS_SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, \
    LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, \
    ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, \
    IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm, ObjectAccessControlList, \
    ObjectOwner, LifecycleExpirationDate";

/// A current-versions inventory with the fields the filters read.
pub const CURRENT_SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, \
    EncryptionStatus, BucketKeyStatus, IntelligentTieringAccessTier";

pub const GIB: u64 = 1024 * 1024 * 1024;

/// One object version or delete marker as S3 lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    pub key: String,
    /// `None`: a null version (an empty VersionId field).
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub last_modified: String,
    pub storage_class: String,
    pub encryption: String,
    pub bucket_key: String,
    pub tier: String,
}

impl Obj {
    pub fn new(key: &str) -> Self {
        Self {
            key: key.to_string(),
            version_id: None,
            is_latest: true,
            delete_marker: false,
            size: 100,
            last_modified: "2024-05-01T00:00:00.000Z".into(),
            storage_class: "STANDARD".into(),
            encryption: "SSE-S3".into(),
            bucket_key: "DISABLED".into(),
            tier: String::new(),
        }
    }

    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    pub fn class(mut self, class: &str) -> Self {
        self.storage_class = class.into();
        self
    }

    pub fn tier(mut self, tier: &str) -> Self {
        self.tier = tier.into();
        self
    }

    pub fn encryption(mut self, status: &str, bucket_key: &str) -> Self {
        self.encryption = status.into();
        self.bucket_key = bucket_key.into();
        self
    }

    pub fn modified(mut self, at: &str) -> Self {
        self.last_modified = at.into();
        self
    }

    pub fn version(mut self, id: Option<&str>, latest: bool) -> Self {
        self.version_id = id.map(str::to_string);
        self.is_latest = latest;
        self
    }

    pub fn delete_marker(mut self) -> Self {
        self.delete_marker = true;
        self
    }

    /// The value S3 writes in column `name` (empty when it has none).
    fn field(&self, name: &str) -> String {
        let dm = self.delete_marker;
        match name {
            "Bucket" => BUCKET.into(),
            "Key" => s3_encode(&self.key),
            "VersionId" => self.version_id.clone().unwrap_or_default(),
            "IsLatest" => self.is_latest.to_string(),
            "IsDeleteMarker" => dm.to_string(),
            "Size" if dm => String::new(),
            "Size" => self.size.to_string(),
            "LastModifiedDate" => self.last_modified.clone(),
            "ETag" if dm => String::new(),
            "ETag" => "d41d8cd98f00b204e9800998ecf8427e".into(),
            "StorageClass" if dm => String::new(),
            "StorageClass" => self.storage_class.clone(),
            "IsMultipartUploaded" if dm => String::new(),
            "IsMultipartUploaded" => "false".into(),
            "EncryptionStatus" if dm => String::new(),
            "EncryptionStatus" => self.encryption.clone(),
            "BucketKeyStatus" if dm => String::new(),
            "BucketKeyStatus" => self.bucket_key.clone(),
            "IntelligentTieringAccessTier" => self.tier.clone(),
            "ObjectOwner" => {
                "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be".into()
            }
            // A value with a comma and a quote, to prove quoting is honoured.
            "ObjectAccessControlList" => "eyJ2ZXJzaW9uIjoiMjAyMi0xMS0xMCJ9, \"x\"".into(),
            _ => String::new(),
        }
    }
}

/// Keys as S3 Inventory CSV writes them (Java `URLEncoder` style): `A-Za-z0-9.-*_` kept, a space
/// becomes `+`, every other byte `%XX`.
pub fn s3_encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// The CSV text of a data file: every field quoted, `\n` line ends, no header.
pub fn csv_text(schema: &str, objs: &[Obj]) -> String {
    let names: Vec<&str> = schema.split(',').map(str::trim).collect();
    let mut text = String::new();
    for o in objs {
        let fields: Vec<String> = names.iter().map(|n| quoted(&o.field(n))).collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A `manifest.json` as S3 writes it.
pub fn manifest_json(format: &str, schema: &str, files: &[(&str, u64)]) -> String {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(key, size)| {
            serde_json::json!({"key": key, "size": size, "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"})
        })
        .collect();
    serde_json::json!({
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "version": "2016-11-30",
        "creationTimestamp": "1714521600000",
        "fileFormat": format,
        "fileSchema": schema,
        "files": files,
    })
    .to_string()
}

pub fn csv_manifest(schema: &str) -> InventoryManifest {
    InventoryManifest::from_json(manifest_json("CSV", schema, &[(DATA_KEY, 1)]).as_bytes())
        .expect("valid manifest.json")
}

/// What one run of the splitter wrote.
pub struct Split {
    pub copy: String,
    pub large: String,
    pub stats: RouteStats,
}

/// Writes `objs` as a gzip CSV inventory, reads it back and splits it.
pub fn split(schema: &str, objs: &[Obj], filter: Option<&FilterSpec>) -> Split {
    let manifest = csv_manifest(schema);
    let gz = gzip(csv_text(schema, objs).as_bytes());
    split_gz(&manifest, &gz, filter)
}

pub fn split_gz(manifest: &InventoryManifest, gz: &[u8], filter: Option<&FilterSpec>) -> Split {
    let reader = CsvInventoryReader::new(manifest, DATA_KEY, gz).expect("CSV inventory");
    split_rows(manifest, reader, filter)
}

/// Splits the rows of any reader (CSV, Parquet, ORC), checking the counts add up.
pub fn split_rows(
    manifest: &InventoryManifest,
    reader: impl Iterator<Item = Result<InventoryRow, InventoryError>>,
    filter: Option<&FilterSpec>,
) -> Split {
    let filter = RowFilter::new(filter).expect("valid filter");
    let mut splitter =
        ManifestSplitter::new(&manifest.schema, filter, Vec::new(), Vec::new()).expect("columns");
    for item in reader {
        splitter.push_result(item).expect("no fatal error");
    }
    let out = splitter.finish().unwrap();
    assert!(out.stats.is_balanced(), "{:?}", out.stats);
    assert_eq!(out.copy_counts.rows, out.stats.copy.objects);
    assert_eq!(out.large_counts.rows, out.stats.large.objects);
    Split {
        copy: String::from_utf8(out.copy).unwrap(),
        large: String::from_utf8(out.large).unwrap(),
        stats: out.stats,
    }
}

/// Seven objects covering what routing treats differently, for the Parquet and ORC tests: keys
/// S3 would URL-encode in CSV, a null version, a delete marker, an archived object, one over
/// 5 GiB and an SSE-KMS one.
pub fn binary_format_sample() -> Vec<Obj> {
    vec![
        Obj::new("plain.txt").version(Some("v2"), true),
        Obj::new("with space+plus%20.txt").version(None, true),
        Obj::new("comma,\"quote\"/日本.bin").version(Some("v1"), false),
        Obj::new("gone").version(Some("dm"), true).delete_marker(),
        Obj::new("cold").class("GLACIER"),
        Obj::new("huge").size(6 * GIB),
        Obj::new("kms-bk").encryption("SSE-KMS", "ENABLED"),
    ]
}

/// What [`binary_format_sample`] must route to: keys taken as they are, encoded once in the
/// manifest; the delete marker and the archived object counted as skipped.
pub fn assert_binary_format_sample_routed(split: &Split) {
    assert_eq!(
        split.copy,
        "src-bucket,plain.txt,v2\n\
         src-bucket,with%20space%2Bplus%2520.txt,null\n\
         src-bucket,comma%2C%22quote%22/%E6%97%A5%E6%9C%AC.bin,v1\n\
         src-bucket,kms-bk,null\n"
    );
    assert_eq!(split.large, "src-bucket,huge,null\n");
    assert_eq!(split.stats.skipped(SkipReason::DeleteMarker).objects, 1);
    assert_eq!(split.stats.skipped(SkipReason::Archived).objects, 1);
}
