//! What the functions' environment supplies and the pure core does not: the clock and the
//! operating system's randomness.

use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::approval::{ApprovalToken, TOKEN_BYTES};

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
