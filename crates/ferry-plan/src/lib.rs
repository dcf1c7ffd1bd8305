//! Ferry's plan: the single source of truth for a cross-account S3 Batch Operations copy.
//!
//! From one [`TransferSpec`] it derives everything else: validation ([`validate`]), every
//! IAM, bucket and key policy ([`policy`]), the `CreateJob` request ([`job`]), the cost
//! estimate ([`cost`]), the inventory set-up event-driven runs need ([`inventory_setup`]), and
//! the plan that bundles them ([`plan`]) with its text and e-mails ([`render`]). Also the
//! vocabulary the other crates share: AWS names ([`aws_names`]), S3 Inventory fields
//! ([`inventory_fields`]), RFC 3339 times ([`time`]), the stack's properties ([`stack`]), the
//! approval's token and messages ([`approval`]) and text escaped for e-mail ([`untrusted`]).
//!
//! Pure: no ports, no async, no clock, no randomness, no AWS calls. It depends on no other
//! Ferry crate; `ferry-listings` and `ferry-flows` depend on it, never the other way round.

pub mod approval;
pub mod aws_names;
pub mod cost;
pub mod destination_key;
pub mod error;
pub mod inventory_fields;
pub mod inventory_setup;
pub mod job;
pub mod large_object_arguments;
pub mod plan;
pub mod policy;
pub mod render;
pub mod spec;
pub mod stack;
pub mod time;
pub mod untrusted;
pub mod validate;

pub use error::{FerryError, SpecProblem};
pub use plan::Plan;
pub use spec::TransferSpec;
