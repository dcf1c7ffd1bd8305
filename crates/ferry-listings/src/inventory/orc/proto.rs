//! The few ORC metadata messages Ferry needs (PostScript, Footer, StripeFooter), decoded straight
//! from the protobuf wire format.
//!
//! A general protobuf crate would bring code generation for a handful of fields; these messages
//! are small and their field numbers fixed by the ORC spec (`orc_proto.proto`). Unknown fields
//! are skipped, as protobuf requires, so files from newer writers still read.

/// A decoding problem; the caller adds which part of the file it was in.
pub(super) type ProtoResult<T> = Result<T, String>;

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order.
struct Fields<'a> {
    buf: &'a [u8],
}

fn varint(buf: &mut &[u8]) -> ProtoResult<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or("a protobuf varint runs past the end")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a protobuf varint is longer than 10 bytes".into())
}

fn take<'a>(buf: &mut &'a [u8], n: u64) -> ProtoResult<&'a [u8]> {
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= buf.len())
        .ok_or("a protobuf field is longer than its message")?;
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

impl<'a> Iterator for Fields<'a> {
    type Item = ProtoResult<(u64, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> ProtoResult<(u64, Wire<'a>)> {
        let tag = varint(&mut self.buf)?;
        let value = match tag & 7 {
            0 => Wire::Varint(varint(&mut self.buf)?),
            1 => {
                take(&mut self.buf, 8)?;
                Wire::Fixed
            }
            2 => {
                let len = varint(&mut self.buf)?;
                Wire::Bytes(take(&mut self.buf, len)?)
            }
            5 => {
                take(&mut self.buf, 4)?;
                Wire::Fixed
            }
            other => return Err(format!("protobuf wire type {other} is not one ORC uses")),
        };
        Ok((tag >> 3, value))
    }
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf }
}

fn text(bytes: &[u8]) -> ProtoResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a protobuf string is not UTF-8".to_string())
}

/// Pushes a repeated varint field, written packed (proto2 `[packed=true]`) or not.
fn push_varints(into: &mut Vec<u64>, value: Wire<'_>) -> ProtoResult<()> {
    match value {
        Wire::Varint(v) => into.push(v),
        Wire::Bytes(mut packed) => {
            while !packed.is_empty() {
                into.push(varint(&mut packed)?);
            }
        }
        Wire::Fixed => return Err("a repeated integer field has a fixed-width value".into()),
    }
    Ok(())
}

/// `CompressionKind` of the PostScript.
pub(super) const COMPRESSION_NONE: u64 = 0;
pub(super) const COMPRESSION_ZLIB: u64 = 1;
pub(super) const COMPRESSION_SNAPPY: u64 = 2;
pub(super) const COMPRESSION_LZO: u64 = 3;
pub(super) const COMPRESSION_LZ4: u64 = 4;
pub(super) const COMPRESSION_ZSTD: u64 = 5;

/// The uncompressed last part of the file: where the footer is and how everything is compressed.
#[derive(Debug, Default)]
pub(super) struct PostScript {
    pub footer_length: u64,
    pub compression: u64,
    /// Uncompressed size of one compression chunk; the spec's default is 256 KiB.
    pub compression_block_size: Option<u64>,
    pub magic: Option<String>,
}

impl PostScript {
    pub fn decode(buf: &[u8]) -> ProtoResult<Self> {
        let mut ps = PostScript::default();
        for field in fields(buf) {
            match field? {
                (1, Wire::Varint(v)) => ps.footer_length = v,
                (2, Wire::Varint(v)) => ps.compression = v,
                (3, Wire::Varint(v)) => ps.compression_block_size = Some(v),
                (8000, Wire::Bytes(b)) => ps.magic = Some(text(b)?),
                _ => {}
            }
        }
        Ok(ps)
    }
}

/// Where one stripe (a horizontal slice of rows) is.
#[derive(Debug, Default, Clone)]
pub(super) struct StripeInformation {
    pub offset: u64,
    pub index_length: u64,
    pub data_length: u64,
    pub footer_length: u64,
    pub number_of_rows: u64,
}

impl StripeInformation {
    fn decode(buf: &[u8]) -> ProtoResult<Self> {
        let mut s = StripeInformation::default();
        for field in fields(buf) {
            match field? {
                (1, Wire::Varint(v)) => s.offset = v,
                (2, Wire::Varint(v)) => s.index_length = v,
                (3, Wire::Varint(v)) => s.data_length = v,
                (4, Wire::Varint(v)) => s.footer_length = v,
                (5, Wire::Varint(v)) => s.number_of_rows = v,
                _ => {}
            }
        }
        Ok(s)
    }
}

/// `Type.Kind` values Ferry reads.
pub(super) const KIND_BOOLEAN: u64 = 0;
pub(super) const KIND_SHORT: u64 = 2;
pub(super) const KIND_INT: u64 = 3;
pub(super) const KIND_LONG: u64 = 4;
pub(super) const KIND_STRING: u64 = 7;
pub(super) const KIND_TIMESTAMP: u64 = 9;
pub(super) const KIND_STRUCT: u64 = 12;
pub(super) const KIND_VARCHAR: u64 = 16;
pub(super) const KIND_CHAR: u64 = 17;
pub(super) const KIND_TIMESTAMP_INSTANT: u64 = 18;

/// One node of the schema tree; its index in [`Footer::types`] is its column id.
#[derive(Debug, Default, Clone)]
pub(super) struct Type {
    pub kind: u64,
    pub subtypes: Vec<u64>,
    pub field_names: Vec<String>,
}

impl Type {
    fn decode(buf: &[u8]) -> ProtoResult<Self> {
        let mut t = Type::default();
        for field in fields(buf) {
            match field? {
                (1, Wire::Varint(v)) => t.kind = v,
                (2, value) => push_varints(&mut t.subtypes, value)?,
                (3, Wire::Bytes(b)) => t.field_names.push(text(b)?),
                _ => {}
            }
        }
        Ok(t)
    }

    /// The ORC type name, for messages.
    pub fn kind_name(&self) -> String {
        const NAMES: [&str; 19] = [
            "boolean",
            "tinyint",
            "smallint",
            "int",
            "bigint",
            "float",
            "double",
            "string",
            "binary",
            "timestamp",
            "array",
            "map",
            "struct",
            "uniontype",
            "decimal",
            "date",
            "varchar",
            "char",
            "timestamp with local time zone",
        ];
        usize::try_from(self.kind)
            .ok()
            .and_then(|k| NAMES.get(k))
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("type kind {}", self.kind))
    }
}

/// The file footer: the stripes and the schema.
#[derive(Debug, Default)]
pub(super) struct Footer {
    pub stripes: Vec<StripeInformation>,
    pub types: Vec<Type>,
    pub number_of_rows: u64,
}

impl Footer {
    pub fn decode(buf: &[u8]) -> ProtoResult<Self> {
        let mut f = Footer::default();
        for field in fields(buf) {
            match field? {
                (3, Wire::Bytes(b)) => f.stripes.push(StripeInformation::decode(b)?),
                (4, Wire::Bytes(b)) => f.types.push(Type::decode(b)?),
                (6, Wire::Varint(v)) => f.number_of_rows = v,
                _ => {}
            }
        }
        Ok(f)
    }
}

/// `Stream.Kind` values Ferry reads.
pub(super) const STREAM_PRESENT: u64 = 0;
pub(super) const STREAM_DATA: u64 = 1;
pub(super) const STREAM_LENGTH: u64 = 2;
pub(super) const STREAM_DICTIONARY_DATA: u64 = 3;
pub(super) const STREAM_SECONDARY: u64 = 5;

/// One stream of a stripe; streams lie one after the other from the stripe's offset, in the
/// order the stripe footer lists them.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Stream {
    pub kind: u64,
    pub column: u64,
    pub length: u64,
}

/// `ColumnEncoding.Kind`.
pub(super) const ENCODING_DIRECT: u64 = 0;
pub(super) const ENCODING_DICTIONARY: u64 = 1;
pub(super) const ENCODING_DIRECT_V2: u64 = 2;
pub(super) const ENCODING_DICTIONARY_V2: u64 = 3;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ColumnEncoding {
    pub kind: u64,
    pub dictionary_size: u64,
}

/// A stripe's footer: its streams and each column's encoding.
#[derive(Debug, Default)]
pub(super) struct StripeFooter {
    pub streams: Vec<Stream>,
    pub columns: Vec<ColumnEncoding>,
    pub writer_timezone: Option<String>,
}

impl StripeFooter {
    pub fn decode(buf: &[u8]) -> ProtoResult<Self> {
        let mut f = StripeFooter::default();
        for field in fields(buf) {
            match field? {
                (1, Wire::Bytes(b)) => {
                    let mut s = Stream::default();
                    for field in fields(b) {
                        match field? {
                            (1, Wire::Varint(v)) => s.kind = v,
                            (2, Wire::Varint(v)) => s.column = v,
                            (3, Wire::Varint(v)) => s.length = v,
                            _ => {}
                        }
                    }
                    f.streams.push(s);
                }
                (2, Wire::Bytes(b)) => {
                    let mut e = ColumnEncoding::default();
                    for field in fields(b) {
                        match field? {
                            (1, Wire::Varint(v)) => e.kind = v,
                            (2, Wire::Varint(v)) => e.dictionary_size = v,
                            _ => {}
                        }
                    }
                    f.columns.push(e);
                }
                (3, Wire::Bytes(b)) => f.writer_timezone = Some(text(b)?),
                _ => {}
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_packed_and_unpacked_and_skips_unknown_fields() {
        // Type { kind: STRUCT, subtypes: [1, 2] packed, subtypes: 300 unpacked,
        //        fieldNames: "key", unknown fixed64 field 9 }
        let buf = [
            0x08, 12, // kind
            0x12, 2, 1, 2, // packed subtypes
            0x10, 0xac, 0x02, // unpacked 300
            0x1a, 3, b'k', b'e', b'y', // fieldNames
            0x49, 0, 0, 0, 0, 0, 0, 0, 0, // field 9, fixed64
        ];
        let t = Type::decode(&buf).unwrap();
        assert_eq!(t.kind, KIND_STRUCT);
        assert_eq!(t.subtypes, vec![1, 2, 300]);
        assert_eq!(t.field_names, vec!["key".to_string()]);
    }

    #[test]
    fn truncated_messages_are_errors() {
        assert!(Type::decode(&[0x08]).is_err());
        assert!(Type::decode(&[0x1a, 5, b'k']).is_err());
        assert!(Type::decode(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1
        ])
        .is_err());
        assert!(PostScript::decode(&[0x0b]).is_err(), "wire type 3 (groups)");
    }
}
