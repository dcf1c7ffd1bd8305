//! #16 item 7: one retry rule. Whatever flow an AWS failure surfaces through (launch, stack
//! workflow and approval, inventory run and its delta, job monitor, completion report reads,
//! redrive), "worth another try" is decided by the failed call's kind alone, the same way.

use ferry_flows::aws_error::{AwsCallError, AwsCaused, AwsErrorKind};
use ferry_flows::inventory::delta::DeltaError;
use ferry_flows::inventory::run::RunError;
use ferry_flows::launch::LaunchError;
use ferry_flows::report::monitor::MonitorError;
use ferry_flows::report::read::ReportReadError;
use ferry_flows::report::redrive::RedriveError;
use ferry_flows::workflow::WorkflowError;

const KINDS: [AwsErrorKind; 8] = [
    AwsErrorKind::Throttled,
    AwsErrorKind::Transient,
    AwsErrorKind::AccessDenied,
    AwsErrorKind::NotFound,
    AwsErrorKind::WrongRegion,
    AwsErrorKind::BadRequest,
    AwsErrorKind::IdempotencyConflict,
    AwsErrorKind::Other,
];

/// Stops compiling when a kind is added, so [`KINDS`] is kept whole.
#[allow(dead_code)]
fn every_kind_is_in_kinds(kind: AwsErrorKind) {
    match kind {
        AwsErrorKind::Throttled
        | AwsErrorKind::Transient
        | AwsErrorKind::AccessDenied
        | AwsErrorKind::NotFound
        | AwsErrorKind::WrongRegion
        | AwsErrorKind::BadRequest
        | AwsErrorKind::IdempotencyConflict
        | AwsErrorKind::Other => {}
    }
}

fn call(kind: AwsErrorKind) -> AwsCallError {
    AwsCallError {
        kind,
        code: format!("{kind:?}"),
        message: "what AWS said".into(),
    }
}

/// Every way a failed call reaches a flow's caller, for one call.
fn surfaced(cause: AwsCallError) -> Vec<(&'static str, Box<dyn AwsCaused>)> {
    let report = || ReportReadError::Aws {
        bucket: "reports".into(),
        key: "job-1/manifest.json".into(),
        cause: cause.clone(),
    };
    let manifest = || LaunchError::ManifestNotReadable {
        bucket: "b".into(),
        key: "k".into(),
        cause: cause.clone(),
        fix: String::new(),
    };
    let delta = || DeltaError::Aws {
        what: "reading the index".into(),
        cause: cause.clone(),
    };
    let workflow = || WorkflowError::Aws {
        what: "reading the plan".into(),
        cause: cause.clone(),
    };
    vec![
        ("launch: manifest", Box::new(manifest())),
        ("workflow", Box::new(workflow())),
        (
            "workflow: launch",
            Box::new(WorkflowError::from(manifest())),
        ),
        ("delta", Box::new(delta())),
        ("run", Box::new(RunError::Delta(delta()))),
        (
            "run: aws",
            Box::new(RunError::Aws {
                what: "downloading".into(),
                cause: cause.clone(),
            }),
        ),
        ("run: workflow", Box::new(RunError::from(workflow()))),
        (
            "run: launch",
            Box::new(RunError::Launch(Box::new(manifest()))),
        ),
        ("monitor: report", Box::new(MonitorError::Report(report()))),
        ("monitor: delta", Box::new(MonitorError::Delta(delta()))),
        (
            "monitor: aws",
            Box::new(MonitorError::Aws {
                what: "describing the job".into(),
                cause: cause.clone(),
            }),
        ),
        ("report", Box::new(report())),
        ("redrive: report", Box::new(RedriveError::Report(report()))),
        ("redrive: launch", Box::new(RedriveError::from(manifest()))),
        (
            "redrive: aws",
            Box::new(RedriveError::Aws {
                what: "tags".into(),
                cause,
            }),
        ),
    ]
}

#[test]
fn every_flow_retries_exactly_the_throttled_and_transient_calls() {
    for kind in KINDS {
        let expected = matches!(kind, AwsErrorKind::Throttled | AwsErrorKind::Transient);
        assert_eq!(kind.is_retryable(), expected, "{kind:?}");
        for (flow, error) in surfaced(call(kind)) {
            assert_eq!(error.is_retryable(), expected, "{flow} with {kind:?}");
            assert_eq!(
                error.aws_cause().map(|c| c.kind),
                Some(kind),
                "{flow} keeps the call it failed with"
            );
        }
    }
}

/// CreateJob still throttled after the launcher's attempts: retryable like any throttled call.
#[test]
fn a_launch_that_gave_up_on_throttling_is_retryable_and_a_refusal_is_not() {
    let gave_up = LaunchError::GaveUp {
        attempts: 6,
        cause: call(AwsErrorKind::Throttled),
    };
    assert!(gave_up.is_retryable());
    let refused = LaunchError::Rejected {
        cause: call(AwsErrorKind::BadRequest),
    };
    assert!(!refused.is_retryable());
    let mismatch = LaunchError::ManifestEtagMismatch {
        bucket: "b".into(),
        key: "k".into(),
        expected: "1".into(),
        found: "2".into(),
    };
    assert!(!mismatch.is_retryable() && mismatch.aws_cause().is_none());
}
