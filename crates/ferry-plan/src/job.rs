//! The S3 Control `CreateJob` request for a transfer, as plain data with AWS's field names.
//!
//! It is built offline with two blanks, the manifest's ETag and the client request token,
//! which [`CreateJobRequest::for_manifest_etag`] fills in at launch. The token is derived from
//! the plan and that ETag, so a retried or duplicated launch of the same manifest can never
//! create a second job (S3 Control answers the same job id for the same token).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aws_names::partition_for_region;
use crate::destination_key::target_key_prefix;
use crate::spec::{ManifestKind, MetadataHandling, ReportScope, TagHandling, TransferSpec};

/// Stand-in for the manifest ETag until launch.
pub const ETAG_PLACEHOLDER: &str = "<ManifestETag>";
/// Stand-in for the client request token until launch.
pub const TOKEN_PLACEHOLDER: &str = "<ClientRequestToken>";

pub const CSV_MANIFEST_FORMAT: &str = "S3BatchOperations_CSV_20180820";
pub const INVENTORY_MANIFEST_FORMAT: &str = "S3InventoryReport_CSV_20161130";
pub const REPORT_FORMAT: &str = "Report_CSV_20180820";
const MAX_DESCRIPTION_CHARS: usize = 256;

/// Tag keys every Ferry job carries, so monitoring can tell Ferry's jobs apart.
pub const TRANSFER_TAG: &str = "ferry:transfer";
pub const PLAN_TAG: &str = "ferry:plan";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateJobRequest {
    pub account_id: String,
    pub confirmation_required: bool,
    pub operation: JobOperation,
    pub report: JobReport,
    pub client_request_token: String,
    pub manifest: JobManifest,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    pub priority: u32,
    pub role_arn: String,
    pub tags: Vec<S3Tag>,
}

/// The job's one operation. Serialized as AWS writes it: `{"S3PutObjectCopy": {…}}` or
/// `{"LambdaInvoke": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOperation {
    /// Batch Operations Copy: objects up to 5 GiB.
    S3PutObjectCopy(Box<S3CopyObjectOperation>),
    /// A Lambda per task: Ferry's `large-object-copier` for objects over 5 GiB.
    LambdaInvoke(LambdaInvokeOperation),
}

impl JobOperation {
    /// The copy settings, when this is a Copy job.
    pub fn as_copy(&self) -> Option<&S3CopyObjectOperation> {
        match self {
            JobOperation::S3PutObjectCopy(copy) => Some(copy),
            JobOperation::LambdaInvoke(_) => None,
        }
    }
}

/// `Operation.LambdaInvoke`. Schema `2.0` is what carries `UserArguments` (≤ 10 entries,
/// key ≤ 64 and value ≤ 1024 characters) and the task's bucket name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LambdaInvokeOperation {
    pub function_arn: String,
    pub invocation_schema_version: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub user_arguments: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3CopyObjectOperation {
    pub target_resource: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_key_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub storage_class: Option<String>,
    #[serde(
        rename = "SSEAwsKmsKeyId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub sse_aws_kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bucket_key_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum_algorithm: Option<String>,
    pub metadata_directive: String,
    pub new_object_metadata: S3ObjectMetadata,
    /// Absent: S3 copies the source tags. Empty: the copies get no tags.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub new_object_tagging: Option<Vec<S3Tag>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3ObjectMetadata {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_control: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub user_metadata: BTreeMap<String, String>,
    /// `AES256` (SSE-S3) or `KMS`: always stated, so every copy's encryption is explicit.
    #[serde(rename = "SSEAlgorithm")]
    pub sse_algorithm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobReport {
    pub bucket: String,
    pub format: String,
    pub enabled: bool,
    pub prefix: String,
    pub report_scope: String,
    pub expected_bucket_owner: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobManifest {
    #[serde(rename = "Spec")]
    pub spec: JobManifestSpec,
    #[serde(rename = "Location")]
    pub location: JobManifestLocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobManifestSpec {
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobManifestLocation {
    #[serde(rename = "ObjectArn")]
    pub object_arn: String,
    #[serde(
        rename = "ObjectVersionId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub object_version_id: Option<String>,
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// Builds the request for a validated spec, with the ETag and token still blank.
pub fn create_job_request(spec: &TransferSpec, plan_fingerprint: &str) -> CreateJobRequest {
    let partition = partition_for_region(&spec.destination.region);
    let d = &spec.destination;
    let new_metadata = match (&d.metadata, &d.new_metadata) {
        (MetadataHandling::Replace, Some(m)) => S3ObjectMetadata {
            cache_control: m.cache_control.clone(),
            content_disposition: m.content_disposition.clone(),
            content_encoding: m.content_encoding.clone(),
            content_language: m.content_language.clone(),
            content_type: m.content_type.clone(),
            user_metadata: m.user_metadata.clone(),
            sse_algorithm: String::new(),
        },
        _ => S3ObjectMetadata::default(),
    };
    let copy = S3CopyObjectOperation {
        target_resource: format!("arn:{partition}:s3:::{}", d.bucket),
        target_key_prefix: d
            .key_prefix
            .as_deref()
            .map(|p| target_key_prefix(p).to_string()),
        storage_class: d.storage_class.map(|c| c.as_str().to_string()),
        sse_aws_kms_key_id: d.kms_key_arn.clone(),
        bucket_key_enabled: d.kms_key_arn.as_ref().map(|_| d.bucket_key_enabled),
        checksum_algorithm: d.checksum_algorithm.map(|c| c.as_str().to_string()),
        metadata_directive: match d.metadata {
            MetadataHandling::Copy => "COPY",
            MetadataHandling::Replace => "REPLACE",
        }
        .to_string(),
        new_object_metadata: S3ObjectMetadata {
            sse_algorithm: if d.kms_key_arn.is_some() {
                "KMS"
            } else {
                "AES256"
            }
            .to_string(),
            ..new_metadata
        },
        new_object_tagging: match d.tags {
            TagHandling::Copy => None,
            TagHandling::Remove => Some(Vec::new()),
            TagHandling::Replace => Some(
                d.new_tags
                    .iter()
                    .flatten()
                    .map(|(k, v)| S3Tag {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            ),
        },
    };
    let manifest_spec = match spec.manifest.kind {
        ManifestKind::Inventory => JobManifestSpec {
            format: INVENTORY_MANIFEST_FORMAT.to_string(),
            fields: None,
        },
        ManifestKind::Csv => {
            let mut fields = vec!["Bucket".to_string(), "Key".to_string()];
            if spec.manifest.version_ids {
                fields.push("VersionId".to_string());
            }
            JobManifestSpec {
                format: CSV_MANIFEST_FORMAT.to_string(),
                fields: Some(fields),
            }
        }
    };
    let description = spec.job.description.clone().unwrap_or_else(|| {
        let target = match &d.key_prefix {
            Some(prefix) => format!("s3://{}/{prefix}", d.bucket),
            None => format!("s3://{}", d.bucket),
        };
        format!(
            "Ferry {}: copy s3://{} to {target}",
            spec.name, spec.source.bucket
        )
        .chars()
        .take(MAX_DESCRIPTION_CHARS)
        .collect()
    });
    CreateJobRequest {
        account_id: d.account_id.clone(),
        confirmation_required: spec.job.confirmation_required,
        operation: JobOperation::S3PutObjectCopy(Box::new(copy)),
        report: JobReport {
            bucket: format!("arn:{partition}:s3:::{}", spec.report.bucket),
            format: REPORT_FORMAT.to_string(),
            enabled: true,
            prefix: spec.report.prefix.clone(),
            report_scope: match spec.report.scope {
                ReportScope::All => "AllTasks",
                ReportScope::Failed => "FailedTasksOnly",
            }
            .to_string(),
            expected_bucket_owner: spec.report.account_id.clone(),
        },
        client_request_token: TOKEN_PLACEHOLDER.to_string(),
        manifest: JobManifest {
            spec: manifest_spec,
            location: JobManifestLocation {
                object_arn: format!(
                    "arn:{partition}:s3:::{}/{}",
                    spec.manifest.bucket, spec.manifest.key
                ),
                object_version_id: None,
                etag: ETAG_PLACEHOLDER.to_string(),
            },
        },
        description: Some(description),
        priority: spec.job.priority,
        role_arn: crate::policy::batch_role::role_arn(spec),
        tags: vec![
            S3Tag {
                key: TRANSFER_TAG.to_string(),
                value: spec.name.clone(),
            },
            S3Tag {
                key: PLAN_TAG.to_string(),
                value: plan_fingerprint.to_string(),
            },
        ],
    }
}

impl CreateJobRequest {
    /// Fills in the manifest's ETag (as HeadObject returns it, quotes and all) and the token
    /// derived from it. Returns `None` for an empty ETag: CreateJob requires one.
    pub fn for_manifest_etag(&self, plan_fingerprint: &str, etag: &str) -> Option<Self> {
        let etag = etag.trim().trim_matches('"');
        if etag.is_empty() {
            return None;
        }
        let mut request = self.clone();
        request.manifest.location.etag = etag.to_string();
        request.client_request_token = client_request_token(plan_fingerprint, etag);
        Some(request)
    }
}

impl CreateJobRequest {
    /// The same job over a CSV manifest Ferry wrote itself (an inventory run's rewrite):
    /// `Bucket,Key[,VersionId]` rows at `object_arn`, ETag still blank.
    pub fn with_csv_manifest(&self, object_arn: &str, version_ids: bool) -> Self {
        let mut fields = vec!["Bucket".to_string(), "Key".to_string()];
        if version_ids {
            fields.push("VersionId".to_string());
        }
        self.with_manifest(CSV_MANIFEST_FORMAT, Some(fields), object_arn)
    }

    /// The same job on an inventory report's `manifest.json` at `object_arn`
    /// (`S3InventoryReport_CSV_20161130`, no `Fields`: the report's `fileSchema` names them),
    /// S3's own or one Ferry wrote in its form.
    pub fn with_inventory_manifest(&self, object_arn: &str) -> Self {
        self.with_manifest(INVENTORY_MANIFEST_FORMAT, None, object_arn)
    }

    fn with_manifest(&self, format: &str, fields: Option<Vec<String>>, object_arn: &str) -> Self {
        let mut request = self.clone();
        request.manifest = JobManifest {
            spec: JobManifestSpec {
                format: format.to_string(),
                fields,
            },
            location: JobManifestLocation {
                object_arn: object_arn.to_string(),
                object_version_id: None,
                etag: ETAG_PLACEHOLDER.to_string(),
            },
        };
        request.client_request_token = TOKEN_PLACEHOLDER.to_string();
        request
    }
}

/// The LambdaInvoke job that hands objects over 5 GiB to Ferry's `large-object-copier`:
/// the plan's job (role, report, tags, priority) with the copy operation replaced by an
/// invocation of `function_arn` carrying the destination settings as `UserArguments`.
/// Its manifest is the large-object CSV manifest; pass it through
/// [`CreateJobRequest::with_csv_manifest`].
pub fn large_object_job_request(
    spec: &TransferSpec,
    plan_fingerprint: &str,
    function_arn: &str,
) -> Result<CreateJobRequest, crate::large_object_arguments::UserArgumentProblem> {
    let user_arguments = crate::large_object_arguments::LargeObjectCopyArguments::from_spec(spec)
        .to_user_arguments()?;
    let mut request = create_job_request(spec, plan_fingerprint);
    request.operation = JobOperation::LambdaInvoke(LambdaInvokeOperation {
        function_arn: function_arn.to_string(),
        invocation_schema_version: "2.0".to_string(),
        user_arguments,
    });
    request.description = request.description.map(|d| {
        format!("{d} (objects over 5 GiB)")
            .chars()
            .take(MAX_DESCRIPTION_CHARS)
            .collect()
    });
    Ok(request)
}

/// `hex(sha256("<plan fingerprint>:<manifest etag>"))`: 64 characters, CreateJob's maximum.
/// The same in shell: `printf '%s:%s' "$FINGERPRINT" "$ETAG" | sha256sum | cut -c1-64`.
pub fn client_request_token(plan_fingerprint: &str, etag: &str) -> String {
    hex(&Sha256::digest(
        format!("{plan_fingerprint}:{etag}").as_bytes(),
    ))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_deterministic_and_bounded() {
        let a = client_request_token("f00d", "abc");
        assert_eq!(a, client_request_token("f00d", "abc"));
        assert_ne!(a, client_request_token("f00d", "abd"));
        assert_ne!(a, client_request_token("f00e", "abc"));
        assert_eq!(a.len(), 64);
        // sha256("f00d:abc"), as `printf 'f00d:abc' | sha256sum` prints it.
        assert_eq!(
            a,
            "5b5c0d39a38076eb799469fa84adcda5f13fa6a7fdc8bd1f73d6b81a2b8ceb5f"
        );
    }
}
