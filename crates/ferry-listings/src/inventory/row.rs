//! One inventory row ([`InventoryRow`]), what the readers share to fill it (field slots, value
//! kinds, the schema checks), their one error type ([`InventoryError`]) and the macro that makes
//! each reader an `Iterator`.

use ferry_plan::inventory_fields::Column;

use crate::inventory::file_format::FileFormat;

/// What every data-file reader (with fields `file` and `row`, and a `read_into`) offers besides
/// `read_into`: its file's key, its row count, and `Iterator` with a fresh row per item
/// (`read_into` reuses one, for the hot path).
macro_rules! rows_iterator {
    ($reader:ident, $($bound:tt)+) => {
        impl<R: $($bound)+> $reader<R> {
            /// The data file's key (`files[].key`).
            pub fn file_key(&self) -> &str {
                &self.file
            }

            /// Rows read so far, bad ones included.
            pub fn rows_read(&self) -> u64 {
                self.row
            }
        }

        impl<R: $($bound)+> Iterator for $reader<R> {
            type Item = Result<$crate::inventory::row::InventoryRow, $crate::inventory::row::InventoryError>;

            fn next(&mut self) -> Option<Self::Item> {
                let mut row = $crate::inventory::row::InventoryRow::default();
                match self.read_into(&mut row) {
                    Ok(true) => Some(Ok(row)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                }
            }
        }
    };
}
pub(crate) use rows_iterator;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Text,
    Bool,
    Size,
    Time,
}

/// One inventory row: an object version, or a delete marker. A field is `None` when the
/// inventory has no such column or the row leaves it empty (a delete marker has no size).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryRow {
    pub bucket: String,
    /// The key as S3 stores it (decoded).
    pub key: String,
    /// `None` for a null version (an object written while versioning was off) and in
    /// inventories of current versions only.
    pub version_id: Option<String>,
    pub is_latest: Option<bool>,
    pub is_delete_marker: Option<bool>,
    pub size: Option<u64>,
    /// Milliseconds since the Unix epoch, UTC.
    pub last_modified_ms: Option<i64>,
    /// As the inventory lists it (no quotes).
    pub etag: Option<String>,
    /// `STANDARD`, `GLACIER`, `DEEP_ARCHIVE`, `INTELLIGENT_TIERING`, …
    pub storage_class: Option<String>,
    pub is_multipart_uploaded: Option<bool>,
    pub replication_status: Option<String>,
    /// `NOT-SSE`, `SSE-S3`, `SSE-KMS`, `DSSE-KMS` or `SSE-C`.
    pub encryption_status: Option<String>,
    pub object_lock_retain_until_ms: Option<i64>,
    pub object_lock_mode: Option<String>,
    pub object_lock_legal_hold_status: Option<String>,
    /// Intelligent-Tiering access tier (`FREQUENT`, `INFREQUENT`, `ARCHIVE_INSTANT_ACCESS`,
    /// `ARCHIVE`, `DEEP_ARCHIVE`).
    pub intelligent_tiering_access_tier: Option<String>,
    /// `ENABLED` or `DISABLED`.
    pub bucket_key_status: Option<String>,
    pub checksum_algorithm: Option<String>,
    pub object_owner: Option<String>,
    pub lifecycle_expiration_ms: Option<i64>,
}

impl InventoryRow {
    pub(crate) fn clear(&mut self) {
        self.bucket.clear();
        self.key.clear();
        self.version_id = None;
        self.is_latest = None;
        self.is_delete_marker = None;
        self.size = None;
        self.last_modified_ms = None;
        self.etag = None;
        self.storage_class = None;
        self.is_multipart_uploaded = None;
        self.replication_status = None;
        self.encryption_status = None;
        self.object_lock_retain_until_ms = None;
        self.object_lock_mode = None;
        self.object_lock_legal_hold_status = None;
        self.intelligent_tiering_access_tier = None;
        self.bucket_key_status = None;
        self.checksum_algorithm = None;
        self.object_owner = None;
        self.lifecycle_expiration_ms = None;
    }

    /// The slot of a text column (bucket and key are set by the readers themselves).
    pub(crate) fn text_slot(&mut self, column: Column) -> Option<&mut Option<String>> {
        Some(match column {
            Column::VersionId => &mut self.version_id,
            Column::ETag => &mut self.etag,
            Column::StorageClass => &mut self.storage_class,
            Column::ReplicationStatus => &mut self.replication_status,
            Column::EncryptionStatus => &mut self.encryption_status,
            Column::ObjectLockMode => &mut self.object_lock_mode,
            Column::ObjectLockLegalHoldStatus => &mut self.object_lock_legal_hold_status,
            Column::IntelligentTieringAccessTier => &mut self.intelligent_tiering_access_tier,
            Column::BucketKeyStatus => &mut self.bucket_key_status,
            Column::ChecksumAlgorithm => &mut self.checksum_algorithm,
            Column::ObjectOwner => &mut self.object_owner,
            _ => return None,
        })
    }

    pub(crate) fn bool_slot(&mut self, column: Column) -> Option<&mut Option<bool>> {
        Some(match column {
            Column::IsLatest => &mut self.is_latest,
            Column::IsDeleteMarker => &mut self.is_delete_marker,
            Column::IsMultipartUploaded => &mut self.is_multipart_uploaded,
            _ => return None,
        })
    }

    pub(crate) fn time_slot(&mut self, column: Column) -> Option<&mut Option<i64>> {
        Some(match column {
            Column::LastModifiedDate => &mut self.last_modified_ms,
            Column::ObjectLockRetainUntilDate => &mut self.object_lock_retain_until_ms,
            Column::LifecycleExpirationDate => &mut self.lifecycle_expiration_ms,
            _ => return None,
        })
    }

    /// Checks what every reader promises about a row it yields; the message names the field.
    pub(crate) fn check(&self, source_bucket: &str, size_column: bool) -> Result<(), String> {
        if self.bucket != source_bucket {
            return Err(format!(
                "Bucket {:?} is not the inventory's sourceBucket {source_bucket:?}",
                self.bucket
            ));
        }
        if self.key.is_empty() {
            return Err("Key is empty".into());
        }
        if self.key.len() > crate::manifest::MAX_KEY_BYTES {
            return Err(format!(
                "Key decodes to {} bytes; S3 keys are at most {}",
                self.key.len(),
                crate::manifest::MAX_KEY_BYTES
            ));
        }
        if let Some(v) = &self.version_id {
            if !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "VersionId {v:?} is not printable ASCII without spaces"
                ));
            }
        }
        // Routing needs every object's size; only delete markers have none.
        if size_column && self.size.is_none() && self.is_delete_marker != Some(true) {
            return Err("Size is empty on an object that is not a delete marker".into());
        }
        Ok(())
    }
}

/// One decoded value of a Parquet or ORC row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FieldValue<'a> {
    Text(&'a [u8]),
    /// A text value too long to be one S3 wrote, passed over unread: the row is refused.
    TextTooLong(usize),
    Bool(bool),
    Int(i64),
    /// Milliseconds since the Unix epoch.
    TimeMs(i64),
}

impl InventoryRow {
    /// Sets `column` from a decoded value; the message names the column when the value can't be
    /// what S3 wrote.
    pub(crate) fn set(&mut self, column: Column, value: FieldValue<'_>) -> Result<(), String> {
        let utf8 =
            |bytes| std::str::from_utf8(bytes).map_err(|_| format!("{column} is not UTF-8 text"));
        match (column, value) {
            (Column::Bucket, FieldValue::Text(b)) => set_string(&mut self.bucket, utf8(b)?),
            (Column::Key, FieldValue::Text(b)) => set_string(&mut self.key, utf8(b)?),
            (_, FieldValue::Text(b)) => {
                if b.is_empty() {
                    return Ok(());
                }
                let s = utf8(b)?;
                if let Some(slot) = self.text_slot(column) {
                    set_text(slot, s);
                }
            }
            (_, FieldValue::TextTooLong(n)) => {
                return Err(format!(
                    "{column} is {n} bytes long, more than any value S3 Inventory writes"
                ))
            }
            (_, FieldValue::Bool(b)) => {
                if let Some(slot) = self.bool_slot(column) {
                    *slot = Some(b);
                }
            }
            (Column::Size, FieldValue::Int(n)) => {
                self.size = Some(u64::try_from(n).map_err(|_| format!("Size {n} is negative"))?);
            }
            (_, FieldValue::Int(_)) => {}
            (_, FieldValue::TimeMs(ms)) => {
                if let Some(slot) = self.time_slot(column) {
                    *slot = Some(ms);
                }
            }
        }
        Ok(())
    }
}

/// The columns a Parquet or ORC reader found, or every problem of its schema at once: the ones
/// it met, plus a missing bucket or key column (no row can be read without them).
pub(crate) fn schema_problems<T>(
    found: Vec<T>,
    column: impl Fn(&T) -> Column,
    mut problems: Vec<String>,
) -> Result<Vec<T>, String> {
    for required in [Column::Bucket, Column::Key] {
        if !found.iter().any(|f| column(f) == required) {
            problems.push(format!("the file has no {} column", required.snake_name()));
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems.join("; "))
    }
}

pub(crate) fn set_string(s: &mut String, value: &str) {
    s.clear();
    s.push_str(value);
}

/// Sets an optional text field, reusing its allocation.
pub(crate) fn set_text(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(s) => {
            s.clear();
            s.push_str(value);
        }
        None => *slot = Some(value.to_string()),
    }
}

/// Why an inventory could not be read. [`InventoryError::Row`] concerns one row: reading can go
/// on with the next one. Every other variant ends the data file.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{file}: the manifest's fileFormat is {actual}, so this is not a {expected} file")]
    WrongFormat {
        file: String,
        actual: FileFormat,
        expected: FileFormat,
    },
    #[error("{file}: reading failed: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing a manifest failed: {0}")]
    Write(#[source] std::io::Error),
    /// The local scratch space (the downloaded copy of a data file, the parts written from
    /// it) failed: not the inventory's fault, worth running again.
    #[error("the work directory, {path}: {source}")]
    WorkDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A data file whose MD5 is not `files[].MD5checksum`: changed after S3 Inventory wrote it.
    #[error(
        "the data file {file:?} has MD5 {found}, but manifest.json's files[].MD5checksum for it is {expected:?}: \
         it was changed after S3 Inventory wrote it, so none of its rows is used"
    )]
    Checksum {
        file: String,
        found: String,
        /// As `manifest.json` says it, cut at 64 characters.
        expected: String,
    },
    #[error("starting {threads} threads to read the data files failed: {message}")]
    Threads { threads: usize, message: String },
    #[error("{file}: not a readable Parquet inventory file: {message}")]
    Parquet { file: String, message: String },
    #[error("{file}: not a readable ORC inventory file: {message}")]
    Orc { file: String, message: String },
    #[error("{file}: {message}")]
    Schema { file: String, message: String },
    /// A part the fan-out wrote between its two halves ([`super::spill`]) that does not read as
    /// one: Ferry wrote it, so it was damaged or replaced since; the run is refused.
    #[error("the fan-out's spill part {part}: {message}")]
    Spill { part: String, message: String },
    /// `row` is 1-based; in a CSV file it is also the line.
    #[error("{file} row {row}: {message}")]
    Row {
        file: String,
        row: u64,
        message: String,
    },
}

impl InventoryError {
    /// A bad row; the reader can go on.
    pub fn is_row_error(&self) -> bool {
        matches!(self, InventoryError::Row { .. })
    }
}

/// What a reader does with a column's text or value.
pub(crate) fn value_kind(column: Column) -> ValueKind {
    match column {
        Column::IsLatest | Column::IsDeleteMarker | Column::IsMultipartUploaded => ValueKind::Bool,
        Column::Size => ValueKind::Size,
        Column::LastModifiedDate
        | Column::ObjectLockRetainUntilDate
        | Column::LifecycleExpirationDate => ValueKind::Time,
        _ => ValueKind::Text,
    }
}
