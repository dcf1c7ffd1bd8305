//! approval-handler's Lambda entry point: configuration and clients once, then the handler.

// The handler's future (preflight, launch, first inventory run, nested async calls) is deep:
// computing its layout needs more than the default query depth of 128 in a clean build.
#![recursion_limit = "256"]

use approval_handler::ApprovalHandler;
use ferry_aws::AwsPorts;
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT=JSON).
    tracing::init_default_subscriber();
    let (ports, approval_topic_arn) = AwsPorts::for_lambda().await?;
    // Who the approval topic lets publish (the template's ApproverArns): recorded with decisions.
    let approvers = approval_handler::parse_approvers(
        &std::env::var("FERRY_APPROVER_ARNS").unwrap_or_default(),
        &approval_topic_arn,
    )?;
    let handler = ApprovalHandler::new(ports, approval_topic_arn, approvers);
    run(service_fn(|event: LambdaEvent<Value>| async {
        handler.handle(event).await.map(|_| ())
    }))
    .await
}
