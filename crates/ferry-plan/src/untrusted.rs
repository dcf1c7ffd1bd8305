//! Text that came from outside (object keys, inventory paths, version ids, error messages read
//! from completion reports, ids taken from messages) on its way into an e-mail: [`untrusted`]
//! percent-encodes every character that could change how the e-mail reads. A source-bucket
//! writer who names an object `a\nFix: run …` must not add a line of advice to a summary.
//!
//! Escaped: control characters (C0, DEL, C1: newlines, carriage returns, tabs, escapes),
//! Unicode line and paragraph separators, and the bidirectional controls that can reorder what
//! a reader sees (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069). Everything else, `%` and
//! non-ASCII letters included, is kept as it is (a literal `%0A` in a key reads as text).

use std::borrow::Cow;
use std::fmt::Write;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every character that could change how an e-mail reads percent-encoded (its
/// UTF-8 bytes as `%XX`).
pub fn untrusted(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::untrusted;

    #[test]
    fn lines_controls_and_bidi_overrides_are_encoded_text_is_kept() {
        assert_eq!(untrusted("photos/été a+b.jpg"), "photos/été a+b.jpg");
        assert_eq!(
            untrusted("a\r\nFix: aws s3 rm --recursive s3://x"),
            "a%0D%0AFix: aws s3 rm --recursive s3://x"
        );
        assert_eq!(untrusted("x\u{202E}gpj.exe"), "x%E2%80%AEgpj.exe");
        assert_eq!(untrusted("tab\there\u{2028}"), "tab%09here%E2%80%A8");
        assert_eq!(
            untrusted("More than 50% of tasks failed"),
            "More than 50% of tasks failed"
        );
    }
}
