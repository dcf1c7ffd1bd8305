//! Ferry's core: the single source of truth for a cross-account S3 Batch Operations copy.
//!
//! From one [`TransferSpec`] it derives everything else: validation ([`validate`]), every
//! IAM, bucket and key policy ([`policy`]), the `CreateJob` request ([`job`]), the cost
//! estimate ([`cost`]), and the plan that bundles them ([`plan`]) with its text form
//! ([`render`]). It is pure: no AWS calls, no clock, no randomness.

pub mod aws_names;
pub mod cost;
pub mod error;
pub mod job;
pub mod plan;
pub mod policy;
pub mod render;
pub mod spec;
pub mod validate;

pub use error::{FerryError, SpecProblem};
pub use plan::Plan;
pub use spec::TransferSpec;
