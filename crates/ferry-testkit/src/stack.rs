//! The stack around an end-to-end test, as CloudFormation deploys it in the destination account
//! and as people use it:
//! - [`transfer_plan_properties`]: the properties the template hands `Custom::FerryTransferPlan`
//!   for a parameter set (parameter constraints checked, defaults filled in, as CloudFormation);
//! - [`create_bucket`]: a bucket in its Region, [`enable_versioning`]; [`deploy_stack_resources`]: the stack's state
//!   bucket and topics, with an [`Inbox`] on the notification topic;
//! - what the instructions e-mail tells people to do: the spec to save ([`spec_in_email`]) and
//!   the `ferry grant` steps, each for one account ([`grant_steps_in_email`]), run with that
//!   account's administrator ([`point_command_as`]).

use std::path::Path;
use std::process::Command;

use aws_config::SdkConfig;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    VersioningConfiguration,
};
use serde_json::Value;

use crate::function_role::{FunctionRole, STACK_NAME};
use crate::inbox::Inbox;
use crate::moto::{s3_client, workspace_root, MotoServer};

/// `Custom::FerryTransferPlan`'s properties in a stack of `account`/`region` deployed with
/// `parameters` (the template's, as strings): `tests/iam/transfer-plan-properties.mjs` resolves
/// the template's `TransferPlan` with them. A parameter the template doesn't declare, or one its
/// `AllowedValues`/`AllowedPattern` refuse, panics, as CloudFormation refuses the stack.
pub fn transfer_plan_properties(account: &str, region: &str, parameters: &Value) -> Value {
    let script = workspace_root().join("tests/iam/transfer-plan-properties.mjs");
    let out = Command::new(std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into()))
        .arg(&script)
        .args([account, region, STACK_NAME])
        .arg(parameters.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
    if !out.status.success() {
        panic!(
            "CloudFormation would refuse these parameters ({}): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).expect("transfer-plan-properties.mjs JSON")
}

/// Creates `bucket` in `region` (a location constraint outside us-east-1, as S3 needs) as the
/// administrator `config` acts for.
pub async fn create_bucket(config: &SdkConfig, bucket: &str, region: &str) {
    let s3 = s3_client(
        &config
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .build(),
    );
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3:CreateBucket {bucket} in {region}: {e:?}"));
}

/// Turns versioning on for `bucket` (as its owner `s3` acts).
pub async fn enable_versioning(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3:PutBucketVersioning {bucket}: {e:?}"));
}

/// The stack's own resources a function role names (`role`, deployed in `config`'s account and
/// Region): the state bucket and both topics. Returns what the people subscribed to the
/// notification topic receive.
pub async fn deploy_stack_resources(config: &SdkConfig, role: &FunctionRole) -> Inbox {
    let region = config.region().expect("a region").to_string();
    create_bucket(config, &role.state_bucket, &region).await;
    let sns = aws_sdk_sns::Client::new(config);
    for topic in [&role.notification_topic_arn, &role.approval_topic_arn] {
        sns.create_topic()
            .name(topic.rsplit(':').next().unwrap_or_default())
            .send()
            .await
            .unwrap_or_else(|e| panic!("sns:CreateTopic {topic}: {e:?}"));
    }
    Inbox::subscribe(config, &role.notification_topic_arn, "people").await
}

/// The spec the instructions e-mail carries at its end, to save for `ferry grant`.
pub fn spec_in_email(mail: &str) -> Option<String> {
    let rest = mail.split("```toml\n").nth(1)?;
    rest.split("```").next().map(str::to_string)
}

/// A `ferry grant` step of the instructions e-mail: the side (`source` or `destination`) and
/// the account whose credentials it is run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantStep {
    pub side: String,
    pub account_id: String,
}

/// The e-mail's "add Ferry's statements to resource policies (<side> account <id>)" steps, in
/// the e-mail's order.
pub fn grant_steps_in_email(mail: &str) -> Vec<GrantStep> {
    const TITLE: &str = "add Ferry's statements to resource policies (";
    mail.lines()
        .filter(|l| l.starts_with("## Step "))
        .filter_map(|l| l.split(TITLE).nth(1))
        .filter_map(|rest| {
            let inside = rest.split(')').next()?;
            let (side, account) = inside.split_once(" account ")?;
            Some(GrantStep {
                side: side.to_string(),
                account_id: account.trim().to_string(),
            })
        })
        .collect()
}

/// Points `command` at `moto` (as [`MotoServer::point_command`]) with the credentials of
/// `account`'s administrator (a session of its `ferry-test` role), as a person of that account
/// runs it.
pub async fn point_command_as<'c>(
    moto: &MotoServer,
    command: &'c mut Command,
    home: &Path,
    account: &str,
    region: &str,
) -> &'c mut Command {
    let config = moto.sdk_config_for_account(account, region).await;
    let credentials = config
        .credentials_provider()
        .expect("credentials")
        .provide_credentials()
        .await
        .expect("the administrator's credentials");
    moto.point_command(command, home, region)
        .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
        .env(
            "AWS_SESSION_TOKEN",
            credentials.session_token().unwrap_or_default(),
        )
}
