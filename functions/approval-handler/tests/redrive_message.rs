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
use ferry_core::approval::ApprovalToken;
use ferry_core::launch::RetryPolicy;
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
    let ports = AwsPorts::from_config(&config, "ferry-state".to_string(), topic_arn).with_clients(
        s3.clone(),
        mock_client!(
            aws_sdk_s3control,
            RuleMode::MatchAny,
            [&tags, &describe, &create],
            |c| c.retry_config(aws_sdk_s3control::config::retry::RetryConfig::disabled())
        ),
    );
    let handler = ApprovalHandler {
        ports,
        approval_topic_arn: "arn:aws:sns:eu-west-1:222222222222:ferry-ApprovalTopic-AbCd1234"
            .to_string(),
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
