//! Every shell block Ferry tells people to paste, run (issue #16 item 3): the text plan of every
//! example (`ferry plan`) and the stack's two e-mails. Each block runs with bash in its own
//! directory, against a stub `aws` first on PATH (real jq, as `plan_properties` uses it) that
//! records every call and answers as the AWS CLI v2 does, including its errors.
//!
//! - Call N (for every N up to the block's number of calls) fails with an access-denied or a
//!   throttling error: the block must stop there: no call after it, least of all a put.
//! - get-bucket-policy answers NoSuchBucketPolicy, the one legitimate "no policy": the block goes
//!   on and writes Ferry's statements alone.
//! - Nothing fails: each put writes the owner's statements (the stub's current policies carry an
//!   owner Sid) followed by Ferry's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/examples.rs"]
mod examples;
use examples::{examples, repo_root};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_plan::approval::{ApprovalToken, ManifestPin};
use ferry_plan::render::{
    render_instructions_email, render_token_email, ApprovalInstructions, ManifestAsSent,
};
use ferry_plan::stack::ApprovalMode;
use ferry_plan::{Plan, TransferSpec};
use serde_json::Value;

/// The Sid of the statement the stub's current bucket policies hold (the owner's).
const OWNER_BUCKET_SID: &str = "OwnerDenyInsecureTransport";
/// The Sid of the statement the stub's current key policies hold (AWS's default key policy).
const OWNER_KEY_SID: &str = "Enable IAM User Permissions";
/// What stands for the job id the person pastes into the confirm step.
const JOB_ID: &str = "5e8a1d9c-0000-4000-8000-000000000001";

/// The AWS CLI, as far as the blocks use it. Every call is logged (arguments separated by
/// 0x1f, one call a line) before it is answered. Errors are the CLI v2's: a blank line and
/// "An error occurred (Code) when calling the Operation operation: message" on stderr (with
/// " (reached max retries: N)" after "operation" once retries ran out; botocore's
/// ClientError.MSG_TEMPLATE), exit status 254 (AWS CLI User Guide, "Command line return codes
/// in the AWS CLI"); the high-level `s3` commands print "fatal error: ..." and exit 1.
const STUB_AWS: &str = r#"#!/usr/bin/env bash
set -u
service="${1:-}"
op="${2:-}"
( IFS=$'\x1f'; printf '%s\n' "$*" ) >> "$STUB_LOG"
n=$(wc -l < "$STUB_LOG")
arg() {
  local want="$1"
  shift
  while [ $# -gt 0 ]; do
    if [ "$1" = "$want" ]; then printf '%s' "${2:-}"; return; fi
    shift
  done
}
operation=""
IFS='-' read -ra words <<< "$op"
for w in "${words[@]}"; do operation+="${w^}"; done
retries=""
fail() {
  printf '\nAn error occurred (%s) when calling the %s operation%s: %s\n' "$1" "$operation" "$retries" "$2" >&2
  exit 254
}
if [ "${STUB_FAIL_KIND:-denied}" = throttled ]; then retries=" (reached max retries: 2)"; fi
caller="arn:aws:sts::111122223333:assumed-role/admin/someone"
if [ "$n" = "${STUB_FAIL_AT:-0}" ]; then
  case "${STUB_FAIL_KIND:-denied}:$service" in
    *:s3) printf 'fatal error: An error occurred (403) when calling the HeadObject operation: Forbidden\n' >&2; exit 1 ;;
    denied:kms) fail AccessDeniedException "User: $caller is not authorized to perform: kms:$operation on resource: $(arg --key-id "$@") because no resource-based policy allows the kms:$operation action" ;;
    denied:sns) fail AuthorizationError "User: $caller is not authorized to perform: SNS:Publish on resource: $(arg --topic-arn "$@") because no resource-based policy allows the SNS:Publish action" ;;
    denied:*) fail AccessDenied "Access Denied" ;;
    throttled:kms) fail ThrottlingException "Rate exceeded" ;;
    throttled:s3api) fail SlowDown "Please reduce your request rate." ;;
    throttled:*) fail Throttling "Rate exceeded" ;;
  esac
fi
case "$service $op" in
  "s3api get-bucket-policy")
    if [ -n "${STUB_NO_BUCKET_POLICY:-}" ]; then fail NoSuchBucketPolicy "The bucket policy does not exist"; fi
    b=$(arg --bucket "$@")
    printf '{"Version":"2012-10-17","Statement":[{"Sid":"OwnerDenyInsecureTransport","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}\n' "$b" "$b"
    ;;
  "kms get-key-policy")
    printf '{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}\n'
    ;;
  "s3api head-object")
    if [ "$(arg --query "$@")" = ETag ]; then
      printf '"9b2cf535f27731c974343645a3985328"\n'
    else
      printf '[\n    "\\"9b2cf535f27731c974343645a3985328\\"",\n    null\n]\n'
    fi
    ;;
  "s3 cp") printf 'acme-photos-prod,a.jpg\nacme-photos-prod,b.jpg\n' ;;
  "s3api get-object")
    for last in "$@"; do :; done
    printf 'acme-photos-prod,a.jpg\nacme-photos-prod,b.jpg\n' > "$last"
    printf '{"ContentLength": 46, "ContentRange": "bytes 0-45/46", "ETag": "\\"9b2cf535f27731c974343645a3985328\\""}\n'
    ;;
  "s3control create-job") printf '{\n    "JobId": "5e8a1d9c-0000-4000-8000-000000000001"\n}\n' ;;
  "s3control describe-job") printf '{"Job":{"JobId":"5e8a1d9c-0000-4000-8000-000000000001","Status":"Suspended"}}\n' ;;
  "sns publish") printf '{\n    "MessageId": "0f3c1d2e-0000-4000-8000-000000000002"\n}\n' ;;
  "iam get-role")
    if [ -n "${STUB_NO_ROLE:-}" ]; then fail NoSuchEntity "The role with name $(arg --role-name "$@") cannot be found."; fi
    # --query "Role.Tags[?Key=='ferry:role'].Value | [0]" --output text
    if [ -n "${STUB_FOREIGN_ROLE:-}" ]; then printf 'None\n'; else printf 'batch-operations\n'; fi
    ;;
  "iam create-role") printf '{"Role":{"RoleName":"%s"}}\n' "$(arg --role-name "$@")" ;;
esac
exit 0
"#;

/// The ```bash blocks of a Markdown text, without their fences.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line) {
            (None, "```bash") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```bash block");
    blocks
}

/// Every shell block Ferry prints or e-mails, each once, with where it was first seen.
fn all_blocks() -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let mut add = |source: String, markdown: &str| {
        let found = shell_blocks(markdown);
        assert!(!found.is_empty(), "{source} has no shell block");
        for (i, block) in found.into_iter().enumerate() {
            blocks
                .entry(block)
                .or_insert_with(|| format!("{source}, block {}", i + 1));
        }
    };
    let pin = ManifestPin {
        etag: "9b2cf535f27731c974343645a3985328".into(),
        version_id: Some("3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY".into()),
        size: Some(62),
        last_modified: Some("2026-11-24T01:00:00Z".into()),
    };
    let token = ApprovalToken::from_random_bytes([0xab; 32]);
    for example in examples() {
        let path = format!("examples/{example}");
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["plan", &path])
            .current_dir(repo_root())
            .output()
            .expect("ferry runs");
        assert!(
            out.status.success(),
            "ferry plan {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        add(
            format!("`ferry plan {path}`"),
            &String::from_utf8(out.stdout).expect("utf-8"),
        );

        let text = std::fs::read_to_string(repo_root().join(&path)).expect("example readable");
        let spec = TransferSpec::from_toml_str(&text).expect("example parses");
        let plan = Plan::build(&spec).expect("example plans");
        for (mode, wait_deadline) in [
            (ApprovalMode::Wait, Some(1_795_500_000)),
            (ApprovalMode::Deferred, None),
        ] {
            let approval = ApprovalInstructions {
                topic_arn: "arn:aws:sns:eu-west-1:222222222222:ferry-approvals",
                mode,
                wait_deadline,
                manifest: ManifestAsSent::Pinned(&pin),
            };
            add(
                format!("the instructions e-mail of {path} ({mode:?})"),
                &render_instructions_email(&plan, &spec, &approval).body,
            );
            add(
                format!("the approval-token e-mail of {path} ({mode:?})"),
                &render_token_email(&plan, &approval, &token).body,
            );
        }
    }
    blocks
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Call N (from 1) fails; `throttled` picks a throttling error over an access denial.
    FailAt {
        call: usize,
        throttled: bool,
    },
    /// Every get-bucket-policy answers NoSuchBucketPolicy.
    NoBucketPolicy,
    /// Every get-role answers NoSuchEntity.
    NoRole,
    /// The role exists without Ferry's `ferry:role` tag.
    ForeignRole,
}

struct Run {
    dir: PathBuf,
    success: bool,
    stderr: String,
    calls: Vec<Vec<String>>,
}

impl Run {
    fn file(&self, name: &str) -> Value {
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} unreadable: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()))
    }

    /// The one file of the block's directory whose name starts with `ferry-` and ends with
    /// `suffix`: the statements the block merges in.
    fn ferry_file(&self, suffix: &str) -> Value {
        let names: Vec<String> = std::fs::read_dir(&self.dir)
            .expect("run directory")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ferry-") && n.ends_with(suffix))
            .collect();
        assert_eq!(names.len(), 1, "Ferry's file *{suffix}: {names:?}");
        self.file(&names[0])
    }

    fn describe(&self) -> String {
        let calls: Vec<String> = self.calls.iter().map(|c| c.join(" ")).collect();
        format!("calls: {calls:#?}\nstderr: {}", self.stderr)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Puts the stub `aws` into `dir/bin` and returns that directory.
fn install_stub(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("stub dir");
    let aws = bin.join("aws");
    std::fs::write(&aws, STUB_AWS).expect("write stub");
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

fn run(block: &str, fault: Fault) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ferry-shell-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("run dir");
    // The confirm step's job id is for the person to fill in.
    let script = block
        .replace("<JobId from the job-started message>", JOB_ID)
        .replace("<JobId>", JOB_ID);
    std::fs::write(dir.join("block.sh"), script).expect("write block");
    let log = dir.join("aws-calls.log");
    let path = format!(
        "{}:{}",
        install_stub(&dir).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .arg("block.sh")
        .current_dir(&dir)
        .env("PATH", path)
        .env("STUB_LOG", &log)
        .env_remove("STUB_FAIL_AT")
        .env_remove("STUB_NO_BUCKET_POLICY")
        .env_remove("STUB_NO_ROLE")
        .env_remove("STUB_FOREIGN_ROLE");
    match fault {
        Fault::None => {}
        Fault::FailAt { call, throttled } => {
            command.env("STUB_FAIL_AT", call.to_string()).env(
                "STUB_FAIL_KIND",
                if throttled { "throttled" } else { "denied" },
            );
        }
        Fault::NoBucketPolicy => {
            command.env("STUB_NO_BUCKET_POLICY", "1");
        }
        Fault::NoRole => {
            command.env("STUB_NO_ROLE", "1");
        }
        Fault::ForeignRole => {
            command.env("STUB_FOREIGN_ROLE", "1");
        }
    }
    let out = command.output().expect("bash runs");
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\u{1f}').map(str::to_string).collect())
        .collect();
    Run {
        dir,
        success: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls,
    }
}

/// Reads change nothing; every other call (put, create, update, delete, publish) does.
fn changes_something(call: &[String]) -> bool {
    let op = call.get(1).map(String::as_str).unwrap_or_default();
    let read = ["get-", "head-", "describe-", "list-"]
        .iter()
        .any(|p| op.starts_with(p))
        || (call.first().map(String::as_str) == Some("s3")
            && op == "cp"
            && call.last().map(String::as_str) == Some("-"));
    !read
}

fn option<'a>(call: &'a [String], name: &str) -> Option<&'a str> {
    let at = call.iter().position(|a| a == name)?;
    call.get(at + 1).map(String::as_str)
}

fn sids(policy: &Value) -> Vec<String> {
    policy["Statement"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|st| st["Sid"].as_str().unwrap_or("<no Sid>").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks every put of a finished run: the merged document holds the owner's statement (when
/// `owner_sid` is given) followed by exactly Ferry's statements.
fn check_puts(run: &Run, source: &str, owner_bucket_sid: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    for call in &run.calls {
        let (suffix, owner) = match call.get(1).map(String::as_str) {
            Some("put-bucket-policy") => (
                format!(
                    "-bucket-{}.json",
                    option(call, "--bucket").unwrap_or_default()
                ),
                owner_bucket_sid,
            ),
            Some("put-key-policy") => {
                let key = option(call, "--key-id").unwrap_or_default();
                let id = key.rsplit('/').next().unwrap_or(key);
                (format!("-key-{id}.json"), Some(OWNER_KEY_SID))
            }
            _ => continue,
        };
        let Some(file) = option(call, "--policy").and_then(|p| p.strip_prefix("file://")) else {
            problems.push(format!(
                "{source}: a put without --policy file://: {call:?}"
            ));
            continue;
        };
        let written = run.file(file);
        let ferry = run.ferry_file(&suffix);
        let mut expected: Vec<Value> = owner
            .map(|sid| vec![Value::String(sid.to_string())])
            .unwrap_or_default();
        expected.extend(sids(&ferry).into_iter().map(Value::String));
        let got: Vec<Value> = sids(&written).into_iter().map(Value::String).collect();
        if got != expected || written["Version"] != "2012-10-17" {
            problems.push(format!(
                "{source}: {} wrote Sids {got:?}, expected {expected:?}",
                call.join(" ")
            ));
        }
        let theirs = written["Statement"].as_array().cloned().unwrap_or_default();
        let ours = ferry["Statement"].as_array().cloned().unwrap_or_default();
        if !theirs.ends_with(&ours) {
            problems.push(format!(
                "{source}: {file} does not end with Ferry's statements as planned"
            ));
        }
    }
    problems
}

fn require_jq() {
    let jq = Command::new("jq").arg("--version").output();
    assert!(
        jq.is_ok_and(|o| o.status.success()),
        "jq is needed to run the plan's merge commands (it is part of the machine image)"
    );
}

#[test]
fn every_shell_block_runs_in_a_subshell_under_set_euo_pipefail() {
    for (block, source) in all_blocks() {
        let lines: Vec<&str> = block.lines().collect();
        assert!(
            lines.len() >= 3
                && lines[0] == "("
                && lines[1] == "set -euo pipefail"
                && lines[lines.len() - 1] == ")",
            "{source} does not run in a subshell under `set -euo pipefail`:\n{block}"
        );
    }
}

#[test]
fn a_block_stops_at_its_first_failed_call_and_writes_nothing_after_it() {
    require_jq();
    let mut problems = Vec::new();
    let mut failures_tried = 0;
    for (block, source) in all_blocks() {
        let clean = run(&block, Fault::None);
        if !clean.success {
            problems.push(format!(
                "{source} fails with nothing failing:\n{}",
                clean.describe()
            ));
            continue;
        }
        for call in 1..=clean.calls.len() {
            for throttled in [false, true] {
                failures_tried += 1;
                let r = run(&block, Fault::FailAt { call, throttled });
                let failed = r.calls.get(call - 1).map(|c| c.join(" "));
                let after = r.calls.get(call..).unwrap_or_default();
                let writes_after: Vec<String> = after
                    .iter()
                    .filter(|c| changes_something(c))
                    .map(|c| c.join(" "))
                    .collect();
                if !writes_after.is_empty() {
                    problems.push(format!(
                        "{source}: after call {call} failed ({failed:?}, throttled: {throttled}), the \
                         block still made {writes_after:#?}"
                    ));
                } else if !after.is_empty() || r.success {
                    problems.push(format!(
                        "{source}: call {call} failed ({failed:?}) but the block went on (exit \
                         success: {}):\n{}",
                        r.success,
                        r.describe()
                    ));
                }
            }
        }
    }
    assert!(failures_tried > 50, "only {failures_tried} failures tried");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn a_bucket_without_a_policy_gets_ferrys_statements_alone() {
    require_jq();
    let mut problems = Vec::new();
    let mut buckets = 0;
    for (block, source) in all_blocks() {
        if !block.contains("get-bucket-policy") {
            continue;
        }
        let r = run(&block, Fault::NoBucketPolicy);
        let puts = r
            .calls
            .iter()
            .filter(|c| c.get(1).map(String::as_str) == Some("put-bucket-policy"))
            .count();
        let gets = r
            .calls
            .iter()
            .filter(|c| c.get(1).map(String::as_str) == Some("get-bucket-policy"))
            .count();
        buckets += puts;
        if !r.success || puts == 0 || puts != gets {
            problems.push(format!(
                "{source}: with NoSuchBucketPolicy the block should write each bucket's policy \
                 ({gets} read, {puts} written, success: {}):\n{}",
                r.success,
                r.describe()
            ));
            continue;
        }
        if r.stderr.contains("NoSuchBucketPolicy") {
            problems.push(format!(
                "{source}: the expected NoSuchBucketPolicy reached the terminal: {}",
                r.stderr
            ));
        }
        problems.extend(check_puts(&r, &source, None));
    }
    assert!(buckets >= 6, "only {buckets} bucket policies written");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn a_clean_run_writes_the_owners_statements_and_ferrys() {
    require_jq();
    let mut problems = Vec::new();
    let (mut bucket_puts, mut key_puts, mut jobs) = (0, 0, 0);
    for (block, source) in all_blocks() {
        let r = run(&block, Fault::None);
        if !r.success {
            problems.push(format!(
                "{source} fails with nothing failing:\n{}",
                r.describe()
            ));
            continue;
        }
        for call in &r.calls {
            match call.get(1).map(String::as_str) {
                Some("put-bucket-policy") => bucket_puts += 1,
                Some("put-key-policy") => key_puts += 1,
                Some("create-job") => {
                    jobs += 1;
                    // The request the block fills in: the manifest's ETag and the token.
                    let file = option(call, "--cli-input-json")
                        .and_then(|f| f.strip_prefix("file://"))
                        .unwrap_or_default();
                    let request = r.file(file);
                    if request["Manifest"]["Location"]["ETag"] != "9b2cf535f27731c974343645a3985328"
                        || request["ClientRequestToken"]
                            .as_str()
                            .is_none_or(|t| t.len() != 64)
                    {
                        problems.push(format!("{source}: create-job with {request}"));
                    }
                }
                _ => {}
            }
        }
        problems.extend(check_puts(&r, &source, Some(OWNER_BUCKET_SID)));
    }
    assert!(
        bucket_puts >= 6 && key_puts >= 3 && jobs >= 1,
        "{bucket_puts} bucket policies, {key_puts} key policies, {jobs} jobs"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// #16 review: the role step creates the role when IAM says NoSuchEntity, and updates the role
/// it made when the step is run again after a spec change (CreateRole would fail with
/// EntityAlreadyExists and, under `set -e`, leave the old permissions in place).
#[test]
fn the_role_step_creates_a_missing_role_and_updates_an_existing_one() {
    let mut problems = Vec::new();
    let mut role_blocks = 0;
    for (block, source) in all_blocks() {
        if !block.contains("iam get-role") {
            continue;
        }
        role_blocks += 1;
        let ops = |r: &Run| -> Vec<String> {
            r.calls
                .iter()
                .filter(|c| c.first().map(String::as_str) == Some("iam"))
                .filter_map(|c| c.get(1).cloned())
                .collect()
        };
        let missing = run(&block, Fault::NoRole);
        let existing = run(&block, Fault::None);
        let foreign = run(&block, Fault::ForeignRole);
        if foreign.success || ops(&foreign) != ["get-role"] {
            problems.push(format!(
                "{source}: a role of that name that isn't Ferry's must be left alone: {:?}\n{}",
                ops(&foreign),
                foreign.describe()
            ));
        }
        if let Some(create) = missing
            .calls
            .iter()
            .find(|c| c.get(1).map(String::as_str) == Some("create-role"))
        {
            if option(create, "--tags") != Some("Key=ferry:role,Value=batch-operations") {
                problems.push(format!(
                    "{source}: create-role without Ferry's tag: {create:?}"
                ));
            }
        }
        let want_missing = ["get-role", "create-role", "put-role-policy"];
        let want_existing = ["get-role", "update-assume-role-policy", "put-role-policy"];
        if !missing.success || ops(&missing) != want_missing {
            problems.push(format!(
                "{source}: no role yet: {:?}\n{}",
                ops(&missing),
                missing.describe()
            ));
        }
        if !existing.success || ops(&existing) != want_existing {
            problems.push(format!(
                "{source}: the role exists: {:?}\n{}",
                ops(&existing),
                existing.describe()
            ));
        }
    }
    assert!(role_blocks >= 6, "only {role_blocks} role steps");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// #16 review: the text plan's merge refuses, as `ferry grant` does, a statement under Ferry's
/// Sid that is not an Allow (someone's Deny there would otherwise be replaced by Ferry's
/// Allow); an owner's statement under another Sid is kept.
#[test]
fn the_merge_refuses_a_deny_under_ferrys_sid_and_keeps_the_owners_statements() {
    require_jq();
    let dir = std::env::temp_dir().join(format!("ferry-jq-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ours = r#"{"Version":"2012-10-17","Statement":[{"Sid":"FerryXReadSourceObjects","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/ferry-x-batch"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::src/*"}]}"#;
    std::fs::write(dir.join("ours.json"), ours).expect("write");
    let merge = |current: &str| {
        std::fs::write(dir.join("current.json"), current).expect("write");
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{} current.json ours.json",
                ferry_plan::render::JQ_MERGE_BY_SID
            ))
            .current_dir(&dir)
            .output()
            .expect("bash runs")
    };
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Sid":"FerryXReadSourceObjects","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::src/secret/*"}]}"#;
    let refused = merge(deny);
    assert!(
        !refused.status.success(),
        "a Deny under Ferry's Sid is refused"
    );
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("FerryXReadSourceObjects"));

    // Another role's Allow under the Sid (another transfer whose Sid collides), and a case twin.
    for taken in [
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"FerryXReadSourceObjects","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/ferry-x-2024-batch"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::src/*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"ferryxreadsourceobjects","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::src/*"}]}"#,
    ] {
        let refused = merge(taken);
        assert!(!refused.status.success(), "{taken}");
        assert!(refused.stdout.is_empty());
    }
    // A statement without a Sid, and a lone Statement object, are kept.
    let lone = merge(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::src/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#,
    );
    assert!(
        lone.status.success(),
        "{}",
        String::from_utf8_lossy(&lone.stderr)
    );
    let lone: Value = serde_json::from_slice(&lone.stdout).expect("JSON");
    assert_eq!(lone["Statement"].as_array().map(Vec::len), Some(2));

    let owner_and_old_ferry = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Owner","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::src/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}},{"Sid":"FerryXReadSourceObjects","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/ferry-x-batch"},"Action":"s3:GetObjectVersion","Resource":"arn:aws:s3:::src/*"}]}"#;
    let merged = merge(owner_and_old_ferry);
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let merged: Value = serde_json::from_slice(&merged.stdout).expect("JSON");
    assert_eq!(sids(&merged), ["Owner", "FerryXReadSourceObjects"]);
    assert_eq!(merged["Statement"][1]["Action"], "s3:GetObject");
    let _ = std::fs::remove_dir_all(&dir);
}
