//! `ferry manifest check FILE [--bucket NAME] [--version-ids true|false]`: is a CSV manifest one
//! that Batch Operations will take? Every problem with its line, streaming (any file size).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use ferry_listings::manifest::{check_csv_manifest, CheckOptions, ManifestReport, Severity};
use ferry_plan::aws_names::check_bucket_name;

use super::EXIT_BAD_INPUT;

#[derive(Args)]
pub struct ManifestArgs {
    #[command(subcommand)]
    command: ManifestCommand,
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Check a CSV manifest (Bucket,Key[,VersionId]): BOM, header, empty lines, unencoded keys,
    /// mixed version columns, wrong bucket. Exit 0 when usable, 2 with every problem.
    Check(CheckArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// The manifest file (CSV, as it will be uploaded).
    file: PathBuf,
    /// The job's source bucket: every row must name it.
    #[arg(long, value_name = "NAME")]
    bucket: Option<String>,
    /// Whether every row must (true) or must not (false) have a version id column.
    #[arg(long, value_name = "true|false")]
    version_ids: Option<bool>,
}

pub fn run(args: &ManifestArgs) -> ExitCode {
    match &args.command {
        ManifestCommand::Check(args) => check(args),
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let name = args.file.display().to_string();
    if let Some(bucket) = &args.bucket {
        if let Err(reason) = check_bucket_name(bucket) {
            let _ = writeln!(io::stderr(), "error: --bucket {bucket:?}: {reason}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    let expect = CheckOptions {
        bucket: args.bucket.clone(),
        version_ids: args.version_ids,
    };
    // A directory opens fine and fails on read: both land here.
    let report = File::open(&args.file)
        .and_then(|f| check_csv_manifest(BufReader::with_capacity(1 << 16, f), expect));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: can't read the manifest {name}: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // Write errors (a closed pipe) are ignored: the exit code still tells the outcome.
    let _ = print_problems(&name, &report);
    if report.is_ok() {
        let versions = match report.has_version_ids {
            Some(true) => "with version ids",
            _ => "without version ids",
        };
        let rows = report.rows;
        let plural = if rows == 1 { "" } else { "s" };
        let _ = writeln!(io::stdout(), "ok: {rows} row{plural} ({versions})");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BAD_INPUT)
    }
}

/// Every listed problem as `FILE:LINE: message` (warnings marked), then what was left out.
fn print_problems(name: &str, report: &ManifestReport) -> io::Result<()> {
    let mut err = io::BufWriter::new(io::stderr().lock());
    for p in &report.problems {
        match p.severity() {
            Severity::Error => writeln!(err, "{name}:{}: {}", p.line, p.message)?,
            Severity::Warning => writeln!(err, "{name}:{}: warning: {}", p.line, p.message)?,
        }
    }
    if report.omitted > 0 {
        writeln!(
            err,
            "{name}: ... and {} more problems not listed",
            report.omitted
        )?;
    }
    if !report.is_ok() {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        writeln!(
            err,
            "{name}: {} error{} in {} row{}: Batch Operations can't use this manifest as it is",
            report.errors,
            plural(report.errors),
            report.rows,
            plural(report.rows),
        )?;
    }
    err.flush()
}
