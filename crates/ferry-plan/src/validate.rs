//! Meaning checks on a parsed [`TransferSpec`]. Every problem is collected, each naming its
//! field, the value and the fix, so one run shows everything that stands between the spec and
//! a working job.

use crate::aws_names::{
    check_account_id, check_bucket_name, check_region, check_role_name, KmsKeyArn,
    KmsKeyRefProblem, ARCHIVED_STORAGE_CLASSES, KNOWN_STORAGE_CLASSES,
};
use crate::error::{FerryError, SpecProblem};
use crate::spec::{ManifestKind, MetadataHandling, TagHandling, TransferSpec};
use crate::time::parse_rfc3339_ms;

/// S3 Control limits on CreateJob fields.
const MAX_DESCRIPTION_CHARS: usize = 256;
const MAX_PRIORITY: u32 = i32::MAX as u32;
const MAX_REPORT_PREFIX_CHARS: usize = 512;
const MAX_TARGET_KEY_PREFIX_CHARS: usize = 1024;
const MAX_OBJECT_KEY_BYTES: usize = 1024;
/// S3 object tagging limits.
const MAX_TAGS: usize = 10;
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;
/// User-defined metadata is limited to 2 KB (keys and values, UTF-8 bytes).
const MAX_USER_METADATA_BYTES: usize = 2048;

/// Checks everything that can be known offline. `Ok` means a plan can be built.
pub fn validate(spec: &TransferSpec) -> Result<(), FerryError> {
    let mut p = Problems::default();
    check_name(spec, &mut p);
    check_locations(spec, &mut p);
    check_keys(spec, &mut p);
    check_destination_options(spec, &mut p);
    check_manifest(spec, &mut p);
    check_report(spec, &mut p);
    check_job(spec, &mut p);
    check_in_place(spec, &mut p);
    check_filter(spec, &mut p);
    check_inventory_runs(spec, &mut p);
    if p.0.is_empty() {
        Ok(())
    } else {
        Err(FerryError::InvalidSpec(p.0))
    }
}

#[derive(Default)]
struct Problems(Vec<SpecProblem>);

impl Problems {
    fn add(&mut self, field: &str, value: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecProblem {
            field: field.to_string(),
            value: value.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, field: &str, value: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.add(field, value, message);
        }
    }
}

fn check_name(spec: &TransferSpec, p: &mut Problems) {
    let n = &spec.name;
    let ok = (1..=40).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && n.bytes().next().is_some_and(|b| b != b'-')
        && !n.ends_with('-')
        && !n.contains("--");
    if !ok {
        p.add(
            "name",
            n,
            "a transfer name is 1 to 40 lowercase letters, digits and single hyphens, e.g. \"media-archive\"; \
             it names the role, job tags and policy Sids",
        );
    }
}

fn check_locations(spec: &TransferSpec, p: &mut Problems) {
    let s = &spec.source;
    let d = &spec.destination;
    p.check(
        "source.account_id",
        &s.account_id,
        check_account_id(&s.account_id),
    );
    p.check("source.region", &s.region, check_region(&s.region));
    p.check("source.bucket", &s.bucket, check_bucket_name(&s.bucket));
    p.check(
        "destination.account_id",
        &d.account_id,
        check_account_id(&d.account_id),
    );
    p.check("destination.region", &d.region, check_region(&d.region));
    p.check(
        "destination.bucket",
        &d.bucket,
        check_bucket_name(&d.bucket),
    );
    p.check(
        "manifest.account_id",
        &spec.manifest.account_id,
        check_account_id(&spec.manifest.account_id),
    );
    p.check(
        "manifest.bucket",
        &spec.manifest.bucket,
        check_bucket_name(&spec.manifest.bucket),
    );
    if let Some(r) = &spec.manifest.region {
        p.check("manifest.region", r, check_region(r));
    }
    p.check(
        "report.account_id",
        &spec.report.account_id,
        check_account_id(&spec.report.account_id),
    );
    p.check(
        "report.bucket",
        &spec.report.bucket,
        check_bucket_name(&spec.report.bucket),
    );
    if let Some(r) = &spec.report.region {
        p.check("report.region", r, check_region(r));
    }

    // The role lives in the destination account, so every bucket the job touches must belong
    // to one of the two accounts whose policies Ferry writes.
    let manifest_account = &spec.manifest.account_id;
    if manifest_account != &s.account_id && manifest_account != &d.account_id {
        p.add(
            "manifest.account_id",
            manifest_account,
            format!(
                "must be the source account ({}) or the destination account ({}): Ferry only writes \
                 policies for those two",
                s.account_id, d.account_id
            ),
        );
    }
    // Completion reports are read after the job by the destination account's principals (the
    // stack's job-monitor and redrive, `ferry status` and `ferry redrive`), with their own roles.
    // A report bucket in another account would need that account's bucket policy to trust
    // them, which Ferry can't name in a plan; so the report lives where it is read.
    if spec.report.account_id != d.account_id {
        p.add(
            "report.account_id",
            &spec.report.account_id,
            format!(
                "completion reports must go to a bucket of the destination account ({}): the job monitor, \
                 redrive, `ferry status` and `ferry redrive` read them with that account's credentials, and \
                 a bucket of another account would refuse them. Set report.bucket to a bucket of account {} \
                 and report.account_id = \"{}\"",
                d.account_id, d.account_id, d.account_id
            ),
        );
    }

    // One bucket belongs to one account and one region.
    let places = [
        ("source", &s.bucket, &s.account_id, s.region.as_str()),
        ("destination", &d.bucket, &d.account_id, d.region.as_str()),
        (
            "manifest",
            &spec.manifest.bucket,
            &spec.manifest.account_id,
            spec.manifest_region(),
        ),
        (
            "report",
            &spec.report.bucket,
            &spec.report.account_id,
            spec.report_region(),
        ),
    ];
    for (i, (a_name, a_bucket, a_account, a_region)) in places.iter().enumerate() {
        for (b_name, b_bucket, b_account, b_region) in &places[i + 1..] {
            // An empty bucket is reported as invalid already; two of them are not one bucket.
            if a_bucket.is_empty() || a_bucket != b_bucket {
                continue;
            }
            if a_account != b_account {
                p.add(
                    &format!("{b_name}.account_id"),
                    *b_account,
                    format!(
                        "{b_name}.bucket is the same bucket as {a_name}.bucket ({a_bucket}), which belongs to \
                         account {a_account}: a bucket has one owner"
                    ),
                );
            }
            if a_region != b_region {
                p.add(
                    &format!("{b_name}.region"),
                    *b_region,
                    format!(
                        "{b_name}.bucket is the same bucket as {a_name}.bucket ({a_bucket}), which is in \
                         {a_region}: a bucket lives in one region"
                    ),
                );
            }
        }
    }
}

fn check_keys(spec: &TransferSpec, p: &mut Problems) {
    let cross = spec.is_cross_account();
    let keys = [
        (
            "source.kms_key_arn",
            &spec.source.kms_key_arn,
            "source.bucket",
            &spec.source.account_id,
            spec.source.region.as_str(),
        ),
        (
            "destination.kms_key_arn",
            &spec.destination.kms_key_arn,
            "destination.bucket",
            &spec.destination.account_id,
            spec.destination.region.as_str(),
        ),
        (
            "manifest.kms_key_arn",
            &spec.manifest.kms_key_arn,
            "manifest.bucket",
            &spec.manifest.account_id,
            spec.manifest_region(),
        ),
        (
            "report.kms_key_arn",
            &spec.report.kms_key_arn,
            "report.bucket",
            &spec.report.account_id,
            spec.report_region(),
        ),
    ];
    for (field, key, bucket_field, account, region) in keys {
        let Some(key) = key else { continue };
        // Only keys owned by the other account need a cross-account grant.
        let granted_across = cross && account != &spec.destination.account_id;
        match KmsKeyArn::parse(key) {
            Ok(arn) => {
                if &arn.account_id != account {
                    p.add(
                        field,
                        key,
                        format!(
                            "the key belongs to account {} but {bucket_field} belongs to {account}: \
                             give the key of the account that owns the bucket",
                            arn.account_id
                        ),
                    );
                }
                if arn.region != region {
                    p.add(
                        field,
                        key,
                        format!(
                            "the key is in {} but {bucket_field} is in {region}: S3 only uses a key in \
                             the bucket's own region",
                            arn.region
                        ),
                    );
                }
            }
            Err(KmsKeyRefProblem::AwsManagedS3Key) => p.add(
                field,
                key,
                if granted_across {
                    "the AWS managed key aws/s3 can't be shared with another account (its key policy can't be \
                     edited), so the destination's job could never decrypt these objects. Re-encrypt them with \
                     a customer managed key first (see examples/in-place-reencrypt.toml), then give that \
                     key's ARN"
                } else {
                    "aws/s3 is S3's default encryption: leave kms_key_arn unset for it, or give the ARN of a \
                     customer managed key"
                },
            ),
            Err(KmsKeyRefProblem::Alias) => p.add(
                field,
                key,
                if granted_across {
                    "an alias can't be granted to another account: key policies and the role's policy name \
                     the key itself. Give the key ARN (aws kms describe-key --key-id <alias> --query KeyMetadata.Arn)"
                } else {
                    "give the key ARN, not an alias: IAM policies name the key itself \
                     (aws kms describe-key --key-id <alias> --query KeyMetadata.Arn)"
                },
            ),
            Err(KmsKeyRefProblem::Malformed(why)) => p.add(field, key, why),
        }
    }
}

fn check_destination_options(spec: &TransferSpec, p: &mut Problems) {
    let d = &spec.destination;
    if d.bucket_key_enabled && d.kms_key_arn.is_none() {
        p.add(
            "destination.bucket_key_enabled",
            "true",
            "an S3 Bucket Key only applies to SSE-KMS: set destination.kms_key_arn, or bucket_key_enabled = false",
        );
    }
    if let Some(prefix) = &d.key_prefix {
        if prefix.is_empty() || prefix.chars().count() > MAX_TARGET_KEY_PREFIX_CHARS {
            p.add(
                "destination.key_prefix",
                prefix,
                format!("must be 1 to {MAX_TARGET_KEY_PREFIX_CHARS} characters, or left out"),
            );
        } else if let Err(message) = crate::destination_key::check_key_prefix(prefix) {
            p.add("destination.key_prefix", prefix, message);
        }
    }
    match (d.metadata, &d.new_metadata) {
        (MetadataHandling::Copy, Some(_)) => p.add(
            "destination.new_metadata",
            "",
            "is only used with metadata = \"replace\": set that, or remove new_metadata",
        ),
        (_, Some(m)) => {
            let bytes: usize = m.user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            if bytes > MAX_USER_METADATA_BYTES {
                p.add(
                    "destination.new_metadata.user_metadata",
                    format!("{bytes} bytes"),
                    format!("user metadata is limited to {MAX_USER_METADATA_BYTES} bytes of keys and values"),
                );
            }
            for key in m.user_metadata.keys() {
                if key.is_empty() || !key.is_ascii() || key.bytes().any(|b| b.is_ascii_whitespace())
                {
                    p.add(
                        "destination.new_metadata.user_metadata",
                        key,
                        "metadata names are non-empty ASCII without spaces (they travel as HTTP headers)",
                    );
                }
            }
        }
        _ => {}
    }
    match (d.tags, &d.new_tags) {
        (TagHandling::Replace, None) => p.add(
            "destination.new_tags",
            "",
            "tags = \"replace\" needs the new tag set: add [destination.new_tags], or use tags = \"remove\"",
        ),
        (TagHandling::Replace, Some(tags)) => {
            if tags.is_empty() || tags.len() > MAX_TAGS {
                p.add(
                    "destination.new_tags",
                    format!("{} tags", tags.len()),
                    format!("an object takes 1 to {MAX_TAGS} tags; use tags = \"remove\" for none"),
                );
            }
            for (k, v) in tags {
                if k.is_empty() || k.chars().count() > MAX_TAG_KEY_CHARS {
                    p.add("destination.new_tags", k, format!("tag keys are 1 to {MAX_TAG_KEY_CHARS} characters"));
                }
                if v.chars().count() > MAX_TAG_VALUE_CHARS {
                    p.add("destination.new_tags", v, format!("tag values are at most {MAX_TAG_VALUE_CHARS} characters"));
                }
                if k.starts_with("aws:") {
                    p.add("destination.new_tags", k, "tag keys starting with aws: are reserved by AWS");
                }
            }
        }
        (_, Some(_)) => p.add(
            "destination.new_tags",
            "",
            "is only used with tags = \"replace\": set that, or remove new_tags",
        ),
        _ => {}
    }
}

fn check_manifest(spec: &TransferSpec, p: &mut Problems) {
    let m = &spec.manifest;
    if m.key.is_empty() || m.key.len() > MAX_OBJECT_KEY_BYTES {
        p.add(
            "manifest.key",
            &m.key,
            format!("an object key is 1 to {MAX_OBJECT_KEY_BYTES} bytes"),
        );
    }
    match m.kind {
        ManifestKind::Inventory => {
            // S3 Inventory delivers only to a bucket in the source bucket's Region (S3 User Guide,
            // "Cataloging and analyzing your data with S3 Inventory", destination bucket:
            // https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory.html).
            if spec.manifest_region() != spec.source.region {
                p.add(
                    "manifest.region",
                    spec.manifest_region(),
                    format!(
                        "an S3 Inventory is delivered only to a bucket in the source bucket's Region ({}): \
                         use an inventory bucket there and set manifest.region = \"{}\" (or leave it out)",
                        spec.source.region, spec.source.region
                    ),
                );
            }
            // <prefix>/<source-bucket>/<config-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json
            let segments: Vec<&str> = m.key.split('/').collect();
            if segments.last() != Some(&"manifest.json") || segments.len() < 4 {
                p.add(
                    "manifest.key",
                    &m.key,
                    "an inventory manifest is the report's manifest.json: \
                     <prefix>/<source-bucket>/<config-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json",
                );
            } else if segments[segments.len() - 4] != spec.source.bucket {
                p.add(
                    "manifest.key",
                    &m.key,
                    format!(
                        "this inventory lists bucket {:?}, not the source bucket {:?}: S3 Inventory writes \
                         under <prefix>/<source-bucket>/<config-id>/",
                        segments[segments.len() - 4],
                        spec.source.bucket
                    ),
                );
            }
            if m.version_ids {
                p.add(
                    "manifest.version_ids",
                    "true",
                    "only applies to CSV manifests: an inventory carries version ids when it was configured \
                     with all versions",
                );
            }
        }
        ManifestKind::Csv => {
            // Batch Operations can't read a CSV manifest stored with SSE-KMS; only CSV *inventory
            // reports* may be SSE-KMS (S3 User Guide, "Creating an S3 Batch Operations job",
            // Manifest: https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-create-job.html).
            if let Some(key) = &m.kms_key_arn {
                p.add(
                    "manifest.kms_key_arn",
                    key,
                    "Batch Operations does not support CSV manifests encrypted with SSE-KMS (only S3 Inventory \
                     reports may be): store the CSV with SSE-S3 (aws s3 cp FILE s3://BUCKET/KEY --sse AES256) and \
                     remove manifest.kms_key_arn",
                );
            }
            if m.key.ends_with("manifest.json") {
                p.add(
                    "manifest.kind",
                    "csv",
                    "the key names a manifest.json, which is an inventory manifest: set kind = \"inventory\"",
                );
            }
            if m.version_ids && !spec.source.versioned {
                p.add(
                    "manifest.version_ids",
                    "true",
                    "version ids only exist in a versioned bucket: set source.versioned = true if it is, \
                     or drop the VersionId column",
                );
            }
        }
    }
}

fn check_report(spec: &TransferSpec, p: &mut Problems) {
    let prefix = &spec.report.prefix;
    if prefix.is_empty() || prefix.chars().count() > MAX_REPORT_PREFIX_CHARS {
        p.add(
            "report.prefix",
            prefix,
            format!("must be 1 to {MAX_REPORT_PREFIX_CHARS} characters: reports are written to <prefix>/job-<id>/"),
        );
    }
    if prefix.starts_with('/') || prefix.ends_with('/') {
        p.add(
            "report.prefix",
            prefix,
            "must not start or end with '/': S3 writes <prefix>/job-<id>/, so a trailing slash makes an empty path segment",
        );
    }
}

fn check_job(spec: &TransferSpec, p: &mut Problems) {
    let role = spec.role_name();
    p.check(
        if spec.job.role_name.is_some() {
            "job.role_name"
        } else {
            "name"
        },
        &role,
        check_role_name(&role),
    );
    if spec.job.priority > MAX_PRIORITY {
        p.add(
            "job.priority",
            spec.job.priority.to_string(),
            format!("must be 0 to {MAX_PRIORITY}"),
        );
    }
    if let Some(d) = &spec.job.description {
        if d.is_empty() || d.chars().count() > MAX_DESCRIPTION_CHARS {
            p.add(
                "job.description",
                d,
                format!("must be 1 to {MAX_DESCRIPTION_CHARS} characters"),
            );
        }
    }
    check_copier_arns(spec, p);
    if let Some(r) = &spec.job.region {
        if r != &spec.destination.region {
            p.add(
                "job.region",
                r,
                format!(
                    "Batch Operations copy jobs must be created in the destination region ({}); \
                     remove job.region or set it to that",
                    spec.destination.region
                ),
            );
        }
    }
}

/// The large-object copier's function and role go into the batch role's policies as they are:
/// the role becomes a trust principal of the batch role (it may assume it and read the source)
/// and the function an `lambda:InvokeFunction` resource. So each must be one function or role
/// of the destination account, in the destination's partition and (function) Region; `"*"`,
/// another account's role or a wildcard would let others act as the batch role (#16 review).
/// Forms: Lambda Developer Guide, "Lambda resource types" (`arn:${Partition}:lambda:${Region}:
/// ${Account}:function:${FunctionName}`, names of letters, digits, `-` and `_`, ≤ 64); IAM User
/// Guide, "IAM identifiers" and "IAM and AWS STS quotas" (role names of `[\w+=,.@-]`, ≤ 64).
fn check_copier_arns(spec: &TransferSpec, p: &mut Problems) {
    let d = &spec.destination;
    let partition = crate::aws_names::partition_for_region(&d.region);
    if let Some(arn) = &spec.job.large_object_copier_arn {
        let prefix = format!(
            "arn:{partition}:lambda:{}:{}:function:",
            d.region, d.account_id
        );
        let name_ok = arn.strip_prefix(&prefix).is_some_and(|name| {
            (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !name_ok {
            p.add(
                "job.large_object_copier_arn",
                arn,
                format!(
                    "must be the ARN of one Lambda function of the destination account in its region, \
                     {prefix}<name> (no alias, version or wildcard): the batch role may invoke it"
                ),
            );
        }
    }
    if let Some(arn) = &spec.job.large_object_copier_role_arn {
        let prefix = format!("arn:{partition}:iam::{}:role/", d.account_id);
        let name_ok = arn.strip_prefix(&prefix).is_some_and(|path_and_name| {
            let (path, name) = path_and_name
                .rsplit_once('/')
                .unwrap_or(("", path_and_name));
            // Paths: IAM's `\u0021`–`\u007E` (IAM API Reference, CreateRole, Path), without the
            // `*` and `?` a policy would read as wildcards.
            // `/<path>/` is at most 512 characters with its slashes.
            let path_ok = path.len() <= 510
                && path
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'*' && b != b'?');
            (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
                && path_ok
        });
        if !name_ok {
            p.add(
                "job.large_object_copier_role_arn",
                arn,
                format!(
                    "must be the ARN of one IAM role of the destination account, {prefix}<name> (no \
                     wildcard): it becomes a principal the batch role trusts"
                ),
            );
        }
    }
}

/// S3 refuses CopyObject onto the same key unless the storage class, encryption or metadata
/// changes ("This copy request is illegal because it is trying to copy an object to itself …").
fn check_in_place(spec: &TransferSpec, p: &mut Problems) {
    let d = &spec.destination;
    if !spec.is_in_place() || d.key_prefix.is_some() {
        return;
    }
    // Copying given versions onto their own keys makes each the newest version, in the job's
    // (undefined) order: an older version could end up current (S3 User Guide, "Copy objects":
    // noncurrent versions first, current ones in a later job).
    if spec.manifest.kind == ManifestKind::Csv && spec.manifest.version_ids {
        p.add(
            "manifest.version_ids",
            "true",
            "an in-place copy of given versions makes each copied version the newest, in no particular order, \
             so an older one could become current: list current versions only (drop the VersionId column), or \
             copy to destination.key_prefix or another bucket",
        );
    }
    let changes_something = d.kms_key_arn.is_some()
        || d.storage_class.is_some()
        || d.metadata == MetadataHandling::Replace;
    if !changes_something {
        p.add(
            "destination.bucket",
            &d.bucket,
            "an in-place copy (source.bucket = destination.bucket) that changes nothing is refused by S3: \
             set destination.kms_key_arn (re-encrypt), destination.storage_class, metadata = \"replace\", \
             or destination.key_prefix",
        );
    }
}

/// `[inventory]`: event-driven runs need an inventory location they can watch and read.
fn check_inventory_runs(spec: &TransferSpec, p: &mut Problems) {
    use crate::spec::InventoryVersions;
    let Some(runs) = &spec.inventory else { return };
    if spec.manifest.kind != ManifestKind::Inventory {
        p.add(
            "inventory",
            "",
            "event-driven runs copy each new S3 Inventory: set manifest.kind = \"inventory\" with \
             manifest.key naming one of the configuration's manifest.json files, or remove [inventory]",
        );
        return;
    }
    if crate::inventory_setup::InventoryLocation::of(spec).is_none() {
        p.add(
            "manifest.key",
            &spec.manifest.key,
            format!(
                "event-driven runs find new inventories beside this one, so it must be an inventory's \
                 <prefix>/{}/<configuration-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json: give such a key",
                spec.source.bucket
            ),
        );
    }
    if spec.manifest.account_id != spec.destination.account_id {
        p.add(
            "manifest.account_id",
            &spec.manifest.account_id,
            format!(
                "event-driven runs watch the inventory bucket from the destination account: deliver the \
                 inventory to a bucket of account {} and set manifest.bucket and manifest.account_id to it",
                spec.destination.account_id
            ),
        );
    }
    // S3 sends a bucket's events to EventBridge in the bucket's own Region, and an inventory is
    // delivered in the source Region (S3 User Guide, "Using EventBridge"; "S3 Inventory"); the
    // stack and its rule are in the destination Region, so another source Region would never
    // start a run.
    if spec.source.region != spec.destination.region {
        p.add(
            "inventory",
            "",
            format!(
                "event-driven runs start on the EventBridge event of a new inventory, which S3 sends in the \
                 inventory bucket's Region ({}, the source Region), while the stack and its rule run in the \
                 destination Region ({}): they would never start. Copy across Regions with one-off transfers \
                 (remove [inventory]), or keep source and destination in one Region",
                spec.source.region, spec.destination.region
            ),
        );
    }
    if runs.versions == InventoryVersions::All && !spec.source.versioned {
        p.add(
            "inventory.versions",
            "all",
            "an inventory of all versions needs a versioned source: set source.versioned = true if it is, \
             or inventory.versions = \"current\"",
        );
    }
    // Batch Operations copies a job's tasks in no particular order, and AWS says to copy
    // noncurrent versions first and the current ones in a later job, so the copies' newest
    // version is the source's current one (S3 User Guide, "Copy objects":
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-copy-object.html).
    // A run launches its jobs together, so only current versions are copied from such an
    // inventory.
    let latest_only = spec.filter.as_ref().is_some_and(|f| f.latest_only);
    if runs.versions == InventoryVersions::All && !latest_only {
        p.add(
            "inventory.versions",
            "all",
            "a run copies every version it is given in one job, in no particular order, so older versions \
             could land on top of the current one (AWS: copy noncurrent versions first, current ones in a \
             later job). Add [filter] latest_only = true to copy the current versions of this inventory, \
             or use inventory.versions = \"current\"",
        );
    }
}

/// `[filter]`: each setting on its own, then the settings against each other.
fn check_filter(spec: &TransferSpec, p: &mut Problems) {
    let Some(f) = &spec.filter else { return };
    if spec.manifest.kind == ManifestKind::Csv {
        p.add(
            "filter",
            "",
            "only applies to an S3 Inventory manifest (manifest.kind = \"inventory\"), whose rows Ferry \
             reads and filters; a CSV manifest is copied as it is: filter it before handing it over, or \
             remove [filter]",
        );
    } else if spec.inventory.is_none() {
        // Only an inventory run reads the rows; a job handed manifest.json copies every one.
        p.add(
            "filter",
            "",
            "is applied by Ferry's inventory runs, which need [inventory] (the stack: InventoryRuns = true); \
             without it the job gets the inventory's manifest.json and copies every object it lists. Add \
             [inventory], or remove [filter]",
        );
    }
    for (field, prefixes) in [
        ("filter.include_prefixes", &f.include_prefixes),
        ("filter.exclude_prefixes", &f.exclude_prefixes),
    ] {
        for prefix in prefixes {
            if prefix.is_empty() {
                p.add(
                    field,
                    prefix,
                    "an empty prefix matches every key: remove it (no include_prefixes means all keys)",
                );
            } else if prefix.len() > MAX_OBJECT_KEY_BYTES {
                p.add(
                    field,
                    prefix,
                    format!("S3 keys are at most {MAX_OBJECT_KEY_BYTES} bytes, so this prefix matches nothing"),
                );
            }
        }
    }
    for include in &f.include_prefixes {
        if let Some(exclude) = f
            .exclude_prefixes
            .iter()
            .find(|e| !e.is_empty() && include.starts_with(e.as_str()))
        {
            p.add(
                "filter.include_prefixes",
                include,
                format!(
                    "every key under it is excluded by exclude_prefixes entry {exclude:?}: remove one of them"
                ),
            );
        }
    }
    if let (Some(min), Some(max)) = (f.min_size, f.max_size) {
        if min > max {
            p.add(
                "filter.max_size",
                max.to_string(),
                format!("is below filter.min_size ({min}), so nothing would be copied: swap or fix them"),
            );
        }
    }
    for class in &f.storage_classes {
        if ARCHIVED_STORAGE_CLASSES.contains(&class.as_str()) {
            p.add(
                "filter.storage_classes",
                class,
                "objects in this class must be restored before they can be copied, so Ferry always skips \
                 and reports them: restore them first (they then list as their restored class), and remove \
                 it here",
            );
        } else if !KNOWN_STORAGE_CLASSES.contains(&class.as_str()) {
            let upper = class.to_ascii_uppercase();
            p.add(
                "filter.storage_classes",
                class,
                if KNOWN_STORAGE_CLASSES.contains(&upper.as_str()) {
                    format!("storage classes are written as S3 lists them: {upper:?}")
                } else {
                    format!(
                        "not an S3 storage class; one of {}",
                        KNOWN_STORAGE_CLASSES
                            .iter()
                            .filter(|c| !ARCHIVED_STORAGE_CLASSES.contains(c))
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            );
        }
    }
    let mut time = |field: &str, value: &Option<String>| -> Option<i64> {
        let v = value.as_deref()?;
        let parsed = parse_rfc3339_ms(v);
        if parsed.is_none() {
            p.add(
                field,
                v,
                "not an RFC 3339 time with its offset, e.g. \"2024-05-01T00:00:00Z\" or \
                 \"2024-05-01T02:00:00+02:00\"",
            );
        }
        parsed
    };
    let after = time("filter.modified_after", &f.modified_after);
    let before = time("filter.modified_before", &f.modified_before);
    if let (Some(a), Some(b)) = (after, before) {
        if a >= b {
            p.add(
                "filter.modified_before",
                f.modified_before.clone().unwrap_or_default(),
                format!(
                    "is not after filter.modified_after ({}): the window [modified_after, modified_before) \
                     would be empty",
                    f.modified_after.as_deref().unwrap_or_default()
                ),
            );
        }
    }
}

/// A minimal valid spec, for tests that change one field of it (also read by ferry-flows' tests).
#[cfg(test)]
pub(crate) const MINIMAL_SPEC_TOML: &str = include_str!("../tests/fixtures/minimal-spec.toml");

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = MINIMAL_SPEC_TOML;

    fn problems(toml: &str) -> Vec<SpecProblem> {
        let spec = TransferSpec::from_toml_str(toml).expect("parses");
        match validate(&spec) {
            Ok(()) => vec![],
            Err(FerryError::InvalidSpec(p)) => p,
            Err(e) => panic!("unexpected {e}"),
        }
    }

    fn fields(toml: &str) -> Vec<String> {
        problems(toml).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn base_is_valid() {
        assert_eq!(problems(BASE), vec![]);
    }

    /// Found by fuzzing (fuzz/ cfn_event): two empty buckets were "the same bucket", adding
    /// region and account problems about a bucket named "".
    #[test]
    fn empty_buckets_are_not_the_same_bucket() {
        let bad = BASE
            .replace("bucket = \"src-bucket\"", "bucket = \"\"")
            .replace(
                "region = \"us-east-1\"\nbucket = \"dst-bucket\"",
                "region = \"eu-west-1\"\nbucket = \"\"",
            );
        let f = fields(&bad);
        assert!(f.contains(&"source.bucket".to_string()), "{f:?}");
        assert!(f.contains(&"destination.bucket".to_string()), "{f:?}");
        assert!(
            !f.iter()
                .any(|f| f.ends_with(".region") || f.ends_with(".account_id")),
            "{f:?}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let bad = BASE
            .replace("111111111111", "1111")
            .replace("src-bucket", "Src_Bucket")
            .replace("prefix = \"reports\"", "prefix = \"reports/\"");
        let f = fields(&bad);
        assert!(f.contains(&"source.account_id".to_string()), "{f:?}");
        assert!(f.contains(&"source.bucket".to_string()), "{f:?}");
        assert!(f.contains(&"report.prefix".to_string()), "{f:?}");
    }

    #[test]
    fn cross_account_aws_managed_key_is_explained() {
        let spec = BASE.replace(
            "bucket = \"src-bucket\"",
            "bucket = \"src-bucket\"\nkms_key_arn = \"alias/aws/s3\"",
        );
        let p = problems(&spec);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "source.kms_key_arn");
        assert!(p[0].message.contains("can't be shared"), "{}", p[0].message);
    }

    #[test]
    fn key_must_match_bucket_account_and_region() {
        let spec = BASE.replace(
            "bucket = \"src-bucket\"",
            "bucket = \"src-bucket\"\nkms_key_arn = \"arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab\"",
        );
        let p = problems(&spec);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|p| p.field == "source.kms_key_arn"));
    }

    #[test]
    fn in_place_copy_must_change_something() {
        let same = BASE
            .replace("222222222222", "111111111111")
            .replace("dst-bucket", "src-bucket");
        assert_eq!(fields(&same), vec!["destination.bucket"]);
        let reencrypt = same.replace(
            "[manifest]",
            "kms_key_arn = \"arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab\"\nbucket_key_enabled = true\n[manifest]",
        );
        assert_eq!(problems(&reencrypt), vec![]);
    }

    /// Batch Operations can't read a CSV manifest under SSE-KMS (S3 User Guide, "Creating an
    /// S3 Batch Operations job"): an error, not a warning.
    #[test]
    fn a_csv_manifest_cannot_be_sse_kms() {
        let spec = BASE.replace(
            "key = \"manifests/list.csv\"",
            "key = \"manifests/list.csv\"\nkms_key_arn = \"arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab\"",
        );
        let p = problems(&spec);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "manifest.kms_key_arn");
        assert!(p[0].message.contains("SSE-S3"), "{}", p[0].message);
    }

    /// S3 Inventory delivers only in the source bucket's Region: an inventory manifest's
    /// Region defaults to it and may not be another.
    #[test]
    fn an_inventory_is_in_the_source_region() {
        let inventory = BASE
            .replace("kind = \"csv\"", "kind = \"inventory\"")
            .replace("bucket = \"dst-bucket\"\naccount_id = \"222222222222\"\nkey = \"manifests/list.csv\"",
                     "bucket = \"inv-bucket\"\naccount_id = \"222222222222\"\nkey = \"inv/src-bucket/all/2026-01-01T00-00Z/manifest.json\"")
            .replace("[destination]\naccount_id = \"222222222222\"\nregion = \"us-east-1\"",
                     "[destination]\naccount_id = \"222222222222\"\nregion = \"eu-west-1\"")
            .replace("[report]\nbucket = \"dst-bucket\"", "[report]\nregion = \"eu-west-1\"\nbucket = \"dst-bucket\"");
        assert_eq!(problems(&inventory), vec![]);
        let spec = TransferSpec::from_toml_str(&inventory).unwrap();
        assert_eq!(spec.manifest_region(), "us-east-1");
        let elsewhere = inventory.replace(
            "bucket = \"inv-bucket\"",
            "region = \"eu-west-1\"\nbucket = \"inv-bucket\"",
        );
        let p = problems(&elsewhere);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].field.as_str(), p[0].value.as_str()),
            ("manifest.region", "eu-west-1")
        );
        assert!(p[0].message.contains("us-east-1"), "{}", p[0].message);
    }

    /// Batch Operations makes every TargetKeyPrefix a folder: the spec must write it as one.
    #[test]
    fn a_key_prefix_is_a_folder() {
        let with = |prefix: &str| {
            BASE.replace(
                "bucket = \"dst-bucket\"\n[manifest]",
                &format!("bucket = \"dst-bucket\"\nkey_prefix = \"{prefix}\"\n[manifest]"),
            )
        };
        assert_eq!(problems(&with("from-prod/")), vec![]);
        assert_eq!(problems(&with("a/b/")), vec![]);
        for bad in ["from-prod", "/from-prod/", "a//b/", "from-prod//", "/"] {
            let p = problems(&with(bad));
            assert_eq!(
                p.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(),
                ["destination.key_prefix"],
                "{bad}: {p:?}"
            );
        }
        assert!(problems(&with("from-prod"))[0]
            .message
            .contains("\"from-prod/\""));
    }

    /// Copying given versions onto their own keys would leave them current in no order.
    #[test]
    fn in_place_copies_of_given_versions_are_refused() {
        let versions = BASE
            .replace("222222222222", "111111111111")
            .replace("dst-bucket", "src-bucket")
            .replace(
                "bucket = \"src-bucket\"\n[destination]",
                "bucket = \"src-bucket\"\nversioned = true\n[destination]",
            )
            .replace(
                "key = \"manifests/list.csv\"",
                "key = \"manifests/list.csv\"\nversion_ids = true",
            )
            .replace("[manifest]", "storage_class = \"STANDARD_IA\"\n[manifest]");
        assert_eq!(fields(&versions), vec!["manifest.version_ids"]);
        let current_only = versions.replace("\nversion_ids = true", "");
        assert_eq!(problems(&current_only), vec![]);
    }

    #[test]
    fn job_region_must_be_destination_region() {
        let spec = format!("{BASE}\n[job]\nregion = \"eu-west-1\"\n");
        assert_eq!(fields(&spec), vec!["job.region"]);
    }

    #[test]
    fn manifest_and_report_accounts_are_source_or_destination() {
        let spec = BASE.replace(
            "account_id = \"222222222222\"\nprefix",
            "account_id = \"333333333333\"\nprefix",
        );
        let f = fields(&spec);
        assert!(f.contains(&"report.account_id".to_string()), "{f:?}");
        // Reports are read after the job with the destination account's credentials: the
        // source account's bucket is refused too, with the reason.
        let source_side = BASE
            .replace(
                "[report]\nbucket = \"dst-bucket\"",
                "[report]\nbucket = \"src-reports\"",
            )
            .replace(
                "account_id = \"222222222222\"\nprefix",
                "account_id = \"111111111111\"\nprefix",
            );
        let p = problems(&source_side);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "report.account_id");
        assert!(
            p[0].message.contains("destination account"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn inventory_key_must_list_the_source_bucket() {
        let spec = BASE
            .replace("kind = \"csv\"", "kind = \"inventory\"")
            .replace(
                "manifests/list.csv",
                "inventory/other-bucket/all/2026-11-01T00-00Z/manifest.json",
            );
        assert_eq!(fields(&spec), vec!["manifest.key"]);
    }

    /// #16 review: the copier's function and role go into the batch role's trust and
    /// permissions as they are, so only one function and one role of the destination account
    /// are accepted ("*" made the batch role assumable by anyone).
    #[test]
    fn the_copier_arns_must_name_one_function_and_role_of_the_destination_account() {
        let with = |function: &str, role: &str| {
            let toml = BASE.replace(
                "[source]",
                &format!(
                    "[job]\nlarge_object_copier_arn = \"{function}\"\nlarge_object_copier_role_arn = \"{role}\"\n[source]"
                ),
            );
            // `[job]` must come after the top-level keys, as TOML tables do.
            fields(&toml)
        };
        let good_fn =
            "arn:aws:lambda:us-east-1:222222222222:function:ferry-x-LargeObjectCopier-1AB2";
        let good_role = "arn:aws:iam::222222222222:role/ferry-x-LargeObjectCopierRole-9Z";
        assert_eq!(with(good_fn, good_role), Vec::<String>::new());
        assert_eq!(
            with(
                good_fn,
                "arn:aws:iam::222222222222:role/service-role/ferry-copier"
            ),
            Vec::<String>::new()
        );
        for (function, role, bad) in [
            ("*", good_role, "job.large_object_copier_arn"),
            (good_fn, "*", "job.large_object_copier_role_arn"),
            (
                "arn:aws:lambda:us-east-1:333333333333:function:theirs",
                good_role,
                "job.large_object_copier_arn",
            ),
            (
                "arn:aws:lambda:eu-west-1:222222222222:function:elsewhere",
                good_role,
                "job.large_object_copier_arn",
            ),
            (
                "arn:aws:lambda:us-east-1:222222222222:function:copier:live",
                good_role,
                "job.large_object_copier_arn",
            ),
            (
                "arn:aws:lambda:us-east-1:222222222222:function:*",
                good_role,
                "job.large_object_copier_arn",
            ),
            (
                good_fn,
                "arn:aws:iam::333333333333:role/theirs",
                "job.large_object_copier_role_arn",
            ),
            (
                good_fn,
                "arn:aws:iam::222222222222:role/*",
                "job.large_object_copier_role_arn",
            ),
            (
                good_fn,
                "arn:aws:iam::222222222222:user/someone",
                "job.large_object_copier_role_arn",
            ),
            (
                good_fn,
                "arn:aws:iam::222222222222:role/team*/copier",
                "job.large_object_copier_role_arn",
            ),
            (
                good_fn,
                "arn:aws:iam::222222222222:role/ferry-copier\\n",
                "job.large_object_copier_role_arn",
            ),
            (
                good_fn,
                "arn:aws:sts::222222222222:assumed-role/r/s",
                "job.large_object_copier_role_arn",
            ),
        ] {
            assert_eq!(
                with(function, role),
                vec![bad.to_string()],
                "{function} {role}"
            );
        }
    }

    #[test]
    fn bucket_key_needs_kms() {
        let spec = BASE.replace(
            "bucket = \"dst-bucket\"\n[manifest]",
            "bucket = \"dst-bucket\"\nbucket_key_enabled = true\n[manifest]",
        );
        assert_eq!(fields(&spec), vec!["destination.bucket_key_enabled"]);
    }
}
