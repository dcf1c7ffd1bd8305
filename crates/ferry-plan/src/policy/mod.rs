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

/// Every purpose Ferry passes to [`sid`]. The Sids' injectivity (see [`sid`]) rests on two
/// properties of this list, checked by a test: each purpose is ASCII letters only, starts with
/// an uppercase letter and ends with a lowercase one; and none is a suffix of another, even
/// ignoring case. Add a new purpose here (debug builds refuse an unlisted one).
pub const PURPOSES: [&str; 15] = [
    "ReadSourceObjects",
    "ListSourceBucket",
    "ReadManifest",
    "WriteDestinationObjects",
    "ListDestinationUploads",
    "WriteCompletionReport",
    "DecryptSourceObjects",
    "DecryptManifest",
    "EncryptDestinationObjects",
    "EncryptCompletionReport",
    "BatchOperationsAssumeRole",
    "LargeObjectCopierAssumeRole",
    "InvokeLargeObjectCopier",
    "InventoryDelivery",
    "InventoryDeliveryEncrypt",
];

/// The Sid of the statement for `purpose` (one of [`PURPOSES`]) of transfer `transfer_name` (a
/// name the spec validation accepts: 1 to 40 of `[a-z0-9-]`, single hyphens, none at either
/// end). Sids are alphanumeric, the strictest rule among IAM, S3 and KMS.
///
/// `Sid = "Ferry" + P(name) + purpose + T(name)`, where
/// - `P(name)` is the name in PascalCase: hyphens dropped, the letter after each hyphen (and
///   a leading letter) uppercased (`media-archive` → `MediaArchive`);
/// - `T(name)` is empty unless a hyphen comes right before a digit (`photos-2024`), since only
///   then does `P` lose the hyphen (`photos2024` gives `Photos2024` too). It is then `H<i>`
///   for each hyphen of the name, in order, `<i>` its 0-based index in decimal:
///   `photos-2024` → `FerryPhotos2024ReadSourceObjectsH6`, `media-archive-2` →
///   `FerryMediaArchive2ReadSourceObjectsH5H13`.
///
/// So every name without a hyphen before a digit keeps the Sid Ferry has always given it
/// (existing grants are still found), and the Sid older versions gave the others is
/// [`legacy_sid`], which `grant`/`revoke` still recognise on a statement naming this transfer's
/// role (`policy::merge`).
///
/// **Injective**: `sid(n1, p1) == sid(n2, p2)` implies `(n1, p1) == (n2, p2)`.
/// - The last character says whether `T` is empty: a purpose ends with a lowercase letter, `T`
///   with a digit. Both Sids are of the same kind.
/// - `T` empty: `P(n1) + p1 == P(n2) + p2`; were `p1 != p2`, the shorter purpose would be a
///   suffix of the longer, which no two purposes are, so `p1 == p2` and `P(n1) == P(n2)`. For a
///   name with no hyphen before a digit every hyphen is followed by a letter, which `P`
///   uppercases, and `P` uppercases nothing else but the first character: the name is `P`
///   lowercased with a hyphen put back before each uppercase letter but the first.
/// - `T` non-empty: `T` is the longest suffix of the form `(H<digits>)+` (purposes are letters
///   only and end in a lowercase letter, so it can't reach into the purpose), and it lists the
///   name's hyphen positions; the purpose is the one purpose the rest ends with (suffix-free
///   list); what is left is `P(name)`, whose lowercase is the name without its hyphens. Putting
///   the hyphens back at the listed positions gives the name.
///
/// **Ignoring case** (AWS doesn't say whether it compares Sids case-sensitively), the first and
/// third steps still hold, because neither reads case (the purpose list is suffix-free ignoring
/// case too): a Sid with a `T` never equals another Sid, whatever the case. Only the second
/// step reads case, so the one blind spot is the compatibility rule itself: two names
/// without a hyphen before a digit that differ only in where their hyphens are (`photo-archive`,
/// `photoarchive`) keep today's Sids, `FerryPhotoArchive…` and `FerryPhotoarchive…`, which differ
/// only in case. `policy::merge` refuses to add a statement next to one whose Sid differs from
/// its own only in case, so such a pair can't share a policy whichever way AWS compares: the
/// second `grant` stops with both Sids named, and nothing is replaced or duplicated.
///
/// **Length**: AWS documents no Sid length limit for IAM, S3 or KMS (only whole-policy sizes).
/// The longest Sid is 106 characters (40-character name with 19 hyphens at indices 2, 4, … 38,
/// and the longest purpose); a test keeps every Sid within 128.
///
/// With an empty `purpose`, the prefix every Sid of the transfer starts with, `"Ferry" +
/// P(name)`, for people told to remove "the statements whose Sid starts with …" (other
/// transfers' Sids may start with it too: `photos` is a prefix of `photos-archive`'s).
pub fn sid(transfer_name: &str, purpose: &str) -> String {
    debug_assert!(
        purpose.is_empty() || PURPOSES.contains(&purpose),
        "{purpose} is not in policy::PURPOSES"
    );
    let mut out = String::from("Ferry");
    for word in transfer_name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if purpose.is_empty() {
        return out;
    }
    out.push_str(purpose);
    let bytes = transfer_name.as_bytes();
    if bytes
        .windows(2)
        .any(|w| w[0] == b'-' && w[1].is_ascii_digit())
    {
        for (index, _) in transfer_name.match_indices('-') {
            out.push('H');
            out.push_str(&index.to_string());
        }
    }
    out
}

/// The Sid Ferry gave the statement before Sids were made injective (#15), when that differs
/// from `sid` (a Sid [`sid`] made): `sid` without its hyphen positions
/// (`FerryPhotos2024ReadSourceObjectsH6` → `FerryPhotos2024ReadSourceObjects`). That old Sid
/// may be another transfer's current one (`photos2024`'s), so it identifies nothing by itself.
pub fn legacy_sid(sid: &str) -> Option<&str> {
    let bytes = sid.as_bytes();
    let mut end = bytes.len();
    loop {
        let digits_start = bytes[..end]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |i| i + 1);
        if digits_start == end || digits_start == 0 || bytes[digits_start - 1] != b'H' {
            break;
        }
        end = digits_start - 1;
    }
    (end < bytes.len() && sid.starts_with("Ferry")).then(|| &sid[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    use crate::spec::TransferSpec;
    use crate::validate::validate;

    /// `sid` as it was before #15: the compatibility rule says every name without a hyphen
    /// before a digit still gets exactly this.
    fn sid_before_15(transfer_name: &str, purpose: &str) -> String {
        let mut out = String::from("Ferry");
        for word in transfer_name.split('-') {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
        out + purpose
    }

    fn hyphen_before_digit(name: &str) -> bool {
        name.as_bytes()
            .windows(2)
            .any(|w| w[0] == b'-' && w[1].is_ascii_digit())
    }

    const VALID_SPEC: &str = crate::validate::MINIMAL_SPEC_TOML;

    /// Whether the spec validation accepts `name` (everything else in the spec is valid).
    fn name_is_valid(spec: &mut TransferSpec, name: &str) -> bool {
        spec.name = name.to_string();
        validate(spec).is_ok()
    }

    #[test]
    fn sids_keep_todays_form_unless_a_hyphen_precedes_a_digit() {
        for (name, purpose, expected) in [
            (
                "media-archive",
                "ReadSourceObjects",
                "FerryMediaArchiveReadSourceObjects",
            ),
            (
                "ledger",
                "DecryptSourceObjects",
                "FerryLedgerDecryptSourceObjects",
            ),
            ("2024-photos", "ReadManifest", "Ferry2024PhotosReadManifest"),
            (
                "photos2024",
                "ReadSourceObjects",
                "FerryPhotos2024ReadSourceObjects",
            ),
            (
                "photos-2024",
                "ReadSourceObjects",
                "FerryPhotos2024ReadSourceObjectsH6",
            ),
            (
                "media-archive-2",
                "ReadSourceObjects",
                "FerryMediaArchive2ReadSourceObjectsH5H13",
            ),
            // The clean-up prefix, shared by every Sid of the transfer.
            ("photos-2024", "", "FerryPhotos2024"),
            ("media-archive", "", "FerryMediaArchive"),
        ] {
            assert_eq!(sid(name, purpose), expected, "{name} {purpose}");
        }
        assert_eq!(
            legacy_sid("FerryPhotos2024ReadSourceObjectsH6"),
            Some("FerryPhotos2024ReadSourceObjects")
        );
        assert_eq!(
            legacy_sid("FerryMediaArchive2ReadSourceObjectsH5H13"),
            Some("FerryMediaArchive2ReadSourceObjects")
        );
        assert_eq!(legacy_sid("FerryPhotos2024ReadSourceObjects"), None);
        assert_eq!(legacy_sid("FerryMediaArchiveReadSourceObjects"), None);
    }

    /// The two properties of the purpose list the injectivity argument of `sid` rests on.
    #[test]
    fn purposes_are_letters_and_suffix_free_ignoring_case() {
        for p in PURPOSES {
            assert!(p.bytes().all(|b| b.is_ascii_alphabetic()), "{p}");
            assert!(p.as_bytes()[0].is_ascii_uppercase(), "{p}");
            assert!(p.as_bytes()[p.len() - 1].is_ascii_lowercase(), "{p}");
            for q in PURPOSES {
                if p != q {
                    assert!(
                        !p.to_ascii_lowercase().ends_with(&q.to_ascii_lowercase()),
                        "{q} is a suffix of {p}"
                    );
                }
            }
        }
    }

    /// #15 item 12: every name up to 7 characters over {a, z, 0, 1, -} that the spec validation
    /// accepts, with every purpose. No two give the same Sid; ignoring case, only names without
    /// a hyphen before a digit that differ only in where their hyphens are (`a-z`, `az`) do,
    /// because they keep the Sids they always had. Names without a hyphen before a digit keep
    /// today's Sid; the others' old Sid is their `legacy_sid`.
    #[test]
    fn sids_are_injective_over_every_short_name_and_purpose() {
        let mut spec = TransferSpec::from_toml_str(VALID_SPEC).expect("parses");
        let mut names = Vec::new();
        let mut frontier = vec![String::new()];
        for _ in 0..7 {
            let mut next = Vec::new();
            for prefix in &frontier {
                for c in ['a', 'z', '0', '1', '-'] {
                    let name = format!("{prefix}{c}");
                    if name_is_valid(&mut spec, &name) {
                        names.push(name.clone());
                    }
                    next.push(name);
                }
            }
            frontier = next;
        }
        assert!(names.len() > 20_000, "{} names", names.len());
        assert!(names.iter().any(|n| n == "a-0") && names.iter().any(|n| n == "a0"));
        assert!(!names.iter().any(|n| n.contains("--") || n.starts_with('-')));

        let mut exact: HashMap<String, (&str, &str)> = HashMap::new();
        let mut folded: HashMap<String, Vec<(&str, &str)>> = HashMap::new();
        for name in &names {
            for purpose in PURPOSES {
                let s = sid(name, purpose);
                assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
                assert!(s.len() <= 128, "{s}");
                if let Some(other) = exact.insert(s.clone(), (name, purpose)) {
                    panic!("{s} is the Sid of both {other:?} and {:?}", (name, purpose));
                }
                if hyphen_before_digit(name) {
                    assert_eq!(
                        legacy_sid(&s),
                        Some(sid_before_15(name, purpose).as_str()),
                        "{name}"
                    );
                } else {
                    assert_eq!(s, sid_before_15(name, purpose), "{name} must keep its Sid");
                    assert_eq!(legacy_sid(&s), None, "{s}");
                }
                assert!(s.starts_with(&sid(name, "")), "{s}");
                folded
                    .entry(s.to_ascii_lowercase())
                    .or_default()
                    .push((name, purpose));
            }
        }
        let mut blind_spots = 0;
        for (folded_sid, pairs) in folded.iter().filter(|(_, pairs)| pairs.len() > 1) {
            blind_spots += 1;
            let (first, purpose) = pairs[0];
            for (name, p) in pairs {
                assert!(
                    *p == purpose
                        && !hyphen_before_digit(name)
                        && name.replace('-', "") == first.replace('-', ""),
                    "{folded_sid}: equal ignoring case for {pairs:?}"
                );
            }
        }
        assert!(blind_spots > 0, "`a-z` and `az` differ only in case");
    }

    /// No AWS page limits a Sid's length (only whole policies'); Ferry's stay within 128. The
    /// Sid of a name of length `L` is `5 + L + |purpose| + Σ digits(i)` over the indices `i`
    /// of its hyphens (each hyphen drops one character from the PascalCase part and adds
    /// `H<i>`), so the longest comes from the 40-character name whose non-adjacent hyphen
    /// indices have the most digits.
    #[test]
    fn the_longest_sid_is_106_characters() {
        let digits = |i: usize| i.to_string().len();
        // best[i]: the most digits from hyphens at non-adjacent indices 1..i.
        let longest_for = |len: usize| {
            let mut best = vec![0usize; len.max(2)];
            for i in 1..len.saturating_sub(1) {
                let take = digits(i) + if i >= 2 { best[i - 2] } else { 0 };
                best[i] = best[i - 1].max(take);
            }
            best[len.saturating_sub(2)]
        };
        let longest_purpose = PURPOSES.iter().map(|p| p.len()).max().unwrap();
        let bound = (1..=40)
            .map(|len| 5 + len + longest_purpose + longest_for(len))
            .max()
            .unwrap();
        assert_eq!(bound, 106);

        let name = format!("aa{}", "-0".repeat(19));
        assert_eq!(name.len(), 40);
        let mut spec = TransferSpec::from_toml_str(VALID_SPEC).expect("parses");
        assert!(name_is_valid(&mut spec, &name));
        let purpose = PURPOSES.iter().max_by_key(|p| p.len()).unwrap();
        let longest = sid(&name, purpose);
        assert_eq!(longest.len(), bound, "{longest}");
        assert!(longest.len() <= 128);
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
