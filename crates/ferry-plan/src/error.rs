//! Errors of the core library. Validation collects every problem before failing, so a person
//! fixes a spec in one pass instead of one error per run.

use std::fmt;

use serde::Serialize;

/// One thing wrong with a spec: the field, the value found, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecProblem {
    /// Dotted path of the field, e.g. `source.kms_key_arn`.
    pub field: String,
    /// The offending value as given (empty when the problem is an absence).
    pub value: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.field, self.message)
        } else {
            write!(f, "{} = {:?}: {}", self.field, self.value, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FerryError {
    /// The TOML could not be read as a spec at all.
    #[error("the spec is not valid TOML for a Ferry transfer: {message}")]
    SpecSyntax { message: String },

    /// The spec was read but describes a transfer that cannot work.
    #[error("{}", render_problems(.0))]
    InvalidSpec(Vec<SpecProblem>),
}

fn render_problems(problems: &[SpecProblem]) -> String {
    let mut out = format!(
        "the spec has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  - ");
        out.push_str(&p.to_string());
    }
    out
}
