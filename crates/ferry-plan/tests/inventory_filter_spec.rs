//! The spec's `[filter]` table: parsing, validation (every problem, by field), and that specs
//! without it keep their fingerprint.

use std::path::Path;

use ferry_plan::error::FerryError;
use ferry_plan::plan::fingerprint;
use ferry_plan::spec::EncryptionFilter;
use ferry_plan::validate::validate;
use ferry_plan::TransferSpec;

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kms-inventory.toml");
    std::fs::read_to_string(path).unwrap()
}

/// The example as an event-driven transfer (a filter is applied by inventory runs) with `filter`.
fn with_filter(filter: &str) -> TransferSpec {
    TransferSpec::from_toml_str(&format!("{}\n{RUNS}\n[filter]\n{filter}\n", example()))
        .expect("parses")
}

const RUNS: &str =
    "[inventory]\nformat = \"CSV\"\nfrequency = \"Daily\"\nversions = \"current\"\ndelta = true\n";

fn problems(spec: &TransferSpec) -> Vec<(String, String)> {
    match validate(spec) {
        Ok(()) => vec![],
        Err(FerryError::InvalidSpec(p)) => p.into_iter().map(|p| (p.field, p.message)).collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_full_filter_parses_and_validates() {
    let spec = with_filter(
        r#"
include_prefixes = ["2024/", "2025/"]
exclude_prefixes = ["2024/tmp/"]
min_size = 1
max_size = 5_000_000
storage_classes = ["STANDARD", "STANDARD_IA"]
encryption = "not-sse-kms-bucket-key"
latest_only = true
modified_after = "2024-01-01T00:00:00Z"
modified_before = 2025-01-01T00:00:00+01:00
"#,
    );
    let f = spec.filter.as_ref().unwrap();
    assert_eq!(f.encryption, Some(EncryptionFilter::NotSseKmsBucketKey));
    assert!(f.latest_only);
    // An unquoted TOML date-time is kept as its RFC 3339 text.
    assert_eq!(
        f.modified_before.as_deref(),
        Some("2025-01-01T00:00:00+01:00")
    );
    assert_eq!(problems(&spec), vec![]);
}

#[test]
fn every_filter_problem_names_its_field() {
    let spec = with_filter(
        r#"
include_prefixes = ["", "logs/old/"]
exclude_prefixes = ["logs/"]
min_size = 10
max_size = 5
storage_classes = ["GLACIER", "standard_ia", "COLD"]
modified_after = "2024-06-01T00:00:00Z"
modified_before = "2024-05-01"
"#,
    );
    let p = problems(&spec);
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "filter.include_prefixes",
            "filter.include_prefixes",
            "filter.max_size",
            "filter.storage_classes",
            "filter.storage_classes",
            "filter.storage_classes",
            "filter.modified_before",
        ],
        "{p:#?}"
    );
    let text = |i: usize| p[i].1.as_str();
    assert!(text(0).contains("empty prefix"));
    assert!(text(1).contains("excluded by exclude_prefixes entry \"logs/\""));
    assert!(text(3).contains("restored"));
    assert!(text(4).contains("\"STANDARD_IA\""));
    assert!(text(5).contains("not an S3 storage class"));
    assert!(text(6).contains("RFC 3339"));

    let window = with_filter(
        "modified_after = \"2024-06-01T00:00:00Z\"\nmodified_before = \"2024-06-01T00:00:00Z\"",
    );
    assert_eq!(
        problems(&window)
            .iter()
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>(),
        ["filter.modified_before"]
    );
}

#[test]
fn a_filter_needs_an_inventory_manifest() {
    let text = example()
        .replace("kind = \"inventory\"", "kind = \"csv\"")
        .replace("daily/2026-11-23T01-00Z/manifest.json", "list.csv")
        // A CSV manifest can't be SSE-KMS (a problem of its own, not this test's).
        .replace("list.csv\"\nkms_key_arn", "list.csv\"\n# kms_key_arn");
    let spec =
        TransferSpec::from_toml_str(&format!("{text}\n[filter]\nlatest_only = true\n")).unwrap();
    let p = problems(&spec);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "filter");
}

/// Only an inventory run reads an inventory's rows: a job handed `manifest.json` copies every
/// object it lists, so a filter without `[inventory]` would be silently ignored.
#[test]
fn a_filter_needs_inventory_runs() {
    let spec = TransferSpec::from_toml_str(&format!(
        "{}\n[filter]\nexclude_prefixes = [\"tmp/\"]\n",
        example()
    ))
    .unwrap();
    let p = problems(&spec);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "filter");
    assert!(p[0].1.contains("[inventory]"), "{}", p[0].1);
    assert_eq!(
        problems(&with_filter("exclude_prefixes = [\"tmp/\"]")),
        vec![]
    );
}

#[test]
fn unknown_filter_settings_are_refused_when_parsing() {
    let err = TransferSpec::from_toml_str(&format!("{}\n[filter]\nprefix = \"a\"\n", example()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("prefix"), "{err}");
    let err =
        TransferSpec::from_toml_str(&format!("{}\n[filter]\nencryption = \"kms\"\n", example()))
            .unwrap_err()
            .to_string();
    assert!(err.contains("not-sse-kms-bucket-key"), "{err}");
}

#[test]
fn specs_without_a_filter_keep_their_fingerprint() {
    let plain = TransferSpec::from_toml_str(&example()).unwrap();
    assert!(plain.filter.is_none());
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("filter"), "{json}");

    // An empty [filter] only writes the table itself; a real one changes the transfer.
    let empty = with_filter("");
    let filtered = with_filter("latest_only = true");
    assert_ne!(fingerprint(&plain), fingerprint(&filtered));
    assert_ne!(fingerprint(&empty), fingerprint(&filtered));
    assert_eq!(
        serde_json::to_value(empty.filter.unwrap()).unwrap(),
        serde_json::json!({})
    );
}
