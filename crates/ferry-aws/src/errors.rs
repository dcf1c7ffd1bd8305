//! SDK errors reduced to the kinds Ferry acts on ([`AwsCallError`]).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// Classifies any SDK error by its service code first and its HTTP status second: HEAD
/// requests carry no body, so S3 can only say 403/404/301 there.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> AwsCallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, message, status) = match err {
        SdkError::ServiceError(service) => (
            service.err().code().map(str::to_string),
            service
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| service.err().to_string()),
            Some(service.raw().status().as_u16()),
        ),
        SdkError::ResponseError(r) => (None, format!("{err}"), Some(r.raw().status().as_u16())),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return AwsCallError {
                kind: AwsErrorKind::Transient,
                code: "NetworkError".to_string(),
                message: error_chain(err),
            }
        }
        _ => (None, error_chain(err), None),
    };
    let kind = kind_of(code.as_deref(), status);
    let code = code.unwrap_or_else(|| match status {
        Some(s) => format!("HTTP {s}"),
        None => "Unknown".to_string(),
    });
    AwsCallError {
        kind,
        code,
        message,
    }
}

/// The kind of an AWS error from its code and HTTP status: the code first, since HEAD requests
/// carry no body and some codes come with a misleading status (S3's `RequestTimeout` is a 400,
/// SNS's `KMSThrottling` a 400, S3's `OperationAborted` a 409).
///
/// Transient codes: the SDK's own lists (aws-smithy-runtime's `THROTTLING_ERRORS` and
/// `TRANSIENT_ERRORS` in `retries/classifiers.rs`), S3's error table ("Error responses":
/// `OperationAborted` "Try again", `SlowDown`, `ServiceUnavailable`, `InternalError`,
/// `RequestTimeout`), SNS Publish's `KMSThrottling` (botocore `sns/2010-03-31/service-2.json`)
/// and KMS's `fault` errors the model says can be retried (`DependencyTimeoutException`,
/// `KMSInternalException`, `KeyUnavailableException`).
pub fn kind_of(code: Option<&str>, status: Option<u16>) -> AwsErrorKind {
    match (code, status) {
        (
            Some(
                "TooManyRequestsException"
                | "Throttling"
                | "ThrottlingException"
                | "ThrottledException"
                | "RequestThrottledException"
                | "RequestThrottled"
                | "SlowDown"
                | "RequestLimitExceeded"
                | "BandwidthLimitExceeded"
                | "KMSThrottling"
                | "KMSThrottlingException"
                | "PriorRequestNotComplete"
                | "TransactionInProgressException"
                | "EC2ThrottledException",
            ),
            _,
        )
        | (_, Some(429)) => AwsErrorKind::Throttled,
        (
            Some(
                "RequestTimeout"
                | "RequestTimeoutException"
                | "OperationAborted"
                | "InternalServiceException"
                | "InternalError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "KMSInternalException"
                | "DependencyTimeoutException"
                | "KeyUnavailableException"
                // IAM (409): "wait a few minutes and submit your request again" / "likely to
                // succeed if you try again" (botocore iam/2010-05-08).
                | "ConcurrentModification"
                | "EntityTemporarilyUnmodifiable"
                // Lambda (409): a function still Pending or being updated (Lambda Developer
                // Guide, "Lambda function states").
                | "ResourceConflictException"
                | "ResourceNotReadyException"
                | "SnapStartNotReadyException",
            ),
            _,
        ) => AwsErrorKind::Transient,
        // Lambda answers its configuration faults with 502 (botocore lambda/2015-03-31): asking
        // again won't fix a key or a package.
        (
            Some(
                "KMSAccessDeniedException"
                | "KMSDisabledException"
                | "KMSInvalidStateException"
                | "KMSNotFoundException"
                | "InvalidZipFileException"
                | "InvalidRuntimeException"
                | "InvalidSubnetIDException"
                | "InvalidSecurityGroupIDException"
                | "SubnetIPAddressLimitReachedException"
                | "EC2AccessDeniedException",
            ),
            _,
        ) => AwsErrorKind::Other,
        (Some("IdempotencyException"), _) => AwsErrorKind::IdempotencyConflict,
        (Some("AccessDenied" | "AccessDeniedException" | "Forbidden"), _) | (_, Some(403)) => {
            AwsErrorKind::AccessDenied
        }
        (Some("NoSuchKey" | "NotFound" | "NoSuchBucket" | "NotFoundException"), _)
        | (_, Some(404)) => AwsErrorKind::NotFound,
        (
            Some(
                "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException",
            ),
            _,
        )
        | (_, Some(301)) => AwsErrorKind::WrongRegion,
        (Some("BadRequestException" | "InvalidRequest"), _) | (_, Some(400)) => {
            AwsErrorKind::BadRequest
        }
        // The statuses the SDK itself retries (aws-smithy-runtime's `TRANSIENT_ERROR_STATUS_CODES`:
        // 500, 502, 503, 504); 501 NotImplemented and the rest won't change on their own.
        (_, Some(500 | 502 | 503 | 504)) => AwsErrorKind::Transient,
        _ => AwsErrorKind::Other,
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Region S3 named in `x-amz-bucket-region`, on an error response that has one.
pub fn bucket_region_of<E>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    err.raw_response()
        .and_then(|r| r.headers().get("x-amz-bucket-region"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// #16 review: each (code, status) as AWS answers it, and the kind Ferry acts on.
    #[test]
    fn codes_and_statuses_map_to_the_kind_aws_means() {
        use AwsErrorKind::*;
        for (code, status, kind) in [
            (Some("SlowDown"), Some(503), Throttled),
            (Some("TooManyRequestsException"), Some(400), Throttled),
            (Some("KMSThrottling"), Some(400), Throttled),
            (Some("ThrottlingException"), Some(400), Throttled),
            (None, Some(429), Throttled),
            (Some("RequestTimeout"), Some(400), Transient),
            (Some("OperationAborted"), Some(409), Transient),
            (Some("InternalError"), Some(500), Transient),
            (Some("ServiceUnavailable"), Some(503), Transient),
            (Some("KMSInternalException"), Some(500), Transient),
            (Some("DependencyTimeoutException"), Some(503), Transient),
            (Some("KeyUnavailableException"), Some(500), Transient),
            (None, Some(502), Transient),
            (Some("NotImplemented"), Some(501), Other),
            (Some("AccessDenied"), Some(403), AccessDenied),
            (None, Some(403), AccessDenied),
            (Some("NoSuchKey"), Some(404), NotFound),
            (None, Some(404), NotFound),
            (Some("PermanentRedirect"), Some(301), WrongRegion),
            (Some("InvalidRequest"), Some(400), BadRequest),
            (Some("IdempotencyException"), Some(400), IdempotencyConflict),
            (Some("PreconditionFailed"), Some(412), Other),
            (Some("ConcurrentModification"), Some(409), Transient),
            (Some("ResourceConflictException"), Some(409), Transient),
            (Some("KMSAccessDeniedException"), Some(502), Other),
            (Some("EntityAlreadyExists"), Some(409), Other),
            (None, Some(505), Other),
            (Some("InvalidArgument"), Some(400), BadRequest),
        ] {
            assert_eq!(kind_of(code, status), kind, "{code:?} {status:?}");
        }
    }
}
