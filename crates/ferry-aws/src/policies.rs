//! [`ResourcePolicies`] with the SDK: bucket policies through S3 in each bucket's region, key
//! policies (`default`) through KMS in each key's region.

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::grant::ResourcePolicies;

use crate::errors::classify;

/// The key policy's only valid name.
const KEY_POLICY_NAME: &str = "default";

#[derive(Debug, Clone)]
pub struct AwsResourcePolicies {
    config: aws_config::SdkConfig,
    /// Region of each bucket Ferry edits (S3 answers 301 from any other region).
    bucket_regions: BTreeMap<String, String>,
}

impl AwsResourcePolicies {
    pub fn new(config: aws_config::SdkConfig, bucket_regions: BTreeMap<String, String>) -> Self {
        Self {
            config,
            bucket_regions,
        }
    }

    fn s3_for(&self, bucket: &str) -> aws_sdk_s3::Client {
        s3_in(
            &self.config,
            self.bucket_regions.get(bucket).map(String::as_str),
        )
    }

    fn kms_for(&self, key_arn: &str) -> aws_sdk_kms::Client {
        kms_for_key(&self.config, key_arn)
    }
}

/// An S3 client for `region` (the config's own when `None`): bucket-level calls must go to the
/// bucket's region.
pub fn s3_in(config: &aws_config::SdkConfig, region: Option<&str>) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(config);
    if let Some(region) = region {
        builder = builder.region(aws_sdk_s3::config::Region::new(region.to_string()));
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// A KMS client in the key's own region (from its ARN).
pub fn kms_for_key(config: &aws_config::SdkConfig, key_arn: &str) -> aws_sdk_kms::Client {
    let mut builder = aws_sdk_kms::config::Builder::from(config);
    if let Some(region) = key_arn.split(':').nth(3).filter(|r| !r.is_empty()) {
        builder = builder.region(aws_sdk_kms::config::Region::new(region.to_string()));
    }
    aws_sdk_kms::Client::from_conf(builder.build())
}

impl ResourcePolicies for AwsResourcePolicies {
    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, AwsCallError> {
        match self
            .s3_for(bucket)
            .get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
        {
            // Only NoSuchBucketPolicy means "no policy"; a success without one is a read that
            // went wrong, never an empty policy Ferry's statements would replace (#16 review).
            Ok(out) => match out.policy().filter(|p| !p.trim().is_empty()) {
                Some(policy) => Ok(Some(policy.to_string())),
                None => Err(AwsCallError {
                    kind: AwsErrorKind::Other,
                    code: "MissingBucketPolicy".to_string(),
                    message: format!(
                        "GetBucketPolicy answered for {bucket} without a Policy and without \
                         NoSuchBucketPolicy"
                    ),
                }),
            },
            Err(e) if e.code() == Some("NoSuchBucketPolicy") => Ok(None),
            Err(e) => Err(classify(&e)),
        }
    }

    async fn put_bucket_policy(&self, bucket: &str, policy: &str) -> Result<(), AwsCallError> {
        self.s3_for(bucket)
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn delete_bucket_policy(&self, bucket: &str) -> Result<(), AwsCallError> {
        self.s3_for(bucket)
            .delete_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn key_policy(&self, key_arn: &str) -> Result<String, AwsCallError> {
        let out = self
            .kms_for(key_arn)
            .get_key_policy()
            .key_id(key_arn)
            .policy_name(KEY_POLICY_NAME)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        // KMS API Reference, GetKeyPolicy: `Policy` is the key policy document; every key has
        // one. An answer without it is not an empty policy (#16 item 10).
        out.policy()
            .filter(|p| !p.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| AwsCallError {
                kind: AwsErrorKind::Other,
                code: "MissingKeyPolicy".to_string(),
                message: format!(
                    "GetKeyPolicy answered for {key_arn} without a Policy; every KMS key has one"
                ),
            })
    }

    async fn put_key_policy(&self, key_arn: &str, policy: &str) -> Result<(), AwsCallError> {
        // The lockout safety check stays on: KMS refuses a policy that would lock out the caller.
        self.kms_for(key_arn)
            .put_key_policy()
            .key_id(key_arn)
            .policy_name(KEY_POLICY_NAME)
            .policy(policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}
