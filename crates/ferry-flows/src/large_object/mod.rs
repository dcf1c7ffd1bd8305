//! Objects over 5 GiB: what Ferry's `large-object-copier` function does for each task of a
//! Batch Operations LambdaInvoke job, written against the [`copy::MultipartCopyApi`] port.
//!
//! - the destination settings carried in the job's `UserArguments` are the plan's
//!   (`ferry_plan::large_object_arguments`): the Copy job and this one are built from one spec.
//! - [`pins`]: the same settings pinned in the copier's environment by the stack, and the check
//!   every task passes against them.
//! - [`invoking_job`]: whether the job an invocation names is one of this stack's.
//! - [`job_manifest`]: whether the task's object is one that job's manifest lists.
//! - [`parts`]: the part-size plan (≤ 10,000 parts of 5 MiB–5 GiB, chosen from the size).
//! - [`task`]: the LambdaInvoke request and response (schemas 1.0 and 2.0).
//! - [`resume`]: finding the multipart upload an earlier invocation left open.
//! - [`copy`]: the multipart server-side copy itself and how its outcome is reported.
//! - [`invocation`]: one invocation, every task checked, then copied (the function's one call).

pub mod copy;
pub mod invocation;
pub mod invoking_job;
pub mod job_manifest;
pub mod parts;
pub mod pins;
pub mod resume;
pub mod task;
