//! Why a task failed, and what to do about it.
//!
//! [`classify`] sorts a failed task into a [`Cause`] from its error code, HTTP status and
//! message (S3's messages name the denied action and, for KMS, the key). [`fix_for`] turns a
//! cause into the fix a person can act on: which account, which resource and which of Ferry's
//! statements (Sids `Ferry<Name><Purpose>`, see [`ferry_plan::policy::sid`]) is missing, and the
//! command that adds it. Without the transfer's spec the fixes are still given, in general terms.

use serde::Serialize;

use ferry_listings::report::results::TaskResult;
use ferry_plan::policy::batch_role::role_arn;
use ferry_plan::policy::sid;
use ferry_plan::spec::TransferSpec;

/// Failure causes, most actionable first (the e-mail lists them in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// KMS refused to decrypt the source object for the Batch Operations role.
    SourceKeyDenied,
    /// KMS refused a data key for the destination (or another key the job writes with).
    DestinationKeyDenied,
    /// KMS refused a Decrypt whose message names no key ("on the resource associated with this
    /// ciphertext"), with both a source and a destination key in play: either may be the one.
    EitherKeyDenied,
    /// S3 refused to read the source object (bucket policy, or a Deny / SCP).
    SourceReadDenied,
    /// S3 refused to write the copy into the destination bucket.
    DestinationWriteDenied,
    /// The object is in GLACIER / DEEP_ARCHIVE (or an archive tier) and not restored.
    Archived,
    /// Over 5 GiB: Batch Operations Copy can't copy it.
    TooLarge,
    /// Encrypted with a customer-provided key (SSE-C): Batch Operations can't read it.
    SseC,
    /// Gone since the manifest was written.
    ObjectNotFound,
    /// S3 or KMS asked to slow down.
    Throttled,
    /// A server error on AWS's side.
    ServerError,
    Other,
}

impl Cause {
    /// Short label for the e-mail.
    pub fn label(self) -> &'static str {
        match self {
            Cause::SourceKeyDenied => "KMS access denied on the source key",
            Cause::DestinationKeyDenied => "KMS access denied on the destination key",
            Cause::EitherKeyDenied => {
                "KMS access denied on the source or the destination key (the message names neither)"
            }
            Cause::SourceReadDenied => "access denied reading the source object",
            Cause::DestinationWriteDenied => "access denied writing the destination object",
            Cause::Archived => "archived object (Glacier) not restored",
            Cause::TooLarge => "object over 5 GB",
            Cause::SseC => "object encrypted with SSE-C",
            Cause::ObjectNotFound => "object not found",
            Cause::Throttled => "throttled (slow down)",
            Cause::ServerError => "AWS server error",
            Cause::Other => "other error",
        }
    }

    /// Whether a redrive may succeed without anyone changing anything.
    pub fn retry_alone_helps(self) -> bool {
        matches!(self, Cause::Throttled | Cause::ServerError)
    }
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// The KMS key (or alias) ARN a message names, if any, in any partition (`aws`, `aws-cn`,
/// `aws-us-gov`, ...).
///
/// AWS's access-denied messages read "User: <caller ARN> is not authorized to perform: <action>
/// on resource: <resource ARN> because no resource-based policy allows the <action> action"
/// (IAM User Guide, "Troubleshoot access denied error messages",
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html>). The
/// first ARN is the caller's (the job role's STS session), not the key: so every ARN in the
/// message is looked at and the first that is a KMS key's is kept.
pub fn kms_key_in(message: &str) -> Option<&str> {
    message
        .match_indices("arn:")
        .map(|(start, _)| arn_at(&message[start..]))
        .find(|arn| is_kms_key_arn(arn))
}

/// The ARN `text` starts with: up to the first character a key or alias ARN can't hold (alias
/// names are letters, digits, `/`, `_` and `-`), so "…key/1234abcd." or "(…key/1234abcd)"
/// leave their punctuation behind.
fn arn_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-')))
        .unwrap_or(text.len());
    &text[..end]
}

/// `arn:<partition>:kms:<region>:<12-digit account>:key/<id>` or `…:alias/<name>`.
fn is_kms_key_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let named = resource
        .strip_prefix("key/")
        .or_else(|| resource.strip_prefix("alias/"))
        .is_some_and(|id| !id.is_empty());
    partition.starts_with("aws")
        && service == "kms"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && named
}

/// The account an ARN names (its fifth field).
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Which side's key the refused `key` is: a key the spec names, else (a key the spec doesn't
/// know, e.g. objects under another key) the side whose account owns it. `None` when that
/// doesn't tell (same-account transfers, a key that is both sides' key, a third account).
fn key_side(key: &str, spec: &TransferSpec) -> Option<Cause> {
    let is = |k: Option<&String>| k.is_some_and(|k| same_key(key, k));
    match (
        is(spec.destination.kms_key_arn.as_ref()),
        is(spec.source.kms_key_arn.as_ref()),
    ) {
        (true, false) => return Some(Cause::DestinationKeyDenied),
        (false, true) => return Some(Cause::SourceKeyDenied),
        (true, true) => return None,
        (false, false) => {}
    }
    let account = arn_account(key)?;
    let (src, dst) = (&spec.source.account_id, &spec.destination.account_id);
    if src == dst {
        None
    } else if account == dst {
        Some(Cause::DestinationKeyDenied)
    } else if account == src {
        Some(Cause::SourceKeyDenied)
    } else {
        None
    }
}

/// Whether a message names `bucket` (or an object in it) by ARN, in any partition: the ARN's
/// bucket must end there, so `dst` is not found in `arn:aws:s3:::dst-archive`.
fn names_bucket(message: &str, bucket: &str) -> bool {
    let needle = format!(":s3:::{bucket}");
    message.match_indices(&needle).any(|(at, _)| {
        message[at + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    })
}

/// Sorts one failed task. `spec` (when known) tells the destination key from the source key.
pub fn classify(task: &TaskResult, spec: Option<&TransferSpec>) -> Cause {
    let code = task.error_code.as_str();
    let message = task.message.as_str();
    let lower = message.to_ascii_lowercase();
    let http = task.http_status.unwrap_or(0);

    if contains_any(
        code,
        &[
            "SlowDown",
            "TooManyRequests",
            "Throttl",
            "RequestLimitExceeded",
            "ServiceUnavailable",
        ],
    ) || http == 503
        || http == 429
        || lower.contains("reduce your request rate")
        || lower.contains("rate exceeded")
    {
        return Cause::Throttled;
    }
    if contains_any(
        &lower,
        &[
            "customer provided",
            "customer-provided",
            "sse-c",
            "correct parameters must be provided",
        ],
    ) {
        return Cause::SseC;
    }
    let mentions_kms = lower.contains("kms") || lower.contains("customer master key");
    let denied = http == 403
        || contains_any(code, &["AccessDenied", "Forbidden", "KMS."])
        || lower.contains("not authorized")
        || lower.contains("access denied");
    if mentions_kms && (denied || lower.contains("ciphertext")) {
        let side = spec
            .zip(kms_key_in(message))
            .and_then(|(s, k)| key_side(k, s));
        return match side {
            Some(cause) => cause,
            // Only the destination key is asked for data keys.
            None if lower.contains("kms:generatedatakey") || lower.contains("kms:encrypt") => {
                Cause::DestinationKeyDenied
            }
            // A refused Decrypt names no key: KMS says "on the resource associated with this
            // ciphertext" (IAM Identity Center User Guide, "Troubleshoot customer managed key
            // issues"; S3's GetObject errors read the same). A single-request copy (the Copy
            // job) decrypts only with the source key; a multipart copy (the large-object
            // copier, whose messages name its UploadPartCopy / multipart steps) also with the
            // destination key (S3 API Reference, UploadPartCopy: kms:Decrypt on the destination
            // key), and there the message can't tell which: the e-mail names both.
            None => {
                let multipart = contains_any(
                    &lower,
                    &["uploadpartcopy", "multipartupload", "multipart upload"],
                );
                match spec.map(|s| s.destination.kms_key_arn.is_some()) {
                    Some(true) if multipart => Cause::EitherKeyDenied,
                    _ => Cause::SourceKeyDenied,
                }
            }
        };
    }
    if code == "InvalidObjectState"
        || (lower.contains("storage class")
            && contains_any(&lower, &["glacier", "deep_archive", "restore", "archive"]))
        || lower.contains("object is archived")
    {
        return Cause::Archived;
    }
    if code == "EntityTooLarge"
        || contains_any(
            &lower,
            &[
                "larger than the maximum allowable size",
                "5368709120",
                "exceeds the maximum allowed",
                "too large",
            ],
        )
    {
        return Cause::TooLarge;
    }
    if contains_any(code, &["NoSuchKey", "NoSuchVersion", "NotFound"])
        || http == 404
        || lower.contains("does not exist")
    {
        return Cause::ObjectNotFound;
    }
    if denied {
        let writing = lower.contains("s3:putobject")
            || spec.is_some_and(|s| {
                names_bucket(message, &s.destination.bucket)
                    && !names_bucket(message, &s.source.bucket)
            });
        return if writing {
            Cause::DestinationWriteDenied
        } else {
            Cause::SourceReadDenied
        };
    }
    if code.starts_with("Internal") || http >= 500 {
        return Cause::ServerError;
    }
    Cause::Other
}

/// Key ARNs and the key id / alias a message may give instead compare by their tail.
fn same_key(a: &str, b: &str) -> bool {
    a == b || a.rsplit('/').next() == b.rsplit('/').next()
}

/// The fix for a cause, for this transfer. `example` is a task that failed this way (its key
/// or message can name the resource).
pub fn fix_for(cause: Cause, spec: Option<&TransferSpec>, example: &TaskResult) -> String {
    let spec_ref = "<your spec>.toml";
    let Some(spec) = spec else {
        return generic_fix(cause, example);
    };
    let role = role_arn(spec);
    let src = &spec.source;
    let dst = &spec.destination;
    let statement = |purpose: &str| sid(&spec.name, purpose);
    match cause {
        Cause::SourceKeyDenied => {
            let named = kms_key_in(&example.message);
            match (&src.kms_key_arn, named) {
                (Some(key), Some(n)) if !same_key(key, n) => format!(
                    "the objects are encrypted with {n}, not with the spec's source.kms_key_arn {key}: \
                     set source.kms_key_arn to that key (it must be a customer managed key; aws/s3 can't \
                     be shared across accounts), re-plan, run `ferry grant {spec_ref} --side source --apply` \
                     in account {}, then redrive",
                    src.account_id
                ),
                (Some(key), _) => format!(
                    "the key policy of {key} in the source account {} lacks statement {} (kms:Decrypt for \
                     {role} via s3.{}.amazonaws.com) or a Deny overrides it. With that account's \
                     credentials run `ferry grant {spec_ref} --side source --apply`, then redrive",
                    src.account_id,
                    statement("DecryptSourceObjects"),
                    src.region
                ),
                (None, n) => format!(
                    "the source objects are SSE-KMS encrypted ({}) but the spec names no source key: set \
                     source.kms_key_arn (a customer managed key; objects under aws/s3 must be re-encrypted \
                     first), re-plan so Ferry adds {} to that key's policy in account {}, then redrive",
                    n.unwrap_or("key not named in the report"),
                    statement("DecryptSourceObjects"),
                    src.account_id
                ),
            }
        }
        Cause::DestinationKeyDenied => format!(
            "the key policy of {} in the destination account {} lacks statement {} (kms:GenerateDataKey \
             and kms:Decrypt for {role}) or a Deny overrides it. Run `ferry grant {spec_ref} --side \
             destination --apply` in account {}, then redrive",
            kms_key_in(&example.message)
                .or(dst.kms_key_arn.as_deref())
                .unwrap_or("the destination key"),
            dst.account_id,
            statement("EncryptDestinationObjects"),
            dst.account_id
        ),
        Cause::EitherKeyDenied => format!(
            "KMS refused kms:Decrypt without naming the key, and both keys are in play: the source key {} \
             (account {}, statement {}) and the destination key {} (account {}, statement {}). Run \
             `ferry grant {spec_ref} --side source` in account {} and `ferry grant {spec_ref} --side \
             destination` in account {}: each shows whether its key policy lacks Ferry's statement or a \
             Deny overrides it; apply where it does, then redrive",
            src.kms_key_arn.as_deref().unwrap_or("(none)"),
            src.account_id,
            statement("DecryptSourceObjects"),
            dst.kms_key_arn.as_deref().unwrap_or("(none)"),
            dst.account_id,
            statement("EncryptDestinationObjects"),
            src.account_id,
            dst.account_id
        ),
        Cause::SourceReadDenied => format!(
            "the bucket policy of {} in the source account {} lacks statement {} (s3:GetObject… for \
             {role}), or a Deny, an SCP or the object's ACL/ownership blocks it. With that account's \
             credentials run `ferry grant {spec_ref} --side source --apply` (it shows blocking Denies), \
             then redrive",
            src.bucket,
            src.account_id,
            statement("ReadSourceObjects")
        ),
        Cause::DestinationWriteDenied => format!(
            "writing into {} was refused: the role {role} needs s3:PutObject there (statement {} of its \
             own policy, kept by the stack) and the bucket policy must not Deny it (e.g. an encryption \
             or prefix condition). Check the destination bucket policy in account {}, then redrive",
            dst.bucket,
            statement("WriteDestinationObjects"),
            dst.account_id
        ),
        other => generic_fix(other, example),
    }
}

fn generic_fix(cause: Cause, example: &TaskResult) -> String {
    match cause {
        Cause::SourceKeyDenied => format!(
            "the source account's key policy must allow the Batch Operations role kms:Decrypt (Ferry's \
             statement Ferry<Name>DecryptSourceObjects; key: {}): run `ferry grant <spec> --side source \
             --apply` there, then redrive",
            kms_key_in(&example.message).unwrap_or("see the message")
        ),
        Cause::EitherKeyDenied => "KMS refused kms:Decrypt without naming the key: check both the \
             source key policy (Ferry<Name>DecryptSourceObjects) and the destination key policy \
             (Ferry<Name>EncryptDestinationObjects) with `ferry grant <spec> --side source` and `--side \
             destination`, then redrive"
            .to_string(),
        Cause::DestinationKeyDenied => "the destination key policy must allow the role \
             kms:GenerateDataKey and kms:Decrypt (Ferry<Name>EncryptDestinationObjects): run `ferry \
             grant <spec> --side destination --apply`, then redrive"
            .to_string(),
        Cause::SourceReadDenied => "the source bucket policy must allow the role s3:GetObject \
             (Ferry<Name>ReadSourceObjects) and no Deny or SCP may block it: run `ferry grant <spec> \
             --side source --apply` in the source account, then redrive"
            .to_string(),
        Cause::DestinationWriteDenied => "the role needs s3:PutObject on the destination \
             (Ferry<Name>WriteDestinationObjects) and the destination bucket policy must not Deny it"
            .to_string(),
        Cause::Archived => "restore the objects first (RestoreObject, or a Batch Operations Restore \
             job on the same manifest), wait for the restore to finish, then redrive"
            .to_string(),
        Cause::TooLarge => "Batch Operations Copy takes objects up to 5 GB: these go through Ferry's \
             large-object-copier (a LambdaInvoke job; inventory runs route them there by size)"
            .to_string(),
        Cause::SseC => "Batch Operations can't read SSE-C objects: copy them outside Ferry with the \
             customer key (e.g. `aws s3 cp --sse-c-copy-source … --sse-c-copy-source-key …`), or \
             re-encrypt them at the source with SSE-S3/SSE-KMS and redrive"
            .to_string(),
        Cause::ObjectNotFound => "the object was deleted or renamed after the manifest was written \
             (or the version no longer exists): nothing to copy; if it should exist, fix the manifest"
            .to_string(),
        Cause::Throttled => "S3 or KMS asked the job to slow down: redrive; if it repeats, lower the \
             job priority or run fewer jobs on these buckets at once (for KMS, an S3 Bucket Key cuts \
             requests)"
            .to_string(),
        Cause::ServerError => "a transient AWS error: redrive".to_string(),
        Cause::Other => format!(
            "S3 answered {} {}: see the message and the full breakdown",
            example.error_code,
            example
                .http_status
                .map(|h| h.to_string())
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_listings::report::results::TaskStatus;

    fn failed(code: &str, http: u16, message: &str) -> TaskResult {
        TaskResult {
            bucket: "src".into(),
            key: "k".into(),
            key_as_reported: None,
            version_id: None,
            status: TaskStatus::Failed,
            error_code: code.into(),
            http_status: Some(http),
            message: message.into(),
        }
    }

    #[test]
    fn causes_from_real_messages() {
        let cases = [
            (failed("AccessDenied", 403, "User: arn:aws:sts::222222222222:assumed-role/ferry-x-batch/s3-batch is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:111111111111:key/1234abcd because no resource-based policy allows the kms:Decrypt action"), Cause::SourceKeyDenied),
            (failed("AccessDenied", 403, "Access Denied"), Cause::SourceReadDenied),
            (failed("NoSuchKey", 404, "The specified key does not exist."), Cause::ObjectNotFound),
            (failed("InvalidObjectState", 403, "The operation is not valid for the object's storage class"), Cause::Archived),
            (failed("InvalidRequest", 400, "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"), Cause::TooLarge),
            (failed("InvalidRequest", 400, "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."), Cause::SseC),
            (failed("SlowDown", 503, "Please reduce your request rate."), Cause::Throttled),
            (failed("InternalError", 500, "We encountered an internal error."), Cause::ServerError),
            (failed("AccessDenied", 403, "not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:eu-west-1:222222222222:key/9a8b"), Cause::DestinationKeyDenied),
            (failed("AccessDenied", 403, "not authorized to perform: s3:PutObject on resource: arn:aws:s3:::dst/k"), Cause::DestinationWriteDenied),
            (failed("MethodNotAllowed", 405, "nope"), Cause::Other),
        ];
        for (task, cause) in cases {
            assert_eq!(classify(&task, None), cause, "{task:?}");
        }
    }

    #[test]
    fn key_arn_is_read_from_the_message() {
        assert_eq!(
            kms_key_in("on resource: arn:aws:kms:eu-west-1:111111111111:key/1234abcd because"),
            Some("arn:aws:kms:eu-west-1:111111111111:key/1234abcd")
        );
        assert_eq!(kms_key_in("arn:aws:s3:::bucket/key"), None);
    }

    /// AWS's own shape: the caller's STS ARN comes first, the key second (IAM User Guide,
    /// "Troubleshoot access denied error messages").
    const DENIED_ON_KEY: &str = "User: arn:aws:sts::111122223333:assumed-role/ferry-x-batch/s3-batch-operations_1700000000000 \
         is not authorized to perform: kms:GenerateDataKey on resource: \
         arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab \
         because no resource-based policy allows the kms:GenerateDataKey action";

    #[test]
    fn the_key_is_found_after_the_callers_arn_in_any_partition_and_before_punctuation() {
        let key = "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(kms_key_in(DENIED_ON_KEY), Some(key));
        for partition in ["aws-us-gov", "aws-cn"] {
            let message = DENIED_ON_KEY.replace("arn:aws:", &format!("arn:{partition}:"));
            let expected = key.replace("arn:aws:", &format!("arn:{partition}:"));
            assert_eq!(kms_key_in(&message), Some(expected.as_str()), "{message}");
        }
        for wrapped in [
            format!("on resource: {key}."),
            format!("on resource: {key}, then"),
            format!("(resource {key})"),
            format!("resource \"{key}\""),
            format!("resource '{key}';"),
            format!("resource:{key}"),
        ] {
            assert_eq!(kms_key_in(&wrapped), Some(key), "{wrapped}");
        }
        assert_eq!(
            kms_key_in("denied on arn:aws:kms:eu-west-1:111111111111:alias/ferry_keys/prod-1."),
            Some("arn:aws:kms:eu-west-1:111111111111:alias/ferry_keys/prod-1")
        );
        // Only the caller's and the object's ARNs: no key named.
        assert_eq!(
            kms_key_in(
                "User: arn:aws:sts::111122223333:assumed-role/r/s is not authorized to perform: \
                 s3:GetObject on resource: arn:aws:s3:::bucket/arn:aws:kms:key"
            ),
            None
        );
    }

    /// The kms-inventory example's keys: source key in 111111111111, destination key in
    /// 222222222222 (where the job role is).
    fn spec_with_both_keys() -> TransferSpec {
        let toml = include_str!("../../../ferry-plan/tests/fixtures/minimal-spec.toml")
            .replace(
                "bucket = \"src-bucket\"",
                "bucket = \"src-bucket\"\nkms_key_arn = \"arn:aws:kms:us-east-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011\"",
            )
            .replace(
                "region = \"us-east-1\"\nbucket = \"dst-bucket\"",
                "region = \"us-east-1\"\nbucket = \"dst-bucket\"\nkms_key_arn = \"arn:aws:kms:us-east-1:222222222222:key/9a8b7c6d-5e4f-4321-9876-fedcba987654\"",
            );
        let spec = TransferSpec::from_toml_str(&toml).expect("spec parses");
        assert!(spec.source.kms_key_arn.is_some() && spec.destination.kms_key_arn.is_some());
        spec
    }

    fn denied(action: &str, key: &str) -> TaskResult {
        failed(
            "AccessDenied",
            403,
            &format!(
                "User: arn:aws:sts::222222222222:assumed-role/ferry-t-batch/s3-batch-operations_1700000000000 \
                 is not authorized to perform: {action} on resource: {key} because no \
                 resource-based policy allows the {action} action"
            ),
        )
    }

    #[test]
    fn a_refused_destination_key_sends_people_to_the_destination_accounts_key_policy() {
        let spec = spec_with_both_keys();
        let dst_key = spec.destination.kms_key_arn.clone().unwrap_or_default();
        let src_key = spec.source.kms_key_arn.clone().unwrap_or_default();
        // kms:Decrypt on the destination key (multipart copies need it): the action alone
        // would say "source", only the key ARN after the caller's can tell.
        for action in ["kms:Decrypt", "kms:GenerateDataKey"] {
            let task = denied(action, &dst_key);
            assert_eq!(
                classify(&task, Some(&spec)),
                Cause::DestinationKeyDenied,
                "{action}"
            );
            let fix = fix_for(classify(&task, Some(&spec)), Some(&spec), &task);
            assert!(
                fix.contains(&format!(
                    "the key policy of {dst_key} in the destination account 222222222222"
                )),
                "{fix}"
            );
            assert!(fix.contains("--side destination"), "{fix}");
            assert!(
                !fix.contains(&src_key) && !fix.contains("111111111111"),
                "{fix}"
            );
        }
        // And the source key still goes to the source account.
        let task = denied("kms:Decrypt", &src_key);
        assert_eq!(classify(&task, Some(&spec)), Cause::SourceKeyDenied);
        let fix = fix_for(Cause::SourceKeyDenied, Some(&spec), &task);
        assert!(
            fix.contains(&format!(
                "the key policy of {src_key} in the source account 111111111111"
            )),
            "{fix}"
        );
        assert!(
            fix.contains("--side source") && !fix.contains(&dst_key),
            "{fix}"
        );
    }

    #[test]
    fn a_key_the_spec_does_not_name_is_placed_by_its_account() {
        let spec = spec_with_both_keys();
        let other_dst =
            "arn:aws:kms:us-east-1:222222222222:key/ffffffff-0000-4000-8000-000000000000";
        let other_src =
            "arn:aws:kms:us-east-1:111111111111:key/eeeeeeee-0000-4000-8000-000000000000";
        assert_eq!(
            classify(&denied("kms:Decrypt", other_dst), Some(&spec)),
            Cause::DestinationKeyDenied
        );
        let task = denied("kms:Decrypt", other_src);
        assert_eq!(classify(&task, Some(&spec)), Cause::SourceKeyDenied);
        let fix = fix_for(Cause::SourceKeyDenied, Some(&spec), &task);
        assert!(
            fix.contains(&format!("encrypted with {other_src}")),
            "{fix}"
        );
    }

    #[test]
    fn writes_are_told_from_reads_by_bucket_arn_in_any_partition() {
        let spec = spec_with_both_keys();
        let put = |arn: &str| {
            failed(
                "AccessDenied",
                403,
                &format!(
                    "not authorized to perform an action on resource: {arn} with an explicit deny"
                ),
            )
        };
        for arn in [
            "arn:aws:s3:::dst-bucket/k",
            "arn:aws-us-gov:s3:::dst-bucket/k",
            "arn:aws-cn:s3:::dst-bucket",
        ] {
            assert_eq!(
                classify(&put(arn), Some(&spec)),
                Cause::DestinationWriteDenied,
                "{arn}"
            );
        }
        // Another bucket whose name starts with the destination's is not the destination.
        assert_eq!(
            classify(&put("arn:aws:s3:::dst-bucket-old/k"), Some(&spec)),
            Cause::SourceReadDenied
        );
    }
}
