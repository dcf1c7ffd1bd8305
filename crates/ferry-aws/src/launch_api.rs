//! [`LaunchApi`] with the AWS SDK: HeadObject on the manifest, CreateJob in the job region.

use std::time::Duration;

use ferry_core::job::CreateJobRequest;
use ferry_core::launch::{AwsCallError, AwsErrorKind, LaunchApi, ManifestHead};

use crate::create_job::fill;
use crate::errors::{bucket_region_of, classify};

#[derive(Debug, Clone)]
pub struct AwsLaunchApi {
    /// A client for the manifest bucket's region.
    pub s3: aws_sdk_s3::Client,
    /// A client for the job region (the destination region).
    pub s3control: aws_sdk_s3control::Client,
}

impl LaunchApi for AwsLaunchApi {
    async fn head_manifest(&self, bucket: &str, key: &str) -> Result<ManifestHead, AwsCallError> {
        match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(head) => Ok(ManifestHead {
                etag: head.e_tag().unwrap_or_default().to_string(),
                bucket_region: None,
            }),
            Err(err) => {
                let mut call_error = classify(&err);
                if let Some(region) = bucket_region_of(&err) {
                    if matches!(call_error.kind, AwsErrorKind::WrongRegion { .. }) {
                        // Reported as a success-with-region so the launcher names the region.
                        return Ok(ManifestHead {
                            etag: String::new(),
                            bucket_region: Some(region),
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
