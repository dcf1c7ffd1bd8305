//! Finding the multipart upload an earlier invocation left open, and checking its parts.
//!
//! An invocation that runs short of time stops issuing parts and answers `TemporaryFailure`,
//! leaving its upload open; Batch Operations retries the task, and the retry lists the uploads
//! on the destination key and the parts of the one it can trust, then copies only what is
//! missing. An upload is trusted when
//! - it was initiated after the source object was last modified (an upload started before is
//!   from older content: it is aborted), and
//! - its initiator, when S3 names an assumed-role session, is this task's session (sessions are
//!   named from the source bucket, key and version, see [`session_name`]); S3 names the
//!   session in `Initiator.ID` for role sessions (verify); where it doesn't (moto), the other
//!   two checks stand alone, and
//! - every listed part is exactly the plan's part of that number (same size).
//!
//! Why orphan uploads cannot pile up: every task ends with its upload completed (success),
//! aborted (permanent failure, broken or stale upload), or open with a `TemporaryFailure` that
//! Batch Operations retries and whose retry resumes, then completes or aborts, that same upload.
//! What is left is the last retry of a task that kept failing temporarily; the destination
//! bucket's `AbortIncompleteMultipartUpload` lifecycle rule is the backstop for those (see
//! `docs/large-objects.md`).

use sha2::{Digest, Sha256};

use super::copy::{CopiedPart, UploadSummary};
use super::parts::PartPlan;
use crate::job::hex;

/// The STS session the copier works in for one source object version: `ferry-copy-` and 40 hex
/// digits of SHA-256 over bucket, key and version (role session names allow ≤ 64 characters
/// of `[\w+=,.@-]`, keys don't fit).
pub fn session_name(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let digest = Sha256::digest(format!("{bucket}\n{key}\n{}", version_id.unwrap_or("")));
    format!("ferry-copy-{}", &hex(&digest)[..40])
}

/// What to do with the uploads found on the destination key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadTriage {
    /// Worth listing the parts of, newest first.
    pub candidates: Vec<UploadSummary>,
    /// This task's uploads of older content: abort them.
    pub stale: Vec<UploadSummary>,
}

/// Sorts the uploads on the destination key. `source_last_modified_ms` is the source version's
/// `LastModified`; uploads of other sessions (another version of the same key) are left alone.
pub fn triage(
    uploads: &[UploadSummary],
    source_last_modified_ms: Option<i64>,
    session: &str,
) -> UploadTriage {
    let mut out = UploadTriage::default();
    for upload in uploads {
        if !initiated_by(upload, session) {
            continue;
        }
        let newer = match (upload.initiated_ms, source_last_modified_ms) {
            (Some(initiated), Some(modified)) => initiated >= modified,
            // Without both times there is no proof the parts are of this content.
            _ => false,
        };
        if newer {
            out.candidates.push(upload.clone());
        } else {
            out.stale.push(upload.clone());
        }
    }
    out.candidates
        .sort_by_key(|u| std::cmp::Reverse(u.initiated_ms));
    out
}

/// False only when the initiator is a role session other than `session`.
fn initiated_by(upload: &UploadSummary, session: &str) -> bool {
    match upload.initiator_id.as_deref() {
        Some(id) if id.contains(":assumed-role/") => {
            id.rsplit('/').next().is_some_and(|s| s == session)
        }
        _ => true,
    }
}

/// The listed parts, if every one is the plan's part of that number; otherwise why not.
pub fn check_parts(plan: &PartPlan, listed: &[CopiedPart]) -> Result<Vec<CopiedPart>, String> {
    let mut parts = Vec::with_capacity(listed.len());
    for part in listed {
        let Some(planned) = plan.part(part.part_number) else {
            return Err(format!(
                "part {} is outside the plan of {} parts",
                part.part_number, plan.part_count
            ));
        };
        if part.size != Some(planned.size) {
            return Err(format!(
                "part {} is {:?} bytes, the plan says {}",
                part.part_number, part.size, planned.size
            ));
        }
        if part.etag.is_empty() {
            return Err(format!("part {} has no ETag", part.part_number));
        }
        parts.push(part.clone());
    }
    parts.sort_by_key(|p| p.part_number);
    parts.dedup_by_key(|p| p.part_number);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large_object::parts::{PartSizing, MIB};

    fn upload(id: &str, initiated_ms: i64, initiator: Option<&str>) -> UploadSummary {
        UploadSummary {
            upload_id: id.into(),
            initiated_ms: Some(initiated_ms),
            initiator_id: initiator.map(str::to_string),
        }
    }

    #[test]
    fn only_this_sessions_uploads_of_this_content() {
        let me = session_name("src", "big.bin", Some("v2"));
        assert_eq!(me.len(), 51);
        assert_ne!(me, session_name("src", "big.bin", Some("v1")));
        let mine = format!("arn:aws:sts::222222222222:assumed-role/ferry-x-batch/{me}");
        let other = "arn:aws:sts::222222222222:assumed-role/ferry-x-batch/ferry-copy-0000";
        let t = triage(
            &[
                upload("old", 50, Some(&mine)),
                upload("new", 200, Some(&mine)),
                upload("newer", 300, None),
                upload("theirs", 400, Some(other)),
            ],
            Some(100),
            &me,
        );
        let ids = |v: &[UploadSummary]| v.iter().map(|u| u.upload_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&t.candidates), ["newer", "new"]);
        assert_eq!(ids(&t.stale), ["old"]);
    }

    #[test]
    fn parts_must_match_the_plan() {
        let plan = PartPlan::for_size(12 * MIB, &PartSizing::with_preferred_part_size(0)).unwrap();
        let part = |n: u32, size: u64| CopiedPart {
            part_number: n,
            etag: "\"e\"".into(),
            size: Some(size),
            checksum: None,
        };
        assert_eq!(
            check_parts(&plan, &[part(2, 5 * MIB), part(1, 5 * MIB)])
                .unwrap()
                .len(),
            2
        );
        assert!(check_parts(&plan, &[part(3, 5 * MIB)]).is_err());
        assert!(check_parts(&plan, &[part(4, MIB)]).is_err());
    }
}
