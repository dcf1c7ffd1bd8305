//! The SDK adapter, checked with aws-smithy-mocks: the exact CreateJob request S3 Control
//! receives, and how S3 / S3 Control failures are classified for the launcher.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3control::operation::create_job::{CreateJobError, CreateJobInput, CreateJobOutput};
use aws_sdk_s3control::types::error::{BadRequestException, TooManyRequestsException};
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, S3ChecksumAlgorithm,
    S3CopyObjectOperation, S3MetadataDirective, S3ObjectMetadata, S3SseAlgorithm, S3StorageClass,
    S3Tag,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use ferry_aws::AwsLaunchApi;
use ferry_flows::aws_error::{AwsErrorKind, RetryPolicy};
use ferry_flows::launch::{launch, LaunchError, LaunchRequest};
use ferry_flows::ports::LaunchApi;
use ferry_plan::job::client_request_token;
use ferry_plan::{Plan, TransferSpec};

fn plan(example: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(example);
    let spec = TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Plan::build(&spec).unwrap()
}

const ETAG: &str = "0123456789abcdef0123456789abcdef";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        first_pause: Duration::from_millis(1),
        max_pause: Duration::from_millis(2),
    }
}

fn s3_with_etag() -> aws_sdk_s3::Client {
    let head = mock!(aws_sdk_s3::Client::head_object).then_output(|| {
        HeadObjectOutput::builder()
            .e_tag(format!("\"{ETAG}\""))
            .build()
    });
    // An inventory's manifest.json of current versions (no VersionId column).
    let get = mock!(aws_sdk_s3::Client::get_object).then_output(|| {
        GetObjectOutput::builder()
            .body(ByteStream::from_static(
                CURRENT_VERSIONS_MANIFEST.as_bytes(),
            ))
            .build()
    });
    mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&head, &get], |c| c
        .retry_config(RetryConfig::disabled()))
}

const CURRENT_VERSIONS_MANIFEST: &str = r#"{"sourceBucket":"acme-ledger-prod","destinationBucket":"arn:aws:s3:::acme-vault-inventory","version":"2016-11-30","creationTimestamp":"1795000000000","fileFormat":"CSV","fileSchema":"Bucket, Key, Size, LastModifiedDate, ETag","files":[{"key":"inventory/acme-ledger-prod/daily/data/a.csv.gz","size":10,"MD5checksum":"0"}]}"#;

/// An adapter whose CreateJob answers `job_id` and records every input it receives.
fn recording_api(job_id: &'static str) -> (Arc<Mutex<Vec<CreateJobInput>>>, AwsLaunchApi) {
    let seen: Arc<Mutex<Vec<CreateJobInput>>> = Arc::default();
    let recorder = seen.clone();
    let create = mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(move |input| {
            recorder.lock().unwrap().push(input.clone());
            true
        })
        .then_output(move || CreateJobOutput::builder().job_id(job_id).build());
    let api = AwsLaunchApi::new(s3_with_etag(), mock_client!(aws_sdk_s3control, [&create]));
    (seen, api)
}

/// Error metadata as the SDK parses it from a real error response body.
fn service_error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn http(status: u16, region: Option<&'static str>) -> HttpResponse {
    let mut r = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
    if let Some(region) = region {
        r.headers_mut().insert("x-amz-bucket-region", region);
    }
    r
}

/// The request S3 Control receives for the KMS-everywhere example, written out field by field
/// from the AWS API reference, independently of Ferry's own request type.
fn expected_kms_inventory_input(fingerprint: &str) -> CreateJobInput {
    CreateJobInput::builder()
        .account_id("222222222222")
        .confirmation_required(true)
        .operation(
            JobOperation::builder()
                .s3_put_object_copy(
                    S3CopyObjectOperation::builder()
                        .target_resource("arn:aws:s3:::acme-ledger-vault")
                        // Sent without its slash: Batch Operations adds one (job::target_key_prefix).
                        .target_key_prefix("from-prod")
                        .storage_class(S3StorageClass::StandardIa)
                        .sse_aws_kms_key_id(
                            "arn:aws:kms:eu-west-1:222222222222:key/9a8b7c6d-5e4f-4321-9876-fedcba987654",
                        )
                        .bucket_key_enabled(true)
                        .checksum_algorithm(S3ChecksumAlgorithm::Crc32C)
                        .metadata_directive(S3MetadataDirective::Copy)
                        .new_object_metadata(
                            S3ObjectMetadata::builder().sse_algorithm(S3SseAlgorithm::Kms).build(),
                        )
                        .build(),
                )
                .build(),
        )
        .report(
            JobReport::builder()
                .bucket("arn:aws:s3:::acme-vault-reports")
                .format(JobReportFormat::ReportCsv20180820)
                .enabled(true)
                .prefix("ferry/ledger")
                .report_scope(JobReportScope::AllTasks)
                .expected_bucket_owner("222222222222")
                .build(),
        )
        .client_request_token(client_request_token(fingerprint, ETAG))
        .manifest(
            JobManifest::builder()
                .spec(
                    JobManifestSpec::builder()
                        .format(JobManifestFormat::S3InventoryReportCsv20161130)
                        .build()
                        .unwrap(),
                )
                .location(
                    JobManifestLocation::builder()
                        .object_arn("arn:aws:s3:::acme-vault-inventory/inventory/acme-ledger-prod/daily/2026-11-23T01-00Z/manifest.json")
                        .e_tag(ETAG)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .description("Ledger archive: prod to vault")
        .priority(50)
        .role_arn("arn:aws:iam::222222222222:role/ferry-ledger-batch")
        .tags(S3Tag::builder().key("ferry:transfer").value("ledger").build().unwrap())
        .tags(S3Tag::builder().key("ferry:plan").value(fingerprint).build().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn create_job_sends_exactly_the_planned_request() {
    let plan = plan("kms-inventory.toml");
    let (seen, api) = recording_api("job-42");
    let job = launch(&api, LaunchRequest::for_plan(&plan), fast_retry())
        .await
        .unwrap();
    assert_eq!(job.job_id, "job-42");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0],
        expected_kms_inventory_input(&plan.transfer.fingerprint)
    );
}

#[tokio::test]
async fn csv_manifest_fields_and_replaced_tags_reach_s3_control() {
    let plan = plan("versioned-source.toml");
    let (seen, api) = recording_api("job-7");
    launch(&api, LaunchRequest::for_plan(&plan), fast_retry())
        .await
        .unwrap();
    let input = seen.lock().unwrap()[0].clone();
    let spec = input.manifest().unwrap().spec().unwrap();
    assert_eq!(
        spec.format(),
        &JobManifestFormat::S3BatchOperationsCsv20180820
    );
    assert_eq!(
        spec.fields(),
        &[
            JobManifestFieldName::Bucket,
            JobManifestFieldName::Key,
            JobManifestFieldName::VersionId
        ]
    );
    let copy = input.operation().unwrap().s3_put_object_copy().unwrap();
    let tags: Vec<_> = copy
        .new_object_tagging()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(
        tags,
        vec![("copied-by", "ferry"), ("origin", "acme-contracts")]
    );
    assert_eq!(
        copy.new_object_metadata().unwrap().sse_algorithm(),
        Some(&S3SseAlgorithm::Aes256)
    );
}

#[tokio::test]
async fn throttled_create_job_is_retried_then_succeeds() {
    let plan = plan("sse-s3-csv.toml");
    let create = mock!(aws_sdk_s3control::Client::create_job)
        .sequence()
        .error(|| {
            CreateJobError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Rate exceeded")
                    .meta(service_error("TooManyRequestsException", "Rate exceeded"))
                    .build(),
            )
        })
        .output(|| CreateJobOutput::builder().job_id("job-1").build())
        .build();
    let api = AwsLaunchApi::new(
        s3_with_etag(),
        mock_client!(aws_sdk_s3control, RuleMode::Sequential, [&create], |c| c
            .retry_config(
                aws_sdk_s3control::config::retry::RetryConfig::disabled()
            )),
    );
    let job = launch(&api, LaunchRequest::for_plan(&plan), fast_retry())
        .await
        .unwrap();
    assert_eq!((job.job_id.as_str(), job.attempts), ("job-1", 2));
    assert_eq!(create.num_calls(), 2);
}

#[tokio::test]
async fn bad_request_is_not_retried_and_keeps_the_message() {
    let plan = plan("sse-s3-csv.toml");
    let create = mock!(aws_sdk_s3control::Client::create_job).then_error(|| {
        CreateJobError::BadRequestException(
            BadRequestException::builder()
                .message("Reading the manifest is forbidden: AccessDenied")
                .meta(service_error(
                    "BadRequestException",
                    "Reading the manifest is forbidden: AccessDenied",
                ))
                .build(),
        )
    });
    let api = AwsLaunchApi::new(s3_with_etag(), mock_client!(aws_sdk_s3control, [&create]));
    let e = launch(&api, LaunchRequest::for_plan(&plan), fast_retry())
        .await
        .unwrap_err();
    assert!(matches!(e, LaunchError::Rejected { .. }), "{e:?}");
    assert!(
        e.to_string().contains("Reading the manifest is forbidden"),
        "{e}"
    );
    assert_eq!(create.num_calls(), 1);
}

#[tokio::test]
async fn head_object_failures_are_classified_by_status() {
    for (status, region, expected) in [
        (403, None, AwsErrorKind::AccessDenied),
        (404, None, AwsErrorKind::NotFound),
        (503, None, AwsErrorKind::Transient),
    ] {
        let head =
            mock!(aws_sdk_s3::Client::head_object).then_http_response(move || http(status, region));
        let api = AwsLaunchApi::new(
            mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&head], |c| c
                .retry_config(RetryConfig::disabled())),
            mock_client!(aws_sdk_s3control, []),
        );
        let e = api.head_manifest("b", "k").await.unwrap_err();
        assert_eq!(e.kind, expected, "HTTP {status}: {e:?}");
    }
}

/// The Rust SDK doesn't follow S3's redirect to a bucket's Region: the adapter does, once,
/// remembers the Region for that bucket, and says where the answer came from.
#[tokio::test]
async fn a_redirect_to_the_buckets_region_is_followed_and_remembered() {
    let head = mock!(aws_sdk_s3::Client::head_object)
        .sequence()
        .http_response(|| http(301, Some("eu-central-1")))
        .output(|| HeadObjectOutput::builder().e_tag("\"abc\"").build())
        .output(|| HeadObjectOutput::builder().e_tag("\"abc\"").build())
        .build();
    let api = AwsLaunchApi::new(
        mock_client!(aws_sdk_s3, RuleMode::Sequential, [&head], |c| c
            .retry_config(RetryConfig::disabled())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))),
        mock_client!(aws_sdk_s3control, []),
    );
    let got = api.head_manifest("inv", "m.json").await.unwrap();
    assert_eq!(got.etag, "\"abc\"");
    assert_eq!(got.bucket_region.as_deref(), Some("eu-central-1"));
    assert_eq!(
        api.regions.region_of("inv").as_deref(),
        Some("eu-central-1")
    );
    assert_eq!(head.num_calls(), 2);
    // Next time straight to the bucket's Region: one call.
    let again = api.head_manifest("inv", "m.json").await.unwrap();
    assert_eq!(again.bucket_region.as_deref(), Some("eu-central-1"));
    assert_eq!(head.num_calls(), 3);
}

/// The wrong-Region answers that carry no `x-amz-bucket-region` header: a GET signed for the
/// wrong Region (400 AuthorizationHeaderMalformed, the Region in the body), and a HEAD's bare
/// 400 (no body at all: the Region comes from a HeadBucket, answered whatever the permissions).
/// A header naming something that isn't a Region is never used to build an endpoint.
#[tokio::test]
async fn regions_are_found_without_the_header_and_checked() {
    let malformed = || {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; \
                 expecting 'eu-west-3'</Message><Region>eu-west-3</Region></Error>",
            ),
        )
    };
    let get = mock!(aws_sdk_s3::Client::get_object)
        .sequence()
        .http_response(malformed)
        .output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(
                    CURRENT_VERSIONS_MANIFEST.as_bytes(),
                ))
                .build()
        })
        .build();
    let head = mock!(aws_sdk_s3::Client::head_object)
        .sequence()
        .http_response(|| http(400, None))
        .output(|| HeadObjectOutput::builder().e_tag("\"abc\"").build())
        .build();
    let head_bucket =
        mock!(aws_sdk_s3::Client::head_bucket).then_http_response(|| http(403, Some("ap-south-2")));
    let api = AwsLaunchApi::new(
        mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&get, &head, &head_bucket],
            |c| c
                .retry_config(RetryConfig::disabled())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
        ),
        mock_client!(aws_sdk_s3control, []),
    );
    api.get_manifest("inv", "m.json", "abc").await.unwrap();
    assert_eq!(api.regions.region_of("inv").as_deref(), Some("eu-west-3"));
    let got = api.head_manifest("other", "m.json").await.unwrap();
    assert_eq!(got.bucket_region.as_deref(), Some("ap-south-2"));
    assert_eq!(
        api.regions.region_of("other").as_deref(),
        Some("ap-south-2")
    );

    // A header that isn't a Region name is not followed.
    let head = mock!(aws_sdk_s3::Client::head_object)
        .then_http_response(|| http(301, Some("us-east-1.evil.example")));
    let head_bucket = mock!(aws_sdk_s3::Client::head_bucket)
        .then_http_response(|| http(301, Some("us-east-1.evil.example")));
    let api = AwsLaunchApi::new(
        mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&head, &head_bucket], |c| c
            .retry_config(RetryConfig::disabled())),
        mock_client!(aws_sdk_s3control, []),
    );
    let _ = api.head_manifest("b", "k").await;
    assert_eq!(api.regions.region_of("b"), None);
    assert_eq!(head.num_calls(), 1);
}

#[tokio::test]
async fn manifest_in_another_region_is_reported_with_that_region() {
    let plan = plan("kms-inventory.toml");
    let head =
        mock!(aws_sdk_s3::Client::head_object).then_http_response(|| http(301, Some("us-east-1")));
    let api = AwsLaunchApi::new(
        mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&head], |c| c
            .retry_config(RetryConfig::disabled())),
        mock_client!(aws_sdk_s3control, []),
    );
    let e = launch(&api, LaunchRequest::for_plan(&plan), fast_retry())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LaunchError::WrongRegion {
            bucket: "acme-vault-inventory".into(),
            expected_region: "eu-west-1".into(),
            actual_region: Some("us-east-1".into()),
            fix: "set manifest.region = \"us-east-1\" in the spec".into(),
        }
    );
}

/// Faults on CreateJob (a bare 503, throttling, a 500 with a service error) are retried with
/// backoff, and every attempt carries the same client request token, so S3 Control can never
/// create a second job however many attempts reach it.
#[tokio::test]
async fn create_job_faults_are_retried_with_one_token() {
    let plan = plan("sse-s3-csv.toml");
    let seen: Arc<Mutex<Vec<CreateJobInput>>> = Arc::default();
    let recorder = seen.clone();
    let create = mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(move |input| {
            recorder.lock().unwrap().push(input.clone());
            true
        })
        .sequence()
        .http_response(|| http(503, None))
        .error(|| {
            CreateJobError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Rate exceeded")
                    .meta(service_error("TooManyRequestsException", "Rate exceeded"))
                    .build(),
            )
        })
        .error(|| {
            CreateJobError::generic(service_error(
                "InternalServiceException",
                "We encountered an internal error.",
            ))
        })
        .output(|| CreateJobOutput::builder().job_id("job-9").build())
        .build();
    let api = AwsLaunchApi::new(
        s3_with_etag(),
        mock_client!(aws_sdk_s3control, RuleMode::Sequential, [&create], |c| c
            .retry_config(
                aws_sdk_s3control::config::retry::RetryConfig::disabled()
            )),
    );
    let retry = RetryPolicy {
        max_attempts: 4,
        ..fast_retry()
    };
    let job = launch(&api, LaunchRequest::for_plan(&plan), retry)
        .await
        .unwrap();
    assert_eq!((job.job_id.as_str(), job.attempts), ("job-9", 4));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    let token = client_request_token(&plan.transfer.fingerprint, ETAG);
    for input in seen.iter() {
        assert_eq!(input.client_request_token(), Some(token.as_str()));
        assert_eq!(input, &seen[0], "every attempt is the same request");
    }
}

/// Out of attempts, the launcher says what kept failing; access denied is not retried.
#[tokio::test]
async fn persistent_faults_give_up_with_the_cause_and_access_denied_is_final() {
    let plan = plan("sse-s3-csv.toml");
    let create = mock!(aws_sdk_s3control::Client::create_job)
        .sequence()
        .http_response(|| http(503, None))
        .times(3)
        .build();
    let api = AwsLaunchApi::new(
        s3_with_etag(),
        mock_client!(aws_sdk_s3control, RuleMode::Sequential, [&create], |c| c
            .retry_config(
                aws_sdk_s3control::config::retry::RetryConfig::disabled()
            )),
    );
    let e = launch(&api, LaunchRequest::for_plan(&plan), fast_retry())
        .await
        .unwrap_err();
    assert!(matches!(e, LaunchError::GaveUp { .. }), "{e:?}");
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(create.num_calls(), 3);

    let denied = mock!(aws_sdk_s3control::Client::create_job).then_error(|| {
        CreateJobError::generic(service_error(
            "AccessDenied",
            "User is not authorized to perform: iam:PassRole",
        ))
    });
    let api = AwsLaunchApi::new(s3_with_etag(), mock_client!(aws_sdk_s3control, [&denied]));
    let e = launch(&api, LaunchRequest::for_plan(&plan), fast_retry())
        .await
        .unwrap_err();
    assert!(!matches!(e, LaunchError::GaveUp { .. }), "{e:?}");
    assert!(e.to_string().contains("iam:PassRole"), "{e}");
    assert_eq!(denied.num_calls(), 1);
}

/// The LambdaInvoke job for objects over 5 GiB reaches S3 Control as schema 2.0 with the
/// destination settings as user arguments, over Ferry's own CSV manifest.
#[tokio::test]
async fn large_object_job_reaches_s3_control_as_lambda_invoke() {
    let plan = plan("kms-inventory.toml");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kms-inventory.toml");
    let spec = TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let function = "arn:aws:lambda:us-east-1:222222222222:function:ferry-large-object-copier";
    let manifest_arn = "arn:aws:s3:::ferry-state/runs/large.csv";
    let template =
        ferry_plan::job::large_object_job_request(&spec, &plan.transfer.fingerprint, function)
            .unwrap()
            .with_csv_manifest(manifest_arn, false);
    let (seen, api) = recording_api("job-large");
    let request = LaunchRequest {
        template: &template,
        plan_fingerprint: &plan.transfer.fingerprint,
        manifest_region: &plan.transfer.manifest.region,
        expected_etag: None,
    };
    launch(&api, request, fast_retry()).await.unwrap();
    let input = seen.lock().unwrap()[0].clone();
    let invoke = input.operation().unwrap().lambda_invoke().unwrap();
    assert_eq!(invoke.function_arn(), Some(function));
    assert_eq!(invoke.invocation_schema_version(), Some("2.0"));
    let args = invoke.user_arguments().unwrap();
    assert_eq!(
        args.get("destinationBucket").map(String::as_str),
        Some(spec.destination.bucket.as_str())
    );
    assert_eq!(args.get("kmsKeyArn"), spec.destination.kms_key_arn.as_ref());
    assert!(input.operation().unwrap().s3_put_object_copy().is_none());
    let manifest = input.manifest().unwrap();
    assert_eq!(manifest.location().unwrap().object_arn(), manifest_arn);
    assert_eq!(
        manifest.spec().unwrap().fields(),
        &[JobManifestFieldName::Bucket, JobManifestFieldName::Key]
    );
}

/// A redrive reads the job's manifest where it is: an inventory (and the runs' manifests beside
/// it) is in the source bucket's Region. The If-Match read follows S3's redirect like every other
/// read, with the same If-Match and version id, and streams the object's bytes.
#[tokio::test]
async fn the_redrives_manifest_read_follows_the_buckets_region() {
    use ferry_flows::report::jobs::{ManifestObjects, ReportObjects};
    // (If-Match, versionId) of each GetObject.
    type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let get = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |i| {
            recorder.lock().unwrap().push((
                i.if_match().map(str::to_string),
                i.version_id().map(str::to_string),
            ));
            true
        })
        .sequence()
        .http_response(|| http(301, Some("eu-central-1")))
        .output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"acme,a.mov\n"))
                .build()
        })
        .output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"report"))
                .build()
        })
        .build();
    let api = AwsLaunchApi::new(
        mock_client!(aws_sdk_s3, RuleMode::Sequential, [&get], |c| c
            .retry_config(RetryConfig::disabled())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))),
        mock_client!(aws_sdk_s3control, []),
    );
    let mut bytes = Vec::new();
    let mut sink = |chunk: &[u8]| bytes.extend_from_slice(chunk);
    let read = api
        .stream_object_if_match("inv", "m.csv", Some("v1"), "abc", &mut sink)
        .await
        .expect("read after the redirect");
    assert_eq!((read, bytes.as_slice()), (11, b"acme,a.mov\n".as_slice()));
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![(Some("\"abc\"".to_string()), Some("v1".to_string())); 2],
        "both tries carry If-Match and the version id"
    );
    assert_eq!(
        api.regions.region_of("inv").as_deref(),
        Some("eu-central-1")
    );
    // The report read of the same bucket goes straight there.
    let report = api.read_object("inv", "r.csv").await.unwrap();
    assert_eq!(report.as_deref(), Some(b"report".as_slice()));
    assert_eq!(get.num_calls(), 3);
}
