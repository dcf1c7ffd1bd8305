//! A plan's grants applied on the moto server, as the two accounts' administrators would: the
//! Batch Operations role with exactly the plan's trust and permissions policies (destination
//! account), and Ferry's bucket- and key-policy statements merged by `Sid` into each resource's
//! existing policy (`ferry_plan::policy::merge`, what `ferry grant --apply` does). Behind the
//! authorizing gateway, a test then sees exactly what these grants allow on real AWS.
//!
//! [`PlanGrants::without`] leaves one statement out of one layer (the role's policy, or the
//! bucket and key policies), so a test can show that each statement is needed (the copy fails)
//! and that the failure names what is missing.

use aws_config::SdkConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use ferry_plan::policy::merge::{merge_statements, remove_statements, MergeError, PolicyEdit};
use ferry_plan::policy::resource::AccountPolicies;
use ferry_plan::policy::PolicyDocument;
use ferry_plan::Plan;

use crate::moto::{s3_client, MotoServer};

/// Which of the plan's statements to apply.
#[derive(Debug, Clone, Default)]
pub struct PlanGrants {
    /// Statements (by `Sid`) left out of the batch role's permissions or trust policy.
    pub left_out_of_role: Vec<String>,
    /// Statements (by `Sid`) left out of the bucket and key policies.
    pub left_out_of_resources: Vec<String>,
}

/// Where a left-out statement would have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The batch role's own (identity) policy.
    Role,
    /// A bucket or key policy of the account owning the resource.
    ResourcePolicy,
}

impl PlanGrants {
    pub fn all() -> Self {
        Self::default()
    }

    /// Every statement but `sid` in `layer`.
    pub fn without(layer: Layer, sid: &str) -> Self {
        let mut grants = Self::default();
        match layer {
            Layer::Role => grants.left_out_of_role.push(sid.to_string()),
            Layer::ResourcePolicy => grants.left_out_of_resources.push(sid.to_string()),
        }
        grants
    }

    fn keep(doc: &PolicyDocument, left_out: &[String]) -> PolicyDocument {
        let mut doc = doc.clone();
        doc.statements.retain(|s| !left_out.contains(&s.sid));
        doc
    }

    /// Applies `plan`'s grants on `moto` (see the module documentation); `region` is the one
    /// the accounts' administrators work in. Panics on any failure: this is test set-up.
    pub async fn apply(&self, moto: &MotoServer, plan: &Plan, region: &str) {
        let destination = &plan.destination_account.account_id;
        let admin = moto.sdk_config_for_account(destination, region).await;
        let iam = aws_sdk_iam::Client::new(&admin);
        let role = &plan.batch_role;
        // The trust policy is part of the role: a statement left out of the role's layer is
        // left out of it too.
        let trust = serde_json::to_string(&Self::keep(&role.trust_policy, &self.left_out_of_role))
            .expect("trust policy JSON");
        match iam
            .create_role()
            .role_name(&role.name)
            .assume_role_policy_document(&trust)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("EntityAlreadyExists") => {
                iam.update_assume_role_policy()
                    .role_name(&role.name)
                    .policy_document(&trust)
                    .send()
                    .await
                    .expect("iam:UpdateAssumeRolePolicy");
            }
            Err(e) => panic!("iam:CreateRole {}: {e:?}", role.name),
        }
        iam.put_role_policy()
            .role_name(&role.name)
            .policy_name(&role.policy_name)
            .policy_document(
                serde_json::to_string(&Self::keep(
                    &role.permissions_policy,
                    &self.left_out_of_role,
                ))
                .expect("JSON"),
            )
            .send()
            .await
            .expect("iam:PutRolePolicy");
        for section in [&plan.source_account, &plan.destination_account] {
            if !section.is_empty() {
                let config = moto
                    .sdk_config_for_account(&section.account_id, region)
                    .await;
                self.apply_resource_policies(&config, section).await;
            }
        }
    }

    /// Ferry's statements taken out of `existing` (as `ferry revoke` does), then the kept ones
    /// merged in (as `ferry grant` does): applying again with another statement left out
    /// really removes it.
    fn replace_ours(
        &self,
        existing: Option<&str>,
        ours: &PolicyDocument,
    ) -> Result<PolicyEdit, MergeError> {
        let without_ours = remove_statements(existing, ours)?;
        let base = without_ours.after.to_string();
        merge_statements(Some(&base), &Self::keep(ours, &self.left_out_of_resources))
    }

    async fn apply_resource_policies(&self, config: &SdkConfig, section: &AccountPolicies) {
        let s3 = s3_client(config);
        for (bucket, ours) in &section.bucket_policies {
            let existing = match s3.get_bucket_policy().bucket(bucket).send().await {
                Ok(out) => out.policy().map(str::to_string),
                Err(e) if e.code() == Some("NoSuchBucketPolicy") => None,
                Err(e) => panic!("s3:GetBucketPolicy {bucket}: {e:?}"),
            };
            let merged = self
                .replace_ours(existing.as_deref(), ours)
                .unwrap_or_else(|e| panic!("merging into {bucket}'s policy: {e}"));
            s3.put_bucket_policy()
                .bucket(bucket)
                .policy(merged.after.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("s3:PutBucketPolicy {bucket}: {e:?}"));
        }
        let kms = aws_sdk_kms::Client::new(config);
        for (key, ours) in &section.key_policies {
            let existing = kms
                .get_key_policy()
                .key_id(key)
                .policy_name("default")
                .send()
                .await
                .unwrap_or_else(|e| panic!("kms:GetKeyPolicy {key}: {e:?}"))
                .policy()
                .map(str::to_string);
            let merged = self
                .replace_ours(existing.as_deref(), ours)
                .unwrap_or_else(|e| panic!("merging into {key}'s policy: {e}"));
            kms.put_key_policy()
                .key_id(key)
                .policy_name("default")
                .policy(merged.after.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("kms:PutKeyPolicy {key}: {e:?}"));
        }
    }
}
