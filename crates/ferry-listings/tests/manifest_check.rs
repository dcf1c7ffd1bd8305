//! The CSV manifest checker on one fixture per problem kind: every problem found, on its line.

use std::path::{Path, PathBuf};

use ferry_listings::manifest::{
    check_csv_manifest, CheckOptions, CsvManifestReader, ManifestReadError, ManifestReport,
    ProblemKind, MAX_LISTED_PROBLEMS,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(name)
}

fn check_bytes(bytes: &[u8], expect: CheckOptions) -> ManifestReport {
    check_csv_manifest(bytes, expect).expect("reading from memory can't fail")
}

fn check(name: &str, expect: CheckOptions) -> ManifestReport {
    let bytes = std::fs::read(fixture(name)).expect("fixture exists");
    check_bytes(&bytes, expect)
}

fn any() -> CheckOptions {
    CheckOptions::default()
}

/// (line, kind) of every problem, in order.
fn found(report: &ManifestReport) -> Vec<(u64, ProblemKind)> {
    report.problems.iter().map(|p| (p.line, p.kind)).collect()
}

#[test]
fn clean_manifests_have_no_problems() {
    let report = check(
        "clean.csv",
        CheckOptions {
            bucket: Some("photos-src".into()),
            version_ids: Some(false),
        },
    );
    assert!(report.is_ok() && report.problems.is_empty(), "{report:?}");
    assert_eq!((report.rows, report.has_version_ids), (3, Some(false)));

    let report = check(
        "clean-versions.csv",
        CheckOptions {
            bucket: Some("photos-src".into()),
            version_ids: Some(true),
        },
    );
    assert!(report.is_ok() && report.problems.is_empty(), "{report:?}");
    assert_eq!((report.rows, report.has_version_ids), (3, Some(true)));
}

#[test]
fn clean_manifest_reads_back_decoded_with_null_as_none() {
    let file = std::fs::File::open(fixture("clean-versions.csv")).unwrap();
    let rows: Vec<_> = CsvManifestReader::new(std::io::BufReader::new(file))
        .collect::<Result<_, _>>()
        .unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.bucket.as_str(), r.key.as_str(), r.version_id.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "photos-src",
                "a.jpg",
                Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
            ),
            ("photos-src", "b c.jpg", None),
            (
                "photos-src",
                "quoted,key.txt",
                Some("UIORUnfndfhnw89493jJFJ")
            ),
        ]
    );

    let file = std::fs::File::open(fixture("clean.csv")).unwrap();
    let keys: Vec<_> = CsvManifestReader::new(std::io::BufReader::new(file))
        .map(|r| r.unwrap().key)
        .collect();
    assert_eq!(keys, ["a.jpg", "dir/red flower.jpg", "C++/été 😀.txt"]);
}

#[test]
fn bom() {
    let report = check("bom.csv", any());
    assert_eq!(found(&report), [(1, ProblemKind::Bom)]);
    assert_eq!(report.rows, 2, "the first row is still read");
    assert!(report.problems[0].message.contains("without BOM"));
}

#[test]
fn header_row() {
    let report = check("header.csv", any());
    assert_eq!(found(&report), [(1, ProblemKind::Header)]);
    assert_eq!(report.rows, 2, "a header is not a row");
    assert_eq!(report.has_version_ids, Some(true));
    assert!(report.problems[0].message.contains("remove it"));

    // Any spelling, and a bucket that really is named `bucket` is not a header.
    let report = check_bytes(b"bucket,KEY,version_id\nb-1,k,v\n", any());
    assert_eq!(found(&report), [(1, ProblemKind::Header)]);
    let report = check_bytes(
        b"bucket,key\n",
        CheckOptions {
            bucket: Some("bucket".into()),
            version_ids: None,
        },
    );
    assert!(report.problems.is_empty(), "{report:?}");
}

#[test]
fn empty_lines_including_a_trailing_blank_line() {
    let report = check("empty-line.csv", any());
    assert_eq!(
        found(&report),
        [(2, ProblemKind::EmptyLine), (4, ProblemKind::EmptyLine)]
    );
    assert_eq!(report.rows, 2);

    // One final line break is fine, and so is none.
    assert!(check_bytes(b"b-1,k\n", any()).problems.is_empty());
    assert!(check_bytes(b"b-1,k", any()).problems.is_empty());
    assert_eq!(
        found(&check_bytes(b"b-1,k\n  \t\n", any())),
        [(2, ProblemKind::EmptyLine)]
    );
}

#[test]
fn unencoded_keys() {
    let report = check("unencoded-key.csv", any());
    assert_eq!(
        found(&report),
        [
            (2, ProblemKind::UnencodedKey),
            (3, ProblemKind::BadPercent),
            (4, ProblemKind::UnencodedKey),
            (5, ProblemKind::UnencodedKey),
            (6, ProblemKind::AmbiguousPlus),
            (7, ProblemKind::KeyNotUtf8),
            (8, ProblemKind::EmptyKey),
        ]
    );
    let messages: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(messages[0].contains("a space") && messages[0].contains("%20"));
    assert!(messages[1].contains("%25"));
    assert!(messages[2].contains("non-ASCII character 'é'"));
    assert!(messages[3].contains("control character '\\t'"));
    assert!(messages[4].contains("%2B"));
    assert_eq!((report.errors, report.warnings), (6, 1));
}

#[test]
fn a_raw_plus_alone_is_only_a_warning() {
    let report = check_bytes(b"b-1,a+b.jpg\n", any());
    assert_eq!(found(&report), [(1, ProblemKind::AmbiguousPlus)]);
    assert!(report.is_ok());
}

#[test]
fn mixed_and_wrong_column_counts() {
    let report = check("mixed-columns.csv", any());
    assert_eq!(
        found(&report),
        [
            (2, ProblemKind::MixedColumns),
            (4, ProblemKind::ColumnCount),
            (5, ProblemKind::EmptyVersionId),
        ]
    );
    assert_eq!(report.has_version_ids, Some(true));
    assert!(report.problems[0]
        .message
        .contains("either every row has a version id or none"));
    assert!(report.problems[2].message.contains("write null"));

    // Against an expectation, every row that misses it is named.
    let report = check_bytes(
        b"b-1,a,v1\nb-1,b\n",
        CheckOptions {
            bucket: None,
            version_ids: Some(false),
        },
    );
    assert_eq!(found(&report), [(1, ProblemKind::VersionColumns)]);
    let report = check_bytes(
        b"b-1,a\nb-1,b\n",
        CheckOptions {
            bucket: None,
            version_ids: Some(true),
        },
    );
    assert_eq!(
        found(&report),
        [
            (1, ProblemKind::VersionColumns),
            (2, ProblemKind::VersionColumns)
        ]
    );
}

#[test]
fn wrong_mixed_and_invalid_buckets() {
    let report = check(
        "wrong-bucket.csv",
        CheckOptions {
            bucket: Some("photos-src".into()),
            version_ids: None,
        },
    );
    assert_eq!(
        found(&report),
        [(2, ProblemKind::WrongBucket), (4, ProblemKind::WrongBucket)]
    );
    assert!(report.problems[0].message.contains("\"other-bucket\""));

    let report = check("wrong-bucket.csv", any());
    assert_eq!(
        found(&report),
        [
            (2, ProblemKind::MixedBuckets),
            (4, ProblemKind::InvalidBucket)
        ]
    );
    assert!(report.problems[0].message.contains("on line 1"));
    assert!(report.problems[1]
        .message
        .contains("not a valid S3 bucket name"));
}

#[test]
fn crlf_is_a_warning_reported_once() {
    let report = check("crlf.csv", any());
    assert_eq!(found(&report), [(1, ProblemKind::CrLf)]);
    assert!(report.is_ok());
    assert_eq!(report.rows, 2);
    assert!(report.problems[0].message.contains("2 lines"));
}

#[test]
fn invalid_utf8() {
    let report = check("invalid-utf8.csv", any());
    assert_eq!(found(&report), [(2, ProblemKind::InvalidUtf8)]);
    assert!(report.problems[0].message.contains("at byte 15"));
    assert_eq!(report.rows, 3);
}

#[test]
fn malformed_quotes() {
    let report = check("bad-quotes.csv", any());
    assert_eq!(
        found(&report),
        [
            (1, ProblemKind::MalformedCsv),
            (2, ProblemKind::MalformedCsv),
            (3, ProblemKind::MalformedCsv),
        ]
    );
}

#[test]
fn an_empty_file_has_no_rows() {
    assert_eq!(found(&check_bytes(b"", any())), [(1, ProblemKind::NoRows)]);
    assert_eq!(
        found(&check_bytes(b"Bucket,Key\n", any())),
        [(1, ProblemKind::Header), (1, ProblemKind::NoRows)]
    );
}

#[test]
fn problems_are_capped_and_the_rest_counted() {
    let bad: Vec<u8> = "b-1,a b\n".repeat(2500).into_bytes();
    let report = check_bytes(&bad, any());
    assert_eq!(report.problems.len(), MAX_LISTED_PROBLEMS);
    assert_eq!(report.omitted, 1500);
    assert_eq!(report.errors, 2500);
    assert_eq!(report.rows, 2500);
    assert_eq!(report.problems.last().map(|p| p.line), Some(1000));
}

#[test]
fn a_line_without_breaks_is_cut_not_held() {
    let mut bytes = b"b-1,".to_vec();
    bytes.extend(vec![b'k'; 10 << 20]);
    bytes.extend(b"\nb-1,ok\n");
    let report = check_bytes(&bytes, any());
    assert_eq!(found(&report), [(1, ProblemKind::LineTooLong)]);
    assert_eq!(report.rows, 2);
}

#[test]
fn the_reader_stops_at_errors_with_their_line() {
    let file = std::fs::File::open(fixture("mixed-columns.csv")).unwrap();
    let results: Vec<_> = CsvManifestReader::new(std::io::BufReader::new(file)).collect();
    let lines: Vec<Result<String, u64>> = results
        .into_iter()
        .map(|r| match r {
            Ok(row) => Ok(row.key),
            Err(ManifestReadError::Invalid(p)) => Err(p.line),
            Err(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(
        lines,
        [
            Ok("a.jpg".to_string()),
            Err(2),
            Ok("c.jpg".to_string()),
            Err(4),
            Err(5)
        ]
    );
}
