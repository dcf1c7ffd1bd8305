//! inventory-handler: a new S3 Inventory landed (EventBridge `Object Created` for its
//! `manifest.checksum`), so the transfer copies what changed. The work is
//! `ferry_flows::inventory::run::handle_inventory`; this crate reads the event and the
//! environment and turns outcomes into log lines and Lambda results. See `docs/inventory.md`.
//!
//! It is also the stack's fan-out worker (#18): the `InventoryFanOut` state machine invokes it
//! with `{"Step": "scan" | "diff" | "finish" | "failed", "Fingerprint", "Run", …}`
//! ([`FanOutPayload`]), served by `ferry_flows::inventory::fanout`.
//!
//! Environment: `FERRY_PLAN_FINGERPRINT` (the stack's TransferPlan), `FERRY_LARGE_OBJECT_COPIER_ARN`
//! (the LambdaInvoke target for objects over 5 GiB), `FERRY_WORK_DIR` (default `/tmp`),
//! `FERRY_FANOUT_STATE_MACHINE_ARN` and `FERRY_FANOUT_DATA_BYTES` (the fan-out), and the
//! `FERRY_STATE_BUCKET` / topic variables every function reads.

use std::path::PathBuf;

use ferry_flows::aws_error::{AwsCaused, RetryPolicy};
use ferry_flows::inventory::event::{parse_event, InventoryEvent};
use ferry_flows::inventory::fanout::{
    diff_step, execution_ended, failed_step, finish_step, scan_step,
};
use ferry_flows::inventory::fanout_records::{FanOutEngine, FanOutSettings};
use ferry_flows::inventory::run::{handle_inventory, InventoryObjects, RunOutcome, RunSettings};
use ferry_flows::ports::LaunchApi;
use ferry_flows::ports::{Notifier, StateStore};
use ferry_plan::untrusted::untrusted;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub trait InventoryPorts:
    StateStore + InventoryObjects + LaunchApi + Notifier + FanOutEngine + Send + Sync + 'static
{
}
impl<T> InventoryPorts for T where
    T: StateStore + InventoryObjects + LaunchApi + Notifier + FanOutEngine + Send + Sync + 'static
{
}

/// What the environment configures.
#[derive(Debug, Clone)]
pub struct Settings {
    pub plan_fingerprint: String,
    pub large_object_function_arn: Option<String>,
    pub work_dir: PathBuf,
    pub retry: RetryPolicy,
    /// Data files read at once: the function's vCPUs (Lambda gives one per 1,769 MB of memory,
    /// up to 6: Lambda Developer Guide, "Configure Lambda function memory",
    /// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>;
    /// `available_parallelism` reads what the sandbox allows).
    pub scan_threads: usize,
    /// `FERRY_WORK_DIR_BYTES`: the function's ephemeral storage, as the template sets it beside
    /// `EphemeralStorage`; Lambda's default 512 MB when unset (512 to 10,240 MB: Lambda
    /// Developer Guide, "Configure ephemeral storage",
    /// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-ephemeral-storage.html>).
    pub work_dir_bytes: u64,
    /// `FERRY_STATE_BUCKET`: where Ferry's inventory-format copy lists go.
    pub state_bucket: String,
    /// `FERRY_FANOUT_STATE_MACHINE_ARN` (and `FERRY_FANOUT_DATA_BYTES`, Lambda's
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`): the stack's fan-out, when set.
    pub fan_out: Option<FanOutSettings>,
}

/// An inventory whose data files add up to more than this fans out when
/// `FERRY_FANOUT_DATA_BYTES` is unset (the template's default: 16 GiB).
pub const DEFAULT_FANOUT_DATA_BYTES: u64 = 16 << 30;

/// Lambda's default ephemeral storage (`/tmp`), 512 MB.
pub const DEFAULT_WORK_DIR_BYTES: u64 = 512 * 1024 * 1024;

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let plan_fingerprint = std::env::var("FERRY_PLAN_FINGERPRINT")
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or("environment variable FERRY_PLAN_FINGERPRINT is not set (the template sets it to TransferPlan's Fingerprint)")?;
        Ok(Self {
            plan_fingerprint,
            large_object_function_arn: std::env::var("FERRY_LARGE_OBJECT_COPIER_ARN")
                .ok()
                .filter(|v| !v.is_empty()),
            work_dir: std::env::var_os("FERRY_WORK_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            retry: RetryPolicy::default(),
            scan_threads: std::thread::available_parallelism().map_or(1, usize::from),
            state_bucket: std::env::var("FERRY_STATE_BUCKET")
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or("environment variable FERRY_STATE_BUCKET is not set (the template sets it to StateBucket)")?,
            fan_out: fan_out_from_env()?,
            work_dir_bytes: match std::env::var("FERRY_WORK_DIR_BYTES") {
                Err(_) => DEFAULT_WORK_DIR_BYTES,
                Ok(v) => v.trim().parse().map_err(|_| {
                    format!(
                        "environment variable FERRY_WORK_DIR_BYTES is {v:?}, not a number of bytes (the template sets \
                         it to the function's EphemeralStorage size)"
                    )
                })?,
            },
        })
    }
}

fn number_from_env(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v.trim().parse().map_err(|_| {
            format!(
                "environment variable {name} is {v:?}, not a whole number (the template sets it)"
            )
        }),
    }
}

fn fan_out_from_env() -> Result<Option<FanOutSettings>, String> {
    let Some(arn) = std::env::var("FERRY_FANOUT_STATE_MACHINE_ARN")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    Ok(Some(FanOutSettings {
        state_machine_arn: arn,
        data_bytes: number_from_env("FERRY_FANOUT_DATA_BYTES", DEFAULT_FANOUT_DATA_BYTES)?,
        // Lambda sets it (Lambda Developer Guide, "Defined runtime environment variables").
        memory_mb: number_from_env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 10240)?,
        // Drawn per invocation (`InventoryHandler::run_settings`).
        execution_nonce: String::new(),
    }))
}

/// What the `InventoryFanOut` state machine sends (its definition in `template.yaml`): a stage,
/// the plan and the run; a scan item's `Batch` or a diff item's `Shard`; a failure's `Error` and
/// `Cause`. Only the ids are used: the run's record in the state bucket says the rest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FanOutPayload {
    #[serde(rename = "Step")]
    pub step: String,
    #[serde(rename = "Fingerprint")]
    pub fingerprint: String,
    #[serde(rename = "Run")]
    pub run: String,
    /// `$$.Execution.Name`: workers act only for the execution the run record names.
    #[serde(rename = "Execution")]
    pub execution: String,
    #[serde(rename = "Item", default)]
    pub item: Option<Value>,
    #[serde(rename = "Failure", default)]
    pub failure: Option<Value>,
}

impl FanOutPayload {
    /// `Some` for a payload with a `Step`; its problems, all at once, as the error.
    pub fn of(event: &Value) -> Option<Result<Self, String>> {
        event.get("Step")?;
        Some(serde_json::from_value::<Self>(event.clone()).map_err(|e| {
            format!("a fan-out payload that does not read as one ({e}): it needs Step, Fingerprint, Run and Execution")
        }))
    }

    fn item_number(&self, field: &str) -> Result<usize, String> {
        self.item
            .as_ref()
            .and_then(|i| i.get(field))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "the {} step's Item has no {field} number (it is {})",
                    self.step,
                    untrusted(&self.item.as_ref().map(Value::to_string).unwrap_or_default())
                )
            })
    }
}

pub struct InventoryHandler<P> {
    pub ports: P,
    pub settings: Settings,
    pub clock: fn() -> u64,
}

impl<P: InventoryPorts> InventoryHandler<P> {
    pub fn new(ports: P, settings: Settings) -> Self {
        Self {
            ports,
            settings,
            clock: ferry_aws::runtime::unix_now,
        }
    }

    /// Lambda entry point. Returns an error only when a retry can help (throttling, 5xx, the
    /// inventory not fully visible yet): the run gave its claim back, so the retry runs again.
    /// Everything else is logged (and, when it concerns a person, e-mailed by the core once).
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Vec<RunOutcome>, Error> {
        let settings = self.run_settings(&event);
        // Each path boxed: their state machines are large, and inlined together they overflow a
        // test thread's stack (and the runtime's layout limits).
        if let Some(payload) = FanOutPayload::of(&event.payload) {
            Box::pin(self.fan_out_step(payload?, &settings)).await?;
            return Ok(Vec::new());
        }
        if event.payload.get("source").and_then(Value::as_str) == Some("aws.states") {
            Box::pin(self.fan_out_ended(&event.payload)).await?;
            return Ok(Vec::new());
        }
        Box::pin(self.handle_events(event, settings)).await
    }

    fn run_settings(&self, event: &LambdaEvent<Value>) -> RunSettings {
        RunSettings {
            large_object_function_arn: self.settings.large_object_function_arn.clone(),
            work_dir: self.settings.work_dir.clone(),
            now_unix: (self.clock)(),
            retry: self.settings.retry,
            scan_threads: self.settings.scan_threads,
            work_dir_bytes: self.settings.work_dir_bytes,
            state_bucket: self.settings.state_bucket.clone(),
            deadline: ferry_aws::runtime::time_left(event.context.deadline)
                .map(|left| std::time::Instant::now() + left),
            fan_out: self.settings.fan_out.clone().map(|f| FanOutSettings {
                // A fresh one each invocation: the execution's name can't be guessed ahead.
                execution_nonce: ferry_aws::runtime::random_hex(8).unwrap_or_default(),
                ..f
            }),
        }
    }

    /// Step Functions' "Execution Status Change" event (the template's `FanOutEnded` rule: this
    /// state machine's executions that were aborted, timed out or failed): a run whose execution
    /// ended so without being recorded is e-mailed once. The event is only a hint: the status
    /// is asked of Step Functions, and only the execution the run record names counts.
    async fn fan_out_ended(&self, event: &Value) -> Result<(), Error> {
        let Some(fan) = &self.settings.fan_out else {
            tracing::info!("a Step Functions event, but this stack has no fan-out: ignored");
            return Ok(());
        };
        let detail = &event["detail"];
        let machine = detail["stateMachineArn"].as_str().unwrap_or("");
        let execution = detail["executionArn"].as_str().unwrap_or("");
        if machine != fan.state_machine_arn {
            tracing::info!(state_machine = %untrusted(machine), "an event of another state machine: ignored");
            return Ok(());
        }
        let fp = self.settings.plan_fingerprint.as_str();
        match Box::pin(execution_ended(&self.ports, fp, machine, execution)).await {
            Ok(status) => {
                tracing::info!(execution = %untrusted(execution), status = ?status, "fan-out execution ended");
                Ok(())
            }
            Err(e) => {
                tracing::error!(execution = %untrusted(execution), error = %e, "a fan-out's end could not be handled");
                Err(Error::from(e.to_string()))
            }
        }
    }

    /// One stage of the fan-out. Any failure is the invocation's error: Step Functions retries
    /// it, then goes to `RunFailed`, which e-mails it (the `failed` step itself).
    async fn fan_out_step(
        &self,
        payload: FanOutPayload,
        settings: &RunSettings,
    ) -> Result<(), Error> {
        // Only this stack's plan: the payload is whatever the caller wrote.
        if payload.fingerprint != self.settings.plan_fingerprint {
            return Err(format!(
                "a fan-out step for plan {}, but this stack's plan is {}",
                untrusted(&payload.fingerprint),
                self.settings.plan_fingerprint
            )
            .into());
        }
        let run = payload.run.as_str();
        if run.len() != 32 || !run.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "a fan-out step for run {:?}: run ids are 32 lower-case hex digits",
                untrusted(run)
            )
            .into());
        }
        let fp = self.settings.plan_fingerprint.as_str();
        let result = match payload.step.as_str() {
            "scan" => {
                let batch = payload.item_number("Batch")?;
                Box::pin(scan_step(
                    &self.ports,
                    fp,
                    run,
                    &payload.execution,
                    batch,
                    settings,
                ))
                .await
            }
            "diff" => {
                let shard = payload.item_number("Shard")?;
                Box::pin(diff_step(
                    &self.ports,
                    fp,
                    run,
                    &payload.execution,
                    shard,
                    settings,
                ))
                .await
            }
            "finish" => {
                Box::pin(finish_step(
                    &self.ports,
                    fp,
                    run,
                    &payload.execution,
                    settings,
                ))
                .await
            }
            "failed" => {
                let field = |name: &str| {
                    payload
                        .failure
                        .as_ref()
                        .and_then(|f| f.get(name))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                Box::pin(failed_step(
                    &self.ports,
                    fp,
                    run,
                    &payload.execution,
                    &field("Error"),
                    &field("Cause"),
                ))
                .await
            }
            other => {
                return Err(format!(
                    "a fan-out step {:?}: the steps are scan, diff, finish and failed",
                    untrusted(other)
                )
                .into())
            }
        };
        result.map_err(|e| {
            tracing::error!(step = %payload.step, run_id = %run, error = %e, "fan-out step failed");
            Error::from(e.to_string())
        })
    }

    async fn handle_events(
        &self,
        event: LambdaEvent<Value>,
        settings: RunSettings,
    ) -> Result<Vec<RunOutcome>, Error> {
        let mut outcomes = Vec::new();
        for item in parse_event(&event.payload) {
            let outcome = match item {
                InventoryEvent::Test => RunOutcome::Ignored {
                    reason: "s3:TestEvent".to_string(),
                },
                InventoryEvent::Unrecognised(what) => RunOutcome::Ignored { reason: what },
                InventoryEvent::ObjectCreated { bucket, keys } => {
                    // Boxed: the run's future is deep enough to overflow the compiler's layout
                    // query limit when inlined into the runtime's.
                    let run = Box::pin(handle_inventory(
                        &self.ports,
                        &self.settings.plan_fingerprint,
                        &bucket,
                        &keys,
                        &settings,
                    ));
                    match run.await {
                        Ok(outcome) => outcome,
                        Err(e) if e.is_retryable() => {
                            tracing::warn!(bucket = %bucket, key = ?keys.first(), error = %e, "inventory run failed for now; will be retried");
                            return Err(e.to_string().into());
                        }
                        Err(e) => {
                            tracing::error!(bucket = %bucket, key = ?keys.first(), error = %e, "inventory run failed");
                            // Not e-mailed means not said: the invocation fails (#16 item 10),
                            // so Lambda retries it and, at last, its dead-letter queue has it.
                            self.ports
                                .notify(
                                    "Ferry: an inventory could not be handled",
                                    // The key and the error come from an event anyone
                                    // allowed to invoke may write.
                                    &format!(
                                        "s3://{}/{}: {}",
                                        untrusted(&bucket),
                                        untrusted(keys.first().map(String::as_str).unwrap_or("")),
                                        untrusted(&e.to_string())
                                    ),
                                )
                                .await
                                .map_err(|cause| {
                                    tracing::error!(error = %cause, "the failure could not be e-mailed");
                                    Error::from(format!("{e}; and e-mailing that failed: {cause}"))
                                })?;
                            RunOutcome::Refused {
                                run_id: String::new(),
                                reason: e.to_string(),
                            }
                        }
                    }
                }
            };
            log(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

fn log(outcome: &RunOutcome) {
    match outcome {
        RunOutcome::Ran(run) => tracing::info!(
            run_id = %run.run_id,
            manifest = %run.manifest_key,
            rows = run.stats.rows,
            copy = run.stats.copy.objects,
            large = run.stats.large.objects,
            changed = run.stats.changed,
            jobs = ?run.jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
            "inventory run launched"
        ),
        RunOutcome::Duplicate { run_id } => {
            tracing::info!(run_id = %run_id, "duplicate event: the run is already claimed")
        }
        other => tracing::info!(outcome = ?other, "inventory event handled"),
    }
}
