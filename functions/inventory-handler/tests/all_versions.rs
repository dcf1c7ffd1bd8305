//! An inventory of all versions, end to end through the authorizing gateway: S3 Inventory marks
//! a null version with an empty VersionId and lists noncurrent versions too. inventory-handler
//! (its template role) never hands such an inventory to a job as it is: it writes a CSV manifest
//! of the current versions, `null` for the null version, and the Batch Operations emulator copies
//! exactly those versions as the batch role.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use ferry_flows::inventory::delta::RunJobKind;
use ferry_flows::inventory::run::RunOutcome;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::batch_ops::create_job;
use ferry_testkit::stack::enable_versioning;
use ferry_testkit::{s3_client, FunctionRole, MotoServer, PlanGrants};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use support::{deliver_csv_inventory, event_for, handler_as, store_approved_plan};

const REGION: &str = "us-east-1";
const SOURCE_ACCOUNT: &str = "111111111111";
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-versions-prod";
const DEST_BUCKET: &str = "acme-versions-dr";
const INV_BUCKET: &str = "acme-versions-inventory";
const DIR: &str = "inventories/acme-versions-prod/all-versions/";
const DATE: &str = "2026-11-24T01-00Z";

fn spec() -> TransferSpec {
    TransferSpec::from_toml_str(&format!(
        r#"name = "versions"
[source]
account_id = "{SOURCE_ACCOUNT}"
region = "{REGION}"
bucket = "{SOURCE_BUCKET}"
versioned = true
[destination]
account_id = "{DEST_ACCOUNT}"
region = "{REGION}"
bucket = "{DEST_BUCKET}"
[manifest]
kind = "inventory"
bucket = "{INV_BUCKET}"
account_id = "{DEST_ACCOUNT}"
key = "{DIR}{DATE}/manifest.json"
[report]
bucket = "{DEST_BUCKET}"
account_id = "{DEST_ACCOUNT}"
prefix = "ferry/reports"
[job]
confirmation_required = false
[filter]
latest_only = true
[inventory]
versions = "all"
"#
    ))
    .expect("spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_versions_inventory_copies_the_current_versions_with_null_for_the_null_version() {
    let moto = MotoServer::start();
    let source = s3_client(&moto.sdk_config_for_account(SOURCE_ACCOUNT, REGION).await);
    let dest_config = moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
    let dest = s3_client(&dest_config);
    let spec = spec();
    let plan = Plan::build(&spec).expect("plan");
    let role = FunctionRole::deploy(
        &moto,
        "InventoryHandlerFunction",
        DEST_ACCOUNT,
        REGION,
        &json!({
            "TransferName": "versions", "SourceAccountId": SOURCE_ACCOUNT, "SourceRegion": REGION,
            "SourceBucket": SOURCE_BUCKET, "SourceVersioned": "true", "DestinationBucket": DEST_BUCKET,
            "ManifestBucket": INV_BUCKET, "ManifestKey": format!("{DIR}{DATE}/manifest.json"),
            "ReportBucket": DEST_BUCKET, "ReportPrefix": "ferry/reports", "ConfirmationRequired": "false",
            "InventoryRuns": "true", "InventoryVersions": "all",
            "NotificationEmail": "storage-team@example.com"
        }),
    )
    .await;
    source
        .create_bucket()
        .bucket(SOURCE_BUCKET)
        .send()
        .await
        .unwrap();
    for bucket in [INV_BUCKET, DEST_BUCKET, role.state_bucket.as_str()] {
        dest.create_bucket().bucket(bucket).send().await.unwrap();
    }
    ferry_testkit::stack::apply_state_bucket_allows(&dest_config, &role).await;
    aws_sdk_sns::Client::new(&dest_config)
        .create_topic()
        .name(role.notification_topic_arn.rsplit(':').next().unwrap())
        .send()
        .await
        .unwrap();
    PlanGrants::all().apply(&moto, &plan, REGION).await;

    // A null version (written before versioning), then two versions of another key.
    let put = |key: &'static str, body: &'static [u8]| {
        let source = source.clone();
        async move {
            source
                .put_object()
                .bucket(SOURCE_BUCKET)
                .key(key)
                .body(ByteStream::from_static(body))
                .send()
                .await
                .unwrap()
        }
    };
    let null = put("old file.txt", b"the null version").await;
    enable_versioning(&source, SOURCE_BUCKET).await;
    let v1 = put("doc.txt", b"first").await;
    let v2 = put("doc.txt", b"second").await;
    let (v1_id, v2_id) = (v1.version_id().unwrap(), v2.version_id().unwrap());

    // S3 delivering the inventory of all versions: the null version's VersionId is empty.
    let etag = |o: &aws_sdk_s3::operation::put_object::PutObjectOutput| {
        o.e_tag().unwrap().trim_matches('"').to_string()
    };
    let rows = [
        ("old+file.txt", "", "true", 16, etag(&null)),
        ("doc.txt", v1_id, "false", 5, etag(&v1)),
        ("doc.txt", v2_id, "true", 6, etag(&v2)),
    ];
    let mut text = String::new();
    for (key, version, latest, size, etag) in rows {
        text.push_str(&format!(
            "\"{SOURCE_BUCKET}\",\"{key}\",\"{version}\",\"{latest}\",\"false\",\"{size}\",\"2026-11-20T10:00:00.000Z\",\"{etag}\",\"STANDARD\"\n"
        ));
    }
    let (_, checksum_key) = deliver_csv_inventory(
        &dest,
        INV_BUCKET,
        DIR,
        DATE,
        SOURCE_BUCKET,
        "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass",
        &text,
        1_795_000_000_000,
    )
    .await;
    let fingerprint = store_approved_plan(&dest, &role.state_bucket, &spec).await;

    let (handler, sent) = handler_as(&role, &fingerprint, "all-versions");
    let event = event_for(INV_BUCKET, &checksum_key);
    let outcomes = handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap_or_else(|e| panic!("run: {e:?}\n{:#?}", moto.denials()));
    let [RunOutcome::Ran(record)] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    // Never the inventory as it is: Ferry's CSV manifest, current versions, `null` spelled out.
    assert_eq!(record.jobs.len(), 1);
    assert_eq!(record.jobs[0].kind, RunJobKind::Copy);
    let manifest_key = record.jobs[0]
        .manifest
        .strip_prefix(&format!("s3://{INV_BUCKET}/"))
        .unwrap()
        .to_string();
    let csv = dest
        .get_object()
        .bucket(INV_BUCKET)
        .key(&manifest_key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let mut lines: Vec<&str> = std::str::from_utf8(&csv).unwrap().lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("{SOURCE_BUCKET},doc.txt,{v2_id}"),
            format!("{SOURCE_BUCKET},old%20file.txt,null"),
        ]
    );

    let inputs = sent.lock().unwrap().clone();
    let job = create_job(&moto, REGION, &inputs[0], None).await;
    assert_eq!(job.status.as_str(), "Complete", "{:?}", job.failure_reasons);
    assert_eq!((job.succeeded(), job.failed()), (2, 0), "{:?}", job.tasks);
    for (key, body) in [("old file.txt", "the null version"), ("doc.txt", "second")] {
        let copy = dest
            .get_object()
            .bucket(DEST_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(copy.as_ref(), body.as_bytes(), "{key}");
    }
    // Versioned reads, as the batch role: s3:GetObjectVersion was decided and allowed.
    assert!(moto.decisions().iter().any(|d| {
        d.principal.contains(":assumed-role/ferry-versions-batch/")
            && d.action == "s3:GetObjectVersion"
            && d.decision == "Allow"
    }));
}
