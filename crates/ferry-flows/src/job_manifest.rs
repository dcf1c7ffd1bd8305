//! The manifest a Batch Operations job was created with, as DescribeJob names it, and the one
//! way Ferry identifies a task of it.
//!
//! Two flows check a task against the job's own manifest (#15): the large-object copier (is the
//! invoked task one the job lists? [`crate::large_object::job_manifest`]) and the redrive (which
//! failed rows of a report are the job's own? [`crate::report::job_manifest`]). Both read the
//! manifest DescribeJob gives (S3 Control API Reference, "JobManifest", "JobManifestSpec":
//! `Format`, `Fields`; "JobManifestLocation": `ObjectArn`, `ObjectVersionId`, `ETag`,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_control_JobManifestLocation.html>) with
//! GetObject `If-Match` that ETag (S3 API Reference, "GetObject": "Return the object only if its
//! entity tag (ETag) is the same as the one specified in this header; otherwise, return a 412
//! Precondition Failed error"), and keep tasks as [`task_id`] digests.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::aws_error::AwsCallError;

/// DescribeJob's `Manifest` when it has a `Location` (a job with a manifest generator has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobManifestRef {
    /// `S3BatchOperations_CSV_20180820` or `S3InventoryReport_CSV_20161130`.
    pub format: String,
    /// CSV manifests: `Bucket`, `Key`, `VersionId`, `Ignore`, in column order.
    pub fields: Vec<String>,
    /// `arn:<partition>:s3:::<bucket>/<key>`.
    pub object_arn: String,
    pub object_version_id: Option<String>,
    /// The ETag CreateJob was given: the manifest the job read.
    pub etag: String,
}

impl JobManifestRef {
    /// `(bucket, key)` of [`Self::object_arn`] (`arn:<partition>:s3:::<bucket>/<key>`); `None`
    /// for anything else.
    pub fn bucket_and_key(&self) -> Option<(&str, &str)> {
        let parts: Vec<&str> = self.object_arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", partition, "s3", "", "", resource] if !partition.is_empty() => resource
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty()),
            _ => None,
        }
    }

    /// The recorded ETag without quotes; `None` when there is none (or it is not one).
    pub fn etag_value(&self) -> Option<&str> {
        let etag = self.etag.trim().trim_matches('"');
        (!etag.is_empty() && !etag.contains('"')).then_some(etag)
    }

    /// The version id the job recorded, if any.
    pub fn version_id(&self) -> Option<&str> {
        self.object_version_id
            .as_deref()
            .filter(|v| !v.trim().is_empty())
    }
}

/// An ETag as the `If-Match` header wants it: an HTTP entity-tag, in double quotes (RFC 7232
/// section 3.1), whether it was recorded with quotes or without.
pub fn if_match(etag: &str) -> String {
    format!("\"{}\"", etag.trim().trim_matches('"'))
}

/// Whether a failed GetObject `If-Match` means "not the content the job was created with":
/// 412 `PreconditionFailed` (S3 API Reference, "Error responses"; "HTTP 412" is the adapter's code
/// for a 412 without a body), or the object or version is gone (`NoSuchKey`, `NoSuchVersion`).
/// By code only: a message may name an object whose key holds "412", and a read that broke off
/// must stay retryable.
pub fn is_changed(cause: &AwsCallError) -> bool {
    matches!(
        cause.code.as_str(),
        "PreconditionFailed" | "HTTP 412" | "NoSuchKey" | "NoSuchVersion"
    )
}

/// A task as `(bucket, key, version id)`, as 16 bytes of SHA-256: length-prefixed fields, so no
/// two distinct triples share an input. `None`, `""` and `null` are one version (the null
/// version, or the current one where the manifest has no version ids): a task's `null`/empty
/// version and a manifest row without one name the same object.
pub type TaskId = [u8; 16];

pub fn task_id(bucket: &str, key: &str, version_id: Option<&str>) -> TaskId {
    let version = match version_id {
        None | Some("") | Some("null") => "",
        Some(v) => v,
    };
    let mut h = Sha256::new();
    for part in [bucket, key, version] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(arn: &str) -> JobManifestRef {
        JobManifestRef {
            object_arn: arn.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_s3_object_arns_have_a_bucket_and_key() {
        assert_eq!(
            at("arn:aws:s3:::b/k/with:colon").bucket_and_key(),
            Some(("b", "k/with:colon"))
        );
        for bad in [
            "arn:aws:s3:::b",
            "arn:aws:s3:::/k",
            "arn::s3:::b/k",
            "arn:aws:s3:us-east-1::b/k",
            "arn:aws:sqs:::b/k",
            "s3://b/k",
        ] {
            assert_eq!(at(bad).bucket_and_key(), None, "{bad}");
        }
    }

    #[test]
    fn if_match_quotes_once_and_etags_are_checked() {
        assert_eq!(if_match("abc"), "\"abc\"");
        assert_eq!(if_match("\"abc\""), "\"abc\"");
        let mut m = at("arn:aws:s3:::b/k");
        assert_eq!(m.etag_value(), None);
        m.etag = "\"a\"b\"".into();
        assert_eq!(m.etag_value(), None);
        m.etag = " \"abc\" ".into();
        assert_eq!(m.etag_value(), Some("abc"));
    }

    #[test]
    fn task_ids_tell_fields_apart_and_treat_null_as_no_version() {
        assert_ne!(task_id("ab", "c", None), task_id("a", "bc", None));
        assert_ne!(task_id("b", "k", Some("v1")), task_id("b", "k", None));
        assert_eq!(task_id("b", "k", Some("null")), task_id("b", "k", None));
        assert_eq!(task_id("b", "k", Some("")), task_id("b", "k", None));
    }

    #[test]
    fn only_the_codes_say_the_manifest_changed() {
        let error = |code: &str, message: &str| AwsCallError {
            kind: crate::aws_error::AwsErrorKind::Transient,
            code: code.into(),
            message: message.into(),
        };
        for code in [
            "PreconditionFailed",
            "HTTP 412",
            "NoSuchKey",
            "NoSuchVersion",
        ] {
            assert!(is_changed(&error(code, "")), "{code}");
        }
        // A broken-off read of s3://b/ferry-4120/copy.csv is a retryable error, not a change.
        assert!(!is_changed(&error(
            "ReadError",
            "reading s3://b/ferry-4120/copy.csv failed"
        )));
    }
}
