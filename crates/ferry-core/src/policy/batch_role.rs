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

/// Only Batch Operations jobs of the destination account, in the job region, may assume the
/// role: `aws:SourceAccount` and `aws:SourceArn` stop another account's job from borrowing it
/// (the confused-deputy problem).
///
/// With a large-object copier, its execution role may assume the role too: the copier does its
/// S3 and KMS work as this role, the one principal the source account's policies name.
pub fn trust_policy(spec: &TransferSpec) -> PolicyDocument {
    let account = &spec.destination.account_id;
    let region = spec.job_region();
    let partition = partition_for_region(region);
    let mut statements = vec![Statement::allow(
        sid(&spec.name, "BatchOperationsAssumeRole"),
        &["sts:AssumeRole"],
        Vec::new(),
    )
    .with_principal(Principal::Service(BATCH_OPERATIONS_SERVICE.to_string()))
    .with_condition("StringEquals", "aws:SourceAccount", account.clone())
    .with_condition(
        "ArnLike",
        "aws:SourceArn",
        format!("arn:{partition}:s3:{region}:{account}:job/*"),
    )];
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
