//! `ferry preflight`: what can be proven from the destination account before a job costs
//! money — the role and its documents, the manifest, every bucket's region, the destination's
//! object ownership, the keys — each check naming the exact fix on failure. What can't be
//! checked from here is said so, never guessed.

use serde::Serialize;
use serde_json::Value;

use crate::aws_error::{AwsCallError, AwsErrorKind};
use crate::ports::PreflightApi;
use ferry_plan::plan::Plan;
use ferry_plan::spec::TransferSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    /// Can't be checked with the destination account's credentials.
    CannotCheck,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
    /// What to do, for Warn and Fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// A failure caused by throttling or a server error: worth trying again, says nothing
    /// about the transfer.
    #[serde(skip)]
    pub transient: bool,
}

impl Check {
    fn new(
        name: impl Into<String>,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
            transient: false,
        }
    }
}

/// One line per check (`ok`, `warn`, `FAIL`, `n/a`) with its fix indented below: the text
/// `ferry preflight` prints and the stack e-mails.
pub fn render_checks<'a>(checks: impl IntoIterator<Item = &'a Check>) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.status {
            CheckStatus::Pass => "ok  ",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
            CheckStatus::CannotCheck => "n/a ",
        };
        out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("     fix: {fix}\n"));
        }
    }
    out
}

/// Runs every check; the result says which passed, failed or couldn't be made.
pub async fn preflight<A: PreflightApi + Sync>(
    api: &A,
    spec: &TransferSpec,
    plan: &Plan,
) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(check_role(api, plan).await);
    checks.push(check_manifest(api, spec).await);
    for (what, bucket, region) in [
        ("source", &spec.source.bucket, spec.source.region.as_str()),
        (
            "destination",
            &spec.destination.bucket,
            spec.destination.region.as_str(),
        ),
        ("manifest", &spec.manifest.bucket, spec.manifest_region()),
        ("report", &spec.report.bucket, spec.report_region()),
    ] {
        checks.push(check_region(api, what, bucket, region).await);
    }
    checks.push(check_ownership(api, &spec.destination.bucket).await);
    for (what, key, owner) in [
        ("source", &spec.source.kms_key_arn, &spec.source.account_id),
        (
            "destination",
            &spec.destination.kms_key_arn,
            &spec.destination.account_id,
        ),
        (
            "manifest",
            &spec.manifest.kms_key_arn,
            &spec.manifest.account_id,
        ),
        ("report", &spec.report.kms_key_arn, &spec.report.account_id),
    ] {
        if let Some(key) = key {
            checks.push(check_key(api, what, key, owner != &spec.destination.account_id).await);
        }
    }
    checks.push(Check::new(
        "reads through the role",
        CheckStatus::CannotCheck,
        "Only Batch Operations can assume the role (its trust policy says so), so reading source objects as the \
         role can't be tried before the job. The source account's statements are checked by `ferry grant` there \
         (a second run says \"Nothing to change\" when they are in place).",
        None,
    ));
    checks
}

async fn check_role<A: PreflightApi + Sync>(api: &A, plan: &Plan) -> Check {
    let role = &plan.batch_role;
    let name = "Batch Operations role";
    match api.role_documents(&role.name, &role.policy_name).await {
        Ok(None) => Check::new(
            name,
            CheckStatus::Fail,
            format!("{} does not exist", role.arn),
            Some("create it: step 1 of `ferry plan` (the stack creates it itself)".to_string()),
        ),
        Ok(Some((trust, permissions))) => {
            let same = |text: Option<&str>, doc: &ferry_plan::policy::PolicyDocument| {
                let live = text.and_then(|t| serde_json::from_str::<Value>(t).ok());
                live.is_some() && live == serde_json::to_value(doc).ok()
            };
            let mut wrong = Vec::new();
            if !same(Some(&trust), &role.trust_policy) {
                wrong.push("trust policy");
            }
            if !same(permissions.as_deref(), &role.permissions_policy) {
                wrong.push(if permissions.is_none() {
                    "permissions policy (missing)"
                } else {
                    "permissions policy"
                });
            }
            if wrong.is_empty() {
                Check::new(
                    name,
                    CheckStatus::Pass,
                    format!("{} has exactly the plan's documents", role.arn),
                    None,
                )
            } else {
                Check::new(
                    name,
                    CheckStatus::Fail,
                    format!("{}: the {} differ from the plan", role.arn, wrong.join(" and ")),
                    Some(format!(
                        "put the plan's documents: `aws iam update-assume-role-policy` / `aws iam put-role-policy --policy-name {}` (step 1 of `ferry plan`)",
                        role.policy_name
                    )),
                )
            }
        }
        Err(e) => cannot_or_fail(name, "reading the role", e),
    }
}

async fn check_manifest<A: PreflightApi + Sync>(api: &A, spec: &TransferSpec) -> Check {
    let name = "manifest";
    let (bucket, key) = (&spec.manifest.bucket, &spec.manifest.key);
    match api.head_manifest(bucket, key).await {
        Ok(head) => Check::new(
            name,
            CheckStatus::Pass,
            format!("s3://{bucket}/{key} is readable (ETag {})", head.etag.trim_matches('"')),
            None,
        ),
        Err(e) if e.kind == AwsErrorKind::NotFound => Check::new(
            name,
            CheckStatus::Fail,
            format!("s3://{bucket}/{key} does not exist"),
            Some("check manifest.bucket and manifest.key; an inventory may not be delivered yet (up to 48 h for the first)".into()),
        ),
        Err(e) if e.kind == AwsErrorKind::AccessDenied && spec.manifest.account_id != spec.destination.account_id => {
            Check::new(
                name,
                CheckStatus::CannotCheck,
                format!(
                    "s3://{bucket}/{key} is in account {} and these credentials may not read it (only the role is granted)",
                    spec.manifest.account_id
                ),
                None,
            )
        }
        Err(e) => cannot_or_fail(name, &format!("reading s3://{bucket}/{key}"), e),
    }
}

async fn check_region<A: PreflightApi + Sync>(
    api: &A,
    what: &str,
    bucket: &str,
    expected: &str,
) -> Check {
    let name = format!("{what} bucket region");
    match api.bucket_region(bucket).await {
        Ok(Some(actual)) if actual == expected => Check::new(
            name,
            CheckStatus::Pass,
            format!("s3://{bucket} is in {actual}"),
            None,
        ),
        Ok(Some(actual)) => Check::new(
            name,
            CheckStatus::Fail,
            format!("s3://{bucket} is in {actual}, the spec says {expected}"),
            Some(format!("set the {what} region to \"{actual}\" in the spec")),
        ),
        Ok(None) => Check::new(
            name,
            CheckStatus::CannotCheck,
            format!("S3 did not say where s3://{bucket} is"),
            None,
        ),
        Err(e) if e.kind == AwsErrorKind::NotFound => Check::new(
            name,
            CheckStatus::Fail,
            format!("s3://{bucket} does not exist"),
            Some(format!("check the {what} bucket name in the spec")),
        ),
        Err(e) => cannot_or_fail(&name, &format!("asking S3 about s3://{bucket}"), e),
    }
}

async fn check_ownership<A: PreflightApi + Sync>(api: &A, bucket: &str) -> Check {
    let name = "destination object ownership";
    match api.object_ownership(bucket).await {
        Ok(Some(o)) if o == "BucketOwnerEnforced" => Check::new(
            name,
            CheckStatus::Pass,
            format!("s3://{bucket} has ACLs disabled (BucketOwnerEnforced): the copies belong to the bucket's account"),
            None,
        ),
        Ok(other) => Check::new(
            name,
            CheckStatus::Warn,
            format!("s3://{bucket} object ownership is {}", other.as_deref().unwrap_or("not set (ACLs enabled)")),
            Some(format!(
                "`aws s3api put-bucket-ownership-controls --bucket {bucket} --ownership-controls 'Rules=[{{ObjectOwnership=BucketOwnerEnforced}}]'` \
                 so every copy belongs to the destination account"
            )),
        ),
        Err(e) if e.kind == AwsErrorKind::NotFound => Check::new(
            name,
            CheckStatus::Fail,
            format!("s3://{bucket} does not exist"),
            Some("check destination.bucket in the spec".to_string()),
        ),
        Err(e) => cannot_or_fail(name, &format!("reading the ownership controls of s3://{bucket}"), e),
    }
}

async fn check_key<A: PreflightApi + Sync>(
    api: &A,
    what: &str,
    key: &str,
    other_account: bool,
) -> Check {
    let name = format!("{what} KMS key");
    match api.describe_key(key).await {
        Ok(info) if !info.enabled => Check::new(
            name,
            CheckStatus::Fail,
            format!("{key} is disabled"),
            Some(format!("enable it: `aws kms enable-key --key-id {key}`")),
        ),
        Ok(info) if info.manager != "CUSTOMER" && other_account => Check::new(
            name,
            CheckStatus::Fail,
            format!("{key} is an AWS managed key: it can't be shared with another account"),
            Some("re-encrypt the objects with a customer managed key (examples/in-place-reencrypt.toml)".into()),
        ),
        Ok(_) => Check::new(name, CheckStatus::Pass, format!("{key} is enabled"), None),
        Err(e) if other_account && matches!(e.kind, AwsErrorKind::AccessDenied | AwsErrorKind::NotFound) => Check::new(
            name,
            CheckStatus::CannotCheck,
            format!(
                "{key} belongs to the other account and isn't visible from here (its key policy grants the role \
                 kms:Decrypt through S3 only, as it should)"
            ),
            None,
        ),
        Err(e) => cannot_or_fail(&name, &format!("describing {key}"), e),
    }
}

/// Access denied to *these credentials* says nothing about the role: "can't check".
fn cannot_or_fail(name: &str, doing: &str, e: AwsCallError) -> Check {
    if e.kind == AwsErrorKind::AccessDenied {
        Check::new(
            name,
            CheckStatus::CannotCheck,
            format!("{doing} was denied to these credentials ({e})"),
            None,
        )
    } else {
        Check {
            transient: e.is_retryable(),
            ..Check::new(
                name,
                CheckStatus::Fail,
                format!("{doing} failed: {e}"),
                Some(
                    "retry; if it persists, check the name and that S3/KMS/IAM are reachable"
                        .into(),
                ),
            )
        }
    }
}
