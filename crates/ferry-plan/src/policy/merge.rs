//! Ferry's statements in someone else's policy: merged in by `Sid` (added or replaced, every
//! other statement kept as it is), taken out again by `Sid`, and checked for what would make
//! the result unsafe or useless — a size over the service's limit, or an explicit `Deny` that
//! would block the copy anyway.
//!
//! A statement is replaced or removed only when it is Ferry's for this transfer: it has one of
//! this transfer's Sids, allows, and names only this transfer's role (or the service Ferry's
//! statement names). Anything else under one of those Sids — a `Deny`, a grant to someone
//! else — refuses the grant (`MergeError::SidInUse`) and is never touched by a revoke. So is a
//! statement whose Sid differs from one of Ferry's only in letter case (AWS doesn't say whether
//! it tells them apart). A statement under the Sid an older Ferry gave (`policy::legacy_sid`)
//! is taken as this transfer's only when it names this transfer's role; that old Sid may be
//! another transfer's today.

use serde_json::{json, Value};

use super::{legacy_sid, PolicyDocument, Principal, Statement};

/// S3 bucket policies are limited to 20 KB.
pub const BUCKET_POLICY_MAX_BYTES: usize = 20 * 1024;
/// KMS key policies are limited to 32 KB.
pub const KEY_POLICY_MAX_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
        Some(Principal::Aws(arn)) | Some(Principal::Service(arn)) => {
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
    /// The policy as it is, changed in nothing.
    pub fn unchanged(existing: Option<&str>) -> Result<Self, MergeError> {
        let after = parse(existing)?;
        Ok(Self {
            before: existing.map(|_| after.clone()),
            after,
            added: Vec::new(),
            replaced: Vec::new(),
            removed: Vec::new(),
        })
    }

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

/// Whether `existing`, under the Sid an older Ferry gave `ours` ([`legacy_sid`]), is this
/// transfer's by what it names: an `Allow` naming only this transfer's role (in any account,
/// as for current Sids). Not a deleted role's unique id (`AROA…`): that could be any
/// transfer's, and the old Sid may be another transfer's current one.
fn legacy_names_our_role(existing: &Value, ours: &Statement) -> bool {
    let Some(Principal::Aws(our_arn)) = &ours.principal else {
        return false;
    };
    let theirs = principals_of(existing);
    existing.get("Effect").and_then(Value::as_str) == Some("Allow")
        && existing.get("NotPrincipal").is_none()
        && !theirs.is_empty()
        && theirs.iter().all(|p| {
            p == our_arn
                || matches!((role_name(our_arn), role_name(p)), (Some(a), Some(b)) if a == b)
        })
}

/// Where in `list` the statement an older Ferry wrote for `ours` is, if `ours` has an older
/// Sid and that statement is this transfer's. A statement naming a service (S3 Inventory's
/// key statement) can't be told apart by its principal, so it counts only when the policy
/// `vouches` for the old Sids: another statement under one of them names this transfer's role
/// (each transfer writes its service statements beside its role statements, in the same policy,
/// and two transfers' old Sids could not share a policy).
fn legacy_position(list: &[Value], ours: &Statement, vouches: bool) -> Option<usize> {
    let old = legacy_sid(&ours.sid)?;
    list.iter().position(|s| {
        sid_of(s) == Some(old)
            && match &ours.principal {
                Some(Principal::Aws(_)) => legacy_names_our_role(s, ours),
                Some(Principal::Service(_)) => {
                    vouches
                        && not_ferrys(s, ours).is_none()
                        && !principals_of(s).iter().any(|p| p.starts_with("AROA"))
                }
                None => false,
            }
    })
}

/// True when some statement of `list` is, under an older Sid, one of `ours` naming this
/// transfer's role (see [`legacy_position`]).
fn vouches_for_legacy_sids(list: &[Value], ours: &PolicyDocument) -> bool {
    ours.statements.iter().any(|o| {
        legacy_sid(&o.sid).is_some_and(|old| {
            list.iter()
                .any(|s| sid_of(s) == Some(old) && legacy_names_our_role(s, o))
        })
    })
}

/// A statement of `list` whose Sid equals `sid` ignoring case but not exactly.
fn case_variant<'a>(list: &'a [Value], sid: &str) -> Option<&'a str> {
    list.iter()
        .filter_map(sid_of)
        .find(|s| *s != sid && s.eq_ignore_ascii_case(sid))
}

/// Adds Ferry's statements, replacing this transfer's statement with the same Sid (or its older
/// Sid, see [`legacy_sid`]) in place. Idempotent. Refuses (`SidInUse`) when a statement that
/// isn't this transfer's has one of its Sids, or a Sid that differs only in case.
pub fn merge_statements(
    existing: Option<&str>,
    ours: &PolicyDocument,
) -> Result<PolicyEdit, MergeError> {
    let before = existing.map(|_| parse(existing)).transpose()?;
    let mut after = parse(existing)?;
    let (mut added, mut replaced, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(list) = after.get_mut("Statement").and_then(Value::as_array_mut) {
        let vouches = vouches_for_legacy_sids(list, ours);
        for statement in &ours.statements {
            if let Some(variant) = case_variant(list, &statement.sid) {
                return Err(MergeError::SidInUse {
                    sid: variant.to_string(),
                    why: format!(
                        "it differs from Ferry's {} only in letter case, which AWS may not tell apart",
                        statement.sid
                    ),
                });
            }
            let ours_value = serde_json::to_value(statement).unwrap_or(Value::Null);
            let legacy = legacy_position(list, statement, vouches);
            match list
                .iter()
                .position(|s| sid_of(s) == Some(statement.sid.as_str()))
            {
                Some(at) => {
                    if list[at] != ours_value {
                        // Only a statement Ferry wrote is replaced: a Deny or someone else's
                        // grant that happens to use the Sid must not vanish unreported.
                        if let Some(why) = not_ferrys(&list[at], statement) {
                            return Err(MergeError::SidInUse {
                                sid: statement.sid.clone(),
                                why,
                            });
                        }
                        list[at] = ours_value;
                        replaced.push(statement.sid.clone());
                    }
                    // Granted both before and after the Sids changed: the old one goes.
                    if let Some(old) = legacy {
                        let gone = list.remove(old);
                        removed.extend(sid_of(&gone).map(str::to_string));
                    }
                }
                None => match legacy {
                    // Granted before the Sids changed: replaced in place, under the new Sid.
                    Some(old) => {
                        list[old] = ours_value;
                        replaced.push(statement.sid.clone());
                    }
                    None => {
                        list.push(ours_value);
                        added.push(statement.sid.clone());
                    }
                },
            }
        }
    }
    Ok(PolicyEdit {
        before,
        after,
        added,
        replaced,
        removed,
    })
}

/// Removes exactly this transfer's statements: under one of its Sids and Ferry's (an `Allow`
/// naming its role), or under an older Sid and naming its role (see [`legacy_sid`]).
pub fn remove_statements(
    existing: Option<&str>,
    ours: &PolicyDocument,
) -> Result<PolicyEdit, MergeError> {
    let before = existing.map(|_| parse(existing)).transpose()?;
    let mut after = parse(existing)?;
    let mut removed = Vec::new();
    if let Some(list) = after.get_mut("Statement").and_then(Value::as_array_mut) {
        let vouches = vouches_for_legacy_sids(list, ours);
        let mut doomed = vec![false; list.len()];
        for o in &ours.statements {
            // Only statements Ferry wrote: one with Ferry's Sid but not its shape is kept.
            for (at, s) in list.iter().enumerate() {
                if sid_of(s) == Some(o.sid.as_str()) && not_ferrys(s, o).is_none() {
                    doomed[at] = true;
                }
            }
            if let Some(at) = legacy_position(list, o, vouches) {
                doomed[at] = true;
            }
        }
        let mut at = 0;
        list.retain(|s| {
            let doomed = doomed[at];
            at += 1;
            if doomed {
                removed.extend(sid_of(s).map(str::to_string));
            }
            !doomed
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
    const EXISTING_STATEMENT: &str = r#"{"Sid":"Analytics","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::src/reports/*"}"#;

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

    /// #15 item 12: whatever a statement under one of Ferry's Sids names, it is replaced only
    /// when it allows and names nothing but Ferry's role; anything else stops the grant, naming
    /// the Sid, and stays where it is on revoke.
    #[test]
    fn only_an_allow_naming_only_ferrys_role_is_replaced() {
        for other in [
            // A Deny naming exactly Ferry's role, with or without a condition.
            r#"{"Sid":"FerryXRead","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::222222222222:role/r"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::src/secret/*"}"#,
            r#"{"Sid":"FerryXRead","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::222222222222:role/r"},"Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
            // No Effect, or one spelt otherwise.
            r#"{"Sid":"FerryXRead","Principal":{"AWS":"arn:aws:iam::222222222222:role/r"},"Action":"s3:GetObject","Resource":"*"}"#,
            r#"{"Sid":"FerryXRead","Effect":"allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/r"},"Action":"s3:GetObject","Resource":"*"}"#,
            // Everyone, an account, Ferry's role and someone else, everyone but Ferry's role.
            r#"{"Sid":"FerryXRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}"#,
            r#"{"Sid":"FerryXRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"s3:GetObject","Resource":"*"}"#,
            r#"{"Sid":"FerryXRead","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:role/r","arn:aws:iam::444444444444:role/x"]},"Action":"s3:GetObject","Resource":"*"}"#,
            r#"{"Sid":"FerryXRead","Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::222222222222:role/r"},"Action":"s3:GetObject","Resource":"*"}"#,
            // A service.
            r#"{"Sid":"FerryXRead","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"s3:GetObject","Resource":"*"}"#,
        ] {
            let policy =
                format!(r#"{{"Version":"2012-10-17","Statement":[{EXISTING_STATEMENT},{other}]}}"#);
            match merge_statements(Some(&policy), &ours()) {
                Err(MergeError::SidInUse { sid, why }) => {
                    assert_eq!(sid, "FerryXRead", "{other}");
                    assert!(!why.is_empty());
                }
                other_result => panic!("must refuse {other}, got {other_result:?}"),
            }
            let revoked = remove_statements(Some(&policy), &ours()).unwrap();
            assert!(revoked.removed.is_empty(), "{other}");
            assert_eq!(revoked.after, parse(Some(&policy)).unwrap());
        }
    }

    /// A statement whose Sid is one of Ferry's but for letter case is someone else's (Ferry's
    /// Sids are exact); if AWS compared Sids ignoring case the two would collide, so the grant
    /// stops instead of leaving it to AWS or to luck. Revoke leaves it alone.
    #[test]
    fn a_sid_equal_to_ferrys_but_for_case_is_refused() {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"FerryxRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:role/other"},"Action":"s3:GetObject","Resource":"*"}]}"#;
        let Err(MergeError::SidInUse { sid, why }) = merge_statements(Some(policy), &ours()) else {
            panic!("must refuse")
        };
        assert_eq!(sid, "FerryxRead");
        assert!(why.contains("FerryXRead") && why.contains("case"), "{why}");
        let revoked = remove_statements(Some(policy), &ours()).unwrap();
        assert!(revoked.removed.is_empty());
    }

    const OUR_ROLE: &str = "arn:aws:iam::222222222222:role/ferry-photos-2024-batch";
    const THEIR_ROLE: &str = "arn:aws:iam::222222222222:role/ferry-photos2024-batch";

    /// Statements of transfer `photos-2024`, whose Sids changed in #15 (a hyphen before a
    /// digit): the role's read, and S3 Inventory's key statement, which names a service.
    fn photos_2024() -> PolicyDocument {
        let sid = |purpose| crate::policy::sid("photos-2024", purpose);
        PolicyDocument::new(vec![
            Statement::allow(
                sid("ReadSourceObjects"),
                &["s3:GetObject"],
                vec!["arn:aws:s3:::src/*".into()],
            )
            .with_principal(Principal::Aws(OUR_ROLE.into())),
            Statement::allow(
                sid("InventoryDeliveryEncrypt"),
                &["kms:GenerateDataKey"],
                vec!["*".into()],
            )
            .with_principal(Principal::Service("s3.amazonaws.com".into())),
        ])
    }

    fn statement(sid: &str, effect: &str, principal: Value) -> Value {
        json!({"Sid": sid, "Effect": effect, "Principal": principal, "Action": "s3:*", "Resource": "*"})
    }

    fn policy_of(statements: Vec<Value>) -> String {
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    fn sids(doc: &Value) -> Vec<&str> {
        statements(doc).iter().filter_map(sid_of).collect()
    }

    /// A grant made before #15 (`FerryPhotos2024…`, naming photos-2024's role) is replaced in
    /// place under the new Sid, not duplicated; revoke finds it too.
    #[test]
    fn a_grant_under_the_older_sid_is_replaced_in_place_and_revoked() {
        let ours = photos_2024();
        assert_eq!(ours.statements[0].sid, "FerryPhotos2024ReadSourceObjectsH6");
        let existing = policy_of(vec![
            statement(
                "FerryPhotos2024ReadSourceObjects",
                "Allow",
                json!({"AWS": OUR_ROLE}),
            ),
            statement(
                "FerryPhotos2024InventoryDeliveryEncrypt",
                "Allow",
                json!({"Service": "s3.amazonaws.com"}),
            ),
            statement(
                "Analytics",
                "Allow",
                json!({"AWS": "arn:aws:iam::333333333333:root"}),
            ),
        ]);
        let edit = merge_statements(Some(&existing), &ours).unwrap();
        assert_eq!(
            edit.replaced,
            vec![
                "FerryPhotos2024ReadSourceObjectsH6",
                "FerryPhotos2024InventoryDeliveryEncryptH6"
            ]
        );
        assert!(edit.added.is_empty() && edit.removed.is_empty());
        assert_eq!(
            sids(&edit.after),
            vec![
                "FerryPhotos2024ReadSourceObjectsH6",
                "FerryPhotos2024InventoryDeliveryEncryptH6",
                "Analytics"
            ]
        );
        let again = merge_statements(Some(&edit.after_compact()), &ours).unwrap();
        assert!(!again.changes_anything());

        let revoked = remove_statements(Some(&existing), &ours).unwrap();
        assert_eq!(
            revoked.removed,
            vec![
                "FerryPhotos2024ReadSourceObjects",
                "FerryPhotos2024InventoryDeliveryEncrypt"
            ]
        );
        assert_eq!(sids(&revoked.after), vec!["Analytics"]);
    }

    /// `FerryPhotos2024…` is also transfer `photos2024`'s current Sid: a statement under it
    /// that doesn't name photos-2024's role (photos2024's, a deleted role's id, a Deny) is
    /// neither replaced nor removed, and without one that does, neither is a service statement.
    #[test]
    fn the_older_sid_of_another_transfer_is_left_alone() {
        let ours = photos_2024();
        for theirs in [
            statement(
                "FerryPhotos2024ReadSourceObjects",
                "Allow",
                json!({"AWS": THEIR_ROLE}),
            ),
            statement(
                "FerryPhotos2024ReadSourceObjects",
                "Allow",
                json!({"AWS": "AROAEXAMPLEID1234567"}),
            ),
            statement(
                "FerryPhotos2024ReadSourceObjects",
                "Deny",
                json!({"AWS": OUR_ROLE}),
            ),
            statement(
                "FerryPhotos2024ReadSourceObjects",
                "Allow",
                json!({"AWS": [OUR_ROLE, THEIR_ROLE]}),
            ),
        ] {
            let existing = policy_of(vec![
                theirs.clone(),
                statement(
                    "FerryPhotos2024InventoryDeliveryEncrypt",
                    "Allow",
                    json!({"Service": "s3.amazonaws.com"}),
                ),
            ]);
            let edit = merge_statements(Some(&existing), &ours).unwrap();
            assert_eq!(
                edit.added,
                vec![
                    "FerryPhotos2024ReadSourceObjectsH6",
                    "FerryPhotos2024InventoryDeliveryEncryptH6"
                ],
                "{theirs}"
            );
            assert!(edit.replaced.is_empty() && edit.removed.is_empty());
            assert_eq!(statements(&edit.after)[0], theirs);
            assert_eq!(statements(&edit.after).len(), 4);
            let revoked = remove_statements(Some(&existing), &ours).unwrap();
            assert!(revoked.removed.is_empty(), "{theirs}");
            // Once granted under the new Sids, revoke takes exactly those.
            let revoked = remove_statements(Some(&edit.after_compact()), &ours).unwrap();
            assert_eq!(revoked.after, parse(Some(&existing)).unwrap());
        }
    }

    /// Granted both before and after #15 (an older Ferry run again): the new statement is kept,
    /// the older one removed.
    #[test]
    fn an_older_duplicate_of_our_statement_is_removed() {
        let ours = photos_2024();
        let current = merge_statements(None, &ours).unwrap().after;
        let mut list = statements(&current).to_vec();
        list.push(statement(
            "FerryPhotos2024ReadSourceObjects",
            "Allow",
            json!({"AWS": OUR_ROLE}),
        ));
        let existing = policy_of(list);
        let edit = merge_statements(Some(&existing), &ours).unwrap();
        assert_eq!(edit.removed, vec!["FerryPhotos2024ReadSourceObjects"]);
        assert_eq!(edit.after, current);
        assert!(remove_statements(Some(&existing), &ours)
            .unwrap()
            .leaves_empty());
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
