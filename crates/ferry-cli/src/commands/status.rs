//! `ferry status [JOB_ID]`: Ferry's Batch Operations jobs (those tagged `ferry:transfer`), or
//! one job with a live progress bar — succeeded/failed/total, rate, ETA — polled no faster
//! than every 30 s (AWS's guidance for DescribeJob) until it finishes. `--format json` prints
//! one snapshot for scripts.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ferry_aws::AwsLaunchApi;
use ferry_flows::aws_error::AwsCallError;
use ferry_flows::ports::is_terminal_job_status;
use ferry_flows::report::jobs::{ferry_tags, JobInfo, JobListing, JobsApi, MIN_POLL_SECONDS};
use ferry_flows::report::progress::{Progress, ProgressSample};
use ferry_flows::report::summary::thousands;
use ferry_plan::job::{PLAN_TAG, TRANSFER_TAG};
use serde::Serialize;

use super::EXIT_BAD_INPUT;
use ferry_plan::aws_names::check_job_id;

#[derive(Args)]
pub struct StatusArgs {
    /// A job id: show that job (live until it finishes). Without it: list Ferry's jobs.
    job_id: Option<String>,
    #[command(flatten)]
    target: AwsTarget,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print the job once instead of following it.
    #[arg(long)]
    once: bool,
    /// Seconds between polls while following a job (at least 30).
    #[arg(long, default_value_t = MIN_POLL_SECONDS)]
    interval: u64,
    /// At most this many of the newest jobs are checked for Ferry's tags when listing.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Which account's jobs, in which Region (S3 Control is regional).
#[derive(Args)]
pub struct AwsTarget {
    /// The job Region (the destination Region); default: the AWS config's Region.
    #[arg(long)]
    pub region: Option<String>,
    /// The account that owns the jobs (the destination account); default: the caller's.
    #[arg(long)]
    pub account_id: Option<String>,
}

impl AwsTarget {
    /// Checks a job id and `--account-id` before any call; prints why not (exit 2).
    pub fn check(&self, job_id: Option<&str>) -> Result<(), ExitCode> {
        if let Some(id) = job_id {
            if let Err(message) = check_job_id(id) {
                eprintln!("error: JOB_ID = {id:?}: {message}");
                return Err(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
        if let Some(bad) = self
            .account_id
            .as_deref()
            .filter(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            eprintln!("error: --account-id = {bad:?}: an AWS account id is 12 digits");
            return Err(ExitCode::from(EXIT_BAD_INPUT));
        }
        Ok(())
    }
}

/// The SDK config for the target Region and the account id (from STS when not given).
pub async fn aws_context(
    target: &AwsTarget,
) -> Result<(aws_config::SdkConfig, String), AwsCallError> {
    let mut loader = aws_config::from_env();
    if let Some(region) = &target.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(AwsCallError {
            kind: ferry_flows::aws_error::AwsErrorKind::BadRequest,
            code: "NoRegion".to_string(),
            message: "no Region: pass --region (the job Region) or set AWS_REGION".to_string(),
        });
    }
    let account_id = match &target.account_id {
        Some(a) => a.clone(),
        None => aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| ferry_aws::errors::classify(&e))?
            .account()
            .unwrap_or_default()
            .to_string(),
    };
    Ok((config, account_id))
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// One of Ferry's jobs in the list.
#[derive(Debug, Serialize)]
struct ListedJob {
    transfer: String,
    plan: Option<String>,
    #[serde(flatten)]
    job: JobListing,
}

/// One job in JSON.
#[derive(Debug, Serialize)]
struct JobSnapshot {
    transfer: Option<String>,
    plan: Option<String>,
    job: JobInfo,
    progress: Progress,
}

pub fn run(args: &StatusArgs) -> ExitCode {
    if let Err(code) = args.target.check(args.job_id.as_deref()) {
        return code;
    }
    if args.interval < MIN_POLL_SECONDS {
        eprintln!(
            "error: --interval = {}: DescribeJob should not be polled more often than every {MIN_POLL_SECONDS} s; use {MIN_POLL_SECONDS} or more",
            args.interval
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let (config, account_id) = aws_context(&args.target).await.map_err(|e| e.to_string())?;
        let api = AwsLaunchApi::new(
            aws_sdk_s3::Client::new(&config),
            aws_sdk_s3control::Client::new(&config),
        );
        let mut out = std::io::stdout();
        match &args.job_id {
            None => list(&api, &account_id, args, &mut out).await,
            Some(job_id) => show(&api, &account_id, job_id, args, &mut out).await,
        }
        .map_err(|e| format!("{e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn list<A: JobsApi + Sync>(
    api: &A,
    account_id: &str,
    args: &StatusArgs,
    out: &mut impl Write,
) -> Result<(), AwsCallError> {
    let mut listed = Vec::new();
    for job in api
        .list_jobs(account_id)
        .await?
        .into_iter()
        .take(args.limit)
    {
        let tags = api.job_tags(account_id, &job.job_id).await?;
        if let Some((transfer, plan)) = ferry_tags(&tags) {
            listed.push(ListedJob {
                transfer,
                plan,
                job,
            });
        }
    }
    if args.format == Format::Json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&listed).unwrap_or_default()
        );
        return Ok(());
    }
    if listed.is_empty() {
        let _ = writeln!(
            out,
            "No Ferry jobs (tag {TRANSFER_TAG}) among the {} newest jobs of account {account_id}.",
            args.limit
        );
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<36}  {:<10}  {:<20}  {:>13}  {:>11}  {:>11}",
        "JOB ID", "STATUS", "TRANSFER", "TOTAL", "SUCCEEDED", "FAILED"
    );
    for l in &listed {
        let n = |v: Option<u64>| v.map_or("-".to_string(), thousands);
        let _ = writeln!(
            out,
            "{:<36}  {:<10}  {:<20}  {:>13}  {:>11}  {:>11}",
            l.job.job_id,
            l.job.status,
            l.transfer,
            n(l.job.total_tasks),
            n(l.job.succeeded_tasks),
            n(l.job.failed_tasks)
        );
    }
    Ok(())
}

async fn show<A: JobsApi + Sync>(
    api: &A,
    account_id: &str,
    job_id: &str,
    args: &StatusArgs,
    out: &mut impl Write,
) -> Result<(), AwsCallError> {
    let tags = api.job_tags(account_id, job_id).await?;
    let (transfer, plan) = match ferry_tags(&tags) {
        Some((t, p)) => (Some(t), p),
        None => (None, None),
    };
    let mut job = api.describe_job(account_id, job_id).await?;
    let mut previous: Option<ProgressSample> = None;
    if args.format == Format::Json {
        let progress = Progress::of(&job, None, ferry_aws::runtime::unix_now());
        let snapshot = JobSnapshot {
            transfer,
            plan,
            job,
            progress,
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&snapshot).unwrap_or_default()
        );
        return Ok(());
    }
    let _ = write!(
        out,
        "{}",
        header(&job, transfer.as_deref(), plan.as_deref())
    );
    let live = std::io::stdout().is_terminal();
    loop {
        let now = ferry_aws::runtime::unix_now();
        let progress = Progress::of(&job, previous, now);
        let bar = progress.bar(30);
        // On a terminal the bar is redrawn in place; piped, each poll is a line.
        if live {
            let _ = write!(out, "\r{bar:<120}");
        } else {
            let _ = writeln!(out, "{bar}");
        }
        let _ = out.flush();
        if args.once || is_terminal_job_status(&job.status) {
            break;
        }
        previous = Some(progress.sample(now));
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
        job = api.describe_job(account_id, job_id).await?;
    }
    if live {
        let _ = writeln!(out);
    }
    if is_terminal_job_status(&job.status) {
        let _ = write!(out, "{}", footer(&job));
    }
    Ok(())
}

fn header(job: &JobInfo, transfer: Option<&str>, plan: Option<&str>) -> String {
    let mut h = format!("Job {} ({})\n", job.job_id, job.status);
    match transfer {
        Some(t) => h.push_str(&format!(
            "Transfer: {t}{}\n",
            plan.map(|p| format!(" (plan {p})")).unwrap_or_default()
        )),
        None => h.push_str(&format!(
            "Not one of Ferry's jobs (no {TRANSFER_TAG} / {PLAN_TAG} tags).\n"
        )),
    }
    if let Some(d) = &job.description {
        h.push_str(&format!("Description: {d}\n"));
    }
    if let Some(cause) = &job.suspended_cause {
        h.push_str(&format!("Suspended: {cause}\n"));
    }
    h
}

fn footer(job: &JobInfo) -> String {
    let mut f = String::new();
    for (code, reason) in &job.failure_reasons {
        f.push_str(&format!("Job failure: {code}: {reason}\n"));
    }
    if job.failed_tasks.unwrap_or(0) > 0 {
        f.push_str(&format!(
            "{} task(s) failed: the job-monitor e-mail groups them by cause with the fix; once fixed, \
             `ferry redrive {}` copies only those again.\n",
            thousands(job.failed_tasks.unwrap_or(0)),
            job.job_id
        ));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plan::job::S3Tag;

    struct Fake {
        jobs: Vec<(JobListing, Vec<S3Tag>)>,
        info: JobInfo,
    }

    impl JobsApi for Fake {
        async fn describe_job(&self, _: &str, _: &str) -> Result<JobInfo, AwsCallError> {
            Ok(self.info.clone())
        }
        async fn job_tags(&self, _: &str, job_id: &str) -> Result<Vec<S3Tag>, AwsCallError> {
            Ok(self
                .jobs
                .iter()
                .find(|(j, _)| j.job_id == job_id)
                .map(|(_, t)| t.clone())
                .unwrap_or_default())
        }
        async fn list_jobs(&self, _: &str) -> Result<Vec<JobListing>, AwsCallError> {
            Ok(self.jobs.iter().map(|(j, _)| j.clone()).collect())
        }
    }

    fn listing(id: &str, status: &str) -> JobListing {
        JobListing {
            job_id: id.into(),
            status: status.into(),
            description: None,
            operation: "S3PutObjectCopy".into(),
            created_unix: None,
            terminated_unix: None,
            total_tasks: Some(2_000_000),
            succeeded_tasks: Some(1_500_000),
            failed_tasks: Some(3),
        }
    }

    fn tag(k: &str, v: &str) -> S3Tag {
        S3Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    fn fake() -> Fake {
        Fake {
            jobs: vec![
                (
                    listing("aaaa-1", "Active"),
                    vec![tag(TRANSFER_TAG, "photos"), tag(PLAN_TAG, "f00d")],
                ),
                (listing("bbbb-2", "Complete"), vec![tag("team", "other")]),
            ],
            info: JobInfo {
                description: Some("Ferry photos: copy".into()),
                total_tasks: Some(10),
                succeeded_tasks: Some(8),
                failed_tasks: Some(2),
                active_seconds: Some(4),
                ..JobInfo::new("aaaa-1", "Complete")
            },
        }
    }

    fn args(job_id: Option<&str>, format: Format) -> StatusArgs {
        StatusArgs {
            job_id: job_id.map(str::to_string),
            target: AwsTarget {
                region: None,
                account_id: None,
            },
            format,
            once: false,
            interval: MIN_POLL_SECONDS,
            limit: 100,
        }
    }

    fn run_list(format: Format) -> String {
        let mut out = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(list(&fake(), "222222222222", &args(None, format), &mut out))
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lists_only_ferrys_jobs() {
        let text = run_list(Format::Text);
        assert!(text.contains("aaaa-1"), "{text}");
        assert!(text.contains("photos"), "{text}");
        assert!(text.contains("1,500,000"), "{text}");
        assert!(!text.contains("bbbb-2"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&run_list(Format::Json)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 1);
        assert_eq!(json[0]["transfer"], "photos");
        assert_eq!(json[0]["plan"], "f00d");
        assert_eq!(json[0]["job_id"], "aaaa-1");
    }

    #[test]
    fn a_finished_job_prints_its_bar_once_and_points_to_redrive() {
        let mut out = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(show(
            &fake(),
            "222222222222",
            "aaaa-1",
            &args(Some("aaaa-1"), Format::Text),
            &mut out,
        ))
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Transfer: photos (plan f00d)"), "{text}");
        assert!(text.contains("100.0% 10/10 (2 failed)"), "{text}");
        assert!(text.contains("ferry redrive aaaa-1"), "{text}");
        let mut out = Vec::new();
        rt.block_on(show(
            &fake(),
            "222222222222",
            "aaaa-1",
            &args(Some("aaaa-1"), Format::Json),
            &mut out,
        ))
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["progress"]["failed_tasks"], 2);
        assert_eq!(json["job"]["status"], "Complete");
    }
}
