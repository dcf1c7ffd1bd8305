//! An event-driven run end to end with KMS everywhere, every call through the authorizing
//! gateway: source objects under a source-account key, an SSE-KMS inventory (the inventory
//! bucket's default is the inventory key) delivered to the destination account, copies under a
//! destination key. inventory-handler runs as its own execution role from the template
//! (`FunctionRole`), the plan's grants are applied as `ferry grant` would, and the Copy job it
//! launches is run by the Batch Operations emulator as the batch role.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use ferry_aws::AwsPorts;
use ferry_flows::inventory::delta::job_finished;
use ferry_flows::inventory::run::RunOutcome;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::batch_ops::{create_job, job_id_for};
use ferry_testkit::inventory::inventory_csv_key as s3_encode;
use ferry_testkit::{
    default_kms_encryption, kms_key, s3_client, FunctionRole, MotoServer, PlanGrants,
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use support::{deliver_csv_inventory, event_for, handler_as, store_approved_plan};

const REGION: &str = "us-east-1";
const SOURCE_ACCOUNT: &str = "111111111111";
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-media-prod";
const DEST_BUCKET: &str = "acme-media-dr";
const INV_BUCKET: &str = "acme-dr-inventory";
const REPORT_BUCKET: &str = "acme-dr-reports";
const DIR: &str = "inventories/acme-media-prod/ferry-media-sync/";
const DATE: &str = "2026-11-24T01-00Z";
const KEYS: [&str; 3] = ["photos/a b.jpg", "photos/c+d.jpg", "raw/été.png"];

fn spec(source_key: &str, inventory_key: &str, dest_key: &str) -> TransferSpec {
    TransferSpec::from_toml_str(&format!(
        r#"name = "media-sync"
[source]
account_id = "{SOURCE_ACCOUNT}"
region = "{REGION}"
bucket = "{SOURCE_BUCKET}"
kms_key_arn = "{source_key}"
[destination]
account_id = "{DEST_ACCOUNT}"
region = "{REGION}"
bucket = "{DEST_BUCKET}"
kms_key_arn = "{dest_key}"
bucket_key_enabled = true
[manifest]
kind = "inventory"
bucket = "{INV_BUCKET}"
account_id = "{DEST_ACCOUNT}"
key = "{DIR}{DATE}/manifest.json"
kms_key_arn = "{inventory_key}"
[report]
bucket = "{REPORT_BUCKET}"
account_id = "{DEST_ACCOUNT}"
prefix = "ferry/media-sync"
scope = "failed"
[job]
confirmation_required = false
[inventory]
format = "CSV"
"#
    ))
    .expect("spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_kms_inventory_is_copied_with_kms_everywhere_as_the_functions_roles() {
    let moto = MotoServer::start();
    let source_config = moto.sdk_config_for_account(SOURCE_ACCOUNT, REGION).await;
    let dest_config = moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
    let source_key = kms_key(&source_config).await;
    let inventory_key = kms_key(&dest_config).await;
    let dest_key = kms_key(&dest_config).await;
    let (source, dest) = (s3_client(&source_config), s3_client(&dest_config));

    let spec = spec(&source_key, &inventory_key, &dest_key);
    let plan = Plan::build(&spec).expect("plan");
    let parameters = json!({
        "TransferName": "media-sync", "SourceAccountId": SOURCE_ACCOUNT, "SourceRegion": REGION,
        "SourceBucket": SOURCE_BUCKET, "SourceKmsKeyArn": source_key,
        "DestinationBucket": DEST_BUCKET, "DestinationKmsKeyArn": dest_key, "BucketKeyEnabled": "true",
        "ManifestBucket": INV_BUCKET, "ManifestKey": format!("{DIR}{DATE}/manifest.json"),
        "ManifestKmsKeyArn": inventory_key, "ReportBucket": REPORT_BUCKET,
        "ReportPrefix": "ferry/media-sync", "ReportScope": "failed", "ConfirmationRequired": "false",
        "InventoryRuns": "true", "NotificationEmail": "storage-team@example.com"
    });
    let role = FunctionRole::deploy(
        &moto,
        "InventoryHandlerFunction",
        DEST_ACCOUNT,
        REGION,
        &parameters,
    )
    .await;

    source
        .create_bucket()
        .bucket(SOURCE_BUCKET)
        .send()
        .await
        .unwrap();
    for bucket in [
        INV_BUCKET,
        DEST_BUCKET,
        REPORT_BUCKET,
        role.state_bucket.as_str(),
    ] {
        dest.create_bucket().bucket(bucket).send().await.unwrap();
    }
    // The batch role reads a run's copy list in the state bucket by its bucket policy alone.
    ferry_testkit::stack::apply_state_bucket_allows(&dest_config, &role).await;
    aws_sdk_sns::Client::new(&dest_config)
        .create_topic()
        .name(role.notification_topic_arn.rsplit(':').next().unwrap())
        .send()
        .await
        .unwrap();
    // The inventory bucket's default is the inventory key, as for an SSE-KMS inventory.
    default_kms_encryption(&dest, INV_BUCKET, &inventory_key).await;
    PlanGrants::all().apply(&moto, &plan, REGION).await;

    // Source objects, under the source key.
    let mut text = String::new();
    for (i, key) in KEYS.iter().enumerate() {
        let body = format!("object {i}");
        let put = source
            .put_object()
            .bucket(SOURCE_BUCKET)
            .key(*key)
            .body(ByteStream::from(body.clone().into_bytes()))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&source_key)
            .send()
            .await
            .unwrap();
        text.push_str(&format!(
            "\"{SOURCE_BUCKET}\",\"{}\",\"{}\",\"2026-11-20T10:00:00.000Z\",\"{}\",\"STANDARD\"\n",
            s3_encode(key),
            body.len(),
            put.e_tag().unwrap().trim_matches('"')
        ));
    }
    // S3 delivering the inventory (SSE-KMS by the bucket's default).
    let (data_key, checksum_key) = deliver_csv_inventory(
        &dest,
        INV_BUCKET,
        DIR,
        DATE,
        SOURCE_BUCKET,
        "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass",
        &text,
        1_795_000_000_000,
    )
    .await;
    // The stack's state: the stored, approved plan.
    let fingerprint = store_approved_plan(&dest, &role.state_bucket, &spec).await;

    // The run, as inventory-handler's role; CreateJob captured.
    let (handler, sent) = handler_as(&role, &fingerprint, "e2e-inventory");
    let event = event_for(INV_BUCKET, &checksum_key);
    let outcomes = handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap_or_else(|e| panic!("run: {e:?}\n{:#?}", moto.denials()));
    assert!(
        matches!(outcomes.as_slice(), [RunOutcome::Ran(_)]),
        "{outcomes:?}"
    );
    let inputs = sent.lock().unwrap().clone();
    assert_eq!(inputs.len(), 1);

    // The job, as Batch Operations would run it.
    let job = create_job(&moto, REGION, &inputs[0], None).await;
    assert_eq!(job.status.as_str(), "Complete", "{:?}", job.failure_reasons);
    assert_eq!(
        (job.succeeded(), job.failed()),
        (KEYS.len() as u64, 0),
        "{:?}",
        job.tasks
    );
    for key in KEYS {
        let head = dest
            .head_object()
            .bucket(DEST_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key} not copied: {e:?}"));
        assert_eq!(head.ssekms_key_id(), Some(dest_key.as_str()), "{key}");
    }
    // inventory-handler was held to its template role and needed nothing more; it read the
    // SSE-KMS inventory through S3 with the inventory key.
    let calls: Vec<_> = moto
        .decisions()
        .into_iter()
        .filter(|d| {
            d.principal
                .contains("ferry-e2e-InventoryHandlerFunctionRole")
        })
        .collect();
    assert!(calls.iter().all(|d| d.decision == "Allow"), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|d| d.action == "s3:GetObject" && d.resource.contains(&data_key)),
        "{calls:?}"
    );

    // The job's end, as job-monitor (its own role) records it: the run becomes the delta base.
    let monitor = FunctionRole::deploy(
        &moto,
        "JobMonitorFunction",
        DEST_ACCOUNT,
        REGION,
        &parameters,
    )
    .await;
    let monitor_ports = AwsPorts::from_config(
        &monitor.config,
        monitor.state_bucket.clone(),
        monitor.notification_topic_arn.clone(),
    );
    let job_id = job_id_for(&inputs[0]);
    job_finished(&monitor_ports, &job_id, "Complete", &[])
        .await
        .unwrap_or_else(|e| panic!("job_finished: {e:?}\n{:#?}", moto.denials()));

    // The next day's inventory: one object changed. The run writes a CSV manifest of the delta
    // (SSE-S3 in a bucket whose default is SSE-KMS) and the batch role copies from it.
    let changed = KEYS[1];
    let put = source
        .put_object()
        .bucket(SOURCE_BUCKET)
        .key(changed)
        .body(ByteStream::from_static(b"changed"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&source_key)
        .send()
        .await
        .unwrap();
    let text2: String = text
        .lines()
        .map(|line| {
            if line.contains(&s3_encode(changed)) {
                format!(
                    "\"{SOURCE_BUCKET}\",\"{}\",\"7\",\"2026-11-21T10:00:00.000Z\",\"{}\",\"STANDARD\"\n",
                    s3_encode(changed),
                    put.e_tag().unwrap().trim_matches('"')
                )
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let date2 = "2026-11-25T01-00Z";
    let (_, checksum_key2) = deliver_csv_inventory(
        &dest,
        INV_BUCKET,
        DIR,
        date2,
        SOURCE_BUCKET,
        "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass",
        &text2,
        1_795_086_400_000,
    )
    .await;
    let event2 = event_for(INV_BUCKET, &checksum_key2);
    let outcomes = handler
        .handle(LambdaEvent::new(event2, Context::default()))
        .await
        .unwrap_or_else(|e| panic!("second run: {e:?}\n{:#?}", moto.denials()));
    let [RunOutcome::Ran(record)] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    assert_eq!(record.stats.copy.objects, 1, "only the changed object");
    let inputs = sent.lock().unwrap().clone();
    assert_eq!(inputs.len(), 2);
    let job = create_job(&moto, REGION, &inputs[1], None).await;
    assert_eq!(job.status.as_str(), "Complete", "{:?}", job.failure_reasons);
    assert_eq!((job.succeeded(), job.failed()), (1, 0), "{:?}", job.tasks);
    let copy = dest
        .get_object()
        .bucket(DEST_BUCKET)
        .key(changed)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(copy.as_ref(), b"changed");
}
