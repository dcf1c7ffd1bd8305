//! The trigger's read-modify-write: turning EventBridge delivery on for the inventory bucket
//! keeps the notification configuration its owner had (against moto), sends exactly the
//! configuration read plus `EventBridgeConfiguration`, and writes nothing when it is on already
//! (aws-smithy-mocks: moto 5.2 stores EventBridgeConfiguration but leaves it out of GET).

use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput;
use aws_sdk_s3::operation::put_bucket_notification_configuration::{
    PutBucketNotificationConfigurationInput, PutBucketNotificationConfigurationOutput,
};
use aws_sdk_s3::types::{
    Event, EventBridgeConfiguration, NotificationConfiguration, QueueConfiguration,
    TopicConfiguration,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ferry_aws::inventory::enable_eventbridge_delivery;
use ferry_testkit::{s3_client, MotoServer};

const ACCOUNT: &str = "222222222222";

#[tokio::test]
async fn eventbridge_delivery_is_added_without_losing_existing_notifications() {
    let moto = MotoServer::start();
    let config = moto.sdk_config_for_account(ACCOUNT, "us-east-1").await;
    let s3 = s3_client(&config);
    s3.create_bucket()
        .bucket("acme-dr-inventory")
        .send()
        .await
        .unwrap();
    let topic = aws_sdk_sns::Client::new(&config)
        .create_topic()
        .name("owners-topic")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let existing = TopicConfiguration::builder()
        .id("owners-uploads")
        .topic_arn(&topic)
        .events(Event::S3ObjectCreatedPut)
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket("acme-dr-inventory")
        .notification_configuration(
            NotificationConfiguration::builder()
                .topic_configurations(existing)
                .build(),
        )
        .send()
        .await
        .unwrap();

    assert!(
        enable_eventbridge_delivery(&s3, "acme-dr-inventory", ACCOUNT)
            .await
            .unwrap()
    );
    let after = s3
        .get_bucket_notification_configuration()
        .bucket("acme-dr-inventory")
        .send()
        .await
        .unwrap();
    assert_eq!(after.topic_configurations().len(), 1);
    assert_eq!(after.topic_configurations()[0].topic_arn(), topic);
    assert_eq!(after.topic_configurations()[0].id(), Some("owners-uploads"));

    // A bucket that isn't there is an error, not a silent success.
    assert!(
        enable_eventbridge_delivery(&s3, "no-such-bucket-xyz", ACCOUNT)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_put_carries_what_was_read_plus_eventbridge_and_only_when_needed() {
    let queue = QueueConfiguration::builder()
        .queue_arn("arn:aws:sqs:us-east-1:222222222222:owners-queue")
        .events(Event::S3ObjectRemovedDelete)
        .build()
        .unwrap();
    let read = queue.clone();
    let get =
        mock!(aws_sdk_s3::Client::get_bucket_notification_configuration).then_output(move || {
            GetBucketNotificationConfigurationOutput::builder()
                .queue_configurations(read.clone())
                .build()
        });
    let seen: Arc<Mutex<Vec<PutBucketNotificationConfigurationInput>>> = Arc::default();
    let recorder = seen.clone();
    let put = mock!(aws_sdk_s3::Client::put_bucket_notification_configuration)
        .match_requests(move |input| {
            recorder.lock().unwrap().push(input.clone());
            true
        })
        .then_output(|| PutBucketNotificationConfigurationOutput::builder().build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &put]);
    assert!(
        enable_eventbridge_delivery(&s3, "acme-dr-inventory", ACCOUNT)
            .await
            .unwrap()
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].bucket(), Some("acme-dr-inventory"));
    assert_eq!(seen[0].expected_bucket_owner(), Some(ACCOUNT));
    // A stale existing destination must not refuse the write (and roll the stack back).
    assert_eq!(seen[0].skip_destination_validation(), Some(true));
    let config = seen[0].notification_configuration().unwrap();
    assert_eq!(config.queue_configurations(), &[queue]);
    assert!(config.topic_configurations().is_empty());
    assert!(config.event_bridge_configuration().is_some());

    // Already on: read, nothing written.
    let on = mock!(aws_sdk_s3::Client::get_bucket_notification_configuration).then_output(|| {
        GetBucketNotificationConfigurationOutput::builder()
            .event_bridge_configuration(EventBridgeConfiguration::builder().build())
            .build()
    });
    let no_put = mock!(aws_sdk_s3::Client::put_bucket_notification_configuration)
        .then_output(|| PutBucketNotificationConfigurationOutput::builder().build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&on, &no_put]);
    assert!(
        !enable_eventbridge_delivery(&s3, "acme-dr-inventory", ACCOUNT)
            .await
            .unwrap()
    );
    assert_eq!(no_put.num_calls(), 0);
}
