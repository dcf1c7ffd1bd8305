//! `ferry status` and `ferry redrive` as a binary: bad input is refused before any AWS call,
//! with exit 2 and a message naming the argument, its value and the fix. (What they print for
//! real jobs is tested in `commands/status.rs` against an in-memory S3 Control, and the redrive
//! workflow end to end in `functions/job-monitor/tests`.)

use std::process::Command;

fn ferry(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        // No credentials or Region from the host: a call to AWS would fail differently (exit 1).
        .env_clear()
        .output()
        .expect("ferry runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_job_id_that_is_no_job_id_is_refused() {
    for command in ["status", "redrive"] {
        let mut args = vec![command, "../../etc/passwd"];
        if command == "redrive" {
            args.extend(["--state-bucket", "ferry-state"]);
        }
        let (code, stderr) = ferry(&args);
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(
            stderr.contains("JOB_ID = \"../../etc/passwd\": not a Batch Operations job id"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn polling_faster_than_every_30_seconds_is_refused() {
    let (code, stderr) = ferry(&[
        "status",
        "7c1a3e52-0d4b-4c8e-9a55-1f2e3d4c5b6a",
        "--interval",
        "5",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--interval = 5"), "{stderr}");
    assert!(stderr.contains("30"), "{stderr}");
}

#[test]
fn an_account_id_must_be_12_digits() {
    let (code, stderr) = ferry(&[
        "redrive",
        "7c1a3e52-0d4b-4c8e-9a55-1f2e3d4c5b6a",
        "--state-bucket",
        "ferry-state",
        "--account-id",
        "2222",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--account-id = \"2222\""), "{stderr}");
}

#[test]
fn without_a_region_the_fix_is_named() {
    let (code, stderr) = ferry(&["status", "--account-id", "222222222222"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("pass --region"), "{stderr}");
}
