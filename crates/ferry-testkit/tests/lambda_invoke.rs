//! Lambda `Invoke` through the authorizing gateway: answered there (moto runs no functions) and
//! listed for the test by `ferry_testkit::lambda::invocations`.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use ferry_testkit::lambda::invocations;
use ferry_testkit::MotoServer;
use serde_json::json;

const ACCOUNT: &str = "222222222222";
const REGION: &str = "us-east-1";

#[tokio::test]
async fn an_event_invoke_is_answered_by_the_gateway_and_listed_with_its_payload() {
    let moto = MotoServer::start();
    assert!(
        moto.authorizes(),
        "Invoke is answered by the gateway: this test needs it (unset FERRY_GATEWAY)"
    );
    let lambda = aws_sdk_lambda::Client::new(&moto.sdk_config_for_account(ACCOUNT, REGION).await);
    assert_eq!(invocations(&moto).await, Vec::<serde_json::Value>::new());

    let out = lambda
        .invoke()
        .function_name("ferry-inv")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(json!({"hello": "world"}).to_string()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("Invoke: {e:?}"));
    assert_eq!(out.status_code(), 202);

    assert_eq!(
        invocations(&moto).await,
        vec![json!({
            "functionArn": format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:ferry-inv"),
            "invocationType": "Event",
            "principal": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{}/ferry-testkit", MotoServer::ROLE_NAME),
            "payload": {"hello": "world"},
        })]
    );

    // A reset through the gateway forgets them.
    moto.reset().await;
    assert_eq!(invocations(&moto).await, Vec::<serde_json::Value>::new());
}
