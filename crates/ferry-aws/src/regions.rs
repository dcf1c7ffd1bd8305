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

    /// Runs `request` with the client for `bucket`; after a redirect naming the bucket's
    /// Region, once more with a client of that Region. Returns the result and the Region the
    /// answer came from when it was not `home`'s.
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
            Err(e) if is_redirect(e) => bucket_region_of(e).filter(|r| Some(r) != used.as_ref()),
            _ => None,
        };
        let Some(region) = redirected else {
            let elsewhere = used.filter(|r| home.config().region().map(|h| h.as_ref()) != Some(r));
            return (first, elsewhere);
        };
        self.remember(bucket, &region);
        (request(in_region(home, &region)).await, Some(region))
    }
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

/// 301 (PermanentRedirect), or the 400 AuthorizationHeaderMalformed / 307 S3 may answer for a
/// request signed for the wrong Region: each carries `x-amz-bucket-region` when S3 knows it.
fn is_redirect<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or_default();
    matches!(status, Some(301 | 307))
        || code == "PermanentRedirect"
        || code == "AuthorizationHeaderMalformed"
        || code == "IllegalLocationConstraintException"
}
