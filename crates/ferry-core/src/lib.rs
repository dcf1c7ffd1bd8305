//! Ferry's core: the single source of truth for a cross-account S3 Batch Operations copy.
//!
//! From one [`TransferSpec`] it derives everything else: validation ([`validate`]), every
//! IAM, bucket and key policy ([`policy`]), the `CreateJob` request ([`job`]), the cost
//! estimate ([`cost`]), and the plan that bundles them ([`plan`]) with its text form
//! ([`render`]). The [`launch`]er that creates the job is written against a small port
//! (`LaunchApi`); the core itself makes no AWS calls and has no clock or randomness.

pub mod approval;
pub mod aws_names;
pub mod cost;
pub mod error;
pub mod grant;
pub mod inventory;
pub mod job;
pub mod job_manifest;
pub mod large_object;
pub mod launch;
pub mod manifest;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod preflight;
pub mod render;
pub mod report;
pub mod spec;
pub mod stack;
pub mod stack_pins;
pub mod stack_status;
pub mod untrusted;
pub mod validate;
pub mod workflow;

pub use error::{FerryError, SpecProblem};
pub use plan::Plan;
pub use spec::TransferSpec;
