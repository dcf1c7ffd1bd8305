//! What the stack pins in `large-object-copier`'s environment, and the check each task passes
//! before the copier acts as the batch role (#15, item 6).
//!
//! Why: the copier works as the transfer's Batch Operations role, the one principal the source
//! account's bucket and key policies name. Batch Operations invokes it with that role's
//! credentials (S3 User Guide, "Invoke AWS Lambda function": the job's role needs
//! `lambda:InvokeFunction`), so the function's resource-based policy can't tell a job from any
//! principal of the account allowed `lambda:InvokeFunction`: the payload is untrusted text.
//! Everything that decides which object is read and what is written where (source bucket and
//! account, destination bucket, account and folder, storage class, encryption, checksum,
//! metadata, tags) is therefore set twice by the template: in the job's `UserArguments`
//! (through the plan) and here, from the same stack parameters. A task whose bucket or
//! arguments differ is refused before anything is read or written.
//!
//! Metadata is pinned to `COPY`: the stack has no parameters to replace it, so no job of the
//! stack carries `REPLACE`, and replaced content headers (`Content-Type: text/html` on a copy
//! served by a website or CDN) are the kind of write an invocation must not choose. Replacement
//! tags are pinned exactly (`DestinationNewTags`, at most 1024 characters in the template, the
//! size a `UserArguments` value can carry anyway): tags drive tag-based access and lifecycle
//! rules, so they are as much "what is written" as the bytes.

use std::collections::BTreeMap;

use super::task::CopyTask;
use ferry_plan::large_object_arguments::{
    keys, parse_metadata, LargeObjectCopyArguments, MetadataArgument, TagsArgument,
};
use ferry_plan::spec::{ChecksumAlgorithm, StorageClass, TagHandling};

/// The environment variables the template sets (docs/stack.md, "Environment of the functions").
pub mod vars {
    /// `TransferName`: the jobs a copier serves are tagged `ferry:transfer` with it.
    pub const TRANSFER_NAME: &str = "FERRY_TRANSFER_NAME";
    /// The copier's own unqualified ARN: a job must invoke this function.
    pub const FUNCTION_ARN: &str = "FERRY_FUNCTION_ARN";
    pub const SOURCE_ACCOUNT: &str = "FERRY_SOURCE_ACCOUNT";
    pub const SOURCE_BUCKET: &str = "FERRY_SOURCE_BUCKET";
    pub const DESTINATION_ACCOUNT: &str = "FERRY_DESTINATION_ACCOUNT";
    pub const DESTINATION_BUCKET: &str = "FERRY_DESTINATION_BUCKET";
    /// The spec's folder (`from-prod/`) or empty.
    pub const DESTINATION_KEY_PREFIX: &str = "FERRY_DESTINATION_KEY_PREFIX";
    pub const STORAGE_CLASS: &str = "FERRY_STORAGE_CLASS";
    pub const DESTINATION_KMS_KEY_ARN: &str = "FERRY_DESTINATION_KMS_KEY_ARN";
    pub const BUCKET_KEY_ENABLED: &str = "FERRY_BUCKET_KEY_ENABLED";
    pub const CHECKSUM_ALGORITHM: &str = "FERRY_CHECKSUM_ALGORITHM";
    /// `COPY` (the template's value) or `REPLACE:{json}`, as the `metadata` argument.
    pub const DESTINATION_METADATA: &str = "FERRY_DESTINATION_METADATA";
    /// `copy`, `remove` or `replace` (the `DestinationTags` parameter).
    pub const DESTINATION_TAGS: &str = "FERRY_DESTINATION_TAGS";
    /// The tags with `replace`: a JSON object (the `DestinationNewTags` parameter).
    pub const DESTINATION_NEW_TAGS: &str = "FERRY_DESTINATION_NEW_TAGS";
}

/// Which stack parameter sets each variable, for messages that say where a pin comes from.
fn origin(variable: &str) -> &'static str {
    match variable {
        vars::TRANSFER_NAME => "TransferName",
        vars::FUNCTION_ARN => "the function's own name, <stack>-large-object-copier",
        vars::SOURCE_ACCOUNT => "SourceAccountId",
        vars::SOURCE_BUCKET => "SourceBucket",
        vars::DESTINATION_ACCOUNT => "the stack's account",
        vars::DESTINATION_BUCKET => "DestinationBucket",
        vars::DESTINATION_KEY_PREFIX => "DestinationKeyPrefix",
        vars::STORAGE_CLASS => "StorageClass",
        vars::DESTINATION_KMS_KEY_ARN => "DestinationKmsKeyArn",
        vars::BUCKET_KEY_ENABLED => "BucketKeyEnabled",
        vars::CHECKSUM_ALGORITHM => "ChecksumAlgorithm",
        vars::DESTINATION_METADATA => "the template (the stack never replaces metadata)",
        vars::DESTINATION_TAGS => "DestinationTags",
        vars::DESTINATION_NEW_TAGS => "DestinationNewTags",
        _ => "the template",
    }
}

/// A pinned variable that is missing or malformed: the copier refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable} = {value:?}: {problem}; the stack sets it from {}", origin(.variable))]
pub struct PinError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

/// A task that differs from what the stack pinned: refused, naming the field, its value and
/// the pinned one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} = {value} is refused: this copier copies only with {expected} ({variable}, pinned by the stack from {}). \
     Jobs for it are created from the stack's plan; a job with other settings is not this stack's (create it from \
     the current plan, or change the stack's parameter and run the job again)",
    origin(.variable)
)]
pub struct PinMismatch {
    /// `task.s3Bucket` or `userArguments.<key>`.
    pub field: String,
    /// The value as received (quoted), or `(none)`.
    pub value: String,
    /// The pinned value (quoted), or `(none)`.
    pub expected: String,
    pub variable: &'static str,
}

/// The values the template pinned, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopierPins {
    pub transfer_name: String,
    /// The copier's unqualified ARN.
    pub function_arn: String,
    pub source_bucket: String,
    /// The settings every task of this stack's jobs carries (also what a schema 1.0 job, which
    /// carries none, copies with).
    pub arguments: LargeObjectCopyArguments,
}

fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => format!("{v:?}"),
        _ => "(none)".to_string(),
    }
}

fn tags_text(tags: &TagsArgument) -> String {
    match tags {
        TagsArgument::Copy => "\"COPY\"".into(),
        TagsArgument::Remove => "\"REMOVE\"".into(),
        TagsArgument::Replace(t) => format!(
            "\"REPLACE:{}\"",
            serde_json::to_string(t).unwrap_or_default()
        ),
    }
}

fn metadata_text(metadata: &MetadataArgument) -> String {
    match metadata {
        MetadataArgument::Copy => "\"COPY\"".into(),
        MetadataArgument::Replace(m) => format!("\"REPLACE\" ({m:?})"),
    }
}

/// The folder without its slash (`from-prod`), as the job's `TargetKeyPrefix`/`keyPrefix`:
/// `from-prod`, `from-prod/` and none/empty compare by the key they give.
fn folder(prefix: Option<&str>) -> Option<&str> {
    prefix
        .map(ferry_plan::destination_key::target_key_prefix)
        .filter(|p| !p.is_empty())
}

fn is_account(v: &str) -> bool {
    v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit())
}

fn is_bucket(v: &str) -> bool {
    (3..=63).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn enum_of<T: serde::de::DeserializeOwned>(value: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string())).ok()
}

impl CopierPins {
    /// Reads the pins with `var` (the process environment in the function, the template's
    /// resolved environment in tests), listing every problem at once. Required: transfer
    /// name, function ARN, both accounts and both buckets; the others are empty when the
    /// stack's parameter is (no prefix, S3's default class, SSE-S3, no checksum, copied tags).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<PinError>> {
        let mut problems = Vec::new();
        let get = |name: &str| var(name).map(|v| v.trim().to_string()).unwrap_or_default();
        let mut check = |variable: &'static str, ok: bool, value: &str, problem: &str| {
            if !ok {
                problems.push(PinError {
                    variable,
                    value: value.to_string(),
                    problem: problem.to_string(),
                });
            }
        };

        let transfer_name = get(vars::TRANSFER_NAME);
        check(
            vars::TRANSFER_NAME,
            !transfer_name.is_empty()
                && transfer_name.len() <= 40
                && transfer_name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            &transfer_name,
            "expected the transfer's name: 1 to 40 of [a-z0-9-]",
        );
        let function_arn = get(vars::FUNCTION_ARN);
        let arn_parts: Vec<&str> = function_arn.split(':').collect();
        check(
            vars::FUNCTION_ARN,
            arn_parts.len() == 7
                && arn_parts[0] == "arn"
                && arn_parts[2] == "lambda"
                && arn_parts[5] == "function"
                && !arn_parts[6].is_empty(),
            &function_arn,
            "expected the function's unqualified ARN, arn:<partition>:lambda:<region>:<account>:function:<name>",
        );
        let source_account = get(vars::SOURCE_ACCOUNT);
        check(
            vars::SOURCE_ACCOUNT,
            is_account(&source_account),
            &source_account,
            "expected a 12-digit account id",
        );
        let destination_account = get(vars::DESTINATION_ACCOUNT);
        check(
            vars::DESTINATION_ACCOUNT,
            is_account(&destination_account),
            &destination_account,
            "expected a 12-digit account id",
        );
        let source_bucket = get(vars::SOURCE_BUCKET);
        check(
            vars::SOURCE_BUCKET,
            is_bucket(&source_bucket),
            &source_bucket,
            "expected a bucket name (3 to 63 of [a-z0-9.-])",
        );
        let destination_bucket = get(vars::DESTINATION_BUCKET);
        check(
            vars::DESTINATION_BUCKET,
            is_bucket(&destination_bucket),
            &destination_bucket,
            "expected a bucket name (3 to 63 of [a-z0-9.-])",
        );
        let prefix = get(vars::DESTINATION_KEY_PREFIX);
        let storage_class = get(vars::STORAGE_CLASS);
        check(
            vars::STORAGE_CLASS,
            storage_class.is_empty() || enum_of::<StorageClass>(&storage_class).is_some(),
            &storage_class,
            "expected empty or STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE",
        );
        let kms_key_arn = get(vars::DESTINATION_KMS_KEY_ARN);
        check(
            vars::DESTINATION_KMS_KEY_ARN,
            kms_key_arn.is_empty()
                || (kms_key_arn.starts_with("arn:")
                    && kms_key_arn.contains(":kms:")
                    && kms_key_arn.contains(":key/")),
            &kms_key_arn,
            "expected empty (SSE-S3) or a full KMS key ARN",
        );
        let bucket_key = get(vars::BUCKET_KEY_ENABLED);
        check(
            vars::BUCKET_KEY_ENABLED,
            matches!(bucket_key.as_str(), "" | "true" | "false"),
            &bucket_key,
            "expected true or false",
        );
        let checksum = get(vars::CHECKSUM_ALGORITHM);
        check(
            vars::CHECKSUM_ALGORITHM,
            checksum.is_empty() || enum_of::<ChecksumAlgorithm>(&checksum).is_some(),
            &checksum,
            "expected empty or CRC32, CRC32C, CRC64NVME, SHA1, SHA256",
        );
        let metadata_raw = get(vars::DESTINATION_METADATA);
        let metadata = parse_metadata(&metadata_raw);
        check(
            vars::DESTINATION_METADATA,
            metadata.is_ok(),
            &metadata_raw,
            "expected COPY or REPLACE:{json}",
        );
        let tags_raw = get(vars::DESTINATION_TAGS);
        let handling = if tags_raw.is_empty() {
            Some(TagHandling::Copy)
        } else {
            enum_of::<TagHandling>(&tags_raw.to_ascii_lowercase())
        };
        check(
            vars::DESTINATION_TAGS,
            handling.is_some(),
            &tags_raw,
            "expected copy, remove or replace",
        );
        let new_tags_raw = get(vars::DESTINATION_NEW_TAGS);
        let new_tags = if new_tags_raw.is_empty() {
            Ok(BTreeMap::new())
        } else {
            serde_json::from_str::<BTreeMap<String, String>>(&new_tags_raw)
        };
        check(
            vars::DESTINATION_NEW_TAGS,
            new_tags.is_ok(),
            &new_tags_raw,
            "expected empty or a JSON object of tag keys to string values",
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        let kms_key_arn = (!kms_key_arn.is_empty()).then_some(kms_key_arn);
        let tags = match handling.unwrap_or_default() {
            TagHandling::Copy => TagsArgument::Copy,
            TagHandling::Remove => TagsArgument::Remove,
            TagHandling::Replace => TagsArgument::Replace(new_tags.unwrap_or_default()),
        };
        Ok(CopierPins {
            transfer_name,
            function_arn,
            source_bucket,
            arguments: LargeObjectCopyArguments {
                destination_bucket,
                destination_account,
                source_account,
                // As the plan gives the job (`LargeObjectCopyArguments::from_spec`).
                key_prefix: folder(Some(&prefix)).map(str::to_string),
                storage_class: (!storage_class.is_empty()).then_some(storage_class),
                bucket_key_enabled: kms_key_arn.is_some() && bucket_key == "true",
                kms_key_arn,
                checksum_algorithm: (!checksum.is_empty()).then(|| checksum.to_ascii_uppercase()),
                metadata: metadata.unwrap_or(MetadataArgument::Copy),
                tags,
            },
        })
    }

    /// The task's source bucket must be the pinned one (Batch Operations names it in the
    /// task; no argument of the job can vouch for it).
    pub fn check_task(&self, task: &CopyTask) -> Result<(), PinMismatch> {
        if task.bucket == self.source_bucket {
            return Ok(());
        }
        Err(PinMismatch {
            field: "task.s3Bucket".into(),
            value: format!("{:?}", task.bucket),
            expected: format!("source bucket {:?}", self.source_bucket),
            variable: vars::SOURCE_BUCKET,
        })
    }

    /// Every argument must be the pinned setting; lists each that isn't.
    pub fn check_arguments(&self, args: &LargeObjectCopyArguments) -> Result<(), Vec<PinMismatch>> {
        let pin = &self.arguments;
        let mut out = Vec::new();
        let mut differ = |key: &str, value: String, expected: String, variable| {
            out.push(PinMismatch {
                field: format!("userArguments.{key}"),
                value,
                expected,
                variable,
            })
        };
        if args.destination_bucket != pin.destination_bucket {
            differ(
                keys::DESTINATION_BUCKET,
                shown(Some(&args.destination_bucket)),
                format!(
                    "destination bucket {}",
                    shown(Some(&pin.destination_bucket))
                ),
                vars::DESTINATION_BUCKET,
            );
        }
        if args.destination_account != pin.destination_account {
            differ(
                keys::DESTINATION_ACCOUNT,
                shown(Some(&args.destination_account)),
                format!(
                    "destination account {}",
                    shown(Some(&pin.destination_account))
                ),
                vars::DESTINATION_ACCOUNT,
            );
        }
        if args.source_account != pin.source_account {
            differ(
                keys::SOURCE_ACCOUNT,
                shown(Some(&args.source_account)),
                format!("source account {}", shown(Some(&pin.source_account))),
                vars::SOURCE_ACCOUNT,
            );
        }
        if folder(args.key_prefix.as_deref()) != folder(pin.key_prefix.as_deref()) {
            differ(
                keys::KEY_PREFIX,
                shown(args.key_prefix.as_deref()),
                format!("key prefix {}", shown(pin.key_prefix.as_deref())),
                vars::DESTINATION_KEY_PREFIX,
            );
        }
        if args.storage_class != pin.storage_class {
            differ(
                keys::STORAGE_CLASS,
                shown(args.storage_class.as_deref()),
                format!("storage class {}", shown(pin.storage_class.as_deref())),
                vars::STORAGE_CLASS,
            );
        }
        if args.kms_key_arn != pin.kms_key_arn {
            differ(
                keys::KMS_KEY_ARN,
                shown(args.kms_key_arn.as_deref()),
                format!("KMS key {}", shown(pin.kms_key_arn.as_deref())),
                vars::DESTINATION_KMS_KEY_ARN,
            );
        }
        if args.bucket_key_enabled != pin.bucket_key_enabled {
            differ(
                keys::BUCKET_KEY_ENABLED,
                format!("\"{}\"", args.bucket_key_enabled),
                format!("bucket key \"{}\"", pin.bucket_key_enabled),
                vars::BUCKET_KEY_ENABLED,
            );
        }
        let upper = |a: &Option<String>| a.as_ref().map(|a| a.to_ascii_uppercase());
        if upper(&args.checksum_algorithm) != upper(&pin.checksum_algorithm) {
            differ(
                keys::CHECKSUM_ALGORITHM,
                shown(args.checksum_algorithm.as_deref()),
                format!("checksum {}", shown(pin.checksum_algorithm.as_deref())),
                vars::CHECKSUM_ALGORITHM,
            );
        }
        if args.metadata != pin.metadata {
            differ(
                keys::METADATA,
                metadata_text(&args.metadata),
                format!("metadata {}", metadata_text(&pin.metadata)),
                vars::DESTINATION_METADATA,
            );
        }
        if args.tags != pin.tags {
            let variable = match (&args.tags, &pin.tags) {
                (TagsArgument::Replace(_), TagsArgument::Replace(_)) => vars::DESTINATION_NEW_TAGS,
                _ => vars::DESTINATION_TAGS,
            };
            differ(
                keys::TAGS,
                tags_text(&args.tags),
                format!("tags {}", tags_text(&pin.tags)),
                variable,
            );
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = [
            (vars::TRANSFER_NAME, "media"),
            (
                vars::FUNCTION_ARN,
                "arn:aws:lambda:us-east-1:222222222222:function:ferry-large-object-copier",
            ),
            (vars::SOURCE_ACCOUNT, "111111111111"),
            (vars::SOURCE_BUCKET, "acme-media-prod"),
            (vars::DESTINATION_ACCOUNT, "222222222222"),
            (vars::DESTINATION_BUCKET, "acme-media-archive"),
            (vars::DESTINATION_KEY_PREFIX, "from-prod/"),
            (vars::STORAGE_CLASS, "STANDARD_IA"),
            (vars::DESTINATION_KMS_KEY_ARN, ""),
            (vars::BUCKET_KEY_ENABLED, "true"),
            (vars::CHECKSUM_ALGORITHM, ""),
            (vars::DESTINATION_METADATA, "COPY"),
            (vars::DESTINATION_TAGS, "copy"),
            (vars::DESTINATION_NEW_TAGS, ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        vars
    }

    fn pins(extra: &[(&str, &str)]) -> Result<CopierPins, Vec<PinError>> {
        let vars = env(extra);
        CopierPins::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn pins_read_as_the_plan_gives_the_job() {
        let p = pins(&[]).expect("valid");
        assert_eq!(p.arguments.key_prefix.as_deref(), Some("from-prod"));
        // A Bucket Key needs SSE-KMS: without a key it is off, as from_spec makes it.
        assert!(!p.arguments.bucket_key_enabled);
        assert_eq!(p.arguments.tags, TagsArgument::Copy);
        let p = pins(&[
            (vars::DESTINATION_TAGS, "replace"),
            (vars::DESTINATION_NEW_TAGS, r#"{"copied-by": "ferry"}"#),
            (vars::DESTINATION_KEY_PREFIX, ""),
        ])
        .expect("valid");
        assert_eq!(
            p.arguments.tags,
            TagsArgument::Replace(BTreeMap::from([("copied-by".into(), "ferry".into())]))
        );
        assert_eq!(p.arguments.key_prefix, None);
    }

    #[test]
    fn every_bad_or_missing_pin_is_named() {
        let vars = env(&[
            (vars::STORAGE_CLASS, "COLD"),
            (vars::DESTINATION_NEW_TAGS, "[1]"),
        ]);
        let problems = CopierPins::from_vars(|k| {
            (k != vars::SOURCE_BUCKET)
                .then(|| vars.get(k).cloned())
                .flatten()
        })
        .expect_err("refused");
        let named: Vec<&str> = problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            named,
            [
                vars::SOURCE_BUCKET,
                vars::STORAGE_CLASS,
                vars::DESTINATION_NEW_TAGS
            ]
        );
        let text = problems[1].to_string();
        assert!(
            text.contains("FERRY_STORAGE_CLASS = \"COLD\"") && text.contains("StorageClass"),
            "{text}"
        );
    }

    #[test]
    fn each_differing_setting_is_refused_by_name() {
        let p = pins(&[]).expect("valid");
        let mut args = p.arguments.clone();
        assert_eq!(p.check_arguments(&args), Ok(()));
        // An older job's prefix with its slash names the same keys.
        args.key_prefix = Some("from-prod/".into());
        assert_eq!(p.check_arguments(&args), Ok(()));
        args.key_prefix = Some("elsewhere".into());
        args.storage_class = Some("GLACIER".into());
        args.tags = TagsArgument::Replace(BTreeMap::from([("public".into(), "yes".into())]));
        let refused = p.check_arguments(&args).expect_err("refused");
        let fields: Vec<&str> = refused.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "userArguments.keyPrefix",
                "userArguments.storageClass",
                "userArguments.tags"
            ]
        );
        let text = refused[1].to_string();
        assert!(
            text.contains("userArguments.storageClass = \"GLACIER\"")
                && text.contains("storage class \"STANDARD_IA\"")
                && text.contains("FERRY_STORAGE_CLASS"),
            "{text}"
        );
        let task = CopyTask {
            task_id: "t".into(),
            bucket: "acme-media-ops".into(),
            key: "k".into(),
            version_id: None,
        };
        let text = p.check_task(&task).expect_err("refused").to_string();
        assert!(
            text.contains("task.s3Bucket = \"acme-media-ops\"")
                && text.contains("\"acme-media-prod\""),
            "{text}"
        );
    }
}
