//! The inventory fan-out (#18) end to end, every call through the authorizing gateway in front of
//! moto: inventory-handler runs as its template role (`FunctionRole`), hands an inventory of
//! several data files to the stack's state machine (created on moto from template.yaml's
//! `InventoryFanOut`, with the template's `InventoryFanOutRole` deployed as the stack deploys
//! it), and the execution moto records is then run by the Step Functions emulator
//! (`ferry_testkit::stepfunctions`): its Distributed Maps read their item lists from the state
//! bucket as the state machine's role, and each `lambda:invoke` is authorized as that role
//! (a `DryRun` Invoke through the gateway) before the same handler serves the payload. The
//! Copy job the run launches is run by the Batch Operations emulator as the batch role, and
//! job-monitor's record of its end commits the run, so the next inventory is a delta.

// Its deliver_csv_inventory writes one data file; these inventories have several.
#[allow(unused_imports)]
mod support;

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use ferry_aws::AwsPorts;
use ferry_flows::inventory::delta::{job_finished, keys, CurrentIndex, JobFinished, RunRecord};
use ferry_flows::inventory::fanout_records::{fanout_keys, FanOutRun, FanOutSettings};
use ferry_flows::inventory::run::RunOutcome;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::batch_ops::{create_job, job_id_for};
use ferry_testkit::inventory::{inventory_csv_key as s3_encode, md5_hex};
use ferry_testkit::stack::{resolve_in_stack, TemplateRole};
use ferry_testkit::stepfunctions::{
    run_named_execution, template_state_machine, Execution, Status, TaskFailure, INVENTORY_FANOUT,
};
use ferry_testkit::{
    default_kms_encryption, kms_key, s3_client, FunctionRole, Inbox, MotoServer, PlanGrants,
    SentJobs,
};
use inventory_handler::InventoryHandler;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{json, Value};
use support::{event_for, handler_as, put_all, store_approved_plan};

const REGION: &str = "us-east-1";
const SOURCE_ACCOUNT: &str = "111111111111";
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-media-prod";
const DEST_BUCKET: &str = "acme-media-dr";
const INV_BUCKET: &str = "acme-dr-inventory";
const REPORT_BUCKET: &str = "acme-dr-reports";
const DIR: &str = "inventories/acme-media-prod/ferry-media-sync/";
const DATE: &str = "2026-11-24T01-00Z";
const DATE2: &str = "2026-11-25T01-00Z";
const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass";
/// `InventoryFanOutConcurrency`: the Maps' `MaxConcurrencyPath` must find it as a number.
const CONCURRENCY: u64 = 3;
/// The inventory's objects, two rows per data file (five data files). `tmp/` is the plan's
/// `exclude_prefixes`: listed, never copied.
const KEYS: [&str; 10] = [
    "photos/a b.jpg",
    "photos/c+d.jpg",
    "raw/été.png",
    "tmp/scratch-1.bin",
    "raw/0001.dng",
    "docs/readme.md",
    "video/clip (1).mp4",
    "tmp/scratch-2.bin",
    "docs/a%20b.txt",
    "raw/0002.dng",
];
const ROWS_PER_FILE: usize = 2;
const EXCLUDED: &str = "tmp/";

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
[filter]
exclude_prefixes = ["{EXCLUDED}"]
[inventory]
format = "CSV"
"#
    ))
    .expect("spec")
}

/// The stack with inventory runs and its fan-out, deployed on moto in the destination account.
struct Stack {
    moto: MotoServer,
    dest_config: SdkConfig,
    source: aws_sdk_s3::Client,
    /// The destination account's administrator (and S3 itself, delivering the inventory).
    dest: aws_sdk_s3::Client,
    source_key: String,
    dest_key: String,
    parameters: Value,
    /// inventory-handler's role.
    role: FunctionRole,
    /// The state machine's role, `InventoryFanOutRole`.
    fan_role: TemplateRole,
    /// `FERRY_FANOUT_STATE_MACHINE_ARN` as the template sets it.
    machine_arn: String,
    /// `!GetAtt InventoryHandlerFunction.Arn`, as the definition names it.
    function_arn: String,
    /// `InventoryFanOut`'s definition as CloudFormation hands it to Step Functions.
    definition: Value,
    fingerprint: String,
    /// What the notification topic's subscribers receive.
    inbox: Inbox,
}

/// One object of the source bucket: its key, bytes and ETag.
struct Object {
    key: String,
    body: Vec<u8>,
    etag: String,
}

/// An inventory as S3 delivered it: the data files (key, bytes) and `manifest.checksum`'s key.
struct Delivered {
    data: Vec<(String, Vec<u8>)>,
    checksum_key: String,
}

/// A run the handler handed to the state machine, as moto recorded its execution.
struct Started {
    run_id: String,
    /// `ferry-<run>-<nonce>`: the name the handler gave it (a nonce drawn per invocation).
    name: String,
    /// The execution's input as DescribeExecution returns it.
    input: Value,
}

impl Stack {
    async fn deploy() -> Stack {
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
            "InventoryRuns": "true", "NotificationEmail": "storage-team@example.com",
            "InventoryFanOutConcurrency": CONCURRENCY.to_string()
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
        let inbox = Inbox::subscribe(&dest_config, &role.notification_topic_arn, "people").await;
        default_kms_encryption(&dest, INV_BUCKET, &inventory_key).await;
        PlanGrants::all().apply(&moto, &plan, REGION).await;
        let fingerprint = store_approved_plan(&dest, &role.state_bucket, &spec).await;

        // The state machine, as CloudFormation creates it: the template's definition with its
        // DefinitionSubstitutions resolved in this deployment, run by the template's role.
        let fan_role = TemplateRole::deploy(
            &moto,
            "InventoryFanOutRole",
            DEST_ACCOUNT,
            REGION,
            &parameters,
        )
        .await;
        let machine = template_state_machine(INVENTORY_FANOUT, DEST_ACCOUNT, REGION, &parameters)
            .unwrap_or_else(|e| panic!("template.yaml's {INVENTORY_FANOUT}: {e}"));
        let values = resolve_in_stack(
            DEST_ACCOUNT,
            REGION,
            &parameters,
            &role.stack_id,
            &Value::Object(machine.substitutions.clone()),
        );
        let value = |name: &str| {
            values[name]
                .as_str()
                .unwrap_or_else(|| panic!("DefinitionSubstitutions.{name} resolved to {values}"))
                .to_string()
        };
        let function_arn = value("InventoryHandlerArn");
        assert_eq!(
            value("StateBucket"),
            role.state_bucket,
            "the state machine reads the state bucket inventory-handler writes"
        );
        assert_eq!(value("Concurrency"), CONCURRENCY.to_string());
        assert!(
            function_arn.starts_with(&format!("arn:aws:lambda:{REGION}:{DEST_ACCOUNT}:function:")),
            "{function_arn}"
        );
        let pairs: Vec<(&str, String)> = ["StateBucket", "InventoryHandlerArn", "Concurrency"]
            .into_iter()
            .map(|name| (name, value(name)))
            .collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let definition = machine
            .definition(&pairs)
            .unwrap_or_else(|e| panic!("{INVENTORY_FANOUT}'s definition: {e}"));
        let machine_arn = role
            .env("FERRY_FANOUT_STATE_MACHINE_ARN")
            .expect("the template names the state machine in inventory-handler's environment");
        let created = aws_sdk_sfn::Client::new(&dest_config)
            .create_state_machine()
            .name(machine_arn.rsplit(':').next().unwrap())
            .definition(definition.to_string())
            .role_arn(&fan_role.role_arn)
            .r#type(aws_sdk_sfn::types::StateMachineType::Standard)
            .send()
            .await
            .unwrap_or_else(|e| panic!("states:CreateStateMachine: {e:?}"));
        assert_eq!(
            created.state_machine_arn(),
            machine_arn,
            "the state machine the function's environment names is the one created"
        );

        Stack {
            moto,
            dest_config,
            source,
            dest,
            source_key,
            dest_key,
            parameters,
            role,
            fan_role,
            machine_arn,
            function_arn,
            definition,
            fingerprint,
            inbox,
        }
    }

    /// inventory-handler as its template role, every inventory fanned out (`data_bytes` 0) and
    /// a work directory of `work_dir_bytes`.
    fn handler(&self, name: &str, work_dir_bytes: u64) -> (InventoryHandler<AwsPorts>, SentJobs) {
        let (mut handler, sent) = handler_as(&self.role, &self.fingerprint, name);
        handler.settings.work_dir_bytes = work_dir_bytes;
        handler.settings.fan_out = Some(FanOutSettings {
            state_machine_arn: self.machine_arn.clone(),
            data_bytes: 0,
            memory_mb: 1024,
            // Drawn per invocation by the handler (`run_settings`), whatever is set here.
            execution_nonce: String::new(),
        });
        (handler, sent)
    }

    /// Puts `key` in the source bucket under the source key.
    async fn put_source(&self, key: &str, body: Vec<u8>) -> Object {
        let put = self
            .source
            .put_object()
            .bucket(SOURCE_BUCKET)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.source_key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        Object {
            key: key.to_string(),
            body,
            etag: put.e_tag().unwrap().trim_matches('"').to_string(),
        }
    }

    /// S3 delivering a gzip CSV inventory of `files` (each the CSV text of one data file), data
    /// files first, `manifest.checksum` last.
    async fn deliver(&self, date: &str, files: &[String], created_ms: u64) -> Delivered {
        use std::io::Write;
        let mut data = Vec::new();
        for (n, csv) in files.iter().enumerate() {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(csv.as_bytes()).expect("gzip");
            data.push((
                format!("{DIR}data/{date}-{n}.csv.gz"),
                gz.finish().expect("gzip"),
            ));
        }
        let manifest = json!({
            "sourceBucket": SOURCE_BUCKET,
            "destinationBucket": format!("arn:aws:s3:::{INV_BUCKET}"),
            "version": "2016-11-30",
            "creationTimestamp": created_ms.to_string(),
            "fileFormat": "CSV",
            "fileSchema": SCHEMA,
            "files": data.iter().map(|(key, bytes)| json!({
                "key": key, "size": bytes.len(), "MD5checksum": md5_hex(bytes)
            })).collect::<Vec<_>>(),
        })
        .to_string();
        let checksum_key = format!("{DIR}{date}/manifest.checksum");
        let mut objects = data.clone();
        objects.push((
            format!("{DIR}{date}/manifest.json"),
            manifest.clone().into_bytes(),
        ));
        objects.push((
            checksum_key.clone(),
            md5_hex(manifest.as_bytes()).into_bytes(),
        ));
        put_all(&self.dest, INV_BUCKET, objects).await;
        Delivered { data, checksum_key }
    }

    /// The handler's run of the inventory `checksum_key`: it must fan out, and moto must hold
    /// the execution it started, with the ids as its only input.
    async fn start(&self, handler: &InventoryHandler<AwsPorts>, checksum_key: &str) -> Started {
        let outcomes = handler
            .handle(LambdaEvent::new(
                event_for(INV_BUCKET, checksum_key),
                Context::default(),
            ))
            .await
            .unwrap_or_else(|e| panic!("run: {e:?}\n{:#?}", self.moto.denials()));
        let [RunOutcome::FannedOut {
            run_id,
            execution_arn,
        }] = outcomes.as_slice()
        else {
            panic!("the inventory was not fanned out: {outcomes:?}")
        };
        assert!(
            run_id.len() == 32
                && run_id
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{run_id}"
        );
        let described = aws_sdk_sfn::Client::new(&self.dest_config)
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("states:DescribeExecution {execution_arn}: {e:?}"));
        assert_eq!(described.state_machine_arn(), self.machine_arn);
        let name = described.name().unwrap_or_default().to_string();
        let nonce = name
            .strip_prefix(&format!("ferry-{run_id}-"))
            .unwrap_or_else(|| panic!("the execution's name {name:?} is not ferry-<run>-<nonce>"));
        assert!(
            nonce.len() == 16 && nonce.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
        let input: Value =
            serde_json::from_str(described.input().expect("the execution's input")).unwrap();
        assert_eq!(
            input,
            json!({"Fingerprint": self.fingerprint, "Run": run_id}),
            "the execution's input is the two ids"
        );
        assert_eq!(
            execution_arn,
            &format!(
                "{}:{name}",
                self.machine_arn.replace(":stateMachine:", ":execution:")
            )
        );
        Started {
            run_id: run_id.clone(),
            name,
            input,
        }
    }

    /// Step Functions running the execution: the Maps' `ItemReader` reads as the state
    /// machine's role; each `lambda:invoke` is authorized as that role (`lambda:InvokeFunction`,
    /// a DryRun Invoke through the gateway), then `handler` serves the payload as the function
    /// would: its output `null` (main.rs maps the outcome to `()`), its error the document the
    /// Lambda runtime posts.
    async fn run(&self, handler: &InventoryHandler<AwsPorts>, started: &Started) -> Execution {
        let input = started.input.clone();
        let reader = s3_client(&self.fan_role.config);
        let lambda =
            AwsPorts::from_config(&self.fan_role.config, String::new(), String::new()).lambda;
        run_named_execution(
            &self.definition,
            &started.name,
            input,
            |bucket, key| {
                let s3 = reader.clone();
                async move {
                    let out = s3
                        .get_object()
                        .bucket(&bucket)
                        .key(&key)
                        .send()
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    let body = out.body.collect().await.map_err(|e| e.to_string())?;
                    Ok(body.to_vec())
                }
            },
            |function, payload| {
                let lambda = lambda.clone();
                async move {
                    lambda
                        .invoke()
                        .function_name(&function)
                        .invocation_type("DryRun".into())
                        .send()
                        .await
                        .map_err(|e| {
                            TaskFailure::new(
                                "Lambda.AWSLambdaException",
                                format!("lambda:InvokeFunction {function} as the state machine's role: {e:?}"),
                            )
                        })?;
                    if function != self.function_arn {
                        return Err(TaskFailure::new(
                            "Lambda.ResourceNotFoundException",
                            format!("{function} is not the stack's inventory-handler"),
                        ));
                    }
                    handler
                        .handle(LambdaEvent::new(payload, Context::default()))
                        .await
                        .map(|_| Value::Null)
                        .map_err(|e| {
                            let d = Diagnostic::from(e);
                            TaskFailure::function_error(&d.error_type, &d.error_message)
                        })
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("Step Functions would refuse {INVENTORY_FANOUT}: {e}"))
    }

    /// An object of the state bucket, read as the account's administrator.
    async fn state(&self, key: &str) -> Option<Value> {
        get(&self.dest, &self.role.state_bucket, key)
            .await
            .map(|bytes| serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{key}: {e}")))
    }

    /// The destination bucket's keys.
    async fn destination_keys(&self) -> BTreeSet<String> {
        self.dest
            .list_objects_v2()
            .bucket(DEST_BUCKET)
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(out.body.collect().await.unwrap().to_vec())
}

/// An inventory row for `object` as S3 Inventory writes it in CSV.
fn row(object: &Object, modified: &str) -> String {
    format!(
        "\"{SOURCE_BUCKET}\",\"{}\",\"{}\",\"{modified}\",\"{}\",\"STANDARD\"\n",
        s3_encode(&object.key),
        object.body.len(),
        object.etag
    )
}

/// The source keys of a job's tasks (the report's URL-encoded keys, decoded).
fn task_keys(job: &ferry_testkit::batch_ops::EmulatedJob) -> BTreeSet<String> {
    job.tasks.iter().map(|t| url_decode(&t.key)).collect()
}

fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], text.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("a UTF-8 key")
}

/// A work directory whose half (the data files a batch may hold) is two and a half times the
/// largest data file: the inventory is scanned in several batches of about two files.
fn work_dir_bytes_for(delivered: &Delivered) -> u64 {
    let largest = delivered.data.iter().map(|(_, d)| d.len()).max().unwrap() as u64;
    largest * 5
}

/// `execution` succeeded, or the reason it did not (the failed invocations, the denials).
fn assert_succeeded(stack: &Stack, execution: &Execution) {
    assert!(
        execution.succeeded(),
        "{:?}\nfailed invocations: {:#?}\ndenials: {:#?}",
        execution.status,
        execution
            .invocations
            .iter()
            .filter(|i| i.outcome.is_err())
            .collect::<Vec<_>>(),
        stack.moto.denials()
    );
}

/// The payloads each Map item's function got: the ids, the execution's own name (not the child
/// workflow's) and the item, as the state bucket's list has it, in order.
fn assert_items_served(
    execution: &Execution,
    state: &str,
    step: &str,
    items: &Value,
    run: &Started,
    fp: &str,
) {
    let payloads: Vec<Value> = execution
        .invocations_of(state)
        .map(|i| i.payload.clone())
        .collect();
    let expected: Vec<Value> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            json!({"Step": step, "Fingerprint": fp, "Run": run.run_id, "Execution": run.name, "Item": item})
        })
        .collect();
    assert_eq!(payloads, expected, "{state}");
}

/// The batches of `scan-items.json` cover every data file once, in order, each within the work
/// directory's half (a batch of one file aside), and there are several.
fn assert_batches(items: &Value, delivered: &Delivered, work_dir_bytes: u64) {
    let items = items.as_array().expect("scan-items.json is a JSON array");
    assert!(items.len() > 1, "several batches: {items:?}");
    let mut next = 0;
    for (n, item) in items.iter().enumerate() {
        let (first, end) = (
            item["First"].as_u64().unwrap() as usize,
            item["End"].as_u64().unwrap() as usize,
        );
        assert_eq!(item["Batch"], json!(n), "{item}");
        assert_eq!(first, next, "batches follow each other: {items:?}");
        assert!(end > first, "{item}");
        let bytes: u64 = delivered.data[first..end]
            .iter()
            .map(|(_, d)| d.len() as u64)
            .sum();
        assert!(
            end - first == 1 || bytes <= work_dir_bytes / 2,
            "batch {n} holds {bytes} bytes of data files, more than half the work directory ({work_dir_bytes})"
        );
        next = end;
    }
    assert_eq!(next, delivered.data.len(), "every data file is in a batch");
}

/// Every call `principal_part` made went through the gateway and was allowed.
fn calls_of(moto: &MotoServer, principal_part: &str) -> Vec<ferry_testkit::GatewayDecision> {
    let calls: Vec<_> = moto
        .decisions()
        .into_iter()
        .filter(|d| d.principal.contains(principal_part))
        .collect();
    let denied: Vec<_> = calls.iter().filter(|d| d.decision != "Allow").collect();
    assert!(
        denied.is_empty(),
        "{principal_part} was refused what the template's role does not allow: {denied:#?}"
    );
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_fanned_out_on_the_state_machine_is_copied_then_its_delta_is_too() {
    let stack = Stack::deploy().await;
    let fp = stack.fingerprint.clone();
    let mut objects = Vec::new();
    for (i, key) in KEYS.iter().enumerate() {
        objects.push(
            stack
                .put_source(key, format!("object {i}: {key}").into_bytes())
                .await,
        );
    }
    let files: Vec<String> = objects
        .chunks(ROWS_PER_FILE)
        .map(|chunk| {
            chunk
                .iter()
                .map(|o| row(o, "2026-11-20T10:00:00.000Z"))
                .collect()
        })
        .collect();
    let delivered = stack.deliver(DATE, &files, 1_795_000_000_000).await;
    let work_dir_bytes = work_dir_bytes_for(&delivered);
    let (handler, sent) = stack.handler("fan-out-e2e", work_dir_bytes);

    // The run is handed to the state machine: its item lists in the state bucket, then one
    // execution started (as inventory-handler's role) that moto holds.
    let started = stack.start(&handler, &delivered.checksum_key).await;
    let run_id = started.run_id.clone();
    let scan_items = stack
        .state(&fanout_keys::scan_items(&fp, &run_id))
        .await
        .expect("scan-items.json");
    let shard_items = stack
        .state(&fanout_keys::shard_items(&fp, &run_id))
        .await
        .expect("shard-items.json");
    assert_batches(&scan_items, &delivered, work_dir_bytes);
    assert!(
        shard_items.as_array().is_some_and(|s| !s.is_empty()),
        "{shard_items}"
    );
    assert!(
        sent.lock().unwrap().is_empty(),
        "nothing is launched before the fan-out ran"
    );

    // Step Functions runs it: every batch scanned, every shard diffed, then one launch.
    let execution = stack.run(&handler, &started).await;
    assert_succeeded(&stack, &execution);
    assert_eq!(
        execution.states_entered,
        ["TakeTheIds", "ScanDataFiles", "DiffShards", "LaunchJobs"]
    );
    let [scan_run, diff_run] = execution.map_runs.as_slice() else {
        panic!("{:#?}", execution.map_runs)
    };
    let list_len = |items: &Value| items.as_array().unwrap().len();
    assert_eq!(
        (
            scan_run.key.as_str(),
            scan_run.items,
            scan_run.succeeded,
            scan_run.max_concurrency
        ),
        (
            fanout_keys::scan_items(&fp, &run_id).as_str(),
            list_len(&scan_items),
            list_len(&scan_items),
            CONCURRENCY
        )
    );
    assert_eq!(
        (
            diff_run.key.as_str(),
            diff_run.items,
            diff_run.succeeded,
            diff_run.max_concurrency
        ),
        (
            fanout_keys::shard_items(&fp, &run_id).as_str(),
            list_len(&shard_items),
            list_len(&shard_items),
            CONCURRENCY
        )
    );
    assert_eq!(scan_run.bucket, stack.role.state_bucket);
    assert_items_served(&execution, "ScanBatch", "scan", &scan_items, &started, &fp);
    assert_items_served(&execution, "DiffShard", "diff", &shard_items, &started, &fp);
    assert_eq!(execution.invocations_of("LaunchJobs").count(), 1);
    assert!(execution.retries.is_empty(), "{:#?}", execution.retries);

    // The Copy job the launch created, as Batch Operations runs it: exactly the listed objects
    // the plan copies, their bytes, under the destination key.
    let inputs = sent.lock().unwrap().clone();
    assert_eq!(inputs.len(), 1, "one Copy job");
    let copied: Vec<&Object> = objects
        .iter()
        .filter(|o| !o.key.starts_with(EXCLUDED))
        .collect();
    let job = create_job(&stack.moto, REGION, &inputs[0], None).await;
    assert_eq!(job.status.as_str(), "Complete", "{:?}", job.failure_reasons);
    assert_eq!(job.failed(), 0, "{:?}", job.tasks);
    assert_eq!(
        task_keys(&job),
        copied
            .iter()
            .map(|o| o.key.clone())
            .collect::<BTreeSet<_>>(),
        "the job's tasks"
    );
    assert_eq!(job.tasks.len(), copied.len(), "each object once");
    assert_eq!(
        stack.destination_keys().await,
        copied
            .iter()
            .map(|o| o.key.clone())
            .collect::<BTreeSet<_>>()
    );
    for object in &copied {
        let head = stack
            .dest
            .head_object()
            .bucket(DEST_BUCKET)
            .key(&object.key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.ssekms_key_id(), Some(stack.dest_key.as_str()));
        assert_eq!(
            get(&stack.dest, DEST_BUCKET, &object.key).await.as_deref(),
            Some(object.body.as_slice()),
            "{}",
            object.key
        );
    }
    let record: RunRecord = serde_json::from_value(
        stack
            .state(&keys::run(&fp, &run_id))
            .await
            .expect("the run's record"),
    )
    .unwrap();
    assert_eq!(
        (
            record.stats.rows,
            record.stats.copy.objects,
            record.previous_run_id.clone()
        ),
        (KEYS.len() as u64, copied.len() as u64, None)
    );
    assert_eq!(
        record
            .jobs
            .iter()
            .map(|j| j.job_id.clone())
            .collect::<Vec<_>>(),
        [job_id_for(&inputs[0])]
    );

    // Every call went through the gateway as the template's roles, and each was allowed: the
    // state machine's role read exactly the two item lists and invoked the function.
    let handler_calls = calls_of(&stack.moto, "ferry-e2e-InventoryHandlerFunctionRole");
    assert!(
        handler_calls
            .iter()
            .any(|d| d.action == "states:StartExecution" && d.resource == stack.machine_arn),
        "{handler_calls:#?}"
    );
    let fan_calls = calls_of(&stack.moto, &stack.fan_role.role_name);
    let read: BTreeSet<String> = fan_calls
        .iter()
        .filter(|d| d.action == "s3:GetObject")
        .map(|d| d.resource.clone())
        .collect();
    let list_arn = |key: String| format!("arn:aws:s3:::{}/{key}", stack.role.state_bucket);
    assert_eq!(
        read,
        BTreeSet::from([
            list_arn(fanout_keys::scan_items(&fp, &run_id)),
            list_arn(fanout_keys::shard_items(&fp, &run_id))
        ])
    );
    let invokes = fan_calls
        .iter()
        .filter(|d| d.action == "lambda:InvokeFunction" && d.resource == stack.function_arn)
        .count();
    assert_eq!(invokes, execution.invocations.len(), "{fan_calls:#?}");
    assert!(
        fan_calls
            .iter()
            .all(|d| d.action == "s3:GetObject" || d.action == "lambda:InvokeFunction"),
        "{fan_calls:#?}"
    );

    // The job's end, as job-monitor (its own role) records it: the run is the delta base.
    let monitor = FunctionRole::deploy(
        &stack.moto,
        "JobMonitorFunction",
        DEST_ACCOUNT,
        REGION,
        &stack.parameters,
    )
    .await;
    let monitor_ports = AwsPorts::from_config(
        &monitor.config,
        monitor.state_bucket.clone(),
        monitor.notification_topic_arn.clone(),
    );
    let finished = job_finished(&monitor_ports, &job_id_for(&inputs[0]), "Complete", &[])
        .await
        .unwrap_or_else(|e| panic!("job_finished: {e:?}\n{:#?}", stack.moto.denials()));
    assert!(
        matches!(&finished, JobFinished::Commit { run_id: r, .. } if *r == run_id),
        "{finished:?}"
    );
    let current: CurrentIndex = serde_json::from_value(
        stack
            .state(&keys::current(&fp))
            .await
            .expect("current.json"),
    )
    .unwrap();
    assert_eq!(current.run_id, run_id);

    // The next day's inventory: one object changed, one new; the fan-out copies only those.
    let changed = stack
        .put_source(KEYS[1], b"changed since yesterday".to_vec())
        .await;
    let new = stack
        .put_source("photos/new one.jpg", b"new today".to_vec())
        .await;
    let mut files2 = Vec::new();
    for (n, chunk) in objects.chunks(ROWS_PER_FILE).enumerate() {
        let mut csv = String::new();
        for object in chunk {
            if object.key == changed.key {
                csv.push_str(&row(&changed, "2026-11-24T10:00:00.000Z"));
            } else {
                csv.push_str(&row(object, "2026-11-20T10:00:00.000Z"));
            }
        }
        if n == 3 {
            csv.push_str(&row(&new, "2026-11-24T11:00:00.000Z"));
        }
        files2.push(csv);
    }
    let delivered2 = stack.deliver(DATE2, &files2, 1_795_086_400_000).await;
    let started2 = stack.start(&handler, &delivered2.checksum_key).await;
    assert_ne!(started2.run_id, run_id);
    let fan_run: FanOutRun = serde_json::from_value(
        stack
            .state(&fanout_keys::run(&fp, &started2.run_id))
            .await
            .expect("the second run's fanout/run.json"),
    )
    .unwrap();
    assert!(fan_run.delta, "a delta run");
    assert_eq!(
        fan_run.previous.as_ref().map(|c| c.run_id.as_str()),
        Some(run_id.as_str()),
        "compared with the committed run"
    );
    let execution2 = stack.run(&handler, &started2).await;
    assert_succeeded(&stack, &execution2);
    assert_eq!(
        execution2.states_entered,
        ["TakeTheIds", "ScanDataFiles", "DiffShards", "LaunchJobs"]
    );
    let inputs = sent.lock().unwrap().clone();
    assert_eq!(inputs.len(), 2, "one more Copy job");
    let job2 = create_job(&stack.moto, REGION, &inputs[1], None).await;
    assert_eq!(
        job2.status.as_str(),
        "Complete",
        "{:?}",
        job2.failure_reasons
    );
    assert_eq!(job2.failed(), 0, "{:?}", job2.tasks);
    assert_eq!(
        task_keys(&job2),
        BTreeSet::from([changed.key.clone(), new.key.clone()]),
        "only the changed and the new object"
    );
    assert_eq!(job2.tasks.len(), 2);
    for object in [&changed, &new] {
        assert_eq!(
            get(&stack.dest, DEST_BUCKET, &object.key).await.as_deref(),
            Some(object.body.as_slice()),
            "{}",
            object.key
        );
    }
    let mut expected: BTreeSet<String> = copied.iter().map(|o| o.key.clone()).collect();
    expected.insert(new.key.clone());
    assert_eq!(stack.destination_keys().await, expected);
    let record2: RunRecord = serde_json::from_value(
        stack
            .state(&keys::run(&fp, &started2.run_id))
            .await
            .expect("the second run's record"),
    )
    .unwrap();
    assert_eq!(
        (
            record2.stats.rows,
            record2.stats.copy.objects,
            record2.stats.changed,
            record2.previous_run_id.as_deref()
        ),
        (KEYS.len() as u64 + 1, 2, 1, Some(run_id.as_str()))
    );
    calls_of(&stack.moto, "ferry-e2e-InventoryHandlerFunctionRole");
    calls_of(&stack.moto, &stack.fan_role.role_name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_file_changed_after_the_inventory_fails_the_fan_out_which_says_so_once_and_launches_nothing(
) {
    let stack = Stack::deploy().await;
    let fp = stack.fingerprint.clone();
    let mut objects = Vec::new();
    for (i, key) in KEYS.iter().enumerate() {
        objects.push(
            stack
                .put_source(key, format!("object {i}: {key}").into_bytes())
                .await,
        );
    }
    let files: Vec<String> = objects
        .chunks(ROWS_PER_FILE)
        .map(|chunk| {
            chunk
                .iter()
                .map(|o| row(o, "2026-11-20T10:00:00.000Z"))
                .collect()
        })
        .collect();
    let delivered = stack.deliver(DATE, &files, 1_795_000_000_000).await;
    // A data file rewritten after S3 Inventory wrote it: the same size, other bytes.
    const TAMPERED: usize = 2;
    let (tampered_key, original) = delivered.data[TAMPERED].clone();
    let mut other = original.clone();
    let middle = other.len() / 2;
    other[middle] ^= 0x5a;
    assert_eq!(other.len(), original.len());
    put_all(&stack.dest, INV_BUCKET, vec![(tampered_key.clone(), other)]).await;

    let work_dir_bytes = work_dir_bytes_for(&delivered);
    let (handler, sent) = stack.handler("fan-out-tampered", work_dir_bytes);
    let started = stack.start(&handler, &delivered.checksum_key).await;
    let scan_items = stack
        .state(&fanout_keys::scan_items(&fp, &started.run_id))
        .await
        .expect("scan-items.json");
    assert_batches(&scan_items, &delivered, work_dir_bytes);
    let tampered_batch = scan_items
        .as_array()
        .unwrap()
        .iter()
        .position(|item| {
            (item["First"].as_u64().unwrap()..item["End"].as_u64().unwrap())
                .contains(&(TAMPERED as u64))
        })
        .unwrap();

    let execution = stack.run(&handler, &started).await;
    let Status::Failed { error, .. } = &execution.status else {
        panic!("the execution succeeded: {:#?}", execution.invocations)
    };
    assert_eq!(error, "FerryInventoryRunFailed");
    assert_eq!(
        execution.states_entered,
        ["TakeTheIds", "ScanDataFiles", "RunFailed", "Failed"]
    );
    let scan_run = &execution.map_runs[0];
    assert_eq!(
        scan_run.failed.iter().map(|f| f.index).collect::<Vec<_>>(),
        [tampered_batch],
        "the tampered file's batch failed, and only it: {:#?}",
        scan_run.failed
    );
    assert!(
        execution
            .invocations_of("ScanBatch")
            .filter(|i| i.map_item.as_ref().map(|m| m.index) == Some(tampered_batch))
            .all(|i| i.outcome.is_err()),
        "every attempt of the tampered batch fails"
    );
    assert_eq!(execution.invocations_of("DiffShard").count(), 0);
    assert_eq!(execution.invocations_of("LaunchJobs").count(), 0);
    let run_failed: Vec<_> = execution.invocations_of("RunFailed").collect();
    assert_eq!(run_failed.len(), 1, "{run_failed:#?}");
    assert_eq!(
        run_failed[0].outcome,
        Ok(Value::Null),
        "the failed step is served"
    );
    assert_eq!(
        run_failed[0].payload["Failure"]["Error"],
        "States.ExceedToleratedFailureThreshold"
    );

    // Said once, with the reason: the data file and its MD5.
    let mail = stack.inbox.messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert!(
        mail[0].contains(&tampered_key)
            && mail[0].contains("MD5")
            && mail[0].contains(&format!("ferry-{}", started.run_id))
            && mail[0].contains("Nothing was launched"),
        "{}",
        mail[0]
    );
    // Step Functions may deliver RunFailed's invocation again: still one e-mail.
    handler
        .handle(LambdaEvent::new(
            run_failed[0].payload.clone(),
            Context::default(),
        ))
        .await
        .unwrap_or_else(|e| panic!("the failed step again: {e:?}"));
    assert_eq!(stack.inbox.messages().await, Vec::<String>::new());

    // Nothing launched, nothing recorded as run, the delta base untouched, nothing copied.
    assert!(sent.lock().unwrap().is_empty());
    assert_eq!(stack.state(&keys::run(&fp, &started.run_id)).await, None);
    assert_eq!(stack.state(&keys::current(&fp)).await, None);
    assert!(stack.destination_keys().await.is_empty());
    calls_of(&stack.moto, "ferry-e2e-InventoryHandlerFunctionRole");
    calls_of(&stack.moto, &stack.fan_role.role_name);
}
