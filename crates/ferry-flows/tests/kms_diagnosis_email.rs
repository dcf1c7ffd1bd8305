//! Issue #16 item 2: the job e-mail's fix for a KMS denial names the account whose key refused.
//! AWS's message names the caller (the job role's STS session) before the key, so the key has
//! to be found among all the ARNs; the kms-inventory example has a source key (account
//! 111111111111) and a destination key (account 222222222222).

use std::path::Path;

use ferry_flows::report::diagnosis::Cause;
use ferry_flows::report::jobs::{JobInfo, JobOperationKind};
use ferry_flows::report::summary::{FailureTally, JobSummary, SummaryInput};
use ferry_listings::report::results::{TaskResult, TaskStatus};
use ferry_plan::TransferSpec;

fn kms_inventory() -> TransferSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kms-inventory.toml");
    let text = std::fs::read_to_string(path).expect("example readable");
    TransferSpec::from_toml_str(&text).expect("example parses")
}

/// A failed task with AWS's access-denied message shape (IAM User Guide, "Troubleshoot access
/// denied error messages"): caller ARN first, then the key.
fn refused(action: &str, key: &str, object: &str) -> TaskResult {
    TaskResult {
        bucket: "acme-ledger-prod".into(),
        key: object.into(),
        key_as_reported: None,
        version_id: None,
        status: TaskStatus::Failed,
        error_code: "AccessDenied".into(),
        http_status: Some(403),
        message: format!(
            "User: arn:aws:sts::222222222222:assumed-role/ferry-ledger-batch/s3-batch-operations_1795500000000 \
             is not authorized to perform: {action} on resource: {key} because no resource-based \
             policy allows the {action} action"
        ),
    }
}

fn email(spec: &TransferSpec, tasks: Vec<TaskResult>) -> (Vec<Cause>, String) {
    let mut tally = FailureTally::default();
    let failed = tasks.len() as u64;
    for task in tasks {
        tally.add(task, Some(spec));
    }
    let job = JobInfo {
        job_id: "5e8a1d9c-0000-4000-8000-000000000001".into(),
        job_arn: None,
        status: "Complete".into(),
        description: None,
        operation: JobOperationKind::Copy,
        total_tasks: Some(10),
        succeeded_tasks: Some(10 - failed),
        failed_tasks: Some(failed),
        active_seconds: Some(60),
        created_unix: None,
        terminated_unix: None,
        failure_reasons: vec![],
        status_update_reason: None,
        suspended_cause: None,
        report: None,
        role_arn: None,
        priority: 50,
        manifest: None,
    };
    let summary = JobSummary::build(
        SummaryInput {
            job: &job,
            transfer_name: Some("ledger"),
            spec: Some(spec),
            report: None,
            bytes: None,
            now_unix: 1_795_500_000,
            breakdown_uri: None,
            redrive: None,
        },
        &tally,
    );
    let causes = summary.causes.iter().map(|g| g.cause).collect();
    (causes, summary.email().1)
}

#[test]
fn a_refused_destination_key_is_fixed_in_the_destination_account_not_the_source() {
    let spec = kms_inventory();
    let dst_key = spec
        .destination
        .kms_key_arn
        .clone()
        .expect("destination key");
    let src_key = spec.source.kms_key_arn.clone().expect("source key");
    // kms:Decrypt on the destination key (a multipart copy reads back its parts): nothing but
    // the key ARN, after the caller's, says which side refused.
    let (causes, body) = email(&spec, vec![refused("kms:Decrypt", &dst_key, "a.csv")]);
    assert_eq!(causes, vec![Cause::DestinationKeyDenied], "{body}");
    let fix = body
        .lines()
        .find(|l| l.trim_start().starts_with("Fix:"))
        .unwrap_or_else(|| panic!("no fix in {body}"));
    assert!(
        fix.contains(&format!(
            "the key policy of {dst_key} in the destination account 222222222222"
        )),
        "{fix}"
    );
    assert!(fix.contains("--side destination"), "{fix}");
    assert!(
        !fix.contains(&src_key) && !fix.contains("111111111111"),
        "the fix sends people to the source account: {fix}"
    );
}

#[test]
fn a_refused_source_key_is_still_fixed_in_the_source_account() {
    let spec = kms_inventory();
    let src_key = spec.source.kms_key_arn.clone().expect("source key");
    let (causes, body) = email(&spec, vec![refused("kms:Decrypt", &src_key, "b.csv")]);
    assert_eq!(causes, vec![Cause::SourceKeyDenied], "{body}");
    assert!(
        body.contains(&format!(
            "the key policy of {src_key} in the source account 111111111111"
        )),
        "{body}"
    );
    assert!(body.contains("--side source"), "{body}");
}

/// #16 review: a refused kms:Decrypt names no key ("on the resource associated with this
/// ciphertext", as KMS words it). A Copy job's single-request copy decrypts only with the
/// source key: that is the diagnosis. The large-object copier's multipart copy decrypts with
/// both keys, so its e-mail names both and both grant commands, and sends nobody to one
/// account on a guess.
#[test]
fn a_decrypt_refusal_that_names_no_key_is_not_pinned_on_one_account() {
    let ciphertext_denial = |step: &str| {
        TaskResult {
        message: format!(
            "{step}User: arn:aws:sts::222222222222:assumed-role/ferry-ledger-batch/s3-batch-operations_1795500000000 \
             is not authorized to perform: kms:Decrypt on the resource associated with this ciphertext \
             because no identity-based policy allows the kms:Decrypt action"
        ),
        ..refused("kms:Decrypt", "", "2026/a.pdf")
    }
    };
    let copier =
        "UploadPartCopy (s3:GetObject on the source, s3:PutObject on the destination) for \
                  s3://acme-ledger-prod/2026/a.pdf: AccessDenied: ";
    let spec = kms_inventory();
    let (causes, body) = email(&spec, vec![ciphertext_denial(copier)]);
    assert_eq!(causes, [Cause::EitherKeyDenied]);
    for part in [
        "arn:aws:kms:eu-west-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011",
        "arn:aws:kms:eu-west-1:222222222222:key/9a8b7c6d-5e4f-4321-9876-fedcba987654",
        "--side source",
        "--side destination",
    ] {
        assert!(body.contains(part), "{part}:\n{body}");
    }
    // The Copy job's own refusal: the source key.
    let (causes, _) = email(&spec, vec![ciphertext_denial("")]);
    assert_eq!(causes, [Cause::SourceKeyDenied]);
    // No destination key: the source key, whatever the step.
    let mut only_source = spec;
    only_source.destination.kms_key_arn = None;
    let (causes, _) = email(&only_source, vec![ciphertext_denial(copier)]);
    assert_eq!(causes, [Cause::SourceKeyDenied]);
}
