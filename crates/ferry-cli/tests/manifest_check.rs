//! `ferry manifest check` run as a binary on the core's manifest fixtures: exit 0 with a count,
//! or exit 2 with every problem as `FILE:LINE: message`; never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ferry-listings/tests/fixtures/manifests")
        .join(name)
}

/// Runs `ferry manifest check FILE ARGS…`: (exit code, stdout, stderr).
fn check(file: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["manifest", "check"])
        .arg(file)
        .args(args)
        .output()
        .expect("ferry runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn clean_manifests_pass_with_their_row_count() {
    let (code, stdout, stderr) = check(&fixture("clean.csv"), &["--bucket", "photos-src"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "ok: 3 rows (without version ids)\n");
    assert!(stderr.is_empty(), "{stderr}");

    let (code, stdout, _) = check(
        &fixture("clean-versions.csv"),
        &["--bucket", "photos-src", "--version-ids", "true"],
    );
    assert_eq!(code, 0);
    assert_eq!(stdout, "ok: 3 rows (with version ids)\n");
}

#[test]
fn every_problem_is_printed_with_file_and_line() {
    let file = fixture("unencoded-key.csv");
    let (code, stdout, stderr) = check(&file, &[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    let name = file.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    let prefixes: Vec<String> = lines
        .iter()
        .map(|l| l.split(": ").next().unwrap_or("").to_string())
        .collect();
    let expected: Vec<String> = (2..=8)
        .map(|n| format!("{name}:{n}"))
        .chain([name.clone()])
        .collect();
    assert_eq!(prefixes, expected, "{stderr}");
    assert!(lines[0].ends_with(
        "key \"red flower.jpg\" has a space: URL-encode keys (a space is %20, + is %2B, \
         non-ASCII characters are their UTF-8 bytes as %XX)"
    ));
    assert!(lines[4].starts_with(&format!("{name}:6: warning: ")));
    assert!(lines[7].contains("6 errors in 8 rows"), "{stderr}");
}

#[test]
fn each_bad_fixture_fails_on_its_lines() {
    for (fixture_name, args, lines) in [
        ("bom.csv", &[][..], &[1][..]),
        ("header.csv", &[], &[1]),
        ("empty-line.csv", &[], &[2, 4]),
        ("mixed-columns.csv", &[], &[2, 4, 5]),
        ("wrong-bucket.csv", &["--bucket", "photos-src"], &[2, 4]),
        ("invalid-utf8.csv", &[], &[2]),
        ("bad-quotes.csv", &[], &[1, 2, 3]),
        ("clean.csv", &["--version-ids", "true"], &[1, 2, 3]),
    ] {
        let file = fixture(fixture_name);
        let (code, stdout, stderr) = check(&file, args);
        assert_eq!(code, 2, "{fixture_name}: {stderr}");
        assert!(stdout.is_empty());
        let name = file.display().to_string();
        let found: Vec<u64> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}:")))
            .filter_map(|l| l.split(':').next()?.parse().ok())
            .collect();
        assert_eq!(found, lines, "{fixture_name}: {stderr}");
    }
}

#[test]
fn warnings_alone_still_pass() {
    let file = fixture("crlf.csv");
    let (code, stdout, stderr) = check(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "ok: 2 rows (without version ids)\n");
    assert!(
        stderr.starts_with(&format!("{}:1: warning: ", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("\\r\\n (2 lines"), "{stderr}");
}

#[test]
fn unreadable_files_are_a_clear_error() {
    let (code, _, stderr) = check(&fixture("does-not-exist.csv"), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: can't read the manifest "),
        "{stderr}"
    );

    let (code, _, stderr) = check(&fixture(""), &[]);
    assert_eq!(code, 2, "a directory");
    assert!(
        stderr.starts_with("error: can't read the manifest "),
        "{stderr}"
    );
}

#[test]
fn binary_garbage_is_reported_not_a_panic() {
    // The ferry binary itself: long lines, NULs, invalid UTF-8; problems capped at 1,000.
    let (code, stdout, stderr) = check(Path::new(env!("CARGO_BIN_EXE_ferry")), &[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.lines().count() <= 1002, "the list is capped");
    assert!(stderr.contains("more problems not listed"), "{stderr}");
}

#[test]
fn bad_arguments_exit_2() {
    let (code, _, stderr) = check(&fixture("clean.csv"), &["--version-ids", "maybe"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("true") && stderr.contains("false"),
        "{stderr}"
    );

    let (code, _, stderr) = check(
        &fixture("clean.csv"),
        &["--bucket", "arn:aws:s3:::photos-src"],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("not a valid S3 bucket name"), "{stderr}");
}
