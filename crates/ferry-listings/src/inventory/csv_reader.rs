//! CSV inventory data files: gzip (possibly several members), no header, every field quoted,
//! columns in `fileSchema` order, keys URL-encoded ([`decode_inventory_key`]: a raw `+` is a
//! space). Streaming: one record buffer, reused for every row.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::inventory::manifest_json::{FileFormat, InventoryManifest};
use crate::inventory::row::{set_text, value_kind, InventoryError, InventoryRow, ValueKind};
use crate::manifest::decode_inventory_key;
use ferry_plan::inventory_fields::Column;
use ferry_plan::time::parse_rfc3339_ms;

/// Rows of one CSV data file. Yields `Err(InventoryError::Row)` for a bad row and goes on with
/// the next; any other error ends the file.
pub struct CsvInventoryReader<R: Read> {
    file: String,
    source_bucket: String,
    columns: Vec<Option<Column>>,
    size_column: bool,
    csv: csv::Reader<R>,
    record: csv::ByteRecord,
    row: u64,
    done: bool,
}

impl<G: Read> CsvInventoryReader<MultiGzDecoder<G>> {
    /// Reads a data file as S3 stores it (`.csv.gz`). `file_key` is its `files[].key`, for
    /// error messages.
    pub fn new(
        manifest: &InventoryManifest,
        file_key: &str,
        gz: G,
    ) -> Result<Self, InventoryError> {
        // Multi-member: gzip streams may be concatenated, and the plain decoder would stop
        // silently after the first member, losing rows.
        Self::from_decompressed(manifest, file_key, MultiGzDecoder::new(gz))
    }
}

impl<R: Read> CsvInventoryReader<R> {
    /// Reads CSV that is already decompressed.
    pub fn from_decompressed(
        manifest: &InventoryManifest,
        file_key: &str,
        csv_text: R,
    ) -> Result<Self, InventoryError> {
        manifest.expect_format(file_key, FileFormat::Csv)?;
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            // Field counts are checked per row, so a bad row is reported with its number.
            .flexible(true)
            .buffer_capacity(64 * 1024)
            .from_reader(csv_text);
        Ok(Self {
            file: file_key.to_string(),
            source_bucket: manifest.source_bucket.clone(),
            columns: manifest.schema.columns().to_vec(),
            size_column: manifest.schema.has(Column::Size),
            csv,
            record: csv::ByteRecord::new(),
            row: 0,
            done: false,
        })
    }

    /// Reads the next row into `row`, reusing its allocations. `Ok(false)` at the end.
    pub fn read_into(&mut self, row: &mut InventoryRow) -> Result<bool, InventoryError> {
        if self.done {
            return Ok(false);
        }
        match self.csv.read_byte_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => {
                self.done = true;
                return Ok(false);
            }
            Err(e) => {
                self.done = true;
                let source = match e.into_kind() {
                    csv::ErrorKind::Io(io) => io,
                    other => {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{other:?}"))
                    }
                };
                return Err(InventoryError::Io {
                    file: self.file.clone(),
                    source,
                });
            }
        }
        self.row += 1;
        self.fill(row).map_err(|message| InventoryError::Row {
            file: self.file.clone(),
            row: self.row,
            message,
        })?;
        Ok(true)
    }

    fn fill(&self, row: &mut InventoryRow) -> Result<(), String> {
        row.clear();
        if self.record.len() != self.columns.len() {
            return Err(format!(
                "{} fields, but fileSchema names {} columns",
                self.record.len(),
                self.columns.len()
            ));
        }
        for (field, column) in self.record.iter().zip(&self.columns) {
            let Some(column) = *column else { continue };
            let text =
                std::str::from_utf8(field).map_err(|_| format!("{column} is not UTF-8 text"))?;
            set_csv_field(row, column, text)?;
        }
        row.check(&self.source_bucket, self.size_column)
    }
}

fn set_csv_field(row: &mut InventoryRow, column: Column, text: &str) -> Result<(), String> {
    match column {
        Column::Bucket => row.bucket.push_str(text),
        Column::Key => {
            row.key = decode_inventory_key(text).map_err(|e| format!("Key {text:?}: {e}"))?;
        }
        _ if text.is_empty() => {}
        _ => match value_kind(column) {
            ValueKind::Text => {
                if let Some(slot) = row.text_slot(column) {
                    set_text(slot, text);
                }
            }
            ValueKind::Bool => {
                let value = if text.eq_ignore_ascii_case("true") {
                    true
                } else if text.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(format!("{column} {text:?} is not true or false"));
                };
                if let Some(slot) = row.bool_slot(column) {
                    *slot = Some(value);
                }
            }
            ValueKind::Size => {
                let size = text
                    .parse::<u64>()
                    .map_err(|_| format!("Size {text:?} is not a byte count"))?;
                row.size = Some(size);
            }
            ValueKind::Time => {
                let ms = parse_rfc3339_ms(text).ok_or_else(|| {
                    format!("{column} {text:?} is not a date such as 2024-05-01T12:30:00.000Z")
                })?;
                if let Some(slot) = row.time_slot(column) {
                    *slot = Some(ms);
                }
            }
        },
    }
    Ok(())
}

crate::inventory::row::rows_iterator!(CsvInventoryReader, Read);
