//! `ferry plan` on bad input: exit code 2, every problem named with its field, never a panic.

use std::path::Path;
use std::process::Command;

fn plan(spec: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["plan", &spec.to_string_lossy(), "--format", "json"])
        .output()
        .expect("ferry runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bad(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad-specs")
        .join(name)
}

#[test]
fn many_problems_are_reported_together() {
    let (code, stdout, stderr) = plan(&bad("many-problems.toml"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stdout.is_empty(),
        "nothing on stdout for a bad spec: {stdout}"
    );
    for expected in [
        "source.account_id = \"11111111111\"",
        "source.bucket = \"Acme_Photos\"",
        "source.kms_key_arn = \"alias/aws/s3\": the AWS managed key aws/s3 can't be shared",
        "destination.kms_key_arn",
        "the key is in us-west-2 but destination.bucket is in us-east-1",
        "report.prefix = \"reports/\"",
        "job.region = \"eu-west-1\"",
        "manifest.version_ids",
        "manifest.account_id = \"999999999999\": must be the source account",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("the spec has 8 problems"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn toml_shape_errors_name_the_field() {
    let (code, _, stderr) = plan(&bad("unknown-field.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("kms_key"), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");

    let (code, _, stderr) = plan(&bad("wrong-storage-class.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("GLACIER_FLEXIBLE"), "{stderr}");
    assert!(
        stderr.contains("STANDARD_IA"),
        "lists the accepted values: {stderr}"
    );
}

#[test]
fn missing_or_unreadable_spec_is_a_clear_error() {
    let (code, _, stderr) = plan(&bad("does-not-exist.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("can't read the spec"), "{stderr}");

    let (code, _, stderr) = plan(&bad("not-toml.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("not valid TOML"), "{stderr}");
}

#[test]
fn in_place_copy_that_changes_nothing_is_refused() {
    let (code, _, stderr) = plan(&bad("in-place-no-change.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("in-place copy"), "{stderr}");
    assert!(stderr.contains("destination.bucket"), "{stderr}");
}
