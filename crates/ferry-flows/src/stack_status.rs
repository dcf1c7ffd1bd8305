//! Is the stack in an operation? stack-handler acts on a custom-resource event only while the
//! stack it serves (the pinned `FERRY_STACK_ID`) has a status ending in `_IN_PROGRESS` (#15,
//! forged events that match the pins).
//!
//! Why: the pins ([`crate::stack_pins`]) refuse an event that differs from the template, but an
//! event equal to it can still be written by anyone allowed `lambda:InvokeFunction` on the
//! function: a Delete (the batch role removed, with `CancelJobsOnDelete` the transfer's jobs
//! cancelled) or a FirstJob Create/Update (a pending approval wait marked over). CloudFormation
//! sends custom-resource requests only while it runs an operation on the stack (create, update,
//! delete, their rollbacks and cleanups, import), and for as long as one runs the stack's
//! `StackStatus` is one of the `*_IN_PROGRESS` values (CloudFormation API Reference, `Stack`,
//! `StackStatus`; the enum is [`STACK_STATUSES`], copied from botocore's service model). Outside
//! an operation (`CREATE_COMPLETE`, `UPDATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, a `*_FAILED`,
//! `DELETE_COMPLETE`, ...) no request of CloudFormation's can be waiting for an answer, so an
//! event then is not CloudFormation's and nothing of it is done.
//!
//! Why the stack's status and not the resource's (`DescribeStackResource`): AWS doesn't pin down
//! what a custom resource's own `ResourceStatus` shows while CloudFormation waits for the
//! function's answer (when it turns `DELETE_IN_PROGRESS` relative to the invocation, what a
//! replaced resource's Delete shows during `UPDATE_COMPLETE_CLEANUP_IN_PROGRESS`, a Delete during
//! a rollback, ...), and a wrong guess refuses a real Delete and leaves the role behind. The
//! stack's status is in progress for the whole of any operation, whatever the per-resource
//! semantics, so this check holds under any of them.
//!
//! What it doesn't close: an event forged *during* a real operation of the stack (one someone
//! who may update or delete the stack started) passes, as CloudFormation's own does.
//!
//! A `DescribeStacks` that fails decides nothing: throttling and server errors are retried a few
//! times, then the event is refused as unverified ([`NotInOperation::Unknown`]) and stack-handler
//! answers FAILED (a Delete too: see `ferry_aws::custom_resource`).

use crate::aws_error::{AwsCallError, AwsErrorKind, RetryPolicy};
use crate::ports::{LaunchApi, StackStatusApi};

/// Every `StackStatus` value of CloudFormation's API, in the model's order: botocore
/// `botocore/data/cloudformation/2010-05-15/service-2.json`, shape `StackStatus` (commit
/// 0e6e2404b85dc336dd2889814e089bde7d1a4c55, Aug 2026). Ten of them end in `_IN_PROGRESS`.
pub const STACK_STATUSES: &[&str] = &[
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
    "DELETE_IN_PROGRESS",
    "DELETE_FAILED",
    "DELETE_COMPLETE",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
];

/// What every status of a running operation ends in.
pub const IN_PROGRESS_SUFFIX: &str = "_IN_PROGRESS";

/// Whether a stack with this `StackStatus` is in an operation, so that CloudFormation may be
/// waiting for a custom resource's answer. By suffix, so a status AWS adds later for a new kind
/// of operation (as it added `IMPORT_*`) counts too.
pub fn in_operation(status: &str) -> bool {
    status.ends_with(IN_PROGRESS_SUFFIX)
}

/// Statuses in which CloudFormation only deletes (a stack's deletion, the clean-up after an
/// update or its rollback, the rollback of a failed creation) or sends nothing yet
/// (`REVIEW_IN_PROGRESS`: a change set not executed). A Create or Update in one of them is not
/// CloudFormation's: re-creating the batch role while the stack is deleted would leave a role
/// the source account trusts with no stack to remove it. (CloudFormation User Guide, "Stack
/// status codes"; rollbacks of updates do send Updates, in `UPDATE_ROLLBACK_IN_PROGRESS`.)
pub const DELETES_ONLY: [&str; 5] = [
    "DELETE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "ROLLBACK_IN_PROGRESS",
    "REVIEW_IN_PROGRESS",
];

/// Whether CloudFormation may send a request of `request_type` (`Create`, `Update`, `Delete`)
/// while the stack is `status` (already known to be in an operation).
pub fn may_send(request_type: &str, status: &str) -> bool {
    request_type == "Delete" || !DELETES_ONLY.contains(&status)
}

/// Why an event was not acted on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NotInOperation {
    /// The stack is in no operation: CloudFormation sent no request now.
    #[error(
        "refused: stack {stack_id} is {status}, in no operation (CloudFormation sends custom \
         resource requests only while the stack's status ends in {IN_PROGRESS_SUFFIX}), so this \
         event was not sent by CloudFormation; nothing was done"
    )]
    Steady { stack_id: String, status: String },
    /// The stack is in an operation that sends no request of this type.
    #[error(
        "refused: stack {stack_id} is {status}, an operation in which CloudFormation sends no \
         {request_type} request (only Deletes), so this event was not sent by CloudFormation; \
         nothing was done"
    )]
    WrongPhase {
        stack_id: String,
        status: String,
        request_type: String,
    },
    /// The stack's status could not be read: the event can't be told from a forged one.
    #[error(
        "refused: stack-handler could not read the status of stack {stack_id} \
         (cloudformation:DescribeStacks, {attempts} attempt(s): {cause}), so it can't tell this \
         event from a forged one; nothing was done. Retry the stack operation once DescribeStacks \
         works (a Delete: delete the stack again)"
    )]
    Unknown {
        stack_id: String,
        attempts: u32,
        cause: AwsCallError,
    },
}

/// Asks CloudFormation for `stack_id`'s status (retrying throttling and server errors under
/// `retry`, pausing with the ports' [`LaunchApi::pause`]) and returns it if the stack is in an
/// operation.
pub async fn check_in_operation<A>(
    api: &A,
    stack_id: &str,
    retry: RetryPolicy,
) -> Result<String, NotInOperation>
where
    A: StackStatusApi + LaunchApi + Sync,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.stack_status(stack_id).await {
            Ok(status) if in_operation(&status) => return Ok(status),
            Ok(status) => {
                return Err(NotInOperation::Steady {
                    stack_id: stack_id.to_string(),
                    status,
                })
            }
            Err(cause) => {
                // AccessDenied too: on a first deploy the function's role policy may not have
                // reached every IAM endpoint yet (IAM is eventually consistent: IAM User Guide,
                // "Troubleshoot IAM", changes "take time to become visible"), and failing the
                // first event would roll the stack back. A grant that is really missing is still
                // refused after the last attempt.
                let retryable = cause.is_retryable() || cause.kind == AwsErrorKind::AccessDenied;
                if !retryable || attempt >= retry.max_attempts.max(1) {
                    return Err(NotInOperation::Unknown {
                        stack_id: stack_id.to_string(),
                        attempts: attempt,
                        cause,
                    });
                }
                api.pause(retry.pause_after(attempt)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManifestHead;
    use ferry_plan::job::CreateJobRequest;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Answers DescribeStacks from a script, one answer per call.
    struct Scripted(Mutex<Vec<Result<String, AwsCallError>>>);

    impl StackStatusApi for Scripted {
        async fn stack_status(&self, _stack_id: &str) -> Result<String, AwsCallError> {
            self.0.lock().unwrap().remove(0)
        }
    }

    impl LaunchApi for Scripted {
        async fn head_manifest(&self, _: &str, _: &str) -> Result<ManifestHead, AwsCallError> {
            unreachable!()
        }
        async fn get_manifest(&self, _: &str, _: &str, _: &str) -> Result<Vec<u8>, AwsCallError> {
            unreachable!()
        }
        async fn create_job(&self, _: &CreateJobRequest) -> Result<String, AwsCallError> {
            unreachable!()
        }
        async fn pause(&self, _: Duration) {}
    }

    fn error(kind: AwsErrorKind, code: &str) -> AwsCallError {
        AwsCallError {
            kind,
            code: code.to_string(),
            message: "m".to_string(),
        }
    }

    const STACK: &str = "arn:aws:cloudformation:eu-west-1:222233334444:stack/ferry/abc";

    async fn check(script: Vec<Result<String, AwsCallError>>) -> Result<String, NotInOperation> {
        let api = Scripted(Mutex::new(script));
        let retry = RetryPolicy {
            max_attempts: 3,
            first_pause: Duration::ZERO,
            max_pause: Duration::ZERO,
        };
        check_in_operation(&api, STACK, retry).await
    }

    #[test]
    fn creates_and_updates_only_in_operations_that_send_them() {
        for status in DELETES_ONLY {
            assert!(
                in_operation(status) && STACK_STATUSES.contains(&status),
                "{status}"
            );
            assert!(may_send("Delete", status));
            assert!(
                !may_send("Create", status) && !may_send("Update", status),
                "{status}"
            );
        }
        for status in [
            "CREATE_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
        ] {
            assert!(
                may_send("Create", status) && may_send("Update", status),
                "{status}"
            );
        }
    }

    #[test]
    fn exactly_the_ten_in_progress_statuses_are_operations() {
        let running: Vec<&str> = STACK_STATUSES
            .iter()
            .copied()
            .filter(|s| in_operation(s))
            .collect();
        assert_eq!(
            running,
            [
                "CREATE_IN_PROGRESS",
                "ROLLBACK_IN_PROGRESS",
                "DELETE_IN_PROGRESS",
                "UPDATE_IN_PROGRESS",
                "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                "REVIEW_IN_PROGRESS",
                "IMPORT_IN_PROGRESS",
                "IMPORT_ROLLBACK_IN_PROGRESS",
            ]
        );
    }

    #[tokio::test]
    async fn a_stack_in_an_operation_passes_and_a_steady_one_is_refused() {
        assert_eq!(
            check(vec![Ok("UPDATE_IN_PROGRESS".into())]).await,
            Ok("UPDATE_IN_PROGRESS".into())
        );
        for steady in [
            "CREATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "DELETE_COMPLETE",
            "",
        ] {
            let err = check(vec![Ok(steady.into())]).await.unwrap_err();
            assert!(
                matches!(&err, NotInOperation::Steady { status, .. } if status == steady),
                "{err:?}"
            );
            assert!(err.to_string().contains("nothing was done"), "{err}");
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_and_then_gives_up_unverified() {
        let throttled = || Err(error(AwsErrorKind::Throttled, "Throttling"));
        assert_eq!(
            check(vec![throttled(), Ok("DELETE_IN_PROGRESS".into())]).await,
            Ok("DELETE_IN_PROGRESS".into())
        );
        let err = check(vec![throttled(), throttled(), throttled()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, NotInOperation::Unknown { attempts: 3, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_denied_describe_stacks_is_retried_for_iam_to_settle_then_decides_nothing() {
        let denied = || Err(error(AwsErrorKind::AccessDenied, "AccessDenied"));
        // A role policy that reaches IAM a moment late: the second try passes.
        assert_eq!(
            check(vec![denied(), Ok("CREATE_IN_PROGRESS".into())]).await,
            Ok("CREATE_IN_PROGRESS".into())
        );
        let err = check(vec![denied(), denied(), denied()]).await.unwrap_err();
        assert!(
            matches!(&err, NotInOperation::Unknown { attempts: 3, cause, .. } if cause.code == "AccessDenied"),
            "{err:?}"
        );
        assert!(err.to_string().contains("DescribeStacks"), "{err}");
    }
}
