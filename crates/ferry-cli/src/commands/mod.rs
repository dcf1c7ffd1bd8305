//! One module per `ferry` subcommand, and what they share: reading a spec.

pub mod grant;
pub mod manifest;
pub mod plan;

use std::path::Path;

use ferry_core::{Plan, TransferSpec};

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
