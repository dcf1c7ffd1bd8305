//! A stack function's execution role, deployed on the moto server as the stack would deploy it,
//! and credentials of a session of it: a test then runs the function's code as that role, and
//! the authorizing gateway refuses any call the template's role would be denied on AWS.
//!
//! The role's documents come from `tests/iam/function-role.mjs` (the model of the SAM transform
//! the function-role proofs use, `tests/iam/sam-roles.mjs`), resolved for one deployment; the
//! stack's own resources are named as that model names them, so the test creates them with
//! [`FunctionRole::state_bucket`] and [`FunctionRole::notification_topic_arn`].

use std::process::Command;

use aws_config::SdkConfig;
use aws_sdk_s3::config::Credentials;
use serde_json::Value;

use crate::moto::{workspace_root, MotoServer};
use crate::s3control::harness_call;

/// The stack name every deployment here uses (it names the fake physical resources).
pub const STACK_NAME: &str = "ferry-e2e";

/// A function's role, created on moto, with a session of it.
pub struct FunctionRole {
    pub role_arn: String,
    /// The stack's id (`AWS::StackId`): a CloudFormation stack [`STACK_NAME`] made on moto in
    /// the role's account and Region ([`crate::cloudformation::deploy_cloudformation_stack`]; one per
    /// account and Region, shared by every role deployed there), reported in an operation.
    pub stack_id: String,
    /// An SDK config acting as a session of the role (as Lambda runs the function).
    pub config: SdkConfig,
    pub state_bucket: String,
    pub notification_topic_arn: String,
    pub approval_topic_arn: String,
    /// The stack's `StateBucketPolicy` document, resolved for this deployment.
    pub state_bucket_policy: Value,
    /// The stack's topic policies, resolved for this deployment: topic ARN → document
    /// ([`crate::stack::apply_topic_policies`] sets them on moto).
    pub topic_policies: Value,
    /// The function's environment variables as the template sets them (Globals', then its own).
    pub environment: Value,
    /// The stack's BatchRoleBoundary, `{arn, document}`, resolved for this deployment.
    pub batch_role_boundary: Value,
}

impl FunctionRole {
    /// One environment variable as the template sets it; `None` when absent or empty.
    pub fn env(&self, name: &str) -> Option<String> {
        self.environment[name]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }
}

impl FunctionRole {
    /// Deploys `function_id`'s role for a stack in `account`/`region` with `parameters` (the
    /// template's, as JSON strings) and assumes it. Panics with the reason: this is set-up.
    pub async fn deploy(
        moto: &MotoServer,
        function_id: &str,
        account: &str,
        region: &str,
        parameters: &Value,
    ) -> FunctionRole {
        let admin = moto.sdk_config_for_account(account, region).await;
        let stack_id =
            crate::cloudformation::deploy_cloudformation_stack(moto, &admin, STACK_NAME).await;
        let script = workspace_root().join("tests/iam/function-role.mjs");
        let out = Command::new(std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into()))
            .arg(&script)
            .args([function_id, account, region, STACK_NAME])
            .arg(parameters.to_string())
            .arg(&stack_id)
            .output()
            .unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
        if !out.status.success() {
            panic!(
                "{} failed (run `bash tests/iam/run.sh --install-only` first): {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let role: Value = serde_json::from_slice(&out.stdout).expect("function-role.mjs JSON");
        let text = |k: &str| role[k].as_str().unwrap_or_default().to_string();
        let (role_name, role_arn) = (text("roleName"), text("roleArn"));

        let iam = aws_sdk_iam::Client::new(&admin);
        let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        iam.create_role()
            .role_name(&role_name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("iam:CreateRole {role_name}: {e:?}"));
        for policy in role["policies"].as_array().cloned().unwrap_or_default() {
            let name = policy["name"].as_str().unwrap_or("policy");
            let held = without_job_arns(&policy["document"]);
            iam.put_role_policy()
                .role_name(&role_name)
                .policy_name(name)
                .policy_document(held.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("iam:PutRolePolicy {role_name} {name}: {e:?}"));
            // The gateway decides with the whole document, job ARNs included.
            if held != policy["document"] && moto.authorizes() {
                let path = format!("/_ferry/iam/role-policy/{account}/{role_name}/{name}");
                let answer = harness_call(moto, "POST", path, policy["document"].to_string()).await;
                assert!(
                    matches!(answer, Some((204, _))),
                    "the gateway refused {role_name}/{name}: {answer:?}"
                );
            }
        }
        // Lambda assumes the role; the testkit's administrator stands in for it.
        let session = aws_sdk_sts::Client::new(&moto.sdk_config(region).await)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(function_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("sts:AssumeRole {role_arn}: {e:?}"));
        let c = session.credentials().expect("credentials");
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "ferry-function-role",
        );
        FunctionRole {
            config: moto.sdk_config_with(credentials, region).await,
            role_arn,
            stack_id,
            state_bucket: text("stateBucket"),
            notification_topic_arn: text("notificationTopicArn"),
            approval_topic_arn: text("approvalTopicArn"),
            state_bucket_policy: role["stateBucketPolicy"].clone(),
            topic_policies: role["topicPolicies"].clone(),
            environment: role["environment"].clone(),
            batch_role_boundary: role["batchRoleBoundary"].clone(),
        }
    }
}

/// The document without S3 Batch Operations job ARNs (`arn:aws:s3:<region>:<account>:job/…`):
/// moto's IAM refuses an S3 ARN with a Region ("can not contain region information"), though
/// AWS's Service Authorization Reference defines the job resource that way; a statement left
/// with no resource is dropped. moto stores this; the gateway is given the whole document and
/// decides S3 Control calls with it (it accepts it only if it differs from moto's copy by job
/// ARNs alone).
fn without_job_arns(document: &Value) -> Value {
    let is_job = |r: &Value| {
        r.as_str().is_some_and(|arn| {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            parts.len() == 6
                && parts[2] == "s3"
                && !parts[3].is_empty()
                && parts[5].starts_with("job/")
        })
    };
    let mut doc = document.clone();
    if let Some(Value::Array(statements)) = doc.get_mut("Statement") {
        statements.retain_mut(|st| match st.get_mut("Resource") {
            Some(Value::Array(list)) => {
                list.retain(|r| !is_job(r));
                !list.is_empty()
            }
            Some(one) => !is_job(one),
            None => true,
        });
    }
    doc
}
