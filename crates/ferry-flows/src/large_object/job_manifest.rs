//! Is the task's object one the invoking job lists? (#15, item 6)
//!
//! [`super::invoking_job`] proves that `job.id` is an active large-object job of this stack, and
//! [`super::pins`] that the task's bucket and settings are the stack's; neither says that the
//! task's key and version are one of the job's objects. A principal allowed
//! `lambda:InvokeFunction` could otherwise name the real job and any object of the source bucket
//! (past the spec's filters) and have it copied as the batch role.
//!
//! So the copier reads the job's own manifest, as DescribeJob gives it (S3 Control API
//! Reference, `JobManifest`: `Spec` {`Format`, `Fields`} and `Location`
//! {`ObjectArn`, `ObjectVersionId`, `ETag`}: "JobManifestLocation",
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_control_JobManifestLocation.html>),
//! with GetObject `If-Match` that ETag (and `versionId` when the job names one), as the batch
//! role: Batch Operations itself reads the manifest as that role ("Granting permissions for
//! Batch Operations"), so no new permission is needed. The copier acts only for a task whose
//! (bucket, key, version id) is one of its rows.
//!
//! The manifest is the one Ferry writes for large-object jobs (`ferry_plan::job::
//! large_object_job_request` + `with_csv_manifest`): `S3BatchOperations_CSV_20180820` with
//! fields `Bucket,Key` or `Bucket,Key,VersionId`, read with [`ferry_listings::manifest`]'s reader. Keys
//! in CSV manifests are URL-encoded (S3 User Guide, "Specifying a manifest"); the reader decodes
//! them (`%XX`, a raw `+` stays a plus) and the task's `s3Key` is decoded as AWS's own Lambda
//! example reads it (`unquote_plus`, [`super::task::RawTask::decode`]): so the comparison is of
//! decoded keys, the key S3 names. Ferry's writer never writes a raw `+` (`%2B` and `%20`), so
//! both readings agree on every row it writes; a raw `+` in a manifest written by hand is
//! ambiguous and its row matches only a task naming the key with a `+` (fail-safe).
//!
//! Memory is bounded: a manifest over [`MAX_MANIFEST_BYTES`] or [`MAX_MANIFEST_ROWS`] rows is
//! refused, and each row is kept as a 128-bit hash. Large-object manifests list only objects
//! over 5 GiB: a million of them is at least 5 PiB, more than one job should carry.

use std::collections::HashSet;
use std::fmt;

use super::task::CopyTask;
use crate::aws_error::{AwsCallError, AwsErrorKind};
use crate::job_manifest::{task_id, JobManifestRef, TaskId};
use ferry_listings::manifest::{CheckOptions, CsvManifestReader, ManifestReadError};
use ferry_plan::job::CSV_MANIFEST_FORMAT;

/// Rows a job's manifest may have (each an object over 5 GiB).
pub const MAX_MANIFEST_ROWS: usize = 1_000_000;
/// Bytes a job's manifest may have (a row of Ferry's is ~100 bytes; 64 MiB holds ~600,000).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Where the manifest is and which content of it the job was created with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestLocation {
    pub object_arn: String,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    /// Without quotes.
    pub etag: String,
    /// Rows have a version id (`Fields` ends with `VersionId`).
    pub version_ids: bool,
}

impl ManifestLocation {
    /// The `If-Match` value: the ETag as an HTTP entity-tag, in double quotes (S3 API
    /// Reference, GetObject `If-Match`; RFC 7232 section 3.1).
    pub fn if_match(&self) -> String {
        crate::job_manifest::if_match(&self.etag)
    }
}

/// The manifest as GetObject gave it (the adapter reads at most the byte limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedManifest {
    pub body: Vec<u8>,
    /// The response's `ETag`.
    pub etag: Option<String>,
    /// Set when the object is larger than the limit: its size, or the bytes read when unknown.
    /// `body` is then incomplete.
    pub over_limit: Option<u64>,
}

/// Why a task is not acted on for the job's manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestRefusal {
    #[error(
        "DescribeJob shows no manifest for job {job_id} (a job with a manifest generator?): the copier acts only \
         for tasks listed in the CSV manifest Ferry's large-object jobs are created with"
    )]
    NoManifest { job_id: String },
    #[error(
        "job {job_id}'s manifest is {format} with fields {fields}: Ferry's large-object jobs list their objects in \
         {CSV_MANIFEST_FORMAT} with fields Bucket,Key or Bucket,Key,VersionId, the only form the copier checks \
         tasks against"
    )]
    UnsupportedManifest {
        job_id: String,
        format: String,
        fields: String,
    },
    #[error("job {job_id}'s manifest location {object_arn:?} can't be used: {problem}")]
    BadLocation {
        job_id: String,
        object_arn: String,
        problem: String,
    },
    #[error(
        "job {job_id}'s manifest {object_arn} is not the one the job was created with (ETag {etag}): {detail}. \
         The copier acts only on the manifest a job was created with; cancel the job and launch again"
    )]
    Changed {
        job_id: String,
        object_arn: String,
        etag: String,
        detail: String,
    },
    #[error(
        "the batch role may not read job {job_id}'s manifest {object_arn} ({detail}): Batch Operations reads it as \
         that role, which needs s3:GetObject (s3:GetObjectVersion with a version id) on it"
    )]
    Unreadable {
        job_id: String,
        object_arn: String,
        detail: String,
    },
    #[error("reading job {job_id}'s manifest {object_arn} failed for now ({detail}); Batch Operations retries the task")]
    ReadFailed {
        job_id: String,
        object_arn: String,
        detail: String,
    },
    #[error(
        "job {job_id}'s manifest {object_arn} has more than {limit}: the copier checks tasks against manifests of at \
         most {MAX_MANIFEST_ROWS} rows and {MAX_MANIFEST_BYTES} bytes (large-object manifests list only objects over \
         5 GiB); split the objects over several jobs"
    )]
    TooLarge {
        job_id: String,
        object_arn: String,
        limit: String,
    },
    #[error(
        "{object} is not in job {job_id}'s manifest {object_arn} ({rows} rows{skipped}): the copier copies only the \
         objects the invoking job lists"
    )]
    NotListed {
        job_id: String,
        object_arn: String,
        /// `s3://<bucket>/"<key>" (version …)`: the key escaped and quoted (`{:?}`), cut at 200
        /// characters.
        object: String,
        rows: usize,
        /// `; N unreadable rows skipped (first: …)` or empty.
        skipped: String,
    },
}

impl ManifestRefusal {
    /// Whether Batch Operations should retry the task (`TemporaryFailure`).
    pub fn is_temporary(&self) -> bool {
        matches!(self, ManifestRefusal::ReadFailed { .. })
    }

    /// The refusal for a failed GetObject of the manifest.
    pub fn from_read(job_id: &str, location: &ManifestLocation, e: &AwsCallError) -> Self {
        let job_id = job_id.to_string();
        let object_arn = location.object_arn.clone();
        let detail = e.to_string();
        // 412 PreconditionFailed: If-Match failed (S3 API Reference, GetObject).
        if crate::job_manifest::is_changed(e) {
            return ManifestRefusal::Changed {
                job_id,
                object_arn,
                etag: location.etag.clone(),
                detail: format!("S3 answered that If-Match failed ({detail})"),
            };
        }
        match e.kind {
            AwsErrorKind::NotFound => ManifestRefusal::Changed {
                job_id,
                object_arn,
                etag: location.etag.clone(),
                detail: format!("it is gone ({detail})"),
            },
            kind if kind.is_retryable() => ManifestRefusal::ReadFailed {
                job_id,
                object_arn,
                detail,
            },
            _ => ManifestRefusal::Unreadable {
                job_id,
                object_arn,
                detail,
            },
        }
    }
}

impl ManifestLocation {
    /// The manifest's location, if it is the form Ferry creates large-object jobs with.
    pub fn of(manifest: &JobManifestRef, job_id: &str) -> Result<Self, ManifestRefusal> {
        let version_ids = match manifest
            .fields
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()[..]
        {
            ["Bucket", "Key"] => false,
            ["Bucket", "Key", "VersionId"] => true,
            _ => return Err(unsupported(manifest, job_id)),
        };
        if manifest.format != CSV_MANIFEST_FORMAT {
            return Err(unsupported(manifest, job_id));
        }
        let bad = |problem: String| ManifestRefusal::BadLocation {
            job_id: job_id.to_string(),
            object_arn: manifest.object_arn.clone(),
            problem,
        };
        let (bucket, key) = manifest
            .bucket_and_key()
            .ok_or_else(|| bad("expected arn:<partition>:s3:::<bucket>/<key>".into()))?;
        let etag = manifest
            .etag_value()
            .ok_or_else(|| bad(format!("the job's ETag {:?} is not one", manifest.etag)))?;
        Ok(ManifestLocation {
            object_arn: manifest.object_arn.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: manifest.version_id().map(str::to_string),
            etag: etag.to_string(),
            version_ids,
        })
    }
}

fn unsupported(manifest: &JobManifestRef, job_id: &str) -> ManifestRefusal {
    ManifestRefusal::UnsupportedManifest {
        job_id: job_id.to_string(),
        format: if manifest.format.is_empty() {
            "(no format)".into()
        } else {
            format!("{:?}", manifest.format)
        },
        fields: if manifest.fields.is_empty() {
            "(none)".into()
        } else {
            manifest.fields.join(",")
        },
    }
}

/// The objects a job's manifest lists, as hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestRows {
    pub job_id: String,
    pub location: ManifestLocation,
    rows: HashSet<TaskId>,
    /// Lines the reader refused (they list no object), and the first one's problem.
    skipped: u64,
    first_problem: Option<String>,
}

impl fmt::Debug for ManifestRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestRows")
            .field("job_id", &self.job_id)
            .field("location", &self.location)
            .field("rows", &self.rows.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl ManifestRows {
    /// Reads the fetched manifest: it must be the job's content (ETag) and within the limits.
    /// Rows naming another bucket than `source_bucket` (the pinned one) or of the other
    /// version-id form are skipped: no task of them passes anyway.
    pub fn read(
        job_id: &str,
        location: &ManifestLocation,
        fetched: &FetchedManifest,
        source_bucket: &str,
    ) -> Result<Self, ManifestRefusal> {
        let too_large = |limit: String| ManifestRefusal::TooLarge {
            job_id: job_id.to_string(),
            object_arn: location.object_arn.clone(),
            limit,
        };
        if let Some(size) = fetched.over_limit {
            return Err(too_large(format!(
                "{MAX_MANIFEST_BYTES} bytes (at least {size})"
            )));
        }
        if fetched.body.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(too_large(format!(
                "{MAX_MANIFEST_BYTES} bytes ({})",
                fetched.body.len()
            )));
        }
        // If-Match was sent; the answer's ETag is checked too, so content other than the job's
        // is never read as its manifest.
        let answered = fetched
            .etag
            .as_deref()
            .map(|e| e.trim().trim_matches('"'))
            .unwrap_or_default();
        if answered != location.etag {
            return Err(ManifestRefusal::Changed {
                job_id: job_id.to_string(),
                object_arn: location.object_arn.clone(),
                etag: location.etag.clone(),
                detail: format!("S3 answered ETag {answered:?}"),
            });
        }
        let reader = CsvManifestReader::with_options(
            fetched.body.as_slice(),
            CheckOptions {
                bucket: Some(source_bucket.to_string()),
                version_ids: Some(location.version_ids),
            },
        );
        let mut rows = HashSet::new();
        let mut skipped = 0u64;
        let mut first_problem = None;
        for row in reader {
            match row {
                Ok(row) => {
                    rows.insert(task_id(&row.bucket, &row.key, row.version_id.as_deref()));
                    if rows.len() > MAX_MANIFEST_ROWS {
                        return Err(too_large(format!("{MAX_MANIFEST_ROWS} rows")));
                    }
                }
                Err(ManifestReadError::Invalid(problem)) => {
                    skipped += 1;
                    first_problem.get_or_insert_with(|| problem.to_string());
                }
                Err(ManifestReadError::Io(e)) => {
                    // A byte slice doesn't fail to read; say so if it ever does.
                    return Err(ManifestRefusal::ReadFailed {
                        job_id: job_id.to_string(),
                        object_arn: location.object_arn.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        Ok(Self {
            job_id: job_id.to_string(),
            location: location.clone(),
            rows,
            skipped,
            first_problem,
        })
    }

    /// Rows kept.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the task's (bucket, key, version id) is a row; refused naming the key if not.
    /// A task's `null`/empty version and a row's `null` are both "no version id".
    pub fn check(&self, task: &CopyTask) -> Result<(), ManifestRefusal> {
        if self.rows.contains(&task_id(
            &task.bucket,
            &task.key,
            task.version_id.as_deref(),
        )) {
            return Ok(());
        }
        let key = format!("{:?}", task.key);
        let key = match key.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &key[..cut]),
            None => key,
        };
        Err(ManifestRefusal::NotListed {
            job_id: self.job_id.clone(),
            object_arn: self.location.object_arn.clone(),
            object: format!(
                "s3://{}/{key} (version {})",
                task.bucket,
                task.version_id
                    .as_deref()
                    .map_or("current".to_string(), |v| format!("{v:?}"))
            ),
            rows: self.rows.len(),
            skipped: match &self.first_problem {
                Some(p) => format!("; {} unreadable line(s) skipped, first: {p}", self.skipped),
                None => String::new(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:s3:::acme-media-ops/ferry/large.csv";

    fn facts(fields: &[&str]) -> JobManifestRef {
        JobManifestRef {
            format: CSV_MANIFEST_FORMAT.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            object_arn: ARN.into(),
            object_version_id: None,
            etag: "abc".into(),
        }
    }

    fn task(key: &str, version: Option<&str>) -> CopyTask {
        CopyTask {
            task_id: "t".into(),
            bucket: "acme-media-prod".into(),
            key: key.into(),
            version_id: version.map(str::to_string),
        }
    }

    fn fetched(body: &str) -> FetchedManifest {
        FetchedManifest {
            body: body.as_bytes().to_vec(),
            etag: Some("\"abc\"".into()),
            over_limit: None,
        }
    }

    #[test]
    fn only_ferrys_csv_form_is_read() {
        let loc = ManifestLocation::of(&facts(&["Bucket", "Key"]), "j1").expect("Ferry's form");
        assert_eq!(
            (loc.bucket.as_str(), loc.key.as_str(), loc.version_ids),
            ("acme-media-ops", "ferry/large.csv", false)
        );
        assert_eq!(loc.if_match(), "\"abc\"");
        assert!(
            ManifestLocation::of(&facts(&["Bucket", "Key", "VersionId"]), "j1")
                .unwrap()
                .version_ids
        );
        let mut inventory = facts(&[]);
        inventory.format = "S3InventoryReport_CSV_20161130".into();
        let text = ManifestLocation::of(&inventory, "j1")
            .expect_err("refused")
            .to_string();
        assert!(text.contains("S3InventoryReport_CSV_20161130"), "{text}");
        let mut bad = facts(&["Bucket", "Key"]);
        bad.object_arn = "arn:aws:s3:::acme-media-ops".into();
        assert!(matches!(
            ManifestLocation::of(&bad, "j1"),
            Err(ManifestRefusal::BadLocation { .. })
        ));
        let mut no_etag = facts(&["Bucket", "Key"]);
        no_etag.etag = String::new();
        assert!(ManifestLocation::of(&no_etag, "j1").is_err());
    }

    #[test]
    fn a_task_passes_only_for_a_listed_bucket_key_and_version() {
        let loc = ManifestLocation::of(&facts(&["Bucket", "Key"]), "j1").unwrap();
        let rows = ManifestRows::read(
            "j1",
            &loc,
            &fetched(
                "acme-media-prod,masters/film%20reel%201%2Bfinal.mov\nacme-media-ops,secret.mov\n",
            ),
            "acme-media-prod",
        )
        .expect("read");
        assert_eq!(rows.len(), 1, "the other bucket's row is skipped");
        assert_eq!(
            rows.check(&task("masters/film reel 1+final.mov", None)),
            Ok(())
        );
        // A `+` that is a plus is not the same key as one with a space.
        let e = rows
            .check(&task("masters/film reel 1 final.mov", None))
            .expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("\"masters/film reel 1 final.mov\"")
                && text.contains("job j1's manifest")
                && text.contains("unreadable line(s) skipped"),
            "{text}"
        );
        // A version the manifest doesn't name is not the listed (current) object.
        assert!(rows
            .check(&task("masters/film reel 1+final.mov", Some("v1")))
            .is_err());
        let escaped = rows.check(&task("a\nb\"c", None)).unwrap_err().to_string();
        assert!(escaped.contains(r#""a\nb\"c""#), "{escaped}");
    }

    #[test]
    fn versions_must_match_exactly() {
        let loc = ManifestLocation::of(&facts(&["Bucket", "Key", "VersionId"]), "j1").unwrap();
        let rows = ManifestRows::read(
            "j1",
            &loc,
            &fetched("acme-media-prod,a.mov,v1\nacme-media-prod,b.mov,null\n"),
            "acme-media-prod",
        )
        .unwrap();
        assert_eq!(rows.check(&task("a.mov", Some("v1"))), Ok(()));
        assert!(rows.check(&task("a.mov", Some("v2"))).is_err());
        assert!(rows.check(&task("a.mov", None)).is_err());
        assert_eq!(rows.check(&task("b.mov", None)), Ok(()));
    }

    #[test]
    fn other_content_or_too_much_is_refused() {
        let loc = ManifestLocation::of(&facts(&["Bucket", "Key"]), "j1").unwrap();
        let mut changed = fetched("acme-media-prod,a.mov\n");
        changed.etag = Some("\"def\"".into());
        assert!(matches!(
            ManifestRows::read("j1", &loc, &changed, "acme-media-prod"),
            Err(ManifestRefusal::Changed { .. })
        ));
        let mut big = fetched("");
        big.over_limit = Some(MAX_MANIFEST_BYTES + 1);
        let text = ManifestRows::read("j1", &loc, &big, "acme-media-prod")
            .expect_err("refused")
            .to_string();
        assert!(text.contains("split the objects"), "{text}");
        let failed = AwsCallError {
            kind: AwsErrorKind::Other,
            code: "PreconditionFailed".into(),
            message: "At least one of the pre-conditions you specified did not hold".into(),
        };
        let refusal = ManifestRefusal::from_read("j1", &loc, &failed);
        assert!(matches!(refusal, ManifestRefusal::Changed { .. }) && !refusal.is_temporary());
        let slow = AwsCallError {
            kind: AwsErrorKind::Throttled,
            code: "SlowDown".into(),
            message: "slow down".into(),
        };
        assert!(ManifestRefusal::from_read("j1", &loc, &slow).is_temporary());
    }
}
