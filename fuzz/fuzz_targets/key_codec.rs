//! Key encoding: `decode_key(encode_key(k)) == k` for every key, the encoding uses only
//! unreserved characters, `/` and `%XX`, and the three decoders never panic.
#![no_main]

use ferry_listings::manifest::{decode_event_key, decode_inventory_key, decode_key, encode_key, KeyDecodeError};
use libfuzzer_sys::fuzz_target;

fn round_trips(key: &str) {
    let encoded = encode_key(key);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/%".contains(&b)),
        "encode_key wrote a byte that needs encoding: {encoded:?}"
    );
    assert_eq!(
        decode_key(&encoded).as_deref(),
        Ok(key),
        "manifest round trip"
    );
    // No raw `+` is written, so the inventory and event readings agree with the manifest one.
    assert_eq!(decode_inventory_key(&encoded).as_deref(), Ok(key));
    assert_eq!(decode_event_key(&encoded).as_deref(), Ok(key));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    round_trips(&text);
    for decoded in [
        decode_key(&text),
        decode_inventory_key(&text),
        decode_event_key(&text),
    ] {
        match decoded {
            Ok(key) => round_trips(&key),
            Err(KeyDecodeError::BadPercent { offset }) => {
                assert_eq!(
                    text.as_bytes().get(offset),
                    Some(&b'%'),
                    "offset names no '%'"
                );
            }
            Err(KeyDecodeError::NotUtf8) => {}
        }
    }
});
