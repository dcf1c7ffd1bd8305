//! inventory-handler: a new S3 Inventory landed (EventBridge `Object Created` for its
//! `manifest.checksum`), so the transfer copies what changed. The work is
//! `ferry_flows::inventory::run::handle_inventory`; this crate reads the event and the
//! environment and turns outcomes into log lines and Lambda results. See `docs/inventory.md`.
//!
//! Environment: `FERRY_PLAN_FINGERPRINT` (the stack's TransferPlan), `FERRY_LARGE_OBJECT_COPIER_ARN`
//! (the LambdaInvoke target for objects over 5 GiB), `FERRY_WORK_DIR` (default `/tmp`), and the
//! `FERRY_STATE_BUCKET` / topic variables every function reads.

use std::path::PathBuf;

use ferry_flows::aws_error::{AwsCaused, RetryPolicy};
use ferry_flows::inventory::event::{parse_event, InventoryEvent};
use ferry_flows::inventory::run::{handle_inventory, InventoryObjects, RunOutcome, RunSettings};
use ferry_flows::ports::LaunchApi;
use ferry_flows::ports::{Notifier, StateStore};
use ferry_plan::untrusted::untrusted;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub trait InventoryPorts:
    StateStore + InventoryObjects + LaunchApi + Notifier + Send + Sync + 'static
{
}
impl<T> InventoryPorts for T where
    T: StateStore + InventoryObjects + LaunchApi + Notifier + Send + Sync + 'static
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
}

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
        let settings = RunSettings {
            large_object_function_arn: self.settings.large_object_function_arn.clone(),
            work_dir: self.settings.work_dir.clone(),
            now_unix: (self.clock)(),
            retry: self.settings.retry,
            scan_threads: self.settings.scan_threads,
            work_dir_bytes: self.settings.work_dir_bytes,
            state_bucket: self.settings.state_bucket.clone(),
            deadline: ferry_aws::runtime::time_left(event.context.deadline)
                .map(|left| std::time::Instant::now() + left),
        };
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
