//! The fields of an S3 Inventory report (`Column`): the names its `fileSchema` (CSV) or schema
//! (Parquet, ORC) gives them and that `PutBucketInventoryConfiguration` takes as `OptionalFields`
//! (S3 API Reference, "InventoryConfiguration"), and which of them a spec's `[filter]` reads.

use std::fmt;

use crate::spec::{EncryptionFilter, FilterSpec};

/// A column of an S3 Inventory report. CSV `fileSchema`s name them as [`Column::csv_name`]
/// (`LastModifiedDate`), Parquet and ORC ones as [`Column::snake_name`] (`last_modified_date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    Bucket,
    Key,
    VersionId,
    IsLatest,
    IsDeleteMarker,
    Size,
    LastModifiedDate,
    ETag,
    StorageClass,
    IsMultipartUploaded,
    ReplicationStatus,
    EncryptionStatus,
    ObjectLockRetainUntilDate,
    ObjectLockMode,
    ObjectLockLegalHoldStatus,
    IntelligentTieringAccessTier,
    BucketKeyStatus,
    ChecksumAlgorithm,
    ObjectAccessControlList,
    ObjectOwner,
    LifecycleExpirationDate,
}

impl Column {
    pub const ALL: [Column; 21] = [
        Column::Bucket,
        Column::Key,
        Column::VersionId,
        Column::IsLatest,
        Column::IsDeleteMarker,
        Column::Size,
        Column::LastModifiedDate,
        Column::ETag,
        Column::StorageClass,
        Column::IsMultipartUploaded,
        Column::ReplicationStatus,
        Column::EncryptionStatus,
        Column::ObjectLockRetainUntilDate,
        Column::ObjectLockMode,
        Column::ObjectLockLegalHoldStatus,
        Column::IntelligentTieringAccessTier,
        Column::BucketKeyStatus,
        Column::ChecksumAlgorithm,
        Column::ObjectAccessControlList,
        Column::ObjectOwner,
        Column::LifecycleExpirationDate,
    ];

    /// The name in a CSV `fileSchema` and in the inventory configuration's optional fields.
    pub fn csv_name(self) -> &'static str {
        match self {
            Column::Bucket => "Bucket",
            Column::Key => "Key",
            Column::VersionId => "VersionId",
            Column::IsLatest => "IsLatest",
            Column::IsDeleteMarker => "IsDeleteMarker",
            Column::Size => "Size",
            Column::LastModifiedDate => "LastModifiedDate",
            Column::ETag => "ETag",
            Column::StorageClass => "StorageClass",
            Column::IsMultipartUploaded => "IsMultipartUploaded",
            Column::ReplicationStatus => "ReplicationStatus",
            Column::EncryptionStatus => "EncryptionStatus",
            Column::ObjectLockRetainUntilDate => "ObjectLockRetainUntilDate",
            Column::ObjectLockMode => "ObjectLockMode",
            Column::ObjectLockLegalHoldStatus => "ObjectLockLegalHoldStatus",
            Column::IntelligentTieringAccessTier => "IntelligentTieringAccessTier",
            Column::BucketKeyStatus => "BucketKeyStatus",
            Column::ChecksumAlgorithm => "ChecksumAlgorithm",
            Column::ObjectAccessControlList => "ObjectAccessControlList",
            Column::ObjectOwner => "ObjectOwner",
            Column::LifecycleExpirationDate => "LifecycleExpirationDate",
        }
    }

    /// The name in a Parquet or ORC schema.
    pub fn snake_name(self) -> &'static str {
        match self {
            Column::Bucket => "bucket",
            Column::Key => "key",
            Column::VersionId => "version_id",
            Column::IsLatest => "is_latest",
            Column::IsDeleteMarker => "is_delete_marker",
            Column::Size => "size",
            Column::LastModifiedDate => "last_modified_date",
            Column::ETag => "e_tag",
            Column::StorageClass => "storage_class",
            Column::IsMultipartUploaded => "is_multipart_uploaded",
            Column::ReplicationStatus => "replication_status",
            Column::EncryptionStatus => "encryption_status",
            Column::ObjectLockRetainUntilDate => "object_lock_retain_until_date",
            Column::ObjectLockMode => "object_lock_mode",
            Column::ObjectLockLegalHoldStatus => "object_lock_legal_hold_status",
            Column::IntelligentTieringAccessTier => "intelligent_tiering_access_tier",
            Column::BucketKeyStatus => "bucket_key_status",
            Column::ChecksumAlgorithm => "checksum_algorithm",
            Column::ObjectAccessControlList => "object_access_control_list",
            Column::ObjectOwner => "object_owner",
            Column::LifecycleExpirationDate => "lifecycle_expiration_date",
        }
    }

    /// Either spelling, in any case (`ETag`, `e_tag`, `etag`); `None` for a column Ferry does
    /// not know, which readers ignore.
    pub fn from_name(name: &str) -> Option<Column> {
        let folded: String = name
            .chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Column::ALL
            .into_iter()
            .find(|c| c.csv_name().eq_ignore_ascii_case(&folded))
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.csv_name())
    }
}

/// The columns a filter and the routing need, each with the setting that needs it: the
/// inventory configuration asks for them ([`crate::inventory_setup::optional_fields`]) and a
/// run refuses an inventory without them ([`ferry_listings::inventory::filter::RowFilter::check_schema`]).
pub fn filter_columns(filter: &FilterSpec) -> Vec<(&'static str, Column)> {
    let s = filter;
    let mut needs = vec![(
        "routing by size (≤ 5 GiB copy, larger LambdaInvoke)",
        Column::Size,
    )];
    if !s.storage_classes.is_empty() {
        needs.push(("filter.storage_classes", Column::StorageClass));
    }
    if let Some(e) = s.encryption {
        needs.push(("filter.encryption", Column::EncryptionStatus));
        if e == EncryptionFilter::NotSseKmsBucketKey {
            needs.push(("filter.encryption", Column::BucketKeyStatus));
        }
    }
    if s.modified_after.is_some() || s.modified_before.is_some() {
        needs.push((
            "filter.modified_after/modified_before",
            Column::LastModifiedDate,
        ));
    }
    // latest_only needs no IsLatest column: an inventory without one lists current
    // versions only.
    needs
}
