//! `ferry`: plan and run cross-account S3 copies with S3 Batch Operations.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferry_core::render::render_text;
use ferry_core::{FerryError, Plan, TransferSpec};

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
    Plan {
        /// The transfer spec (TOML).
        spec: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Exit code for a spec that can't be used: distinct from 1 (anything else went wrong).
const EXIT_BAD_SPEC: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan { spec, format } => plan(&spec, format),
    }
}

fn plan(path: &PathBuf, format: Format) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: can't read the spec {}: {e}", path.display());
            return ExitCode::from(EXIT_BAD_SPEC);
        }
    };
    let built =
        TransferSpec::from_toml_str(&text).and_then(|spec| Plan::build(&spec).map(|p| (spec, p)));
    match built {
        Ok((spec, plan)) => {
            match format {
                Format::Json => println!("{}", plan.to_pretty_json()),
                Format::Text => print!("{}", render_text(&plan, &spec)),
            }
            ExitCode::SUCCESS
        }
        Err(e @ (FerryError::SpecSyntax { .. } | FerryError::InvalidSpec(_))) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::from(EXIT_BAD_SPEC)
        }
    }
}
