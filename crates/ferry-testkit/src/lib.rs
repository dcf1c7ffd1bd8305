//! Test support for Ferry, used only as a dev-dependency.
//!
//! - [`moto::MotoServer`]: a private moto server per test (S3, STS, IAM, KMS, SNS, CloudFormation
//!   and more on `127.0.0.1`), with SDK configs for its default account and for any other account
//!   reached through `sts:AssumeRole`.
//! - [`http_catcher::ResponseCatcher`]: a tiny HTTP/1.1 server standing in for CloudFormation's
//!   presigned `ResponseURL` or a `WaitConditionHandle` URL; it records every request.
//! - [`logs::LogCapture`]: what a handler logs, as Lambda would see it.
//! - [`inbox::Inbox`]: what a topic's e-mail subscribers would receive.
//! - [`orc::write_orc`]: ORC inventory files from Apache ORC's own writer.

pub mod http_catcher;
pub mod inbox;
pub mod logs;
pub mod moto;
pub mod orc;

pub use http_catcher::{CapturedRequest, ResponseCatcher};
pub use inbox::Inbox;
pub use logs::LogCapture;
pub use moto::{s3_client, MotoServer};
pub use orc::{write_orc, OrcOptions};
