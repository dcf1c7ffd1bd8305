//! S3 clients by bucket Region.
//!
//! S3 answers a request sent to the wrong Region with `301 PermanentRedirect` and the bucket's
//! Region in `x-amz-bucket-region`; the Rust SDK does not follow it (aws-sdk-rust has no
//! cross-Region redirect, unlike the Java SDK's `crossRegionAccessEnabled`). Ferry reaches
//! buckets outside its function's Region: an S3 Inventory is delivered only in the source
//! bucket's Region (S3 User Guide, "Cataloging and analyzing your data with S3 Inventory"), so
//! a cross-Region transfer reads its inventory there. [`BucketRegions::call`] sends a request
//! with the client of the bucket's Region as last learned (the home Region's at first) and, on
//! a redirect that names the Region, remembers it and sends the request once more there.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::errors::bucket_region_of;

/// Which Region each bucket is in, as S3 said; shared by clones.
#[derive(Debug, Clone, Default)]
pub struct BucketRegions {
    known: Arc<Mutex<HashMap<String, String>>>,
}

impl BucketRegions {
    /// The Region S3 named for `bucket`, if it named one.
    pub fn region_of(&self, bucket: &str) -> Option<String> {
        self.known.lock().ok()?.get(bucket).cloned()
    }

    fn remember(&self, bucket: &str, region: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(bucket.to_string(), region.to_string());
        }
    }

    /// `home` for a bucket of its own Region (or one not heard of), else a client like `home`
    /// (credentials, endpoint, addressing) in the bucket's Region.
    pub fn client_for(&self, home: &aws_sdk_s3::Client, bucket: &str) -> aws_sdk_s3::Client {
        match self.region_of(bucket) {
            Some(region) if home.config().region().map(|r| r.as_ref()) != Some(&*region) => {
                in_region(home, &region)
            }
            _ => home.clone(),
        }
    }

    /// Runs `request` with the client for `bucket`; after a wrong-Region answer, once more with
    /// a client of the bucket's Region. Returns the result and the Region the answer came from
    /// when it was not `home`'s.
    pub async fn call<T, E, F, Fut>(
        &self,
        home: &aws_sdk_s3::Client,
        bucket: &str,
        request: F,
    ) -> (Result<T, SdkError<E, HttpResponse>>, Option<String>)
    where
        E: ProvideErrorMetadata,
        F: Fn(aws_sdk_s3::Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        let client = self.client_for(home, bucket);
        let used = client.config().region().map(|r| r.to_string());
        let first = request(client).await;
        let redirected = match &first {
            Err(e) if is_wrong_region(e) => self
                .bucket_region(home, bucket, e)
                .await
                .filter(|r| Some(r) != used.as_ref()),
            _ => None,
        };
        let Some(region) = redirected else {
            let elsewhere = used.filter(|r| home.config().region().map(|h| h.as_ref()) != Some(r));
            return (first, elsewhere);
        };
        self.remember(bucket, &region);
        (request(in_region(home, &region)).await, Some(region))
    }

    /// The bucket's Region after a wrong-Region answer, as botocore's redirector finds it: the
    /// `x-amz-bucket-region` header, else the `<Region>` of the error body, else a HeadBucket,
    /// which S3 answers "regardless of the permissions on the bucket" with that header (S3 API
    /// Reference, HeadBucket:
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html>).
    async fn bucket_region<E>(
        &self,
        home: &aws_sdk_s3::Client,
        bucket: &str,
        e: &SdkError<E, HttpResponse>,
    ) -> Option<String> {
        if let Some(region) = bucket_region_of(e).or_else(|| region_in_body(e)) {
            return valid_region(&region);
        }
        let probe = home.head_bucket().bucket(bucket).send().await;
        let region = match &probe {
            Ok(out) => out.bucket_region().map(str::to_string),
            Err(e) => bucket_region_of(e),
        };
        region.and_then(|r| valid_region(&r))
    }
}

/// A Region name as S3 sends it (`us-east-1`, `cn-northwest-1`, `us-gov-west-1`): anything else
/// from a response header is not used to build an endpoint.
fn valid_region(region: &str) -> Option<String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| region.to_string())
}

/// `<Region>…</Region>` of an S3 error body (AuthorizationHeaderMalformed carries it there).
fn region_in_body<E>(e: &SdkError<E, HttpResponse>) -> Option<String> {
    let body = e.raw_response()?.body().bytes()?;
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Region>")? + "<Region>".len();
    let end = start + text[start..].find("</Region>")?;
    Some(text[start..end].trim().to_string())
}

/// `home` with another Region: same credentials, endpoint and addressing.
pub fn in_region(home: &aws_sdk_s3::Client, region: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        home.config()
            .to_builder()
            .region(Region::new(region.to_string()))
            .build(),
    )
}

/// S3's answers to a request sent to another Region than the bucket's: 301 PermanentRedirect
/// (307 while a new bucket's DNS settles), 400 AuthorizationHeaderMalformed (signed for the
/// wrong Region), 400 IllegalLocationConstraintException (Regions opened after March 2019,
/// S3 User Guide, "Virtual hosting of buckets"), and a HEAD's bare 400, which has no body to
/// carry a code.
fn is_wrong_region<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code();
    matches!(status, Some(301 | 307))
        || matches!(
            code,
            Some(
                "PermanentRedirect"
                    | "AuthorizationHeaderMalformed"
                    | "IllegalLocationConstraintException"
            )
        )
        || (status == Some(400) && code.is_none())
}

#[cfg(test)]
mod tests {
    use super::valid_region;

    #[test]
    fn only_region_names_are_used() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "cn-northwest-1",
            "us-gov-west-1",
            "ap-southeast-5",
        ] {
            assert_eq!(valid_region(ok).as_deref(), Some(ok));
        }
        for bad in [
            "",
            "us-east",
            "us-east-1.evil.com",
            "us/east-1",
            "US-EAST-1",
            "x-1",
            "us--1",
            "evil.com",
        ] {
            assert_eq!(valid_region(bad), None, "{bad}");
        }
    }
}
