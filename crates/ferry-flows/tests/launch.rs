//! The launcher against a scripted stand-in for S3 and S3 Control: idempotency, retries,
//! and a clear error for each common failure.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ferry_flows::aws_error::{AwsCallError, AwsCaused, AwsErrorKind, RetryPolicy};
use ferry_flows::launch::{launch, LaunchError, LaunchRequest};
use ferry_flows::ports::{LaunchApi, ManifestHead};
use ferry_plan::job::{client_request_token, CreateJobRequest};
use ferry_plan::{Plan, TransferSpec};

/// Behaves like S3 Control for idempotency: one job per client request token.
#[derive(Default)]
struct FakeAws {
    head: Mutex<Option<Result<ManifestHead, AwsCallError>>>,
    /// HeadObject answers these first, one per call, before `head`.
    head_failures: Mutex<VecDeque<AwsCallError>>,
    heads: Mutex<u32>,
    /// The manifest.json GetObject returns; a current-versions inventory's when unset.
    manifest: Mutex<Option<String>>,
    create_failures: Mutex<VecDeque<AwsCallError>>,
    jobs_by_token: Mutex<HashMap<String, String>>,
    requests: Mutex<Vec<CreateJobRequest>>,
    pauses: Mutex<Vec<Duration>>,
}

impl FakeAws {
    fn with_etag(etag: &str) -> Self {
        let fake = Self::default();
        *fake.head.lock().unwrap() = Some(Ok(ManifestHead {
            etag: etag.to_string(),
            bucket_region: Some("eu-west-1".to_string()),
            ..ManifestHead::default()
        }));
        fake
    }
    fn fail_create(&self, kind: AwsErrorKind, code: &str, message: &str, times: usize) {
        for _ in 0..times {
            self.create_failures
                .lock()
                .unwrap()
                .push_back(err(kind, code, message));
        }
    }
}

/// An S3 Inventory manifest.json of the example's inventory with `schema`.
fn inventory_manifest(schema: &str) -> String {
    serde_json::json!({
        "sourceBucket": "acme-ledger-prod",
        "destinationBucket": "arn:aws:s3:::acme-vault-inventory",
        "version": "2016-11-30",
        "creationTimestamp": "1795000000000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": [{"key": "inventory/acme-ledger-prod/daily/data/a.csv.gz", "size": 10, "MD5checksum": "0"}]
    })
    .to_string()
}

fn err(kind: AwsErrorKind, code: &str, message: &str) -> AwsCallError {
    AwsCallError {
        kind,
        code: code.to_string(),
        message: message.to_string(),
    }
}

impl LaunchApi for FakeAws {
    async fn head_manifest(&self, bucket: &str, key: &str) -> Result<ManifestHead, AwsCallError> {
        assert_eq!(bucket, "acme-vault-inventory");
        assert_eq!(
            key,
            "inventory/acme-ledger-prod/daily/2026-11-23T01-00Z/manifest.json"
        );
        *self.heads.lock().unwrap() += 1;
        if let Some(e) = self.head_failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        self.head.lock().unwrap().clone().expect("head scripted")
    }
    async fn get_manifest(
        &self,
        _bucket: &str,
        _key: &str,
        _etag: &str,
    ) -> Result<Vec<u8>, AwsCallError> {
        let schema = "Bucket, Key, Size, LastModifiedDate, ETag";
        Ok(self
            .manifest
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| inventory_manifest(schema))
            .into_bytes())
    }
    async fn create_job(&self, request: &CreateJobRequest) -> Result<String, AwsCallError> {
        self.requests.lock().unwrap().push(request.clone());
        if let Some(e) = self.create_failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let mut jobs = self.jobs_by_token.lock().unwrap();
        let n = jobs.len();
        Ok(jobs
            .entry(request.client_request_token.clone())
            .or_insert_with(|| format!("job-{n}"))
            .clone())
    }
    async fn pause(&self, duration: Duration) {
        self.pauses.lock().unwrap().push(duration);
    }
}

fn plan() -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kms-inventory.toml");
    let spec = TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Plan::build(&spec).unwrap()
}

const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";

#[tokio::test]
async fn fills_etag_and_token_and_creates_one_job() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    let job = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(job.job_id, "job-0");
    assert_eq!(job.attempts, 1);
    let sent = aws.requests.lock().unwrap()[0].clone();
    assert_eq!(
        sent.manifest.location.etag,
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        sent.client_request_token,
        client_request_token(
            &plan.transfer.fingerprint,
            "0123456789abcdef0123456789abcdef"
        )
    );
    // Everything but the two blanks is the plan's request.
    let mut expected = plan.create_job.clone();
    expected.manifest.location.etag = sent.manifest.location.etag.clone();
    expected.client_request_token = sent.client_request_token.clone();
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn duplicate_launches_of_the_same_manifest_get_the_same_job() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    let a = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap();
    let b = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(a.job_id, b.job_id);
    assert_eq!(aws.jobs_by_token.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn throttling_is_retried_with_growing_pauses() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    aws.fail_create(
        AwsErrorKind::Throttled,
        "TooManyRequestsException",
        "slow down",
        2,
    );
    aws.fail_create(
        AwsErrorKind::Transient,
        "InternalServiceException",
        "oops",
        1,
    );
    let job = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(job.attempts, 4);
    assert_eq!(
        *aws.pauses.lock().unwrap(),
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    // Every attempt carried the same token, so no retry could make a second job.
    let tokens: Vec<_> = aws
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.client_request_token.clone())
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_says_it_can_be_retried() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    aws.fail_create(
        AwsErrorKind::Throttled,
        "TooManyRequestsException",
        "slow down",
        10,
    );
    let retry = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    let e = launch(&aws, LaunchRequest::for_plan(&plan), retry)
        .await
        .unwrap_err();
    assert!(
        matches!(e, LaunchError::GaveUp { attempts: 3, .. }),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert_eq!(aws.pauses.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn pass_role_denied_names_the_role_and_the_fix() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    aws.fail_create(
        AwsErrorKind::AccessDenied,
        "AccessDenied",
        "User: arn:aws:sts::222222222222:assumed-role/x/y is not authorized to perform: iam:PassRole on resource: arn:aws:iam::222222222222:role/ferry-ledger-batch",
        1,
    );
    let e = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, LaunchError::PassRoleDenied { .. }));
    assert!(
        text.contains("arn:aws:iam::222222222222:role/ferry-ledger-batch"),
        "{text}"
    );
    assert!(text.contains("iam:PassRole"), "{text}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn unreadable_manifest_stops_before_create_job() {
    let plan = plan();
    for (kind, code, hint) in [
        (AwsErrorKind::NotFound, "NotFound", "not be delivered yet"),
        (AwsErrorKind::AccessDenied, "Forbidden", "s3:GetObject"),
    ] {
        let aws = FakeAws::default();
        *aws.head.lock().unwrap() = Some(Err(err(kind, code, "head failed")));
        let e = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, LaunchError::ManifestNotReadable { .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains(hint), "{e}");
        assert!(aws.requests.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_changed_manifest_is_refused_when_the_etag_was_given() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    let mut request = LaunchRequest::for_plan(&plan);
    request.expected_etag = Some("\"ffffffffffffffffffffffffffffffff\"");
    let e = launch(&aws, request, RetryPolicy::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, LaunchError::ManifestEtagMismatch { .. }),
        "{e:?}"
    );
    assert!(aws.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_manifest_bucket_in_another_region_is_named() {
    let plan = plan();
    let aws = FakeAws::default();
    *aws.head.lock().unwrap() = Some(Ok(ManifestHead {
        etag: ETAG.to_string(),
        bucket_region: Some("us-east-1".to_string()),
        ..ManifestHead::default()
    }));
    let e = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the bucket acme-vault-inventory is not in eu-west-1 but in us-east-1: set manifest.region = \"us-east-1\" in the spec"
    );
}

#[test]
fn backoff_doubles_and_is_capped() {
    let r = RetryPolicy::default();
    let pauses: Vec<_> = (1..=6).map(|a| r.pause_after(a).as_secs()).collect();
    assert_eq!(pauses, vec![1, 2, 4, 8, 10, 10]);
    assert_eq!(r.pause_after(200), Duration::from_secs(10));
}

/// An inventory of all versions is never handed to a job as it is (its null versions' empty
/// VersionId fails every such task, and versions would be copied in no order): refused before
/// CreateJob, naming the way out. One of current versions goes ahead.
#[tokio::test]
async fn an_all_versions_inventory_is_refused_before_create_job() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    *aws.manifest.lock().unwrap() = Some(inventory_manifest(
        "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
    ));
    let e = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, LaunchError::AllVersionsInventory { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("filter.latest_only"), "{e}");
    assert!(aws.requests.lock().unwrap().is_empty());

    // Not an inventory's manifest.json at all: unreadable, still before CreateJob.
    *aws.manifest.lock().unwrap() = Some("Bucket,Key\n".to_string());
    let e = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, LaunchError::ManifestNotReadable { .. }),
        "{e:?}"
    );
    assert!(aws.requests.lock().unwrap().is_empty());

    *aws.manifest.lock().unwrap() = None;
    launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(aws.requests.lock().unwrap().len(), 1);
}

/// #16 item 5: a throttled or 5xx HeadObject of the manifest is retried with backoff, and the
/// launch goes on once S3 answers.
#[tokio::test]
async fn a_throttled_manifest_head_is_retried_and_the_job_launched() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    for (kind, code) in [
        (AwsErrorKind::Throttled, "SlowDown"),
        (AwsErrorKind::Transient, "HTTP 503"),
    ] {
        aws.head_failures
            .lock()
            .unwrap()
            .push_back(err(kind, code, "try later"));
    }
    let job = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(job.job_id, "job-0");
    assert_eq!(*aws.heads.lock().unwrap(), 3);
    assert_eq!(aws.pauses.lock().unwrap().len(), 2);
}

/// #16 item 5: still failing after the launcher's attempts, the error says "retry" to its
/// caller (an inventory run gives its claim back instead of being refused for a day); a
/// NotFound or AccessDenied says the opposite and is asked once.
#[tokio::test]
async fn a_manifest_head_still_failing_with_5xx_is_retryable_and_launches_nothing() {
    let plan = plan();
    let retry = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    let aws = FakeAws::with_etag(ETAG);
    for _ in 0..10 {
        aws.head_failures.lock().unwrap().push_back(err(
            AwsErrorKind::Transient,
            "HTTP 503",
            "Service Unavailable",
        ));
    }
    let e = launch(&aws, LaunchRequest::for_plan(&plan), retry)
        .await
        .unwrap_err();
    assert!(
        matches!(e, LaunchError::ManifestNotReadable { .. }),
        "{e:?}"
    );
    assert!(e.is_retryable(), "{e}");
    assert_eq!(*aws.heads.lock().unwrap(), 3);
    assert!(aws.requests.lock().unwrap().is_empty());

    let aws = FakeAws::default();
    *aws.head.lock().unwrap() = Some(Err(err(AwsErrorKind::AccessDenied, "Forbidden", "no")));
    let e = launch(&aws, LaunchRequest::for_plan(&plan), retry)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(*aws.heads.lock().unwrap(), 1);
}

/// #16 item 10: S3 Control's IdempotencyException (the token used with another request) is
/// named with the token and never retried.
#[tokio::test]
async fn an_idempotency_conflict_names_the_token_and_is_not_retried() {
    let plan = plan();
    let aws = FakeAws::with_etag(ETAG);
    aws.fail_create(
        AwsErrorKind::IdempotencyConflict,
        "IdempotencyException",
        "request token already used",
        5,
    );
    let e = launch(&aws, LaunchRequest::for_plan(&plan), RetryPolicy::default())
        .await
        .unwrap_err();
    let LaunchError::TokenUsedForAnotherRequest {
        client_request_token,
        ..
    } = &e
    else {
        panic!("{e:?}");
    };
    let sent = aws.requests.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(client_request_token, &sent[0].client_request_token);
    assert!(e.to_string().contains(client_request_token.as_str()));
    assert!(!e.is_retryable());
}
