//! `ferry`: plan and run cross-account S3 copies with S3 Batch Operations.
//!
//! Each subcommand lives in `commands/` and calls `ferry-plan`, `ferry-listings` or a flow of
//! `ferry-flows` (with `ferry-aws`' ports); this file only parses arguments and maps outcomes to
//! exit codes: 0 success, 1 an operation failed, 2 bad input (spec, file, arguments), 3 an
//! edit refused as unsafe (`grant`: over a policy size limit, or blocked by an explicit Deny).

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Copy S3 buckets across AWS accounts with S3 Batch Operations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print everything a transfer needs: policies, the CreateJob request, the cost. Offline.
    Plan(commands::plan::PlanArgs),
    /// Merge Ferry's statements into an account's bucket and key policies, by Sid (shows a diff;
    /// writes with --apply). Run with that account's credentials.
    Grant(commands::grant::GrantArgs),
    /// Remove exactly Ferry's statements from an account's bucket and key policies (clean-up).
    Revoke(commands::grant::GrantArgs),
    /// Check from the destination account what a job needs, before it costs money.
    Preflight(commands::preflight::PreflightArgs),
    /// Check a CSV manifest before a job uses it: every problem with its line.
    Manifest(commands::manifest::ManifestArgs),
    /// List Ferry's Batch Operations jobs, or follow one with a progress bar (rate, ETA).
    Status(commands::status::StatusArgs),
    /// Copy again only the failed tasks of a finished job, once their cause is fixed.
    Redrive(commands::redrive::RedriveArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Plan(args) => commands::plan::run(&args),
        Command::Grant(args) => commands::grant::run(&args, ferry_flows::grant::EditMode::Grant),
        Command::Revoke(args) => commands::grant::run(&args, ferry_flows::grant::EditMode::Revoke),
        Command::Preflight(args) => commands::preflight::run(&args),
        Command::Manifest(args) => commands::manifest::run(&args),
        Command::Status(args) => commands::status::run(&args),
        Command::Redrive(args) => commands::redrive::run(&args),
    }
}
