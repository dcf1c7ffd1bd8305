//! Set-up shared by the end-to-end tests of inventory runs: the stack's state (an approved,
//! stored plan), the objects S3 delivers as an inventory, inventory-handler running as its
//! template role with CreateJob recorded, and the EventBridge event of a new inventory.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{mock_client, Rule, RuleMode};
use ferry_aws::{AwsLaunchApi, AwsPorts};
use ferry_core::launch::RetryPolicy;
use ferry_core::workflow::StoredPlan;
use ferry_core::{Plan, TransferSpec};
use ferry_testkit::{s3_client, FunctionRole};
use inventory_handler::{InventoryHandler, Settings};
use serde_json::Value;

/// Puts each `(key, body)` into `bucket`.
pub async fn put_all(s3: &aws_sdk_s3::Client, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
    for (key, body) in objects {
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
    }
}

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

/// inventory-handler as `role` (its template role's session), S3 Control answered by `create`.
pub fn handler_as(
    role: &FunctionRole,
    create: &Rule,
    fingerprint: &str,
    name: &str,
) -> InventoryHandler<AwsPorts> {
    let mut ports = AwsPorts::from_config(
        &role.config,
        role.state_bucket.clone(),
        role.notification_topic_arn.clone(),
    );
    ports.launch = AwsLaunchApi::new(
        s3_client(&role.config),
        mock_client!(aws_sdk_s3control, RuleMode::MatchAny, [create]),
    );
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
        },
    );
    handler.clock = || 1_795_486_500;
    handler
}

/// EventBridge's "Object Created" event for `checksum_key` in `bucket`, from the fixture.
pub fn event_for(bucket: &str, checksum_key: &str) -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/inventory-handler.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    event["detail"]["bucket"]["name"] = Value::String(bucket.to_string());
    event["detail"]["object"]["key"] = Value::String(checksum_key.to_string());
    event
}

/// S3 delivering a gzip CSV inventory of `source_bucket` for `date` under `dir` of
/// `inventory_bucket`: the data file, `manifest.json` (`schema`, created at `created_ms`) and,
/// last, `manifest.checksum`. Returns the data file's key and the checksum's key.
#[allow(clippy::too_many_arguments)]
pub async fn deliver_csv_inventory(
    s3: &aws_sdk_s3::Client,
    inventory_bucket: &str,
    dir: &str,
    date: &str,
    source_bucket: &str,
    schema: &str,
    csv: &str,
    created_ms: u64,
) -> (String, String) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(csv.as_bytes()).expect("gzip");
    let data_key = format!("{dir}data/{date}.csv.gz");
    let manifest = serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{inventory_bucket}"),
        "version": "2016-11-30",
        "creationTimestamp": created_ms.to_string(),
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": [{"key": data_key, "size": 1, "MD5checksum": "0"}],
    });
    let checksum_key = format!("{dir}{date}/manifest.checksum");
    put_all(
        s3,
        inventory_bucket,
        vec![
            (data_key.clone(), gz.finish().expect("gzip")),
            (
                format!("{dir}{date}/manifest.json"),
                manifest.to_string().into_bytes(),
            ),
            (checksum_key.clone(), format!("{created_ms:x}").into_bytes()),
        ],
    )
    .await;
    (data_key, checksum_key)
}
