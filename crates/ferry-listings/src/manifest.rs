//! S3 Batch Operations CSV manifests ([`ferry_plan::job::CSV_MANIFEST_FORMAT`]): key encoding, a
//! streaming writer, a reader, and a checker that finds every problem in a person's file.
//!
//! The format Batch Operations accepts: UTF-8 without BOM, one `Bucket,Key[,VersionId]` row per
//! line, no header, no empty lines, keys URL-encoded, and either every row has a version id or
//! none. In a manifest with version ids a null version is the literal `null` (an empty one fails
//! its task). A Copy job reads one source bucket, so every row names the same bucket.
//!
//! Keys come in three encodings on Ferry's paths, and each has its decoder:
//! - CSV manifests ([`decode_key`]): percent-encoded, a space is `%20`, a `+` is `%2B`.
//! - S3 Inventory CSV ([`decode_inventory_key`]): URL-encoded; a raw `+` is read as a space.
//! - S3 event notifications ([`decode_event_key`]): form-encoded, a `+` is a space.
//!
//! Whether Batch Operations reads a raw `+` in a manifest as a plus or as a space is not
//! documented, so [`encode_key`] never writes one (`%2B` and `%20` mean the same either way) and
//! the checker warns about it.
//!
//! Reading is streaming with bounded memory: one line at a time, a line cut at
//! [`MAX_LINE_BYTES`], and at most [`MAX_LISTED_PROBLEMS`] problems kept.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, Write};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use ferry_plan::aws_names::check_bucket_name;

/// The most bytes an S3 object key may have (UTF-8, decoded).
pub const MAX_KEY_BYTES: usize = 1024;

/// Problems a report lists; the rest are only counted, so a huge bad file stays readable.
pub const MAX_LISTED_PROBLEMS: usize = 1000;

/// The longest line the checker reads. A valid row is under 4.2 KB (a 63-byte bucket, a
/// 1024-byte key at three bytes per encoded byte, a version id): anything longer is not a
/// manifest, and the cap keeps memory bounded on a file without line breaks.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Everything but the unreserved characters of RFC 3986 and `/` (S3 keys are paths).
const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

const BOM: &[u8] = b"\xEF\xBB\xBF";

// ---------------------------------------------------------------------------------------------
// Key encoding

/// URL-encodes a key for a CSV manifest: every byte but `A-Za-z0-9-_.~/` becomes `%XX`
/// (a space `%20`, a `+` `%2B`, `é` `%C3%A9`).
pub fn encode_key(key: &str) -> Cow<'_, str> {
    utf8_percent_encode(key, KEY_ENCODE_SET).into()
}

/// Why an encoded key can't be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    /// `offset` is the 0-based byte offset of the `%` in the encoded key.
    #[error("the '%' at byte {offset} is not followed by two hex digits (a literal '%' is %25)")]
    BadPercent { offset: usize },
    #[error("the key decodes to bytes that are not UTF-8 (percent-encode the key's UTF-8 bytes)")]
    NotUtf8,
}

/// Decodes a CSV manifest key: `%XX` becomes the byte, everything else (a raw `+` included)
/// stays as it is. The inverse of [`encode_key`].
pub fn decode_key(encoded: &str) -> Result<String, KeyDecodeError> {
    percent_decode(encoded, false)
}

/// Decodes a key from an S3 Inventory CSV report.
///
/// Assumed (verify): inventories URL-encode keys and may write a space as `+`, as form encoding
/// does (tools that read inventories decode them with `unquote_plus`), a real `+` being `%2B`.
/// If they write `%20` instead, no raw `+` ever appears and both readings agree, so reading `+`
/// as a space is right either way.
pub fn decode_inventory_key(encoded: &str) -> Result<String, KeyDecodeError> {
    percent_decode(encoded, true)
}

/// Decodes the `s3.object.key` of an S3 event notification.
///
/// Unlike manifests, event keys are form-encoded: `red flower.jpg` arrives as `red+flower.jpg`
/// and a real `+` as `%2B`. So `+` is turned into a space first, then `%XX` is decoded.
pub fn decode_event_key(encoded: &str) -> Result<String, KeyDecodeError> {
    percent_decode(encoded, true)
}

fn percent_decode(encoded: &str, plus_is_space: bool) -> Result<String, KeyDecodeError> {
    let src = encoded.as_bytes();
    if !src
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Ok(encoded.to_string());
    }
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'%' => {
                let byte = hex_pair(src.get(i + 1..i + 3))
                    .ok_or(KeyDecodeError::BadPercent { offset: i })?;
                out.push(byte);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| KeyDecodeError::NotUtf8)
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    match pair? {
        [hi, lo] => Some((hex(*hi)? * 16 + hex(*lo)?) as u8),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Rows and the writer

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRow {
    pub bucket: String,
    /// The key as S3 stores it (decoded).
    pub key: String,
    /// `None` in a manifest without version ids, and for a null version in one with them.
    /// Writing `Some("")` (the inventory's empty VersionId of a null version) also gives `null`.
    pub version_id: Option<String>,
}

/// What a writer wrote so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ManifestCounts {
    pub rows: u64,
    pub bytes: u64,
}

/// A row the writer refused; nothing of it was written. `row` is 1-based (= its line).
#[derive(Debug, thiserror::Error)]
pub enum ManifestWriteError {
    #[error("row {row}: bucket {bucket:?}: {reason}")]
    InvalidBucket {
        row: u64,
        bucket: String,
        reason: String,
    },
    #[error(
        "row {row}: bucket {bucket:?} differs from the first row's {first:?}: a copy job reads \
         one source bucket, write one manifest per bucket"
    )]
    MixedBuckets {
        row: u64,
        bucket: String,
        first: String,
    },
    #[error("row {row}: an empty key names no object")]
    EmptyKey { row: u64 },
    #[error("row {row}: the key is {len} bytes; S3 keys are at most {MAX_KEY_BYTES}")]
    KeyTooLong { row: u64, len: usize },
    #[error(
        "row {row}: version id {version_id:?} in a manifest without version ids: create the \
         writer with version ids, or leave the version out"
    )]
    UnexpectedVersionId { row: u64, version_id: String },
    #[error("row {row}: version id {version_id:?}: {VERSION_ID_RULE}")]
    InvalidVersionId { row: u64, version_id: String },
    #[error("writing the manifest failed: {0}")]
    Io(#[from] io::Error),
}

const VERSION_ID_RULE: &str =
    "a version id is printable ASCII without spaces: use it as S3 lists it";

fn is_valid_version_id(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_graphic())
}

/// Writes a CSV manifest row by row: `bucket,encoded_key[,version]\n`, no header, no BOM, no
/// empty lines, the same column count on every row. Every row it accepts checks clean with
/// [`check_csv_manifest`].
pub struct CsvManifestWriter<W: Write> {
    out: W,
    with_version_ids: bool,
    /// Every field in double quotes, as S3 Inventory writes its CSV data files.
    quote_all: bool,
    /// The first row's bucket, validated once: later rows only compare against it.
    bucket: Option<String>,
    line: String,
    counts: ManifestCounts,
}

impl<W: Write> CsvManifestWriter<W> {
    /// `with_version_ids` fixes the column count: `Bucket,Key,VersionId` or `Bucket,Key`.
    pub fn new(out: W, with_version_ids: bool) -> Self {
        Self {
            out,
            with_version_ids,
            quote_all: false,
            bucket: None,
            line: String::with_capacity(256),
            counts: ManifestCounts::default(),
        }
    }

    /// The rows of an inventory-format data file (`S3InventoryReport_CSV_20161130`): the same
    /// fields, every one in double quotes as S3 Inventory writes them (its data files quote every
    /// field; a CSV reader takes both). Keys are URL-encoded in both forms.
    pub fn inventory_data(out: W, with_version_ids: bool) -> Self {
        Self {
            quote_all: true,
            ..Self::new(out, with_version_ids)
        }
    }

    pub fn write_row(&mut self, row: &ManifestRow) -> Result<(), ManifestWriteError> {
        self.write(&row.bucket, &row.key, row.version_id.as_deref())
    }

    /// Writes one object; `key` is the raw (decoded) key. In a manifest with version ids,
    /// `None` and `Some("")` are written as `null`.
    pub fn write(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(), ManifestWriteError> {
        let row = self.counts.rows + 1;
        match &self.bucket {
            Some(first) if first == bucket => {}
            Some(first) => {
                return Err(ManifestWriteError::MixedBuckets {
                    row,
                    bucket: bucket.to_string(),
                    first: first.clone(),
                })
            }
            None => {
                check_bucket_name(bucket).map_err(|reason| ManifestWriteError::InvalidBucket {
                    row,
                    bucket: bucket.to_string(),
                    reason,
                })?;
            }
        }
        if key.is_empty() {
            return Err(ManifestWriteError::EmptyKey { row });
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(ManifestWriteError::KeyTooLong {
                row,
                len: key.len(),
            });
        }
        let version = match (self.with_version_ids, version_id) {
            (true, None | Some("")) => Some("null"),
            (true, Some(v)) if is_valid_version_id(v) => Some(v),
            (true, Some(v)) => {
                return Err(ManifestWriteError::InvalidVersionId {
                    row,
                    version_id: v.to_string(),
                })
            }
            (false, None) => None,
            (false, Some(v)) => {
                return Err(ManifestWriteError::UnexpectedVersionId {
                    row,
                    version_id: v.to_string(),
                })
            }
        };

        self.line.clear();
        let q = if self.quote_all { "\"" } else { "" };
        if self.quote_all {
            push_quoted_field(&mut self.line, bucket);
        } else {
            push_csv_field(&mut self.line, bucket);
        }
        self.line.push(',');
        // An encoded key holds no quote or comma: quoting it is only the form.
        self.line.push_str(q);
        self.line.extend(utf8_percent_encode(key, KEY_ENCODE_SET));
        self.line.push_str(q);
        if let Some(v) = version {
            self.line.push(',');
            if self.quote_all {
                push_quoted_field(&mut self.line, v);
            } else {
                push_csv_field(&mut self.line, v);
            }
        }
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())?;

        if self.bucket.is_none() {
            self.bucket = Some(bucket.to_string());
        }
        self.counts.rows += 1;
        self.counts.bytes += self.line.len() as u64;
        Ok(())
    }

    pub fn counts(&self) -> ManifestCounts {
        self.counts
    }

    /// Flushes and hands back the output with what was written.
    pub fn finish(mut self) -> io::Result<(W, ManifestCounts)> {
        self.out.flush()?;
        Ok((self.out, self.counts))
    }
}

fn push_quoted_field(line: &mut String, field: &str) {
    line.push('"');
    line.push_str(&field.replace('"', "\"\""));
    line.push('"');
}

/// Quotes a field only when it needs it (a comma or a quote): encoded keys and bucket names
/// never do, so real manifests stay plain.
fn push_csv_field(line: &mut String, field: &str) {
    if field.contains([',', '"']) {
        push_quoted_field(line, field);
    } else {
        line.push_str(field);
    }
}

// ---------------------------------------------------------------------------------------------
// Problems and the report

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Batch Operations would reject the manifest or fail the row's task.
    Error,
    /// Works as far as AWS documents, but is likely a mistake.
    Warning,
}

/// What is wrong with a line of a CSV manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file starts with a UTF-8 byte order mark.
    Bom,
    /// A `Bucket,Key[,VersionId]` header row.
    Header,
    /// An empty (or blank) line, a trailing one included.
    EmptyLine,
    InvalidUtf8,
    /// Longer than [`MAX_LINE_BYTES`]: not a manifest row.
    LineTooLong,
    /// Quotes that are not CSV: unterminated, inside an unquoted field, text after the close.
    MalformedCsv,
    /// Not 2 or 3 columns.
    ColumnCount,
    /// 2 and 3 columns in one file.
    MixedColumns,
    /// 2 or 3 columns where the other was expected ([`CheckOptions::version_ids`]).
    VersionColumns,
    /// Not a valid S3 bucket name.
    InvalidBucket,
    /// Not the expected bucket ([`CheckOptions::bucket`]).
    WrongBucket,
    /// Another bucket than the first row's.
    MixedBuckets,
    EmptyKey,
    /// Spaces, control characters or non-ASCII characters: the key is not URL-encoded.
    UnencodedKey,
    /// A `%` not followed by two hex digits.
    BadPercent,
    /// The key decodes to bytes that are not UTF-8.
    KeyNotUtf8,
    /// The decoded key is over [`MAX_KEY_BYTES`].
    KeyTooLong,
    /// A raw `+`: a plus sign or an encoded space? (warning)
    AmbiguousPlus,
    /// An empty version id where `null` is meant.
    EmptyVersionId,
    InvalidVersionId,
    /// `\r\n` line ends (warning; reported once, on the first such line).
    CrLf,
    /// No rows at all.
    NoRows,
}

impl ProblemKind {
    pub fn severity(self) -> Severity {
        match self {
            ProblemKind::AmbiguousPlus | ProblemKind::CrLf => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// One problem, on a 1-based line, with a message that names the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestProblem {
    pub line: u64,
    pub kind: ProblemKind,
    pub message: String,
}

impl ManifestProblem {
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity() {
            Severity::Error => write!(f, "line {}: {}", self.line, self.message),
            Severity::Warning => write!(f, "line {}: warning: {}", self.line, self.message),
        }
    }
}

/// What the file is expected to hold; `None` checks only consistency within the file.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The job's source bucket: every row must name it.
    pub bucket: Option<String>,
    /// Whether rows must have a version id column.
    pub version_ids: Option<bool>,
}

/// The outcome of [`check_csv_manifest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManifestReport {
    /// Data rows: every non-empty line but header rows.
    pub rows: u64,
    /// In line order, at most [`MAX_LISTED_PROBLEMS`].
    pub problems: Vec<ManifestProblem>,
    /// Problems found beyond those listed.
    pub omitted: u64,
    /// From the first data row: 3 columns or 2. `None` when there is none.
    pub has_version_ids: Option<bool>,
    /// All errors found, listed or omitted.
    pub errors: u64,
    /// All warnings found, listed or omitted.
    pub warnings: u64,
}

impl ManifestReport {
    /// No errors (warnings allowed): Batch Operations can use the file.
    pub fn is_ok(&self) -> bool {
        self.errors == 0
    }

    fn add(&mut self, problem: ManifestProblem) {
        match problem.severity() {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.omitted += 1;
        }
    }
}

/// Checks a CSV manifest as Batch Operations will read it, streaming: every problem with its
/// line (the first [`MAX_LISTED_PROBLEMS`] listed, the rest counted). Only an I/O error fails.
pub fn check_csv_manifest<R: BufRead>(
    reader: R,
    expect: CheckOptions,
) -> io::Result<ManifestReport> {
    let mut scanner = Scanner::new(reader, expect);
    let mut report = ManifestReport::default();
    let mut line_problems = Vec::new();
    while scanner.next_line(&mut line_problems)?.is_some() {
        for p in line_problems.drain(..) {
            report.add(p);
        }
    }
    scanner.finish(&mut line_problems);
    for p in line_problems.drain(..) {
        report.add(p);
    }
    // The CRLF warning was filed on its first line; now that the count is known, say it.
    if scanner.crlf_lines > 1 {
        if let Some(p) = report
            .problems
            .iter_mut()
            .find(|p| p.kind == ProblemKind::CrLf)
        {
            p.message = crlf_message(scanner.crlf_lines);
        }
    }
    report.problems.sort_by_key(|p| p.line);
    report.rows = scanner.rows;
    report.has_version_ids = scanner.width.map(|(n, _)| n == 3);
    Ok(report)
}

/// Why [`CsvManifestReader`] could not give a row.
#[derive(Debug, thiserror::Error)]
pub enum ManifestReadError {
    #[error("reading the manifest failed: {0}")]
    Io(#[from] io::Error),
    /// The first error-level problem of the line (as [`check_csv_manifest`] reports it).
    #[error("{0}")]
    Invalid(ManifestProblem),
}

/// Reads a CSV manifest row by row, decoding keys. It is exactly as strict as
/// [`check_csv_manifest`]: a line with an error gives `Err` (and reading may go on with the next
/// line); warnings are ignored, a raw `+` being read as a plus sign.
pub struct CsvManifestReader<R: BufRead> {
    scanner: Scanner<R>,
    line_problems: Vec<ManifestProblem>,
}

impl<R: BufRead> CsvManifestReader<R> {
    pub fn new(reader: R) -> Self {
        Self::with_options(reader, CheckOptions::default())
    }

    pub fn with_options(reader: R, expect: CheckOptions) -> Self {
        Self {
            scanner: Scanner::new(reader, expect),
            line_problems: Vec::new(),
        }
    }

    /// Known once a data row has been read.
    pub fn has_version_ids(&self) -> Option<bool> {
        self.scanner.width.map(|(n, _)| n == 3)
    }
}

impl<R: BufRead> Iterator for CsvManifestReader<R> {
    type Item = Result<ManifestRow, ManifestReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line_problems.clear();
            let outcome = match self.scanner.next_line(&mut self.line_problems) {
                Ok(None) => return None,
                Ok(Some(outcome)) => outcome,
                Err(e) => return Some(Err(e.into())),
            };
            if let Some(i) = self
                .line_problems
                .iter()
                .position(|p| p.severity() == Severity::Error)
            {
                let problem = self.line_problems.swap_remove(i);
                return Some(Err(ManifestReadError::Invalid(problem)));
            }
            if let LineOutcome::Row(row) = outcome {
                return Some(Ok(row));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scanner both share

enum LineOutcome {
    /// A data row without errors.
    Row(ManifestRow),
    /// Anything else: an empty line, a header, a row with errors.
    Other,
}

struct Scanner<R> {
    input: R,
    expect: CheckOptions,
    buf: Vec<u8>,
    line_no: u64,
    rows: u64,
    /// Column count of the first data row, and its line.
    width: Option<(usize, u64)>,
    /// The first row's bucket and its line, when no bucket is expected.
    first_bucket: Option<(String, u64)>,
    /// The last bucket found valid: a manifest names one bucket millions of times. `None` until
    /// one is (an empty cache would let an empty bucket pass unchecked).
    valid_bucket: Option<String>,
    crlf_lines: u64,
}

impl<R: BufRead> Scanner<R> {
    fn new(input: R, expect: CheckOptions) -> Self {
        Self {
            input,
            expect,
            buf: Vec::new(),
            line_no: 0,
            rows: 0,
            width: None,
            first_bucket: None,
            valid_bucket: None,
            crlf_lines: 0,
        }
    }

    /// Reads and checks the next line, adding its problems to `problems`; `None` at the end.
    fn next_line(
        &mut self,
        problems: &mut Vec<ManifestProblem>,
    ) -> io::Result<Option<LineOutcome>> {
        let mut buf = std::mem::take(&mut self.buf);
        let read = read_bounded_line(&mut self.input, &mut buf, MAX_LINE_BYTES);
        let outcome = match read {
            Ok(Some(truncated)) => {
                self.line_no += 1;
                Ok(Some(self.check_line(&buf, truncated, problems)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        self.buf = buf;
        outcome
    }

    /// File-level problems, once the end is reached.
    fn finish(&self, problems: &mut Vec<ManifestProblem>) {
        if self.rows == 0 {
            problems.push(ManifestProblem {
                line: 1,
                kind: ProblemKind::NoRows,
                message: "the manifest has no rows: a job needs at least one Bucket,Key row".into(),
            });
        }
    }

    fn check_line(
        &mut self,
        raw: &[u8],
        truncated: bool,
        problems: &mut Vec<ManifestProblem>,
    ) -> LineOutcome {
        let line = self.line_no;
        let mut problem = |kind: ProblemKind, message: String| {
            problems.push(ManifestProblem {
                line,
                kind,
                message,
            })
        };
        if truncated {
            self.rows += 1;
            problem(
                ProblemKind::LineTooLong,
                format!(
                    "the line is longer than {MAX_LINE_BYTES} bytes, far more than a \
                     Bucket,Key,VersionId row: is this a CSV manifest?"
                ),
            );
            return LineOutcome::Other;
        }
        let mut bytes = raw;
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
            self.crlf_lines += 1;
            if self.crlf_lines == 1 {
                problem(ProblemKind::CrLf, crlf_message(1));
            }
        }
        if line == 1 {
            if let Some(rest) = bytes.strip_prefix(BOM) {
                bytes = rest;
                problem(
                    ProblemKind::Bom,
                    "the file starts with a UTF-8 byte order mark (BOM): save it as UTF-8 \
                     without BOM"
                        .into(),
                );
            }
        }
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            problem(
                ProblemKind::EmptyLine,
                "empty line: remove it (a manifest may not have empty lines, not even at the end)"
                    .into(),
            );
            return LineOutcome::Other;
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                self.rows += 1;
                problem(
                    ProblemKind::InvalidUtf8,
                    format!(
                        "not valid UTF-8 (at byte {} of the line): save the file as UTF-8, with \
                         keys URL-encoded",
                        e.valid_up_to() + 1
                    ),
                );
                return LineOutcome::Other;
            }
        };
        let mut fields = Vec::with_capacity(3);
        if let Err(e) = split_csv(text, &mut fields) {
            self.rows += 1;
            problem(ProblemKind::MalformedCsv, e.message().into());
            return LineOutcome::Other;
        }
        if self.is_header(&fields) {
            problem(
                ProblemKind::Header,
                format!(
                    "header row {}: remove it (a CSV manifest has no header; the job's \
                     Manifest.Spec.Fields names the columns)",
                    shorten(text)
                ),
            );
            return LineOutcome::Other;
        }
        self.rows += 1;

        let n = fields.len();
        if n != 2 && n != 3 {
            problem(
                ProblemKind::ColumnCount,
                format!(
                    "{n} column{}: a row is Bucket,Key or Bucket,Key,VersionId (quote a field \
                     holding a comma, or URL-encode keys: a comma is %2C)",
                    if n == 1 { "" } else { "s" }
                ),
            );
            return LineOutcome::Other;
        }
        let (first_width, first_line) = *self.width.get_or_insert((n, line));
        match self.expect.version_ids {
            Some(true) if n == 2 => problem(
                ProblemKind::VersionColumns,
                "no version id, but the manifest should have them: add each object's version \
                 id as a third column (null for a null version)"
                    .into(),
            ),
            Some(false) if n == 3 => problem(
                ProblemKind::VersionColumns,
                "a version id column, but the manifest should have none: remove it, or declare \
                 the manifest with version ids"
                    .into(),
            ),
            // Against an expectation, only rows that miss it are wrong.
            None if n != first_width => problem(
                ProblemKind::MixedColumns,
                format!(
                    "{n} columns, but line {first_line} has {first_width}: either every row has \
                     a version id or none (write null for a null version)"
                ),
            ),
            _ => {}
        }

        let bucket = fields[0].as_ref();
        if let Some(expected) = &self.expect.bucket {
            if bucket != expected {
                problem(
                    ProblemKind::WrongBucket,
                    format!(
                        "bucket {} is not the job's source bucket {expected:?}: list only its \
                         objects (one source bucket per copy job)",
                        shorten(bucket)
                    ),
                );
            }
        } else if self.valid_bucket.as_deref() != Some(bucket) {
            match check_bucket_name(bucket) {
                Err(reason) => problem(
                    ProblemKind::InvalidBucket,
                    format!(
                        "bucket {}: {reason} (the first column is the bucket name, not an ARN \
                         or s3:// URL)",
                        shorten(bucket)
                    ),
                ),
                Ok(()) => match &self.first_bucket {
                    Some((first, first_line)) if first != bucket => problem(
                        ProblemKind::MixedBuckets,
                        format!(
                            "bucket {} differs from {first:?} on line {first_line}: a copy job \
                             reads one source bucket, write one manifest per bucket",
                            shorten(bucket)
                        ),
                    ),
                    Some(_) => self.valid_bucket = Some(bucket.to_string()),
                    None => {
                        self.first_bucket = Some((bucket.to_string(), line));
                        self.valid_bucket = Some(bucket.to_string());
                    }
                },
            }
        }

        let key = check_key(fields[1].as_ref(), &mut problem);

        let version_id = match fields.get(2).map(|v| v.as_ref()) {
            None | Some("null") => None,
            Some("") => {
                problem(
                    ProblemKind::EmptyVersionId,
                    "empty version id: write null for an object whose version id is null (an \
                     empty one fails its task)"
                        .into(),
                );
                None
            }
            Some(v) if !is_valid_version_id(v) => {
                problem(
                    ProblemKind::InvalidVersionId,
                    format!("version id {}: {VERSION_ID_RULE}", shorten(v)),
                );
                None
            }
            Some(v) => Some(v.to_string()),
        };

        let has_error = problems
            .iter()
            .any(|p| p.line == line && p.severity() == Severity::Error);
        match key {
            Some(key) if !has_error => LineOutcome::Row(ManifestRow {
                bucket: bucket.to_string(),
                key,
                version_id,
            }),
            _ => LineOutcome::Other,
        }
    }

    /// `Bucket,Key[,VersionId]` in any case or spelling (`version_id`, `Version Id`), unless the
    /// job's bucket really is named `bucket`.
    fn is_header(&self, fields: &[Cow<'_, str>]) -> bool {
        let names = ["bucket", "key", "versionid"];
        let normalized = |f: &str| -> String {
            f.chars()
                .filter(|c| !matches!(c, '_' | '-' | ' '))
                .flat_map(char::to_lowercase)
                .collect()
        };
        // The cheap test first: this runs on every row.
        (fields.len() == 2 || fields.len() == 3)
            && fields[0].eq_ignore_ascii_case("bucket")
            && fields.iter().zip(names).all(|(f, n)| normalized(f) == n)
            && self.expect.bucket.as_deref() != Some(fields[0].as_ref())
    }
}

/// Checks an encoded key, files its problems, and returns it decoded when it decodes.
fn check_key(key: &str, problem: &mut impl FnMut(ProblemKind, String)) -> Option<String> {
    if key.is_empty() {
        problem(
            ProblemKind::EmptyKey,
            "empty key: every row needs the object's key".into(),
        );
        return None;
    }
    let mut unencoded: Option<String> = None;
    let mut bad_percent = false;
    let mut plus = false;
    let bytes = key.as_bytes();
    for (i, c) in key.char_indices() {
        let what = match c {
            ' ' => Some("a space".to_string()),
            c if c.is_ascii_control() => Some(format!("a control character {c:?}")),
            c if !c.is_ascii() => Some(format!("a non-ASCII character {c:?}")),
            '%' => {
                bad_percent |= hex_pair(bytes.get(i + 1..i + 3)).is_none();
                None
            }
            '+' => {
                plus = true;
                None
            }
            _ => None,
        };
        if unencoded.is_none() {
            unencoded = what;
        }
    }
    if let Some(what) = unencoded {
        problem(
            ProblemKind::UnencodedKey,
            format!(
                "key {} has {what}: URL-encode keys (a space is %20, + is %2B, non-ASCII \
                 characters are their UTF-8 bytes as %XX)",
                shorten(key)
            ),
        );
    }
    if plus {
        problem(
            ProblemKind::AmbiguousPlus,
            format!(
                "key {} has a raw '+', which S3 may read as a space: write %2B for a plus sign \
                 or %20 for a space",
                shorten(key)
            ),
        );
    }
    if bad_percent {
        problem(
            ProblemKind::BadPercent,
            format!(
                "key {} has a '%' not followed by two hex digits: URL-encode the key (a \
                 literal % is %25)",
                shorten(key)
            ),
        );
        return None;
    }
    match decode_key(key) {
        Ok(decoded) if decoded.len() > MAX_KEY_BYTES => {
            problem(
                ProblemKind::KeyTooLong,
                format!(
                    "key {} decodes to {} bytes; S3 keys are at most {MAX_KEY_BYTES}: is it \
                     encoded twice?",
                    shorten(key),
                    decoded.len()
                ),
            );
            None
        }
        Ok(decoded) => Some(decoded),
        Err(_) => {
            problem(
                ProblemKind::KeyNotUtf8,
                format!(
                    "key {} decodes to bytes that are not UTF-8: percent-encode the key's UTF-8 \
                     bytes",
                    shorten(key)
                ),
            );
            None
        }
    }
}

fn crlf_message(lines: u64) -> String {
    let count = if lines > 1 {
        format!(" ({lines} lines; only this first one is listed)")
    } else {
        String::new()
    };
    format!(
        "the line ends with \\r\\n{count}: Batch Operations expects \\n line ends; convert \
         them (e.g. dos2unix)"
    )
}

/// A field for a message: quoted and escaped, cut at 80 characters.
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

enum CsvError {
    Unterminated,
    QuoteInUnquoted,
    TextAfterQuote,
}

impl CsvError {
    fn message(&self) -> &'static str {
        match self {
            CsvError::Unterminated => {
                "a quoted field is not closed on this line: close the quote (a key with a line \
                 break is URL-encoded: %0A)"
            }
            CsvError::QuoteInUnquoted => {
                "a quote inside an unquoted field: URL-encode keys (a quote is %22), or quote \
                 the whole field and double the quote"
            }
            CsvError::TextAfterQuote => {
                "text after a closing quote: a quoted field must end at a comma or the line end"
            }
        }
    }
}

/// Splits one line into CSV fields (RFC 4180 quoting, `""` inside quotes; no line breaks in a
/// field, as manifests hold URL-encoded keys).
fn split_csv<'a>(line: &'a str, fields: &mut Vec<Cow<'a, str>>) -> Result<(), CsvError> {
    let mut rest = line;
    loop {
        if let Some(mut s) = rest.strip_prefix('"') {
            let mut value = String::new();
            loop {
                let i = s.find('"').ok_or(CsvError::Unterminated)?;
                value.push_str(&s[..i]);
                let after = &s[i + 1..];
                if let Some(a) = after.strip_prefix('"') {
                    value.push('"');
                    s = a;
                    continue;
                }
                fields.push(Cow::Owned(value));
                if after.is_empty() {
                    return Ok(());
                }
                rest = after.strip_prefix(',').ok_or(CsvError::TextAfterQuote)?;
                break;
            }
        } else {
            let (field, next) = match rest.find(',') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if field.contains('"') {
                return Err(CsvError::QuoteInUnquoted);
            }
            fields.push(Cow::Borrowed(field));
            match next {
                Some(n) => rest = n,
                None => return Ok(()),
            }
        }
    }
}

/// Reads one line into `buf` without its `\n`, keeping at most `max` bytes and skipping the
/// rest. `None` at the end of input, else whether the line was cut.
fn read_bounded_line<R: BufRead>(
    input: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    buf.clear();
    let mut read_any = false;
    let mut truncated = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(truncated));
        }
        read_any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        truncated |= chunk.len() > room;
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        input.consume(used);
        if done {
            return Ok(Some(truncated));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved_and_slash() {
        assert_eq!(encode_key("a b+c/d~e_f.g-h"), "a%20b%2Bc/d~e_f.g-h");
        assert_eq!(encode_key("é,\"%"), "%C3%A9%2C%22%25");
        assert_eq!(decode_key("a%20b%2Bc+d").unwrap(), "a b+c+d");
        assert_eq!(
            decode_event_key("red+flower%2B.jpg").unwrap(),
            "red flower+.jpg"
        );
        assert_eq!(decode_inventory_key("a+b%2Bc").unwrap(), "a b+c");
        assert_eq!(
            decode_key("50%"),
            Err(KeyDecodeError::BadPercent { offset: 2 })
        );
        assert_eq!(
            decode_key("%zz"),
            Err(KeyDecodeError::BadPercent { offset: 0 })
        );
        assert_eq!(decode_key("%FF"), Err(KeyDecodeError::NotUtf8));
    }

    #[test]
    fn csv_split() {
        let mut f = Vec::new();
        assert!(split_csv(r#"b,"a,""k""",v"#, &mut f).is_ok());
        assert_eq!(f, ["b", "a,\"k\"", "v"]);
        f.clear();
        assert!(split_csv("b,k,", &mut f).is_ok());
        assert_eq!(f, ["b", "k", ""]);
        assert!(matches!(
            split_csv(r#"b,"k"#, &mut Vec::new()),
            Err(CsvError::Unterminated)
        ));
        assert!(matches!(
            split_csv(r#"b,k"x"#, &mut Vec::new()),
            Err(CsvError::QuoteInUnquoted)
        ));
        assert!(matches!(
            split_csv(r#"b,"k"x"#, &mut Vec::new()),
            Err(CsvError::TextAfterQuote)
        ));
    }

    /// Found by fuzzing (fuzz/ csv_manifest): the valid-bucket cache started as "", so a first
    /// row with an empty bucket passed unchecked and the reader gave a row no job can use.
    #[test]
    fn an_empty_bucket_on_the_first_row_is_an_error() {
        let csv = b",a-ssjpg\n";
        let report = check_csv_manifest(&csv[..], CheckOptions::default()).unwrap();
        assert!(!report.is_ok(), "{report:?}");
        assert_eq!(report.problems[0].kind, ProblemKind::InvalidBucket);
        let rows: Vec<_> = CsvManifestReader::new(&csv[..]).collect();
        assert!(
            matches!(&rows[..], [Err(ManifestReadError::Invalid(p))] if p.kind == ProblemKind::InvalidBucket),
            "{rows:?}"
        );
    }

    #[test]
    fn long_lines_are_cut_not_held() {
        let mut input = io::Cursor::new([vec![b'x'; 100], b"\nab".to_vec()].concat());
        let mut buf = Vec::new();
        assert_eq!(
            read_bounded_line(&mut input, &mut buf, 10).unwrap(),
            Some(true)
        );
        assert_eq!(buf.len(), 10);
        assert_eq!(
            read_bounded_line(&mut input, &mut buf, 10).unwrap(),
            Some(false)
        );
        assert_eq!(buf, b"ab");
        assert_eq!(read_bounded_line(&mut input, &mut buf, 10).unwrap(), None);
    }
}
