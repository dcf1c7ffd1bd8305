//! The SDK adapter of [`MultipartCopyApi`]: HeadObject, GetObjectTagging, the multipart upload
//! calls and UploadPartCopy, with every destination call pinned to its owner
//! (`ExpectedBucketOwner`) and every source read to the source account
//! (`ExpectedSourceBucketOwner`), so a look-alike bucket in a third account is never touched.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ServerSideEncryption, StorageClass,
};
use aws_smithy_types::DateTime;
use ferry_flows::aws_error::AwsCallError;
use ferry_flows::large_object::copy::{
    CompleteUpload, CompletedObject, ContentHeaders, DestinationObject, FullObjectChecksum,
    MultipartCopyApi, NewUpload, PartCopy, SourceObject,
};
use ferry_flows::large_object::invoking_job::{InvokingJob, JobOperationFacts};
use ferry_flows::large_object::job_manifest::{FetchedManifest, ManifestLocation};
use ferry_flows::large_object::parts::{CopiedPart, UploadSummary};
use ferry_flows::large_object::task::CopyTask;
use ferry_flows::report::jobs::JobOperationKind;
use ferry_listings::manifest::encode_key;

use crate::errors::{bucket_region_of, classify};

/// The job an invocation names, as S3 Control describes it to the copier's own role:
/// DescribeJob (operation, function, schema, `UserArguments`, role, status) and GetJobTagging
/// in `account_id` (S3 Control API Reference, DescribeJob and GetJobTagging; both need the
/// job's account and a client of its Region, the copier's own).
pub async fn describe_invoking_job(
    s3control: &aws_sdk_s3control::Client,
    account_id: &str,
    job_id: &str,
) -> Result<InvokingJob, AwsCallError> {
    let job = &crate::jobs::describe(s3control, account_id, job_id).await?;
    let operation = match job.operation() {
        Some(op) => match op.lambda_invoke() {
            Some(invoke) => JobOperationFacts::LambdaInvoke {
                function_arn: invoke.function_arn().unwrap_or_default().to_string(),
                invocation_schema_version: invoke.invocation_schema_version().map(str::to_string),
                user_arguments: invoke
                    .user_arguments()
                    .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            },
            None => JobOperationFacts::Other(match crate::jobs::job_info(job).operation {
                JobOperationKind::Copy => "S3PutObjectCopy".to_string(),
                JobOperationKind::Other { name } => name,
                JobOperationKind::LambdaInvoke { .. } => "LambdaInvoke".to_string(),
            }),
        },
        None => JobOperationFacts::Unknown,
    };
    let tags = s3control
        .get_job_tagging()
        .account_id(account_id)
        .job_id(job_id)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    // The manifest the job was created with (S3 Control API Reference, JobManifest,
    // JobManifestSpec, JobManifestLocation): the copier acts only for tasks it lists.
    let manifest = job.manifest().and_then(crate::jobs::manifest_ref);
    Ok(InvokingJob {
        manifest,
        job_id: job.job_id().unwrap_or(job_id).to_string(),
        status: job
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        role_arn: job.role_arn().map(str::to_string),
        operation,
        tags: tags
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    })
}

/// [`MultipartCopyApi`] over S3 clients acting as the Batch Operations role: `s3` in the
/// destination bucket's Region (every upload call, `UploadPartCopy` included: S3 copies from
/// another Region when the request goes to the destination's), `source_s3` in the source
/// bucket's Region for the reads of the source object. The Rust SDK does not follow S3's
/// redirect to a bucket's Region, so a client of the wrong Region fails with a 301.
#[derive(Clone)]
pub struct AwsMultipartCopy {
    pub s3: aws_sdk_s3::Client,
    pub source_s3: aws_sdk_s3::Client,
}

impl AwsMultipartCopy {
    /// Both buckets in one Region.
    pub fn new(s3: aws_sdk_s3::Client) -> Self {
        Self {
            source_s3: s3.clone(),
            s3,
        }
    }

    /// The source bucket in another Region than the destination.
    pub fn with_source_client(mut self, source_s3: aws_sdk_s3::Client) -> Self {
        self.source_s3 = source_s3;
        self
    }
}

impl AwsMultipartCopy {
    /// GetObject of an invoking job's manifest, acting as the batch role (who Batch Operations
    /// reads it as), with `If-Match` the ETag the job was created with and its `versionId` when
    /// it names one (S3 API Reference, GetObject; S3 Control API Reference,
    /// JobManifestLocation). At most `max_bytes` are read: a larger object (by its
    /// `Content-Length`, or as it streams) comes back with `over_limit` set and no more read.
    ///
    /// The manifest's Region is not in its ARN: an inventory's is the source bucket's, a CSV
    /// manifest's usually the destination's. The destination Region's client is tried first;
    /// on S3's redirect the Region it names in `x-amz-bucket-region` is used, else the source
    /// Region's client.
    pub async fn read_job_manifest(
        &self,
        location: &ManifestLocation,
        max_bytes: u64,
    ) -> Result<FetchedManifest, AwsCallError> {
        match get_manifest(&self.s3, location, max_bytes).await {
            Err(ReadFailure {
                redirect: Some(region),
                ..
            }) => {
                let client = match region {
                    Some(r) => aws_sdk_s3::Client::from_conf(
                        self.s3
                            .config()
                            .to_builder()
                            .region(aws_sdk_s3::config::Region::new(r))
                            .build(),
                    ),
                    None => self.source_s3.clone(),
                };
                get_manifest(&client, location, max_bytes)
                    .await
                    .map_err(|f| f.error)
            }
            other => other.map_err(|f| f.error),
        }
    }
}

/// A failed manifest read. `redirect` is set when S3 answered that the bucket is in another
/// Region, with that Region when it named one.
struct ReadFailure {
    error: AwsCallError,
    redirect: Option<Option<String>>,
}

async fn get_manifest(
    s3: &aws_sdk_s3::Client,
    location: &ManifestLocation,
    max_bytes: u64,
) -> Result<FetchedManifest, ReadFailure> {
    let out = s3
        .get_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .set_version_id(location.version_id.clone())
        .if_match(location.if_match())
        .send()
        .await
        .map_err(|e| {
            let error = classify(&e);
            let redirect = matches!(
                error.kind,
                ferry_flows::aws_error::AwsErrorKind::WrongRegion
            )
            .then(|| {
                bucket_region_of(&e).filter(|r| {
                    !r.is_empty()
                        && r.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
            });
            ReadFailure { error, redirect }
        })?;
    let etag = out.e_tag().map(str::to_string);
    let length = out.content_length().and_then(|l| u64::try_from(l).ok());
    if let Some(size) = length.filter(|l| *l > max_bytes) {
        return Ok(FetchedManifest {
            body: Vec::new(),
            etag,
            over_limit: Some(size),
        });
    }
    let mut body = out.body;
    let mut bytes = Vec::with_capacity(length.unwrap_or(0) as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ReadFailure {
            error: AwsCallError {
                kind: ferry_flows::aws_error::AwsErrorKind::Transient,
                code: "ReadError".into(),
                message: format!("reading the manifest {} failed: {e}", location.object_arn),
            },
            redirect: None,
        })?;
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Ok(FetchedManifest {
                body: Vec::new(),
                etag,
                over_limit: Some((bytes.len() + chunk.len()) as u64),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(FetchedManifest {
        body: bytes,
        etag,
        over_limit: None,
    })
}

/// `x-amz-copy-source`: `bucket/key` with the key URL-encoded, `?versionId=` when pinned.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let mut source = format!("{bucket}/{}", encode_key(key));
    if let Some(v) = version_id {
        source.push_str("?versionId=");
        source.push_str(&encode_key(v));
    }
    source
}

/// `x-amz-tagging`: the tag set as a URL query string.
pub fn tagging_header(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", encode_key(k), encode_key(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn millis(t: Option<&DateTime>) -> Option<i64> {
    t.and_then(|t| t.to_millis().ok())
}

fn full_object_checksum(
    checksum_type: Option<&ChecksumType>,
    values: [(&str, Option<&str>); 3],
) -> Option<FullObjectChecksum> {
    if checksum_type != Some(&ChecksumType::FullObject) {
        return None;
    }
    values.into_iter().find_map(|(algorithm, value)| {
        value.map(|v| FullObjectChecksum {
            algorithm: algorithm.to_string(),
            value: v.to_string(),
        })
    })
}

/// The part's checksum in whichever algorithm the upload uses.
fn part_checksum(values: [Option<&str>; 5]) -> Option<String> {
    values.into_iter().flatten().next().map(str::to_string)
}

fn completed_part(part: &CopiedPart, algorithm: Option<&str>) -> CompletedPart {
    let b = CompletedPart::builder()
        .part_number(part.part_number as i32)
        .e_tag(&part.etag);
    let c = part.checksum.clone();
    match algorithm {
        Some("CRC32") => b.set_checksum_crc32(c),
        Some("CRC32C") => b.set_checksum_crc32_c(c),
        Some("CRC64NVME") => b.set_checksum_crc64_nvme(c),
        Some("SHA1") => b.set_checksum_sha1(c),
        Some("SHA256") => b.set_checksum_sha256(c),
        _ => b,
    }
    .build()
}

impl MultipartCopyApi for AwsMultipartCopy {
    async fn head_source(
        &self,
        task: &CopyTask,
        expected_owner: &str,
    ) -> Result<SourceObject, AwsCallError> {
        let out = self
            .source_s3
            .head_object()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .expected_bucket_owner(expected_owner)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(SourceObject {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().unwrap_or_default().to_string(),
            last_modified_ms: millis(out.last_modified()),
            version_id: out.version_id().map(str::to_string),
            storage_class: out.storage_class().map(|c| c.as_str().to_string()),
            archive_status: out.archive_status().map(|s| s.as_str().to_string()),
            restore: out.restore().map(str::to_string),
            sse_customer_algorithm: out.sse_customer_algorithm().map(str::to_string),
            kms_key_id: out.ssekms_key_id().map(str::to_string),
            headers: ContentHeaders {
                cache_control: out.cache_control().map(str::to_string),
                content_disposition: out.content_disposition().map(str::to_string),
                content_encoding: out.content_encoding().map(str::to_string),
                content_language: out.content_language().map(str::to_string),
                content_type: out.content_type().map(str::to_string),
            },
            user_metadata: out
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            full_object_checksum: full_object_checksum(
                out.checksum_type(),
                [
                    ("CRC64NVME", out.checksum_crc64_nvme()),
                    ("CRC32", out.checksum_crc32()),
                    ("CRC32C", out.checksum_crc32_c()),
                ],
            ),
        })
    }

    async fn source_tags(
        &self,
        task: &CopyTask,
        expected_owner: &str,
    ) -> Result<BTreeMap<String, String>, AwsCallError> {
        let out = self
            .source_s3
            .get_object_tagging()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .expected_bucket_owner(expected_owner)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        key: &str,
        expected_owner: &str,
    ) -> Result<Vec<UploadSummary>, AwsCallError> {
        // S3 API Reference, ListMultipartUploads: up to 1,000 uploads a page; a truncated page
        // has `IsTruncated` and `NextKeyMarker` / `NextUploadIdMarker`, sent back as
        // `key-marker` / `upload-id-marker`. `Initiator.ID` is who created the upload (checked
        // by `resume::triage`), `Owner` the bucket owner. Proven in tests/large_copy_sdk.rs.
        let mut uploads = Vec::new();
        let (mut key_marker, mut upload_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .s3
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(key)
                .expected_bucket_owner(expected_owner)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(upload_marker.clone())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            uploads.extend(
                out.uploads()
                    .iter()
                    // The prefix also matches longer keys.
                    .filter(|u| u.key() == Some(key))
                    .map(|u| UploadSummary {
                        upload_id: u.upload_id().unwrap_or_default().to_string(),
                        initiated_ms: millis(u.initiated()),
                        initiator_id: u.initiator().and_then(|i| i.id()).map(str::to_string),
                    })
                    .filter(|u| !u.upload_id.is_empty()),
            );
            if out.is_truncated() != Some(true) {
                return Ok(uploads);
            }
            let next_key = out.next_key_marker().map(str::to_string);
            let next_upload = out.next_upload_id_marker().map(str::to_string);
            // A page that doesn't move the markers forward would be asked for again forever.
            if (next_key.is_none() && next_upload.is_none())
                || (next_key == key_marker && next_upload == upload_marker)
            {
                return Ok(uploads);
            }
            key_marker = next_key;
            upload_marker = next_upload;
        }
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        expected_owner: &str,
    ) -> Result<Vec<CopiedPart>, AwsCallError> {
        // S3 API Reference, ListParts: up to 1,000 parts a page; a truncated page has
        // `IsTruncated` and `NextPartNumberMarker`, sent back as `part-number-marker`. Each
        // `Part` has its number, `Size`, `ETag` and the checksum of the upload's algorithm.
        let mut parts = Vec::new();
        let mut marker = None::<String>;
        loop {
            let out = self
                .s3
                .list_parts()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .expected_bucket_owner(expected_owner)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            parts.extend(out.parts().iter().map(|p| CopiedPart {
                part_number: p.part_number().unwrap_or(0).max(0) as u32,
                etag: p.e_tag().unwrap_or_default().to_string(),
                size: p.size().map(|s| s.max(0) as u64),
                checksum: part_checksum([
                    p.checksum_crc32(),
                    p.checksum_crc32_c(),
                    p.checksum_crc64_nvme(),
                    p.checksum_sha1(),
                    p.checksum_sha256(),
                ]),
            }));
            if out.is_truncated() != Some(true) {
                return Ok(parts);
            }
            match out.next_part_number_marker() {
                Some(next) if Some(next) != marker.as_deref() => marker = Some(next.to_string()),
                _ => return Ok(parts),
            }
        }
    }

    async fn create_upload(&self, r: &NewUpload) -> Result<String, AwsCallError> {
        let h = &r.headers;
        let mut req = self
            .s3
            .create_multipart_upload()
            .bucket(&r.bucket)
            .key(&r.key)
            .expected_bucket_owner(&r.expected_bucket_owner)
            .set_storage_class(r.storage_class.as_deref().map(StorageClass::from))
            .set_cache_control(h.cache_control.clone())
            .set_content_disposition(h.content_disposition.clone())
            .set_content_encoding(h.content_encoding.clone())
            .set_content_language(h.content_language.clone())
            .set_content_type(h.content_type.clone());
        for (k, v) in &r.user_metadata {
            req = req.metadata(k, v);
        }
        if !r.tags.is_empty() {
            req = req.tagging(tagging_header(&r.tags));
        }
        req = match &r.kms_key_arn {
            Some(key) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key)
                .bucket_key_enabled(r.bucket_key_enabled),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        if let Some(algorithm) = &r.checksum_algorithm {
            req = req.checksum_algorithm(ChecksumAlgorithm::from(algorithm.as_str()));
            // CRC64NVME exists only as a full-object checksum.
            if algorithm == "CRC64NVME" {
                req = req.checksum_type(ChecksumType::FullObject);
            }
        }
        let out = req.send().await.map_err(|e| classify(&e))?;
        out.upload_id()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| AwsCallError {
                kind: ferry_flows::aws_error::AwsErrorKind::Transient,
                code: "NoUploadId".into(),
                message: "CreateMultipartUpload answered without an UploadId".into(),
            })
    }

    async fn copy_part(&self, r: &PartCopy) -> Result<CopiedPart, AwsCallError> {
        let out = self
            .s3
            .upload_part_copy()
            .bucket(&r.bucket)
            .key(&r.key)
            .upload_id(&r.upload_id)
            .part_number(r.part.part_number as i32)
            .copy_source(copy_source(
                &r.source_bucket,
                &r.source_key,
                r.source_version_id.as_deref(),
            ))
            .set_copy_source_range(r.part.copy_source_range())
            .copy_source_if_match(&r.source_if_match)
            .expected_bucket_owner(&r.expected_bucket_owner)
            .expected_source_bucket_owner(&r.expected_source_owner)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let result = out.copy_part_result();
        let etag = result.and_then(|c| c.e_tag()).unwrap_or_default();
        if etag.is_empty() {
            return Err(AwsCallError {
                kind: ferry_flows::aws_error::AwsErrorKind::Transient,
                code: "NoPartETag".into(),
                message: format!(
                    "UploadPartCopy of part {} answered without an ETag",
                    r.part.part_number
                ),
            });
        }
        Ok(CopiedPart {
            part_number: r.part.part_number,
            etag: etag.to_string(),
            size: Some(r.part.size),
            checksum: result.and_then(|c| {
                part_checksum([
                    c.checksum_crc32(),
                    c.checksum_crc32_c(),
                    c.checksum_crc64_nvme(),
                    c.checksum_sha1(),
                    c.checksum_sha256(),
                ])
            }),
        })
    }

    async fn complete_upload(&self, r: &CompleteUpload) -> Result<CompletedObject, AwsCallError> {
        let parts = r
            .parts
            .iter()
            .map(|p| completed_part(p, r.checksum_algorithm.as_deref()))
            .collect();
        let out = self
            .s3
            .complete_multipart_upload()
            .bucket(&r.bucket)
            .key(&r.key)
            .upload_id(&r.upload_id)
            .expected_bucket_owner(&r.expected_bucket_owner)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(CompletedObject {
            etag: out.e_tag().unwrap_or_default().to_string(),
            // Unversioned buckets answer no version or `null`; HeadObject must then go without.
            version_id: out
                .version_id()
                .filter(|v| !v.is_empty() && *v != "null")
                .map(str::to_string),
        })
    }

    async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        expected_owner: &str,
    ) -> Result<(), AwsCallError> {
        self.s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .expected_bucket_owner(expected_owner)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn head_destination(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        expected_owner: &str,
    ) -> Result<DestinationObject, AwsCallError> {
        let out = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .expected_bucket_owner(expected_owner)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(DestinationObject {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            kms_key_id: out.ssekms_key_id().map(str::to_string),
            bucket_key_enabled: out.bucket_key_enabled().unwrap_or(false),
            full_object_checksum: full_object_checksum(
                out.checksum_type(),
                [
                    ("CRC64NVME", out.checksum_crc64_nvme()),
                    ("CRC32", out.checksum_crc32()),
                    ("CRC32C", out.checksum_crc32_c()),
                ],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_is_url_encoded() {
        assert_eq!(
            copy_source("src", "a b/c+d é.bin", Some("v 1")),
            "src/a%20b/c%2Bd%20%C3%A9.bin?versionId=v%201"
        );
        let tags = BTreeMap::from([("team".to_string(), "data & ml".to_string())]);
        assert_eq!(tagging_header(&tags), "team=data%20%26%20ml");
    }
}
