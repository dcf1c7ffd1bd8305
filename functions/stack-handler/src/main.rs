//! stack-handler's Lambda entry point: configuration and clients once, then the handler.

// The handler's future (preflight, launch, first inventory run, nested async calls) is deep:
// computing its layout needs more than the default query depth of 128 in a clean build.
#![recursion_limit = "256"]

use ferry_aws::AwsPorts;
use ferry_flows::stack_pins::StackPins;
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::Value;
use stack_handler::StackHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT=JSON).
    tracing::init_default_subscriber();
    let (ports, approval_topic_arn) = AwsPorts::for_lambda().await?;
    // Without the template's pins the function trusts no event: it doesn't start.
    let pins = StackPins::from_environment(std::env::vars())?;
    let handler = StackHandler::new(ports, approval_topic_arn, pins);
    run(service_fn(|event: LambdaEvent<Value>| {
        handler.handle(event)
    }))
    .await
}
