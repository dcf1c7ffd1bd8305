//! The LambdaInvoke request a Batch Operations job sends and the response it expects, for
//! invocation schemas 1.0 and 2.0.
//!
//! Own serde types: `aws_lambda_events` models schema 1.0 only (no `s3Bucket`, no
//! `userArguments`). Each invocation carries one task; the response answers every task it
//! received, so a malformed one is answered `PermanentFailure` rather than dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ferry_listings::manifest::decode_inventory_key;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationRequest {
    pub invocation_schema_version: String,
    pub invocation_id: String,
    #[serde(default)]
    pub job: InvocationJob,
    #[serde(default)]
    pub tasks: Vec<RawTask>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationJob {
    #[serde(default)]
    pub id: String,
    /// Schema 2.0 only; `null` when the job has none.
    #[serde(default)]
    pub user_arguments: Option<BTreeMap<String, String>>,
}

/// A task as it arrives: bucket by name (2.0) or ARN (1.0), key URL-encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawTask {
    #[serde(default)]
    pub task_id: String,
    #[serde(default)]
    pub s3_key: String,
    #[serde(default)]
    pub s3_version_id: Option<String>,
    #[serde(default)]
    pub s3_bucket: Option<String>,
    #[serde(default)]
    pub s3_bucket_arn: Option<String>,
}

/// A task ready to copy: bucket name, decoded key, version id (if the manifest had one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTask {
    pub task_id: String,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// The bucket name of a schema 1.0 `s3BucketArn`. AWS shows it both as `arn:aws:s3:::<bucket>`
/// (Lambda Developer Guide, "Invoking Lambda functions from Amazon S3 batch operations") and,
/// in older S3 User Guide examples, with the Region and account filled in
/// (`arn:aws:s3:us-east-1:111122223333:<bucket>`): both are read.
fn bucket_of_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "s3", _region, _account, bucket]
            if !partition.is_empty() && !bucket.is_empty() && !bucket.contains('/') =>
        {
            Some(bucket.to_string())
        }
        _ => None,
    }
}

impl RawTask {
    /// Decodes the key (`%XX` and `+` as a space, as AWS's own examples read it with
    /// `unquote_plus`; Ferry's manifests write a real `+` as `%2B`) and finds the bucket name.
    pub fn decode(&self) -> Result<CopyTask, String> {
        let bucket = match (&self.s3_bucket, &self.s3_bucket_arn) {
            (Some(b), _) if !b.is_empty() => b.clone(),
            (_, Some(arn)) => bucket_of_arn(arn).ok_or_else(|| {
                format!(
                    "task s3BucketArn {arn:?} is not a bucket ARN (arn:aws:s3:::<bucket>, or \
                     arn:aws:s3:<region>:<account>:<bucket>)"
                )
            })?,
            _ => return Err("task has neither s3Bucket (schema 2.0) nor s3BucketArn (1.0)".into()),
        };
        if self.s3_key.is_empty() {
            return Err("task s3Key is empty".into());
        }
        let key = decode_inventory_key(&self.s3_key)
            .map_err(|e| format!("task s3Key {:?} can't be decoded: {e}", self.s3_key))?;
        Ok(CopyTask {
            task_id: self.task_id.clone(),
            bucket,
            key,
            version_id: self
                .s3_version_id
                .clone()
                .filter(|v| !v.is_empty() && v != "null"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultCode {
    Succeeded,
    TemporaryFailure,
    PermanentFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    pub task_id: String,
    pub result_code: ResultCode,
    pub result_string: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationResponse {
    pub invocation_schema_version: String,
    pub treat_missing_keys_as: ResultCode,
    pub invocation_id: String,
    pub results: Vec<TaskResult>,
}

/// Completion reports show the result string; keep it readable there.
pub const MAX_RESULT_STRING_CHARS: usize = 1024;

impl TaskResult {
    pub fn new(task_id: &str, result_code: ResultCode, result_string: impl Into<String>) -> Self {
        let text: String = result_string.into();
        let result_string = if text.chars().count() > MAX_RESULT_STRING_CHARS {
            text.chars()
                .take(MAX_RESULT_STRING_CHARS - 1)
                .collect::<String>()
                + "…"
        } else {
            text
        };
        Self {
            task_id: task_id.to_string(),
            result_code,
            result_string,
        }
    }
}

impl InvocationResponse {
    pub fn new(request: &InvocationRequest, results: Vec<TaskResult>) -> Self {
        Self {
            invocation_schema_version: request.invocation_schema_version.clone(),
            treat_missing_keys_as: ResultCode::PermanentFailure,
            invocation_id: request.invocation_id.clone(),
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_two_task() {
        let req: InvocationRequest = serde_json::from_value(serde_json::json!({
            "invocationSchemaVersion": "2.0", "invocationId": "inv",
            "job": {"id": "j", "userArguments": {"destinationBucket": "d"}},
            "tasks": [{"taskId": "t", "s3Bucket": "src", "s3Key": "big+file%2Bv2%C3%A9.bin", "s3VersionId": null}]
        }))
        .unwrap();
        let task = req.tasks[0].decode().unwrap();
        assert_eq!(task.bucket, "src");
        assert_eq!(task.key, "big file+v2é.bin");
        assert_eq!(task.version_id, None);
        assert_eq!(req.job.user_arguments.unwrap()["destinationBucket"], "d");
    }

    #[test]
    fn schema_one_task_and_bad_tasks() {
        let t = RawTask {
            task_id: "t".into(),
            s3_key: "k".into(),
            s3_version_id: Some("v1".into()),
            s3_bucket_arn: Some("arn:aws:s3:::src".into()),
            ..RawTask::default()
        };
        assert_eq!(t.decode().unwrap().bucket, "src");
        assert_eq!(t.decode().unwrap().version_id.as_deref(), Some("v1"));
        // The older documented form, Region and account filled in.
        let regional = RawTask {
            s3_bucket_arn: Some("arn:aws:s3:us-east-1:111122223333:src".into()),
            ..t.clone()
        };
        assert_eq!(regional.decode().unwrap().bucket, "src");
        for arn in [
            "arn:aws:s3:::src/x",
            "arn:aws:s3:::",
            "arn:aws:sqs:us-east-1:111122223333:src",
            "src",
        ] {
            let bad = RawTask {
                s3_bucket_arn: Some(arn.into()),
                ..t.clone()
            };
            assert!(bad.decode().unwrap_err().contains("s3BucketArn"), "{arn}");
        }
        let bad = RawTask {
            s3_key: "a%zz".into(),
            ..t
        };
        assert!(bad.decode().unwrap_err().contains("s3Key"));
    }
}
