//! Properties of generated plans that must hold for every transfer shape, checked on the
//! shipped examples and on variations of them.

use std::path::Path;
use std::process::Command;

use ferry_core::plan::TransferKind;
use ferry_core::render::JQ_MERGE_BY_SID;
use ferry_core::{Plan, TransferSpec};

fn example(name: &str) -> TransferSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("example exists");
    TransferSpec::from_toml_str(&text).expect("example parses")
}

fn all_actions(plan: &Plan) -> Vec<String> {
    plan.batch_role
        .permissions_policy
        .statements
        .iter()
        .flat_map(|s| s.actions.clone())
        .collect()
}

#[test]
fn cross_account_source_gets_bucket_and_key_statements_naming_the_role() {
    let plan = Plan::build(&example("kms-inventory.toml")).unwrap();
    assert_eq!(plan.transfer.kind, TransferKind::CrossAccount);
    let src = &plan.source_account;
    assert_eq!(src.account_id, "111111111111");
    let bucket = &src.bucket_policies["acme-ledger-prod"];
    let key = &src.key_policies
        ["arn:aws:kms:eu-west-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011"];
    for s in bucket.statements.iter().chain(&key.statements) {
        let principal = serde_json::to_value(&s.principal).unwrap();
        assert_eq!(principal["AWS"], plan.batch_role.arn, "{}", s.sid);
    }
    let cond = key.statements[0].condition.as_ref().unwrap();
    assert_eq!(
        cond["StringEquals"]["kms:ViaService"],
        "s3.eu-west-1.amazonaws.com"
    );
    assert_eq!(cond["StringEquals"]["kms:CallerAccount"], "222222222222");
    assert_eq!(key.statements[0].actions, vec!["kms:Decrypt"]);
    // The destination owns the manifest, report and destination buckets: no bucket policies.
    assert!(plan.destination_account.bucket_policies.is_empty());
    assert_eq!(plan.destination_account.key_policies.len(), 2);
}

#[test]
fn same_account_and_in_place_carry_no_cross_account_statements() {
    let plan = Plan::build(&example("in-place-reencrypt.toml")).unwrap();
    assert_eq!(plan.transfer.kind, TransferKind::InPlace);
    assert!(plan.source_account.is_empty());
    assert!(plan.destination_account.bucket_policies.is_empty());
    for doc in plan.destination_account.key_policies.values() {
        for s in &doc.statements {
            let cond = s.condition.as_ref().unwrap();
            assert_eq!(cond["StringEquals"]["kms:CallerAccount"], "333333333333");
        }
    }

    let mut spec = example("sse-s3-csv.toml");
    spec.source.account_id = spec.destination.account_id.clone();
    let plan = Plan::build(&spec).unwrap();
    assert_eq!(plan.transfer.kind, TransferKind::SameAccount);
    assert!(plan.source_account.is_empty() && plan.destination_account.is_empty());
}

/// Versions of source objects are read only from a versioned source. The manifest's version is
/// read always: the stack creates its job on the version its approval e-mails named, in a
/// versioned manifest bucket (`ObjectVersionId`, #15 item 13).
#[test]
fn version_reads_only_for_versioned_sources_and_the_manifest() {
    let plan = Plan::build(&example("sse-s3-csv.toml")).unwrap();
    let manifest = "arn:aws:s3:::acme-ferry-manifests/photos/manifest.csv".to_string();
    for s in &plan.batch_role.permissions_policy.statements {
        if s.actions.iter().any(|a| a.contains("Version")) {
            assert_eq!(s.resources, vec![manifest.clone()], "{}", s.sid);
            assert_eq!(
                s.actions,
                ["s3:GetObject", "s3:GetObjectVersion"],
                "{}",
                s.sid
            );
        }
    }
    assert!(all_actions(&plan).contains(&"s3:GetObjectVersion".to_string()));
    let plan = Plan::build(&example("versioned-source.toml")).unwrap();
    let source = plan
        .batch_role
        .permissions_policy
        .statements
        .iter()
        .find(|s| s.sid.ends_with("ReadSourceObjects"))
        .unwrap();
    assert!(source.actions.contains(&"s3:GetObjectVersion".to_string()));
}

#[test]
fn kms_is_granted_exactly_where_a_bucket_is_kms_encrypted() {
    let plan = Plan::build(&example("sse-s3-csv.toml")).unwrap();
    assert!(!all_actions(&plan).iter().any(|a| a.starts_with("kms:")));
    let plan = Plan::build(&example("kms-inventory.toml")).unwrap();
    let kms: Vec<_> = plan
        .batch_role
        .permissions_policy
        .statements
        .iter()
        .filter(|s| s.actions.iter().any(|a| a.starts_with("kms:")))
        .map(|s| (s.sid.as_str(), s.actions.join(",")))
        .collect();
    assert_eq!(
        kms,
        vec![
            ("FerryLedgerDecryptSourceObjects", "kms:Decrypt".to_string()),
            // An SSE-KMS inventory manifest: Decrypt and GenerateDataKey, as AWS documents.
            (
                "FerryLedgerDecryptManifest",
                "kms:GenerateDataKey,kms:Decrypt".to_string()
            ),
            (
                "FerryLedgerEncryptDestinationObjects",
                "kms:GenerateDataKey,kms:Decrypt".to_string()
            ),
            (
                "FerryLedgerEncryptCompletionReport",
                "kms:GenerateDataKey,kms:Decrypt".to_string()
            ),
        ]
    );
}

#[test]
fn no_delete_acl_or_wildcard_action_is_ever_granted() {
    for name in [
        "sse-s3-csv.toml",
        "kms-inventory.toml",
        "versioned-source.toml",
        "in-place-reencrypt.toml",
        "cross-region.toml",
    ] {
        let plan = Plan::build(&example(name)).unwrap();
        for a in all_actions(&plan) {
            assert!(
                !a.contains('*') && !a.contains("Delete") && !a.contains("Acl"),
                "{name}: {a}"
            );
        }
    }
}

#[test]
fn cross_region_uses_each_keys_own_region_for_via_service() {
    let plan = Plan::build(&example("cross-region.toml")).unwrap();
    let via: Vec<_> = plan
        .batch_role
        .permissions_policy
        .statements
        .iter()
        .filter_map(|s| {
            s.condition
                .as_ref()?
                .get("StringEquals")?
                .get("kms:ViaService")
        })
        .cloned()
        .collect();
    assert_eq!(
        via,
        vec![
            "s3.us-east-1.amazonaws.com",
            "s3.eu-central-1.amazonaws.com"
        ]
    );
    // AWS's documented trust policy: the service, no conditions (iam:PassRole is the guard).
    let trust = serde_json::to_value(&plan.batch_role.trust_policy).unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "batchoperations.s3.amazonaws.com"
    );
    assert!(trust["Statement"][0].get("Condition").is_none(), "{trust}");
}

#[test]
fn the_plan_fingerprint_changes_with_the_transfer_and_drives_the_token() {
    let spec = example("sse-s3-csv.toml");
    let plan = Plan::build(&spec).unwrap();
    let mut other = spec.clone();
    other.destination.key_prefix = Some("x/".into());
    assert_ne!(
        plan.transfer.fingerprint,
        Plan::build(&other).unwrap().transfer.fingerprint
    );
    assert_eq!(
        plan.transfer.fingerprint,
        Plan::build(&spec).unwrap().transfer.fingerprint
    );

    let fp = &plan.transfer.fingerprint;
    let launched = plan
        .create_job
        .for_manifest_etag(fp, "\"9b2cf535f27731c974343645a3985328\"")
        .unwrap();
    assert_eq!(
        launched.manifest.location.etag,
        "9b2cf535f27731c974343645a3985328"
    );
    assert_eq!(launched.client_request_token.len(), 64);
    assert!(plan.create_job.for_manifest_etag(fp, "  ").is_none());
}

/// The merge command in the text plan really merges by Sid, keeps other statements (even a
/// lone statement object) and is idempotent. Runs the exact jq program the plan prints.
#[test]
fn jq_merge_by_sid_keeps_other_statements_and_is_idempotent() {
    let dir = std::env::temp_dir().join(format!("ferry-jq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let current = dir.join("current.json");
    let ours = dir.join("ours.json");
    std::fs::write(
        &current,
        r#"{"Version":"2012-10-17","Statement":{"Sid":"DenyInsecure","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}}"#,
    )
    .unwrap();
    let plan = Plan::build(&example("sse-s3-csv.toml")).unwrap();
    let doc = &plan.source_account.bucket_policies["acme-photos-prod"];
    std::fs::write(&ours, doc.to_pretty_json()).unwrap();
    let merge = |input: &Path| -> serde_json::Value {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{JQ_MERGE_BY_SID} '{}' '{}'",
                input.display(),
                ours.display()
            ))
            .output()
            .expect("sh and jq are installed (jq is part of the machine image)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let once = merge(&current);
    let sids: Vec<_> = once["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sids,
        vec![
            "DenyInsecure",
            "FerryPhotosReadSourceObjects",
            "FerryPhotosListSourceBucket"
        ]
    );
    let merged = dir.join("merged.json");
    std::fs::write(&merged, once.to_string()).unwrap();
    assert_eq!(merge(&merged), once, "a second merge changes nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A filter is applied only by inventory runs: without `[inventory]` the job would get the
/// inventory's manifest.json and copy every object, so the plan refuses it rather than warn.
#[test]
fn a_filter_is_not_silently_ignored_by_the_plan() {
    let mut spec = example("kms-inventory.toml");
    assert!(Plan::build(&spec).is_ok());
    spec.filter = Some(Default::default());
    let Err(ferry_core::error::FerryError::InvalidSpec(problems)) = Plan::build(&spec) else {
        panic!("a filter without [inventory] must be refused")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "filter");
}

/// Batch Operations puts a `/` between `TargetKeyPrefix` and the key (AWS's answer in
/// boto/boto3#3420). The plan sends the spec's folder without its slash, and the large-object
/// copier names its copies exactly as the Copy job does, for awkward keys too.
#[test]
fn copy_job_and_large_object_copier_give_byte_identical_keys() {
    use ferry_core::large_object::LargeObjectCopyArguments;
    let spec = example("kms-inventory.toml");
    assert_eq!(spec.destination.key_prefix.as_deref(), Some("from-prod/"));
    let plan = Plan::build(&spec).unwrap();
    let copy = plan.create_job.operation.as_copy().unwrap();
    let sent = copy.target_key_prefix.as_deref().unwrap();
    assert_eq!(sent, "from-prod");
    // AWS's rule, modelled here without Ferry's code.
    let aws_key = |key: &str| format!("{sent}/{key}");
    let copier = LargeObjectCopyArguments::from_spec(&spec);
    for key in [
        "a.txt",
        "dir/sub/b c+d.bin",
        "/leading-slash",
        "é/ü?*.x",
        "dir/",
    ] {
        assert_eq!(copier.destination_key(key), aws_key(key), "{key}");
    }
    // The same for the arguments as the LambdaInvoke job carries them.
    let args = copier.to_user_arguments().unwrap();
    let back = LargeObjectCopyArguments::from_user_arguments(&args).unwrap();
    assert_eq!(back.destination_key("a.txt"), "from-prod/a.txt");
    // An older LambdaInvoke job whose keyPrefix still ends in '/' names the copy the same.
    let mut old = args.clone();
    old.insert("keyPrefix".to_string(), "from-prod/".to_string());
    let old = LargeObjectCopyArguments::from_user_arguments(&old).unwrap();
    assert_eq!(old.destination_key("a.txt"), "from-prod/a.txt");
}
