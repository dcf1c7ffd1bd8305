//! Why a task failed, and what to do about it.
//!
//! [`classify`] sorts a failed task into a [`Cause`] from its error code, HTTP status and
//! message (S3's messages name the denied action and, for KMS, the key). [`fix_for`] turns a
//! cause into the fix a person can act on: which account, which resource and which of Ferry's
//! statements (Sids `Ferry<Name><Purpose>`, see [`crate::policy::sid`]) is missing, and the
//! command that adds it. Without the transfer's spec the fixes are still given, in general terms.

use serde::Serialize;

use super::results::TaskResult;
use crate::policy::batch_role::role_arn;
use crate::policy::sid;
use crate::spec::TransferSpec;

/// Failure causes, most actionable first (the e-mail lists them in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// KMS refused to decrypt the source object for the Batch Operations role.
    SourceKeyDenied,
    /// KMS refused a data key for the destination (or another key the job writes with).
    DestinationKeyDenied,
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

/// The first KMS key ARN a message names, if any.
pub fn kms_key_in(message: &str) -> Option<&str> {
    let start = message.find("arn:aws")?;
    let arn = message[start..]
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | ')' | '('))
        .next()?;
    let arn = arn.trim_end_matches('.');
    (arn.contains(":kms:") && (arn.contains(":key/") || arn.contains(":alias/"))).then_some(arn)
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
        let key = kms_key_in(message);
        let destination_key = spec.and_then(|s| s.destination.kms_key_arn.as_deref());
        let source_key = spec.and_then(|s| s.source.kms_key_arn.as_deref());
        return match (key, destination_key) {
            (Some(k), Some(d)) if same_key(k, d) => Cause::DestinationKeyDenied,
            (Some(k), _) if source_key.is_some_and(|s| same_key(k, s)) => Cause::SourceKeyDenied,
            _ if lower.contains("kms:generatedatakey") || lower.contains("kms:encrypt") => {
                Cause::DestinationKeyDenied
            }
            _ => Cause::SourceKeyDenied,
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
                message.contains(&format!("arn:aws:s3:::{}", s.destination.bucket))
                    && !message.contains(&format!("arn:aws:s3:::{}", s.source.bucket))
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
    use crate::report::results::TaskStatus;

    fn failed(code: &str, http: u16, message: &str) -> TaskResult {
        TaskResult {
            bucket: "src".into(),
            key: "k".into(),
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
}
