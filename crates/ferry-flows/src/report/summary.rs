//! A finished job's summary: a short e-mail a person can act on, and the full breakdown (JSON)
//! the e-mail links to.
//!
//! [`FailureTally`] takes failed tasks one at a time (memory bounded by the number of causes,
//! not of tasks); [`JobSummary::build`] puts counts, timings, cost and the grouped causes with
//! their fixes together; [`JobSummary::email`] renders the short form.

use ferry_plan::untrusted::untrusted;
use std::collections::BTreeMap;

use serde::Serialize;

use super::diagnosis::{classify, fix_for, Cause};
use super::jobs::JobInfo;
use super::read::ReportReading;
use ferry_listings::report::results::{TaskResult, TaskStatus};
use ferry_plan::cost::{estimate, PRICES};
use ferry_plan::spec::{EstimateSpec, TransferSpec};

/// Examples kept per cause in the breakdown.
pub const MAX_EXAMPLES: usize = 20;
/// Examples per cause in the e-mail.
const EMAIL_EXAMPLES: usize = 2;

/// A failed task as the breakdown shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub bucket: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub error_code: String,
    pub http_status: Option<u16>,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
struct Group {
    count: u64,
    error_codes: BTreeMap<String, u64>,
    examples: Vec<TaskResult>,
}

/// Failed tasks counted by cause.
#[derive(Debug, Clone, Default)]
pub struct FailureTally {
    groups: BTreeMap<Cause, Group>,
}

impl FailureTally {
    pub fn add(&mut self, task: TaskResult, spec: Option<&TransferSpec>) {
        if task.status != TaskStatus::Failed {
            return;
        }
        let group = self.groups.entry(classify(&task, spec)).or_default();
        group.count += 1;
        let code = if task.error_code.is_empty() {
            "(none)".to_string()
        } else {
            task.error_code.clone()
        };
        *group.error_codes.entry(code).or_default() += 1;
        if group.examples.len() < MAX_EXAMPLES {
            group.examples.push(task);
        }
    }

    pub fn failed(&self) -> u64 {
        self.groups.values().map(|g| g.count).sum()
    }

    /// The groups with their fixes, biggest first (ties in [`Cause`] order).
    pub fn groups(&self, spec: Option<&TransferSpec>) -> Vec<CauseGroup> {
        let mut out: Vec<CauseGroup> = self
            .groups
            .iter()
            .filter_map(|(cause, g)| {
                let first = g.examples.first()?;
                Some(CauseGroup {
                    cause: *cause,
                    label: cause.label().to_string(),
                    count: g.count,
                    fix: fix_for(*cause, spec, first),
                    retry_alone_helps: cause.retry_alone_helps(),
                    error_codes: g.error_codes.clone(),
                    examples: g
                        .examples
                        .iter()
                        .map(|t| Example {
                            bucket: t.bucket.clone(),
                            key: t.key.clone(),
                            version_id: t.version_id.clone(),
                            error_code: t.error_code.clone(),
                            http_status: t.http_status,
                            message: t.message.clone(),
                        })
                        .collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CauseGroup {
    pub cause: Cause,
    pub label: String,
    pub count: u64,
    pub fix: String,
    pub retry_alone_helps: bool,
    pub error_codes: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
}

/// How to redrive, as the e-mail says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveHint {
    pub cli: String,
    pub sns: String,
}

/// Everything known about a finished job: the breakdown, and the source of the e-mail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    pub job_id: String,
    pub transfer_name: Option<String>,
    pub status: String,
    pub total_tasks: Option<u64>,
    pub succeeded_tasks: Option<u64>,
    pub failed_tasks: Option<u64>,
    /// Batch Operations reports tasks, not bytes: known only when the caller knows them.
    pub bytes: Option<u64>,
    pub elapsed_seconds: Option<u64>,
    pub cost_usd: Option<f64>,
    pub cost_basis: String,
    pub failure_reasons: Vec<(String, String)>,
    pub hit_failure_threshold: bool,
    pub causes: Vec<CauseGroup>,
    pub report: Option<ReportReading>,
    /// Failed tasks seen in the report (may be fewer than `failed_tasks` if it is cut short).
    pub failed_in_report: u64,
    pub breakdown_uri: Option<String>,
    pub redrive: Option<RedriveHint>,
}

/// The inputs of a summary besides the tally.
pub struct SummaryInput<'a> {
    pub job: &'a JobInfo,
    pub transfer_name: Option<&'a str>,
    pub spec: Option<&'a TransferSpec>,
    pub report: Option<ReportReading>,
    pub bytes: Option<u64>,
    pub now_unix: u64,
    pub breakdown_uri: Option<String>,
    pub redrive: Option<RedriveHint>,
}

impl JobSummary {
    pub fn build(input: SummaryInput<'_>, tally: &FailureTally) -> Self {
        let job = input.job;
        let cost_usd = match (input.spec, job.total_tasks) {
            (Some(spec), Some(total)) => {
                let mut priced = spec.clone();
                priced.estimate = Some(EstimateSpec {
                    object_count: total,
                    total_bytes: input.bytes.unwrap_or(0),
                });
                Some(estimate(&priced).total_usd)
            }
            _ => None,
        };
        JobSummary {
            job_id: job.job_id.clone(),
            transfer_name: input.transfer_name.map(str::to_string),
            status: job.status.clone(),
            total_tasks: job.total_tasks,
            succeeded_tasks: job.succeeded_tasks,
            failed_tasks: job.failed_tasks,
            bytes: input.bytes,
            elapsed_seconds: job.elapsed_seconds(input.now_unix),
            cost_usd,
            cost_basis: format!(
                "{} ({}): job fee, per-object fee, requests{}",
                PRICES.basis,
                PRICES.as_of,
                if input.bytes.is_none() {
                    "; cross-region transfer not included (bytes unknown)"
                } else {
                    ""
                }
            ),
            failure_reasons: job.failure_reasons.clone(),
            hit_failure_threshold: job.hit_failure_threshold(),
            causes: tally.groups(input.spec),
            report: input.report,
            failed_in_report: tally.failed(),
            breakdown_uri: input.breakdown_uri,
            redrive: input.redrive,
        }
    }

    /// The e-mail: subject and a short body. The breakdown holds the rest.
    pub fn email(&self) -> (String, String) {
        // The name is the job's ferry:transfer tag, which whoever may tag jobs can set.
        let name = untrusted(
            self.transfer_name
                .as_deref()
                .unwrap_or("(unknown transfer)"),
        );
        let failed = self.failed_tasks.unwrap_or(self.failed_in_report);
        let subject = format!(
            "Ferry {name}: job {} {}{}",
            short_id(&self.job_id),
            self.status,
            match (self.succeeded_tasks, failed) {
                (Some(ok), 0) => format!(", {} copied", thousands(ok)),
                (Some(ok), f) => format!(", {} copied, {} failed", thousands(ok), thousands(f)),
                (None, f) if f > 0 => format!(", {} failed", thousands(f)),
                _ => String::new(),
            }
        );
        let mut b = String::new();
        b.push_str(&format!(
            "Job {} of transfer {name}: {}",
            self.job_id, self.status
        ));
        if self.hit_failure_threshold {
            b.push_str(
                " (stopped by Batch Operations: more than half of at least 1,000 tasks failed)",
            );
        }
        b.push_str(".\n\n");
        let count = |n: Option<u64>| n.map_or("?".to_string(), thousands);
        b.push_str(&format!(
            "Tasks:   {} succeeded, {} failed, {} total\n",
            count(self.succeeded_tasks),
            count(self.failed_tasks),
            count(self.total_tasks)
        ));
        b.push_str(&format!(
            "Bytes:   {}\n",
            self.bytes
                .map_or("not reported by Batch Operations".to_string(), human_bytes)
        ));
        b.push_str(&format!(
            "Elapsed: {}\n",
            self.elapsed_seconds
                .map_or("unknown".to_string(), human_duration)
        ));
        b.push_str(&format!(
            "Cost:    {}\n",
            self.cost_usd
                .map_or("unknown (the plan was not found)".to_string(), |c| format!(
                    "about ${c:.2} at list prices"
                ))
        ));
        for (code, reason) in &self.failure_reasons {
            b.push_str(&format!(
                "Job failure: {}: {}\n",
                untrusted(code),
                untrusted(reason)
            ));
        }
        if !self.causes.is_empty() {
            b.push_str("\nFailures by cause:\n");
            for g in &self.causes {
                b.push_str(&format!(
                    "\n- {} x {}\n  Fix: {}\n",
                    thousands(g.count),
                    untrusted(&g.label),
                    // Built from the report row (its error code, the key named in its message).
                    untrusted(&g.fix)
                ));
                // Keys and versions are the source bucket's: escaped, so a key can't add lines.
                for e in g.examples.iter().take(EMAIL_EXAMPLES) {
                    b.push_str(&format!(
                        "  e.g. s3://{}/{}",
                        untrusted(&e.bucket),
                        untrusted(&e.key)
                    ));
                    if let Some(v) = &e.version_id {
                        b.push_str(&format!(" (version {})", untrusted(v)));
                    }
                    b.push('\n');
                }
            }
        }
        if let Some(report) = &self.report {
            if report.stats.unreadable > 0 {
                b.push_str(&format!(
                    "\n{} report row(s) could not be read; the breakdown lists them.\n",
                    thousands(report.stats.unreadable)
                ));
            }
            if !report.found {
                let ran = self
                    .succeeded_tasks
                    .unwrap_or(0)
                    .saturating_add(self.failed_tasks.unwrap_or(0));
                if ran > 0 {
                    // AWS writes a report for every job that ran a task (S3 User Guide,
                    // "Examples: S3 Batch Operations completion reports").
                    b.push_str(&format!(
                        "\nNo completion report at {}, although {} task(s) ran: Batch Operations writes one for every job that ran a task, so it was deleted or never written.\n",
                        report.manifest_uri(),
                        thousands(ran)
                    ));
                } else {
                    b.push_str(&format!(
                        "\nNo completion report at {} (a job that fails before running tasks writes none).\n",
                        report.manifest_uri()
                    ));
                }
            }
        }
        if failed > 0 {
            if let Some(r) = &self.redrive {
                b.push_str(&format!(
                    "\nOnce fixed, copy only the failed tasks again:\n  {}\nor\n  {}\n",
                    r.cli, r.sns
                ));
            }
        }
        b.push('\n');
        if let Some(uri) = &self.breakdown_uri {
            b.push_str(&format!("Full breakdown: {uri}\n"));
        }
        if let Some(report) = self.report.as_ref().filter(|r| r.found) {
            b.push_str(&format!("Completion report: {}\n", report.manifest_uri()));
        }
        (subject, b)
    }
}

/// The job id's first block: enough to tell jobs apart in an inbox.
fn short_id(job_id: &str) -> &str {
    job_id.split('-').next().unwrap_or(job_id)
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn human_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s:02} s"),
        _ => format!("{h} h {m:02} min"),
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(3_725), "1 h 02 min");
        assert_eq!(human_duration(125), "2 min 05 s");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5), "5 B");
    }
}
