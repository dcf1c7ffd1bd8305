//! The events that say an inventory landed, as inventory-handler receives them: EventBridge's
//! `Object Created`, an S3 notification's `Records`, an `s3:TestEvent`, and the event the stack
//! sends to start a transfer's first run. Read defensively: what can't be read is
//! [`InventoryEvent::Unrecognised`], never an error.

use serde_json::Value;

use ferry_listings::manifest::decode_event_key;

/// One thing an event says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryEvent {
    /// An object was created. `keys` are the spellings to try, most likely first: S3
    /// notifications URL-encode keys; EventBridge is assumed (verify) not to, so its raw key is
    /// tried first and the decoded one second.
    ObjectCreated { bucket: String, keys: Vec<String> },
    /// `s3:TestEvent`, sent when a notification configuration is saved.
    Test,
    /// Anything else, described.
    Unrecognised(String),
}

/// The event that starts a transfer's first run on an approved inventory
/// ([`crate::workflow::start_first_copy`]): EventBridge's `Object Created` shape for the
/// inventory's `manifest.checksum` (S3 User Guide, "Using EventBridge": `detail.bucket.name`,
/// `detail.object.key`), with Ferry as its `source`. It carries nothing inventory-handler
/// doesn't check against the stored plan, as for the events S3 sends.
pub fn first_run_event(bucket: &str, checksum_key: &str) -> Value {
    serde_json::json!({
        "version": "0",
        "detail-type": "Object Created",
        "source": "ferry.first-run",
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": checksum_key},
            "reason": "FerryFirstRun"
        }
    })
}

/// Reads an EventBridge `Object Created` event, an S3 notification (`Records`), or an
/// `s3:TestEvent`. Never fails: what it can't read is [`InventoryEvent::Unrecognised`].
pub fn parse_event(payload: &Value) -> Vec<InventoryEvent> {
    if payload.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return vec![InventoryEvent::Test];
    }
    if let Some(detail) = payload.get("detail") {
        let dt = payload.get("detail-type").and_then(Value::as_str);
        let bucket = detail.pointer("/bucket/name").and_then(Value::as_str);
        let key = detail.pointer("/object/key").and_then(Value::as_str);
        return vec![match (dt, bucket, key) {
            (Some("Object Created"), Some(b), Some(k)) => InventoryEvent::ObjectCreated {
                bucket: b.to_string(),
                keys: spellings(k, false),
            },
            _ => InventoryEvent::Unrecognised(format!(
                "an EventBridge event of type {:?}, not an S3 Object Created event",
                dt.unwrap_or("?")
            )),
        }];
    }
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        return records
            .iter()
            .map(|r| {
                let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
                let bucket = r.pointer("/s3/bucket/name").and_then(Value::as_str);
                let key = r.pointer("/s3/object/key").and_then(Value::as_str);
                match (bucket, key) {
                    (Some(b), Some(k)) if name.starts_with("ObjectCreated") => {
                        InventoryEvent::ObjectCreated {
                            bucket: b.to_string(),
                            keys: spellings(k, true),
                        }
                    }
                    _ => InventoryEvent::Unrecognised(format!(
                        "an S3 notification {name:?}, not ObjectCreated"
                    )),
                }
            })
            .collect();
    }
    vec![InventoryEvent::Unrecognised(
        "neither an EventBridge event nor an S3 notification".to_string(),
    )]
}

fn spellings(key: &str, encoded_first: bool) -> Vec<String> {
    let decoded = decode_event_key(key).ok().filter(|d| d != key);
    match (decoded, encoded_first) {
        (Some(d), true) => vec![d, key.to_string()],
        (Some(d), false) => vec![key.to_string(), d],
        (None, _) => vec![key.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_of_every_shape() {
        let eb = json!({"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"inv"},"object":{"key":"p/src/cfg/2024-05-01T01-00Z/manifest.checksum"}}});
        assert_eq!(
            parse_event(&eb),
            vec![InventoryEvent::ObjectCreated {
                bucket: "inv".into(),
                keys: vec!["p/src/cfg/2024-05-01T01-00Z/manifest.checksum".into()]
            }]
        );
        assert_eq!(
            parse_event(&json!({"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"inv"})),
            vec![InventoryEvent::Test]
        );
        let n = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"inv"},"object":{"key":"my+inv/src/c/d/manifest.checksum"}}}]});
        assert_eq!(
            parse_event(&n),
            vec![InventoryEvent::ObjectCreated {
                bucket: "inv".into(),
                keys: vec![
                    "my inv/src/c/d/manifest.checksum".into(),
                    "my+inv/src/c/d/manifest.checksum".into()
                ]
            }]
        );
        assert!(matches!(
            parse_event(&json!({"hello":1}))[0],
            InventoryEvent::Unrecognised(_)
        ));
    }
}
