//! large-object-copier against moto with real multipart uploads: two accounts, KMS on both
//! sides, the events/ fixtures, resume across invocations, and faults on some parts. Parts are
//! scaled down to S3's 5 MiB minimum, so a "large" object is 12 MiB here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass, Tag};
use ferry_aws::large_copy::AwsMultipartCopy;
use ferry_core::large_object::copy::{
    copy_task, CompleteUpload, CompletedObject, CopiedPart, CopyClock, CopyContext, CopyTuning,
    DestinationObject, MultipartCopyApi, NewUpload, PartCopy, SourceObject, UploadSummary,
};
use ferry_core::large_object::parts::{PartSizing, MIB};
use ferry_core::large_object::task::{CopyTask, ResultCode};
use ferry_core::large_object::LargeObjectCopyArguments;
use ferry_core::launch::{AwsCallError, AwsErrorKind};
use ferry_core::{Plan, TransferSpec};
use ferry_testkit::{kms_key, s3_client, FunctionRole, Layer, MotoServer, PlanGrants};
use lambda_runtime::{Context, LambdaEvent};
use large_object_copier::{CopierPorts, LargeObjectCopier, StsCopierPorts};
use serde_json::Value;

const REGION: &str = "us-east-1";
const SOURCE_ACCOUNT: &str = "111111111111";
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-media-prod";
const DEST_BUCKET: &str = "acme-media-archive";
const KEY: &str = "masters/film reel 1+final.mov";
const DEST_KEY: &str = "from-prod/masters/film reel 1+final.mov";
const ROLE: &str = "arn:aws:iam::222222222222:role/ferry-media-batch";
const SIZE: usize = 12 * 1024 * 1024 + 3;

struct World {
    moto: MotoServer,
    /// A session of the copier's own execution role, as the template makes it (Lambda's
    /// credentials): the copier assumes the batch role from it.
    copier_config: aws_config::SdkConfig,
    copier_role_arn: String,
    source: aws_sdk_s3::Client,
    dest: aws_sdk_s3::Client,
    dest_key_arn: String,
    source_key_arn: String,
    body: Vec<u8>,
}

fn body() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 31 % 251) as u8).collect()
}

async fn world() -> World {
    let moto = MotoServer::start();
    let source_config = moto.sdk_config_for_account(SOURCE_ACCOUNT, REGION).await;
    let dest_config = moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
    let source_key_arn = kms_key(&source_config).await;
    let dest_key_arn = kms_key(&dest_config).await;
    let copier_role = FunctionRole::deploy(
        &moto,
        "LargeObjectCopierFunction",
        DEST_ACCOUNT,
        REGION,
        &serde_json::json!({
            "TransferName": "media", "SourceAccountId": SOURCE_ACCOUNT, "SourceRegion": REGION,
            "SourceBucket": SOURCE_BUCKET, "DestinationBucket": DEST_BUCKET,
            "ManifestKind": "csv", "ManifestBucket": "acme-media-ops", "ManifestKey": "ferry/large.csv",
            "ReportBucket": "acme-media-ops", "ReportPrefix": "ferry/reports",
            "NotificationEmail": "storage-team@example.com"
        }),
    )
    .await;
    let source = s3_client(&source_config);
    let dest = s3_client(&dest_config);
    source
        .create_bucket()
        .bucket(SOURCE_BUCKET)
        .send()
        .await
        .expect("source bucket");
    dest.create_bucket()
        .bucket(DEST_BUCKET)
        .send()
        .await
        .expect("dest bucket");
    // The plan's grants, exactly: the batch role's policies, the source account's bucket and
    // key policies, the destination key's. Behind the authorizing gateway the copier gets no
    // more than real AWS would give it.
    PlanGrants::all()
        .apply(
            &moto,
            &plan(&source_key_arn, &dest_key_arn, &copier_role.role_arn),
            REGION,
        )
        .await;
    let body = body();
    source
        .put_object()
        .bucket(SOURCE_BUCKET)
        .key(KEY)
        .body(ByteStream::from(body.clone()))
        .content_type("video/quicktime")
        .cache_control("max-age=60")
        .metadata("origin", "camera-7")
        .tagging("team=media&tier=gold")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&source_key_arn)
        .send()
        .await
        .expect("put source");
    World {
        moto,
        copier_config: copier_role.config.clone(),
        copier_role_arn: copier_role.role_arn.clone(),
        source,
        dest,
        dest_key_arn,
        source_key_arn,
        body,
    }
}

/// The transfer these tests copy for: the fixture's settings (events/large-object-copier.json).
fn spec(source_key_arn: &str, dest_key_arn: &str, copier_role_arn: &str) -> TransferSpec {
    TransferSpec::from_toml_str(&format!(
        r#"name = "media"
[source]
account_id = "{SOURCE_ACCOUNT}"
region = "{REGION}"
bucket = "{SOURCE_BUCKET}"
kms_key_arn = "{source_key_arn}"
[destination]
account_id = "{DEST_ACCOUNT}"
region = "{REGION}"
bucket = "{DEST_BUCKET}"
kms_key_arn = "{dest_key_arn}"
bucket_key_enabled = true
storage_class = "STANDARD_IA"
key_prefix = "from-prod/"
[manifest]
kind = "csv"
bucket = "acme-media-ops"
account_id = "{DEST_ACCOUNT}"
key = "ferry/large.csv"
[report]
bucket = "acme-media-ops"
account_id = "{DEST_ACCOUNT}"
prefix = "ferry/reports"
[job]
large_object_copier_arn = "arn:aws:lambda:{REGION}:{DEST_ACCOUNT}:function:ferry-large-object-copier"
large_object_copier_role_arn = "{copier_role_arn}"
"#
    ))
    .expect("spec")
}

fn plan(source_key_arn: &str, dest_key_arn: &str, copier_role_arn: &str) -> Plan {
    let plan = Plan::build(&spec(source_key_arn, dest_key_arn, copier_role_arn)).expect("plan");
    assert_eq!(plan.batch_role.arn, ROLE);
    plan
}

fn tuning() -> CopyTuning {
    CopyTuning {
        sizing: PartSizing::with_preferred_part_size(5 * MIB),
        parallelism: 2,
        reserve: Duration::from_secs(1),
        part_attempts: 4,
        first_pause: Duration::from_millis(1),
    }
}

impl World {
    fn copier(&self) -> LargeObjectCopier<StsCopierPorts> {
        let base = self.copier_config.clone();
        let mut copier = LargeObjectCopier::new(StsCopierPorts::new(base, true), ROLE.to_string());
        copier.tuning = tuning();
        copier
    }

    fn fixture(&self, name: &str) -> Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut event: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        if let Some(args) = event.pointer_mut("/job/userArguments") {
            args["kmsKeyArn"] = Value::String(self.dest_key_arn.clone());
        }
        event
    }

    fn arguments(&self) -> LargeObjectCopyArguments {
        let fixture = self.fixture("large-object-copier.json");
        let args: BTreeMap<String, String> =
            serde_json::from_value(fixture["job"]["userArguments"].clone()).unwrap();
        LargeObjectCopyArguments::from_user_arguments(&args).unwrap()
    }

    async fn api(&self) -> AwsMultipartCopy {
        let base = self.copier_config.clone();
        StsCopierPorts::new(base, true)
            .act_as(ROLE, "ferry-copy-test")
            .await
            .expect("assume the batch role")
    }

    async fn dest_body(&self) -> Vec<u8> {
        let out = self
            .dest
            .get_object()
            .bucket(DEST_BUCKET)
            .key(DEST_KEY)
            .send()
            .await
            .expect("copy exists");
        out.body.collect().await.unwrap().to_vec()
    }

    async fn open_uploads(&self) -> usize {
        let out = self
            .dest
            .list_multipart_uploads()
            .bucket(DEST_BUCKET)
            .send()
            .await
            .unwrap();
        out.uploads().len()
    }
}

fn task() -> CopyTask {
    CopyTask {
        task_id: "t1".into(),
        bucket: SOURCE_BUCKET.into(),
        key: KEY.into(),
        version_id: None,
    }
}

/// Plenty of time for `calls` looks at the clock, then none.
struct CountdownClock(AtomicU32);

impl CopyClock for CountdownClock {
    fn remaining(&self) -> Duration {
        match self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Duration::from_secs(600),
            Err(_) => Duration::ZERO,
        }
    }
    async fn pause(&self, _: Duration) {}
}

fn plenty() -> CountdownClock {
    CountdownClock(AtomicU32::new(u32::MAX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_event_copies_across_accounts_with_kms_on_both_sides() {
    let w = world().await;
    let copier = w.copier();
    let out = copier
        .handle(LambdaEvent::new(
            w.fixture("large-object-copier.json"),
            Context::default(),
        ))
        .await
        .expect("answers");
    assert_eq!(out["invocationSchemaVersion"], "2.0");
    assert_eq!(out["treatMissingKeysAs"], "PermanentFailure");
    let result = &out["results"][0];
    assert_eq!(result["taskId"], "dGFza2lkZ29lc2hlcmUK");
    assert_eq!(result["resultCode"], "Succeeded", "{result}");
    assert!(
        result["resultString"]
            .as_str()
            .unwrap()
            .contains("in 3 parts"),
        "{result}"
    );

    assert!(
        w.dest_body().await == w.body,
        "copy differs from the source"
    );
    let head = w
        .dest
        .head_object()
        .bucket(DEST_BUCKET)
        .key(DEST_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(SIZE as i64));
    assert_eq!(head.content_type(), Some("video/quicktime"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.metadata().unwrap()["origin"], "camera-7");
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some(w.dest_key_arn.as_str()));
    assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa));
    assert_eq!(w.open_uploads().await, 0);
    assert_ne!(w.source_key_arn, w.dest_key_arn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_one_needs_default_arguments() {
    let w = world().await;
    let mut copier = w.copier();
    let event = w.fixture("large-object-copier-schema-1.0.json");
    let out = copier
        .handle(LambdaEvent::new(event.clone(), Context::default()))
        .await
        .unwrap();
    assert_eq!(out["invocationSchemaVersion"], "1.0");
    assert_eq!(out["results"][0]["resultCode"], "PermanentFailure");
    assert!(out["results"][0]["resultString"]
        .as_str()
        .unwrap()
        .contains("2.0"));

    let mut defaults: BTreeMap<String, String> = serde_json::from_value(
        w.fixture("large-object-copier.json")["job"]["userArguments"].clone(),
    )
    .unwrap();
    defaults.insert("tags".into(), "REPLACE:{\"copied-by\":\"ferry\"}".into());
    copier.default_arguments = Some(defaults);
    let out = copier
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(out["results"][0]["resultCode"], "Succeeded", "{out}");
    assert!(w.dest_body().await == w.body);
    let tags = w
        .dest
        .get_object_tagging()
        .bucket(DEST_BUCKET)
        .key(DEST_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tag_set(),
        [Tag::builder()
            .key("copied-by")
            .value("ferry")
            .build()
            .unwrap()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_mid_copy_resumes_from_the_listed_parts() {
    let w = world().await;
    let api = faulty(w.api().await, vec![]);
    let ctx = CopyContext {
        role_arn: ROLE.into(),
        arguments: w.arguments(),
        tuning: CopyTuning {
            parallelism: 1,
            ..tuning()
        },
    };
    // Time for one part only.
    let (first, stats) = copy_task(&api, &CountdownClock(AtomicU32::new(1)), &ctx, &task()).await;
    assert_eq!(first.result_code, ResultCode::TemporaryFailure, "{first:?}");
    assert!(
        first.result_string.contains("1 of 3 parts"),
        "{}",
        first.result_string
    );
    assert_eq!(stats.parts_copied, 1);
    assert_eq!(
        w.open_uploads().await,
        1,
        "the upload stays open for the retry"
    );

    let (second, stats2) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(second.result_code, ResultCode::Succeeded, "{second:?}");
    assert_eq!(
        stats2.upload_id, stats.upload_id,
        "the same upload is resumed"
    );
    assert_eq!((stats2.parts_reused, stats2.parts_copied), (1, 2));
    assert!(second.result_string.contains("(1 resumed)"));
    assert!(w.dest_body().await == w.body);
    assert_eq!(w.open_uploads().await, 0);
}

/// Injects errors into chosen calls of a real adapter. It also stands in for S3's
/// `Initiated` time, which moto answers as a fixed date in 2010: the real time of each
/// CreateMultipartUpload is kept and reported by ListMultipartUploads. And for ListParts, whose
/// response moto 5.2 roots at `ListPartsResponse` (S3: `ListPartsResult`, so the SDK can't read
/// it), it answers the parts moto accepted, as S3 would list them.
struct Faulty<A> {
    inner: A,
    created: Mutex<BTreeMap<String, i64>>,
    parts: Mutex<BTreeMap<String, BTreeMap<u32, CopiedPart>>>,
    /// part number → errors to return before letting it through.
    part_faults: Mutex<BTreeMap<u32, Vec<AwsCallError>>>,
    archived_head: bool,
}

fn err(kind: AwsErrorKind, code: &str, message: &str) -> AwsCallError {
    AwsCallError {
        kind,
        code: code.into(),
        message: message.into(),
    }
}

impl<A: MultipartCopyApi> MultipartCopyApi for Faulty<A> {
    async fn head_source(
        &self,
        task: &CopyTask,
        owner: &str,
    ) -> Result<SourceObject, AwsCallError> {
        let mut head = self.inner.head_source(task, owner).await?;
        if self.archived_head {
            head.storage_class = Some("DEEP_ARCHIVE".into());
        }
        Ok(head)
    }
    async fn source_tags(
        &self,
        task: &CopyTask,
        owner: &str,
    ) -> Result<BTreeMap<String, String>, AwsCallError> {
        self.inner.source_tags(task, owner).await
    }
    async fn list_uploads(
        &self,
        b: &str,
        k: &str,
        o: &str,
    ) -> Result<Vec<UploadSummary>, AwsCallError> {
        let mut uploads = self.inner.list_uploads(b, k, o).await?;
        let created = self.created.lock().unwrap();
        for u in &mut uploads {
            u.initiated_ms = created.get(&u.upload_id).copied();
        }
        Ok(uploads)
    }
    async fn list_parts(
        &self,
        b: &str,
        k: &str,
        u: &str,
        o: &str,
    ) -> Result<Vec<CopiedPart>, AwsCallError> {
        // The real call first, so it is authorized (s3:ListMultipartUploadParts) like on AWS;
        // only moto's unreadable answer is replaced by the parts it accepted.
        if let Err(e) = self.inner.list_parts(b, k, u, o).await {
            if e.kind == AwsErrorKind::AccessDenied {
                return Err(e);
            }
        }
        Ok(self
            .parts
            .lock()
            .unwrap()
            .get(u)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default())
    }
    async fn create_upload(&self, r: &NewUpload) -> Result<String, AwsCallError> {
        let id = self.inner.create_upload(r).await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        self.created.lock().unwrap().insert(id.clone(), now);
        Ok(id)
    }
    async fn copy_part(&self, r: &PartCopy) -> Result<CopiedPart, AwsCallError> {
        let fault = {
            let mut faults = self.part_faults.lock().unwrap();
            faults
                .get_mut(&r.part.part_number)
                .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        };
        match fault {
            Some(e) => Err(e),
            None => {
                let part = self.inner.copy_part(r).await?;
                self.parts
                    .lock()
                    .unwrap()
                    .entry(r.upload_id.clone())
                    .or_default()
                    .insert(part.part_number, part.clone());
                Ok(part)
            }
        }
    }
    async fn complete_upload(&self, r: &CompleteUpload) -> Result<CompletedObject, AwsCallError> {
        self.inner.complete_upload(r).await
    }
    async fn abort_upload(&self, b: &str, k: &str, u: &str, o: &str) -> Result<(), AwsCallError> {
        self.inner.abort_upload(b, k, u, o).await
    }
    async fn head_destination(
        &self,
        b: &str,
        k: &str,
        v: Option<&str>,
        o: &str,
    ) -> Result<DestinationObject, AwsCallError> {
        self.inner.head_destination(b, k, v, o).await
    }
}

fn faulty(
    api: AwsMultipartCopy,
    faults: Vec<(u32, Vec<AwsCallError>)>,
) -> Faulty<AwsMultipartCopy> {
    Faulty {
        inner: api,
        created: Mutex::default(),
        parts: Mutex::default(),
        part_faults: Mutex::new(faults.into_iter().collect()),
        archived_head: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_on_some_parts_end_in_a_correct_copy_or_a_temporary_failure() {
    let w = world().await;
    let ctx = CopyContext {
        role_arn: ROLE.into(),
        arguments: w.arguments(),
        tuning: tuning(),
    };
    let slow = || {
        err(
            AwsErrorKind::Throttled,
            "SlowDown",
            "Please reduce your request rate.",
        )
    };
    let unavailable = || err(AwsErrorKind::Transient, "ServiceUnavailable", "503");

    // A few faults: retried within the invocation, the copy is exact.
    let api = faulty(
        w.api().await,
        vec![(2, vec![slow(), slow()]), (3, vec![unavailable()])],
    );
    let (result, stats) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(result.result_code, ResultCode::Succeeded, "{result:?}");
    assert_eq!(stats.part_retries, 3);
    assert!(w.dest_body().await == w.body);

    // A part that keeps failing: TemporaryFailure, the good parts kept, then a clean retry.
    w.dest
        .delete_object()
        .bucket(DEST_BUCKET)
        .key(DEST_KEY)
        .send()
        .await
        .unwrap();
    let api = faulty(w.api().await, vec![(2, vec![unavailable(); 4])]);
    let (result, _) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(
        result.result_code,
        ResultCode::TemporaryFailure,
        "{result:?}"
    );
    // Parts 1 and 2 were in flight (parallelism 2); part 3 is never started after a failure.
    assert!(
        result.result_string.contains("kept 1 of 3 parts"),
        "{}",
        result.result_string
    );
    assert!(
        w.dest
            .head_object()
            .bucket(DEST_BUCKET)
            .key(DEST_KEY)
            .send()
            .await
            .is_err(),
        "no partial object"
    );
    let (result, stats) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(result.result_code, ResultCode::Succeeded, "{result:?}");
    assert_eq!((stats.parts_reused, stats.parts_copied), (1, 2));
    assert!(w.dest_body().await == w.body);
    assert_eq!(w.open_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_say_who_must_fix_what_and_leave_no_upload() {
    let w = world().await;
    let ctx = CopyContext {
        role_arn: ROLE.into(),
        arguments: w.arguments(),
        tuning: tuning(),
    };

    let denied = err(
        AwsErrorKind::AccessDenied,
        "AccessDenied",
        &format!("User: arn:aws:sts::222222222222:assumed-role/ferry-media-batch/x is not authorized to perform: kms:Decrypt on resource: {}", w.source_key_arn),
    );
    let api = faulty(w.api().await, vec![(2, vec![denied])]);
    let (result, stats) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(result.result_code, ResultCode::PermanentFailure);
    let text = &result.result_string;
    assert!(
        text.contains("KMS refused") && text.contains("source account 111111111111"),
        "{text}"
    );
    assert!(
        text.contains(&w.source_key_arn) && text.contains(ROLE),
        "{text}"
    );
    assert_eq!(stats.aborted.len(), 1);
    assert_eq!(
        w.open_uploads().await,
        0,
        "a permanent failure aborts its upload"
    );

    let mut missing = task();
    missing.key = "masters/gone.mov".into();
    let (result, _) = copy_task(&w.api().await, &plenty(), &ctx, &missing).await;
    assert_eq!(result.result_code, ResultCode::PermanentFailure);
    assert!(
        result.result_string.contains("no such object"),
        "{}",
        result.result_string
    );

    let mut api = faulty(w.api().await, vec![]);
    api.archived_head = true;
    let (result, _) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(result.result_code, ResultCode::PermanentFailure);
    assert!(
        result.result_string.contains("archived (DEEP_ARCHIVE)"),
        "{}",
        result.result_string
    );
    assert_eq!(w.open_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_upload_of_older_content_is_aborted_not_resumed() {
    let w = world().await;
    let api = faulty(w.api().await, vec![]);
    let ctx = CopyContext {
        role_arn: ROLE.into(),
        arguments: w.arguments(),
        tuning: CopyTuning {
            parallelism: 1,
            ..tuning()
        },
    };
    let (first, _) = copy_task(&api, &CountdownClock(AtomicU32::new(1)), &ctx, &task()).await;
    assert_eq!(first.result_code, ResultCode::TemporaryFailure);
    // The source is overwritten (moto's timestamps have second resolution).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_body: Vec<u8> = w.body.iter().map(|b| b.wrapping_add(1)).collect();
    w.source
        .put_object()
        .bucket(SOURCE_BUCKET)
        .key(KEY)
        .body(ByteStream::from(new_body.clone()))
        .send()
        .await
        .unwrap();
    let (second, stats) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(second.result_code, ResultCode::Succeeded, "{second:?}");
    assert_eq!(stats.parts_reused, 0);
    assert_eq!(stats.aborted.len(), 1);
    assert!(
        w.dest_body().await == new_body,
        "no part of the old content in the copy"
    );
    assert_eq!(w.open_uploads().await, 0);
}

/// A source bucket in another Region than the function: source reads go to a client of that
/// Region (the Rust SDK doesn't follow S3's redirect), uploads to one of the function's.
#[tokio::test]
async fn source_reads_use_a_client_of_the_source_region() {
    let w = world().await;
    let base = w.copier_config.clone();
    let region_of = |c: &aws_sdk_s3::Client| c.config().region().map(|r| r.to_string());
    let api = StsCopierPorts::new(base.clone(), true)
        .with_source_region(Some("eu-central-1".to_string()))
        .act_as(ROLE, "ferry-copy-test")
        .await
        .expect("assume the batch role");
    assert_eq!(region_of(&api.source_s3).as_deref(), Some("eu-central-1"));
    assert_eq!(region_of(&api.s3).as_deref(), Some(REGION));
    // Same Region, or none pinned: one client.
    for pinned in [Some(REGION.to_string()), None] {
        let api = StsCopierPorts::new(base.clone(), true)
            .with_source_region(pinned)
            .act_as(ROLE, "ferry-copy-test")
            .await
            .unwrap();
        assert_eq!(region_of(&api.source_s3).as_deref(), Some(REGION));
    }
}

/// moto keeps object tags per account, so a cross-account GetObjectTagging sees none there;
/// tag copying is proven inside one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_tags_are_copied() {
    let w = world().await;
    let bucket = "acme-media-same-account";
    w.dest.create_bucket().bucket(bucket).send().await.unwrap();
    w.dest
        .put_object()
        .bucket(bucket)
        .key(KEY)
        .body(ByteStream::from(w.body.clone()))
        .tagging("team=media&tier=gold")
        .send()
        .await
        .unwrap();
    // This transfer's grants: the same role, reading a bucket of its own account.
    let mut same_account = spec(&w.source_key_arn, &w.dest_key_arn, &w.copier_role_arn);
    same_account.source.account_id = DEST_ACCOUNT.into();
    same_account.source.bucket = bucket.into();
    same_account.source.kms_key_arn = None;
    PlanGrants::all()
        .apply(&w.moto, &Plan::build(&same_account).unwrap(), REGION)
        .await;
    let mut arguments = w.arguments();
    arguments.source_account = DEST_ACCOUNT.into();
    let ctx = CopyContext {
        role_arn: ROLE.into(),
        arguments,
        tuning: tuning(),
    };
    let task = CopyTask {
        bucket: bucket.into(),
        ..task()
    };
    let (result, _) = copy_task(&w.api().await, &plenty(), &ctx, &task).await;
    assert_eq!(result.result_code, ResultCode::Succeeded, "{result:?}");
    let tags = w
        .dest
        .get_object_tagging()
        .bucket(DEST_BUCKET)
        .key(DEST_KEY)
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<_, _> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("team".into(), "media".into()),
            ("tier".into(), "gold".into())
        ])
    );
    assert!(w.dest_body().await == w.body);
}

/// Every statement of the plan the copier relies on is needed: with it left out of the role's
/// policy, or out of the bucket or key policy, the copy fails (the authorizing gateway denies
/// as AWS would), leaves no upload behind, and the result names what to fix. Each statement is
/// removed alone, then all grants are put back and the copy succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_grant_the_copy_uses_is_needed_and_its_absence_is_named() {
    let w = world().await;
    assert!(
        w.moto.authorizes(),
        "this test proves authorization: it needs the gateway (unset FERRY_GATEWAY)"
    );
    let plan = plan(&w.source_key_arn, &w.dest_key_arn, &w.copier_role_arn);
    let ctx = CopyContext {
        role_arn: ROLE.into(),
        arguments: w.arguments(),
        tuning: tuning(),
    };
    let source_read = "s3://acme-media-prod/*";
    let source_key = w.source_key_arn.as_str();
    let alone = |layer, sid: &str| {
        (
            PlanGrants::without(layer, sid),
            format!("{sid} ({layer:?})"),
        )
    };
    // The destination key is the role's own account's: its key policy naming the role, or its
    // default statement delegating to the role's policy, each suffice (as in AWS), so only
    // both gone fails the copy.
    let dest_key = "FerryMediaEncryptDestinationObjects";
    let both = PlanGrants {
        left_out_of_role: vec![dest_key.into()],
        left_out_of_resources: vec![dest_key.into()],
    };
    let cases = [
        (
            alone(Layer::Role, "FerryMediaReadSourceObjects"),
            source_read,
        ),
        (
            alone(Layer::ResourcePolicy, "FerryMediaReadSourceObjects"),
            source_read,
        ),
        (
            alone(Layer::Role, "FerryMediaDecryptSourceObjects"),
            source_key,
        ),
        (
            alone(Layer::ResourcePolicy, "FerryMediaDecryptSourceObjects"),
            source_key,
        ),
        (
            alone(Layer::Role, "FerryMediaWriteDestinationObjects"),
            "s3://acme-media-archive/from-prod/*",
        ),
        (
            alone(Layer::Role, "FerryMediaListDestinationUploads"),
            "s3:ListBucketMultipartUploads",
        ),
        (
            (both, format!("{dest_key} (both layers)")),
            w.dest_key_arn.as_str(),
        ),
    ];
    for ((grants, what), named) in cases {
        grants.apply(&w.moto, &plan, REGION).await;
        let (result, _) = copy_task(&w.api().await, &plenty(), &ctx, &task()).await;
        assert_eq!(
            result.result_code,
            ResultCode::PermanentFailure,
            "{what} left out: {result:?}"
        );
        assert!(
            result.result_string.contains(named),
            "{what} left out: the result should name {named}: {}",
            result.result_string
        );
        assert_eq!(w.open_uploads().await, 0, "{what}: an upload left open");
    }
    assert!(
        !w.moto.denials().is_empty(),
        "the gateway recorded the denials"
    );
    // The copier's own role may assume the batch role only because its trust policy names it.
    let trust = "FerryMediaLargeObjectCopierAssumeRole";
    PlanGrants::without(Layer::Role, trust)
        .apply(&w.moto, &plan, REGION)
        .await;
    let refused = StsCopierPorts::new(w.copier_config.clone(), true)
        .act_as(ROLE, "ferry-copy-test")
        .await
        .err()
        .unwrap_or_else(|| panic!("{trust} left out of the trust policy: AssumeRole allowed"));
    assert_eq!(refused.kind, AwsErrorKind::AccessDenied, "{refused:?}");
    assert!(
        refused.message.contains("trust policy"),
        "{}",
        refused.message
    );
    PlanGrants::all().apply(&w.moto, &plan, REGION).await;
    // Each layer alone is enough for the destination key.
    for layer in [Layer::Role, Layer::ResourcePolicy] {
        PlanGrants::without(layer, dest_key)
            .apply(&w.moto, &plan, REGION)
            .await;
        let (result, _) = copy_task(&w.api().await, &plenty(), &ctx, &task()).await;
        assert_eq!(
            result.result_code,
            ResultCode::Succeeded,
            "{layer:?}: {result:?}"
        );
    }
    PlanGrants::all().apply(&w.moto, &plan, REGION).await;
    let (result, _) = copy_task(&w.api().await, &plenty(), &ctx, &task()).await;
    assert_eq!(result.result_code, ResultCode::Succeeded, "{result:?}");
    assert!(w.dest_body().await == w.body);
}
