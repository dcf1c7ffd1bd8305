//! The Batch Operations role in the destination account: who may assume it (the trust policy)
//! and what it may do (the permissions policy).

use serde::Serialize;

use super::access::{required_access, s3_via_service, Target};
use super::{sid, PolicyDocument, Principal, Statement};
use crate::aws_names::partition_for_region;
use crate::spec::TransferSpec;

pub const BATCH_OPERATIONS_SERVICE: &str = "batchoperations.s3.amazonaws.com";

/// The role's ARN and both of its policy documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchRole {
    pub name: String,
    pub arn: String,
    /// Name of the inline permissions policy.
    pub policy_name: String,
    pub trust_policy: PolicyDocument,
    pub permissions_policy: PolicyDocument,
}

pub fn role_arn(spec: &TransferSpec) -> String {
    format!(
        "arn:{}:iam::{}:role/{}",
        partition_for_region(&spec.destination.region),
        spec.destination.account_id,
        spec.role_name()
    )
}

pub fn batch_role(spec: &TransferSpec) -> BatchRole {
    BatchRole {
        name: spec.role_name(),
        arn: role_arn(spec),
        policy_name: format!("ferry-{}", spec.name),
        trust_policy: trust_policy(spec),
        permissions_policy: permissions_policy(spec),
    }
}

/// The trust policy AWS documents for a Batch Operations role: the service principal
/// `batchoperations.s3.amazonaws.com` may `sts:AssumeRole`, with no `Condition`
/// (S3 User Guide, "Granting permissions for Batch Operations", trust policy:
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-iam-role-policies.html>).
///
/// No AWS page says Batch Operations sends `aws:SourceAccount` / `aws:SourceArn` when it assumes
/// the role; a trust policy that required them would fail every job if it doesn't, so none is
/// set. The guard against a confused deputy is `iam:PassRole`: a job can only run as this role
/// if its creator, a principal of the destination account, may pass it (`CreateJob` checks
/// `iam:PassRole` on `RoleArn`), and no other account can pass a role it doesn't own.
///
/// With a large-object copier, its execution role may assume the role too: the copier does its
/// S3 and KMS work as this role, the one principal the source account's policies name.
pub fn trust_policy(spec: &TransferSpec) -> PolicyDocument {
    let mut statements = vec![Statement::allow(
        sid(&spec.name, "BatchOperationsAssumeRole"),
        &["sts:AssumeRole"],
        Vec::new(),
    )
    .with_principal(Principal::Service(BATCH_OPERATIONS_SERVICE.to_string()))];
    if let Some(copier_role) = &spec.job.large_object_copier_role_arn {
        statements.push(
            Statement::allow(
                sid(&spec.name, "LargeObjectCopierAssumeRole"),
                &["sts:AssumeRole"],
                Vec::new(),
            )
            .with_principal(Principal::Aws(copier_role.clone())),
        );
    }
    PolicyDocument::new(statements)
}

/// The role's identity policy: every access the job needs, S3 statements pinned to the
/// bucket's owning account (so a look-alike bucket in another account is never written) and
/// KMS statements usable only through S3.
pub fn permissions_policy(spec: &TransferSpec) -> PolicyDocument {
    let statements = required_access(spec)
        .into_iter()
        .map(|access| {
            let statement = Statement::allow(
                sid(&spec.name, access.purpose),
                &access.actions,
                access.resources,
            );
            match &access.target {
                Target::Bucket { account_id, .. } => statement.with_condition(
                    "StringEquals",
                    "aws:ResourceAccount",
                    account_id.clone(),
                ),
                Target::Key { region, .. } => statement.with_condition(
                    "StringEquals",
                    "kms:ViaService",
                    s3_via_service(region),
                ),
            }
        })
        .collect::<Vec<_>>();
    let mut statements = statements;
    // The LambdaInvoke job for objects over 5 GiB invokes exactly this function.
    if let Some(function_arn) = &spec.job.large_object_copier_arn {
        statements.push(Statement::allow(
            sid(&spec.name, "InvokeLargeObjectCopier"),
            &["lambda:InvokeFunction"],
            vec![function_arn.clone()],
        ));
    }
    PolicyDocument::new(statements)
}
