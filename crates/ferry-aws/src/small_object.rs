//! Reading an object whole, bounded: an inventory's `manifest.json` or `manifest.checksum`, a
//! state-bucket object. Larger objects are refused before they are read.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::inventory::run::{SmallObject, OBJECT_TOO_LARGE};

use crate::errors::classify;

/// A body that broke off mid-read: worth another try.
pub(crate) fn read_error(e: impl std::fmt::Display) -> AwsCallError {
    AwsCallError {
        kind: AwsErrorKind::Transient,
        code: "ReadError".to_string(),
        message: e.to_string(),
    }
}

/// The most Ferry reads whole from an inventory bucket: a manifest.json, a manifest.checksum
/// (`ferry_flows::inventory::run`'s bound, which the run checks again).
pub const MAX_SMALL_OBJECT_BYTES: usize = ferry_flows::inventory::run::MAX_SMALL_OBJECT_BYTES;

fn too_large(size: impl std::fmt::Display) -> AwsCallError {
    AwsCallError {
        kind: AwsErrorKind::Other,
        code: OBJECT_TOO_LARGE.to_string(),
        message: format!(
            "the object is {size} bytes; Ferry reads objects of at most {MAX_SMALL_OBJECT_BYTES} bytes whole here"
        ),
    }
}

/// GetObject into memory, with the ETag of what was read; `None` when there is none.
pub(crate) async fn whole_or_none(
    result: Result<GetObjectOutput, SdkError<GetObjectError, HttpResponse>>,
    cap: Option<usize>,
) -> Result<Option<SmallObject>, AwsCallError> {
    match result {
        Ok(out) => {
            // An inventory's manifest.json and manifest.checksum are small; an object in their
            // place that isn't must not be read into memory whole (#15 item 9). S3 always
            // answers GetObject with Content-Length: refused before the body is read. The body
            // is still counted as it comes, so a missing or wrong length can't get past the cap.
            let size = out.content_length().unwrap_or(0);
            if cap.is_some_and(|cap| size > cap as i64) {
                return Err(too_large(size));
            }
            let etag = out.e_tag().unwrap_or_default().to_string();
            let mut body = out.body;
            let mut bytes = Vec::with_capacity(
                usize::try_from(size)
                    .unwrap_or(0)
                    .min(cap.unwrap_or(usize::MAX)),
            );
            while let Some(chunk) = body.try_next().await.map_err(read_error)? {
                if cap.is_some_and(|cap| bytes.len() + chunk.len() > cap) {
                    return Err(too_large(format!(
                        "more than {}",
                        bytes.len() + chunk.len()
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Some(SmallObject { body: bytes, etag }))
        }
        Err(e) => {
            let err = classify(&e);
            if err.kind == AwsErrorKind::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// A state object whole (`None` when absent).
pub(crate) async fn get_whole(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, AwsCallError> {
    // State objects: Ferry's own, the delta index among them (16 bytes an object), so no cap.
    let result = s3.get_object().bucket(bucket).key(key).send().await;
    Ok(whole_or_none(result, None).await?.map(|o| o.body))
}
