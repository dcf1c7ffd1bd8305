//! `ferry preflight SPEC [--format text|json]`: before money is spent, check from the
//! destination account what can be checked — and say what can't. Exit 1 if any check fails.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ferry_aws::preflight::AwsPreflight;
use ferry_flows::preflight::{preflight, render_checks, CheckStatus};

#[derive(Args)]
pub struct PreflightArgs {
    /// The transfer spec (TOML).
    spec: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: &PreflightArgs) -> ExitCode {
    let (spec, plan) = match super::load_plan(&args.spec) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let checks = runtime.block_on(async {
        let config = aws_config::load_from_env().await;
        let api = AwsPreflight::new(config, spec.manifest_region(), super::bucket_regions(&spec));
        preflight(&api, &spec, &plan).await
    });
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&checks).unwrap_or_default()
        ),
        Format::Text => print!("{}", render_checks(&checks)),
    }
    if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
