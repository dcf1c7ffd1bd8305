//! Is the invocation from a Batch Operations job of this stack? (#15, item 6)
//!
//! Batch Operations calls `lambda:InvokeFunction` with the job role's credentials (S3 User
//! Guide, "Invoke AWS Lambda function": the role needs `lambda:InvokeFunction` on the function),
//! so to Lambda a job's call looks like any other call by a principal of the account that may
//! invoke the function. A resource-based policy can't tell them apart (same-account callers need
//! only their identity policy, and Lambda resource policies can't deny), and Lambda gives the
//! function no caller identity. What the payload does carry is `job.id` (invocation schemas
//! 1.0 and 2.0). The copier looks that job up as its own role, DescribeJob and GetJobTagging in
//! its own account and Region (S3 Control API Reference, DescribeJob: `JobDescriptor` with
//! `Operation.LambdaInvoke` {`FunctionArn`, `InvocationSchemaVersion`, `UserArguments`},
//! `RoleArn`, `Status`; GetJobTagging), and acts only for a job that
//! - invokes this very function (`FunctionArn`, unqualified or qualified),
//! - runs as the transfer's batch role (`RoleArn`): creating such a job takes `iam:PassRole` on
//!   that role, which only principals trusted with the transfer have: the confused-deputy guard
//!   AWS documents for Batch Operations ("Granting permissions for Batch Operations");
//! - is tagged `ferry:transfer` = this transfer (every job Ferry creates is),
//! - was created with the same invocation schema and exactly the `UserArguments` the payload
//!   carries (so the payload's settings are the job's, not the caller's),
//! - is `Active` (tasks run only then: "Job statuses"); a finished job is refused for good, one
//!   not yet or no longer active for now (`TemporaryFailure`).
//!
//! What a job can't vouch for by itself: the task's bucket, key and version. The bucket is
//! pinned ([`super::pins`]); the (bucket, key, version id) must be a row of the job's own
//! manifest, read as the job was created with it ([`super::job_manifest`], from
//! [`InvokingJob::manifest`]).

use std::collections::BTreeMap;

use super::task::InvocationRequest;
use crate::aws_error::{AwsCallError, AwsErrorKind};
use crate::job_manifest::JobManifestRef;

/// What DescribeJob and GetJobTagging say about a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokingJob {
    pub job_id: String,
    /// `JobDescriptor.Status` (`Active`, `Complete`, ...).
    pub status: String,
    pub role_arn: Option<String>,
    pub operation: JobOperationFacts,
    pub tags: BTreeMap<String, String>,
    /// `JobDescriptor.Manifest`; `None` for a job without one (a manifest generator's).
    pub manifest: Option<JobManifestRef>,
}

/// The job's operation as far as the check needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum JobOperationFacts {
    LambdaInvoke {
        function_arn: String,
        /// `None` when DescribeJob leaves it out: the default, `1.0`.
        invocation_schema_version: Option<String>,
        user_arguments: BTreeMap<String, String>,
    },
    /// Any other operation, by its name in `JobOperation` (`S3PutObjectCopy`, ...).
    Other(String),
    #[default]
    Unknown,
}

/// What the copier expects of the jobs that invoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobExpectations {
    pub account_id: String,
    /// The copier's unqualified ARN.
    pub function_arn: String,
    /// The transfer's batch role.
    pub role_arn: String,
    pub transfer_name: String,
}

/// Why an invocation is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobRefusal {
    #[error(
        "the invocation names no job (job.id is empty): only S3 Batch Operations jobs of this stack may invoke the copier"
    )]
    NoJobId,
    #[error(
        "job {job_id} is not a Batch Operations job of account {account_id} in this Region (DescribeJob: {detail}): \
         only this stack's jobs may invoke the copier"
    )]
    UnknownJob {
        job_id: String,
        account_id: String,
        detail: String,
    },
    #[error(
        "the copier may not look up job {job_id} (DescribeJob/GetJobTagging refused: {detail}): its execution role \
         needs s3:DescribeJob and s3:GetJobTagging on arn:<partition>:s3:<region>:{account_id}:job/* (the stack grants \
         them)"
    )]
    LookupDenied {
        job_id: String,
        account_id: String,
        detail: String,
    },
    #[error(
        "looking up job {job_id} failed for now ({detail}); Batch Operations retries the task"
    )]
    LookupFailed { job_id: String, detail: String },
    #[error(
        "job {job_id} is a {operation} job, not a LambdaInvoke job of {expected}: only this stack's large-object jobs \
         may invoke the copier"
    )]
    NotLambdaInvoke {
        job_id: String,
        operation: String,
        expected: String,
    },
    #[error(
        "job {job_id} invokes {function_arn}, not this function ({expected}): only this stack's large-object jobs may \
         invoke the copier"
    )]
    OtherFunction {
        job_id: String,
        function_arn: String,
        expected: String,
    },
    #[error(
        "job {job_id} runs as {role_arn}, not as the transfer's batch role {expected}: the copier acts only for jobs \
         created by someone allowed to pass that role (iam:PassRole)"
    )]
    OtherRole {
        job_id: String,
        role_arn: String,
        expected: String,
    },
    #[error(
        "job {job_id} is tagged ferry:transfer = {found}, not {expected:?}: Ferry tags every job of this transfer so"
    )]
    NotThisTransfer {
        job_id: String,
        found: String,
        expected: String,
    },
    #[error(
        "the invocation says schema {payload:?}, job {job_id} was created with InvocationSchemaVersion {job:?}: the \
         payload is not the job's"
    )]
    OtherSchema {
        job_id: String,
        payload: String,
        job: String,
    },
    #[error(
        "userArguments differ from job {job_id}'s UserArguments in {keys}: the copier copies with the settings the \
         job was created with, never with the caller's"
    )]
    OtherArguments { job_id: String, keys: String },
    #[error(
        "job {job_id} is {status}: its tasks are no longer run (an invocation for a finished job is not Batch Operations')"
    )]
    Finished { job_id: String, status: String },
    #[error(
        "job {job_id} is {status}, not Active: Batch Operations retries the task once it runs"
    )]
    NotActive { job_id: String, status: String },
}

impl JobRefusal {
    /// Whether Batch Operations should retry the task (`TemporaryFailure`).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            JobRefusal::LookupFailed { .. } | JobRefusal::NotActive { .. }
        )
    }

    /// The refusal for a failed DescribeJob/GetJobTagging.
    pub fn from_lookup(job_id: &str, account_id: &str, e: &AwsCallError) -> Self {
        let detail = e.to_string();
        match e.kind {
            AwsErrorKind::NotFound => JobRefusal::UnknownJob {
                job_id: job_id.into(),
                account_id: account_id.into(),
                detail,
            },
            AwsErrorKind::AccessDenied => JobRefusal::LookupDenied {
                job_id: job_id.into(),
                account_id: account_id.into(),
                detail,
            },
            // S3 Control answers an id that isn't a job id's shape with a 400.
            AwsErrorKind::BadRequest => JobRefusal::UnknownJob {
                job_id: job_id.into(),
                account_id: account_id.into(),
                detail,
            },
            _ => JobRefusal::LookupFailed {
                job_id: job_id.into(),
                detail,
            },
        }
    }
}

/// `arn:…:function:NAME` or `arn:…:function:NAME:QUALIFIER` is `function` (unqualified).
fn same_function(job_function: &str, function: &str) -> bool {
    job_function == function
        || job_function
            .strip_prefix(function)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|q| !q.is_empty() && !q.contains(':'))
}

/// Job statuses after which no task runs (S3 User Guide, "Job statuses").
const FINISHED: [&str; 3] = ["Complete", "Failed", "Cancelled"];

/// Checks the job an invocation names against what this copier serves.
pub fn check_invoking_job(
    job: &InvokingJob,
    expect: &JobExpectations,
    request: &InvocationRequest,
) -> Result<(), JobRefusal> {
    let job_id = job.job_id.clone();
    let (function_arn, schema, user_arguments) = match &job.operation {
        JobOperationFacts::LambdaInvoke {
            function_arn,
            invocation_schema_version,
            user_arguments,
        } => (function_arn, invocation_schema_version, user_arguments),
        other => {
            return Err(JobRefusal::NotLambdaInvoke {
                job_id,
                operation: match other {
                    JobOperationFacts::Other(name) => name.clone(),
                    _ => "unknown".into(),
                },
                expected: expect.function_arn.clone(),
            })
        }
    };
    if !same_function(function_arn, &expect.function_arn) {
        return Err(JobRefusal::OtherFunction {
            job_id,
            function_arn: function_arn.clone(),
            expected: expect.function_arn.clone(),
        });
    }
    let role = job.role_arn.clone().unwrap_or_default();
    if role != expect.role_arn {
        return Err(JobRefusal::OtherRole {
            job_id,
            role_arn: if role.is_empty() {
                "(no role)".into()
            } else {
                role
            },
            expected: expect.role_arn.clone(),
        });
    }
    match job.tags.get(ferry_plan::job::TRANSFER_TAG) {
        Some(name) if *name == expect.transfer_name => {}
        found => {
            return Err(JobRefusal::NotThisTransfer {
                job_id,
                found: found.map_or("(no tag)".into(), |f| format!("{f:?}")),
                expected: expect.transfer_name.clone(),
            })
        }
    }
    let job_schema = schema.clone().unwrap_or_else(|| "1.0".to_string());
    if request.invocation_schema_version != job_schema {
        return Err(JobRefusal::OtherSchema {
            job_id,
            payload: request.invocation_schema_version.clone(),
            job: job_schema,
        });
    }
    let empty = BTreeMap::new();
    let payload = request.job.user_arguments.as_ref().unwrap_or(&empty);
    if payload != user_arguments {
        let differing: Vec<&str> = payload
            .keys()
            .chain(user_arguments.keys())
            .filter(|k| payload.get(*k) != user_arguments.get(*k))
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(JobRefusal::OtherArguments {
            job_id,
            keys: differing.join(", "),
        });
    }
    if FINISHED.contains(&job.status.as_str()) {
        return Err(JobRefusal::Finished {
            job_id,
            status: job.status.clone(),
        });
    }
    if job.status != "Active" {
        return Err(JobRefusal::NotActive {
            job_id,
            status: if job.status.is_empty() {
                "(no status)".into()
            } else {
                job.status.clone()
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large_object::task::InvocationJob;

    const FUNCTION: &str =
        "arn:aws:lambda:us-east-1:222222222222:function:ferry-large-object-copier";
    const ROLE: &str = "arn:aws:iam::222222222222:role/ferry-media-batch";

    fn expect() -> JobExpectations {
        JobExpectations {
            account_id: "222222222222".into(),
            function_arn: FUNCTION.into(),
            role_arn: ROLE.into(),
            transfer_name: "media".into(),
        }
    }

    fn args() -> BTreeMap<String, String> {
        BTreeMap::from([("destinationBucket".to_string(), "dst".to_string())])
    }

    fn job() -> InvokingJob {
        InvokingJob {
            job_id: "j1".into(),
            status: "Active".into(),
            role_arn: Some(ROLE.into()),
            operation: JobOperationFacts::LambdaInvoke {
                function_arn: FUNCTION.into(),
                invocation_schema_version: Some("2.0".into()),
                user_arguments: args(),
            },
            tags: BTreeMap::from([("ferry:transfer".to_string(), "media".to_string())]),
            manifest: None,
        }
    }

    fn request(user_arguments: Option<BTreeMap<String, String>>) -> InvocationRequest {
        InvocationRequest {
            invocation_schema_version: "2.0".into(),
            invocation_id: "i".into(),
            job: InvocationJob {
                id: "j1".into(),
                user_arguments,
            },
            tasks: vec![],
        }
    }

    #[test]
    fn only_an_active_lambda_job_of_this_function_role_and_transfer() {
        let ok = request(Some(args()));
        assert_eq!(check_invoking_job(&job(), &expect(), &ok), Ok(()));
        let mut qualified = job();
        qualified.operation = JobOperationFacts::LambdaInvoke {
            function_arn: format!("{FUNCTION}:live"),
            invocation_schema_version: Some("2.0".into()),
            user_arguments: args(),
        };
        assert_eq!(check_invoking_job(&qualified, &expect(), &ok), Ok(()));

        let refused = |j: InvokingJob, r: &InvocationRequest| {
            check_invoking_job(&j, &expect(), r).expect_err("refused")
        };
        let mut copy = job();
        copy.operation = JobOperationFacts::Other("S3PutObjectCopy".into());
        assert!(matches!(
            refused(copy, &ok),
            JobRefusal::NotLambdaInvoke { .. }
        ));
        let mut other = job();
        other.operation = JobOperationFacts::LambdaInvoke {
            function_arn: format!("{FUNCTION}-other"),
            invocation_schema_version: Some("2.0".into()),
            user_arguments: args(),
        };
        assert!(matches!(
            refused(other, &ok),
            JobRefusal::OtherFunction { .. }
        ));
        let mut role = job();
        role.role_arn = Some("arn:aws:iam::222222222222:role/someone".into());
        assert!(matches!(refused(role, &ok), JobRefusal::OtherRole { .. }));
        let mut untagged = job();
        untagged.tags.clear();
        assert!(matches!(
            refused(untagged, &ok),
            JobRefusal::NotThisTransfer { .. }
        ));
        let mut changed = args();
        changed.insert("keyPrefix".into(), "elsewhere".into());
        let text = refused(job(), &request(Some(changed))).to_string();
        assert!(text.contains("in keyPrefix"), "{text}");
        let mut done = job();
        done.status = "Complete".into();
        let e = refused(done, &ok);
        assert!(matches!(e, JobRefusal::Finished { .. }) && !e.is_temporary());
        let mut early = job();
        early.status = "Ready".into();
        assert!(refused(early, &ok).is_temporary());
    }
}
