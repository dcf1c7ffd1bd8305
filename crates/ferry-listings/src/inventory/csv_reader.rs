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

/// The longest line (row) a data file may have: a key is at most 1,024 bytes, three times that
/// URL-encoded, and the other columns are short (an ACL column a few kilobytes).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// How many times its stored size a data file may decompress to. CSV inventories compress
/// about 5–15 times; a file that expands more than this was not written by S3 Inventory (a
/// gzip bomb would otherwise keep a thread busy past Lambda's timeout).
pub const MAX_EXPANSION: u64 = 256;

/// Decompressed text with bounds: at most `left` bytes in all, and no row longer than about
/// [`MAX_LINE_BYTES`] (the CSV reader holds a whole row in memory). Going past either is an I/O
/// error of the read, which ends the file with its name.
///
/// A row ends at a line break outside quotes (a quoted field may hold one, and the CSV reader
/// keeps reading it into the same row). S3 Inventory URL-encodes keys and writes no line break
/// inside a field, so for its files the last line break of a read always ends a row; when the
/// quotes say it doesn't, the row is taken to go on (which can only overstate its length).
/// Quotes are counted, not parsed: a vectorised count per read, not a byte-by-byte state machine.
pub struct BoundedText<R> {
    inner: R,
    left: u64,
    limit: u64,
    line: usize,
    in_quotes: bool,
}

impl<R: Read> BoundedText<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            left: limit,
            limit,
            line: 0,
            in_quotes: false,
        }
    }
}

fn quotes(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'"').count()
}

impl<R: Read> Read for BoundedText<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Reads of at most half the row bound: a row inside one read is then within it.
        let cap = buf.len().min(MAX_LINE_BYTES / 2);
        let n = self.inner.read(&mut buf[..cap])?;
        if n as u64 > self.left {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "it decompresses to more than {} bytes ({MAX_EXPANSION} times its size): S3 Inventory \
                     does not write such files",
                    self.limit
                ),
            ));
        }
        self.left -= n as u64;
        let read = &buf[..n];
        // Inside quotes at the last line break? Then it is part of a field, not a row's end.
        let ends_row = read.iter().rposition(|b| *b == b'\n').filter(|last| {
            let odd = quotes(&read[..*last]) % 2 == 1;
            self.in_quotes == odd
        });
        // A row ending in this read is at most what was carried plus this read up to its last
        // row end (more when several rows end here; an S3 row is far shorter than a read).
        let longest = match ends_row {
            Some(last) => {
                let ended = self.line + last + 1;
                self.line = n - last - 1;
                ended.max(self.line)
            }
            None => {
                self.line += n;
                self.line
            }
        };
        if quotes(read) % 2 == 1 {
            self.in_quotes = !self.in_quotes;
        }
        if longest > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a row is longer than {MAX_LINE_BYTES} bytes: not an inventory row"),
            ));
        }
        Ok(n)
    }
}

impl<G: Read> CsvInventoryReader<BoundedText<MultiGzDecoder<G>>> {
    /// [`CsvInventoryReader::new`] for a data file of `stored_size` bytes, its text bounded
    /// ([`BoundedText`]: at most [`MAX_EXPANSION`] times that, lines of [`MAX_LINE_BYTES`]).
    pub fn bounded(
        manifest: &InventoryManifest,
        file_key: &str,
        gz: G,
        stored_size: u64,
    ) -> Result<Self, InventoryError> {
        let limit = stored_size.max(1).saturating_mul(MAX_EXPANSION);
        Self::from_decompressed(
            manifest,
            file_key,
            BoundedText::new(MultiGzDecoder::new(gz), limit),
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_past_its_bounds_is_an_error() {
        let rows = b"a\nbb\nccc\n".repeat(100);
        let mut ok = BoundedText::new(rows.as_slice(), rows.len() as u64);
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        assert_eq!(out, rows);
        let mut over = BoundedText::new(rows.as_slice(), rows.len() as u64 - 1);
        let err = over.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("decompresses to more than"),
            "{err}"
        );
        let line = vec![b'x'; MAX_LINE_BYTES + 10];
        let mut long = BoundedText::new(
            std::io::BufReader::with_capacity(4096, line.as_slice()),
            u64::MAX,
        );
        let err = long.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        // Line breaks inside a quoted field do not end the row (the CSV reader keeps reading it).
        let mut quoted = b"\"".to_vec();
        quoted.extend(b"aaaa\n".repeat(MAX_LINE_BYTES / 4));
        quoted.extend(b"\"\n");
        let mut long = BoundedText::new(
            std::io::BufReader::with_capacity(4096, quoted.as_slice()),
            u64::MAX,
        );
        let err = long.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        // Quoted fields without line breaks, as S3 writes them, pass.
        let rows = b"\"b\",\"k%0Ay\",\"1\"\n".repeat(100_000);
        let mut ok = BoundedText::new(
            std::io::BufReader::with_capacity(4096, rows.as_slice()),
            u64::MAX,
        );
        ok.read_to_end(&mut Vec::new()).unwrap();
    }
}
