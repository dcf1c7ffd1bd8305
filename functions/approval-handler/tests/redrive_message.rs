//! The approval topic's redrive action (`events/approval-handler-redrive.json`): routed to
//! the redrive workflow for the account and region of the approval topic, never to the token
//! path, and its refusal e-mailed. (The redrive itself is proven end to end in
//! `functions/job-monitor/tests/job_events.rs`.)

use std::path::Path;
use std::sync::{Arc, Mutex};

use approval_handler::{ApprovalHandler, Handled};
use aws_sdk_s3control::operation::describe_job::{DescribeJobInput, DescribeJobOutput};
use aws_sdk_s3control::operation::get_job_tagging::GetJobTaggingOutput;
use aws_sdk_s3control::types::{JobDescriptor, JobStatus, S3Tag};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ferry_aws::AwsPorts;
use ferry_flows::aws_error::RetryPolicy;
use ferry_plan::approval::ApprovalToken;
use ferry_testkit::{s3_client, Inbox, MotoServer};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

const JOB_ID: &str = "7c1a3e52-0d4b-4c8e-9a55-1f2e3d4c5b6a";

fn no_token() -> Option<ApprovalToken> {
    Some(ApprovalToken::from_random_bytes([9; 32]))
}

fn now() -> u64 {
    1_795_500_000
}

#[tokio::test]
async fn redrive_of_a_running_job_is_refused_and_said() {
    let moto = MotoServer::start();
    let config = moto.sdk_config("us-east-1").await;
    let s3 = s3_client(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    s3.create_bucket()
        .bucket("ferry-state")
        .send()
        .await
        .unwrap();
    let topic_arn = sns
        .create_topic()
        .name("ferry-notifications")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let inbox = Inbox::subscribe(&config, &topic_arn, "inbox").await;

    let tags = mock!(aws_sdk_s3control::Client::get_job_tagging).then_output(|| {
        GetJobTaggingOutput::builder()
            .tags(
                S3Tag::builder()
                    .key("ferry:transfer")
                    .value("photos")
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let asked: Arc<Mutex<Vec<DescribeJobInput>>> = Arc::default();
    let recorder = asked.clone();
    let describe = mock!(aws_sdk_s3control::Client::describe_job)
        .match_requests(move |input| {
            recorder.lock().unwrap().push(input.clone());
            true
        })
        .then_output(|| {
            DescribeJobOutput::builder()
                .job(
                    JobDescriptor::builder()
                        .job_id(JOB_ID)
                        .status(JobStatus::Active)
                        .build(),
                )
                .build()
        });
    let create = mock!(aws_sdk_s3control::Client::create_job).then_output(|| unreachable!());
    let results = handle_redrive_fixture(
        &config,
        &s3,
        topic_arn,
        "eu-west-1",
        &[&tags, &describe, &create],
    )
    .await;
    let refusal = results[0].clone().unwrap_err();
    assert!(
        refusal.contains("is Active: only a finished job"),
        "{refusal}"
    );
    // The job of the approval topic's account, asked about once; nothing created.
    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        (asked[0].account_id(), asked[0].job_id()),
        (Some("222222222222"), Some(JOB_ID))
    );
    assert_eq!(create.num_calls(), 0);
    // No approval state was touched (a redrive spends no token).
    let listed = s3
        .list_objects_v2()
        .bucket("ferry-state")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty());
    let mail = inbox.messages().await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(mail[0].contains(&refusal), "{mail:?}");
}

/// What a redrive message does for a finished job that DescribeJob shows running as `role_arn`
/// with `failed` failed tasks, tagged for transfer `transfer` and this plan, when the plan is
/// approved and the job's report lists two failed rows: the refusal (or the outcome) and how
/// many jobs were created.
async fn redrive_of(
    transfer: &str,
    role_arn: &str,
    failed: i64,
    recorded: bool,
) -> (Result<String, String>, usize) {
    redrive_with_current_plan(transfer, role_arn, failed, recorded, None).await
}

/// [`redrive_of`] with the stack's current plan recorded (`plans/current.json`) as `current`:
/// `Some(None)` names the job's own plan, `Some(Some(other))` another; `None` records none.
async fn redrive_with_current_plan(
    transfer: &str,
    role_arn: &str,
    failed: i64,
    recorded: bool,
    current: Option<Option<&str>>,
) -> (Result<String, String>, usize) {
    use aws_sdk_s3control::types::{
        JobProgressSummary, JobReport, JobReportFormat, JobReportScope,
    };
    let moto = MotoServer::start();
    let config = moto.sdk_config("us-east-1").await;
    let s3 = s3_client(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    for bucket in ["ferry-state", "ferry-reports"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let put = |bucket: &'static str, key: String, body: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    };
    // The plan (examples/kms-inventory.toml: transfer "ledger", role ferry-ledger-batch), stored
    // and approved.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kms-inventory.toml");
    let spec =
        ferry_plan::spec::TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap())
            .unwrap();
    let fingerprint = ferry_plan::plan::Plan::build(&spec)
        .unwrap()
        .transfer
        .fingerprint;
    let stored = ferry_flows::workflow::StoredPlan {
        fingerprint: fingerprint.clone(),
        spec,
    };
    put(
        "ferry-state",
        format!("plans/{fingerprint}.json"),
        serde_json::to_vec(&stored).unwrap(),
    )
    .await;
    let decision = serde_json::json!({"decision": "approve", "plan_fingerprint": fingerprint, "at_unix": now()});
    put(
        "ferry-state",
        format!("decisions/{fingerprint}.json"),
        decision.to_string().into_bytes(),
    )
    .await;
    if let Some(current) = current {
        let current = serde_json::json!({
            "fingerprint": current.unwrap_or(&fingerprint),
            "recorded_unix": now(),
        });
        put(
            "ferry-state",
            "plans/current.json".to_string(),
            current.to_string().into_bytes(),
        )
        .await;
    }
    // Ferry launched the job for this plan (every launch records it).
    if recorded {
        put(
            "ferry-state",
            format!("jobs/{fingerprint}/{JOB_ID}.json"),
            b"{}".to_vec(),
        )
        .await;
    }
    // Its completion report: two failed tasks.
    let prefix = format!("ferry/ledger/job-{JOB_ID}");
    let results = format!("{prefix}/results/0f1e.csv");
    let report = serde_json::json!({
        "Format": "Report_CSV_20180820",
        "ReportCreationDate": "2026-11-23T18:04:11.207Z",
        "Results": [{"TaskExecutionStatus": "failed", "Bucket": "ferry-reports", "MD5Checksum": "00", "Key": results}],
        "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    });
    put(
        "ferry-reports",
        format!("{prefix}/manifest.json"),
        report.to_string().into_bytes(),
    )
    .await;
    let rows = "\"acme-ledger-prod\",\"a.pdf\",\"\",\"failed\",\"403\",\"AccessDenied\",\"Access Denied\"\n\
                \"acme-ledger-prod\",\"b.pdf\",\"\",\"failed\",\"403\",\"AccessDenied\",\"Access Denied\"\n";
    put("ferry-reports", results, rows.as_bytes().to_vec()).await;
    let topic_arn = sns
        .create_topic()
        .name("ferry-notifications")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();

    let tag = |k: &str, v: &str| S3Tag::builder().key(k).value(v).build().unwrap();
    let tags_out = GetJobTaggingOutput::builder()
        .tags(tag("ferry:transfer", transfer))
        .tags(tag("ferry:plan", &fingerprint))
        .build();
    let tags =
        mock!(aws_sdk_s3control::Client::get_job_tagging).then_output(move || tags_out.clone());
    let job = JobDescriptor::builder()
        .job_id(JOB_ID)
        .status(JobStatus::Complete)
        .role_arn(role_arn)
        .progress_summary(
            JobProgressSummary::builder()
                .total_number_of_tasks(10)
                .number_of_tasks_succeeded(10 - failed)
                .number_of_tasks_failed(failed)
                .build(),
        )
        .report(
            JobReport::builder()
                .bucket("arn:aws:s3:::ferry-reports")
                .format(JobReportFormat::ReportCsv20180820)
                .enabled(true)
                .prefix("ferry/ledger")
                .report_scope(JobReportScope::AllTasks)
                .build(),
        )
        .build();
    let describe = mock!(aws_sdk_s3control::Client::describe_job)
        .then_output(move || DescribeJobOutput::builder().job(job.clone()).build());
    let create = mock!(aws_sdk_s3control::Client::create_job).then_output(|| unreachable!());
    let results = handle_redrive_fixture(
        &config,
        &s3,
        topic_arn,
        "us-east-1",
        &[&tags, &describe, &create],
    )
    .await;
    let outcome = results[0].clone().map(|o| format!("{o:?}"));
    (outcome, create.num_calls())
}

/// Job tags are anyone's to set (s3:PutJobTagging): a finished job of another transfer,
/// re-tagged with this plan's transfer and fingerprint, runs as another role, and is never
/// redriven with this plan's settings.
#[tokio::test]
async fn a_job_of_another_role_tagged_with_this_plan_is_not_redriven() {
    let (outcome, created) = redrive_of(
        "ledger",
        "arn:aws:iam::222222222222:role/ferry-other-batch",
        2,
        true,
    )
    .await;
    let refusal = outcome.unwrap_err();
    assert!(refusal.contains("is not one of this plan's"), "{refusal}");
    assert!(refusal.contains("ferry-other-batch"), "{refusal}");
    assert_eq!(created, 0);
}

/// The completion report lives where others may write: cut to fewer failed rows than S3 counted,
/// it is refused whole (a partial redrive would be recorded and make the rest "already
/// redriven").
#[tokio::test]
async fn a_report_with_fewer_failed_rows_than_the_job_counted_is_not_redriven() {
    let (outcome, created) = redrive_of(
        "ledger",
        "arn:aws:iam::222222222222:role/ferry-ledger-batch",
        3,
        true,
    )
    .await;
    let refusal = outcome.unwrap_err();
    assert!(
        refusal.contains("lists 2 failed task(s), but S3 counted 3"),
        "{refusal}"
    );
    assert_eq!(created, 0);
}

/// The same job with S3's count and its own role gets past both checks (to the manifest, which
/// this job has none of): the refusals above are the checks', not the set-up's.
#[tokio::test]
async fn the_plans_own_job_with_a_whole_report_passes_both_checks() {
    let (outcome, created) = redrive_of(
        "ledger",
        "arn:aws:iam::222222222222:role/ferry-ledger-batch",
        2,
        true,
    )
    .await;
    let refusal = outcome.unwrap_err();
    assert!(refusal.contains("names no manifest object"), "{refusal}");
    assert_eq!(created, 0);
}

/// approval-handler's answers to the redrive fixture (`events/approval-handler-redrive.json`),
/// with S3 Control answering by `rules` and the approval topic in `topic_region`.
async fn handle_redrive_fixture(
    config: &aws_config::SdkConfig,
    s3: &aws_sdk_s3::Client,
    topic_arn: String,
    topic_region: &str,
    rules: &[&aws_smithy_mocks::Rule],
) -> Vec<Result<ferry_flows::workflow::ApprovalOutcome, String>> {
    let ports = AwsPorts::from_config(config, "ferry-state".to_string(), topic_arn).with_clients(
        s3.clone(),
        mock_client!(aws_sdk_s3control, RuleMode::MatchAny, rules, |c| c
            .retry_config(
                aws_sdk_s3control::config::retry::RetryConfig::disabled()
            )),
    );
    let handler = ApprovalHandler {
        ports,
        approval_topic_arn: format!(
            "arn:aws:sns:{topic_region}:222222222222:ferry-ApprovalTopic-AbCd1234"
        ),
        approvers: Vec::new(),
        retry: RetryPolicy::default(),
        clock: now,
        new_token: no_token,
    };
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/approval-handler-redrive.json");
    let event: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let handled = handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let Handled::Messages(results) = handled else {
        panic!("{handled:?}")
    };
    results
}

/// A job of this transfer's role, tagged with this plan, that Ferry never recorded as launched
/// for it (an earlier plan's job, re-tagged) is not redriven under this plan.
#[tokio::test]
async fn a_job_ferry_did_not_record_for_the_plan_is_not_redriven() {
    let (outcome, created) = redrive_of(
        "ledger",
        "arn:aws:iam::222222222222:role/ferry-ledger-batch",
        2,
        false,
    )
    .await;
    let refusal = outcome.unwrap_err();
    assert!(
        refusal.contains("is not recorded as launched for plan"),
        "{refusal}"
    );
    assert_eq!(created, 0);
}

/// #15 items 2 and 5: a job of a plan the stack has since replaced (approved, launched, recorded,
/// its own role and report) is not redriven: a replaced plan copies nothing more.
#[tokio::test]
async fn a_job_of_a_plan_the_stack_replaced_is_not_redriven() {
    let other = "0123456789abcdef0123456789abcdef";
    let (outcome, created) = redrive_with_current_plan(
        "ledger",
        "arn:aws:iam::222222222222:role/ferry-ledger-batch",
        2,
        true,
        Some(Some(other)),
    )
    .await;
    let refusal = outcome.unwrap_err();
    assert!(
        refusal.contains("which is not the stack's current plan") && refusal.contains(other),
        "{refusal}"
    );
    assert_eq!(created, 0);
}

/// The same job while its plan is the current one gets past that check (to the manifest, which
/// this job has none of).
#[tokio::test]
async fn a_job_of_the_current_plan_passes_the_current_plan_check() {
    let (outcome, created) = redrive_with_current_plan(
        "ledger",
        "arn:aws:iam::222222222222:role/ferry-ledger-batch",
        2,
        true,
        Some(None),
    )
    .await;
    let refusal = outcome.unwrap_err();
    assert!(refusal.contains("names no manifest object"), "{refusal}");
    assert_eq!(created, 0);
}
