//! What Ferry reads whole: an inventory's manifest.json and manifest.checksum are capped
//! (someone who can write the inventory bucket must not make a run load gigabytes), Ferry's own
//! state objects are not (the delta index of a large bucket is tens of megabytes).

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ferry_aws::inventory::MAX_SMALL_OBJECT_BYTES;
use ferry_aws::AwsPorts;
use ferry_flows::inventory::run::InventoryObjects;
use ferry_flows::ports::StateStore;

fn ports_answering(content_length: i64) -> AwsPorts {
    ports_answering_with(Some(content_length), b"{}".to_vec())
}

/// GetObject answering `body` with the Content-Length given (none: not said) and an ETag.
fn ports_answering_with(content_length: Option<i64>, body: Vec<u8>) -> AwsPorts {
    let rule = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
        GetObjectOutput::builder()
            .set_content_length(content_length)
            .e_tag("\"etag-of-what-was-read\"")
            .body(ByteStream::from(body.clone()))
            .build()
    });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule]);
    ports_with(s3)
}

#[tokio::test]
async fn an_inventory_file_over_the_cap_is_refused_state_objects_are_not_capped() {
    let over = MAX_SMALL_OBJECT_BYTES as i64 + 1;
    let err = ports_answering(over)
        .get_small("inventory", "inv/src/cfg/2026-12-01T00-00Z/manifest.json")
        .await
        .unwrap_err();
    assert_eq!(err.code, "ObjectTooLarge", "{err:?}");
    // At the cap, and for the state bucket whatever the size: read.
    let at = ports_answering(MAX_SMALL_OBJECT_BYTES as i64);
    assert!(at.get_small("inventory", "k").await.unwrap().is_some());
    let state = ports_answering(64 * 1024 * 1024);
    assert!(state
        .get("inventory/x/runs/r/index.bin")
        .await
        .unwrap()
        .is_some());
}

/// The cap holds even when the length S3 announces is missing or understated: the body is
/// counted as it arrives and the read stops past the cap (#15 item 9).
#[tokio::test]
async fn a_body_past_the_cap_is_refused_whatever_its_announced_length() {
    let body = vec![b' '; MAX_SMALL_OBJECT_BYTES + 1];
    for announced in [None, Some(2)] {
        let err = ports_answering_with(announced, body.clone())
            .get_small("inventory", "inv/src/cfg/2026-12-01T00-00Z/manifest.json")
            .await
            .unwrap_err();
        assert_eq!(err.code, "ObjectTooLarge", "{announced:?}: {err:?}");
    }
    // What is read comes with the ETag of that very response (the run pins the job to it).
    let read = ports_answering_with(None, b"{}".to_vec())
        .get_small("inventory", "k")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (read.body.as_slice(), read.etag.as_str()),
        (&b"{}"[..], "\"etag-of-what-was-read\"")
    );
}

/// A PutObject answer with `status` and, for an error, S3's XML error body.
fn put_answer(
    status: u16,
    code: &str,
) -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    let body = if status == 200 {
        String::new()
    } else {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{code}</Message><RequestId>R</RequestId></Error>")
    };
    let mut r = aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(body),
    );
    r.headers_mut().insert("content-type", "application/xml");
    r
}

/// Ports on the state bucket `state` whose S3 client is `s3`.
fn ports_with(s3: aws_sdk_s3::Client) -> AwsPorts {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    AwsPorts::from_config(&config, "state".into(), "arn:aws:sns:us-east-1:1:t".into())
        .with_clients(s3, mock_client!(aws_sdk_s3control, []))
}

/// State-bucket ports whose PutObject answers `answers` in turn.
fn ports_putting(answers: &[(u16, &'static str)]) -> AwsPorts {
    let mut rule = mock!(aws_sdk_s3::Client::put_object).sequence();
    for &(status, code) in answers {
        rule = rule.http_response(move || put_answer(status, code));
    }
    let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&rule.build()], |c| c
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()));
    ports_with(s3)
}

/// #16 review: a conditional write answered 412 is a claim someone holds; a 409
/// (ConditionalRequestConflict: a concurrent write or delete of the key) is asked again, and is
/// never read as "taken" (S3 User Guide, "How to prevent object overwrites with conditional
/// writes": "On a 409 failure you should retry").
#[tokio::test]
async fn a_conditional_write_conflict_is_retried_and_only_412_means_taken() {
    // Taken, even when the object holds the very bytes written: two deliveries of one event
    // write the same bytes, and only one may claim.
    let taken = ports_putting(&[(412, "PreconditionFailed")]);
    assert!(!taken
        .put_if_absent("claim.json", b"{}".to_vec())
        .await
        .unwrap());

    let won = ports_putting(&[(409, "ConditionalRequestConflict"), (200, "")]);
    assert!(won
        .put_if_absent("claim.json", b"{}".to_vec())
        .await
        .unwrap());

    let conflict = (409, "ConditionalRequestConflict");
    let busy = ports_putting(&[conflict, conflict, conflict]);
    let err = busy
        .put_if_absent("claim.json", b"{}".to_vec())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.code, "ConditionalRequestConflict");
}
