//! What a failed AWS call is to Ferry's flows: one error type every port returns
//! ([`AwsCallError`], its [`AwsErrorKind`]), the one retry rule ([`AwsErrorKind::is_retryable`],
//! [`AwsCaused`]) and how patiently to retry ([`RetryPolicy`]). The bottom of the flows: it
//! imports nothing of Ferry's.

use std::time::Duration;

/// What an AWS call failed with, reduced to what the launcher acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCallError {
    pub kind: AwsErrorKind,
    /// The service's error code, e.g. `AccessDenied`, `TooManyRequestsException`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Throttling: retry after a pause.
    Throttled,
    /// 5xx or a dropped connection: retry after a pause.
    Transient,
    AccessDenied,
    NotFound,
    /// The bucket is in another region (S3 answers 301 PermanentRedirect). Where S3 names the
    /// region (`x-amz-bucket-region`), adapters read it from the response themselves.
    WrongRegion,
    /// The request was refused as malformed or impossible.
    BadRequest,
    /// The client request token was already used with a different request (S3 Control's
    /// `IdempotencyException`): never retried, since the same request would meet it again.
    IdempotencyConflict,
    Other,
}

impl AwsErrorKind {
    /// The one retry rule (#16 item 7): throttling, a 5xx or a dropped connection may pass; any
    /// other answer is AWS's decision and repeats. Every flow's "worth another try" comes from
    /// here ([`AwsCaused`]).
    pub fn is_retryable(self) -> bool {
        matches!(self, AwsErrorKind::Throttled | AwsErrorKind::Transient)
    }
}

impl AwsCallError {
    /// See [`AwsErrorKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// An error with, perhaps, a failed AWS call under it. Every flow's error implements it, so
/// whether an error is worth another try is decided once, by the call's [`AwsErrorKind`].
pub trait AwsCaused {
    /// The AWS call the error comes from, if it comes from one.
    fn aws_cause(&self) -> Option<&AwsCallError>;

    /// Worth another try later: the AWS call under it was throttled or failed transiently.
    fn is_retryable(&self) -> bool {
        self.aws_cause().is_some_and(AwsCallError::is_retryable)
    }
}

impl std::fmt::Display for AwsCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
/// How often and how patiently to retry throttling and server errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts over about 30 s: well inside a Lambda's time, long enough to ride out
    /// CreateJob's per-account rate limit.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            first_pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff: first_pause × 2^(attempt-1), capped.
    pub fn pause_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_pause
            .checked_mul(factor)
            .map_or(self.max_pause, |d| d.min(self.max_pause))
    }
}
