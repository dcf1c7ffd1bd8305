//! CSV manifests as `ferry manifest check` and the functions read them: any bytes, with or
//! without expectations. The checker and the reader must agree, every problem names its line
//! and its fix, and every row read writes back to a manifest that checks clean.
#![no_main]

use std::io::Cursor;

use ferry_listings::manifest::{check_csv_manifest, CheckOptions, CsvManifestReader, CsvManifestWriter, ProblemKind, MAX_LISTED_PROBLEMS};
use ferry_fuzz::split_first;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (selector, csv) = split_first(data);
    let expect = CheckOptions {
        bucket: (selector & 1 == 1).then(|| "src-bucket".to_string()),
        version_ids: match (selector >> 1) & 3 {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        },
    };

    let report = match check_csv_manifest(Cursor::new(csv), expect.clone()) {
        Ok(r) => r,
        Err(e) => panic!("reading from memory failed: {e}"),
    };
    assert!(report.problems.len() <= MAX_LISTED_PROBLEMS);
    assert_eq!(
        report.errors + report.warnings,
        report.problems.len() as u64 + report.omitted,
        "problems counted and listed disagree"
    );
    assert!(report.problems.windows(2).all(|w| w[0].line <= w[1].line));
    for p in &report.problems {
        assert!(p.line >= 1, "a problem on line 0: {p:?}");
        assert!(
            !p.message.trim().is_empty(),
            "a problem without a message: {p:?}"
        );
    }

    // The reader is exactly as strict as the checker.
    let mut ok_rows = Vec::new();
    let mut errors = 0u64;
    for item in CsvManifestReader::with_options(Cursor::new(csv), expect.clone()) {
        match item {
            Ok(row) => ok_rows.push(row),
            Err(_) => errors += 1,
        }
        assert!(
            ok_rows.len() as u64 + errors <= csv.len() as u64 + 1,
            "the reader does not end"
        );
    }
    if report.is_ok() {
        assert_eq!(errors, 0, "the checker passed a file the reader refuses");
        assert_eq!(ok_rows.len() as u64, report.rows);
    } else {
        let line_errors = report
            .problems
            .iter()
            .filter(|p| p.kind != ProblemKind::NoRows)
            .count();
        if line_errors > 0 {
            assert!(
                errors > 0,
                "the reader passed a file the checker refuses: {:?}",
                report.problems
            );
        }
    }

    // Rows read write back, and the written file checks clean and reads back the same.
    let Some(first) = ok_rows.first() else { return };
    // The file's width: expected, else the first data row's; `null` versions read as None.
    let versions = expect
        .version_ids
        .or(report.has_version_ids)
        .unwrap_or(false)
        || ok_rows.iter().any(|r| r.version_id.is_some());
    let mut writer = CsvManifestWriter::new(Vec::new(), versions);
    let mut written = Vec::new();
    for row in &ok_rows {
        // A file may name several buckets (an error elsewhere): write the first one's rows.
        if row.bucket != first.bucket {
            continue;
        }
        if let Err(e) = writer.write_row(row) {
            panic!("a row the reader gave is refused by the writer: {e} ({row:?})");
        }
        written.push(row.clone());
    }
    let (bytes, counts) = match writer.finish() {
        Ok(w) => w,
        Err(e) => panic!("writing to memory failed: {e}"),
    };
    assert_eq!(counts.rows, written.len() as u64);
    assert_eq!(counts.bytes, bytes.len() as u64);
    let again = CheckOptions {
        bucket: Some(first.bucket.clone()),
        version_ids: Some(versions),
    };
    let report = match check_csv_manifest(Cursor::new(&bytes), again.clone()) {
        Ok(r) => r,
        Err(e) => panic!("reading from memory failed: {e}"),
    };
    assert!(
        report.is_ok(),
        "Ferry's own manifest fails the checker: {:?}",
        report.problems
    );
    let back: Vec<_> = CsvManifestReader::with_options(Cursor::new(&bytes), again)
        .map(|r| match r {
            Ok(row) => row,
            Err(e) => panic!("Ferry's own manifest does not read back: {e}"),
        })
        .collect();
    assert_eq!(back.len(), written.len());
    for (b, w) in back.iter().zip(&written) {
        assert_eq!(b.bucket, w.bucket);
        assert_eq!(b.key, w.key);
        assert_eq!(b.version_id, w.version_id);
    }
});
