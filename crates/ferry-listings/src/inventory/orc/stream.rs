//! One ORC stream as bytes: compression chunks are decompressed one at a time, so a column
//! holds one decompressed chunk (the file's compression block size, 64–256 KiB), never the
//! whole stream decompressed.
//!
//! A compressed stream is a sequence of chunks, each with a 3-byte little-endian header
//! `length << 1 | is_original`; an "original" chunk is stored as is because compressing it
//! did not help.

use bytes::Bytes;
use std::io::Read;

use super::proto;

/// Largest compression block size accepted. Writers use 64–256 KiB; a bigger figure in a damaged
/// PostScript must not become a huge allocation.
pub(super) const MAX_BLOCK_SIZE: u64 = 16 << 20;

/// Largest decompressed file or stripe footer accepted. Real ones are kilobytes; a few bytes of
/// ZSTD can claim megabytes, so a damaged footer must not become gigabytes.
const MAX_FOOTER_BYTES: usize = 64 << 20;

/// How the file's streams are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    None,
    Zlib,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn from_kind(kind: u64) -> Result<Self, String> {
        Ok(match kind {
            proto::COMPRESSION_NONE => Codec::None,
            proto::COMPRESSION_ZLIB => Codec::Zlib,
            proto::COMPRESSION_SNAPPY => Codec::Snappy,
            proto::COMPRESSION_LZ4 => Codec::Lz4,
            proto::COMPRESSION_ZSTD => Codec::Zstd,
            proto::COMPRESSION_LZO => {
                return Err(
                    "the file is LZO-compressed, which Ferry does not read (S3 Inventory \
                     does not write LZO); ZLIB, SNAPPY, LZ4, ZSTD and NONE are read"
                        .into(),
                )
            }
            other => return Err(format!("compression kind {other} is not an ORC codec")),
        })
    }

    /// Decompresses a whole buffer (file footer, stripe footer).
    pub fn decompress_all(self, block_size: usize, data: Bytes) -> Result<Vec<u8>, String> {
        let mut stream = ByteStream::new(data, self, block_size);
        let mut out = Vec::new();
        while stream.fill()? {
            out.extend_from_slice(&stream.chunk[stream.pos..]);
            stream.pos = stream.chunk.len();
            if out.len() > MAX_FOOTER_BYTES {
                return Err(format!(
                    "a footer decompresses to more than {MAX_FOOTER_BYTES} bytes"
                ));
            }
        }
        Ok(out)
    }
}

/// The decompressed bytes of one stream, read front to back.
pub(super) struct ByteStream {
    /// Compressed chunks not decoded yet.
    rest: Bytes,
    codec: Codec,
    block_size: usize,
    /// The current chunk, decompressed.
    chunk: Bytes,
    pos: usize,
}

impl ByteStream {
    pub fn new(data: Bytes, codec: Codec, block_size: usize) -> Self {
        Self {
            rest: data,
            codec,
            block_size,
            chunk: Bytes::new(),
            pos: 0,
        }
    }

    /// A stream with no bytes (a column whose optional stream is absent).
    pub fn empty() -> Self {
        Self::new(Bytes::new(), Codec::None, 0)
    }

    /// Makes sure a byte is available; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, String> {
        while self.pos == self.chunk.len() {
            if self.rest.is_empty() {
                return Ok(false);
            }
            self.pos = 0;
            if self.codec == Codec::None {
                self.chunk = std::mem::take(&mut self.rest);
                continue;
            }
            if self.rest.len() < 3 {
                return Err("a compression chunk header is cut short".into());
            }
            let header = u32::from(self.rest[0])
                | u32::from(self.rest[1]) << 8
                | u32::from(self.rest[2]) << 16;
            let length = (header >> 1) as usize;
            if self.rest.len() - 3 < length {
                return Err(format!(
                    "a compression chunk of {length} bytes runs past the end of its stream"
                ));
            }
            let body = self.rest.slice(3..3 + length);
            self.rest = self.rest.slice(3 + length..);
            self.chunk = if header & 1 == 1 {
                body
            } else {
                Bytes::from(self.inflate(&body)?)
            };
        }
        Ok(true)
    }

    fn inflate(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let limit = self.block_size;
        let too_big = || {
            format!("a compression chunk decompresses to more than the file's block size ({limit} bytes)")
        };
        let out = match self.codec {
            Codec::None => body.to_vec(),
            Codec::Zlib => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(body)
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("a ZLIB chunk is damaged: {e}"))?;
                out
            }
            Codec::Snappy => {
                let len = snap::raw::decompress_len(body)
                    .map_err(|e| format!("a SNAPPY chunk is damaged: {e}"))?;
                if len > limit {
                    return Err(too_big());
                }
                let mut out = vec![0; len];
                snap::raw::Decoder::new()
                    .decompress(body, &mut out)
                    .map_err(|e| format!("a SNAPPY chunk is damaged: {e}"))?;
                out
            }
            Codec::Lz4 => {
                let mut out = vec![0; limit];
                let len = lz4_flex::block::decompress_into(body, &mut out)
                    .map_err(|e| format!("an LZ4 chunk is damaged or too big: {e}"))?;
                out.truncate(len);
                out
            }
            Codec::Zstd => zstd::bulk::decompress(body, limit)
                .map_err(|e| format!("a ZSTD chunk is damaged or too big: {e}"))?,
        };
        if out.len() > limit {
            return Err(too_big());
        }
        Ok(out)
    }

    /// `true` when every byte has been read.
    #[cfg(test)]
    pub fn at_end(&mut self) -> Result<bool, String> {
        Ok(!self.fill()?)
    }

    pub fn byte(&mut self) -> Result<u8, String> {
        if !self.fill()? {
            return Err("a stream ends before its values do".into());
        }
        let b = self.chunk[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// Passes over the next `n` bytes.
    pub fn skip(&mut self, mut n: usize) -> Result<(), String> {
        while n > 0 {
            if !self.fill()? {
                return Err("a stream ends before its values do".into());
            }
            let take = n.min(self.chunk.len() - self.pos);
            self.pos += take;
            n -= take;
        }
        Ok(())
    }

    /// Appends the next `n` bytes to `out`.
    pub fn read_into(&mut self, mut n: usize, out: &mut Vec<u8>) -> Result<(), String> {
        while n > 0 {
            if !self.fill()? {
                return Err("a stream ends before its values do".into());
            }
            let take = n.min(self.chunk.len() - self.pos);
            out.extend_from_slice(&self.chunk[self.pos..self.pos + take]);
            self.pos += take;
            n -= take;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chunk(original: bool, body: &[u8]) -> Vec<u8> {
        let header = (body.len() as u32) << 1 | u32::from(original);
        let mut v = header.to_le_bytes()[..3].to_vec();
        v.extend_from_slice(body);
        v
    }

    fn read_all(mut s: ByteStream) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while !s.at_end()? {
            out.push(s.byte()?);
        }
        Ok(out)
    }

    #[test]
    fn original_and_compressed_chunks_follow_each_other() {
        let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
        deflated.write_all(b"world").unwrap();
        let mut data = chunk(true, b"hello ");
        data.extend(chunk(false, &deflated.finish().unwrap()));
        let s = ByteStream::new(Bytes::from(data), Codec::Zlib, 1024);
        assert_eq!(read_all(s).unwrap(), b"hello world");
    }

    #[test]
    fn every_codec_round_trips() {
        let text = b"s3://bucket/key,".repeat(100);
        let snappy = snap::raw::Encoder::new().compress_vec(&text).unwrap();
        let lz4 = lz4_flex::block::compress(&text);
        let zstd = zstd::bulk::compress(&text, 3).unwrap();
        for (codec, body) in [
            (Codec::Snappy, snappy),
            (Codec::Lz4, lz4),
            (Codec::Zstd, zstd),
        ] {
            let s = ByteStream::new(Bytes::from(chunk(false, &body)), codec, 4096);
            assert_eq!(read_all(s).unwrap(), text, "{codec:?}");
            // The same chunk with a block size smaller than its content is refused.
            let s = ByteStream::new(Bytes::from(chunk(false, &body)), codec, 100);
            assert!(read_all(s).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn damaged_chunks_are_errors() {
        let s = ByteStream::new(Bytes::from_static(&[0x0a, 0]), Codec::Zlib, 1024);
        assert!(read_all(s).is_err(), "header cut short");
        let s = ByteStream::new(
            Bytes::from(chunk(true, b"abc")[..5].to_vec()),
            Codec::Zlib,
            1024,
        );
        assert!(read_all(s).is_err(), "body cut short");
        let s = ByteStream::new(
            Bytes::from(chunk(false, b"\xff\xff\xff")),
            Codec::Zlib,
            1024,
        );
        assert!(read_all(s).is_err(), "not deflate");
        assert!(Codec::from_kind(proto::COMPRESSION_LZO)
            .unwrap_err()
            .contains("LZO"));
    }

    #[test]
    fn a_footer_that_decompresses_to_gigabytes_is_refused() {
        // Five chunks of 16 MiB of zeros, a few hundred bytes each in ZSTD.
        let block = MAX_BLOCK_SIZE as usize;
        let body = zstd::bulk::compress(&vec![0u8; block], 3).unwrap();
        let data: Vec<u8> = (0..5).flat_map(|_| chunk(false, &body)).collect();
        assert!(data.len() < 10_000);
        let err = Codec::Zstd
            .decompress_all(block, Bytes::from(data))
            .unwrap_err();
        assert!(err.contains("footer decompresses to more than"), "{err}");
    }

    #[test]
    fn read_into_crosses_chunks() {
        let mut data = chunk(true, b"ab");
        data.extend(chunk(true, b"cde"));
        let mut s = ByteStream::new(Bytes::from(data), Codec::Snappy, 16);
        let mut out = Vec::new();
        s.read_into(4, &mut out).unwrap();
        assert_eq!(out, b"abcd");
        assert!(s.read_into(2, &mut out).is_err());
    }
}
