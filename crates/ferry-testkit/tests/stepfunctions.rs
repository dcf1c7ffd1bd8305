//! The Step Functions emulator (`ferry_testkit::stepfunctions`) on the inventory fan-out (#18):
//! the contract's definition (/tmp/fanout-contract.md, written out below as CloudFormation
//! renders it) and template.yaml's `InventoryFanOut`, each run against an in-memory state bucket
//! and a scripted inventory-handler. No moto: nothing here touches AWS.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::ready;

use ferry_testkit::stepfunctions::{
    self, run_execution, ChildFailure, Execution, Status, TaskFailure, INVENTORY_FANOUT,
};
use serde_json::{json, Value};

const BUCKET: &str = "ferry-test-statebucket-fake0000";
const FUNCTION: &str =
    "arn:aws:lambda:eu-west-1:111122223333:function:ferry-test-InventoryHandlerFunction";
const FINGERPRINT: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const RUN: &str = "5a4b3c2d1e0f5a4b3c2d1e0f5a4b3c2d";
const FAILED_CAUSE: &str = "a step of the inventory run failed: the e-mail says which and why";

/// The contract's state machine as CloudFormation renders its `Definition` (YAML) to JSON before
/// the substitutions: `MaxConcurrency: ${Concurrency}` is a YAML string, so a JSON string.
const CONTRACT: &str = r#"{
  "Comment": "Ferry's inventory fan-out (#18): the data files scanned in batches, the delta diffed shard by shard, then one launch",
  "StartAt": "ScanDataFiles",
  "States": {
    "ScanDataFiles": {
      "Type": "Map",
      "ItemReader": {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {
          "Bucket": "${StateBucket}",
          "Key.$": "States.Format('inventory/{}/runs/{}/fanout/scan-items.json', $.Fingerprint, $.Run)"
        }
      },
      "ItemSelector": {"Step": "scan", "Fingerprint.$": "$.Fingerprint", "Run.$": "$.Run", "Execution.$": "$$.Execution.Name", "Item.$": "$$.Map.Item.Value"},
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "ScanBatch",
        "States": {
          "ScanBatch": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${InventoryHandlerArn}", "Payload.$": "$"},
            "OutputPath": null,
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2, "JitterStrategy": "FULL"}],
            "End": true
          }
        }
      },
      "MaxConcurrency": "${Concurrency}",
      "ToleratedFailurePercentage": 0,
      "ResultPath": null,
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "RunFailed"}],
      "Next": "DiffShards"
    },
    "DiffShards": {
      "Type": "Map",
      "ItemReader": {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {
          "Bucket": "${StateBucket}",
          "Key.$": "States.Format('inventory/{}/runs/{}/fanout/shard-items.json', $.Fingerprint, $.Run)"
        }
      },
      "ItemSelector": {"Step": "diff", "Fingerprint.$": "$.Fingerprint", "Run.$": "$.Run", "Execution.$": "$$.Execution.Name", "Item.$": "$$.Map.Item.Value"},
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "DiffShard",
        "States": {
          "DiffShard": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${InventoryHandlerArn}", "Payload.$": "$"},
            "OutputPath": null,
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2, "JitterStrategy": "FULL"}],
            "End": true
          }
        }
      },
      "MaxConcurrency": "${Concurrency}",
      "ToleratedFailurePercentage": 0,
      "ResultPath": null,
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "RunFailed"}],
      "Next": "LaunchJobs"
    },
    "LaunchJobs": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {
        "FunctionName": "${InventoryHandlerArn}",
        "Payload": {"Step": "finish", "Fingerprint.$": "$.Fingerprint", "Run.$": "$.Run", "Execution.$": "$$.Execution.Name"}
      },
      "OutputPath": "$.Payload",
      "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2, "JitterStrategy": "FULL"}],
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "RunFailed"}],
      "End": true
    },
    "RunFailed": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {
        "FunctionName": "${InventoryHandlerArn}",
        "Payload": {"Step": "failed", "Fingerprint.$": "$.Fingerprint", "Run.$": "$.Run", "Execution.$": "$$.Execution.Name", "Failure.$": "$.Failure"}
      },
      "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2, "JitterStrategy": "FULL"}],
      "Next": "Failed"
    },
    "Failed": {
      "Type": "Fail",
      "Error": "FerryInventoryRunFailed",
      "Cause": "a step of the inventory run failed: the e-mail says which and why"
    }
  }
}"#;

const VALUES: [(&str, &str); 3] = [
    ("StateBucket", BUCKET),
    ("InventoryHandlerArn", FUNCTION),
    ("Concurrency", "50"),
];

/// The contract's definition with its substitutions made, `MaxConcurrency` written as a number
/// (as a `DefinitionString` would have it: the YAML form is refused, see
/// `the_contracts_max_concurrency_placeholder_becomes_a_string_and_is_refused`).
fn contract() -> Value {
    let text = CONTRACT.replace("\"${Concurrency}\"", "${Concurrency}");
    stepfunctions::substitute(&text, &VALUES).expect("the contract's definition")
}

/// template.yaml's InventoryFanOut as CloudFormation would hand it to Step Functions, in a stack
/// whose inventory runs are on.
fn template() -> Value {
    let parameters = json!({
        "TransferName": "photos", "SourceAccountId": "444455556666", "SourceRegion": "eu-west-1",
        "SourceBucket": "photos-prod", "DestinationBucket": "photos-archive",
        "ManifestKind": "inventory", "ManifestBucket": "ops-inventories",
        "ManifestKey": "photos-prod/all/2026-01-01T01-00Z/manifest.json",
        "ReportBucket": "ops-inventories", "ReportPrefix": "ferry/reports",
        "NotificationEmail": "storage-team@example.com", "InventoryRuns": "true"
    });
    let machine = stepfunctions::template_state_machine(
        INVENTORY_FANOUT,
        "111122223333",
        "eu-west-1",
        &parameters,
    )
    .unwrap_or_else(|e| panic!("template.yaml's {INVENTORY_FANOUT} can't be read: {e}"));
    assert_eq!(machine.resource_type, "AWS::StepFunctions::StateMachine");
    assert_eq!(
        Value::Object(machine.substitutions.clone()),
        json!({
            "StateBucket": {"Ref": "StateBucket"},
            "InventoryHandlerArn": {"Fn::GetAtt": ["InventoryHandlerFunction", "Arn"]},
            "Concurrency": {"Ref": "InventoryFanOutConcurrency"}
        }),
        "the contract's DefinitionSubstitutions"
    );
    machine
        .definition(&VALUES)
        .unwrap_or_else(|e| panic!("{INVENTORY_FANOUT}'s definition: {e}"))
}

fn key(list: &str) -> String {
    format!("inventory/{FINGERPRINT}/runs/{RUN}/fanout/{list}-items.json")
}

fn scan_items() -> Vec<Value> {
    vec![
        json!({"Batch": 0, "First": 0, "End": 8}),
        json!({"Batch": 1, "First": 8, "End": 16}),
        json!({"Batch": 2, "First": 16, "End": 19}),
    ]
}

fn shard_items() -> Vec<Value> {
    vec![json!({"Shard": 0}), json!({"Shard": 1})]
}

/// The state bucket's two item lists and a scripted inventory-handler: each worker (`scan 1`,
/// `diff 0`, `finish`, `failed`) answers as the real one does (`{}`, the launch a small object)
/// unless it is told to fail its next few invocations.
struct World {
    objects: HashMap<(String, String), Vec<u8>>,
    reads: RefCell<Vec<(String, String)>>,
    failures: RefCell<HashMap<String, u32>>,
}

impl World {
    fn new() -> Self {
        let mut objects = HashMap::new();
        for (list, items) in [("scan", scan_items()), ("shard", shard_items())] {
            let body = serde_json::to_vec(&items).expect("items");
            objects.insert((BUCKET.to_string(), key(list)), body);
        }
        Self {
            objects,
            reads: RefCell::new(Vec::new()),
            failures: RefCell::new(HashMap::new()),
        }
    }

    fn failing(self, worker: &str, times: u32) -> Self {
        self.failures.borrow_mut().insert(worker.to_string(), times);
        self
    }

    fn without(mut self, list: &str) -> Self {
        self.objects.remove(&(BUCKET.to_string(), key(list)));
        self
    }

    fn worker(&self, payload: &Value) -> Result<Value, TaskFailure> {
        let step = payload["Step"].as_str().unwrap_or("?");
        let name = match step {
            "scan" => format!("scan {}", payload["Item"]["Batch"]),
            "diff" => format!("diff {}", payload["Item"]["Shard"]),
            other => other.to_string(),
        };
        if let Some(left) = self.failures.borrow_mut().get_mut(&name) {
            if *left > 0 {
                *left -= 1;
                return Err(TaskFailure::function_error(
                    "FerryWorkerError",
                    &format!("{name} failed"),
                ));
            }
        }
        Ok(match step {
            "finish" => json!({"Launched": 2}),
            _ => json!({}),
        })
    }

    async fn run(&self, definition: &Value) -> Execution {
        run_execution(
            definition,
            json!({"Fingerprint": FINGERPRINT, "Run": RUN}),
            |bucket, key| {
                self.reads.borrow_mut().push((bucket.clone(), key.clone()));
                ready(
                    self.objects
                        .get(&(bucket, key))
                        .cloned()
                        .ok_or_else(|| "NoSuchKey: The specified key does not exist.".to_string()),
                )
            },
            |_function, payload| ready(self.worker(&payload)),
        )
        .await
        .unwrap_or_else(|e| panic!("the definition is refused: {e}"))
    }
}

/// The ids every step gets, the execution's name (`run_execution`'s) among them: the parent
/// execution's, also in a Map item's child workflow (the `ItemSelector` runs in the parent).
fn ids(step: &str) -> Value {
    json!({"Step": step, "Fingerprint": FINGERPRINT, "Run": RUN, "Execution": "emulated-execution"})
}

fn with_item(step: &str, item: &Value) -> Value {
    let mut payload = ids(step);
    payload["Item"] = item.clone();
    payload
}

/// `(state, payload)` of every invocation, in order.
fn calls(execution: &Execution) -> Vec<(String, Value)> {
    execution
        .invocations
        .iter()
        .map(|i| (i.state.clone(), i.payload.clone()))
        .collect()
}

fn run_failed_payload(execution: &Execution) -> Value {
    let runs: Vec<_> = execution.invocations_of("RunFailed").collect();
    assert_eq!(
        runs.len(),
        1,
        "RunFailed once: {:#?}",
        execution.invocations
    );
    runs[0].payload.clone()
}

// --------------------------------------------------------------------------- the scenarios

/// Every scan item reaches the function with the ItemSelector's payload, then every shard,
/// then the launch, whose `Payload` is the execution's output.
async fn scans_then_diffs_then_launches(definition: Value) {
    let world = World::new();
    let execution = world.run(&definition).await;
    assert_eq!(
        execution.status,
        Status::Succeeded {
            output: json!({"Launched": 2})
        }
    );
    let mut expected: Vec<(String, Value)> = Vec::new();
    for item in scan_items() {
        expected.push(("ScanBatch".into(), with_item("scan", &item)));
    }
    for item in shard_items() {
        expected.push(("DiffShard".into(), with_item("diff", &item)));
    }
    expected.push(("LaunchJobs".into(), ids("finish")));
    assert_eq!(calls(&execution), expected);
    for invocation in &execution.invocations {
        assert_eq!(invocation.function, FUNCTION);
        assert_eq!(invocation.attempt, 1);
    }
    let scans: Vec<_> = execution.invocations_of("ScanBatch").collect();
    for (index, scan) in scans.iter().enumerate() {
        let item = scan.map_item.as_ref().expect("a Map item");
        assert_eq!(
            (item.map_state.as_str(), item.index),
            ("ScanDataFiles", index)
        );
    }
    assert_eq!(
        *world.reads.borrow(),
        vec![
            (BUCKET.to_string(), key("scan")),
            (BUCKET.to_string(), key("shard"))
        ],
        "each Map reads its list from the state bucket"
    );
    assert!(execution.retries.is_empty());
    let concurrency: Vec<_> = execution
        .map_runs
        .iter()
        .map(|r| (r.state.as_str(), r.items, r.max_concurrency))
        .collect();
    assert_eq!(
        concurrency,
        vec![("ScanDataFiles", 3, 50), ("DiffShards", 2, 50)],
        "both Maps run at the stack's concurrency"
    );
}

/// MaxAttempts 2: a worker failing twice is invoked a third time, and the run goes on.
async fn a_worker_failing_twice_is_retried(definition: Value) {
    let world = World::new().failing("scan 1", 2);
    let execution = world.run(&definition).await;
    assert!(execution.succeeded(), "{:?}", execution.status);
    let batch_1: Vec<_> = execution
        .invocations_of("ScanBatch")
        .filter(|i| i.payload["Item"]["Batch"] == 1)
        .collect();
    assert_eq!(
        batch_1.iter().map(|i| i.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(batch_1[0].outcome.is_err() && batch_1[1].outcome.is_err());
    assert_eq!(batch_1[2].outcome, Ok(json!({})));
    for i in &batch_1 {
        assert_eq!(
            i.payload,
            with_item("scan", &scan_items()[1]),
            "the same payload each time"
        );
    }
    let delays: Vec<_> = execution
        .retries
        .iter()
        .map(|r| {
            (
                r.state.as_str(),
                r.error.as_str(),
                r.retry,
                r.delay_seconds,
                r.full_jitter,
            )
        })
        .collect();
    assert_eq!(
        delays,
        vec![
            ("ScanBatch", "FerryWorkerError", 1, 5.0, true),
            ("ScanBatch", "FerryWorkerError", 2, 10.0, true)
        ]
    );
    assert_eq!(execution.invocations_of("DiffShard").count(), 2);
    assert_eq!(execution.invocations_of("LaunchJobs").count(), 1);
    assert_eq!(execution.invocations_of("RunFailed").count(), 0);
}

/// A worker failing three times fails its child workflow, so the Map (0 % tolerated), which
/// RunFailed reports; the execution fails as the Fail state says. No diff, no launch.
async fn a_worker_failing_three_times_fails_the_run(definition: Value) {
    let world = World::new().failing("scan 1", 3);
    let execution = world.run(&definition).await;
    let batch_1: Vec<_> = execution
        .invocations_of("ScanBatch")
        .filter(|i| i.payload["Item"]["Batch"] == 1)
        .collect();
    assert_eq!(batch_1.len(), 3, "three attempts, no more");
    assert!(batch_1.iter().all(|i| i.outcome.is_err()));
    assert_eq!(execution.retries.len(), 2);
    let scan_run = &execution.map_runs[0];
    assert_eq!(scan_run.state, "ScanDataFiles");
    assert_eq!(
        scan_run.failed,
        vec![ChildFailure {
            index: 1,
            error: "FerryWorkerError".into(),
            cause: r#"{"errorType":"FerryWorkerError","errorMessage":"scan 1 failed"}"#.into(),
        }]
    );
    let payload = run_failed_payload(&execution);
    assert_eq!(payload["Step"], "failed");
    assert_eq!(payload["Fingerprint"], FINGERPRINT);
    assert_eq!(payload["Run"], RUN);
    assert_eq!(
        payload["Failure"]["Error"],
        "States.ExceedToleratedFailureThreshold"
    );
    assert!(payload["Failure"]["Cause"].is_string(), "{payload}");
    assert_eq!(payload["Execution"], "emulated-execution");
    assert_eq!(payload.as_object().map(|o| o.len()), Some(5), "{payload}");
    assert_eq!(execution.invocations_of("DiffShard").count(), 0);
    assert_eq!(execution.invocations_of("LaunchJobs").count(), 0);
    assert_eq!(
        execution.failure(),
        Some(("FerryInventoryRunFailed", FAILED_CAUSE))
    );
}

/// No scan-items.json: the Map fails reading it (States.ItemReaderFailed), no worker runs, and
/// RunFailed reports it.
async fn missing_items_fail_the_map(definition: Value) {
    let world = World::new().without("scan");
    let execution = world.run(&definition).await;
    assert_eq!(execution.invocations_of("ScanBatch").count(), 0);
    let payload = run_failed_payload(&execution);
    assert_eq!(payload["Failure"]["Error"], "States.ItemReaderFailed");
    assert!(
        payload["Failure"]["Cause"]
            .as_str()
            .is_some_and(|c| c.contains(&key("scan"))),
        "{payload}"
    );
    assert_eq!(
        execution.failure(),
        Some(("FerryInventoryRunFailed", FAILED_CAUSE))
    );
}

/// The launch failing three times is caught: RunFailed gets the function's error as Step
/// Functions names it (its errorType, the error document as the cause).
async fn a_failing_launch_reaches_run_failed(definition: Value) {
    let world = World::new().failing("finish", 3);
    let execution = world.run(&definition).await;
    assert_eq!(execution.invocations_of("LaunchJobs").count(), 3);
    assert_eq!(
        run_failed_payload(&execution)["Failure"],
        json!({
            "Error": "FerryWorkerError",
            "Cause": r#"{"errorType":"FerryWorkerError","errorMessage":"finish failed"}"#
        })
    );
    assert_eq!(
        execution.failure(),
        Some(("FerryInventoryRunFailed", FAILED_CAUSE))
    );
}

// --------------------------------------------------------------------------- the contract's

#[tokio::test]
async fn contract_scans_then_diffs_then_launches() {
    scans_then_diffs_then_launches(contract()).await;
}

#[tokio::test]
async fn contract_a_worker_failing_twice_is_retried() {
    a_worker_failing_twice_is_retried(contract()).await;
}

#[tokio::test]
async fn contract_a_worker_failing_three_times_fails_the_run() {
    a_worker_failing_three_times_fails_the_run(contract()).await;
}

#[tokio::test]
async fn contract_missing_items_fail_the_map() {
    missing_items_fail_the_map(contract()).await;
}

#[tokio::test]
async fn contract_a_failing_launch_reaches_run_failed() {
    a_failing_launch_reaches_run_failed(contract()).await;
}

// --------------------------------------------------------------------------- template.yaml's

#[tokio::test]
async fn template_scans_then_diffs_then_launches() {
    scans_then_diffs_then_launches(template()).await;
}

#[tokio::test]
async fn template_a_worker_failing_twice_is_retried() {
    a_worker_failing_twice_is_retried(template()).await;
}

#[tokio::test]
async fn template_a_worker_failing_three_times_fails_the_run() {
    a_worker_failing_three_times_fails_the_run(template()).await;
}

#[tokio::test]
async fn template_missing_items_fail_the_map() {
    missing_items_fail_the_map(template()).await;
}

#[tokio::test]
async fn template_a_failing_launch_reaches_run_failed() {
    a_failing_launch_reaches_run_failed(template()).await;
}

// --------------------------------------------------------------------------- definitions

async fn refused(definition: &Value) -> stepfunctions::DefinitionError {
    let invoked = RefCell::new(0);
    let result = run_execution(
        definition,
        json!({"Fingerprint": FINGERPRINT, "Run": RUN}),
        |_, _| ready(Err("no object".to_string())),
        |_, _| {
            *invoked.borrow_mut() += 1;
            ready(Ok(json!({})))
        },
    )
    .await;
    assert_eq!(*invoked.borrow(), 0, "nothing runs");
    match result {
        Err(e) => e,
        Ok(execution) => panic!("accepted: {:?}", execution.status),
    }
}

#[tokio::test]
async fn an_unsupported_state_type_is_a_clear_error() {
    let mut definition = contract();
    definition["States"]["LaunchJobs"]["Type"] = json!("Choice");
    let error = refused(&definition).await;
    assert_eq!(error.state.as_deref(), Some("LaunchJobs"));
    assert_eq!(error.field, "Type");
    assert!(error.message.contains("\"Choice\""), "{error}");
    assert!(error.to_string().contains("LaunchJobs"), "{error}");

    let mut definition = contract();
    definition["States"]["Wait"] = json!({"Type": "Wait", "Seconds": 5, "Next": "LaunchJobs"});
    let error = refused(&definition).await;
    assert_eq!(
        (error.state.as_deref(), error.field.as_str()),
        (Some("Wait"), "Type")
    );
}

#[tokio::test]
async fn a_field_outside_the_subset_is_named_with_its_state() {
    let mut definition = contract();
    definition["States"]["ScanDataFiles"]["ItemProcessor"]["States"]["ScanBatch"]
        ["TimeoutSeconds"] = json!(900);
    let error = refused(&definition).await;
    assert_eq!(error.state.as_deref(), Some("ScanDataFiles > ScanBatch"));
    assert_eq!(error.field, "TimeoutSeconds");

    let mut definition = contract();
    definition["States"]["DiffShards"]["ItemReader"]["ReaderConfig"]["InputType"] = json!("CSV");
    let error = refused(&definition).await;
    assert_eq!(error.state.as_deref(), Some("DiffShards"));
    assert_eq!(error.field, "ItemReader.ReaderConfig.InputType");
}

/// CloudFormation substitutes text inside the definition's JSON: the YAML value
/// `MaxConcurrency: ${Concurrency}` reaches Step Functions as the string "50", which it refuses.
#[tokio::test]
async fn the_contracts_max_concurrency_placeholder_becomes_a_string_and_is_refused() {
    let definition = stepfunctions::substitute(CONTRACT, &VALUES).expect("JSON");
    assert_eq!(
        definition["States"]["ScanDataFiles"]["MaxConcurrency"],
        json!("50")
    );
    let error = refused(&definition).await;
    assert!(
        matches!(error.state.as_deref(), Some("ScanDataFiles" | "DiffShards")),
        "{error}"
    );
    assert_eq!(error.field, "MaxConcurrency");
}

#[test]
fn a_placeholder_nothing_substitutes_is_an_error() {
    let error = stepfunctions::substitute(CONTRACT, &VALUES[..2]).expect_err("${Concurrency} left");
    assert!(error.contains("${Concurrency}"), "{error}");
}
