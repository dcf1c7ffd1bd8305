//! Completion-report result CSVs: both column orders AWS uses, quoted fields with commas,
//! quotes and newlines, URL-encoded keys, empty files, unreadable rows counted, and a report
//! far larger than any buffer streamed through in chunks.

use std::path::Path;

use ferry_flows::report::diagnosis::{classify, Cause};
use ferry_listings::report::results::{parse_all, ResultCsvParser, TaskResult, TaskStatus};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reports")
            .join(name),
    )
    .unwrap()
}

fn brief(t: &TaskResult) -> (String, TaskStatus, String, Option<u16>, String) {
    (
        t.key.clone(),
        t.status,
        t.error_code.clone(),
        t.http_status,
        t.message.clone(),
    )
}

#[test]
fn both_column_orders_read_the_same() {
    let (schema, s1) = parse_all(&fixture("schema-order.csv"));
    let (sample, s2) = parse_all(&fixture("sample-order.csv"));
    assert_eq!(schema.len(), 4);
    assert_eq!(schema, sample);
    assert_eq!((s1.schema_order_rows, s1.sample_order_rows), (4, 0));
    assert_eq!((s2.schema_order_rows, s2.sample_order_rows), (0, 4));
    assert_eq!((s1.succeeded, s1.failed, s1.unreadable), (1, 3, 0));
    assert_eq!(
        brief(&schema[1]),
        (
            "2024/b c.jpg".into(),
            TaskStatus::Failed,
            "AccessDenied".into(),
            Some(403),
            "Access Denied".into()
        )
    );
    assert_eq!(
        schema[0].version_id.as_deref(),
        Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    );
    assert_eq!(schema[1].version_id, None);
    let causes: Vec<Cause> = schema.iter().skip(1).map(|t| classify(t, None)).collect();
    assert_eq!(
        causes,
        [
            Cause::SourceReadDenied,
            Cause::ObjectNotFound,
            Cause::Throttled
        ]
    );
}

#[test]
fn quoted_commas_quotes_newlines_and_bad_rows() {
    let (tasks, stats) = parse_all(&fixture("quoted.csv"));
    let keys: Vec<&str> = tasks.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "raw/plus+comma,.txt",
            "archive/x.bin",
            "big/y.bin",
            "kms/z.bin",
            "multi/line.txt",
            "unencoded, comma.txt",
        ]
    );
    assert_eq!(
        tasks[4].message,
        "first line, with a comma\nsecond line with \"quotes\", and more"
    );
    assert_eq!(tasks[4].http_status, Some(500));
    // An unquoted message split by its commas is put back together.
    assert_eq!(tasks[5].message, "The key, as written, has no quotes");
    // The row with three fields and the row whose key doesn't URL-decode (used raw it would
    // name another object: #16 item 10) are counted and described, not dropped silently; the
    // empty line is not a row.
    assert_eq!(stats.unreadable, 2);
    assert_eq!(stats.problems[0].record, 7);
    assert!(
        stats.problems[0].reason.contains("no task status"),
        "{:?}",
        stats.problems
    );
    assert!(
        stats.problems[1].reason.contains("odd%ZZkey")
            && stats.problems[1].reason.contains("not a URL-encoded key"),
        "{:?}",
        stats.problems
    );
    let causes: Vec<Cause> = tasks.iter().map(|t| classify(t, None)).collect();
    assert_eq!(
        causes,
        [
            Cause::SseC,
            Cause::Archived,
            Cause::TooLarge,
            Cause::SourceKeyDenied,
            Cause::ServerError,
            Cause::ObjectNotFound,
        ]
    );
}

#[test]
fn an_empty_report_has_no_rows() {
    let (tasks, stats) = parse_all(&fixture("empty.csv"));
    assert!(tasks.is_empty());
    assert_eq!((stats.rows, stats.unreadable), (0, 0));
    let (tasks, stats) = parse_all(b"\n\n");
    assert!(tasks.is_empty());
    assert_eq!(stats.rows, 0);
}

/// Rows made on the fly: the report never exists whole, in the test or in the parser.
struct Generated {
    next: u64,
    rows: u64,
}

impl Generated {
    fn chunk(&mut self, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        while buf.len() < 64 * 1024 && self.next < self.rows {
            let n = self.next;
            if n.is_multiple_of(10) {
                buf.extend_from_slice(
                    format!("\"src\",\"dir/{n}%20x.bin\",\"\",\"failed\",\"503\",\"SlowDown\",\"Please reduce your request rate, then retry\"\n").as_bytes(),
                );
            } else {
                buf.extend_from_slice(
                    format!("src,dir/{n},,succeeded,200,,Successful\n").as_bytes(),
                );
            }
            self.next += 1;
        }
        !buf.is_empty()
    }
}

#[test]
fn a_huge_report_streams_in_chunks() {
    const ROWS: u64 = 400_000;
    let mut source = Generated {
        next: 0,
        rows: ROWS,
    };
    let mut parser = ResultCsvParser::new();
    let (mut failed, mut last_failed_key) = (0u64, String::new());
    let mut count = |t: TaskResult| {
        if t.status == TaskStatus::Failed {
            failed += 1;
            last_failed_key = t.key;
        }
    };
    let mut buf = Vec::new();
    // Odd-sized slices so rows straddle chunk boundaries.
    while source.chunk(&mut buf) {
        for piece in buf.chunks(7_777) {
            parser.feed(piece, &mut count);
        }
    }
    let stats = parser.finish(&mut count);
    assert_eq!(stats.rows, ROWS);
    assert_eq!(stats.failed, ROWS / 10);
    assert_eq!(failed, ROWS / 10);
    assert_eq!(last_failed_key, format!("dir/{} x.bin", ROWS - 10));
    assert_eq!(stats.unreadable, 0);
}

#[test]
fn the_report_manifest_points_at_the_failed_tasks_file() {
    use ferry_listings::report::manifest_json::CompletionReportManifest;
    let manifest =
        CompletionReportManifest::from_json("manifest.json", &fixture("manifest.json")).unwrap();
    let failed: Vec<(&str, &str)> = manifest
        .failed_files()
        .map(|f| (f.bucket.as_str(), f.key.as_str()))
        .collect();
    assert_eq!(
        failed,
        [(
            "acme-reports",
            "ferry/photos/job-7c1a3e52-0d4b-4c8e-9a55-1f2e3d4c5b6a/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6.csv"
        )]
    );
    assert_eq!(manifest.results.len(), 2);
}
