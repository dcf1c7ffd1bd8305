//! A transfer end to end on two moto accounts, every call through the authorizing gateway: the
//! plan's grants applied as the accounts' administrators would (`ferry grant`), Ferry's own CSV
//! manifest, the launcher's CreateJob request run by the Batch Operations emulator as the batch
//! role, then job-monitor's summary from the completion report the emulator wrote, with
//! job-monitor running as its own execution role from the template (`FunctionRole`): a call
//! that role would be denied on AWS fails the test.
//!
//! Then each statement the copy needs is left out in turn: the job's tasks fail where AWS's
//! would, and the summary e-mailed names the statement to add.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ServerSideEncryption, StorageClass};
use aws_sdk_s3control::operation::create_job::CreateJobInput;
use ferry_aws::AwsPorts;
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::inventory::delta::{
    keys as delta_keys, CurrentIndex, JobRun, RunJob, RunJobKind, RunRecord,
};
use ferry_flows::launch::{launch, LaunchRequest};
use ferry_flows::report::monitor::MonitorOutcome;
use ferry_flows::report::redrive::{
    redrive_and_announce, RedriveContext, RedriveError, RedriveOutcome, RedriveRecord,
};
use ferry_flows::workflow::StoredPlan;
use ferry_listings::inventory::index::{
    Change, EntryHasher, IndexEntry, ObjectIndex, ShardedIndexReader,
};
use ferry_listings::inventory::route::RouteStats;
use ferry_listings::manifest::CsvManifestWriter;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::batch_ops::{create_job, EmulatedJob};
use ferry_testkit::{
    kms_key, s3_client, s3control_client, FunctionRole, Inbox, Layer, MotoServer, PlanGrants,
};
use job_monitor::{Handled, JobMonitor};
use lambda_runtime::{Context, LambdaEvent};

const REGION: &str = "eu-west-1";
const SOURCE_ACCOUNT: &str = "111111111111";
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-ledger-prod";
const DEST_BUCKET: &str = "acme-ledger-vault";
const OPS_BUCKET: &str = "acme-vault-ops";
/// Keys that trip naive encoders: spaces, '+', a comma, non-ASCII, a percent sign.
const KEYS: [&str; 4] = [
    "2026/01/a b.pdf",
    "2026/01/c+d,e.pdf",
    "émigré/ünïcode.txt",
    "100%/done.csv",
];

struct World {
    moto: MotoServer,
    /// The stack's parameters for this transfer.
    parameters: serde_json::Value,
    /// job-monitor's execution role, as the template makes it.
    monitor_role: FunctionRole,
    dest: aws_sdk_s3::Client,
    /// `dest` without response checksum validation (moto's stored CRC32C of a copy is wrong).
    unvalidated: aws_sdk_s3::Client,
    dest_key: String,
    plan: Plan,
    spec: TransferSpec,
}

fn spec(source_key: &str, dest_key: &str) -> TransferSpec {
    TransferSpec::from_toml_str(&format!(
        r#"name = "ledger"
[source]
account_id = "{SOURCE_ACCOUNT}"
region = "{REGION}"
bucket = "{SOURCE_BUCKET}"
kms_key_arn = "{source_key}"
[destination]
account_id = "{DEST_ACCOUNT}"
region = "{REGION}"
bucket = "{DEST_BUCKET}"
kms_key_arn = "{dest_key}"
bucket_key_enabled = true
storage_class = "STANDARD_IA"
key_prefix = "from-prod/"
checksum_algorithm = "CRC32C"
[manifest]
kind = "csv"
bucket = "{OPS_BUCKET}"
account_id = "{DEST_ACCOUNT}"
key = "ferry/ledger.csv"
[report]
bucket = "{OPS_BUCKET}"
account_id = "{DEST_ACCOUNT}"
prefix = "ferry/reports"
[job]
confirmation_required = false
"#
    ))
    .expect("spec")
}

async fn world() -> World {
    world_with(&KEYS.map(str::to_string)).await
}

/// The two accounts with `keys` in the source bucket (SSE-KMS, metadata, a tag).
async fn world_with(keys: &[String]) -> World {
    let moto = MotoServer::start();
    let source_config = moto.sdk_config_for_account(SOURCE_ACCOUNT, REGION).await;
    let dest_config = moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
    let source_key = kms_key(&source_config).await;
    let dest_key = kms_key(&dest_config).await;
    let (source, dest) = (s3_client(&source_config), s3_client(&dest_config));
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    source
        .create_bucket()
        .bucket(SOURCE_BUCKET)
        .create_bucket_configuration(location.clone())
        .send()
        .await
        .unwrap();
    // The stack's parameters for this transfer: they scope job-monitor's role.
    let parameters = serde_json::json!({
        "TransferName": "ledger", "SourceAccountId": SOURCE_ACCOUNT, "SourceRegion": REGION,
        "SourceBucket": SOURCE_BUCKET, "SourceKmsKeyArn": source_key,
        "DestinationBucket": DEST_BUCKET, "DestinationKmsKeyArn": dest_key,
        "ManifestKind": "csv", "ManifestBucket": OPS_BUCKET, "ManifestKey": "ferry/ledger.csv",
        "ReportBucket": OPS_BUCKET, "ReportPrefix": "ferry/reports",
        "NotificationEmail": "storage-team@example.com"
    });
    let monitor_role = FunctionRole::deploy(
        &moto,
        "JobMonitorFunction",
        DEST_ACCOUNT,
        REGION,
        &parameters,
    )
    .await;
    let state_bucket = monitor_role.state_bucket.clone();
    aws_sdk_sns::Client::new(&dest_config)
        .create_topic()
        .name(
            monitor_role
                .notification_topic_arn
                .rsplit(':')
                .next()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for bucket in [DEST_BUCKET, OPS_BUCKET, state_bucket.as_str()] {
        dest.create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(location.clone())
            .send()
            .await
            .unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        source
            .put_object()
            .bucket(SOURCE_BUCKET)
            .key(key.as_str())
            .body(ByteStream::from(format!("object {i}").into_bytes()))
            .content_type("application/pdf")
            .metadata("origin", "ledger")
            .tagging("team=finance")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&source_key)
            .send()
            .await
            .unwrap();
    }
    let spec = spec(&source_key, &dest_key);
    let plan = Plan::build(&spec).expect("plan");
    // The stack's stored plan, for the monitor.
    let stored = StoredPlan {
        fingerprint: plan.transfer.fingerprint.clone(),
        spec: spec.clone(),
    };
    dest.put_object()
        .bucket(&state_bucket)
        .key(format!("plans/{}.json", plan.transfer.fingerprint))
        .body(ByteStream::from(serde_json::to_vec(&stored).unwrap()))
        .send()
        .await
        .unwrap();
    // Ferry's own CSV manifest, SSE-S3.
    let mut writer = CsvManifestWriter::new(Vec::new(), false);
    for key in keys {
        writer.write(SOURCE_BUCKET, key, None).unwrap();
    }
    let (csv, _) = writer.finish().unwrap();
    dest.put_object()
        .bucket(OPS_BUCKET)
        .key("ferry/ledger.csv")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(csv))
        .send()
        .await
        .unwrap();
    let unvalidated = aws_sdk_s3::Client::from_conf(
        dest.config()
            .to_builder()
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .build(),
    );
    World {
        moto,
        parameters,
        monitor_role,
        dest,
        unvalidated,
        dest_key,
        plan,
        spec,
    }
}

impl World {
    /// Launches the plan's job as the launcher does (CreateJob's request captured) and runs it
    /// in the emulator.
    async fn launch_and_run(&self, seed: &str) -> EmulatedJob {
        let dest_config = self.moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
        let (s3control, sent) = s3control_client(&dest_config);
        let api = ferry_aws::AwsLaunchApi::new(s3_client(&dest_config), s3control);
        let request = LaunchRequest {
            plan_fingerprint: seed,
            ..LaunchRequest::for_plan(&self.plan)
        };
        launch(&api, request, RetryPolicy::default())
            .await
            .expect("launch");
        let input = sent
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("CreateJob sent");
        let job = create_job(&self.moto, REGION, &input, None).await;
        // Recorded with the plan's jobs, as every Ferry launch records it (a redrive is only of
        // a job Ferry launched for the plan).
        self.dest
            .put_object()
            .bucket(&self.monitor_role.state_bucket)
            .key(format!("jobs/{seed}/{}.json", job.job_id))
            .body(ByteStream::from(
                serde_json::to_vec(&serde_json::json!({"job_id": job.job_id})).unwrap(),
            ))
            .send()
            .await
            .unwrap();
        job
    }

    /// The plan's approval as approval-handler records it (`decisions/<fingerprint>.json`,
    /// ferry-flows workflow): a redrive is only ever of an approved plan.
    async fn approve_plan(&self) {
        let fingerprint = &self.plan.transfer.fingerprint;
        self.dest
            .put_object()
            .bucket(&self.monitor_role.state_bucket)
            .key(format!("decisions/{fingerprint}.json"))
            .body(ByteStream::from(
                serde_json::to_vec(&serde_json::json!({
                    "decision": "approve", "plan_fingerprint": fingerprint, "at_unix": 1_795_400_000u64
                }))
                .unwrap(),
            ))
            .send()
            .await
            .unwrap();
    }

    /// Redrive of `failed` from the stack (`{"action":"redrive"}` on the approval topic):
    /// approval-handler's redrive run as its template role, with the state bucket's policy as
    /// deployed. Returns the redrive, the CreateJob request it sent, and the e-mails.
    async fn redrive_from_the_stack(
        &self,
        failed: &EmulatedJob,
    ) -> (RedriveRecord, CreateJobInput, Vec<String>) {
        let (outcome, input, mail) = self.try_redrive_from_the_stack(failed).await;
        let outcome =
            outcome.unwrap_or_else(|e| panic!("redrive: {e:?}\n{:#?}", self.moto.denials()));
        let RedriveOutcome::Launched { record, .. } = outcome else {
            panic!("{outcome:?}")
        };
        (record, input.expect("CreateJob sent"), mail)
    }

    /// [`Self::redrive_from_the_stack`], whatever its outcome; the CreateJob request if one was
    /// sent.
    async fn try_redrive_from_the_stack(
        &self,
        failed: &EmulatedJob,
    ) -> (
        Result<RedriveOutcome, RedriveError>,
        Option<CreateJobInput>,
        Vec<String>,
    ) {
        // The stack: approval-handler's role, and the state bucket's policy as deployed.
        let admin = self.moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
        let approval_role = FunctionRole::deploy(
            &self.moto,
            "ApprovalHandlerFunction",
            DEST_ACCOUNT,
            REGION,
            &self.parameters,
        )
        .await;
        // moto applies a bucket policy's Deny statements itself, ignoring their conditions, so the
        // template's Denies (TLS only; only the stack writes state or changes the bucket) would
        // refuse every request there. They are left out here, so neither moto nor the gateway
        // sees them: this test proves the policy's Allow for the batch role; the Denies are
        // proved with iam-simulate (tests/iam, "the state bucket is written only by the stack").
        let mut policy = approval_role.state_bucket_policy.clone();
        if let Some(serde_json::Value::Array(statements)) = policy.get_mut("Statement") {
            statements.retain(|st| st["Effect"] == "Allow");
            assert!(
                statements
                    .iter()
                    .any(|st| st["Sid"] == "BatchRoleReadsFerrysManifests"),
                "{policy}"
            );
        }
        s3_client(&admin)
            .put_bucket_policy()
            .bucket(&approval_role.state_bucket)
            .policy(policy.to_string())
            .send()
            .await
            .unwrap();
        // S3 Control through the gateway, as approval-handler's role: GetJobTagging and
        // DescribeJob of the failed job, then CreateJob (with iam:PassRole) of the redrive.
        let config = &approval_role.config;
        let (s3control, sent) = s3control_client(config);
        let ports = AwsPorts::from_config(
            config,
            approval_role.state_bucket.clone(),
            approval_role.notification_topic_arn.clone(),
        )
        .with_clients(s3_client(config), s3control);
        let inbox = Inbox::subscribe(
            &admin,
            &approval_role.notification_topic_arn,
            "redrive-inbox",
        )
        .await;
        let ctx = RedriveContext {
            state_bucket: approval_role.state_bucket.clone(),
            region: REGION.to_string(),
            retry: RetryPolicy::default(),
        };
        let outcome = redrive_and_announce(&ports, DEST_ACCOUNT, &failed.job_id, &ctx).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let input = sent.lock().unwrap().last().cloned();
        (outcome, input, inbox.messages().await)
    }

    /// job-monitor's handling of the job's JobStatusChanged event, run as its execution role,
    /// and the e-mail it sent.
    async fn monitor(&self, job: &EmulatedJob) -> (Handled, Vec<String>) {
        let admin = self.moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
        let topic = self.monitor_role.notification_topic_arn.clone();
        let inbox = Inbox::subscribe(&admin, &topic, &format!("inbox-{}", &job.job_id[..8])).await;
        // DescribeJob and GetJobTagging through the gateway, as job-monitor's role.
        let config = &self.monitor_role.config;
        let ports = AwsPorts::from_config(config, self.monitor_role.state_bucket.clone(), topic)
            .with_clients(s3_client(config), s3control_client(config).0);
        let monitor = JobMonitor {
            ports,
            approval_topic_arn: self.monitor_role.approval_topic_arn.clone(),
            account_id: DEST_ACCOUNT.to_string(),
            region: REGION.to_string(),
            clock: || 1_795_500_000,
        };
        let handled = monitor
            .handle(LambdaEvent::new(
                job.status_changed_event(),
                Context::default(),
            ))
            .await
            .expect("handled");
        tokio::time::sleep(Duration::from_millis(200)).await;
        (handled, inbox.messages().await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_copies_with_exactly_the_plans_grants_and_is_summarised() {
    let w = world().await;
    PlanGrants::all().apply(&w.moto, &w.plan, REGION).await;
    let job = w.launch_and_run(&w.plan.transfer.fingerprint).await;
    assert_eq!(job.status.as_str(), "Complete", "{:?}", job.failure_reasons);
    assert_eq!(
        (job.succeeded(), job.failed()),
        (KEYS.len() as u64, 0),
        "{:?}",
        job.tasks
    );

    for (i, key) in KEYS.iter().enumerate() {
        let copy = format!("from-prod/{key}");
        let head = w
            .dest
            .head_object()
            .bucket(DEST_BUCKET)
            .key(&copy)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{copy}: {e:?}"));
        // checksum_algorithm = "CRC32C": the copy carries one (moto's value isn't CRC32C of the
        // bytes, so it is not compared; the body is).
        assert!(
            head.checksum_crc32_c().is_some(),
            "{copy}: no CRC32C checksum"
        );
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(head.ssekms_key_id(), Some(w.dest_key.as_str()));
        assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa));
        assert_eq!(head.content_type(), Some("application/pdf"));
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("ledger")
        );
        let body = w
            .unvalidated
            .get_object()
            .bucket(DEST_BUCKET)
            .key(&copy)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(body.as_ref(), format!("object {i}").as_bytes());
    }
    // The batch role was held to its policies: its calls were decided, none denied.
    let role_calls: Vec<_> = w
        .moto
        .decisions()
        .into_iter()
        .filter(|d| d.principal.contains(":assumed-role/ferry-ledger-batch/"))
        .collect();
    // Tags are copied: the role read them (moto keeps tags per account, so their values can't
    // be compared across accounts here; the large-object copier's tests compare them).
    for action in ["s3:GetObject", "s3:GetObjectTagging", "s3:PutObject"] {
        assert!(
            role_calls.iter().any(|d| d.action == action),
            "{action}: {role_calls:?}"
        );
    }
    assert!(
        role_calls.iter().all(|d| d.decision == "Allow"),
        "{role_calls:?}"
    );

    let (handled, mail) = w.monitor(&job).await;
    let Handled::Outcome(MonitorOutcome::Summarised(summary)) = handled else {
        panic!("{handled:?}")
    };
    // job-monitor ran as its template role: held to it, it was denied nothing.
    let monitor_calls: Vec<_> = w
        .moto
        .decisions()
        .into_iter()
        .filter(|d| {
            d.principal
                .contains(":assumed-role/ferry-e2e-JobMonitorFunctionRole")
        })
        .collect();
    assert!(
        monitor_calls.iter().any(|d| d.action == "s3:GetObject"),
        "{monitor_calls:?}"
    );
    assert!(
        monitor_calls.iter().all(|d| d.decision == "Allow"),
        "{monitor_calls:?}"
    );
    assert_eq!(summary.failed_in_report, 0);
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(mail[0].contains(&job.job_id), "{}", mail[0]);
}

/// Every statement of the plan the copy needs, left out alone, fails the job's tasks as AWS
/// would; the summary names the statement (its Sid) and the command that restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_statement_left_out_fails_the_copy_and_the_summary_names_it() {
    let w = world().await;
    let cases = [
        (Layer::ResourcePolicy, "FerryLedgerReadSourceObjects"),
        (Layer::Role, "FerryLedgerReadSourceObjects"),
        (Layer::ResourcePolicy, "FerryLedgerDecryptSourceObjects"),
        (Layer::Role, "FerryLedgerDecryptSourceObjects"),
        (Layer::Role, "FerryLedgerWriteDestinationObjects"),
    ];
    for (n, (layer, sid)) in cases.into_iter().enumerate() {
        PlanGrants::without(layer, sid)
            .apply(&w.moto, &w.plan, REGION)
            .await;
        let seen = w.moto.decisions().len();
        let job = w
            .launch_and_run(&format!("{}-{n}", w.plan.transfer.fingerprint))
            .await;
        assert_eq!(
            job.failed(),
            KEYS.len() as u64,
            "{sid} ({layer:?}) left out: every task fails: {:?}",
            job.tasks
        );
        // The gateway refused the batch role in the left-out layer, and nothing else.
        let denied: Vec<_> = w.moto.decisions()[seen..]
            .iter()
            .filter(|d| d.decision == "Deny")
            .cloned()
            .collect();
        assert!(!denied.is_empty(), "{sid} ({layer:?}): no denial recorded");
        let layer_words = match layer {
            Layer::Role => "identity-based policy",
            Layer::ResourcePolicy => "resource-based policy",
        };
        for d in &denied {
            assert!(
                d.principal.contains(":assumed-role/ferry-ledger-batch/"),
                "{sid} ({layer:?}): {d:?}"
            );
            assert!(
                d.reason.as_deref().is_some_and(|r| r.contains(layer_words)),
                "{sid} ({layer:?}): refused for another reason: {d:?}"
            );
        }
        let (_, mail) = w.monitor(&job).await;
        assert_eq!(mail.len(), 1, "{sid} ({layer:?}): {mail:?}");
        assert!(
            mail[0].contains(sid),
            "{sid} ({layer:?}) left out: the summary should name it:\n{}",
            mail[0]
        );
    }
}

/// A failure fixed in the source account (`ferry grant`), then redriven from the stack: the
/// approval-handler's redrive, run as its template role, reads the failed job's report, writes
/// the failed tasks' manifest to the state bucket and launches a job over it; the emulator runs
/// that job as the batch role, which may read the manifest only through the stack's state
/// bucket policy; every object arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_fixed_by_ferry_grant_is_redriven_from_the_stack() {
    let w = world().await;
    PlanGrants::without(Layer::ResourcePolicy, "FerryLedgerReadSourceObjects")
        .apply(&w.moto, &w.plan, REGION)
        .await;
    let failed = w.launch_and_run(&w.plan.transfer.fingerprint).await;
    assert_eq!(failed.failed(), KEYS.len() as u64, "{:?}", failed.tasks);

    // The source account applies the missing statement (what `ferry grant --apply` writes).
    PlanGrants::all().apply(&w.moto, &w.plan, REGION).await;

    w.approve_plan().await;
    let (record, input, _) = w.redrive_from_the_stack(&failed).await;
    assert_eq!(record.tasks, KEYS.len() as u64);

    let redriven = create_job(&w.moto, REGION, &input, None).await;
    assert_eq!(
        redriven.status.as_str(),
        "Complete",
        "{:?}",
        redriven.failure_reasons
    );
    assert_eq!(
        (redriven.succeeded(), redriven.failed()),
        (KEYS.len() as u64, 0),
        "{:?}",
        redriven.tasks
    );
    for key in KEYS {
        w.dest
            .head_object()
            .bucket(DEST_BUCKET)
            .key(format!("from-prod/{key}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key} not copied: {e:?}"));
    }
    // Both functions' calls were decided against their template roles and none was denied.
    let denied: Vec<_> = w
        .moto
        .denials()
        .into_iter()
        .filter(|d| {
            d.principal
                .contains("ferry-e2e-ApprovalHandlerFunctionRole")
        })
        .collect();
    assert!(denied.is_empty(), "{denied:?}");
}

/// #15 item 8: the report bucket is writable by others. A completion report rewritten there to
/// list a source object the job never had (manifest.json pointing at a forged results CSV)
/// must not make the batch role copy it: the redrive re-copies only the tasks of the job's own
/// manifest (read as DescribeJob recorded it), and says how many report rows were not in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_report_redrives_only_the_jobs_own_manifest() {
    let w = world().await;
    // An object of the source bucket the plan's manifest doesn't list.
    let secret = "secret/payroll.csv";
    let source = s3_client(&w.moto.sdk_config_for_account(SOURCE_ACCOUNT, REGION).await);
    source
        .put_object()
        .bucket(SOURCE_BUCKET)
        .key(secret)
        .body(ByteStream::from_static(b"salaries"))
        .send()
        .await
        .unwrap();
    PlanGrants::without(Layer::ResourcePolicy, "FerryLedgerReadSourceObjects")
        .apply(&w.moto, &w.plan, REGION)
        .await;
    let failed = w.launch_and_run(&w.plan.transfer.fingerprint).await;
    assert_eq!(failed.failed(), KEYS.len() as u64, "{:?}", failed.tasks);
    PlanGrants::all().apply(&w.moto, &w.plan, REGION).await;
    w.approve_plan().await;

    // The attacker (s3:* on the report bucket) rewrites the report: the failed rows plus one
    // for the secret object, in a results CSV of theirs that manifest.json now lists.
    forge_report(&w, &failed, secret, true).await;

    let (record, input, mail) = w.redrive_from_the_stack(&failed).await;
    // The CreateJob manifest: the job's own failed tasks, not the forged row.
    let arn = input
        .manifest()
        .and_then(|m| m.location())
        .map(|l| l.object_arn().to_string())
        .unwrap();
    let (bucket, key) = arn.split_once(":::").unwrap().1.split_once('/').unwrap();
    let body = w
        .dest
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let lines: Vec<&str> = std::str::from_utf8(&body).unwrap().lines().collect();
    assert_eq!(lines.len(), KEYS.len(), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains("payroll")),
        "the forged row was redriven: {lines:?}"
    );
    for k in KEYS {
        let encoded = format!(
            "{SOURCE_BUCKET},{}",
            ferry_listings::manifest::encode_key(k)
        );
        assert!(lines.contains(&encoded.as_str()), "{k}: {lines:?}");
    }
    assert_eq!(
        (record.tasks, record.not_in_manifest),
        (KEYS.len() as u64, 1)
    );
    assert!(
        record.not_in_manifest_examples[0].contains(secret),
        "{:?}",
        record.not_in_manifest_examples
    );
    assert!(
        mail.iter()
            .any(|m| m.contains("1 failed row(s) of the report name a task that is not in job")),
        "{mail:?}"
    );
    // Run as the batch role, the redrive copies the job's objects and never the secret one.
    let redriven = create_job(&w.moto, REGION, &input, None).await;
    assert_eq!(
        redriven.succeeded(),
        KEYS.len() as u64,
        "{:?}",
        redriven.tasks
    );
    assert!(w
        .dest
        .head_object()
        .bucket(DEST_BUCKET)
        .key(format!("from-prod/{secret}"))
        .send()
        .await
        .is_err());
}

/// A report whose failed rows are all forged: nothing is launched, and the refusal says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_only_forged_rows_launches_nothing() {
    let w = world().await;
    PlanGrants::without(Layer::ResourcePolicy, "FerryLedgerReadSourceObjects")
        .apply(&w.moto, &w.plan, REGION)
        .await;
    let failed = w.launch_and_run(&w.plan.transfer.fingerprint).await;
    w.approve_plan().await;
    forge_report(&w, &failed, "secret/payroll.csv", false).await;
    let (outcome, input, _) = w.try_redrive_from_the_stack(&failed).await;
    match outcome {
        Err(e @ RedriveError::NoneInManifest { .. }) => {
            assert!(e.to_string().contains("secret/payroll.csv"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(input.is_none(), "{input:?}");
}

/// Rewrites `job`'s completion report as someone with s3:* on the report bucket could: its
/// manifest.json lists a results CSV of theirs with a failed row for `secret` (after the real
/// failed rows when `keep`).
async fn forge_report(w: &World, job: &EmulatedJob, secret: &str, keep: bool) {
    let base = format!("ferry/reports/job-{}", job.job_id);
    let read = |key: String| {
        let dest = w.dest.clone();
        async move {
            dest.get_object()
                .bucket(OPS_BUCKET)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
                .to_vec()
        }
    };
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&read(format!("{base}/manifest.json")).await).unwrap();
    let results = manifest["Results"].as_array_mut().unwrap();
    let failed_file = results
        .iter_mut()
        .find(|r| r["TaskExecutionStatus"] == "failed")
        .expect("a failed results file");
    let real = read(failed_file["Key"].as_str().unwrap().to_string()).await;
    // Without the real rows, as many forged ones as S3 counted failures (DescribeJob): a report
    // with fewer is refused as cut before any row is looked at.
    let (mut csv, copies) = if keep {
        (real, 1)
    } else {
        let rows = real
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        (Vec::new(), rows.max(1))
    };
    for i in 0..copies {
        let key = if i == 0 {
            secret.to_string()
        } else {
            format!("{secret}.{i}")
        };
        csv.extend_from_slice(
            format!("{SOURCE_BUCKET},{key},,failed,403,AccessDenied,Access Denied\n").as_bytes(),
        );
    }
    let forged = format!("{base}/results/forged.csv");
    failed_file["Key"] = serde_json::Value::String(forged.clone());
    for (key, body) in [
        (forged, csv),
        (
            format!("{base}/manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        ),
    ] {
        w.dest
            .put_object()
            .bucket(OPS_BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
}

/// The manifest itself rewritten after the job ran (to add the secret object): the redrive
/// reads the manifest pinned to the ETag the job recorded, so it refuses rather than read the
/// new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_rewritten_after_the_job_is_refused() {
    let w = world().await;
    PlanGrants::without(Layer::ResourcePolicy, "FerryLedgerReadSourceObjects")
        .apply(&w.moto, &w.plan, REGION)
        .await;
    let failed = w.launch_and_run(&w.plan.transfer.fingerprint).await;
    assert_eq!(failed.failed(), KEYS.len() as u64, "{:?}", failed.tasks);
    w.approve_plan().await;
    w.dest
        .put_object()
        .bucket(OPS_BUCKET)
        .key("ferry/ledger.csv")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(
            b"acme-ledger-prod,secret/payroll.csv\n",
        ))
        .send()
        .await
        .unwrap();
    let (outcome, input, _) = w.try_redrive_from_the_stack(&failed).await;
    match outcome {
        Err(e @ RedriveError::JobManifest(_)) => assert!(
            e.to_string().contains("is no longer the manifest job"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(input.is_none(), "{input:?}");
}

/// A redrive is never the first copy of a plan: a job whose plan has no recorded approval (a
/// redrive message invoked directly, say) is refused before anything is read or created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_of_an_unapproved_plan_is_refused() {
    let w = world().await;
    PlanGrants::without(Layer::ResourcePolicy, "FerryLedgerReadSourceObjects")
        .apply(&w.moto, &w.plan, REGION)
        .await;
    let failed = w.launch_and_run(&w.plan.transfer.fingerprint).await;
    assert_eq!(failed.failed(), KEYS.len() as u64, "{:?}", failed.tasks);
    PlanGrants::all().apply(&w.moto, &w.plan, REGION).await;
    let (outcome, input, _) = w.try_redrive_from_the_stack(&failed).await;
    match outcome {
        Err(e @ RedriveError::NotApproved { .. }) => {
            assert!(e.to_string().contains("has no recorded approval"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(input.is_none(), "{input:?}");
}

/// The committed run before the job's run, and the job's run (inventory-handler's ids are
/// hashes; any name does here).
const PREVIOUS_RUN: &str = "run-0";
const RUN: &str = "run-1";

/// An object's entry in a run's index, as the inventory listed it.
fn entry(key: &str) -> IndexEntry {
    EntryHasher::new().entry(key, None, Some(&format!("etag-{key}")), Some(8))
}

impl World {
    async fn put_state(&self, key: &str, body: Vec<u8>) {
        self.dest
            .put_object()
            .bucket(&self.monitor_role.state_bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }

    async fn get_state(&self, key: &str) -> Vec<u8> {
        self.dest
            .get_object()
            .bucket(&self.monitor_role.state_bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    /// What inventory-handler leaves in the state bucket for an inventory run that launched
    /// `job` over the plan's objects: the previous run's committed index (one other object),
    /// this run's pending index (the job's objects), its `run.json` and the job → run link. In
    /// the layout before #18 (one `index.bin` each): a run launched before an upgrade still
    /// commits, its committed index then written in shards.
    async fn record_inventory_run(&self, job: &EmulatedJob) {
        let fp = &self.plan.transfer.fingerprint;
        let previous = ObjectIndex::from_entries(vec![entry("old/kept.pdf")]).unwrap();
        let previous_key = delta_keys::pending_index(fp, PREVIOUS_RUN);
        self.put_state(&previous_key, previous.to_bytes()).await;
        let current = CurrentIndex {
            run_id: PREVIOUS_RUN.into(),
            manifest_key: "inventories/2026-12-05T01-00Z/manifest.json".into(),
            creation_timestamp_ms: 1_000,
            index_key: Some(previous_key),
            index: None,
            objects: 1,
        };
        self.put_state(
            &delta_keys::current(fp),
            serde_json::to_vec(&current).unwrap(),
        )
        .await;
        let pending = ObjectIndex::from_entries(KEYS.iter().map(|k| entry(k)).collect()).unwrap();
        let pending_key = delta_keys::pending_index(fp, RUN);
        self.put_state(&pending_key, pending.to_bytes()).await;
        let location = job.input.manifest().and_then(|m| m.location()).unwrap();
        let run = RunRecord {
            run_id: RUN.into(),
            plan_fingerprint: fp.clone(),
            transfer_name: "ledger".into(),
            inventory_bucket: OPS_BUCKET.into(),
            manifest_key: "inventories/2026-12-06T01-00Z/manifest.json".into(),
            creation_timestamp_ms: 2_000,
            previous_run_id: Some(PREVIOUS_RUN.into()),
            jobs: vec![RunJob {
                job_id: job.job_id.clone(),
                kind: RunJobKind::Copy,
                manifest: format!("s3://{OPS_BUCKET}/ferry/ledger.csv"),
                manifest_etag: location.e_tag().to_string(),
                client_request_token: job
                    .input
                    .client_request_token()
                    .unwrap_or_default()
                    .to_string(),
                objects: KEYS.len() as u64,
                bytes: 0,
            }],
            stats: RouteStats::default(),
            index_key: Some(pending_key),
            index: None,
            index_objects: KEYS.len() as u64,
        };
        self.put_state(&delta_keys::run(fp, RUN), serde_json::to_vec(&run).unwrap())
            .await;
        let link = JobRun {
            plan_fingerprint: fp.clone(),
            run_id: RUN.into(),
        };
        self.put_state(
            &delta_keys::job_run(&job.job_id),
            serde_json::to_vec(&link).unwrap(),
        )
        .await;
    }

    /// The committed run and its index: the base the next inventory's delta compares with.
    async fn committed(&self) -> (String, ObjectIndex) {
        let current: CurrentIndex = serde_json::from_slice(
            &self
                .get_state(&delta_keys::current(&self.plan.transfer.fingerprint))
                .await,
        )
        .unwrap();
        let index = match (&current.index, &current.index_key) {
            (Some(stored), _) => {
                let mut reader =
                    ShardedIndexReader::new(stored.shard_bits, stored.objects as usize);
                for (n, shard) in stored.shards.iter().enumerate() {
                    reader.push(n, &self.get_state(&shard.key).await).unwrap();
                }
                reader.finish().unwrap()
            }
            (None, Some(key)) => ObjectIndex::from_bytes(&self.get_state(key).await).unwrap(),
            (None, None) => panic!("current.json names no index"),
        };
        (current.run_id, index)
    }

    /// A job of an inventory run over the plan's objects, two of which the source no longer
    /// has when it runs: it completes with those two tasks failed.
    async fn inventory_job_with_two_failed_tasks(&self) -> EmulatedJob {
        PlanGrants::all()
            .apply(&self.moto, &self.plan, REGION)
            .await;
        let source = s3_client(
            &self
                .moto
                .sdk_config_for_account(SOURCE_ACCOUNT, REGION)
                .await,
        );
        for key in FAILED {
            source
                .delete_object()
                .bucket(SOURCE_BUCKET)
                .key(key)
                .send()
                .await
                .unwrap();
        }
        let job = self.launch_and_run(&self.plan.transfer.fingerprint).await;
        assert_eq!(job.status.as_str(), "Complete", "{:?}", job.failure_reasons);
        assert_eq!((job.succeeded(), job.failed()), (2, 2), "{:?}", job.tasks);
        self.record_inventory_run(&job).await;
        job
    }
}

/// The objects whose task fails in [`World::inventory_job_with_two_failed_tasks`].
const FAILED: [&str; 2] = [KEYS[0], KEYS[2]];

/// Whether the next delta copies `key` (as the inventory lists it) again: it is not in the
/// committed index unchanged.
fn copied_again(index: &ObjectIndex, key: &str) -> bool {
    index.change(entry(key)) != Change::Unchanged
}

/// The report bucket can be written by others. The completion report of an inventory run's job
/// with failed tasks, deleted before job-monitor reads it, must not let the run commit as if
/// every task succeeded: the failed objects would enter the delta index and later deltas would
/// skip them for as long as they are unchanged. The delta base stays the previous run's, so the
/// next delta copies them again, and the e-mail says why with DescribeJob's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_runs_job_whose_report_was_deleted_does_not_commit_the_run() {
    let w = world().await;
    let job = w.inventory_job_with_two_failed_tasks().await;
    let report = format!("ferry/reports/job-{}/manifest.json", job.job_id);
    w.dest
        .delete_object()
        .bucket(OPS_BUCKET)
        .key(&report)
        .send()
        .await
        .unwrap();

    let (handled, mail) = w.monitor(&job).await;
    assert!(
        matches!(handled, Handled::Outcome(MonitorOutcome::Summarised(_))),
        "{handled:?}"
    );
    let (run, index) = w.committed().await;
    assert_eq!(run, PREVIOUS_RUN, "the run was committed");
    for key in KEYS {
        assert!(copied_again(&index, key), "{key} is recorded as copied");
    }
    assert_eq!(mail.len(), 1, "{mail:?}");
    for part in [
        format!("Inventory run {RUN} is NOT recorded as copied"),
        format!("its completion report is missing: there is no s3://{OPS_BUCKET}/{report}"),
        "DescribeJob counts 2 failed task(s)".to_string(),
        "the next inventory copies this run's objects again".to_string(),
    ] {
        assert!(mail[0].contains(&part), "{part}:\n{}", mail[0]);
    }
    let denied = w.moto.denials();
    assert!(denied.is_empty(), "{denied:?}");
}

/// The same with the report's failed rows cut down (one removed from the results file it
/// lists): the report lists fewer failed tasks than DescribeJob counts, so the run is not
/// committed, and the e-mail gives both counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_runs_job_whose_report_lost_failed_rows_does_not_commit_the_run() {
    let w = world().await;
    let job = w.inventory_job_with_two_failed_tasks().await;
    let base = format!("ferry/reports/job-{}", job.job_id);
    let read = |key: String| {
        let dest = w.dest.clone();
        async move {
            dest.get_object()
                .bucket(OPS_BUCKET)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
                .to_vec()
        }
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(format!("{base}/manifest.json")).await).unwrap();
    let failed_file = manifest["Results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["TaskExecutionStatus"] == "failed")
        .expect("a failed results file")["Key"]
        .as_str()
        .unwrap()
        .to_string();
    let rows = read(failed_file.clone()).await;
    let text = String::from_utf8(rows).unwrap();
    let kept: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(kept.lines().count(), 1, "{text}");
    w.dest
        .put_object()
        .bucket(OPS_BUCKET)
        .key(&failed_file)
        .body(ByteStream::from(kept.into_bytes()))
        .send()
        .await
        .unwrap();

    let (_, mail) = w.monitor(&job).await;
    let (run, index) = w.committed().await;
    assert_eq!(run, PREVIOUS_RUN, "the run was committed");
    for key in FAILED {
        assert!(copied_again(&index, key), "{key} is recorded as copied");
    }
    assert_eq!(mail.len(), 1, "{mail:?}");
    for part in [
        format!("Inventory run {RUN} is NOT recorded as copied"),
        format!(
            "the completion report s3://{OPS_BUCKET}/{base}/manifest.json lists 1 distinct failed \
             task(s) of s3://{SOURCE_BUCKET}, but DescribeJob counts 2"
        ),
    ] {
        assert!(mail[0].contains(&part), "{part}:\n{}", mail[0]);
    }
}

/// With the report as Batch Operations wrote it, the run commits (job-monitor as its template
/// role: it reads and writes the run's state): the failed objects are left out of the index, so
/// the next delta copies exactly those again, and the others are recorded as copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_runs_job_with_its_report_commits_the_run_without_the_failed_objects() {
    let w = world().await;
    let job = w.inventory_job_with_two_failed_tasks().await;
    let (_, mail) = w.monitor(&job).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(
        mail[0].contains(&format!(
            "Inventory run {RUN}: complete; the delta state now holds 2 object(s), leaving out 2 \
             whose task failed"
        )),
        "{}",
        mail[0]
    );
    let (run, index) = w.committed().await;
    assert_eq!(run, RUN);
    for key in KEYS {
        assert_eq!(
            copied_again(&index, key),
            FAILED.contains(&key),
            "{key}: {:?}",
            index.change(entry(key))
        );
    }
    let denied = w.moto.denials();
    assert!(denied.is_empty(), "{denied:?}");
}

/// `scripts/demo`: a few thousand objects between two local accounts, as a newcomer would see the
/// transfer: the plan's instructions, a first job that fails because one source-account
/// statement is missing (and the e-mail naming it), `ferry grant`, the redrive from the stack,
/// and the summary, each e-mail printed as received. Ignored in the suite (it is a show, and
/// every step of it is asserted by the tests above); `FERRY_DEMO_OBJECTS` sets the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/demo"]
async fn demo() {
    let count: usize = std::env::var("FERRY_DEMO_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let keys: Vec<String> = (0..count)
        .map(|i| format!("ledger/{:04}/entry {i:06}.pdf", i / 100))
        .collect();
    let show = |title: &str, text: &str| {
        println!("\n{}\n{title}\n{}\n{text}", "=".repeat(78), "=".repeat(78));
    };
    let started = std::time::Instant::now();
    let w = world_with(&keys).await;
    show(
        "ferry plan (the instructions, destination account 222222222222)",
        &ferry_plan::render::render_text(&w.plan, &w.spec),
    );
    println!("\nThe source account applies its statements, but one is left out:");
    println!("  FerryLedgerReadSourceObjects is missing from the source bucket's policy.");
    PlanGrants::without(Layer::ResourcePolicy, "FerryLedgerReadSourceObjects")
        .apply(&w.moto, &w.plan, REGION)
        .await;
    let failed = w.launch_and_run(&w.plan.transfer.fingerprint).await;
    println!(
        "Job {} ran: {} succeeded, {} failed.",
        failed.job_id,
        failed.succeeded(),
        failed.failed()
    );
    let (_, mail) = w.monitor(&failed).await;
    for m in &mail {
        show("E-mail: the job's summary", m);
    }
    println!("\n`ferry grant --side source --apply` in the source account adds the statement.");
    PlanGrants::all().apply(&w.moto, &w.plan, REGION).await;
    w.approve_plan().await;
    let (_, input, mail) = w.redrive_from_the_stack(&failed).await;
    for m in &mail {
        show("E-mail: the redrive", m);
    }
    let redriven = create_job(&w.moto, REGION, &input, None).await;
    let (_, mail) = w.monitor(&redriven).await;
    for m in &mail {
        show("E-mail: the redriven job's summary", m);
    }
    let decisions = w.moto.decisions();
    println!(
        "\n{count} objects copied in {:.1} s; the authorizing gateway decided {} requests ({} denied).",
        started.elapsed().as_secs_f64(),
        decisions.len(),
        decisions.iter().filter(|d| d.decision == "Deny").count()
    );
    assert_eq!(redriven.succeeded(), count as u64);
}
