//! Job monitoring: what a finished Batch Operations job did, why tasks failed, and how to
//! copy them again.
//!
//! - the completion report's `manifest.json` and result CSVs are parsed in `ferry_listings::report`;
//! - [`diagnosis`]: failure causes and their fixes; [`summary`]: the e-mail and breakdown;
//! - [`jobs`]: the S3 Control and report-reading ports; [`read`]: the report through them;
//! - [`monitor`]: the job-monitor function's workflow; [`accounting`]: whether a finished job's
//!   report accounts for every failed task, before its inventory run may commit;
//!   [`redrive`]: failed tasks → new job;
//! - [`progress`]: `ferry status`'s progress bar.

pub mod accounting;
pub mod diagnosis;
pub mod job_manifest;
pub mod jobs;
pub mod monitor;
pub mod progress;
pub mod read;
pub mod redrive;
pub mod summary;

use crate::aws_error::AwsCallError;
use crate::ports::StateStore;
use ferry_plan::approval::keys;

/// A plan as the stack stores it (`plans/<fingerprint>.json`): the spec and its fingerprint.
pub type StoredSpec = crate::workflow::StoredPlan;

/// The stored plan of a fingerprint; `None` when absent or unreadable (monitoring then works
/// without it, in general terms).
pub async fn load_stored_spec<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<Option<StoredSpec>, AwsCallError> {
    if fingerprint.is_empty() {
        return Ok(None);
    }
    // A stored spec that no longer hashes to its fingerprint was changed by someone other than
    // the stack (#15): treated as absent, never used to build a redrive or a summary.
    Ok(ports
        .get(&keys::plan(fingerprint))
        .await?
        .and_then(|bytes| serde_json::from_slice::<StoredSpec>(&bytes).ok())
        .filter(|stored| {
            stored.fingerprint == fingerprint
                && ferry_plan::plan::fingerprint(&stored.spec) == fingerprint
        }))
}
