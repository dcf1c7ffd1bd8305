//! Reading a job's completion report through [`ReportObjects`]: its `manifest.json`, then
//! each result file that lists failed tasks, streamed through [`ResultCsvParser`]. Files of
//! succeeded tasks are not read: DescribeJob already counts them, and in an `AllTasks` report
//! of a billion-object job they are most of the bytes.

use serde::Serialize;

use super::jobs::{ReportLocation, ReportObjects};
use crate::aws_error::AwsCallError;
use ferry_listings::report::manifest_json::{
    report_manifest_key, CompletionReportManifest, ReportManifestError,
};
use ferry_listings::report::results::{ParseStats, ResultCsvParser, TaskResult};

/// What was read, for the breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportReading {
    pub bucket: String,
    pub manifest_key: String,
    /// `false`: no `manifest.json` (a job that failed before running any task writes none).
    pub found: bool,
    pub files_read: Vec<String>,
    pub bytes_read: u64,
    pub stats: ParseStats,
}

impl ReportReading {
    pub fn manifest_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.manifest_key)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportReadError {
    #[error("reading s3://{bucket}/{key}: {cause}")]
    Aws {
        bucket: String,
        key: String,
        cause: AwsCallError,
    },
    #[error(transparent)]
    Manifest(#[from] ReportManifestError),
}

impl crate::aws_error::AwsCaused for ReportReadError {
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            ReportReadError::Aws { cause, .. } => Some(cause),
            ReportReadError::Manifest(_) => None,
        }
    }
}

/// Streams every failed task of job `job_id`'s report to `on_task`.
pub async fn for_each_failed_task<P: ReportObjects + Sync>(
    ports: &P,
    location: &ReportLocation,
    job_id: &str,
    on_task: &mut (dyn FnMut(TaskResult) + Send),
) -> Result<ReportReading, ReportReadError> {
    let bucket = location.bucket.clone();
    let manifest_key = report_manifest_key(&location.prefix, job_id);
    let mut reading = ReportReading {
        bucket: bucket.clone(),
        manifest_key: manifest_key.clone(),
        found: false,
        files_read: Vec::new(),
        bytes_read: 0,
        stats: ParseStats::default(),
    };
    let Some(bytes) = ports
        .read_object(&bucket, &manifest_key)
        .await
        .map_err(|cause| ReportReadError::Aws {
            bucket: bucket.clone(),
            key: manifest_key.clone(),
            cause,
        })?
    else {
        return Ok(reading);
    };
    reading.found = true;
    let manifest = CompletionReportManifest::from_json(&manifest_key, &bytes)?;
    for file in manifest.failed_files() {
        let mut parser = ResultCsvParser::new();
        let mut sink = |chunk: &[u8]| parser.feed(chunk, &mut *on_task);
        let read = ports
            .stream_object(&file.bucket, &file.key, &mut sink)
            .await
            .map_err(|cause| ReportReadError::Aws {
                bucket: file.bucket.clone(),
                key: file.key.clone(),
                cause,
            })?;
        reading.bytes_read += read;
        reading.stats.merge(parser.finish(&mut *on_task));
        reading
            .files_read
            .push(format!("s3://{}/{}", file.bucket, file.key));
    }
    Ok(reading)
}
