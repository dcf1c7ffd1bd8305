//! AWS Lambda's Invoke through the authorizing gateway: moto would need Docker to run a function,
//! so the gateway authorizes each `Invoke` as IAM would (`lambda:InvokeFunction` on
//! `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`; a function of another account is
//! refused, as AWS refuses it without a resource policy) and answers it itself: `Event` 202,
//! `DryRun` 204, `RequestResponse` a 500 `ServiceException` (nothing runs the function there).
//! It lists every `Event` and `RequestResponse` invocation it answered, so that a test can run the
//! invoked handler with the payload it was sent ([`invocations`]). See
//! `tests/gateway/lambda-invoke.mjs`.

use serde_json::Value;

use crate::moto::MotoServer;
use crate::s3control::harness_call;

/// The invocations the gateway answered so far, in order: each
/// `{"functionArn", "qualifier"?, "invocationType", "principal", "payload"}` (the function's
/// unqualified ARN; the caller's ARN; the payload as JSON when it is JSON, else its text).
/// Empty when the gateway is off (`FERRY_GATEWAY=off`: nothing answers `Invoke` then). A reset
/// ([`MotoServer::reset`]) empties the list. Panics when the gateway does not answer 200 JSON.
pub async fn invocations(moto: &MotoServer) -> Vec<Value> {
    if !moto.authorizes() {
        return Vec::new();
    }
    let path = "/_ferry/lambda/invocations".to_string();
    let Some((status, body)) = harness_call(moto, "GET", path, String::new()).await else {
        panic!("the gateway did not answer GET /_ferry/lambda/invocations");
    };
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(list)) if status == 200 => list,
        _ => panic!("GET /_ferry/lambda/invocations answered {status}: {body}"),
    }
}
