//! A completion report's `manifest.json`: where a job's result CSVs are.
//!
//! Batch Operations writes it at `<prefix>/job-<id>/manifest.json` (no leading `/` when the
//! prefix is empty), listing `results/<hash>.csv` files by bucket *name* and full key, one per
//! task status. Fields Ferry doesn't use are ignored; a missing `Results` is an error.

use serde::{Deserialize, Serialize};

use ferry_plan::job::REPORT_FORMAT;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletionReportManifest {
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub report_creation_date: Option<String>,
    pub results: Vec<ReportResultFile>,
    #[serde(default)]
    pub report_schema: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportResultFile {
    /// `succeeded` or `failed`: which tasks the file lists.
    #[serde(default)]
    pub task_execution_status: String,
    pub bucket: String,
    pub key: String,
    #[serde(rename = "MD5Checksum", default)]
    pub md5_checksum: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportManifestError {
    #[error("{key} is not a completion report manifest.json: {message}")]
    NotJson { key: String, message: String },
    #[error(
        "{key} has Format {found:?}; Ferry reads {REPORT_FORMAT} reports (the format its jobs request)"
    )]
    UnknownFormat { key: String, found: String },
}

impl CompletionReportManifest {
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self, ReportManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ReportManifestError::NotJson {
                key: key.to_string(),
                message: e.to_string(),
            })?;
        if !manifest.format.is_empty() && manifest.format != REPORT_FORMAT {
            return Err(ReportManifestError::UnknownFormat {
                key: key.to_string(),
                found: manifest.format,
            });
        }
        Ok(manifest)
    }

    /// Result files listing failed tasks: the only ones redrive and diagnosis need.
    pub fn failed_files(&self) -> impl Iterator<Item = &ReportResultFile> {
        self.results
            .iter()
            .filter(|f| !f.task_execution_status.eq_ignore_ascii_case("succeeded"))
    }
}

/// Where Batch Operations puts a job's report manifest under the report prefix.
pub fn report_manifest_key(prefix: &str, job_id: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        format!("job-{job_id}/manifest.json")
    } else {
        format!("{prefix}/job-{job_id}/manifest.json")
    }
}

/// The bucket name from a report bucket ARN (`arn:aws:s3:::name`), or the text if it is a name.
pub fn bucket_name(bucket_or_arn: &str) -> &str {
    bucket_or_arn
        .rsplit_once(":::")
        .map_or(bucket_or_arn, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the S3 user guide ("Examples: S3 Batch Operations completion reports").
    const AWS_EXAMPLE: &str = r#"{
        "Format": "Report_CSV_20180820",
        "ReportCreationDate": "2019-04-05T17:48:39.725Z",
        "Results": [{
            "TaskExecutionStatus": "succeeded",
            "Bucket": "my-job-reports",
            "MD5Checksum": "83b1c4cbe93fc893f54053697e10fd6e",
            "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/6217b0fab0de85c408b4be96aeaca9b195a7daa5.csv"
        }, {
            "TaskExecutionStatus": "failed",
            "Bucket": "my-job-reports",
            "MD5Checksum": "22ee037f3515975f7719699e5c416eaa",
            "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv"
        }],
        "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    }"#;

    #[test]
    fn reads_the_aws_example() {
        let m = CompletionReportManifest::from_json("k", AWS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(m.results.len(), 2);
        let failed: Vec<_> = m.failed_files().collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0]
            .key
            .ends_with("b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv"));
    }

    #[test]
    fn other_formats_and_garbage_are_named() {
        let e = CompletionReportManifest::from_json("r/m.json", br#"{"Format":"X","Results":[]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("\"X\""), "{e}");
        let e = CompletionReportManifest::from_json("r/m.json", b"nope").unwrap_err();
        assert!(e.to_string().starts_with("r/m.json"), "{e}");
    }

    #[test]
    fn keys_and_names() {
        assert_eq!(
            report_manifest_key("ferry/x/", "j1"),
            "ferry/x/job-j1/manifest.json"
        );
        assert_eq!(report_manifest_key("", "j1"), "job-j1/manifest.json");
        assert_eq!(bucket_name("arn:aws:s3:::reports"), "reports");
        assert_eq!(bucket_name("reports"), "reports");
    }
}
