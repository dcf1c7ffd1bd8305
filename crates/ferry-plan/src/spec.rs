//! The transfer spec: one description of a copy from a source bucket to a destination bucket.
//!
//! The CLI reads it from TOML and the stack builds it from its parameters. Parsing only checks
//! shape; [`crate::validate`] checks meaning and reports every problem at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::FerryError;

/// A whole transfer: where objects come from, where they go, and how the job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    /// Short name of the transfer (`[a-z0-9-]`, ≤ 40 chars). It names the role, the job tags
    /// and the policy statement `Sid`s, so two transfers never overwrite each other's grants.
    pub name: String,
    pub source: SourceSpec,
    pub destination: DestinationSpec,
    pub manifest: ManifestSpec,
    pub report: ReportSpec,
    #[serde(default)]
    pub job: JobSpec,
    /// Object count and bytes for the cost estimate, when known.
    #[serde(default)]
    pub estimate: Option<EstimateSpec>,
    /// Which inventory rows to copy (inventory manifests only). Left out of the serialized
    /// spec when unset, so fingerprints of specs without it don't change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
    /// Event-driven runs: every new inventory of the configuration `manifest.key` belongs to is
    /// copied as it lands (see `docs/inventory.md`). Left out of the serialized spec when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryRunSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub account_id: String,
    pub region: String,
    pub bucket: String,
    /// The customer managed key the source objects are encrypted with (full key ARN).
    #[serde(default)]
    pub kms_key_arn: Option<String>,
    /// Whether the bucket has versioning enabled: version reads are granted only then.
    #[serde(default)]
    pub versioned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    pub account_id: String,
    pub region: String,
    pub bucket: String,
    /// Copies are written SSE-KMS with this key when set, SSE-S3 otherwise.
    #[serde(default)]
    pub kms_key_arn: Option<String>,
    #[serde(default)]
    pub bucket_key_enabled: bool,
    /// Storage class of the copies; S3's default (STANDARD) when unset.
    #[serde(default)]
    pub storage_class: Option<StorageClass>,
    /// Prefix put in front of every copied key (S3 `TargetKeyPrefix`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    #[serde(default)]
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    #[serde(default)]
    pub metadata: MetadataHandling,
    /// With `metadata = "replace"`: the metadata the copies get.
    #[serde(default)]
    pub new_metadata: Option<NewMetadataSpec>,
    #[serde(default)]
    pub tags: TagHandling,
    /// With `tags = "replace"`: the tag set the copies get.
    #[serde(default)]
    pub new_tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSpec {
    pub kind: ManifestKind,
    pub bucket: String,
    pub account_id: String,
    /// Region of the manifest bucket; the destination region when unset.
    #[serde(default)]
    pub region: Option<String>,
    /// The inventory's `manifest.json` key, or the CSV file's key.
    pub key: String,
    #[serde(default)]
    pub kms_key_arn: Option<String>,
    /// CSV manifests only: rows carry a third `VersionId` column.
    #[serde(default)]
    pub version_ids: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    pub bucket: String,
    pub account_id: String,
    /// Region of the report bucket; the destination region when unset.
    #[serde(default)]
    pub region: Option<String>,
    pub prefix: String,
    #[serde(default)]
    pub kms_key_arn: Option<String>,
    #[serde(default)]
    pub scope: ReportScope,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Name of the Batch Operations role in the destination account; `ferry-<name>-batch`
    /// when unset.
    #[serde(default)]
    pub role_name: Option<String>,
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Jobs wait in `Suspended` for a person to confirm them when true (the safe default).
    #[serde(default = "default_true")]
    pub confirmation_required: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// Region the job is created in. Copy jobs must run in the destination region, so this
    /// may only repeat it.
    #[serde(default)]
    pub region: Option<String>,
    /// ARN of the stack's `large-object-copier` function (objects over 5 GiB): the role may
    /// then invoke it. Left out of the serialized spec when unset (fingerprints unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_object_copier_arn: Option<String>,
    /// ARN of that function's execution role: the role's trust policy then lets it assume
    /// the role, so the copier acts as the one principal the source account's policies name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_object_copier_role_arn: Option<String>,
}

impl Default for JobSpec {
    fn default() -> Self {
        Self {
            role_name: None,
            priority: default_priority(),
            confirmation_required: true,
            description: None,
            region: None,
            large_object_copier_arn: None,
            large_object_copier_role_arn: None,
        }
    }
}

fn default_priority() -> u32 {
    10
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateSpec {
    pub object_count: u64,
    pub total_bytes: u64,
}

/// `[filter]`: which objects of an inventory to copy. Every condition must hold; an unset one
/// lets everything through. Whatever the filter, delete markers are skipped, and so are objects
/// that can't be copied without a restore (GLACIER, DEEP_ARCHIVE, the Intelligent-Tiering
/// archive tiers) or at all (SSE-C): each skipped row is counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Copy only keys starting with one of these (source keys, before any destination prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_prefixes: Vec<String>,
    /// Never copy keys starting with one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_prefixes: Vec<String>,
    /// Smallest size copied, in bytes (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// Largest size copied, in bytes (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Copy only objects in these storage classes (`STANDARD`, `STANDARD_IA`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionFilter>,
    /// Copy only current versions (an inventory of all versions lists older ones too).
    #[serde(default, skip_serializing_if = "is_false")]
    pub latest_only: bool,
    /// RFC 3339 (`"2024-05-01T00:00:00Z"`): copy objects last modified at or after it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "timestamp_text"
    )]
    pub modified_after: Option<String>,
    /// RFC 3339: copy objects last modified strictly before it (so consecutive windows neither
    /// overlap nor leave a gap).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "timestamp_text"
    )]
    pub modified_before: Option<String>,
}

impl FilterSpec {
    /// No condition set: every copyable object passes.
    pub fn is_empty(&self) -> bool {
        self == &FilterSpec::default()
    }
}

/// `[inventory]`: event-driven runs. The inventory configuration on the source bucket delivers to
/// `manifest.bucket` (in the destination account); its destination prefix and id are read from
/// `manifest.key` (`<prefix>/<source-bucket>/<configuration-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json`).
/// These settings are what that configuration must say, so the instructions can spell it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryRunSpec {
    /// The inventory's output format: `CSV` (the default), `Parquet` or `ORC`. Parquet and ORC
    /// inventories are rewritten into CSV manifests, since Batch Operations only reads CSV ones.
    #[serde(default)]
    pub format: InventoryFormat,
    /// `Daily` or `Weekly`.
    #[serde(default)]
    pub frequency: InventoryFrequency,
    /// `current` (current versions only) or `all` (every version; needs a versioned source).
    #[serde(default)]
    pub versions: InventoryVersions,
    /// Copy only what is new or changed since the last successful run (the default); `false`
    /// copies every object that passes `[filter]` each time.
    #[serde(default = "default_true")]
    pub delta: bool,
}

impl Default for InventoryRunSpec {
    fn default() -> Self {
        Self {
            format: InventoryFormat::default(),
            frequency: InventoryFrequency::default(),
            versions: InventoryVersions::default(),
            delta: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryFormat {
    #[default]
    #[serde(rename = "CSV")]
    Csv,
    Parquet,
    #[serde(rename = "ORC")]
    Orc,
}

impl InventoryFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "CSV",
            Self::Parquet => "Parquet",
            Self::Orc => "ORC",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryFrequency {
    #[default]
    Daily,
    Weekly,
}

impl InventoryFrequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "Daily",
            Self::Weekly => "Weekly",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InventoryVersions {
    #[default]
    Current,
    All,
}

impl InventoryVersions {
    /// The configuration's `IncludedObjectVersions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "Current",
            Self::All => "All",
        }
    }
}

/// `filter.encryption`: which objects to copy by their encryption (the inventory's
/// `EncryptionStatus`, and `BucketKeyStatus` for the Bucket Key variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionFilter {
    /// Everything except SSE-KMS objects that already use a Bucket Key: the re-encryption
    /// case (copy in place to SSE-KMS with a Bucket Key, skipping what is done).
    NotSseKmsBucketKey,
    /// Everything except SSE-KMS (and DSSE-KMS) objects.
    NotSseKms,
    /// Only SSE-KMS (and DSSE-KMS) objects.
    SseKms,
    /// Only SSE-S3 objects.
    SseS3,
    /// Only objects without server-side encryption.
    NotSse,
}

impl EncryptionFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotSseKmsBucketKey => "not-sse-kms-bucket-key",
            Self::NotSseKms => "not-sse-kms",
            Self::SseKms => "sse-kms",
            Self::SseS3 => "sse-s3",
            Self::NotSse => "not-sse",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A timestamp given as a string, or as an unquoted TOML date-time (kept as its RFC 3339 text;
/// validation checks it).
fn timestamp_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Plain(String),
        Toml(toml::value::Datetime),
    }
    Ok(Option::<Text>::deserialize(d)?.map(|t| match t {
        Text::Plain(s) => s,
        Text::Toml(dt) => dt.to_string(),
    }))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMetadataSpec {
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub content_disposition: Option<String>,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub content_language: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// `x-amz-meta-*` entries, without the prefix.
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    /// An S3 Inventory report's `manifest.json` (CSV inventory).
    Inventory,
    /// A CSV file of `Bucket,Key[,VersionId]` rows.
    Csv,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportScope {
    #[default]
    All,
    Failed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataHandling {
    #[default]
    Copy,
    Replace,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagHandling {
    #[default]
    Copy,
    Remove,
    Replace,
}

/// S3 storage classes a Copy job can write (`S3PutObjectCopy.StorageClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    Standard,
    StandardIa,
    OnezoneIa,
    IntelligentTiering,
    GlacierIr,
    Glacier,
    DeepArchive,
}

impl StorageClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "STANDARD",
            Self::StandardIa => "STANDARD_IA",
            Self::OnezoneIa => "ONEZONE_IA",
            Self::IntelligentTiering => "INTELLIGENT_TIERING",
            Self::GlacierIr => "GLACIER_IR",
            Self::Glacier => "GLACIER",
            Self::DeepArchive => "DEEP_ARCHIVE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }
}

impl TransferSpec {
    /// Parses a spec from TOML. Shape errors (a missing field, an unknown field, a wrong type)
    /// come back with the line and the field; meaning is checked by [`crate::validate`].
    pub fn from_toml_str(text: &str) -> Result<Self, FerryError> {
        toml::from_str(text).map_err(|e| FerryError::SpecSyntax {
            message: e.to_string(),
        })
    }

    /// The destination-account role name, defaulted from the transfer name.
    pub fn role_name(&self) -> String {
        self.job
            .role_name
            .clone()
            .unwrap_or_else(|| format!("ferry-{}-batch", self.name))
    }

    /// Region of the manifest bucket unless stated: an inventory's is the source bucket's,
    /// since S3 Inventory delivers only to a bucket in the source bucket's Region (S3 User
    /// Guide, "Cataloging and analyzing your data with S3 Inventory":
    /// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory.html>); a CSV
    /// manifest's is the destination's.
    pub fn manifest_region(&self) -> &str {
        self.manifest
            .region
            .as_deref()
            .unwrap_or(match self.manifest.kind {
                ManifestKind::Inventory => &self.source.region,
                ManifestKind::Csv => &self.destination.region,
            })
    }

    /// Region of the report bucket (the destination region unless stated).
    pub fn report_region(&self) -> &str {
        self.report
            .region
            .as_deref()
            .unwrap_or(&self.destination.region)
    }

    /// Copy jobs run in the destination region.
    pub fn job_region(&self) -> &str {
        &self.destination.region
    }

    pub fn is_cross_account(&self) -> bool {
        self.source.account_id != self.destination.account_id
    }

    pub fn is_in_place(&self) -> bool {
        self.source.bucket == self.destination.bucket
    }
}
