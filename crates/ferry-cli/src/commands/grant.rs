//! `ferry grant SPEC` / `ferry revoke SPEC`: merge Ferry's statements into (or take them out
//! of) the live bucket and key policies of one account, by `Sid`. Shows a diff; writes only
//! with `--apply` or a "y" at the prompt. Run with that account's credentials.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ferry_aws::policies::AwsResourcePolicies;
use ferry_flows::grant::{apply_edits, plan_edits, EditMode, ResourceEdit};
use ferry_plan::{Plan, TransferSpec};

/// Exit code when an edit is refused as unsafe (over a size limit, blocked by a Deny).
pub const EXIT_REFUSED: u8 = 3;

#[derive(Args)]
pub struct GrantArgs {
    /// The transfer spec (TOML).
    spec: PathBuf,
    /// Whose policies to edit: the source account's (bucket and key policies the copy reads
    /// through) or the destination account's (its key policies).
    #[arg(long, value_enum, default_value_t = Side::Source)]
    side: Side,
    /// Write the changes without asking.
    #[arg(long)]
    apply: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Side {
    Source,
    Destination,
}

pub fn run(args: &GrantArgs, mode: EditMode) -> ExitCode {
    let (spec, plan) = match super::load_plan(&args.spec) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(run_async(args, mode, &spec, &plan))
}

async fn run_async(args: &GrantArgs, mode: EditMode, spec: &TransferSpec, plan: &Plan) -> ExitCode {
    let section = match args.side {
        Side::Source => &plan.source_account,
        Side::Destination => &plan.destination_account,
    };
    if section.is_empty() || (args.side == Side::Source && !spec.is_cross_account()) {
        println!(
            "Nothing to {} in the {} account: Ferry has no statements for its policies{}.",
            verb(mode),
            side_name(args.side),
            if spec.is_cross_account() {
                ""
            } else {
                " (same-account transfer: see --side destination)"
            }
        );
        return ExitCode::SUCCESS;
    }
    let config = aws_config::load_from_env().await;
    let ports = AwsResourcePolicies::new(config, super::bucket_regions(spec));
    let edits = match plan_edits(
        &ports,
        section,
        mode,
        &plan.batch_role.arn,
        &spec.destination.account_id,
    )
    .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    println!(
        "{} Ferry's statements for transfer {} {} the {} account ({}):\n",
        if mode == EditMode::Grant {
            "Adding"
        } else {
            "Removing"
        },
        spec.name,
        if mode == EditMode::Grant {
            "to"
        } else {
            "from"
        },
        side_name(args.side),
        section.account_id
    );
    for e in &edits {
        print_edit(e);
    }
    let refusals: Vec<String> = edits.iter().flat_map(ResourceEdit::refusals).collect();
    if !refusals.is_empty() {
        for r in &refusals {
            eprintln!("refused: {r}");
        }
        eprintln!("Nothing was written.");
        return ExitCode::from(EXIT_REFUSED);
    }
    if !edits.iter().any(|e| e.edit.changes_anything()) {
        println!("Nothing to change: the policies already say this.");
        return ExitCode::SUCCESS;
    }
    if !args.apply && !confirmed() {
        println!("Nothing was written. Run again with --apply to write these changes.");
        return ExitCode::SUCCESS;
    }
    match apply_edits(&ports, &edits).await {
        Ok(applied) => {
            for a in applied {
                println!("wrote the {a}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_edit(e: &ResourceEdit) {
    let what = [
        ("added", &e.edit.added),
        ("replaced", &e.edit.replaced),
        ("removed", &e.edit.removed),
    ]
    .iter()
    .filter(|(_, sids)| !sids.is_empty())
    .map(|(label, sids)| format!("{label} {}", sids.join(", ")))
    .collect::<Vec<_>>()
    .join("; ");
    println!(
        "== {}: {}",
        e.target,
        if what.is_empty() {
            "no change".to_string()
        } else {
            what
        }
    );
    if e.edit.changes_anything() {
        let before = e
            .edit
            .before
            .as_ref()
            .map(|b| serde_json::to_string_pretty(b).unwrap_or_default())
            .unwrap_or_default();
        let after = if e.edit.leaves_empty()
            && matches!(e.target, ferry_flows::grant::PolicyTarget::Bucket(_))
        {
            String::from("(no policy: the bucket policy is deleted)")
        } else {
            serde_json::to_string_pretty(&e.edit.after).unwrap_or_default()
        };
        let diff = similar::TextDiff::from_lines(&before, &after);
        print!(
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header("current", "new")
        );
    }
    for w in e.warnings() {
        println!("warning: {w}");
    }
    println!();
}

/// Asks on a terminal; anywhere else (CI, pipes) the answer is no.
fn confirmed() -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("Write these changes? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

fn verb(mode: EditMode) -> &'static str {
    match mode {
        EditMode::Grant => "grant",
        EditMode::Revoke => "revoke",
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Source => "source",
        Side::Destination => "destination",
    }
}
