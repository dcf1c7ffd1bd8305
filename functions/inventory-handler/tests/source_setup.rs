//! The source-side set-up the plan and the instructions e-mail give works as given: the
//! inventory configuration JSON goes through botocore's own parameter validation (what
//! `aws s3api put-bucket-inventory-configuration --inventory-configuration file://…` runs) into
//! moto and reads back unchanged, and the delivery statement is accepted as a bucket policy.

use std::process::Command;

use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::MotoServer;

const SCRIPT: &str = r#"
import json, sys
import boto3
endpoint, config_file, policy_file = sys.argv[1:4]
cfg = json.load(open(config_file))
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
s3.create_bucket(Bucket="acme-media-prod")
s3.create_bucket(Bucket="acme-dr-inventory")
s3.put_bucket_inventory_configuration(Bucket="acme-media-prod", Id=cfg["Id"], InventoryConfiguration=cfg)
got = s3.get_bucket_inventory_configuration(Bucket="acme-media-prod", Id=cfg["Id"])["InventoryConfiguration"]
s3.put_bucket_policy(Bucket="acme-dr-inventory", Policy=open(policy_file).read())
print(json.dumps(got, sort_keys=True))
"#;

#[test]
fn the_inventory_configuration_and_delivery_policy_are_accepted_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("examples/inventory-driven.toml")).unwrap();
    let plan = Plan::build(&TransferSpec::from_toml_str(&text).unwrap()).unwrap();
    let runs = plan
        .inventory_runs
        .expect("[inventory] gives event-driven runs");

    let dir = std::env::temp_dir().join(format!("ferry-source-setup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_file = dir.join("inventory.json");
    let policy_file = dir.join("policy.json");
    let want = serde_json::to_value(&runs.inventory_configuration).unwrap();
    std::fs::write(&config_file, want.to_string()).unwrap();
    std::fs::write(&policy_file, runs.delivery_policy.to_pretty_json()).unwrap();

    let moto = MotoServer::start();
    let python = root.join(".venv/bin/python");
    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(moto.endpoint_url())
        .arg(&config_file)
        .arg(&policy_file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run bash scripts/setup-python)", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["Id"], want["Id"]);
    assert_eq!(got["Destination"], want["Destination"]);
    assert_eq!(got["Schedule"], want["Schedule"]);
    // moto 5.2 answers IncludedObjectVersions "All" whatever was put; botocore validated ours.
    assert_eq!(want["IncludedObjectVersions"], "Current");
    assert_eq!(got["OptionalFields"], want["OptionalFields"]);
    let _ = std::fs::remove_dir_all(&dir);
}
