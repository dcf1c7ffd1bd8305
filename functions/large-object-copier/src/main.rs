//! large-object-copier's Lambda entry point: configuration once, then the handler.

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use large_object_copier::{LargeObjectCopier, StsCopierPorts};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT=JSON).
    tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let copier = LargeObjectCopier::from_env(StsCopierPorts::new(config, false))?;
    run(service_fn(|event: LambdaEvent<Value>| async {
        copier.handle(event).await
    }))
    .await
}
