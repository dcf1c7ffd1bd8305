//! job-monitor's Lambda entry point: configuration and clients once, then the handler.

use ferry_aws::AwsPorts;
use job_monitor::JobMonitor;
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT=JSON).
    tracing::init_default_subscriber();
    let (ports, approval_topic_arn) = AwsPorts::for_lambda().await?;
    let account_id = std::env::var("FERRY_ACCOUNT_ID").map_err(|_| {
        Error::from("FERRY_ACCOUNT_ID is not set: the template pins the stack's account there")
    })?;
    // Lambda sets AWS_REGION to the function's Region.
    let region = std::env::var("AWS_REGION")
        .map_err(|_| Error::from("AWS_REGION is not set (Lambda sets it)"))?;
    let monitor = JobMonitor::new(ports, approval_topic_arn, account_id, region);
    run(service_fn(|event: LambdaEvent<Value>| async {
        monitor.handle(event).await.map(|_| ())
    }))
    .await
}
