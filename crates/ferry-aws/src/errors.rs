//! SDK errors reduced to the kinds Ferry acts on ([`AwsCallError`]).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use ferry_core::launch::{AwsCallError, AwsErrorKind};

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
    let kind = match (code.as_deref(), status) {
        (
            Some(
                "TooManyRequestsException"
                | "Throttling"
                | "ThrottlingException"
                | "SlowDown"
                | "RequestLimitExceeded",
            ),
            _,
        )
        | (_, Some(429)) => AwsErrorKind::Throttled,
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
        (Some("InternalServiceException" | "InternalError" | "ServiceUnavailable"), _) => {
            AwsErrorKind::Transient
        }
        (_, Some(s)) if s >= 500 => AwsErrorKind::Transient,
        _ => AwsErrorKind::Other,
    };
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
