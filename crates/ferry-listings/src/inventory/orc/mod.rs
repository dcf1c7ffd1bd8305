//! ORC inventory data files, read stripe by stripe and handed out row by row, without Arrow.
//!
//! Only what S3 Inventory writes is decoded: a `struct<…>` of string, boolean, bigint and
//! timestamp columns, in any of ORC's integer encodings (RLE v1 and v2), direct or dictionary
//! strings, and the ZLIB, SNAPPY, LZ4, ZSTD or no compression. Columns Ferry does not know are
//! never decoded. Like Parquet, ORC needs random access (the footer at the end, then each
//! stripe's streams), so the reader takes a [`ChunkReader`]: a local file or the bytes in memory.
//! Memory is one stripe's compressed streams of the columns read (a stripe is at most 64 MiB by
//! ORC's default), one decompressed chunk per column and the stripe's string dictionaries.
//!
//! Keys are taken as written, as in Parquet: only CSV inventories URL-encode them.

mod proto;
mod rle;
mod stream;

use bytes::Bytes;
use parquet::file::reader::ChunkReader;

use self::proto::{Footer, PostScript, StripeFooter, StripeInformation, Type};
use self::rle::{BoolRle, IntRle, RleVersion};
use self::stream::{ByteStream, Codec, MAX_BLOCK_SIZE};
use crate::inventory::manifest_json::check_file_columns;
use crate::inventory::manifest_json::{FileFormat, InventoryManifest};
use crate::inventory::row::{
    schema_problems, value_kind, FieldValue, InventoryError, InventoryRow, ValueKind,
};
use ferry_plan::inventory_fields::Column;

/// Bytes read from the end of the file first: the PostScript and, usually, the whole footer.
const TAIL_GUESS: u64 = 16 * 1024;

/// Longest string value accepted. Keys are at most 1,024 bytes and the other columns Ferry reads
/// are short codes and ids; a damaged length must not make Ferry buffer a whole stream.
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Largest string dictionary of one stripe accepted (its distinct keys, etc.).
const MAX_DICTIONARY_BYTES: usize = 1 << 30;

/// Seconds from the Unix epoch to ORC's timestamp epoch, 2015-01-01T00:00:00Z.
const ORC_EPOCH_SECONDS: i64 = 1_420_070_400;

/// Rows of one ORC data file. Yields `Err(InventoryError::Row)` for a bad row and goes on; any
/// other error ends the file.
pub struct OrcInventoryReader<R: ChunkReader> {
    file: String,
    source_bucket: String,
    size_column: bool,
    data: R,
    codec: Codec,
    block_size: usize,
    stripes: Vec<StripeInformation>,
    fields: Vec<Field>,
    /// The current stripe's columns, parallel to `fields`.
    cursors: Vec<Cursor>,
    next_stripe: usize,
    rows_left_in_stripe: u64,
    row: u64,
    done: bool,
    /// Holds a direct-encoded string value while it is set on the row.
    text: Vec<u8>,
}

/// A column Ferry reads.
#[derive(Debug, Clone, Copy)]
struct Field {
    column: Column,
    /// The ORC column id (the type's index in the footer).
    id: u64,
    /// `timestamp` (writer's time zone) rather than `timestamp with local time zone` (UTC).
    zoned_time: bool,
}

impl Field {
    /// Whether its values are decoded: `object_access_control_list` (long, base64) is only
    /// checked to be there, since no row field holds it.
    fn decoded(&self) -> bool {
        self.column != Column::ObjectAccessControlList
    }
}

struct Cursor {
    /// Whether each row has a value; absent when every row has one.
    present: Option<BoolRle>,
    values: Values,
}

enum Values {
    Bool(BoolRle),
    Int(IntRle),
    Time {
        seconds: IntRle,
        nanos: IntRle,
    },
    DirectText {
        data: ByteStream,
        lengths: IntRle,
    },
    DictionaryText {
        indices: IntRle,
        bytes: Vec<u8>,
        /// Entry `i` is `bytes[ends[i - 1]..ends[i]]`.
        ends: Vec<usize>,
    },
}

impl OrcInventoryReader<Bytes> {
    /// Reads a data file held in memory.
    pub fn from_bytes(
        manifest: &InventoryManifest,
        file_key: &str,
        data: impl Into<Bytes>,
    ) -> Result<Self, InventoryError> {
        Self::new(manifest, file_key, data.into())
    }
}

impl<R: ChunkReader> OrcInventoryReader<R> {
    /// Opens a data file (reads its footer and checks its columns). `file_key` is its
    /// `files[].key`, for error messages.
    pub fn new(
        manifest: &InventoryManifest,
        file_key: &str,
        data: R,
    ) -> Result<Self, InventoryError> {
        manifest.expect_format(file_key, FileFormat::Orc)?;
        let orc = |message: String| InventoryError::Orc {
            file: file_key.to_string(),
            message,
        };
        let (postscript, footer) = read_tail(&data).map_err(orc)?;
        let codec = Codec::from_kind(postscript.compression).map_err(orc)?;
        let mut fields = fields(&footer.types).map_err(|message| InventoryError::Schema {
            file: file_key.to_string(),
            message,
        })?;
        check_file_columns(manifest, file_key, |c| fields.iter().any(|f| f.column == c))?;
        fields.retain(Field::decoded);
        Ok(Self {
            file: file_key.to_string(),
            source_bucket: manifest.source_bucket.clone(),
            size_column: fields.iter().any(|f| f.column == Column::Size),
            data,
            codec,
            block_size: block_size(&postscript).map_err(orc)?,
            stripes: footer.stripes,
            fields,
            cursors: Vec::new(),
            next_stripe: 0,
            rows_left_in_stripe: 0,
            row: 0,
            done: false,
            text: Vec::new(),
        })
    }

    /// Reads the next row into `row`, reusing its allocations. `Ok(false)` at the end.
    pub fn read_into(&mut self, row: &mut InventoryRow) -> Result<bool, InventoryError> {
        if self.done {
            return Ok(false);
        }
        while self.rows_left_in_stripe == 0 {
            if self.next_stripe == self.stripes.len() {
                self.done = true;
                return Ok(false);
            }
            let stripe = self.next_stripe;
            self.next_stripe += 1;
            if let Err(message) = self.open_stripe(stripe) {
                self.done = true;
                return Err(InventoryError::Orc {
                    file: self.file.clone(),
                    message: format!("stripe {}: {message}", stripe + 1),
                });
            }
        }
        self.rows_left_in_stripe -= 1;
        self.row += 1;
        row.clear();
        // Every column's value is taken before the row is judged, so the columns stay in step
        // even when the row is bad.
        let mut first_error = None;
        for (cursor, field) in self.cursors.iter_mut().zip(&self.fields) {
            match cursor.next(&mut self.text) {
                Ok(None) => {}
                Ok(Some(value)) => {
                    if first_error.is_none() {
                        first_error = row.set(field.column, value).err();
                    }
                }
                Err(message) => {
                    self.done = true;
                    return Err(InventoryError::Orc {
                        file: self.file.clone(),
                        message: format!(
                            "row {}, column {}: {message}",
                            self.row,
                            field.column.snake_name()
                        ),
                    });
                }
            }
        }
        first_error
            .map_or_else(|| row.check(&self.source_bucket, self.size_column), Err)
            .map_err(|message| InventoryError::Row {
                file: self.file.clone(),
                row: self.row,
                message,
            })?;
        Ok(true)
    }

    /// Reads stripe `index`'s footer and sets up a cursor on each column Ferry reads.
    fn open_stripe(&mut self, index: usize) -> Result<(), String> {
        let stripe = &self.stripes[index];
        let data_start = stripe.offset;
        let footer_start = data_start
            .checked_add(stripe.index_length)
            .and_then(|s| s.checked_add(stripe.data_length))
            .ok_or("its offsets overflow")?;
        let footer_bytes = read_range(&self.data, footer_start, stripe.footer_length)?;
        let footer =
            StripeFooter::decode(&self.codec.decompress_all(self.block_size, footer_bytes)?)
                .map_err(|e| format!("the stripe footer is damaged: {e}"))?;
        let rows = stripe.number_of_rows;
        let zoned_time_ok = footer.writer_timezone.as_deref().is_none_or(is_utc);
        let mut cursors = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            if field.zoned_time && !zoned_time_ok {
                return Err(format!(
                    "column {} holds timestamps written in time zone {:?}; Ferry reads ORC \
                     timestamps written in UTC, as S3 Inventory writes them",
                    field.column.snake_name(),
                    footer.writer_timezone.as_deref().unwrap_or_default()
                ));
            }
            let streams = StripeStreams {
                reader: self,
                footer: &footer,
                data_start,
                data_end: footer_start,
                column: field.id,
            };
            cursors.push(
                streams
                    .cursor(value_kind(field.column), rows)
                    .map_err(|e| format!("column {}: {e}", field.column.snake_name()))?,
            );
        }
        self.cursors = cursors;
        self.rows_left_in_stripe = rows;
        Ok(())
    }
}

/// The streams of one column in one stripe.
struct StripeStreams<'a, R: ChunkReader> {
    reader: &'a OrcInventoryReader<R>,
    footer: &'a StripeFooter,
    data_start: u64,
    data_end: u64,
    column: u64,
}

impl<R: ChunkReader> StripeStreams<'_, R> {
    /// The column's stream of `kind`, if the stripe has one.
    fn find(&self, kind: u64) -> Result<Option<ByteStream>, String> {
        let mut start = self.data_start;
        for s in &self.footer.streams {
            let end = start
                .checked_add(s.length)
                .filter(|end| *end <= self.data_end)
                .ok_or("a stream runs past the stripe's data")?;
            if s.column == self.column && s.kind == kind {
                let bytes = read_range(&self.reader.data, start, s.length)?;
                return Ok(Some(ByteStream::new(
                    bytes,
                    self.reader.codec,
                    self.reader.block_size,
                )));
            }
            start = end;
        }
        Ok(None)
    }

    fn get(&self, kind: u64, name: &str) -> Result<ByteStream, String> {
        self.find(kind)?
            .ok_or_else(|| format!("the stripe has no {name} stream for it"))
    }

    fn cursor(&self, kind: ValueKind, rows: u64) -> Result<Cursor, String> {
        let encoding = usize::try_from(self.column)
            .ok()
            .and_then(|c| self.footer.columns.get(c))
            .ok_or("the stripe footer gives it no encoding")?;
        let version = match encoding.kind {
            proto::ENCODING_DIRECT | proto::ENCODING_DICTIONARY => RleVersion::V1,
            proto::ENCODING_DIRECT_V2 | proto::ENCODING_DICTIONARY_V2 => RleVersion::V2,
            other => return Err(format!("column encoding {other} is not an ORC encoding")),
        };
        let dictionary = matches!(
            encoding.kind,
            proto::ENCODING_DICTIONARY | proto::ENCODING_DICTIONARY_V2
        );
        if dictionary && kind != ValueKind::Text {
            return Err("only string columns can be dictionary-encoded".into());
        }
        let present = self.find(proto::STREAM_PRESENT)?.map(BoolRle::new);
        let data = self.get(proto::STREAM_DATA, "DATA")?;
        let values = match kind {
            ValueKind::Bool => Values::Bool(BoolRle::new(data)),
            ValueKind::Size => Values::Int(IntRle::new(data, version, true)),
            ValueKind::Time => Values::Time {
                seconds: IntRle::new(data, version, true),
                nanos: IntRle::new(
                    self.get(proto::STREAM_SECONDARY, "SECONDARY (nanoseconds)")?,
                    version,
                    false,
                ),
            },
            ValueKind::Text if dictionary => {
                let mut lengths =
                    IntRle::new(self.get(proto::STREAM_LENGTH, "LENGTH")?, version, false);
                // A dictionary holds distinct values of the stripe: never more than its rows.
                let size = encoding.dictionary_size;
                if size > rows {
                    return Err(format!(
                        "its dictionary claims {size} entries in a stripe of {rows} rows"
                    ));
                }
                // The dictionary's bytes may be absent when every entry is empty.
                let mut data_stream = self
                    .find(proto::STREAM_DICTIONARY_DATA)?
                    .unwrap_or_else(ByteStream::empty);
                let mut bytes = Vec::new();
                let mut ends = Vec::new();
                for _ in 0..size {
                    let len = lengths.next_usize("a dictionary entry's length")?;
                    if len > MAX_TEXT_BYTES {
                        return Err(format!(
                            "a dictionary entry is {len} bytes long, more than any S3 Inventory \
                             value ({MAX_TEXT_BYTES} bytes at most)"
                        ));
                    }
                    data_stream.read_into(len, &mut bytes)?;
                    if bytes.len() > MAX_DICTIONARY_BYTES {
                        return Err(format!(
                            "its dictionary holds more than {MAX_DICTIONARY_BYTES} bytes"
                        ));
                    }
                    ends.push(bytes.len());
                }
                Values::DictionaryText {
                    indices: IntRle::new(data, version, false),
                    bytes,
                    ends,
                }
            }
            ValueKind::Text => Values::DirectText {
                data,
                lengths: IntRle::new(self.get(proto::STREAM_LENGTH, "LENGTH")?, version, false),
            },
        };
        Ok(Cursor { present, values })
    }
}

impl Cursor {
    /// The next row's value; `None` when it is null. A direct string lands in `text`.
    fn next<'a>(&'a mut self, text: &'a mut Vec<u8>) -> Result<Option<FieldValue<'a>>, String> {
        if let Some(present) = &mut self.present {
            if !present.next()? {
                return Ok(None);
            }
        }
        Ok(Some(match &mut self.values {
            Values::Bool(b) => FieldValue::Bool(b.next()?),
            Values::Int(i) => FieldValue::Int(i.next()?),
            Values::Time { seconds, nanos } => {
                FieldValue::TimeMs(timestamp_ms(seconds.next()?, nanos.next()?)?)
            }
            Values::DirectText { data, lengths } => {
                let len = lengths.next_usize("a string's length")?;
                if len > MAX_TEXT_BYTES {
                    // Skipped without buffering it: the row is refused, reading goes on.
                    data.skip(len)?;
                    return Ok(Some(FieldValue::TextTooLong(len)));
                }
                text.clear();
                data.read_into(len, text)?;
                FieldValue::Text(text)
            }
            Values::DictionaryText {
                indices,
                bytes,
                ends,
            } => {
                let i = indices.next_usize("a dictionary index")?;
                let end = *ends.get(i).ok_or_else(|| {
                    format!(
                        "dictionary index {i} is past the dictionary's {} entries",
                        ends.len()
                    )
                })?;
                let start = i.checked_sub(1).map_or(0, |p| ends[p]);
                FieldValue::Text(&bytes[start..end])
            }
        }))
    }
}

/// Milliseconds since the Unix epoch of an ORC timestamp: seconds since 2015-01-01 (UTC for the
/// time zones Ferry accepts) and nanoseconds stored as `digits << 3 | trailing zeros - 1`.
fn timestamp_ms(seconds: i64, encoded_nanos: i64) -> Result<i64, String> {
    let encoded = encoded_nanos as u64;
    let zeros = (encoded & 7) as u32;
    let mut nanos = encoded >> 3;
    if zeros != 0 {
        nanos = nanos.saturating_mul(10u64.pow(zeros + 1));
    }
    if nanos > 999_999_999 {
        return Err(format!("a timestamp has {nanos} nanoseconds"));
    }
    let mut seconds = seconds
        .checked_add(ORC_EPOCH_SECONDS)
        .ok_or("a timestamp is out of range")?;
    // Writers truncate negative times toward zero and add the fraction back: before 1970 the
    // second is one too many (the reference readers correct it the same way).
    if seconds < 0 && nanos > 999_999 {
        seconds -= 1;
    }
    seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add((nanos / 1_000_000) as i64))
        .ok_or_else(|| "a timestamp is out of range".to_string())
}

/// Names under which time zones equal to UTC are written.
fn is_utc(zone: &str) -> bool {
    let zone = zone.strip_prefix("Etc/").unwrap_or(zone);
    [
        "",
        "UTC",
        "GMT",
        "UCT",
        "Z",
        "Zulu",
        "Universal",
        "Greenwich",
        "GMT0",
        "GMT+0",
        "GMT-0",
    ]
    .iter()
    .any(|z| z.eq_ignore_ascii_case(zone))
}

/// Reads `len` bytes at `start`, refusing ranges outside the file before any allocation.
fn read_range<R: ChunkReader>(data: &R, start: u64, len: u64) -> Result<Bytes, String> {
    let file_len = data.len();
    let end = start.checked_add(len).filter(|end| *end <= file_len);
    let (Some(_), Ok(len)) = (end, usize::try_from(len)) else {
        return Err(format!(
            "it points at bytes {start}..{} of a {file_len}-byte file: the file is cut short or \
             damaged",
            start.saturating_add(len)
        ));
    };
    data.get_bytes(start, len).map_err(|e| e.to_string())
}

/// Reads the PostScript and the footer from the end of the file.
fn read_tail<R: ChunkReader>(data: &R) -> Result<(PostScript, Footer), String> {
    let file_len = data.len();
    if file_len < 4 || read_range(data, 0, 3)?.as_ref() != b"ORC" {
        return Err("the file does not start with ORC's magic bytes".into());
    }
    let tail_len = file_len.min(TAIL_GUESS);
    let tail = read_range(data, file_len - tail_len, tail_len)?;
    let ps_len = u64::from(tail[tail.len() - 1]);
    if ps_len + 1 > tail_len {
        return Err("the PostScript is longer than the file".into());
    }
    let ps_start = (tail_len - 1 - ps_len) as usize;
    let postscript = PostScript::decode(&tail[ps_start..tail.len() - 1])
        .map_err(|e| format!("the PostScript is damaged: {e}"))?;
    if postscript.magic.as_deref() != Some("ORC") {
        return Err("the PostScript has no ORC magic: the file is damaged or cut short".into());
    }
    let codec = Codec::from_kind(postscript.compression)?;
    let footer_end = file_len - 1 - ps_len;
    let footer_start = footer_end
        .checked_sub(postscript.footer_length)
        .ok_or("the footer is longer than the file")?;
    let footer_bytes = read_range(data, footer_start, postscript.footer_length)?;
    let footer = Footer::decode(&codec.decompress_all(block_size(&postscript)?, footer_bytes)?)
        .map_err(|e| format!("the footer is damaged: {e}"))?;
    Ok((postscript, footer))
}

fn block_size(postscript: &PostScript) -> Result<usize, String> {
    let size = postscript.compression_block_size.unwrap_or(256 * 1024);
    if size > MAX_BLOCK_SIZE {
        return Err(format!(
            "the compression block size is {size} bytes; Ferry reads files with blocks up to \
             {MAX_BLOCK_SIZE} bytes"
        ));
    }
    Ok(size as usize)
}

/// The columns Ferry reads, checked against what each must be. Unknown and nested columns are
/// ignored.
fn fields(types: &[Type]) -> Result<Vec<Field>, String> {
    let root = types.first().ok_or("the file has no schema")?;
    if root.kind != proto::KIND_STRUCT || root.subtypes.len() != root.field_names.len() {
        return Err(format!(
            "the schema is a {}, not the struct<bucket:string,key:string,…> S3 Inventory writes",
            root.kind_name()
        ));
    }
    let mut fields: Vec<Field> = Vec::new();
    let mut problems = Vec::new();
    for (name, &id) in root.field_names.iter().zip(&root.subtypes) {
        let Some(column) = Column::from_name(name) else {
            continue;
        };
        let Some(t) = usize::try_from(id)
            .ok()
            .and_then(|i| types.get(i))
            .filter(|_| id > 0)
        else {
            problems.push(format!(
                "column {name} points at type {id}, which does not exist"
            ));
            continue;
        };
        if fields.iter().any(|f| f.column == column) {
            problems.push(format!("column {name} appears twice"));
            continue;
        }
        let (ok, expected) = match value_kind(column) {
            ValueKind::Text => (
                matches!(
                    t.kind,
                    proto::KIND_STRING | proto::KIND_VARCHAR | proto::KIND_CHAR
                ),
                "string",
            ),
            ValueKind::Bool => (t.kind == proto::KIND_BOOLEAN, "boolean"),
            ValueKind::Size => (
                matches!(
                    t.kind,
                    proto::KIND_LONG | proto::KIND_INT | proto::KIND_SHORT
                ),
                "bigint",
            ),
            ValueKind::Time => (
                matches!(
                    t.kind,
                    proto::KIND_TIMESTAMP | proto::KIND_TIMESTAMP_INSTANT
                ),
                "timestamp",
            ),
        };
        if !ok {
            problems.push(format!(
                "column {name} is {}, which is not what S3 Inventory writes ({expected})",
                t.kind_name()
            ));
            continue;
        }
        fields.push(Field {
            column,
            id,
            zoned_time: t.kind == proto::KIND_TIMESTAMP,
        });
    }
    schema_problems(fields, |f| f.column, problems)
}

crate::inventory::row::rows_iterator!(OrcInventoryReader, ChunkReader);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        // 2015-01-01T00:00:01.5Z: nanos 500000000 = 5 << 3 | (8 zeros - 1).
        assert_eq!(timestamp_ms(1, 5 << 3 | 7), Ok(1_420_070_401_500));
        assert_eq!(timestamp_ms(0, 0), Ok(1_420_070_400_000));
        // 1969-12-31T23:59:58.5Z written as -1 s (truncated) + 0.5 s.
        assert_eq!(timestamp_ms(-1 - ORC_EPOCH_SECONDS, 5 << 3 | 7), Ok(-1500));
        assert!(timestamp_ms(i64::MAX, 0).is_err());
        assert!(timestamp_ms(0, 1_000_000_000 << 3).is_err());
    }

    #[test]
    fn utc_zone_names() {
        for z in ["UTC", "Etc/UTC", "GMT", "Etc/GMT+0", "Zulu", ""] {
            assert!(is_utc(z), "{z}");
        }
        for z in ["America/New_York", "Europe/London", "Etc/GMT+5", "CET"] {
            assert!(!is_utc(z), "{z}");
        }
    }
}
