//! `ferry grant` / `ferry revoke`: Ferry's statements put into (or taken out of) the live bucket
//! and key policies of one account, by `Sid`, never touching anyone else's statements.
//!
//! Planning reads every policy first and decides everything (merge, size limits, blocking
//! Denies) before anything is written, so a refusal never leaves half the policies changed.

use std::future::Future;

use crate::aws_error::AwsCallError;
use ferry_plan::policy::merge::{
    blocking_denies, merge_statements, remove_statements, DenyFinding, MergeError, PolicyEdit,
    BUCKET_POLICY_MAX_BYTES, KEY_POLICY_MAX_BYTES,
};
use ferry_plan::policy::resource::AccountPolicies;

/// Reads and writes bucket and key policies (the `default` key policy).
pub trait ResourcePolicies {
    fn bucket_policy(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsCallError>> + Send;
    fn put_bucket_policy(
        &self,
        bucket: &str,
        policy: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
    fn delete_bucket_policy(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
    fn key_policy(
        &self,
        key_arn: &str,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
    fn put_key_policy(
        &self,
        key_arn: &str,
        policy: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditMode {
    Grant,
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTarget {
    Bucket(String),
    Key(String),
}

impl std::fmt::Display for PolicyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyTarget::Bucket(b) => write!(f, "bucket policy of s3://{b}"),
            PolicyTarget::Key(k) => write!(f, "key policy of {k}"),
        }
    }
}

/// One resource's planned edit and what speaks against it.
#[derive(Debug, Clone)]
pub struct ResourceEdit {
    pub target: PolicyTarget,
    pub edit: PolicyEdit,
    /// Existing Denies that would block the copy (certain ones refuse the grant).
    pub denies: Vec<DenyFinding>,
    /// `(size, limit)` when the result is over the service's limit.
    pub too_large: Option<(usize, usize)>,
    /// A statement under one of Ferry's Sids that isn't this transfer's (a `Deny`, someone
    /// else's grant): the grant is refused and `edit` changes nothing.
    pub sid_in_use: Option<MergeError>,
}

impl ResourceEdit {
    /// Why this edit must not be applied, if it must not.
    pub fn refusals(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(conflict) = &self.sid_in_use {
            out.push(format!("in the {}, {conflict}", self.target));
        }
        if let Some((size, limit)) = self.too_large {
            out.push(format!(
                "the {} would be {size} bytes, over the {limit}-byte limit: remove unused statements first",
                self.target
            ));
        }
        for d in self.denies.iter().filter(|d| d.is_certain()) {
            out.push(format!(
                "statement {} in the {} explicitly denies {} to the role: the copy would fail whatever is granted; \
                 change that statement (or exempt the role) first",
                d.statement,
                self.target,
                d.actions.join(", ")
            ));
        }
        if let PolicyTarget::Key(_) = self.target {
            if self.edit.leaves_empty() {
                out.push(format!(
                    "the {} would be left empty, which KMS refuses",
                    self.target
                ));
            }
        }
        out
    }

    pub fn warnings(&self) -> Vec<String> {
        self.denies
            .iter()
            .filter(|d| !d.is_certain())
            .map(|d| {
                format!(
                    "statement {} in the {} denies {} unless its condition on {} holds for the role: check it",
                    d.statement,
                    self.target,
                    d.actions.join(", "),
                    d.condition_keys.join(", ")
                )
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("reading the {target}: {cause}")]
    Read {
        target: PolicyTarget,
        cause: AwsCallError,
    },
    #[error("writing the {target}: {cause}")]
    Write {
        target: PolicyTarget,
        cause: AwsCallError,
    },
    #[error("the {target}: {cause}")]
    Unreadable {
        target: PolicyTarget,
        cause: MergeError,
    },
}

/// Reads every policy of the account's section and plans the edits.
pub async fn plan_edits<P: ResourcePolicies + Sync>(
    ports: &P,
    section: &AccountPolicies,
    mode: EditMode,
    role_arn: &str,
    role_account: &str,
) -> Result<Vec<ResourceEdit>, GrantError> {
    let targets = section
        .bucket_policies
        .iter()
        .map(|(b, ours)| (PolicyTarget::Bucket(b.clone()), ours))
        .chain(
            section
                .key_policies
                .iter()
                .map(|(k, ours)| (PolicyTarget::Key(k.clone()), ours)),
        );
    let mut edits = Vec::new();
    for (target, ours) in targets {
        let (current, limit) = match &target {
            PolicyTarget::Bucket(b) => (ports.bucket_policy(b).await, BUCKET_POLICY_MAX_BYTES),
            PolicyTarget::Key(k) => (ports.key_policy(k).await.map(Some), KEY_POLICY_MAX_BYTES),
        };
        let current = current.map_err(|cause| GrantError::Read {
            target: target.clone(),
            cause,
        })?;
        // A KMS key always has a key policy (KMS Developer Guide, "Key policies in AWS KMS":
        // "Every KMS key must have exactly one key policy"). An empty answer is a read that went
        // wrong, never "no policy": merged as one, Ferry's statements alone would replace the
        // owner's (#16 item 10).
        if matches!(target, PolicyTarget::Key(_))
            && current.as_deref().is_none_or(|p| p.trim().is_empty())
        {
            return Err(GrantError::Unreadable {
                target,
                cause: MergeError::NotAPolicy(
                    "GetKeyPolicy returned no policy text, but every KMS key has one: nothing is \
                     written. Check the key ARN and that these credentials may call kms:GetKeyPolicy"
                        .to_string(),
                ),
            });
        }
        edits.push(edit_one(
            target,
            current.as_deref(),
            ours,
            mode,
            role_arn,
            role_account,
            limit,
        )?);
    }
    Ok(edits)
}

fn edit_one(
    target: PolicyTarget,
    current: Option<&str>,
    ours: &ferry_plan::policy::PolicyDocument,
    mode: EditMode,
    role_arn: &str,
    role_account: &str,
    limit: usize,
) -> Result<ResourceEdit, GrantError> {
    let unreadable = |cause| GrantError::Unreadable {
        target: target.clone(),
        cause,
    };
    let (edit, sid_in_use) = match mode {
        EditMode::Grant => match merge_statements(current, ours) {
            // Refused like a blocking Deny (nothing written), with the policy shown unchanged.
            Err(conflict @ MergeError::SidInUse { .. }) => (
                PolicyEdit::unchanged(current).map_err(unreadable)?,
                Some(conflict),
            ),
            other => (other.map_err(unreadable)?, None),
        },
        EditMode::Revoke => (remove_statements(current, ours).map_err(unreadable)?, None),
    };
    let denies = match mode {
        EditMode::Grant => blocking_denies(&edit.after, ours, role_arn, role_account),
        EditMode::Revoke => Vec::new(),
    };
    let size = edit.after_compact().len();
    Ok(ResourceEdit {
        target,
        too_large: (size > limit).then_some((size, limit)),
        edit,
        denies,
        sid_in_use,
    })
}

/// Writes the edits that change something. Call only when no edit has refusals.
pub async fn apply_edits<P: ResourcePolicies + Sync>(
    ports: &P,
    edits: &[ResourceEdit],
) -> Result<Vec<String>, GrantError> {
    let mut applied = Vec::new();
    for e in edits.iter().filter(|e| e.edit.changes_anything()) {
        let policy = e.edit.after_compact();
        let result = match &e.target {
            PolicyTarget::Bucket(b) if e.edit.leaves_empty() => ports.delete_bucket_policy(b).await,
            PolicyTarget::Bucket(b) => ports.put_bucket_policy(b, &policy).await,
            PolicyTarget::Key(k) => ports.put_key_policy(k, &policy).await,
        };
        result.map_err(|cause| GrantError::Write {
            target: e.target.clone(),
            cause,
        })?;
        applied.push(e.target.to_string());
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plan::policy::{PolicyDocument, Principal, Statement};

    const ROLE: &str = "arn:aws:iam::222222222222:role/ferry-x-batch";

    fn ours() -> PolicyDocument {
        PolicyDocument::new(vec![Statement::allow(
            "FerryXReadSourceObjects",
            &["s3:GetObject"],
            vec!["arn:aws:s3:::src/*".into()],
        )
        .with_principal(Principal::Aws(ROLE.into()))])
    }

    fn edit(current: &str, mode: EditMode) -> ResourceEdit {
        edit_one(
            PolicyTarget::Bucket("src".into()),
            Some(current),
            &ours(),
            mode,
            ROLE,
            "222222222222",
            BUCKET_POLICY_MAX_BYTES,
        )
        .expect("a policy")
    }

    /// #15 item 12: a statement under Ferry's Sid that isn't Ferry's is a refusal (nothing is
    /// written, the Sid is named), not a replacement; revoke leaves it.
    #[test]
    fn a_statement_under_ferrys_sid_that_isnt_ferrys_refuses_the_grant() {
        let current = r#"{"Version":"2012-10-17","Statement":[{"Sid":"FerryXReadSourceObjects","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::src/secret/*"}]}"#;
        let granted = edit(current, EditMode::Grant);
        assert!(!granted.edit.changes_anything());
        let refusals = granted.refusals();
        assert!(
            refusals
                .iter()
                .any(|r| r.contains("bucket policy of s3://src")
                    && r.contains("Sid FerryXReadSourceObjects")),
            "{refusals:?}"
        );
        let revoked = edit(current, EditMode::Revoke);
        assert!(!revoked.edit.changes_anything());
        assert!(revoked.refusals().is_empty());

        let fine = edit(
            r#"{"Version":"2012-10-17","Statement":[]}"#,
            EditMode::Grant,
        );
        assert!(fine.refusals().is_empty() && fine.sid_in_use.is_none());
        assert_eq!(fine.edit.added, vec!["FerryXReadSourceObjects"]);
    }

    /// A fake whose key policy read answers `key_policy`; it records every write.
    struct OnePolicy {
        key_policy: String,
        writes: std::sync::Mutex<Vec<String>>,
    }

    impl ResourcePolicies for OnePolicy {
        async fn bucket_policy(&self, _: &str) -> Result<Option<String>, AwsCallError> {
            Ok(None)
        }
        async fn put_bucket_policy(&self, b: &str, _: &str) -> Result<(), AwsCallError> {
            self.writes.lock().unwrap().push(b.to_string());
            Ok(())
        }
        async fn delete_bucket_policy(&self, b: &str) -> Result<(), AwsCallError> {
            self.writes.lock().unwrap().push(b.to_string());
            Ok(())
        }
        async fn key_policy(&self, _: &str) -> Result<String, AwsCallError> {
            Ok(self.key_policy.clone())
        }
        async fn put_key_policy(&self, k: &str, _: &str) -> Result<(), AwsCallError> {
            self.writes.lock().unwrap().push(k.to_string());
            Ok(())
        }
    }

    /// #16 item 10: an empty key policy read is an error, not an empty policy that Ferry's
    /// statements would replace; a real one is merged.
    #[tokio::test]
    async fn an_empty_key_policy_read_is_refused_not_replaced() {
        const KEY: &str =
            "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let section = AccountPolicies {
            account_id: "111111111111".into(),
            bucket_policies: Default::default(),
            key_policies: [(KEY.to_string(), ours())].into_iter().collect(),
        };
        for empty in ["", "  \n"] {
            let ports = OnePolicy {
                key_policy: empty.into(),
                writes: Default::default(),
            };
            let e = plan_edits(&ports, &section, EditMode::Grant, ROLE, "222222222222")
                .await
                .unwrap_err();
            assert!(
                matches!(&e, GrantError::Unreadable { target: PolicyTarget::Key(k), .. } if k == KEY),
                "{e:?}"
            );
            assert!(e.to_string().contains("every KMS key has one"), "{e}");
        }
        let owner = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}"#;
        let ports = OnePolicy {
            key_policy: owner.into(),
            writes: Default::default(),
        };
        let edits = plan_edits(&ports, &section, EditMode::Grant, ROLE, "222222222222")
            .await
            .unwrap();
        let after = edits[0].edit.after_compact();
        assert!(after.contains("Enable IAM User Permissions"), "{after}");
        assert!(after.contains("FerryXReadSourceObjects"), "{after}");
    }

    #[test]
    fn a_policy_that_is_not_json_is_an_error() {
        let result = edit_one(
            PolicyTarget::Bucket("src".into()),
            Some("{not json"),
            &ours(),
            EditMode::Grant,
            ROLE,
            "222222222222",
            BUCKET_POLICY_MAX_BYTES,
        );
        assert!(matches!(result, Err(GrantError::Unreadable { .. })));
    }
}
