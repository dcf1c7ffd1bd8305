//! Deciding each inventory row: copy it, send it to the large-object job, or skip it with one
//! reason. [`RowFilter`] is the spec's [`FilterSpec`] made ready for millions of rows (dates
//! parsed once) plus the rules that hold whatever the spec says.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::inventory::manifest_json::InventorySchema;
use crate::inventory::row::{InventoryError, InventoryRow};
use ferry_plan::aws_names::ARCHIVED_STORAGE_CLASSES;
use ferry_plan::inventory_fields::{filter_columns, Column};
use ferry_plan::spec::{EncryptionFilter, FilterSpec};
use ferry_plan::time::parse_rfc3339_ms;

/// The largest object a Batch Operations Copy job copies (5 GiB); larger ones need a multipart
/// copy, done by the LambdaInvoke job.
pub const MAX_COPY_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Intelligent-Tiering access tiers that need a restore. Assumed (verify): inventories write
/// `ARCHIVE` / `DEEP_ARCHIVE`; the API's `ARCHIVE_ACCESS` / `DEEP_ARCHIVE_ACCESS` spellings are
/// read too. `ARCHIVE_INSTANT_ACCESS` needs no restore.
const ARCHIVED_TIERS: [&str; 4] = [
    "ARCHIVE",
    "DEEP_ARCHIVE",
    "ARCHIVE_ACCESS",
    "DEEP_ARCHIVE_ACCESS",
];

/// Why a row is not copied. Each skipped row has exactly one: the first that applies, in the
/// order below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The row could not be read (its error is among the examples).
    Malformed,
    /// A delete marker: nothing to copy.
    DeleteMarker,
    /// `filter.latest_only` and a noncurrent version.
    NotLatest,
    /// `filter.include_prefixes` / `exclude_prefixes`.
    Prefix,
    /// `filter.modified_after` / `modified_before`.
    ModifiedDate,
    /// `filter.min_size` / `max_size`.
    Size,
    /// `filter.storage_classes`.
    StorageClass,
    /// `filter.encryption`.
    Encryption,
    /// SSE-C: Batch Operations can't copy objects encrypted with a customer-provided key.
    SseC,
    /// GLACIER, DEEP_ARCHIVE or an Intelligent-Tiering archive tier: restore first.
    Archived,
    /// The manifest writer refused the row (see the examples); never expected after the reader's
    /// own checks.
    Rejected,
    /// Delta runs: the object is as the last successful run copied it (same key, version, ETag
    /// and size).
    Unchanged,
}

impl SkipReason {
    pub const ALL: [SkipReason; 12] = [
        SkipReason::Malformed,
        SkipReason::DeleteMarker,
        SkipReason::NotLatest,
        SkipReason::Prefix,
        SkipReason::ModifiedDate,
        SkipReason::Size,
        SkipReason::StorageClass,
        SkipReason::Encryption,
        SkipReason::SseC,
        SkipReason::Archived,
        SkipReason::Rejected,
        SkipReason::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Malformed => "malformed",
            SkipReason::DeleteMarker => "delete_marker",
            SkipReason::NotLatest => "not_latest",
            SkipReason::Prefix => "prefix",
            SkipReason::ModifiedDate => "modified_date",
            SkipReason::Size => "size",
            SkipReason::StorageClass => "storage_class",
            SkipReason::Encryption => "encryption",
            SkipReason::SseC => "sse_c",
            SkipReason::Archived => "archived",
            SkipReason::Rejected => "rejected",
            SkipReason::Unchanged => "unchanged",
        }
    }

    /// Reasons the spec's filter chose, as opposed to rows that can't or needn't be copied.
    pub fn is_filter(self) -> bool {
        matches!(
            self,
            SkipReason::NotLatest
                | SkipReason::Prefix
                | SkipReason::ModifiedDate
                | SkipReason::Size
                | SkipReason::StorageClass
                | SkipReason::Encryption
        )
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The Copy job's manifest (≤ [`MAX_COPY_OBJECT_BYTES`]).
    Copy,
    /// The large-object (LambdaInvoke) job's manifest.
    Large,
    Skip(SkipReason),
}

/// A [`FilterSpec`] ready to decide rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    spec: FilterSpec,
    after_ms: Option<i64>,
    before_ms: Option<i64>,
}

impl RowFilter {
    /// From the spec's filter (`None`: copy every copyable object). A timestamp that doesn't
    /// parse is an error naming its field; [`ferry_plan::validate`] reports the same earlier.
    pub fn new(spec: Option<&FilterSpec>) -> Result<Self, String> {
        let spec = spec.cloned().unwrap_or_default();
        let time = |field: &str, value: &Option<String>| -> Result<Option<i64>, String> {
            value
                .as_deref()
                .map(|v| {
                    parse_rfc3339_ms(v).ok_or_else(|| {
                        format!("filter.{field} = {v:?} is not an RFC 3339 time with its offset")
                    })
                })
                .transpose()
        };
        Ok(Self {
            after_ms: time("modified_after", &spec.modified_after)?,
            before_ms: time("modified_before", &spec.modified_before)?,
            spec,
        })
    }

    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// No condition set.
    pub fn is_empty(&self) -> bool {
        self.spec.is_empty()
    }

    /// The columns this filter and the routing need, each with the setting that needs it.
    pub fn required_columns(&self) -> Vec<(&'static str, Column)> {
        filter_columns(&self.spec)
    }

    /// Refuses an inventory without the columns the filter needs, naming each.
    pub fn check_schema(&self, schema: &InventorySchema) -> Result<(), InventoryError> {
        let missing: Vec<String> = self
            .required_columns()
            .into_iter()
            .filter(|(_, c)| !schema.has(*c))
            .map(|(why, c)| format!("{c} column (for {why})"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(InventoryError::Schema {
                file: "manifest.json".into(),
                message: format!(
                    "the inventory has no {}: add {} to the inventory configuration's optional \
                     fields and use the next report",
                    missing.join(", no "),
                    if missing.len() == 1 { "it" } else { "them" }
                ),
            })
        }
    }

    /// Things the inventory can't show, so rows that will fail can't be skipped beforehand.
    pub fn schema_warnings(schema: &InventorySchema) -> Vec<String> {
        let mut w = Vec::new();
        if !schema.has(Column::StorageClass) {
            w.push(
                "the inventory has no StorageClass column: GLACIER and DEEP_ARCHIVE objects can't \
                 be told apart and will fail in the job; add StorageClass to the inventory"
                    .to_string(),
            );
        }
        if !schema.has(Column::EncryptionStatus) {
            w.push(
                "the inventory has no EncryptionStatus column: SSE-C objects can't be told apart \
                 and will fail in the job; add EncryptionStatus to the inventory"
                    .to_string(),
            );
        }
        w
    }

    /// Where `row` goes. A value the filter needs but the row lacks counts as not matching:
    /// Ferry copies only what it can show passes.
    pub fn classify(&self, row: &InventoryRow) -> Outcome {
        let s = &self.spec;
        let skip = Outcome::Skip;
        if row.is_delete_marker == Some(true) {
            return skip(SkipReason::DeleteMarker);
        }
        if s.latest_only && row.is_latest == Some(false) {
            return skip(SkipReason::NotLatest);
        }
        let key = row.key.as_str();
        if (!s.include_prefixes.is_empty()
            && !s
                .include_prefixes
                .iter()
                .any(|p| key.starts_with(p.as_str())))
            || s.exclude_prefixes
                .iter()
                .any(|p| key.starts_with(p.as_str()))
        {
            return skip(SkipReason::Prefix);
        }
        if self.after_ms.is_some() || self.before_ms.is_some() {
            let in_window = row.last_modified_ms.is_some_and(|t| {
                self.after_ms.is_none_or(|a| t >= a) && self.before_ms.is_none_or(|b| t < b)
            });
            if !in_window {
                return skip(SkipReason::ModifiedDate);
            }
        }
        let Some(size) = row.size else {
            // Readers refuse object rows without a size; this only guards direct callers.
            return skip(SkipReason::Malformed);
        };
        if s.min_size.is_some_and(|m| size < m) || s.max_size.is_some_and(|m| size > m) {
            return skip(SkipReason::Size);
        }
        let class = row.storage_class.as_deref();
        if !s.storage_classes.is_empty()
            && !class.is_some_and(|c| s.storage_classes.iter().any(|a| a == c))
        {
            return skip(SkipReason::StorageClass);
        }
        let encryption = row.encryption_status.as_deref().map(Encryption::of);
        if let Some(wanted) = s.encryption {
            let bucket_key = row
                .bucket_key_status
                .as_deref()
                .map(|b| b.eq_ignore_ascii_case("ENABLED"));
            if !encryption_passes(wanted, encryption, bucket_key) {
                return skip(SkipReason::Encryption);
            }
        }
        if encryption == Some(Encryption::SseC) {
            return skip(SkipReason::SseC);
        }
        let archived_class = class.is_some_and(|c| ARCHIVED_STORAGE_CLASSES.contains(&c));
        let archived_tier = row
            .intelligent_tiering_access_tier
            .as_deref()
            .is_some_and(|t| ARCHIVED_TIERS.contains(&t));
        if archived_class || archived_tier {
            return skip(SkipReason::Archived);
        }
        if size > MAX_COPY_OBJECT_BYTES {
            Outcome::Large
        } else {
            Outcome::Copy
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    None,
    SseS3,
    Kms,
    SseC,
    Other,
}

impl Encryption {
    fn of(status: &str) -> Self {
        match status.to_ascii_uppercase().as_str() {
            "NOT-SSE" => Encryption::None,
            "SSE-S3" => Encryption::SseS3,
            "SSE-KMS" | "DSSE-KMS" => Encryption::Kms,
            "SSE-C" => Encryption::SseC,
            _ => Encryption::Other,
        }
    }
}

fn encryption_passes(
    wanted: EncryptionFilter,
    status: Option<Encryption>,
    bucket_key: Option<bool>,
) -> bool {
    let Some(status) = status else {
        return false;
    };
    match wanted {
        EncryptionFilter::NotSseKmsBucketKey => match status {
            // Unknown Bucket Key status on a KMS object: can't show it needs the copy.
            Encryption::Kms => bucket_key == Some(false),
            _ => true,
        },
        EncryptionFilter::NotSseKms => status != Encryption::Kms,
        EncryptionFilter::SseKms => status == Encryption::Kms,
        EncryptionFilter::SseS3 => status == Encryption::SseS3,
        EncryptionFilter::NotSse => status == Encryption::None,
    }
}
