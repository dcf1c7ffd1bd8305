//! MotoServer against a real moto: S3 round trip, conditional writes, accounts via AssumeRole.

use aws_sdk_s3::primitives::ByteStream;
use ferry_testkit::{s3_client, MotoServer};

const REGION: &str = "us-east-1";

#[tokio::test]
async fn s3_put_get_and_conditional_write() {
    let moto = MotoServer::start();
    let s3 = s3_client(&moto.sdk_config(REGION).await);

    s3.create_bucket().bucket("ferry-src").send().await.unwrap();
    s3.put_object()
        .bucket("ferry-src")
        .key("a/b.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("ferry-src")
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes(), "hello");

    // If-None-Match: * creates once, then refuses.
    let first = s3
        .put_object()
        .bucket("ferry-src")
        .key("lock")
        .if_none_match("*")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await;
    assert!(first.is_ok(), "{first:?}");
    let second = s3
        .put_object()
        .bucket("ferry-src")
        .key("lock")
        .if_none_match("*")
        .body(ByteStream::from_static(b"2"))
        .send()
        .await
        .expect_err("a second create-only write must be refused");
    let raw = second.raw_response().expect("an HTTP response");
    assert_eq!(raw.status().as_u16(), 412);
    assert_eq!(
        second.as_service_error().and_then(|e| e.meta().code()),
        Some("PreconditionFailed")
    );
}

#[tokio::test]
async fn bucket_outside_us_east_1_needs_a_location_constraint() {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let moto = MotoServer::start();
    let s3 = s3_client(&moto.sdk_config("eu-central-1").await);
    s3.create_bucket()
        .bucket("ferry-dst")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuCentral1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let location = s3
        .get_bucket_location()
        .bucket("ferry-dst")
        .send()
        .await
        .unwrap();
    assert_eq!(
        location.location_constraint(),
        Some(&BucketLocationConstraint::EuCentral1)
    );
}

#[tokio::test]
async fn assume_role_acts_in_another_account() {
    let moto = MotoServer::start();
    let default = moto.sdk_config(REGION).await;
    let other = moto.sdk_config_for_account("111111111111", REGION).await;

    let who = |config: aws_config::SdkConfig| async move {
        aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .unwrap()
    };
    let me = who(default.clone()).await;
    assert_eq!(me.account(), Some(MotoServer::DEFAULT_ACCOUNT));
    let them = who(other.clone()).await;
    assert_eq!(them.account(), Some("111111111111"));
    assert!(
        them.arn()
            .unwrap()
            .starts_with("arn:aws:sts::111111111111:assumed-role/ferry-test/"),
        "{:?}",
        them.arn()
    );

    // Each account sees only its own buckets.
    let s3_default = s3_client(&default);
    let s3_other = s3_client(&other);
    s3_default
        .create_bucket()
        .bucket("ferry-src")
        .send()
        .await
        .unwrap();
    s3_other
        .create_bucket()
        .bucket("ferry-dst")
        .send()
        .await
        .unwrap();
    let names = |out: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| {
        out.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(s3_default.list_buckets().send().await.unwrap()),
        ["ferry-src"]
    );
    assert_eq!(
        names(s3_other.list_buckets().send().await.unwrap()),
        ["ferry-dst"]
    );
}

#[tokio::test]
async fn servers_are_independent_and_reset_forgets() {
    let (a, b) = (MotoServer::start(), MotoServer::start());
    assert_ne!(a.endpoint_url(), b.endpoint_url());
    let s3_a = s3_client(&a.sdk_config(REGION).await);
    let s3_b = s3_client(&b.sdk_config(REGION).await);
    s3_a.create_bucket()
        .bucket("only-in-a")
        .send()
        .await
        .unwrap();
    assert!(s3_b
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .is_empty());
    assert_eq!(s3_a.list_buckets().send().await.unwrap().buckets().len(), 1);

    a.reset().await;
    assert!(s3_a
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .is_empty());
}
