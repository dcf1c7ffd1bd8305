//! inventory-handler's Lambda entry point: configuration and clients once, then the handler.

use ferry_aws::AwsPorts;
use inventory_handler::{InventoryHandler, Settings};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT=JSON).
    tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let (ports, _approval_topic_arn) = AwsPorts::for_lambda().await?;
    let handler = InventoryHandler::new(ports, settings);
    run(service_fn(|event: LambdaEvent<Value>| async {
        // `{}`: what each fan-out step hands back to the state machine (its Maps gather them).
        handler.handle(event).await.map(|_| serde_json::json!({}))
    }))
    .await
}
