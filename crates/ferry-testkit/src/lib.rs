//! Test support for Ferry, used only as a dev-dependency.
//!
//! - [`moto::MotoServer`]: a private moto server per test (S3, STS, IAM, KMS, SNS, CloudFormation
//!   and more on `127.0.0.1`) behind the authorizing gateway (`tests/gateway`), with SDK configs
//!   for its default account and for any other account reached through `sts:AssumeRole`.
//! - [`accounts`]: a KMS key, a bucket's default SSE-KMS, a recording CreateJob stand-in.
//! - [`batch_ops`]: an S3 Batch Operations emulator that runs the CreateJob request the code
//!   sent against moto, as the job's role, through the gateway, by AWS's documented rules.
//! - [`function_role::FunctionRole`]: a stack function's execution role as the template makes it,
//!   deployed on moto, with a session to run the function's code as that role.
//! - [`grants::PlanGrants`]: a plan's role, bucket- and key-policy statements applied on moto,
//!   as the accounts' administrators (or `ferry grant`) would; optionally one left out.
//! - [`http_catcher::ResponseCatcher`]: a tiny HTTP/1.1 server standing in for CloudFormation's
//!   presigned `ResponseURL` or a `WaitConditionHandle` URL; it records every request.
//! - [`logs::LogCapture`]: what a handler logs, as Lambda would see it.
//! - [`inbox::Inbox`]: what a topic's e-mail subscribers would receive.
//! - [`inventory`]: an S3 Inventory delivered as S3 delivers it, and its EventBridge event.
//! - [`lambda::invocations`]: the Lambda `Invoke` calls the gateway authorized and answered (moto
//!   runs no functions), with their payloads, for a test to run the invoked handler.
//! - [`s3control::s3control_client`]: S3 Control through the gateway, jobs answered by its job
//!   table and moved by the emulator.
//! - [`stack`]: the stack around a test: TransferPlan's properties from the template, its
//!   resources, what the instructions e-mail says to do and who does it, and the CloudFormation
//!   stack itself with the status the gateway reports for it (in an operation unless set).
//! - [`orc::write_orc`]: ORC inventory files from Apache ORC's own writer.
//! - [`stepfunctions::run_execution`]: one Step Functions execution, emulated (the subset of the
//!   Amazon States Language the stack's state machines use): its Distributed Maps' items and its
//!   Tasks' functions come from the test's stand-ins, each invoked with the payload Step
//!   Functions would send; [`stepfunctions::template_state_machine`] reads a state machine's
//!   definition and `DefinitionSubstitutions` from the template.

pub mod accounts;
pub mod batch_ops;
pub mod cloudformation;
pub mod function_role;
pub mod grants;
pub mod http_catcher;
pub mod inbox;
pub mod inventory;
pub mod lambda;
pub mod logs;
pub mod moto;
pub mod orc;
pub mod s3control;
pub mod stack;
pub mod stepfunctions;

pub use accounts::{
    bucket_owner_enforced, create_job_recorder, default_kms_encryption, kms_key, SentJobs,
};
pub use function_role::FunctionRole;
pub use grants::{Layer, PlanGrants};
pub use http_catcher::{CapturedRequest, ResponseCatcher};
pub use inbox::Inbox;
pub use logs::LogCapture;
pub use moto::{s3_client, GatewayDecision, MotoServer};
pub use orc::{write_orc, OrcOptions};
pub use s3control::s3control_client;
