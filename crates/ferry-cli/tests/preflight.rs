//! `ferry preflight` against moto, with the destination account's credentials: a correct
//! set-up passes (saying what it can't check), and each broken part fails with its fix.

use std::path::PathBuf;
use std::process::{Command, Output};

use ferry_testkit::{s3_client, MotoServer};
use serde_json::Value;

struct World {
    moto: MotoServer,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    dir: PathBuf,
    spec: PathBuf,
}

const SOURCE: &str = "acme-preflight-source";
const DESTINATION: &str = "acme-preflight-destination";
const MANIFEST_KEY: &str = "lists/manifest.csv";

impl World {
    async fn start(source_region: &str) -> World {
        let moto = MotoServer::start();
        let config = moto.sdk_config("us-east-1").await;
        let s3 = s3_client(&config);
        let iam = aws_sdk_iam::Client::new(&config);
        let kms = aws_sdk_kms::Client::new(&config);
        s3.create_bucket().bucket(DESTINATION).send().await.unwrap();
        let eu = s3_client(&moto.sdk_config("eu-west-1").await);
        let create_source = if source_region == "us-east-1" {
            &s3
        } else {
            &eu
        };
        let mut request = create_source.create_bucket().bucket(SOURCE);
        if source_region != "us-east-1" {
            request = request.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        source_region,
                    ))
                    .build(),
            );
        }
        request.send().await.unwrap();
        s3.put_object()
            .bucket(DESTINATION)
            .key(MANIFEST_KEY)
            .body(format!("{SOURCE},a.jpg\n").into_bytes().into())
            .send()
            .await
            .unwrap();
        let key = kms.create_key().send().await.unwrap();
        let destination_key = key.key_metadata().unwrap().arn().unwrap().to_string();
        let dir = std::env::temp_dir().join(format!(
            "ferry-preflight-{}-{}",
            std::process::id(),
            moto.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = dir.join("spec.toml");
        std::fs::write(
            &spec,
            format!(
                r#"name = "preflight-test"
[source]
account_id = "111111111111"
region = "us-east-1"
bucket = "{SOURCE}"
kms_key_arn = "arn:aws:kms:us-east-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011"
[destination]
account_id = "{account}"
region = "us-east-1"
bucket = "{DESTINATION}"
kms_key_arn = "{destination_key}"
bucket_key_enabled = true
[manifest]
kind = "csv"
bucket = "{DESTINATION}"
account_id = "{account}"
key = "{MANIFEST_KEY}"
[report]
bucket = "{DESTINATION}"
account_id = "{account}"
prefix = "reports"
"#,
                account = MotoServer::DEFAULT_ACCOUNT
            ),
        )
        .unwrap();
        World {
            moto,
            s3,
            iam,
            dir,
            spec,
        }
    }

    fn ferry(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        self.moto
            .point_command(&mut command, &self.dir, "us-east-1")
            .args(args)
            .arg(&self.spec)
            .output()
            .expect("ferry runs")
    }

    /// Step 1 of the plan, done by hand: the role with the plan's documents.
    async fn create_role(&self) {
        let plan: Value =
            serde_json::from_slice(&self.ferry(&["plan", "--format", "json"]).stdout).unwrap();
        let role = &plan["batch_role"];
        self.iam
            .create_role()
            .role_name(role["name"].as_str().unwrap())
            .assume_role_policy_document(role["trust_policy"].to_string())
            .send()
            .await
            .unwrap();
        self.iam
            .put_role_policy()
            .role_name(role["name"].as_str().unwrap())
            .policy_name(role["policy_name"].as_str().unwrap())
            .policy_document(role["permissions_policy"].to_string())
            .send()
            .await
            .unwrap();
    }

    fn checks(&self) -> (i32, Vec<Value>) {
        let out = self.ferry(&["preflight", "--format", "json"]);
        let checks: Vec<Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap_or(-1), checks)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn status<'a>(checks: &'a [Value], name: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
}

#[tokio::test]
async fn a_correct_setup_passes_and_says_what_it_cannot_check() {
    let w = World::start("us-east-1").await;
    w.create_role().await;
    let (code, checks) = w.checks();
    assert_eq!(code, 0, "{checks:#?}");
    assert_eq!(status(&checks, "Batch Operations role"), "pass");
    assert_eq!(status(&checks, "manifest"), "pass");
    assert_eq!(status(&checks, "source bucket region"), "pass");
    assert_eq!(status(&checks, "destination KMS key"), "pass");
    assert_eq!(status(&checks, "source KMS key"), "cannot-check");
    assert_eq!(status(&checks, "reads through the role"), "cannot-check");
    // No ownership controls set: a warning with the command that fixes it.
    assert_eq!(status(&checks, "destination object ownership"), "warn");

    ferry_testkit::bucket_owner_enforced(&w.s3, DESTINATION).await;
    let (_, checks) = w.checks();
    assert_eq!(status(&checks, "destination object ownership"), "pass");
}

#[tokio::test]
async fn a_missing_role_a_drifted_policy_and_a_missing_manifest_fail_with_fixes() {
    let w = World::start("us-east-1").await;
    let (code, checks) = w.checks();
    assert_eq!(code, 1);
    assert_eq!(status(&checks, "Batch Operations role"), "fail");

    w.create_role().await;
    w.iam
        .put_role_policy()
        .role_name("ferry-preflight-test-batch")
        .policy_name("ferry-preflight-test")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    w.s3.delete_object()
        .bucket(DESTINATION)
        .key(MANIFEST_KEY)
        .send()
        .await
        .unwrap();
    let out = w.ferry(&["preflight"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL Batch Operations role") && text.contains("permissions policy differ"),
        "{text}"
    );
    assert!(text.contains("fix: put the plan's documents"), "{text}");
    assert!(
        text.contains("FAIL manifest") && text.contains("does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn a_bucket_in_another_region_is_named() {
    let w = World::start("eu-west-1").await;
    w.create_role().await;
    let (code, checks) = w.checks();
    assert_eq!(code, 1, "{checks:#?}");
    let region = checks
        .iter()
        .find(|c| c["name"] == "source bucket region")
        .unwrap();
    assert_eq!(region["status"], "fail");
    assert!(
        region["detail"]
            .as_str()
            .unwrap()
            .contains("is in eu-west-1"),
        "{region:#?}"
    );
    assert_eq!(
        region["fix"],
        "set the source region to \"eu-west-1\" in the spec"
    );
}
