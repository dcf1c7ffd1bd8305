//! large-object-copier: the target of Ferry's Batch Operations LambdaInvoke jobs for objects
//! over 5 GiB. Each invocation is one flow call
//! (`ferry_flows::large_object::invocation::InvocationHandler::handle_request`, which says what
//! is checked before the copier acts as the batch role), with the AWS ports of
//! `ferry_aws::copier_ports`. See `docs/large-objects.md`.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use ferry_aws::runtime::DeadlineClock;
use ferry_flows::large_object::invocation::InvocationHandler;
use ferry_flows::large_object::task::InvocationRequest;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub use ferry_aws::copier_ports::StsCopierPorts;
pub use ferry_flows::large_object::invocation::{
    ConfigError, CopierPorts, JOB_CACHE_TTL, MANIFEST_CACHE_ROWS,
};

pub struct LargeObjectCopier<P> {
    pub handler: InvocationHandler<P>,
    /// Budget when the context carries no real deadline (`Context::default()`, local runs).
    pub default_budget: Duration,
}

impl<P> Deref for LargeObjectCopier<P> {
    type Target = InvocationHandler<P>;
    fn deref(&self) -> &Self::Target {
        &self.handler
    }
}

impl<P> DerefMut for LargeObjectCopier<P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.handler
    }
}

impl<P: CopierPorts> LargeObjectCopier<P> {
    fn of(handler: InvocationHandler<P>) -> Self {
        Self {
            handler,
            default_budget: Duration::from_secs(900),
        }
    }

    pub fn new(
        ports: P,
        batch_role_arn: String,
        pins: ferry_flows::large_object::pins::CopierPins,
    ) -> Self {
        Self::of(InvocationHandler::new(ports, batch_role_arn, pins))
    }

    /// From the process environment (`InvocationHandler::from_vars` says what it reads).
    pub fn from_env(ports: P) -> Result<Self, ConfigError> {
        InvocationHandler::from_env(ports).map(Self::of)
    }

    pub fn from_vars(ports: P, var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        InvocationHandler::from_vars(ports, var).map(Self::of)
    }

    fn budget(&self, deadline_ms: u64) -> Duration {
        ferry_aws::runtime::time_left(deadline_ms).unwrap_or(self.default_budget)
    }

    /// Lambda entry point: answers every task; errs only on an event that isn't a
    /// LambdaInvoke request at all.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let clock = DeadlineClock::after(self.budget(event.context.deadline));
        let request: InvocationRequest = serde_json::from_value(event.payload).map_err(|e| {
            Error::from(format!(
                "large-object-copier takes S3 Batch Operations LambdaInvoke requests (invocationSchemaVersion, \
                 invocationId, job, tasks): {e}"
            ))
        })?;
        let response = self.handler.handle_request(&request, &clock).await;
        Ok(serde_json::to_value(response)?)
    }
}
