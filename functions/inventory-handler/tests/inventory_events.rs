//! inventory-handler end to end against moto, two accounts: the source account delivers S3
//! Inventories (CSV, then Parquet, then ORC) into the destination account's inventory bucket; the
//! real-shaped EventBridge fixture (`events/inventory-handler.json`) goes through
//! `InventoryHandler::handle` with the SDK ports (`AwsPorts`); S3 Control is mocked with
//! aws-smithy-mocks, which records the exact CreateJob input (moto has no Batch Operations).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3control::operation::create_job::{CreateJobInput, CreateJobOutput};
use aws_sdk_s3control::types::{JobManifestFormat, JobReportScope};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ferry_aws::{AwsLaunchApi, AwsPorts};
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::inventory::delta::{job_finished, RunJobKind, RunRecord};
use ferry_flows::inventory::run::{run_id, RunOutcome};
use ferry_flows::ports::StateStore;
use ferry_flows::workflow::StoredPlan;
use ferry_plan::job::client_request_token;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::inventory::{inventory_csv_key as s3_encode, md5_hex};
use ferry_testkit::{s3_client, MotoServer};
use inventory_handler::{InventoryHandler, Settings};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

const REGION: &str = "us-east-1";
const SOURCE_ACCOUNT: &str = "111111111111";
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-media-prod";
const INV_BUCKET: &str = "acme-dr-inventory";
const STATE_BUCKET: &str = "ferry-state-media-sync";
const DIR: &str = "inventories/acme-media-prod/ferry-media-sync/";
const CSV_SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass";
const PARQUET_SCHEMA: &str =
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); \
    optional int64 size; optional binary e_tag (UTF8); optional binary storage_class (UTF8);}";
const ORC_SCHEMA: &str =
    "struct<bucket:string,key:string,size:bigint,e_tag:string,storage_class:string>";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(workspace().join("events").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn spec() -> TransferSpec {
    let text = std::fs::read_to_string(workspace().join("examples/inventory-driven.toml")).unwrap();
    TransferSpec::from_toml_str(&text).unwrap()
}

/// (key, size, etag)
type Obj = (String, u64, String);

fn objects() -> Vec<Obj> {
    (0..12)
        .map(|i| (format!("photos/{i:02}.jpg"), 1000 + i, format!("etag{i}")))
        .collect()
}

fn csv_gz(objs: &[Obj]) -> Vec<u8> {
    use std::io::Write;
    let mut text = String::new();
    for (key, size, etag) in objs {
        text.push_str(&format!(
            "\"{SOURCE_BUCKET}\",\"{}\",\"{size}\",\"2026-11-20T10:00:00.000Z\",\"{etag}\",\"STANDARD\"\n",
            s3_encode(key)
        ));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn parquet(objs: &[Obj]) -> Vec<u8> {
    use parquet::column::writer::ColumnWriter;
    use parquet::data_type::ByteArray;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(parquet::schema::parser::parse_message_type(PARQUET_SCHEMA).unwrap());
    let props = Arc::new(WriterProperties::builder().build());
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let text = |f: &dyn Fn(&Obj) -> String| -> Vec<ByteArray> {
        objs.iter()
            .map(|o| ByteArray::from(f(o).as_str()))
            .collect()
    };
    let columns: Vec<Vec<ByteArray>> = vec![
        text(&|_| SOURCE_BUCKET.to_string()),
        text(&|o| o.0.clone()),
        Vec::new(),
        text(&|o| o.2.clone()),
        text(&|_| "STANDARD".to_string()),
    ];
    let ones = vec![1i16; objs.len()];
    let mut i = 0;
    while let Some(mut col) = group.next_column().unwrap() {
        match col.untyped() {
            ColumnWriter::ByteArrayColumnWriter(w) => {
                let defs = (i >= 2).then_some(ones.as_slice());
                w.write_batch(&columns[i], defs, None).unwrap();
            }
            ColumnWriter::Int64ColumnWriter(w) => {
                let sizes: Vec<i64> = objs.iter().map(|o| o.1 as i64).collect();
                w.write_batch(&sizes, Some(&ones), None).unwrap();
            }
            _ => panic!("unexpected column type"),
        }
        col.close().unwrap();
        i += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
    out
}

/// An ORC inventory file from Apache ORC's own writer (pyorc).
fn orc(objs: &[Obj]) -> Vec<u8> {
    let rows: Vec<Value> = objs
        .iter()
        .map(|(key, size, etag)| serde_json::json!([SOURCE_BUCKET, key, size, etag, "STANDARD"]))
        .collect();
    ferry_testkit::write_orc(ORC_SCHEMA, &rows, &ferry_testkit::OrcOptions::default())
}

/// Numbers the handlers' work directories.
static NEXT_WORK_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Env {
    _moto: MotoServer,
    source_s3: aws_sdk_s3::Client,
    dest_s3: aws_sdk_s3::Client,
    ports_config: aws_config::SdkConfig,
    topic_arn: String,
    fingerprint: String,
    seen: Arc<Mutex<Vec<CreateJobInput>>>,
    rule: aws_smithy_mocks::Rule,
}

impl Env {
    async fn start() -> Env {
        let moto = MotoServer::start();
        let source = moto.sdk_config_for_account(SOURCE_ACCOUNT, REGION).await;
        let dest = moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
        let (source_s3, dest_s3) = (s3_client(&source), s3_client(&dest));
        source_s3
            .create_bucket()
            .bucket(SOURCE_BUCKET)
            .send()
            .await
            .unwrap();
        for bucket in [INV_BUCKET, STATE_BUCKET, "acme-media-dr", "acme-dr-reports"] {
            dest_s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        // The inventory bucket's default is SSE-KMS (as it is where the inventory is
        // encrypted): Ferry's own CSV manifests there must still be SSE-S3, the only kind
        // Batch Operations reads.
        let inventory_key = ferry_testkit::kms_key(&dest).await;
        ferry_testkit::default_kms_encryption(&dest_s3, INV_BUCKET, &inventory_key).await;
        let topic_arn = aws_sdk_sns::Client::new(&dest)
            .create_topic()
            .name("ferry-notifications")
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();

        // The stack's state: the stored, approved plan.
        let spec = spec();
        let fingerprint = Plan::build(&spec).unwrap().transfer.fingerprint;
        let stored = StoredPlan {
            fingerprint: fingerprint.clone(),
            spec,
        };
        for (key, body) in [
            (
                format!("plans/{fingerprint}.json"),
                serde_json::to_vec(&stored).unwrap(),
            ),
            (
                format!("decisions/{fingerprint}.json"),
                br#"{"decision":"approve","plan_fingerprint":"x","at_unix":1}"#.to_vec(),
            ),
        ] {
            dest_s3
                .put_object()
                .bucket(STATE_BUCKET)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
        }

        let seen: Arc<Mutex<Vec<CreateJobInput>>> = Arc::default();
        let recorder = seen.clone();
        let rule = mock!(aws_sdk_s3control::Client::create_job)
            .match_requests(move |input| {
                recorder.lock().unwrap().push(input.clone());
                true
            })
            .then_compute_output(|input| {
                let token = input.client_request_token().unwrap_or_default();
                CreateJobOutput::builder()
                    .job_id(format!("job-{}", &token[..12]))
                    .build()
            });
        Env {
            _moto: moto,
            source_s3,
            dest_s3,
            ports_config: dest,
            topic_arn,
            fingerprint,
            seen,
            rule,
        }
    }

    fn ports(&self) -> AwsPorts {
        let mut ports = AwsPorts::from_config(
            &self.ports_config,
            STATE_BUCKET.to_string(),
            self.topic_arn.clone(),
        );
        ports.launch = AwsLaunchApi::new(
            s3_client(&self.ports_config),
            mock_client!(aws_sdk_s3control, RuleMode::MatchAny, [&self.rule]),
        );
        ports
    }

    fn handler(&self) -> InventoryHandler<AwsPorts> {
        let mut handler = InventoryHandler::new(
            self.ports(),
            Settings {
                plan_fingerprint: self.fingerprint.clone(),
                large_object_function_arn: Some(format!(
                    "arn:aws:lambda:{REGION}:{DEST_ACCOUNT}:function:ferry-media-sync-large-object-copier"
                )),
                // One directory per handler: a run clears what other runs left in its work
                // directory (Lambda runs one at a time), and these tests run side by side.
                work_dir: std::env::temp_dir().join(format!(
                    "ferry-inventory-events-{}-{}",
                    std::process::id(),
                    NEXT_WORK_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                )),
                retry: RetryPolicy {
                    max_attempts: 2,
                    first_pause: Duration::from_millis(1),
                    max_pause: Duration::from_millis(2),
                },
                scan_threads: 2,
                work_dir_bytes: 1 << 30,
                state_bucket: STATE_BUCKET.to_string(),
                fan_out: None,
            },
        );
        handler.clock = || 1_795_486_500;
        handler
    }

    /// S3 delivering an inventory: data file, manifest.json, manifest.checksum — written with
    /// the source account's credentials into the destination account's bucket.
    async fn deliver(&self, date: &str, created_ms: u64, format: &str, objs: &[Obj]) -> String {
        let (data, data_key, schema) = match format {
            "CSV" => (csv_gz(objs), format!("{DIR}data/{date}.csv.gz"), CSV_SCHEMA),
            "ORC" => (orc(objs), format!("{DIR}data/{date}.orc"), ORC_SCHEMA),
            _ => (
                parquet(objs),
                format!("{DIR}data/{date}.parquet"),
                PARQUET_SCHEMA,
            ),
        };
        let manifest = serde_json::json!({
            "sourceBucket": SOURCE_BUCKET,
            "destinationBucket": format!("arn:aws:s3:::{INV_BUCKET}"),
            "version": "2016-11-30",
            "creationTimestamp": created_ms.to_string(),
            "fileFormat": format,
            "fileSchema": schema,
            "files": [{"key": data_key, "size": data.len(), "MD5checksum": md5_hex(&data)}],
        })
        .to_string();
        let checksum_key = format!("{DIR}{date}/manifest.checksum");
        for (key, body) in [
            (data_key, data),
            (
                format!("{DIR}{date}/manifest.json"),
                manifest.clone().into_bytes(),
            ),
            (
                checksum_key.clone(),
                md5_hex(manifest.as_bytes()).into_bytes(),
            ),
        ] {
            self.source_s3
                .put_object()
                .bucket(INV_BUCKET)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
        }
        checksum_key
    }

    /// Writes an object into the inventory bucket as the source account (as an attacker with
    /// write access to the bucket would).
    async fn put(&self, key: &str, body: Vec<u8>) {
        self.source_s3
            .put_object()
            .bucket(INV_BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }

    async fn handle(&self, event: Value) -> Vec<RunOutcome> {
        self.handler()
            .handle(LambdaEvent::new(event, Context::default()))
            .await
            .unwrap()
    }

    async fn etag(&self, bucket: &str, key: &str) -> String {
        let head = self
            .dest_s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        head.e_tag().unwrap().trim_matches('"').to_string()
    }

    async fn encryption_in(&self, bucket: &str, key: &str) -> Option<ServerSideEncryption> {
        self.dest_s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .server_side_encryption()
            .cloned()
    }

    /// The rows of Ferry's inventory-format copy manifest, `bucket,key` as written (keys
    /// URL-encoded), each part checked against `manifest.json` and SSE-S3.
    async fn copy_rows(&self, manifest_key: &str) -> Vec<String> {
        let (rows, encryption) = ferry_testkit::inventory::inventory_manifest_rows_in_s3(
            &self.dest_s3,
            STATE_BUCKET,
            manifest_key,
        )
        .await
        .unwrap();
        assert!(!encryption.is_empty());
        for sse in encryption {
            assert_eq!(
                sse,
                Some(ServerSideEncryption::Aes256),
                "Ferry's manifest parts must be SSE-S3 in a bucket whose default is SSE-KMS"
            );
        }
        let mut rows: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
        rows.sort();
        rows
    }

    async fn text(&self, key: &str) -> String {
        let out = self
            .dest_s3
            .get_object()
            .bucket(INV_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
    }
}

fn event_for(checksum_key: &str) -> Value {
    let mut event = fixture("inventory-handler.json");
    event["detail"]["object"]["key"] = Value::String(checksum_key.to_string());
    event
}

fn the_run(outcomes: Vec<RunOutcome>) -> RunRecord {
    match outcomes.as_slice() {
        [RunOutcome::Ran(run)] => run.as_ref().clone(),
        other => panic!("expected one run, got {other:?}"),
    }
}

#[tokio::test]
async fn csv_parquet_then_orc_inventories_launch_the_first_copy_then_exactly_the_delta() {
    let env = Env::start().await;
    let fixture_key = fixture("inventory-handler.json")["detail"]["object"]["key"]
        .as_str()
        .unwrap()
        .to_string();

    // 1. A CSV inventory lands at the fixture's key: first run, nothing filtered or large, so
    //    the job reads the inventory's own manifest.json.
    let k1 = env
        .deliver("2026-11-24T01-00Z", 1_795_000_000_000, "CSV", &objects())
        .await;
    assert_eq!(k1, fixture_key);
    let run1 = the_run(env.handle(fixture("inventory-handler.json")).await);
    assert_eq!(run1.jobs.len(), 1);
    assert_eq!(run1.jobs[0].kind, RunJobKind::CopyDirect);
    let manifest_key = format!("{DIR}2026-11-24T01-00Z/manifest.json");
    let etag = env.etag(INV_BUCKET, &manifest_key).await;
    let id = run_id(
        &env.fingerprint,
        INV_BUCKET,
        &manifest_key,
        &md5_hex(env.text(&manifest_key).await.as_bytes()),
    );
    assert_eq!(run1.run_id, id);
    {
        let seen = env.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let input = &seen[0];
        assert_eq!(input.account_id(), Some(DEST_ACCOUNT));
        assert_eq!(
            input.client_request_token(),
            Some(
                client_request_token(&format!("{}:{id}:CopyDirect", env.fingerprint), &etag)
                    .as_str()
            )
        );
        let manifest = input.manifest().unwrap();
        assert_eq!(
            manifest.spec().unwrap().format(),
            &JobManifestFormat::S3InventoryReportCsv20161130
        );
        let location = manifest.location().unwrap();
        assert_eq!(
            location.object_arn(),
            format!("arn:aws:s3:::{INV_BUCKET}/{manifest_key}")
        );
        assert_eq!(location.e_tag(), etag);
        let copy = input.operation().unwrap().s3_put_object_copy().unwrap();
        assert_eq!(copy.target_resource(), Some("arn:aws:s3:::acme-media-dr"));
        assert_eq!(
            input.role_arn(),
            Some("arn:aws:iam::222222222222:role/ferry-media-sync-batch")
        );
        let report = input.report().unwrap();
        assert_eq!(
            report.report_scope(),
            Some(&JobReportScope::FailedTasksOnly)
        );
        assert_eq!(input.confirmation_required(), Some(false));
    }

    // A duplicated event and an s3:TestEvent launch nothing.
    assert!(matches!(
        env.handle(fixture("inventory-handler.json"))
            .await
            .as_slice(),
        [RunOutcome::Duplicate { .. }]
    ));
    assert!(matches!(
        env.handle(fixture("inventory-handler-test-event.json"))
            .await
            .as_slice(),
        [RunOutcome::Ignored { .. }]
    ));
    assert_eq!(env.seen.lock().unwrap().len(), 1);

    // 2. The job completes (the job-monitor's call): run 1 becomes the delta base.
    job_finished(&env.ports(), &run1.jobs[0].job_id, "Complete", &[])
        .await
        .unwrap();
    assert!(env
        .ports()
        .get(&format!("inventory/{}/current.json", env.fingerprint))
        .await
        .unwrap()
        .is_some());

    // 3. A Parquet inventory with two new objects and one changed one.
    let mut objs = objects();
    objs[5].2 = "etag5-rewritten".to_string();
    objs.push((
        "new/report 2026,final+v2 é.pdf".to_string(),
        7,
        "n1".to_string(),
    ));
    objs.push(("new/plain.txt".to_string(), 8, "n2".to_string()));
    let k2 = env
        .deliver("2026-11-25T01-00Z", 1_795_086_400_000, "Parquet", &objs)
        .await;
    let run2 = the_run(env.handle(event_for(&k2)).await);
    assert_eq!(run2.previous_run_id.as_deref(), Some(run1.run_id.as_str()));
    assert_eq!(run2.jobs.len(), 1);
    assert_eq!(run2.stats.copy.objects, 3);
    assert_eq!(run2.stats.changed, 1);
    let copy_key = format!(
        "inventory/{}/runs/{}/copy/manifest.json",
        env.fingerprint, run2.run_id
    );
    assert_eq!(
        run2.jobs[0].manifest,
        format!("s3://{STATE_BUCKET}/{copy_key}")
    );
    assert_eq!(
        env.copy_rows(&copy_key).await,
        vec![
            "acme-media-prod,new/plain.txt",
            "acme-media-prod,new/report%202026%2Cfinal%2Bv2%20%C3%A9.pdf",
            "acme-media-prod,photos/05.jpg",
        ]
    );
    assert_eq!(
        env.encryption_in(STATE_BUCKET, &copy_key).await,
        Some(ServerSideEncryption::Aes256),
        "Ferry's manifest.json must be SSE-S3 whatever the bucket's default"
    );
    let copy_etag = env.etag(STATE_BUCKET, &copy_key).await;
    {
        let seen = env.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let manifest = seen[1].manifest().unwrap();
        let spec = manifest.spec().unwrap();
        assert_eq!(
            spec.format(),
            &JobManifestFormat::S3InventoryReportCsv20161130
        );
        assert!(spec.fields().is_empty());
        let location = manifest.location().unwrap();
        assert_eq!(
            location.object_arn(),
            format!("arn:aws:s3:::{STATE_BUCKET}/{copy_key}")
        );
        assert_eq!(location.e_tag(), copy_etag);
    }

    // 4. The same Parquet event again: nothing new.
    assert!(matches!(
        env.handle(event_for(&k2)).await.as_slice(),
        [RunOutcome::Duplicate { .. }]
    ));
    assert_eq!(env.seen.lock().unwrap().len(), 2);

    // 5. Run 2's job completes; an ORC inventory then lists one changed object, one new one and
    //    no longer lists photos/00.jpg (deleted at the source: nothing to copy).
    job_finished(&env.ports(), &run2.jobs[0].job_id, "Complete", &[])
        .await
        .unwrap();
    objs[7].1 += 1;
    objs.push(("new/orc é+%.txt".to_string(), 9, "n3".to_string()));
    objs.remove(0);
    let k3 = env
        .deliver("2026-11-26T01-00Z", 1_795_172_800_000, "ORC", &objs)
        .await;
    let run3 = the_run(env.handle(event_for(&k3)).await);
    assert_eq!(run3.previous_run_id.as_deref(), Some(run2.run_id.as_str()));
    assert_eq!(run3.stats.rows, objs.len() as u64);
    assert_eq!(run3.stats.copy.objects, 2);
    assert_eq!(run3.stats.changed, 1);
    let copy_key = format!(
        "inventory/{}/runs/{}/copy/manifest.json",
        env.fingerprint, run3.run_id
    );
    assert_eq!(
        env.copy_rows(&copy_key).await,
        vec![
            "acme-media-prod,new/orc%20%C3%A9%2B%25.txt",
            "acme-media-prod,photos/07.jpg",
        ]
    );
    {
        let seen = env.seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let location = seen[2].manifest().unwrap().location().unwrap();
        assert_eq!(
            location.object_arn(),
            format!("arn:aws:s3:::{STATE_BUCKET}/{copy_key}")
        );
    }
    assert!(matches!(
        env.handle(event_for(&k3)).await.as_slice(),
        [RunOutcome::Duplicate { .. }]
    ));
}

/// #15 item 9: the inventory bucket can be written by others than S3 Inventory. An inventory
/// dated ahead (which would make every real one "older" and stop the runs) and one whose data
/// file lies outside its directory are refused: nothing is launched and the next real
/// inventory still runs.
#[tokio::test]
async fn forged_inventories_dated_ahead_or_reading_elsewhere_are_refused() {
    let env = Env::start().await;
    // The handler's clock is 1_795_486_500 s: a day later is "ahead".
    let ahead = env
        .deliver("2026-12-25T01-00Z", 1_795_572_900_000, "CSV", &objects())
        .await;
    let outcomes = env.handle(event_for(&ahead)).await;
    assert!(
        matches!(&outcomes[..], [RunOutcome::Refused { reason, .. }] if reason.contains("later than now")),
        "{outcomes:?}"
    );

    // A manifest.json naming a data file elsewhere in the bucket (say, an object the attacker
    // wrote under another prefix).
    let date = "2026-11-23T01-00Z";
    let elsewhere = format!("uploads/{date}.csv.gz");
    env.source_s3
        .put_object()
        .bucket(INV_BUCKET)
        .key(&elsewhere)
        .body(ByteStream::from(csv_gz(&objects())))
        .send()
        .await
        .unwrap();
    let checksum_key = env
        .deliver(date, 1_795_400_000_000, "CSV", &objects())
        .await;
    let manifest_key = checksum_key.replace("manifest.checksum", "manifest.json");
    let mut manifest: Value = serde_json::from_str(&env.text(&manifest_key).await).unwrap();
    manifest["files"][0]["key"] = Value::String(elsewhere.clone());
    // manifest.checksum rewritten to match: the writer controls both.
    let manifest = manifest.to_string().into_bytes();
    env.put(&checksum_key, md5_hex(&manifest).into_bytes())
        .await;
    env.put(&manifest_key, manifest).await;
    let outcomes = env.handle(event_for(&checksum_key)).await;
    assert!(
        matches!(&outcomes[..], [RunOutcome::Refused { reason, .. }] if reason.contains(&elsewhere)),
        "{outcomes:?}"
    );
    assert!(env.seen.lock().unwrap().is_empty(), "nothing launched");

    // The next real inventory runs (the forged one dated ahead was not recorded as the newest).
    let real = env
        .deliver("2026-11-24T01-00Z", 1_795_480_000_000, "CSV", &objects())
        .await;
    let run = the_run(env.handle(event_for(&real)).await);
    assert!(run.stats.copy.objects > 0, "{:?}", run.stats);
}

/// #15 item 9: a data file rewritten after S3 Inventory wrote it (same key, other rows) no
/// longer has the MD5 manifest.json gives for it: the run is refused before any of its rows is
/// used, whatever the format, and nothing is launched.
#[tokio::test]
async fn a_data_file_rewritten_after_delivery_is_refused() {
    let env = Env::start().await;
    for (date, format) in [
        ("2026-11-23T01-00Z", "CSV"),
        ("2026-11-24T01-00Z", "Parquet"),
    ] {
        let checksum_key = env
            .deliver(date, 1_795_400_000_000, format, &objects())
            .await;
        let manifest_key = checksum_key.replace("manifest.checksum", "manifest.json");
        let manifest: Value = serde_json::from_str(&env.text(&manifest_key).await).unwrap();
        let data_key = manifest["files"][0]["key"].as_str().unwrap().to_string();
        let planted = vec![("secret/payroll.xlsx".to_string(), 10, "e".to_string())];
        let body = if format == "CSV" {
            csv_gz(&planted)
        } else {
            parquet(&planted)
        };
        env.put(&data_key, body).await;
        let outcomes = env.handle(event_for(&checksum_key)).await;
        // Another size here (so files[].size tells first); the same size is the MD5's
        // (ferry-flows' a_data_file_changed_after_the_inventory_was_written_is_refused).
        assert!(
            matches!(&outcomes[..], [RunOutcome::Refused { reason, .. }]
                if reason.contains("changed after S3 Inventory wrote it") && reason.contains(&data_key)),
            "{outcomes:?}"
        );
    }
    assert!(env.seen.lock().unwrap().is_empty(), "nothing launched");
}

/// #18 review: a data file rewritten larger than its `files[].size` (the size the batch's disk
/// budget was counted with) is refused by name from S3's `Content-Length`, through the real
/// adapter, without being downloaded whole.
#[tokio::test]
async fn a_data_file_rewritten_larger_than_listed_is_refused_unread() {
    let env = Env::start().await;
    let checksum_key = env
        .deliver("2026-11-23T01-00Z", 1_795_400_000_000, "CSV", &objects())
        .await;
    let manifest_key = checksum_key.replace("manifest.checksum", "manifest.json");
    let manifest: Value = serde_json::from_str(&env.text(&manifest_key).await).unwrap();
    let data_key = manifest["files"][0]["key"].as_str().unwrap().to_string();
    let listed = manifest["files"][0]["size"].as_u64().unwrap();
    let planted: Vec<Obj> = (0..500)
        .map(|i| (format!("secret/{i:04}.xlsx"), 10, format!("e{i}")))
        .collect();
    let body = csv_gz(&planted);
    assert!(body.len() as u64 > listed);
    env.put(&data_key, body).await;
    let outcomes = env.handle(event_for(&checksum_key)).await;
    assert!(
        matches!(&outcomes[..], [RunOutcome::Refused { reason, .. }]
            if reason.contains(&format!("larger than manifest.json's files[].size says ({listed} bytes"))
                && reason.contains(&data_key)),
        "{outcomes:?}"
    );
    assert!(env.seen.lock().unwrap().is_empty(), "nothing launched");
}
