//! What a copy job touches, and with which actions: the single list that both the role's
//! identity policy and the resource policies are rendered from, so they can never disagree.

use crate::aws_names::{dns_suffix_for_region, partition_for_region};
use crate::spec::{ManifestKind, TagHandling, TransferSpec};

/// The thing an access is made on, with the account that owns it (whose policy must allow
/// a cross-account caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Bucket {
        account_id: String,
        bucket: String,
    },
    Key {
        account_id: String,
        key_arn: String,
        region: String,
    },
}

impl Target {
    pub fn account_id(&self) -> &str {
        match self {
            Target::Bucket { account_id, .. } | Target::Key { account_id, .. } => account_id,
        }
    }
}

/// One access the job needs: purpose (the `Sid` suffix), actions and resource ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub purpose: &'static str,
    pub actions: Vec<&'static str>,
    pub target: Target,
    pub resources: Vec<String>,
}

/// Accesses the Batch Operations role needs for this transfer, and nothing more.
///
/// Not granted, on purpose: ACL reads and writes (Ferry never copies ACLs; BucketOwnerEnforced
/// is the recommended destination setting), deletes of any kind, and version reads on an
/// unversioned source.
pub fn required_access(spec: &TransferSpec) -> Vec<Access> {
    let partition = partition_for_region(&spec.destination.region);
    let s3 = |bucket: &str, path: Option<&str>| match path {
        Some(path) => format!("arn:{partition}:s3:::{bucket}/{path}"),
        None => format!("arn:{partition}:s3:::{bucket}"),
    };
    let bucket = |account_id: &str, bucket: &str| Target::Bucket {
        account_id: account_id.to_string(),
        bucket: bucket.to_string(),
    };
    let copies_tags = spec.destination.tags == TagHandling::Copy;
    let writes_tags = spec.destination.tags != TagHandling::Remove;
    let src = &spec.source;
    let dst = &spec.destination;

    let mut read_source = vec!["s3:GetObject"];
    if copies_tags {
        read_source.push("s3:GetObjectTagging");
    }
    if src.versioned {
        read_source.push("s3:GetObjectVersion");
        if copies_tags {
            read_source.push("s3:GetObjectVersionTagging");
        }
    }

    let mut write_destination = vec!["s3:PutObject"];
    if writes_tags {
        write_destination.push("s3:PutObjectTagging");
    }
    // The large-object copier (acting as this role) resumes its multipart uploads from their
    // listed parts, aborts the ones it gives up, and checks each copy with HeadObject.
    let copier = spec.job.large_object_copier_arn.is_some();
    if copier {
        write_destination.extend([
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
            "s3:GetObject",
        ]);
    }

    let mut out = vec![
        Access {
            purpose: "ReadSourceObjects",
            actions: read_source,
            target: bucket(&src.account_id, &src.bucket),
            resources: vec![s3(&src.bucket, Some("*"))],
        },
        // Listing lets S3 answer 404 (not 403) for a key that is gone, which keeps "object not
        // found" apart from "access denied" in completion reports. It reveals only key names
        // the role can read anyway.
        Access {
            purpose: "ListSourceBucket",
            actions: vec!["s3:ListBucket"],
            target: bucket(&src.account_id, &src.bucket),
            resources: vec![s3(&src.bucket, None)],
        },
        // s3:GetObjectVersion: the stack creates its job on the version of the manifest its
        // approval e-mails named, when the bucket is versioned (`Manifest.Location.
        // ObjectVersionId`, #15 item 13), and Batch Operations reads a version with it.
        Access {
            purpose: "ReadManifest",
            actions: vec!["s3:GetObject", "s3:GetObjectVersion"],
            target: bucket(&spec.manifest.account_id, &spec.manifest.bucket),
            resources: vec![s3(&spec.manifest.bucket, Some(&manifest_read_path(spec)))],
        },
        Access {
            purpose: "WriteDestinationObjects",
            actions: write_destination,
            target: bucket(&dst.account_id, &dst.bucket),
            resources: vec![s3(
                &dst.bucket,
                Some(&format!(
                    "{}*",
                    iam_escape(dst.key_prefix.as_deref().unwrap_or(""))
                )),
            )],
        },
    ];
    if copier {
        out.push(Access {
            purpose: "ListDestinationUploads",
            actions: vec!["s3:ListBucketMultipartUploads"],
            target: bucket(&dst.account_id, &dst.bucket),
            resources: vec![s3(&dst.bucket, None)],
        });
    }
    out.extend([Access {
        purpose: "WriteCompletionReport",
        actions: vec!["s3:PutObject"],
        target: bucket(&spec.report.account_id, &spec.report.bucket),
        resources: vec![s3(
            &spec.report.bucket,
            Some(&format!("{}/*", iam_escape(&spec.report.prefix))),
        )],
    }]);

    // AWS documents kms:Decrypt *and* kms:GenerateDataKey on an SSE-KMS inventory report's key
    // for the job role (S3 User Guide, "Granting permissions for Batch Operations":
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-iam-role-policies.html).
    // A CSV manifest can't be SSE-KMS at all (validation refuses the key), so this is the
    // inventory case.
    let manifest_encrypts = spec.manifest.kind == ManifestKind::Inventory;
    let keys = [
        (
            "DecryptSourceObjects",
            &src.kms_key_arn,
            &src.account_id,
            src.region.as_str(),
            false,
        ),
        (
            "DecryptManifest",
            &spec.manifest.kms_key_arn,
            &spec.manifest.account_id,
            spec.manifest_region(),
            manifest_encrypts,
        ),
        // Writing SSE-KMS needs a data key; Decrypt too, because S3 copies larger objects in
        // parts and must read back the data key for each part.
        (
            "EncryptDestinationObjects",
            &dst.kms_key_arn,
            &dst.account_id,
            dst.region.as_str(),
            true,
        ),
        (
            "EncryptCompletionReport",
            &spec.report.kms_key_arn,
            &spec.report.account_id,
            spec.report_region(),
            true,
        ),
    ];
    for (purpose, key, account_id, region, encrypts) in keys {
        let Some(key_arn) = key else { continue };
        out.push(Access {
            purpose,
            actions: if encrypts {
                vec!["kms:GenerateDataKey", "kms:Decrypt"]
            } else {
                vec!["kms:Decrypt"]
            },
            target: Target::Key {
                account_id: account_id.clone(),
                key_arn: key_arn.clone(),
                region: region.to_string(),
            },
            resources: vec![key_arn.clone()],
        });
    }
    out
}

/// The manifest objects the job reads. A CSV manifest is one object; an inventory's
/// `manifest.json` points at data files under its configuration's prefix
/// (`<prefix>/<source-bucket>/<config-id>/data/…`), and later inventories of the same
/// configuration land beside it, so the grant covers `<prefix>/<source-bucket>/<config-id>/*`.
fn manifest_read_path(spec: &TransferSpec) -> String {
    let key = &spec.manifest.key;
    match spec.manifest.kind {
        ManifestKind::Csv => iam_escape(key),
        ManifestKind::Inventory => {
            let segments: Vec<&str> = key.split('/').collect();
            if segments.len() >= 4 {
                format!(
                    "{}/*",
                    iam_escape(&segments[..segments.len() - 2].join("/"))
                )
            } else {
                iam_escape(key)
            }
        }
    }
}

/// Object keys may hold `*`, `?` and `$`, which IAM reads as wildcards and policy variables
/// in a `Resource`: `incoming-*/` would grant every `incoming-…/` prefix, and `${aws:username}`
/// would match nothing. IAM's escapes `${*}`, `${?}` and `${$}` make them literal.
pub fn iam_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("${*}"),
            '?' => out.push_str("${?}"),
            '$' => out.push_str("${$}"),
            c => out.push(c),
        }
    }
    out
}

/// The endpoint KMS sees as `kms:ViaService` when S3 calls it for a bucket in `region`.
pub fn s3_via_service(region: &str) -> String {
    format!("s3.{region}.{}", dns_suffix_for_region(region))
}

#[cfg(test)]
mod tests {
    use super::iam_escape;

    #[test]
    fn iam_special_characters_become_literal() {
        assert_eq!(iam_escape("plain/prefix/"), "plain/prefix/");
        assert_eq!(iam_escape("in-*/a?b/${x}"), "in-${*}/a${?}b/${$}{x}");
    }
}
