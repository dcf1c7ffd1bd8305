//! [`AwsPorts`]: every port of `ferry-flows` implemented with the SDK, in one value the
//! Lambda functions build once at start and reuse for every invocation.

use std::time::Duration;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::ports::{
    InventoryRunTrigger, JobControl, Notifier, RoleAdmin, StackStatusApi, StateStore,
    WaitConditionSignal, WaitSignal,
};
use ferry_flows::ports::{LaunchApi, ManifestHead};
use ferry_plan::job::CreateJobRequest;
use ferry_plan::policy::batch_role::BatchRole;

use crate::errors::classify;
use crate::http::put_presigned;
use crate::launch_api::AwsLaunchApi;

/// SNS refuses e-mail subjects of 100 characters or more.
const MAX_SUBJECT_CHARS: usize = 99;
/// Conditional writes answered 409 (a concurrent operation on the key) are asked this often.
const PUT_IF_ABSENT_ATTEMPTS: u32 = 3;
/// SNS messages are limited to 256 KiB.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct AwsPorts {
    pub launch: AwsLaunchApi,
    pub iam: aws_sdk_iam::Client,
    pub sns: aws_sdk_sns::Client,
    pub http: reqwest::Client,
    pub state_bucket: String,
    pub notification_topic_arn: String,
    /// For clients in another region (a bucket's or a key's), as preflight needs them.
    pub config: aws_config::SdkConfig,
    pub lambda: aws_sdk_lambda::Client,
    /// stack-handler asks it whether its stack is in an operation (`StackStatusApi`).
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// inventory-handler starts the stack's fan-out with it (`FanOutEngine`).
    pub sfn: aws_sdk_sfn::Client,
    /// The stack's inventory-handler (env `FERRY_INVENTORY_FUNCTION_ARN`, pinned by the
    /// template; absent when the stack has no inventory runs).
    pub inventory_function_arn: Option<String>,
    /// The permissions boundary the batch role is created with and kept under (env
    /// `FERRY_BATCH_ROLE_BOUNDARY_ARN`, the template's BatchRoleBoundary; stack-handler's IAM
    /// rights require it).
    pub batch_role_boundary_arn: Option<String>,
    /// The stack's WaitConditionHandle URL (env `FERRY_APPROVAL_WAIT_HANDLE`, wait mode only):
    /// the one URL `WaitSignal::signal` PUTs to.
    pub wait_handle_url: Option<String>,
}

impl AwsPorts {
    /// Clients from one SDK config (the function's own region and credentials).
    pub fn from_config(
        config: &aws_config::SdkConfig,
        state_bucket: String,
        notification_topic_arn: String,
    ) -> Self {
        Self {
            launch: AwsLaunchApi::new(
                aws_sdk_s3::Client::new(config),
                aws_sdk_s3control::Client::new(config),
            ),
            iam: aws_sdk_iam::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            http: crate::http::presigned_put_client(),
            state_bucket,
            notification_topic_arn,
            config: config.clone(),
            lambda: aws_sdk_lambda::Client::new(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            inventory_function_arn: None,
            batch_role_boundary_arn: None,
            wait_handle_url: None,
        }
    }

    /// The same ports, signalling only the WaitCondition handle at `url`.
    pub fn with_wait_handle(mut self, url: Option<String>) -> Self {
        self.wait_handle_url = url.filter(|u| !u.is_empty());
        self
    }

    /// The same ports, creating the batch role with `boundary_arn` as its permissions boundary.
    pub fn with_batch_role_boundary(mut self, boundary_arn: Option<String>) -> Self {
        self.batch_role_boundary_arn = boundary_arn.filter(|a| !a.is_empty());
        self
    }

    /// The same ports, starting inventory runs in `function_arn`.
    pub fn with_inventory_function(mut self, function_arn: Option<String>) -> Self {
        self.inventory_function_arn = function_arn.filter(|a| !a.is_empty());
        self
    }

    /// The same ports with other S3 and S3 Control clients: tests point S3 at moto (path-style)
    /// and S3 Control, which moto lacks, at aws-smithy-mocks.
    pub fn with_clients(
        mut self,
        s3: aws_sdk_s3::Client,
        s3control: aws_sdk_s3control::Client,
    ) -> Self {
        self.launch = AwsLaunchApi::new(s3, s3control);
        self
    }

    /// The ports a Lambda function needs, from its environment (see `docs/stack.md`) and the
    /// default credential chain. Returns them with the approval topic's ARN.
    pub async fn for_lambda() -> Result<(Self, String), String> {
        let env = |name: &str| {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        };
        let (state_bucket, topic, approval_topic) = (
            env("FERRY_STATE_BUCKET")?,
            env("FERRY_NOTIFICATION_TOPIC_ARN")?,
            env("FERRY_APPROVAL_TOPIC_ARN")?,
        );
        let config = aws_config::load_from_env().await;
        let inventory_function = std::env::var("FERRY_INVENTORY_FUNCTION_ARN").ok();
        let boundary = std::env::var("FERRY_BATCH_ROLE_BOUNDARY_ARN").ok();
        let wait_handle = std::env::var("FERRY_APPROVAL_WAIT_HANDLE").ok();
        Ok((
            Self::from_config(&config, state_bucket, topic)
                .with_inventory_function(inventory_function)
                .with_batch_role_boundary(boundary)
                .with_wait_handle(wait_handle),
            approval_topic,
        ))
    }

    pub(crate) fn s3(&self) -> &aws_sdk_s3::Client {
        &self.launch.s3
    }
}

impl InventoryRunTrigger for AwsPorts {
    /// Lambda `Invoke` with `InvocationType=Event` (Lambda API Reference, Invoke): queued for
    /// inventory-handler, answered 202 at once; Lambda retries a failed asynchronous invocation
    /// and then hands it to the function's dead-letter queue (the template's FailedEventsQueue).
    async fn start_inventory_run(&self, event: &serde_json::Value) -> Result<(), AwsCallError> {
        let Some(function) = &self.inventory_function_arn else {
            return Err(AwsCallError {
                kind: AwsErrorKind::Other,
                code: "NoInventoryFunction".to_string(),
                message: "the transfer has [inventory] but this stack has no inventory-handler \
                          (FERRY_INVENTORY_FUNCTION_ARN is empty): deploy the stack with InventoryRuns = true"
                    .to_string(),
            });
        };
        self.lambda
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}

impl StackStatusApi for AwsPorts {
    /// `DescribeStacks` by the stack's id (CloudFormation API Reference, DescribeStacks: a
    /// running stack by name or id, a deleted one by id only). The SDK's own retries come first;
    /// `ferry_flows::stack_status` retries throttling a little more.
    async fn stack_status(&self, stack_id: &str) -> Result<String, AwsCallError> {
        let out = self
            .cloudformation
            .describe_stacks()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        // One stack per id; another stack's entry would be CloudFormation's mistake, not a status.
        out.stacks()
            .iter()
            .find(|s| s.stack_id() == Some(stack_id))
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_string())
            .ok_or_else(|| AwsCallError {
                kind: AwsErrorKind::NotFound,
                code: "NoSuchStack".to_string(),
                message: format!("DescribeStacks returned no stack with id {stack_id}"),
            })
    }
}

impl StateStore for AwsPorts {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        crate::small_object::get_whole(self.s3(), &self.state_bucket, key).await
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsCallError> {
        // Explicit SSE-S3: a redrive manifest is stored here, and Batch Operations can't read a
        // CSV manifest under SSE-KMS (S3 User Guide, "Creating an S3 Batch Operations job");
        // `ferry redrive --state-bucket` may name a bucket whose default is SSE-KMS.
        self.s3()
            .put_object()
            .bucket(&self.state_bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<bool, AwsCallError> {
        // S3 User Guide, "How to prevent object overwrites with conditional writes": 412 means
        // an object is there; 409 ConditionalRequestConflict means a concurrent operation on
        // the key (a write, or a delete giving a claim back) and "you should retry". So only
        // 412 is "taken"; a 409 is asked again, and after that it is a transient error (the
        // caller's retry), never a claim nobody holds read as taken.
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Boxed: the SDK call's future is large, and this one loops.
            let result = Box::pin(
                self.s3()
                    .put_object()
                    .bucket(&self.state_bucket)
                    .key(key)
                    .if_none_match("*")
                    .server_side_encryption(ServerSideEncryption::Aes256)
                    .content_type("application/json")
                    .body(ByteStream::from(body.clone()))
                    .send(),
            )
            .await;
            let e = match result {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            match e.raw_response().map(|r| r.status().as_u16()) {
                // Taken. (Whether by an earlier attempt of this very write that the SDK retried
                // after losing its answer can't be told: two deliveries of one event write the
                // same bytes, so comparing them would let both claim.)
                Some(412) => return Ok(false),
                Some(409) if attempt < PUT_IF_ABSENT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Some(409) => {
                    return Err(AwsCallError {
                        kind: AwsErrorKind::Transient,
                        ..classify(&e)
                    })
                }
                _ => return Err(classify(&e)),
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsCallError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3()
            .list_objects_v2()
            .bucket(&self.state_bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), AwsCallError> {
        self.s3()
            .delete_object()
            .bucket(&self.state_bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}

impl Notifier for AwsPorts {
    async fn notify(&self, subject: &str, body: &str) -> Result<(), AwsCallError> {
        let subject: String = subject
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(MAX_SUBJECT_CHARS)
            .collect();
        let mut message = body.to_string();
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES - 200;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(
                "\n\n[cut: the message was longer than SNS allows; `ferry plan` prints it whole]",
            );
        }
        self.sns
            .publish()
            .topic_arn(&self.notification_topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}

impl AwsPorts {
    /// Puts `boundary` on the role GetRole found, unless it has it already.
    async fn keep_boundary(
        &self,
        role_name: &str,
        found: &aws_sdk_iam::operation::get_role::GetRoleOutput,
        boundary: &str,
    ) -> Result<(), AwsCallError> {
        let current = found
            .role()
            .and_then(|r| r.permissions_boundary())
            .and_then(|b| b.permissions_boundary_arn());
        if current == Some(boundary) {
            return Ok(());
        }
        self.iam
            .put_role_permissions_boundary()
            .role_name(role_name)
            .permissions_boundary(boundary)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}

impl RoleAdmin for AwsPorts {
    async fn apply_role(&self, role: &BatchRole) -> Result<(), AwsCallError> {
        let trust = compact(&role.trust_policy);
        let boundary = self.batch_role_boundary_arn.as_deref();
        match self.iam.get_role().role_name(&role.name).send().await {
            Ok(found) => {
                // A role of an earlier Ferry (or one whose boundary was changed by hand) gets
                // the stack's boundary before its policy is touched: stack-handler may only put
                // policies on a role that has it.
                if let Some(boundary) = boundary {
                    self.keep_boundary(&role.name, &found, boundary).await?;
                }
                self.iam
                    .update_assume_role_policy()
                    .role_name(&role.name)
                    .policy_document(&trust)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                self.iam
                    .create_role()
                    .role_name(&role.name)
                    .set_permissions_boundary(boundary.map(str::to_string))
                    .assume_role_policy_document(&trust)
                    .description(
                        "Ferry: S3 Batch Operations role for one transfer (created from its plan)",
                    )
                    .tags(
                        aws_sdk_iam::types::Tag::builder()
                            .key("ferry:role")
                            .value("batch-operations")
                            .build()
                            .map_err(|e| AwsCallError {
                                kind: AwsErrorKind::BadRequest,
                                code: "InvalidTag".to_string(),
                                message: e.to_string(),
                            })?,
                    )
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
            }
            Err(e) => return Err(classify(&e)),
        }
        self.iam
            .put_role_policy()
            .role_name(&role.name)
            .policy_name(&role.policy_name)
            .policy_document(compact(&role.permissions_policy))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn delete_role(&self, role: &BatchRole) -> Result<(), AwsCallError> {
        let gone = |code: Option<&str>| code == Some("NoSuchEntity");
        // stack-handler may delete only a role under the stack's boundary (iam:PermissionsBoundary
        // is the role's present boundary for DeleteRolePolicy and DeleteRole): a role of an
        // earlier Ferry gets it first (for PutRolePermissionsBoundary the key is the requested one).
        if let Some(boundary) = self.batch_role_boundary_arn.as_deref() {
            match self.iam.get_role().role_name(&role.name).send().await {
                Ok(found) => self.keep_boundary(&role.name, &found, boundary).await?,
                Err(e) if gone(e.code()) => return Ok(()),
                Err(e) => return Err(classify(&e)),
            }
        }
        if let Err(e) = self
            .iam
            .delete_role_policy()
            .role_name(&role.name)
            .policy_name(&role.policy_name)
            .send()
            .await
        {
            if !gone(e.code()) {
                return Err(classify(&e));
            }
        }
        match self.iam.delete_role().role_name(&role.name).send().await {
            Ok(_) => Ok(()),
            Err(e) if gone(e.code()) => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }
}

impl WaitSignal for AwsPorts {
    async fn signal(
        &self,
        handle_url: &str,
        signal: &WaitConditionSignal,
    ) -> Result<(), AwsCallError> {
        // The URL comes from an approval record in the state bucket, which others may write:
        // only the stack's own handle (env FERRY_APPROVAL_WAIT_HANDLE, pinned by the template)
        // is ever signalled, so a planted record can't make the function PUT elsewhere (#15).
        if self.wait_handle_url.as_deref() != Some(handle_url) {
            return Err(AwsCallError {
                kind: AwsErrorKind::AccessDenied,
                code: "NotTheStacksWaitHandle".to_string(),
                message: "the approval record names a WaitCondition handle other than this stack's \
                          (FERRY_APPROVAL_WAIT_HANDLE): not signalled; the record was not written by \
                          this stack"
                    .to_string(),
            });
        }
        let body = serde_json::to_vec(signal).unwrap_or_default();
        put_presigned(&self.http, handle_url, body).await
    }
}

impl JobControl for AwsPorts {
    async fn job_status(&self, account_id: &str, job_id: &str) -> Result<String, AwsCallError> {
        let out = self
            .launch
            .s3control
            .describe_job()
            .account_id(account_id)
            .job_id(job_id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .job()
            .and_then(|j| j.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default())
    }

    async fn cancel_job(&self, account_id: &str, job_id: &str) -> Result<(), AwsCallError> {
        self.launch
            .s3control
            .update_job_status()
            .account_id(account_id)
            .job_id(job_id)
            .requested_job_status(aws_sdk_s3control::types::RequestedJobStatus::Cancelled)
            .status_update_reason("Ferry stack deleted with CancelJobsOnDelete=true")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn job_tags(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> Result<Vec<ferry_plan::job::S3Tag>, AwsCallError> {
        ferry_flows::report::jobs::JobsApi::job_tags(&self.launch, account_id, job_id).await
    }
}

impl LaunchApi for AwsPorts {
    async fn head_manifest(&self, bucket: &str, key: &str) -> Result<ManifestHead, AwsCallError> {
        self.launch.head_manifest(bucket, key).await
    }
    async fn get_manifest(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<Vec<u8>, AwsCallError> {
        self.launch.get_manifest(bucket, key, etag).await
    }
    async fn create_job(&self, request: &CreateJobRequest) -> Result<String, AwsCallError> {
        self.launch.create_job(request).await
    }
    async fn pause(&self, duration: Duration) {
        self.launch.pause(duration).await
    }
}

/// Policies go to IAM without whitespace: inline policies are limited to 10,240 characters.
fn compact(doc: &ferry_plan::policy::PolicyDocument) -> String {
    serde_json::to_string(doc).unwrap_or_default()
}
