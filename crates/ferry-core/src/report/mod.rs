//! Job monitoring: what a finished Batch Operations job did, why tasks failed, and how to
//! copy them again.
//!
//! - [`manifest_json`] and [`results`]: the completion report (`manifest.json` and the result
//!   CSVs, parsed defensively and streamed);
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
pub mod manifest_json;
pub mod monitor;
pub mod progress;
pub mod read;
pub mod redrive;
pub mod results;
pub mod summary;

use crate::approval::keys;
use crate::launch::AwsCallError;
use crate::ports::StateStore;

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
                && crate::plan::fingerprint(&stored.spec) == fingerprint
        }))
}
