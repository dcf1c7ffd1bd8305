//! The launcher: turns a plan into a running Batch Operations job, once.
//!
//! It reads the manifest's ETag, fills in the `CreateJob` request with the token derived from
//! plan and ETag, and calls CreateJob, retrying throttling and server errors with backoff. The
//! token makes it idempotent: a retry, a redelivered event or a second Lambda racing the first
//! all get the same job back. AWS calls go through [`LaunchApi`], so the logic is tested
//! without AWS; `ferry-aws` implements it with the SDK.

use std::future::Future;

use crate::aws_error::{AwsCallError, AwsCaused, AwsErrorKind, RetryPolicy};
use crate::ports::LaunchApi;
use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_plan::job::{CreateJobRequest, INVENTORY_MANIFEST_FORMAT};
use ferry_plan::plan::Plan;

/// A job that exists: created now, or found again through its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchedJob {
    pub job_id: String,
    pub manifest_etag: String,
    pub client_request_token: String,
    /// CreateJob calls made (1 unless throttled or failing transiently).
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    #[error("the manifest s3://{bucket}/{key} can't be read: {cause}. {fix}")]
    ManifestNotReadable {
        bucket: String,
        key: String,
        cause: AwsCallError,
        fix: String,
    },
    #[error(
        "the manifest s3://{bucket}/{key} changed: expected ETag {expected}, found {found}. \
         Launch again to copy the manifest as it is now, or restore the expected one"
    )]
    ManifestEtagMismatch {
        bucket: String,
        key: String,
        expected: String,
        found: String,
    },
    #[error(
        "the job creator may not pass the role {role_arn} to Batch Operations ({cause}): grant it \
         iam:PassRole on that role (and s3:CreateJob, s3:PutJobTagging)"
    )]
    PassRoleDenied {
        role_arn: String,
        cause: AwsCallError,
    },
    #[error(
        "the bucket {bucket} is not in {expected_region}{actual}: {fix}",
        actual = .actual_region.as_ref().map(|r| format!(" but in {r}")).unwrap_or_default()
    )]
    WrongRegion {
        bucket: String,
        expected_region: String,
        actual_region: Option<String>,
        fix: String,
    },
    #[error(
        "the inventory s3://{bucket}/{key} lists all object versions: Batch Operations fails every task whose \
         VersionId is empty (S3 Inventory's mark of a null version) and copies versions in no particular \
         order, so it can't be handed to a job as it is. Use an inventory of current versions, or \
         event-driven runs (Ferry writes a CSV manifest with `null`) with filter.latest_only = true"
    )]
    AllVersionsInventory { bucket: String, key: String },
    #[error(
        "S3 Control refused CreateJob with IdempotencyException for client request token {client_request_token} \
         ({cause}). AWS documents the token only as keeping a request from being submitted twice; the token is \
         derived from the plan's fingerprint and the manifest's ETag, so a job for this plan and manifest may \
         already exist (an earlier or retried request). Nothing new was launched: look for it with \
         `ferry status` (and check its role, manifest and tags: anyone who may create jobs can derive the \
         token) before launching again; to launch a new job anyway, change the plan (a new fingerprint \
         gives a new token)"
    )]
    TokenUsedForAnotherRequest {
        client_request_token: String,
        cause: AwsCallError,
    },
    #[error("S3 Control refused CreateJob: {cause}")]
    Rejected { cause: AwsCallError },
    #[error("CreateJob was still throttled or failing after {attempts} attempts: {cause}. Try again later")]
    GaveUp { attempts: u32, cause: AwsCallError },
}

/// Worth another try later (by the caller, after the launcher's own retries): CreateJob still
/// throttled ([`LaunchError::GaveUp`]), or the manifest unreadable for a throttled or 5xx
/// HeadObject/GetObject (#16 item 5: such a run is retried, not refused for an inventory cycle).
impl AwsCaused for LaunchError {
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            LaunchError::ManifestNotReadable { cause, .. }
            | LaunchError::PassRoleDenied { cause, .. }
            | LaunchError::TokenUsedForAnotherRequest { cause, .. }
            | LaunchError::Rejected { cause }
            | LaunchError::GaveUp { cause, .. } => Some(cause),
            LaunchError::ManifestEtagMismatch { .. }
            | LaunchError::WrongRegion { .. }
            | LaunchError::AllVersionsInventory { .. } => None,
        }
    }
}

/// What to launch: a `CreateJob` request (its manifest ETag and token still blank), the plan
/// fingerprint the token is derived from, and where the manifest is.
#[derive(Debug, Clone, Copy)]
pub struct LaunchRequest<'a> {
    pub template: &'a CreateJobRequest,
    pub plan_fingerprint: &'a str,
    /// Region of the manifest bucket, to catch a bucket that is elsewhere.
    pub manifest_region: &'a str,
    /// Launch only if the manifest still has this ETag (an event-driven launch names the
    /// manifest it saw); `None` takes the manifest as it is now.
    pub expected_etag: Option<&'a str>,
}

impl<'a> LaunchRequest<'a> {
    /// The plan's own job on the spec's manifest, as it is now.
    pub fn for_plan(plan: &'a Plan) -> Self {
        Self {
            template: &plan.create_job,
            plan_fingerprint: &plan.transfer.fingerprint,
            manifest_region: &plan.transfer.manifest.region,
            expected_etag: None,
        }
    }
}

/// Creates the job, once. See the module documentation.
pub async fn launch<A: LaunchApi>(
    api: &A,
    launch: LaunchRequest<'_>,
    retry: RetryPolicy,
) -> Result<LaunchedJob, LaunchError> {
    let object_arn = &launch.template.manifest.location.object_arn;
    let (bucket, key) = split_object_arn(object_arn).ok_or_else(|| LaunchError::Rejected {
        cause: AwsCallError {
            kind: AwsErrorKind::BadRequest,
            code: "InvalidManifestArn".to_string(),
            message: format!("{object_arn:?} is not an S3 object ARN (arn:aws:s3:::bucket/key)"),
        },
    })?;
    let region = launch.manifest_region;
    // Throttling and 5xx on the manifest are retried here like CreateJob's, then left to the
    // caller's retry (#16 item 5): never a reason to give up on the copy.
    let (head, _) = with_retries(api, retry, || api.head_manifest(bucket, key))
        .await
        .map_err(|(cause, _)| manifest_error(bucket, key, region, cause))?;
    if let Some(actual) = &head.bucket_region {
        if actual != region {
            return Err(LaunchError::WrongRegion {
                bucket: bucket.to_string(),
                expected_region: region.to_string(),
                actual_region: Some(actual.clone()),
                fix: format!("set manifest.region = \"{actual}\" in the spec"),
            });
        }
    }
    let etag = head.etag.trim().trim_matches('"').to_string();
    if let Some(expected) = launch.expected_etag {
        let expected = expected.trim().trim_matches('"');
        if expected != etag {
            return Err(LaunchError::ManifestEtagMismatch {
                bucket: bucket.to_string(),
                key: key.to_string(),
                expected: expected.to_string(),
                found: etag,
            });
        }
    }
    if launch.template.manifest.spec.format == INVENTORY_MANIFEST_FORMAT {
        refuse_all_versions_inventory(api, bucket, key, &etag, retry).await?;
    }
    let request = launch
        .template
        .for_manifest_etag(launch.plan_fingerprint, &etag)
        .ok_or_else(|| LaunchError::ManifestNotReadable {
            bucket: bucket.to_string(),
            key: key.to_string(),
            cause: AwsCallError {
                kind: AwsErrorKind::Other,
                code: "MissingETag".to_string(),
                message: "HeadObject returned no ETag".to_string(),
            },
            fix: "CreateJob requires the manifest's ETag; check the object is a complete upload"
                .to_string(),
        })?;

    match with_retries(api, retry, || api.create_job(&request)).await {
        Ok((job_id, attempts)) => Ok(LaunchedJob {
            job_id,
            manifest_etag: etag,
            client_request_token: request.client_request_token,
            attempts,
        }),
        Err((cause, attempts)) if cause.is_retryable() => {
            Err(LaunchError::GaveUp { attempts, cause })
        }
        Err((cause, _))
            if cause.kind == AwsErrorKind::AccessDenied && mentions_pass_role(&cause) =>
        {
            Err(LaunchError::PassRoleDenied {
                role_arn: request.role_arn.clone(),
                cause,
            })
        }
        // S3 Control API Reference, CreateJob, Errors: `IdempotencyException`.
        Err((cause, _)) if cause.kind == AwsErrorKind::IdempotencyConflict => {
            Err(LaunchError::TokenUsedForAnotherRequest {
                client_request_token: request.client_request_token.clone(),
                cause,
            })
        }
        Err((cause, _)) => Err(LaunchError::Rejected { cause }),
    }
}

/// Calls `call` until it succeeds, fails for good ([`AwsCallError::is_retryable`] false), or
/// `retry.max_attempts` calls were made, pausing with backoff between them. The error comes
/// with the number of calls made.
async fn with_retries<A, T, F, Fut>(
    api: &A,
    retry: RetryPolicy,
    mut call: F,
) -> Result<(T, u32), (AwsCallError, u32)>
where
    A: LaunchApi,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsCallError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok((value, attempt)),
            Err(cause) if cause.is_retryable() && attempt < retry.max_attempts.max(1) => {
                api.pause(retry.pause_after(attempt)).await;
            }
            Err(cause) => return Err((cause, attempt)),
        }
    }
}

/// An inventory's `manifest.json` goes to a job as it is only when it lists current versions.
/// An inventory of all versions marks a null version with an empty VersionId, and Batch
/// Operations fails every such task (S3 User Guide, "Converting empty version ID strings in
/// Amazon S3 Inventory reports to null strings"); it also copies versions in no order, while AWS
/// says to copy noncurrent versions first and current ones in a later job (S3 User Guide, "Copy
/// objects"). So such an inventory is refused here, whoever launches.
async fn refuse_all_versions_inventory<A: LaunchApi>(
    api: &A,
    bucket: &str,
    key: &str,
    etag: &str,
    retry: RetryPolicy,
) -> Result<(), LaunchError> {
    let unreadable = |cause: AwsCallError, fix: String| LaunchError::ManifestNotReadable {
        bucket: bucket.to_string(),
        key: key.to_string(),
        cause,
        fix,
    };
    let (body, _) = with_retries(api, retry, || api.get_manifest(bucket, key, etag))
        .await
        .map_err(|(cause, _)| {
        let fix = match cause.kind {
            AwsErrorKind::AccessDenied => "the caller needs s3:GetObject on the inventory's manifest.json and, \
                 for an SSE-KMS inventory, kms:Decrypt on its key through S3 (the stack's roles have both)"
                .to_string(),
            AwsErrorKind::Other if cause.code == "PreconditionFailed" => {
                "the manifest changed while it was read: launch again".to_string()
            }
            _ => "try again; if it persists, check the object is the inventory's manifest.json"
                .to_string(),
        };
        unreadable(cause, fix)
    })?;
    let manifest = InventoryManifest::from_json(&body).map_err(|e| {
        unreadable(
            AwsCallError {
                kind: AwsErrorKind::BadRequest,
                code: "InvalidInventoryManifest".to_string(),
                message: e.to_string(),
            },
            "manifest.key must name an S3 Inventory's manifest.json".to_string(),
        )
    })?;
    if manifest.has_version_ids() {
        return Err(LaunchError::AllVersionsInventory {
            bucket: bucket.to_string(),
            key: key.to_string(),
        });
    }
    Ok(())
}

/// `arn:<partition>:s3:::<bucket>/<key>` → (bucket, key).
fn split_object_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(":s3:::")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

fn mentions_pass_role(cause: &AwsCallError) -> bool {
    cause.message.contains("iam:PassRole")
}

fn manifest_error(bucket: &str, key: &str, region: &str, cause: AwsCallError) -> LaunchError {
    let fix = match cause.kind {
        AwsErrorKind::NotFound => {
            "check manifest.bucket and manifest.key; for an inventory, the report may not be delivered yet".to_string()
        }
        AwsErrorKind::AccessDenied => format!(
            "the caller needs s3:GetObject on it; if it lives in the other account, that account's bucket \
             policy must allow this principal (and its key policy, if SSE-KMS). Bucket: {bucket}"
        ),
        AwsErrorKind::WrongRegion => {
            return LaunchError::WrongRegion {
                bucket: bucket.to_string(),
                expected_region: region.to_string(),
                actual_region: None,
                fix: "set manifest.region to the bucket's region in the spec".to_string(),
            }
        }
        _ => "try again; if it persists, check the bucket exists and S3 is reachable".to_string(),
    };
    LaunchError::ManifestNotReadable {
        bucket: bucket.to_string(),
        key: key.to_string(),
        cause,
        fix,
    }
}
