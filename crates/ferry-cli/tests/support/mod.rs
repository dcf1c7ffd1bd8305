//! What the through-the-stack tests (`through_the_stack.rs`, `examples_through_the_stack.rs`)
//! share: the functions' clock and retry pace, a function's ports as its template role, and the
//! approval message as SNS delivers it to approval-handler.

use std::path::Path;
use std::time::Duration;

use ferry_aws::AwsPorts;
use ferry_flows::aws_error::RetryPolicy;
use ferry_plan::approval::ApprovalToken;
use ferry_testkit::{s3_client, s3control_client, FunctionRole, SentJobs};
use job_monitor::JobMonitor;
use serde_json::Value;

/// The functions' clock.
pub fn now() -> u64 {
    1_795_500_000
}

/// Retries without waiting.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        first_pause: Duration::from_millis(1),
        max_pause: Duration::from_millis(2),
    }
}

/// The ports a function gets: its role's session, the stack's resources, S3 Control through the
/// gateway (jobs answered by its job table, which the emulator moves); and the CreateJob requests
/// the function sends, for the emulator to run.
pub fn ports(role: &FunctionRole) -> (AwsPorts, SentJobs) {
    let (s3control, sent) = s3control_client(&role.config);
    let ports = AwsPorts::from_config(
        &role.config,
        role.state_bucket.clone(),
        role.notification_topic_arn.clone(),
    )
    .with_clients(s3_client(&role.config), s3control)
    .with_inventory_function(role.env("FERRY_INVENTORY_FUNCTION_ARN"))
    .with_batch_role_boundary(role.env("FERRY_BATCH_ROLE_BOUNDARY_ARN"));
    (ports, sent)
}

/// The approval topic's message to approval-handler (`events/approval-handler-approve.json`)
/// with `token`, as a person publishes it with the command of the instructions e-mail.
pub fn approval_event(token: &ApprovalToken) -> Value {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/approval-handler-approve.json");
    let text = std::fs::read_to_string(fixture).expect("the approval fixture");
    serde_json::from_str(&text.replace("<token from the instructions e-mail>", token.expose()))
        .expect("JSON")
}

/// job-monitor as `role` (its template role's session), for the stack of `account`/`region`.
pub fn job_monitor_as(role: &FunctionRole, account: &str, region: &str) -> JobMonitor<AwsPorts> {
    JobMonitor {
        ports: ports(role).0,
        approval_topic_arn: role.approval_topic_arn.clone(),
        account_id: account.to_string(),
        region: region.to_string(),
        clock: now,
    }
}
