//! approval-handler's Lambda entry point: configuration and clients once, then the handler.

use anyhow::Context;
use approval_handler::ApprovalHandler;
use ferry_aws::AwsPorts;
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| {
        std::env::var(name).with_context(|| format!("environment variable {name} is not set"))
    };
    let config = aws_config::load_from_env().await;
    let ports = AwsPorts::from_config(
        &config,
        env("FERRY_STATE_BUCKET")?,
        env("FERRY_NOTIFICATION_TOPIC_ARN")?,
    );
    let handler = ApprovalHandler::new(ports, env("FERRY_APPROVAL_TOPIC_ARN")?);
    run(service_fn(|event: LambdaEvent<Value>| async {
        handler.handle(event).await.map(|_| ())
    }))
    .await
}
