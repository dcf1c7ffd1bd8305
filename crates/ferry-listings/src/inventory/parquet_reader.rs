//! Parquet inventory data files, read column by column in batches of [`BATCH_ROWS`] rows and
//! handed out row by row.
//!
//! Parquet needs random access (the footer, then each column chunk), so the reader takes a
//! [`ChunkReader`]: a local [`std::fs::File`], or the whole file as [`Bytes`]. Holding one data
//! file in memory is the accepted cost (S3 writes them in the tens to hundreds of MB); rows are
//! never all materialized, only one batch per column.
//!
//! Column names come from the file's own schema (`bucket`, `key`, `size`, …). Keys are taken
//! as written: assumed (verify) that only CSV inventories URL-encode keys, as the S3 user guide
//! says of the Key field.

use bytes::Bytes;
use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};

use crate::inventory::manifest_json::check_file_columns;
use crate::inventory::manifest_json::{FileFormat, InventoryManifest};
use crate::inventory::row::{
    schema_problems, value_kind, FieldValue, InventoryError, InventoryRow, ValueKind,
};
use ferry_plan::inventory_fields::Column;

/// Rows decoded per column at a time.
pub const BATCH_ROWS: usize = 1024;

/// Rows of one Parquet data file. Yields `Err(InventoryError::Row)` for a bad row and goes on;
/// any other error ends the file.
pub struct ParquetInventoryReader<R: ChunkReader + 'static> {
    file: String,
    source_bucket: String,
    size_column: bool,
    reader: SerializedFileReader<R>,
    leaves: Vec<Leaf>,
    /// The current row group's columns, parallel to `leaves`; empty between row groups.
    cursors: Vec<Cursor>,
    next_group: usize,
    batch_rows: usize,
    batch_pos: usize,
    row: u64,
    done: bool,
}

/// A column Ferry reads: where it is and how to turn its values into a row's field.
#[derive(Debug, Clone, Copy)]
struct Leaf {
    column: Column,
    index: usize,
    max_def: i16,
    /// Divisor from the column's time unit to milliseconds (time columns only).
    per_milli: i64,
}

enum Values {
    Bytes(ColumnReaderImpl<ByteArrayType>, Vec<ByteArray>),
    I64(ColumnReaderImpl<Int64Type>, Vec<i64>),
    I32(ColumnReaderImpl<Int32Type>, Vec<i32>),
    Bool(ColumnReaderImpl<BoolType>, Vec<bool>),
}

struct Cursor {
    values: Values,
    defs: Vec<i16>,
    next_value: usize,
}

impl ParquetInventoryReader<Bytes> {
    /// Reads a data file held in memory.
    pub fn from_bytes(
        manifest: &InventoryManifest,
        file_key: &str,
        data: impl Into<Bytes>,
    ) -> Result<Self, InventoryError> {
        Self::new(manifest, file_key, data.into())
    }
}

impl<R: ChunkReader + 'static> ParquetInventoryReader<R> {
    /// Opens a data file (reads its footer and checks its columns). `file_key` is its
    /// `files[].key`, for error messages.
    pub fn new(
        manifest: &InventoryManifest,
        file_key: &str,
        data: R,
    ) -> Result<Self, InventoryError> {
        manifest.expect_format(file_key, FileFormat::Parquet)?;
        let reader = fenced(|| SerializedFileReader::new(data).map_err(|e| e.to_string()))
            .map_err(|message| InventoryError::Parquet {
                file: file_key.to_string(),
                message,
            })?;
        let leaves =
            leaves(reader.metadata().file_metadata().schema_descr()).map_err(|message| {
                InventoryError::Schema {
                    file: file_key.to_string(),
                    message,
                }
            })?;
        check_file_columns(manifest, file_key, |c| leaves.iter().any(|l| l.column == c))?;
        Ok(Self {
            file: file_key.to_string(),
            source_bucket: manifest.source_bucket.clone(),
            size_column: leaves.iter().any(|l| l.column == Column::Size),
            reader,
            leaves,
            cursors: Vec::new(),
            next_group: 0,
            batch_rows: 0,
            batch_pos: 0,
            row: 0,
            done: false,
        })
    }

    /// Reads the next row into `row`, reusing its allocations. `Ok(false)` at the end.
    pub fn read_into(&mut self, row: &mut InventoryRow) -> Result<bool, InventoryError> {
        if self.done {
            return Ok(false);
        }
        if self.batch_pos == self.batch_rows {
            // After a panic the readers are in an unknown state: `done` keeps them untouched.
            match fenced(|| self.next_batch()) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return Ok(false);
                }
                Err(message) => {
                    self.done = true;
                    return Err(InventoryError::Parquet {
                        file: self.file.clone(),
                        message,
                    });
                }
            }
        }
        let i = self.batch_pos;
        self.batch_pos += 1;
        self.row += 1;
        self.fill(i, row).map_err(|message| InventoryError::Row {
            file: self.file.clone(),
            row: self.row,
            message,
        })?;
        Ok(true)
    }

    /// Decodes the next batch of every column, moving on to the next row group when one ends.
    fn next_batch(&mut self) -> Result<bool, String> {
        loop {
            if self.cursors.is_empty() {
                if self.next_group >= self.reader.num_row_groups() {
                    return Ok(false);
                }
                let group = self
                    .reader
                    .get_row_group(self.next_group)
                    .map_err(|e| e.to_string())?;
                self.next_group += 1;
                for leaf in &self.leaves {
                    let reader = group
                        .get_column_reader(leaf.index)
                        .map_err(|e| e.to_string())?;
                    self.cursors.push(Cursor::new(leaf, reader)?);
                }
            }
            let mut rows = None;
            for (cursor, leaf) in self.cursors.iter_mut().zip(&self.leaves) {
                let n = cursor.read(BATCH_ROWS).map_err(|e| e.to_string())?;
                match rows {
                    None => rows = Some(n),
                    Some(m) if m == n => {}
                    Some(m) => {
                        return Err(format!(
                            "column {} has {n} rows where the others have {m}",
                            leaf.column.snake_name()
                        ))
                    }
                }
            }
            match rows {
                Some(n) if n > 0 => {
                    self.batch_rows = n;
                    self.batch_pos = 0;
                    return Ok(true);
                }
                // This row group is done.
                _ => self.cursors.clear(),
            }
        }
    }

    fn fill(&mut self, i: usize, row: &mut InventoryRow) -> Result<(), String> {
        row.clear();
        // Every value of the row is taken before checking it, so the cursors stay in step
        // even when the row is bad.
        let mut first_error = None;
        for (cursor, leaf) in self.cursors.iter_mut().zip(&self.leaves) {
            let Some(value) = cursor.take(i, leaf.max_def) else {
                continue;
            };
            if first_error.is_none() {
                let value = match value {
                    FieldValue::Int(n) if value_kind(leaf.column) == ValueKind::Time => {
                        FieldValue::TimeMs(n.div_euclid(leaf.per_milli))
                    }
                    other => other,
                };
                first_error = row.set(leaf.column, value).err();
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => row.check(&self.source_bucket, self.size_column),
        }
    }
}

impl Cursor {
    fn new(leaf: &Leaf, reader: ColumnReader) -> Result<Self, String> {
        let values = match reader {
            ColumnReader::ByteArrayColumnReader(r) => Values::Bytes(r, Vec::new()),
            ColumnReader::Int64ColumnReader(r) => Values::I64(r, Vec::new()),
            ColumnReader::Int32ColumnReader(r) => Values::I32(r, Vec::new()),
            ColumnReader::BoolColumnReader(r) => Values::Bool(r, Vec::new()),
            _ => {
                return Err(format!(
                    "column {} changed type between row groups",
                    leaf.column.snake_name()
                ))
            }
        };
        Ok(Self {
            values,
            defs: Vec::new(),
            next_value: 0,
        })
    }

    /// Decodes up to `max` rows; returns how many.
    fn read(&mut self, max: usize) -> parquet::errors::Result<usize> {
        self.defs.clear();
        self.next_value = 0;
        let defs = Some(&mut self.defs);
        let (rows, _, _) = match &mut self.values {
            Values::Bytes(r, v) => {
                v.clear();
                r.read_records(max, defs, None, v)?
            }
            Values::I64(r, v) => {
                v.clear();
                r.read_records(max, defs, None, v)?
            }
            Values::I32(r, v) => {
                v.clear();
                r.read_records(max, defs, None, v)?
            }
            Values::Bool(r, v) => {
                v.clear();
                r.read_records(max, defs, None, v)?
            }
        };
        Ok(rows)
    }

    /// Row `i`'s value, `None` when null. Rows are taken in order: non-null values are packed,
    /// and the definition levels say which rows have one.
    fn take(&mut self, i: usize, max_def: i16) -> Option<FieldValue<'_>> {
        if max_def > 0 && self.defs.get(i).is_none_or(|d| *d < max_def) {
            return None;
        }
        let at = self.next_value;
        self.next_value += 1;
        match &self.values {
            Values::Bytes(_, v) => v.get(at).map(|b| FieldValue::Text(b.data())),
            Values::I64(_, v) => v.get(at).map(|n| FieldValue::Int(*n)),
            Values::I32(_, v) => v.get(at).map(|n| FieldValue::Int(i64::from(*n))),
            Values::Bool(_, v) => v.get(at).map(|b| FieldValue::Bool(*b)),
        }
    }
}

/// The columns Ferry reads, checked against what each must be. Unknown and nested columns are
/// ignored.
fn leaves(schema: &parquet::schema::types::SchemaDescriptor) -> Result<Vec<Leaf>, String> {
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut problems = Vec::new();
    for (index, descr) in schema.columns().iter().enumerate() {
        if descr.max_rep_level() > 0 || descr.path().parts().len() != 1 {
            continue;
        }
        let Some(column) = Column::from_name(descr.name()) else {
            continue;
        };
        if leaves.iter().any(|l| l.column == column) {
            problems.push(format!("column {} appears twice", descr.name()));
            continue;
        }
        let physical = descr.physical_type();
        let mut per_milli = 1;
        let ok = match value_kind(column) {
            ValueKind::Text => physical == PhysicalType::BYTE_ARRAY,
            ValueKind::Bool => physical == PhysicalType::BOOLEAN,
            ValueKind::Size => matches!(physical, PhysicalType::INT64 | PhysicalType::INT32),
            ValueKind::Time => match time_unit(descr) {
                Some(divisor) if physical == PhysicalType::INT64 => {
                    per_milli = divisor;
                    true
                }
                _ => false,
            },
        };
        if !ok {
            problems.push(format!(
                "column {} is {physical}{}, which is not what S3 Inventory writes ({})",
                descr.name(),
                descr
                    .logical_type_ref()
                    .map(|l| format!(" ({l:?})"))
                    .unwrap_or_default(),
                match value_kind(column) {
                    ValueKind::Text => "a UTF8 BYTE_ARRAY",
                    ValueKind::Bool => "a BOOLEAN",
                    ValueKind::Size => "an INT64",
                    ValueKind::Time => "an INT64 timestamp in milli-, micro- or nanoseconds",
                }
            ));
            continue;
        }
        leaves.push(Leaf {
            column,
            index,
            max_def: descr.max_def_level(),
            per_milli,
        });
    }
    schema_problems(leaves, |l| l.column, problems)
}

/// Runs parquet decoding so that a panic becomes an error. The parquet crate asserts on some
/// damaged files (a page header pointing past the data, a missing dictionary) instead of
/// returning an error; one damaged data file must not take the whole run down.
fn fenced<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(format!(
            "the file is damaged (the Parquet decoder gave up: {why})"
        ))
    })
}

/// Milliseconds are divided by 1, micro- by 1,000, nanoseconds by 1,000,000.
fn time_unit(descr: &parquet::schema::types::ColumnDescriptor) -> Option<i64> {
    match descr.logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => Some(match t.unit {
            TimeUnit::MILLIS => 1,
            TimeUnit::MICROS => 1_000,
            TimeUnit::NANOS => 1_000_000,
        }),
        _ => match descr.converted_type() {
            ConvertedType::TIMESTAMP_MILLIS => Some(1),
            ConvertedType::TIMESTAMP_MICROS => Some(1_000),
            _ => None,
        },
    }
}

crate::inventory::row::rows_iterator!(ParquetInventoryReader, ChunkReader + 'static);
