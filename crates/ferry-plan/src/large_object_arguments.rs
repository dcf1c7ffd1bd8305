//! The destination settings a `large-object-copier` invocation needs, carried in the
//! LambdaInvoke job's `UserArguments` (schema 2.0).
//!
//! Batch Operations Copy stops at 5 GiB, so larger objects go to a LambdaInvoke job whose
//! function does a multipart copy. That function must copy exactly as the Copy job would, so its
//! settings are derived here from the same [`TransferSpec`] the Copy operation is built from, and
//! read back by the function with every problem named. AWS limits `UserArguments` to 10 entries,
//! keys ≤ 64 and values ≤ 1024 characters; [`LargeObjectCopyArguments::to_user_arguments`]
//! checks them so a job AWS would refuse is never requested.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{MetadataHandling, NewMetadataSpec, TagHandling, TransferSpec};

pub const MAX_USER_ARGUMENTS: usize = 10;
pub const MAX_USER_ARGUMENT_KEY_CHARS: usize = 64;
pub const MAX_USER_ARGUMENT_VALUE_CHARS: usize = 1024;

/// User-argument keys (camelCase, as AWS's own examples write them).
pub mod keys {
    pub const DESTINATION_BUCKET: &str = "destinationBucket";
    pub const DESTINATION_ACCOUNT: &str = "destinationAccount";
    pub const SOURCE_ACCOUNT: &str = "sourceAccount";
    pub const KEY_PREFIX: &str = "keyPrefix";
    pub const STORAGE_CLASS: &str = "storageClass";
    pub const KMS_KEY_ARN: &str = "kmsKeyArn";
    pub const BUCKET_KEY_ENABLED: &str = "bucketKeyEnabled";
    pub const CHECKSUM_ALGORITHM: &str = "checksumAlgorithm";
    pub const METADATA: &str = "metadata";
    pub const TAGS: &str = "tags";
}

/// How the copy's metadata is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataArgument {
    /// Content headers and user metadata come from the source object.
    Copy,
    /// Replaced by these (argument value `REPLACE:<json>`).
    Replace(NewMetadataSpec),
}

/// How the copy's tags are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagsArgument {
    /// The source object's tags (read with GetObjectTagging).
    Copy,
    /// No tags.
    Remove,
    /// Exactly these (argument value `REPLACE:<json object>`).
    Replace(BTreeMap<String, String>),
}

/// Everything a large-object copy needs besides the task's source bucket, key and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeObjectCopyArguments {
    pub destination_bucket: String,
    /// `ExpectedBucketOwner` for every destination call.
    pub destination_account: String,
    /// `ExpectedSourceBucketOwner` for every source read.
    pub source_account: String,
    /// Prepended to the source key, as the Copy operation's `TargetKeyPrefix` is.
    pub key_prefix: Option<String>,
    /// `None`: S3's default (`STANDARD`).
    pub storage_class: Option<String>,
    /// `None`: SSE-S3.
    pub kms_key_arn: Option<String>,
    pub bucket_key_enabled: bool,
    /// `CRC32`, `CRC32C`, `SHA1`, `SHA256`, `CRC64NVME`, when the spec asks for one.
    pub checksum_algorithm: Option<String>,
    pub metadata: MetadataArgument,
    pub tags: TagsArgument,
}

/// A problem with one user argument, for the function's `PermanentFailure` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("userArguments.{key} = {value:?}: {message}")]
pub struct UserArgumentProblem {
    pub key: String,
    pub value: String,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataJson {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    cache_control: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    user_metadata: BTreeMap<String, String>,
}

const REPLACE_PREFIX: &str = "REPLACE:";

impl LargeObjectCopyArguments {
    /// The settings of a validated spec: the same choices the Copy operation makes.
    pub fn from_spec(spec: &TransferSpec) -> Self {
        let d = &spec.destination;
        LargeObjectCopyArguments {
            destination_bucket: d.bucket.clone(),
            destination_account: d.account_id.clone(),
            source_account: spec.source.account_id.clone(),
            // The same value the Copy job gets as TargetKeyPrefix (no trailing '/').
            key_prefix: d
                .key_prefix
                .as_deref()
                .map(crate::destination_key::target_key_prefix)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            storage_class: d.storage_class.map(|c| c.as_str().to_string()),
            kms_key_arn: d.kms_key_arn.clone(),
            bucket_key_enabled: d.kms_key_arn.is_some() && d.bucket_key_enabled,
            checksum_algorithm: d.checksum_algorithm.map(|c| c.as_str().to_string()),
            metadata: match (&d.metadata, &d.new_metadata) {
                (MetadataHandling::Replace, Some(m)) => MetadataArgument::Replace(m.clone()),
                (MetadataHandling::Replace, None) => {
                    MetadataArgument::Replace(NewMetadataSpec::default())
                }
                (MetadataHandling::Copy, _) => MetadataArgument::Copy,
            },
            tags: match d.tags {
                TagHandling::Copy => TagsArgument::Copy,
                TagHandling::Remove => TagsArgument::Remove,
                TagHandling::Replace => {
                    TagsArgument::Replace(d.new_tags.clone().unwrap_or_default())
                }
            },
        }
    }

    /// The job's `UserArguments`. Fails, naming the argument, when AWS's size limits would be
    /// exceeded (replacement metadata or tags too long to carry).
    pub fn to_user_arguments(&self) -> Result<BTreeMap<String, String>, UserArgumentProblem> {
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        args.insert(
            keys::DESTINATION_BUCKET.into(),
            self.destination_bucket.clone(),
        );
        args.insert(
            keys::DESTINATION_ACCOUNT.into(),
            self.destination_account.clone(),
        );
        args.insert(keys::SOURCE_ACCOUNT.into(), self.source_account.clone());
        if let Some(prefix) = &self.key_prefix {
            args.insert(keys::KEY_PREFIX.into(), prefix.clone());
        }
        if let Some(class) = &self.storage_class {
            args.insert(keys::STORAGE_CLASS.into(), class.clone());
        }
        if let Some(key) = &self.kms_key_arn {
            args.insert(keys::KMS_KEY_ARN.into(), key.clone());
            args.insert(
                keys::BUCKET_KEY_ENABLED.into(),
                self.bucket_key_enabled.to_string(),
            );
        }
        if let Some(algorithm) = &self.checksum_algorithm {
            args.insert(keys::CHECKSUM_ALGORITHM.into(), algorithm.clone());
        }
        let metadata = match &self.metadata {
            MetadataArgument::Copy => "COPY".to_string(),
            MetadataArgument::Replace(m) => {
                let json = MetadataJson {
                    cache_control: m.cache_control.clone(),
                    content_disposition: m.content_disposition.clone(),
                    content_encoding: m.content_encoding.clone(),
                    content_language: m.content_language.clone(),
                    content_type: m.content_type.clone(),
                    user_metadata: m.user_metadata.clone(),
                };
                format!("{REPLACE_PREFIX}{}", to_json(&json))
            }
        };
        args.insert(keys::METADATA.into(), metadata);
        let tags = match &self.tags {
            TagsArgument::Copy => "COPY".to_string(),
            TagsArgument::Remove => "REMOVE".to_string(),
            TagsArgument::Replace(tags) => format!("{REPLACE_PREFIX}{}", to_json(tags)),
        };
        args.insert(keys::TAGS.into(), tags);

        for (key, value) in &args {
            let chars = value.chars().count();
            if chars > MAX_USER_ARGUMENT_VALUE_CHARS {
                return Err(UserArgumentProblem {
                    key: key.clone(),
                    value: value.chars().take(80).collect::<String>() + "…",
                    message: format!(
                        "{chars} characters, over LambdaInvoke's {MAX_USER_ARGUMENT_VALUE_CHARS}; \
                         shorten destination.new_metadata / destination.new_tags, or copy them \
                         from the source instead"
                    ),
                });
            }
        }
        debug_assert!(args.len() <= MAX_USER_ARGUMENTS);
        debug_assert!(args.keys().all(|k| k.len() <= MAX_USER_ARGUMENT_KEY_CHARS));
        Ok(args)
    }

    /// Reads the arguments back, listing every problem at once.
    pub fn from_user_arguments(
        args: &BTreeMap<String, String>,
    ) -> Result<Self, Vec<UserArgumentProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, value: &str, message: &str| {
            problems.push(UserArgumentProblem {
                key: key.to_string(),
                value: value.to_string(),
                message: message.to_string(),
            })
        };
        let optional = |key: &str| args.get(key).filter(|v| !v.is_empty()).cloned();
        let mut required = |key: &str| match optional(key) {
            Some(v) => v,
            None => {
                problem(
                    key,
                    "",
                    "missing; the job was not created by Ferry's launcher",
                );
                String::new()
            }
        };
        let destination_bucket = required(keys::DESTINATION_BUCKET);
        let destination_account = required(keys::DESTINATION_ACCOUNT);
        let source_account = required(keys::SOURCE_ACCOUNT);
        let metadata_raw = required(keys::METADATA);
        let tags_raw = required(keys::TAGS);

        let mut problems_after = Vec::new();
        let bucket_key_enabled = match optional(keys::BUCKET_KEY_ENABLED).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                problems_after.push(UserArgumentProblem {
                    key: keys::BUCKET_KEY_ENABLED.into(),
                    value: other.into(),
                    message: "expected true or false".into(),
                });
                false
            }
        };
        let metadata = parse_metadata(&metadata_raw).unwrap_or_else(|message| {
            problems_after.push(UserArgumentProblem {
                key: keys::METADATA.into(),
                value: metadata_raw.clone(),
                message: message.into(),
            });
            MetadataArgument::Copy
        });
        let tags = parse_tags(&tags_raw).unwrap_or_else(|message| {
            problems_after.push(UserArgumentProblem {
                key: keys::TAGS.into(),
                value: tags_raw.clone(),
                message: message.into(),
            });
            TagsArgument::Copy
        });
        problems.extend(problems_after);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(LargeObjectCopyArguments {
            destination_bucket,
            destination_account,
            source_account,
            key_prefix: optional(keys::KEY_PREFIX),
            storage_class: optional(keys::STORAGE_CLASS),
            kms_key_arn: optional(keys::KMS_KEY_ARN),
            bucket_key_enabled,
            checksum_algorithm: optional(keys::CHECKSUM_ALGORITHM),
            metadata,
            tags,
        })
    }

    /// The destination key for a source key, named as the Copy operation names it under
    /// `TargetKeyPrefix` (`<prefix>/<key>`, see [`crate::destination_key::copied_key`]).
    pub fn destination_key(&self, source_key: &str) -> String {
        crate::destination_key::copied_key(self.key_prefix.as_deref(), source_key)
    }

    /// The folder the copies are written under (`from-prod/`), or `""`: for messages that name
    /// the grant (`s3://<bucket>/<folder>*`).
    pub fn destination_folder(&self) -> String {
        match self.key_prefix.as_deref().map(|p| p.trim_end_matches('/')) {
            Some(p) if !p.is_empty() => format!("{p}/"),
            _ => String::new(),
        }
    }
}

/// A `metadata` value: `COPY` (or empty) or `REPLACE:{json}`.
pub fn parse_metadata(raw: &str) -> Result<MetadataArgument, &'static str> {
    match raw {
        "" | "COPY" => Ok(MetadataArgument::Copy),
        other => match other
            .strip_prefix(REPLACE_PREFIX)
            .map(serde_json::from_str::<MetadataJson>)
        {
            Some(Ok(m)) => Ok(MetadataArgument::Replace(NewMetadataSpec {
                cache_control: m.cache_control,
                content_disposition: m.content_disposition,
                content_encoding: m.content_encoding,
                content_language: m.content_language,
                content_type: m.content_type,
                user_metadata: m.user_metadata,
            })),
            _ => Err("expected COPY or REPLACE:{json}"),
        },
    }
}

/// A `tags` value: `COPY` (or empty), `REMOVE` or `REPLACE:{json object}`.
pub fn parse_tags(raw: &str) -> Result<TagsArgument, &'static str> {
    match raw {
        "" | "COPY" => Ok(TagsArgument::Copy),
        "REMOVE" => Ok(TagsArgument::Remove),
        other => match other
            .strip_prefix(REPLACE_PREFIX)
            .map(serde_json::from_str::<BTreeMap<String, String>>)
        {
            Some(Ok(t)) => Ok(TagsArgument::Replace(t)),
            _ => Err("expected COPY, REMOVE or REPLACE:{json object}"),
        },
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing maps of strings and an all-string struct cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra_destination: &str) -> TransferSpec {
        let text = format!(
            r#"
name = "big"
[source]
account_id = "111111111111"
region = "us-east-1"
bucket = "src"
kms_key_arn = "arn:aws:kms:us-east-1:111111111111:key/11111111-1111-1111-1111-111111111111"
[destination]
account_id = "222222222222"
region = "us-east-1"
bucket = "dst"
kms_key_arn = "arn:aws:kms:us-east-1:222222222222:key/22222222-2222-2222-2222-222222222222"
key_prefix = "copied/"
bucket_key_enabled = true
{extra_destination}
[manifest]
kind = "csv"
bucket = "manifests"
account_id = "222222222222"
key = "m.csv"
[report]
bucket = "reports"
account_id = "222222222222"
prefix = "ferry"
"#
        );
        TransferSpec::from_toml_str(&text).expect("spec parses")
    }

    #[test]
    fn round_trips_through_user_arguments() {
        let spec = spec(
            r#"storage_class = "STANDARD_IA"
checksum_algorithm = "SHA256"
metadata = "replace"
tags = "replace"
new_tags = { team = "data, \"core\"", "a:b" = "ü" }
[destination.new_metadata]
content_type = "application/octet-stream"
user_metadata = { origin = "ferry" }
"#,
        );
        let args = LargeObjectCopyArguments::from_spec(&spec);
        let user = args.to_user_arguments().expect("fits");
        assert!(user.len() <= MAX_USER_ARGUMENTS);
        assert_eq!(user["destinationBucket"], "dst");
        assert_eq!(user["bucketKeyEnabled"], "true");
        assert!(user["tags"].starts_with("REPLACE:{"));
        let back = LargeObjectCopyArguments::from_user_arguments(&user).expect("reads back");
        assert_eq!(back, args);
        assert_eq!(back.destination_key("a b/c.bin"), "copied/a b/c.bin");
    }

    #[test]
    fn copy_settings_use_few_arguments() {
        let args = LargeObjectCopyArguments::from_spec(&spec(""));
        let user = args.to_user_arguments().expect("fits");
        assert_eq!(user["metadata"], "COPY");
        assert_eq!(user["tags"], "COPY");
        assert!(!user.contains_key("checksumAlgorithm"));
        assert_eq!(
            LargeObjectCopyArguments::from_user_arguments(&user).expect("reads"),
            args
        );
    }

    #[test]
    fn oversized_tags_are_refused_by_name() {
        let tags: String = (0..10)
            .map(|i| format!("k{i} = \"{}\"\n", "v".repeat(200)))
            .collect();
        let spec = spec(&format!(
            "tags = \"replace\"\n[destination.new_tags]\n{tags}"
        ));
        let err = LargeObjectCopyArguments::from_spec(&spec)
            .to_user_arguments()
            .expect_err("too long");
        assert_eq!(err.key, "tags");
        assert!(err.message.contains("1024"), "{}", err.message);
    }

    #[test]
    fn every_problem_is_listed() {
        let mut user = BTreeMap::new();
        user.insert("metadata".to_string(), "REPLACE:{not json".to_string());
        user.insert("bucketKeyEnabled".to_string(), "yes".to_string());
        user.insert("tags".to_string(), "KEEP".to_string());
        let problems = LargeObjectCopyArguments::from_user_arguments(&user).expect_err("bad");
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "destinationBucket",
                "destinationAccount",
                "sourceAccount",
                "bucketKeyEnabled",
                "metadata",
                "tags"
            ]
        );
    }
}
