//! S3 Inventory as S3 delivers it, for the end-to-end tests of inventory manifests and
//! event-driven runs: the gzip CSV data file, `manifest.json` and, last, `manifest.checksum`
//! (S3 User Guide, "Cataloging and analyzing your data with S3 Inventory": the layout
//! `<prefix>/<source-bucket>/<config-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json`), the keys encoded as
//! S3 Inventory writes them in CSV, and the EventBridge event of a new inventory.

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::moto::workspace_root;

/// Puts each `(key, body)` into `bucket` (as its account's administrator, or S3 itself).
pub async fn put_all(s3: &aws_sdk_s3::Client, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
    for (key, body) in objects {
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
    }
}

/// S3 delivering a gzip CSV inventory of `source_bucket` for `date` under `dir` of
/// `inventory_bucket`: the data file, `manifest.json` (`schema`, created at `created_ms`) and,
/// last, `manifest.checksum`. Returns the data file's key and the checksum's key.
#[allow(clippy::too_many_arguments)]
pub async fn deliver_csv_inventory(
    s3: &aws_sdk_s3::Client,
    inventory_bucket: &str,
    dir: &str,
    date: &str,
    source_bucket: &str,
    schema: &str,
    csv: &str,
    created_ms: u64,
) -> (String, String) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(csv.as_bytes()).expect("gzip");
    let data_key = format!("{dir}data/{date}.csv.gz");
    let data = gz.finish().expect("gzip");
    let manifest = serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{inventory_bucket}"),
        "version": "2016-11-30",
        "creationTimestamp": created_ms.to_string(),
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": [{"key": data_key, "size": data.len(), "MD5checksum": md5_hex(&data)}],
    })
    .to_string();
    let checksum_key = format!("{dir}{date}/manifest.checksum");
    put_all(
        s3,
        inventory_bucket,
        vec![
            (data_key.clone(), data),
            (
                format!("{dir}{date}/manifest.json"),
                manifest.clone().into_bytes(),
            ),
            (
                checksum_key.clone(),
                md5_hex(manifest.as_bytes()).into_bytes(),
            ),
        ],
    )
    .await;
    (data_key, checksum_key)
}

/// The MD5 of `bytes` in hex, as S3 Inventory writes it in `manifest.checksum` (of
/// `manifest.json`) and in `files[].MD5checksum` (of each data file).
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A key as S3 Inventory writes it in a CSV inventory: URL-encoded, a space as `+`, everything
/// but `A-Za-z0-9.-*_` as `%XX`.
pub fn inventory_csv_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// EventBridge's "Object Created" event for `checksum_key` in `bucket`, from the fixture
/// `events/inventory-handler.json`.
pub fn inventory_event(bucket: &str, checksum_key: &str) -> Value {
    let path = workspace_root().join("events/inventory-handler.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    event["detail"]["bucket"]["name"] = Value::String(bucket.to_string());
    event["detail"]["object"]["key"] = Value::String(checksum_key.to_string());
    event
}
