//! The manifest a finished job ran on, as the redrive's ground truth (#15 item 8).
//!
//! A completion report lives in the report bucket, which others may write: a report rewritten
//! there must not choose what the batch role copies. So a redrive re-copies only tasks of the
//! job's own manifest. DescribeJob names it (S3 Control API Reference, "JobManifest",
//! "JobManifestLocation": `ObjectArn`, `ObjectVersionId`, `ETag`; "JobManifestSpec": `Format`,
//! `Fields`); it is read as it was when the job was created: GetObject with `If-Match` on that
//! ETag and `versionId` when given (S3 API Reference, "GetObject"). Every form of manifest a Ferry
//! job can have is read:
//!
//! - `S3BatchOperations_CSV_20180820`: the user's CSV manifest, an inventory run's
//!   `ferry-<run>/copy.csv` / `large.csv`, a redrive's `redrive/<job>/manifest.csv`;
//! - `S3InventoryReport_CSV_20161130`: an S3 Inventory `manifest.json` and the gzipped CSV data
//!   files it lists, each checked against the `MD5checksum` the pinned `manifest.json` gives
//!   (S3 User Guide, "Locating your inventory list": "files … MD5checksum").
//!
//! Memory stays bounded for manifests of billions of rows: the failed tasks (at most
//! [`MAX_REDRIVE_TASKS`]) are held as 16-byte digests, the manifest is streamed line by line
//! once, and the redrive manifest is written from the manifest's own rows that match.

use std::collections::HashMap;
use std::io::Write;

use md5::{Digest, Md5};

use super::jobs::{JobManifestRef, ManifestObjects, ReportObjects};
use crate::aws_error::AwsCallError;
use ferry_listings::inventory::manifest_json::{FileFormat, InventoryManifest};
use ferry_listings::manifest::{
    decode_inventory_key, decode_key, CsvManifestWriter, ManifestWriteError,
};
use ferry_plan::inventory_fields::Column;
use ferry_plan::job::{CSV_MANIFEST_FORMAT, INVENTORY_MANIFEST_FORMAT};

/// The most failed tasks one redrive carries. Beyond, the failed rows are not a retry of a few
/// failures but a new copy: create a new job from the plan instead.
pub const MAX_REDRIVE_TASKS: usize = 1_000_000;
/// A `manifest.json` of an inventory is a few kilobytes per thousand data files.
const MAX_MANIFEST_JSON_BYTES: usize = 16 * 1024 * 1024;
/// A manifest line: a key is at most 1,024 bytes, 3,072 URL-encoded; inventory rows add
/// columns. A longer line is not a manifest row.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Failed rows not in the manifest, described (all are counted).
pub const MAX_DESCRIBED: usize = 10;

pub use crate::job_manifest::{task_id, TaskId};

#[derive(Debug, thiserror::Error)]
pub enum JobManifestError {
    #[error(
        "DescribeJob names no manifest object for job {job_id} (a job with a manifest generator has none): \
         Ferry can't tell which tasks were the job's own, so it redrives nothing; create a new job from the plan"
    )]
    NoManifest { job_id: String },
    #[error(
        "the manifest of job {job_id} is {arn:?}, not an S3 object ARN (arn:<partition>:s3:::<bucket>/<key>): \
         nothing redriven"
    )]
    NotAnObjectArn { job_id: String, arn: String },
    #[error(
        "job {job_id} ran on a manifest of format {format:?}; a redrive reads only \
         S3BatchOperations_CSV_20180820 and S3InventoryReport_CSV_20161130 manifests: redrive it with the S3 console"
    )]
    UnsupportedFormat { job_id: String, format: String },
    #[error(
        "the CSV manifest of job {job_id} has fields {fields:?}: a redrive needs Bucket and Key among them"
    )]
    Fields { job_id: String, fields: Vec<String> },
    #[error(
        "{uri} is no longer the manifest job {job_id} ran on (S3 answered {code} to If-Match {etag:?}): \
         someone rewrote or removed it after the job was created, so nothing is redriven. Find out who \
         wrote to that bucket; then create a new job from the plan"
    )]
    Changed {
        job_id: String,
        uri: String,
        etag: String,
        code: String,
    },
    #[error(
        "reading {uri}, the manifest of job {job_id}: {cause} (the function's role must be allowed \
         s3:GetObject on it)"
    )]
    Aws {
        job_id: String,
        uri: String,
        cause: AwsCallError,
    },
    #[error("{uri}, the manifest of job {job_id}, has a line of more than {MAX_LINE_BYTES} bytes at line {line}: it is not a manifest; nothing redriven")]
    LineTooLong {
        job_id: String,
        uri: String,
        line: u64,
    },
    #[error("{uri}, the inventory manifest job {job_id} ran on, can't be used: {reason}; nothing redriven")]
    BadInventory {
        job_id: String,
        uri: String,
        reason: String,
    },
    #[error(
        "the inventory data file {uri} of job {job_id}'s manifest has MD5 {found}, but its manifest.json \
         says {expected}: it was rewritten after the inventory was written, so nothing is redriven"
    )]
    DataFileChanged {
        job_id: String,
        uri: String,
        expected: String,
        found: String,
    },
}

impl crate::aws_error::AwsCaused for JobManifestError {
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            JobManifestError::Aws { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

/// The failed tasks of a report, bounded, each marked once a manifest row matched it.
#[derive(Debug, Default)]
pub struct FailedTasks {
    ids: HashMap<TaskId, bool>,
    /// More distinct failed tasks than [`MAX_REDRIVE_TASKS`] were offered.
    pub over_limit: bool,
}

impl FailedTasks {
    /// Adds a failed task; past the limit only [`Self::over_limit`] is set.
    pub fn insert(&mut self, bucket: &str, key: &str, version_id: Option<&str>) {
        let id = task_id(bucket, key, version_id);
        if self.ids.contains_key(&id) {
            return;
        }
        if self.ids.len() >= MAX_REDRIVE_TASKS {
            self.over_limit = true;
            return;
        }
        self.ids.insert(id, false);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Failed tasks no manifest row matched.
    pub fn unmatched(&self) -> u64 {
        self.ids.values().filter(|m| !**m).count() as u64
    }

    /// Whether this failed task is one no manifest row matched.
    pub fn is_unmatched(&self, bucket: &str, key: &str, version_id: Option<&str>) -> bool {
        self.ids.get(&task_id(bucket, key, version_id)) == Some(&false)
    }
}

/// The manifest's rows that are failed tasks, as a new CSV manifest.
#[derive(Debug)]
pub struct Selection {
    pub body: Vec<u8>,
    pub rows: u64,
    pub version_ids: bool,
    /// Manifest rows read.
    pub manifest_rows: u64,
    /// Matching rows the writer refused, described.
    pub refused: Vec<String>,
    pub refused_count: u64,
}

struct Matcher<'f> {
    failed: &'f mut FailedTasks,
    writer: CsvManifestWriter<Vec<u8>>,
    version_ids: bool,
    manifest_rows: u64,
    refused: Vec<String>,
    refused_count: u64,
}

impl Matcher<'_> {
    fn row(&mut self, bucket: &str, key: &str, version_id: Option<&str>) {
        self.manifest_rows += 1;
        let Some(written) = self.failed.ids.get_mut(&task_id(bucket, key, version_id)) else {
            return;
        };
        if *written {
            return;
        }
        *written = true;
        let version = if self.version_ids {
            version_id.filter(|v| !v.is_empty() && *v != "null")
        } else {
            None
        };
        if let Err(e) = self.writer.write(bucket, key, version) {
            self.refuse(e);
        }
    }

    fn refuse(&mut self, e: ManifestWriteError) {
        self.refused_count += 1;
        if self.refused.len() < MAX_DESCRIBED {
            self.refused.push(e.to_string());
        }
    }
}

/// Splits a byte stream into lines (`\n`, a trailing `\r` dropped, empty lines skipped).
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    line: u64,
    too_long: Option<u64>,
}

impl Lines {
    fn feed(&mut self, mut chunk: &[u8], on_line: &mut dyn FnMut(&[u8])) {
        if self.too_long.is_some() {
            return;
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&chunk[..end]);
            chunk = &chunk[end + 1..];
            self.emit(on_line);
            if self.too_long.is_some() {
                return;
            }
        }
        self.partial.extend_from_slice(chunk);
        if self.partial.len() > MAX_LINE_BYTES {
            self.too_long = Some(self.line + 1);
        }
    }

    fn emit(&mut self, on_line: &mut dyn FnMut(&[u8])) {
        self.line += 1;
        if self.partial.len() > MAX_LINE_BYTES {
            self.too_long = Some(self.line);
            return;
        }
        let mut line = self.partial.as_slice();
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if !line.is_empty() {
            on_line(line);
        }
        self.partial.clear();
    }

    fn finish(&mut self, on_line: &mut dyn FnMut(&[u8])) -> Option<u64> {
        if self.too_long.is_none() && !self.partial.is_empty() {
            self.emit(on_line);
        }
        self.too_long
    }
}

/// The fields of a CSV line: `"…"` unquoted (`""` is a quote), split on `,` outside quotes.
fn csv_fields(line: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Where `Bucket`, `Key` and `VersionId` are in a row.
#[derive(Clone, Copy)]
struct Positions {
    bucket: usize,
    key: usize,
    version: Option<usize>,
    /// Inventory keys may write a space as `+`.
    inventory: bool,
}

impl Positions {
    fn read(&self, line: &[u8], m: &mut Matcher<'_>) {
        let fields = csv_fields(line);
        let (Some(bucket), Some(key)) = (fields.get(self.bucket), fields.get(self.key)) else {
            return;
        };
        let decoded = if self.inventory {
            decode_inventory_key(key)
        } else {
            decode_key(key)
        };
        // A key that doesn't decode was no task Batch Operations could run either.
        let Ok(key) = decoded else {
            return;
        };
        let version = self.version.and_then(|i| fields.get(i)).map(String::as_str);
        m.row(bucket, &key, version);
    }
}

/// Streams job `job_id`'s manifest once and keeps its rows that are in `failed`, marking them.
pub async fn select_failed_rows<P: ManifestObjects + ReportObjects + Sync>(
    ports: &P,
    job_id: &str,
    manifest: &JobManifestRef,
    failed: &mut FailedTasks,
) -> Result<Selection, JobManifestError> {
    let (bucket, key) =
        manifest
            .bucket_and_key()
            .ok_or_else(|| JobManifestError::NotAnObjectArn {
                job_id: job_id.to_string(),
                arn: manifest.object_arn.clone(),
            })?;
    let uri = format!("s3://{bucket}/{key}");
    let read = ManifestRead {
        job_id,
        manifest,
        bucket,
        key,
        uri: &uri,
    };
    match manifest.format.as_str() {
        CSV_MANIFEST_FORMAT => read.csv(ports, failed).await,
        INVENTORY_MANIFEST_FORMAT => read.inventory(ports, failed).await,
        other => Err(JobManifestError::UnsupportedFormat {
            job_id: job_id.to_string(),
            format: other.to_string(),
        }),
    }
}

struct ManifestRead<'a> {
    job_id: &'a str,
    manifest: &'a JobManifestRef,
    bucket: &'a str,
    key: &'a str,
    uri: &'a str,
}

impl ManifestRead<'_> {
    fn aws(&self, uri: &str, cause: AwsCallError) -> JobManifestError {
        if crate::job_manifest::is_changed(&cause) {
            return JobManifestError::Changed {
                job_id: self.job_id.to_string(),
                uri: uri.to_string(),
                etag: self.manifest.etag.clone(),
                code: cause.code,
            };
        }
        JobManifestError::Aws {
            job_id: self.job_id.to_string(),
            uri: uri.to_string(),
            cause,
        }
    }

    fn matcher<'f>(&self, failed: &'f mut FailedTasks, version_ids: bool) -> Matcher<'f> {
        Matcher {
            failed,
            writer: CsvManifestWriter::new(Vec::new(), version_ids),
            version_ids,
            manifest_rows: 0,
            refused: Vec::new(),
            refused_count: 0,
        }
    }

    fn too_long(&self, uri: &str, line: u64) -> JobManifestError {
        JobManifestError::LineTooLong {
            job_id: self.job_id.to_string(),
            uri: uri.to_string(),
            line,
        }
    }

    fn selection(m: Matcher<'_>) -> Selection {
        let counts = m.writer.counts();
        let (body, _) = m.writer.finish().unwrap_or_default();
        Selection {
            body,
            rows: counts.rows,
            version_ids: m.version_ids,
            manifest_rows: m.manifest_rows,
            refused: m.refused,
            refused_count: m.refused_count,
        }
    }

    async fn csv<P: ManifestObjects + Sync>(
        &self,
        ports: &P,
        failed: &mut FailedTasks,
    ) -> Result<Selection, JobManifestError> {
        let fields = &self.manifest.fields;
        let at = |name: &str| fields.iter().position(|f| f == name);
        let positions = match (at("Bucket"), at("Key")) {
            (Some(bucket), Some(key)) => Positions {
                bucket,
                key,
                version: at("VersionId"),
                inventory: false,
            },
            // CreateJob requires Fields for a CSV manifest; without them, Ferry's own order.
            _ if fields.is_empty() => Positions {
                bucket: 0,
                key: 1,
                version: Some(2),
                inventory: false,
            },
            _ => {
                return Err(JobManifestError::Fields {
                    job_id: self.job_id.to_string(),
                    fields: fields.clone(),
                })
            }
        };
        let mut m = self.matcher(failed, positions.version.is_some());
        let mut lines = Lines::default();
        let mut sink = |chunk: &[u8]| {
            lines.feed(chunk, &mut |line| positions.read(line, &mut m));
        };
        ports
            .stream_object_if_match(
                self.bucket,
                self.key,
                self.manifest.object_version_id.as_deref(),
                &self.manifest.etag,
                &mut sink,
            )
            .await
            .map_err(|cause| self.aws(self.uri, cause))?;
        if let Some(line) = lines.finish(&mut |line| positions.read(line, &mut m)) {
            return Err(self.too_long(self.uri, line));
        }
        Ok(Self::selection(m))
    }

    fn bad_inventory(&self, reason: impl Into<String>) -> JobManifestError {
        JobManifestError::BadInventory {
            job_id: self.job_id.to_string(),
            uri: self.uri.to_string(),
            reason: reason.into(),
        }
    }

    async fn inventory<P: ManifestObjects + ReportObjects + Sync>(
        &self,
        ports: &P,
        failed: &mut FailedTasks,
    ) -> Result<Selection, JobManifestError> {
        let mut json = Vec::new();
        let mut too_big = false;
        let mut sink = |chunk: &[u8]| {
            if json.len() + chunk.len() > MAX_MANIFEST_JSON_BYTES {
                too_big = true;
            } else {
                json.extend_from_slice(chunk);
            }
        };
        ports
            .stream_object_if_match(
                self.bucket,
                self.key,
                self.manifest.object_version_id.as_deref(),
                &self.manifest.etag,
                &mut sink,
            )
            .await
            .map_err(|cause| self.aws(self.uri, cause))?;
        if too_big {
            return Err(
                self.bad_inventory(format!("it is larger than {MAX_MANIFEST_JSON_BYTES} bytes"))
            );
        }
        let inventory =
            InventoryManifest::from_json(&json).map_err(|e| self.bad_inventory(e.to_string()))?;
        if inventory.file_format != FileFormat::Csv {
            return Err(self.bad_inventory(format!(
                "its fileFormat is {}; Batch Operations reads CSV inventories only",
                inventory.file_format
            )));
        }
        if inventory.destination_bucket_name() != self.bucket {
            return Err(self.bad_inventory(format!(
                "its destinationBucket is {}, not the bucket it is in",
                inventory.destination_bucket
            )));
        }
        // `<prefix>/<source-bucket>/<configuration-id>/<date>/manifest.json`: the data files are
        // under `<prefix>/<source-bucket>/<configuration-id>/data/` (S3 User Guide, "Locating
        // your inventory list"), as the inventory run requires (`InventoryLocation::data_dir`).
        let Some(dir) = self
            .key
            .rsplitn(3, '/')
            .nth(2)
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/data/"))
        else {
            return Err(self.bad_inventory(
                "its key is not <prefix>/<source-bucket>/<configuration-id>/<date>/manifest.json",
            ));
        };
        let schema = &inventory.schema;
        let (Some(bucket), Some(key)) = (
            schema.position(Column::Bucket),
            schema.position(Column::Key),
        ) else {
            return Err(self.bad_inventory("its fileSchema has no Bucket or Key"));
        };
        let positions = Positions {
            bucket,
            key,
            version: schema.position(Column::VersionId),
            inventory: true,
        };
        let mut m = self.matcher(failed, positions.version.is_some());
        for file in &inventory.files {
            if !file.key.starts_with(&dir) || file.key.contains("/../") {
                return Err(self.bad_inventory(format!(
                    "it lists the data file {} outside the inventory's directory {dir}",
                    file.key
                )));
            }
            let uri = format!("s3://{}/{}", self.bucket, file.key);
            let mut md5 = Md5::new();
            let mut gunzip = flate2::write::MultiGzDecoder::new(LineSink {
                lines: Lines::default(),
                positions,
                matcher: &mut m,
            });
            let mut broken = None;
            let mut sink = |chunk: &[u8]| {
                md5.update(chunk);
                if broken.is_none() {
                    if let Err(e) = gunzip.write_all(chunk) {
                        broken = Some(e.to_string());
                    }
                }
            };
            ports
                .stream_object(self.bucket, &file.key, &mut sink)
                .await
                .map_err(|cause| self.aws(&uri, cause))?;
            let digest = md5.finalize();
            if !ferry_listings::inventory::part::md5_matches(&file.md5_checksum, &digest) {
                return Err(JobManifestError::DataFileChanged {
                    job_id: self.job_id.to_string(),
                    uri,
                    expected: file.md5_checksum.clone(),
                    found: ferry_plan::job::hex(&digest),
                });
            }
            let mut out = match gunzip.finish() {
                Ok(out) if broken.is_none() => out,
                Ok(_) => {
                    return Err(self.bad_inventory(format!("{uri}: {}", broken.unwrap_or_default())))
                }
                Err(e) => return Err(self.bad_inventory(format!("{uri} is not gzip: {e}"))),
            };
            if let Some(line) = out.finish() {
                return Err(self.too_long(&uri, line));
            }
        }
        Ok(Self::selection(m))
    }
}

/// Decompressed inventory data, line by line into the matcher.
struct LineSink<'m, 'f> {
    lines: Lines,
    positions: Positions,
    matcher: &'m mut Matcher<'f>,
}

impl LineSink<'_, '_> {
    fn finish(&mut self) -> Option<u64> {
        let (positions, matcher) = (self.positions, &mut *self.matcher);
        self.lines.finish(&mut |line| positions.read(line, matcher))
    }
}

impl Write for LineSink<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (positions, matcher) = (self.positions, &mut *self.matcher);
        self.lines
            .feed(buf, &mut |line| positions.read(line, matcher));
        if let Some(line) = self.lines.too_long {
            return Err(std::io::Error::other(format!(
                "line {line} is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_null_and_absent_are_one_task_and_others_differ() {
        assert_eq!(task_id("b", "k", None), task_id("b", "k", Some("null")));
        assert_eq!(task_id("b", "k", None), task_id("b", "k", Some("")));
        assert_ne!(task_id("b", "k", None), task_id("b", "k", Some("v1")));
        assert_ne!(task_id("b", "k", None), task_id("b", "k2", None));
        // Length-prefixed: no two splits of the same text collide.
        assert_ne!(task_id("ab", "c", None), task_id("a", "bc", None));
    }

    #[test]
    fn the_failed_set_is_bounded() {
        let mut f = FailedTasks::default();
        for i in 0..MAX_REDRIVE_TASKS + 2 {
            f.insert("b", &i.to_string(), None);
        }
        assert_eq!(f.len(), MAX_REDRIVE_TASKS);
        assert!(f.over_limit);
    }

    #[test]
    fn lines_and_fields() {
        let mut got = Vec::new();
        let mut lines = Lines::default();
        for chunk in [&b"a,b%20c\r\n\n\"x\",\"y\"\"z\",v"[..], b"1\nlast"] {
            lines.feed(chunk, &mut |l| got.push(csv_fields(l)));
        }
        assert_eq!(lines.finish(&mut |l| got.push(csv_fields(l))), None);
        assert_eq!(
            got,
            vec![
                vec!["a".to_string(), "b%20c".to_string()],
                vec!["x".to_string(), "y\"z".to_string(), "v1".to_string()],
                vec!["last".to_string()],
            ]
        );
    }
}
