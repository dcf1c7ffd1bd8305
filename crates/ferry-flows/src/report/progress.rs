//! A running job's progress for `ferry status`: counts, rate and ETA from DescribeJob, and the
//! one-line progress bar. Rates come from two samples when there are two (the live rate), else
//! from the job's active time (its average rate).

use serde::Serialize;

use super::jobs::JobInfo;
use super::summary::{human_duration, thousands};

/// What a poll saw, kept for the next poll's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressSample {
    pub at_unix: u64,
    pub done: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub job_id: String,
    pub status: String,
    pub total_tasks: Option<u64>,
    pub succeeded_tasks: u64,
    pub failed_tasks: u64,
    /// Tasks per second.
    pub rate: Option<f64>,
    pub eta_seconds: Option<u64>,
    pub percent: Option<f64>,
}

impl Progress {
    pub fn of(job: &JobInfo, previous: Option<ProgressSample>, now_unix: u64) -> Self {
        let succeeded = job.succeeded_tasks.unwrap_or(0);
        let failed = job.failed_tasks.unwrap_or(0);
        let done = succeeded + failed;
        let live_rate = previous.and_then(|p| {
            let dt = now_unix.checked_sub(p.at_unix).filter(|d| *d > 0)?;
            Some(done.saturating_sub(p.done) as f64 / dt as f64)
        });
        let average_rate = job
            .active_seconds
            .filter(|s| *s > 0)
            .map(|s| done as f64 / s as f64);
        let rate = live_rate.or(average_rate);
        let remaining = job.total_tasks.map(|t| t.saturating_sub(done));
        let running = !crate::ports::is_terminal_job_status(&job.status);
        let eta_seconds = match (remaining, rate) {
            (Some(0), _) => Some(0),
            (Some(r), Some(rate)) if rate > 0.0 && running => Some((r as f64 / rate).ceil() as u64),
            _ => None,
        };
        Self {
            job_id: job.job_id.clone(),
            status: job.status.clone(),
            total_tasks: job.total_tasks,
            succeeded_tasks: succeeded,
            failed_tasks: failed,
            rate,
            eta_seconds,
            percent: job
                .total_tasks
                .filter(|t| *t > 0)
                .map(|t| (done as f64 * 100.0 / t as f64).min(100.0)),
        }
    }

    pub fn sample(&self, now_unix: u64) -> ProgressSample {
        ProgressSample {
            at_unix: now_unix,
            done: self.succeeded_tasks + self.failed_tasks,
        }
    }

    /// `[#########...........]  45.0% 450,000/1,000,000 (12 failed)  1,234/s  ETA 6 min 05 s  Active`
    pub fn bar(&self, width: usize) -> String {
        let filled = self
            .percent
            .map_or(0, |p| ((p / 100.0) * width as f64).floor() as usize)
            .min(width);
        let mut line = format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled));
        match self.percent {
            Some(p) => line.push_str(&format!(" {p:5.1}%")),
            None => line.push_str("     ?%"),
        }
        line.push_str(&format!(
            " {}/{}",
            thousands(self.succeeded_tasks + self.failed_tasks),
            self.total_tasks.map_or("?".to_string(), thousands)
        ));
        if self.failed_tasks > 0 {
            line.push_str(&format!(" ({} failed)", thousands(self.failed_tasks)));
        }
        if let Some(rate) = self.rate {
            line.push_str(&format!("  {}/s", thousands(rate.round() as u64)));
        }
        if let Some(eta) = self.eta_seconds.filter(|e| *e > 0) {
            line.push_str(&format!("  ETA {}", human_duration(eta)));
        }
        line.push_str(&format!("  {}", self.status));
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str, total: u64, ok: u64, failed: u64, active: u64) -> JobInfo {
        JobInfo {
            total_tasks: Some(total),
            succeeded_tasks: Some(ok),
            failed_tasks: Some(failed),
            active_seconds: Some(active),
            ..JobInfo::new("j", status)
        }
    }

    #[test]
    fn average_rate_then_live_rate() {
        let j = job("Active", 1_000_000, 440_000, 10_000, 450);
        let p = Progress::of(&j, None, 1000);
        assert_eq!(p.rate, Some(1000.0));
        assert_eq!(p.eta_seconds, Some(550));
        assert_eq!(
            p.bar(20),
            "[#########...........]  45.0% 450,000/1,000,000 (10,000 failed)  1,000/s  ETA 9 min 10 s  Active"
        );
        let later = job("Active", 1_000_000, 500_000, 10_000, 480);
        let p2 = Progress::of(&later, Some(p.sample(1000)), 1030);
        assert_eq!(p2.rate, Some(2000.0));
        assert_eq!(p2.eta_seconds, Some(245));
    }

    #[test]
    fn finished_and_unknown() {
        let done = Progress::of(&job("Complete", 10, 10, 0, 5), None, 0);
        assert_eq!(done.eta_seconds, Some(0));
        assert!(done.bar(10).starts_with("[##########] 100.0% 10/10"));
        let mut j = job("Preparing", 0, 0, 0, 0);
        j.total_tasks = None;
        let p = Progress::of(&j, None, 0);
        assert_eq!(p.bar(4), "[....]     ?% 0/?  Preparing");
    }
}
