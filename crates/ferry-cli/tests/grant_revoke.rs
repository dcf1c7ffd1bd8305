//! `ferry grant` / `ferry revoke` against moto: merge into policies that have other people's
//! statements, a second run changes nothing, revoke restores the original, and an explicit
//! Deny or an oversized result is refused without writing anything.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_testkit::{s3_client, MotoServer};
use serde_json::{json, Value};

const SOURCE_BUCKET: &str = "acme-grant-source";

struct World {
    moto: MotoServer,
    s3: aws_sdk_s3::Client,
    kms: aws_sdk_kms::Client,
    key_arn: String,
    dir: PathBuf,
    spec: PathBuf,
}

impl World {
    async fn start() -> World {
        World::start_named("grant-test").await
    }

    /// A world whose transfer is called `name`.
    async fn start_named(name: &str) -> World {
        let moto = MotoServer::start();
        let config = moto.sdk_config("us-east-1").await;
        let s3 = s3_client(&config);
        let kms = aws_sdk_kms::Client::new(&config);
        s3.create_bucket()
            .bucket(SOURCE_BUCKET)
            .send()
            .await
            .unwrap();
        let key = kms
            .create_key()
            .description("source objects")
            .send()
            .await
            .unwrap();
        let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
        let dir = std::env::temp_dir().join(format!(
            "ferry-grant-{}-{}",
            std::process::id(),
            moto.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = dir.join("spec.toml");
        std::fs::write(
            &spec,
            format!(
                r#"name = "{name}"
[source]
account_id = "{source}"
region = "us-east-1"
bucket = "{SOURCE_BUCKET}"
kms_key_arn = "{key_arn}"
[destination]
account_id = "222222222222"
region = "us-east-1"
bucket = "acme-grant-destination"
[manifest]
kind = "csv"
bucket = "acme-grant-destination"
account_id = "222222222222"
key = "m.csv"
[report]
bucket = "acme-grant-destination"
account_id = "222222222222"
prefix = "reports"
"#,
                source = MotoServer::DEFAULT_ACCOUNT
            ),
        )
        .unwrap();
        World {
            moto,
            s3,
            kms,
            key_arn,
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
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ferry runs")
    }

    async fn bucket_policy(&self) -> Option<Value> {
        match self
            .s3
            .get_bucket_policy()
            .bucket(SOURCE_BUCKET)
            .send()
            .await
        {
            Ok(out) => Some(serde_json::from_str(out.policy().unwrap()).unwrap()),
            Err(_) => None,
        }
    }

    async fn key_policy(&self) -> Value {
        let out = self
            .kms
            .get_key_policy()
            .key_id(&self.key_arn)
            .policy_name("default")
            .send()
            .await
            .unwrap();
        serde_json::from_str(out.policy().unwrap()).unwrap()
    }

    async fn set_key_policy(&self, policy: &Value) {
        self.kms
            .put_key_policy()
            .key_id(&self.key_arn)
            .policy_name("default")
            .policy(policy.to_string())
            .send()
            .await
            .unwrap();
    }

    async fn set_bucket_policy(&self, policy: &Value) {
        self.s3
            .put_bucket_policy()
            .bucket(SOURCE_BUCKET)
            .policy(policy.to_string())
            .send()
            .await
            .unwrap();
    }
}

impl World {
    /// iam-simulate on the live policies: can the role read and decrypt the source?
    async fn simulated_access(&self, expect: &str) -> bool {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let iam = repo.join("tests/iam");
        assert!(
            iam.join("node_modules/@cloud-copilot/iam-simulate")
                .exists(),
            "run `bash tests/iam/run.sh --install-only` (scripts/test does) before these tests"
        );
        let plan = self.ferry(&["plan", "--format", "json"]);
        let plan_file = self.dir.join("plan.json");
        std::fs::write(&plan_file, &plan.stdout).unwrap();
        let bucket_file = match self.bucket_policy().await {
            Some(p) => {
                let f = self.dir.join("bucket-policy.json");
                std::fs::write(&f, p.to_string()).unwrap();
                f
            }
            None => PathBuf::from("none"),
        };
        let key_file = self.dir.join("key-policy.json");
        std::fs::write(&key_file, self.key_policy().await.to_string()).unwrap();
        let out = Command::new("node")
            .arg(iam.join("check-live-policies.mjs"))
            .args([&plan_file, &bucket_file, &key_file])
            .arg(expect)
            .current_dir(&iam)
            .output()
            .expect("node runs");
        println!("{}", text(&out));
        out.status.success()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sids(policy: &Value) -> Vec<String> {
    let list = match &policy["Statement"] {
        Value::Array(l) => l.clone(),
        single => vec![single.clone()],
    };
    list.iter()
        .map(|s| s["Sid"].as_str().unwrap_or("").to_string())
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn existing_bucket_policy() -> Value {
    json!({"Version":"2012-10-17","Statement":[{"Sid":"AnalyticsReadsReports","Effect":"Allow",
        "Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":"s3:GetObject",
        "Resource":format!("arn:aws:s3:::{SOURCE_BUCKET}/reports/*")}]})
}

#[tokio::test]
async fn grant_merges_shows_a_diff_is_idempotent_and_revoke_restores() {
    let w = World::start().await;
    w.set_bucket_policy(&existing_bucket_policy()).await;
    let key_before = w.key_policy().await;
    assert!(
        w.simulated_access("denied").await,
        "before grant the role can't read the source"
    );

    // Without --apply (and no terminal to ask on): a diff, nothing written.
    let dry = w.ferry(&["grant"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let out = text(&dry);
    assert!(
        out.contains("+      \"Sid\": \"FerryGrantTestReadSourceObjects\""),
        "{out}"
    );
    assert!(out.contains("Nothing was written"), "{out}");
    assert_eq!(w.bucket_policy().await.unwrap(), existing_bucket_policy());

    let applied = w.ferry(&["grant", "--apply"]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert_eq!(
        sids(&w.bucket_policy().await.unwrap()),
        vec![
            "AnalyticsReadsReports",
            "FerryGrantTestReadSourceObjects",
            "FerryGrantTestListSourceBucket"
        ]
    );
    assert!(
        w.simulated_access("allowed").await,
        "after grant the copy's reads are Allowed"
    );
    let key_after = w.key_policy().await;
    let mut expected_key_sids = sids(&key_before);
    expected_key_sids.push("FerryGrantTestDecryptSourceObjects".to_string());
    assert_eq!(sids(&key_after), expected_key_sids);

    // A second run changes nothing.
    let again = w.ferry(&["grant", "--apply"]);
    assert!(again.status.success());
    assert!(
        text(&again).contains("Nothing to change"),
        "{}",
        text(&again)
    );

    // Revoke takes out exactly Ferry's statements.
    let revoked = w.ferry(&["revoke", "--apply"]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert_eq!(w.bucket_policy().await.unwrap(), existing_bucket_policy());
    assert_eq!(sids(&w.key_policy().await), sids(&key_before));
    assert!(
        w.simulated_access("denied").await,
        "after revoke they are denied again"
    );
}

/// #15 item 12: `grant-2024` used to get the Sids `FerryGrant2024…`, which are also transfer
/// `grant2024`'s; now its Sids end in `H5` (the hyphen's index). A grant made by an older Ferry
/// (old Sids, naming grant-2024's role) is replaced in place, not duplicated, and revoke takes
/// it out whether or not it was granted again.
#[tokio::test]
async fn a_grant_under_the_sids_before_15_is_upgraded_in_place_and_revoked() {
    let w = World::start_named("grant-2024").await;
    let role = "arn:aws:iam::222222222222:role/ferry-grant-2024-batch";
    let plan: Value =
        serde_json::from_slice(&w.ferry(&["plan", "--format", "json"]).stdout).expect("plan JSON");
    assert_eq!(plan["batch_role"]["arn"], role);
    let mut bucket_before = existing_bucket_policy();
    for (sid, action, resource) in [
        (
            "FerryGrant2024ReadSourceObjects",
            "s3:GetObject",
            format!("arn:aws:s3:::{SOURCE_BUCKET}/*"),
        ),
        (
            "FerryGrant2024ListSourceBucket",
            "s3:ListBucket",
            format!("arn:aws:s3:::{SOURCE_BUCKET}"),
        ),
    ] {
        bucket_before["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({
            "Sid": sid, "Effect": "Allow", "Principal": {"AWS": role},
            "Action": action, "Resource": resource}));
    }
    w.set_bucket_policy(&bucket_before).await;
    let mut key_before = w.key_policy().await;
    let key_original = key_before.clone();
    key_before["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "FerryGrant2024DecryptSourceObjects", "Effect": "Allow",
        "Principal": {"AWS": role}, "Action": "kms:Decrypt", "Resource": "*"}));
    w.set_key_policy(&key_before).await;

    let applied = w.ferry(&["grant", "--apply"]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(
        text(&applied).contains(
            "replaced FerryGrant2024ReadSourceObjectsH5, FerryGrant2024ListSourceBucketH5"
        ),
        "{}",
        text(&applied)
    );
    assert_eq!(
        sids(&w.bucket_policy().await.unwrap()),
        vec![
            "AnalyticsReadsReports",
            "FerryGrant2024ReadSourceObjectsH5",
            "FerryGrant2024ListSourceBucketH5"
        ]
    );
    let mut expected_key_sids = sids(&key_original);
    expected_key_sids.push("FerryGrant2024DecryptSourceObjectsH5".to_string());
    assert_eq!(sids(&w.key_policy().await), expected_key_sids);
    let again = w.ferry(&["grant", "--apply"]);
    assert!(
        text(&again).contains("Nothing to change"),
        "{}",
        text(&again)
    );

    let revoked = w.ferry(&["revoke", "--apply"]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert_eq!(w.bucket_policy().await.unwrap(), existing_bucket_policy());
    assert_eq!(w.key_policy().await, key_original);

    // Never granted again: revoke finds the old Sids themselves.
    w.set_bucket_policy(&bucket_before).await;
    w.set_key_policy(&key_before).await;
    let revoked = w.ferry(&["revoke", "--apply"]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert_eq!(w.bucket_policy().await.unwrap(), existing_bucket_policy());
    assert_eq!(w.key_policy().await, key_original);
}

#[tokio::test]
async fn revoke_deletes_a_bucket_policy_that_only_ferry_used() {
    let w = World::start().await;
    assert!(w.ferry(&["grant", "--apply"]).status.success());
    assert!(w.bucket_policy().await.is_some());
    assert!(w.ferry(&["revoke", "--apply"]).status.success());
    assert!(w.bucket_policy().await.is_none());
}

#[tokio::test]
async fn an_explicit_deny_is_named_and_nothing_is_written() {
    let w = World::start().await;
    let with_deny = json!({"Version":"2012-10-17","Statement":[
        {"Sid":"NoCrossAccountReads","Effect":"Deny","Principal":"*","Action":"s3:GetObject",
         "Resource":format!("arn:aws:s3:::{SOURCE_BUCKET}/*")}]});
    w.set_bucket_policy(&with_deny).await;
    let key_before = w.key_policy().await;
    let out = w.ferry(&["grant", "--apply"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("statement NoCrossAccountReads"),
        "{}",
        text(&out)
    );
    assert_eq!(w.bucket_policy().await.unwrap(), with_deny);
    assert_eq!(
        w.key_policy().await,
        key_before,
        "no policy written, not even the key's"
    );
}

/// #15 item 12: a Deny that happens to carry one of Ferry's Sids is not Ferry's to replace: the
/// grant is refused naming it (nothing written), and revoke leaves it where it is.
#[tokio::test]
async fn a_deny_under_ferrys_sid_is_refused_not_replaced() {
    let w = World::start().await;
    let with_deny = json!({"Version":"2012-10-17","Statement":[
        {"Sid":"FerryGrantTestReadSourceObjects","Effect":"Deny","Principal":"*","Action":"s3:GetObject",
         "Resource":format!("arn:aws:s3:::{SOURCE_BUCKET}/secret/*")}]});
    w.set_bucket_policy(&with_deny).await;
    let key_before = w.key_policy().await;
    let out = w.ferry(&["grant", "--apply"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("Sid FerryGrantTestReadSourceObjects that is not Ferry's"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("Nothing was written"), "{}", text(&out));
    assert_eq!(w.bucket_policy().await.unwrap(), with_deny);
    assert_eq!(w.key_policy().await, key_before);

    let revoked = w.ferry(&["revoke", "--apply"]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert_eq!(w.bucket_policy().await.unwrap(), with_deny);
}

#[tokio::test]
async fn a_policy_that_would_exceed_20_kb_is_refused() {
    let w = World::start().await;
    let filler: Vec<Value> = (0..86)
        .map(|i| {
            json!({"Sid":format!("Team{i}"),"Effect":"Allow","Principal":{"AWS":format!("arn:aws:iam::{:012}:root", 100_000_000_000u64 + i)},
                "Action":["s3:GetObject","s3:GetObjectVersion","s3:GetObjectTagging"],
                "Resource":format!("arn:aws:s3:::{SOURCE_BUCKET}/teams/team-number-{i}/shared/area/*")})
        })
        .collect();
    let big = json!({"Version":"2012-10-17","Statement":filler});
    let size = big.to_string().len();
    assert!(
        size < 20 * 1024 && size > 20 * 1024 - 500,
        "filler is {size} bytes; adjust it"
    );
    w.set_bucket_policy(&big).await;
    let out = w.ferry(&["grant", "--apply"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("over the 20480-byte limit"),
        "{}",
        text(&out)
    );
}

#[test]
fn same_account_has_nothing_to_grant_in_the_source_account() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/in-place-reencrypt.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["grant"])
        .arg(spec)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        text(&out).contains("same-account transfer"),
        "{}",
        text(&out)
    );
}
