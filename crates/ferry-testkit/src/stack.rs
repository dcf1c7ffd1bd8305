//! The stack around an end-to-end test, as CloudFormation deploys it in the destination account
//! and as people use it:
//! - [`transfer_plan_properties`]: the properties the template hands `Custom::FerryTransferPlan`
//!   for a parameter set (parameter constraints checked, defaults filled in, as CloudFormation);
//! - [`create_bucket`]: a bucket in its Region, [`enable_versioning`]; [`deploy_stack_resources`]: the stack's state
//!   bucket and topics, with an [`Inbox`] on the notification topic; [`apply_topic_policies`]:
//!   the topics' policies as the template writes them;
//! - what the instructions e-mail tells people to do: the spec to save ([`spec_in_email`]) and
//!   the `ferry grant` steps, each for one account ([`grant_steps_in_email`]), run with that
//!   account's administrator ([`point_command_as`]);
//! - the CloudFormation stack itself ([`deploy_cloudformation_stack`]), whose id stack-handler
//!   pins and asks `DescribeStacks` about, and the status the gateway reports for it
//!   ([`set_stack_status`]: moto completes every stack operation at once).

use std::path::Path;
use std::process::Command;

use aws_config::SdkConfig;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    VersioningConfiguration,
};
use serde_json::Value;

pub use crate::cloudformation::{
    deploy_cloudformation_stack, set_stack_status, STACK_STATUS_IN_OPERATION,
};
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
    apply_state_bucket_allows(config, role).await;
    let sns = aws_sdk_sns::Client::new(config);
    for topic in [&role.notification_topic_arn, &role.approval_topic_arn] {
        sns.create_topic()
            .name(topic.rsplit(':').next().unwrap_or_default())
            .send()
            .await
            .unwrap_or_else(|e| panic!("sns:CreateTopic {topic}: {e:?}"));
    }
    // The batch role's permissions boundary, a managed policy of the stack (stack-handler may
    // only create the role with it).
    if let (Some(arn), Some(document)) = (
        role.batch_role_boundary["arn"].as_str(),
        role.batch_role_boundary.get("document"),
    ) {
        let name = arn.rsplit('/').next().unwrap_or_default();
        let created = aws_sdk_iam::Client::new(config)
            .create_policy()
            .policy_name(name)
            .policy_document(document.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("iam:CreatePolicy {name}: {e:?}"));
        let made = created.policy().and_then(|p| p.arn()).unwrap_or_default();
        assert_eq!(
            made, arn,
            "moto names the boundary policy as the template model does"
        );
    }
    Inbox::subscribe(config, &role.notification_topic_arn, "people").await
}

/// Sets the Allow statements of the template's `StateBucketPolicy` (`role`'s deployment) on the
/// state bucket, as CloudFormation would: the batch role reads Ferry's manifests there by that
/// policy alone, so the gateway and the Batch Operations emulator hold it to exactly that.
/// moto applies a bucket policy's Deny statements itself, ignoring their conditions, so the
/// template's Denies (TLS only; only the stack writes state) would refuse every request: they
/// are proved with iam-simulate instead (tests/iam, "the state bucket is written only by the
/// stack").
pub async fn apply_state_bucket_allows(config: &SdkConfig, role: &FunctionRole) {
    let mut policy = role.state_bucket_policy.clone();
    if let Some(Value::Array(statements)) = policy.get_mut("Statement") {
        statements.retain(|st| st["Effect"] == "Allow");
    }
    aws_sdk_s3::Client::new(config)
        .put_bucket_policy()
        .bucket(&role.state_bucket)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3:PutBucketPolicy {}: {e:?}", role.state_bucket));
}

/// Sets the template's topic policies (`role`'s deployment: who may publish, subscribe and
/// change each topic) on the topics [`deploy_stack_resources`] created, as the account's
/// administrator (`config`) and so as CloudFormation would. The gateway then holds every other
/// caller to them.
pub async fn apply_topic_policies(config: &SdkConfig, role: &FunctionRole) {
    let sns = aws_sdk_sns::Client::new(config);
    for (topic, policy) in role
        .topic_policies
        .as_object()
        .expect("topic policies of the template")
    {
        sns.set_topic_attributes()
            .topic_arn(topic)
            .attribute_name("Policy")
            .attribute_value(policy.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("sns:SetTopicAttributes Policy {topic}: {e:?}"));
    }
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

/// The pins stack-handler's environment holds for a stack `stack_id` whose TransferPlan has
/// `transfer_plan` as properties and whose FirstJob has `first_job` (as the template sets
/// `FERRY_PIN_<Property>` beside each property it pins).
pub fn stack_pins_for(
    stack_id: &str,
    transfer_plan: &Value,
    first_job: &Value,
) -> ferry_flows::stack_pins::StackPins {
    use ferry_flows::stack_pins::{
        StackPins, PINNED_FIRST_JOB_PROPERTIES, PINNED_TRANSFER_PLAN_PROPERTIES, PIN_PREFIX,
        STACK_ID_VARIABLE,
    };
    let text = |props: &Value, name: &str| props[name].as_str().unwrap_or_default().to_string();
    let mut vars = vec![(STACK_ID_VARIABLE.to_string(), stack_id.to_string())];
    for name in PINNED_TRANSFER_PLAN_PROPERTIES {
        vars.push((format!("{PIN_PREFIX}{name}"), text(transfer_plan, name)));
    }
    for name in PINNED_FIRST_JOB_PROPERTIES {
        vars.push((format!("{PIN_PREFIX}{name}"), text(first_job, name)));
    }
    StackPins::from_environment(vars).expect("every pin is set")
}

/// stack-handler's pins read from a function environment as the template sets it
/// ([`crate::FunctionRole::environment`]), with `stack_id` for `AWS::StackId`.
pub fn stack_pins_from_environment(
    environment: &Value,
    stack_id: &str,
) -> ferry_flows::stack_pins::StackPins {
    let mut vars: Vec<(String, String)> = environment
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    vars.retain(|(k, _)| k != ferry_flows::stack_pins::STACK_ID_VARIABLE);
    vars.push((
        ferry_flows::stack_pins::STACK_ID_VARIABLE.to_string(),
        stack_id.to_string(),
    ));
    ferry_flows::stack_pins::StackPins::from_environment(vars)
        .unwrap_or_else(|e| panic!("the template's stack-handler environment: {e}"))
}

/// Where the catcher's local URLs may be PUT to: plain HTTP to 127.0.0.1 (CloudFormation's
/// and the WaitCondition's presigned URLs stand in for it in tests).
pub fn local_presigned_urls() -> ferry_aws::http::PresignedUrlRule {
    ferry_aws::http::PresignedUrlRule {
        schemes: vec!["http".to_string()],
        host_suffixes: vec!["127.0.0.1".to_string()],
        s3_endpoints_only: false,
    }
}

/// A role of the template that no function runs as (the fan-out state machine's
/// `InventoryFanOutRole`), deployed on moto as the stack would deploy it, with a session of it:
/// a test then makes that service's calls (say, the Distributed Map's `ItemReader` reads) as the
/// role, and the gateway refuses any call the template's role would be denied. The counterpart
/// of [`FunctionRole::deploy`] for roles `tests/iam/sam-roles.mjs` `templateRole` builds (its
/// inline, managed and attached policies), in the same modelled stack ([`STACK_NAME`]).
pub struct TemplateRole {
    pub role_name: String,
    pub role_arn: String,
    /// The role's `AssumeRolePolicyDocument`, resolved (moto holds it; the testkit's
    /// administrator assumes the role in the service's stead).
    pub trust_policy: Value,
    /// `[{"name", "document"}]`: its identity policies as deployed (each put inline).
    pub policies: Value,
    /// An SDK config acting as a session of the role (as the service acts with it).
    pub config: SdkConfig,
}

/// The node script behind [`TemplateRole::deploy`] and [`resolve_in_stack`]: the template read
/// with `tests/iam/cfn.mjs`, resolved for one deployment; prints `{"role"?, "resolved"}`.
const TEMPLATE_ROLE_SCRIPT: &str = r#"
import { pathToFileURL } from 'node:url'
const { loadTemplate, Resolver } = await import(pathToFileURL(process.env.FERRY_CFN_MJS).href)
const { samRoleResources, templateRole } = await import(pathToFileURL(process.env.FERRY_SAM_ROLES_MJS).href)
const template = loadTemplate(process.env.FERRY_TEMPLATE_PATH)
const env = { account: process.env.FERRY_ACCOUNT, region: process.env.FERRY_REGION, stackName: process.env.FERRY_STACK_NAME }
if (process.env.FERRY_STACK_ID) env.stackId = process.env.FERRY_STACK_ID
const resolver = new Resolver(template, JSON.parse(process.env.FERRY_PARAMETERS), env, samRoleResources(template))
const out = { resolved: resolver.resolve(JSON.parse(process.env.FERRY_RESOLVE)) }
const id = process.env.FERRY_ROLE_ID
if (id) {
  if (!resolver.exists(id)) throw new Error(`${id} is not a resource of the template in this parameter set`)
  const role = templateRole(template, resolver, id)
  out.role = { roleName: resolver.ref(id), roleArn: role.roleArn, trustPolicy: role.trustPolicy,
    policies: role.policies.map((p, i) => ({ name: `policy-${i}`, source: p.name, document: p.policy })) }
}
process.stdout.write(JSON.stringify(out))
"#;

fn run_template_role_script(
    role_id: &str,
    account: &str,
    region: &str,
    parameters: &Value,
    stack_id: Option<&str>,
    resolve: &Value,
) -> Value {
    let root = workspace_root();
    let template = std::env::var("FERRY_TEMPLATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("template.yaml"));
    let node = std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(&node)
        .args(["--input-type=module", "-e", TEMPLATE_ROLE_SCRIPT])
        .env("FERRY_CFN_MJS", root.join("tests/iam/cfn.mjs"))
        .env("FERRY_SAM_ROLES_MJS", root.join("tests/iam/sam-roles.mjs"))
        .env("FERRY_TEMPLATE_PATH", &template)
        .env("FERRY_ROLE_ID", role_id)
        .env("FERRY_ACCOUNT", account)
        .env("FERRY_REGION", region)
        .env("FERRY_STACK_NAME", STACK_NAME)
        .env("FERRY_STACK_ID", stack_id.unwrap_or_default())
        .env("FERRY_PARAMETERS", parameters.to_string())
        .env("FERRY_RESOLVE", resolve.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {node} (Node.js reads the template): {e}"));
    if !out.status.success() {
        panic!(
            "reading {} with tests/iam/cfn.mjs failed (run `bash tests/iam/run.sh --install-only` first): {}",
            template.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).expect("the template reader's JSON")
}

/// `value` (CloudFormation intrinsics in long form, e.g. a state machine's
/// `DefinitionSubstitutions` as [`crate::stepfunctions::TemplateStateMachine`] holds them)
/// resolved in the deployment [`FunctionRole::deploy`] models: stack [`STACK_NAME`] in
/// `account`/`region` with `parameters`, `AWS::StackId` = `stack_id`. Panics with the reason
/// (an intrinsic the model can't resolve, a resource absent in this parameter set).
pub fn resolve_in_stack(
    account: &str,
    region: &str,
    parameters: &Value,
    stack_id: &str,
    value: &Value,
) -> Value {
    run_template_role_script("", account, region, parameters, Some(stack_id), value)["resolved"]
        .clone()
}

impl TemplateRole {
    /// Deploys the template's role `role_id` (an `AWS::IAM::Role` no function uses) for a stack
    /// in `account`/`region` with `parameters` (the template's, as JSON strings), as
    /// [`FunctionRole::deploy`] deploys a function's, and assumes it. Panics with the reason:
    /// this is set-up.
    pub async fn deploy(
        moto: &MotoServer,
        role_id: &str,
        account: &str,
        region: &str,
        parameters: &Value,
    ) -> TemplateRole {
        let admin = moto.sdk_config_for_account(account, region).await;
        let stack_id = deploy_cloudformation_stack(moto, &admin, STACK_NAME).await;
        let found = run_template_role_script(
            role_id,
            account,
            region,
            parameters,
            Some(&stack_id),
            &Value::Null,
        );
        let role = &found["role"];
        let text = |k: &str| role[k].as_str().unwrap_or_default().to_string();
        let (role_name, role_arn) = (text("roleName"), text("roleArn"));
        let iam = aws_sdk_iam::Client::new(&admin);
        iam.create_role()
            .role_name(&role_name)
            .assume_role_policy_document(role["trustPolicy"].to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("iam:CreateRole {role_name}: {e:?}"));
        for policy in role["policies"].as_array().cloned().unwrap_or_default() {
            let name = policy["name"].as_str().unwrap_or("policy");
            iam.put_role_policy()
                .role_name(&role_name)
                .policy_name(name)
                .policy_document(policy["document"].to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("iam:PutRolePolicy {role_name} {name}: {e:?}"));
        }
        // The service assumes the role; the testkit's administrator stands in for it.
        let session = aws_sdk_sts::Client::new(&moto.sdk_config(region).await)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(role_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("sts:AssumeRole {role_arn}: {e:?}"));
        let c = session.credentials().expect("credentials");
        let credentials = aws_sdk_s3::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "ferry-template-role",
        );
        TemplateRole {
            config: moto.sdk_config_with(credentials, region).await,
            role_name,
            role_arn,
            trust_policy: role["trustPolicy"].clone(),
            policies: role["policies"].clone(),
        }
    }
}
