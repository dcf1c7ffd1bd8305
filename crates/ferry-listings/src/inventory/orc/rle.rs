//! ORC's run-length encodings, decoded one value at a time from a [`ByteStream`]:
//! byte RLE (booleans and PRESENT streams, bit-packed on top of it) and integer RLE versions 1
//! and 2 (sizes, timestamps, string lengths and dictionary indices).
//!
//! Arithmetic on decoded values wraps, as the reference readers' does: a damaged run gives wrong
//! numbers that the row checks catch, never a panic.

use super::stream::ByteStream;

/// Byte run-length encoding: a header byte below 128 repeats the next byte `header + 3` times;
/// 128 and above is followed by `256 - header` literal bytes.
pub(super) struct ByteRle {
    stream: ByteStream,
    run_left: usize,
    literal: bool,
    value: u8,
}

impl ByteRle {
    pub fn new(stream: ByteStream) -> Self {
        Self {
            stream,
            run_left: 0,
            literal: false,
            value: 0,
        }
    }

    pub fn next(&mut self) -> Result<u8, String> {
        if self.run_left == 0 {
            let header = self.stream.byte()?;
            if header < 0x80 {
                self.run_left = usize::from(header) + 3;
                self.literal = false;
                self.value = self.stream.byte()?;
            } else {
                self.run_left = 0x100 - usize::from(header);
                self.literal = true;
            }
        }
        self.run_left -= 1;
        if self.literal {
            self.stream.byte()
        } else {
            Ok(self.value)
        }
    }
}

/// Booleans: byte RLE, each byte holding 8 values, most significant bit first.
pub(super) struct BoolRle {
    bytes: ByteRle,
    current: u8,
    bits_left: u8,
}

impl BoolRle {
    pub fn new(stream: ByteStream) -> Self {
        Self {
            bytes: ByteRle::new(stream),
            current: 0,
            bits_left: 0,
        }
    }

    pub fn next(&mut self) -> Result<bool, String> {
        if self.bits_left == 0 {
            self.current = self.bytes.next()?;
            self.bits_left = 8;
        }
        self.bits_left -= 1;
        Ok(self.current >> self.bits_left & 1 == 1)
    }
}

/// Which integer RLE a column uses (its encoding's `DIRECT`/`DICTIONARY` are version 1,
/// `DIRECT_V2`/`DICTIONARY_V2` version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RleVersion {
    V1,
    V2,
}

/// Integer run-length encoding, signed (zigzag) or unsigned.
pub(super) struct IntRle {
    stream: ByteStream,
    version: RleVersion,
    signed: bool,
    /// The current run, decoded.
    values: Vec<i64>,
    pos: usize,
}

/// The values one RLE v2 run can hold (9-bit length field, plus one).
const MAX_RUN: usize = 512;

impl IntRle {
    pub fn new(stream: ByteStream, version: RleVersion, signed: bool) -> Self {
        Self {
            stream,
            version,
            signed,
            values: Vec::with_capacity(MAX_RUN),
            pos: 0,
        }
    }

    pub fn next(&mut self) -> Result<i64, String> {
        if self.pos == self.values.len() {
            self.values.clear();
            self.pos = 0;
            match self.version {
                RleVersion::V1 => self.read_v1_run()?,
                RleVersion::V2 => self.read_v2_run()?,
            }
        }
        let v = self.values[self.pos];
        self.pos += 1;
        Ok(v)
    }

    /// The next value as a length or index: never negative.
    pub fn next_usize(&mut self, what: &str) -> Result<usize, String> {
        let v = self.next()?;
        usize::try_from(v).map_err(|_| format!("{what} {v} is negative"))
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.stream.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("an integer varint is longer than 10 bytes".into())
    }

    fn signed_varint(&mut self) -> Result<i64, String> {
        self.varint().map(unzigzag)
    }

    /// A base-128 varint, zigzag-decoded when the column is signed.
    fn base_value(&mut self) -> Result<i64, String> {
        if self.signed {
            self.signed_varint()
        } else {
            self.varint().map(|v| v as i64)
        }
    }

    /// Version 1: a header below 128 is a run of `header + 3` values `base + i * delta`
    /// (delta a signed byte); 128 and above is followed by `256 - header` literal varints.
    fn read_v1_run(&mut self) -> Result<(), String> {
        let header = self.stream.byte()?;
        if header < 0x80 {
            let delta = i64::from(self.stream.byte()? as i8);
            let mut v = self.base_value()?;
            for _ in 0..usize::from(header) + 3 {
                self.values.push(v);
                v = v.wrapping_add(delta);
            }
        } else {
            for _ in 0..0x100 - usize::from(header) {
                let v = self.base_value()?;
                self.values.push(v);
            }
        }
        Ok(())
    }

    /// Version 2: the top two bits of the first byte choose short repeat, direct, patched base
    /// or delta (ORC specification, "Integer Run Length Encoding, version 2").
    fn read_v2_run(&mut self) -> Result<(), String> {
        let first = self.stream.byte()?;
        match first >> 6 {
            0 => self.short_repeat(first),
            1 => self.direct(first),
            2 => self.patched_base(first),
            _ => self.delta(first),
        }
    }

    /// `00 www ccc` then a `www + 1`-byte big-endian value, repeated `ccc + 3` times.
    fn short_repeat(&mut self, first: u8) -> Result<(), String> {
        let width = usize::from(first >> 3 & 7) + 1;
        let count = usize::from(first & 7) + 3;
        let mut raw: u64 = 0;
        for _ in 0..width {
            raw = raw << 8 | u64::from(self.stream.byte()?);
        }
        let v = if self.signed {
            unzigzag(raw)
        } else {
            raw as i64
        };
        self.values.resize(count, v);
        Ok(())
    }

    /// The 9-bit run length of direct, patched-base and delta headers.
    fn run_length(&mut self, first: u8) -> Result<usize, String> {
        Ok((usize::from(first & 1) << 8 | usize::from(self.stream.byte()?)) + 1)
    }

    /// `01 wwwww l` `llllllll`: `length` values of `width` bits, bit-packed.
    fn direct(&mut self, first: u8) -> Result<(), String> {
        let width = decode_width(first >> 1 & 0x1f);
        let length = self.run_length(first)?;
        let mut bits = BitReader::default();
        for _ in 0..length {
            let raw = bits.read(&mut self.stream, width)?;
            self.values.push(if self.signed {
                unzigzag(raw)
            } else {
                raw as i64
            });
        }
        Ok(())
    }

    /// Values stored as `base + value`, with the few values too wide for the run's width given
    /// their high bits in a patch list of (gap, patch) entries.
    fn patched_base(&mut self, first: u8) -> Result<(), String> {
        let width = decode_width(first >> 1 & 0x1f);
        let length = self.run_length(first)?;
        let third = self.stream.byte()?;
        let fourth = self.stream.byte()?;
        let base_bytes = u32::from(third >> 5) + 1;
        let patch_width = decode_width(third & 0x1f);
        let gap_width = u32::from(fourth >> 5) + 1;
        let patch_count = usize::from(fourth & 0x1f);
        if patch_width + gap_width > 64 {
            return Err(format!(
                "a patched-base run has {patch_width}-bit patches with {gap_width}-bit gaps, wider than 64 bits"
            ));
        }
        let mut base: u64 = 0;
        for _ in 0..base_bytes {
            base = base << 8 | u64::from(self.stream.byte()?);
        }
        // The base is sign-magnitude: the top bit of its bytes is the sign.
        let sign = 1u64 << (base_bytes * 8 - 1);
        let base = if base & sign != 0 {
            ((base & !sign) as i64).wrapping_neg()
        } else {
            base as i64
        };
        let mut bits = BitReader::default();
        for _ in 0..length {
            let v = bits.read(&mut self.stream, width)?;
            self.values.push(v as i64);
        }
        let entry_width = closest_fixed_width(patch_width + gap_width);
        let mut bits = BitReader::default();
        let mut patches = Vec::with_capacity(patch_count);
        for _ in 0..patch_count {
            patches.push(bits.read(&mut self.stream, entry_width)?);
        }
        let patch_mask = if patch_width == 64 {
            u64::MAX
        } else {
            (1u64 << patch_width) - 1
        };
        // Each entry's gap is the distance from the previous patched value; a gap of 255 with a
        // patch of 0 only carries the distance on to the next entry.
        let mut at: usize = 0;
        for entry in patches {
            let gap = (entry >> patch_width) as usize;
            let patch = entry & patch_mask;
            at = at.saturating_add(gap);
            if gap == 255 && patch == 0 {
                continue;
            }
            let value = self
                .values
                .get_mut(at)
                .ok_or("a patched-base run patches a value past its end")?;
            let high = if width >= 64 { 0 } else { patch << width };
            *value = (*value as u64 | high) as i64;
        }
        for v in &mut self.values {
            *v = base.wrapping_add(*v);
        }
        Ok(())
    }

    /// A first value, a signed delta base, then (unless the width is 0, a fixed delta) the
    /// magnitudes of the following deltas, all with the delta base's sign.
    fn delta(&mut self, first: u8) -> Result<(), String> {
        let code = first >> 1 & 0x1f;
        // Unlike elsewhere, a width code of 0 means "no packed deltas", not 1 bit.
        let width = if code == 0 { 0 } else { decode_width(code) };
        // The length counts the values after the first one.
        let length = self.run_length(first)? - 1;
        let first_value = self.base_value()?;
        let delta_base = self.signed_varint()?;
        self.values.push(first_value);
        if width == 0 {
            let mut v = first_value;
            for _ in 0..length {
                v = v.wrapping_add(delta_base);
                self.values.push(v);
            }
            return Ok(());
        }
        let mut v = first_value.wrapping_add(delta_base);
        self.values.push(v);
        let mut bits = BitReader::default();
        for _ in 1..length {
            let d = bits.read(&mut self.stream, width)? as i64;
            v = if delta_base < 0 {
                v.wrapping_sub(d)
            } else {
                v.wrapping_add(d)
            };
            self.values.push(v);
        }
        Ok(())
    }
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The 5-bit width codes of RLE v2: 1–24 bits one by one, then 26, 28, 30, 32, 40, 48, 56, 64.
fn decode_width(code: u8) -> u32 {
    match code {
        0..=23 => u32::from(code) + 1,
        24 => 26,
        25 => 28,
        26 => 30,
        27 => 32,
        28 => 40,
        29 => 48,
        30 => 56,
        _ => 64,
    }
}

/// The smallest width RLE v2 can encode that holds `bits` bits (patch list entries).
fn closest_fixed_width(bits: u32) -> u32 {
    match bits {
        0 => 1,
        1..=24 => bits,
        25..=26 => 26,
        27..=28 => 28,
        29..=30 => 30,
        31..=32 => 32,
        33..=40 => 40,
        41..=48 => 48,
        49..=56 => 56,
        _ => 64,
    }
}

/// Big-endian bit unpacking; a new reader per packed block, since every block starts on a byte.
#[derive(Default)]
struct BitReader {
    current: u8,
    bits_left: u32,
}

impl BitReader {
    fn read(&mut self, stream: &mut ByteStream, width: u32) -> Result<u64, String> {
        let mut value: u64 = 0;
        let mut need = width;
        while need > 0 {
            if self.bits_left == 0 {
                self.current = stream.byte()?;
                self.bits_left = 8;
            }
            let take = need.min(self.bits_left);
            let bits = u64::from(self.current >> (self.bits_left - take)) & ((1u64 << take) - 1);
            value = value << take | bits;
            self.bits_left -= take;
            need -= take;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::stream::Codec;
    use super::*;
    use bytes::Bytes;

    fn stream(bytes: &[u8]) -> ByteStream {
        ByteStream::new(Bytes::copy_from_slice(bytes), Codec::None, 0)
    }

    fn ints(bytes: &[u8], version: RleVersion, signed: bool, n: usize) -> Vec<i64> {
        let mut r = IntRle::new(stream(bytes), version, signed);
        (0..n).map(|_| r.next().unwrap()).collect()
    }

    // The examples are the ORC specification's own.

    #[test]
    fn byte_rle() {
        let mut r = ByteRle::new(stream(&[0x61, 0x00]));
        assert!((0..100).all(|_| r.next() == Ok(0)));
        assert!(r.next().is_err(), "the run is over and the stream too");
        let mut r = ByteRle::new(stream(&[0xfe, 0x44, 0x45]));
        assert_eq!((r.next(), r.next()), (Ok(0x44), Ok(0x45)));
    }

    #[test]
    fn booleans_are_msb_first() {
        let mut r = BoolRle::new(stream(&[0xff, 0x80]));
        let v: Vec<bool> = (0..8).map(|_| r.next().unwrap()).collect();
        assert_eq!(v, [true, false, false, false, false, false, false, false]);
    }

    #[test]
    fn rle_v1() {
        assert_eq!(
            ints(&[0x61, 0x00, 0x07], RleVersion::V1, false, 100),
            vec![7; 100]
        );
        let v: Vec<i64> = (0..100).rev().map(|i| i + 1).collect();
        assert_eq!(ints(&[0x61, 0xff, 0x64], RleVersion::V1, false, 100), v);
        assert_eq!(
            ints(
                &[0xfb, 0x02, 0x03, 0x06, 0x07, 0xb],
                RleVersion::V1,
                false,
                5
            ),
            vec![2, 3, 6, 7, 11]
        );
    }

    #[test]
    fn rle_v2_short_repeat() {
        assert_eq!(
            ints(&[0x0a, 0x27, 0x10], RleVersion::V2, false, 5),
            vec![10000; 5]
        );
    }

    #[test]
    fn rle_v2_direct() {
        assert_eq!(
            ints(
                &[0x5e, 0x03, 0x5c, 0xa1, 0xab, 0x1e, 0xde, 0xad, 0xbe, 0xef],
                RleVersion::V2,
                false,
                4
            ),
            vec![23713, 43806, 57005, 48879]
        );
    }

    #[test]
    fn rle_v2_patched_base() {
        let bytes = [
            0x8e, 0x13, 0x2b, 0x21, 0x07, 0xd0, 0x1e, 0x00, 0x14, 0x70, 0x28, 0x32, 0x3c, 0x46,
            0x50, 0x5a, 0x64, 0x6e, 0x78, 0x82, 0x8c, 0x96, 0xa0, 0xaa, 0xb4, 0xbe, 0xfc, 0xe8,
        ];
        assert_eq!(
            ints(&bytes, RleVersion::V2, false, 20),
            vec![
                2030, 2000, 2020, 1000000, 2040, 2050, 2060, 2070, 2080, 2090, 2100, 2110, 2120,
                2130, 2140, 2150, 2160, 2170, 2180, 2190
            ]
        );
    }

    #[test]
    fn rle_v2_delta() {
        assert_eq!(
            ints(
                &[0xc6, 0x09, 0x02, 0x02, 0x22, 0x42, 0x42, 0x46],
                RleVersion::V2,
                false,
                10
            ),
            vec![2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
        );
        // Fixed delta (width code 0): 5 values from 10 down by 2, signed.
        assert_eq!(
            ints(&[0xc0, 0x04, 0x14, 0x03], RleVersion::V2, true, 5),
            vec![10, 8, 6, 4, 2]
        );
    }

    #[test]
    fn damaged_runs_are_errors_not_panics() {
        // A patch list pointing past its run.
        let mut r = IntRle::new(
            stream(&[0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0xff]),
            RleVersion::V2,
            false,
        );
        assert!(r.next().is_err());
        // A run cut short.
        let mut r = IntRle::new(stream(&[0x5e, 0x03, 0x5c]), RleVersion::V2, false);
        assert!(r.next().is_err());
        let mut r = IntRle::new(stream(&[0x0a, 0x27, 0x10]), RleVersion::V2, true);
        assert_eq!(r.next_usize("length"), Ok(5000));
        let mut r = IntRle::new(stream(&[0x00, 0x01]), RleVersion::V2, true);
        assert!(r.next_usize("length").unwrap_err().contains("negative"));
    }
}
