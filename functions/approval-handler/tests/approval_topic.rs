//! approval-handler driven by the `events/approval-handler-*.json` fixtures against moto (state
//! bucket, SNS, SQS to read what people receive), a local stand-in for the WaitConditionHandle
//! URL, and a mocked S3 Control (moto has no Batch Operations).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_handler::{ApprovalHandler, Handled};
use aws_sdk_s3control::operation::create_job::{CreateJobError, CreateJobInput, CreateJobOutput};
use aws_sdk_s3control::types::error::TooManyRequestsException;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use ferry_aws::AwsPorts;
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::workflow::{create_transfer, ApprovalOutcome, StackContext};
use ferry_plan::approval::ApprovalToken;
use ferry_plan::stack::{ApprovalMode, TransferPlanProperties};
use ferry_testkit::{s3_client, Inbox, MotoServer, ResponseCatcher};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

/// The stack's WaitConditionHandle (the catcher stands for CloudFormation's presigned URL).
const WAIT_HANDLE: &str = "/wait-handle?X-Amz-Signature=abc";
const NOW: u64 = 1_795_500_000;
const STATE_BUCKET: &str = "ferry-state-test";
const MANIFEST_BUCKET: &str = "acme-ferry-manifests";
const REPORT_BUCKET: &str = "acme-ferry-reports";
const DESTINATION_BUCKET: &str = "acme-photos-archive";
const SOURCE_BUCKET: &str = "acme-photos-prod";
const SOURCE_ACCOUNT: &str = "111111111111";
/// The stack's ApproverArns (FERRY_APPROVER_ARNS), in moto's default account.
const APPROVER: &str = "arn:aws:iam::123456789012:role/storage-approvers";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture with its placeholder token replaced.
fn sns_fixture(name: &str, token: &ApprovalToken) -> Value {
    let text = serde_json::to_string(&fixture(name)).unwrap();
    serde_json::from_str(&text.replace("<token from the instructions e-mail>", token.expose()))
        .unwrap()
}

fn token(n: u8) -> ApprovalToken {
    ApprovalToken::from_random_bytes([n; 32])
}

fn fresh_token() -> Option<ApprovalToken> {
    Some(token(200))
}

fn now() -> u64 {
    NOW
}

struct World {
    _moto: MotoServer,
    catcher: ResponseCatcher,
    ports: AwsPorts,
    s3: aws_sdk_s3::Client,
    inbox: Inbox,
    approval_topic_arn: String,
    sns: aws_sdk_sns::Client,
    notification_topic_arn: String,
}

impl World {
    async fn start(create_job: &[&Rule]) -> World {
        let moto = MotoServer::start();
        let config = moto.sdk_config("us-east-1").await;
        let s3 = s3_client(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        for bucket in [
            STATE_BUCKET,
            MANIFEST_BUCKET,
            REPORT_BUCKET,
            DESTINATION_BUCKET,
        ] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        // What preflight looks at: the source bucket (the other account's), and the
        // destination's object ownership.
        let source_s3 = s3_client(
            &moto
                .sdk_config_for_account(SOURCE_ACCOUNT, "us-east-1")
                .await,
        );
        source_s3
            .create_bucket()
            .bucket(SOURCE_BUCKET)
            .send()
            .await
            .unwrap();
        ferry_testkit::bucket_owner_enforced(&s3, DESTINATION_BUCKET).await;
        s3.put_object()
            .bucket(MANIFEST_BUCKET)
            .key("photos/manifest.csv")
            .body(b"acme-photos-prod,a.jpg\n".to_vec().into())
            .send()
            .await
            .unwrap();
        let topic = sns
            .create_topic()
            .name("ferry-notifications")
            .send()
            .await
            .unwrap();
        let topic_arn = topic.topic_arn().unwrap().to_string();
        let approval_topic_arn = sns
            .create_topic()
            .name("ferry-approvals")
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();
        let inbox = Inbox::subscribe(&config, &topic_arn, "inbox").await;
        let s3control = mock_client!(aws_sdk_s3control, RuleMode::MatchAny, create_job, |c| c
            .retry_config(aws_sdk_s3control::config::retry::RetryConfig::disabled()));
        let catcher = ResponseCatcher::start();
        // FERRY_APPROVAL_WAIT_HANDLE: the stack's handle, the catcher's URL here.
        let ports = AwsPorts::from_config(&config, STATE_BUCKET.to_string(), topic_arn.clone())
            .with_clients(s3.clone(), s3control)
            .with_wait_handle(Some(catcher.url(WAIT_HANDLE)));
        World {
            _moto: moto,
            catcher,
            ports,
            s3,
            inbox,
            approval_topic_arn,
            sns,
            notification_topic_arn: topic_arn,
        }
    }

    fn ctx(&self) -> StackContext {
        StackContext {
            approval_topic_arn: self.approval_topic_arn.clone(),
            now_unix: NOW,
            retry: fast_retry(),
        }
    }

    /// Sets up the transfer as the stack's TransferPlan does, waiting on the catcher's URL.
    async fn set_up(&self, mode: ApprovalMode, t: &ApprovalToken) -> String {
        let create = fixture("stack-handler-create.json");
        let mut props =
            TransferPlanProperties::from_properties(&create["ResourceProperties"]).unwrap();
        props.approval_mode = mode;
        props.wait_handle_url = Some(self.catcher.url(WAIT_HANDLE));
        create_transfer(&self.ports, &props, t, &self.ctx())
            .await
            .unwrap()
            .fingerprint
    }

    fn handler(&self) -> ApprovalHandler<AwsPorts> {
        ApprovalHandler {
            ports: self.ports.clone(),
            approval_topic_arn: self.approval_topic_arn.clone(),
            approvers: vec![APPROVER.to_string()],
            retry: fast_retry(),
            clock: now,
            new_token: fresh_token,
        }
    }

    async fn inbox(&self) -> Vec<String> {
        self.inbox.messages().await
    }

    async fn state_keys(&self) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(STATE_BUCKET)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        first_pause: Duration::from_millis(1),
        max_pause: Duration::from_millis(2),
    }
}

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

fn recording_create_job(seen: Arc<Mutex<Vec<CreateJobInput>>>) -> Rule {
    mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(move |input| {
            seen.lock().unwrap().push(input.clone());
            true
        })
        .then_output(|| {
            CreateJobOutput::builder()
                .job_id("5a4b3c2d-0000-4000-8000-000000000001")
                .build()
        })
}

#[tokio::test]
async fn approve_in_wait_mode_signals_the_wait_handle() {
    let world = World::start(&[]).await;
    let t = token(1);
    world.set_up(ApprovalMode::Wait, &t).await;
    let handled = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap();
    assert_eq!(
        handled,
        Handled::Messages(vec![Ok(ApprovalOutcome::WaitSignalled)])
    );
    let puts = world.catcher.requests();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].method, "PUT");
    assert_eq!(puts[0].header("content-type"), Some(""));
    let body: Value = serde_json::from_slice(&puts[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"Status":"SUCCESS","UniqueId":"approval","Data":"approved","Reason":"approved by the approval topic"})
    );
    // The token is now spent: a redelivery of the same message is refused, not acted on twice.
    let again = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap();
    let Handled::Messages(results) = again else {
        panic!("messages")
    };
    assert!(results[0].as_ref().unwrap_err().contains("already used"));
    assert_eq!(world.catcher.requests().len(), 1);
}

#[tokio::test]
async fn reject_fails_the_wait_with_the_reason() {
    let world = World::start(&[]).await;
    let t = token(2);
    world.set_up(ApprovalMode::Wait, &t).await;
    let handled = world
        .handler()
        .handle(event(sns_fixture("approval-handler-reject.json", &t)))
        .await
        .unwrap();
    assert_eq!(
        handled,
        Handled::Messages(vec![Ok(ApprovalOutcome::Rejected {
            stack_signalled: true
        })])
    );
    let body: Value = serde_json::from_slice(&world.catcher.requests()[0].body).unwrap();
    assert_eq!(
        body["Status"], "FAILURE",
        "WaitCondition signals say FAILURE, not FAILED"
    );
    assert_eq!(body["Reason"], "Rejected: source policy not applied yet");
}

#[tokio::test]
async fn a_forged_token_is_refused_without_echoing_it() {
    let world = World::start(&[]).await;
    world.set_up(ApprovalMode::Wait, &token(3)).await;
    let handled = world
        .handler()
        .handle(event(fixture("approval-handler-forged.json")))
        .await
        .unwrap();
    let Handled::Messages(results) = handled else {
        panic!("messages")
    };
    let refusal = results[0].as_ref().unwrap_err();
    assert!(refusal.contains("unknown"), "{refusal}");
    assert!(world.catcher.requests().is_empty(), "nothing signalled");
    let inbox = world.inbox().await;
    let notice = inbox.last().unwrap();
    assert!(
        notice.contains("unknown") && !notice.contains(&"f".repeat(64)),
        "{notice}"
    );
}

/// #16 item 10: a refusal that can't be e-mailed is not "handled": the invocation fails, so
/// the SNS delivery is retried and, at last, lands in the dead-letter queue.
#[tokio::test]
async fn a_refusal_that_cannot_be_emailed_fails_the_invocation() {
    let world = World::start(&[]).await;
    world.set_up(ApprovalMode::Wait, &token(3)).await;
    world
        .sns
        .delete_topic()
        .topic_arn(&world.notification_topic_arn)
        .send()
        .await
        .unwrap();
    let err = world
        .handler()
        .handle(event(fixture("approval-handler-forged.json")))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("e-mailing that failed"), "{err}");
    assert!(err.contains("unknown"), "{err}");
    assert!(
        !err.contains(&"f".repeat(64)),
        "the token is not echoed: {err}"
    );
}

#[tokio::test]
async fn approve_in_deferred_mode_launches_the_job() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = recording_create_job(seen.clone());
    let world = World::start(&[&rule]).await;
    let t = token(4);
    let fingerprint = world.set_up(ApprovalMode::Deferred, &t).await;
    let logs = ferry_testkit::LogCapture::start();
    let handled = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap();
    let Handled::Messages(results) = handled else {
        panic!("messages")
    };
    let Ok(ApprovalOutcome::JobLaunched(job)) = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(job.job_id, "5a4b3c2d-0000-4000-8000-000000000001");

    let head = world
        .s3
        .head_object()
        .bucket(MANIFEST_BUCKET)
        .key("photos/manifest.csv")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap().trim_matches('"').to_string();
    let input = seen.lock().unwrap()[0].clone();
    assert_eq!(input.manifest().unwrap().location().unwrap().e_tag(), etag);
    assert_eq!(
        input.client_request_token(),
        Some(ferry_plan::job::client_request_token(&fingerprint, &etag).as_str())
    );
    assert!(world
        .state_keys()
        .await
        .contains(&format!("jobs/{fingerprint}/{}.json", job.job_id)));
    assert!(world
        .inbox()
        .await
        .iter()
        .any(|m| m.contains("--requested-job-status Ready")));
    // Logs name the token only by a prefix of its SHA-256.
    let logged = logs.text();
    assert!(
        logged.contains(&t.hash()[..12]) && logged.contains("job"),
        "{logged}"
    );
    assert!(!logged.contains(t.expose()), "token in the logs: {logged}");
}

#[tokio::test]
async fn throttling_is_retried_by_lambda_and_the_token_survives() {
    let always_throttled = mock!(aws_sdk_s3control::Client::create_job).then_error(|| {
        CreateJobError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Rate exceeded")
                .meta(
                    ErrorMetadata::builder()
                        .code("TooManyRequestsException")
                        .message("Rate exceeded")
                        .build(),
                )
                .build(),
        )
    });
    let world = World::start(&[&always_throttled]).await;
    let t = token(5);
    world.set_up(ApprovalMode::Deferred, &t).await;
    let err = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Try again later"), "{err}");
    // The failed attempt gave the token back, so Lambda's redelivery can still use it.
    assert!(!world
        .state_keys()
        .await
        .iter()
        .any(|k| k.ends_with(".decision")));
}

#[tokio::test]
async fn the_scheduled_check_hands_over_a_wait_about_to_time_out() {
    let world = World::start(&[]).await;
    let create = fixture("stack-handler-create.json");
    let mut props = TransferPlanProperties::from_properties(&create["ResourceProperties"]).unwrap();
    props.wait_handle_url = Some(world.catcher.url(WAIT_HANDLE));
    props.approval_timeout_seconds = 900; // already within the hand-over window
    create_transfer(&world.ports, &props, &token(6), &world.ctx())
        .await
        .unwrap();
    let handled = world
        .handler()
        .handle(event(fixture("approval-handler-deadline-check.json")))
        .await
        .unwrap();
    assert_eq!(handled, Handled::WaitsReleased(vec!["photos".to_string()]));
    let body: Value = serde_json::from_slice(&world.catcher.requests()[0].body).unwrap();
    assert_eq!(
        (body["Status"].as_str(), body["Data"].as_str()),
        (Some("SUCCESS"), Some("deferred"))
    );
}

#[tokio::test]
async fn resend_mails_a_new_token() {
    let world = World::start(&[]).await;
    let old = token(7);
    world.set_up(ApprovalMode::Wait, &old).await;
    let handled = world
        .handler()
        .handle(event(fixture("approval-handler-resend.json")))
        .await
        .unwrap();
    assert_eq!(
        handled,
        Handled::Messages(vec![Ok(ApprovalOutcome::Resent {
            transfer_name: "photos".into()
        })])
    );
    let inbox = world.inbox().await;
    assert_eq!(
        inbox.len(),
        4,
        "the first instructions and token e-mails, and the re-sent ones"
    );
    let new_token: Vec<&String> = inbox
        .iter()
        .filter(|m| m.contains(token(200).expose()))
        .collect();
    assert_eq!(new_token.len(), 1, "{inbox:#?}");
    assert!(!new_token[0].contains(old.expose()) && !new_token[0].contains("ferry grant"));
    let instructions: Vec<&String> = inbox.iter().filter(|m| m.contains("ferry grant")).collect();
    assert_eq!(instructions.len(), 2, "{inbox:#?}");
    assert!(
        instructions
            .iter()
            .all(|m| !m.contains(old.expose()) && !m.contains(token(200).expose())),
        "the instructions carry no token"
    );
}

/// #15: the decision names who may have published the approval: the approval topic's policy
/// lets only the stack's ApproverArns and the root user publish, and the handler takes them from
/// its environment (FERRY_APPROVER_ARNS), never from the message, which anyone who may publish
/// writes.
#[tokio::test]
async fn the_decision_names_the_approvers_from_the_environment_not_the_message() {
    let world = World::start(&[]).await;
    let t = token(8);
    let fingerprint = world.set_up(ApprovalMode::Wait, &t).await;
    let mut event = sns_fixture("approval-handler-approve.json", &t);
    event["Records"][0]["Sns"]["Message"] = Value::String(format!(
        r#"{{"action":"approve","token":"{}","decided_by":"arn:aws:iam::123456789012:role/mallory"}}"#,
        t.expose()
    ));
    let handled = world.handler().handle(self::event(event)).await.unwrap();
    assert_eq!(
        handled,
        Handled::Messages(vec![Ok(ApprovalOutcome::WaitSignalled)])
    );
    for key in [
        format!("approvals/{}.decision", t.hash()),
        format!("decisions/{fingerprint}.json"),
    ] {
        let body = world
            .s3
            .get_object()
            .bucket(STATE_BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let decision: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            decision["decided_by"],
            serde_json::json!({
                "topic_arn": world.approval_topic_arn,
                // The fixture's SNS MessageId: CloudTrail's Publish event has the same.
                "message_id": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                "one_of": [APPROVER, "arn:aws:iam::123456789012:root"],
            }),
            "{key}"
        );
    }
}

#[test]
fn approver_arns_of_another_account_or_not_arns_are_refused_with_the_fix() {
    let topic = "arn:aws:sns:us-east-1:123456789012:ferry-approvals";
    assert_eq!(
        approval_handler::parse_approvers(
            &format!("{APPROVER},arn:aws:iam::123456789012:user/alice"),
            topic
        ),
        Ok(vec![
            APPROVER.to_string(),
            "arn:aws:iam::123456789012:user/alice".to_string()
        ])
    );
    assert_eq!(approval_handler::parse_approvers("", topic), Ok(vec![]));
    for bad in [
        "arn:aws:iam::999999999999:role/storage-approvers",
        "arn:aws:sts::123456789012:assumed-role/storage-approvers/alice",
        "arn:aws:iam::123456789012:role/*",
        "storage-approvers",
    ] {
        let e = approval_handler::parse_approvers(bad, topic).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("FERRY_APPROVER_ARNS")
                && text.contains(bad)
                && text.contains("ApproverArns"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_event_of_another_kind_is_a_clear_error() {
    let world = World::start(&[]).await;
    let err = world
        .handler()
        .handle(event(serde_json::json!({"hello": "world"})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("approval-deadline-check"), "{err}");
}

#[tokio::test]
async fn preflight_refuses_an_approval_whose_job_would_fail_and_the_token_still_works_after_the_fix(
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = recording_create_job(seen.clone());
    let world = World::start(&[&rule]).await;
    let t = token(6);
    world.set_up(ApprovalMode::Deferred, &t).await;
    // The manifest is gone (say, the wrong key was given): the job could only fail.
    world
        .s3
        .delete_object()
        .bucket(MANIFEST_BUCKET)
        .key("photos/manifest.csv")
        .send()
        .await
        .unwrap();
    let handled = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap();
    let Handled::Messages(results) = handled else {
        panic!("messages")
    };
    assert!(
        matches!(&results[0], Err(e) if e.contains("preflight")),
        "{results:?}"
    );
    assert!(seen.lock().unwrap().is_empty(), "no job was requested");
    let inbox = world.inbox().await;
    let refusal = inbox
        .iter()
        .find(|m| m.contains("was not used"))
        .unwrap_or_else(|| panic!("a refusal e-mail: {inbox:?}"));
    assert!(
        refusal.contains(
            "FAIL manifest: s3://acme-ferry-manifests/photos/manifest.csv does not exist"
        ),
        "{refusal}"
    );
    assert!(refusal.contains("publish the same approval message again"));
    assert!(
        !refusal.contains(t.expose()),
        "no token in e-mails about refusals"
    );

    // Put back, the same message launches the job.
    world
        .s3
        .put_object()
        .bucket(MANIFEST_BUCKET)
        .key("photos/manifest.csv")
        .body(b"acme-photos-prod,a.jpg\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let handled = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap();
    assert!(
        matches!(&handled, Handled::Messages(r) if matches!(r[0], Ok(ApprovalOutcome::JobLaunched(_)))),
        "{handled:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// #15 item 2: an approval record is in the state bucket, which others may write. One naming a
/// URL other than the stack's handle never makes approval-handler send a request there.
#[tokio::test]
async fn a_planted_wait_handle_url_is_never_signalled() {
    let world = World::start(&[]).await;
    let t = token(1);
    let create = fixture("stack-handler-create.json");
    let mut props = TransferPlanProperties::from_properties(&create["ResourceProperties"]).unwrap();
    props.approval_mode = ApprovalMode::Wait;
    // The planted record: the attacker's URL (the same catcher, another path, stands for it).
    props.wait_handle_url = Some(world.catcher.url("/attacker?X-Amz-Signature=x"));
    create_transfer(&world.ports, &props, &t, &world.ctx())
        .await
        .unwrap();
    world.catcher.clear();

    let _ = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await;

    let sent: Vec<String> = world
        .catcher
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    assert!(
        !sent.iter().any(|p| p.starts_with("/attacker")),
        "no request to the planted URL: {sent:?}"
    );
}

/// Rewrites the manifest as someone who may write the manifest bucket would; returns its new
/// ETag without quotes.
async fn rewrite_manifest(world: &World, body: &'static [u8]) -> String {
    world
        .s3
        .put_object()
        .bucket(MANIFEST_BUCKET)
        .key("photos/manifest.csv")
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .trim_matches('"')
        .to_string()
}

async fn manifest_etag(world: &World) -> String {
    world
        .s3
        .head_object()
        .bucket(MANIFEST_BUCKET)
        .key("photos/manifest.csv")
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .trim_matches('"')
        .to_string()
}

/// #15 item 13, the attack: the manifest is in the destination account, where a PowerUser can
/// write, and the batch role reads the whole source bucket. Rewritten after the e-mails went out
/// (naming source keys of the attacker's choice) and before the approval, it is not what the
/// approver approved: the approval is refused, nothing is recorded or launched, the people are
/// told why (both ETags), and the token is given back. A `resend` then pins the manifest as it
/// is (once checked), and its token launches the job on exactly that.
#[tokio::test]
async fn a_manifest_rewritten_between_the_email_and_the_approval_is_not_launched() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = recording_create_job(seen.clone());
    let world = World::start(&[&rule]).await;
    let pinned = manifest_etag(&world).await;
    let t = token(9);
    let fingerprint = world.set_up(ApprovalMode::Deferred, &t).await;
    let mail = world.inbox().await;
    assert_eq!(mail.len(), 2, "{mail:#?}");
    assert!(
        mail.iter()
            .all(|m| m.contains(&format!("ETag \"{pinned}\""))),
        "both e-mails name the manifest's ETag {pinned}: {mail:#?}"
    );

    let rewritten = rewrite_manifest(
        &world,
        b"acme-photos-prod,payroll/2026.xlsx\nacme-photos-prod,keys/id_rsa\n",
    )
    .await;
    assert_ne!(rewritten, pinned);
    let handled = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap();
    let Handled::Messages(results) = handled else {
        panic!("messages")
    };
    assert!(
        matches!(&results[0], Err(e) if e.contains("the manifest changed since the plan was e-mailed")),
        "{results:?}"
    );
    assert!(seen.lock().unwrap().is_empty(), "no CreateJob");
    let keys = world.state_keys().await;
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("decisions/") || k.ends_with(".decision")),
        "nothing recorded, the token given back: {keys:?}"
    );
    let inbox = world.inbox().await;
    let refusal = inbox
        .iter()
        .find(|m| m.contains("was not used"))
        .unwrap_or_else(|| panic!("a refusal e-mail: {inbox:#?}"));
    assert!(
        refusal.contains(&format!("(pinned ETag {pinned}, now {rewritten})"))
            && refusal.contains("whoever rewrote s3://acme-ferry-manifests/photos/manifest.csv")
            && refusal.contains("resend"),
        "{refusal}"
    );
    assert!(!refusal.contains(t.expose()));

    // The approver looks at the manifest as it is now and asks for a token for it.
    let handled = world
        .handler()
        .handle(event(fixture("approval-handler-resend.json")))
        .await
        .unwrap();
    assert!(
        matches!(&handled, Handled::Messages(r) if matches!(r[0], Ok(ApprovalOutcome::Resent { .. }))),
        "{handled:?}"
    );
    let inbox = world.inbox().await;
    assert_eq!(inbox.len(), 2, "{inbox:#?}");
    assert!(
        inbox.iter().all(|m| m.contains(&rewritten)),
        "the new e-mails name the current ETag: {inbox:#?}"
    );
    let handled = world
        .handler()
        .handle(event(sns_fixture(
            "approval-handler-approve.json",
            &token(200),
        )))
        .await
        .unwrap();
    let Handled::Messages(results) = handled else {
        panic!("messages")
    };
    let Ok(ApprovalOutcome::JobLaunched(job)) = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(job.manifest_etag, rewritten);
    let input = seen.lock().unwrap()[0].clone();
    assert_eq!(
        input.manifest().unwrap().location().unwrap().e_tag(),
        rewritten
    );
    assert!(world
        .state_keys()
        .await
        .contains(&format!("decisions/{fingerprint}.json")));
}

/// In a versioned manifest bucket the e-mails name the manifest's version too, and the job is
/// created on that version (`Manifest.Location.ObjectVersionId`), so what Batch Operations reads
/// is what was approved even if the key is written again after CreateJob.
#[tokio::test]
async fn a_versioned_manifest_is_launched_on_the_emailed_version() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = recording_create_job(seen.clone());
    let world = World::start(&[&rule]).await;
    ferry_testkit::stack::enable_versioning(&world.s3, MANIFEST_BUCKET).await;
    rewrite_manifest(&world, b"acme-photos-prod,a.jpg\nacme-photos-prod,b.jpg\n").await;
    let head = world
        .s3
        .head_object()
        .bucket(MANIFEST_BUCKET)
        .key("photos/manifest.csv")
        .send()
        .await
        .unwrap();
    let version = head.version_id().expect("a version id").to_string();
    let t = token(10);
    world.set_up(ApprovalMode::Deferred, &t).await;
    let mail = world.inbox().await;
    assert!(
        mail.iter()
            .all(|m| m.contains(&format!("version id {version}"))),
        "{mail:#?}"
    );
    let handled = world
        .handler()
        .handle(event(sns_fixture("approval-handler-approve.json", &t)))
        .await
        .unwrap();
    assert!(
        matches!(&handled, Handled::Messages(r) if matches!(r[0], Ok(ApprovalOutcome::JobLaunched(_)))),
        "{handled:?}"
    );
    let input = seen.lock().unwrap()[0].clone();
    let location = input.manifest().unwrap().location().unwrap();
    assert_eq!(location.object_version_id(), Some(version.as_str()));
    assert_eq!(location.e_tag(), head.e_tag().unwrap().trim_matches('"'));
}
