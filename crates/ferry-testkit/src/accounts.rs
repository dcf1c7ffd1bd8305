//! Small set-up steps every end-to-end test repeats, done as an account's administrator: a
//! customer managed KMS key, a bucket whose default encryption is SSE-KMS, a bucket with ACLs
//! disabled (BucketOwnerEnforced), and a stand-in for
//! S3 Control's CreateJob that records each request and answers the id S3 Control would.

use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_s3::types::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use aws_sdk_s3control::operation::create_job::{CreateJobInput, CreateJobOutput};
use aws_smithy_mocks::{mock, Rule};

use crate::inventory::md5_hex;

/// A new customer managed key of `config`'s account; its ARN.
pub async fn kms_key(config: &SdkConfig) -> String {
    aws_sdk_kms::Client::new(config)
        .create_key()
        .send()
        .await
        .expect("kms:CreateKey")
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("a key ARN")
        .to_string()
}

/// Makes `key_arn` the default encryption of `bucket` (SSE-KMS).
pub async fn default_kms_encryption(s3: &aws_sdk_s3::Client, bucket: &str, key_arn: &str) {
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(key_arn)
        .build()
        .expect("encryption by default");
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(by_default)
        .build();
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .expect("encryption configuration"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3:PutBucketEncryption {bucket}: {e:?}"));
}

/// Object ownership `BucketOwnerEnforced` (ACLs disabled) on `bucket`, the setting preflight
/// expects of a destination.
pub async fn bucket_owner_enforced(s3: &aws_sdk_s3::Client, bucket: &str) {
    use aws_sdk_s3::types::{ObjectOwnership, OwnershipControls, OwnershipControlsRule};
    let rule = OwnershipControlsRule::builder()
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .build()
        .expect("ownership rule");
    s3.put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(
            OwnershipControls::builder()
                .rules(rule)
                .build()
                .expect("ownership controls"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3:PutBucketOwnershipControls {bucket}: {e:?}"));
}

/// CreateJob requests the code sent, in order.
pub type SentJobs = Arc<Mutex<Vec<CreateJobInput>>>;

/// A CreateJob rule for aws-smithy-mocks that records every request and answers the job id S3
/// Control would give it (one per client request token, [`job_id_for`]), so the emulator's job
/// and the code's record agree.
pub fn create_job_recorder() -> (Rule, SentJobs) {
    let sent: SentJobs = Arc::default();
    let recorder = sent.clone();
    let rule = mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(move |input| {
            recorder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(input.clone());
            true
        })
        .then_compute_output(|input| CreateJobOutput::builder().job_id(job_id_for(input)).build());
    (rule, sent)
}

/// The id S3 Control answers for `input`: one per client request token (and role), as
/// CreateJob is idempotent on the token; a mocked CreateJob can answer the same id.
pub fn job_id_for(input: &CreateJobInput) -> String {
    let token = input.client_request_token().unwrap_or_default();
    let digest = md5_hex(format!("{token}:{}", input.role_arn().unwrap_or_default()).as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &digest[..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    )
}
