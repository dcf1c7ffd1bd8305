//! Ferry's AWS adapters: SDK implementations of the ports `ferry-flows` is written against, the
//! Lambda runtime's helpers (deadline, clock, random tokens) and the custom-resource runner that
//! always answers CloudFormation ([`custom_resource`]). Only this crate talks to AWS; everything
//! it does is translation, not decisions.
//!
//! It depends on `ferry-flows` (the ports), `ferry-plan` and `ferry-listings`; only the functions,
//! the CLI and the test kit depend on it.

pub mod copier_ports;
pub mod create_job;
pub mod custom_resource;
pub mod errors;
pub mod http;
pub mod inventory;
pub mod jobs;
pub mod large_copy;
pub mod launch_api;
pub mod policies;
pub mod ports;
pub mod preflight;
pub mod regions;
pub mod runtime;
pub mod small_object;

pub use launch_api::AwsLaunchApi;
pub use ports::AwsPorts;
