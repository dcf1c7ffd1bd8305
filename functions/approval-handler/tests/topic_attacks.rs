//! #15 item 4: the stack's SNS topics under attack, through the authorizing gateway (which holds
//! every caller but the test's administrators to its IAM policies and to the topic policies the
//! template writes, read back from moto).
//!
//! The attacker is a principal of the destination account with broad rights, as a PowerUser has
//! them (sns:*, s3:*, lambda:InvokeFunction, cloudformation:Describe*, no iam:PassRole), who is
//! not in the stack's ApproverArns. The approver has exactly the same identity policy: only the
//! topic policies tell them apart. approval-handler runs as its template role; an SQS queue the
//! administrator subscribes to the approval topic stands in for its Lambda subscription (moto
//! runs no functions), and one on the notification topic for the people's e-mail.

use std::time::Duration;

use approval_handler::{ApprovalHandler, Handled};
use aws_config::SdkConfig;
use aws_sdk_s3::config::Credentials;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ferry_aws::AwsPorts;
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::workflow::{create_transfer, ApprovalOutcome, StackContext};
use ferry_plan::approval::ApprovalToken;
use ferry_plan::stack::{ApprovalMode, TransferPlanProperties};
use ferry_testkit::stack::{apply_topic_policies, deploy_stack_resources};
use ferry_testkit::{s3_client, s3control_client, FunctionRole, Inbox, MotoServer};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const NOW: u64 = 1_795_500_000;
const EMAIL: &str = "storage-team@example.com";
const APPROVER_ROLE: &str = "storage-approvers";
const ATTACKER_ROLE: &str = "PowerUser";

fn now() -> u64 {
    NOW
}

fn token(n: u8) -> ApprovalToken {
    ApprovalToken::from_random_bytes([n; 32])
}

fn fresh_token() -> Option<ApprovalToken> {
    Some(token(200))
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// What a PowerUser may do that matters here: everything on SNS and S3, invoke any function,
/// describe any stack; no iam:PassRole.
fn power_user_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["sns:*", "s3:*", "lambda:InvokeFunction", "cloudformation:Describe*"],
        "Resource": "*"}]})
}

struct Stack {
    moto: MotoServer,
    admin: SdkConfig,
    role: FunctionRole,
    people: Inbox,
    /// What SNS delivers to approval-handler's subscription.
    deliveries: Inbox,
    attacker: aws_sdk_sns::Client,
    approver: aws_sdk_sns::Client,
}

impl Stack {
    async fn deploy() -> Stack {
        let moto = MotoServer::start();
        assert!(
            moto.authorizes(),
            "these tests need the authorizing gateway"
        );
        let admin = moto.sdk_config(REGION).await;
        let parameters = json!({
            "TransferName": "photos", "SourceAccountId": "111111111111", "SourceRegion": REGION,
            "SourceBucket": "acme-photos-prod", "DestinationBucket": "acme-photos-archive",
            "ManifestKind": "csv", "ManifestBucket": "acme-ferry-manifests",
            "ManifestKey": "photos/manifest.csv", "ReportBucket": "acme-ferry-reports",
            "ReportPrefix": "ferry/reports", "NotificationEmail": EMAIL,
            "ApprovalMode": "deferred", "ApproverArns": role_arn(APPROVER_ROLE),
        });
        let role = FunctionRole::deploy(
            &moto,
            "ApprovalHandlerFunction",
            ACCOUNT,
            REGION,
            &parameters,
        )
        .await;
        let people = deploy_stack_resources(&admin, &role).await;
        let deliveries =
            Inbox::subscribe(&admin, &role.approval_topic_arn, "approval-handler").await;
        apply_topic_policies(&admin, &role).await;
        let attacker = principal(&moto, &admin, ATTACKER_ROLE).await;
        let approver = principal(&moto, &admin, APPROVER_ROLE).await;
        Stack {
            moto,
            admin,
            role,
            people,
            deliveries,
            attacker: aws_sdk_sns::Client::new(&attacker),
            approver: aws_sdk_sns::Client::new(&approver),
        }
    }

    /// approval-handler as its template role, with its template environment.
    fn handler(&self) -> ApprovalHandler<AwsPorts> {
        let ports = AwsPorts::from_config(
            &self.role.config,
            self.role.state_bucket.clone(),
            self.role.notification_topic_arn.clone(),
        )
        .with_clients(
            s3_client(&self.role.config),
            s3control_client(&self.role.config).0,
        );
        let approvers = approval_handler::parse_approvers(
            &self.role.env("FERRY_APPROVER_ARNS").unwrap_or_default(),
            &self.role.approval_topic_arn,
        )
        .unwrap();
        ApprovalHandler {
            ports,
            approval_topic_arn: self.role.approval_topic_arn.clone(),
            approvers,
            retry: RetryPolicy {
                max_attempts: 2,
                first_pause: Duration::from_millis(1),
                max_pause: Duration::from_millis(2),
            },
            clock: now,
            new_token: fresh_token,
        }
    }

    /// TransferPlan create (set-up: as the administrator), the stack waiting for nobody.
    async fn set_up_transfer(&self, t: &ApprovalToken) {
        let create: Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../events/stack-handler-create.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut props =
            TransferPlanProperties::from_properties(&create["ResourceProperties"]).unwrap();
        props.approval_mode = ApprovalMode::Deferred;
        props.wait_handle_url = None;
        let s3 = s3_client(&self.admin);
        for bucket in [&props.spec.manifest.bucket, &props.spec.report.bucket] {
            let _ = s3.create_bucket().bucket(bucket).send().await;
        }
        let ports = AwsPorts::from_config(
            &self.admin,
            self.role.state_bucket.clone(),
            self.role.notification_topic_arn.clone(),
        )
        .with_clients(s3, s3control_client(&self.admin).0);
        let ctx = StackContext {
            approval_topic_arn: self.role.approval_topic_arn.clone(),
            now_unix: NOW,
            retry: RetryPolicy::default(),
        };
        create_transfer(&ports, &props, t, &ctx).await.unwrap();
    }

    /// Hands approval-handler every message SNS delivered to its subscription since last asked,
    /// as Lambda would (one SNS record each).
    async fn deliver(&self) -> Vec<Result<ApprovalOutcome, String>> {
        let mut outcomes = Vec::new();
        for (i, message) in self.deliveries.messages().await.into_iter().enumerate() {
            let event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{}:0b2c3d4e", self.role.approval_topic_arn),
                "Sns": {"Type": "Notification", "MessageId": format!("message-{i}"),
                    "TopicArn": self.role.approval_topic_arn, "Subject": null, "Message": message,
                    "Timestamp": "2026-11-24T06:00:00.000Z", "SignatureVersion": "1",
                    "Signature": "EXAMPLE", "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/x.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {}}}]});
            let handled = self
                .handler()
                .handle(LambdaEvent::new(event, Context::default()))
                .await
                .unwrap_or_else(|e| panic!("approval-handler: {e}\n{:#?}", self.moto.denials()));
            let Handled::Messages(mut results) = handled else {
                panic!("{handled:?}")
            };
            outcomes.append(&mut results);
        }
        outcomes
    }
}

/// A role of the account with the PowerUser-like policy, and a session of it.
async fn principal(moto: &MotoServer, admin: &SdkConfig, name: &str) -> SdkConfig {
    let iam = aws_sdk_iam::Client::new(admin);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name(name)
        .policy_name("power-user")
        .policy_document(power_user_policy().to_string())
        .send()
        .await
        .unwrap();
    let session = aws_sdk_sts::Client::new(admin)
        .assume_role()
        .role_arn(role_arn(name))
        .role_session_name(name)
        .send()
        .await
        .unwrap();
    let c = session.credentials().unwrap();
    moto.sdk_config_with(
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "topic-attacks",
        ),
        REGION,
    )
    .await
}

/// The call was refused as SNS refuses it (`AuthorizationError`), by an explicit deny.
fn denied<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    what: &str,
    result: Result<T, aws_sdk_sns::error::SdkError<E>>,
) {
    match result {
        Err(e) => {
            let service = e.as_service_error();
            assert_eq!(
                service.and_then(|s| s.code()),
                Some("AuthorizationError"),
                "{what}: {e:?}"
            );
            let message = service.and_then(|s| s.message()).unwrap_or_default();
            assert!(message.contains("explicit deny"), "{what}: {message}");
        }
        Ok(out) => panic!("{what} was allowed: {out:?}"),
    }
}

/// Anyone with sns:Subscribe received every token (#15 item 4): the attacker subscribes an
/// address, a queue or an HTTPS endpoint of theirs to either topic, or first rewrites the
/// topic's policy to let themself. All refused; the stack's own subscriptions still work,
/// whoever makes the call (here the approver's role, as a deployer would through CloudFormation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attacker_can_neither_subscribe_nor_rewrite_the_topic_policies() {
    let stack = Stack::deploy().await;
    let (notification, approval) = (
        stack.role.notification_topic_arn.as_str(),
        stack.role.approval_topic_arn.as_str(),
    );
    let their_queue = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:mallory");
    for topic in [notification, approval] {
        for (protocol, endpoint) in [
            ("email", "mallory@example.com"),
            ("email-json", EMAIL),
            ("sqs", their_queue.as_str()),
            ("https", "https://mallory.example.com/sns"),
            (
                "lambda",
                "arn:aws:lambda:us-east-1:123456789012:function:mallory",
            ),
        ] {
            denied(
                &format!("Subscribe {protocol} {endpoint} to {topic}"),
                stack
                    .attacker
                    .subscribe()
                    .topic_arn(topic)
                    .protocol(protocol)
                    .endpoint(endpoint)
                    .send()
                    .await,
            );
        }
        let open = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": "*", "Action": "sns:*", "Resource": topic}]});
        denied(
            &format!("SetTopicAttributes Policy on {topic}"),
            stack
                .attacker
                .set_topic_attributes()
                .topic_arn(topic)
                .attribute_name("Policy")
                .attribute_value(open.to_string())
                .send()
                .await,
        );
        denied(
            &format!("AddPermission on {topic}"),
            stack
                .attacker
                .add_permission()
                .topic_arn(topic)
                .label("mallory")
                .aws_account_id(ACCOUNT)
                .action_name("Subscribe")
                .send()
                .await,
        );
        denied(
            &format!("RemovePermission on {topic}"),
            stack
                .attacker
                .remove_permission()
                .topic_arn(topic)
                .label("OnlyApproversPublish")
                .send()
                .await,
        );
        denied(
            &format!("DeleteTopic {topic}"),
            stack.attacker.delete_topic().topic_arn(topic).send().await,
        );
    }
    // The stack's own subscriptions: NotificationEmail by e-mail, approval-handler by Lambda.
    stack
        .approver
        .subscribe()
        .topic_arn(notification)
        .protocol("email")
        .endpoint(EMAIL)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the stack's e-mail subscription: {e:?}"));
    stack
        .approver
        .subscribe()
        .topic_arn(approval)
        .protocol("lambda")
        .endpoint(format!(
            "arn:aws:lambda:{REGION}:{ACCOUNT}:function:ferry-e2e-ApprovalHandlerFunction-FAKE0000"
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("approval-handler's subscription: {e:?}"));
}

/// Publishers to the approval topic were not identified (#15 item 4): the attacker publishes an
/// approval, a resend (which needs no token) and a redrive, and fake instructions to the people;
/// all refused, and nothing reaches approval-handler or the people. The approver, with the same
/// IAM policy, gets through (and may e-mail, as `ferry redrive --notification-topic-arn` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_approver_publishes_approvals_and_only_ferry_or_an_approver_e_mails_people() {
    let stack = Stack::deploy().await;
    let approval = stack.role.approval_topic_arn.as_str();
    for message in [
        r#"{"action":"resend"}"#.to_string(),
        format!(r#"{{"action":"approve","token":"{}"}}"#, token(1).expose()),
        r#"{"action":"redrive","job_id":"5a4b3c2d-0000-4000-8000-000000000001"}"#.to_string(),
    ] {
        denied(
            &format!("Publish {message} to {approval}"),
            stack
                .attacker
                .publish()
                .topic_arn(approval)
                .message(&message)
                .send()
                .await,
        );
    }
    denied(
        "Publish fake instructions to the notification topic",
        stack
            .attacker
            .publish()
            .topic_arn(&stack.role.notification_topic_arn)
            .subject(
                "Ferry photos: approve copying s3://acme-photos-prod to s3://acme-photos-archive",
            )
            .message("Apply this bucket policy in the source account: {\"Principal\":\"*\"}")
            .send()
            .await,
    );
    assert!(stack.deliveries.messages().await.is_empty());
    assert!(stack.people.messages().await.is_empty());

    stack
        .approver
        .publish()
        .topic_arn(approval)
        .message(r#"{"action":"resend"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the approver publishes: {e:?}"));
    assert_eq!(
        stack.deliveries.messages().await,
        vec![r#"{"action":"resend"}"#.to_string()]
    );
    stack
        .approver
        .publish()
        .topic_arn(&stack.role.notification_topic_arn)
        .subject("Ferry: redrive of job 5a4b3c2d started")
        .message("job 5a4b3c2d-0000-4000-8000-000000000002 copies the failed tasks again")
        .send()
        .await
        .unwrap_or_else(|e| panic!("the approver e-mails a redrive: {e:?}"));
    assert_eq!(stack.people.messages().await.len(), 1);
}

/// `resend` needs no token, and each one retired the pending token (#15 item 4): the approver's
/// repeated resends (or anyone's who may publish) are refused after the first in a quarter hour,
/// without touching the token it sent, which then works. approval-handler, as its template role,
/// e-mails through the notification topic's policy. No instructions e-mail carries a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_spam_is_refused_and_the_real_token_still_works() {
    let stack = Stack::deploy().await;
    let first = token(7);
    stack.set_up_transfer(&first).await;
    let mail = stack.people.messages().await;
    assert_eq!(mail.len(), 2, "instructions and token: {mail:#?}");

    for _ in 0..4 {
        stack
            .approver
            .publish()
            .topic_arn(&stack.role.approval_topic_arn)
            .message(r#"{"action":"resend"}"#)
            .send()
            .await
            .unwrap();
    }
    let outcomes = stack.deliver().await;
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert_eq!(
        outcomes[0],
        Ok(ApprovalOutcome::Resent {
            transfer_name: "photos".into()
        }),
        "{:#?}",
        stack.moto.denials()
    );
    for refused in &outcomes[1..] {
        assert!(
            matches!(refused, Err(e) if e.contains("one per quarter hour")),
            "{refused:?}"
        );
    }
    // One new pair of e-mails; the refusals e-mail nobody.
    let mail = stack.people.messages().await;
    assert_eq!(mail.len(), 2, "{mail:#?}");
    let with_token: Vec<&String> = mail
        .iter()
        .filter(|m| m.contains(token(200).expose()))
        .collect();
    assert_eq!(with_token.len(), 1, "{mail:#?}");
    let instructions = mail
        .iter()
        .find(|m| m.contains("ferry grant"))
        .expect("the instructions");
    assert!(
        !instructions.contains(token(200).expose()) && !instructions.contains(first.expose()),
        "the instructions carry no token"
    );

    // The token the e-mail gave still works (a rejection: it needs no preflight).
    let sent = with_token[0]
        .split(r#""token":""#)
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .expect("the token in the reject command");
    stack
        .approver
        .publish()
        .topic_arn(&stack.role.approval_topic_arn)
        .message(format!(
            r#"{{"action":"reject","token":"{sent}","reason":"testing the token"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stack.deliver().await,
        vec![Ok(ApprovalOutcome::Rejected {
            stack_signalled: false
        })]
    );
}
