//! One-time approval tokens and the messages that spend them.
//!
//! The stack e-mails a random token; only its SHA-256 is stored. An approval or rejection
//! published to the approval topic names the token; the handler looks the hash up, spends it
//! once (a conditional write, so two deliveries can't both act) and never logs the token.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::job::hex;
use crate::stack::ApprovalMode;

/// Tokens are 32 random bytes, hex-encoded: 64 characters that paste safely into a shell.
pub const TOKEN_BYTES: usize = 32;

/// How long an approval token is accepted after it was issued (e-mailed).
pub const APPROVAL_TOKEN_TTL_SECONDS: u64 = 14 * 24 * 3600;

/// A token as it travels in the e-mail. `Debug` hides it, so it can't leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApprovalToken(String);

impl std::fmt::Debug for ApprovalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApprovalToken(sha256:{}…)", &self.hash()[..12])
    }
}

impl ApprovalToken {
    /// From random bytes the caller draws (the core itself has no randomness).
    pub fn from_random_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(hex(&bytes))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        (t.len() == TOKEN_BYTES * 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(t.to_ascii_lowercase()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and logged instead of the token.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}

/// What the stack stores for a pending approval, at `approvals/<hash>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub transfer_name: String,
    pub plan_fingerprint: String,
    pub mode: ApprovalMode,
    /// WaitConditionHandle URL while the stack waits (wait mode).
    #[serde(default)]
    pub wait_handle_url: Option<String>,
    /// Unix seconds after which the WaitCondition times out (wait mode).
    #[serde(default)]
    pub wait_deadline: Option<u64>,
    /// Set once the wait was handed over (`deferred` signal): approval then launches directly.
    #[serde(default)]
    pub wait_released: bool,
    /// Unix seconds when the token was issued (the newest pending one is re-sent).
    #[serde(default)]
    pub created_unix: u64,
    /// The manifest as this token's e-mails named it (#15 item 13): what HeadObject answered
    /// when they were sent. The token approves only a manifest with this ETag, and the job is
    /// launched on it. `None` when the manifest could not be read then (or for a record of an
    /// earlier Ferry): such a token approves nothing, and `resend` pins the manifest anew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestPin>,
}

/// The manifest an approval e-mail named, so the approver approves those exact bytes (#15
/// item 13: the manifest lives where others may write it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPin {
    /// Without quotes.
    pub etag: String,
    /// `x-amz-version-id` of a versioned bucket (never `null`): the job then reads exactly that
    /// version (CreateJob `Manifest.Location.ObjectVersionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Bytes (Content-Length), for the approver to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Last-Modified (RFC 3339), for the approver to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// What a person publishes to the approval topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalMessage {
    Approve {
        token: ApprovalToken,
    },
    Reject {
        token: ApprovalToken,
        reason: String,
    },
    /// Send the instructions e-mail again with a new token (the old one stops working). For
    /// when the first e-mail went out before the subscription was confirmed. Only the stack's
    /// ApproverArns (and the root user) may publish to the approval topic, and at most one
    /// re-send per quarter hour goes through ([`ferry_flows::workflow::RESEND_INTERVAL_SECONDS`]).
    Resend,
    /// Create a new job from only the failed tasks of a finished job (see
    /// [`ferry_flows::report::redrive`]); no token: the topic only takes the stack's approvers, and a
    /// redrive copies nothing the approved plan didn't cover.
    Redrive {
        job_id: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalMessageError {
    #[error(
        "the message is none of {{\"action\":\"approve\",\"token\":\"…\"}}, {{\"action\":\"reject\",\"token\":\"…\",\"reason\":\"…\"}}, \
         {{\"action\":\"resend\"}}, {{\"action\":\"redrive\",\"job_id\":\"…\"}} (nor the text 'approve <token>' / \
         'reject <token> <reason>' / 'resend' / 'redrive <job-id>')"
    )]
    Unrecognised,
    #[error("the job_id is not a Batch Operations job id (letters, digits, '-' and '_', at most 64): use the id from the e-mail")]
    MalformedJobId,
    #[error("the token is not the 64-character hex token from the e-mail")]
    MalformedToken,
}

#[derive(Deserialize)]
struct JsonMessage {
    action: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    job_id: Option<String>,
}

const MAX_REASON_CHARS: usize = 500;

impl ApprovalMessage {
    /// Accepts the JSON form the e-mail gives, or plain `approve <token>` /
    /// `reject <token> [reason…]`.
    pub fn parse(message: &str) -> Result<Self, ApprovalMessageError> {
        let (action, token, reason) = match serde_json::from_str::<JsonMessage>(message) {
            Ok(m) => (
                m.action,
                m.job_id.unwrap_or(m.token),
                m.reason.unwrap_or_default(),
            ),
            Err(_) => {
                let mut words = message.split_whitespace();
                let action = words.next().unwrap_or_default().to_string();
                let token = words.next().unwrap_or_default().to_string();
                (action, token, words.collect::<Vec<_>>().join(" "))
            }
        };
        let action = action.to_ascii_lowercase();
        if action == "resend" {
            return Ok(ApprovalMessage::Resend);
        }
        if action == "redrive" {
            // The second word (or `job_id`) is the job id here, not a token.
            let job_id = token.trim();
            return if crate::aws_names::check_job_id(job_id).is_ok() {
                Ok(ApprovalMessage::Redrive {
                    job_id: job_id.to_string(),
                })
            } else {
                Err(ApprovalMessageError::MalformedJobId)
            };
        }
        if action != "approve" && action != "reject" {
            return Err(ApprovalMessageError::Unrecognised);
        }
        let token = ApprovalToken::parse(&token).ok_or(ApprovalMessageError::MalformedToken)?;
        Ok(if action == "approve" {
            ApprovalMessage::Approve { token }
        } else {
            let reason = if reason.trim().is_empty() {
                "rejected without a reason".to_string()
            } else {
                reason.chars().take(MAX_REASON_CHARS).collect()
            };
            ApprovalMessage::Reject { token, reason }
        })
    }

    pub fn token(&self) -> Option<&ApprovalToken> {
        match self {
            ApprovalMessage::Approve { token } | ApprovalMessage::Reject { token, .. } => {
                Some(token)
            }
            ApprovalMessage::Resend | ApprovalMessage::Redrive { .. } => None,
        }
    }
}

/// State bucket keys (see `docs/stack.md`).
pub mod keys {
    pub fn plan(fingerprint: &str) -> String {
        format!("plans/{fingerprint}.json")
    }
    /// The stack's current plan: the fingerprint the last TransferPlan Create or Update applied
    /// (stack-handler writes it, and nothing removes it; a fingerprint is hex, so no plan is
    /// named `current`). Launches and approvals act only on that plan (#15 items 2 and 5).
    pub fn current_plan() -> String {
        "plans/current.json".to_string()
    }
    pub fn approval(token_hash: &str) -> String {
        format!("approvals/{token_hash}.json")
    }
    pub fn decision(token_hash: &str) -> String {
        format!("approvals/{token_hash}.decision")
    }
    pub const APPROVALS_PREFIX: &str = "approvals/";
    /// A `resend`'s claim on the quarter hour starting at `quarter_start_unix` (written once:
    /// at most one re-send per quarter hour). Not `.json`, so it is no approval record.
    pub fn resend_claim(quarter_start_unix: u64) -> String {
        format!("approvals/resend-{quarter_start_unix}.claim")
    }
    /// The approval decision for a plan, readable by fingerprint (FirstJob checks it).
    pub fn plan_decision(fingerprint: &str) -> String {
        format!("decisions/{fingerprint}.json")
    }
    pub fn job(fingerprint: &str, job_id: &str) -> String {
        format!("jobs/{fingerprint}/{job_id}.json")
    }
    pub const JOBS_PREFIX: &str = "jobs/";
    pub fn jobs_of(fingerprint: &str) -> String {
        format!("jobs/{fingerprint}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> ApprovalToken {
        ApprovalToken::from_random_bytes([7; TOKEN_BYTES])
    }

    #[test]
    fn json_and_text_forms() {
        let t = token();
        let json = format!(r#"{{"action":"approve","token":"{}"}}"#, t.expose());
        assert_eq!(
            ApprovalMessage::parse(&json),
            Ok(ApprovalMessage::Approve { token: t.clone() })
        );
        let text = format!("reject {} source policy not ready", t.expose());
        assert_eq!(
            ApprovalMessage::parse(&text),
            Ok(ApprovalMessage::Reject {
                token: t.clone(),
                reason: "source policy not ready".into()
            })
        );
    }

    #[test]
    fn resend() {
        assert_eq!(
            ApprovalMessage::parse(r#"{"action":"resend"}"#),
            Ok(ApprovalMessage::Resend)
        );
        assert_eq!(
            ApprovalMessage::parse("resend"),
            Ok(ApprovalMessage::Resend)
        );
    }

    #[test]
    fn redrive() {
        let id = "7c1a3e52-0d4b-4c8e-9a55-1f2e3d4c5b6a";
        let want = Ok(ApprovalMessage::Redrive { job_id: id.into() });
        assert_eq!(
            ApprovalMessage::parse(&format!(r#"{{"action":"redrive","job_id":"{id}"}}"#)),
            want
        );
        assert_eq!(ApprovalMessage::parse(&format!("redrive {id}")), want);
        for bad in [
            r#"{"action":"redrive"}"#,
            "redrive ../x",
            r#"{"action":"redrive","job_id":"a b"}"#,
        ] {
            assert_eq!(
                ApprovalMessage::parse(bad),
                Err(ApprovalMessageError::MalformedJobId),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_messages_are_named_not_echoed() {
        assert_eq!(
            ApprovalMessage::parse("hello"),
            Err(ApprovalMessageError::Unrecognised)
        );
        assert_eq!(
            ApprovalMessage::parse(r#"{"action":"approve","token":"abc"}"#),
            Err(ApprovalMessageError::MalformedToken)
        );
        let e = ApprovalMessage::parse(r#"{"action":"approve","token":"secret-ish"}"#).unwrap_err();
        assert!(!e.to_string().contains("secret-ish"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = token();
        assert!(!format!("{t:?}").contains(t.expose()));
        assert_eq!(t.hash().len(), 64);
    }
}
