//! Where a transfer's inventories land ([`InventoryLocation`]) and what event-driven runs need set
//! up outside the stack, derived from the spec: the S3
//! Inventory configuration on the source bucket (`PutBucketInventoryConfiguration`) and the
//! inventory bucket's policy statement that lets S3 deliver it there from the source bucket.
//! `render` prints both as commands; the plan JSON carries them for tools.

use serde::Serialize;

use crate::aws_names::partition_for_region;
use crate::inventory_fields::{filter_columns, Column};
use crate::policy::{sid, PolicyDocument, Principal, Statement};
use crate::spec::TransferSpec;
use crate::time::parse_rfc3339_ms;

/// Event-driven runs as the plan describes them.
/// The object whose creation says an inventory is complete.
pub const CHECKSUM_FILE: &str = "manifest.checksum";
pub const MANIFEST_FILE: &str = "manifest.json";

/// Where a transfer's inventories land: `s3://<bucket>/<dir>`, `dir` being
/// `<prefix>/<source-bucket>/<configuration-id>/`, read from `manifest.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryLocation {
    pub bucket: String,
    /// The inventory configuration's destination prefix (may be empty).
    pub prefix: String,
    pub configuration_id: String,
    /// Ends with `/`.
    pub dir: String,
}

impl InventoryLocation {
    /// From the spec's `manifest.key`; `None` when it is not an inventory's
    /// `…/<source-bucket>/<configuration-id>/<date>/manifest.json`.
    pub fn of(spec: &TransferSpec) -> Option<Self> {
        let parts: Vec<&str> = spec.manifest.key.split('/').collect();
        let n = parts.len();
        if n < 4 || parts[n - 1] != MANIFEST_FILE || parts[n - 4] != spec.source.bucket {
            return None;
        }
        let configuration_id = parts[n - 3];
        if configuration_id.is_empty() {
            return None;
        }
        Some(Self {
            bucket: spec.manifest.bucket.clone(),
            prefix: parts[..n - 4].join("/"),
            configuration_id: configuration_id.to_string(),
            dir: format!("{}/", parts[..n - 2].join("/")),
        })
    }

    /// Where S3 Inventory writes the data files: `<dir>data/` (S3 User Guide, "Locating your
    /// inventory list": `destination-prefix/source-bucket/config-ID/data/example-file-name.csv.gz`).
    pub fn data_dir(&self) -> String {
        format!("{}data/", self.dir)
    }

    /// Whether `key` is one inventory's `manifest.checksum` in this location
    /// (`<dir><date>/manifest.checksum`).
    pub fn is_checksum_key(&self, key: &str) -> bool {
        key.strip_prefix(&self.dir)
            .and_then(|rest| rest.strip_suffix(CHECKSUM_FILE))
            .is_some_and(|date| {
                date.len() > 1 && date.ends_with('/') && !date[..date.len() - 1].contains('/')
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryRunsPlan {
    /// `s3://<inventory-bucket>/<prefix>/<source-bucket>/<configuration-id>/`
    pub watches: String,
    /// Each `<date>/manifest.checksum` written there starts a run.
    pub trigger: String,
    pub delta: bool,
    /// What a run does, in order (for people).
    pub steps: Vec<String>,
    /// `aws s3api put-bucket-inventory-configuration --inventory-configuration` (source account).
    pub inventory_configuration: InventoryConfiguration,
    /// The inventory bucket's statement that lets S3 deliver the reports (destination account).
    pub delivery_policy: PolicyDocument,
}

/// `InventoryConfiguration` as the S3 API spells it. Typed, so its JSON has one field order
/// whatever serde_json features other crates turn on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InventoryConfiguration {
    pub destination: InventoryDestination,
    pub is_enabled: bool,
    pub id: String,
    pub included_object_versions: String,
    pub optional_fields: Vec<String>,
    pub schedule: InventorySchedule,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryDestination {
    #[serde(rename = "S3BucketDestination")]
    pub s3_bucket_destination: S3BucketDestination,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3BucketDestination {
    pub account_id: String,
    /// The bucket's ARN.
    pub bucket: String,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<InventoryEncryption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryEncryption {
    #[serde(rename = "SSEKMS")]
    pub sse_kms: SseKms,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SseKms {
    #[serde(rename = "KeyId")]
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventorySchedule {
    #[serde(rename = "Frequency")]
    pub frequency: String,
}

/// The inventory's optional fields: what routing, delta and the filter read, plus what lets
/// Ferry skip objects that would fail (archived, SSE-C) before the job does.
pub fn optional_fields(spec: &TransferSpec) -> Vec<&'static str> {
    let mut columns = vec![
        Column::Size,
        Column::LastModifiedDate,
        Column::ETag,
        Column::StorageClass,
        Column::EncryptionStatus,
        Column::IntelligentTieringAccessTier,
    ];
    let filter = spec.filter.clone().unwrap_or_default();
    // As the run's filter sees it: a date that doesn't parse makes no filter (validation has
    // already named it), so it asks for no column.
    let dates_parse = [&filter.modified_after, &filter.modified_before]
        .into_iter()
        .flatten()
        .all(|d| parse_rfc3339_ms(d).is_some());
    if dates_parse {
        for (_, c) in filter_columns(&filter) {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
    }
    columns.into_iter().map(Column::csv_name).collect()
}

/// `None` without `[inventory]` or when `manifest.key` is not an inventory's (validation says
/// which).
pub fn inventory_runs_plan(spec: &TransferSpec) -> Option<InventoryRunsPlan> {
    let runs = spec.inventory.as_ref()?;
    let location = InventoryLocation::of(spec)?;
    let partition = partition_for_region(spec.manifest_region());
    let inventory_configuration = InventoryConfiguration {
        destination: InventoryDestination {
            s3_bucket_destination: S3BucketDestination {
                account_id: spec.manifest.account_id.clone(),
                bucket: format!("arn:{partition}:s3:::{}", location.bucket),
                format: runs.format.as_str().to_string(),
                prefix: (!location.prefix.is_empty()).then(|| location.prefix.clone()),
                encryption: spec
                    .manifest
                    .kms_key_arn
                    .as_ref()
                    .map(|k| InventoryEncryption {
                        sse_kms: SseKms { key_id: k.clone() },
                    }),
            },
        },
        is_enabled: true,
        id: location.configuration_id.clone(),
        included_object_versions: runs.versions.as_str().to_string(),
        optional_fields: optional_fields(spec)
            .into_iter()
            .map(str::to_string)
            .collect(),
        schedule: InventorySchedule {
            frequency: runs.frequency.as_str().to_string(),
        },
    };
    let delivery = Statement::allow(
        sid(&spec.name, "InventoryDelivery"),
        &["s3:PutObject"],
        vec![format!(
            "arn:{partition}:s3:::{}/{}*",
            location.bucket,
            if location.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", location.prefix)
            }
        )],
    )
    .with_principal(Principal::Service("s3.amazonaws.com".to_string()))
    .with_condition(
        "ArnLike",
        "aws:SourceArn",
        format!("arn:{partition}:s3:::{}", spec.source.bucket),
    )
    .with_condition("StringEquals", "aws:SourceAccount", &spec.source.account_id)
    .with_condition("StringEquals", "s3:x-amz-acl", "bucket-owner-full-control");
    let mut steps = vec![
        format!(
            "S3 writes an inventory of s3://{} to s3://{}/{} ({}, {}); its manifest.checksum, written last, \
             starts a run",
            spec.source.bucket,
            location.bucket,
            location.dir,
            runs.frequency.as_str(),
            runs.format.as_str()
        ),
        "events are de-duplicated (one run per inventory, however often or concurrently the event comes) and \
         an inventory older than the newest seen is refused and reported"
            .to_string(),
        "every data file is streamed once: rows are filtered by [filter], delete markers, archived and SSE-C \
         objects are skipped and counted"
            .to_string(),
    ];
    if runs.delta {
        steps.push(
            "only objects new or changed (key, version, ETag, size) since the last successful run are kept; a \
             failed or cancelled job does not count as successful, so its objects come again"
                .to_string(),
        );
    }
    steps.push(
        "objects up to 5 GiB go to a Copy job, larger ones to a LambdaInvoke job of the stack's \
         large-object-copier; when nothing is filtered or large on a first run, the job reads the inventory's \
         manifest.json directly"
            .to_string(),
    );
    steps.push("a summary of what was copied and skipped is e-mailed".to_string());
    Some(InventoryRunsPlan {
        watches: format!("s3://{}/{}", location.bucket, location.dir),
        trigger: format!(
            "s3://{}/{}<date>/manifest.checksum",
            location.bucket, location.dir
        ),
        delta: runs.delta,
        steps,
        inventory_configuration,
        delivery_policy: PolicyDocument::new(vec![delivery]),
    })
}
