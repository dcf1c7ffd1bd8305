//! Event-driven inventory runs against an in-memory AWS: the fast path on a first inventory,
//! a delta of new and changed objects after the first run's jobs complete, size routing to the
//! LambdaInvoke job, duplicates, out-of-order inventories, failed jobs that don't advance the
//! delta, and 1,000 concurrent duplicate events that launch exactly one job. And the fan-out
//! across functions (#18 part 4): a run too large for one function, its Map items run as the
//! state machine runs them, copies what one function copies and leaves the same next index.

// Shared with ferry-listings' inventory tests: one writer of test inventories.
#[path = "../../ferry-listings/tests/inventory_support/mod.rs"]
mod inventory_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_flows::aws_error::{AwsCallError, AwsCaused, AwsErrorKind, RetryPolicy};
use ferry_flows::inventory::delta::{
    job_finished, job_finished_with, CommitOutcome, FailedTasks, JobFinished, ObjectRef,
    RunJobKind, RunRecord,
};
use ferry_flows::inventory::fanout::{
    diff_step, failed_step, fanout_keys, finish_step, read_fan_out_run, scan_step, FanOutEngine,
    FanOutSettings,
};
use ferry_flows::inventory::run::{
    handle_inventory, InventoryObjects, RunError, RunOutcome, RunSettings, SmallObject,
    MAX_SMALL_OBJECT_BYTES,
};
use ferry_flows::ports::{LaunchApi, ManifestHead};
use ferry_flows::ports::{Notifier, StateStore};
use ferry_flows::report::jobs::{
    JobInfo, JobListing, JobManifestRef, JobsApi, ReportLocation, ReportObjects,
};
use ferry_flows::report::monitor::{
    on_job_status_changed, JobStatusEvent, MonitorContext, MonitorError, MonitorOutcome,
};
use ferry_flows::workflow::StoredPlan;
use ferry_listings::inventory::filter::SkipReason;
use ferry_listings::manifest::decode_key;
use ferry_plan::job::{CreateJobRequest, JobOperation, S3Tag};
use ferry_plan::{Plan, TransferSpec};
use inventory_support::{csv_text, gzip, s3_encode, Obj, GIB};
use sha2::{Digest, Sha256};

const INV_BUCKET: &str = "acme-dr-inventory";
/// The stack's state bucket, where Ferry's inventory-format copy lists go.
const STATE_BUCKET: &str = "ferry-media-sync-state";
const DIR: &str = "inventories/acme-media-prod/ferry-media-sync/";
const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, EncryptionStatus";
const COPIER: &str = "arn:aws:lambda:us-east-1:222222222222:function:ferry-large-object-copier";

#[derive(Default)]
struct MemoryAws {
    /// State bucket objects.
    state: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Inventory bucket objects, by `bucket/key`.
    blobs: Mutex<BTreeMap<String, Vec<u8>>>,
    notes: Mutex<Vec<(String, String)>>,
    /// Every CreateJob request, and the job id per token.
    requests: Mutex<Vec<CreateJobRequest>>,
    jobs: Mutex<BTreeMap<String, String>>,
    next_job: AtomicUsize,
    fail_downloads: Mutex<u32>,
    /// HeadObject of a manifest fails this many times (503) before answering.
    fail_heads: Mutex<u32>,
    /// SNS Publish fails this many times (throttled) before sending.
    fail_notify: Mutex<u32>,
    /// DeleteObject fails (500) for state keys ending so.
    failing_deletes: Mutex<Vec<String>>,
    /// Job id → status, as DescribeJob answers once a job has ended.
    job_status: Mutex<BTreeMap<String, String>>,
    /// Job id → keys of its failed tasks (DescribeJob counts them).
    job_failed: Mutex<BTreeMap<String, Vec<String>>>,
    /// An inventory-bucket object (`bucket/key`, body) written when the next download starts.
    write_on_download: Mutex<Option<(String, Vec<u8>)>>,
    /// A state object (key, body) written when the next download starts.
    state_on_download: Mutex<Option<(String, Vec<u8>)>>,
    /// Every StartExecution: state machine, name, input.
    executions: Mutex<Vec<(String, String, String)>>,
    /// StartExecution answers with this error code (once).
    start_fails_with: Mutex<Option<String>>,
    /// DescribeExecution's status by execution ARN (RUNNING when not set).
    execution_status: Mutex<BTreeMap<String, String>>,
}

impl FanOutEngine for MemoryAws {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, AwsCallError> {
        if let Some(code) = self.start_fails_with.lock().unwrap().take() {
            return Err(AwsCallError {
                kind: AwsErrorKind::Other,
                code,
                message: "Execution Already Exists: 'arn:…'".into(),
            });
        }
        self.executions.lock().unwrap().push((
            state_machine_arn.to_string(),
            name.to_string(),
            input.to_string(),
        ));
        Ok(format!(
            "{}:{name}",
            state_machine_arn.replace(":stateMachine:", ":execution:")
        ))
    }

    async fn execution_status(&self, execution_arn: &str) -> Result<String, AwsCallError> {
        Ok(self
            .execution_status
            .lock()
            .unwrap()
            .get(execution_arn)
            .cloned()
            .unwrap_or_else(|| "RUNNING".to_string()))
    }
}

impl StateStore for MemoryAws {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        Ok(self.state.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsCallError> {
        self.state.lock().unwrap().insert(key.to_string(), body);
        Ok(())
    }
    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<bool, AwsCallError> {
        let mut state = self.state.lock().unwrap();
        if state.contains_key(key) {
            return Ok(false);
        }
        state.insert(key.to_string(), body);
        Ok(true)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsCallError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<(), AwsCallError> {
        if self
            .failing_deletes
            .lock()
            .unwrap()
            .iter()
            .any(|end| key.ends_with(end.as_str()))
        {
            return Err(AwsCallError {
                kind: AwsErrorKind::Transient,
                code: "InternalError".into(),
                message: "We encountered an internal error. Please try again.".into(),
            });
        }
        self.state.lock().unwrap().remove(key);
        Ok(())
    }
}

impl Notifier for MemoryAws {
    async fn notify(&self, subject: &str, body: &str) -> Result<(), AwsCallError> {
        {
            let mut failing = self.fail_notify.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(AwsCallError {
                    kind: AwsErrorKind::Throttled,
                    code: "Throttling".into(),
                    message: "Rate exceeded".into(),
                });
            }
        }
        let note = (subject.to_string(), body.to_string());
        self.notes.lock().unwrap().push(note);
        Ok(())
    }
}

fn etag_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl InventoryObjects for MemoryAws {
    async fn get_small(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<SmallObject>, AwsCallError> {
        Ok(self
            .blobs
            .lock()
            .unwrap()
            .get(&format!("{bucket}/{key}"))
            .map(|body| SmallObject {
                body: body.clone(),
                etag: format!("\"{}\"", etag_of(body)),
            }))
    }
    async fn download(
        &self,
        bucket: &str,
        key: &str,
        to: &Path,
        max_bytes: u64,
    ) -> Result<u64, AwsCallError> {
        // Someone writing the inventory bucket while the run reads the data files.
        if let Some((key, body)) = self.write_on_download.lock().unwrap().take() {
            self.blobs.lock().unwrap().insert(key, body);
        }
        if let Some((key, body)) = self.state_on_download.lock().unwrap().take() {
            self.state.lock().unwrap().insert(key, body);
        }
        {
            let mut fails = self.fail_downloads.lock().unwrap();
            if *fails > 0 {
                *fails -= 1;
                return Err(AwsCallError {
                    kind: AwsErrorKind::Transient,
                    code: "InternalError".into(),
                    message: "try again".into(),
                });
            }
        }
        let body = self
            .blobs
            .lock()
            .unwrap()
            .get(&format!("{bucket}/{key}"))
            .cloned();
        let body = body.ok_or_else(|| AwsCallError {
            kind: AwsErrorKind::NotFound,
            code: "NoSuchKey".into(),
            message: key.into(),
        })?;
        if body.len() as u64 > max_bytes {
            return Err(AwsCallError {
                kind: AwsErrorKind::Other,
                code: ferry_flows::inventory::run::OBJECT_TOO_LARGE.into(),
                message: format!("{} bytes", body.len()),
            });
        }
        std::fs::write(to, &body).unwrap();
        Ok(body.len() as u64)
    }
    async fn upload(&self, bucket: &str, key: &str, from: &Path) -> Result<String, AwsCallError> {
        let body = std::fs::read(from).unwrap();
        let etag = etag_of(&body);
        self.blobs
            .lock()
            .unwrap()
            .insert(format!("{bucket}/{key}"), body);
        Ok(format!("\"{etag}\""))
    }
}

impl LaunchApi for MemoryAws {
    async fn head_manifest(&self, bucket: &str, key: &str) -> Result<ManifestHead, AwsCallError> {
        {
            let mut failing = self.fail_heads.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(AwsCallError {
                    kind: AwsErrorKind::Transient,
                    code: "HTTP 503".into(),
                    message: "Service Unavailable".into(),
                });
            }
        }
        let blobs = self.blobs.lock().unwrap();
        let body = blobs
            .get(&format!("{bucket}/{key}"))
            .ok_or_else(|| AwsCallError {
                kind: AwsErrorKind::NotFound,
                code: "NotFound".into(),
                message: key.into(),
            })?;
        Ok(ManifestHead {
            etag: format!("\"{}\"", etag_of(body)),
            bucket_region: None,
            ..ManifestHead::default()
        })
    }
    async fn get_manifest(
        &self,
        bucket: &str,
        key: &str,
        _etag: &str,
    ) -> Result<Vec<u8>, AwsCallError> {
        self.blobs
            .lock()
            .unwrap()
            .get(&format!("{bucket}/{key}"))
            .cloned()
            .ok_or_else(|| AwsCallError {
                kind: AwsErrorKind::NotFound,
                code: "NoSuchKey".into(),
                message: key.into(),
            })
    }
    async fn create_job(&self, request: &CreateJobRequest) -> Result<String, AwsCallError> {
        self.requests.lock().unwrap().push(request.clone());
        let mut jobs = self.jobs.lock().unwrap();
        let id = jobs
            .entry(request.client_request_token.clone())
            .or_insert_with(|| format!("job-{}", self.next_job.fetch_add(1, Ordering::SeqCst)))
            .clone();
        Ok(id)
    }
    async fn pause(&self, _duration: Duration) {}
}

impl MemoryAws {
    /// The CreateJob request of a job id.
    fn request_of(&self, job_id: &str) -> Option<CreateJobRequest> {
        let token = self
            .jobs
            .lock()
            .unwrap()
            .iter()
            .find(|(_, id)| id.as_str() == job_id)
            .map(|(t, _)| t.clone())?;
        self.requests
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.client_request_token == token)
            .cloned()
    }

    /// How many objects the run that launched `job_id` gave it (its task count).
    fn tasks_of(&self, job_id: &str) -> u64 {
        let state = self.state.lock().unwrap();
        let Some(link) = state.get(&format!("inventory/jobs/{job_id}.json")) else {
            return 0;
        };
        let link: serde_json::Value = serde_json::from_slice(link).unwrap();
        let run_key = format!(
            "inventory/{}/runs/{}/run.json",
            link["plan_fingerprint"].as_str().unwrap(),
            link["run_id"].as_str().unwrap()
        );
        let run: RunRecord = serde_json::from_slice(&state[&run_key]).unwrap();
        run.jobs
            .iter()
            .find(|j| j.job_id == job_id)
            .map_or(0, |j| j.objects)
    }
}

/// S3 Control as the job monitor sees it: what the launcher's CreateJob asked for (role,
/// manifest, report, tags), the status and failed tasks a test set.
impl JobsApi for MemoryAws {
    async fn describe_job(&self, _account_id: &str, job_id: &str) -> Result<JobInfo, AwsCallError> {
        let status = self.job_status.lock().unwrap().get(job_id).cloned();
        let mut job = JobInfo::new(job_id, status.as_deref().unwrap_or("Active"));
        if let Some(request) = self.request_of(job_id) {
            job.role_arn = Some(request.role_arn.clone());
            job.manifest = Some(JobManifestRef {
                format: request.manifest.spec.format.clone(),
                fields: request.manifest.spec.fields.clone().unwrap_or_default(),
                object_arn: request.manifest.location.object_arn.clone(),
                object_version_id: request.manifest.location.object_version_id.clone(),
                etag: request.manifest.location.etag.clone(),
            });
            job.report = Some(ReportLocation {
                enabled: request.report.enabled,
                bucket: request
                    .report
                    .bucket
                    .rsplit(":::")
                    .next()
                    .unwrap()
                    .to_string(),
                prefix: request.report.prefix.clone(),
                scope: request.report.report_scope.clone(),
            });
        }
        if job.status == "Complete" {
            let total = self.tasks_of(job_id);
            let failed = self
                .job_failed
                .lock()
                .unwrap()
                .get(job_id)
                .map_or(0, |f| f.len() as u64);
            job.total_tasks = Some(total);
            job.failed_tasks = Some(failed);
            job.succeeded_tasks = Some(total - failed);
        }
        Ok(job)
    }
    async fn job_tags(&self, _account_id: &str, job_id: &str) -> Result<Vec<S3Tag>, AwsCallError> {
        Ok(self.request_of(job_id).map(|r| r.tags).unwrap_or_default())
    }
    async fn list_jobs(&self, _account_id: &str) -> Result<Vec<JobListing>, AwsCallError> {
        Ok(Vec::new())
    }
}

/// Completion reports, from the blobs (where [`job_ends`] writes them as Batch Operations does).
impl ReportObjects for MemoryAws {
    async fn read_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        Ok(self
            .blobs
            .lock()
            .unwrap()
            .get(&format!("{bucket}/{key}"))
            .cloned())
    }
    async fn stream_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        let body = self
            .blobs
            .lock()
            .unwrap()
            .get(&format!("{bucket}/{key}"))
            .cloned()
            .ok_or_else(|| AwsCallError {
                kind: AwsErrorKind::NotFound,
                code: "NoSuchKey".into(),
                message: key.into(),
            })?;
        sink(&body);
        Ok(body.len() as u64)
    }
}

/// A job ends: its JobStatusChanged event reaches the job monitor, which e-mails the summary
/// and records the end of the job's inventory run. Returns the e-mail's body.
async fn job_ends(aws: &MemoryAws, job_id: &str, status: &str) -> String {
    job_ends_failing(aws, job_id, status, &[]).await
}

/// [`job_ends`], with the tasks of `failed` keys failed: DescribeJob counts them, and the
/// completion report Batch Operations writes (`<prefix>/job-<id>/manifest.json`, then a results
/// CSV of the failed tasks) lists them.
async fn job_ends_failing(aws: &MemoryAws, job_id: &str, status: &str, failed: &[&str]) -> String {
    aws.job_status
        .lock()
        .unwrap()
        .insert(job_id.to_string(), status.to_string());
    aws.job_failed.lock().unwrap().insert(
        job_id.to_string(),
        failed.iter().map(|k| k.to_string()).collect(),
    );
    write_report(aws, job_id, failed);
    let outcome = monitor_hears(aws, job_id, status).await;
    assert!(
        matches!(outcome, MonitorOutcome::Summarised(_)),
        "{outcome:?}"
    );
    aws.notes.lock().unwrap().last().cloned().unwrap().1
}

/// The job monitor takes a JobStatusChanged event for `job_id` saying `status`.
async fn monitor_hears(aws: &MemoryAws, job_id: &str, status: &str) -> MonitorOutcome {
    let event = JobStatusEvent {
        account_id: "222222222222".into(),
        region: "us-east-1".into(),
        job_id: job_id.to_string(),
        status: status.to_string(),
        failure_codes: Vec::new(),
        status_change_reason: Vec::new(),
    };
    let ctx = MonitorContext {
        state_bucket: "ferry-state".into(),
        approval_topic_arn: "arn:aws:sns:us-east-1:222222222222:ferry-approvals".into(),
        now_unix: 1_795_500_000,
    };
    on_job_status_changed(aws, &event, &ctx).await.unwrap()
}

/// The report bucket and the `manifest.json` key of `job_id`'s completion report.
fn report_manifest(job_id: &str) -> (String, String) {
    let spec = spec();
    (
        spec.report.bucket.clone(),
        format!(
            "{}/job-{job_id}/manifest.json",
            spec.report.prefix.trim_end_matches('/')
        ),
    )
}

/// The completion report of `job_id` as Batch Operations writes it, `failed` keys failed.
fn write_report(aws: &MemoryAws, job_id: &str, failed: &[&str]) {
    let (bucket, manifest_key) = report_manifest(job_id);
    let results_key = manifest_key.replace("manifest.json", "results/failed.csv");
    let rows: String = failed
        .iter()
        .map(|k| {
            format!(
                "acme-media-prod,{},,failed,403,AccessDenied,Access Denied\n",
                inventory_support::s3_encode(k)
            )
        })
        .collect();
    let results = if failed.is_empty() {
        serde_json::json!([])
    } else {
        serde_json::json!([{"TaskExecutionStatus": "failed", "Bucket": bucket, "Key": results_key}])
    };
    let manifest = serde_json::json!({
        "Format": "Report_CSV_20180820",
        "ReportCreationDate": "2026-12-07T00:00:00.000Z",
        "Results": results,
        "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    });
    let mut blobs = aws.blobs.lock().unwrap();
    blobs.insert(format!("{bucket}/{results_key}"), rows.into_bytes());
    blobs.insert(
        format!("{bucket}/{manifest_key}"),
        manifest.to_string().into_bytes(),
    );
}

fn spec() -> TransferSpec {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/inventory-driven.toml"),
    )
    .unwrap();
    TransferSpec::from_toml_str(&text).unwrap()
}

/// A stack whose plan is stored and approved.
fn approved_stack(spec: &TransferSpec) -> (MemoryAws, String) {
    let plan = Plan::build(spec).unwrap();
    let fp = plan.transfer.fingerprint.clone();
    let aws = MemoryAws::default();
    let stored = StoredPlan {
        fingerprint: fp.clone(),
        spec: spec.clone(),
    };
    let mut state = aws.state.lock().unwrap();
    state.insert(
        format!("plans/{fp}.json"),
        serde_json::to_vec(&stored).unwrap(),
    );
    state.insert(
        format!("decisions/{fp}.json"),
        br#"{"decision":"approve","plan_fingerprint":"x","at_unix":1}"#.to_vec(),
    );
    drop(state);
    (aws, fp)
}

/// Delivers an inventory the way S3 does: data file, manifest.json, then manifest.checksum.
/// Returns the checksum key.
fn deliver(aws: &MemoryAws, date: &str, created_ms: u64, objs: &[Obj]) -> String {
    deliver_files(aws, date, created_ms, SCHEMA, &[objs.to_vec()])
}

/// An inventory of several data files (`files[i]` the objects of the i-th), as S3 Inventory
/// writes a large one.
fn deliver_files(
    aws: &MemoryAws,
    date: &str,
    created_ms: u64,
    schema: &str,
    files: &[Vec<Obj>],
) -> String {
    let mut listed = Vec::new();
    for (i, objs) in files.iter().enumerate() {
        let data_key = if files.len() == 1 {
            format!("{DIR}data/{date}.csv.gz")
        } else {
            format!("{DIR}data/{date}-{i}.csv.gz")
        };
        let data = gzip(
            csv_text(schema, objs)
                .replace("src-bucket", "acme-media-prod")
                .as_bytes(),
        );
        listed.push(
            serde_json::json!({"key": data_key, "size": data.len(), "MD5checksum": md5_hex(&data)}),
        );
        aws.blobs
            .lock()
            .unwrap()
            .insert(format!("{INV_BUCKET}/{data_key}"), data);
    }
    let manifest = serde_json::json!({
        "sourceBucket": "acme-media-prod",
        "destinationBucket": format!("arn:aws:s3:::{INV_BUCKET}"),
        "version": "2016-11-30",
        "creationTimestamp": created_ms.to_string(),
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": listed,
    });
    write_manifest(aws, date, &manifest)
}

/// The copy rows of Ferry's manifest as written, in order (keys decoded), and its parts' keys.
fn manifest_rows_in_order(aws: &MemoryAws, s3_url: &str) -> (Vec<String>, Vec<String>) {
    let key = s3_url.strip_prefix("s3://").unwrap();
    let blobs = aws.blobs.lock().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&blobs[key]).unwrap();
    let parts = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    let rows = ferry_testkit::inventory::inventory_manifest_rows(&blobs[key], |part| {
        blobs.get(&format!("{STATE_BUCKET}/{part}")).cloned()
    })
    .unwrap()
    .iter()
    .map(|r| decode_key(&r[1]).unwrap())
    .collect();
    (rows, parts)
}

/// A gzip CSV data file listing `objs`.
fn data_file(objs: &[Obj]) -> Vec<u8> {
    gzip(
        csv_text(SCHEMA, objs)
            .replace("src-bucket", "acme-media-prod")
            .as_bytes(),
    )
}

/// Writes `manifest` as the inventory `date`'s manifest.json, then its manifest.checksum (the
/// MD5 of manifest.json, as S3 Inventory writes it). Returns the checksum key.
fn write_manifest(aws: &MemoryAws, date: &str, manifest: &serde_json::Value) -> String {
    let manifest = manifest.to_string();
    let checksum_key = format!("{DIR}{date}/manifest.checksum");
    let mut blobs = aws.blobs.lock().unwrap();
    blobs.insert(
        format!("{INV_BUCKET}/{DIR}{date}/manifest.json"),
        manifest.clone().into_bytes(),
    );
    blobs.insert(
        format!("{INV_BUCKET}/{checksum_key}"),
        md5_hex(manifest.as_bytes()).into_bytes(),
    );
    checksum_key
}

fn md5_hex(bytes: &[u8]) -> String {
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The inventory `date`'s manifest.json as stored.
fn stored_manifest(aws: &MemoryAws, date: &str) -> serde_json::Value {
    let blobs = aws.blobs.lock().unwrap();
    serde_json::from_slice(&blobs[&format!("{INV_BUCKET}/{DIR}{date}/manifest.json")]).unwrap()
}

fn settings(dir: &Path) -> RunSettings {
    RunSettings {
        large_object_function_arn: Some(COPIER.to_string()),
        work_dir: dir.to_path_buf(),
        now_unix: 1_800_000_000,
        retry: RetryPolicy::default(),
        scan_threads: 2,
        work_dir_bytes: 1 << 30,
        state_bucket: STATE_BUCKET.to_string(),
        deadline: None,
        fan_out: None,
    }
}

const FAN_OUT_MACHINE: &str =
    "arn:aws:states:us-east-1:222222222222:stateMachine:ferry-e2e-inventory-fanout";

/// [`settings`] of a stack whose every inventory fans out, in batches of about two data files.
fn fan_out_settings(dir: &Path) -> RunSettings {
    RunSettings {
        work_dir_bytes: 2 * 500,
        fan_out: Some(FanOutSettings {
            state_machine_arn: FAN_OUT_MACHINE.to_string(),
            data_bytes: 0,
            memory_mb: 1024,
            execution_nonce: "0123456789abcdef".to_string(),
        }),
        ..settings(dir)
    }
}

/// Runs a fanned-out run's execution as `InventoryFanOut` does: each item of each Map list (read
/// as its ItemReader reads them) handed to its worker, then the launch.
async fn execute_fan_out(aws: &MemoryAws, fp: &str, run_id: &str, dir: &Path) {
    let settings = fan_out_settings(dir);
    let execution = &read_fan_out_run(aws, fp, run_id)
        .await
        .unwrap()
        .execution_name;
    let items = |key: String| -> Vec<serde_json::Value> {
        serde_json::from_slice(&aws.state.lock().unwrap()[&key]).unwrap()
    };
    for item in items(fanout_keys::scan_items(fp, run_id)) {
        let batch = item["Batch"].as_u64().unwrap() as usize;
        scan_step(aws, fp, run_id, execution, batch, &settings)
            .await
            .unwrap();
    }
    for item in items(fanout_keys::shard_items(fp, run_id)) {
        let shard = item["Shard"].as_u64().unwrap() as usize;
        diff_step(aws, fp, run_id, execution, shard, &settings)
            .await
            .unwrap();
    }
    finish_step(aws, fp, run_id, execution, &settings)
        .await
        .unwrap();
}

/// [`event`] on a stack whose every inventory fans out.
async fn fan_out_event(aws: &MemoryAws, fp: &str, key: &str, dir: &Path) -> RunOutcome {
    handle_inventory(
        aws,
        fp,
        INV_BUCKET,
        &[key.to_string()],
        &fan_out_settings(dir),
    )
    .await
    .unwrap()
}

fn fanned_out(outcome: RunOutcome) -> String {
    match outcome {
        RunOutcome::FannedOut { run_id, .. } => run_id,
        other => panic!("expected a fan-out, got {other:?}"),
    }
}

fn run_record(aws: &MemoryAws, fp: &str, run_id: &str) -> RunRecord {
    serde_json::from_slice(
        &aws.state.lock().unwrap()[&format!("inventory/{fp}/runs/{run_id}/run.json")],
    )
    .unwrap()
}

/// Two stacks, one whose inventories fan out and one whose single function reads them, get the
/// same two inventories (the second with new, changed, deleted, filtered and large objects):
/// the fanned-out runs launch jobs on the same rows, count the same figures and commit the same
/// next index.
#[tokio::test]
async fn a_fanned_out_run_copies_what_one_function_copies() {
    let tmp = tempdir();
    let spec = spec();
    let (single, fp) = approved_stack(&spec);
    let (fanned, _) = approved_stack(&spec);
    let day = |changed: &[usize], extra: bool| -> Vec<Vec<Obj>> {
        let mut files: Vec<Vec<Obj>> = (0..6)
            .map(|f| {
                (0..5)
                    .map(|i| {
                        let o = Obj::new(&format!("f{f}/{i} é+,.jpg"));
                        if changed.contains(&f) && i % 2 == 1 {
                            o.size(999)
                        } else {
                            o
                        }
                    })
                    .collect()
            })
            .collect();
        if extra {
            files[2].push(Obj::new("new/huge.bin").size(6 * GIB));
            files[4].push(Obj::new("new/fresh.jpg"));
            files[5].truncate(2);
        }
        files
    };
    let mut changed = Vec::new();
    for (date, created, files) in [
        ("2026-11-23T01-00Z", 1_000, day(&[], false)),
        ("2026-11-24T01-00Z", 2_000, day(&[1, 3], true)),
    ] {
        let k1 = deliver_files(&single, date, created, SCHEMA, &files);
        let k2 = deliver_files(&fanned, date, created, SCHEMA, &files);
        assert_eq!(k1, k2);
        let one = ran(event(&single, &fp, &k1, &tmp).await);
        let launched_before = fanned.requests.lock().unwrap().len();
        let outcome = fan_out_event(&fanned, &fp, &k2, &tmp).await;
        let run_id = fanned_out(outcome);
        assert_eq!(run_id, one.run_id, "the same inventory is the same run");
        // One execution, named after the run, told only the plan and the run.
        let started = fanned.executions.lock().unwrap().last().cloned().unwrap();
        assert_eq!(started.0, FAN_OUT_MACHINE);
        assert_eq!(started.1, format!("ferry-{run_id}-0123456789abcdef"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&started.2).unwrap(),
            serde_json::json!({"Fingerprint": fp, "Run": run_id})
        );
        let recorded = read_fan_out_run(&fanned, &fp, &run_id).await.unwrap();
        assert!(recorded.batches.len() > 1, "{:?}", recorded.batches);
        // Nothing launched before the execution's last step.
        assert_eq!(fanned.requests.lock().unwrap().len(), launched_before);
        execute_fan_out(&fanned, &fp, &run_id, &tmp).await;
        // Once recorded, a repeated worker (or a forged one for the same execution) does nothing.
        let execution = read_fan_out_run(&fanned, &fp, &run_id)
            .await
            .unwrap()
            .execution_name;
        let state_before = fanned.state.lock().unwrap().clone();
        scan_step(
            &fanned,
            &fp,
            &run_id,
            &execution,
            0,
            &fan_out_settings(&tmp),
        )
        .await
        .unwrap();
        diff_step(
            &fanned,
            &fp,
            &run_id,
            &execution,
            0,
            &fan_out_settings(&tmp),
        )
        .await
        .unwrap();
        assert!(
            *fanned.state.lock().unwrap() == state_before,
            "a spent run's worker wrote state"
        );
        let many = run_record(&fanned, &fp, &run_id);
        let mut figures = many.stats.clone();
        figures.examples.sort();
        let mut expected = one.stats.clone();
        expected.examples.sort();
        assert_eq!(figures, expected, "{date}");
        assert_eq!(many.index_objects, one.index_objects, "{date}");
        // The same rows to copy (the single run's first job may read the inventory itself).
        if one.jobs[0].kind != RunJobKind::CopyDirect {
            assert_eq!(
                manifest_keys(&fanned, &many.jobs[0].manifest),
                manifest_keys(&single, &one.jobs[0].manifest),
                "{date}"
            );
        }
        assert_eq!(
            many.jobs
                .iter()
                .map(|j| (j.kind != RunJobKind::LargeObjects, j.objects))
                .collect::<Vec<_>>(),
            one.jobs
                .iter()
                .map(|j| (j.kind != RunJobKind::LargeObjects, j.objects))
                .collect::<Vec<_>>(),
        );
        if let (Some(a), Some(b)) = (
            many.jobs
                .iter()
                .find(|j| j.kind == RunJobKind::LargeObjects),
            one.jobs.iter().find(|j| j.kind == RunJobKind::LargeObjects),
        ) {
            assert_eq!(
                manifest_keys(&fanned, &a.manifest),
                manifest_keys(&single, &b.manifest)
            );
            assert_eq!(manifest_keys(&fanned, &a.manifest), ["new/huge.bin"]);
        }
        // The second day's copy job fails one task: that object leaves the committed index
        // (its shard rewritten alone), so the next run copies it again.
        let failed: &[&str] = if one.previous_run_id.is_some() {
            &["f1/1 é+,.jpg"]
        } else {
            &[]
        };
        for (aws, run) in [(&single, &one), (&fanned, &many)] {
            for job in &run.jobs {
                let failing = if job.kind == RunJobKind::Copy {
                    failed
                } else {
                    &[]
                };
                job_ends_failing(aws, &job.job_id, "Complete", failing).await;
            }
        }
        let (a, index_a) = committed(&single, &fp).await;
        let (b, index_b) = committed(&fanned, &fp).await;
        assert_eq!(
            b.objects,
            many.index_objects - failed.len() as u64,
            "{date}"
        );
        assert_eq!(
            (a.run_id.as_str(), b.run_id.as_str()),
            (run_id.as_str(), run_id.as_str())
        );
        assert_eq!(index_a, index_b, "the next index, {date}");
        changed.push(many.stats.changed);
    }
    assert_eq!(changed, [0, 4], "files 1 and 3 changed two objects each");
}

/// A stage that fails for good (here a data file rewritten after the inventory was written:
/// its MD5 is not the manifest's) ends in `RunFailed`: said once, nothing launched, the delta
/// base unchanged. A payload naming a run Ferry never fanned out does nothing.
#[tokio::test]
async fn a_failed_fan_out_is_said_once_and_launches_nothing() {
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let files: Vec<Vec<Obj>> = (0..4)
        .map(|f| {
            vec![
                Obj::new(&format!("f{f}/a.jpg")),
                Obj::new(&format!("f{f}/b.jpg")),
            ]
        })
        .collect();
    let key = deliver_files(&aws, "2026-11-23T01-00Z", 1_000, SCHEMA, &files);
    let settings = fan_out_settings(&tmp);
    let run_id = fanned_out(
        handle_inventory(&aws, &fp, INV_BUCKET, &[key], &settings)
            .await
            .unwrap(),
    );
    // Someone rewrites data file 3 (same size) after S3 Inventory listed it.
    {
        let mut blobs = aws.blobs.lock().unwrap();
        let data = blobs
            .iter_mut()
            .find(|(k, _)| k.ends_with("-3.csv.gz"))
            .map(|(_, v)| v)
            .unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
    }
    let run = read_fan_out_run(&aws, &fp, &run_id).await.unwrap();
    let execution = run.execution_name.as_str();
    // An execution someone else started with the run's ids: refused before any work.
    let before = aws.state.lock().unwrap().len();
    let other = format!("ferry-{run_id}-ffffffffffffffff");
    for step in [
        scan_step(&aws, &fp, &run_id, &other, 0, &settings).await,
        diff_step(&aws, &fp, &run_id, &other, 0, &settings).await,
        finish_step(&aws, &fp, &run_id, &other, &settings).await,
        failed_step(&aws, &fp, &run_id, &other, "x", "y").await,
    ] {
        let err = step.map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("is not run"), "{err}");
    }
    assert_eq!(aws.state.lock().unwrap().len(), before, "nothing written");
    assert!(aws.notes.lock().unwrap().is_empty());
    let mut errors = Vec::new();
    for batch in 0..run.batches.len() {
        if let Err(e) = scan_step(&aws, &fp, &run_id, execution, batch, &settings).await {
            errors.push(e.to_string());
        }
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("-3.csv.gz") && errors[0].contains("MD5"),
        "{errors:?}"
    );
    // The Map fails, saying only that (Step Functions names no worker); RunFailed finds the
    // worker's own record of why (and, retried, says it once).
    for _ in 0..2 {
        failed_step(
            &aws,
            &fp,
            &run_id,
            execution,
            "States.ExceedToleratedFailureThreshold",
            "The specified tolerated failure threshold was exceeded",
        )
        .await
        .unwrap();
    }
    let notes = aws.notes.lock().unwrap().clone();
    let said: Vec<_> = notes
        .iter()
        .filter(|(_, body)| body.contains("fan-out"))
        .collect();
    assert_eq!(said.len(), 1, "{notes:?}");
    assert!(
        said[0].1.contains("-3.csv.gz") && said[0].1.contains("scan-"),
        "{}",
        said[0].1
    );
    // Each reason on its own line (escaped one by one), and nothing launched said so.
    assert!(said[0].1.contains("\n- scan-"), "{}", said[0].1);
    assert!(said[0].1.contains("Nothing was launched"), "{}", said[0].1);
    assert!(aws.requests.lock().unwrap().is_empty(), "nothing launched");
    assert!(
        ferry_flows::inventory::delta::current_index(&aws, &fp)
            .await
            .unwrap()
            .is_none(),
        "no delta base"
    );
    // The run stays claimed: a repeated event is a duplicate, not a second fan-out.
    let again = handle_inventory(
        &aws,
        &fp,
        INV_BUCKET,
        &[format!("{DIR}2026-11-23T01-00Z/manifest.checksum")],
        &RunSettings {
            now_unix: settings.now_unix + 3600,
            ..fan_out_settings(&tmp)
        },
    )
    .await
    .unwrap();
    assert!(matches!(again, RunOutcome::Duplicate { .. }), "{again:?}");
    assert_eq!(aws.executions.lock().unwrap().len(), 1);
    // A run nobody fanned out: refused, nothing written.
    let before = aws.state.lock().unwrap().len();
    let forged = scan_step(
        &aws,
        &fp,
        "0123456789abcdef0123456789abcdef",
        "ferry-0123456789abcdef0123456789abcdef-0123456789abcdef",
        0,
        &settings,
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(forged.to_string().contains("no fanned-out run"), "{forged}");
    assert_eq!(aws.state.lock().unwrap().len(), before);
}

/// An execution stopped by hand never reaches RunFailed: Step Functions' status-change event
/// makes the function ask how it ended and, if it ended without the run being recorded, say so
/// once. The event alone proves nothing (Step Functions' own answer counts), and one for an
/// execution the run record doesn't name, or for a recorded run, says nothing.
#[tokio::test]
async fn a_fan_out_stopped_by_hand_is_said_once() {
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let files = vec![vec![Obj::new("a.jpg")], vec![Obj::new("b.jpg")]];
    let key = deliver_files(&aws, "2026-11-23T01-00Z", 1_000, SCHEMA, &files);
    let outcome = fan_out_event(&aws, &fp, &key, &tmp).await;
    let RunOutcome::FannedOut {
        run_id,
        execution_arn,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        execution_arn,
        format!(
            "arn:aws:states:us-east-1:222222222222:execution:ferry-e2e-inventory-fanout:ferry-{run_id}-0123456789abcdef"
        )
    );
    let ended = |arn: String| {
        let aws = &aws;
        let fp = fp.clone();
        async move {
            ferry_flows::inventory::fanout::execution_ended(aws, &fp, FAN_OUT_MACHINE, &arn)
                .await
                .unwrap()
        }
    };
    // Still running (a forged event): nothing said.
    assert_eq!(ended(execution_arn.clone()).await, None);
    assert!(aws.notes.lock().unwrap().is_empty());
    // Another execution with the run's ids, even one that was aborted: not the run's.
    let other = execution_arn.replace("-0123456789abcdef", "-ffffffffffffffff");
    aws.execution_status
        .lock()
        .unwrap()
        .insert(other.clone(), "ABORTED".into());
    assert!(
        ferry_flows::inventory::fanout::execution_ended(&aws, &fp, FAN_OUT_MACHINE, &other)
            .await
            .is_err()
    );
    assert!(aws.notes.lock().unwrap().is_empty());
    // Stopped: said once, however often the event comes.
    aws.execution_status
        .lock()
        .unwrap()
        .insert(execution_arn.clone(), "ABORTED".into());
    for _ in 0..2 {
        assert_eq!(
            ended(execution_arn.clone()).await.as_deref(),
            Some("ABORTED")
        );
    }
    let notes = aws.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].1.contains("ended ABORTED") && notes[0].1.contains("Nothing was launched"),
        "{}",
        notes[0].1
    );
    assert!(aws.requests.lock().unwrap().is_empty());
}

/// The execution's name ends in a nonce drawn for the run (nobody can start one of that name
/// ahead of Ferry); a failed start is the run's error, refused and said.
#[tokio::test]
async fn a_fan_out_that_cannot_start_is_refused_and_said() {
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let files = vec![vec![Obj::new("a.jpg")], vec![Obj::new("b.jpg")]];
    let key = deliver_files(&aws, "2026-11-24T01-00Z", 2_000, SCHEMA, &files);
    *aws.start_fails_with.lock().unwrap() = Some("StateMachineDoesNotExist".into());
    let outcome = fan_out_event(&aws, &fp, &key, &tmp).await;
    assert!(
        matches!(&outcome, RunOutcome::Refused { reason, .. } if reason.contains("StateMachineDoesNotExist")),
        "{outcome:?}"
    );
    assert!(aws
        .notes
        .lock()
        .unwrap()
        .iter()
        .any(|(_, b)| b.contains("StateMachineDoesNotExist")));
    // A nonce that is not one (the handler draws 16 hex digits): refused, nothing started.
    let key2 = deliver_files(&aws, "2026-11-25T01-00Z", 3_000, SCHEMA, &files);
    let mut settings = fan_out_settings(&tmp);
    if let Some(f) = settings.fan_out.as_mut() {
        f.execution_nonce = String::new();
    }
    let outcome = handle_inventory(
        &aws,
        &fp,
        INV_BUCKET,
        std::slice::from_ref(&key2),
        &settings,
    )
    .await
    .unwrap();
    assert!(matches!(outcome, RunOutcome::Refused { .. }), "{outcome:?}");
    assert!(aws.executions.lock().unwrap().is_empty());
}

async fn committed(
    aws: &MemoryAws,
    fp: &str,
) -> (
    ferry_flows::inventory::delta::CurrentIndex,
    ferry_listings::inventory::index::ObjectIndex,
) {
    ferry_flows::inventory::delta::current_index(aws, fp)
        .await
        .unwrap()
        .unwrap()
}

async fn event(aws: &MemoryAws, fp: &str, key: &str, dir: &Path) -> RunOutcome {
    handle_inventory(aws, fp, INV_BUCKET, &[key.to_string()], &settings(dir))
        .await
        .unwrap()
}

/// [`event`] for a run that fails (the invocation's error).
async fn event_fails(aws: &MemoryAws, fp: &str, key: &str, dir: &Path) -> RunError {
    handle_inventory(aws, fp, INV_BUCKET, &[key.to_string()], &settings(dir))
        .await
        .unwrap_err()
}

fn ran(outcome: RunOutcome) -> ferry_flows::inventory::delta::RunRecord {
    match outcome {
        RunOutcome::Ran(r) => *r,
        other => panic!("expected a run, got {other:?}"),
    }
}

/// The decoded (key) rows of a manifest Ferry wrote: a CSV manifest, or an inventory-format
/// `manifest.json` whose parts are every one under the run's `data/`, read as Batch
/// Operations reads them.
fn manifest_keys(aws: &MemoryAws, s3_url: &str) -> Vec<String> {
    let key = s3_url.strip_prefix("s3://").unwrap();
    let blobs = aws.blobs.lock().unwrap();
    if let Some(dir) = key.strip_suffix("copy/manifest.json") {
        assert!(
            dir.starts_with(&format!("{STATE_BUCKET}/inventory/")),
            "{key}"
        );
        let rows = ferry_testkit::inventory::inventory_manifest_rows(&blobs[key], |part| {
            let part = format!("{STATE_BUCKET}/{part}");
            assert!(part.starts_with(&format!("{dir}data/")), "{part}");
            blobs.get(&part).cloned()
        })
        .unwrap();
        let mut keys: Vec<String> = rows
            .iter()
            .map(|r| {
                assert_eq!(r[0], "acme-media-prod");
                decode_key(&r[1]).unwrap()
            })
            .collect();
        keys.sort();
        return keys;
    }
    let text = String::from_utf8(blobs[key].clone()).unwrap();
    assert!(
        !text.contains("\n\n") && !text.starts_with("Bucket"),
        "{text}"
    );
    let mut keys: Vec<String> = text
        .lines()
        .map(|l| {
            let (bucket, key) = l.split_once(',').unwrap();
            assert_eq!(bucket, "acme-media-prod");
            decode_key(key).unwrap()
        })
        .collect();
    keys.sort();
    keys
}

/// S3 Inventory splits a large report into many data files: they are read several at a time
/// (`scan_threads`), and the copy list is Ferry's own inventory report, one gzip part per data
/// file that has rows to copy, listed in the data files' order, rows in their order.
#[tokio::test]
async fn a_many_file_inventory_becomes_parts_listed_in_file_order() {
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let files = |changed: &[usize]| -> Vec<Vec<Obj>> {
        (0..5)
            .map(|f| {
                (0..4)
                    .map(|i| {
                        let o = Obj::new(&format!("f{f}/{i} é+,.jpg"));
                        if changed.contains(&f) && i % 2 == 1 {
                            o.size(999)
                        } else {
                            o
                        }
                    })
                    .collect()
            })
            .collect()
    };
    // First run, everything passes: the job reads the inventory itself, and no part of
    // Ferry's was uploaded (they stayed local while the run could go direct).
    let k1 = deliver_files(&aws, "2026-11-23T01-00Z", 1_000, SCHEMA, &files(&[]));
    let run1 = ran(event(&aws, &fp, &k1, &tmp).await);
    assert_eq!(run1.jobs[0].kind, RunJobKind::CopyDirect);
    assert_eq!(run1.stats.copy.objects, 20);
    let own = format!("{STATE_BUCKET}/inventory/{fp}/runs/{}/", run1.run_id);
    assert!(
        !aws.blobs
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.starts_with(&own)),
        "parts uploaded for a direct run"
    );
    job_ends(&aws, &run1.jobs[0].job_id, "Complete").await;

    // Files 1 and 3 changed (two objects each): two parts, in file order.
    let k2 = deliver_files(&aws, "2026-11-24T01-00Z", 2_000, SCHEMA, &files(&[1, 3]));
    let run2 = ran(event(&aws, &fp, &k2, &tmp).await);
    assert_eq!(run2.stats.copy.objects, 4);
    assert_eq!(run2.jobs[0].kind, RunJobKind::Copy);
    let (rows, parts) = manifest_rows_in_order(&aws, &run2.jobs[0].manifest);
    assert_eq!(
        rows,
        [
            "f1/1 é+,.jpg",
            "f1/3 é+,.jpg",
            "f3/1 é+,.jpg",
            "f3/3 é+,.jpg"
        ]
    );
    let dir = format!("inventory/{fp}/runs/{}/data/", run2.run_id);
    assert_eq!(
        parts,
        [format!("{dir}000001.csv.gz"), format!("{dir}000003.csv.gz")]
    );
}

/// Rows with version ids go to a CSV manifest (`null` for a null version): S3's guide documents
/// that form for an inventory of versions, not an inventory-format one.
#[tokio::test]
async fn an_inventory_of_versions_becomes_one_csv_manifest_in_file_order() {
    const VERSIONS: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, \
        LastModifiedDate, ETag, StorageClass, EncryptionStatus";
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let files: Vec<Vec<Obj>> = (0..3)
        .map(|f| {
            vec![
                Obj::new(&format!("v{f}/a")).version(Some(&format!("ver{f}")), true),
                Obj::new(&format!("v{f}/null")).version(None, true),
            ]
        })
        .collect();
    let k = deliver_files(&aws, "2026-11-23T01-00Z", 1_000, VERSIONS, &files);
    let run = ran(event(&aws, &fp, &k, &tmp).await);
    assert_eq!(run.jobs.len(), 1);
    let request = aws.requests.lock().unwrap()[0].clone();
    assert_eq!(
        request.manifest.spec.format,
        "S3BatchOperations_CSV_20180820"
    );
    assert_eq!(
        request.manifest.spec.fields,
        Some(vec!["Bucket".into(), "Key".into(), "VersionId".into()])
    );
    let key = run.jobs[0]
        .manifest
        .strip_prefix("s3://")
        .unwrap()
        .to_string();
    assert!(key.ends_with("/copy.csv"), "{key}");
    let text = String::from_utf8(aws.blobs.lock().unwrap()[&key].clone()).unwrap();
    assert_eq!(
        text,
        "acme-media-prod,v0/a,ver0\nacme-media-prod,v0/null,null\n\
         acme-media-prod,v1/a,ver1\nacme-media-prod,v1/null,null\n\
         acme-media-prod,v2/a,ver2\nacme-media-prod,v2/null,null\n"
    );
}

fn base_objects() -> Vec<Obj> {
    (0..20)
        .map(|i| Obj::new(&format!("photos/{i:03}.jpg")))
        .collect()
}

#[tokio::test]
async fn first_run_fast_path_then_a_delta_of_exactly_the_new_and_changed() {
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);

    // 1. First inventory: nothing filtered, nothing large, no delta yet → job on manifest.json.
    let k1 = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    let run1 = ran(event(&aws, &fp, &k1, &tmp).await);
    assert_eq!(run1.jobs.len(), 1);
    assert_eq!(run1.jobs[0].kind, RunJobKind::CopyDirect);
    let first = aws.requests.lock().unwrap()[0].clone();
    assert_eq!(first.manifest.spec.format, "S3InventoryReport_CSV_20161130");
    assert_eq!(
        first.manifest.location.object_arn,
        format!("arn:aws:s3:::{INV_BUCKET}/{DIR}2026-11-23T01-00Z/manifest.json")
    );
    assert_eq!(run1.stats.copy.objects, 20);

    // A duplicate of the same event launches nothing.
    assert!(matches!(
        event(&aws, &fp, &k1, &tmp).await,
        RunOutcome::Duplicate { .. }
    ));
    assert_eq!(aws.requests.lock().unwrap().len(), 1);

    // 2. The first job completes: its index becomes the delta base.
    let done = job_finished(&aws, &run1.jobs[0].job_id, "Complete", &[])
        .await
        .unwrap();
    assert!(matches!(
        done,
        JobFinished::Commit {
            outcome: CommitOutcome::Committed {
                objects: 20,
                dropped: 0
            },
            ..
        }
    ));

    // 3. Second inventory: two new (one with awkward characters), one changed, one large, one
    //    filtered out, the rest unchanged.
    let mut objs = base_objects();
    objs[3] = objs[3].clone().size(999);
    objs.push(Obj::new("new/a b+c%d,\"q\"\nline-é.txt"));
    objs.push(Obj::new("new/plain.txt"));
    objs.push(Obj::new("video/huge.mov").size(6 * GIB));
    objs.push(Obj::new("tmp/scratch"));
    let k2 = deliver(&aws, "2026-11-24T01-00Z", 2_000, &objs);
    let run2 = ran(event(&aws, &fp, &k2, &tmp).await);
    assert_eq!(run2.previous_run_id.as_deref(), Some(run1.run_id.as_str()));
    assert_eq!(run2.stats.copy.objects, 3);
    assert_eq!(run2.stats.large.objects, 1);
    assert_eq!(run2.stats.changed, 1);
    assert_eq!(run2.stats.skipped(SkipReason::Unchanged).objects, 19);
    assert_eq!(run2.stats.skipped(SkipReason::Prefix).objects, 1);
    assert!(run2.stats.is_balanced());
    // #16 item 1: every job a run launches (Copy and LambdaInvoke) asks for a completion report
    // that lists its failed tasks: the run's delta commits only on it.
    let requests = aws.requests.lock().unwrap().clone();
    assert!(requests.len() >= 3, "{}", requests.len());
    for request in &requests {
        assert!(request.report.enabled, "{:?}", request.report);
        assert!(
            ["AllTasks", "FailedTasksOnly"].contains(&request.report.report_scope.as_str()),
            "{:?}",
            request.report
        );
    }

    let copy = run2
        .jobs
        .iter()
        .find(|j| j.kind == RunJobKind::Copy)
        .unwrap();
    assert_eq!(
        manifest_keys(&aws, &copy.manifest),
        vec![
            "new/a b+c%d,\"q\"\nline-é.txt",
            "new/plain.txt",
            "photos/003.jpg"
        ]
    );
    let large = run2
        .jobs
        .iter()
        .find(|j| j.kind == RunJobKind::LargeObjects)
        .unwrap();
    assert_eq!(manifest_keys(&aws, &large.manifest), vec!["video/huge.mov"]);

    // The exact CreateJob inputs: a CSV Copy job and a LambdaInvoke job, tokens of this run.
    let requests = aws.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    let copy_req = &requests[1];
    // The copy list is Ferry's own inventory report: S3 Inventory's form, no Fields.
    assert_eq!(
        copy_req.manifest.spec.format,
        "S3InventoryReport_CSV_20161130"
    );
    assert_eq!(copy_req.manifest.spec.fields, None);
    assert_eq!(
        copy_req.manifest.location.object_arn,
        format!(
            "arn:aws:s3:::{STATE_BUCKET}/inventory/{fp}/runs/{}/copy/manifest.json",
            run2.run_id
        )
    );
    assert_eq!(copy_req.manifest.location.etag, copy.manifest_etag);
    assert!(matches!(
        copy_req.operation,
        JobOperation::S3PutObjectCopy(_)
    ));
    match &requests[2].operation {
        JobOperation::LambdaInvoke(l) => {
            assert_eq!(l.function_arn, COPIER);
            assert_eq!(l.invocation_schema_version, "2.0");
        }
        other => panic!("expected LambdaInvoke, got {other:?}"),
    }
    assert_ne!(
        copy_req.client_request_token,
        requests[2].client_request_token
    );

    // Duplicate of the second event: still three requests.
    assert!(matches!(
        event(&aws, &fp, &k2, &tmp).await,
        RunOutcome::Duplicate { .. }
    ));
    assert_eq!(aws.requests.lock().unwrap().len(), 3);

    // 4. An older inventory arriving late is refused and reported once.
    let k0 = deliver(&aws, "2026-11-22T01-00Z", 500, &base_objects());
    assert!(matches!(
        event(&aws, &fp, &k0, &tmp).await,
        RunOutcome::Stale { .. }
    ));
    for _ in 0..2 {
        assert!(matches!(
            event(&aws, &fp, &k0, &tmp).await,
            RunOutcome::Duplicate { .. }
        ));
    }
    let notes = aws.notes.lock().unwrap().clone();
    assert_eq!(
        notes
            .iter()
            .filter(|(s, _)| s.contains("older inventory"))
            .count(),
        1
    );
    assert_eq!(aws.requests.lock().unwrap().len(), 3);

    // 5. Run 2's copy job completes with one failed task, the large one is cancelled: the delta
    //    base stays at run 1, so the next inventory copies run 2's objects again.
    let failed = [ObjectRef {
        key: "new/plain.txt".into(),
        version_id: None,
    }];
    let w = job_finished(&aws, &copy.job_id, "Complete", &failed)
        .await
        .unwrap();
    assert!(matches!(w, JobFinished::Waiting { remaining: 1, .. }));
    // Through the job monitor, as in the stack: the summary says the delta stays.
    let email = job_ends(&aws, &large.job_id, "Cancelled").await;
    assert!(
        email.contains("Cancelled, so the delta state stays where it was"),
        "{email}"
    );
    let k3 = deliver(&aws, "2026-11-25T01-00Z", 3_000, &objs);
    let run3 = ran(event(&aws, &fp, &k3, &tmp).await);
    assert_eq!(run3.previous_run_id.as_deref(), Some(run1.run_id.as_str()));
    assert_eq!(run3.stats.copy.objects + run3.stats.large.objects, 4);

    // 6. Run 3 completes, but one task failed: that object is copied again next time.
    for j in &run3.jobs {
        let failed: &[ObjectRef] = if j.kind == RunJobKind::Copy {
            &failed
        } else {
            &[]
        };
        job_finished(&aws, &j.job_id, "Complete", failed)
            .await
            .unwrap();
    }
    let k4 = deliver(&aws, "2026-11-26T01-00Z", 4_000, &objs);
    let run4 = ran(event(&aws, &fp, &k4, &tmp).await);
    assert_eq!(run4.previous_run_id.as_deref(), Some(run3.run_id.as_str()));
    let copy4 = run4
        .jobs
        .iter()
        .find(|j| j.kind == RunJobKind::Copy)
        .unwrap();
    assert_eq!(manifest_keys(&aws, &copy4.manifest), vec!["new/plain.txt"]);
    assert_eq!(run4.stats.large.objects, 0);

    // 7. Run 4's jobs complete (through the job monitor); then nothing new at all: no job, and
    //    the run commits at once.
    let mut emails = Vec::new();
    for j in &run4.jobs {
        emails.push(job_ends(&aws, &j.job_id, "Complete").await);
    }
    assert!(
        emails
            .last()
            .is_some_and(|e| e.contains("complete; the delta state now holds")),
        "{emails:?}"
    );
    let k5 = deliver(&aws, "2026-11-27T01-00Z", 5_000, &objs);
    let run5 = ran(event(&aws, &fp, &k5, &tmp).await);
    assert!(run5.jobs.is_empty());
    assert_eq!(aws.requests.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn what_is_not_a_new_inventory_is_ignored() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    let manifest_json = k.replace("manifest.checksum", "manifest.json");
    for key in [manifest_json.as_str(), "other/prefix/manifest.checksum"] {
        assert!(
            matches!(
                event(&aws, &fp, key, &tmp).await,
                RunOutcome::Ignored { .. }
            ),
            "{key}"
        );
    }
    let other_bucket = handle_inventory(
        &aws,
        &fp,
        "someone-else",
        std::slice::from_ref(&k),
        &settings(&tmp),
    )
    .await
    .unwrap();
    assert!(matches!(other_bucket, RunOutcome::Ignored { .. }));
    assert!(aws.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unapproved_plan_copies_nothing_and_says_so_once() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    aws.state
        .lock()
        .unwrap()
        .remove(&format!("decisions/{fp}.json"));
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    for _ in 0..2 {
        assert!(matches!(
            event(&aws, &fp, &k, &tmp).await,
            RunOutcome::NotApproved { .. }
        ));
    }
    assert_eq!(aws.notes.lock().unwrap().len(), 1);
    assert!(aws.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_transient_failure_gives_the_claim_back_and_the_retry_launches() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    *aws.fail_downloads.lock().unwrap() = 1;
    let err = event_fails(&aws, &fp, &k, &tmp).await;
    assert!(err.is_retryable(), "{err}");
    let run = ran(event(&aws, &fp, &k, &tmp).await);
    assert_eq!(run.jobs.len(), 1);
}

/// #16 item 5: HeadObject of the manifest failing with 5xx past the launcher's retries gives
/// the claim back (no refusal, no e-mail), so the event's retry copies the inventory the same
/// day instead of a whole inventory cycle later.
#[tokio::test]
async fn a_manifest_head_failing_with_5xx_gives_the_claim_back_and_the_retry_launches() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    *aws.fail_heads.lock().unwrap() = RetryPolicy::default().max_attempts;
    let err = event_fails(&aws, &fp, &k, &tmp).await;
    assert!(err.is_retryable(), "{err}");
    assert!(aws.requests.lock().unwrap().is_empty());
    assert!(
        !aws.state
            .lock()
            .unwrap()
            .keys()
            .any(|key| key.ends_with("/claim.json")),
        "the claim is given back"
    );
    assert!(
        aws.notes.lock().unwrap().is_empty(),
        "a retry is not a refusal: {:?}",
        aws.notes.lock().unwrap()
    );
    let run = ran(event(&aws, &fp, &k, &tmp).await);
    assert_eq!(run.jobs.len(), 1);
    assert_eq!(aws.requests.lock().unwrap().len(), 1);
}

/// #16 item 6: a transient failure whose claim can't be given back says so (the claim key and
/// what it means) instead of returning a "retry" that the kept claim would turn away.
#[tokio::test]
async fn a_claim_that_cant_be_given_back_is_said_not_swallowed() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    *aws.fail_downloads.lock().unwrap() = 1;
    aws.failing_deletes
        .lock()
        .unwrap()
        .push("/claim.json".to_string());
    let err = event_fails(&aws, &fp, &k, &tmp).await;
    let RunError::UndoFailed { error, undo } = &err else {
        panic!("{err:?}")
    };
    assert!(error.is_retryable(), "{error}");
    assert!(
        !err.is_retryable(),
        "the kept claim would turn a retry away"
    );
    assert_eq!(undo.len(), 1);
    assert!(undo[0].key.ends_with("/claim.json"), "{:?}", undo[0]);
    assert!(err.to_string().contains(&undo[0].key), "{err}");
    assert!(
        aws.state.lock().unwrap().contains_key(&undo[0].key),
        "the claim is still there, as the error says"
    );
}

/// #16 item 10: a refusal whose e-mail could not be sent is not recorded as said: the claim
/// and the notice mark go back, so the event's retry refuses again and the e-mail goes out.
#[tokio::test]
async fn a_refusal_whose_email_failed_is_emailed_by_the_retry() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    let k = deliver(&aws, date, 1_000, &base_objects());
    let data_key = format!("{DIR}data/{date}.csv.gz");
    aws.blobs.lock().unwrap().insert(
        format!("{INV_BUCKET}/{data_key}"),
        data_file(&[Obj::new("secret/payroll.xlsx")]),
    );
    *aws.fail_notify.lock().unwrap() = 1;
    let err = event_fails(&aws, &fp, &k, &tmp).await;
    assert!(err.is_retryable(), "{err}");
    // The log line has the reason, not only the failed send.
    let why = "changed after S3 Inventory wrote it";
    assert!(err.to_string().contains(why), "{err}");
    assert!(aws.notes.lock().unwrap().is_empty());
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(reason.contains(why), "{reason}");
    assert_eq!(aws.notes.lock().unwrap().len(), 1, "said once");
    assert!(aws.requests.lock().unwrap().is_empty());
}

/// #16 review: a reject recorded while the run reads the inventory (minutes, for a large one)
/// stops its launch.
#[tokio::test]
async fn a_reject_while_the_inventory_is_read_launches_nothing() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    *aws.state_on_download.lock().unwrap() = Some((
        format!("decisions/{fp}.json"),
        serde_json::json!({"decision": "reject", "plan_fingerprint": fp, "at_unix": 1})
            .to_string()
            .into_bytes(),
    ));
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(reason.contains("no longer approved"), "{reason}");
}

/// #16 review: a run that fails after it launched its job (here: the summary e-mail) keeps
/// its claim and names the job: a second run could launch a second job.
#[tokio::test]
async fn a_run_that_fails_after_launching_keeps_its_claim_and_launches_once() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    *aws.fail_notify.lock().unwrap() = 1;
    let err = event_fails(&aws, &fp, &k, &tmp).await;
    let RunError::AfterLaunch { job_ids, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(job_ids.len(), 1);
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains(&job_ids[0]), "{err}");
    assert!(matches!(
        event(&aws, &fp, &k, &tmp).await,
        RunOutcome::Duplicate { .. }
    ));
    assert_eq!(aws.requests.lock().unwrap().len(), 1, "one job");
}

/// #16 review: an older inventory's "ignored" notice that could not be sent gives the claim
/// back, so the retry says it (a kept claim would make the retry a silent duplicate).
#[tokio::test]
async fn a_stale_inventorys_notice_that_failed_is_sent_by_the_retry() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let newer = deliver(&aws, "2026-11-24T01-00Z", 2_000, &base_objects());
    ran(event(&aws, &fp, &newer, &tmp).await);
    let notes_before = aws.notes.lock().unwrap().len();
    let older = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    *aws.fail_notify.lock().unwrap() = 1;
    let err = event_fails(&aws, &fp, &older, &tmp).await;
    assert!(err.is_retryable(), "{err}");
    assert_eq!(aws.notes.lock().unwrap().len(), notes_before);
    assert!(matches!(
        event(&aws, &fp, &older, &tmp).await,
        RunOutcome::Stale { .. }
    ));
    let notes = aws.notes.lock().unwrap();
    assert_eq!(notes.len(), notes_before + 1);
    assert!(notes[notes_before].0.contains("older inventory ignored"));
}

#[tokio::test]
async fn a_damaged_manifest_is_refused_once_and_launches_nothing() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    // Damaged as written: manifest.checksum is its MD5, so only the content is wrong.
    let k = write_manifest(
        &aws,
        "2026-11-23T01-00Z",
        &serde_json::json!({"sourceBucket": 3}),
    );
    for _ in 0..2 {
        match event(&aws, &fp, &k, &tmp).await {
            RunOutcome::Refused { reason, .. } => {
                assert!(reason.contains("fileFormat"), "{reason}")
            }
            RunOutcome::Duplicate { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(aws.notes.lock().unwrap().len(), 1);
    assert!(aws.requests.lock().unwrap().is_empty());
}

/// 1,000 duplicate events for the same inventory, concurrently: exactly one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_duplicates_launch_one_job() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    let aws = Arc::new(aws);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (aws, fp, k, dir) = (aws.clone(), fp.clone(), k.clone(), tmp.clone());
        tasks.push(tokio::spawn(async move {
            handle_inventory(aws.as_ref(), &fp, INV_BUCKET, &[k], &settings(&dir)).await
        }));
    }
    let mut ran_count = 0;
    let mut duplicates = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RunOutcome::Ran(_) => ran_count += 1,
            RunOutcome::Duplicate { .. } => duplicates += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((ran_count, duplicates), (1, 999));
    assert_eq!(aws.requests.lock().unwrap().len(), 1);
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
}

/// Keys survive inventory (URL-encoded CSV) → Ferry's manifest (URL-encoded) unchanged.
#[tokio::test]
async fn awkward_keys_round_trip_into_the_manifest() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    // First run establishes a base with one object, so the second writes a CSV manifest.
    let k1 = deliver(&aws, "2026-11-23T01-00Z", 1_000, &[Obj::new("seed")]);
    let run1 = ran(event(&aws, &fp, &k1, &tmp).await);
    job_finished(&aws, &run1.jobs[0].job_id, "Complete", &[])
        .await
        .unwrap();
    let keys = [
        "a b",
        "plus+sign",
        "100%",
        "comma,key",
        "quote\"d",
        "new\nline",
        "日本語/ファイル",
        "emoji 🚀",
        "trailing space ",
        "seed",
    ];
    let objs: Vec<Obj> = keys.iter().map(|k| Obj::new(k)).collect();
    assert!(keys.iter().all(|k| !s3_encode(k).contains(' ')));
    let k2 = deliver(&aws, "2026-11-24T01-00Z", 2_000, &objs);
    let run2 = ran(event(&aws, &fp, &k2, &tmp).await);
    let mut want: Vec<String> = keys
        .iter()
        .filter(|k| **k != "seed")
        .map(|k| k.to_string())
        .collect();
    want.sort();
    assert_eq!(manifest_keys(&aws, &run2.jobs[0].manifest), want);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ferry-inventory-runs-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// #15 item 9: an inventory that suddenly lists nothing (anyone who can write the inventory
/// bucket can deliver one) is refused and does not become the delta base: the next inventory
/// is still compared with the last real one, so nothing is copied again.
#[tokio::test]
async fn a_sudden_empty_inventory_is_refused_and_the_next_delta_is_still_small() {
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let k1 = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    let run1 = ran(event(&aws, &fp, &k1, &tmp).await);
    job_finished(&aws, &run1.jobs[0].job_id, "Complete", &[])
        .await
        .unwrap();

    let empty = deliver(&aws, "2026-11-24T01-00Z", 2_000, &[]);
    let refused = event(&aws, &fp, &empty, &tmp).await;
    let RunOutcome::Refused { reason, .. } = refused else {
        panic!("refused: {refused:?}")
    };
    assert!(reason.contains("lists no objects"), "{reason}");
    assert_eq!(aws.requests.lock().unwrap().len(), 1, "nothing launched");

    // The next real inventory, the same objects plus one: only that one is copied.
    let mut objs = base_objects();
    objs.push(Obj::new("new/one.txt"));
    let k3 = deliver(&aws, "2026-11-25T01-00Z", 3_000, &objs);
    let run3 = ran(event(&aws, &fp, &k3, &tmp).await);
    assert_eq!(run3.previous_run_id.as_deref(), Some(run1.run_id.as_str()));
    assert_eq!(run3.stats.copy.objects, 1, "{:?}", run3.stats);
}

/// #15 item 9, attacks by whoever can write the inventory bucket: each forged inventory is
/// refused, launches nothing and e-mails why; the next real inventory still runs.
async fn refused(aws: &MemoryAws, fp: &str, checksum_key: &str, dir: &Path) -> String {
    let before = aws.requests.lock().unwrap().len();
    let outcome = event(aws, fp, checksum_key, dir).await;
    let RunOutcome::Refused { reason, .. } = outcome else {
        panic!("expected a refusal, got {outcome:?}")
    };
    assert_eq!(
        aws.requests.lock().unwrap().len(),
        before,
        "nothing launched"
    );
    let notes = aws.notes.lock().unwrap();
    let (subject, _) = notes.last().expect("an e-mail says why");
    assert!(subject.contains("not copied"), "{subject}");
    reason
}

/// The next real inventory after a refused one runs.
async fn a_real_inventory_still_runs(aws: &MemoryAws, fp: &str, dir: &Path) {
    let k = deliver(aws, "2026-11-30T01-00Z", 1_000, &base_objects());
    let run = ran(event(aws, fp, &k, dir).await);
    assert_eq!(run.stats.copy.objects, 20, "{:?}", run.stats);
}

#[tokio::test]
async fn an_inventory_dated_ahead_is_refused_naming_the_field_and_value() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    // The clock is 1_800_000_000 s; two hours ahead is beyond any clock skew.
    let ahead_ms = (1_800_000_000 + 2 * 3600) * 1000;
    let k = deliver(&aws, "2027-01-15T10-00Z", ahead_ms, &base_objects());
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(
        reason.contains("creationTimestamp") && reason.contains(&ahead_ms.to_string()),
        "{reason}"
    );
    // Not recorded as the newest: the real one (created earlier) is not "older".
    a_real_inventory_still_runs(&aws, &fp, &tmp).await;
}

#[tokio::test]
async fn a_data_file_outside_the_inventorys_data_directory_is_refused() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    deliver(&aws, date, 1_000, &base_objects());
    // A file under the inventory's directory but not in its data/ (here, where Ferry writes its
    // own manifests), complete with its MD5 and a matching manifest.checksum.
    let planted = format!("{DIR}{date}/ferry-planted/rows.csv.gz");
    let data = data_file(&[Obj::new("secret/payroll.xlsx")]);
    let mut manifest = stored_manifest(&aws, date);
    manifest["files"] = serde_json::json!([
        {"key": planted, "size": data.len(), "MD5checksum": md5_hex(&data)}
    ]);
    aws.blobs
        .lock()
        .unwrap()
        .insert(format!("{INV_BUCKET}/{planted}"), data);
    let k = write_manifest(&aws, date, &manifest);
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(
        reason.contains(&planted) && reason.contains(&format!("{DIR}data/")),
        "{reason}"
    );
    a_real_inventory_still_runs(&aws, &fp, &tmp).await;
}

/// A manifest.json listing one data file twice (its rows would be read, and copied, twice over,
/// or a fan-out made of one file) is refused naming the file.
#[tokio::test]
async fn a_data_file_listed_twice_is_refused() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    deliver(&aws, date, 1_000, &base_objects());
    let mut manifest = stored_manifest(&aws, date);
    let file = manifest["files"][0].clone();
    manifest["files"] = serde_json::json!([file.clone(), file.clone()]);
    let k = write_manifest(&aws, date, &manifest);
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(
        reason.contains("more than once") && reason.contains(file["key"].as_str().unwrap()),
        "{reason}"
    );
    a_real_inventory_still_runs(&aws, &fp, &tmp).await;
}

#[tokio::test]
async fn an_inventory_naming_another_destination_bucket_is_refused() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    deliver(&aws, date, 1_000, &base_objects());
    let mut manifest = stored_manifest(&aws, date);
    manifest["destinationBucket"] = "arn:aws:s3:::attacker-inventory".into();
    let k = write_manifest(&aws, date, &manifest);
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(reason.contains("attacker-inventory"), "{reason}");
}

#[tokio::test]
async fn a_data_file_changed_after_the_inventory_was_written_is_refused() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    let k = deliver(&aws, date, 1_000, &base_objects());
    // The data file rewritten in place: other rows, same key; manifest.json untouched.
    let data_key = format!("{DIR}data/{date}.csv.gz");
    aws.blobs.lock().unwrap().insert(
        format!("{INV_BUCKET}/{data_key}"),
        data_file(&[Obj::new("secret/payroll.xlsx")]),
    );
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(
        reason.contains("files[].size") && reason.contains(&data_key),
        "{reason}"
    );
    // Rewritten to the same size (one byte changed): the MD5 tells.
    let date = "2026-11-23T02-00Z";
    let k = deliver(&aws, date, 1_000, &base_objects());
    let data_key = format!("{DIR}data/{date}.csv.gz");
    {
        let mut blobs = aws.blobs.lock().unwrap();
        let data = blobs.get_mut(&format!("{INV_BUCKET}/{data_key}")).unwrap();
        let middle = data.len() / 2;
        data[middle] ^= 0x55;
    }
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(
        reason.contains("MD5") && reason.contains(&data_key),
        "{reason}"
    );
    a_real_inventory_still_runs(&aws, &fp, &tmp).await;
}

#[tokio::test]
async fn a_manifest_json_that_is_not_the_one_its_checksum_names_is_refused() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    let k = deliver(&aws, date, 1_000, &base_objects());
    // manifest.json rewritten (one more data file), manifest.checksum left as S3 wrote it.
    let mut manifest = stored_manifest(&aws, date);
    let extra = format!("{DIR}data/extra.csv.gz");
    let data = data_file(&[Obj::new("secret/payroll.xlsx")]);
    manifest["files"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"key": extra, "size": data.len(), "MD5checksum": md5_hex(&data)}));
    {
        let mut blobs = aws.blobs.lock().unwrap();
        blobs.insert(format!("{INV_BUCKET}/{extra}"), data);
        blobs.insert(
            format!("{INV_BUCKET}/{DIR}{date}/manifest.json"),
            manifest.to_string().into_bytes(),
        );
    }
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(reason.contains("manifest.checksum"), "{reason}");
}

#[tokio::test]
async fn a_manifest_json_over_the_size_cap_is_refused() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    deliver(&aws, date, 1_000, &base_objects());
    // Valid JSON, its checksum right, but bigger than anything S3 Inventory writes (the SDK
    // adapter refuses it unread; this in-memory one hands it over, so the run checks too).
    let mut manifest = stored_manifest(&aws, date);
    manifest["padding"] = " ".repeat(MAX_SMALL_OBJECT_BYTES).into();
    let k = write_manifest(&aws, date, &manifest);
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(
        reason.contains("manifest.json") && reason.contains(&MAX_SMALL_OBJECT_BYTES.to_string()),
        "{reason}"
    );
}

/// The direct job reads the inventory's manifest.json itself. One rewritten after the run read
/// and checked it (while the data files were being read) must not be what the job gets.
#[tokio::test]
async fn the_direct_job_is_held_to_the_manifest_json_the_run_read() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    let k = deliver(&aws, date, 1_000, &base_objects());
    let manifest_key = format!("{DIR}{date}/manifest.json");
    let read = aws.blobs.lock().unwrap()[&format!("{INV_BUCKET}/{manifest_key}")].clone();
    let mut swapped = stored_manifest(&aws, date);
    swapped["files"][0]["key"] = format!("{DIR}data/planted.csv.gz").into();
    *aws.write_on_download.lock().unwrap() = Some((
        format!("{INV_BUCKET}/{manifest_key}"),
        swapped.to_string().into_bytes(),
    ));
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(reason.contains(&etag_of(&read)), "{reason}");

    // Unchanged, the job gets the ETag of what was read.
    let tmp2 = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let k = deliver(&aws, date, 1_000, &base_objects());
    let read = aws.blobs.lock().unwrap()[&format!("{INV_BUCKET}/{manifest_key}")].clone();
    let run = ran(event(&aws, &fp, &k, &tmp2).await);
    assert_eq!(run.jobs[0].kind, RunJobKind::CopyDirect);
    let request = aws.requests.lock().unwrap()[0].clone();
    assert_eq!(request.manifest.location.etag, etag_of(&read));
}

/// A first run committed through the job monitor, then a second inventory with `new` objects
/// added: the second run, its Copy job, and the inventory the next run will read.
async fn a_second_run_with(
    aws: &MemoryAws,
    fp: &str,
    tmp: &Path,
    new: &[&str],
) -> (
    ferry_flows::inventory::delta::RunRecord,
    ferry_flows::inventory::delta::RunRecord,
    Vec<Obj>,
) {
    let k1 = deliver(aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    let run1 = ran(event(aws, fp, &k1, tmp).await);
    let email = job_ends(aws, &run1.jobs[0].job_id, "Complete").await;
    assert!(
        email.contains("complete; the delta state now holds 20 object(s)"),
        "{email}"
    );
    let mut objs = base_objects();
    objs.extend(new.iter().map(|k| Obj::new(k)));
    let k2 = deliver(aws, "2026-11-24T01-00Z", 2_000, &objs);
    let run2 = ran(event(aws, fp, &k2, tmp).await);
    assert_eq!(run2.jobs.len(), 1);
    assert_eq!(run2.stats.copy.objects, new.len() as u64);
    (run1, run2, objs)
}

/// The committed run (`current.json`'s `run_id`).
fn committed_run(aws: &MemoryAws, fp: &str) -> String {
    let state = aws.state.lock().unwrap();
    let current: serde_json::Value =
        serde_json::from_slice(&state[&format!("inventory/{fp}/current.json")]).unwrap();
    current["run_id"].as_str().unwrap().to_string()
}

/// The report bucket can be written by others: a job with failed tasks whose completion report
/// was deleted must not commit its run as if every task succeeded (its failed objects would
/// enter the delta index and never be copied while unchanged). The run stays uncommitted, the
/// e-mail says why, and the next inventory's delta copies the run's objects again.
#[tokio::test]
async fn a_job_whose_report_was_deleted_does_not_commit_its_run() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let new = ["new/a.txt", "new/b.txt"];
    let (run1, run2, objs) = a_second_run_with(&aws, &fp, &tmp, &new).await;
    let job = &run2.jobs[0].job_id;

    // The job completes with one failed task; the attacker deletes the report before the
    // monitor reads it.
    aws.job_status
        .lock()
        .unwrap()
        .insert(job.clone(), "Complete".into());
    aws.job_failed
        .lock()
        .unwrap()
        .insert(job.clone(), vec!["new/a.txt".into()]);
    let (bucket, manifest_key) = report_manifest(job);
    assert!(aws
        .blobs
        .lock()
        .unwrap()
        .remove(&format!("{bucket}/{manifest_key}"))
        .is_none());
    monitor_hears(&aws, job, "Complete").await;
    // The delta base is still run 1.
    assert_eq!(committed_run(&aws, &fp), run1.run_id);

    let (subject, body) = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(
        subject.contains("inventory run NOT recorded as copied"),
        "{subject}"
    );
    for part in [
        format!("Inventory run {} is NOT recorded as copied", run2.run_id),
        format!("its completion report is missing: there is no s3://{bucket}/{manifest_key}"),
        "DescribeJob counts 1 failed task(s)".to_string(),
        "the next inventory copies this run's objects again".to_string(),
        format!("aws s3control describe-job --region us-east-1 --account-id 222222222222 --job-id {job}"),
    ] {
        assert!(body.contains(&part), "{part}:\n{body}");
    }
    // The job's end is recorded as unaccounted for.
    let result = aws.state.lock().unwrap()
        [&format!("inventory/{fp}/runs/{}/jobs/{job}.json", run2.run_id)]
        .clone();
    let result: serde_json::Value = serde_json::from_slice(&result).unwrap();
    assert!(
        result["unaccounted"]
            .as_str()
            .is_some_and(|w| w.contains("missing")),
        "{result}"
    );

    // The next inventory: both of run 2's objects are copied again, the failed one included.
    let k3 = deliver(&aws, "2026-11-25T01-00Z", 3_000, &objs);
    let run3 = ran(event(&aws, &fp, &k3, &tmp).await);
    assert_eq!(run3.previous_run_id.as_deref(), Some(run1.run_id.as_str()));
    assert_eq!(manifest_keys(&aws, &run3.jobs[0].manifest), new);
}

/// A report with failed rows removed, or padded with a repeated row so that it still has as
/// many rows as DescribeJob counts failed tasks: fewer distinct failed tasks than DescribeJob
/// counts, so the run is not committed and the next delta copies all its objects again.
#[tokio::test]
async fn a_report_with_failed_rows_removed_does_not_commit_its_run() {
    for (case, listed) in [
        ("removed", &["new/a.txt"][..]),
        ("repeated", &["new/a.txt", "new/a.txt"][..]),
    ] {
        let tmp = tempdir();
        let (aws, fp) = approved_stack(&spec());
        let new = ["new/a.txt", "new/b.txt", "new/c.txt"];
        let (run1, run2, objs) = a_second_run_with(&aws, &fp, &tmp, &new).await;
        let job = &run2.jobs[0].job_id;
        aws.job_status
            .lock()
            .unwrap()
            .insert(job.clone(), "Complete".into());
        aws.job_failed
            .lock()
            .unwrap()
            .insert(job.clone(), vec!["new/a.txt".into(), "new/b.txt".into()]);
        // The report as rewritten: new/b.txt's failed row is gone.
        write_report(&aws, job, listed);
        monitor_hears(&aws, job, "Complete").await;
        assert_eq!(committed_run(&aws, &fp), run1.run_id, "{case}");

        let body = aws.notes.lock().unwrap().last().cloned().unwrap().1;
        assert!(
            body.contains(
                "lists 1 distinct failed task(s) of s3://acme-media-prod, but DescribeJob counts 2"
            ),
            "{case}:\n{body}"
        );
        assert!(
            body.contains("is NOT recorded as copied"),
            "{case}:\n{body}"
        );

        // Not only the listed failed object: every object of run 2 is copied again.
        let k3 = deliver(&aws, "2026-11-25T01-00Z", 3_000, &objs);
        let run3 = ran(event(&aws, &fp, &k3, &tmp).await);
        assert_eq!(run3.previous_run_id.as_deref(), Some(run1.run_id.as_str()));
        assert_eq!(manifest_keys(&aws, &run3.jobs[0].manifest), new, "{case}");
    }
}

/// #16 item 1: a failed row that can't be read (its key doesn't URL-decode, or the row is cut)
/// can't take its object out of the index, so the run is not committed and the next
/// inventory copies the run's objects again.
#[tokio::test]
async fn a_report_with_an_unreadable_failed_row_does_not_commit_its_run() {
    for (case, unreadable_row) in [
        (
            "undecodable key",
            "acme-media-prod,new/b%ZZ.txt,,failed,403,AccessDenied,Access Denied\n",
        ),
        ("no status", "acme-media-prod,new%2Fb.txt\n"),
    ] {
        let tmp = tempdir();
        let (aws, fp) = approved_stack(&spec());
        let new = ["new/a.txt", "new/b.txt", "new/c.txt"];
        let (run1, run2, objs) = a_second_run_with(&aws, &fp, &tmp, &new).await;
        let job = &run2.jobs[0].job_id;
        aws.job_status
            .lock()
            .unwrap()
            .insert(job.clone(), "Complete".into());
        aws.job_failed
            .lock()
            .unwrap()
            .insert(job.clone(), vec!["new/a.txt".into(), "new/b.txt".into()]);
        write_report(&aws, job, &["new/a.txt"]);
        let (bucket, manifest_key) = report_manifest(job);
        let results_key = format!(
            "{bucket}/{}",
            manifest_key.replace("manifest.json", "results/failed.csv")
        );
        aws.blobs
            .lock()
            .unwrap()
            .get_mut(&results_key)
            .unwrap()
            .extend_from_slice(unreadable_row.as_bytes());
        monitor_hears(&aws, job, "Complete").await;
        assert_eq!(committed_run(&aws, &fp), run1.run_id, "{case}");
        let body = aws.notes.lock().unwrap().last().cloned().unwrap().1;
        assert!(
            body.contains("is NOT recorded as copied"),
            "{case}:\n{body}"
        );
        let k3 = deliver(&aws, "2026-11-25T01-00Z", 3_000, &objs);
        let run3 = ran(event(&aws, &fp, &k3, &tmp).await);
        assert_eq!(manifest_keys(&aws, &run3.jobs[0].manifest), new, "{case}");
    }
}

/// #16 items 6 and 10: a summary that could not be e-mailed is not recorded as announced: the
/// mark goes back and Lambda's retry announces (and commits the run); a mark that can't be
/// taken back is said in the error, never swallowed.
#[tokio::test]
async fn a_summary_that_could_not_be_sent_is_announced_by_the_retry_or_said() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let (_, run2, _) = a_second_run_with(&aws, &fp, &tmp, &["new/a.txt"]).await;
    let job = run2.jobs[0].job_id.clone();
    aws.job_status
        .lock()
        .unwrap()
        .insert(job.clone(), "Complete".into());
    aws.job_failed.lock().unwrap().insert(job.clone(), vec![]);
    write_report(&aws, &job, &[]);
    let event = JobStatusEvent {
        account_id: "222222222222".into(),
        region: "us-east-1".into(),
        job_id: job.clone(),
        status: "Complete".into(),
        failure_codes: Vec::new(),
        status_change_reason: Vec::new(),
    };
    let ctx = MonitorContext {
        state_bucket: "ferry-state".into(),
        approval_topic_arn: "arn:aws:sns:us-east-1:222222222222:ferry-approvals".into(),
        now_unix: 1_795_500_000,
    };
    let notes_before = aws.notes.lock().unwrap().len();

    // The mark can't be deleted: the error names it and is not a "retry".
    *aws.fail_notify.lock().unwrap() = 1;
    aws.failing_deletes
        .lock()
        .unwrap()
        .push(".announced".to_string());
    let e = on_job_status_changed(&aws, &event, &ctx).await.unwrap_err();
    let MonitorError::UndoFailed { undo, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains(&undo[0].key), "{e}");
    assert!(aws.state.lock().unwrap().contains_key(&undo[0].key));
    aws.state.lock().unwrap().remove(&undo[0].key);
    aws.failing_deletes.lock().unwrap().clear();

    // The mark goes back: the retry announces and commits.
    *aws.fail_notify.lock().unwrap() = 1;
    let e = on_job_status_changed(&aws, &event, &ctx).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(aws.notes.lock().unwrap().len(), notes_before);
    assert!(matches!(
        on_job_status_changed(&aws, &event, &ctx).await.unwrap(),
        MonitorOutcome::Summarised(_)
    ));
    assert_eq!(aws.notes.lock().unwrap().len(), notes_before + 1);
    assert_eq!(committed_run(&aws, &fp), run2.run_id);
}

/// The report accounts for every failed task: the run commits without the failed objects, and
/// the next delta copies exactly those again.
#[tokio::test]
async fn a_complete_report_commits_the_run_without_its_failed_objects() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let (_, run2, objs) = a_second_run_with(&aws, &fp, &tmp, &["new/a.txt", "new/b.txt"]).await;
    let email = job_ends_failing(&aws, &run2.jobs[0].job_id, "Complete", &["new/a.txt"]).await;
    assert!(
        email.contains(
            "complete; the delta state now holds 21 object(s), leaving out 1 whose task failed"
        ),
        "{email}"
    );
    assert_eq!(committed_run(&aws, &fp), run2.run_id);
    let k3 = deliver(&aws, "2026-11-25T01-00Z", 3_000, &objs);
    let run3 = ran(event(&aws, &fp, &k3, &tmp).await);
    assert_eq!(manifest_keys(&aws, &run3.jobs[0].manifest), ["new/a.txt"]);
}

/// job-monitor can be invoked with a hand-made event: one saying "Complete" for a job that
/// DescribeJob says is still running records nothing and commits nothing.
#[tokio::test]
async fn a_hand_made_complete_event_for_a_running_job_commits_nothing() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let (run1, run2, _) = a_second_run_with(&aws, &fp, &tmp, &["new/a.txt"]).await;
    let job = &run2.jobs[0].job_id;
    let outcome = monitor_hears(&aws, job, "Complete").await;
    assert_eq!(
        outcome,
        MonitorOutcome::Ignored {
            status: "Active".into()
        }
    );
    assert_eq!(committed_run(&aws, &fp), run1.run_id);
    assert!(!aws.state.lock().unwrap().contains_key(&format!(
        "inventory/{fp}/runs/{}/jobs/{job}.json",
        run2.run_id
    )));
}

/// The delta logic itself: a job recorded as unaccounted keeps its run from committing even
/// when every other job of the run completes with its failed tasks accounted for, in either
/// order.
#[tokio::test]
async fn an_unaccounted_job_keeps_its_run_from_committing_whatever_the_other_jobs_do() {
    for unaccounted_first in [true, false] {
        let tmp = tempdir();
        let (aws, fp) = approved_stack(&spec());
        let k1 = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
        let run1 = ran(event(&aws, &fp, &k1, &tmp).await);
        job_finished(&aws, &run1.jobs[0].job_id, "Complete", &[])
            .await
            .unwrap();
        let mut objs = base_objects();
        objs.push(Obj::new("new/plain.txt"));
        objs.push(Obj::new("video/huge.mov").size(6 * GIB));
        let k2 = deliver(&aws, "2026-11-24T01-00Z", 2_000, &objs);
        let run2 = ran(event(&aws, &fp, &k2, &tmp).await);
        assert_eq!(run2.jobs.len(), 2);
        let (copy, large) = (&run2.jobs[0].job_id, &run2.jobs[1].job_id);
        let why = "its completion report is missing";
        let unaccounted =
            || job_finished_with(&aws, copy, "Complete", FailedTasks::Unaccounted(why));
        let accounted = || job_finished_with(&aws, large, "Complete", FailedTasks::Accounted(&[]));
        let last = if unaccounted_first {
            let first = unaccounted().await.unwrap();
            assert!(
                matches!(&first, JobFinished::NotAccounted { job_id, .. } if job_id == copy),
                "{first:?}"
            );
            accounted().await.unwrap()
        } else {
            let first = accounted().await.unwrap();
            assert!(
                matches!(first, JobFinished::Waiting { remaining: 1, .. }),
                "{first:?}"
            );
            unaccounted().await.unwrap()
        };
        match last {
            JobFinished::NotAccounted {
                run_id,
                job_id,
                why: w,
            } => {
                assert_eq!(
                    (run_id.as_str(), job_id.as_str(), w.as_str()),
                    (run2.run_id.as_str(), copy.as_str(), why)
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(committed_run(&aws, &fp), run1.run_id);
        // Called again (a redelivered event), still nothing committed.
        assert!(matches!(
            accounted().await.unwrap(),
            JobFinished::NotAccounted { .. }
        ));
        assert_eq!(committed_run(&aws, &fp), run1.run_id);
    }
}

/// The plan's own inventory (the one its e-mails named, FirstJob's first run) is held to the
/// manifest ETag the approval recorded (#15 item 13): a manifest.json rewritten since (with a
/// matching manifest.checksum and data files) is refused, and the approved one still runs.
#[tokio::test]
async fn the_plans_own_inventory_rewritten_after_the_approval_is_refused() {
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let date = "2026-11-23T01-00Z";
    assert_eq!(spec.manifest.key, format!("{DIR}{date}/manifest.json"));
    deliver(&aws, date, 1_000, &base_objects());
    let approved =
        etag_of(&aws.blobs.lock().unwrap()[&format!("{INV_BUCKET}/{}", spec.manifest.key)]);
    aws.state.lock().unwrap().insert(
        format!("decisions/{fp}.json"),
        serde_json::to_vec(&serde_json::json!({
            "decision": "approve", "plan_fingerprint": fp, "at_unix": 1,
            "manifest_etag": format!("\"{approved}\""),
        }))
        .unwrap(),
    );
    let mut forged = base_objects();
    forged.push(Obj::new("secret/payroll.csv"));
    let key = deliver(&aws, date, 1_000, &forged);
    match event(&aws, &fp, &key, &tmp).await {
        RunOutcome::Refused { reason, .. } => {
            assert!(
                reason.contains("the approval was given for ETag"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(aws.requests.lock().unwrap().is_empty(), "nothing launched");
    // The approved bytes back: the run goes ahead.
    let key = deliver(&aws, date, 1_000, &base_objects());
    let run = ran(event(&aws, &fp, &key, &tmp).await);
    assert_eq!(run.stats.copy.objects, 20);
}

/// #18: indexes stored before the sharded layout (one `index.bin` named by `index_key`) are
/// still the delta base, and are rewritten in shards on first use.
#[tokio::test]
async fn a_layout_1_index_is_the_delta_base_and_is_migrated_on_first_use() {
    use ferry_flows::inventory::delta::{current_index, keys};
    let tmp = tempdir();
    let spec = spec();
    let (aws, fp) = approved_stack(&spec);
    let k1 = deliver(&aws, "2026-11-23T01-00Z", 1_000, &base_objects());
    let run1 = ran(event(&aws, &fp, &k1, &tmp).await);
    job_ends(&aws, &run1.jobs[0].job_id, "Complete").await;
    // Put the committed index back in layout 1, as a Ferry before #18 left it.
    let (current, index) = current_index(&aws, &fp).await.unwrap().unwrap();
    assert!(current.index.is_some() && current.index_key.is_none());
    let old_key = keys::pending_index(&fp, &run1.run_id);
    aws.put(&old_key, index.to_bytes()).await.unwrap();
    let layout1 = serde_json::json!({
        "run_id": run1.run_id,
        "manifest_key": current.manifest_key,
        "creation_timestamp_ms": current.creation_timestamp_ms,
        "index_key": old_key,
        "objects": index.len(),
    });
    aws.put(&keys::current(&fp), layout1.to_string().into_bytes())
        .await
        .unwrap();

    // Day 2: two objects changed. The delta is taken against the layout-1 index...
    let mut objs = base_objects();
    objs[3] = objs[3].clone().size(1_234);
    objs[7] = objs[7].clone().size(5_678);
    let k2 = deliver(&aws, "2026-11-24T01-00Z", 2_000, &objs);
    let run2 = ran(event(&aws, &fp, &k2, &tmp).await);
    assert_eq!(run2.stats.copy.objects, 2);
    assert_eq!(run2.stats.skipped(SkipReason::Unchanged).objects, 18);
    assert_eq!(
        manifest_keys(&aws, &run2.jobs[0].manifest),
        ["photos/003.jpg", "photos/007.jpg"]
    );
    // ...which current.json now names in shards, with the same objects.
    let migrated: serde_json::Value =
        serde_json::from_slice(&aws.get(&keys::current(&fp)).await.unwrap().unwrap()).unwrap();
    assert!(migrated.get("index_key").is_none(), "{migrated}");
    assert_eq!(migrated["run_id"], run1.run_id.as_str());
    let shard = migrated["index"]["shards"][0]["key"].as_str().unwrap();
    assert!(
        shard.starts_with(&keys::migrated_index_dir(&fp, &run1.run_id)),
        "{shard}"
    );
    let (_, again) = current_index(&aws, &fp).await.unwrap().unwrap();
    assert_eq!(again, index);
    // And the run's own pending index is in shards too.
    assert!(run2.index.is_some() && run2.index_key.is_none());
}

/// A sharded index is read whole or not at all: a missing shard, a shard swapped with another
/// or a record naming a key outside the transfer's state is refused, never read as fewer
/// objects (which would make the next delta copy again what it lost — or, read as more, skip).
#[tokio::test]
async fn a_sharded_index_missing_a_shard_or_pointing_elsewhere_is_refused() {
    use ferry_flows::inventory::delta::{read_stored_index, write_index_in_shards, DeltaError};
    use ferry_listings::inventory::index::{EntryHasher, ObjectIndex};
    let aws = MemoryAws::default();
    let fp = "f".repeat(64);
    let mut h = EntryHasher::new();
    let index = ObjectIndex::from_entries(
        (0..500)
            .map(|i| h.entry(&format!("k{i}"), None, Some("e"), Some(i)))
            .collect(),
    )
    .unwrap();
    let dir = format!("inventory/{fp}/runs/r/index/");
    let stored = write_index_in_shards(&aws, &dir, &index, 3).await.unwrap();
    assert_eq!(stored.shards.len(), 8);
    assert_eq!(read_stored_index(&aws, &fp, &stored).await.unwrap(), index);

    let mut swapped = stored.clone();
    swapped.shards.swap(2, 5);
    let (a, b) = (swapped.shards[2].objects, swapped.shards[5].objects);
    swapped.shards[2].objects = b;
    swapped.shards[5].objects = a;
    assert!(matches!(
        read_stored_index(&aws, &fp, &swapped).await,
        Err(DeltaError::Index { .. })
    ));
    let mut elsewhere = stored.clone();
    elsewhere.shards[0].key = "approvals/x.bin".into();
    assert!(matches!(
        read_stored_index(&aws, &fp, &elsewhere).await,
        Err(DeltaError::Corrupt { message, .. }) if message.contains("outside")
    ));
    let mut short = stored.clone();
    short.shards.pop();
    assert!(matches!(
        read_stored_index(&aws, &fp, &short).await,
        Err(DeltaError::Corrupt { .. })
    ));
    aws.delete(&stored.shards[4].key).await.unwrap();
    assert!(matches!(
        read_stored_index(&aws, &fp, &stored).await,
        Err(DeltaError::Corrupt { message, .. }) if message.contains("missing")
    ));
}

/// #18 item 5: a run that would not finish reading before the function's timeout stops and
/// says so (killed mid-way, its claim would turn the event's retries away unsaid), and a data
/// file larger than the work directory may hold is refused by name; neither launches anything
/// or moves the delta base.
#[tokio::test]
async fn a_run_that_would_outlast_the_function_or_its_disk_is_refused_and_said() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let files: Vec<Vec<Obj>> = (0..3)
        .map(|f| vec![Obj::new(&format!("f{f}.jpg"))])
        .collect();
    let k = deliver_files(&aws, "2026-11-23T01-00Z", 1_000, SCHEMA, &files);
    let mut late = settings(&tmp);
    late.scan_threads = 1;
    late.deadline = Some(std::time::Instant::now() + Duration::from_secs(30));
    let outcome = handle_inventory(&aws, &fp, INV_BUCKET, &[k], &late)
        .await
        .unwrap();
    let RunOutcome::Refused { reason, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("before the function's timeout"), "{reason}");
    assert!(reason.contains("InventoryHandlerMemoryMB"), "{reason}");
    assert!(aws.requests.lock().unwrap().is_empty());
    assert_eq!(aws.notes.lock().unwrap().len(), 1, "e-mailed once");

    let k = deliver_files(&aws, "2026-11-24T01-00Z", 2_000, SCHEMA, &files);
    let mut small_disk = settings(&tmp);
    small_disk.work_dir_bytes = 100;
    let outcome = handle_inventory(&aws, &fp, INV_BUCKET, &[k], &small_disk)
        .await
        .unwrap();
    let RunOutcome::Refused { reason, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("2026-11-24T01-00Z-0.csv.gz") && reason.contains("FERRY_WORK_DIR_BYTES"),
        "{reason}"
    );
    assert!(aws.requests.lock().unwrap().is_empty());
    assert!(aws
        .get(&format!("inventory/{fp}/current.json"))
        .await
        .unwrap()
        .is_none());
}

/// #18 review: a data file larger than its `files[].size` (which the batch's disk budget was
/// counted with) is stopped at that size and refused by name, never downloaded whole.
#[tokio::test]
async fn a_data_file_larger_than_its_listed_size_is_refused_unread() {
    let tmp = tempdir();
    let (aws, fp) = approved_stack(&spec());
    let date = "2026-11-23T01-00Z";
    deliver(&aws, date, 1_000, &base_objects());
    let mut manifest = stored_manifest(&aws, date);
    manifest["files"][0]["size"] = 10.into();
    let k = write_manifest(&aws, date, &manifest);
    let reason = refused(&aws, &fp, &k, &tmp).await;
    assert!(
        reason.contains("larger than manifest.json's files[].size says (10 bytes"),
        "{reason}"
    );
    assert!(aws.requests.lock().unwrap().is_empty());
}
