//! `ferry`: plan and run cross-account S3 copies with S3 Batch Operations.
//!
//! Each subcommand lives in `commands/`; this file only parses arguments and maps outcomes to
//! exit codes: 0 success, 1 an operation failed, 2 bad input (spec, file, arguments).

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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Plan(args) => commands::plan::run(&args),
    }
}
