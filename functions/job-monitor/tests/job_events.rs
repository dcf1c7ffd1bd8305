//! job-monitor driven by the `events/job-monitor*.json` fixtures: the completion report and
//! the stored plan in moto's S3, the summary read back from SNS through an SQS queue, and S3
//! Control (which moto lacks) mocked with aws-smithy-mocks, asserting the exact requests.
//! Also redrive end to end: the failed rows of that report become a manifest in the state
//! bucket and a CreateJob of the plan's operation over it, once, however often it is asked.

use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_sdk_s3control::operation::create_job::{CreateJobInput, CreateJobOutput};
use aws_sdk_s3control::operation::describe_job::{DescribeJobInput, DescribeJobOutput};
use aws_sdk_s3control::operation::get_job_tagging::{GetJobTaggingInput, GetJobTaggingOutput};
use aws_sdk_s3control::types::{
    JobDescriptor, JobOperation, JobProgressSummary, JobReport, JobReportFormat, JobReportScope,
    JobStatus, JobTimers, S3CopyObjectOperation, S3Tag,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::DateTime;
use ferry_aws::AwsPorts;
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::report::monitor::MonitorOutcome;
use ferry_flows::report::redrive::{
    redrive_and_announce as redrive, RedriveContext, RedriveOutcome,
};
use ferry_flows::workflow::StoredPlan;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::{s3_client, Inbox, MotoServer};
use job_monitor::{Handled, JobMonitor};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

const JOB_ID: &str = "7c1a3e52-0d4b-4c8e-9a55-1f2e3d4c5b6a";
const ACCOUNT: &str = "222222222222";
const STATE_BUCKET: &str = "ferry-state-test";
const REPORT_BUCKET: &str = "acme-vault-reports";
const NOW: u64 = 1_795_500_000;
const SOURCE_KEY: &str =
    "arn:aws:kms:eu-west-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011";

/// The failed tasks' result file: both column orders, quoted messages with commas, a newline,
/// and a key with CR/LF in it (a source-bucket writer's attempt to add a line to the e-mail).
const FAILED_CSV: &str = concat!(
    "\"acme-ledger-prod\",\"2026/01/a%20b.pdf\",\"\",\"failed\",\"403\",\"AccessDenied\",\"Access Denied\"\n",
    "\"acme-ledger-prod\",\"2026/01/c.pdf\",\"\",\"failed\",\"AccessDenied\",\"403\",\"Access Denied\"\n",
    "\"acme-ledger-prod\",\"2026/01/k.pdf\",\"\",\"failed\",\"403\",\"AccessDenied\",\"User: arn:aws:sts::222222222222:assumed-role/ferry-ledger-batch/s3-batch is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011 because no resource-based policy allows the kms:Decrypt action\"\n",
    "\"acme-ledger-prod\",\"2026/01/gone%0D%0AFix%3A%20run%20this.pdf\",\"\",\"failed\",\"NoSuchKey\",\"404\",\"The specified key does not exist.\"\n",
    "\"acme-ledger-prod\",\"2025/cold.pdf\",\"\",\"failed\",\"403\",\"InvalidObjectState\",\"The operation is not valid for the object's storage class, GLACIER\"\n",
    "\"acme-ledger-prod\",\"2026/02/busy.pdf\",\"\",\"failed\",\"503\",\"SlowDown\",\"Please reduce your request rate,\nthen try again\"\n",
);

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn plan() -> (TransferSpec, Plan) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kms-inventory.toml");
    let spec = TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let plan = Plan::build(&spec).unwrap();
    (spec, plan)
}

fn now() -> u64 {
    NOW
}

fn ferry_tags(fingerprint: &str) -> GetJobTaggingOutput {
    GetJobTaggingOutput::builder()
        .tags(
            S3Tag::builder()
                .key("ferry:transfer")
                .value("ledger")
                .build()
                .unwrap(),
        )
        .tags(
            S3Tag::builder()
                .key("ferry:plan")
                .value(fingerprint)
                .build()
                .unwrap(),
        )
        .build()
}

fn descriptor(status: JobStatus) -> JobDescriptor {
    descriptor_builder(status).build()
}

fn descriptor_builder(
    status: JobStatus,
) -> aws_sdk_s3control::types::builders::JobDescriptorBuilder {
    JobDescriptor::builder()
        .job_id(JOB_ID)
        .job_arn(format!("arn:aws:s3:eu-west-1:{ACCOUNT}:job/{JOB_ID}"))
        .status(status)
        .priority(50)
        .operation(
            JobOperation::builder()
                .s3_put_object_copy(
                    S3CopyObjectOperation::builder()
                        .target_resource("arn:aws:s3:::acme-ledger-vault")
                        .build(),
                )
                .build(),
        )
        .progress_summary(
            JobProgressSummary::builder()
                .total_number_of_tasks(1000)
                .number_of_tasks_succeeded(994)
                .number_of_tasks_failed(6)
                .timers(
                    JobTimers::builder()
                        .elapsed_time_in_active_seconds(3_000)
                        .build(),
                )
                .build(),
        )
        .report(
            JobReport::builder()
                .bucket(format!("arn:aws:s3:::{REPORT_BUCKET}"))
                .format(JobReportFormat::ReportCsv20180820)
                .enabled(true)
                .prefix("ferry/ledger")
                .report_scope(JobReportScope::AllTasks)
                .build(),
        )
        .creation_time(DateTime::from_secs(NOW as i64 - 3_725))
        .termination_date(DateTime::from_secs(NOW as i64))
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/ferry-ledger-batch"))
}

/// DescribeJob's `Manifest` of a job that ran on the CSV manifest `s3://<REPORT_BUCKET>/<key>`.
fn csv_manifest(key: &str, etag: &str) -> aws_sdk_s3control::types::JobManifest {
    use aws_sdk_s3control::types::{
        JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    };
    JobManifest::builder()
        .spec(
            JobManifestSpec::builder()
                .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                .fields(JobManifestFieldName::Bucket)
                .fields(JobManifestFieldName::Key)
                .build()
                .unwrap(),
        )
        .location(
            JobManifestLocation::builder()
                .object_arn(format!("arn:aws:s3:::{REPORT_BUCKET}/{key}"))
                .e_tag(etag)
                .build()
                .unwrap(),
        )
        .build()
}

/// Mocks that record what S3 Control was asked.
struct Control {
    tags: Rule,
    describe: Rule,
    tag_requests: Arc<Mutex<Vec<GetJobTaggingInput>>>,
    describe_requests: Arc<Mutex<Vec<DescribeJobInput>>>,
}

fn control(tags: GetJobTaggingOutput, job: JobDescriptor) -> Control {
    let tag_requests: Arc<Mutex<Vec<GetJobTaggingInput>>> = Arc::default();
    let describe_requests: Arc<Mutex<Vec<DescribeJobInput>>> = Arc::default();
    let (t, d) = (tag_requests.clone(), describe_requests.clone());
    Control {
        tags: mock!(aws_sdk_s3control::Client::get_job_tagging)
            .match_requests(move |input| {
                t.lock().unwrap().push(input.clone());
                true
            })
            .then_output(move || tags.clone()),
        describe: mock!(aws_sdk_s3control::Client::describe_job)
            .match_requests(move |input| {
                d.lock().unwrap().push(input.clone());
                true
            })
            .then_output(move || DescribeJobOutput::builder().job(job.clone()).build()),
        tag_requests,
        describe_requests,
    }
}

struct World {
    _moto: MotoServer,
    ports: AwsPorts,
    s3: aws_sdk_s3::Client,
    inbox: Inbox,
    fingerprint: String,
}

impl World {
    async fn start(rules: &[&Rule]) -> World {
        let moto = MotoServer::start();
        let config = moto.sdk_config("eu-west-1").await;
        let s3 = s3_client(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        for bucket in [STATE_BUCKET, REPORT_BUCKET] {
            s3.create_bucket()
                .bucket(bucket)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        let (spec, plan) = plan();
        let fingerprint = plan.transfer.fingerprint.clone();
        let stored = StoredPlan {
            fingerprint: fingerprint.clone(),
            spec,
        };
        put(
            &s3,
            STATE_BUCKET,
            &format!("plans/{fingerprint}.json"),
            serde_json::to_vec(&stored).unwrap(),
        )
        .await;
        let prefix = format!("ferry/ledger/job-{JOB_ID}");
        let manifest = serde_json::json!({
            "Format": "Report_CSV_20180820",
            "ReportCreationDate": "2026-11-23T18:04:11.207Z",
            "Results": [
                {"TaskExecutionStatus": "failed", "Bucket": REPORT_BUCKET, "MD5Checksum": "3cb5b9f5c8f6cf7a2a1a9bd4a2a7ba11",
                 "Key": format!("{prefix}/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6.csv")},
                // Listed but never written: reading succeeded tasks' files would fail the test.
                {"TaskExecutionStatus": "succeeded", "Bucket": REPORT_BUCKET, "MD5Checksum": "6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a",
                 "Key": format!("{prefix}/results/a1b2c3d4e5f60718293a4b5c6d7e8f9012345678.csv")}
            ],
            "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
        });
        put(
            &s3,
            REPORT_BUCKET,
            &format!("{prefix}/manifest.json"),
            manifest.to_string().into_bytes(),
        )
        .await;
        put(
            &s3,
            REPORT_BUCKET,
            &format!("{prefix}/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6.csv"),
            FAILED_CSV.as_bytes().to_vec(),
        )
        .await;

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
        let ports = AwsPorts::from_config(&config, STATE_BUCKET.to_string(), topic_arn)
            .with_clients(
                s3.clone(),
                mock_client!(aws_sdk_s3control, RuleMode::MatchAny, rules, |c| c
                    .retry_config(
                        aws_sdk_s3control::config::retry::RetryConfig::disabled()
                    )),
            );
        World {
            _moto: moto,
            ports,
            s3,
            inbox,
            fingerprint,
        }
    }

    fn monitor(&self) -> JobMonitor<AwsPorts> {
        JobMonitor {
            ports: self.ports.clone(),
            approval_topic_arn: "arn:aws:sns:eu-west-1:222222222222:ferry-approvals".to_string(),
            account_id: ACCOUNT.to_string(),
            region: "eu-west-1".to_string(),
            clock: now,
        }
    }

    /// The monitor's answer to the fixture event `name`.
    async fn handle(&self, name: &str) -> Handled {
        self.monitor().handle(event(name)).await.unwrap()
    }

    async fn inbox(&self) -> Vec<String> {
        self.inbox.messages().await
    }

    async fn state_object(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .s3
            .get_object()
            .bucket(STATE_BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.unwrap().to_vec())
    }
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

/// The approval of plan `fingerprint` as approval-handler records it.
async fn put_decision(s3: &aws_sdk_s3::Client, fingerprint: &str) {
    put(
        s3,
        STATE_BUCKET,
        &format!("decisions/{fingerprint}.json"),
        serde_json::to_vec(&serde_json::json!({
            "decision": "approve", "plan_fingerprint": fingerprint, "at_unix": NOW
        }))
        .unwrap(),
    )
    .await;
}

fn event(name: &str) -> LambdaEvent<Value> {
    LambdaEvent::new(fixture(name), Context::default())
}

fn fingerprint() -> String {
    plan().1.transfer.fingerprint
}

#[tokio::test]
async fn a_finished_job_is_summarised_with_causes_and_fixes() {
    let c = control(ferry_tags(&fingerprint()), descriptor(JobStatus::Complete));
    let world = World::start(&[&c.tags, &c.describe]).await;
    let handled = world.handle("job-monitor.json").await;
    let Handled::Outcome(MonitorOutcome::Summarised(summary)) = handled else {
        panic!("{handled:?}");
    };
    assert_eq!(summary.failed_in_report, 6);

    // S3 Control was asked about exactly this job of this account.
    let tag_request = c.tag_requests.lock().unwrap()[0].clone();
    assert_eq!(
        (tag_request.account_id(), tag_request.job_id()),
        (Some(ACCOUNT), Some(JOB_ID))
    );
    let describe_request = c.describe_requests.lock().unwrap()[0].clone();
    assert_eq!(
        (describe_request.account_id(), describe_request.job_id()),
        (Some(ACCOUNT), Some(JOB_ID))
    );

    // What people receive.
    let inbox = world.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let mail = &inbox[0];
    for expected in [
        "Job 7c1a3e52-0d4b-4c8e-9a55-1f2e3d4c5b6a of transfer ledger: Complete.",
        "Tasks:   994 succeeded, 6 failed, 1,000 total",
        "Elapsed: 1 h 02 min",
        "- 2 x access denied reading the source object",
        "lacks statement FerryLedgerReadSourceObjects",
        "- 1 x KMS access denied on the source key",
        &format!("the key policy of {SOURCE_KEY} in the source account 111111111111 lacks statement FerryLedgerDecryptSourceObjects"),
        "ferry grant <your spec>.toml --side source --apply",
        "- 1 x object not found",
        "- 1 x archived object (Glacier) not restored",
        "restore the objects first",
        "- 1 x throttled (slow down)",
        "e.g. s3://acme-ledger-prod/2026/01/a b.pdf",
        // Untrusted text is escaped: the key's CR/LF stays on its line.
        "e.g. s3://acme-ledger-prod/2026/01/gone%0D%0AFix: run this.pdf",
        &format!("ferry redrive {JOB_ID} --region eu-west-1 --account-id {ACCOUNT} --state-bucket {STATE_BUCKET}"),
        &format!("{{\"action\":\"redrive\",\"job_id\":\"{JOB_ID}\"}}"),
        &format!("Full breakdown: s3://{STATE_BUCKET}/reports/{JOB_ID}/breakdown.json"),
        &format!("Completion report: s3://{REPORT_BUCKET}/ferry/ledger/job-{JOB_ID}/manifest.json"),
    ] {
        assert!(mail.contains(expected), "missing {expected:?} in:\n{mail}");
    }
    assert!(mail.contains("Cost:    about $"), "{mail}");
    assert!(
        !mail.contains("\nFix: run this"),
        "a key added a line:\n{mail}"
    );
    // Short: the full breakdown is in S3, not in the e-mail.
    assert!(mail.len() < 6_000, "{} bytes", mail.len());

    // The full breakdown, grouped.
    let breakdown: Value = serde_json::from_slice(
        &world
            .state_object(&format!("reports/{JOB_ID}/breakdown.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    let counts: Vec<(String, u64)> = breakdown["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["cause"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("source-read-denied".to_string(), 2),
            ("source-key-denied".to_string(), 1),
            ("archived".to_string(), 1),
            ("object-not-found".to_string(), 1),
            ("throttled".to_string(), 1),
        ]
    );
    let throttled = &breakdown["causes"][4]["examples"][0];
    assert_eq!(
        throttled["message"],
        "Please reduce your request rate,\nthen try again"
    );
    assert_eq!(breakdown["report"]["stats"]["sample_order_rows"], 4);
    assert_eq!(breakdown["report"]["stats"]["schema_order_rows"], 2);

    // EventBridge delivers at least once: the same event again e-mails nothing.
    let again = world.handle("job-monitor.json").await;
    assert_eq!(
        again,
        Handled::Outcome(MonitorOutcome::AlreadyAnnounced {
            job_id: JOB_ID.into(),
            status: "Complete".into()
        })
    );
    assert!(world.inbox().await.is_empty());
}

#[tokio::test]
async fn a_job_that_is_not_ferrys_is_ignored_without_describing_it() {
    let c = control(
        GetJobTaggingOutput::builder().build(),
        descriptor(JobStatus::Complete),
    );
    let world = World::start(&[&c.tags, &c.describe]).await;
    let handled = world.handle("job-monitor.json").await;
    assert_eq!(
        handled,
        Handled::Outcome(MonitorOutcome::NotFerrys {
            job_id: JOB_ID.into()
        })
    );
    assert_eq!(c.describe.num_calls(), 0);
    assert!(world.inbox().await.is_empty());
}

#[tokio::test]
async fn a_suspended_job_gets_the_confirm_and_cancel_commands() {
    let c = control(ferry_tags(&fingerprint()), descriptor(JobStatus::Suspended));
    let world = World::start(&[&c.tags, &c.describe]).await;
    let handled = world.handle("job-monitor-suspended.json").await;
    assert_eq!(
        handled,
        Handled::Outcome(MonitorOutcome::AwaitingConfirmation {
            job_id: JOB_ID.into()
        })
    );
    let inbox = world.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains(&format!(
        "aws s3control update-job-status --region eu-west-1 --account-id {ACCOUNT} --job-id {JOB_ID} --requested-job-status Ready"
    )), "{}", inbox[0]);
    assert!(inbox[0].contains("1,000 tasks"), "{}", inbox[0]);
}

#[tokio::test]
async fn a_job_stopped_by_the_failure_rule_says_so() {
    // Batch Operations' rule (S3 User Guide, "Tracking job failure"): once at least 1,000 tasks
    // ran, more than 50 % failed stops the job. Three Failed jobs: stopped by the rule with its
    // reason, stopped by the rule as the counts show with no reason given, and failed for
    // another cause below the rule; only the first two say "stopped by Batch Operations".
    let failed_job = |ok: i64, failed: i64, reason: Option<(&str, &str)>| {
        let job = descriptor(JobStatus::Failed);
        JobDescriptor::builder()
            .set_job_id(job.job_id().map(str::to_string))
            .status(JobStatus::Failed)
            .set_operation(job.operation().cloned())
            .set_report(job.report().cloned())
            .progress_summary(
                JobProgressSummary::builder()
                    .total_number_of_tasks(4000)
                    .number_of_tasks_succeeded(ok)
                    .number_of_tasks_failed(failed)
                    .build(),
            )
            .set_failure_reasons(reason.map(|(code, text)| {
                vec![aws_sdk_s3control::types::JobFailure::builder()
                    .failure_code(code)
                    .failure_reason(text)
                    .build()]
            }))
            .build()
    };
    let rule_reason = (
        "TaskFailureThresholdExceeded",
        "More than 50% of tasks failed",
    );
    let other_reason = (
        "InternalError",
        "Batch Operations could not write the report",
    );
    for (job, stopped_by_rule, reason) in [
        (
            failed_job(400, 1200, Some(rule_reason)),
            true,
            Some(rule_reason),
        ),
        (failed_job(400, 1200, None), true, None),
        (
            failed_job(600, 399, Some(other_reason)),
            false,
            Some(other_reason),
        ),
    ] {
        let c = control(ferry_tags(&fingerprint()), job);
        let world = World::start(&[&c.tags, &c.describe]).await;
        let handled = world.handle("job-monitor-failed.json").await;
        let Handled::Outcome(MonitorOutcome::Summarised(summary)) = handled else {
            panic!("{handled:?}");
        };
        assert_eq!(summary.hit_failure_threshold, stopped_by_rule, "{reason:?}");
        let mail = &world.inbox().await[0];
        assert_eq!(
            mail.contains("Failed (stopped by Batch Operations: more than half"),
            stopped_by_rule,
            "{mail}"
        );
        match reason {
            Some((code, text)) => assert!(
                mail.contains(&format!("Job failure: {code}: {text}")),
                "{mail}"
            ),
            None => assert!(!mail.contains("Job failure:"), "{mail}"),
        }
    }
}

/// The account is the envelope's (EventBridge fills it in), and only this stack's account is
/// served: a forwarded event of another account's job, or one whose job ARN names another
/// account than its envelope, is ignored before any S3 Control call.
#[tokio::test]
async fn jobs_of_other_accounts_are_ignored_without_describing_them() {
    let c = control(ferry_tags(&fingerprint()), descriptor(JobStatus::Complete));
    let world = World::start(&[&c.tags, &c.describe]).await;
    let other = "333333333333";

    let mut forwarded = fixture("job-monitor.json");
    forwarded["account"] = other.into();
    forwarded["detail"]["serviceEventDetails"]["jobArn"] =
        format!("arn:aws:s3:eu-west-1:{other}:job/{JOB_ID}").into();
    let mut mismatched = fixture("job-monitor.json");
    mismatched["detail"]["serviceEventDetails"]["jobArn"] =
        format!("arn:aws:s3:eu-west-1:{other}:job/{JOB_ID}").into();
    let mut no_envelope = fixture("job-monitor.json");
    no_envelope.as_object_mut().unwrap().remove("account");
    let mut other_region = fixture("job-monitor.json");
    other_region["region"] = "us-west-2".into();
    other_region["detail"]["serviceEventDetails"]["jobArn"] =
        format!("arn:aws:s3:us-west-2:{ACCOUNT}:job/{JOB_ID}").into();

    for (event, says) in [
        (forwarded, format!("belongs to account {other}")),
        (
            mismatched,
            "is not in the account and Region the event came from".to_string(),
        ),
        (no_envelope, "has no account".to_string()),
        (other_region, "in us-west-2, not this stack's".to_string()),
    ] {
        let handled = world
            .monitor()
            .handle(LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        let Handled::BadEvent(reason) = handled else {
            panic!("{handled:?}")
        };
        assert!(reason.contains(&says), "{reason}");
    }
    assert_eq!(c.tags.num_calls() + c.describe.num_calls(), 0);
    assert!(world.inbox().await.is_empty());
    // The stack's own account's event is served.
    assert!(matches!(
        world.handle("job-monitor.json").await,
        Handled::Outcome(MonitorOutcome::Summarised(_))
    ));
}

#[tokio::test]
async fn events_that_are_not_job_status_changes_are_refused_by_name() {
    let world = World::start(&[]).await;
    let mut other = fixture("job-monitor.json");
    other["detail"]["eventName"] = "JobCreated".into();
    let handled = world
        .monitor()
        .handle(LambdaEvent::new(other, Context::default()))
        .await
        .unwrap();
    let Handled::BadEvent(reason) = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains("\"JobCreated\""), "{reason}");
}

#[tokio::test]
async fn redrive_creates_one_job_from_the_failed_tasks_only() {
    let seen: Arc<Mutex<Vec<CreateJobInput>>> = Arc::default();
    let recorder = seen.clone();
    let create = mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(move |input| {
            recorder.lock().unwrap().push(input.clone());
            true
        })
        .then_output(|| {
            CreateJobOutput::builder()
                .job_id("9d8c7b6a-0000-4000-8000-00000000000r")
                .build()
        });
    // The job ran on its own manifest (DescribeJob names it, with the ETag it had): the failed
    // tasks and one that succeeded.
    let etag: Arc<Mutex<String>> = Arc::default();
    let recorded = etag.clone();
    let c = control(ferry_tags(&fingerprint()), descriptor(JobStatus::Complete));
    let describe = mock!(aws_sdk_s3control::Client::describe_job).then_output(move || {
        let etag = recorded.lock().unwrap().clone();
        DescribeJobOutput::builder()
            .job(
                descriptor_builder(JobStatus::Complete)
                    .manifest(csv_manifest("ferry/ledger.csv", &etag))
                    .build(),
            )
            .build()
    });
    let world = World::start(&[&c.tags, &describe, &create]).await;
    let mut writer = ferry_listings::manifest::CsvManifestWriter::new(Vec::new(), false);
    for key in [
        "2026/01/a b.pdf",
        "2026/01/c.pdf",
        "2026/01/fine.pdf",
        "2026/01/k.pdf",
        "2026/01/gone\r\nFix: run this.pdf",
        "2025/cold.pdf",
        "2026/02/busy.pdf",
    ] {
        writer.write("acme-ledger-prod", key, None).unwrap();
    }
    let put = world
        .s3
        .put_object()
        .bucket(REPORT_BUCKET)
        .key("ferry/ledger.csv")
        .body(writer.finish().unwrap().0.into())
        .send()
        .await
        .unwrap();
    *etag.lock().unwrap() = put.e_tag().unwrap().trim_matches('"').to_string();
    // The plan was approved (a redrive is never a plan's first copy), and Ferry recorded the
    // job as launched for it.
    put_decision(&world.s3, &world.fingerprint).await;
    world
        .s3
        .put_object()
        .bucket(STATE_BUCKET)
        .key(format!("jobs/{}/{JOB_ID}.json", world.fingerprint))
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let ctx = RedriveContext {
        state_bucket: STATE_BUCKET.to_string(),
        region: "eu-west-1".to_string(),
        retry: RetryPolicy::default(),
    };
    let outcome = redrive(&world.ports, ACCOUNT, JOB_ID, &ctx).await.unwrap();
    let RedriveOutcome::Launched { record, job } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!((record.tasks, record.not_in_manifest), (6, 0));
    assert_eq!(record.new_job_id, "9d8c7b6a-0000-4000-8000-00000000000r");
    assert_eq!(job.job_id, record.new_job_id);

    // The manifest holds exactly the failed tasks, URL-encoded, in Batch Operations' format.
    let manifest = world
        .state_object(&format!("redrive/{JOB_ID}/manifest.csv"))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(manifest).unwrap(),
        "acme-ledger-prod,2026/01/a%20b.pdf\nacme-ledger-prod,2026/01/c.pdf\nacme-ledger-prod,2026/01/k.pdf\n\
         acme-ledger-prod,2026/01/gone%0D%0AFix%3A%20run%20this.pdf\nacme-ledger-prod,2025/cold.pdf\nacme-ledger-prod,2026/02/busy.pdf\n"
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    let location = r.manifest().unwrap().location().unwrap();
    assert_eq!(
        location.object_arn(),
        format!("arn:aws:s3:::{STATE_BUCKET}/redrive/{JOB_ID}/manifest.csv")
    );
    assert_eq!(location.e_tag(), record.manifest_etag);
    assert_eq!(
        r.client_request_token(),
        Some(
            ferry_plan::job::client_request_token(
                &format!("{}:redrive:{JOB_ID}", world.fingerprint),
                &record.manifest_etag
            )
            .as_str()
        )
    );
    // The plan's operation, role and report; tagged as Ferry's and as this job's redrive.
    let copy = r.operation().unwrap().s3_put_object_copy().unwrap();
    assert_eq!(
        copy.target_resource(),
        Some("arn:aws:s3:::acme-ledger-vault")
    );
    assert_eq!(copy.target_key_prefix(), Some("from-prod"));
    let spec = r.manifest().unwrap().spec().unwrap();
    assert_eq!(
        (spec.format().as_str(), spec.fields().len()),
        ("S3BatchOperations_CSV_20180820", 2)
    );
    let report = r.report().unwrap();
    assert_eq!(
        (report.bucket(), report.prefix(), report.enabled()),
        (
            Some("arn:aws:s3:::acme-vault-reports"),
            Some("ferry/ledger"),
            true
        )
    );
    assert_eq!(
        r.description(),
        Some(format!("Ferry ledger: redrive of job {JOB_ID} (failed tasks only)").as_str())
    );
    // The plan asks for confirmation, so the redrive waits for it too (and says so).
    assert_eq!(
        (r.priority(), r.confirmation_required()),
        (Some(50), Some(true))
    );
    assert_eq!(
        r.role_arn(),
        Some("arn:aws:iam::222222222222:role/ferry-ledger-batch")
    );
    let tags: Vec<(&str, &str)> = r.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(
        tags,
        [
            ("ferry:transfer", "ledger"),
            ("ferry:plan", world.fingerprint.as_str()),
            ("ferry:redrive-of", JOB_ID)
        ]
    );
    let inbox = world.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert!(
        inbox[0].contains("the 6 task(s) that failed in job"),
        "{}",
        inbox[0]
    );
    assert!(inbox[0].contains("waits in Suspended"), "{}", inbox[0]);

    // Asked again (a second person, a redelivered message): the same redrive, no new job.
    let again = redrive(&world.ports, ACCOUNT, JOB_ID, &ctx).await.unwrap();
    assert_eq!(again, RedriveOutcome::AlreadyRedriven(record));
    assert_eq!(create.num_calls(), 1);
    // And the redrive job is listed with the plan's jobs, for stack teardown.
    assert!(world
        .state_object(&format!(
            "jobs/{}/9d8c7b6a-0000-4000-8000-00000000000r.json",
            world.fingerprint
        ))
        .await
        .is_some());
}

#[tokio::test]
async fn throttling_is_left_to_lambda_to_retry_and_nothing_is_sent() {
    use aws_sdk_s3control::operation::get_job_tagging::GetJobTaggingError;
    use aws_sdk_s3control::types::error::TooManyRequestsException;
    let tags = mock!(aws_sdk_s3control::Client::get_job_tagging).then_error(|| {
        GetJobTaggingError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Rate exceeded")
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("TooManyRequestsException")
                        .message("Rate exceeded")
                        .build(),
                )
                .build(),
        )
    });
    let world = World::start(&[&tags]).await;
    let e = world
        .monitor()
        .handle(event("job-monitor.json"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TooManyRequestsException"), "{e}");
    assert!(world.inbox().await.is_empty());
}

#[tokio::test]
async fn a_report_that_cannot_be_read_is_said_and_the_claim_given_back() {
    let c = control(ferry_tags(&fingerprint()), descriptor(JobStatus::Complete));
    let world = World::start(&[&c.tags, &c.describe]).await;
    let failed_file =
        format!("ferry/ledger/job-{JOB_ID}/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6.csv");
    world
        .s3
        .delete_object()
        .bucket(REPORT_BUCKET)
        .key(&failed_file)
        .send()
        .await
        .unwrap();
    let handled = world.handle("job-monitor.json").await;
    let Handled::Failed(reason) = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains(&failed_file), "{reason}");
    let inbox = world.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert!(
        inbox[0].contains("Ferry could not summarise it"),
        "{}",
        inbox[0]
    );
    assert!(inbox[0].contains(&failed_file), "{}", inbox[0]);
    // Given back: once the report is readable, the next delivery summarises.
    assert!(world
        .state_object(&format!("monitor/{JOB_ID}/Complete.announced"))
        .await
        .is_none());
}

#[tokio::test]
async fn another_stacks_job_is_left_to_that_stack() {
    let c = control(
        ferry_tags("0123456789abcdef"),
        descriptor(JobStatus::Complete),
    );
    let world = World::start(&[&c.tags, &c.describe]).await;
    let handled = world.handle("job-monitor.json").await;
    assert_eq!(
        handled,
        Handled::Outcome(MonitorOutcome::OtherStack {
            job_id: JOB_ID.into(),
            transfer_name: "ledger".into()
        })
    );
    assert_eq!(c.describe.num_calls(), 0);
    assert!(world.inbox().await.is_empty());
}
