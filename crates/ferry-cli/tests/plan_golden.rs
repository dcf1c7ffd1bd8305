//! Golden tests of `ferry plan`: the JSON contract and the text instructions for every shipped
//! example, byte for byte. After an intended change, regenerate with
//! `FERRY_BLESS=1 cargo test -p ferry-cli --test plan_golden`, review the diff and re-run without
//! the variable. A bless run always fails after writing, so a CI run with `FERRY_BLESS` set can
//! never pass; and one fingerprint is pinned here as a literal, out of reach of a bless.

use std::path::Path;
use std::process::Command;

#[path = "support/examples.rs"]
mod examples;
use examples::{examples, repo_root};

fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("ferry runs")
}

fn blessing() -> bool {
    std::env::var_os("FERRY_BLESS").is_some()
}

/// Compares `actual` with the golden file `name`. In a bless run, writes it instead and
/// returns whether it changed; the caller then fails the test ([`fail_after_blessing`]).
fn check_golden(name: &str, actual: &str) -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if blessing() {
        let changed = std::fs::read_to_string(&path).ok().as_deref() != Some(actual);
        std::fs::write(&path, actual).expect("write golden");
        return changed;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {} (run with FERRY_BLESS=1)",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its golden file at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             (FERRY_BLESS=1 regenerates after an intended change)",
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>")
        );
    }
    false
}

/// A bless run never passes: it has written the files, which a person must review before a
/// run without the variable can pass.
fn fail_after_blessing(written: usize, changed: &[String]) {
    if blessing() {
        panic!(
            "FERRY_BLESS is set: wrote {written} golden file(s) under crates/ferry-cli/tests/golden/, \
             {} of them changed ({changed:?}). Review the diff (git diff), then re-run without \
             FERRY_BLESS: a bless run always fails, so CI can't pass in bless mode.",
            changed.len()
        );
    }
}

#[test]
fn every_example_has_a_json_and_text_golden() {
    let names = examples();
    assert!(
        names.len() >= 5,
        "expected the five shipped examples, found {names:?}"
    );
    let (mut written, mut changed) = (0, Vec::new());
    for example in names {
        let stem = example.trim_end_matches(".toml");
        let spec = format!("examples/{example}");
        for format in ["json", "text"] {
            let out = ferry(&["plan", &spec, "--format", format]);
            assert!(
                out.status.success(),
                "ferry plan {spec} --format {format} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let ext = if format == "json" { "json" } else { "md" };
            let name = format!("{stem}.{ext}");
            if check_golden(&name, &String::from_utf8(out.stdout).expect("utf-8")) {
                changed.push(name);
            }
            written += 1;
        }
    }
    fail_after_blessing(written, &changed);
}

/// The plan fingerprint of one example, as a literal: a change to the fingerprint (what it
/// covers, how it is hashed) changes every deployed plan's identity and job tokens, and must be
/// a deliberate edit of this line, never a side effect of blessing the golden files.
#[test]
fn the_sse_s3_csv_fingerprint_is_pinned() {
    const PINNED: &str = "f645426433022af9f360bea59e905918";
    let out = ferry(&["plan", "examples/sse-s3-csv.toml", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["transfer"]["fingerprint"], PINNED);
    let text = ferry(&["plan", "examples/sse-s3-csv.toml"]);
    let text = String::from_utf8(text.stdout).expect("utf-8");
    assert!(
        text.contains(&format!("plan fingerprint {PINNED}")),
        "the text plan names another fingerprint"
    );
    // The token recipe the text gives uses the same fingerprint.
    assert!(
        text.contains(&format!("printf '%s:%s' {PINNED} ")),
        "{text}"
    );
}

#[test]
fn json_contract_keys_are_present() {
    let out = ferry(&["plan", "examples/kms-inventory.toml", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in [
        "batch_role",
        "source_account",
        "destination_account",
        "create_job",
        "cost_estimate",
        "warnings",
    ] {
        assert!(plan.get(key).is_some(), "missing top-level key {key}");
    }
    for key in ["arn", "trust_policy", "permissions_policy"] {
        assert!(plan["batch_role"].get(key).is_some(), "batch_role.{key}");
    }
    for account in ["source_account", "destination_account"] {
        for key in ["account_id", "bucket_policies", "key_policies"] {
            assert!(plan[account].get(key).is_some(), "{account}.{key}");
        }
        for policies in ["bucket_policies", "key_policies"] {
            for (resource, doc) in plan[account][policies].as_object().expect("map") {
                assert_eq!(
                    doc["Version"], "2012-10-17",
                    "{account}.{policies}.{resource}"
                );
                assert!(doc["Statement"].as_array().is_some_and(|s| !s.is_empty()));
            }
        }
    }
    assert_eq!(
        plan["create_job"]["Manifest"]["Location"]["ETag"],
        "<ManifestETag>"
    );
    assert_eq!(
        plan["create_job"]["ClientRequestToken"],
        "<ClientRequestToken>"
    );
}
