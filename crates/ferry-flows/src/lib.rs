//! Ferry's workflows, written against ports: what the stack's functions and the CLI do.
//!
//! At the bottom, [`aws_error`] (the one error type every port returns and the one retry rule)
//! and [`ports`] (the small traits the flows call AWS through; `ferry-aws` implements them).
//! Above them the flows: [`launch`] (a plan into a job, once), [`workflow`] (the stack's
//! set-up, approval, first copy and teardown), [`approval_topic`] (one message of the approval
//! topic), [`inventory`] (event-driven runs and their delta
//! state), [`report`] (job monitoring, diagnosis, summaries, redrive, status), [`preflight`],
//! [`grant`], [`large_object`] (the multipart copy of objects over 5 GiB), the stack's custom
//! resources ([`custom_resources`]) and the checks every custom-resource event passes
//! ([`stack_pins`], [`stack_status`]).
//!
//! It depends on `ferry-plan` and `ferry-listings` and on no AWS SDK; the functions, the CLI
//! and `ferry-aws` depend on it, never the other way round.

pub mod approval_topic;
pub mod aws_error;
pub mod custom_resources;
pub mod grant;
pub mod inventory;
pub mod job_manifest;
pub mod large_object;
pub mod launch;
pub mod ports;
pub mod preflight;
pub mod report;
pub mod stack_pins;
pub mod stack_status;
pub mod workflow;
