//! IAM policy documents and the one list of accesses every Ferry policy is drawn from.
//!
//! [`access::required_access`] says what a copy job touches; [`batch_role`] renders that as the
//! role's own policies and [`resource`] as the bucket and key policies of the accounts that own
//! what it touches. Nothing else in Ferry writes a policy statement.

pub mod access;
pub mod batch_role;
pub mod merge;
pub mod resource;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const POLICY_VERSION: &str = "2012-10-17";

/// A complete IAM policy document (`Version` + `Statement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

impl PolicyDocument {
    pub fn new(statements: Vec<Statement>) -> Self {
        Self {
            version: POLICY_VERSION.to_string(),
            statements,
        }
    }

    /// Pretty JSON for people and files; the key order is fixed, so output is stable.
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// `Condition` block: operator → key → value.
pub type Condition = BTreeMap<String, BTreeMap<String, String>>;

/// One `Allow` statement. Ferry never writes `Deny`: what it does not grant stays denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "Sid")]
    pub sid: String,
    #[serde(rename = "Effect")]
    pub effect: String,
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none", default)]
    pub principal: Option<Principal>,
    #[serde(rename = "Action")]
    pub actions: Vec<String>,
    /// Empty only in a trust policy, whose resource is the role itself.
    #[serde(rename = "Resource", skip_serializing_if = "Vec::is_empty", default)]
    pub resources: Vec<String>,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none", default)]
    pub condition: Option<Condition>,
}

impl Statement {
    pub fn allow(sid: impl Into<String>, actions: &[&str], resources: Vec<String>) -> Self {
        Self {
            sid: sid.into(),
            effect: "Allow".to_string(),
            principal: None,
            actions: actions.iter().map(|a| a.to_string()).collect(),
            resources,
            condition: None,
        }
    }

    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    pub fn with_condition(mut self, operator: &str, key: &str, value: impl Into<String>) -> Self {
        self.condition
            .get_or_insert_with(BTreeMap::new)
            .entry(operator.to_string())
            .or_default()
            .insert(key.to_string(), value.into());
        self
    }
}

/// `Principal` of a resource policy: one role ARN or one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    #[serde(rename = "AWS")]
    Aws(String),
    #[serde(rename = "Service")]
    Service(String),
}

/// `Ferry` + the transfer name in PascalCase + what the statement is for. Sids are
/// alphanumeric (the strictest rule among IAM, S3 and KMS), so `grant` and `revoke` can find
/// Ferry's statements for this transfer. Two names that differ only by a hyphen before a digit
/// (`photos-2024`, `photos2024`) share Sids; their statements name different roles
/// (`ferry-<name>-batch`), so `grant` refuses to replace the other transfer's statement
/// (`policy::merge`, `MergeError::SidInUse`) instead of silently taking it over.
pub fn sid(transfer_name: &str, purpose: &str) -> String {
    let mut out = String::from("Ferry");
    for word in transfer_name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out.push_str(purpose);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_alphanumeric_and_carry_the_transfer() {
        assert_eq!(
            sid("media-archive-2", "ReadSourceObjects"),
            "FerryMediaArchive2ReadSourceObjects"
        );
    }

    #[test]
    fn statement_json_shape() {
        let s = Statement::allow("A", &["s3:GetObject"], vec!["arn:aws:s3:::b/*".into()])
            .with_principal(Principal::Aws("arn:aws:iam::1:role/r".into()))
            .with_condition("StringEquals", "aws:ResourceAccount", "111111111111");
        let v = serde_json::to_value(PolicyDocument::new(vec![s])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow",
                "Principal":{"AWS":"arn:aws:iam::1:role/r"},"Action":["s3:GetObject"],
                "Resource":["arn:aws:s3:::b/*"],
                "Condition":{"StringEquals":{"aws:ResourceAccount":"111111111111"}}}]})
        );
    }
}
