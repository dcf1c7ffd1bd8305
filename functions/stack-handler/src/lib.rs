//! stack-handler: the CloudFormation custom resources `Custom::FerryTransferPlan`,
//! `Custom::FerryJob` and `Custom::FerryInventoryTrigger` (see `docs/stack.md`).
//!
//! It turns each event into one flow call (`ferry_flows::custom_resources::handle_request`) and
//! leaves the rest to the shared runner (`ferry_aws::custom_resource`): it always answers
//! CloudFormation, acts only on an event equal to the template's pins while the pinned stack is
//! in an operation (#15), and answers a Delete SUCCESS with what it could not do.

use std::sync::Arc;
use std::time::Duration;

use ferry_aws::custom_resource::{resource_request, CustomResourceRunner};
use ferry_aws::http::{presigned_put_client, PresignedUrlRule};
use ferry_aws::runtime::{random_token, unix_now};
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::custom_resources::{handle_request, not_served};
use ferry_flows::stack_pins::StackPins;
use ferry_flows::workflow::StackContext;
use ferry_plan::approval::ApprovalToken;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub use ferry_aws::custom_resource::{response_body, MAX_RESPONSE_BYTES};
pub use ferry_flows::custom_resources::{
    StackPorts, FIRST_JOB_TYPE, INVENTORY_TRIGGER_TYPE, TRANSFER_PLAN_TYPE,
};

pub struct StackHandler<P> {
    pub ports: Arc<P>,
    pub http: reqwest::Client,
    pub approval_topic_arn: String,
    pub retry: RetryPolicy,
    /// Time kept back from the Lambda deadline to send the answer.
    pub answer_margin: Duration,
    /// Budget when the context carries no deadline (local runs).
    pub default_budget: Duration,
    pub clock: fn() -> u64,
    /// `None` when the OS has no entropy to give (the request then fails, never a weak token).
    pub new_token: fn() -> Option<ApprovalToken>,
    /// What the template pinned in the environment: an event that differs is refused.
    pub pins: StackPins,
    /// Where an event's ResponseURL may point; an event whose URL doesn't qualify gets no
    /// answer at all (only CloudFormation's presigned S3 URLs).
    pub response_urls: PresignedUrlRule,
}

impl<P: StackPorts> StackHandler<P> {
    pub fn new(ports: P, approval_topic_arn: String, pins: StackPins) -> Self {
        Self {
            ports: Arc::new(ports),
            http: presigned_put_client(),
            approval_topic_arn,
            retry: RetryPolicy::default(),
            answer_margin: Duration::from_secs(10),
            default_budget: Duration::from_secs(240),
            clock: unix_now,
            new_token: random_token,
            pins,
            response_urls: PresignedUrlRule::default(),
        }
    }

    /// The Lambda entry point: parse, work within the deadline, answer CloudFormation.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<(), Error> {
        let (payload, context) = event.into_parts();
        let runner = CustomResourceRunner {
            http: &self.http,
            retry: self.retry,
            answer_margin: self.answer_margin,
            default_budget: self.default_budget,
            pins: &self.pins,
            response_urls: &self.response_urls,
        };
        let prepare = || {
            let ctx = StackContext {
                approval_topic_arn: self.approval_topic_arn.clone(),
                now_unix: (self.clock)(),
                retry: self.retry,
            };
            // Drawn here (only TransferPlan Create/Update use it); `None` fails those, never a
            // Delete.
            (ctx, (self.new_token)())
        };
        let work = |ports: Arc<P>, request, prepared: (StackContext, Option<ApprovalToken>)| async move {
            let (ctx, token) = prepared;
            match resource_request(&request) {
                Some(request) => {
                    handle_request(ports.as_ref(), request, &ctx, token.as_ref()).await
                }
                // CloudFormation sends no other request type.
                None => not_served(""),
            }
        };
        runner
            .answer(self.ports.clone(), payload, context.deadline, prepare, work)
            .await
            .map_err(Error::from)
    }
}
