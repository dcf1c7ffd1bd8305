//! The large-object copier's resume, proven through the SDK adapter rather than a test double:
//! an aws-smithy-mocks S3 client answers ListMultipartUploads and ListParts with the XML S3
//! sends (two pages each), and what [`AwsMultipartCopy`] makes of it goes into the copier's own
//! decisions: `triage` (which upload is resumed, which aborted, which left alone),
//! `check_parts` (which parts are kept, and refusal of parts of another size) and a whole
//! `copy_task` (only the missing parts copied, every listed part's ETag and checksum sent in
//! CompleteMultipartUpload). A mapping that reads one page, drops a size, a part number, the
//! initiated time, the initiator or a checksum changes those decisions and fails here.
//!
//! Wire shapes, from the S3 API Reference: ListMultipartUploads (`Upload` with `Key`,
//! `UploadId`, `Initiator`, `Owner`, `StorageClass`, `Initiated`; a truncated list has
//! `IsTruncated` true and `NextKeyMarker` / `NextUploadIdMarker`, sent back as `key-marker` /
//! `upload-id-marker`), ListParts (`Part` with `PartNumber`, `LastModified`, `ETag`, `Size` and
//! the checksum of the upload's algorithm, `ChecksumCRC32` here; a truncated list has
//! `NextPartNumberMarker`, sent back as `part-number-marker`), `Initiator` and `Part`. botocore's
//! S3 paginators (`paginators-1.json`) page the two calls with the same members. S3 returns up
//! to 1,000 uploads or parts a page: the parts come in a page of 1,000 and a page of 3; the
//! uploads (never 1,000 on one key) in two pages of 3, as S3 pages them with `max-uploads=3`.
//!
//! The `Initiator` of an upload: the API Reference documents `ID` for an account (canonical
//! id) and an IAM user (user ARN) only, and S3 is dropping `DisplayName`. For a role session
//! the uploads here carry the session's STS ARN, or its principal id (`AROA…:<session>`), the
//! two forms `SessionIdentity` recognises (see ferry-flows's `large_object::resume`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::operation::abort_multipart_upload::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput,
};
use aws_sdk_s3::operation::complete_multipart_upload::{
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
};
use aws_sdk_s3::operation::create_multipart_upload::{
    CreateMultipartUploadInput, CreateMultipartUploadOutput,
};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsInput;
use aws_sdk_s3::operation::list_parts::ListPartsInput;
use aws_sdk_s3::operation::upload_part_copy::{UploadPartCopyInput, UploadPartCopyOutput};
use aws_sdk_s3::types::{ChecksumType, CopyPartResult, ServerSideEncryption};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::DateTime;
use ferry_aws::large_copy::AwsMultipartCopy;
use ferry_flows::large_object::copy::{
    copy_task, CopyClock, CopyContext, CopyTuning, MultipartCopyApi,
};
use ferry_flows::large_object::parts::{CopiedPart, PartPlan, PartSizing, UploadSummary, GIB, MIB};
use ferry_flows::large_object::resume::{check_parts, session_name, triage, SessionIdentity};
use ferry_flows::large_object::task::{CopyTask, ResultCode};
use ferry_plan::large_object_arguments::{
    LargeObjectCopyArguments, MetadataArgument, TagsArgument,
};

const SOURCE_ACCOUNT: &str = "111111111111";
const SOURCE_BUCKET: &str = "acme-photos-prod";
const SOURCE_KEY: &str = "raw/2024/scan-0001.tiff";
const SOURCE_VERSION: &str = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY";
const SOURCE_ETAG: &str = "\"7e4fe5d0bf3c4b6f1e8f1e26a0c1a2b3-1201\"";
/// 2025-03-01T10:00:00Z, the source version's `LastModified`.
const SOURCE_MODIFIED_S: i64 = 1_740_823_200;
const DEST_ACCOUNT: &str = "222222222222";
const DEST_BUCKET: &str = "acme-photos-archive";
const KEY_PREFIX: &str = "from-prod";
const ROLE_NAME: &str = "ferry-photos-batch";
/// The batch role's unique id (IAM `RoleId`), as STS puts it in `AssumedRoleId`.
const ROLE_ID: &str = "AROA3XFRBF535PLBIFPI4";
/// The destination account's canonical user id: the uploads' `Owner`, never their initiator.
const OWNER_CANONICAL_ID: &str = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a";
const OPS_USER: &str = "arn:aws:iam::222222222222:user/ops-alice";

/// 300 GiB and 1 MiB: 1,201 parts of 256 MiB, the last one 1 MiB.
const SIZE: u64 = 300 * GIB + MIB;
const PART: u64 = 256 * MIB;
/// The parts the session's upload already has: a page of 1,000 and a page of 3.
const LISTED: u32 = 1_003;

// The uploads on the destination key, in the order S3 lists them (by key, then by initiation
// time): page 1 STALE, OLDER, OPS; page 2 OTHER_SESSION, MINE, then one on a longer key.
/// This session's, initiated before the source version was written: aborted.
const STALE: &str = "Zm9vYmFy.stale.kQ8rT2vX0bZ1yW3uE5pL7nM9jH4gF6dS";
/// This session's (named by principal id), after the source was written, but cut in 128 MiB
/// parts by an earlier part size: its parts are refused, it is aborted.
const OLDER: &str = "Zm9vYmFy.older.Vb2h9rL3cE5pW8nY1fA6gS4dJ0kQpLx0";
/// An IAM user's: foreign, left alone.
const OPS: &str = "Zm9vYmFy.ops.z9y3nWbB1e8Kf2mR7tUaGhJ4sD6vXq1w";
/// The same role's session for another source version: foreign, left alone.
const OTHER_SESSION: &str = "Zm9vYmFy.other.Pn3bV5cX7zL9kJ1hG2fD4sA6qW8eR0tY";
/// This session's newest upload: resumed.
const MINE: &str = "Zm9vYmFy.mine.Hq2wE4rT6yU8iO0pA1sD3fG5hJ7kL9zX";
/// What CreateMultipartUpload would answer: a copy that did not resume.
const NEW_UPLOAD: &str = "Zm9vYmFy.new.Qw1eR3tY5uI7oP9aS0dF2gH4jK6lZ8xC";
/// This session's, but on a key the prefix `<key>` also matches: not an upload of this key.
const LONGER_KEY: &str = "Zm9vYmFy.longer.Mn1bV3cX5zL7kJ9hG0fD2sA4qW6eR8tY";

fn dest_key() -> String {
    format!("{KEY_PREFIX}/{SOURCE_KEY}")
}

fn session() -> String {
    session_name(
        SOURCE_BUCKET,
        SOURCE_KEY,
        Some(SOURCE_VERSION),
        &arguments(),
    )
}

/// The session the copier works in, as STS's AssumeRole answered it (`AssumedRoleUser`).
fn me() -> SessionIdentity {
    SessionIdentity {
        arn: format!(
            "arn:aws:sts::{DEST_ACCOUNT}:assumed-role/{ROLE_NAME}/{}",
            session()
        ),
        assumed_role_id: Some(format!("{ROLE_ID}:{}", session())),
    }
}

fn other_session_arn() -> String {
    format!(
        "arn:aws:sts::{DEST_ACCOUNT}:assumed-role/{ROLE_NAME}/{}",
        session_name(
            SOURCE_BUCKET,
            SOURCE_KEY,
            Some("an-older-version"),
            &arguments()
        )
    )
}

/// `Initiated` of each upload: (ISO 8601 as S3 writes it, epoch seconds).
const STALE_AT: (&str, i64) = ("2025-02-28T09:00:00.000Z", 1_740_733_200);
const OLDER_AT: (&str, i64) = ("2025-03-01T12:00:00.000Z", 1_740_830_400);
const OPS_AT: (&str, i64) = ("2025-03-02T08:15:00.000Z", 1_740_903_300);
const OTHER_AT: (&str, i64) = ("2025-03-02T09:00:00.000Z", 1_740_906_000);
const MINE_AT: (&str, i64) = ("2025-03-02T11:30:00.000Z", 1_740_915_000);
const LONGER_AT: (&str, i64) = ("2025-03-02T12:00:00.000Z", 1_740_916_800);

/// A part's ETag (quoted, as S3 returns it) in one upload.
fn etag(upload: &str, n: u32) -> String {
    let seed = upload.bytes().fold(0u64, |h, b| {
        h.wrapping_mul(1_099_511_628_211).wrapping_add(u64::from(b))
    });
    format!(
        "\"{:016x}{:016x}\"",
        seed,
        u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

/// A part's `ChecksumCRC32` (base64 of 4 bytes) in one upload.
fn crc32(upload: &str, n: u32) -> String {
    let seed = upload.bytes().fold(0u32, |h, b| {
        h.wrapping_mul(16_777_619).wrapping_add(u32::from(b))
    });
    aws_smithy_types::base64::encode(
        (n.wrapping_mul(2_654_435_761) ^ seed)
            .to_be_bytes()
            .as_slice(),
    )
}

fn xml_response(body: String) -> HttpResponse {
    let mut r = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body));
    r.headers_mut().insert("content-type", "application/xml");
    r.headers_mut()
        .insert("x-amz-request-id", "4442587FB7D0A2F9");
    r
}

fn initiator_xml(id: &str, display_name: Option<&str>) -> String {
    let name = display_name
        .map(|n| format!("<DisplayName>{n}</DisplayName>"))
        .unwrap_or_default();
    format!("<Initiator><ID>{id}</ID>{name}</Initiator>")
}

fn upload_xml(
    key: &str,
    id: &str,
    initiator: &str,
    display_name: Option<&str>,
    at: &str,
) -> String {
    format!(
        "<Upload><Key>{key}</Key><UploadId>{id}</UploadId>{}\
         <Owner><ID>{OWNER_CANONICAL_ID}</ID></Owner><StorageClass>STANDARD</StorageClass>\
         <Initiated>{at}</Initiated><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\
         <ChecksumType>COMPOSITE</ChecksumType></Upload>",
        initiator_xml(initiator, display_name)
    )
}

/// One page of ListMultipartUploads for `prefix=<key>`; `next` is the markers of a truncated
/// page.
fn uploads_page(markers: (&str, &str), next: Option<(&str, &str)>, uploads: &[String]) -> String {
    let next_xml = next
        .map(|(k, u)| {
            format!(
                "<NextKeyMarker>{k}</NextKeyMarker><NextUploadIdMarker>{u}</NextUploadIdMarker>"
            )
        })
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Bucket>{DEST_BUCKET}</Bucket><KeyMarker>{}</KeyMarker><UploadIdMarker>{}</UploadIdMarker>\
         {next_xml}<Prefix>{}</Prefix><MaxUploads>3</MaxUploads><IsTruncated>{}</IsTruncated>{}\
         </ListMultipartUploadsResult>",
        markers.0,
        markers.1,
        dest_key(),
        next.is_some(),
        uploads.concat()
    )
}

fn uploads_page_1() -> String {
    let key = dest_key();
    uploads_page(
        ("", ""),
        Some((&key, OPS)),
        &[
            upload_xml(&key, STALE, &me().arn, None, STALE_AT.0),
            upload_xml(
                &key,
                OLDER,
                me().assumed_role_id.as_deref().unwrap(),
                None,
                OLDER_AT.0,
            ),
            upload_xml(&key, OPS, OPS_USER, Some("ops-alice"), OPS_AT.0),
        ],
    )
}

fn uploads_page_2() -> String {
    let key = dest_key();
    uploads_page(
        (&key, OPS),
        None,
        &[
            upload_xml(&key, OTHER_SESSION, &other_session_arn(), None, OTHER_AT.0),
            upload_xml(&key, MINE, &me().arn, None, MINE_AT.0),
            upload_xml(
                &format!("{key}.part"),
                LONGER_KEY,
                &me().arn,
                None,
                LONGER_AT.0,
            ),
        ],
    )
}

/// One page of ListParts of `upload`: parts `numbers`, each `size` bytes, with its ETag and
/// CRC32.
fn parts_page(
    upload: &str,
    initiator: &str,
    marker: u32,
    numbers: std::ops::RangeInclusive<u32>,
    size: u64,
    truncated: bool,
) -> String {
    let next = *numbers.end();
    let parts: String = numbers
        .map(|n| {
            format!(
                "<Part><PartNumber>{n}</PartNumber><LastModified>2025-03-02T11:{:02}:{:02}.000Z</LastModified>\
                 <ETag>{}</ETag><ChecksumCRC32>{}</ChecksumCRC32><Size>{size}</Size></Part>",
                31 + n / 60 % 28,
                n % 60,
                etag(upload, n).replace('"', "&quot;"),
                crc32(upload, n),
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Bucket>{DEST_BUCKET}</Bucket><Key>{}</Key><UploadId>{upload}</UploadId>{}\
         <Owner><ID>{OWNER_CANONICAL_ID}</ID></Owner><StorageClass>STANDARD</StorageClass>\
         <PartNumberMarker>{marker}</PartNumberMarker><NextPartNumberMarker>{next}</NextPartNumberMarker>\
         <MaxParts>1000</MaxParts><IsTruncated>{truncated}</IsTruncated>{parts}\
         <ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumType>COMPOSITE</ChecksumType>\
         </ListPartsResult>",
        dest_key(),
        initiator_xml(initiator, None),
    )
}

/// What S3 received, call by call.
#[derive(Default)]
struct Seen {
    list_uploads: Mutex<Vec<ListMultipartUploadsInput>>,
    list_parts: Mutex<Vec<ListPartsInput>>,
    copies: Mutex<Vec<UploadPartCopyInput>>,
    creates: Mutex<Vec<CreateMultipartUploadInput>>,
    aborts: Mutex<Vec<AbortMultipartUploadInput>>,
    completes: Mutex<Vec<CompleteMultipartUploadInput>>,
}

/// The listing rules: each page answers once, and only to the request that asks for it
/// (bucket, prefix or key and upload, owner, markers), so a wrong or missing marker finds no
/// answer and fails the test.
fn listing_rules(seen: &Arc<Seen>) -> Vec<Rule> {
    let key = dest_key();
    let lists = |first: bool| {
        let (seen, key) = (seen.clone(), key.clone());
        move |i: &ListMultipartUploadsInput| {
            let markers = (i.key_marker(), i.upload_id_marker());
            let wanted = if first {
                (None, None)
            } else {
                (Some(key.as_str()), Some(OPS))
            };
            let asks = i.bucket() == Some(DEST_BUCKET)
                && i.prefix() == Some(key.as_str())
                && i.expected_bucket_owner() == Some(DEST_ACCOUNT)
                && markers == wanted;
            if asks {
                seen.list_uploads.lock().unwrap().push(i.clone());
            }
            asks
        }
    };
    let parts = |upload: &'static str, marker: Option<&'static str>| {
        let (seen, key) = (seen.clone(), key.clone());
        move |i: &ListPartsInput| {
            let asks = i.bucket() == Some(DEST_BUCKET)
                && i.key() == Some(key.as_str())
                && i.upload_id() == Some(upload)
                && i.expected_bucket_owner() == Some(DEST_ACCOUNT)
                && i.part_number_marker() == marker;
            if asks {
                seen.list_parts.lock().unwrap().push(i.clone());
            }
            asks
        }
    };
    let mine_arn = me().arn;
    let older_id = me().assumed_role_id.unwrap();
    vec![
        mock!(aws_sdk_s3::Client::list_multipart_uploads)
            .match_requests(lists(true))
            .sequence()
            .http_response(|| xml_response(uploads_page_1()))
            .build(),
        mock!(aws_sdk_s3::Client::list_multipart_uploads)
            .match_requests(lists(false))
            .sequence()
            .http_response(|| xml_response(uploads_page_2()))
            .build(),
        mock!(aws_sdk_s3::Client::list_parts)
            .match_requests(parts(MINE, None))
            .sequence()
            .http_response({
                let me = mine_arn.clone();
                move || xml_response(parts_page(MINE, &me, 0, 1..=1_000, PART, true))
            })
            .build(),
        mock!(aws_sdk_s3::Client::list_parts)
            .match_requests(parts(MINE, Some("1000")))
            .sequence()
            .http_response(move || {
                xml_response(parts_page(
                    MINE,
                    &mine_arn,
                    1_000,
                    1_001..=LISTED,
                    PART,
                    false,
                ))
            })
            .build(),
        mock!(aws_sdk_s3::Client::list_parts)
            .match_requests(parts(OLDER, None))
            .sequence()
            .http_response(move || {
                xml_response(parts_page(OLDER, &older_id, 0, 1..=2, 128 * MIB, false))
            })
            .build(),
    ]
}

/// The parts of the session's upload, as ListParts describes them.
fn listed_part(n: u32) -> CopiedPart {
    CopiedPart {
        part_number: n,
        etag: etag(MINE, n),
        size: Some(PART),
        checksum: Some(crc32(MINE, n)),
    }
}

fn ids(uploads: &[UploadSummary]) -> Vec<&str> {
    uploads.iter().map(|u| u.upload_id.as_str()).collect()
}

#[tokio::test]
async fn two_pages_of_uploads_and_parts_become_the_resume_decision() {
    let seen = Arc::new(Seen::default());
    let rules = listing_rules(&seen);
    let api = AwsMultipartCopy::new(mock_client!(aws_sdk_s3, RuleMode::MatchAny, &rules));
    let key = dest_key();

    // ListMultipartUploads, both pages, into the decision: the session's uploads of this
    // content (named by ARN or by principal id) newest first; its upload from before the
    // source was written is stale; the IAM user's and the other session's are foreign; the
    // upload on a longer key is not one of this key's.
    let uploads = api
        .list_uploads(DEST_BUCKET, &key, DEST_ACCOUNT)
        .await
        .unwrap();
    let sorted = triage(&uploads, Some(SOURCE_MODIFIED_S * 1000), &me());
    assert_eq!(ids(&sorted.candidates), [MINE, OLDER]);
    assert_eq!(ids(&sorted.stale), [STALE]);
    assert_eq!(ids(&sorted.foreign), [OPS, OTHER_SESSION]);
    // Each with its time (ms) and its initiator's `ID` (not the owner's).
    let summary = |id: &str, at: (&str, i64), initiator: &str| UploadSummary {
        upload_id: id.into(),
        initiated_ms: Some(at.1 * 1000),
        initiator_id: Some(initiator.into()),
    };
    assert_eq!(
        uploads,
        [
            summary(STALE, STALE_AT, &me().arn),
            summary(OLDER, OLDER_AT, me().assumed_role_id.as_deref().unwrap()),
            summary(OPS, OPS_AT, OPS_USER),
            summary(OTHER_SESSION, OTHER_AT, &other_session_arn()),
            summary(MINE, MINE_AT, &me().arn),
        ]
    );
    // The second page was asked for with the first's NextKeyMarker and NextUploadIdMarker
    // (the rules answer nothing else).
    let requests = seen.list_uploads.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[1].key_marker(), requests[1].upload_id_marker()),
        (Some(key.as_str()), Some(OPS))
    );

    // ListParts of the upload resumed, both pages: every part fits the plan and is kept, with
    // its number, size, ETag and CRC32.
    let listed = api
        .list_parts(DEST_BUCKET, &key, MINE, DEST_ACCOUNT)
        .await
        .unwrap();
    let plan = PartPlan::for_size(SIZE, &PartSizing::default()).unwrap();
    assert_eq!((plan.part_size, plan.part_count), (PART, 1_201));
    let expected: Vec<CopiedPart> = (1..=LISTED).map(listed_part).collect();
    assert_eq!(check_parts(&plan, &listed), Ok(expected.clone()));
    assert_eq!(listed, expected);
    let markers: Vec<_> = seen
        .list_parts
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.part_number_marker().map(str::to_string))
        .collect();
    assert_eq!(markers, [None, Some("1000".to_string())]);

    // The older upload's parts are 128 MiB: refused, naming the size S3 reported.
    let older = api
        .list_parts(DEST_BUCKET, &key, OLDER, DEST_ACCOUNT)
        .await
        .unwrap();
    assert_eq!(
        check_parts(&plan, &older),
        Err(format!(
            "part 1 is Some({}) bytes, the plan says {PART}",
            128 * MIB
        ))
    );
    assert_eq!(
        older
            .iter()
            .map(|p| (p.part_number, p.size))
            .collect::<Vec<_>>(),
        [(1, Some(128 * MIB)), (2, Some(128 * MIB))]
    );
}

/// Plenty of time: no part is held back.
struct Plenty;

impl CopyClock for Plenty {
    fn remaining(&self) -> Duration {
        Duration::from_secs(600)
    }
    async fn pause(&self, _: Duration) {}
}

fn arguments() -> LargeObjectCopyArguments {
    LargeObjectCopyArguments {
        destination_bucket: DEST_BUCKET.into(),
        destination_account: DEST_ACCOUNT.into(),
        source_account: SOURCE_ACCOUNT.into(),
        key_prefix: Some(KEY_PREFIX.into()),
        storage_class: None,
        kms_key_arn: None,
        bucket_key_enabled: false,
        checksum_algorithm: Some("CRC32".into()),
        metadata: MetadataArgument::Copy,
        tags: TagsArgument::Remove,
    }
}

fn context() -> CopyContext {
    CopyContext {
        role_arn: format!("arn:aws:iam::{DEST_ACCOUNT}:role/{ROLE_NAME}"),
        session: me(),
        arguments: arguments(),
        tuning: CopyTuning::default(),
    }
}

/// HeadObject of the source and of the copy, CreateMultipartUpload, UploadPartCopy,
/// AbortMultipartUpload and CompleteMultipartUpload, recorded.
fn copy_rules(seen: &Arc<Seen>) -> Vec<Rule> {
    let head_source = mock!(aws_sdk_s3::Client::head_object)
        .match_requests(|i| {
            i.bucket() == Some(SOURCE_BUCKET)
                && i.key() == Some(SOURCE_KEY)
                && i.version_id() == Some(SOURCE_VERSION)
                && i.expected_bucket_owner() == Some(SOURCE_ACCOUNT)
        })
        .then_output(|| {
            HeadObjectOutput::builder()
                .content_length(SIZE as i64)
                .e_tag(SOURCE_ETAG)
                .last_modified(DateTime::from_secs(SOURCE_MODIFIED_S))
                .version_id(SOURCE_VERSION)
                .content_type("image/tiff")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .build()
        });
    let head_copy = mock!(aws_sdk_s3::Client::head_object)
        .match_requests(|i| {
            i.bucket() == Some(DEST_BUCKET)
                && i.version_id() == Some("copy-version-1")
                && i.expected_bucket_owner() == Some(DEST_ACCOUNT)
        })
        .then_output(|| {
            HeadObjectOutput::builder()
                .content_length(SIZE as i64)
                .e_tag("\"0a1b2c3d4e5f60718293a4b5c6d7e8f9-1201\"")
                .checksum_crc32("kbU0Tw==-1201")
                .checksum_type(ChecksumType::Composite)
                .server_side_encryption(ServerSideEncryption::Aes256)
                .version_id("copy-version-1")
                .build()
        });
    let copy = {
        let seen = seen.clone();
        mock!(aws_sdk_s3::Client::upload_part_copy)
            .match_requests(move |i| {
                seen.copies.lock().unwrap().push(i.clone());
                true
            })
            .then_compute_output(|i| {
                let n = i.part_number().unwrap_or(0) as u32;
                let upload = i.upload_id().unwrap_or_default();
                UploadPartCopyOutput::builder()
                    .copy_part_result(
                        CopyPartResult::builder()
                            .e_tag(etag(upload, n))
                            .checksum_crc32(crc32(upload, n))
                            .last_modified(DateTime::from_secs(1_740_920_000))
                            .build(),
                    )
                    .build()
            })
    };
    let abort = {
        let seen = seen.clone();
        mock!(aws_sdk_s3::Client::abort_multipart_upload)
            .match_requests(move |i| {
                seen.aborts.lock().unwrap().push(i.clone());
                true
            })
            .then_output(|| AbortMultipartUploadOutput::builder().build())
    };
    let complete = {
        let seen = seen.clone();
        mock!(aws_sdk_s3::Client::complete_multipart_upload)
            .match_requests(move |i| {
                seen.completes.lock().unwrap().push(i.clone());
                true
            })
            .then_output(|| {
                CompleteMultipartUploadOutput::builder()
                    .e_tag("\"0a1b2c3d4e5f60718293a4b5c6d7e8f9-1201\"")
                    .version_id("copy-version-1")
                    .build()
            })
    };
    let create = {
        let seen = seen.clone();
        mock!(aws_sdk_s3::Client::create_multipart_upload)
            .match_requests(move |i| {
                seen.creates.lock().unwrap().push(i.clone());
                true
            })
            .then_output(|| {
                CreateMultipartUploadOutput::builder()
                    .upload_id(NEW_UPLOAD)
                    .build()
            })
    };
    vec![head_source, head_copy, create, copy, abort, complete]
}

#[tokio::test]
async fn a_retry_through_the_sdk_resumes_the_sessions_upload_and_completes_with_the_listed_parts() {
    let seen = Arc::new(Seen::default());
    let mut rules = listing_rules(&seen);
    rules.extend(copy_rules(&seen));
    let api = AwsMultipartCopy::new(mock_client!(aws_sdk_s3, RuleMode::MatchAny, &rules));
    let task = CopyTask {
        task_id: "dGFzay0x".into(),
        bucket: SOURCE_BUCKET.into(),
        key: SOURCE_KEY.into(),
        version_id: Some(SOURCE_VERSION.into()),
    };

    let (result, stats) = copy_task(&api, &Plenty, &context(), &task).await;
    assert_eq!(
        result.result_code,
        ResultCode::Succeeded,
        "{}",
        result.result_string
    );
    // The session's newest upload is resumed, not a new one started.
    assert_eq!(stats.upload_id.as_deref(), Some(MINE));
    assert!(seen.creates.lock().unwrap().is_empty());
    assert_eq!(
        (stats.parts_total, stats.parts_reused, stats.parts_copied),
        (1_201, LISTED, 1_201 - LISTED)
    );
    assert_eq!(stats.aborted, [STALE, OLDER]);
    assert_eq!(stats.foreign, [OPS, OTHER_SESSION]);
    assert!(
        result.result_string.contains("(1003 resumed)")
            && result.result_string.contains(OPS_USER)
            && result.result_string.contains(&other_session_arn()),
        "{}",
        result.result_string
    );

    // The stale and the refused upload are aborted on the destination key, as its owner.
    let aborts = seen.aborts.lock().unwrap().clone();
    let key = dest_key();
    assert_eq!(
        aborts
            .iter()
            .map(|a| (
                a.bucket(),
                a.key(),
                a.upload_id(),
                a.expected_bucket_owner()
            ))
            .collect::<Vec<_>>(),
        [STALE, OLDER].map(|id| (
            Some(DEST_BUCKET),
            Some(key.as_str()),
            Some(id),
            Some(DEST_ACCOUNT)
        ))
    );

    // Only the parts the listing lacks are copied, into the resumed upload, pinned to the
    // source's ETag.
    let copies = seen.copies.lock().unwrap().clone();
    let mut numbers: Vec<i32> = copies.iter().filter_map(|c| c.part_number()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, ((LISTED as i32 + 1)..=1_201).collect::<Vec<_>>());
    assert!(copies.iter().all(|c| c.upload_id() == Some(MINE)
        && c.copy_source_if_match() == Some(SOURCE_ETAG)
        && c.expected_bucket_owner() == Some(DEST_ACCOUNT)
        && c.expected_source_bucket_owner() == Some(SOURCE_ACCOUNT)));
    let last = copies
        .iter()
        .find(|c| c.part_number() == Some(1_201))
        .unwrap();
    assert_eq!(
        last.copy_source_range(),
        Some(format!("bytes={}-{}", 1_200 * PART, SIZE - 1).as_str())
    );

    // CompleteMultipartUpload names every part in order with the ETag and CRC32 S3 gave it:
    // ListParts' for the resumed ones, UploadPartCopy's for the rest.
    let completes = seen.completes.lock().unwrap().clone();
    assert_eq!(completes.len(), 1);
    assert_eq!(completes[0].upload_id(), Some(MINE));
    let sent: BTreeMap<i32, (Option<&str>, Option<&str>)> = completes[0]
        .multipart_upload()
        .unwrap()
        .parts()
        .iter()
        .map(|p| {
            (
                p.part_number().unwrap_or(0),
                (p.e_tag(), p.checksum_crc32()),
            )
        })
        .collect();
    let order: Vec<i32> = completes[0]
        .multipart_upload()
        .unwrap()
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(order, (1..=1_201).collect::<Vec<_>>());
    for n in 1..=1_201u32 {
        assert_eq!(
            sent[&(n as i32)],
            (Some(etag(MINE, n).as_str()), Some(crc32(MINE, n).as_str())),
            "part {n}"
        );
    }
}
