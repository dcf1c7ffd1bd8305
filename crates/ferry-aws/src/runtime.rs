//! What the functions' environment supplies and the pure core does not: the clock and the
//! operating system's randomness.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_plan::approval::{ApprovalToken, TOKEN_BYTES};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token from 32 bytes of the OS CSPRNG; `None` if the OS gives none (never a weak token).
pub fn random_token() -> Option<ApprovalToken> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(ApprovalToken::from_random_bytes(bytes))
}

/// `bytes` bytes of the OS CSPRNG as lower-case hex; `None` if the OS gives none.
pub fn random_hex(bytes: usize) -> Option<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Time left before an invocation's deadline (`Context.deadline`, epoch milliseconds), or
/// `None` when the deadline isn't a real one: `Context::default()` sends 0 and
/// `cargo lambda watch` sends its timeout (600000), anything before 2001.
pub fn time_left(deadline_ms: u64) -> Option<Duration> {
    const PLAUSIBLE_EPOCH_MS: u64 = 1_000_000_000_000;
    if deadline_ms < PLAUSIBLE_EPOCH_MS {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Some(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

/// Time left before the Lambda deadline.
pub struct DeadlineClock {
    deadline: std::time::Instant,
}

impl DeadlineClock {
    pub fn after(budget: Duration) -> Self {
        Self {
            deadline: std::time::Instant::now() + budget,
        }
    }
}

impl ferry_flows::large_object::copy::CopyClock for DeadlineClock {
    fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(std::time::Instant::now())
    }

    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_deadlines_are_none_and_real_ones_count_down() {
        assert_eq!(time_left(0), None);
        assert_eq!(time_left(600_000), None);
        let in_a_minute = (unix_now() + 60) * 1000;
        let left = time_left(in_a_minute).expect("a real deadline");
        assert!(
            left <= Duration::from_secs(60) && left > Duration::from_secs(50),
            "{left:?}"
        );
        assert_eq!(time_left(1_000_000_000_000), Some(Duration::ZERO));
    }
}
