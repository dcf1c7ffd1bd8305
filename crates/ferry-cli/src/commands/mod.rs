//! One module per `ferry` subcommand, and what they share: reading a spec.

pub mod grant;
pub mod manifest;
pub mod plan;
pub mod preflight;
pub mod redrive;
pub mod status;

use std::path::Path;

use ferry_plan::{Plan, TransferSpec};

/// Exit code for a spec (or other input) that can't be used: distinct from 1 (an operation
/// failed).
pub const EXIT_BAD_INPUT: u8 = 2;

/// Reads, parses and plans a spec, or prints why not (every problem) and returns the exit code.
pub fn load_plan(path: &Path) -> Result<(TransferSpec, Plan), std::process::ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: can't read the spec {}: {e}", path.display());
        std::process::ExitCode::from(EXIT_BAD_INPUT)
    })?;
    TransferSpec::from_toml_str(&text)
        .and_then(|spec| Plan::build(&spec).map(|plan| (spec, plan)))
        .map_err(|e| {
            eprintln!("error: {}: {e}", path.display());
            std::process::ExitCode::from(EXIT_BAD_INPUT)
        })
}

/// A runtime for the commands that call AWS.
pub fn runtime() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: can't start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        })
}

/// The region the spec names for each bucket it mentions (bucket-level calls go there).
pub fn bucket_regions(spec: &TransferSpec) -> std::collections::BTreeMap<String, String> {
    [
        (&spec.source.bucket, spec.source.region.as_str()),
        (&spec.destination.bucket, spec.destination.region.as_str()),
        (&spec.manifest.bucket, spec.manifest_region()),
        (&spec.report.bucket, spec.report_region()),
    ]
    .into_iter()
    .map(|(b, r)| (b.clone(), r.to_string()))
    .collect()
}
