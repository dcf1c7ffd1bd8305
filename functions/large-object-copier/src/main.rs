//! large-object-copier's Lambda entry point: configuration once, then the handler.

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use large_object_copier::{LargeObjectCopier, StsCopierPorts};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT=JSON).
    tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    // The source bucket's Region, pinned by the template: the SDK doesn't follow S3's redirect.
    let source_region = std::env::var("FERRY_SOURCE_REGION")
        .ok()
        .filter(|r| !r.trim().is_empty());
    let ports = StsCopierPorts::new(config, false).with_source_region(source_region);
    let copier = LargeObjectCopier::from_env(ports)?;
    run(service_fn(|event: LambdaEvent<Value>| async {
        copier.handle(event).await
    }))
    .await
}
