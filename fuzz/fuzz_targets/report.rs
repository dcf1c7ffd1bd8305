//! Completion reports (`ferry_listings::report`): a result CSV (`ResultCsvParser`) fed in chunks
//! of a fuzz-chosen size, and the report's `manifest.json`. Every row is counted exactly once
//! (succeeded, failed, or apart as unreadable), the tasks handed out match the counts, described
//! problems name their record, and how the bytes are chunked changes nothing.
#![no_main]

use ferry_listings::report::manifest_json::CompletionReportManifest;
use ferry_listings::report::results::{ResultCsvParser, TaskResult, TaskStatus};
use ferry_fuzz::split_first;
use libfuzzer_sys::fuzz_target;

fn parse(data: &[u8], chunk: usize) -> (Vec<TaskResult>, ferry_listings::report::results::ParseStats) {
    let mut parser = ResultCsvParser::new();
    let mut tasks = Vec::new();
    let mut keep = |t: TaskResult| tasks.push(t);
    for part in data.chunks(chunk.max(1)) {
        parser.feed(part, &mut keep);
    }
    let stats = parser.finish(&mut keep);
    (tasks, stats)
}

fuzz_target!(|data: &[u8]| {
    let (selector, body) = split_first(data);
    if selector == b'{' {
        // The report's manifest.json: any bytes, never a panic; a listed file names a key.
        if let Ok(m) = CompletionReportManifest::from_json("reports/job-1/manifest.json", data) {
            for f in m.failed_files() {
                assert!(!f.task_execution_status.eq_ignore_ascii_case("succeeded"));
            }
        }
        return;
    }
    let (tasks, stats) = parse(body, body.len());
    // `rows` counts readable rows; unreadable ones are counted apart (and described).
    assert_eq!(
        stats.rows,
        stats.succeeded + stats.failed,
        "a row not counted exactly once: {stats:?}"
    );
    assert!(stats.schema_order_rows + stats.sample_order_rows <= stats.rows);
    assert_eq!(tasks.len() as u64, stats.succeeded + stats.failed);
    let failed = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Failed)
        .count();
    assert_eq!(failed as u64, stats.failed);
    assert!(stats.problems.len() as u64 <= stats.unreadable);
    for p in &stats.problems {
        assert!(p.record >= 1 && !p.reason.trim().is_empty(), "{p:?}");
    }
    // Chunking must not matter: S3 streams the file in arbitrary pieces.
    let (again, stats_again) = parse(body, usize::from(selector) + 1);
    assert_eq!(
        tasks,
        again,
        "chunk size {} changed the tasks",
        usize::from(selector) + 1
    );
    assert_eq!(
        stats,
        stats_again,
        "chunk size {} changed the counts",
        usize::from(selector) + 1
    );
});
