//! The data files of a Ferry-written inventory-format manifest: gzip CSV parts, each with the
//! size and MD5 of its stored (compressed) bytes, as `manifest.json`'s `files[]` lists them
//! (`key`, `size`, `MD5checksum`: S3 User Guide, "Locating your inventory list",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html>),
//! and the MD5 checks of the data files an inventory lists.
//!
//! Why gzip, one member, compression level 1: S3 Inventory's CSV data files are gzip, and AWS
//! does not say whether Batch Operations reads an uncompressed one, so Ferry writes what it
//! writes; level 1 because the part is read once by Batch Operations and compressing is the
//! cost of the scan's output.

use std::io::{self, Write};

use base64::Engine;
use flate2::write::GzEncoder;
use flate2::Compression;
use md5::{Digest, Md5};

use ferry_plan::job::hex;

/// Whether `expected`, an MD5 as S3 Inventory writes it (`manifest.checksum`,
/// `files[].MD5checksum`), names `digest`. AWS documents the value only as "the MD5 hash"; the
/// examples are hex, which is assumed, and base64 is accepted too (verify).
pub fn md5_matches(expected: &str, digest: &[u8]) -> bool {
    let expected = expected.trim();
    !expected.is_empty()
        && (expected.eq_ignore_ascii_case(&hex(digest))
            || expected == base64::engine::general_purpose::STANDARD.encode(digest))
}

/// The MD5 of a local file, read in 256 KiB chunks (memory stays bounded whatever its size).
pub fn file_md5(path: &std::path::Path) -> io::Result<[u8; 16]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(md5.finalize().into());
        }
        md5.update(&buf[..n]);
    }
}

/// Counts and hashes what passes through to `inner`.
pub struct Md5Counter<W: Write> {
    inner: W,
    md5: Md5,
    bytes: u64,
}

impl<W: Write> Md5Counter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            md5: Md5::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Md5Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A part being written: CSV text in, stored bytes out to `W` (gzip, or as they are), with
/// their size and MD5.
pub enum PartWriter<W: Write> {
    Gzip(Box<GzEncoder<Md5Counter<W>>>),
    Plain(Md5Counter<W>),
}

/// A finished part: the stored bytes' size and MD5 (lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDigest {
    pub size: u64,
    pub md5_hex: String,
}

impl<W: Write> PartWriter<W> {
    /// A gzip part (one member, level 1).
    pub fn gzip(out: W) -> Self {
        PartWriter::Gzip(Box::new(GzEncoder::new(
            Md5Counter::new(out),
            Compression::fast(),
        )))
    }

    /// A part stored as written.
    pub fn plain(out: W) -> Self {
        PartWriter::Plain(Md5Counter::new(out))
    }

    /// Ends the part and flushes; hands back the output and the stored bytes' digest.
    pub fn finish(self) -> io::Result<(W, PartDigest)> {
        let mut counter = match self {
            PartWriter::Gzip(gzip) => gzip.finish()?,
            PartWriter::Plain(counter) => counter,
        };
        counter.inner.flush()?;
        let digest = PartDigest {
            size: counter.bytes,
            md5_hex: hex(&counter.md5.finalize()),
        };
        Ok((counter.inner, digest))
    }
}

impl<W: Write> Write for PartWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            PartWriter::Gzip(gzip) => gzip.write(buf),
            PartWriter::Plain(counter) => counter.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            PartWriter::Gzip(gzip) => gzip.flush(),
            PartWriter::Plain(counter) => counter.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_part_is_gzip_with_the_digest_of_its_stored_bytes() {
        let mut plain = PartWriter::plain(Vec::new());
        plain.write_all(b"b,k\n").unwrap();
        let (stored, digest) = plain.finish().unwrap();
        assert_eq!(stored, b"b,k\n");
        assert_eq!(
            (digest.size, digest.md5_hex),
            (4, hex(&Md5::digest(b"b,k\n")))
        );
        let mut part = PartWriter::gzip(Vec::new());
        part.write_all(b"\"b\",\"k\"\n").unwrap();
        let (stored, digest) = part.finish().unwrap();
        assert_eq!(digest.size, stored.len() as u64);
        assert_eq!(digest.md5_hex, hex(&Md5::digest(&stored)));
        let mut text = String::new();
        flate2::read::GzDecoder::new(stored.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "\"b\",\"k\"\n");
    }

    #[test]
    fn md5_spellings() {
        let empty = Md5::digest(b"");
        assert!(md5_matches("d41d8cd98f00b204e9800998ecf8427e\n", &empty));
        assert!(md5_matches("D41D8CD98F00B204E9800998ECF8427E", &empty));
        assert!(md5_matches("1B2M2Y8AsgTpgAmY7PhCfg==", &empty));
        assert!(!md5_matches("", &empty));
        assert!(!md5_matches("0", &empty));
    }
}
