//! The jobs adapter checked with aws-smithy-mocks: the exact DescribeJob, GetJobTagging and
//! ListJobs requests S3 Control receives, and how their answers become Ferry's types.

use std::sync::{Arc, Mutex};

use aws_sdk_s3control::operation::describe_job::{DescribeJobInput, DescribeJobOutput};
use aws_sdk_s3control::operation::get_job_tagging::{GetJobTaggingInput, GetJobTaggingOutput};
use aws_sdk_s3control::operation::list_jobs::{ListJobsInput, ListJobsOutput};
use aws_sdk_s3control::types::{
    JobDescriptor, JobFailure, JobListDescriptor, JobOperation, JobProgressSummary, JobReport,
    JobReportScope, JobStatus, LambdaInvokeOperation, OperationName, S3Tag,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::DateTime;
use ferry_aws::AwsLaunchApi;
use ferry_flows::report::jobs::{JobOperationKind, JobsApi, ReportLocation};

fn api(rules: &[&aws_smithy_mocks::Rule]) -> AwsLaunchApi {
    AwsLaunchApi::new(
        mock_client!(aws_sdk_s3, []),
        mock_client!(aws_sdk_s3control, RuleMode::MatchAny, rules),
    )
}

#[tokio::test]
async fn describe_job_asks_for_the_job_and_keeps_what_ferry_needs() {
    let seen: Arc<Mutex<Vec<DescribeJobInput>>> = Arc::default();
    let recorder = seen.clone();
    let describe = mock!(aws_sdk_s3control::Client::describe_job)
        .match_requests(move |i| {
            recorder.lock().unwrap().push(i.clone());
            true
        })
        .then_output(|| {
            DescribeJobOutput::builder()
                .job(
                    JobDescriptor::builder()
                        .job_id("j-1")
                        .status(JobStatus::Failed)
                        .operation(
                            JobOperation::builder()
                                .lambda_invoke(
                                    LambdaInvokeOperation::builder()
                                        .function_arn("arn:aws:lambda:eu-west-1:222222222222:function:large-object-copier")
                                        .build(),
                                )
                                .build(),
                        )
                        .progress_summary(
                            JobProgressSummary::builder()
                                .total_number_of_tasks(2000)
                                .number_of_tasks_succeeded(400)
                                .number_of_tasks_failed(1100)
                                .build(),
                        )
                        .failure_reasons(
                            JobFailure::builder()
                                .failure_code("TaskFailureThresholdExceeded")
                                .failure_reason("More than 50% of tasks failed")
                                .build(),
                        )
                        .report(
                            JobReport::builder()
                                .bucket("arn:aws:s3:::acme-reports")
                                .enabled(true)
                                .prefix("ferry/photos")
                                .report_scope(JobReportScope::FailedTasksOnly)
                                .build(),
                        )
                        .creation_time(DateTime::from_secs(1_000))
                        .termination_date(DateTime::from_secs(4_600))
                        .build(),
                )
                .build()
        });
    let info = api(&[&describe])
        .describe_job("222222222222", "j-1")
        .await
        .unwrap();
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (request.account_id(), request.job_id()),
        (Some("222222222222"), Some("j-1"))
    );
    assert_eq!(
        info.operation,
        JobOperationKind::LambdaInvoke {
            function_arn: "arn:aws:lambda:eu-west-1:222222222222:function:large-object-copier"
                .into()
        }
    );
    assert_eq!(
        (info.total_tasks, info.succeeded_tasks, info.failed_tasks),
        (Some(2000), Some(400), Some(1100))
    );
    assert_eq!(
        info.report,
        Some(ReportLocation {
            enabled: true,
            bucket: "acme-reports".into(),
            prefix: "ferry/photos".into(),
            scope: "FailedTasksOnly".into()
        })
    );
    assert_eq!(info.elapsed_seconds(0), Some(3_600));
    assert_eq!(
        info.failure_reasons,
        [(
            "TaskFailureThresholdExceeded".to_string(),
            "More than 50% of tasks failed".to_string()
        )]
    );
    assert!(info.hit_failure_threshold());
    // Each of the rule's two signals survives the mapping on its own (the rule itself, branch by
    // branch, is tested in ferry-flows's report::jobs): the counts, with the reasons taken away
    // (1,500 ran, 1,100 failed) ...
    let counts_only = ferry_flows::report::jobs::JobInfo {
        failure_reasons: Vec::new(),
        ..info.clone()
    };
    assert!(counts_only.hit_failure_threshold());
    // ... and the reasons, with counts past 1,000 tasks that lag the rule (45 % failed).
    let reasons_only = ferry_flows::report::jobs::JobInfo {
        succeeded_tasks: Some(605),
        failed_tasks: Some(495),
        ..info
    };
    assert!(reasons_only.hit_failure_threshold());
}

#[tokio::test]
async fn tags_and_every_page_of_list_jobs() {
    let tag_requests: Arc<Mutex<Vec<GetJobTaggingInput>>> = Arc::default();
    let t = tag_requests.clone();
    let tags = mock!(aws_sdk_s3control::Client::get_job_tagging)
        .match_requests(move |i| {
            t.lock().unwrap().push(i.clone());
            true
        })
        .then_output(|| {
            GetJobTaggingOutput::builder()
                .tags(
                    S3Tag::builder()
                        .key("ferry:transfer")
                        .value("photos")
                        .build()
                        .unwrap(),
                )
                .build()
        });
    let list_requests: Arc<Mutex<Vec<ListJobsInput>>> = Arc::default();
    let l = list_requests.clone();
    let row = |id: &str, created: i64| {
        JobListDescriptor::builder()
            .job_id(id)
            .status(JobStatus::Active)
            .operation(OperationName::S3PutObjectCopy)
            .creation_time(DateTime::from_secs(created))
            .build()
    };
    let (first, second) = (row("old", 10), row("new", 20));
    let list = mock!(aws_sdk_s3control::Client::list_jobs)
        .match_requests(move |i| {
            l.lock().unwrap().push(i.clone());
            true
        })
        .sequence()
        .output(move || {
            ListJobsOutput::builder()
                .jobs(first.clone())
                .next_token("page-2")
                .build()
        })
        .output(move || ListJobsOutput::builder().jobs(second.clone()).build())
        .build();
    let api = api(&[&tags, &list]);
    let got = api.job_tags("222222222222", "j-1").await.unwrap();
    assert_eq!(
        (got[0].key.as_str(), got[0].value.as_str()),
        ("ferry:transfer", "photos")
    );
    assert_eq!(tag_requests.lock().unwrap()[0].job_id(), Some("j-1"));
    let jobs = api.list_jobs("222222222222").await.unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["new", "old"], "newest first, both pages");
    assert_eq!(jobs[0].operation, "S3PutObjectCopy");
    let requests = list_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].account_id(), Some("222222222222"));
    assert_eq!(requests[1].next_token(), Some("page-2"));
}
