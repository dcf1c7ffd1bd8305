//! stack-handler end to end: real-shaped CloudFormation events (`events/stack-handler-*.json`)
//! through `StackHandler::handle`, with the SDK ports (`AwsPorts`) against a private moto server
//! per test (S3, IAM, SNS, SQS, CloudFormation), S3 Control mocked with aws-smithy-mocks or
//! answered by the gateway's job table (moto has no Batch Operations), and a `ResponseCatcher`
//! standing in for the presigned `ResponseURL`. The events' stack is a real stack on moto (its id
//! replaces the fixtures' `StackId`), which the gateway reports in an operation
//! (`CREATE_IN_PROGRESS`) unless a test sets another status.
//!
//! Every test checks the one thing CloudFormation cannot live without: exactly one PUT of a
//! well-formed answer (empty Content-Type, ≤ 4096 bytes, ids copied verbatim).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3control::operation::create_job::{CreateJobInput, CreateJobOutput};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ferry_aws::AwsPorts;
use ferry_flows::aws_error::{AwsCallError, RetryPolicy};
use ferry_flows::ports::{
    BucketEventDelivery, InventoryRunTrigger, JobControl, Notifier, RoleAdmin, StackStatusApi,
    StateStore,
};
use ferry_flows::ports::{LaunchApi, ManifestHead};
use ferry_flows::workflow::{StoredPlan, AWAITING_APPROVAL};
use ferry_plan::approval::{ApprovalRecord, ApprovalToken};
use ferry_plan::job::{client_request_token, CreateJobRequest};
use ferry_plan::policy::batch_role::BatchRole;
use ferry_plan::stack::{ApprovalMode, TransferPlanProperties};
use ferry_plan::Plan;
use ferry_testkit::{s3_client, CapturedRequest, MotoServer, ResponseCatcher};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use stack_handler::{response_body, StackHandler, StackPorts, MAX_RESPONSE_BYTES};

const REGION: &str = "us-east-1";
const STATE_BUCKET: &str = "ferry-state-test";
const CFN_PATH: &str = "/cfn-response?X-Amz-Signature=abc";
const WAIT_PATH: &str = "/wait-handle?X-Amz-Signature=def";
/// 2026-11-24T02:15:00Z, the fixtures' X-Amz-Date.
const NOW_UNIX: u64 = 1_795_486_500;
const ROLE_NAME: &str = "ferry-photos-batch";
const POLICY_NAME: &str = "ferry-photos";
const MANIFEST_BUCKET: &str = "acme-ferry-manifests";
const MANIFEST_KEY: &str = "photos/manifest.csv";
const JOB_ID: &str = "job-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

fn fixed_now() -> u64 {
    NOW_UNIX
}
fn token_a() -> Option<ApprovalToken> {
    Some(ApprovalToken::from_random_bytes([0xa7; 32]))
}
fn token_b() -> Option<ApprovalToken> {
    Some(ApprovalToken::from_random_bytes([0x3c; 32]))
}
fn no_token() -> Option<ApprovalToken> {
    None
}
fn the(token: fn() -> Option<ApprovalToken>) -> ApprovalToken {
    token().expect("a fixed token")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The name of the stack on moto the fixtures' events come from.
const STACK_NAME: &str = "ferry";

/// stack-handler's pins for the fixtures' stack, whose id is `stack_id`: its TransferPlan and
/// FirstJob properties.
fn fixture_pins(stack_id: &str) -> ferry_flows::stack_pins::StackPins {
    let plan = read_json("events/stack-handler-create.json");
    let job = read_json("events/stack-handler-first-job-create.json");
    ferry_testkit::stack::stack_pins_for(
        stack_id,
        &plan["ResourceProperties"],
        &job["ResourceProperties"],
    )
}

fn read_json(relative: &str) -> Value {
    let path = workspace().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// `ferry plan --format json` for the fixtures' transfer (golden-tested in ferry-cli).
fn golden_plan() -> Value {
    read_json("crates/ferry-cli/tests/golden/sse-s3-csv.json")
}

fn plan_of(properties: &Value) -> Plan {
    let props = TransferPlanProperties::from_properties(properties).expect("valid properties");
    Plan::build(&props.spec).expect("a valid spec")
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        first_pause: Duration::from_millis(1),
        max_pause: Duration::from_millis(2),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// IAM returns policy documents URL-encoded (RFC 3986); moto may return them as sent.
fn policy_json(document: &str) -> Value {
    serde_json::from_str(document).unwrap_or_else(|_| {
        serde_json::from_str(&percent_decode(document)).unwrap_or_else(|e| {
            panic!("policy document is neither JSON nor URL-encoded JSON ({e}): {document}")
        })
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("decoded policy is UTF-8")
}

/// One message that reached the notification topic.
#[derive(Debug, Clone)]
struct Email {
    subject: String,
    body: String,
}

/// A moto server with the stack's resources (state bucket, notification and approval topics,
/// an SQS queue subscribed to the notification topic) and a catcher for the ResponseURL.
struct Env {
    moto: MotoServer,
    catcher: ResponseCatcher,
    /// The stack on moto the events come from (`FERRY_STACK_ID`).
    stack_id: String,
    config: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    sqs: aws_sdk_sqs::Client,
    notification_topic_arn: String,
    approval_topic_arn: String,
    queue_url: String,
}

impl Env {
    async fn start() -> Env {
        let moto = MotoServer::start();
        let config = moto.sdk_config(REGION).await;
        let s3 = s3_client(&config);
        let iam = aws_sdk_iam::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);

        s3.create_bucket()
            .bucket(STATE_BUCKET)
            .send()
            .await
            .expect("state bucket");
        let topic = |name: &'static str| {
            let sns = sns.clone();
            async move {
                sns.create_topic()
                    .name(name)
                    .send()
                    .await
                    .expect("create topic")
                    .topic_arn()
                    .expect("topic ARN")
                    .to_string()
            }
        };
        let notification_topic_arn = topic("ferry-notifications").await;
        let approval_topic_arn = topic("ferry-approvals").await;

        let queue_url = sqs
            .create_queue()
            .queue_name("ferry-inbox")
            .send()
            .await
            .expect("create queue")
            .queue_url()
            .expect("queue URL")
            .to_string();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue ARN");
        sns.subscribe()
            .topic_arn(&notification_topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("subscribe the queue");

        // The stack the events come from, reported in an operation (CREATE_IN_PROGRESS).
        let stack_id =
            ferry_testkit::stack::deploy_cloudformation_stack(&moto, &config, STACK_NAME).await;

        Env {
            moto,
            catcher: ResponseCatcher::start(),
            stack_id,
            config,
            s3,
            iam,
            sqs,
            notification_topic_arn,
            approval_topic_arn,
            queue_url,
        }
    }

    /// The SDK ports as the function builds them, S3 Control replaced by `s3control`.
    fn ports(&self, s3control: aws_sdk_s3control::Client) -> AwsPorts {
        self.ports_with_bucket(s3control, STATE_BUCKET)
    }

    fn ports_with_bucket(&self, s3control: aws_sdk_s3control::Client, bucket: &str) -> AwsPorts {
        AwsPorts::from_config(
            &self.config,
            bucket.to_string(),
            self.notification_topic_arn.clone(),
        )
        .with_clients(self.s3.clone(), s3control)
    }

    fn handler<P: StackPorts>(&self, ports: P) -> StackHandler<P> {
        StackHandler {
            ports: Arc::new(ports),
            http: reqwest::Client::new(),
            approval_topic_arn: self.approval_topic_arn.clone(),
            retry: fast_retry(),
            answer_margin: Duration::from_secs(1),
            // Bounds a hang in a test that does not mean to exercise the deadline.
            default_budget: Duration::from_secs(60),
            clock: fixed_now,
            new_token: token_a,
            // As the template pins them for the fixtures' stack.
            pins: fixture_pins(&self.stack_id),
            response_urls: ferry_testkit::stack::local_presigned_urls(),
        }
    }

    /// A fixture with its URLs pointed at the catcher, from the stack on moto.
    fn event(&self, fixture: &str) -> Value {
        let mut event = read_json(&format!("events/{fixture}"));
        event["ResponseURL"] = json!(self.catcher.url(CFN_PATH));
        event["StackId"] = json!(self.stack_id);
        for props in ["ResourceProperties", "OldResourceProperties"] {
            if event[props]["ApprovalWaitHandle"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
            {
                event[props]["ApprovalWaitHandle"] = json!(self.catcher.url(WAIT_PATH));
            }
        }
        event
    }

    /// Invokes the handler and returns the one answer CloudFormation received, checked for
    /// the response contract.
    async fn invoke<P: StackPorts>(&self, handler: &StackHandler<P>, event: Value) -> Value {
        self.invoke_with(handler, event, Context::default()).await
    }

    async fn invoke_with<P: StackPorts>(
        &self,
        handler: &StackHandler<P>,
        event: Value,
        context: Context,
    ) -> Value {
        self.catcher.clear();
        handler
            .handle(LambdaEvent::new(event.clone(), context))
            .await
            .expect("handle answers CloudFormation");
        let puts = self.catcher.requests();
        assert_eq!(
            puts.len(),
            1,
            "exactly one answer to the ResponseURL: {puts:#?}"
        );
        let answer = checked_answer(&puts[0]);
        for id in ["StackId", "RequestId", "LogicalResourceId"] {
            assert_eq!(answer[id], event[id], "{id} is copied verbatim");
        }
        answer
    }

    async fn state_keys(&self) -> Vec<String> {
        self.s3
            .list_objects_v2()
            .bucket(STATE_BUCKET)
            .send()
            .await
            .expect("list the state bucket")
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    async fn state_object(&self, key: &str) -> Vec<u8> {
        self.s3
            .get_object()
            .bucket(STATE_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get s3://{STATE_BUCKET}/{key}: {e:?}"))
            .body
            .collect()
            .await
            .expect("object body")
            .to_vec()
    }

    /// Every message published to the notification topic since the last call.
    async fn emails(&self) -> Vec<Email> {
        let mut emails = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive from the queue");
            if out.messages().is_empty() {
                return emails;
            }
            for m in out.messages() {
                let raw = m.body().unwrap_or_default();
                // SNS envelope unless delivered raw.
                let email = match serde_json::from_str::<Value>(raw) {
                    Ok(envelope) if envelope["Message"].is_string() => Email {
                        subject: envelope["Subject"].as_str().unwrap_or_default().to_string(),
                        body: envelope["Message"].as_str().unwrap_or_default().to_string(),
                    },
                    _ => Email {
                        subject: String::new(),
                        body: raw.to_string(),
                    },
                };
                emails.push(email);
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete from the queue");
            }
        }
    }

    async fn role_exists(&self) -> bool {
        match self.iam.get_role().role_name(ROLE_NAME).send().await {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                false
            }
            Err(e) => panic!("GetRole {ROLE_NAME}: {e:?}"),
        }
    }

    async fn trust_policy(&self) -> Value {
        let out = self
            .iam
            .get_role()
            .role_name(ROLE_NAME)
            .send()
            .await
            .expect("GetRole");
        let role = out.role().expect("a role");
        policy_json(role.assume_role_policy_document().expect("a trust policy"))
    }

    async fn inline_policy(&self) -> Value {
        let out = self
            .iam
            .get_role_policy()
            .role_name(ROLE_NAME)
            .policy_name(POLICY_NAME)
            .send()
            .await
            .expect("GetRolePolicy");
        policy_json(out.policy_document())
    }

    /// Creates the manifest in moto; returns its ETag as S3 gives it (quoted).
    async fn put_manifest(&self) -> String {
        self.s3
            .create_bucket()
            .bucket(MANIFEST_BUCKET)
            .send()
            .await
            .expect("manifest bucket");
        self.s3
            .put_object()
            .bucket(MANIFEST_BUCKET)
            .key(MANIFEST_KEY)
            .body(ByteStream::from_static(
                b"acme-photos-prod,2026/11/a.jpg\nacme-photos-prod,2026/11/b.jpg\n",
            ))
            .send()
            .await
            .expect("put the manifest")
            .e_tag()
            .expect("an ETag")
            .to_string()
    }
}

/// The PUT's contract: method, URL, empty Content-Type, size, JSON with every id present.
fn checked_answer(put: &CapturedRequest) -> Value {
    assert_eq!(put.method, "PUT");
    assert_eq!(
        put.path_and_query, CFN_PATH,
        "the presigned URL is used as given"
    );
    assert_eq!(
        put.header("content-type"),
        Some(""),
        "Content-Type present and empty (the URL was signed without one): {:?}",
        put.headers
    );
    assert!(
        put.body.len() <= MAX_RESPONSE_BYTES,
        "CloudFormation refuses bodies over 4096 bytes: {} bytes",
        put.body.len()
    );
    let answer: Value = serde_json::from_slice(&put.body)
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {}", put.body_text()));
    for field in [
        "Status",
        "PhysicalResourceId",
        "StackId",
        "RequestId",
        "LogicalResourceId",
    ] {
        assert!(
            answer[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing: {answer:#}"
        );
    }
    if answer["Status"] == "FAILED" {
        assert!(
            answer["Reason"].as_str().is_some_and(|s| !s.is_empty()),
            "FAILED needs a Reason: {answer:#}"
        );
    }
    if let Some(data) = answer["Data"].as_object() {
        assert!(
            data.values().all(Value::is_string),
            "Data values are strings: {answer:#}"
        );
    }
    answer
}

fn reason(answer: &Value) -> &str {
    answer["Reason"].as_str().unwrap_or_default()
}

fn no_s3control() -> aws_sdk_s3control::Client {
    mock_client!(aws_sdk_s3control, [])
}

// ---------------------------------------------------------------------------------------------
// Ports with an injected fault in RoleAdmin; everything else goes to AwsPorts.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `apply_role` panics.
    PanicOnApplyRole,
    /// `apply_role` and `delete_role` sleep 30 s before doing their work.
    HangInRoleAdmin,
}

struct FaultyPorts {
    inner: AwsPorts,
    fault: Fault,
    /// Set when a hanging call is dropped before it finished (its task was cancelled).
    hang_cancelled: Arc<AtomicBool>,
}

impl FaultyPorts {
    fn new(inner: AwsPorts, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            hang_cancelled: Arc::default(),
        }
    }

    async fn hang(&self) {
        struct SetOnDrop(Option<Arc<AtomicBool>>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                if let Some(flag) = self.0.take() {
                    flag.store(true, Ordering::SeqCst);
                }
            }
        }
        let mut guard = SetOnDrop(Some(self.hang_cancelled.clone()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        guard.0 = None; // finished: not cancelled
    }
}

impl StateStore for FaultyPorts {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsCallError> {
        self.inner.put(key, body).await
    }
    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<bool, AwsCallError> {
        self.inner.put_if_absent(key, body).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsCallError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), AwsCallError> {
        self.inner.delete(key).await
    }
}

impl InventoryRunTrigger for FaultyPorts {
    async fn start_inventory_run(&self, event: &Value) -> Result<(), AwsCallError> {
        self.inner.start_inventory_run(event).await
    }
}

impl Notifier for FaultyPorts {
    async fn notify(&self, subject: &str, body: &str) -> Result<(), AwsCallError> {
        self.inner.notify(subject, body).await
    }
}

impl RoleAdmin for FaultyPorts {
    async fn apply_role(&self, role: &BatchRole) -> Result<(), AwsCallError> {
        match self.fault {
            Fault::PanicOnApplyRole => panic!("injected fault: apply_role panics"),
            Fault::HangInRoleAdmin => self.hang().await,
        }
        self.inner.apply_role(role).await
    }
    async fn delete_role(&self, role: &BatchRole) -> Result<(), AwsCallError> {
        if self.fault == Fault::HangInRoleAdmin {
            self.hang().await;
        }
        self.inner.delete_role(role).await
    }
}

impl LaunchApi for FaultyPorts {
    async fn head_manifest(&self, bucket: &str, key: &str) -> Result<ManifestHead, AwsCallError> {
        self.inner.head_manifest(bucket, key).await
    }
    async fn get_manifest(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<Vec<u8>, AwsCallError> {
        self.inner.get_manifest(bucket, key, etag).await
    }
    async fn create_job(&self, request: &CreateJobRequest) -> Result<String, AwsCallError> {
        self.inner.create_job(request).await
    }
    async fn pause(&self, duration: Duration) {
        self.inner.pause(duration).await
    }
}

impl JobControl for FaultyPorts {
    async fn job_status(&self, account_id: &str, job_id: &str) -> Result<String, AwsCallError> {
        self.inner.job_status(account_id, job_id).await
    }
    async fn cancel_job(&self, account_id: &str, job_id: &str) -> Result<(), AwsCallError> {
        self.inner.cancel_job(account_id, job_id).await
    }
    async fn job_tags(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> Result<Vec<ferry_plan::job::S3Tag>, AwsCallError> {
        self.inner.job_tags(account_id, job_id).await
    }
}

impl StackStatusApi for FaultyPorts {
    async fn stack_status(&self, stack_id: &str) -> Result<String, AwsCallError> {
        self.inner.stack_status(stack_id).await
    }
}

impl BucketEventDelivery for FaultyPorts {
    async fn enable_eventbridge_delivery(
        &self,
        bucket: &str,
        expected_owner: &str,
    ) -> Result<bool, AwsCallError> {
        self.inner
            .enable_eventbridge_delivery(bucket, expected_owner)
            .await
    }
}

/// A Lambda context whose deadline is `ms` from now.
fn context_with_deadline_in(ms: u64) -> Context {
    let mut context = Context::default();
    context.deadline = now_ms() + ms;
    context
}

// ---------------------------------------------------------------------------------------------
// 1. Create

#[tokio::test]
async fn transfer_plan_create_deploys_exactly_the_plans_role_stores_the_plan_and_emails_the_token()
{
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let event = env.event("stack-handler-create.json");
    let plan = plan_of(&event["ResourceProperties"]);
    let golden = golden_plan();

    let logs = ferry_testkit::LogCapture::start();
    let answer = env.invoke(&handler, event.clone()).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["PhysicalResourceId"], "ferry-transfer-photos");
    let fingerprint = answer["Data"]["Fingerprint"]
        .as_str()
        .expect("Data.Fingerprint");
    // The same transfer has the same fingerprint in `ferry plan` and in the stack.
    assert_eq!(fingerprint, plan.transfer.fingerprint);
    assert_eq!(fingerprint, golden["transfer"]["fingerprint"]);
    assert_eq!(answer["Data"]["RoleArn"], golden["batch_role"]["arn"]);

    // The deployed documents are `ferry plan`'s.
    assert_eq!(
        env.trust_policy().await,
        golden["batch_role"]["trust_policy"]
    );
    assert_eq!(
        env.inline_policy().await,
        golden["batch_role"]["permissions_policy"]
    );

    // State: the plan, the record that it is the stack's current plan (#15), and the approval
    // under the token's hash only.
    let token = the(token_a);
    let plan_key = format!("plans/{fingerprint}.json");
    let approval_key = format!("approvals/{}.json", token.hash());
    let mut keys = env.state_keys().await;
    keys.sort();
    assert_eq!(
        keys,
        vec![
            approval_key.clone(),
            "plans/current.json".to_string(),
            plan_key.clone()
        ]
    );
    let current: ferry_flows::workflow::CurrentPlan =
        serde_json::from_slice(&env.state_object("plans/current.json").await).unwrap();
    assert_eq!(
        (current.fingerprint.as_str(), current.recorded_unix),
        (fingerprint, NOW_UNIX)
    );
    let stored: StoredPlan = serde_json::from_slice(&env.state_object(&plan_key).await).unwrap();
    assert_eq!(stored.fingerprint, fingerprint);
    assert_eq!(
        stored.spec,
        TransferPlanProperties::from_properties(&event["ResourceProperties"])
            .unwrap()
            .spec
    );
    let record: ApprovalRecord =
        serde_json::from_slice(&env.state_object(&approval_key).await).unwrap();
    assert_eq!(record.plan_fingerprint, fingerprint);
    assert_eq!(record.mode, ApprovalMode::Wait);
    assert_eq!(
        record.wait_handle_url.as_deref(),
        Some(env.catcher.url(WAIT_PATH).as_str())
    );
    assert_eq!(record.wait_deadline, Some(NOW_UNIX + 43_200));
    for key in &keys {
        let body = String::from_utf8_lossy(&env.state_object(key).await).into_owned();
        assert!(
            !body.contains(token.expose()),
            "{key} holds the token itself"
        );
    }

    // #15: the instructions e-mail (forwarded to the source account) carries no token; the
    // approval-token e-mail carries it in the approve command.
    let emails = env.emails().await;
    assert_eq!(emails.len(), 2, "{emails:#?}");
    let subject = |part: &str| {
        emails
            .iter()
            .find(|e| e.subject.contains(part))
            .unwrap_or_else(|| panic!("no e-mail about {part}: {emails:#?}"))
    };
    let instructions = subject("approve copying");
    assert!(instructions.subject.contains("photos"), "{instructions:?}");
    assert!(
        !instructions.body.contains(token.expose()),
        "{}",
        instructions.body
    );
    let email = subject("approval token");
    assert!(email.body.contains(token.expose()), "{}", email.body);
    let approve = format!(
        r#"--message '{{"action":"approve","token":"{}"}}'"#,
        token.expose()
    );
    let topic = format!("--topic-arn {} ", env.approval_topic_arn);
    assert!(
        email.body.lines().any(|l| l.starts_with("aws sns publish")
            && l.contains(&topic)
            && l.contains(&approve)),
        "no approve command naming {}:\n{}",
        env.approval_topic_arn,
        email.body
    );
    assert!(email.subject.contains("photos"), "{email:?}");
    // The token goes only to the e-mail: never to the logs.
    let logged = logs.text();
    assert!(
        logged.contains("\"level\":\"INFO\""),
        "logs captured: {logged}"
    );
    assert!(
        !logged.contains(token.expose()),
        "token in the logs: {logged}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Invalid properties

fn invalid_properties(event: &Value) -> Value {
    let mut props = event["ResourceProperties"].clone();
    props["SourceAccountId"] = json!("1234");
    props["SourceBucket"] = json!("Bad_Bucket");
    props["ManifestAccountId"] = json!("111111111111");
    props
}

#[tokio::test]
async fn invalid_properties_answer_failed_create_nothing_and_their_delete_succeeds() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let mut create = env.event("stack-handler-create.json");
    let bad = invalid_properties(&create);
    create["ResourceProperties"] = bad.clone();

    let answer = env.invoke(&handler, create.clone()).await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    let failed_id = format!("ferry-failed-{}", create["RequestId"].as_str().unwrap());
    assert_eq!(answer["PhysicalResourceId"], failed_id.as_str());
    assert!(reason(&answer).contains("ManifestAccountId"), "{answer:#}");
    assert!(!env.role_exists().await, "no role for an invalid transfer");
    assert!(env.state_keys().await.is_empty());
    assert!(env.emails().await.is_empty());

    // CloudFormation then deletes what the failed Create "made", with the same properties.
    let mut delete = env.event("stack-handler-delete.json");
    delete["ResourceProperties"] = bad;
    delete["PhysicalResourceId"] = json!(failed_id);
    let answer = env.invoke(&handler, delete).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["PhysicalResourceId"], failed_id.as_str());
}

#[tokio::test]
async fn invalid_properties_reason_names_every_bad_field() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let mut create = env.event("stack-handler-create.json");
    create["ResourceProperties"] = invalid_properties(&create);

    let answer = env.invoke(&handler, create).await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    let reason = reason(&answer);
    for (property, spec_field) in [
        ("SourceAccountId", "source.account_id"),
        ("SourceBucket", "source.bucket"),
        ("ManifestAccountId", "manifest.account_id"),
    ] {
        assert!(
            reason.contains(property) || reason.contains(spec_field),
            "the Reason does not name {property}:\n{reason}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. SDK error

#[tokio::test]
async fn missing_state_bucket_answers_failed_once_naming_the_plan_store() {
    let env = Env::start().await;
    let handler = env.handler(env.ports_with_bucket(no_s3control(), "ferry-state-does-not-exist"));
    let event = env.event("stack-handler-create.json");

    let answer = env.invoke(&handler, event.clone()).await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    assert!(reason(&answer).contains("storing the plan"), "{answer:#}");
    assert_eq!(
        answer["PhysicalResourceId"],
        format!("ferry-failed-{}", event["RequestId"].as_str().unwrap()).as_str()
    );
    assert!(
        env.emails().await.is_empty(),
        "no e-mail for a failed Create"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Panic

#[tokio::test]
async fn a_panic_in_the_work_still_answers_failed() {
    let env = Env::start().await;
    let handler = env.handler(FaultyPorts::new(
        env.ports(no_s3control()),
        Fault::PanicOnApplyRole,
    ));

    let answer = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    assert!(reason(&answer).contains("panic"), "{answer:#}");
    assert!(env.emails().await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 5. Deadline

#[tokio::test]
async fn work_that_outlives_the_lambda_deadline_answers_failed_in_time() {
    let env = Env::start().await;
    let handler = env.handler(FaultyPorts::new(
        env.ports(no_s3control()),
        Fault::HangInRoleAdmin,
    ));

    let started = Instant::now();
    let answer = env
        .invoke_with(
            &handler,
            env.event("stack-handler-create.json"),
            context_with_deadline_in(3000),
        )
        .await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_secs(10),
        "answered only after {elapsed:?}"
    );
    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    assert!(reason(&answer).contains("ran out of time"), "{answer:#}");
}

#[tokio::test]
async fn a_delete_that_outlives_the_deadline_answers_success_with_a_reason() {
    let env = Env::start().await;
    let handler = env.handler(FaultyPorts::new(
        env.ports(no_s3control()),
        Fault::HangInRoleAdmin,
    ));
    let event = env.event("stack-handler-delete.json");

    let started = Instant::now();
    let answer = env
        .invoke_with(&handler, event.clone(), context_with_deadline_in(3000))
        .await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_secs(10),
        "answered only after {elapsed:?}"
    );
    assert_eq!(
        answer["Status"], "SUCCESS",
        "deletes never fail: {answer:#}"
    );
    assert!(reason(&answer).contains("ran out of time"), "{answer:#}");
    assert_eq!(answer["PhysicalResourceId"], event["PhysicalResourceId"]);
}

#[tokio::test]
async fn work_that_ran_out_of_time_is_cancelled_not_left_running() {
    let env = Env::start().await;
    let ports = FaultyPorts::new(env.ports(no_s3control()), Fault::HangInRoleAdmin);
    let cancelled = ports.hang_cancelled.clone();
    let handler = env.handler(ports);

    let answer = env
        .invoke_with(
            &handler,
            env.event("stack-handler-create.json"),
            context_with_deadline_in(3000),
        )
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer:#}");

    // Left running, the Create would go on (in a later invocation of a thawed Lambda) to
    // create the role and e-mail a token after CloudFormation rolled the resource back.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cancelled.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cancelled.load(Ordering::SeqCst),
        "the timed-out work is still running"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Response size

#[tokio::test]
async fn an_answer_with_a_huge_reason_is_cut_to_4096_bytes_keeping_every_id() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let mut event = env.event("stack-handler-create.json");
    event["ResourceProperties"]["DestinationKeyPrefix"] = json!("p".repeat(5000));

    let answer = env.invoke(&handler, event.clone()).await; // checks ≤ 4096 bytes and the ids

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    assert_eq!(
        answer["PhysicalResourceId"],
        format!("ferry-failed-{}", event["RequestId"].as_str().unwrap()).as_str()
    );
    assert!(
        reason(&answer).contains("DestinationKeyPrefix"),
        "{answer:#}"
    );
    assert!(
        reason(&answer).ends_with("(cut; the full text is in the function's log)"),
        "{answer:#}"
    );
}

fn big_response(reason: String) -> Response {
    let mut response = Response::default();
    response.status = Status::Failed;
    response.reason = Some(reason);
    response.physical_resource_id = "ferry-failed-7f2d4c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f".into();
    response.stack_id =
        "arn:aws:cloudformation:us-east-1:222222222222:stack/ferry/5b8f3e40-c9a1-11f0-8de9-0a1b2c3d4e5f".into();
    response.request_id = "7f2d4c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f".into();
    response.logical_resource_id = "TransferPlan".into();
    response.data.insert(
        "Fingerprint".into(),
        "fdd93b876f38e7460e6f631565f84791".into(),
    );
    response
}

/// The body must fit, parse, and keep every id and the Data; returns the Reason sent.
fn cut_reason(response: &Response) -> String {
    let body = response_body(response);
    assert!(body.len() <= MAX_RESPONSE_BYTES, "{} bytes", body.len());
    let parsed: Response = serde_json::from_slice(&body).expect("valid JSON");
    assert_eq!(parsed.status, response.status);
    assert_eq!(parsed.physical_resource_id, response.physical_resource_id);
    assert_eq!(parsed.stack_id, response.stack_id);
    assert_eq!(parsed.request_id, response.request_id);
    assert_eq!(parsed.logical_resource_id, response.logical_resource_id);
    assert_eq!(parsed.data, response.data);
    parsed.reason.expect("a Reason")
}

#[test]
fn response_body_cuts_only_the_reason_at_a_char_boundary_and_stays_valid_json() {
    let response = big_response(format!(
        "start: {} end",
        "Überweisung fehlgeschlagen; ".repeat(400)
    ));
    let reason = cut_reason(&response);
    assert!(reason.starts_with("start: Überweisung"), "{reason}");
    assert!(
        reason.len() > 3000,
        "the Reason keeps what fits: {} bytes",
        reason.len()
    );

    // Small answers go out unchanged.
    let small = big_response("short".into());
    assert_eq!(response_body(&small), serde_json::to_vec(&small).unwrap());
}

#[test]
fn response_body_keeps_the_start_of_an_escape_heavy_reason() {
    // A validation Reason quoting a value full of quotes, as `{:?}` renders it.
    let value = format!("{:?}", "\"x\"/".repeat(1500));
    let reason = cut_reason(&big_response(format!(
        "the spec has 1 problem:\n  - destination.key_prefix = {value}: is longer than 1024 characters"
    )));
    assert!(
        reason.starts_with("the spec has 1 problem:\n  - destination.key_prefix"),
        "the Reason lost what went wrong: {reason:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Update

#[tokio::test]
async fn transfer_plan_update_replans_and_an_unchanged_update_sends_nothing() {
    let env = Env::start().await;
    let created = env
        .invoke(
            &env.handler(env.ports(no_s3control())),
            env.event("stack-handler-create.json"),
        )
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    assert_eq!(env.emails().await.len(), 2, "instructions and token");
    let old_fingerprint = created["Data"]["Fingerprint"].as_str().unwrap().to_string();

    let mut handler = env.handler(env.ports(no_s3control()));
    handler.new_token = token_b;
    let mut update = env.event("stack-handler-update.json");
    // The fixture changes StorageClass; a key prefix also changes the role's permissions.
    update["ResourceProperties"]["DestinationKeyPrefix"] = json!("from-prod/");
    let new_plan = plan_of(&update["ResourceProperties"]);

    let answer = env.invoke(&handler, update.clone()).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["PhysicalResourceId"], "ferry-transfer-photos");
    let fingerprint = answer["Data"]["Fingerprint"].as_str().unwrap();
    assert_ne!(fingerprint, old_fingerprint);
    assert_eq!(fingerprint, new_plan.transfer.fingerprint);
    let policy = env.inline_policy().await;
    assert_eq!(
        policy,
        serde_json::to_value(&new_plan.batch_role.permissions_policy).unwrap()
    );
    assert_ne!(policy, golden_plan()["batch_role"]["permissions_policy"]);

    let emails = env.emails().await;
    assert_eq!(
        emails.len(),
        2,
        "new instructions and token e-mails: {emails:#?}"
    );
    let token = the(token_b);
    let with_token: Vec<_> = emails
        .iter()
        .filter(|e| e.body.contains(token.expose()))
        .collect();
    assert_eq!(with_token.len(), 1, "only the token e-mail: {emails:#?}");
    assert!(with_token[0].subject.contains("approval token"));
    assert!(!emails
        .iter()
        .any(|e| e.body.contains(the(token_a).expose())));
    let record: ApprovalRecord = serde_json::from_slice(
        &env.state_object(&format!("approvals/{}.json", token.hash()))
            .await,
    )
    .unwrap();
    assert_eq!(record.plan_fingerprint, fingerprint);
    assert_eq!(
        record.mode,
        ApprovalMode::Deferred,
        "an update can't wait again"
    );
    assert_eq!(record.wait_handle_url, None);
    assert!(env
        .state_keys()
        .await
        .contains(&format!("plans/{fingerprint}.json")));

    // An update that changes nothing in the transfer: same answer, no e-mail, no new token.
    let mut unchanged = update.clone();
    unchanged["OldResourceProperties"] = update["ResourceProperties"].clone();
    unchanged["RequestId"] = json!("1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5");
    let keys_before = env.state_keys().await;
    let mut handler = env.handler(env.ports(no_s3control()));
    handler.new_token = token_a;

    let answer = env.invoke(&handler, unchanged).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["PhysicalResourceId"], "ferry-transfer-photos");
    assert_eq!(answer["Data"]["Fingerprint"], fingerprint);
    assert!(
        env.emails().await.is_empty(),
        "an unchanged update sends no e-mail"
    );
    let mut keys_after = env.state_keys().await;
    keys_after.sort();
    let mut keys_before = keys_before;
    keys_before.sort();
    assert_eq!(keys_after, keys_before);
}

/// #15 item 13: the manifest is in the destination account, where others may write, so the
/// approval e-mails must name the bytes they are about. TransferPlan reads it (HeadObject, within
/// stack-handler's `ReadManifest`) when it sends them, on Create and on a changed-plan Update, and
/// pins its ETag in the token's approval record and in both e-mails. A manifest not uploaded yet
/// still makes the plan; the e-mails then say their token approves nothing until `resend`.
#[tokio::test]
async fn the_plan_pins_the_manifests_etag_in_its_record_and_both_emails() {
    let env = Env::start().await;
    let created = env
        .invoke(
            &env.handler(env.ports(no_s3control())),
            env.event("stack-handler-create.json"),
        )
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    let record = |token: fn() -> Option<ApprovalToken>| {
        let key = format!("approvals/{}.json", the(token).hash());
        let env = &env;
        async move {
            serde_json::from_slice::<ApprovalRecord>(&env.state_object(&key).await)
                .expect("an approval record")
        }
    };
    assert_eq!(record(token_a).await.manifest, None, "nothing to pin yet");
    let emails = env.emails().await;
    assert_eq!(emails.len(), 2, "{emails:#?}");
    for email in &emails {
        assert!(
            email.body.contains(&format!(
                "The manifest s3://{MANIFEST_BUCKET}/{MANIFEST_KEY} could not be read when this e-mail was sent"
            )) && email.body.contains("this e-mail's token approves nothing"),
            "{email:?}"
        );
    }

    // Uploaded; the update (StorageClass changes: a new plan) pins it.
    let quoted = env.put_manifest().await;
    let etag = quoted.trim_matches('"');
    let mut handler = env.handler(env.ports(no_s3control()));
    handler.new_token = token_b;
    let answer = env
        .invoke(&handler, env.event("stack-handler-update.json"))
        .await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    let pin = record(token_b).await.manifest.expect("the manifest pinned");
    assert_eq!(pin.etag, etag);
    assert_eq!(pin.size, Some(62));
    let emails = env.emails().await;
    assert_eq!(emails.len(), 2, "{emails:#?}");
    for email in &emails {
        assert!(
            email.body.contains(&format!(
                "The manifest this approval is for: s3://{MANIFEST_BUCKET}/{MANIFEST_KEY}, ETag \"{etag}\", 62 bytes"
            )),
            "{email:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. FirstJob

/// A CreateJob mock that records every request and answers `JOB_ID`.
fn recording_create_job() -> (aws_smithy_mocks::Rule, Arc<Mutex<Vec<CreateJobInput>>>) {
    let seen: Arc<Mutex<Vec<CreateJobInput>>> = Arc::default();
    let recorder = seen.clone();
    let rule = mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(move |input| {
            recorder.lock().unwrap().push(input.clone());
            true
        })
        .then_output(|| CreateJobOutput::builder().job_id(JOB_ID).build());
    (rule, seen)
}

fn first_job_event(env: &Env, fingerprint: &str, approval: &str) -> Value {
    let mut event = env.event("stack-handler-first-job-create.json");
    event["ResourceProperties"]["PlanFingerprint"] = json!(fingerprint);
    event["ResourceProperties"]["Approval"] = json!(approval);
    event
}

#[tokio::test]
async fn first_job_create_with_approval_launches_on_the_manifests_etag() {
    let env = Env::start().await;
    let (create_job, seen) = recording_create_job();
    let handler = env.handler(env.ports(mock_client!(
        aws_sdk_s3control,
        RuleMode::MatchAny,
        [&create_job]
    )));
    let plan = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    let fingerprint = plan["Data"]["Fingerprint"].as_str().unwrap().to_string();
    env.emails().await;
    let quoted_etag = env.put_manifest().await;
    let etag = quoted_etag.trim_matches('"');
    // approval-handler recorded the approval before it signalled the wait.
    env.s3
        .put_object()
        .bucket(STATE_BUCKET)
        .key(format!("decisions/{fingerprint}.json"))
        .body(
            format!(r#"{{"decision":"approve","plan_fingerprint":"{fingerprint}","at_unix":1}}"#)
                .into_bytes()
                .into(),
        )
        .send()
        .await
        .unwrap();

    let event = first_job_event(&env, &fingerprint, r#"{"approval":"approved"}"#);
    let answer = env.invoke(&handler, event).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["Data"]["JobId"], JOB_ID);
    // The stack id's last segment (its UUID), as CloudFormation's ids end.
    assert_eq!(
        answer["PhysicalResourceId"],
        format!(
            "ferry-first-job-{}",
            env.stack_id.rsplit('/').next().unwrap()
        )
        .as_str()
    );
    assert_eq!(create_job.num_calls(), 1);
    let input = seen.lock().unwrap()[0].clone();
    let location = input
        .manifest()
        .and_then(|m| m.location())
        .expect("manifest location");
    assert_eq!(location.e_tag(), etag, "the ETag without quotes");
    assert_eq!(
        location.object_arn(),
        format!("arn:aws:s3:::{MANIFEST_BUCKET}/{MANIFEST_KEY}")
    );
    assert_eq!(
        input.client_request_token(),
        Some(client_request_token(&fingerprint, etag).as_str())
    );
    assert_eq!(
        input.role_arn(),
        golden_plan()["batch_role"]["arn"].as_str()
    );
    assert!(env
        .state_keys()
        .await
        .contains(&format!("jobs/{fingerprint}/{JOB_ID}.json")));

    let emails = env.emails().await;
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert!(
        emails[0].subject.contains(JOB_ID) && emails[0].body.contains(JOB_ID),
        "{:?}",
        emails[0]
    );
}

#[tokio::test]
async fn first_job_create_deferred_without_an_approval_awaits_it_and_creates_no_job() {
    let env = Env::start().await;
    let (create_job, _) = recording_create_job();
    let handler = env.handler(env.ports(mock_client!(
        aws_sdk_s3control,
        RuleMode::MatchAny,
        [&create_job]
    )));
    let plan = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    let fingerprint = plan["Data"]["Fingerprint"].as_str().unwrap().to_string();
    env.emails().await;
    env.put_manifest().await;

    let event = first_job_event(&env, &fingerprint, r#"{"approval":"deferred"}"#);
    let answer = env.invoke(&handler, event).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["Data"]["JobId"], AWAITING_APPROVAL);
    assert_eq!(
        create_job.num_calls(),
        0,
        "no CreateJob without an approval"
    );
    assert!(env.emails().await.is_empty());
    assert!(!env
        .state_keys()
        .await
        .iter()
        .any(|k| k.starts_with("jobs/")));
}

/// #15 items 2 and 5: TransferPlan records the stack's current plan (`plans/current.json`) on
/// Create and Update. Plan A approved but never launched, then an Update to plan B: a FirstJob
/// naming A (forged during the operation, matching the pins) launches nothing though A's
/// "approve" decision is still recorded, and says so; FirstJob naming B launches B once approved.
#[tokio::test]
async fn first_job_naming_an_approved_plan_the_stack_replaced_launches_nothing() {
    let env = Env::start().await;
    let (create_job, seen) = recording_create_job();
    let handler = env.handler(env.ports(mock_client!(
        aws_sdk_s3control,
        RuleMode::MatchAny,
        [&create_job]
    )));
    let approve_plan = |fingerprint: String| {
        let s3 = env.s3.clone();
        async move {
            // As approval-handler records an approval, after the plan became current (only
            // a decision taken since then counts: `workflow::approval_in_force`).
            s3.put_object()
                .bucket(STATE_BUCKET)
                .key(format!("decisions/{fingerprint}.json"))
                .body(
                    format!(
                        r#"{{"decision":"approve","plan_fingerprint":"{fingerprint}","at_unix":{}}}"#,
                        ferry_aws::runtime::unix_now() + 3600
                    )
                    .into_bytes()
                    .into(),
                )
                .send()
                .await
                .unwrap();
        }
    };
    let current = || async {
        serde_json::from_slice::<ferry_flows::workflow::CurrentPlan>(
            &env.state_object("plans/current.json").await,
        )
        .expect("the current plan's record")
        .fingerprint
    };
    let created = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    let plan_a = created["Data"]["Fingerprint"].as_str().unwrap().to_string();
    assert_eq!(current().await, plan_a);
    env.put_manifest().await;
    approve_plan(plan_a.clone()).await;

    let mut updating = env.handler(env.ports(no_s3control()));
    updating.new_token = token_b;
    let updated = env
        .invoke(&updating, env.event("stack-handler-update.json"))
        .await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated:#}");
    let plan_b = updated["Data"]["Fingerprint"].as_str().unwrap().to_string();
    assert_ne!(plan_a, plan_b);
    assert_eq!(current().await, plan_b);
    env.emails().await;

    let answer = env
        .invoke(
            &handler,
            first_job_event(&env, &plan_a, r#"{"approval":"approved"}"#),
        )
        .await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(
        answer["Data"]["JobId"],
        ferry_flows::workflow::NOT_THE_CURRENT_PLAN
    );
    assert_eq!(create_job.num_calls(), 0, "no CreateJob for plan A");
    assert!(!env
        .state_keys()
        .await
        .iter()
        .any(|k| k.starts_with("jobs/")));
    let emails = env.emails().await;
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert!(
        emails[0].subject.contains("not the stack's current plan")
            && emails[0].body.contains(&plan_a)
            && emails[0].body.contains(&plan_b),
        "{:?}",
        emails[0]
    );

    // The current plan, once approved, launches.
    approve_plan(plan_b.clone()).await;
    let answer = env
        .invoke(
            &handler,
            first_job_event(&env, &plan_b, r#"{"approval":"approved"}"#),
        )
        .await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["Data"]["JobId"], JOB_ID);
    assert_eq!(create_job.num_calls(), 1);
    let tags = seen.lock().unwrap()[0].tags().to_vec();
    assert!(
        tags.iter()
            .any(|t| t.key() == "ferry:plan" && t.value() == plan_b),
        "{tags:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Delete

#[tokio::test]
async fn transfer_plan_delete_without_jobs_removes_the_role() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let created = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    assert!(env.role_exists().await);

    let event = env.event("stack-handler-delete.json");
    let answer = env.invoke(&handler, event.clone()).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["PhysicalResourceId"], event["PhysicalResourceId"]);
    assert!(answer["Reason"].is_null(), "nothing went wrong: {answer:#}");
    assert!(!env.role_exists().await, "the role is gone");
}

#[tokio::test]
async fn a_delete_answers_success_even_without_random_bytes() {
    let env = Env::start().await;
    let mut handler = env.handler(env.ports(no_s3control()));
    handler.new_token = no_token;

    let answer = env
        .invoke(&handler, env.event("stack-handler-delete.json"))
        .await;

    assert_eq!(
        answer["Status"], "SUCCESS",
        "deletes never fail: {answer:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Not a custom resource request

#[tokio::test]
async fn an_unreadable_request_with_a_response_url_answers_failed_and_without_one_errors() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let mut event = env.event("stack-handler-create.json");
    event["RequestType"] = json!("Explode");

    let answer = env.invoke(&handler, event.clone()).await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    assert!(reason(&answer).contains("could not be read"), "{answer:#}");
    assert_eq!(
        answer["PhysicalResourceId"],
        format!("ferry-failed-{}", event["RequestId"].as_str().unwrap()).as_str()
    );
    assert!(!env.role_exists().await, "nothing was done");

    env.catcher.clear();
    let mut no_url = event;
    no_url.as_object_mut().unwrap().remove("ResponseURL");
    let result = handler
        .handle(LambdaEvent::new(no_url, Context::default()))
        .await;
    assert!(
        result.is_err(),
        "nowhere to answer: the invocation itself fails"
    );
    assert!(env.catcher.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// #15 item 1: events are untrusted. Anyone allowed lambda:InvokeFunction on stack-handler can
// hand it an event; only one equal to what the template pinned in its environment is obeyed.

#[tokio::test]
async fn a_forged_update_naming_another_trust_principal_and_bucket_is_refused_and_changes_nothing()
{
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let created = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    let (trust, policy) = (env.trust_policy().await, env.inline_policy().await);
    let keys = env.state_keys().await;
    // The creation's e-mails, read (and so taken off the queue).
    assert!(!env.emails().await.is_empty());

    // The attack: an Update whose old and new properties are the same (so no approval e-mail
    // would go out), making the attacker's user a trust principal of the batch role and
    // pointing the role at a bucket of their choosing.
    let mut forged = env.event("stack-handler-update.json");
    forged["ResourceProperties"]["LargeObjectCopierRoleArn"] =
        json!("arn:aws:iam::222222222222:user/mallory");
    forged["ResourceProperties"]["SourceBucket"] = json!("mallory-drop");
    forged["OldResourceProperties"] = forged["ResourceProperties"].clone();
    let answer = env.invoke(&handler, forged).await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    let reason = answer["Reason"].as_str().unwrap_or_default();
    for named in [
        "LargeObjectCopierRoleArn",
        "user/mallory",
        "SourceBucket",
        "refused",
    ] {
        assert!(
            reason.contains(named),
            "the refusal names {named}: {reason}"
        );
    }
    assert_eq!(
        env.trust_policy().await,
        trust,
        "the trust policy is untouched"
    );
    assert_eq!(
        env.inline_policy().await,
        policy,
        "the permissions are untouched"
    );
    assert_eq!(env.state_keys().await, keys, "nothing stored");
    assert!(env.emails().await.is_empty(), "nothing sent");
}

#[tokio::test]
async fn a_forged_delete_from_another_stack_leaves_the_role() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let created = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");

    let mut forged = env.event("stack-handler-delete.json");
    forged["StackId"] = json!("arn:aws:cloudformation:us-east-1:222222222222:stack/mallory/0000");
    let answer = env.invoke(&handler, forged).await;

    // A delete is never answered FAILED (the stack would be stuck), but nothing was done.
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("refused") && reason.contains("StackId"),
        "{reason}"
    );
    assert!(env.role_exists().await, "the batch role is still there");
}

#[tokio::test]
async fn an_event_whose_response_url_is_not_aws_gets_no_request_and_nothing_done() {
    let env = Env::start().await;
    let mut handler = env.handler(env.ports(no_s3control()));
    // The product's rule: presigned HTTPS URLs of AWS endpoints only.
    handler.response_urls = ferry_aws::http::PresignedUrlRule::default();
    let mut event = env.event("stack-handler-create.json");
    // The catcher (plain HTTP, 127.0.0.1) stands for a host of the attacker's choosing.
    event["ResponseURL"] = json!(env.catcher.url(CFN_PATH));
    env.catcher.clear();

    let result = handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await;

    let err = result.expect_err("refused").to_string();
    assert!(err.contains("ResponseURL"), "{err}");
    assert!(!err.contains("127.0.0.1"), "the URL is not repeated: {err}");
    assert!(env.catcher.requests().is_empty(), "no request was sent");
    assert!(!env.role_exists().await, "nothing was created");
}

/// #15: OldResourceProperties is event text. An Update claiming old = new for a plan the stack
/// never stored (here a forged key prefix, which is not pinned) is treated as the change it is:
/// stored, e-mailed for approval, old tokens retired; never applied silently.
#[tokio::test]
async fn an_update_claiming_nothing_changed_for_a_new_plan_still_asks_for_approval() {
    let env = Env::start().await;
    let created = env
        .invoke(
            &env.handler(env.ports(no_s3control())),
            env.event("stack-handler-create.json"),
        )
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    assert!(!env.emails().await.is_empty());

    let mut handler = env.handler(env.ports(no_s3control()));
    handler.new_token = token_b;
    let mut forged = env.event("stack-handler-update.json");
    forged["ResourceProperties"]["DestinationKeyPrefix"] = json!("elsewhere/");
    forged["OldResourceProperties"] = forged["ResourceProperties"].clone();
    let answer = env.invoke(&handler, forged).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    let fingerprint = answer["Data"]["Fingerprint"].as_str().unwrap();
    assert_ne!(
        fingerprint,
        created["Data"]["Fingerprint"].as_str().unwrap()
    );
    assert!(
        env.state_keys()
            .await
            .contains(&format!("plans/{fingerprint}.json")),
        "the new plan is stored"
    );
    let mails = env.emails().await;
    assert!(
        mails.iter().any(|m| m.body.contains(the(token_b).expose())),
        "a new approval was asked for: {mails:#?}"
    );
    let old_decision = format!("approvals/{}.decision", the(token_a).hash());
    assert!(
        env.state_keys().await.contains(&old_decision),
        "the old token was retired"
    );
}

// ---------------------------------------------------------------------------------------------
// #15: an event equal to the pins is still only obeyed while the stack is in an operation
// (CloudFormation sends custom-resource events only then). Anyone allowed
// lambda:InvokeFunction can copy the template's values into a Delete or a FirstJob Create.

/// The stack's status, as CloudFormation would report it (the gateway's control; moto
/// completes every stack at once).
async fn stack_is(env: &Env, status: &str) {
    ferry_testkit::stack::set_stack_status(&env.moto, &env.stack_id, status).await;
}

#[tokio::test]
async fn a_forged_delete_matching_the_pins_while_the_stack_is_steady_leaves_the_role() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let created = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    stack_is(&env, "UPDATE_COMPLETE").await;

    // The attack: the template's own values, this stack's id: the pins pass.
    let forged = env.event("stack-handler-delete.json");
    let answer = env.invoke(&handler, forged.clone()).await;

    // Answered SUCCESS (a real stack must never be stuck by a refusal), nothing done.
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    let why = reason(&answer);
    assert!(
        why.contains("refused") && why.contains("UPDATE_COMPLETE") && why.contains(&env.stack_id),
        "{why}"
    );
    assert!(env.role_exists().await, "the batch role is still there");

    // The same event while the stack is being deleted is CloudFormation's: acted on.
    stack_is(&env, "DELETE_IN_PROGRESS").await;
    let answer = env.invoke(&handler, forged).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert!(answer["Reason"].is_null(), "{answer:#}");
    assert!(!env.role_exists().await, "the role is gone");
}

/// The approved plan's job, launched by FirstJob through the gateway's job table, with
/// CancelJobsOnDelete = true pinned. Returns the handler, the FirstJob Delete event and the
/// job's (account, region, id).
async fn launched_job_cancelled_on_delete(
    env: &Env,
) -> (StackHandler<AwsPorts>, Value, (String, String, String)) {
    let (s3control, _) = ferry_testkit::s3control_client(&env.config);
    let mut handler = env.handler(env.ports(s3control));
    handler
        .pins
        .properties
        .insert("CancelJobsOnDelete".to_string(), "true".to_string());
    let plan = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    let fingerprint = plan["Data"]["Fingerprint"].as_str().unwrap().to_string();
    env.put_manifest().await;
    env.s3
        .put_object()
        .bucket(STATE_BUCKET)
        .key(format!("decisions/{fingerprint}.json"))
        .body(
            format!(r#"{{"decision":"approve","plan_fingerprint":"{fingerprint}","at_unix":1}}"#)
                .into_bytes()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let mut create = first_job_event(env, &fingerprint, r#"{"approval":"approved"}"#);
    create["ResourceProperties"]["CancelJobsOnDelete"] = json!("true");
    let launched = env.invoke(&handler, create.clone()).await;
    assert_eq!(launched["Status"], "SUCCESS", "{launched:#}");
    let job_id = launched["Data"]["JobId"].as_str().unwrap().to_string();
    let record: Value = serde_json::from_slice(
        &env.state_object(&format!("jobs/{fingerprint}/{job_id}.json"))
            .await,
    )
    .unwrap();
    let text = |k: &str| record[k].as_str().unwrap().to_string();

    let mut delete = create;
    delete["RequestType"] = json!("Delete");
    delete["PhysicalResourceId"] = launched["PhysicalResourceId"].clone();
    (
        handler,
        delete,
        (text("account_id"), text("region"), job_id),
    )
}

async fn job_status_in_s3_control(
    env: &Env,
    (account, region, id): &(String, String, String),
) -> String {
    let job = ferry_testkit::s3control::gateway_job(&env.moto, account, region, id)
        .await
        .expect("S3 Control created the job");
    job["status"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_forged_first_job_delete_while_the_stack_is_steady_cancels_no_job() {
    let env = Env::start().await;
    let (handler, delete, job) = launched_job_cancelled_on_delete(&env).await;
    let running = job_status_in_s3_control(&env, &job).await;
    assert_ne!(running, "Cancelled");
    stack_is(&env, "UPDATE_COMPLETE").await;

    let answer = env.invoke(&handler, delete.clone()).await;

    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert!(
        reason(&answer).contains("refused") && reason(&answer).contains("UPDATE_COMPLETE"),
        "{answer:#}"
    );
    assert_eq!(
        job_status_in_s3_control(&env, &job).await,
        running,
        "the job was left alone"
    );

    // During the stack's deletion, the same event cancels the transfer's job.
    stack_is(&env, "DELETE_IN_PROGRESS").await;
    let answer = env.invoke(&handler, delete).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert!(
        reason(&answer).contains(&format!("cancelled jobs {}", job.2)),
        "{answer:#}"
    );
    assert_eq!(
        job_status_in_s3_control(&env, &job).await,
        "Cancelling",
        "S3 Control was asked to cancel it"
    );
}

/// The wait-mode approval record TransferPlan Create wrote for `token`.
async fn approval_record(env: &Env, token: fn() -> Option<ApprovalToken>) -> ApprovalRecord {
    let key = format!("approvals/{}.json", the(token).hash());
    serde_json::from_slice(&env.state_object(&key).await).expect("an approval record")
}

#[tokio::test]
async fn a_forged_first_job_create_while_the_stack_is_complete_marks_no_wait_over() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let plan = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    let fingerprint = plan["Data"]["Fingerprint"].as_str().unwrap().to_string();
    let pending = approval_record(&env, token_a).await;
    assert_eq!(pending.mode, ApprovalMode::Wait);
    assert!(!pending.wait_released);
    stack_is(&env, "CREATE_COMPLETE").await;
    let keys = env.state_keys().await;

    // The attack: FirstJob's Create as the template writes it (only CancelJobsOnDelete is
    // pinned). Acted on, it would mark the wait over, so the approval would no longer signal
    // the WaitCondition and the stack would time out.
    let forged = first_job_event(&env, &fingerprint, r#"{"approval":"approved"}"#);
    let answer = env.invoke(&handler, forged.clone()).await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    assert!(
        reason(&answer).contains("refused") && reason(&answer).contains("CREATE_COMPLETE"),
        "{answer:#}"
    );
    assert_eq!(
        approval_record(&env, token_a).await,
        pending,
        "the wait is still pending"
    );
    assert_eq!(env.state_keys().await, keys, "nothing stored");

    // While CloudFormation creates FirstJob (the stack in an operation), the same event is
    // acted on: the wait is over.
    stack_is(&env, "CREATE_IN_PROGRESS").await;
    let answer = env.invoke(&handler, forged).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(answer["Data"]["JobId"], AWAITING_APPROVAL);
    assert!(approval_record(&env, token_a).await.wait_released);
}

/// CloudFormation only deletes while a stack is deleted (or cleans up, or rolls a creation
/// back): a forged FirstJob Create then, timed by watching DescribeStackEvents, is refused
/// though the stack is in an operation, and a Delete in the same phase is still acted on.
#[tokio::test]
async fn a_forged_create_while_the_stack_is_being_deleted_is_refused() {
    let env = Env::start().await;
    let handler = env.handler(env.ports(no_s3control()));
    let plan = env
        .invoke(&handler, env.event("stack-handler-create.json"))
        .await;
    let fingerprint = plan["Data"]["Fingerprint"].as_str().unwrap().to_string();
    let pending = approval_record(&env, token_a).await;
    let keys = env.state_keys().await;
    for status in [
        "DELETE_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "REVIEW_IN_PROGRESS",
    ] {
        stack_is(&env, status).await;
        let forged = first_job_event(&env, &fingerprint, r#"{"approval":"approved"}"#);
        let answer = env.invoke(&handler, forged).await;
        assert_eq!(answer["Status"], "FAILED", "{status}: {answer:#}");
        assert!(
            reason(&answer).contains("sends no Create request"),
            "{status}: {answer:#}"
        );
        assert_eq!(approval_record(&env, token_a).await, pending, "{status}");
        assert_eq!(env.state_keys().await, keys, "{status}: nothing stored");
    }
}

/// The ports with their CloudFormation calls made as a role of the account that may not call
/// DescribeStacks (its only grant is an unrelated one): the gateway refuses them.
async fn ports_denied_describe_stacks(env: &Env) -> AwsPorts {
    let role = "no-describe-stacks";
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", MotoServer::DEFAULT_ACCOUNT)},
        "Action": "sts:AssumeRole"}]});
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "sns:Publish", "Resource": env.notification_topic_arn}]});
    env.iam
        .create_role()
        .role_name(role)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    env.iam
        .put_role_policy()
        .role_name(role)
        .policy_name("unrelated")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    let session = aws_sdk_sts::Client::new(&env.config)
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{}:role/{role}",
            MotoServer::DEFAULT_ACCOUNT
        ))
        .role_session_name("stack-handler")
        .send()
        .await
        .unwrap();
    let c = session.credentials().unwrap();
    let credentials = aws_sdk_s3::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "test",
    );
    let config = env.moto.sdk_config_with(credentials, REGION).await;
    let mut ports = env.ports(no_s3control());
    ports.cloudformation = aws_sdk_cloudformation::Client::new(&config);
    ports
}

#[tokio::test]
async fn a_denied_describe_stacks_acts_on_nothing_and_a_delete_answers_failed() {
    let env = Env::start().await;
    let created = env
        .invoke(
            &env.handler(env.ports(no_s3control())),
            env.event("stack-handler-create.json"),
        )
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    let keys = env.state_keys().await;
    env.emails().await;
    let handler = env.handler(ports_denied_describe_stacks(&env).await);

    // A Delete whose stack can't be checked: FAILED (DELETE_FAILED names the reason and the
    // stack can be deleted again), never SUCCESS with the role silently left behind.
    let answer = env
        .invoke(&handler, env.event("stack-handler-delete.json"))
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    let why = reason(&answer);
    assert!(
        why.contains("DescribeStacks")
            && why.contains("AccessDenied")
            && why.contains("nothing was done"),
        "{why}"
    );
    assert!(env.role_exists().await, "the batch role is still there");

    // An Update: FAILED, nothing changed, nothing sent.
    let answer = env
        .invoke(&handler, env.event("stack-handler-update.json"))
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    assert!(reason(&answer).contains("DescribeStacks"), "{answer:#}");
    assert_eq!(env.state_keys().await, keys, "nothing stored");
    assert!(env.emails().await.is_empty(), "nothing sent");

    let denied = env.moto.denials();
    assert!(
        denied
            .iter()
            .any(|d| d.action == "cloudformation:DescribeStacks"
                && d.resource == env.stack_id
                && d.principal.contains("no-describe-stacks")),
        "the gateway refused DescribeStacks on the stack: {denied:#?}"
    );
}

#[tokio::test]
async fn a_stack_cloudformation_does_not_know_acts_on_nothing() {
    let env = Env::start().await;
    let mut handler = env.handler(env.ports(no_s3control()));
    // Pinned to a stack id DescribeStacks answers ValidationError for ("does not exist").
    let gone = format!(
        "arn:aws:cloudformation:{REGION}:{}:stack/{STACK_NAME}/00000000-0000-4000-8000-000000000000",
        MotoServer::DEFAULT_ACCOUNT
    );
    handler.pins = fixture_pins(&gone);
    let mut event = env.event("stack-handler-create.json");
    event["StackId"] = json!(gone);

    let answer = env.invoke(&handler, event).await;

    assert_eq!(answer["Status"], "FAILED", "{answer:#}");
    let why = reason(&answer);
    assert!(
        why.contains("DescribeStacks") && why.contains("does not exist"),
        "{why}"
    );
    assert!(!env.role_exists().await, "nothing was created");
    assert!(env.state_keys().await.is_empty(), "nothing stored");
}

// ---------------------------------------------------------------------------------------------
// Custom::FerryInventoryTrigger

/// The inventory trigger through the handler, on the SDK ports (`BucketEventDelivery`): Create
/// reads the inventory bucket's notification configuration, finds no EventBridge delivery and
/// puts it back with it (`EventBridgeEnabledByFerry`), keeping the owner's own notification;
/// Delete answers SUCCESS and changes nothing. (moto keeps no `EventBridgeConfiguration`, so
/// what the PUT carries is asserted on mocked S3 in inventory-handler's `inventory_trigger.rs`.)
#[tokio::test]
async fn the_inventory_trigger_turns_eventbridge_delivery_on_and_keeps_the_owners_notification() {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, TopicConfiguration};
    let env = Env::start().await;
    let bucket = "acme-inventories";
    let owner = aws_sdk_sts::Client::new(&env.config)
        .get_caller_identity()
        .send()
        .await
        .expect("sts:GetCallerIdentity")
        .account()
        .expect("account")
        .to_string();
    env.s3.create_bucket().bucket(bucket).send().await.unwrap();
    // The owner's own notification, which the trigger must keep (and which keeps moto from
    // answering an empty configuration in a shape the SDK can't read).
    let owners = TopicConfiguration::builder()
        .id("owners-uploads")
        .topic_arn(&env.notification_topic_arn)
        .events(Event::S3ObjectCreatedPut)
        .build()
        .unwrap();
    env.s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .topic_configurations(owners)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let handler = env.handler(env.ports(no_s3control()));
    let trigger = |request_type: &str| {
        let mut event = env.event("stack-handler-create.json");
        event["RequestType"] = json!(request_type);
        event["ResourceType"] = json!("Custom::FerryInventoryTrigger");
        event["LogicalResourceId"] = json!("InventoryTrigger");
        let token = event["ResourceProperties"]["ServiceToken"].clone();
        event["ResourceProperties"] =
            json!({"ServiceToken": token, "Bucket": bucket, "ExpectedBucketOwner": owner});
        if request_type == "Delete" {
            event["PhysicalResourceId"] = json!(format!("ferry-inventory-trigger-{bucket}"));
        }
        event
    };
    let owners_notifications = || async {
        let c = env
            .s3
            .get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        c.topic_configurations()
            .iter()
            .filter_map(|t| t.id())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    let answer = env.invoke(&handler, trigger("Create")).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer:#}");
    assert_eq!(
        answer["PhysicalResourceId"],
        format!("ferry-inventory-trigger-{bucket}").as_str()
    );
    assert_eq!(answer["Data"]["EventBridgeEnabledByFerry"], "true");
    assert_eq!(owners_notifications().await, ["owners-uploads"]);

    let deleted = env.invoke(&handler, trigger("Delete")).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted:#}");
    assert!(deleted["Reason"].is_null(), "nothing to say: {deleted:#}");
    assert_eq!(owners_notifications().await, ["owners-uploads"]);
}
