//! [`PreflightApi`] with the SDK, using the caller's (destination account's) credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_iam::error::ProvideErrorMetadata;
use ferry_flows::aws_error::AwsCallError;
use ferry_flows::ports::{KeyInfo, LaunchApi, ManifestHead, PreflightApi};
use ferry_plan::job::CreateJobRequest;

use crate::errors::{bucket_region_of, classify};
use crate::launch_api::AwsLaunchApi;
use crate::policies::{kms_for_key, s3_in};
use crate::ports::AwsPorts;

#[derive(Debug, Clone)]
pub struct AwsPreflight {
    config: aws_config::SdkConfig,
    launch: AwsLaunchApi,
    iam: aws_sdk_iam::Client,
    bucket_regions: BTreeMap<String, String>,
}

impl AwsPreflight {
    /// `manifest_region` is where HeadObject on the manifest goes; `bucket_regions` are the
    /// regions the spec names for each bucket.
    pub fn new(
        config: aws_config::SdkConfig,
        manifest_region: &str,
        bucket_regions: BTreeMap<String, String>,
    ) -> Self {
        Self {
            launch: AwsLaunchApi::new(
                s3_in(&config, Some(manifest_region)),
                aws_sdk_s3control::Client::new(&config),
            ),
            iam: aws_sdk_iam::Client::new(&config),
            config,
            bucket_regions,
        }
    }
}

impl LaunchApi for AwsPreflight {
    async fn head_manifest(&self, bucket: &str, key: &str) -> Result<ManifestHead, AwsCallError> {
        self.launch.head_manifest(bucket, key).await
    }
    async fn get_manifest(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<Vec<u8>, AwsCallError> {
        self.launch.get_manifest(bucket, key, etag).await
    }
    async fn create_job(&self, request: &CreateJobRequest) -> Result<String, AwsCallError> {
        self.launch.create_job(request).await
    }
    async fn pause(&self, duration: Duration) {
        self.launch.pause(duration).await
    }
}

impl PreflightApi for AwsPreflight {
    async fn role_documents(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> Result<Option<(String, Option<String>)>, AwsCallError> {
        role_documents(&self.iam, role_name, policy_name).await
    }

    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>, AwsCallError> {
        bucket_region(&self.config, self.region_of(bucket), bucket).await
    }

    async fn object_ownership(&self, bucket: &str) -> Result<Option<String>, AwsCallError> {
        object_ownership(&self.config, self.region_of(bucket), bucket).await
    }

    async fn describe_key(&self, key_arn: &str) -> Result<KeyInfo, AwsCallError> {
        describe_key(&self.config, key_arn).await
    }
}

impl AwsPreflight {
    fn region_of(&self, bucket: &str) -> Option<&str> {
        self.bucket_regions.get(bucket).map(String::as_str)
    }
}

/// The stack's functions run preflight with their own ports. They know no bucket's region in
/// advance: S3 names it (301 or 403 with `x-amz-bucket-region`), and the next call goes there.
impl PreflightApi for AwsPorts {
    async fn role_documents(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> Result<Option<(String, Option<String>)>, AwsCallError> {
        role_documents(&self.iam, role_name, policy_name).await
    }

    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>, AwsCallError> {
        bucket_region(&self.config, None, bucket).await
    }

    async fn object_ownership(&self, bucket: &str) -> Result<Option<String>, AwsCallError> {
        let region = bucket_region(&self.config, None, bucket).await?;
        object_ownership(&self.config, region.as_deref(), bucket).await
    }

    async fn describe_key(&self, key_arn: &str) -> Result<KeyInfo, AwsCallError> {
        describe_key(&self.config, key_arn).await
    }
}

async fn role_documents(
    iam: &aws_sdk_iam::Client,
    role_name: &str,
    policy_name: &str,
) -> Result<Option<(String, Option<String>)>, AwsCallError> {
    let role = match iam.get_role().role_name(role_name).send().await {
        Ok(out) => out,
        Err(e) if e.code() == Some("NoSuchEntity") => return Ok(None),
        Err(e) => return Err(classify(&e)),
    };
    let trust = role
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .map(url_decoded)
        .unwrap_or_default();
    let permissions = match iam
        .get_role_policy()
        .role_name(role_name)
        .policy_name(policy_name)
        .send()
        .await
    {
        Ok(out) => Some(url_decoded(out.policy_document())),
        Err(e) if e.code() == Some("NoSuchEntity") => None,
        Err(e) => return Err(classify(&e)),
    };
    Ok(Some((trust, permissions)))
}

async fn bucket_region(
    config: &aws_config::SdkConfig,
    region_hint: Option<&str>,
    bucket: &str,
) -> Result<Option<String>, AwsCallError> {
    let s3 = s3_in(config, region_hint);
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(out) => Ok(out.bucket_region().map(str::to_string)),
        Err(e) => match bucket_region_of(&e) {
            // S3 names the region even when it refuses (403) or redirects (301).
            Some(region) => Ok(Some(region)),
            None => Err(classify(&e)),
        },
    }
}

async fn object_ownership(
    config: &aws_config::SdkConfig,
    region: Option<&str>,
    bucket: &str,
) -> Result<Option<String>, AwsCallError> {
    match s3_in(config, region)
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .ownership_controls()
            .and_then(|c| c.rules().first())
            .map(|r| r.object_ownership().as_str().to_string())),
        Err(e) if e.code() == Some("OwnershipControlsNotFoundError") => Ok(None),
        Err(e) => Err(classify(&e)),
    }
}

async fn describe_key(
    config: &aws_config::SdkConfig,
    key_arn: &str,
) -> Result<KeyInfo, AwsCallError> {
    let out = kms_for_key(config, key_arn)
        .describe_key()
        .key_id(key_arn)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let meta = out.key_metadata();
    Ok(KeyInfo {
        enabled: meta.is_some_and(|m| m.enabled()),
        manager: meta
            .and_then(|m| m.key_manager())
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
    })
}

/// IAM returns policy documents URL-encoded (RFC 3986); moto returns them plain.
fn url_decoded(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_string();
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}
