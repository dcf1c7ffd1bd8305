//! [`InventoryObjects`] with the SDK: inventory objects streamed to and from local files, so
//! memory stays bounded whatever the size of a data file or of Ferry's manifests.
//!
//! Uploads above [`MULTIPART_THRESHOLD`] go in parts: a CSV manifest of 100 M objects is several
//! GB, over PutObject's 5 GiB limit.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::inventory::fanout_records::FanOutEngine;
use ferry_flows::inventory::run::{InventoryObjects, SmallObject, OBJECT_TOO_LARGE};
use ferry_flows::ports::BucketEventDelivery;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::errors::classify;
use crate::ports::AwsPorts;
pub use crate::small_object::MAX_SMALL_OBJECT_BYTES;
use crate::small_object::{read_error, whole_or_none};

/// Files larger than this are uploaded in parts of [`PART_BYTES`].
pub const MULTIPART_THRESHOLD: u64 = 256 * 1024 * 1024;
/// 128 MiB parts: 10,000 parts cover 1.2 TiB, far beyond any manifest.
pub const PART_BYTES: usize = 128 * 1024 * 1024;

fn local_error(what: &str, path: &Path, e: impl std::fmt::Display) -> AwsCallError {
    AwsCallError {
        kind: AwsErrorKind::Transient,
        code: "LocalFileError".to_string(),
        message: format!("{what} {}: {e}", path.display()),
    }
}

/// Step Functions StartExecution (API Reference, StartExecution:
/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>;
/// `name` 1–80 characters, `input` JSON up to 256 KiB).
impl FanOutEngine for AwsPorts {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, AwsCallError> {
        let out = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out.execution_arn().to_string())
    }

    /// DescribeExecution (API Reference: `status` is one of RUNNING, SUCCEEDED, FAILED,
    /// TIMED_OUT, ABORTED, PENDING_REDRIVE).
    async fn execution_status(&self, execution_arn: &str) -> Result<String, AwsCallError> {
        let out = self
            .sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out.status().as_str().to_string())
    }
}

impl InventoryObjects for AwsPorts {
    // The inventory bucket is in the source bucket's Region, which may not be the function's:
    // every call goes through `regions`, which follows S3's redirect there (regions.rs).
    async fn get_small(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<SmallObject>, AwsCallError> {
        let launch = &self.launch;
        let (result, _) = launch
            .regions
            .call(&launch.s3, bucket, |s3| async move {
                s3.get_object().bucket(bucket).key(key).send().await
            })
            .await;
        whole_or_none(result, Some(MAX_SMALL_OBJECT_BYTES)).await
    }

    async fn download(
        &self,
        bucket: &str,
        key: &str,
        to: &Path,
        max_bytes: u64,
    ) -> Result<u64, AwsCallError> {
        let launch = &self.launch;
        let (result, _) = launch
            .regions
            .call(&launch.s3, bucket, |s3| async move {
                s3.get_object().bucket(bucket).key(key).send().await
            })
            .await;
        let out = result.map_err(|e| classify(&e))?;
        let over = |size: String| AwsCallError {
            kind: AwsErrorKind::Other,
            code: OBJECT_TOO_LARGE.to_string(),
            message: format!("the object is {size} bytes, more than the {max_bytes} expected"),
        };
        if let Some(length) = out.content_length().filter(|l| *l as u64 > max_bytes) {
            return Err(over(length.to_string()));
        }
        let mut file = tokio::fs::File::create(to)
            .await
            .map_err(|e| local_error("creating", to, e))?;
        let mut body = out.body;
        let mut written = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(read_error)? {
            if written + chunk.len() as u64 > max_bytes {
                return Err(over(format!("more than {}", written + chunk.len() as u64)));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| local_error("writing", to, e))?;
            written += chunk.len() as u64;
        }
        file.flush()
            .await
            .map_err(|e| local_error("writing", to, e))?;
        Ok(written)
    }

    async fn upload(&self, bucket: &str, key: &str, from: &Path) -> Result<String, AwsCallError> {
        let size = tokio::fs::metadata(from)
            .await
            .map_err(|e| local_error("reading", from, e))?
            .len();
        if size > MULTIPART_THRESHOLD {
            return self.upload_in_parts(bucket, key, from).await;
        }
        // SSE-S3 whatever the bucket's default: Batch Operations can't read a CSV manifest
        // stored with SSE-KMS (S3 User Guide, "Creating an S3 Batch Operations job", Manifest:
        // https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-create-job.html), and
        // the inventory bucket's default may well be the inventory's KMS key.
        let launch = &self.launch;
        let (result, _) = launch
            .regions
            .call(&launch.s3, bucket, |s3| async move {
                // A body per attempt: a redirected request is sent again from the start.
                let body = match ByteStream::from_path(from).await {
                    Ok(body) => body,
                    Err(e) => return Ok(Err(local_error("reading", from, e))),
                };
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_type("text/csv")
                    .server_side_encryption(ServerSideEncryption::Aes256)
                    .body(body)
                    .send()
                    .await
                    .map(Ok)
            })
            .await;
        let out = result.map_err(|e| classify(&e))??;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }
}

impl BucketEventDelivery for AwsPorts {
    async fn enable_eventbridge_delivery(
        &self,
        bucket: &str,
        expected_owner: &str,
    ) -> Result<bool, AwsCallError> {
        enable_eventbridge_delivery(self.s3(), bucket, expected_owner).await
    }
}

impl AwsPorts {
    async fn upload_in_parts(
        &self,
        bucket: &str,
        key: &str,
        from: &Path,
    ) -> Result<String, AwsCallError> {
        let launch = &self.launch;
        let (created, _) = launch
            .regions
            .call(&launch.s3, bucket, |s3| async move {
                s3.create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .content_type("text/csv")
                    // SSE-S3, as in `upload`.
                    .server_side_encryption(ServerSideEncryption::Aes256)
                    .send()
                    .await
            })
            .await;
        let created = created.map_err(|e| classify(&e))?;
        // The Region is known now: the parts go to a client of it.
        let s3 = &launch.regions.client_for(&launch.s3, bucket);
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result = async {
            let mut file = tokio::fs::File::open(from)
                .await
                .map_err(|e| local_error("reading", from, e))?;
            let mut parts = Vec::new();
            let mut number = 1;
            loop {
                let mut buf = Vec::with_capacity(PART_BYTES);
                (&mut file)
                    .take(PART_BYTES as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| local_error("reading", from, e))?;
                if buf.is_empty() {
                    break;
                }
                let part = s3
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(buf))
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_string))
                        .build(),
                );
                number += 1;
            }
            let done = s3
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(&e))?;
            Ok(done.e_tag().unwrap_or_default().to_string())
        }
        .await;
        if result.is_err() {
            // Parts of an abandoned upload are billed until aborted.
            let _ = s3
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

/// Turns on EventBridge delivery for `bucket` without touching its other notification settings:
/// GetBucketNotificationConfiguration, add `EventBridgeConfiguration`, put back everything that
/// was there (topic, queue and Lambda configurations as read). Returns `false` when it was on
/// already (nothing written).
pub async fn enable_eventbridge_delivery(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    expected_owner: &str,
) -> Result<bool, AwsCallError> {
    let current = s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .expected_bucket_owner(expected_owner)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    if current.event_bridge_configuration().is_some() {
        return Ok(false);
    }
    let config = aws_sdk_s3::types::NotificationConfiguration::builder()
        .set_topic_configurations(Some(current.topic_configurations().to_vec()))
        .set_queue_configurations(Some(current.queue_configurations().to_vec()))
        .set_lambda_function_configurations(Some(current.lambda_function_configurations().to_vec()))
        .event_bridge_configuration(aws_sdk_s3::types::EventBridgeConfiguration::builder().build())
        .build();
    // The bucket's other destinations are written back as they are; S3 would re-validate each
    // (a test message to every topic, queue and function) and refuse the whole configuration
    // if one went stale, rolling the stack back over something Ferry didn't add.
    // SkipDestinationValidation turns that off (S3 API Reference,
    // PutBucketNotificationConfiguration, x-amz-skip-destination-validation:
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketNotificationConfiguration.html).
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .expected_bucket_owner(expected_owner)
        .skip_destination_validation(true)
        .notification_configuration(config)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    Ok(true)
}
