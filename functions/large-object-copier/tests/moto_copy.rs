//! large-object-copier against moto with real multipart uploads: two accounts, KMS on both
//! sides, the events/ fixtures, resume across invocations, and faults on some parts. Parts are
//! scaled down to S3's 5 MiB minimum, so a "large" object is 12 MiB here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use ferry_aws::large_copy::AwsMultipartCopy;
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::large_object::copy::{
    copy_task, CompleteUpload, CompletedObject, CopyClock, CopyContext, CopyTuning,
    DestinationObject, MultipartCopyApi, NewUpload, PartCopy, SourceObject,
};
use ferry_flows::large_object::parts::{CopiedPart, PartSizing, UploadSummary, MIB};
use ferry_flows::large_object::pins::CopierPins;
use ferry_flows::large_object::resume::SessionIdentity;
use ferry_flows::large_object::task::{CopyTask, ResultCode};
use ferry_plan::job::{large_object_job_request, CreateJobRequest, JobOperation};
use ferry_plan::large_object_arguments::LargeObjectCopyArguments;
use ferry_plan::stack::TransferPlanProperties;
use ferry_plan::{Plan, TransferSpec};
use ferry_testkit::s3control::publish_job;
use ferry_testkit::stack::transfer_plan_properties;
use ferry_testkit::{
    kms_key, s3_client, s3control_client, FunctionRole, Layer, MotoServer, PlanGrants,
};
use lambda_runtime::{Context, LambdaEvent};
use large_object_copier::{CopierPorts, LargeObjectCopier, StsCopierPorts};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const SOURCE_ACCOUNT: &str = "111111111111";
const DEST_ACCOUNT: &str = "222222222222";
const SOURCE_BUCKET: &str = "acme-media-prod";
const DEST_BUCKET: &str = "acme-media-archive";
/// The destination account's bucket holding the manifests (the batch role reads it).
const OPS_BUCKET: &str = "acme-media-ops";
/// The large-object manifest the stack's jobs run over: Ferry's CSV form, listing `KEY` only.
const MANIFEST_KEY: &str = "ferry/large.csv";
const KEY: &str = "masters/film reel 1+final.mov";
const DEST_KEY: &str = "from-prod/masters/film reel 1+final.mov";
const ROLE: &str = "arn:aws:iam::222222222222:role/ferry-media-batch";
/// The copier as the template names it (`<stack>-large-object-copier`, testkit's stack name).
const FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:222222222222:function:ferry-e2e-large-object-copier";
const SIZE: usize = 12 * 1024 * 1024 + 3;

struct World {
    moto: MotoServer,
    /// A session of the copier's own execution role, as the template makes it (Lambda's
    /// credentials): the copier assumes the batch role from it.
    copier_config: aws_config::SdkConfig,
    copier_role_arn: String,
    /// The copier's environment as the template sets it for this stack's parameters.
    copier_env: Value,
    source: aws_sdk_s3::Client,
    dest: aws_sdk_s3::Client,
    /// S3 Control as the destination account's administrator (who may pass the batch role).
    jobs: aws_sdk_s3control::Client,
    dest_key_arn: String,
    source_key_arn: String,
    body: Vec<u8>,
    /// The ETag of the stack's large-object manifest (`OPS_BUCKET`/`MANIFEST_KEY`), which the
    /// jobs are created with.
    manifest_etag: String,
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
        &stack_parameters(&dest_key_arn),
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
    dest.create_bucket()
        .bucket(OPS_BUCKET)
        .send()
        .await
        .expect("ops bucket");
    let manifest = put_manifest(&dest, &[KEY]).await;
    World {
        jobs: s3control_client(&dest_config).0,
        moto,
        copier_config: copier_role.config.clone(),
        copier_role_arn: copier_role.role_arn.clone(),
        copier_env: copier_role.environment.clone(),
        source,
        dest,
        dest_key_arn,
        source_key_arn,
        body,
        manifest_etag: manifest,
    }
}

/// Writes the large-object manifest listing `keys` of the source bucket as Ferry writes it
/// (`CsvManifestWriter`: `Bucket,Key`, keys URL-encoded); returns its ETag without quotes.
async fn put_manifest(dest: &aws_sdk_s3::Client, keys: &[&str]) -> String {
    let mut writer = ferry_listings::manifest::CsvManifestWriter::new(Vec::new(), false);
    for key in keys {
        writer.write(SOURCE_BUCKET, key, None).expect("a row");
    }
    let (bytes, _) = writer.finish().expect("written");
    let out = dest
        .put_object()
        .bucket(OPS_BUCKET)
        .key(MANIFEST_KEY)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .expect("manifest");
    out.e_tag().expect("an ETag").trim_matches('"').to_string()
}

/// The stack's parameters for the transfer these tests copy for (the fixture's settings).
fn stack_parameters(dest_key_arn: &str) -> Value {
    json!({
        "TransferName": "media", "SourceAccountId": SOURCE_ACCOUNT, "SourceRegion": REGION,
        "SourceBucket": SOURCE_BUCKET, "DestinationBucket": DEST_BUCKET,
        "DestinationKmsKeyArn": dest_key_arn, "BucketKeyEnabled": "true",
        "StorageClass": "STANDARD_IA", "DestinationKeyPrefix": "from-prod/",
        "ManifestKind": "csv", "ManifestBucket": OPS_BUCKET, "ManifestKey": "ferry/large.csv",
        "ReportBucket": OPS_BUCKET, "ReportPrefix": "ferry/reports",
        "NotificationEmail": "storage-team@example.com"
    })
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
large_object_copier_arn = "{FUNCTION_ARN}"
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
    /// The copier as deployed: configured from the template's environment for this stack.
    fn copier(&self) -> LargeObjectCopier<StsCopierPorts> {
        let ports = StsCopierPorts::new(self.copier_config.clone(), true)
            .with_s3control(s3control_client(&self.copier_config).0);
        let env = self.copier_env.clone();
        let mut copier =
            LargeObjectCopier::from_vars(ports, |k| env[k].as_str().map(str::to_string))
                .unwrap_or_else(|e| panic!("the template's environment: {e}"));
        copier.tuning = tuning();
        copier
    }

    fn spec(&self) -> TransferSpec {
        spec(
            &self.source_key_arn,
            &self.dest_key_arn,
            &self.copier_role_arn,
        )
    }

    /// The stack's large-object job as Ferry's launcher creates it (ferry-plan
    /// `job::large_object_job_request`), to be changed by `change` before it is created.
    fn job_request(
        &self,
        label: &str,
        change: impl FnOnce(&mut CreateJobRequest),
    ) -> CreateJobRequest {
        let fingerprint = format!("plan-{label}");
        let mut request = large_object_job_request(&self.spec(), &fingerprint, FUNCTION_ARN)
            .expect("arguments fit")
            .with_csv_manifest(&format!("arn:aws:s3:::{OPS_BUCKET}/{MANIFEST_KEY}"), false)
            .for_manifest_etag(&fingerprint, &self.manifest_etag)
            .expect("an ETag");
        change(&mut request);
        request
    }

    /// Creates the job through S3 Control (the gateway's job table) as the destination
    /// account's administrator, and sets it to `status`. Returns its id.
    async fn create_job(&self, request: &CreateJobRequest, status: &str) -> String {
        let out = ferry_aws::create_job::fill(self.jobs.create_job(), request)
            .expect("a complete request")
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateJob: {e:?}"));
        let id = out.job_id().expect("a job id").to_string();
        assert!(
            publish_job(
                &self.moto,
                DEST_ACCOUNT,
                REGION,
                &id,
                &json!({"status": status})
            )
            .await,
            "the gateway's job table has {id}"
        );
        id
    }

    /// The stack's own large-object job, running.
    async fn stack_job(&self, label: &str) -> (String, BTreeMap<String, String>) {
        let request = self.job_request(label, |_| {});
        let id = self.create_job(&request, "Active").await;
        (id, user_arguments(&request))
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

    /// The fixture's event for job `job_id` carrying `user_arguments`.
    fn event(&self, job_id: &str, user_arguments: &BTreeMap<String, String>) -> Value {
        let mut event = self.fixture("large-object-copier.json");
        event["job"]["id"] = json!(job_id);
        event["job"]["userArguments"] = json!(user_arguments);
        event
    }

    fn arguments(&self) -> LargeObjectCopyArguments {
        let fixture = self.fixture("large-object-copier.json");
        let args: BTreeMap<String, String> =
            serde_json::from_value(fixture["job"]["userArguments"].clone()).unwrap();
        LargeObjectCopyArguments::from_user_arguments(&args).unwrap()
    }

    /// An S3 API acting as the batch role (session `ferry-copy-test`), and that session.
    async fn api(&self) -> (AwsMultipartCopy, SessionIdentity) {
        let base = self.copier_config.clone();
        StsCopierPorts::new(base, true)
            .act_as(ROLE, "ferry-copy-test")
            .await
            .expect("assume the batch role")
    }

    fn context(&self, session: SessionIdentity, tuning: CopyTuning) -> CopyContext {
        CopyContext {
            role_arn: ROLE.into(),
            session,
            arguments: self.arguments(),
            tuning,
        }
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

    async fn dest_head(&self) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.dest
            .head_object()
            .bucket(DEST_BUCKET)
            .key(DEST_KEY)
            .send()
            .await
            .expect("copy exists")
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

    /// Every key in the destination bucket.
    async fn dest_keys(&self) -> Vec<String> {
        let out = self
            .dest
            .list_objects_v2()
            .bucket(DEST_BUCKET)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// The attacker of #15: a principal of the destination account with broad rights
    /// (PowerUser-like: lambda:InvokeFunction, s3:*, sns:*, cloudformation:Describe*) but no
    /// iam:PassRole. Returns its SDK config and ARN.
    async fn attacker(&self) -> (aws_config::SdkConfig, String) {
        let admin = self.moto.sdk_config_for_account(DEST_ACCOUNT, REGION).await;
        let iam = aws_sdk_iam::Client::new(&admin);
        let user = iam
            .create_user()
            .user_name("mallory")
            .send()
            .await
            .expect("user");
        let arn = user.user().map(|u| u.arn().to_string()).expect("user ARN");
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["lambda:InvokeFunction", "s3:*", "sns:*", "cloudformation:Describe*"],
            "Resource": "*"}]});
        iam.put_user_policy()
            .user_name("mallory")
            .policy_name("power-user-like")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("policy");
        let key = iam
            .create_access_key()
            .user_name("mallory")
            .send()
            .await
            .expect("access key");
        let key = key.access_key().expect("key");
        let credentials = aws_sdk_s3::config::Credentials::new(
            key.access_key_id(),
            key.secret_access_key(),
            None,
            None,
            "attacker",
        );
        (self.moto.sdk_config_with(credentials, REGION).await, arn)
    }

    /// The attacker invokes the copier with `payload` (lambda:Invoke through the gateway, which
    /// authorizes it as IAM would); the handler then runs on what Lambda would deliver.
    async fn invoke_as(&self, attacker: &aws_config::SdkConfig, payload: &Value) -> Value {
        self.invoke_with(&self.copier(), attacker, payload).await
    }

    /// [`Self::invoke_as`] run by `copier` (one execution environment across invocations).
    async fn invoke_with(
        &self,
        copier: &LargeObjectCopier<StsCopierPorts>,
        attacker: &aws_config::SdkConfig,
        payload: &Value,
    ) -> Value {
        let before = ferry_testkit::lambda::invocations(&self.moto).await.len();
        aws_sdk_lambda::Client::new(attacker)
            .invoke()
            .function_name(FUNCTION_ARN)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .expect("the attacker may invoke the copier (lambda:InvokeFunction, same account)");
        let invocations = ferry_testkit::lambda::invocations(&self.moto).await;
        assert_eq!(invocations.len(), before + 1, "one invocation");
        let delivered = invocations[before]["payload"].clone();
        assert_eq!(&delivered, payload);
        copier
            .handle(LambdaEvent::new(delivered, Context::default()))
            .await
            .expect("answers")
    }

    /// The answer refuses the task permanently naming each of `named`, nothing was written to
    /// the destination, and nothing was done as the batch role since `mark` (gateway decisions).
    async fn assert_refused(&self, out: &Value, named: &[&str], mark: usize, case: &str) {
        let result = &out["results"][0];
        assert_eq!(result["resultCode"], "PermanentFailure", "{case}: {result}");
        let text = result["resultString"].as_str().unwrap_or_default();
        for name in named {
            assert!(
                text.contains(name),
                "{case}: the refusal should name {name}: {text}"
            );
        }
        assert_eq!(
            self.dest_keys().await,
            Vec::<String>::new(),
            "{case}: written"
        );
        assert_eq!(
            self.open_uploads().await,
            0,
            "{case}: an upload was started"
        );
        let acted: Vec<_> = self.moto.decisions()[mark..]
            .iter()
            .filter(|d| {
                d.principal.contains(":assumed-role/ferry-media-batch/")
                    || (d.action == "sts:AssumeRole" && d.resource == ROLE)
            })
            .map(|d| format!("{} {} {}", d.principal, d.action, d.resource))
            .collect();
        assert!(
            acted.is_empty(),
            "{case}: acted as the batch role: {acted:?}"
        );
    }
}

/// The job's `UserArguments`.
fn user_arguments(request: &CreateJobRequest) -> BTreeMap<String, String> {
    match &request.operation {
        JobOperation::LambdaInvoke(op) => op.user_arguments.clone(),
        JobOperation::S3PutObjectCopy(_) => BTreeMap::new(),
    }
}

/// Changes the LambdaInvoke job's `UserArguments`.
fn set_argument(request: &mut CreateJobRequest, key: &str, value: Option<&str>) {
    if let JobOperation::LambdaInvoke(op) = &mut request.operation {
        match value {
            Some(v) => op.user_arguments.insert(key.to_string(), v.to_string()),
            None => op.user_arguments.remove(key),
        };
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
    assert!(
        w.moto.authorizes(),
        "the copier looks its job up in the gateway's job table"
    );
    let (job_id, job_arguments) = w.stack_job("fixture").await;
    let mut event = w.fixture("large-object-copier.json");
    // The fixture's arguments are exactly what Ferry's launcher gives the stack's job.
    let fixture_arguments: BTreeMap<String, String> =
        serde_json::from_value(event["job"]["userArguments"].clone()).unwrap();
    assert_eq!(fixture_arguments, job_arguments);
    event["job"]["id"] = json!(job_id);
    let copier = w.copier();
    let out = copier
        .handle(LambdaEvent::new(event, Context::default()))
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
    let head = w.dest_head().await;
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

/// A schema 1.0 job carries no UserArguments: the copier copies with the pinned settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_one_copies_with_the_pinned_settings() {
    let w = world().await;
    assert!(
        w.moto.authorizes(),
        "the copier looks its job up in the gateway's job table"
    );
    let request = w.job_request("schema-1", |r| {
        if let JobOperation::LambdaInvoke(op) = &mut r.operation {
            op.invocation_schema_version = "1.0".into();
            op.user_arguments.clear();
        }
    });
    let job_id = w.create_job(&request, "Active").await;
    let mut event = w.fixture("large-object-copier-schema-1.0.json");
    event["job"]["id"] = json!(job_id);
    let out = w
        .copier()
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(out["invocationSchemaVersion"], "1.0");
    assert_eq!(out["results"][0]["resultCode"], "Succeeded", "{out}");
    assert!(w.dest_body().await == w.body);
    let head = w.dest_head().await;
    assert_eq!(head.ssekms_key_id(), Some(w.dest_key_arn.as_str()));
    assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_mid_copy_resumes_from_the_listed_parts() {
    let w = world().await;
    let (api, session) = w.api().await;
    let api = faulty(api, &session, vec![]);
    let ctx = w.context(
        session,
        CopyTuning {
            parallelism: 1,
            ..tuning()
        },
    );
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

/// Injects errors into chosen calls of a real adapter. It also stands in for what moto answers
/// wrongly in ListMultipartUploads: S3's `Initiated` time (moto: a fixed date in 2010; the real
/// time of each CreateMultipartUpload is kept) and `Initiator` (moto: one fixed IAM user for
/// every upload; S3 names who created it: the session this adapter acts as for its own uploads,
/// the planter for an upload made by someone else, see [`Faulty::planted`]). And for ListParts,
/// whose response moto 5.2 roots at `ListPartsResponse` (S3: `ListPartsResult`, so the SDK
/// can't read it), it answers the parts moto accepted, as S3 would list them.
struct Faulty<A> {
    inner: A,
    /// The session the adapter acts as: the initiator of the uploads it creates.
    me: String,
    created: Mutex<BTreeMap<String, i64>>,
    initiators: Mutex<BTreeMap<String, String>>,
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
        let initiators = self.initiators.lock().unwrap();
        for u in &mut uploads {
            u.initiated_ms = created.get(&u.upload_id).copied();
            if let Some(who) = initiators.get(&u.upload_id) {
                u.initiator_id = Some(who.clone());
            }
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
        self.initiators
            .lock()
            .unwrap()
            .insert(id.clone(), self.me.clone());
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

impl<A> Faulty<A> {
    /// An upload someone else created on the key, listed as S3 would list it: initiated now,
    /// by `initiator`, with `parts`.
    fn planted(&self, upload_id: &str, initiator: &str, parts: Vec<CopiedPart>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        self.created
            .lock()
            .unwrap()
            .insert(upload_id.to_string(), now);
        self.initiators
            .lock()
            .unwrap()
            .insert(upload_id.to_string(), initiator.to_string());
        self.parts.lock().unwrap().insert(
            upload_id.to_string(),
            parts.into_iter().map(|p| (p.part_number, p)).collect(),
        );
    }
}

fn faulty(
    api: AwsMultipartCopy,
    session: &SessionIdentity,
    faults: Vec<(u32, Vec<AwsCallError>)>,
) -> Faulty<AwsMultipartCopy> {
    Faulty {
        inner: api,
        me: session.arn.clone(),
        created: Mutex::default(),
        initiators: Mutex::default(),
        parts: Mutex::default(),
        part_faults: Mutex::new(faults.into_iter().collect()),
        archived_head: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_on_some_parts_end_in_a_correct_copy_or_a_temporary_failure() {
    let w = world().await;
    let (_, session) = w.api().await;
    let ctx = w.context(session, tuning());
    let slow = || {
        err(
            AwsErrorKind::Throttled,
            "SlowDown",
            "Please reduce your request rate.",
        )
    };
    let unavailable = || err(AwsErrorKind::Transient, "ServiceUnavailable", "503");

    // A few faults: retried within the invocation, the copy is exact.
    let (api, session) = w.api().await;
    let api = faulty(
        api,
        &session,
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
    let (api, session) = w.api().await;
    let api = faulty(api, &session, vec![(2, vec![unavailable(); 4])]);
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
    let (_, session) = w.api().await;
    let ctx = w.context(session, tuning());

    let denied = err(
        AwsErrorKind::AccessDenied,
        "AccessDenied",
        &format!("User: arn:aws:sts::222222222222:assumed-role/ferry-media-batch/x is not authorized to perform: kms:Decrypt on resource: {}", w.source_key_arn),
    );
    let (api, session) = w.api().await;
    let api = faulty(api, &session, vec![(2, vec![denied])]);
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
    let (result, _) = copy_task(&w.api().await.0, &plenty(), &ctx, &missing).await;
    assert_eq!(result.result_code, ResultCode::PermanentFailure);
    assert!(
        result.result_string.contains("no such object"),
        "{}",
        result.result_string
    );

    let (api, session) = w.api().await;
    let mut api = faulty(api, &session, vec![]);
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
    let (api, session) = w.api().await;
    let api = faulty(api, &session, vec![]);
    let ctx = w.context(
        session,
        CopyTuning {
            parallelism: 1,
            ..tuning()
        },
    );
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
    let (api, session) = StsCopierPorts::new(base.clone(), true)
        .with_source_region(Some("eu-central-1".to_string()))
        .act_as(ROLE, "ferry-copy-test")
        .await
        .expect("assume the batch role");
    // Who S3 names as the initiator of this session's uploads, as STS named the session.
    assert_eq!(
        session.arn,
        "arn:aws:sts::222222222222:assumed-role/ferry-media-batch/ferry-copy-test"
    );
    assert!(
        session
            .assumed_role_id
            .as_deref()
            .is_some_and(|id| id.ends_with(":ferry-copy-test")),
        "{session:?}"
    );
    assert_eq!(region_of(&api.source_s3).as_deref(), Some("eu-central-1"));
    assert_eq!(region_of(&api.s3).as_deref(), Some(REGION));
    // Same Region, or none pinned: one client.
    for pinned in [Some(REGION.to_string()), None] {
        let (api, _) = StsCopierPorts::new(base.clone(), true)
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
    let (api, session) = w.api().await;
    let mut ctx = w.context(session, tuning());
    ctx.arguments.source_account = DEST_ACCOUNT.into();
    let task = CopyTask {
        bucket: bucket.into(),
        ..task()
    };
    let (result, _) = copy_task(&api, &plenty(), &ctx, &task).await;
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
    let (_, session) = w.api().await;
    let ctx = w.context(session, tuning());
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
        let (result, _) = copy_task(&w.api().await.0, &plenty(), &ctx, &task()).await;
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
        let (result, _) = copy_task(&w.api().await.0, &plenty(), &ctx, &task()).await;
        assert_eq!(
            result.result_code,
            ResultCode::Succeeded,
            "{layer:?}: {result:?}"
        );
    }
    PlanGrants::all().apply(&w.moto, &plan, REGION).await;
    let (result, _) = copy_task(&w.api().await.0, &plenty(), &ctx, &task()).await;
    assert_eq!(result.result_code, ResultCode::Succeeded, "{result:?}");
    assert!(w.dest_body().await == w.body);
}

// ---------------------------------------------------------------- #15 item 6: the copier
// trusts nothing in its payload. The attacker is a principal of the destination account with
// broad rights but no iam:PassRole ([`World::attacker`]); it invokes the copier through the
// gateway, and the handler runs on what Lambda delivers.

/// The template pins what the copies are, and those pins are exactly the arguments Ferry's
/// launcher gives the stack's large-object job: a job of the stack is never refused by them.
#[test]
fn the_templates_pins_are_the_arguments_the_stack_gives_its_job() {
    let key = "arn:aws:kms:us-east-1:222222222222:key/22222222-2222-2222-2222-222222222222";
    let sets = [
        stack_parameters(key),
        {
            let mut p = stack_parameters(key);
            p["DestinationKmsKeyArn"] = json!("");
            p["BucketKeyEnabled"] = json!("false");
            p["StorageClass"] = json!("");
            p["DestinationKeyPrefix"] = json!("");
            p["ChecksumAlgorithm"] = json!("CRC64NVME");
            p["DestinationTags"] = json!("replace");
            p["DestinationNewTags"] = json!("{\"copied-by\": \"ferry\", \"team\": \"media\"}");
            p
        },
        {
            let mut p = stack_parameters(key);
            p["DestinationTags"] = json!("remove");
            p["DestinationKeyPrefix"] = json!("archive/2026/");
            p
        },
    ];
    for (i, parameters) in sets.iter().enumerate() {
        // The copier's environment for this parameter set, as the template resolves it.
        let env = template_environment(parameters);
        let pins = CopierPins::from_vars(|k| env[k].as_str().map(str::to_string))
            .unwrap_or_else(|e| panic!("set {i}: {e:?}"));
        let mut properties = transfer_plan_properties(DEST_ACCOUNT, REGION, parameters);
        properties["LargeObjectCopierArn"] = json!(FUNCTION_ARN);
        let plan = TransferPlanProperties::from_properties(&properties)
            .unwrap_or_else(|e| panic!("set {i}: {e}"));
        assert_eq!(
            pins.arguments,
            LargeObjectCopyArguments::from_spec(&plan.spec),
            "set {i}: the copier's pins and the stack's job arguments differ"
        );
        assert_eq!(pins.source_bucket, plan.spec.source.bucket);
        assert_eq!(pins.function_arn, FUNCTION_ARN);
        assert_eq!(pins.transfer_name, plan.spec.name);
        // And the job the launcher creates from that plan passes the pins.
        let request = large_object_job_request(&plan.spec, "fp", FUNCTION_ARN).expect("fits");
        let args = LargeObjectCopyArguments::from_user_arguments(&user_arguments(&request))
            .expect("reads back");
        assert_eq!(pins.check_arguments(&args), Ok(()), "set {i}");
    }
}

/// Pinning adds variables, and Lambda allows 4 KB for all of a function's variables together
/// (Lambda Developer Guide, "Lambda quotas"): at the longest values the template's parameters
/// allow (their `MaxLength`: key prefix and replacement tags 1,024, buckets 63, transfer name
/// 40), a 44-character stack name and GovCloud ARNs, the copier's still fit, with room for the
/// real physical names CloudFormation gives the state bucket and topics.
#[test]
fn the_copiers_environment_fits_lambdas_4_kb_at_the_longest_parameters() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = "import('./tests/iam/cfn.mjs').then((m) => \
                  console.log(JSON.stringify(m.loadTemplate('template.yaml').Parameters)))";
    let out =
        std::process::Command::new(std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into()))
            .current_dir(&root)
            .args(["-e", script])
            .output()
            .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let declared: Value = serde_json::from_slice(&out.stdout).expect("the template's parameters");
    let max = |name: &str| {
        declared[name]["MaxLength"].as_u64().unwrap_or_else(|| {
            panic!("{name} has no MaxLength: the copier's environment is unbounded")
        }) as usize
    };
    // A folder of exactly MaxLength characters, and a JSON object of as many.
    let prefix_len = max("DestinationKeyPrefix");
    let mut prefix = format!("{}/", "d".repeat(99)).repeat(prefix_len / 100);
    prefix.push_str(&format!("{}/", "e".repeat(prefix_len - prefix.len() - 1)));
    let tags = format!(
        "{{\"k\":\"{}\"}}",
        "v".repeat(max("DestinationNewTags") - 8)
    );
    assert_eq!(
        (prefix.len(), tags.len()),
        (prefix_len, max("DestinationNewTags"))
    );
    assert!(prefix_len <= 1024 && tags.len() <= 1024);
    let parameters = json!({
        "TransferName": "a".repeat(max("TransferName")), "SourceAccountId": SOURCE_ACCOUNT,
        "SourceRegion": "us-gov-west-1",
        "SourceBucket": "b".repeat(max("SourceBucket")), "DestinationBucket": "c".repeat(max("DestinationBucket")),
        "DestinationKmsKeyArn": format!("arn:aws-us-gov:kms:us-gov-west-1:{DEST_ACCOUNT}:key/mrk-{}", "0".repeat(32)),
        "BucketKeyEnabled": "true", "StorageClass": "INTELLIGENT_TIERING",
        "DestinationKeyPrefix": prefix, "ChecksumAlgorithm": "CRC64NVME",
        "DestinationTags": "replace", "DestinationNewTags": tags,
        "ManifestKind": "csv", "ManifestBucket": "m".repeat(63), "ManifestKey": "k",
        "ReportBucket": "r".repeat(63), "ReportPrefix": "p", "NotificationEmail": "a@b.co"
    });
    let env = template_environment_in(&parameters, "us-gov-west-1", &"s".repeat(44));
    let bytes: usize = env
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    // CloudFormation's physical names (bucket ≤ 63, topics with a 13-character suffix) may be
    // longer than the model's fake ones.
    let room_for_physical_names = 3 * 32;
    assert!(
        bytes + room_for_physical_names <= 4096,
        "{bytes} bytes of environment variables: {env}"
    );
}

/// The copier's environment as the template resolves it for `parameters` (the model the
/// function-role proofs use, `tests/iam/function-role.mjs`).
fn template_environment(parameters: &Value) -> Value {
    template_environment_in(parameters, REGION, ferry_testkit::function_role::STACK_NAME)
}

fn template_environment_in(parameters: &Value, region: &str, stack_name: &str) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out =
        std::process::Command::new(std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into()))
            .arg(root.join("tests/iam/function-role.mjs"))
            .args([
                "LargeObjectCopierFunction",
                DEST_ACCOUNT,
                region,
                stack_name,
            ])
            .arg(parameters.to_string())
            .output()
            .expect("node runs tests/iam/function-role.mjs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let role: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    role["environment"].clone()
}

/// Finding 6, first half: with a job of this stack whose settings differ from the stack's
/// (one created before a stack update changed them, or by someone else allowed to pass the
/// role), or with a task for another source bucket (no job argument can vouch for the task's
/// bucket), the attacker's invocation is refused before the copier acts as the batch role, and
/// nothing reaches the destination. The job check passes in every case: only the pin stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_for_another_bucket_or_other_settings_is_refused_by_the_pins() {
    let w = world().await;
    assert!(
        w.moto.authorizes(),
        "this test proves authorization: it needs the gateway"
    );
    let (attacker, _) = w.attacker().await;
    // The attacker's own bucket, for "another destination bucket" (the "another source bucket"
    // case names the destination account's manifest bucket, which the batch role may read).
    let drop_bucket = "mallory-drop";
    s3_client(&attacker)
        .create_bucket()
        .bucket(drop_bucket)
        .send()
        .await
        .expect("the attacker's bucket");
    type Change = fn(&mut CreateJobRequest);
    let cases: [(&str, Change, &[&str]); 9] = [
        (
            "another source bucket",
            |_| {},
            &[
                "task.s3Bucket",
                "\"acme-media-ops\"",
                "\"acme-media-prod\"",
                "FERRY_SOURCE_BUCKET",
            ],
        ),
        (
            "another destination bucket",
            |r| set_argument(r, "destinationBucket", Some("mallory-drop")),
            &[
                "userArguments.destinationBucket = \"mallory-drop\"",
                "\"acme-media-archive\"",
                "FERRY_DESTINATION_BUCKET",
            ],
        ),
        (
            "another prefix",
            |r| set_argument(r, "keyPrefix", Some("public")),
            &[
                "userArguments.keyPrefix = \"public\"",
                "\"from-prod\"",
                "FERRY_DESTINATION_KEY_PREFIX",
            ],
        ),
        (
            "no prefix",
            |r| set_argument(r, "keyPrefix", None),
            &[
                "userArguments.keyPrefix = (none)",
                "FERRY_DESTINATION_KEY_PREFIX",
            ],
        ),
        (
            "another storage class",
            |r| set_argument(r, "storageClass", Some("DEEP_ARCHIVE")),
            &[
                "userArguments.storageClass = \"DEEP_ARCHIVE\"",
                "\"STANDARD_IA\"",
                "FERRY_STORAGE_CLASS",
            ],
        ),
        (
            "no KMS key",
            |r| {
                set_argument(r, "kmsKeyArn", None);
                set_argument(r, "bucketKeyEnabled", None)
            },
            &[
                "userArguments.kmsKeyArn = (none)",
                "FERRY_DESTINATION_KMS_KEY_ARN",
            ],
        ),
        (
            "replaced metadata",
            |r| {
                set_argument(
                    r,
                    "metadata",
                    Some("REPLACE:{\"contentType\":\"text/html\"}"),
                )
            },
            &["userArguments.metadata", "FERRY_DESTINATION_METADATA"],
        ),
        (
            "replaced tags",
            |r| set_argument(r, "tags", Some("REPLACE:{\"access\":\"public\"}")),
            &["userArguments.tags", "access", "FERRY_DESTINATION_TAGS"],
        ),
        (
            "another source account",
            |r| set_argument(r, "sourceAccount", Some("333333333333")),
            &[
                "userArguments.sourceAccount = \"333333333333\"",
                "FERRY_SOURCE_ACCOUNT",
            ],
        ),
    ];
    for (i, (case, change, named)) in cases.into_iter().enumerate() {
        let request = w.job_request(&format!("pins-{i}"), change);
        let job_id = w.create_job(&request, "Active").await;
        let mut payload = w.event(&job_id, &user_arguments(&request));
        if case == "another source bucket" {
            payload["tasks"][0]["s3Bucket"] = json!(OPS_BUCKET);
            payload["tasks"][0]["s3Key"] = json!("ferry/large.csv");
        }
        let mark = w.moto.decisions().len();
        let out = w.invoke_as(&attacker, &payload).await;
        w.assert_refused(&out, named, mark, case).await;
        let dropped = s3_client(&attacker)
            .list_objects_v2()
            .bucket(drop_bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(
            dropped.key_count(),
            Some(0),
            "{case}: copied to the attacker's bucket"
        );
    }
}

/// Finding 6, second half: an invocation whose payload is exactly what the stack's job would
/// send (pinned bucket and settings) but that names a job which is not an active LambdaInvoke
/// job of this function, run as the batch role, tagged for this transfer and created with
/// these arguments, is refused before the copier acts as the batch role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_not_from_this_stacks_job_is_refused() {
    let w = world().await;
    assert!(
        w.moto.authorizes(),
        "this test proves authorization: it needs the gateway"
    );
    let (attacker, attacker_arn) = w.attacker().await;
    // The attacker can't create a job (no iam:PassRole): the gateway refuses it.
    let attempt = ferry_aws::create_job::fill(
        s3control_client(&attacker).0.create_job(),
        &w.job_request("by-the-attacker", |_| {}),
    )
    .unwrap()
    .send()
    .await;
    assert!(attempt.is_err(), "the attacker created a job");
    assert!(
        w.moto
            .denials()
            .iter()
            .any(|d| d.principal == attacker_arn && d.action == "iam:PassRole"),
        "refused for iam:PassRole"
    );

    let stack = w.job_request("genuine", |_| {});
    let args = user_arguments(&stack);
    let other_function = "arn:aws:lambda:us-east-1:222222222222:function:someone-elses";
    let mut jobs: Vec<(&str, String, &[&str])> = vec![
        ("no job id", String::new(), &["names no job"]),
        (
            "a malformed job id",
            "../../jobs?x=1".into(),
            &["not a job id"],
        ),
        (
            "an unknown job",
            "00000000-0000-4000-8000-000000000000".into(),
            &["is not a Batch Operations job of account 222222222222"],
        ),
    ];
    let copy = w.job_request("copy", |r| {
        r.operation = ferry_plan::job::create_job_request(&w.spec(), "plan-copy").operation;
    });
    jobs.push((
        "the stack's Copy job",
        w.create_job(&copy, "Active").await,
        &["S3PutObjectCopy", "not a LambdaInvoke job"],
    ));
    let other = w.job_request("other-function", |r| {
        if let JobOperation::LambdaInvoke(op) = &mut r.operation {
            op.function_arn = other_function.into();
        }
    });
    jobs.push((
        "a job of another function",
        w.create_job(&other, "Active").await,
        &["invokes arn:aws:lambda:us-east-1:222222222222:function:someone-elses"],
    ));
    let role = w.job_request("other-role", |r| {
        r.role_arn = "arn:aws:iam::222222222222:role/someone-elses-batch".into()
    });
    jobs.push((
        "a job of another role",
        w.create_job(&role, "Active").await,
        &[
            "runs as arn:aws:iam::222222222222:role/someone-elses-batch",
            ROLE,
        ],
    ));
    let untagged = w.job_request("untagged", |r| r.tags.clear());
    jobs.push((
        "an untagged job",
        w.create_job(&untagged, "Active").await,
        &["ferry:transfer = (no tag)"],
    ));
    let other_transfer = w.job_request("other-transfer", |r| {
        for t in &mut r.tags {
            if t.key == "ferry:transfer" {
                t.value = "other".into();
            }
        }
    });
    jobs.push((
        "a job of another transfer",
        w.create_job(&other_transfer, "Active").await,
        &["ferry:transfer = \"other\""],
    ));
    let other_args = w.job_request("other-arguments", |r| {
        set_argument(r, "storageClass", Some("GLACIER"))
    });
    jobs.push((
        "a job with other arguments",
        w.create_job(&other_args, "Active").await,
        &["differ from job", "storageClass"],
    ));
    let schema_one = w.job_request("schema-one", |r| {
        if let JobOperation::LambdaInvoke(op) = &mut r.operation {
            op.invocation_schema_version = "1.0".into();
            op.user_arguments.clear();
        }
    });
    jobs.push((
        "a schema 1.0 job",
        w.create_job(&schema_one, "Active").await,
        &["InvocationSchemaVersion \"1.0\""],
    ));
    let finished = w.job_request("finished", |_| {});
    jobs.push((
        "a finished job of the stack",
        w.create_job(&finished, "Complete").await,
        &["is Complete"],
    ));

    for (case, job_id, named) in jobs {
        let payload = w.event(&job_id, &args);
        let mark = w.moto.decisions().len();
        let out = w.invoke_as(&attacker, &payload).await;
        w.assert_refused(&out, named, mark, case).await;
    }

    // A job not yet running: refused for now (Batch Operations would retry), nothing done.
    let early = w.job_request("not-yet", |_| {});
    let early = w.create_job(&early, "Ready").await;
    let mark = w.moto.decisions().len();
    let out = w.invoke_as(&attacker, &w.event(&early, &args)).await;
    assert_eq!(out["results"][0]["resultCode"], "TemporaryFailure", "{out}");
    assert_eq!(w.dest_keys().await, Vec::<String>::new());
    assert!(
        !w.moto.decisions()[mark..]
            .iter()
            .any(|d| d.principal.contains(":assumed-role/ferry-media-batch/")),
        "acted as the batch role for a job not running"
    );

    // The same payload for the stack's running job is copied: the checks above refuse the
    // job, not the payload.
    let genuine = w.create_job(&stack, "Active").await;
    let out = w.invoke_as(&attacker, &w.event(&genuine, &args)).await;
    assert_eq!(out["results"][0]["resultCode"], "Succeeded", "{out}");
    assert!(w.dest_body().await == w.body);
}

/// Finding 6, uploads: an upload the attacker planted on the destination key (its own parts,
/// metadata and encryption) is not the copier's session's: it is neither resumed nor completed
/// nor aborted, and the copy is the source's bytes with the transfer's settings. S3 lists the
/// planted upload as initiated now by the attacker, with its part (the test double reports
/// that, as moto answers neither).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_planted_by_another_principal_is_left_alone_not_resumed() {
    let w = world().await;
    let (attacker, attacker_arn) = w.attacker().await;
    let s3 = s3_client(&attacker);
    let planted = s3
        .create_multipart_upload()
        .bucket(DEST_BUCKET)
        .key(DEST_KEY)
        .content_type("text/html")
        .metadata("planted", "yes")
        .send()
        .await
        .expect("the attacker may write to the destination (s3:*)");
    let planted_id = planted.upload_id().expect("upload id").to_string();
    // The plan's first part, 5 MiB, of the attacker's bytes.
    let part = s3
        .upload_part()
        .bucket(DEST_BUCKET)
        .key(DEST_KEY)
        .upload_id(&planted_id)
        .part_number(1)
        .body(ByteStream::from(vec![b'X'; 5 * 1024 * 1024]))
        .send()
        .await
        .expect("the attacker's part");
    let (api, session) = w.api().await;
    let api = faulty(api, &session, vec![]);
    api.planted(
        &planted_id,
        &attacker_arn,
        vec![CopiedPart {
            part_number: 1,
            etag: part.e_tag().unwrap_or_default().to_string(),
            size: Some(5 * MIB),
            checksum: None,
        }],
    );

    let ctx = w.context(session, tuning());
    let (result, stats) = copy_task(&api, &plenty(), &ctx, &task()).await;
    assert_eq!(result.result_code, ResultCode::Succeeded, "{result:?}");
    assert_eq!(
        stats.parts_reused, 0,
        "nothing of the planted upload is used"
    );
    assert_eq!(stats.foreign, std::slice::from_ref(&planted_id));
    assert!(
        result.result_string.contains(&attacker_arn),
        "the result names the initiator it left alone: {}",
        result.result_string
    );
    assert!(
        w.dest_body().await == w.body,
        "the copy has the attacker's bytes"
    );
    let head = w.dest_head().await;
    assert_eq!(head.content_type(), Some("video/quicktime"));
    assert_eq!(head.metadata().and_then(|m| m.get("planted")), None);
    assert_eq!(head.ssekms_key_id(), Some(w.dest_key_arn.as_str()));
    // Left alone: still open (the lifecycle rule is the backstop), not aborted by the copier.
    let open = w
        .dest
        .list_multipart_uploads()
        .bucket(DEST_BUCKET)
        .send()
        .await
        .unwrap();
    let open: Vec<&str> = open
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(open, [planted_id.as_str()]);
}

/// Finding 6, the objects: the stack's genuine, running job vouches only for the objects its
/// manifest lists. An invocation naming that job and another object of the source bucket (one
/// the spec's filters leave out, say) is refused: the copier reads the job's manifest as the
/// batch role, finds no row for the task and touches neither the object nor the destination;
/// once the rows are known it refuses without acting as the batch role at all. A listed object
/// is still copied. A manifest replaced after the job was created (another ETag) is not the
/// job's: nothing is copied on its say-so, not even an object both versions list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_for_an_object_the_job_does_not_list_is_refused() {
    let w = world().await;
    assert!(
        w.moto.authorizes(),
        "this test proves authorization: it needs the gateway"
    );
    let (attacker, _) = w.attacker().await;
    // Another object of the source bucket the batch role may read, absent from the manifest.
    const UNLISTED: &str = "finance/payroll 2026+q1.mov";
    w.source
        .put_object()
        .bucket(SOURCE_BUCKET)
        .key(UNLISTED)
        .body(ByteStream::from(vec![7u8; 6 * 1024 * 1024]))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&w.source_key_arn)
        .send()
        .await
        .expect("put the unlisted object");
    let (job_id, args) = w.stack_job("unlisted").await;
    let payload = |key: &str, version: Option<&str>| {
        let mut p = w.event(&job_id, &args);
        p["tasks"][0]["s3Key"] = json!(ferry_listings::manifest::encode_key(key));
        p["tasks"][0]["s3VersionId"] = json!(version);
        p
    };
    let manifest_arn = format!("arn:aws:s3:::{OPS_BUCKET}/{MANIFEST_KEY}");
    let unlisted_arn = format!("arn:aws:s3:::{SOURCE_BUCKET}/{UNLISTED}");
    // Whatever the batch role did to the unlisted object or the destination since `mark`.
    let touched = |mark: usize| -> Vec<String> {
        w.moto.decisions()[mark..]
            .iter()
            .filter(|d| d.principal.contains(":assumed-role/ferry-media-batch/"))
            .filter(|d| {
                d.resource.starts_with(&unlisted_arn)
                    || d.resource
                        .starts_with(&format!("arn:aws:s3:::{DEST_BUCKET}"))
            })
            .map(|d| format!("{} {}", d.action, d.resource))
            .collect()
    };
    let named = [
        "\"finance/payroll 2026+q1.mov\"",
        "is not in job",
        job_id.as_str(),
        manifest_arn.as_str(),
    ];

    // One execution environment: the first invocation reads the manifest.
    let copier = w.copier();
    let mark = w.moto.decisions().len();
    let out = w
        .invoke_with(&copier, &attacker, &payload(UNLISTED, None))
        .await;
    let result = &out["results"][0];
    assert_eq!(result["resultCode"], "PermanentFailure", "{result}");
    let text = result["resultString"].as_str().unwrap_or_default();
    for name in named {
        assert!(
            text.contains(name),
            "the refusal should name {name}: {text}"
        );
    }
    assert_eq!(w.dest_keys().await, Vec::<String>::new(), "written");
    assert_eq!(w.open_uploads().await, 0, "an upload was started");
    assert_eq!(touched(mark), Vec::<String>::new(), "acted on the object");
    assert!(
        w.moto.decisions()[mark..]
            .iter()
            .any(|d| d.decision == "Allow"
                && d.principal.contains(":assumed-role/ferry-media-batch/")
                && d.action == "s3:GetObject"
                && d.resource == manifest_arn),
        "the manifest is read as the batch role"
    );

    // The rows are known now: refused before anything is done as the batch role, with a
    // version id too.
    let mark = w.moto.decisions().len();
    let out = w
        .invoke_with(
            &copier,
            &attacker,
            &payload(UNLISTED, Some("3sL4kqtJlcpXroDTDmJ")),
        )
        .await;
    w.assert_refused(&out, &named, mark, "an unlisted object, rows known")
        .await;
    // The listed object with a version the manifest doesn't name is another object.
    let mark = w.moto.decisions().len();
    let out = w
        .invoke_with(
            &copier,
            &attacker,
            &payload(KEY, Some("3sL4kqtJlcpXroDTDmJ")),
        )
        .await;
    w.assert_refused(
        &out,
        &["\"masters/film reel 1+final.mov\"", "is not in job"],
        mark,
        "a version not listed",
    )
    .await;

    // The object the job lists is copied, by the same environment.
    let out = w.invoke_with(&copier, &attacker, &payload(KEY, None)).await;
    assert_eq!(out["results"][0]["resultCode"], "Succeeded", "{out}");
    assert!(w.dest_body().await == w.body);
    w.dest
        .delete_object()
        .bucket(DEST_BUCKET)
        .key(DEST_KEY)
        .send()
        .await
        .expect("clear the destination");

    // The manifest is replaced after the job was created, now listing both: a new execution
    // environment reads it with If-Match the job's ETag and copies nothing.
    let replaced = put_manifest(&w.dest, &[KEY, UNLISTED]).await;
    assert_ne!(replaced, w.manifest_etag);
    for key in [UNLISTED, KEY] {
        let mark = w.moto.decisions().len();
        let out = w
            .invoke_with(&w.copier(), &attacker, &payload(key, None))
            .await;
        let result = &out["results"][0];
        assert_eq!(result["resultCode"], "PermanentFailure", "{key}: {result}");
        let text = result["resultString"].as_str().unwrap_or_default();
        assert!(
            text.contains("is not the one the job was created with")
                && text.contains(&w.manifest_etag)
                && text.contains(&job_id),
            "{key}: {text}"
        );
        assert_eq!(w.dest_keys().await, Vec::<String>::new(), "{key}: written");
        assert_eq!(w.open_uploads().await, 0, "{key}: an upload was started");
        let source_reads: Vec<String> = w.moto.decisions()[mark..]
            .iter()
            .filter(|d| d.principal.contains(":assumed-role/ferry-media-batch/"))
            .filter(|d| {
                d.resource
                    .starts_with(&format!("arn:aws:s3:::{SOURCE_BUCKET}/"))
            })
            .map(|d| format!("{} {}", d.action, d.resource))
            .collect();
        assert_eq!(source_reads, Vec::<String>::new(), "{key}: read the source");
    }
}
