//! Set-up shared by the end-to-end tests of inventory runs: the stack's state (an approved,
//! stored plan), the objects S3 delivers as an inventory, inventory-handler running as its
//! template role with S3 Control through the gateway, and the EventBridge event of a new inventory.

use std::time::Duration;

use ferry_aws::{AwsLaunchApi, AwsPorts};
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::workflow::StoredPlan;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::{s3_client, s3control_client, FunctionRole, SentJobs};
use inventory_handler::{InventoryHandler, Settings};

pub use ferry_testkit::inventory::{deliver_csv_inventory, inventory_event as event_for, put_all};

/// The stack's state for `spec`: its plan stored and approved, as TransferPlan and an approval
/// leave them. Returns the plan's fingerprint.
pub async fn store_approved_plan(
    s3: &aws_sdk_s3::Client,
    state_bucket: &str,
    spec: &TransferSpec,
) -> String {
    let fingerprint = Plan::build(spec).expect("plan").transfer.fingerprint;
    let stored = StoredPlan {
        fingerprint: fingerprint.clone(),
        spec: spec.clone(),
    };
    put_all(
        s3,
        state_bucket,
        vec![
            (
                format!("plans/{fingerprint}.json"),
                serde_json::to_vec(&stored).expect("plan JSON"),
            ),
            (
                format!("decisions/{fingerprint}.json"),
                br#"{"decision":"approve","plan_fingerprint":"x","at_unix":1}"#.to_vec(),
            ),
        ],
    )
    .await;
    fingerprint
}

/// inventory-handler as `role` (its template role's session), S3 Control through the gateway,
/// and the CreateJob requests it sends (for the emulator to run).
pub fn handler_as(
    role: &FunctionRole,
    fingerprint: &str,
    name: &str,
) -> (InventoryHandler<AwsPorts>, SentJobs) {
    let mut ports = AwsPorts::from_config(
        &role.config,
        role.state_bucket.clone(),
        role.notification_topic_arn.clone(),
    );
    let (s3control, sent) = s3control_client(&role.config);
    ports.launch = AwsLaunchApi::new(s3_client(&role.config), s3control);
    let mut handler = InventoryHandler::new(
        ports,
        Settings {
            plan_fingerprint: fingerprint.to_string(),
            large_object_function_arn: None,
            work_dir: std::env::temp_dir().join(format!("ferry-{name}-{}", std::process::id())),
            retry: RetryPolicy {
                max_attempts: 2,
                first_pause: Duration::from_millis(1),
                max_pause: Duration::from_millis(2),
            },
            // More threads than the tests' data files, as a Lambda with 6 vCPUs may have.
            scan_threads: 3,
            work_dir_bytes: 1 << 30,
            state_bucket: role.state_bucket.clone(),
            fan_out: None,
        },
    );
    handler.clock = || 1_795_486_500;
    (handler, sent)
}
