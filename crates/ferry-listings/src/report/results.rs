//! The result CSVs of a completion report (`results/<hash>.csv`), read as S3 streams them:
//! chunk by chunk, with memory bounded by the longest row.
//!
//! The schema in `manifest.json` says `Bucket, Key, VersionId, TaskStatus, ErrorCode,
//! HTTPStatusCode, ResultMessage`, but AWS's own sample rows put the HTTP status before the
//! error code. So each row's columns are recognised by content, not position: the task status
//! is the `succeeded`/`failed` field (4th, or 3rd when a report has no VersionId column), the
//! HTTP status is the 3-digit number among the two fields after it and the error code the other
//! one; whatever follows is the message (re-joined if an unquoted comma split it). Quoted
//! fields may hold commas, quotes and newlines. Keys are URL-encoded in reports and are decoded
//! here. A row that can't be read is counted and described, never dropped silently.

use serde::Serialize;

use crate::manifest::decode_key;

/// A row longer than this is reported as unreadable rather than buffered (a key is at most
/// 1 KiB; messages are short).
pub const MAX_ROW_BYTES: usize = 256 * 1024;
/// How many unreadable rows are described; all are counted.
pub const MAX_DESCRIBED_PROBLEMS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Succeeded,
    Failed,
}

/// One task of the job, as the report states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskResult {
    pub bucket: String,
    /// The key as S3 stores it: the report's text URL-decoded (a row whose text doesn't decode
    /// is unreadable).
    pub key: String,
    /// The report's text when it differs from [`Self::key`] (it held `%XX` escapes) or holds a
    /// `+`. AWS doesn't document how completion reports encode keys (Ferry assumes URL encoding,
    /// as in CSV manifests): where only "which objects may have failed" matters (the delta
    /// index), every reading is taken (this text as it is, and with `+` as a space, as S3
    /// Inventory's CSV may mean it), so whichever AWS means loses nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_as_reported: Option<String>,
    pub version_id: Option<String>,
    pub status: TaskStatus,
    /// Empty for a success.
    pub error_code: String,
    pub http_status: Option<u16>,
    pub message: String,
}

/// Which order a row had its HTTP status and error code in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnOrder {
    /// `ErrorCode, HTTPStatusCode` as `ReportSchema` says.
    CodeThenHttp,
    /// `HTTPStatusCode, ErrorCode` as AWS's sample rows show.
    HttpThenCode,
    /// Neither field told (both empty, say).
    Undecided,
}

/// A row that could not be read as a task result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// 1-based record number in its file (a quoted newline doesn't start a new record).
    pub record: u64,
    pub reason: String,
}

/// Counts over everything read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParseStats {
    pub rows: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub unreadable: u64,
    pub schema_order_rows: u64,
    pub sample_order_rows: u64,
    pub problems: Vec<RowProblem>,
}

impl ParseStats {
    fn problem(&mut self, record: u64, reason: String) {
        self.unreadable += 1;
        if self.problems.len() < MAX_DESCRIBED_PROBLEMS {
            self.problems.push(RowProblem { record, reason });
        }
    }

    /// Adds another file's counts.
    pub fn merge(&mut self, other: ParseStats) {
        self.rows += other.rows;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.unreadable += other.unreadable;
        self.schema_order_rows += other.schema_order_rows;
        self.sample_order_rows += other.sample_order_rows;
        let room = MAX_DESCRIBED_PROBLEMS.saturating_sub(self.problems.len());
        self.problems.extend(other.problems.into_iter().take(room));
    }
}

/// A push parser for one result CSV: [`feed`](Self::feed) it chunks in order, then
/// [`finish`](Self::finish). Each task is handed to the callback as soon as its row ends.
pub struct ResultCsvParser {
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
    /// The current row outgrew [`MAX_ROW_BYTES`]: skip to its end, then report it.
    oversized: bool,
    record: u64,
    stats: ParseStats,
}

impl Default for ResultCsvParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResultCsvParser {
    pub fn new() -> Self {
        Self {
            core: csv_core::ReaderBuilder::new().build(),
            out: vec![0; 4096],
            ends: vec![0; 16],
            out_len: 0,
            ends_len: 0,
            oversized: false,
            record: 0,
            stats: ParseStats::default(),
        }
    }

    /// Parses a chunk; rows completed by it go to `on_task`.
    pub fn feed<F: FnMut(TaskResult) + ?Sized>(&mut self, chunk: &[u8], on_task: &mut F) {
        self.run(chunk, on_task);
    }

    /// Ends the file (a last row without a newline is still a row) and returns the counts.
    pub fn finish<F: FnMut(TaskResult) + ?Sized>(mut self, on_task: &mut F) -> ParseStats {
        self.run(&[], on_task);
        self.stats
    }

    fn run<F: FnMut(TaskResult) + ?Sized>(&mut self, mut input: &[u8], on_task: &mut F) {
        loop {
            let (result, nin, nout, nend) = self.core.read_record(
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[nin..];
            if !self.oversized {
                self.out_len += nout;
                self.ends_len += nend;
            }
            match result {
                csv_core::ReadRecordResult::InputEmpty => return,
                csv_core::ReadRecordResult::OutputFull => {
                    if self.out.len() >= MAX_ROW_BYTES {
                        // Keep parsing (to find the row's end) into the same space.
                        self.oversized = true;
                        self.out_len = 0;
                    } else {
                        let grown = (self.out.len() * 2).min(MAX_ROW_BYTES);
                        self.out.resize(grown, 0);
                    }
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if self.oversized || self.ends.len() >= 4096 {
                        self.oversized = true;
                        self.ends_len = 0;
                    } else {
                        let grown = self.ends.len() * 2;
                        self.ends.resize(grown, 0);
                    }
                }
                csv_core::ReadRecordResult::Record => {
                    self.record += 1;
                    self.end_row(on_task);
                }
                csv_core::ReadRecordResult::End => return,
            }
        }
    }

    fn end_row<F: FnMut(TaskResult) + ?Sized>(&mut self, on_task: &mut F) {
        let record = self.record;
        let (out_len, ends_len, oversized) = (self.out_len, self.ends_len, self.oversized);
        self.out_len = 0;
        self.ends_len = 0;
        self.oversized = false;
        if oversized {
            self.stats.problem(
                record,
                format!("the row is longer than {MAX_ROW_BYTES} bytes"),
            );
            return;
        }
        let mut fields = Vec::with_capacity(ends_len);
        let mut start = 0;
        for &end in &self.ends[..ends_len] {
            let end = end.min(out_len);
            fields.push(String::from_utf8_lossy(&self.out[start..end]).into_owned());
            start = end;
        }
        // csv_core reports an empty line as one empty field: not a row.
        if fields.iter().all(|f| f.is_empty()) {
            return;
        }
        match interpret(&fields) {
            Ok((task, order)) => {
                self.stats.rows += 1;
                match task.status {
                    TaskStatus::Succeeded => self.stats.succeeded += 1,
                    TaskStatus::Failed => self.stats.failed += 1,
                }
                match order {
                    ColumnOrder::CodeThenHttp => self.stats.schema_order_rows += 1,
                    ColumnOrder::HttpThenCode => self.stats.sample_order_rows += 1,
                    ColumnOrder::Undecided => {}
                }
                on_task(task);
            }
            Err(reason) => self.stats.problem(record, reason),
        }
    }
}

fn status_of(field: &str) -> Option<TaskStatus> {
    match field.trim().to_ascii_lowercase().as_str() {
        "succeeded" => Some(TaskStatus::Succeeded),
        "failed" => Some(TaskStatus::Failed),
        _ => None,
    }
}

fn http_status_of(field: &str) -> Option<u16> {
    let f = field.trim();
    if f.len() != 3 || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    f.parse().ok().filter(|s| (100..600).contains(s))
}

/// One row's fields → a task, recognising the columns by content (see the module docs).
fn interpret(fields: &[String]) -> Result<(TaskResult, ColumnOrder), String> {
    // VersionId present (schema) puts the status 4th; a report without it, 3rd.
    let (status_at, status) = [3, 2]
        .into_iter()
        .find_map(|i| fields.get(i).and_then(|f| status_of(f)).map(|s| (i, s)))
        .ok_or_else(|| {
            format!(
                "no task status (succeeded/failed) in column 3 or 4 of {} field(s)",
                fields.len()
            )
        })?;
    let bucket = fields[0].trim().to_string();
    let raw_key = fields.get(1).map(String::as_str).unwrap_or_default();
    if bucket.is_empty() || raw_key.is_empty() {
        return Err("the row names no bucket or no key".to_string());
    }
    let version_id = (status_at == 3)
        .then(|| fields[2].trim().to_string())
        .filter(|v| !v.is_empty());
    let a = fields.get(status_at + 1).map(String::as_str).unwrap_or("");
    let b = fields.get(status_at + 2).map(String::as_str).unwrap_or("");
    let (error_code, http_status, order) = match (http_status_of(a), http_status_of(b)) {
        (None, Some(h)) => (a.trim().to_string(), Some(h), ColumnOrder::CodeThenHttp),
        (Some(h), None) => (b.trim().to_string(), Some(h), ColumnOrder::HttpThenCode),
        // Both or neither look like an HTTP status: take the schema's order.
        (ha, hb) => (
            a.trim().to_string(),
            hb.or(ha),
            if ha.is_some() {
                ColumnOrder::CodeThenHttp
            } else {
                ColumnOrder::Undecided
            },
        ),
    };
    let message = fields
        .get(status_at + 3..)
        .map(|rest| rest.join(","))
        .unwrap_or_default();
    // A key that is not URL-encoded as Batch Operations writes it names no object for sure:
    // used raw it would redrive (or take out of the delta index) another key (#16 item 10).
    let key = decode_key(raw_key).map_err(|e| {
        format!("the key {raw_key:?} is not a URL-encoded key ({e}), so the row names no object")
    })?;
    // Kept when it differs from the key, or holds a `+` (an inventory's form encoding may write
    // a space so, and a job on an inventory's own manifest may echo it).
    let key_as_reported = (key != raw_key || raw_key.contains('+')).then(|| raw_key.to_string());
    Ok((
        TaskResult {
            bucket,
            key,
            key_as_reported,
            version_id,
            status,
            error_code,
            http_status,
            message,
        },
        order,
    ))
}

/// Parses a whole in-memory file (tests, small reports).
pub fn parse_all(bytes: &[u8]) -> (Vec<TaskResult>, ParseStats) {
    let mut tasks = Vec::new();
    let mut parser = ResultCsvParser::new();
    parser.feed(bytes, &mut |t| tasks.push(t));
    let stats = parser.finish(&mut |t| tasks.push(t));
    (tasks, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_cut_anywhere_between_chunks_reads_the_same() {
        let csv = b"\"b\",\"a%20b.txt\",\"v1\",\"failed\",\"403\",\"AccessDenied\",\"x, \"\"y\"\"\nz\"\nb,c,,succeeded,200,,Successful\n";
        let (whole, _) = parse_all(csv);
        assert_eq!(whole.len(), 2);
        for cut in 0..csv.len() {
            let mut tasks = Vec::new();
            let mut p = ResultCsvParser::new();
            p.feed(&csv[..cut], &mut |t| tasks.push(t));
            p.feed(&csv[cut..], &mut |t| tasks.push(t));
            p.finish(&mut |t| tasks.push(t));
            assert_eq!(tasks, whole, "cut at {cut}");
        }
        assert_eq!(whole[0].message, "x, \"y\"\nz");
        assert_eq!(whole[0].key, "a b.txt");
    }

    /// #16 item 10: a key that does not URL-decode is an unreadable row, not a task for the
    /// raw text (which would name another object).
    #[test]
    fn a_key_that_does_not_url_decode_is_an_unreadable_row() {
        let csv = b"b,bad%ZZkey,,failed,403,AccessDenied,Access Denied\nb,good%20key,,failed,403,AccessDenied,Access Denied\n";
        let (tasks, stats) = parse_all(csv);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].key, "good key");
        assert_eq!(stats.unreadable, 1);
        assert!(
            stats
                .problems
                .iter()
                .any(|p| p.reason.contains("bad%ZZkey")),
            "{stats:?}"
        );
    }

    #[test]
    fn an_oversized_row_is_counted_and_the_next_one_read() {
        let mut csv = format!(
            "b,k,,failed,500,InternalError,{}\n",
            "m".repeat(MAX_ROW_BYTES + 10)
        );
        csv.push_str("b,k2,,succeeded,200,,ok\n");
        let (tasks, stats) = parse_all(csv.as_bytes());
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].key, "k2");
        assert_eq!(stats.unreadable, 1);
        assert_eq!(stats.problems[0].record, 1);
    }
}
