//! [`LaunchApi`] with the AWS SDK: HeadObject (and for an inventory GetObject) on the manifest in
//! its bucket's Region, CreateJob in the job region.

use std::time::Duration;

use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::ports::{LaunchApi, ManifestHead};
use ferry_plan::job::CreateJobRequest;

use crate::create_job::fill;
use crate::errors::{bucket_region_of, classify};
use crate::regions::BucketRegions;

#[derive(Debug, Clone)]
pub struct AwsLaunchApi {
    /// A client of the function's (home) Region; buckets elsewhere are reached through
    /// [`BucketRegions`], which follows S3's redirect to their Region.
    pub s3: aws_sdk_s3::Client,
    /// A client for the job region (the destination region).
    pub s3control: aws_sdk_s3control::Client,
    pub regions: BucketRegions,
}

impl AwsLaunchApi {
    pub fn new(s3: aws_sdk_s3::Client, s3control: aws_sdk_s3control::Client) -> Self {
        Self {
            s3,
            s3control,
            regions: BucketRegions::default(),
        }
    }
}

/// A manifest.json larger than this is refused before it is read: S3 Inventory's lists about
/// 200 bytes per data file, so 16 MiB is some 80,000 data files, far beyond a billion-object
/// inventory's; and it keeps a 256 MB function's memory safe from a planted giant.
pub const MAX_MANIFEST_JSON_BYTES: i64 = 16 * 1024 * 1024;

impl LaunchApi for AwsLaunchApi {
    async fn head_manifest(&self, bucket: &str, key: &str) -> Result<ManifestHead, AwsCallError> {
        let (result, elsewhere) = self
            .regions
            .call(&self.s3, bucket, |s3| async move {
                s3.head_object().bucket(bucket).key(key).send().await
            })
            .await;
        match result {
            // The Region the answer came from, for the launcher to compare with the spec's.
            Ok(head) => Ok(ManifestHead {
                etag: head.e_tag().unwrap_or_default().to_string(),
                bucket_region: elsewhere,
                version_id: head.version_id().map(str::to_string),
                size: head.content_length().and_then(|n| u64::try_from(n).ok()),
                last_modified: head
                    .last_modified()
                    .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
            }),
            Err(err) => {
                let mut call_error = classify(&err);
                if let Some(region) = bucket_region_of(&err) {
                    if matches!(call_error.kind, AwsErrorKind::WrongRegion) {
                        // Reported as a success-with-region so the launcher names the region.
                        return Ok(ManifestHead {
                            bucket_region: Some(region),
                            ..ManifestHead::default()
                        });
                    }
                    call_error
                        .message
                        .push_str(&format!(" (bucket region: {region})"));
                }
                Err(call_error)
            }
        }
    }

    async fn get_manifest(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<Vec<u8>, AwsCallError> {
        // If-Match: the bytes read are the ones whose ETag the job is given.
        let quoted = ferry_flows::job_manifest::if_match(etag);
        let (result, _) = self
            .regions
            .call(&self.s3, bucket, |s3| {
                let quoted = quoted.clone();
                async move {
                    s3.get_object()
                        .bucket(bucket)
                        .key(key)
                        .if_match(quoted)
                        .send()
                        .await
                }
            })
            .await;
        let out = result.map_err(|e| classify(&e))?;
        if out.content_length().unwrap_or(0) > MAX_MANIFEST_JSON_BYTES {
            return Err(AwsCallError {
                kind: AwsErrorKind::BadRequest,
                code: "ManifestTooLarge".to_string(),
                message: format!(
                    "s3://{bucket}/{key} is {} bytes; an inventory manifest.json is at most {MAX_MANIFEST_JSON_BYTES}",
                    out.content_length().unwrap_or(0)
                ),
            });
        }
        let bytes = out.body.collect().await.map_err(|e| AwsCallError {
            kind: AwsErrorKind::Transient,
            code: "ReadError".to_string(),
            message: e.to_string(),
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn create_job(&self, request: &CreateJobRequest) -> Result<String, AwsCallError> {
        let call = fill(self.s3control.create_job(), request).map_err(|e| AwsCallError {
            kind: AwsErrorKind::BadRequest,
            code: "InvalidCreateJobRequest".to_string(),
            message: e.to_string(),
        })?;
        let output = call.send().await.map_err(|e| classify(&e))?;
        output
            .job_id()
            .map(str::to_string)
            .ok_or_else(|| AwsCallError {
                kind: AwsErrorKind::Other,
                code: "MissingJobId".to_string(),
                message: "CreateJob answered without a JobId".to_string(),
            })
    }

    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
