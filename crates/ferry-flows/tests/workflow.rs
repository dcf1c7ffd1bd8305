//! The stack's workflows end to end against an in-memory AWS: set-up, approval (wait and
//! deferred), rejection, forged and reused tokens, the hand-over before a wait times out,
//! updates, and teardown that never stops a running copy.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ferry_flows::aws_error::{AwsCallError, AwsCaused, AwsErrorKind, RetryPolicy};
use ferry_flows::ports::{
    InventoryRunTrigger, JobControl, Notifier, RoleAdmin, StateStore, WaitConditionSignal,
    WaitSignal, WaitStatus,
};
use ferry_flows::ports::{KeyInfo, PreflightApi};
use ferry_flows::ports::{LaunchApi, ManifestHead};
use ferry_flows::workflow::{
    create_transfer, delete_jobs, delete_transfer, first_job, handle_approval,
    handle_approval_from, launch_job, release_expiring_waits, start_first_copy, update_transfer,
    ApprovalOutcome, CurrentPlan, Publisher, StackContext, StoredPlan, WorkflowError,
    AWAITING_APPROVAL, INVENTORY_RUN_STARTED, NOT_THE_CURRENT_PLAN, RESEND_INTERVAL_SECONDS,
};
use ferry_plan::approval::{keys, ApprovalRecord, ApprovalToken};
use ferry_plan::job::{CreateJobRequest, S3Tag};
use ferry_plan::policy::batch_role::BatchRole;
use ferry_plan::stack::{ApprovalMode, TransferPlanProperties};
use ferry_plan::{Plan, TransferSpec};

#[derive(Default)]
struct MemoryAws {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    notes: Mutex<Vec<(String, String)>>,
    roles: Mutex<BTreeMap<String, BatchRole>>,
    signals: Mutex<Vec<(String, WaitConditionSignal)>>,
    jobs: Mutex<BTreeMap<String, String>>,
    job_status: Mutex<BTreeMap<String, String>>,
    cancelled: Mutex<Vec<String>>,
    fail_create_job: Mutex<Option<AwsCallError>>,
    /// Bucket → region S3 would name; absent buckets don't exist.
    buckets: Mutex<Option<BTreeMap<String, String>>>,
    fail_bucket_region: Mutex<Option<AwsCallError>>,
    /// Events handed to inventory-handler (Lambda Invoke, Event).
    inventory_runs: Mutex<Vec<serde_json::Value>>,
    /// Job id → tags, as CreateJob set them.
    job_tags: Mutex<BTreeMap<String, Vec<S3Tag>>>,
    /// The manifest's ETag as HeadObject answers it (default `"e7a5"`).
    manifest_etag: Mutex<Option<String>>,
    /// The manifest's version id as HeadObject answers it (default none: unversioned).
    manifest_version: Mutex<Option<String>>,
    /// HeadObject of the manifest answers 404 (not uploaded yet).
    manifest_missing: Mutex<bool>,
    /// Every CreateJob request, in order.
    create_job_requests: Mutex<Vec<CreateJobRequest>>,
    /// The WaitCondition was already completed by another signal, and FirstJob ran.
    wait_already_ended: Mutex<bool>,
    /// State keys whose DeleteObject fails (500 InternalError), as S3's may.
    failing_deletes: Mutex<Vec<String>>,
    /// The next this many DeleteObject calls fail (500), whatever the key.
    delete_failures_left: Mutex<u32>,
    /// The next this many SNS Publish calls are throttled.
    notify_failures_left: Mutex<u32>,
}

impl MemoryAws {
    fn delete_fault(&self, key: &str) -> Result<(), AwsCallError> {
        let once = {
            let mut left = self.delete_failures_left.lock().unwrap();
            let fire = *left > 0;
            *left = left.saturating_sub(1);
            fire
        };
        if once
            || self
                .failing_deletes
                .lock()
                .unwrap()
                .iter()
                .any(|k| k == key)
        {
            return Err(AwsCallError {
                kind: AwsErrorKind::Transient,
                code: "InternalError".into(),
                message: format!("We encountered an internal error deleting {key}"),
            });
        }
        Ok(())
    }
}

impl InventoryRunTrigger for MemoryAws {
    async fn start_inventory_run(&self, event: &serde_json::Value) -> Result<(), AwsCallError> {
        self.inventory_runs.lock().unwrap().push(event.clone());
        Ok(())
    }
}

impl StateStore for MemoryAws {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsCallError> {
        self.objects.lock().unwrap().insert(key.to_string(), body);
        Ok(())
    }
    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<bool, AwsCallError> {
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_string(), body);
        Ok(true)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsCallError> {
        // As a real listing would: concurrent workflows interleave here.
        tokio::task::yield_now().await;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<(), AwsCallError> {
        self.delete_fault(key)?;
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}

impl Notifier for MemoryAws {
    async fn notify(&self, subject: &str, body: &str) -> Result<(), AwsCallError> {
        {
            let mut failing = self.notify_failures_left.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(AwsCallError {
                    kind: AwsErrorKind::Throttled,
                    code: "Throttling".into(),
                    message: "Rate exceeded".into(),
                });
            }
        }
        self.notes
            .lock()
            .unwrap()
            .push((subject.to_string(), body.to_string()));
        Ok(())
    }
}

impl RoleAdmin for MemoryAws {
    async fn apply_role(&self, role: &BatchRole) -> Result<(), AwsCallError> {
        self.roles
            .lock()
            .unwrap()
            .insert(role.name.clone(), role.clone());
        Ok(())
    }
    async fn delete_role(&self, role: &BatchRole) -> Result<(), AwsCallError> {
        self.roles.lock().unwrap().remove(&role.name);
        Ok(())
    }
}

impl WaitSignal for MemoryAws {
    async fn signal(&self, url: &str, signal: &WaitConditionSignal) -> Result<(), AwsCallError> {
        self.signals
            .lock()
            .unwrap()
            .push((url.to_string(), signal.clone()));
        // A wait that another signal already ended: FirstJob ran and marked it over.
        if *self.wait_already_ended.lock().unwrap() {
            let mut objects = self.objects.lock().unwrap();
            for (key, body) in objects.iter_mut() {
                if key.starts_with("approvals/") && key.ends_with(".json") {
                    let mut record: ApprovalRecord = serde_json::from_slice(body).unwrap();
                    record.wait_released = true;
                    *body = serde_json::to_vec(&record).unwrap();
                }
            }
        }
        Ok(())
    }
}

impl LaunchApi for MemoryAws {
    async fn head_manifest(&self, _bucket: &str, _key: &str) -> Result<ManifestHead, AwsCallError> {
        if *self.manifest_missing.lock().unwrap() {
            return Err(AwsCallError {
                kind: AwsErrorKind::NotFound,
                code: "NotFound".into(),
                message: "Not Found".into(),
            });
        }
        let etag = self.manifest_etag.lock().unwrap().clone();
        Ok(ManifestHead {
            etag: etag.unwrap_or_else(|| "\"e7a5\"".to_string()),
            version_id: self.manifest_version.lock().unwrap().clone(),
            size: Some(1234),
            last_modified: Some("2026-11-24T01:00:00Z".into()),
            ..ManifestHead::default()
        })
    }
    async fn get_manifest(
        &self,
        _bucket: &str,
        _key: &str,
        _etag: &str,
    ) -> Result<Vec<u8>, AwsCallError> {
        // The example's inventory lists current versions.
        Ok(serde_json::json!({
            "sourceBucket": "acme-ledger-prod",
            "destinationBucket": "arn:aws:s3:::acme-vault-inventory",
            "version": "2016-11-30",
            "creationTimestamp": "1795000000000",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
            "files": [{"key": "inventory/acme-ledger-prod/daily/data/a.csv.gz", "size": 10, "MD5checksum": "0"}]
        })
        .to_string()
        .into_bytes())
    }
    async fn create_job(&self, request: &CreateJobRequest) -> Result<String, AwsCallError> {
        if let Some(e) = self.fail_create_job.lock().unwrap().take() {
            return Err(e);
        }
        self.create_job_requests
            .lock()
            .unwrap()
            .push(request.clone());
        let mut jobs = self.jobs.lock().unwrap();
        let n = jobs.len();
        let id = jobs
            .entry(request.client_request_token.clone())
            .or_insert_with(|| format!("job-{n}"))
            .clone();
        self.job_tags
            .lock()
            .unwrap()
            .insert(id.clone(), request.tags.clone());
        self.job_status
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_insert_with(|| "Suspended".to_string());
        Ok(id)
    }
    async fn pause(&self, _duration: Duration) {}
}

/// Preflight sees the roles `RoleAdmin` created, the example's buckets in their regions (unless a
/// test sets `buckets`), ACLs disabled, and enabled customer managed keys.
impl PreflightApi for MemoryAws {
    async fn role_documents(
        &self,
        role_name: &str,
        _policy_name: &str,
    ) -> Result<Option<(String, Option<String>)>, AwsCallError> {
        Ok(self.roles.lock().unwrap().get(role_name).map(|r| {
            (
                serde_json::to_string(&r.trust_policy).unwrap(),
                Some(serde_json::to_string(&r.permissions_policy).unwrap()),
            )
        }))
    }
    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>, AwsCallError> {
        if let Some(e) = self.fail_bucket_region.lock().unwrap().take() {
            return Err(e);
        }
        let buckets = self.buckets.lock().unwrap().clone().unwrap_or_else(|| {
            let s = spec();
            [
                (s.source.bucket.clone(), s.source.region.clone()),
                (s.destination.bucket.clone(), s.destination.region.clone()),
                (s.manifest.bucket.clone(), s.manifest_region().to_string()),
                (s.report.bucket.clone(), s.report_region().to_string()),
            ]
            .into_iter()
            .collect()
        });
        match buckets.get(bucket) {
            Some(region) => Ok(Some(region.clone())),
            None => Err(AwsCallError {
                kind: AwsErrorKind::NotFound,
                code: "NotFound".into(),
                message: "Not Found".into(),
            }),
        }
    }
    async fn object_ownership(&self, _bucket: &str) -> Result<Option<String>, AwsCallError> {
        Ok(Some("BucketOwnerEnforced".into()))
    }
    async fn describe_key(&self, _key_arn: &str) -> Result<KeyInfo, AwsCallError> {
        Ok(KeyInfo {
            enabled: true,
            manager: "CUSTOMER".into(),
        })
    }
}

impl JobControl for MemoryAws {
    async fn job_status(&self, _account_id: &str, job_id: &str) -> Result<String, AwsCallError> {
        Ok(self
            .job_status
            .lock()
            .unwrap()
            .get(job_id)
            .cloned()
            .unwrap_or_default())
    }
    async fn job_tags(&self, _account_id: &str, job_id: &str) -> Result<Vec<S3Tag>, AwsCallError> {
        Ok(self
            .job_tags
            .lock()
            .unwrap()
            .get(job_id)
            .cloned()
            .unwrap_or_default())
    }
    async fn cancel_job(&self, _account_id: &str, job_id: &str) -> Result<(), AwsCallError> {
        self.cancelled.lock().unwrap().push(job_id.to_string());
        self.job_status
            .lock()
            .unwrap()
            .insert(job_id.to_string(), "Cancelled".to_string());
        Ok(())
    }
}

const NOW: u64 = 1_795_500_000;
const HANDLE: &str = "https://cloudformation-waitcondition-eu-west-1.s3.amazonaws.com/arn%3Aaws%3Acloudformation/handle?X-Amz-Signature=x";

fn spec() -> TransferSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kms-inventory.toml");
    TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn props(mode: ApprovalMode) -> TransferPlanProperties {
    TransferPlanProperties {
        spec: spec(),
        approval_mode: mode,
        wait_handle_url: (mode == ApprovalMode::Wait).then(|| HANDLE.to_string()),
        approval_timeout_seconds: 43_200,
    }
}

fn ctx(now: u64) -> StackContext {
    StackContext {
        approval_topic_arn: "arn:aws:sns:eu-west-1:222222222222:ferry-approvals".into(),
        now_unix: now,
        retry: RetryPolicy::default(),
    }
}

fn token(n: u8) -> ApprovalToken {
    ApprovalToken::from_random_bytes([n; 32])
}

fn approve(t: &ApprovalToken) -> String {
    format!(r#"{{"action":"approve","token":"{}"}}"#, t.expose())
}

#[tokio::test]
async fn create_applies_the_plans_role_stores_the_plan_and_emails_the_token() {
    let aws = MemoryAws::default();
    let t = token(1);
    let ready = create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    let plan = Plan::build(&spec()).unwrap();
    assert_eq!(ready.fingerprint, plan.transfer.fingerprint);
    assert_eq!(
        aws.roles.lock().unwrap()["ferry-ledger-batch"],
        plan.batch_role
    );

    let objects = aws.objects.lock().unwrap();
    assert!(objects.contains_key(&keys::plan(&ready.fingerprint)));
    let record: ApprovalRecord =
        serde_json::from_slice(&objects[&keys::approval(&t.hash())]).unwrap();
    assert_eq!(record.wait_deadline, Some(NOW + 43_200));
    assert_eq!(record.wait_handle_url.as_deref(), Some(HANDLE));
    for (key, body) in objects.iter() {
        assert!(
            !String::from_utf8_lossy(body).contains(t.expose()),
            "token stored in {key}"
        );
    }
    // #15: two e-mails. The instructions, meant to be forwarded to the source account, carry no
    // token; the token comes alone in the second.
    let notes = aws.notes.lock().unwrap();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(notes[0].0.contains("approve copying"), "{:?}", notes[0].0);
    assert!(
        !notes[0].1.contains(t.expose()),
        "the instructions e-mail carries the token"
    );
    assert!(notes[0].1.contains("put-bucket-policy"), "the instructions");
    assert!(notes[1].0.contains("approval token"), "{:?}", notes[1].0);
    assert!(
        notes[1].1.contains(t.expose()),
        "the token e-mail carries the token"
    );
    assert!(!notes[1].1.contains("put-bucket-policy"));
}

#[tokio::test]
async fn wait_mode_approval_signals_the_stack_then_first_job_launches() {
    let aws = MemoryAws::default();
    let t = token(2);
    let ready = create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap();
    assert_eq!(outcome, ApprovalOutcome::WaitSignalled);
    let signals = aws.signals.lock().unwrap().clone();
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].0, HANDLE);
    assert_eq!(signals[0].1.status, WaitStatus::Success);
    assert_eq!(
        serde_json::to_value(&signals[0].1).unwrap(),
        serde_json::json!({"Status":"SUCCESS","UniqueId":"approval","Data":"approved","Reason":"approved by the approval topic"})
    );

    // CloudFormation then creates FirstJob with the WaitCondition's data.
    let job = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"approved"}"#,
        false,
        &ctx(NOW + 70),
    )
    .await
    .unwrap();
    assert_eq!(job, "job-0");
    assert!(aws
        .objects
        .lock()
        .unwrap()
        .contains_key(&keys::job(&ready.fingerprint, "job-0")));
    let last = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.1.contains("--requested-job-status Ready"),
        "confirmation command: {}",
        last.1
    );
}

/// An `[inventory]` transfer (examples/inventory-driven.toml, deferred approval).
fn inventory_props() -> TransferPlanProperties {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/inventory-driven.toml");
    let spec = TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(spec.inventory.is_some() && spec.filter.is_some());
    TransferPlanProperties {
        spec,
        ..props(ApprovalMode::Deferred)
    }
}

/// Preflight's view of `spec`'s buckets: all in the source Region.
fn buckets_of(aws: &MemoryAws, spec: &TransferSpec) {
    *aws.buckets.lock().unwrap() = Some(
        [
            &spec.source.bucket,
            &spec.destination.bucket,
            &spec.manifest.bucket,
            &spec.report.bucket,
        ]
        .into_iter()
        .map(|b| (b.clone(), spec.source.region.clone()))
        .collect(),
    );
}

/// The first copy of an `[inventory]` transfer is an inventory run of the approved inventory,
/// started in inventory-handler: no job is launched on its manifest.json (which would copy what
/// the filter excludes, and leave the next run no delta base).
#[tokio::test]
async fn an_inventory_transfer_starts_with_an_inventory_run_not_a_job() {
    let aws = MemoryAws::default();
    let t = token(12);
    let props = inventory_props();
    buckets_of(&aws, &props.spec);
    create_transfer(&aws, &props, &t, &ctx(NOW)).await.unwrap();
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ApprovalOutcome::InventoryRunStarted {
            manifest_key: props.spec.manifest.key.clone()
        }
    );
    assert!(aws.jobs.lock().unwrap().is_empty(), "no job of its own");
    let runs = aws.inventory_runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    let checksum_key = props
        .spec
        .manifest
        .key
        .replace("/manifest.json", "/manifest.checksum");
    assert_eq!(runs[0]["detail-type"], "Object Created");
    assert_eq!(
        runs[0]["detail"]["bucket"]["name"],
        props.spec.manifest.bucket.as_str()
    );
    assert_eq!(runs[0]["detail"]["object"]["key"], checksum_key.as_str());
    // inventory-handler reads that event as one for this inventory's manifest.checksum.
    assert_eq!(
        ferry_flows::inventory::event::parse_event(&runs[0]),
        vec![
            ferry_flows::inventory::event::InventoryEvent::ObjectCreated {
                bucket: props.spec.manifest.bucket.clone(),
                keys: vec![checksum_key],
            }
        ]
    );
    let last = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(last.0.contains("first inventory run requested"), "{last:?}");
}

/// FirstJob (wait mode) does the same, answers that the run was started, and once the run has
/// recorded its job, answers that job.
#[tokio::test]
async fn first_job_of_an_inventory_transfer_starts_the_run_then_answers_its_job() {
    let aws = MemoryAws::default();
    let props = TransferPlanProperties {
        approval_mode: ApprovalMode::Wait,
        wait_handle_url: Some(HANDLE.to_string()),
        ..inventory_props()
    };
    buckets_of(&aws, &props.spec);
    let ready = create_transfer(&aws, &props, &token(13), &ctx(NOW))
        .await
        .unwrap();
    let signalled = handle_approval(&aws, &approve(&token(13)), &token(99), &ctx(NOW))
        .await
        .unwrap();
    assert_eq!(signalled, ApprovalOutcome::WaitSignalled);
    let answer = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"approved"}"#,
        false,
        &ctx(NOW),
    )
    .await
    .unwrap();
    assert_eq!(answer, INVENTORY_RUN_STARTED);
    assert_eq!(aws.inventory_runs.lock().unwrap().len(), 1);
    assert!(aws.jobs.lock().unwrap().is_empty());
    // The run launched and recorded its job: FirstJob (on an unchanged update, say) answers it.
    let record = serde_json::json!({"job_id": "run-job-1", "plan_fingerprint": ready.fingerprint,
        "account_id": "222222222222", "region": "eu-west-1", "manifest_etag": "e",
        "client_request_token": "t"});
    aws.objects.lock().unwrap().insert(
        keys::job(&ready.fingerprint, "run-job-1"),
        serde_json::to_vec(&record).unwrap(),
    );
    let again = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"approved"}"#,
        false,
        &ctx(NOW),
    )
    .await
    .unwrap();
    assert_eq!(again, "run-job-1");
    assert_eq!(
        aws.inventory_runs.lock().unwrap().len(),
        1,
        "not started twice"
    );
}

#[tokio::test]
async fn tokens_are_single_use_and_forgeries_are_refused() {
    let aws = MemoryAws::default();
    let t = token(3);
    create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    assert!(matches!(
        handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
    let again = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap_err();
    assert!(matches!(again, WorkflowError::TokenSpent), "{again}");
    let forged = handle_approval(&aws, &approve(&token(9)), &token(99), &ctx(NOW))
        .await
        .unwrap_err();
    assert!(matches!(forged, WorkflowError::UnknownToken));
    assert!(!forged.to_string().contains(token(9).expose()));
    let junk = handle_approval(&aws, "please go", &token(99), &ctx(NOW))
        .await
        .unwrap_err();
    assert!(matches!(junk, WorkflowError::BadMessage(_)));
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn rejection_fails_the_wait_with_the_reason() {
    let aws = MemoryAws::default();
    let t = token(4);
    create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    let message = format!(
        r#"{{"action":"reject","token":"{}","reason":"wrong bucket"}}"#,
        t.expose()
    );
    let outcome = handle_approval(&aws, &message, &token(99), &ctx(NOW))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ApprovalOutcome::Rejected {
            stack_signalled: true
        }
    );
    let (_, signal) = aws.signals.lock().unwrap()[0].clone();
    assert_eq!(signal.status, WaitStatus::Failure);
    assert_eq!(signal.reason, "Rejected: wrong bucket");
    assert!(aws.jobs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_wait_about_to_time_out_is_handed_over_and_a_late_approval_still_launches() {
    let aws = MemoryAws::default();
    let t = token(5);
    let mut p = props(ApprovalMode::Wait);
    p.approval_timeout_seconds = 3600;
    let ready = create_transfer(&aws, &p, &t, &ctx(NOW)).await.unwrap();

    // Far from the deadline: nothing happens.
    assert!(release_expiring_waits(&aws, &ctx(NOW + 600))
        .await
        .unwrap()
        .is_empty());
    // 15 minutes before it: handed over.
    let released = release_expiring_waits(&aws, &ctx(NOW + 3600 - 900))
        .await
        .unwrap();
    assert_eq!(released, vec!["ledger".to_string()]);
    let (_, signal) = aws.signals.lock().unwrap()[0].clone();
    assert_eq!(
        (signal.status, signal.data.as_str()),
        (WaitStatus::Success, "deferred")
    );
    // Only once.
    assert!(release_expiring_waits(&aws, &ctx(NOW + 3600 - 600))
        .await
        .unwrap()
        .is_empty());

    // FirstJob sees "deferred" and waits for the approval.
    let job = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"deferred"}"#,
        false,
        &ctx(NOW + 3600),
    )
    .await
    .unwrap();
    assert_eq!(job, AWAITING_APPROVAL);

    // A day later the person approves: the job starts, no second signal.
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 86_400))
        .await
        .unwrap();
    assert!(matches!(outcome, ApprovalOutcome::JobLaunched(_)));
    assert_eq!(aws.signals.lock().unwrap().len(), 1);
}

/// A deferred transfer whose CreateJob will be denied (iam:PassRole), and its token.
async fn a_transfer_whose_launch_fails() -> (MemoryAws, ApprovalToken) {
    let aws = MemoryAws::default();
    let t = token(6);
    create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    *aws.fail_create_job.lock().unwrap() = Some(AwsCallError {
        kind: AwsErrorKind::AccessDenied,
        code: "AccessDenied".into(),
        message: "not authorized to perform: iam:PassRole".into(),
    });
    (aws, t)
}

#[tokio::test]
async fn a_failed_launch_gives_the_token_back() {
    let (aws, t) = a_transfer_whose_launch_fails().await;
    let e = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("iam:PassRole"), "{e}");
    // Everything the decision wrote is taken back: the token and the plan's decision.
    let fingerprint = Plan::build(&spec()).unwrap().transfer.fingerprint;
    {
        let objects = aws.objects.lock().unwrap();
        assert!(!objects.contains_key(&keys::decision(&t.hash())));
        assert!(!objects.contains_key(&keys::plan_decision(&fingerprint)));
    }
    // After fixing the cause, the same token works.
    assert!(matches!(
        handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
}

#[tokio::test]
async fn update_re_asks_only_when_the_transfer_changed() {
    let aws = MemoryAws::default();
    let p = props(ApprovalMode::Wait);
    let ready = create_transfer(&aws, &p, &token(7), &ctx(NOW))
        .await
        .unwrap();
    let same = update_transfer(&aws, Some(&ready.fingerprint), &p, &token(8), &ctx(NOW))
        .await
        .unwrap();
    assert!(!same.approval_requested);
    assert_eq!(aws.notes.lock().unwrap().len(), 2, "instructions and token");

    let mut changed = p.clone();
    changed.spec.destination.storage_class = None;
    let t = token(10);
    let updated = update_transfer(&aws, Some(&ready.fingerprint), &changed, &t, &ctx(NOW))
        .await
        .unwrap();
    assert!(updated.approval_requested);
    assert_ne!(updated.fingerprint, ready.fingerprint);
    let record: ApprovalRecord =
        serde_json::from_slice(&aws.objects.lock().unwrap()[&keys::approval(&t.hash())]).unwrap();
    assert_eq!(
        record.mode,
        ApprovalMode::Deferred,
        "an update can't wait again"
    );
    assert!(matches!(
        handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
}

/// #15 item 3, the race: a forged signal (or the hand-over) ends the wait and FirstJob runs
/// while the real approval is in preflight. FirstJob finds no decision yet; the approval, after
/// its own signal, sees the wait was over and launches the job itself, once.
#[tokio::test]
async fn an_approval_racing_a_forged_signal_still_launches_once() {
    let aws = MemoryAws::default();
    let t = token(25);
    let ready = create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    *aws.wait_already_ended.lock().unwrap() = true;
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ApprovalOutcome::JobLaunched(_)),
        "{outcome:?}"
    );
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
    // FirstJob, running again (an update), answers that job, launching nothing new.
    let job = first_job_on_update(&aws, &ready.fingerprint, NOW + 70).await;
    assert_eq!(job, "job-0");
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
}

/// #15 item 13: the approval records the manifest's ETag; FirstJob launches only on that
/// manifest, so whoever can write it can't change the copy after the approval.
#[tokio::test]
async fn a_manifest_changed_after_the_approval_is_not_launched() {
    let aws = MemoryAws::default();
    let t = token(24);
    let ready = create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap();
    assert_eq!(outcome, ApprovalOutcome::WaitSignalled);
    // Between the approval and FirstJob, someone rewrites the manifest.
    *aws.manifest_etag.lock().unwrap() = Some("\"f00d\"".to_string());
    let refused = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"approved"}"#,
        false,
        &ctx(NOW + 70),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("e7a5"), "{refused}");
    assert!(
        aws.jobs.lock().unwrap().is_empty(),
        "no job on another manifest"
    );
    // The approved manifest back in place: the job is launched on it.
    *aws.manifest_etag.lock().unwrap() = None;
    let job = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"approved"}"#,
        false,
        &ctx(NOW + 80),
    )
    .await
    .unwrap();
    assert_eq!(job, "job-0");
}

/// #15 item 5: an update that changes the plan retires every token still pending, so an old
/// e-mail can't approve any more (not even when the role documents did not change).
#[tokio::test]
async fn a_changed_plan_retires_the_old_token() {
    let aws = MemoryAws::default();
    let p = props(ApprovalMode::Deferred);
    let old = token(20);
    let ready = create_transfer(&aws, &p, &old, &ctx(NOW)).await.unwrap();
    let mut changed = p.clone();
    changed.spec.job.priority += 1;
    let fresh = token(21);
    update_transfer(
        &aws,
        Some(&ready.fingerprint),
        &changed,
        &fresh,
        &ctx(NOW + 10),
    )
    .await
    .unwrap();
    let refused = handle_approval(&aws, &approve(&old), &token(99), &ctx(NOW + 20))
        .await
        .unwrap_err();
    assert!(matches!(refused, WorkflowError::TokenSpent), "{refused}");
    assert!(
        aws.jobs.lock().unwrap().is_empty(),
        "the old token launched nothing"
    );
    assert!(matches!(
        handle_approval(&aws, &approve(&fresh), &token(99), &ctx(NOW + 30))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
}

/// #15 item 5: tokens expire; `resend` gives a fresh one that works.
#[tokio::test]
async fn an_expired_token_is_refused_and_resend_gives_a_working_one() {
    let aws = MemoryAws::default();
    let t = token(22);
    create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    let later = NOW + ferry_plan::approval::APPROVAL_TOKEN_TTL_SECONDS + 1;
    let refused = handle_approval(&aws, &approve(&t), &token(99), &ctx(later))
        .await
        .unwrap_err();
    assert!(matches!(refused, WorkflowError::TokenExpired), "{refused}");
    assert!(refused.to_string().contains("resend"), "{refused}");
    let fresh = token(23);
    handle_approval(&aws, r#"{"action":"resend"}"#, &fresh, &ctx(later))
        .await
        .unwrap();
    assert!(matches!(
        handle_approval(&aws, &approve(&fresh), &token(99), &ctx(later + 60))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
}

#[tokio::test]
async fn teardown_leaves_running_jobs_and_their_role_unless_told_to_cancel() {
    let aws = MemoryAws::default();
    let t = token(11);
    create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap();
    aws.job_status
        .lock()
        .unwrap()
        .insert("job-0".into(), "Active".into());

    let teardown = delete_jobs(&aws, false).await.unwrap();
    assert_eq!(teardown.left_running, vec!["job-0 (Active)".to_string()]);
    let role = delete_transfer(&aws, &spec(), &teardown.left_running)
        .await
        .unwrap();
    assert!(!role.role_deleted);
    assert!(aws.roles.lock().unwrap().contains_key("ferry-ledger-batch"));
    let last = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.1.contains("job-0 (Active)")
            && last
                .1
                .contains("aws iam delete-role --role-name ferry-ledger-batch")
    );

    let teardown = delete_jobs(&aws, true).await.unwrap();
    assert_eq!(teardown.cancelled, vec!["job-0".to_string()]);
    let role = delete_transfer(&aws, &spec(), &teardown.left_running)
        .await
        .unwrap();
    assert!(role.role_deleted);
    assert!(aws.roles.lock().unwrap().is_empty());
}

/// #15: a job record in the state bucket can be written by others. Deleting the stack with
/// CancelJobsOnDelete cancels only a job tagged as this transfer's (and this plan's), never one
/// a forged record names.
#[tokio::test]
async fn teardown_cancels_only_jobs_tagged_as_this_transfers() {
    let aws = MemoryAws::default();
    let t = token(16);
    let ready = create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap();
    // Someone else's running job, and a record naming it beside Ferry's own.
    aws.job_status.lock().unwrap().extend([
        ("job-0".into(), "Active".into()),
        ("payroll-job".into(), "Active".into()),
    ]);
    aws.job_tags.lock().unwrap().insert(
        "payroll-job".into(),
        vec![S3Tag {
            key: "team".into(),
            value: "payroll".into(),
        }],
    );
    let forged = serde_json::json!({"job_id": "payroll-job", "plan_fingerprint": ready.fingerprint,
        "account_id": "222222222222", "region": "eu-west-1", "manifest_etag": "e",
        "client_request_token": "t"});
    aws.objects.lock().unwrap().insert(
        keys::job(&ready.fingerprint, "payroll-job"),
        serde_json::to_vec(&forged).unwrap(),
    );

    let teardown = delete_jobs(&aws, true).await.unwrap();
    assert_eq!(teardown.cancelled, vec!["job-0".to_string()]);
    assert_eq!(*aws.cancelled.lock().unwrap(), vec!["job-0".to_string()]);
    assert!(
        teardown
            .left_running
            .iter()
            .any(|j| j.starts_with("payroll-job") && j.contains("not tagged")),
        "{teardown:?}"
    );
}

#[tokio::test]
async fn first_job_on_update_ignores_the_old_waits_approval() {
    let aws = MemoryAws::default();
    let t = token(12);
    let ready = create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    // The WaitCondition's data stays "approved" forever; on update it must not launch a new plan.
    let job = first_job_on_update(&aws, &ready.fingerprint, NOW).await;
    assert_eq!(job, AWAITING_APPROVAL);
    assert!(aws.jobs.lock().unwrap().is_empty());
    // The approval, when it comes, launches (the wait is over: FirstJob ran).
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap();
    let ApprovalOutcome::JobLaunched(launched) = outcome else {
        panic!("{outcome:?}")
    };
    // Once launched, an unchanged update keeps answering the same job without a new launch.
    let again = first_job_on_update(&aws, &ready.fingerprint, NOW).await;
    assert_eq!(launched.job_id, again);
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
}

/// #15 item 3: whoever can read the WaitConditionHandle's URL can PUT SUCCESS to it. FirstJob
/// then runs with wait data saying "approved", but launches only on a recorded approval; it
/// reports the signal, and the real approval later launches the job itself.
#[tokio::test]
async fn a_forged_wait_signal_launches_nothing_and_the_real_approval_still_does() {
    let aws = MemoryAws::default();
    let t = token(15);
    let ready = create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    // The forged PUT completed the wait; CloudFormation creates FirstJob with its data.
    let job = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"approved"}"#,
        false,
        &ctx(NOW + 60),
    )
    .await
    .unwrap();
    assert_eq!(job, AWAITING_APPROVAL);
    assert!(
        aws.jobs.lock().unwrap().is_empty(),
        "no job without an approval"
    );
    let warned = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(warned.0.contains("no recorded approval"), "{warned:?}");
    // The real approval launches the job itself: nobody waits on a signal any more.
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 120))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ApprovalOutcome::JobLaunched(_)),
        "{outcome:?}"
    );
    assert!(
        aws.signals.lock().unwrap().is_empty(),
        "no signal to a finished wait"
    );
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn resend_issues_a_new_token_and_retires_the_old_one() {
    let aws = MemoryAws::default();
    let old = token(13);
    create_transfer(&aws, &props(ApprovalMode::Wait), &old, &ctx(NOW))
        .await
        .unwrap();
    let fresh = token(14);
    let outcome = handle_approval(&aws, r#"{"action":"resend"}"#, &fresh, &ctx(NOW + 300))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ApprovalOutcome::Resent {
            transfer_name: "ledger".into()
        }
    );
    let last = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(last.1.contains(fresh.expose()) && !last.1.contains(old.expose()));
    assert!(
        last.1
            .contains("The stack waits for this approval until about"),
        "still waiting: same deadline"
    );

    let refused = handle_approval(&aws, &approve(&old), &token(99), &ctx(NOW + 400))
        .await
        .unwrap_err();
    assert!(matches!(refused, WorkflowError::TokenSpent));
    assert_eq!(
        handle_approval(&aws, &approve(&fresh), &token(99), &ctx(NOW + 500))
            .await
            .unwrap(),
        ApprovalOutcome::WaitSignalled
    );
    // Nothing left to re-send once decided.
    let none = handle_approval(&aws, "resend", &token(15), &ctx(NOW + 600))
        .await
        .unwrap_err();
    assert!(matches!(none, WorkflowError::NothingPending));
}

#[tokio::test]
async fn preflight_refuses_an_approval_that_would_fail_and_keeps_the_token() {
    let aws = MemoryAws::default();
    let t = token(12);
    create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    let plan = Plan::build(&spec()).unwrap();
    // The role went missing and the destination bucket is in another region than the spec says.
    aws.roles.lock().unwrap().clear();
    let s = spec();
    *aws.buckets.lock().unwrap() = Some(
        [
            (s.source.bucket.clone(), s.source.region.clone()),
            (s.destination.bucket.clone(), "ap-south-1".to_string()),
            (s.manifest.bucket.clone(), s.manifest_region().to_string()),
            (s.report.bucket.clone(), s.report_region().to_string()),
        ]
        .into_iter()
        .collect(),
    );
    let refused = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        matches!(refused, WorkflowError::PreflightFailed { .. }),
        "{text}"
    );
    assert!(
        text.contains(&plan.batch_role.arn),
        "names the role: {text}"
    );
    assert!(text.contains("does not exist"), "{text}");
    assert!(
        text.contains("ap-south-1") && text.contains("set the destination region"),
        "names the region and the fix: {text}"
    );
    assert!(!text.contains(t.expose()), "never echoes the token");
    assert!(aws.jobs.lock().unwrap().is_empty(), "no job before the fix");

    // Fixed: the same message now launches the job.
    aws.roles
        .lock()
        .unwrap()
        .insert(plan.batch_role.name.clone(), plan.batch_role.clone());
    *aws.buckets.lock().unwrap() = None;
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 120))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ApprovalOutcome::JobLaunched(_)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_throttled_preflight_is_retryable_and_keeps_the_token() {
    let aws = MemoryAws::default();
    let t = token(13);
    create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    *aws.fail_bucket_region.lock().unwrap() = Some(AwsCallError {
        kind: AwsErrorKind::Throttled,
        code: "SlowDown".into(),
        message: "Please reduce your request rate.".into(),
    });
    let err = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WorkflowError::Aws { cause, .. } if cause.kind == AwsErrorKind::Transient),
        "{err}"
    );
    assert!(
        aws.signals.lock().unwrap().is_empty(),
        "the stack still waits"
    );
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 90))
        .await
        .unwrap();
    assert_eq!(outcome, ApprovalOutcome::WaitSignalled);
    let approved = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(
        approved.1.contains("ok   Batch Operations role"),
        "the approval e-mail lists the preflight: {}",
        approved.1
    );
}

/// #15: `resend` needs no token, so whoever may publish could keep retiring the approver's
/// token. One re-send per quarter hour of the clock: a second one is refused before anything
/// changes, and the token of the first still works.
#[tokio::test]
async fn resend_is_limited_to_one_per_quarter_hour_and_a_refused_one_retires_nothing() {
    let aws = MemoryAws::default();
    create_transfer(&aws, &props(ApprovalMode::Deferred), &token(30), &ctx(NOW))
        .await
        .unwrap();
    let first = token(31);
    handle_approval(&aws, r#"{"action":"resend"}"#, &first, &ctx(NOW + 60))
        .await
        .unwrap();
    let mails = aws.notes.lock().unwrap().len();
    // The spam: every further resend in this quarter hour is refused, and says when to ask again.
    for (i, at) in [NOW + 61, NOW + 300, NOW + RESEND_INTERVAL_SECONDS - 1]
        .into_iter()
        .enumerate()
    {
        let refused = handle_approval(&aws, "resend", &token(40 + i as u8), &ctx(at))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, WorkflowError::ResendTooSoon { .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("after 2026-11-24 06:15 UTC"),
            "{refused}"
        );
    }
    assert_eq!(aws.notes.lock().unwrap().len(), mails, "no new e-mail");
    for i in 0..3u8 {
        assert!(
            !aws.objects
                .lock()
                .unwrap()
                .contains_key(&keys::approval(&token(40 + i).hash())),
            "a refused resend issued no token"
        );
    }
    // The token of the accepted resend still works.
    assert!(matches!(
        handle_approval(&aws, &approve(&first), &token(99), &ctx(NOW + 700))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
}

/// The next quarter hour takes a re-send again.
/// #16 review: a re-send whose e-mail could not be sent gives its quarter hour back, so the
/// delivery's retry re-sends (instead of "too soon", with the old token retired and the new
/// one never e-mailed).
#[tokio::test]
async fn a_resend_whose_email_failed_is_sent_by_the_retry() {
    let aws = MemoryAws::default();
    create_transfer(&aws, &props(ApprovalMode::Deferred), &token(13), &ctx(NOW))
        .await
        .unwrap();
    *aws.notify_failures_left.lock().unwrap() = 1;
    let e = handle_approval(&aws, r#"{"action":"resend"}"#, &token(14), &ctx(NOW + 300))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    // Undone whole: the token that re-send made is retired, the e-mailed one is pending again.
    {
        let objects = aws.objects.lock().unwrap();
        assert!(objects.contains_key(&keys::decision(&token(14).hash())));
        assert!(!objects.contains_key(&keys::decision(&token(13).hash())));
    }
    let fresh = token(15);
    assert!(matches!(
        handle_approval(&aws, r#"{"action":"resend"}"#, &fresh, &ctx(NOW + 301))
            .await
            .unwrap(),
        ApprovalOutcome::Resent { .. }
    ));
    let last = aws.notes.lock().unwrap().last().cloned().unwrap();
    assert!(last.1.contains(fresh.expose()));
    // One token works: the re-send retired the e-mailed one.
    for retired in [token(13), token(14)] {
        assert!(matches!(
            handle_approval(&aws, &approve(&retired), &token(99), &ctx(NOW + 350)).await,
            Err(WorkflowError::TokenSpent)
        ));
    }
    assert!(matches!(
        handle_approval(&aws, &approve(&fresh), &token(99), &ctx(NOW + 400))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
}

#[tokio::test]
async fn resend_works_again_in_the_next_quarter_hour() {
    let aws = MemoryAws::default();
    create_transfer(&aws, &props(ApprovalMode::Deferred), &token(32), &ctx(NOW))
        .await
        .unwrap();
    handle_approval(&aws, "resend", &token(33), &ctx(NOW + 10))
        .await
        .unwrap();
    let next = token(34);
    let outcome = handle_approval(&aws, "resend", &next, &ctx(NOW + RESEND_INTERVAL_SECONDS))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ApprovalOutcome::Resent { .. }),
        "{outcome:?}"
    );
    let refused = handle_approval(&aws, &approve(&token(33)), &token(99), &ctx(NOW + 1000))
        .await
        .unwrap_err();
    assert!(matches!(refused, WorkflowError::TokenSpent), "{refused}");
    assert!(matches!(
        handle_approval(&aws, &approve(&next), &token(99), &ctx(NOW + 1000))
            .await
            .unwrap(),
        ApprovalOutcome::JobLaunched(_)
    ));
}

/// Concurrent re-sends (Lambda runs SNS deliveries in parallel): the quarter hour is claimed
/// with a conditional write, so exactly one goes through, whatever the interleaving.
#[tokio::test]
async fn concurrent_resends_send_one_token() {
    let aws = MemoryAws::default();
    create_transfer(&aws, &props(ApprovalMode::Deferred), &token(35), &ctx(NOW))
        .await
        .unwrap();
    let mails = aws.notes.lock().unwrap().len();
    let tokens: Vec<ApprovalToken> = (50..58).map(token).collect();
    let at = ctx(NOW + 120);
    let outcomes = futures_join_all(
        tokens
            .iter()
            .map(|t| handle_approval(&aws, "resend", t, &at)),
    )
    .await;
    let sent = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(WorkflowError::ResendTooSoon { .. })))
        .count();
    assert_eq!((sent, refused), (1, tokens.len() - 1), "{outcomes:?}");
    // Two e-mails (instructions and token) for the one re-send.
    assert_eq!(aws.notes.lock().unwrap().len(), mails + 2);
}

/// Polls every future to completion on this task (no extra dependency): each poll lets the
/// others run up to their next await.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().map(|d| d.expect("finished")).collect()
}

/// #15: the decision names who may have published it (the approval topic's policy lets only
/// them), as approval-handler passes it; the message can't say otherwise.
#[tokio::test]
async fn the_decision_records_who_may_have_published_it() {
    let aws = MemoryAws::default();
    let t = token(36);
    let ready = create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    let publisher = Publisher {
        topic_arn: "arn:aws:sns:eu-west-1:222222222222:ferry-approvals".into(),
        message_id: "c8a234e7-1b2c-4fec-8236-7f554a74be81".into(),
        one_of: vec![
            "arn:aws:iam::222222222222:role/storage-approvers".into(),
            "arn:aws:iam::222222222222:root".into(),
        ],
    };
    handle_approval_from(&aws, &approve(&t), Some(&publisher), &token(99), &ctx(NOW))
        .await
        .unwrap();
    let objects = aws.objects.lock().unwrap();
    for key in [
        keys::decision(&t.hash()),
        keys::plan_decision(&ready.fingerprint),
    ] {
        let decision: serde_json::Value = serde_json::from_slice(&objects[&key]).unwrap();
        assert_eq!(
            decision["decided_by"],
            serde_json::to_value(&publisher).unwrap(),
            "{key}"
        );
    }
}

/// #15 item 2: the state bucket can be written by others. A stored plan overwritten with other
/// copy settings (same key, so the approval's fingerprint still points at it) is refused at
/// launch: a plan is what its fingerprint says only while its spec hashes to it.
#[tokio::test]
async fn a_stored_plan_rewritten_after_approval_is_not_launched() {
    let aws = MemoryAws::default();
    let t = token(31);
    let ready = create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    let key = format!("plans/{}.json", ready.fingerprint);
    let mut stored: StoredPlan =
        serde_json::from_slice(&aws.objects.lock().unwrap()[&key]).unwrap();
    stored.spec.destination.bucket = "mallory-drop".to_string();
    aws.objects
        .lock()
        .unwrap()
        .insert(key, serde_json::to_vec(&stored).unwrap());

    let refused = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap_err();

    assert!(
        matches!(refused, WorkflowError::PlanTampered { .. }),
        "{refused}"
    );
    assert!(aws.jobs.lock().unwrap().is_empty(), "nothing launched");
}

/// The approval records of pending tokens.
fn record_of(aws: &MemoryAws, t: &ApprovalToken) -> ApprovalRecord {
    serde_json::from_slice(&aws.objects.lock().unwrap()[&keys::approval(&t.hash())]).unwrap()
}

/// #15 item 13: the plan's e-mails name the manifest's ETag (read when they are sent) and its
/// approval record pins it, so what the approver approves is those bytes.
#[tokio::test]
async fn the_emails_name_the_manifests_etag_and_the_record_pins_it() {
    let aws = MemoryAws::default();
    let t = token(60);
    create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    let pin = record_of(&aws, &t).manifest.expect("a pinned manifest");
    assert_eq!(
        (pin.etag.as_str(), pin.version_id, pin.size),
        ("e7a5", None, Some(1234))
    );
    let notes = aws.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 2);
    for (subject, body) in &notes {
        assert!(
            body.contains("The manifest this approval is for: s3://acme-vault-inventory/")
                && body.contains("ETag \"e7a5\", 1234 bytes, last modified 2026-11-24T01:00:00Z"),
            "{subject}: {body}"
        );
    }
}

/// #15 item 13, the attack: the manifest lives where a PowerUser of the destination account can
/// write. Rewritten between the e-mails and the approval, it would have the batch role copy
/// whatever the attacker lists. The approval compares it with the ETag its token's e-mails named:
/// refused, nothing recorded or launched, the token given back; `resend` pins the manifest as it
/// is now (after the approver checked it), and that token approves it.
#[tokio::test]
async fn a_manifest_rewritten_after_the_email_is_refused_and_resend_pins_the_new_one() {
    let aws = MemoryAws::default();
    let t = token(61);
    let ready = create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    // The attacker rewrites the manifest after the e-mails went out.
    *aws.manifest_etag.lock().unwrap() = Some("\"f00d\"".to_string());
    let refused = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, WorkflowError::ManifestChanged { .. }),
        "{refused}"
    );
    let text = refused.to_string();
    assert!(
        text.contains(
            "the manifest changed since the plan was e-mailed (pinned ETag e7a5, now f00d)"
        ) && text.contains("whoever rewrote s3://acme-vault-inventory/")
            && text.contains(r#"publish {"action":"resend"}"#),
        "{text}"
    );
    assert!(aws.jobs.lock().unwrap().is_empty(), "nothing launched");
    assert!(
        aws.create_job_requests.lock().unwrap().is_empty(),
        "no CreateJob"
    );
    {
        let objects = aws.objects.lock().unwrap();
        assert!(
            !objects.contains_key(&keys::plan_decision(&ready.fingerprint)),
            "nothing recorded as approved"
        );
        assert!(
            !objects.contains_key(&keys::decision(&t.hash())),
            "the token was given back"
        );
    }
    // The approver checks the manifest as it is now and asks for a new token: its e-mails name
    // the new ETag, and it approves exactly that.
    let fresh = token(62);
    handle_approval(&aws, r#"{"action":"resend"}"#, &fresh, &ctx(NOW + 120))
        .await
        .unwrap();
    assert_eq!(record_of(&aws, &fresh).manifest.unwrap().etag, "f00d");
    let mails = aws.notes.lock().unwrap().clone();
    let resent = &mails[mails.len() - 2..];
    assert!(
        resent
            .iter()
            .all(|(_, body)| body.contains("ETag \"f00d\"")),
        "{resent:#?}"
    );
    // A resend can't be told from a forged one (approval-handler can be invoked directly), so
    // both e-mails lead with the change and both ETags.
    assert!(
        resent
            .iter()
            .all(|(subject, body)| subject.starts_with("MANIFEST CHANGED:")
                && body.starts_with(
                    "WARNING: the manifest CHANGED since the last instructions e-mail"
                )
                && body.contains("is now ETag f00d")),
        "{resent:#?}"
    );
    let old = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 130))
        .await
        .unwrap_err();
    assert!(matches!(old, WorkflowError::TokenSpent), "{old}");
    let ApprovalOutcome::JobLaunched(job) =
        handle_approval(&aws, &approve(&fresh), &token(99), &ctx(NOW + 140))
            .await
            .unwrap()
    else {
        panic!("launched")
    };
    assert_eq!(job.manifest_etag, "f00d");
    let requests = aws.create_job_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].manifest.location.etag, "f00d");
}

/// #15 item 13: a manifest the stack can't read when it makes the plan (the deployer uploads it
/// after the stack) doesn't fail the stack. The e-mails say so, and their token approves nothing:
/// the approval refuses it (nothing to hold it to) and keeps nothing; once the manifest is there,
/// `resend` pins it and the new token approves.
#[tokio::test]
async fn a_manifest_unreadable_at_plan_time_makes_the_plan_but_approves_nothing_until_resend() {
    let aws = MemoryAws::default();
    *aws.manifest_missing.lock().unwrap() = true;
    let t = token(63);
    let ready = create_transfer(&aws, &props(ApprovalMode::Wait), &t, &ctx(NOW))
        .await
        .unwrap();
    assert!(ready.approval_requested);
    assert!(aws
        .objects
        .lock()
        .unwrap()
        .contains_key(&keys::plan(&ready.fingerprint)));
    assert_eq!(record_of(&aws, &t).manifest, None);
    for (subject, body) in aws.notes.lock().unwrap().iter() {
        assert!(
            body.contains("could not be read when this e-mail was sent (NotFound: Not Found)")
                && body.contains("this e-mail's token approves nothing"),
            "{subject}: {body}"
        );
    }

    // The manifest is uploaded; an approval with the first token is still refused: the approver
    // was never shown what it holds.
    *aws.manifest_missing.lock().unwrap() = false;
    let refused = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, WorkflowError::ManifestNotPinned { .. }),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains(r#"publish {"action":"resend"}"#),
        "{refused}"
    );
    assert!(
        aws.signals.lock().unwrap().is_empty(),
        "the stack still waits"
    );
    assert!(!aws
        .objects
        .lock()
        .unwrap()
        .contains_key(&keys::plan_decision(&ready.fingerprint)));

    let fresh = token(64);
    handle_approval(&aws, "resend", &fresh, &ctx(NOW + 120))
        .await
        .unwrap();
    assert_eq!(record_of(&aws, &fresh).manifest.unwrap().etag, "e7a5");
    assert_eq!(
        handle_approval(&aws, &approve(&fresh), &token(99), &ctx(NOW + 180))
            .await
            .unwrap(),
        ApprovalOutcome::WaitSignalled
    );
    let job = first_job(
        &aws,
        &ready.fingerprint,
        r#"{"approval":"approved"}"#,
        false,
        &ctx(NOW + 200),
    )
    .await
    .unwrap();
    assert_eq!(job, "job-0");
}

/// In a versioned manifest bucket the e-mails name the version too, and the job is created on it
/// (`Manifest.Location.ObjectVersionId`): Batch Operations reads those bytes even if the key is
/// written again after CreateJob. An object written while versioning was off (`null`) names none.
#[tokio::test]
async fn a_versioned_manifest_is_launched_on_the_e_mailed_version() {
    for (version, expected) in [
        (
            Some("3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"),
            Some("3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"),
        ),
        (Some("null"), None),
    ] {
        let aws = MemoryAws::default();
        *aws.manifest_version.lock().unwrap() = version.map(str::to_string);
        let t = token(65);
        create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
            .await
            .unwrap();
        assert_eq!(
            record_of(&aws, &t).manifest.unwrap().version_id.as_deref(),
            expected
        );
        if let Some(v) = expected {
            assert!(aws
                .notes
                .lock()
                .unwrap()
                .iter()
                .all(|(_, body)| body.contains(&format!("version id {v}"))));
        }
        assert!(matches!(
            handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
                .await
                .unwrap(),
            ApprovalOutcome::JobLaunched(_)
        ));
        let requests = aws.create_job_requests.lock().unwrap().clone();
        assert_eq!(
            requests[0].manifest.location.object_version_id.as_deref(),
            expected
        );
        assert_eq!(requests[0].manifest.location.etag, "e7a5");
    }
}

/// In a versioned manifest bucket the job reads the pinned version: a newer version with the
/// same ETag (an MD5 collision) would show the approver other rows than the job copies, so the
/// approval is refused unless the current version is the pinned one.
#[tokio::test]
async fn a_newer_version_of_the_manifest_with_the_same_etag_is_refused() {
    let aws = MemoryAws::default();
    *aws.manifest_version.lock().unwrap() = Some("v1-pinned".to_string());
    let t = token(66);
    create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    *aws.manifest_version.lock().unwrap() = Some("v2-same-etag".to_string());
    let err = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("version v1-pinned") && text.contains("version v2-same-etag"),
        "{text}"
    );
    assert!(aws.create_job_requests.lock().unwrap().is_empty());
}

/// A second token of an already approved plan whose approval fails (here: the manifest changed
/// since it was e-mailed) gives its token back without erasing the plan's earlier approval,
/// which inventory runs and redrives rely on.
#[tokio::test]
async fn a_failed_second_approval_keeps_the_plans_earlier_approval() {
    let aws = MemoryAws::default();
    let t = token(67);
    let ready = create_transfer(&aws, &props(ApprovalMode::Deferred), &t, &ctx(NOW))
        .await
        .unwrap();
    handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap();
    let key = format!("decisions/{}.json", ready.fingerprint);
    let approved = aws
        .objects
        .lock()
        .unwrap()
        .get(&key)
        .cloned()
        .expect("approved");
    // A second token for the same plan: a Create of the same plan again (a forged one during a
    // stack operation, or a re-deployed stack) mails one.
    let second = token(68);
    create_transfer(
        &aws,
        &props(ApprovalMode::Deferred),
        &second,
        &ctx(NOW + 1_000),
    )
    .await
    .unwrap();
    *aws.manifest_etag.lock().unwrap() = Some("\"f00d\"".to_string());
    let err = handle_approval(&aws, &approve(&second), &token(99), &ctx(NOW + 1_060))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WorkflowError::ManifestChanged { .. }),
        "{err}"
    );
    assert_eq!(
        aws.objects.lock().unwrap().get(&key),
        Some(&approved),
        "the earlier approval stands"
    );
}

/// #16 item 6: when the undo after a failed launch fails too, the error says so, naming each
/// object left behind and what it means; nothing is swallowed. The state is what the error
/// says it is.
#[tokio::test]
async fn a_failed_launch_whose_undo_fails_says_what_stays_and_why() {
    let fingerprint = Plan::build(&spec()).unwrap().transfer.fingerprint;
    for failing in [
        vec![keys::decision(&token(6).hash())],
        vec![keys::plan_decision(&fingerprint)],
        // The plan's decision is put back first, then the token.
        vec![
            keys::plan_decision(&fingerprint),
            keys::decision(&token(6).hash()),
        ],
    ] {
        let (aws, t) = a_transfer_whose_launch_fails().await;
        *aws.failing_deletes.lock().unwrap() = failing.clone();
        let e = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
            .await
            .unwrap_err();
        let WorkflowError::UndoFailed { error, undo } = &e else {
            panic!("{failing:?}: {e:?}");
        };
        assert!(error.to_string().contains("iam:PassRole"), "{e}");
        assert!(
            !e.is_retryable(),
            "a retry would meet the state left behind"
        );
        let left: Vec<&str> = undo.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(left, failing.iter().map(String::as_str).collect::<Vec<_>>());
        let text = e.to_string();
        for key in &failing {
            assert!(text.contains(key.as_str()), "{text}");
        }
        let (token_spent, plan_decided) = {
            let objects = aws.objects.lock().unwrap();
            (
                objects.contains_key(&keys::decision(&t.hash())),
                objects.contains_key(&keys::plan_decision(&fingerprint)),
            )
        };
        assert_eq!(token_spent, failing.contains(&keys::decision(&t.hash())));
        assert_eq!(
            plan_decided,
            failing.contains(&keys::plan_decision(&fingerprint))
        );
        if token_spent {
            assert!(text.contains("stays spent"), "{text}");
        }
        if plan_decided {
            assert!(text.contains("read \"approve\""), "{text}");
        }
        // What the e-mail says works: with the token given back, its reject withdraws the
        // leftover approval (the plan's decision then reads "reject": nothing acts on it).
        if plan_decided && !token_spent {
            assert!(text.contains("a reject with this token"), "{text}");
            aws.failing_deletes.lock().unwrap().clear();
            let reject = format!(
                r#"{{"action":"reject","token":"{}","reason":"withdrawn"}}"#,
                t.expose()
            );
            assert!(matches!(
                handle_approval(&aws, &reject, &token(99), &ctx(NOW))
                    .await
                    .unwrap(),
                ApprovalOutcome::Rejected { .. }
            ));
            let decision: serde_json::Value = serde_json::from_slice(
                &aws.objects.lock().unwrap()[&keys::plan_decision(&fingerprint)],
            )
            .unwrap();
            assert_eq!(decision["decision"], "reject");
        }
    }
}

/// #16 review: a reject stands once recorded. Its announcement failing (SNS throttled, which
/// anyone in the account can cause) gives the token back for the retry but never brings back
/// the approval it withdrew.
#[tokio::test]
async fn a_reject_whose_email_fails_still_withdraws_the_approval() {
    let fingerprint = Plan::build(&spec()).unwrap().transfer.fingerprint;
    let (aws, t) = a_transfer_whose_launch_fails().await;
    // A leftover approval, as a failed undo leaves it.
    *aws.failing_deletes.lock().unwrap() = vec![keys::plan_decision(&fingerprint)];
    handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap_err();
    aws.failing_deletes.lock().unwrap().clear();
    let reject = format!(
        r#"{{"action":"reject","token":"{}","reason":"withdrawn"}}"#,
        t.expose()
    );
    *aws.notify_failures_left.lock().unwrap() = 1;
    let e = handle_approval(&aws, &reject, &token(99), &ctx(NOW))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let decision = |aws: &MemoryAws| -> serde_json::Value {
        serde_json::from_slice(&aws.objects.lock().unwrap()[&keys::plan_decision(&fingerprint)])
            .unwrap()
    };
    assert_eq!(decision(&aws)["decision"], "reject");
    // The retry announces it.
    assert!(matches!(
        handle_approval(&aws, &reject, &token(99), &ctx(NOW)).await,
        Ok(ApprovalOutcome::Rejected { .. })
    ));
    assert_eq!(decision(&aws)["decision"], "reject");
}

/// #16 review: an undo is asked again while S3 answers 5xx: a delete that fails once and then
/// succeeds leaves nothing behind and reports no undo failure.
#[tokio::test]
async fn an_undo_that_fails_once_is_asked_again() {
    let (aws, t) = a_transfer_whose_launch_fails().await;
    *aws.delete_failures_left.lock().unwrap() = 1;
    let e = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW))
        .await
        .unwrap_err();
    assert!(matches!(e, WorkflowError::Launch(_)), "{e:?}");
    assert_eq!(
        *aws.delete_failures_left.lock().unwrap(),
        0,
        "the fault fired"
    );
    assert!(!aws
        .objects
        .lock()
        .unwrap()
        .contains_key(&keys::decision(&t.hash())));
}

// ---------------------------------------------------------------------------------------------
// #15 items 2 and 5: only the stack's current plan (`plans/current.json`) is approved or launched.

/// The stack's current plan as stack-handler recorded it.
/// FirstJob as CloudFormation sends it on an Update, its wait signalled "approved", at `now`.
async fn first_job_on_update(aws: &MemoryAws, fingerprint: &str, now: u64) -> String {
    first_job(
        aws,
        fingerprint,
        r#"{"approval":"approved"}"#,
        true,
        &ctx(now),
    )
    .await
    .unwrap()
}

fn current_of(aws: &MemoryAws) -> CurrentPlan {
    serde_json::from_slice(&aws.objects.lock().unwrap()[&keys::current_plan()]).unwrap()
}

/// Plan A (wait mode) approved, its wait signalled, but FirstJob never ran (the operation failed
/// elsewhere, say); then an update to plan B. Returns the store, A's and B's fingerprints and B's
/// token.
async fn approved_plan_a_then_update_to_b() -> (MemoryAws, String, String, ApprovalToken) {
    let aws = MemoryAws::default();
    let ta = token(40);
    let a = create_transfer(&aws, &props(ApprovalMode::Wait), &ta, &ctx(NOW))
        .await
        .unwrap();
    assert_eq!(current_of(&aws).fingerprint, a.fingerprint);
    let outcome = handle_approval(&aws, &approve(&ta), &token(99), &ctx(NOW + 60))
        .await
        .unwrap();
    assert_eq!(outcome, ApprovalOutcome::WaitSignalled);
    assert!(aws
        .objects
        .lock()
        .unwrap()
        .contains_key(&keys::plan_decision(&a.fingerprint)));
    assert!(
        aws.jobs.lock().unwrap().is_empty(),
        "approved, not launched"
    );

    let mut changed = props(ApprovalMode::Wait);
    changed.spec.job.priority += 1;
    let tb = token(41);
    let b = update_transfer(&aws, Some(&a.fingerprint), &changed, &tb, &ctx(NOW + 120))
        .await
        .unwrap();
    assert_ne!(a.fingerprint, b.fingerprint);
    let current = current_of(&aws);
    assert_eq!(
        (current.fingerprint.as_str(), current.recorded_unix),
        (b.fingerprint.as_str(), NOW + 120)
    );
    (aws, a.fingerprint, b.fingerprint, tb)
}

/// (a) A forged FirstJob naming the replaced plan A, which was approved and never launched,
/// during a stack operation: nothing is launched (A's "approve" decision is still recorded), no
/// wait is marked over, and the people are told. Nor does a launch of A get through any other
/// way. The current plan B still approves and launches.
#[tokio::test]
async fn a_first_job_naming_an_approved_plan_the_stack_replaced_launches_nothing() {
    let (aws, a, b, tb) = approved_plan_a_then_update_to_b().await;
    aws.notes.lock().unwrap().clear();
    let records_before = aws.objects.lock().unwrap().clone();

    for on_update in [false, true] {
        let answer = first_job(
            &aws,
            &a,
            r#"{"approval":"approved"}"#,
            on_update,
            &ctx(NOW + 180),
        )
        .await
        .unwrap();
        assert_eq!(answer, NOT_THE_CURRENT_PLAN);
    }
    assert!(aws.jobs.lock().unwrap().is_empty(), "plan A not launched");
    assert!(aws.create_job_requests.lock().unwrap().is_empty());
    assert_eq!(
        *aws.objects.lock().unwrap(),
        records_before,
        "no state written (no wait marked over, no job recorded)"
    );
    let notes = aws.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(
        notes[0].0.contains("not the stack's current plan")
            && notes[0].1.contains(&a)
            && notes[0].1.contains(&b),
        "{notes:#?}"
    );

    // The other launch paths refuse A too.
    for refused in [
        launch_job(&aws, &a, &ctx(NOW + 190)).await.map(|_| ()),
        start_first_copy(&aws, &a, &ctx(NOW + 190))
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(WorkflowError::PlanNotCurrent { .. })),
            "{refused:?}"
        );
    }
    assert!(aws.jobs.lock().unwrap().is_empty());

    // (c) The current plan B: FirstJob awaits its approval, which launches it.
    let waiting = first_job_on_update(&aws, &b, NOW + 200).await;
    assert_eq!(waiting, AWAITING_APPROVAL);
    let outcome = handle_approval(&aws, &approve(&tb), &token(99), &ctx(NOW + 240))
        .await
        .unwrap();
    let ApprovalOutcome::JobLaunched(job) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(job.plan_fingerprint, b);
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
    let requests = aws.create_job_requests.lock().unwrap().clone();
    assert!(
        requests[0]
            .tags
            .iter()
            .any(|t| t.key == ferry_plan::job::PLAN_TAG && t.value == b),
        "{:?}",
        requests[0].tags
    );
}

/// (b) A token of plan A still pending after the update to B: the update retires every pending
/// token, but a `resend` racing it writes its new record after that (it read A's record as the
/// newest pending one before the update retired it). That token approves nothing: refused before
/// it is spent, nothing recorded, nothing launched; a `resend` re-sends B's, never A's; and B's
/// token still approves and launches.
#[tokio::test]
async fn a_token_of_the_replaced_plan_left_pending_approves_nothing() {
    let (aws, a, b, tb) = approved_plan_a_then_update_to_b().await;
    // The state the racing resend leaves: a record for plan A under a fresh token, written after
    // the update (so not retired), pinning the same manifest.
    let raced = token(42);
    let mut record = record_of(&aws, &token(40));
    record.created_unix = NOW + 130;
    record.mode = ApprovalMode::Deferred;
    record.wait_handle_url = None;
    record.wait_deadline = None;
    aws.objects.lock().unwrap().insert(
        keys::approval(&raced.hash()),
        serde_json::to_vec(&record).unwrap(),
    );
    // And A's approval withdrawn meanwhile, so only this token could approve A.
    aws.objects.lock().unwrap().remove(&keys::plan_decision(&a));

    let refused = handle_approval(&aws, &approve(&raced), &token(99), &ctx(NOW + 180))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, WorkflowError::PlanNotCurrent { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains(&b), "{refused}");
    assert!(!refused.is_retryable(), "refused for good, and e-mailed");
    let objects = aws.objects.lock().unwrap().clone();
    assert!(
        !objects.contains_key(&keys::decision(&raced.hash())),
        "the token was not spent"
    );
    assert!(
        !objects.contains_key(&keys::plan_decision(&a)),
        "nothing recorded"
    );
    assert!(aws.jobs.lock().unwrap().is_empty(), "plan A not launched");
    // A reject with it is refused too, like a superseded token's.
    let reject = format!(
        r#"{{"action":"reject","token":"{}","reason":"x"}}"#,
        raced.expose()
    );
    assert!(matches!(
        handle_approval(&aws, &reject, &token(99), &ctx(NOW + 190)).await,
        Err(WorkflowError::PlanNotCurrent { .. })
    ));

    // A resend picks the current plan's pending token, though A's record is newer.
    let fresh = token(43);
    handle_approval(&aws, r#"{"action":"resend"}"#, &fresh, &ctx(NOW + 200))
        .await
        .unwrap();
    assert_eq!(record_of(&aws, &fresh).plan_fingerprint, b);
    assert!(matches!(
        handle_approval(&aws, &approve(&tb), &token(99), &ctx(NOW + 210))
            .await
            .unwrap_err(),
        WorkflowError::TokenSpent
    ));

    // (c) The current plan's token approves and launches it.
    let outcome = handle_approval(&aws, &approve(&fresh), &token(99), &ctx(NOW + 240))
        .await
        .unwrap();
    let ApprovalOutcome::JobLaunched(job) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(job.plan_fingerprint, b);
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
}

/// #15 review: an Update forged during a stack operation that names the replaced plan A (old =
/// new properties, so the event itself claims nothing changed) makes A current again, but not
/// approved: A's old decision predates A's becoming current again, so a FirstJob naming A
/// launches nothing, and A is e-mailed for a fresh approval. A real rollback is the same Update:
/// it too needs that fresh approval, which then launches.
#[tokio::test]
async fn a_plan_made_current_again_needs_a_fresh_approval() {
    let (aws, a, b, _) = approved_plan_a_then_update_to_b().await;
    let sent_before = aws.notes.lock().unwrap().len();
    let again = update_transfer(
        &aws,
        Some(&a),
        &props(ApprovalMode::Wait),
        &token(44),
        &ctx(NOW + 300),
    )
    .await
    .unwrap();
    assert_eq!(again.fingerprint, a);
    assert!(
        again.approval_requested,
        "a plan made current again is a change"
    );
    let current = current_of(&aws);
    assert_eq!(
        (current.fingerprint.as_str(), current.since_unix),
        (a.as_str(), NOW + 300)
    );
    assert!(
        aws.notes.lock().unwrap().len() > sent_before,
        "A is e-mailed for approval again"
    );
    let job = first_job_on_update(&aws, &a, NOW + 310).await;
    assert_eq!(job, AWAITING_APPROVAL, "A's old approval launched it");
    assert!(aws.jobs.lock().unwrap().is_empty());
    assert_eq!(
        first_job_on_update(&aws, &b, NOW + 320).await,
        NOT_THE_CURRENT_PLAN
    );
    // The fresh token e-mailed for A approves it, and that launches.
    let outcome = handle_approval(&aws, &approve(&token(44)), &token(98), &ctx(NOW + 330))
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            ApprovalOutcome::JobLaunched(_) | ApprovalOutcome::WaitSignalled
        ),
        "{outcome:?}"
    );
    let job = first_job_on_update(&aws, &a, NOW + 340).await;
    assert_ne!(job, AWAITING_APPROVAL);
    assert_eq!(aws.jobs.lock().unwrap().len(), 1);
}

/// A stack of an earlier Ferry has no `plans/current.json` until its TransferPlan is next
/// updated: every stored plan is accepted then, as before (the state bucket's policy lets only
/// the stack's functions write or delete `plans/`), and the first update records it.
#[tokio::test]
async fn without_a_current_plan_record_the_stored_plan_still_launches_and_an_update_records_one() {
    let aws = MemoryAws::default();
    let t = token(45);
    let p = props(ApprovalMode::Deferred);
    let ready = create_transfer(&aws, &p, &t, &ctx(NOW)).await.unwrap();
    aws.objects.lock().unwrap().remove(&keys::current_plan());
    let outcome = handle_approval(&aws, &approve(&t), &token(99), &ctx(NOW + 60))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ApprovalOutcome::JobLaunched(_)),
        "{outcome:?}"
    );
    // An update that changes nothing in the plan still records it.
    let same = update_transfer(
        &aws,
        Some(&ready.fingerprint),
        &p,
        &token(46),
        &ctx(NOW + 90),
    )
    .await
    .unwrap();
    assert!(!same.approval_requested);
    assert_eq!(current_of(&aws).fingerprint, ready.fingerprint);
}
