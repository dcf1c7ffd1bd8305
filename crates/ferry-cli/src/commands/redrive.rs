//! `ferry redrive JOB_ID --state-bucket B`: once the cause is fixed, a new job that copies
//! only the tasks that failed in a finished job of Ferry's. Run with the destination account's
//! credentials (the stack's state bucket holds the plan and receives the new manifest).
//! Redriving the same job again answers with the first redrive's job (exit 0).

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ferry_aws::AwsPorts;
use ferry_flows::aws_error::RetryPolicy;
use ferry_flows::ports::Notifier;
use ferry_flows::report::redrive::{redrive, RedriveContext, RedriveOutcome};

use super::status::{aws_context, AwsTarget};

#[derive(Args)]
pub struct RedriveArgs {
    /// The finished job whose failed tasks to copy again.
    job_id: String,
    /// The stack's state bucket (stack output StateBucketName).
    #[arg(long)]
    state_bucket: String,
    /// Also e-mail the result through the stack's notification topic (output
    /// NotificationTopicArn); its policy takes messages only from the stack's functions and
    /// ApproverArns.
    #[arg(long)]
    notification_topic_arn: Option<String>,
    #[command(flatten)]
    target: AwsTarget,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: &RedriveArgs) -> ExitCode {
    if let Err(code) = args.target.check(Some(&args.job_id)) {
        return code;
    }
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let (config, account_id) = aws_context(&args.target).await.map_err(|e| e.to_string())?;
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let ports = AwsPorts::from_config(
            &config,
            args.state_bucket.clone(),
            args.notification_topic_arn.clone().unwrap_or_default(),
        );
        let ctx = RedriveContext {
            state_bucket: args.state_bucket.clone(),
            region,
            retry: RetryPolicy::default(),
        };
        let outcome = redrive(&ports, &account_id, &args.job_id, &ctx)
            .await
            .map_err(|e| e.to_string())?;
        if let (Some(_), RedriveOutcome::Launched { record, .. }) =
            (&args.notification_topic_arn, &outcome)
        {
            let (subject, body) = record.email();
            if let Err(e) = ports.notify(&subject, &body).await {
                eprintln!("warning: the job started, but e-mailing about it failed: {e}");
            }
        }
        Ok::<_, String>(outcome)
    });
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print(&outcome, args.format);
    ExitCode::SUCCESS
}

fn print(outcome: &RedriveOutcome, format: Format) {
    if format == Format::Json {
        let value = match outcome {
            RedriveOutcome::Launched { record, .. } => {
                serde_json::json!({"outcome": "launched", "redrive": record})
            }
            RedriveOutcome::AlreadyRedriven(record) => {
                serde_json::json!({"outcome": "already-redriven", "redrive": record})
            }
            RedriveOutcome::NothingToRedrive { job_id } => {
                serde_json::json!({"outcome": "nothing-to-redrive", "job_id": job_id})
            }
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return;
    }
    match outcome {
        RedriveOutcome::Launched { record, .. } => {
            println!("{}", record.email().1);
            println!("Follow it with: ferry status {}", record.new_job_id);
        }
        RedriveOutcome::AlreadyRedriven(record) => println!(
            "Job {} was already redriven as job {} ({} tasks, manifest {}). Follow it with: ferry status {}",
            record.redriven_job_id, record.new_job_id, record.tasks, record.manifest_uri, record.new_job_id
        ),
        RedriveOutcome::NothingToRedrive { job_id } => {
            println!("Job {job_id} has no failed task in its completion report: nothing to redrive.")
        }
    }
}
