//! Ferry's AWS adapters: SDK implementations of the ports `ferry-core` is written against.
//! Only this crate talks to AWS; everything it does is translation, not decisions.

pub mod create_job;
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

pub use launch_api::AwsLaunchApi;
pub use ports::AwsPorts;
