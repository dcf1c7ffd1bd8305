//! Ferry's statements in someone else's policy: merged in by `Sid` (added or replaced, every
//! other statement kept as it is), taken out again by `Sid`, and checked for what would make
//! the result unsafe or useless — a size over the service's limit, or an explicit `Deny` that
//! would block the copy anyway.

use serde_json::{json, Value};

use super::{PolicyDocument, Statement};

/// S3 bucket policies are limited to 20 KB.
pub const BUCKET_POLICY_MAX_BYTES: usize = 20 * 1024;
/// KMS key policies are limited to 32 KB.
pub const KEY_POLICY_MAX_BYTES: usize = 32 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("the existing policy is not a JSON policy document: {0}")]
    NotAPolicy(String),
    #[error(
        "the policy already has a statement with Sid {sid} that is not Ferry's ({why}): Ferry won't overwrite \
         it. Rename or remove that statement, or give the transfer another name"
    )]
    SidInUse { sid: String, why: String },
}

/// Every principal string of a statement (`"*"`, an ARN, a service), as listed.
fn principals_of(statement: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match statement.get("Principal") {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Object(map)) => {
            for v in map.values() {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    Value::Array(list) => {
                        out.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

/// The role name of an IAM role ARN (`arn:…:iam::ACCOUNT:role/path/NAME` → `NAME`).
fn role_name(arn: &str) -> Option<&str> {
    let (_, resource) = arn.split_once(":role/")?;
    Some(resource.rsplit('/').next().unwrap_or(resource))
}

/// Why `existing` (which has one of Ferry's Sids) is not a statement Ferry wrote, if it isn't:
/// Ferry's statements allow, and name only Ferry's role (in any account: the transfer's
/// destination may have moved) or the service principal Ferry's statement names.
fn not_ferrys(existing: &Value, ours: &Statement) -> Option<String> {
    if existing.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return Some(format!(
            "its Effect is {}",
            existing.get("Effect").cloned().unwrap_or(Value::Null)
        ));
    }
    let ours_principals = match &ours.principal {
        Some(super::Principal::Aws(arn)) | Some(super::Principal::Service(arn)) => {
            vec![arn.clone()]
        }
        None => Vec::new(),
    };
    let theirs = principals_of(existing);
    // A role that was deleted (a stack deleted or rolled back) shows in a bucket or key policy
    // as its unique id, AROA…: that is Ferry's own stale statement, replaced like any other.
    let fits = |p: &String| {
        p.starts_with("AROA")
            || ours_principals.iter().any(|o| {
                o == p || matches!((role_name(o), role_name(p)), (Some(a), Some(b)) if a == b)
            })
    };
    if theirs.is_empty() || !theirs.iter().all(fits) {
        return Some(format!(
            "it names {theirs:?}, not Ferry's {ours_principals:?}"
        ));
    }
    None
}

/// A policy before and after, with what changed by Sid.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEdit {
    pub before: Option<Value>,
    pub after: Value,
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
}

impl PolicyEdit {
    pub fn changes_anything(&self) -> bool {
        !(self.added.is_empty() && self.replaced.is_empty() && self.removed.is_empty())
    }

    /// True when the edit leaves no statement (revoke on a policy only Ferry used).
    pub fn leaves_empty(&self) -> bool {
        statements(&self.after).is_empty()
    }

    /// Compact JSON, as sent to the service and as its size limit counts.
    pub fn after_compact(&self) -> String {
        self.after.to_string()
    }
}

fn parse(existing: Option<&str>) -> Result<Value, MergeError> {
    let Some(text) = existing.filter(|t| !t.trim().is_empty()) else {
        return Ok(json!({"Version": super::POLICY_VERSION, "Statement": []}));
    };
    let mut doc: Value =
        serde_json::from_str(text).map_err(|e| MergeError::NotAPolicy(e.to_string()))?;
    let Some(object) = doc.as_object_mut() else {
        return Err(MergeError::NotAPolicy("not a JSON object".to_string()));
    };
    // A lone statement object is legal; normalise to an array so statements can be added.
    let normalised = match object.remove("Statement") {
        Some(Value::Array(list)) => list,
        Some(single @ Value::Object(_)) => vec![single],
        None => Vec::new(),
        Some(other) => {
            return Err(MergeError::NotAPolicy(format!(
                "Statement is {other}, not a list"
            )));
        }
    };
    object.insert("Statement".to_string(), Value::Array(normalised));
    Ok(doc)
}

fn statements(doc: &Value) -> &[Value] {
    doc.get("Statement")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn sid_of(statement: &Value) -> Option<&str> {
    statement.get("Sid").and_then(Value::as_str)
}

/// Adds Ferry's statements, replacing any with the same Sid in place. Idempotent.
pub fn merge_statements(
    existing: Option<&str>,
    ours: &PolicyDocument,
) -> Result<PolicyEdit, MergeError> {
    let before = existing.map(|_| parse(existing)).transpose()?;
    let mut after = parse(existing)?;
    let (mut added, mut replaced) = (Vec::new(), Vec::new());
    if let Some(list) = after.get_mut("Statement").and_then(Value::as_array_mut) {
        for statement in &ours.statements {
            let ours_value = serde_json::to_value(statement).unwrap_or(Value::Null);
            match list
                .iter_mut()
                .find(|s| sid_of(s) == Some(statement.sid.as_str()))
            {
                Some(slot) if *slot == ours_value => {}
                Some(slot) => {
                    // Only a statement Ferry wrote is replaced: a Deny or someone else's grant
                    // that happens to use the Sid must not vanish unreported.
                    if let Some(why) = not_ferrys(slot, statement) {
                        return Err(MergeError::SidInUse {
                            sid: statement.sid.clone(),
                            why,
                        });
                    }
                    *slot = ours_value;
                    replaced.push(statement.sid.clone());
                }
                None => {
                    list.push(ours_value);
                    added.push(statement.sid.clone());
                }
            }
        }
    }
    Ok(PolicyEdit {
        before,
        after,
        added,
        replaced,
        removed: Vec::new(),
    })
}

/// Removes exactly the statements whose Sid is one of Ferry's for this transfer.
pub fn remove_statements(
    existing: Option<&str>,
    ours: &PolicyDocument,
) -> Result<PolicyEdit, MergeError> {
    let before = existing.map(|_| parse(existing)).transpose()?;
    let mut after = parse(existing)?;
    let mut removed = Vec::new();
    if let Some(list) = after.get_mut("Statement").and_then(Value::as_array_mut) {
        list.retain(|s| {
            // Only statements Ferry wrote: one with Ferry's Sid but not its shape is kept.
            let ours_sid = sid_of(s).filter(|sid| {
                ours.statements
                    .iter()
                    .any(|o| o.sid == *sid && not_ferrys(s, o).is_none())
            });
            if let Some(sid) = ours_sid {
                removed.push(sid.to_string());
            }
            ours_sid.is_none()
        });
    }
    Ok(PolicyEdit {
        before,
        after,
        added: Vec::new(),
        replaced: Vec::new(),
        removed,
    })
}

/// An existing `Deny` that matches what Ferry's statements allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyFinding {
    /// The statement's Sid, or `#<n>` (1-based) when it has none.
    pub statement: String,
    /// Condition keys it depends on; empty = it blocks the copy outright.
    pub condition_keys: Vec<String>,
    pub actions: Vec<String>,
}

impl DenyFinding {
    pub fn is_certain(&self) -> bool {
        self.condition_keys.is_empty()
    }
}

/// Condition keys whose Deny never hits Batch Operations' requests: it always uses TLS 1.2+.
const HARMLESS_CONDITION_KEYS: [&str; 2] = ["aws:securetransport", "s3:tlsversion"];

/// Deny statements in `policy` that would refuse any access Ferry's statements grant to
/// `principal_arn` (of `principal_account`).
pub fn blocking_denies(
    policy: &Value,
    ours: &PolicyDocument,
    principal_arn: &str,
    principal_account: &str,
) -> Vec<DenyFinding> {
    let mut findings = Vec::new();
    for (index, deny) in statements(policy).iter().enumerate() {
        if deny.get("Effect").and_then(Value::as_str) != Some("Deny") {
            continue;
        }
        if !principal_matches(deny, principal_arn, principal_account) {
            continue;
        }
        let mut actions: Vec<String> = Vec::new();
        for allow in &ours.statements {
            for action in &allow.actions {
                if action_matches(deny, action)
                    && resources_match(deny, allow)
                    && !actions.contains(action)
                {
                    actions.push(action.clone());
                }
            }
        }
        if actions.is_empty() {
            continue;
        }
        let condition_keys: Vec<String> = deny
            .get("Condition")
            .and_then(Value::as_object)
            .map(|ops| {
                ops.values()
                    .filter_map(Value::as_object)
                    .flat_map(|keys| keys.keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        if !condition_keys.is_empty()
            && condition_keys
                .iter()
                .all(|k| HARMLESS_CONDITION_KEYS.contains(&k.to_ascii_lowercase().as_str()))
        {
            continue;
        }
        findings.push(DenyFinding {
            statement: sid_of(deny).map_or_else(|| format!("#{}", index + 1), str::to_string),
            condition_keys,
            actions,
        });
    }
    findings
}

fn as_strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn principal_values(p: Option<&Value>) -> Option<Vec<String>> {
    match p? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Object(map) => Some(
            map.get("AWS")
                .map(|v| as_strings(Some(v)))
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

fn principal_matches(deny: &Value, arn: &str, account: &str) -> bool {
    let names_us = |values: &[String]| {
        values.iter().any(|p| {
            p == "*"
                || p == arn
                || p == account
                || p == &format!("arn:aws:iam::{account}:root")
                || wildcard(p, arn)
        })
    };
    if let Some(values) = principal_values(deny.get("Principal")) {
        return names_us(&values);
    }
    if let Some(values) = principal_values(deny.get("NotPrincipal")) {
        return !names_us(&values);
    }
    false
}

fn action_matches(deny: &Value, action: &str) -> bool {
    let any = |patterns: Vec<String>| {
        patterns
            .iter()
            .any(|p| wildcard(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()))
    };
    if deny.get("Action").is_some() {
        any(as_strings(deny.get("Action")))
    } else if deny.get("NotAction").is_some() {
        !any(as_strings(deny.get("NotAction")))
    } else {
        false
    }
}

fn resources_match(deny: &Value, allow: &Statement) -> bool {
    // Ferry's own Resource values; "*" in a key policy means the key itself.
    let ours = &allow.resources;
    let hit = |patterns: Vec<String>| {
        ours.iter().any(|r| {
            patterns
                .iter()
                .any(|p| p == "*" || r == "*" || wildcard(p, r) || wildcard(r, p))
        })
    };
    if deny.get("Resource").is_some() {
        hit(as_strings(deny.get("Resource")))
    } else if deny.get("NotResource").is_some() {
        !hit(as_strings(deny.get("NotResource")))
    } else {
        false
    }
}

/// IAM wildcard match: `*` any run, `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Principal;

    fn ours() -> PolicyDocument {
        PolicyDocument::new(vec![
            Statement::allow(
                "FerryXRead",
                &["s3:GetObject"],
                vec!["arn:aws:s3:::src/*".into()],
            )
            .with_principal(Principal::Aws("arn:aws:iam::222222222222:role/r".into())),
            Statement::allow(
                "FerryXList",
                &["s3:ListBucket"],
                vec!["arn:aws:s3:::src".into()],
            )
            .with_principal(Principal::Aws("arn:aws:iam::222222222222:role/r".into())),
        ])
    }

    const EXISTING: &str = r#"{"Version":"2012-10-17","Id":"keep-me","Statement":{"Sid":"Analytics","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::src/reports/*"}}"#;

    #[test]
    fn merge_keeps_others_and_is_idempotent() {
        let once = merge_statements(Some(EXISTING), &ours()).unwrap();
        assert_eq!(once.added, vec!["FerryXRead", "FerryXList"]);
        assert_eq!(once.after["Id"], "keep-me");
        assert_eq!(statements(&once.after)[0]["Sid"], "Analytics");
        let twice = merge_statements(Some(&once.after_compact()), &ours()).unwrap();
        assert!(!twice.changes_anything());
        assert_eq!(twice.after, once.after);
    }

    /// #15 item 12: a statement with one of Ferry's Sids that Ferry didn't write (a Deny, or a
    /// grant to someone else) is neither replaced nor removed.
    #[test]
    fn a_sid_used_by_someone_else_is_refused_not_replaced() {
        for other in [
            r#"{"Sid":"FerryXRead","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::src/secret/*"}"#,
            r#"{"Sid":"FerryXRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444444444444:role/analytics"},"Action":"s3:GetObject","Resource":"*"}"#,
        ] {
            let policy = format!(r#"{{"Version":"2012-10-17","Statement":[{other}]}}"#);
            let Err(MergeError::SidInUse { sid, why }) = merge_statements(Some(&policy), &ours())
            else {
                panic!("must refuse: {other}")
            };
            assert_eq!(sid, "FerryXRead");
            assert!(!why.is_empty());
            let revoked = remove_statements(Some(&policy), &ours()).unwrap();
            assert!(revoked.removed.is_empty(), "{other}");
            assert_eq!(revoked.after, parse(Some(&policy)).unwrap());
        }
    }

    /// After the stack (and its role) was deleted, S3 and KMS show the statement's principal as
    /// the role's unique id: the next stack's grant replaces it.
    #[test]
    fn a_statement_of_a_deleted_role_is_replaced() {
        let stale = r#"{"Version":"2012-10-17","Statement":[{"Sid":"FerryXRead","Effect":"Allow","Principal":{"AWS":"AROAEXAMPLEID1234567"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::src/*"}]}"#;
        let edit = merge_statements(Some(stale), &ours()).unwrap();
        assert_eq!(edit.replaced, vec!["FerryXRead"]);
        assert_eq!(
            remove_statements(Some(stale), &ours()).unwrap().removed,
            vec!["FerryXRead"]
        );
    }

    #[test]
    fn merge_replaces_a_stale_ferry_statement_in_place() {
        // Ferry's role of the transfer, from a destination account the transfer moved away from.
        let stale = r#"{"Version":"2012-10-17","Statement":[{"Sid":"FerryXRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:role/r"},"Action":"s3:*","Resource":"*"}]}"#;
        let edit = merge_statements(Some(stale), &ours()).unwrap();
        assert_eq!(edit.replaced, vec!["FerryXRead"]);
        assert_eq!(edit.added, vec!["FerryXList"]);
        assert_eq!(
            statements(&edit.after)[0]["Action"],
            json!(["s3:GetObject"])
        );
    }

    #[test]
    fn remove_restores_the_original_statements() {
        let merged = merge_statements(Some(EXISTING), &ours()).unwrap();
        let revoked = remove_statements(Some(&merged.after_compact()), &ours()).unwrap();
        assert_eq!(revoked.removed, vec!["FerryXRead", "FerryXList"]);
        let original = parse(Some(EXISTING)).unwrap();
        assert_eq!(revoked.after, original);
        let only_ours = merge_statements(None, &ours()).unwrap();
        assert!(remove_statements(Some(&only_ours.after_compact()), &ours())
            .unwrap()
            .leaves_empty());
    }

    #[test]
    fn explicit_denies_are_found_and_tls_denies_ignored() {
        let policy: Value = serde_json::from_str(
            r#"{"Statement":[
              {"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::src","arn:aws:s3:::src/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}},
              {"Sid":"NoOutsiders","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::src/*","Condition":{"StringNotEquals":{"aws:PrincipalOrgID":"o-abc"}}},
              {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"s3:Get*","Resource":"*"},
              {"Sid":"OtherBucket","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::elsewhere/*"}
            ]}"#,
        )
        .unwrap();
        let found = blocking_denies(
            &policy,
            &ours(),
            "arn:aws:iam::222222222222:role/r",
            "222222222222",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].statement, "NoOutsiders");
        assert!(!found[0].is_certain());
        assert_eq!(found[1].statement, "#3");
        assert!(found[1].is_certain());
        assert_eq!(found[1].actions, vec!["s3:GetObject"]);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("s3:get*", "s3:getobject"));
        assert!(wildcard("arn:aws:s3:::src/*", "arn:aws:s3:::src/a/b"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("arn:aws:s3:::src/*", "arn:aws:s3:::srcx"));
    }

    #[test]
    fn not_a_policy_is_an_error() {
        assert!(matches!(
            merge_statements(Some("[1,2]"), &ours()),
            Err(MergeError::NotAPolicy(_))
        ));
        assert!(matches!(
            merge_statements(Some("{not json"), &ours()),
            Err(MergeError::NotAPolicy(_))
        ));
    }
}
