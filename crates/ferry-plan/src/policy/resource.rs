//! Resource policies: the bucket-policy and key-policy statements each account must add so the
//! destination account's Batch Operations role can do its job.
//!
//! A bucket policy is needed only where the bucket's owner is not the role's account (inside
//! one account the role's own policy is enough). Key policy statements are written for every
//! KMS key the job uses, in either account: KMS, unlike S3, ignores IAM policies unless the key
//! policy delegates to the account, so naming the role is the one form that always works.

use std::collections::BTreeMap;

use serde::Serialize;

use super::access::{required_access, s3_via_service, Target};
use super::batch_role::role_arn;
use super::{sid, PolicyDocument, Principal, Statement};
use crate::aws_names::partition_for_region;
use crate::spec::{ManifestKind, TransferSpec};

/// The service principal S3 Inventory delivers as.
pub const S3_SERVICE: &str = "s3.amazonaws.com";

/// Ferry's statements for one account, by bucket name and by key ARN. Each value is a
/// complete policy document holding only Ferry's statements, to be merged by `Sid` into the
/// resource's existing policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountPolicies {
    pub account_id: String,
    pub bucket_policies: BTreeMap<String, PolicyDocument>,
    pub key_policies: BTreeMap<String, PolicyDocument>,
}

impl AccountPolicies {
    fn new(account_id: &str) -> Self {
        Self {
            account_id: account_id.to_string(),
            bucket_policies: BTreeMap::new(),
            key_policies: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bucket_policies.is_empty() && self.key_policies.is_empty()
    }
}

/// Resource policies of the source account and of the destination account. In a same-account
/// transfer both have the same id and everything is under the destination.
pub fn resource_policies(spec: &TransferSpec) -> (AccountPolicies, AccountPolicies) {
    let role = role_arn(spec);
    let destination_account = &spec.destination.account_id;
    let mut source = AccountPolicies::new(&spec.source.account_id);
    let mut destination = AccountPolicies::new(destination_account);

    for access in required_access(spec) {
        let owner = if access.target.account_id() == destination_account {
            &mut destination
        } else {
            &mut source
        };
        let statement_sid = sid(&spec.name, access.purpose);
        match access.target {
            Target::Bucket { account_id, bucket } => {
                if &account_id == destination_account {
                    continue;
                }
                let statement = Statement::allow(statement_sid, &access.actions, access.resources)
                    .with_principal(Principal::Aws(role.clone()));
                push(&mut owner.bucket_policies, bucket, statement);
            }
            Target::Key {
                key_arn, region, ..
            } => {
                let statement =
                    Statement::allow(statement_sid, &access.actions, vec!["*".to_string()])
                        .with_principal(Principal::Aws(role.clone()))
                        .with_condition("StringEquals", "kms:ViaService", s3_via_service(&region))
                        .with_condition(
                            "StringEquals",
                            "kms:CallerAccount",
                            destination_account.clone(),
                        );
                push(&mut owner.key_policies, key_arn, statement);
            }
        }
    }
    if let Some((key_arn, statement)) = inventory_delivery_key_statement(spec) {
        let owner = if &spec.manifest.account_id == destination_account {
            &mut destination
        } else {
            &mut source
        };
        push(&mut owner.key_policies, key_arn, statement);
    }
    (source, destination)
}

/// S3 Inventory writes an SSE-KMS inventory with the inventory key as S3 itself, so the key
/// policy must let the service principal `s3.amazonaws.com` call `kms:GenerateDataKey` for the
/// source bucket's inventories, or no inventory is ever delivered. The statement is AWS's
/// (S3 User Guide, "Configuring Amazon S3 Inventory", "Granting Amazon S3 permission to use your
/// customer managed key for encryption":
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/configure-inventory.html>), with its
/// source-account and source-bucket conditions so no other bucket's inventory may use the key.
pub fn inventory_delivery_key_statement(spec: &TransferSpec) -> Option<(String, Statement)> {
    if spec.manifest.kind != ManifestKind::Inventory {
        return None;
    }
    let key_arn = spec.manifest.kms_key_arn.clone()?;
    let partition = partition_for_region(&spec.source.region);
    let statement = Statement::allow(
        sid(&spec.name, "InventoryDeliveryEncrypt"),
        &["kms:GenerateDataKey"],
        vec!["*".to_string()],
    )
    .with_principal(Principal::Service(S3_SERVICE.to_string()))
    .with_condition("StringEquals", "aws:SourceAccount", &spec.source.account_id)
    .with_condition(
        "ArnLike",
        "aws:SourceArn",
        format!("arn:{partition}:s3:::{}", spec.source.bucket),
    );
    Some((key_arn, statement))
}

fn push(map: &mut BTreeMap<String, PolicyDocument>, resource: String, statement: Statement) {
    map.entry(resource)
        .or_insert_with(|| PolicyDocument::new(Vec::new()))
        .statements
        .push(statement);
}
