//! The `manifest.json` Ferry writes for a run's copy job: the copy list as an S3 Inventory
//! report (`S3InventoryReport_CSV_20161130`), so one job takes up to Batch Operations' 20
//! billion objects (S3 User Guide, "Copy objects" with Batch Operations: a job holds at most 20
//! billion) in many gzip parts written in parallel, instead of one CSV manifest written
//! and uploaded whole.
//!
//! The form is S3 Inventory's own ("Locating your inventory list",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html>):
//! `sourceBucket`, `destinationBucket` (the ARN of the bucket the report is in), `version`
//! `2016-11-30`, `creationTimestamp` (epoch milliseconds, as a string), `fileFormat` `CSV`,
//! `fileSchema` and `files[]` (`key`, `size`, `MD5checksum`). Its columns are `Bucket, Key`:
//! "Your manifest must contain the bucket name, object key, and optionally, the object version
//! for each object. Any other fields in the manifest are not used" ("Creating an S3 Batch
//! Operations job", Specifying a manifest,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-create-job.html>). Rows
//! with version ids go to a CSV manifest instead: S3's guide documents the `null` version of
//! an inventory only by turning it into a CSV manifest ("Converting empty version ID strings in
//! Amazon S3 Inventory reports to null strings"), so Ferry does not rely on an inventory-format
//! one. AWS documents this format for reports S3 Inventory writes; that Batch Operations takes one
//! a tool wrote, with data files of its own, is not documented either way (verify on a real
//! account). The nearest precedent is AWS's own `aws/aws-health-tools`
//! (`misc/S3-inventory-to-batch-job`), which launches jobs on `manifest.json` files it writes
//! itself, though listing S3's own data files with S3's full `fileSchema`. Ferry reads what it
//! writes back with the very parser it reads S3's reports with
//! ([`InventoryManifest::from_json`]).

use serde::Serialize;

use crate::inventory::manifest_json::{InventoryFile, InventoryManifest, ManifestJsonError};

/// The `version` S3 Inventory writes.
pub const INVENTORY_REPORT_VERSION: &str = "2016-11-30";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    source_bucket: &'a str,
    destination_bucket: String,
    version: &'a str,
    creation_timestamp: String,
    file_format: &'a str,
    file_schema: &'a str,
    files: &'a [InventoryFile],
}

/// A copy list's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyManifestJson<'a> {
    /// The bucket the rows name.
    pub source_bucket: &'a str,
    /// The bucket the report and its parts are in, and its partition (`aws`, `aws-cn`, …).
    pub report_bucket: &'a str,
    pub partition: &'a str,
    pub creation_timestamp_ms: u64,
    /// The parts, in order: keys in `report_bucket`.
    pub files: &'a [InventoryFile],
}

/// The columns of Ferry's parts.
pub const COPY_FILE_SCHEMA: &str = "Bucket, Key";

impl CopyManifestJson<'_> {
    /// The bytes to store; read back with [`InventoryManifest::from_json`] before they are.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestJsonError> {
        let json = ManifestJson {
            source_bucket: self.source_bucket,
            destination_bucket: format!("arn:{}:s3:::{}", self.partition, self.report_bucket),
            version: INVENTORY_REPORT_VERSION,
            creation_timestamp: self.creation_timestamp_ms.to_string(),
            file_format: "CSV",
            file_schema: COPY_FILE_SCHEMA,
            files: self.files,
        };
        let bytes = serde_json::to_vec_pretty(&json).unwrap_or_default();
        // What Ferry writes, Ferry's own reader of S3's reports must take.
        InventoryManifest::from_json(&bytes)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plan::inventory_fields::Column;

    #[test]
    fn it_reads_back_as_an_inventory_report_of_bucket_and_key_only() {
        let files = vec![InventoryFile {
            key: "inventory/fp/runs/r/data/000000.csv.gz".into(),
            size: 42,
            md5_checksum: "d41d8cd98f00b204e9800998ecf8427e".into(),
        }];
        {
            let json = CopyManifestJson {
                source_bucket: "src",
                report_bucket: "state",
                partition: "aws",
                creation_timestamp_ms: 1_764_550_800_000,
                files: &files,
            };
            let bytes = json.to_bytes().unwrap();
            let back = InventoryManifest::from_json(&bytes).unwrap();
            assert_eq!(back.source_bucket, "src");
            assert_eq!(back.destination_bucket_name(), "state");
            assert_eq!(back.creation_timestamp_ms, 1_764_550_800_000);
            assert_eq!(back.files, files);
            assert!(!back.has_version_ids());
            assert!(!back.schema.has(Column::VersionId));
            assert_eq!(back.schema.len(), 2);
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("\"version\": \"2016-11-30\""), "{text}");
            assert!(
                text.contains("\"creationTimestamp\": \"1764550800000\""),
                "{text}"
            );
            assert!(
                text.contains("\"destinationBucket\": \"arn:aws:s3:::state\""),
                "{text}"
            );
            assert!(text.contains("\"MD5checksum\""), "{text}");
        }
    }
}
