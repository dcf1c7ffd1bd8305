//! large-object-copier: the target of Ferry's Batch Operations LambdaInvoke jobs for objects
//! over 5 GiB. Each invocation copies its one task with a multipart server-side copy
//! (`ferry_core::large_object::copy`) and answers `Succeeded`, `TemporaryFailure` (throttling,
//! 5xx, out of time: Batch Operations retries, and the retry resumes the open upload) or
//! `PermanentFailure`. See `docs/large-objects.md`.
//!
//! It works as the transfer's Batch Operations role, the one principal the source account's
//! bucket and key policies name: its own execution role may only assume that role. The role
//! session is named after the task's source object, which lets a retry recognise its upload.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use ferry_aws::errors::classify;
use ferry_aws::large_copy::AwsMultipartCopy;
use ferry_core::large_object::copy::{
    copy_task, CopyClock, CopyContext, CopyTuning, MultipartCopyApi,
};
use ferry_core::large_object::parts::{PartSizing, MIB};
use ferry_core::large_object::resume::session_name;
use ferry_core::large_object::task::{
    InvocationRequest, InvocationResponse, RawTask, ResultCode, TaskResult,
};
use ferry_core::large_object::LargeObjectCopyArguments;
use ferry_core::launch::{AwsCallError, AwsErrorKind};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// How the copier gets S3 access as the Batch Operations role.
pub trait CopierPorts: Send + Sync + 'static {
    type Api: MultipartCopyApi;
    fn act_as(
        &self,
        role_arn: &str,
        session_name: &str,
    ) -> impl Future<Output = Result<Self::Api, AwsCallError>> + Send;
}

/// `sts:AssumeRole` into the batch role, then an S3 client with those credentials.
pub struct StsCopierPorts {
    pub base: SdkConfig,
    /// Path-style addressing (moto); virtual-hosted on AWS.
    pub force_path_style: bool,
    /// The source bucket's Region (`FERRY_SOURCE_REGION`, pinned by the template) when it is
    /// not the function's own: source reads then go to a client of that Region.
    pub source_region: Option<String>,
}

impl StsCopierPorts {
    pub fn new(base: SdkConfig, force_path_style: bool) -> Self {
        Self {
            base,
            force_path_style,
            source_region: None,
        }
    }

    pub fn with_source_region(mut self, region: Option<String>) -> Self {
        self.source_region = region;
        self
    }
}

impl CopierPorts for StsCopierPorts {
    type Api = AwsMultipartCopy;

    async fn act_as(
        &self,
        role_arn: &str,
        session: &str,
    ) -> Result<AwsMultipartCopy, AwsCallError> {
        let out = aws_sdk_sts::Client::new(&self.base)
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            // The longest a role chain allows, and more than one invocation's 15 minutes.
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| {
                let mut err = classify(&e);
                if err.kind == AwsErrorKind::AccessDenied {
                    err.message = format!(
                        "{}. The copier's execution role must be allowed sts:AssumeRole on {role_arn}, and that role's \
                         trust policy must name the execution role (the stack writes both)",
                        err.message
                    );
                }
                err
            })?;
        let Some(c) = out.credentials() else {
            return Err(AwsCallError {
                kind: AwsErrorKind::Transient,
                code: "NoCredentials".into(),
                message: format!("sts:AssumeRole {role_arn} answered without credentials"),
            });
        };
        let credentials = aws_sdk_s3::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "ferry-batch-role",
        );
        let client = |region: Option<&str>| {
            let mut b = aws_sdk_s3::config::Builder::from(&self.base)
                .credentials_provider(credentials.clone())
                .force_path_style(self.force_path_style);
            if let Some(region) = region {
                b = b.region(aws_sdk_s3::config::Region::new(region.to_string()));
            }
            aws_sdk_s3::Client::from_conf(b.build())
        };
        let copy = AwsMultipartCopy::new(client(None));
        let own = self.base.region().map(|r| r.as_ref());
        Ok(match self.source_region.as_deref() {
            Some(source) if Some(source) != own => copy.with_source_client(client(Some(source))),
            _ => copy,
        })
    }
}

/// Time left before the Lambda deadline.
pub struct DeadlineClock {
    deadline: Instant,
}

impl DeadlineClock {
    pub fn after(budget: Duration) -> Self {
        Self {
            deadline: Instant::now() + budget,
        }
    }
}

impl CopyClock for DeadlineClock {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

pub struct LargeObjectCopier<P> {
    pub ports: P,
    /// The transfer's Batch Operations role (`FERRY_BATCH_ROLE_ARN`).
    pub batch_role_arn: String,
    pub tuning: CopyTuning,
    /// Settings for schema 1.0 jobs, which carry no `userArguments`
    /// (`FERRY_DEFAULT_USER_ARGUMENTS`, the same keys as a JSON object).
    pub default_arguments: Option<BTreeMap<String, String>>,
    /// Budget when the context carries no real deadline (`Context::default()`, local runs).
    pub default_budget: Duration,
}

impl<P: CopierPorts> LargeObjectCopier<P> {
    pub fn new(ports: P, batch_role_arn: String) -> Self {
        Self {
            ports,
            batch_role_arn,
            tuning: CopyTuning::default(),
            default_arguments: None,
            default_budget: Duration::from_secs(900),
        }
    }

    /// Reads `FERRY_BATCH_ROLE_ARN` (required), `FERRY_COPY_PARALLELISM`,
    /// `FERRY_PART_SIZE_MIB` and `FERRY_DEFAULT_USER_ARGUMENTS`, naming any bad value.
    pub fn from_env(ports: P) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let role = var("FERRY_BATCH_ROLE_ARN").ok_or(
            "environment variable FERRY_BATCH_ROLE_ARN is not set (the batch role to copy as)",
        )?;
        let mut copier = Self::new(ports, role);
        if let Some(p) = var("FERRY_COPY_PARALLELISM") {
            copier.tuning.parallelism = p
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or(format!(
                    "FERRY_COPY_PARALLELISM = {p:?}: expected a whole number 1–64"
                ))?;
        }
        if let Some(mib) = var("FERRY_PART_SIZE_MIB") {
            let mib: u64 = mib.parse().map_err(|_| {
                format!("FERRY_PART_SIZE_MIB = {mib:?}: expected a whole number of MiB (5–5120)")
            })?;
            copier.tuning.sizing = PartSizing::with_preferred_part_size(mib * MIB);
        }
        if let Some(json) = var("FERRY_DEFAULT_USER_ARGUMENTS") {
            copier.default_arguments = Some(serde_json::from_str(&json).map_err(|e| {
                format!("FERRY_DEFAULT_USER_ARGUMENTS: expected a JSON object of strings: {e}")
            })?);
        }
        Ok(copier)
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
        let response = self.handle_request(&request, &clock).await;
        Ok(serde_json::to_value(response)?)
    }

    pub async fn handle_request<C: CopyClock>(
        &self,
        request: &InvocationRequest,
        clock: &C,
    ) -> InvocationResponse {
        let mut results = Vec::with_capacity(request.tasks.len());
        for raw in &request.tasks {
            let result = self.copy_one(request, raw, clock).await;
            tracing::info!(
                job_id = %request.job.id,
                task_id = %result.task_id,
                result_code = ?result.result_code,
                result = %result.result_string,
                "task done"
            );
            results.push(result);
        }
        InvocationResponse::new(request, results)
    }

    async fn copy_one<C: CopyClock>(
        &self,
        request: &InvocationRequest,
        raw: &RawTask,
        clock: &C,
    ) -> TaskResult {
        let permanent =
            |message: String| TaskResult::new(&raw.task_id, ResultCode::PermanentFailure, message);
        let task = match raw.decode() {
            Ok(task) => task,
            Err(message) => return permanent(message),
        };
        let user_arguments = match (&request.job.user_arguments, &self.default_arguments) {
            (Some(args), _) if !args.is_empty() => args,
            (_, Some(defaults)) => defaults,
            _ => {
                return permanent(format!(
                    "the job carries no userArguments (invocation schema {}): create it with InvocationSchemaVersion \
                     2.0 and Ferry's user arguments (ferry's large-object job does), or set FERRY_DEFAULT_USER_ARGUMENTS \
                     on the function",
                    request.invocation_schema_version
                ))
            }
        };
        let arguments = match LargeObjectCopyArguments::from_user_arguments(user_arguments) {
            Ok(a) => a,
            Err(problems) => {
                return permanent(
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        };
        let session = session_name(&task.bucket, &task.key, task.version_id.as_deref());
        let api = match self.ports.act_as(&self.batch_role_arn, &session).await {
            Ok(api) => api,
            Err(e) => {
                let code = match e.kind {
                    AwsErrorKind::Throttled | AwsErrorKind::Transient => {
                        ResultCode::TemporaryFailure
                    }
                    _ => ResultCode::PermanentFailure,
                };
                return TaskResult::new(
                    &task.task_id,
                    code,
                    format!("sts:AssumeRole {} refused: {e}", self.batch_role_arn),
                );
            }
        };
        let ctx = CopyContext {
            role_arn: self.batch_role_arn.clone(),
            arguments,
            tuning: self.tuning,
        };
        let (result, stats) = copy_task(&api, clock, &ctx, &task).await;
        tracing::info!(
            parts_total = stats.parts_total,
            parts_reused = stats.parts_reused,
            parts_copied = stats.parts_copied,
            part_retries = stats.part_retries,
            upload_id = ?stats.upload_id,
            aborted = ?stats.aborted,
            "multipart copy"
        );
        result
    }
}
