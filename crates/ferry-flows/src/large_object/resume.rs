//! Finding the multipart upload an earlier invocation left open, and checking its parts.
//!
//! An invocation that runs short of time stops issuing parts and answers `TemporaryFailure`,
//! leaving its upload open; Batch Operations retries the task, and the retry lists the uploads
//! on the destination key and the parts of the one it can trust, then copies only what is
//! missing. An upload is trusted only when
//! - its initiator is this task's session of the batch role ([`SessionIdentity`]: sessions are
//!   named from the source bucket, key, version and copy settings, see [`session_name`]). Any other upload is
//!   *foreign* (another principal of the destination account, which may write there too, or
//!   another version's session) and is neither resumed nor completed nor aborted: resuming it
//!   would complete a copy with someone else's parts, metadata, encryption and tags (#15,
//!   item 6), and aborting it could destroy another writer's work. A fresh upload is started.
//!   AWS documents `Initiator.ID` for accounts (canonical id) and IAM users (user ARN), not for
//!   role sessions (S3 API Reference, `Initiator`); the session is recognised in both forms STS
//!   gives it, its ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`) and its
//!   principal id (`AROA…:<session>`). (verify) If S3 names role sessions otherwise, nothing
//!   is ever resumed: each retry starts over (the result says which initiator it saw), which is
//!   slower, never wrong;
//! - it was initiated after the source object was last modified (an upload started before is
//!   from older content: it is aborted), and
//! - every listed part is exactly the plan's part of that number (same size).
//!
//! Why orphan uploads cannot pile up: every task ends with its upload completed (success),
//! aborted (permanent failure, broken or stale upload), or open with a `TemporaryFailure` that
//! Batch Operations retries and whose retry resumes, then completes or aborts, that same upload.
//! What is left is the last retry of a task that kept failing temporarily, and foreign uploads;
//! the destination bucket's `AbortIncompleteMultipartUpload` lifecycle rule is the backstop for
//! those (see `docs/large-objects.md`).

use sha2::{Digest, Sha256};

use super::parts::PartPlan;
use crate::large_object::parts::{CopiedPart, UploadSummary};
use ferry_plan::job::hex;
use ferry_plan::large_object_arguments::LargeObjectCopyArguments;

/// The STS session the copier works in for one source object version copied with one set of
/// settings: `ferry-copy-` and 40 hex digits of SHA-256 over bucket, key, version and the copy
/// settings (role session names allow ≤ 64 characters of `[\w+=,.@-]`, keys don't fit).
///
/// The settings are in the name because an upload's storage class, encryption, metadata and tags
/// are fixed when it is created (CreateMultipartUpload) and ListMultipartUploads shows few of
/// them: an upload left open by a run with other settings (a transfer re-run after its spec
/// changed) must not be resumed and completed with the old ones. It belongs to another session,
/// so it is foreign: left alone, and a fresh upload is started (#16 review).
pub fn session_name(
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    settings: &LargeObjectCopyArguments,
) -> String {
    // `Debug` lists every field, so any setting that changes changes the name; a format that
    // changes with a new copier version only means that version resumes nothing older.
    let digest = Sha256::digest(format!(
        "{bucket}\n{key}\n{}\n{settings:?}",
        version_id.unwrap_or("")
    ));
    format!("ferry-copy-{}", &hex(&digest)[..40])
}

/// The batch-role session a copy works in, as STS named it when the copier assumed the role
/// (`AssumeRole`'s `AssumedRoleUser`: STS API Reference, AssumedRoleUser).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionIdentity {
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    /// `AssumedRoleId`: `<role's unique id>:<session>`.
    pub assumed_role_id: Option<String>,
}

impl SessionIdentity {
    /// Whether an upload's `Initiator.ID` names this session.
    pub fn initiated(&self, upload: &UploadSummary) -> bool {
        match upload.initiator_id.as_deref() {
            Some(id) if !id.is_empty() => {
                id == self.arn || self.assumed_role_id.as_deref() == Some(id)
            }
            _ => false,
        }
    }
}

/// What to do with the uploads found on the destination key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadTriage {
    /// Worth listing the parts of, newest first.
    pub candidates: Vec<UploadSummary>,
    /// This task's uploads of older content: abort them.
    pub stale: Vec<UploadSummary>,
    /// Uploads this session did not initiate: left alone.
    pub foreign: Vec<UploadSummary>,
}

/// Sorts the uploads on the destination key. `source_last_modified_ms` is the source version's
/// `LastModified`; uploads of any other initiator are foreign and left alone.
pub fn triage(
    uploads: &[UploadSummary],
    source_last_modified_ms: Option<i64>,
    me: &SessionIdentity,
) -> UploadTriage {
    let mut out = UploadTriage::default();
    for upload in uploads {
        if !me.initiated(upload) {
            out.foreign.push(upload.clone());
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

    fn settings() -> LargeObjectCopyArguments {
        LargeObjectCopyArguments {
            destination_bucket: "dst".into(),
            destination_account: "222222222222".into(),
            source_account: "111111111111".into(),
            key_prefix: None,
            storage_class: None,
            kms_key_arn: None,
            bucket_key_enabled: false,
            checksum_algorithm: None,
            metadata: ferry_plan::large_object_arguments::MetadataArgument::Copy,
            tags: ferry_plan::large_object_arguments::TagsArgument::Copy,
        }
    }

    #[test]
    fn only_this_sessions_uploads_of_this_content() {
        let settings = settings();
        let session = session_name("src", "big.bin", Some("v2"), &settings);
        assert_eq!(session.len(), 51);
        assert_ne!(
            session,
            session_name("src", "big.bin", Some("v1"), &settings)
        );
        // Other settings, another session: an upload they left open is not this copy's.
        for changed in [
            LargeObjectCopyArguments {
                storage_class: Some("GLACIER_IR".into()),
                ..settings.clone()
            },
            LargeObjectCopyArguments {
                checksum_algorithm: Some("SHA256".into()),
                ..settings.clone()
            },
            LargeObjectCopyArguments {
                kms_key_arn: Some("arn:aws:kms:us-east-1:222222222222:key/other".into()),
                ..settings.clone()
            },
        ] {
            assert_ne!(
                session,
                session_name("src", "big.bin", Some("v2"), &changed)
            );
        }
        assert_eq!(
            session,
            session_name("src", "big.bin", Some("v2"), &settings.clone())
        );
        let me = SessionIdentity {
            arn: format!("arn:aws:sts::222222222222:assumed-role/ferry-x-batch/{session}"),
            assumed_role_id: Some(format!("AROAEXAMPLEID:{session}")),
        };
        let principal_id = format!("AROAEXAMPLEID:{session}");
        let other = "arn:aws:sts::222222222222:assumed-role/ferry-x-batch/ferry-copy-0000";
        let t = triage(
            &[
                upload("old", 50, Some(&me.arn)),
                upload("new", 200, Some(&me.arn)),
                upload("by-id", 250, Some(&principal_id)),
                upload("nobody", 300, None),
                upload("user", 350, Some("arn:aws:iam::222222222222:user/someone")),
                upload(
                    "root",
                    360,
                    Some("75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"),
                ),
                upload("theirs", 400, Some(other)),
                // The same session name under another role is not this session.
                upload(
                    "lookalike",
                    450,
                    Some(&me.arn.replace("ferry-x-batch", "evil")),
                ),
            ],
            Some(100),
            &me,
        );
        let ids = |v: &[UploadSummary]| v.iter().map(|u| u.upload_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&t.candidates), ["by-id", "new"]);
        assert_eq!(ids(&t.stale), ["old"]);
        assert_eq!(
            ids(&t.foreign),
            ["nobody", "user", "root", "theirs", "lookalike"]
        );
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
