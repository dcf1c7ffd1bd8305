//! The plan: everything a transfer needs, computed from one validated spec. Its JSON form
//! (`ferry plan --format json`) is a stable contract other tools read; see `PLAN_FORMAT_VERSION`.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cost::{estimate, CostEstimate};
use crate::error::FerryError;
use crate::inventory_setup::{inventory_runs_plan, InventoryRunsPlan};
use crate::job::{create_job_request, hex, CreateJobRequest};
use crate::policy::batch_role::{batch_role, BatchRole};
use crate::policy::resource::{resource_policies, AccountPolicies};
use crate::spec::{ManifestKind, MetadataHandling, TransferSpec};
use crate::validate::validate;

/// Bumped only when a key is removed or changes meaning; new keys may be added at any time.
pub const PLAN_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub ferry_plan_version: u32,
    pub transfer: TransferSummary,
    pub batch_role: BatchRole,
    pub source_account: AccountPolicies,
    pub destination_account: AccountPolicies,
    pub create_job: CreateJobRequest,
    pub cost_estimate: CostEstimate,
    /// With `[inventory]`: what each event-driven run does and the set-up it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_runs: Option<InventoryRunsPlan>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransferSummary {
    pub name: String,
    /// First 32 hex digits of the SHA-256 of the spec: changes exactly when the transfer does.
    pub fingerprint: String,
    pub kind: TransferKind,
    pub job_region: String,
    pub source: String,
    pub destination: String,
    pub manifest: ManifestSummary,
}

/// Where the job's manifest is (the launcher reads its ETag there).
#[derive(Debug, Clone, Serialize)]
pub struct ManifestSummary {
    pub kind: ManifestKind,
    pub account_id: String,
    pub region: String,
    pub bucket: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferKind {
    CrossAccount,
    SameAccount,
    InPlace,
}

impl Plan {
    /// Validates the spec and computes the whole plan, or returns every problem found.
    pub fn build(spec: &TransferSpec) -> Result<Self, FerryError> {
        validate(spec)?;
        let fingerprint = fingerprint(spec);
        let (source_account, destination_account) = resource_policies(spec);
        let kind = if spec.is_in_place() {
            TransferKind::InPlace
        } else if spec.is_cross_account() {
            TransferKind::CrossAccount
        } else {
            TransferKind::SameAccount
        };
        let dst = &spec.destination;
        Ok(Self {
            ferry_plan_version: PLAN_FORMAT_VERSION,
            transfer: TransferSummary {
                name: spec.name.clone(),
                fingerprint: fingerprint.clone(),
                kind,
                job_region: spec.job_region().to_string(),
                source: format!("s3://{}", spec.source.bucket),
                destination: format!(
                    "s3://{}/{}",
                    dst.bucket,
                    dst.key_prefix.as_deref().unwrap_or("")
                ),
                manifest: ManifestSummary {
                    kind: spec.manifest.kind,
                    account_id: spec.manifest.account_id.clone(),
                    region: spec.manifest_region().to_string(),
                    bucket: spec.manifest.bucket.clone(),
                    key: spec.manifest.key.clone(),
                },
            },
            batch_role: batch_role(spec),
            source_account,
            destination_account,
            create_job: create_job_request(spec, &fingerprint),
            cost_estimate: estimate(spec),
            inventory_runs: inventory_runs_plan(spec),
            warnings: warnings(spec),
        })
    }

    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The estimate only feeds the cost figures, so it is left out: the same transfer has the
/// same fingerprint in `ferry plan` and in the stack (which has no estimate).
pub fn fingerprint(spec: &TransferSpec) -> String {
    let transfer = TransferSpec {
        estimate: None,
        ..spec.clone()
    };
    let canonical = serde_json::to_vec(&transfer).unwrap_or_default();
    hex(&Sha256::digest(&canonical))[..32].to_string()
}

/// Things that are allowed but worth a person's attention before money is spent.
fn warnings(spec: &TransferSpec) -> Vec<String> {
    let mut w = Vec::new();
    let job_region = spec.job_region();
    if spec.source.region != spec.destination.region {
        w.push(format!(
            "Cross-region copy: the job runs in {job_region} (Batch Operations copies must run in the destination \
             region) and pulls objects from {}; inter-region data transfer is charged per GB (see the cost estimate).",
            spec.source.region
        ));
    }
    for (what, region) in [
        ("manifest", spec.manifest_region()),
        ("report", spec.report_region()),
    ] {
        if region != job_region {
            w.push(format!(
                "The {what} bucket is in {region} but the job runs in {job_region}. AWS's guides keep manifests and \
                 reports in the job's region (verify): if CreateJob refuses it, move the {what} to a bucket in {job_region}."
            ));
        }
    }
    if spec.is_cross_account() && spec.source.kms_key_arn.is_none() {
        w.push(
            "source.kms_key_arn is not set, so no KMS access is granted on the source side. If any source objects are \
             SSE-KMS encrypted, their tasks fail with AccessDenied: set source.kms_key_arn to their customer managed key."
                .to_string(),
        );
    }
    if spec.report.kms_key_arn.is_some() {
        w.push(
            "Batch Operations writes completion reports with SSE-S3 whatever the bucket's default. The report key is \
             granted anyway; make sure no bucket policy on the report bucket denies SSE-S3 writes."
                .to_string(),
        );
    }
    if spec.source.versioned
        && spec.manifest.kind == ManifestKind::Csv
        && !spec.manifest.version_ids
    {
        w.push(
            "The source is versioned but the CSV manifest has no VersionId column: each key's current version is copied."
                .to_string(),
        );
    }
    if spec.destination.metadata == MetadataHandling::Replace
        && spec.destination.new_metadata.is_none()
    {
        w.push(
            "metadata = \"replace\" without [destination.new_metadata]: the copies lose Content-Type and all user metadata."
                .to_string(),
        );
    }
    if spec.is_in_place() && spec.destination.key_prefix.is_none() && !spec.source.versioned {
        w.push(
            "In-place copy onto an unversioned bucket: each object is overwritten by its copy, with no older version to go back to."
                .to_string(),
        );
    }
    w
}
