//! SNS approval messages (`ApprovalMessage::parse`): any text. A parsed approval carries a
//! 64-hex-digit token, a rejection a non-empty reason of at most 500 characters, a redrive a
//! job id of letters, digits, '-' and '_' (at most 64), and the JSON form of a parsed message
//! parses back to the same message.
#![no_main]

use ferry_plan::approval::ApprovalMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = ApprovalMessage::parse(text) else {
        return;
    };
    if let Some(token) = message.token() {
        let t = token.expose();
        assert_eq!(t.len(), 64);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(token.hash().len(), 64);
    }
    let json = match &message {
        ApprovalMessage::Approve { token } => {
            serde_json::json!({"action": "approve", "token": token.expose()})
        }
        ApprovalMessage::Reject { token, reason } => {
            assert!(!reason.trim().is_empty(), "an empty rejection reason");
            assert!(
                reason.chars().count() <= 500,
                "a reason over 500 characters"
            );
            serde_json::json!({"action": "reject", "token": token.expose(), "reason": reason})
        }
        ApprovalMessage::Resend => serde_json::json!({"action": "resend"}),
        ApprovalMessage::Redrive { job_id } => {
            assert!(
                (1..=64).contains(&job_id.len())
                    && job_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "job id {job_id:?} is not a Batch Operations job id"
            );
            serde_json::json!({"action": "redrive", "job_id": job_id})
        }
    };
    assert_eq!(
        ApprovalMessage::parse(&json.to_string()).as_ref(),
        Ok(&message),
        "the JSON form does not parse back"
    );
});
