//! Event-driven runs: a new inventory landed, so copy what changed.
//!
//! - [`event`]: the events that say an inventory landed, read defensively;
//! - [`run`]: one run, from the event to its jobs, once however often the event comes;
//! - [`fanout`]: a run too large for one function, on Step Functions Distributed Map;
//! - [`delta`]: the delta state in the state bucket, moved forward only when every job of a run
//!   accounted for every object.

pub mod delta;
pub mod event;
pub mod fanout;
pub mod fanout_records;
pub mod run;
