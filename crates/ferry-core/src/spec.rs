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
}

impl Default for JobSpec {
    fn default() -> Self {
        Self {
            role_name: None,
            priority: default_priority(),
            confirmation_required: true,
            description: None,
            region: None,
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

    /// Region of the manifest bucket (the destination region unless stated).
    pub fn manifest_region(&self) -> &str {
        self.manifest
            .region
            .as_deref()
            .unwrap_or(&self.destination.region)
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
