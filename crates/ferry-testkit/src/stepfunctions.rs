//! An emulator of one Step Functions execution, for the state machines the stack deploys (moto
//! can't run a state machine that invokes our Rust functions): [`run_execution`] interprets a
//! definition in the Amazon States Language (JSONPath query language) and calls the test's
//! stand-ins for S3 (the Distributed Map's `ItemReader`) and for Lambda (each Task's
//! `lambda:invoke`) with exactly what Step Functions would send. [`template_state_machine`]
//! reads a state machine's definition and `DefinitionSubstitutions` from `template.yaml`.
//!
//! The definition is checked first, as `CreateStateMachine` would: a field, state type, resource,
//! intrinsic function or path outside the subset below is a [`DefinitionError`] naming the state
//! and the field, never a guess. What it implements, by the Step Functions Developer Guide
//! ("Input and output processing", "Error handling", "Intrinsic functions", "Map state in
//! Distributed mode", "ItemReader", "Tolerated failure threshold for Distributed Map state",
//! "Invoke an AWS Lambda function with Step Functions"):
//!
//! - states `Task` (`arn:<partition>:states:::lambda:invoke`, `Parameters` with `FunctionName`
//!   and `Payload`), `Pass` (`Parameters`, `Result`), `Fail` (`Error`, `Cause`) and `Map` with
//!   `ProcessorConfig.Mode: DISTRIBUTED` (`ExecutionType: STANDARD`), an `ItemReader` on
//!   `arn:<partition>:states:::s3:getObject` with `ReaderConfig.InputType: JSON` (the object is
//!   a JSON array: each element is `$$.Map.Item.Value`, its position `$$.Map.Item.Index`),
//!   `ItemSelector`, `ItemProcessor` (each item a child workflow, run one after the other: the
//!   order of a real run's concurrent children is not defined), `MaxConcurrency` (a non-negative
//!   integer: the string CloudFormation makes of `MaxConcurrency: ${X}` is refused) or
//!   `MaxConcurrencyPath`, `ToleratedFailurePercentage` (default 0) and `ToleratedFailureCount`:
//!   more failed items than tolerated fail the Map with `States.ExceedToleratedFailureThreshold`
//!   (failed ÷ total items, as AWS counts; no further item is started then); a missing object,
//!   or one that isn't a JSON array, fails it with `States.ItemReaderFailed`.
//! - `InputPath`, `Parameters`/`ItemSelector`/`ResultSelector` payload templates (`Key.$` with a
//!   path or an intrinsic), `ResultPath` (on the state's raw input, creating objects on the
//!   way), `OutputPath`; `null` for `InputPath`/`OutputPath` is `{}`, for `ResultPath` the input
//!   unchanged. A path that matches nothing is a `States.Runtime` error, which `States.ALL`
//!   doesn't catch.
//! - paths `$`, `$.A.B…` and, in payload templates, `$$.Execution.Name` (the execution's, or a
//!   Map item's child workflow's own) and `$$.Map.Item.Value`, `$$.Map.Item.Index` (in an
//!   `ItemSelector`); any other `$$…` finds nothing, and the `…Path` fields refuse it;
//!   intrinsics `States.Format` (with the `\'`, `\{`, `\}`, `\\` escapes),
//!   `States.StringToJson`, `States.JsonToString`, `States.Array`, `States.ArrayLength`.
//! - `Retry` (the first retrier whose `ErrorEquals` names the error; `IntervalSeconds` 1,
//!   `MaxAttempts` 3, `BackoffRate` 2.0 by default; `MaxDelaySeconds`, `JitterStrategy`): no
//!   sleeping, each retry's delay is recorded ([`RetryTaken`]); `Catch` (the error output
//!   `{"Error", "Cause"}` at the catcher's `ResultPath`, default `$`, on the raw input).
//!   `States.ALL` matches every error but `States.Runtime` and `States.DataLimitExceeded`;
//!   `States.TaskFailed` matches every error not named `States.*`.
//! - `lambda:invoke`'s result is `{"ExecutedVersion": "$LATEST", "Payload": <the function's
//!   output>, "SdkHttpMetadata": {…}, "SdkResponseMetadata": {"RequestId"}, "StatusCode": 200}`
//!   (the metadata is made up); a function error ([`TaskFailure::function_error`]) is the error
//!   named by the function's `errorType`, its cause the error document the runtime posted.
//!
//! Left out: every other state type, field and intrinsic, JSONata, `Assign`/variables, timeouts,
//! `ItemsPath`/`ItemBatcher`/`ResultWriter`, CSV and manifest readers, redrive, and the payload
//! size quotas. The causes Step Functions writes for its own errors (the tolerated threshold,
//! the item reader, `States.Runtime`) are this emulator's wording, not AWS's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::process::Command;

use serde_json::{json, Map, Value};

use crate::moto::workspace_root;

/// The logical id of the inventory fan-out state machine in `template.yaml` (#18).
pub const INVENTORY_FANOUT: &str = "InventoryFanOut";

// ------------------------------------------------------------------------------------------
// What a run reports
// ------------------------------------------------------------------------------------------

/// A Task's failure as Step Functions names it: `error` (what `ErrorEquals` matches, and the
/// error output's `Error`) and `cause` (the error output's `Cause`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    /// Any error, named as Step Functions would (e.g. `Lambda.Unknown` for a function that ran
    /// out of time or memory, `Lambda.ServiceException`).
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// The function returned an error: Step Functions names it by the `errorType` the runtime
    /// posted, with the whole error document as the cause. This is the document Rust's
    /// `lambda_runtime` posts (its `Diagnostic`: `{"errorType":…,"errorMessage":…}`).
    pub fn function_error(error_type: &str, error_message: &str) -> Self {
        let cause = format!(
            "{{\"errorType\":{},\"errorMessage\":{}}}",
            Value::from(error_type),
            Value::from(error_message)
        );
        Self::new(error_type, cause)
    }
}

/// Which item of which Distributed Map a child workflow's state ran for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapItem {
    /// The Map state's name.
    pub map_state: String,
    /// The item's position in the items the `ItemReader` read (`$$.Map.Item.Index`).
    pub index: usize,
}

/// One `lambda:invoke` of a Task state, in the order they happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The Task state's name (in a child workflow, the name inside the `ItemProcessor`).
    pub state: String,
    /// The Map item whose child workflow it ran in; `None` at the top level.
    pub map_item: Option<MapItem>,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// `Parameters.FunctionName` as evaluated.
    pub function: String,
    /// `Parameters.Payload` as evaluated: the function's event.
    pub payload: Value,
    /// What the function returned.
    pub outcome: Result<Value, TaskFailure>,
}

/// A retry a retrier granted (none is slept: the delay is recorded).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryTaken {
    pub state: String,
    pub map_item: Option<MapItem>,
    /// The error retried.
    pub error: String,
    /// 1 for the retrier's first retry of this state visit, 2 for the next, …
    pub retry: u32,
    /// `IntervalSeconds × BackoffRate^(retry-1)`, at most `MaxDelaySeconds`.
    pub delay_seconds: f64,
    /// `JitterStrategy: FULL`: Step Functions would wait a random time up to `delay_seconds`.
    pub full_jitter: bool,
}

/// A child workflow of a Distributed Map that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildFailure {
    pub index: usize,
    pub error: String,
    pub cause: String,
}

/// One run of a Distributed Map state (a "Map Run").
#[derive(Clone, Debug, PartialEq)]
pub struct MapRun {
    pub state: String,
    /// `ItemReader`'s bucket and key.
    pub bucket: String,
    pub key: String,
    /// How many items the `ItemReader` read (0 when it failed).
    pub items: usize,
    /// `MaxConcurrency` (or what `MaxConcurrencyPath` found); 0 is no limit.
    pub max_concurrency: u64,
    pub succeeded: usize,
    pub failed: Vec<ChildFailure>,
    /// `(error, cause)` when the Map state failed.
    pub failure: Option<(String, String)>,
}

/// How the execution ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Succeeded { output: Value },
    Failed { error: String, cause: String },
}

/// One execution: its end and what happened on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub status: Status,
    /// The top-level states entered, in order (a retried state once).
    pub states_entered: Vec<String>,
    pub invocations: Vec<Invocation>,
    pub retries: Vec<RetryTaken>,
    pub map_runs: Vec<MapRun>,
}

impl Execution {
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Status::Succeeded { .. })
    }

    /// `(error, cause)` of a failed execution.
    pub fn failure(&self) -> Option<(&str, &str)> {
        match &self.status {
            Status::Failed { error, cause } => Some((error, cause)),
            Status::Succeeded { .. } => None,
        }
    }

    /// The invocations of one Task state, in order.
    pub fn invocations_of<'a>(&'a self, state: &'a str) -> impl Iterator<Item = &'a Invocation> {
        self.invocations.iter().filter(move |i| i.state == state)
    }
}

/// A definition outside what Step Functions accepts or outside the emulator's subset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionError {
    /// The state (`Parent > Child` inside a Map's `ItemProcessor`); `None` for the top level.
    pub state: Option<String>,
    /// The field, dotted from the state (`ItemReader.ReaderConfig.InputType`, `Retry[0]`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(state) => write!(
                f,
                "state {state:?}, field {:?}: {}",
                self.field, self.message
            ),
            None => write!(f, "definition, field {:?}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for DefinitionError {}

// ------------------------------------------------------------------------------------------
// Running
// ------------------------------------------------------------------------------------------

/// Runs one execution of `definition` (the JSON Step Functions holds, `DefinitionSubstitutions`
/// already made: [`substitute`], [`TemplateStateMachine::definition`]) with `input`.
///
/// `items(bucket, key)` answers the `ItemReader`'s `s3:GetObject` (its `Err` is the reason the
/// object can't be read: missing, access denied); `invoke(function_name, payload)` runs the
/// function (`Ok` its output, `Err` its failure). The execution's own failures are in
/// [`Execution::status`]; `Err` is a definition Step Functions would refuse, or one outside the
/// emulator's subset (nothing ran then).
pub async fn run_execution<I, IF, V, VF>(
    definition: &Value,
    input: Value,
    items: I,
    invoke: V,
) -> Result<Execution, DefinitionError>
where
    I: Fn(String, String) -> IF,
    IF: Future<Output = Result<Vec<u8>, String>>,
    V: FnMut(String, Value) -> VF,
    VF: Future<Output = Result<Value, TaskFailure>>,
{
    run_named_execution(definition, "emulated-execution", input, items, invoke).await
}

/// [`run_execution`] of an execution named `name` (the context object's `$$.Execution.Name`;
/// a Map item's child workflow sees a name of its own, `<name>/<map state>:<index>`, as a
/// Distributed Map's child executions have their own).
pub async fn run_named_execution<I, IF, V, VF>(
    definition: &Value,
    name: &str,
    input: Value,
    items: I,
    invoke: V,
) -> Result<Execution, DefinitionError>
where
    I: Fn(String, String) -> IF,
    IF: Future<Output = Result<Vec<u8>, String>>,
    V: FnMut(String, Value) -> VF,
    VF: Future<Output = Result<Value, TaskFailure>>,
{
    let machine = parse_top(definition)?;
    let mut run = Run {
        items,
        invoke,
        execution: json!({ "Name": name }),
        states_entered: Vec::new(),
        invocations: Vec::new(),
        retries: Vec::new(),
        map_runs: Vec::new(),
    };
    let status = match run.workflow(&machine, input, None).await {
        Ok(output) => Status::Succeeded { output },
        Err(fail) => Status::Failed {
            error: fail.error,
            cause: fail.cause,
        },
    };
    Ok(Execution {
        status,
        states_entered: run.states_entered,
        invocations: run.invocations,
        retries: run.retries,
        map_runs: run.map_runs,
    })
}

/// An error raised while running (`error` is what `ErrorEquals` matches).
#[derive(Debug)]
struct Fail {
    error: String,
    cause: String,
}

fn runtime(cause: impl Into<String>) -> Fail {
    Fail {
        error: "States.Runtime".into(),
        cause: cause.into(),
    }
}

enum Outcome<'m> {
    Output(Value),
    Caught { next: &'m str, output: Value },
    Failed(Fail),
}

struct Run<I, V> {
    items: I,
    invoke: V,
    /// The context object's `Execution` (`$$.Execution.Name`, `.Id`) of the workflow running:
    /// the execution's, or a Map item's child workflow's while that runs.
    execution: Value,
    states_entered: Vec<String>,
    invocations: Vec<Invocation>,
    retries: Vec<RetryTaken>,
    map_runs: Vec<MapRun>,
}

type Boxed<'s, T> = Pin<Box<dyn Future<Output = T> + 's>>;

impl<I, IF, V, VF> Run<I, V>
where
    I: Fn(String, String) -> IF,
    IF: Future<Output = Result<Vec<u8>, String>>,
    V: FnMut(String, Value) -> VF,
    VF: Future<Output = Result<Value, TaskFailure>>,
{
    /// The context object outside a Map's `ItemSelector` (`$$.Execution…`).
    fn context(&self) -> Value {
        json!({ "Execution": self.execution })
    }

    /// A workflow (the execution's, or a Map item's child workflow) from `StartAt` to its end.
    fn workflow<'s>(
        &'s mut self,
        machine: &'s Machine,
        input: Value,
        item: Option<MapItem>,
    ) -> Boxed<'s, Result<Value, Fail>>
    where
        IF: 's,
        VF: 's,
    {
        Box::pin(async move {
            let mut name = machine.start_at.as_str();
            let mut input = input;
            loop {
                let Some(state) = machine.states.get(name) else {
                    return Err(runtime(format!("no state named {name:?}")));
                };
                if item.is_none() {
                    self.states_entered.push(name.to_string());
                }
                match self.state(state, input, item.as_ref()).await {
                    Outcome::Output(output) => match &state.next {
                        Some(next) => {
                            name = next;
                            input = output;
                        }
                        None => return Ok(output),
                    },
                    Outcome::Caught { next, output } => {
                        name = next;
                        input = output;
                    }
                    Outcome::Failed(fail) => return Err(fail),
                }
            }
        })
    }

    /// One visit of a state: its attempts, retries and catchers.
    async fn state<'m>(
        &mut self,
        state: &'m State,
        raw: Value,
        item: Option<&MapItem>,
    ) -> Outcome<'m> {
        if let Kind::Fail { error, cause } = &state.kind {
            return Outcome::Failed(Fail {
                error: error.clone(),
                cause: cause.clone(),
            });
        }
        let mut retried = vec![0u32; state.retry.len()];
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let fail = match self.attempt(state, &raw, attempt, item).await {
                Ok(output) => return Outcome::Output(output),
                Err(fail) => fail,
            };
            if let Some(i) = state
                .retry
                .iter()
                .position(|r| error_matches(&r.error_equals, &fail.error))
            {
                let retrier = &state.retry[i];
                if u64::from(retried[i]) < retrier.max_attempts {
                    retried[i] += 1;
                    let exponent = i32::try_from(retried[i] - 1).unwrap_or(i32::MAX);
                    let mut delay = retrier.interval_seconds * retrier.backoff_rate.powi(exponent);
                    if let Some(max) = retrier.max_delay_seconds {
                        delay = delay.min(max);
                    }
                    self.retries.push(RetryTaken {
                        state: state.name.clone(),
                        map_item: item.cloned(),
                        error: fail.error,
                        retry: retried[i],
                        delay_seconds: delay,
                        full_jitter: retrier.full_jitter,
                    });
                    continue;
                }
            }
            if let Some(catcher) = state
                .catch
                .iter()
                .find(|c| error_matches(&c.error_equals, &fail.error))
            {
                let error_output = json!({"Error": fail.error, "Cause": fail.cause});
                return match apply_result_path(&raw, catcher.result_path.as_ref(), error_output) {
                    Ok(output) => Outcome::Caught {
                        next: &catcher.next,
                        output,
                    },
                    Err(fail) => Outcome::Failed(fail),
                };
            }
            return Outcome::Failed(fail);
        }
    }

    /// One attempt: InputPath, the work, ResultSelector, ResultPath, OutputPath.
    async fn attempt(
        &mut self,
        state: &State,
        raw: &Value,
        attempt: u32,
        item: Option<&MapItem>,
    ) -> Result<Value, Fail> {
        let effective = select_io(state.input_path.as_ref(), raw, "InputPath")?;
        let result = match &state.kind {
            Kind::Task { parameters } => {
                self.task(state, parameters, &effective, attempt, item)
                    .await?
            }
            Kind::Pass { parameters, result } => match (result, parameters) {
                (Some(result), _) => result.clone(),
                (None, Some(parameters)) => parameters.eval(&effective, &self.context())?,
                (None, None) => effective,
            },
            Kind::Map(map) => self.map(state, map, &effective).await?,
            Kind::Fail { error, cause } => {
                return Err(Fail {
                    error: error.clone(),
                    cause: cause.clone(),
                })
            }
        };
        let result = match &state.result_selector {
            Some(selector) => selector.eval(&result, &self.context())?,
            None => result,
        };
        let combined = apply_result_path(raw, state.result_path.as_ref(), result)?;
        select_io(state.output_path.as_ref(), &combined, "OutputPath")
    }

    async fn task(
        &mut self,
        state: &State,
        parameters: &Template,
        effective: &Value,
        attempt: u32,
        item: Option<&MapItem>,
    ) -> Result<Value, Fail> {
        let parameters = parameters.eval(effective, &self.context())?;
        let Some(function) = parameters.get("FunctionName").and_then(Value::as_str) else {
            return Err(runtime(format!(
                "state {:?}: Parameters.FunctionName is not a string: {parameters}",
                state.name
            )));
        };
        let function = function.to_string();
        let payload = parameters.get("Payload").cloned().unwrap_or(Value::Null);
        let outcome = (self.invoke)(function.clone(), payload.clone()).await;
        self.invocations.push(Invocation {
            state: state.name.clone(),
            map_item: item.cloned(),
            attempt,
            function,
            payload,
            outcome: outcome.clone(),
        });
        match outcome {
            Ok(output) => Ok(json!({
                "ExecutedVersion": "$LATEST",
                "Payload": output,
                "SdkHttpMetadata": {"HttpHeaders": {}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {
                    "RequestId": format!("00000000-0000-4000-8000-{:012x}", self.invocations.len())
                },
                "StatusCode": 200
            })),
            Err(failure) => Err(Fail {
                error: failure.error,
                cause: failure.cause,
            }),
        }
    }

    async fn map(
        &mut self,
        state: &State,
        map: &MapState,
        effective: &Value,
    ) -> Result<Value, Fail> {
        let reader = map.reader_parameters.eval(effective, &Value::Null)?;
        let field = |name: &str| -> Result<String, Fail> {
            reader
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    runtime(format!(
                        "state {:?}: ItemReader.Parameters.{name} is not a string: {reader}",
                        state.name
                    ))
                })
        };
        let (bucket, key) = (field("Bucket")?, field("Key")?);
        let max_concurrency = match &map.max_concurrency {
            Concurrency::Fixed(n) => *n,
            Concurrency::Path(path) => match path.select(effective, &Value::Null) {
                Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
                found => {
                    return Err(runtime(format!(
                        "state {:?}: MaxConcurrencyPath {} found {}, not a non-negative integer",
                        state.name,
                        path.text,
                        found.map_or("nothing".to_string(), Value::to_string)
                    )))
                }
            },
        };
        let mut record = MapRun {
            state: state.name.clone(),
            bucket: bucket.clone(),
            key: key.clone(),
            items: 0,
            max_concurrency,
            succeeded: 0,
            failed: Vec::new(),
            failure: None,
        };
        let result = self.map_items(state, map, effective, &mut record).await;
        if let Err(fail) = &result {
            record.failure = Some((fail.error.clone(), fail.cause.clone()));
        }
        self.map_runs.push(record);
        result
    }

    async fn map_items(
        &mut self,
        state: &State,
        map: &MapState,
        effective: &Value,
        record: &mut MapRun,
    ) -> Result<Value, Fail> {
        let reader_failed = |cause: String| Fail {
            error: "States.ItemReaderFailed".into(),
            cause,
        };
        let body = (self.items)(record.bucket.clone(), record.key.clone())
            .await
            .map_err(|e| {
                reader_failed(format!(
                    "s3:GetObject of s3://{}/{} failed: {e}",
                    record.bucket, record.key
                ))
            })?;
        let items = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(items)) => items,
            Ok(_) => {
                return Err(reader_failed(format!(
                    "s3://{}/{} is not a JSON array (ReaderConfig.InputType JSON)",
                    record.bucket, record.key
                )))
            }
            Err(e) => {
                return Err(reader_failed(format!(
                    "s3://{}/{} is not JSON: {e}",
                    record.bucket, record.key
                )))
            }
        };
        let total = items.len();
        record.items = total;
        let mut outputs = Vec::with_capacity(total);
        for (index, value) in items.into_iter().enumerate() {
            let context = json!({"Execution": self.execution, "Map": {"Item": {"Index": index, "Value": value}}});
            let child_input = match &map.item_selector {
                Some(selector) => selector.eval(effective, &context)?,
                None => value,
            };
            let item = MapItem {
                map_state: state.name.clone(),
                index,
            };
            let child_name = format!(
                "{}/{}:{index}",
                self.execution["Name"].as_str().unwrap_or(""),
                state.name
            );
            let parent = std::mem::replace(&mut self.execution, json!({ "Name": child_name }));
            let child = self.workflow(&map.processor, child_input, Some(item)).await;
            self.execution = parent;
            match child {
                Ok(output) => {
                    record.succeeded += 1;
                    outputs.push(output);
                }
                Err(fail) => {
                    outputs.push(json!({"Error": fail.error, "Cause": fail.cause}));
                    record.failed.push(ChildFailure {
                        index,
                        error: fail.error,
                        cause: fail.cause,
                    });
                    if map.tolerance.exceeded(record.failed.len(), total) {
                        return Err(Fail {
                            error: "States.ExceedToleratedFailureThreshold".into(),
                            cause: format!(
                                "The Map Run of {:?} failed: {} of {} items failed, more than it tolerates ({})",
                                state.name,
                                record.failed.len(),
                                total,
                                map.tolerance
                            ),
                        });
                    }
                }
            }
        }
        Ok(Value::Array(outputs))
    }
}

fn error_matches(error_equals: &[String], error: &str) -> bool {
    error_equals.iter().any(|name| match name.as_str() {
        "States.ALL" => !matches!(error, "States.Runtime" | "States.DataLimitExceeded"),
        "States.TaskFailed" => error == "States.TaskFailed" || !error.starts_with("States."),
        _ => name == error,
    })
}

/// InputPath / OutputPath: `None` (null) is `{}`.
fn select_io(path: Option<&Path>, value: &Value, field: &str) -> Result<Value, Fail> {
    match path {
        None => Ok(json!({})),
        Some(path) => path.select(value, &Value::Null).cloned().ok_or_else(|| {
            runtime(format!(
                "The JSONPath {} specified for the field {field} could not be found in the input {value}",
                path.text
            ))
        }),
    }
}

/// ResultPath (or a catcher's): `None` (null) keeps the input; `$` replaces it; `$.A.B` sets
/// the field, creating objects on the way.
fn apply_result_path(raw: &Value, path: Option<&Path>, result: Value) -> Result<Value, Fail> {
    let Some(path) = path else {
        return Ok(raw.clone());
    };
    let Some((last, parents)) = path.fields.split_last() else {
        return Ok(result);
    };
    let mut output = raw.clone();
    let mut node = &mut output;
    for field in parents {
        let Value::Object(object) = node else {
            return Err(runtime(format!(
                "ResultPath {} can't be applied: the input at .{field}'s parent is not an object: {raw}",
                path.text
            )));
        };
        node = object.entry(field.clone()).or_insert_with(|| json!({}));
    }
    let Value::Object(object) = node else {
        return Err(runtime(format!(
            "ResultPath {} can't be applied: the input at .{last}'s parent is not an object: {raw}",
            path.text
        )));
    };
    object.insert(last.clone(), result);
    Ok(output)
}

// ------------------------------------------------------------------------------------------
// The definition, checked
// ------------------------------------------------------------------------------------------

struct Machine {
    start_at: String,
    states: BTreeMap<String, State>,
}

struct State {
    name: String,
    kind: Kind,
    input_path: Option<Path>,
    result_selector: Option<Template>,
    result_path: Option<Path>,
    output_path: Option<Path>,
    retry: Vec<Retrier>,
    catch: Vec<Catcher>,
    /// `None`: `End: true` (or a Fail state).
    next: Option<String>,
}

enum Kind {
    Task {
        parameters: Template,
    },
    Pass {
        parameters: Option<Template>,
        result: Option<Value>,
    },
    Map(Box<MapState>),
    Fail {
        error: String,
        cause: String,
    },
}

struct MapState {
    reader_parameters: Template,
    item_selector: Option<Template>,
    processor: Machine,
    max_concurrency: Concurrency,
    tolerance: Tolerance,
}

enum Concurrency {
    Fixed(u64),
    Path(Path),
}

struct Tolerance {
    percentage: Option<f64>,
    count: Option<u64>,
}

impl Tolerance {
    fn exceeded(&self, failed: usize, total: usize) -> bool {
        let by_percentage = self
            .percentage
            .is_some_and(|p| (failed as f64) * 100.0 > p * (total as f64));
        let by_count = self.count.is_some_and(|c| failed as u64 > c);
        by_percentage || by_count
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.percentage, self.count) {
            (Some(p), Some(c)) => write!(
                f,
                "ToleratedFailurePercentage {p}, ToleratedFailureCount {c}"
            ),
            (Some(p), None) => write!(f, "ToleratedFailurePercentage {p}"),
            (None, Some(c)) => write!(f, "ToleratedFailureCount {c}"),
            (None, None) => write!(f, "no failure"),
        }
    }
}

struct Retrier {
    error_equals: Vec<String>,
    interval_seconds: f64,
    max_attempts: u64,
    backoff_rate: f64,
    max_delay_seconds: Option<f64>,
    full_jitter: bool,
}

struct Catcher {
    error_equals: Vec<String>,
    result_path: Option<Path>,
    next: String,
}

/// The fields of one JSON object of the definition: each read is remembered, so that
/// [`Fields::finish`] can refuse the fields nobody read (unknown, or outside the subset).
struct Fields<'a> {
    state: Option<&'a str>,
    prefix: String,
    object: &'a Map<String, Value>,
    read: BTreeSet<&'static str>,
}

fn def_error(
    state: Option<&str>,
    field: impl Into<String>,
    message: impl Into<String>,
) -> DefinitionError {
    DefinitionError {
        state: state.map(str::to_string),
        field: field.into(),
        message: message.into(),
    }
}

impl<'a> Fields<'a> {
    fn new(
        state: Option<&'a str>,
        prefix: &str,
        value: &'a Value,
    ) -> Result<Self, DefinitionError> {
        match value {
            Value::Object(object) => Ok(Self {
                state,
                prefix: prefix.to_string(),
                object,
                read: BTreeSet::new(),
            }),
            other => Err(def_error(
                state,
                if prefix.is_empty() {
                    "(the state)"
                } else {
                    prefix
                },
                format!("must be a JSON object, not {other}"),
            )),
        }
    }

    fn path_of(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    fn err(&self, field: &str, message: impl Into<String>) -> DefinitionError {
        def_error(self.state, self.path_of(field), message)
    }

    fn opt(&mut self, field: &'static str) -> Option<&'a Value> {
        self.read.insert(field);
        self.object.get(field)
    }

    fn req(&mut self, field: &'static str) -> Result<&'a Value, DefinitionError> {
        self.opt(field)
            .ok_or_else(|| self.err(field, "is required"))
    }

    fn opt_str(&mut self, field: &'static str) -> Result<Option<&'a str>, DefinitionError> {
        match self.opt(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(field, format!("must be a string, not {other}"))),
        }
    }

    fn req_str(&mut self, field: &'static str) -> Result<&'a str, DefinitionError> {
        self.opt_str(field)?
            .ok_or_else(|| self.err(field, "is required"))
    }

    /// Refuses every field not read: unknown to the Amazon States Language here, or outside
    /// the emulator's subset.
    fn finish(self, what: &str) -> Result<(), DefinitionError> {
        match self.object.keys().find(|k| !self.read.contains(k.as_str())) {
            Some(field) => Err(self.err(
                field,
                format!("is not a field of {what} that the emulator supports (outside its subset of the Amazon States Language, or misspelled)"),
            )),
            None => Ok(()),
        }
    }
}

fn parse_top(definition: &Value) -> Result<Machine, DefinitionError> {
    let mut f = Fields::new(None, "", definition)?;
    f.opt("Comment");
    if let Some(version) = f.opt_str("Version")? {
        if version != "1.0" {
            return Err(f.err("Version", format!("{version:?}: only \"1.0\" exists")));
        }
    }
    if let Some(language) = f.opt_str("QueryLanguage")? {
        if language != "JSONPath" {
            return Err(f.err(
                "QueryLanguage",
                format!("{language:?}: the emulator knows the JSONPath query language only"),
            ));
        }
    }
    let machine = parse_body(&mut f, None)?;
    f.finish("a state machine")?;
    Ok(machine)
}

/// `StartAt` and `States` of a state machine or an `ItemProcessor` (`parent`: the Map state).
fn parse_body(f: &mut Fields<'_>, parent: Option<&str>) -> Result<Machine, DefinitionError> {
    let start_at = f.req_str("StartAt")?.to_string();
    let Value::Object(states_json) = f.req("States")? else {
        return Err(f.err("States", "must be a JSON object of states"));
    };
    let mut states = BTreeMap::new();
    for (name, value) in states_json {
        let label = match parent {
            Some(parent) => format!("{parent} > {name}"),
            None => name.clone(),
        };
        states.insert(name.clone(), parse_state(name, &label, value)?);
    }
    if !states.contains_key(&start_at) {
        return Err(f.err("StartAt", format!("{start_at:?} is not one of the States")));
    }
    for state in states.values() {
        let label = match parent {
            Some(parent) => format!("{parent} > {}", state.name),
            None => state.name.clone(),
        };
        if let Some(next) = &state.next {
            if !states.contains_key(next) {
                return Err(def_error(
                    Some(&label),
                    "Next",
                    format!("{next:?} is not a state of the same States"),
                ));
            }
        }
        for (i, catcher) in state.catch.iter().enumerate() {
            if !states.contains_key(&catcher.next) {
                return Err(def_error(
                    Some(&label),
                    format!("Catch[{i}].Next"),
                    format!("{:?} is not a state of the same States", catcher.next),
                ));
            }
        }
    }
    Ok(Machine { start_at, states })
}

const SUBSET: &str = "Task (lambda:invoke), Pass, Fail, Map (Distributed)";

fn parse_state(name: &str, label: &str, value: &Value) -> Result<State, DefinitionError> {
    let mut f = Fields::new(Some(label), "", value)?;
    let kind = f.req_str("Type")?;
    f.opt("Comment");
    let mut state = State {
        name: name.to_string(),
        kind: Kind::Fail {
            error: String::new(),
            cause: String::new(),
        },
        input_path: Some(Path::root()),
        result_selector: None,
        result_path: Some(Path::root()),
        output_path: Some(Path::root()),
        retry: Vec::new(),
        catch: Vec::new(),
        next: None,
    };
    match kind {
        "Fail" => {
            let error = f.opt_str("Error")?.unwrap_or_default().to_string();
            let cause = f.opt_str("Cause")?.unwrap_or_default().to_string();
            state.kind = Kind::Fail { error, cause };
            f.finish("a Fail state")?;
            return Ok(state);
        }
        "Task" => {
            let resource = f.req_str("Resource")?;
            if !is_states_arn(resource, "lambda:invoke") {
                return Err(f.err(
                    "Resource",
                    format!("{resource:?}: the emulator runs arn:<partition>:states:::lambda:invoke only"),
                ));
            }
            let parameters = Template::compile(f.req("Parameters")?, label, "Parameters")?;
            check_keys(
                &parameters,
                label,
                "Parameters",
                &["FunctionName", "Payload"],
                &["FunctionName", "Payload"],
            )?;
            state.kind = Kind::Task { parameters };
        }
        "Pass" => {
            let parameters = match f.opt("Parameters") {
                Some(p) => Some(Template::compile(p, label, "Parameters")?),
                None => None,
            };
            let result = f.opt("Result").cloned();
            state.kind = Kind::Pass { parameters, result };
        }
        "Map" => state.kind = Kind::Map(Box::new(parse_map(&mut f, label)?)),
        "Choice" | "Wait" | "Succeed" | "Parallel" => {
            return Err(f.err(
                "Type",
                format!("{kind:?} is a state type outside the emulator's subset ({SUBSET})"),
            ))
        }
        other => {
            return Err(f.err(
                "Type",
                format!("{other:?} is not a state type of the Amazon States Language"),
            ))
        }
    }
    state.input_path = io_path(&mut f, "InputPath")?;
    state.output_path = io_path(&mut f, "OutputPath")?;
    state.result_path = match f.opt("ResultPath") {
        None => Some(Path::root()),
        Some(Value::Null) => None,
        Some(Value::String(text)) => {
            let path = Path::parse(text).map_err(|m| f.err("ResultPath", m))?;
            if path.context {
                return Err(f.err(
                    "ResultPath",
                    "must be a reference path on the state's input ($…), not $$…",
                ));
            }
            Some(path)
        }
        Some(other) => {
            return Err(f.err("ResultPath", format!("must be a path or null, not {other}")))
        }
    };
    if kind != "Pass" {
        if let Some(selector) = f.opt("ResultSelector") {
            state.result_selector = Some(Template::compile(selector, label, "ResultSelector")?);
        }
        state.retry = parse_retry(&mut f, label)?;
        state.catch = parse_catch(&mut f, label)?;
    }
    let next = f.opt_str("Next")?;
    let end = match f.opt("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(f.err("End", format!("must be true or false, not {other}"))),
    };
    state.next = match (next, end) {
        (Some(next), false) => Some(next.to_string()),
        (None, true) => None,
        (Some(_), true) => return Err(f.err("Next", "and End: true can't both be set")),
        (None, false) => return Err(f.err("Next", "or End: true is required")),
    };
    f.finish(&format!("a {kind} state"))?;
    Ok(state)
}

fn is_states_arn(resource: &str, service: &str) -> bool {
    let Some(rest) = resource.strip_prefix("arn:") else {
        return false;
    };
    match rest.split_once(':') {
        Some((partition, tail)) => {
            !partition.is_empty() && tail.strip_prefix("states:::") == Some(service)
        }
        None => false,
    }
}

fn io_path(f: &mut Fields<'_>, field: &'static str) -> Result<Option<Path>, DefinitionError> {
    match f.opt(field) {
        None => Ok(Some(Path::root())),
        Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let path = Path::parse(text).map_err(|m| f.err(field, m))?;
            if path.context {
                return Err(f.err(
                    field,
                    "paths on the context object ($$…) are outside the emulator's subset here",
                ));
            }
            Ok(Some(path))
        }
        Some(other) => Err(f.err(field, format!("must be a path or null, not {other}"))),
    }
}

/// A payload template's keys (after `.$`): `required` must be there, nothing outside `allowed`.
fn check_keys(
    template: &Template,
    label: &str,
    field: &str,
    required: &[&str],
    allowed: &[&str],
) -> Result<(), DefinitionError> {
    let Template::Object(entries) = template else {
        return Err(def_error(Some(label), field, "must be a JSON object"));
    };
    for entry in entries {
        if !allowed.contains(&entry.key.as_str()) {
            return Err(def_error(
                Some(label),
                format!("{field}.{}", entry.source_key),
                format!(
                    "is outside the emulator's subset (it knows {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    for key in required {
        if !entries.iter().any(|e| e.key == *key) {
            return Err(def_error(
                Some(label),
                format!("{field}.{key}"),
                "is required",
            ));
        }
    }
    Ok(())
}

fn parse_map(f: &mut Fields<'_>, label: &str) -> Result<MapState, DefinitionError> {
    for (field, why) in [
        ("ItemsPath", "items from the state input"),
        ("ItemBatcher", "batching"),
        ("ResultWriter", "results written to S3"),
        ("Iterator", "the Inline mode's Iterator"),
        (
            "Parameters",
            "the Inline mode's Parameters (ItemSelector is the field)",
        ),
    ] {
        if f.object.contains_key(field) {
            return Err(f.err(field, format!("{why}: outside the emulator's subset")));
        }
    }
    f.opt("Label");

    let processor_json = f.req("ItemProcessor")?;
    let mut pf = Fields::new(Some(label), "ItemProcessor", processor_json)?;
    pf.opt("Comment");
    let config = pf.req("ProcessorConfig")?;
    let mut cf = Fields::new(Some(label), "ItemProcessor.ProcessorConfig", config)?;
    let mode = cf.req_str("Mode")?;
    if mode != "DISTRIBUTED" {
        return Err(cf.err(
            "Mode",
            format!("{mode:?}: the emulator runs Distributed Maps only"),
        ));
    }
    let execution_type = cf.req_str("ExecutionType")?;
    if execution_type != "STANDARD" {
        return Err(cf.err(
            "ExecutionType",
            format!("{execution_type:?}: the emulator runs STANDARD child workflows only"),
        ));
    }
    cf.finish("ProcessorConfig")?;
    let processor = parse_body(&mut pf, Some(label))?;
    pf.finish("ItemProcessor")?;

    let reader_json = f.req("ItemReader")?;
    let mut rf = Fields::new(Some(label), "ItemReader", reader_json)?;
    let resource = rf.req_str("Resource")?;
    if !is_states_arn(resource, "s3:getObject") {
        return Err(rf.err(
            "Resource",
            format!("{resource:?}: the emulator reads arn:<partition>:states:::s3:getObject only"),
        ));
    }
    let config = rf.req("ReaderConfig")?;
    let mut rcf = Fields::new(Some(label), "ItemReader.ReaderConfig", config)?;
    let input_type = rcf.req_str("InputType")?;
    if input_type != "JSON" {
        return Err(rcf.err(
            "InputType",
            format!("{input_type:?}: the emulator reads JSON arrays only"),
        ));
    }
    rcf.finish("ReaderConfig")?;
    let reader_parameters =
        Template::compile(rf.req("Parameters")?, label, "ItemReader.Parameters")?;
    check_keys(
        &reader_parameters,
        label,
        "ItemReader.Parameters",
        &["Bucket", "Key"],
        &["Bucket", "Key"],
    )?;
    rf.finish("ItemReader")?;

    let item_selector = match f.opt("ItemSelector") {
        Some(selector) => Some(Template::compile(selector, label, "ItemSelector")?),
        None => None,
    };

    let max_concurrency = match (f.opt("MaxConcurrency"), f.opt("MaxConcurrencyPath")) {
        (Some(_), Some(_)) => {
            return Err(f.err("MaxConcurrencyPath", "and MaxConcurrency can't both be set"))
        }
        (None, None) => Concurrency::Fixed(0),
        (Some(Value::Number(n)), None) if n.as_u64().is_some() => {
            Concurrency::Fixed(n.as_u64().unwrap_or(0))
        }
        (Some(Value::String(s)), None) => {
            return Err(f.err(
                "MaxConcurrency",
                format!(
                    "must be a non-negative integer, not the string {s:?}: Step Functions refuses the definition (SCHEMA_VALIDATION_FAILED). DefinitionSubstitutions replace text inside the definition's JSON, so a ${{Name}} written as a YAML value becomes a JSON string"
                ),
            ))
        }
        (Some(other), None) => {
            return Err(f.err("MaxConcurrency", format!("must be a non-negative integer, not {other}")))
        }
        (None, Some(Value::String(text))) => {
            let path = Path::parse(text).map_err(|m| f.err("MaxConcurrencyPath", m))?;
            if path.context {
                return Err(f.err("MaxConcurrencyPath", "must be a reference path on the state's input ($…)"));
            }
            Concurrency::Path(path)
        }
        (None, Some(other)) => {
            return Err(f.err("MaxConcurrencyPath", format!("must be a path, not {other}")))
        }
    };

    let percentage = match f.opt("ToleratedFailurePercentage") {
        None => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                return Err(f.err(
                    "ToleratedFailurePercentage",
                    format!("{n} is not between 0 and 100"),
                ))
            }
        },
        Some(other) => {
            return Err(f.err(
                "ToleratedFailurePercentage",
                format!("must be a number from 0 to 100, not {other}"),
            ))
        }
    };
    let count = match f.opt("ToleratedFailureCount") {
        None => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(other) => {
            return Err(f.err(
                "ToleratedFailureCount",
                format!("must be a non-negative integer, not {other}"),
            ))
        }
    };
    // Neither: 0 %, any failed item fails the Map Run.
    let tolerance = match (percentage, count) {
        (None, None) => Tolerance {
            percentage: Some(0.0),
            count: None,
        },
        (percentage, count) => Tolerance { percentage, count },
    };
    Ok(MapState {
        reader_parameters,
        item_selector,
        processor,
        max_concurrency,
        tolerance,
    })
}

fn error_equals(
    value: Option<&Value>,
    label: &str,
    field: &str,
) -> Result<Vec<String>, DefinitionError> {
    let err = |m: String| def_error(Some(label), format!("{field}.ErrorEquals"), m);
    let Some(Value::Array(names)) = value else {
        return Err(err("is required: a non-empty array of error names".into()));
    };
    let names = names
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(format!("{n} is not a string")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if names.is_empty() {
        return Err(err("must not be empty".into()));
    }
    if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
        return Err(err("States.ALL must appear alone".into()));
    }
    Ok(names)
}

fn parse_retry(f: &mut Fields<'_>, label: &str) -> Result<Vec<Retrier>, DefinitionError> {
    let Some(value) = f.opt("Retry") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = value else {
        return Err(f.err("Retry", "must be an array of retriers"));
    };
    let mut retriers = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let field = format!("Retry[{i}]");
        let mut rf = Fields::new(Some(label), &field, r)?;
        let names = error_equals(rf.opt("ErrorEquals"), label, &field)?;
        if names[0] == "States.ALL" && i + 1 != list.len() {
            return Err(rf.err("ErrorEquals", "a retrier of States.ALL must be the last"));
        }
        let integer = |rf: &mut Fields<'_>,
                       key: &'static str,
                       min: u64|
         -> Result<Option<u64>, DefinitionError> {
            match rf.opt(key) {
                None => Ok(None),
                Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= min) => Ok(n.as_u64()),
                Some(other) => Err(rf.err(key, format!("must be an integer ≥ {min}, not {other}"))),
            }
        };
        let interval = integer(&mut rf, "IntervalSeconds", 1)?.unwrap_or(1);
        let max_attempts = integer(&mut rf, "MaxAttempts", 0)?.unwrap_or(3);
        let max_delay = integer(&mut rf, "MaxDelaySeconds", 1)?;
        let backoff_rate = match rf.opt("BackoffRate") {
            None => 2.0,
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v >= 1.0) => {
                n.as_f64().unwrap_or(2.0)
            }
            Some(other) => {
                return Err(rf.err(
                    "BackoffRate",
                    format!("must be a number ≥ 1.0, not {other}"),
                ))
            }
        };
        let full_jitter = match rf.opt_str("JitterStrategy")? {
            None | Some("NONE") => false,
            Some("FULL") => true,
            Some(other) => return Err(rf.err("JitterStrategy", format!("{other:?}: FULL or NONE"))),
        };
        rf.finish("a retrier")?;
        retriers.push(Retrier {
            error_equals: names,
            interval_seconds: interval as f64,
            max_attempts,
            backoff_rate,
            max_delay_seconds: max_delay.map(|d| d as f64),
            full_jitter,
        });
    }
    Ok(retriers)
}

fn parse_catch(f: &mut Fields<'_>, label: &str) -> Result<Vec<Catcher>, DefinitionError> {
    let Some(value) = f.opt("Catch") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = value else {
        return Err(f.err("Catch", "must be an array of catchers"));
    };
    let mut catchers = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let field = format!("Catch[{i}]");
        let mut cf = Fields::new(Some(label), &field, c)?;
        let names = error_equals(cf.opt("ErrorEquals"), label, &field)?;
        if names[0] == "States.ALL" && i + 1 != list.len() {
            return Err(cf.err("ErrorEquals", "a catcher of States.ALL must be the last"));
        }
        let next = cf.req_str("Next")?.to_string();
        let result_path = match cf.opt("ResultPath") {
            None => Some(Path::root()),
            Some(Value::Null) => None,
            Some(Value::String(text)) => {
                let path = Path::parse(text).map_err(|m| cf.err("ResultPath", m))?;
                if path.context {
                    return Err(cf.err(
                        "ResultPath",
                        "must be a reference path on the state's input ($…)",
                    ));
                }
                Some(path)
            }
            Some(other) => {
                return Err(cf.err("ResultPath", format!("must be a path or null, not {other}")))
            }
        };
        cf.finish("a catcher")?;
        catchers.push(Catcher {
            error_equals: names,
            result_path,
            next,
        });
    }
    Ok(catchers)
}

// ------------------------------------------------------------------------------------------
// Paths, payload templates, intrinsic functions
// ------------------------------------------------------------------------------------------

/// `$`, `$.A.B…`, `$$…` (the context object).
#[derive(Clone, Debug)]
struct Path {
    text: String,
    context: bool,
    fields: Vec<String>,
}

impl Path {
    fn root() -> Self {
        Self {
            text: "$".into(),
            context: false,
            fields: Vec::new(),
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        let (context, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (false, rest)
        } else {
            return Err(format!("{text:?} is not a path (it must start with $)"));
        };
        let mut fields = Vec::new();
        if !rest.is_empty() {
            let Some(rest) = rest.strip_prefix('.') else {
                return Err(format!(
                    "{text:?}: the emulator knows $ and $.Name.Name… paths only"
                ));
            };
            for field in rest.split('.') {
                let plain = !field.is_empty()
                    && !field.contains(|c: char| "[]*@,:?()'\" $".contains(c) || c.is_whitespace());
                if !plain {
                    return Err(format!(
                        "{text:?}: the emulator knows $ and $.Name.Name… paths only"
                    ));
                }
                fields.push(field.to_string());
            }
        }
        Ok(Self {
            text: text.to_string(),
            context,
            fields,
        })
    }

    fn select<'v>(&self, input: &'v Value, context: &'v Value) -> Option<&'v Value> {
        let mut node = if self.context { context } else { input };
        for field in &self.fields {
            node = node.as_object()?.get(field)?;
        }
        Some(node)
    }
}

/// A payload template (`Parameters`, `ItemSelector`, `ResultSelector`, `ItemReader.Parameters`).
enum Template {
    Literal(Value),
    Object(Vec<Entry>),
    Array(Vec<Template>),
    Path(Path),
    Intrinsic(Intrinsic),
}

struct Entry {
    /// The output key (`Key` for `Key.$`).
    key: String,
    /// As written (for messages).
    source_key: String,
    value: Template,
}

impl Template {
    fn compile(value: &Value, label: &str, field: &str) -> Result<Self, DefinitionError> {
        if !value.is_object() {
            return Err(def_error(
                Some(label),
                field,
                format!("must be a JSON object, not {value}"),
            ));
        }
        Self::compile_node(value, label, field)
    }

    fn compile_node(value: &Value, label: &str, field: &str) -> Result<Self, DefinitionError> {
        match value {
            Value::Object(object) => {
                let mut entries: Vec<Entry> = Vec::new();
                for (source_key, v) in object {
                    let here = format!("{field}.{source_key}");
                    let entry = match source_key.strip_suffix(".$") {
                        Some(key) => {
                            let Value::String(expression) = v else {
                                return Err(def_error(
                                    Some(label),
                                    here,
                                    format!("must be a string (a path or an intrinsic function), not {v}"),
                                ));
                            };
                            let value = if expression.starts_with('$') {
                                Template::Path(
                                    Path::parse(expression)
                                        .map_err(|m| def_error(Some(label), &here, m))?,
                                )
                            } else {
                                Template::Intrinsic(
                                    Intrinsic::parse(expression)
                                        .map_err(|m| def_error(Some(label), &here, m))?,
                                )
                            };
                            Entry {
                                key: key.to_string(),
                                source_key: source_key.clone(),
                                value,
                            }
                        }
                        None => Entry {
                            key: source_key.clone(),
                            source_key: source_key.clone(),
                            value: Self::compile_node(v, label, &here)?,
                        },
                    };
                    if entries.iter().any(|e| e.key == entry.key) {
                        return Err(def_error(
                            Some(label),
                            here,
                            format!("gives {:?} twice (with and without .$)", entry.key),
                        ));
                    }
                    entries.push(entry);
                }
                Ok(Template::Object(entries))
            }
            Value::Array(items) => Ok(Template::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::compile_node(v, label, &format!("{field}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )),
            other => Ok(Template::Literal(other.clone())),
        }
    }

    fn eval(&self, input: &Value, context: &Value) -> Result<Value, Fail> {
        self.eval_at(input, context, "")
    }

    fn eval_at(&self, input: &Value, context: &Value, field: &str) -> Result<Value, Fail> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Array(items) => items
                .iter()
                .map(|t| t.eval_at(input, context, field))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Object(entries) => {
                let mut out = Map::new();
                for entry in entries {
                    let value = entry.value.eval_at(input, context, &entry.source_key)?;
                    out.insert(entry.key.clone(), value);
                }
                Ok(Value::Object(out))
            }
            Template::Path(path) => path.select(input, context).cloned().ok_or_else(|| {
                let source = if path.context { context } else { input };
                runtime(format!(
                    "The JSONPath {} specified for the field {field} could not be found in the input {source}",
                    path.text
                ))
            }),
            Template::Intrinsic(call) => call.eval(input, context, field),
        }
    }
}

/// One argument of an intrinsic function.
enum Arg {
    /// A string literal: text pieces and, for `States.Format`'s template, its `{}` holes.
    Text(Vec<Piece>),
    Value(Value),
    Path(Path),
    Call(Intrinsic),
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Hole,
}

struct Intrinsic {
    name: &'static str,
    args: Vec<Arg>,
}

const INTRINSICS: [&str; 5] = [
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayLength",
];

impl Intrinsic {
    fn parse(text: &str) -> Result<Self, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        let call = Self::parse_call(&chars, &mut at, text)?;
        skip_ws(&chars, &mut at);
        if at != chars.len() {
            return Err(format!(
                "{text:?}: unexpected text after the intrinsic function"
            ));
        }
        Ok(call)
    }

    fn parse_call(chars: &[char], at: &mut usize, text: &str) -> Result<Self, String> {
        let start = *at;
        while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '.') {
            *at += 1;
        }
        let name: String = chars[start..*at].iter().collect();
        if *at >= chars.len() || chars[*at] != '(' {
            return Err(format!(
                "{text:?} is neither a path ($…) nor an intrinsic function call"
            ));
        }
        let Some(name) = INTRINSICS.iter().copied().find(|n| *n == name) else {
            return Err(format!(
                "{name} is an intrinsic function outside the emulator's subset ({})",
                INTRINSICS.join(", ")
            ));
        };
        *at += 1;
        let mut args = Vec::new();
        skip_ws(chars, at);
        if *at < chars.len() && chars[*at] == ')' {
            *at += 1;
        } else {
            loop {
                skip_ws(chars, at);
                args.push(Self::parse_arg(chars, at, text)?);
                skip_ws(chars, at);
                match chars.get(*at) {
                    Some(',') => *at += 1,
                    Some(')') => {
                        *at += 1;
                        break;
                    }
                    _ => return Err(format!("{text:?}: expected , or ) in {name}'s arguments")),
                }
            }
        }
        let arity_ok = match name {
            "States.Format" => !args.is_empty(),
            "States.Array" => true,
            _ => args.len() == 1,
        };
        if !arity_ok {
            return Err(format!("{text:?}: wrong number of arguments for {name}"));
        }
        Ok(Self { name, args })
    }

    fn parse_arg(chars: &[char], at: &mut usize, text: &str) -> Result<Arg, String> {
        match chars.get(*at) {
            Some('\'') => {
                *at += 1;
                let mut pieces = Vec::new();
                let mut buf = String::new();
                loop {
                    match chars.get(*at) {
                        None => return Err(format!("{text:?}: a string literal is not closed")),
                        Some('\'') => {
                            *at += 1;
                            break;
                        }
                        Some('\\') => match chars.get(*at + 1) {
                            Some(c @ ('\'' | '{' | '}' | '\\')) => {
                                buf.push(*c);
                                *at += 2;
                            }
                            _ => {
                                return Err(format!(
                                "{text:?}: an open escape \\ (only \\' \\{{ \\}} \\\\ are escapes)"
                            ))
                            }
                        },
                        Some('{') if chars.get(*at + 1) == Some(&'}') => {
                            if !buf.is_empty() {
                                pieces.push(Piece::Text(std::mem::take(&mut buf)));
                            }
                            pieces.push(Piece::Hole);
                            *at += 2;
                        }
                        Some('{' | '}') => {
                            return Err(format!(
                                "{text:?}: {{ and }} are reserved: escape them (\\{{ \\}})"
                            ))
                        }
                        Some(c) => {
                            buf.push(*c);
                            *at += 1;
                        }
                    }
                }
                if !buf.is_empty() {
                    pieces.push(Piece::Text(buf));
                }
                Ok(Arg::Text(pieces))
            }
            Some('$') => {
                let start = *at;
                while *at < chars.len()
                    && !matches!(chars[*at], ',' | ')')
                    && !chars[*at].is_whitespace()
                {
                    *at += 1;
                }
                let path: String = chars[start..*at].iter().collect();
                Ok(Arg::Path(Path::parse(&path)?))
            }
            Some(c) if c.is_ascii_digit() || *c == '-' => {
                let start = *at;
                while *at < chars.len()
                    && !matches!(chars[*at], ',' | ')')
                    && !chars[*at].is_whitespace()
                {
                    *at += 1;
                }
                let number: String = chars[start..*at].iter().collect();
                match serde_json::from_str::<Value>(&number) {
                    Ok(v @ Value::Number(_)) => Ok(Arg::Value(v)),
                    _ => Err(format!("{text:?}: {number:?} is not a number")),
                }
            }
            Some(_) => {
                for (word, value) in [
                    ("null", Value::Null),
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                ] {
                    let end = *at + word.len();
                    if end <= chars.len()
                        && chars[*at..end].iter().copied().eq(word.chars())
                        && !chars.get(end).is_some_and(|c| c.is_alphanumeric())
                    {
                        *at = end;
                        return Ok(Arg::Value(value));
                    }
                }
                Ok(Arg::Call(Self::parse_call(chars, at, text)?))
            }
            None => Err(format!("{text:?}: an argument is missing")),
        }
    }

    fn eval(&self, input: &Value, context: &Value, field: &str) -> Result<Value, Fail> {
        let fail = |m: String| runtime(format!("{} in the field {field}: {m}", self.name));
        let value_of = |arg: &Arg| -> Result<Value, Fail> {
            match arg {
                Arg::Text(pieces) => {
                    if pieces.contains(&Piece::Hole) {
                        return Err(fail(
                            "{} is reserved outside States.Format's template".into(),
                        ));
                    }
                    Ok(Value::String(
                        pieces
                            .iter()
                            .map(|p| match p {
                                Piece::Text(t) => t.as_str(),
                                Piece::Hole => "",
                            })
                            .collect(),
                    ))
                }
                Arg::Value(v) => Ok(v.clone()),
                Arg::Path(path) => path.select(input, context).cloned().ok_or_else(|| {
                    fail(format!(
                        "the JSONPath {} could not be found in the input",
                        path.text
                    ))
                }),
                Arg::Call(call) => call.eval(input, context, field),
            }
        };
        match self.name {
            "States.Format" => {
                let pieces = match &self.args[0] {
                    Arg::Text(pieces) => pieces.clone(),
                    other => match value_of(other)? {
                        Value::String(s) => split_holes(&s),
                        v => return Err(fail(format!("the template {v} is not a string"))),
                    },
                };
                let values = self.args[1..]
                    .iter()
                    .map(value_of)
                    .collect::<Result<Vec<_>, _>>()?;
                let holes = pieces.iter().filter(|p| **p == Piece::Hole).count();
                if holes != values.len() {
                    return Err(fail(format!(
                        "the template has {holes} {{}} for {} arguments",
                        values.len()
                    )));
                }
                let mut values = values.into_iter();
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(&t),
                        Piece::Hole => match values.next() {
                            Some(Value::String(s)) => out.push_str(&s),
                            Some(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => {
                                out.push_str(&v.to_string())
                            }
                            Some(v) => {
                                return Err(fail(format!("{v} can't be formatted into a string")))
                            }
                            None => {}
                        },
                    }
                }
                Ok(Value::String(out))
            }
            "States.StringToJson" => match value_of(&self.args[0])? {
                Value::String(s) => {
                    serde_json::from_str(&s).map_err(|e| fail(format!("{s:?} is not JSON: {e}")))
                }
                v => Err(fail(format!("{v} is not a string"))),
            },
            "States.JsonToString" => Ok(Value::String(value_of(&self.args[0])?.to_string())),
            "States.Array" => self
                .args
                .iter()
                .map(value_of)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            "States.ArrayLength" => match value_of(&self.args[0])? {
                Value::Array(items) => Ok(Value::from(items.len())),
                v => Err(fail(format!("{v} is not an array"))),
            },
            other => Err(fail(format!("{other} is not emulated"))),
        }
    }
}

fn skip_ws(chars: &[char], at: &mut usize) {
    while *at < chars.len() && chars[*at].is_whitespace() {
        *at += 1;
    }
}

/// A template string from the input: `{}` are its holes.
fn split_holes(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for (i, part) in text.split("{}").enumerate() {
        if i > 0 {
            pieces.push(Piece::Hole);
        }
        if !part.is_empty() {
            pieces.push(Piece::Text(part.to_string()));
        }
    }
    pieces
}

// ------------------------------------------------------------------------------------------
// DefinitionSubstitutions and template.yaml
// ------------------------------------------------------------------------------------------

/// The definition Step Functions gets from `definition_text` (the definition's JSON as
/// CloudFormation renders it) and `DefinitionSubstitutions`: each `${Name}` replaced by its
/// value, as text, then parsed. A `${Name}` left over (a placeholder nobody substitutes), or a
/// result that isn't JSON, is an error.
pub fn substitute(definition_text: &str, values: &[(&str, &str)]) -> Result<Value, String> {
    let mut text = definition_text.to_string();
    for (name, value) in values {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    if let Some(start) = text.find("${") {
        let rest = &text[start..];
        let end = rest.find('}').map_or(rest.len(), |e| e + 1);
        return Err(format!(
            "{} is still in the definition after DefinitionSubstitutions: nothing substitutes it",
            &rest[..end]
        ));
    }
    serde_json::from_str(&text).map_err(|e| {
        format!("the definition with its substitutions made is not JSON ({e}): {text}")
    })
}

/// A state machine of `template.yaml` as CloudFormation hands it to Step Functions.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateStateMachine {
    pub logical_id: String,
    /// `AWS::StepFunctions::StateMachine` or `AWS::Serverless::StateMachine`.
    pub resource_type: String,
    /// The definition's JSON text, the template's intrinsics resolved (`!Sub` of
    /// `${AWS::Partition}`…), `DefinitionSubstitutions` not yet made.
    pub definition_text: String,
    /// `DefinitionSubstitutions` as the template writes them (long-form intrinsics, e.g.
    /// `{"Ref": "StateBucket"}`).
    pub substitutions: Map<String, Value>,
}

impl TemplateStateMachine {
    /// The definition with `values` substituted: one value for each of the template's
    /// `DefinitionSubstitutions` (the test's bucket, function ARN, concurrency), no other.
    pub fn definition(&self, values: &[(&str, &str)]) -> Result<Value, String> {
        let given: BTreeSet<&str> = values.iter().map(|(k, _)| *k).collect();
        let declared: BTreeSet<&str> = self.substitutions.keys().map(String::as_str).collect();
        if given != declared {
            return Err(format!(
                "{}'s DefinitionSubstitutions are {declared:?} ({}); the values given are for {given:?}",
                self.logical_id,
                Value::Object(self.substitutions.clone())
            ));
        }
        substitute(&self.definition_text, values)
    }
}

/// Reads state machine `logical_id` from `template.yaml` (or `$FERRY_TEMPLATE`) with the
/// repo's own template reader (`tests/iam/cfn.mjs`: short-form tags, and its `Resolver` for the
/// intrinsics inside `Definition`, in a stack of `account`/`region` with `parameters`, the
/// template's defaults for the rest). The resource must exist under those parameters (its
/// Condition), and its definition must be an inline `Definition` or `DefinitionString`.
/// Needs Node.js (`$FERRY_NODE`, else `node`) and `tests/iam/node_modules`
/// (`bash tests/iam/run.sh --install-only`).
pub fn template_state_machine(
    logical_id: &str,
    account: &str,
    region: &str,
    parameters: &Value,
) -> Result<TemplateStateMachine, String> {
    const SCRIPT: &str = r#"
import { pathToFileURL } from 'node:url'
const { loadTemplate, Resolver } = await import(pathToFileURL(process.env.FERRY_CFN_MJS).href)
const { samRoleResources } = await import(pathToFileURL(process.env.FERRY_SAM_ROLES_MJS).href)
const template = loadTemplate(process.env.FERRY_TEMPLATE_PATH)
const id = process.env.FERRY_LOGICAL_ID
const resource = (template.Resources ?? {})[id]
if (resource === undefined) {
  process.stdout.write(JSON.stringify({ missing: true }))
} else {
  const resolver = new Resolver(template, JSON.parse(process.env.FERRY_PARAMETERS),
    { account: process.env.FERRY_ACCOUNT, region: process.env.FERRY_REGION, stackName: 'ferry-test' },
    samRoleResources(template))
  const exists = resolver.exists(id)
  const props = resource.Properties ?? {}
  const out = { type: resource.Type, exists, condition: resource.Condition ?? null,
    substitutions: props.DefinitionSubstitutions ?? {}, keys: Object.keys(props) }
  if (exists && props.Definition !== undefined) out.definition = resolver.resolve(props.Definition)
  if (exists && props.DefinitionString !== undefined) out.definitionString = resolver.resolve(props.DefinitionString)
  process.stdout.write(JSON.stringify(out))
}
"#;
    let root = workspace_root();
    let template = std::env::var("FERRY_TEMPLATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("template.yaml"));
    let node = std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(&node)
        .args(["--input-type=module", "-e", SCRIPT])
        .env("FERRY_CFN_MJS", root.join("tests/iam/cfn.mjs"))
        .env("FERRY_SAM_ROLES_MJS", root.join("tests/iam/sam-roles.mjs"))
        .env("FERRY_TEMPLATE_PATH", &template)
        .env("FERRY_LOGICAL_ID", logical_id)
        .env("FERRY_ACCOUNT", account)
        .env("FERRY_REGION", region)
        .env("FERRY_PARAMETERS", parameters.to_string())
        .output()
        .map_err(|e| format!("cannot run {node} (Node.js reads the template): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "reading {} with tests/iam/cfn.mjs failed (are tests/iam's node packages installed? bash tests/iam/run.sh --install-only): {}",
            template.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let found: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the template reader printed no JSON ({e})"))?;
    let template_name = template.display();
    if found.get("missing") == Some(&Value::Bool(true)) {
        return Err(format!("{template_name} has no resource {logical_id}"));
    }
    let resource_type = found["type"].as_str().unwrap_or_default().to_string();
    if !matches!(
        resource_type.as_str(),
        "AWS::StepFunctions::StateMachine" | "AWS::Serverless::StateMachine"
    ) {
        return Err(format!(
            "{logical_id} is a {resource_type}, not a state machine"
        ));
    }
    if found["exists"] != Value::Bool(true) {
        return Err(format!(
            "{logical_id} does not exist with the parameters {parameters} (Condition {})",
            found["condition"]
        ));
    }
    let definition_text = match (found.get("definition"), found.get("definitionString")) {
        (Some(definition), None) => {
            if let Some(at) = find_intrinsic(definition, "") {
                return Err(format!(
                    "{logical_id}'s Definition keeps a CloudFormation intrinsic at {at}"
                ));
            }
            // CloudFormation renders a Definition object as JSON text, then substitutes.
            definition.to_string()
        }
        (None, Some(Value::String(text))) => text.clone(),
        (None, Some(other)) => {
            return Err(format!(
                "{logical_id}'s DefinitionString resolved to {other}, not a string"
            ))
        }
        _ => {
            return Err(format!(
                "{logical_id} has no inline Definition or DefinitionString (its properties: {})",
                found["keys"]
            ))
        }
    };
    let substitutions = match &found["substitutions"] {
        Value::Object(map) => map.clone(),
        other => {
            return Err(format!(
                "{logical_id}'s DefinitionSubstitutions is not a map: {other}"
            ))
        }
    };
    Ok(TemplateStateMachine {
        logical_id: logical_id.to_string(),
        resource_type,
        definition_text,
        substitutions,
    })
}

fn find_intrinsic(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::Object(object) => {
            if object.len() == 1 {
                let key = object.keys().next()?;
                if key == "Ref" || key.starts_with("Fn::") {
                    return Some(format!("{at} ({key})"));
                }
            }
            object
                .iter()
                .find_map(|(k, v)| find_intrinsic(v, &format!("{at}/{k}")))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_intrinsic(v, &format!("{at}/{i}"))),
        _ => None,
    }
}
