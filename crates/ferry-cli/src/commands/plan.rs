//! `ferry plan SPEC [--format text|json]`: the whole plan, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ferry_plan::render::render_text;

#[derive(Args)]
pub struct PlanArgs {
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

pub fn run(args: &PlanArgs) -> ExitCode {
    let (spec, plan) = match super::load_plan(&args.spec) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match args.format {
        Format::Json => println!("{}", plan.to_pretty_json()),
        Format::Text => print!("{}", render_text(&plan, &spec)),
    }
    ExitCode::SUCCESS
}
