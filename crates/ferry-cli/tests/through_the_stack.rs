//! A transfer through the stack, as people meet it, on two moto accounts behind the authorizing
//! gateway, each function as its template role (`FunctionRole`):
//! 1. TransferPlan create (stack-handler's workflow): the batch role is created from the plan,
//!    the plan stored, the instructions e-mailed with the approval token and the spec;
//! 2. the source account's administrator saves the spec from the e-mail and runs
//!    `ferry grant SPEC --side source --apply` (this binary, the source account's credentials);
//! 3. the approval is published: approval-handler runs preflight and launches the job;
//! 4. the Batch Operations emulator runs that CreateJob request as the batch role;
//! 5. job-monitor e-mails the summary.
//!
//! The source account is moto's default account, whose administrator the `ferry` binary acts as.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use approval_handler::{ApprovalHandler, Handled as ApprovalHandled};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use ferry_flows::report::monitor::MonitorOutcome;
use ferry_flows::workflow::{create_transfer, ApprovalOutcome, StackContext};
use ferry_listings::manifest::CsvManifestWriter;
use ferry_plan::approval::ApprovalToken;
use ferry_plan::stack::TransferPlanProperties;
use ferry_testkit::batch_ops::create_job;
use ferry_testkit::{kms_key, s3_client, FunctionRole, MotoServer};
use job_monitor::Handled as MonitorHandled;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use support::{approval_event, fast_retry, job_monitor_as, now, ports};

mod support;

const REGION: &str = "us-east-1";
const SOURCE_ACCOUNT: &str = MotoServer::DEFAULT_ACCOUNT;
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-photos-prod";
const DEST_BUCKET: &str = "acme-photos-archive";
const OPS_BUCKET: &str = "acme-photos-ops";
const KEYS: [&str; 3] = ["2026/11/a b.jpg", "2026/11/c+d.jpg", "raw/é.cr2"];

fn fresh_token() -> Option<ApprovalToken> {
    Some(ApprovalToken::from_random_bytes([9; 32]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_grant_approve_copy_and_summary_through_the_stack() {
    let moto = MotoServer::start();
    let source_config = moto.sdk_config(REGION).await;
    let dest_config = moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
    let source_key = kms_key(&source_config).await;
    let dest_key = kms_key(&dest_config).await;
    let (source, dest) = (s3_client(&source_config), s3_client(&dest_config));

    // The stack's parameters, and its functions' roles.
    let parameters = json!({
        "TransferName": "photos", "SourceAccountId": SOURCE_ACCOUNT, "SourceRegion": REGION,
        "SourceBucket": SOURCE_BUCKET, "SourceKmsKeyArn": source_key,
        "DestinationBucket": DEST_BUCKET, "DestinationKmsKeyArn": dest_key,
        "BucketKeyEnabled": "true", "StorageClass": "STANDARD_IA", "DestinationKeyPrefix": "from-prod/",
        "ManifestKind": "csv", "ManifestBucket": OPS_BUCKET, "ManifestKey": "ferry/photos.csv",
        "ReportBucket": OPS_BUCKET, "ReportPrefix": "ferry/reports", "ConfirmationRequired": "false",
        "ApprovalMode": "deferred", "NotificationEmail": "storage-team@example.com"
    });
    let role =
        |id: &'static str| FunctionRole::deploy(&moto, id, DEST_ACCOUNT, REGION, &parameters);
    let stack_role = role("StackHandlerFunction").await;
    let approval_role = role("ApprovalHandlerFunction").await;
    let monitor_role = role("JobMonitorFunction").await;

    // The accounts' own resources, and the stack's.
    source
        .create_bucket()
        .bucket(SOURCE_BUCKET)
        .send()
        .await
        .unwrap();
    for bucket in [DEST_BUCKET, OPS_BUCKET] {
        dest.create_bucket().bucket(bucket).send().await.unwrap();
    }
    ferry_testkit::bucket_owner_enforced(&dest, DEST_BUCKET).await;
    // The state bucket, both topics and the batch role's permissions boundary, as deployed.
    let inbox = ferry_testkit::stack::deploy_stack_resources(&dest_config, &stack_role).await;
    for (i, key) in KEYS.iter().enumerate() {
        source
            .put_object()
            .bucket(SOURCE_BUCKET)
            .key(*key)
            .body(ByteStream::from(format!("photo {i}").into_bytes()))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&source_key)
            .send()
            .await
            .unwrap();
    }
    let mut writer = CsvManifestWriter::new(Vec::new(), false);
    for key in KEYS {
        writer.write(SOURCE_BUCKET, key, None).unwrap();
    }
    dest.put_object()
        .bucket(OPS_BUCKET)
        .key("ferry/photos.csv")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(writer.finish().unwrap().0))
        .send()
        .await
        .unwrap();

    // 1. TransferPlan create, as stack-handler's role (the custom resource's properties are the
    //    template's, as CloudFormation sends them).
    let mut properties = parameters.clone();
    properties["DestinationAccountId"] = json!(DEST_ACCOUNT);
    properties["DestinationRegion"] = json!(REGION);
    let props = TransferPlanProperties::from_properties(&properties).expect("properties");
    let token = ApprovalToken::from_random_bytes([7; 32]);
    let ctx = StackContext {
        approval_topic_arn: stack_role.approval_topic_arn.clone(),
        now_unix: now(),
        retry: fast_retry(),
    };
    let (stack_ports, _) = ports(&stack_role);
    let ready = create_transfer(&stack_ports, &props, &token, &ctx)
        .await
        .unwrap_or_else(|e| panic!("TransferPlan: {e:?}\n{:#?}", moto.denials()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mail = inbox.messages().await;
    let instructions = mail
        .iter()
        .find(|m| m.contains("ferry grant"))
        .unwrap_or_else(|| panic!("no instructions e-mail: {mail:?}"));
    // #15: the instructions go to the source account: the token comes in its own e-mail.
    assert!(
        !instructions.contains(token.expose()),
        "the instructions carry no token"
    );
    assert!(
        mail.iter()
            .any(|m| m.contains(token.expose()) && !m.contains("ferry grant")),
        "the approval-token e-mail carries the token: {mail:?}"
    );

    // 2. The source account saves the spec from the e-mail and runs `ferry grant`.
    let spec_text = instructions
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the spec in the e-mail");
    let dir = std::env::temp_dir().join(format!("ferry-stack-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec_file = dir.join("ferry-photos.toml");
    std::fs::write(&spec_file, spec_text).unwrap();
    let mut grant = Command::new(env!("CARGO_BIN_EXE_ferry"));
    let out = moto
        .point_command(&mut grant, Path::new(&dir), REGION)
        .args(["grant"])
        .arg(&spec_file)
        .args(["--side", "source", "--apply"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ferry grant runs");
    assert!(
        out.status.success(),
        "ferry grant: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // 3. The approval, as approval-handler's role: preflight, then the job's launch.
    let (approval_ports, sent) = ports(&approval_role);
    let approval = ApprovalHandler {
        ports: approval_ports,
        approval_topic_arn: approval_role.approval_topic_arn.clone(),
        approvers: Vec::new(),
        retry: fast_retry(),
        clock: now,
        new_token: fresh_token,
    };
    let event = approval_event(&token);
    let handled = approval
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap_or_else(|e| panic!("approval: {e:?}\n{:#?}", moto.denials()));
    let ApprovalHandled::Messages(outcomes) = handled else {
        panic!("{handled:?}")
    };
    assert!(
        matches!(outcomes.as_slice(), [Ok(ApprovalOutcome::JobLaunched(_))]),
        "{outcomes:?}\n{:#?}",
        moto.denials()
    );
    let input = sent
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the job was launched");
    assert_eq!(input.role_arn(), Some(ready.role_arn.as_str()));

    // 4. The job, as Batch Operations would run it.
    let job = create_job(&moto, REGION, &input, None).await;
    assert_eq!(job.status.as_str(), "Complete", "{:?}", job.failure_reasons);
    assert_eq!(
        (job.succeeded(), job.failed()),
        (KEYS.len() as u64, 0),
        "{:?}",
        job.tasks
    );
    for key in KEYS {
        let head = dest
            .head_object()
            .bucket(DEST_BUCKET)
            .key(format!("from-prod/{key}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(head.ssekms_key_id(), Some(dest_key.as_str()));
        assert_eq!(
            head.storage_class().map(|c| c.as_str()),
            Some("STANDARD_IA")
        );
    }

    // 5. The summary, as job-monitor's role.
    // DescribeJob and GetJobTagging through the gateway, as job-monitor's role.
    let monitor = job_monitor_as(&monitor_role, DEST_ACCOUNT, REGION);
    let handled = monitor
        .handle(LambdaEvent::new(
            job.status_changed_event(),
            Context::default(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(
            handled,
            MonitorHandled::Outcome(MonitorOutcome::Summarised(_))
        ),
        "{handled:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mail = inbox.messages().await;
    assert!(
        mail.iter()
            .any(|m| m.contains(&job.job_id) && m.contains("3 succeeded, 0 failed")),
        "{mail:?}"
    );
    // Every function ran as its template role and needed nothing more. The only refusals are
    // preflight's probes of the source account, which it expects: HeadBucket, answered 403
    // with the bucket's Region, and DescribeKey of the other account's key (listed as "can't
    // be checked from here").
    let denied: Vec<(String, String)> = moto
        .denials()
        .into_iter()
        .filter(|d| d.principal.contains("ferry-e2e-"))
        .map(|d| (d.action, d.resource))
        .collect();
    assert_eq!(
        denied,
        [
            (
                "s3:ListBucket".to_string(),
                format!("arn:aws:s3:::{SOURCE_BUCKET}")
            ),
            ("kms:DescribeKey".to_string(), source_key.clone()),
        ],
    );
}
