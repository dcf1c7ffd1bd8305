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

/// The rows (fields as written, keys still URL-encoded) of an inventory-format `manifest.json`
/// (`S3InventoryReport_CSV_20161130`) and its data files, read as Batch Operations would: every
/// file listed must be there (`get(key)`), with the listed `size` and `MD5checksum`, gzip CSV
/// with `fileSchema`'s column count. Any departure is the error.
pub fn inventory_manifest_rows(
    manifest_json: &[u8],
    get: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<Vec<String>>, String> {
    use std::io::Read;
    let manifest: Value =
        serde_json::from_slice(manifest_json).map_err(|e| format!("manifest.json: {e}"))?;
    let text = |field: &str| {
        manifest
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("manifest.json has no text field {field}"))
    };
    if text("fileFormat")? != "CSV" {
        return Err("fileFormat is not CSV".to_string());
    }
    for field in [
        "sourceBucket",
        "destinationBucket",
        "version",
        "creationTimestamp",
    ] {
        text(field)?;
    }
    let columns = text("fileSchema")?.split(',').count();
    let files = manifest
        .get("files")
        .and_then(Value::as_array)
        .ok_or("manifest.json has no files[]")?;
    let mut rows = Vec::new();
    for file in files {
        let key = file
            .get("key")
            .and_then(Value::as_str)
            .ok_or("files[].key")?;
        let stored = get(key).ok_or_else(|| format!("data file {key} is missing"))?;
        if file.get("size").and_then(Value::as_u64) != Some(stored.len() as u64) {
            return Err(format!("data file {key}: size is not files[].size"));
        }
        if file.get("MD5checksum").and_then(Value::as_str) != Some(md5_hex(&stored).as_str()) {
            return Err(format!("data file {key}: MD5 is not files[].MD5checksum"));
        }
        let mut csv_text = Vec::new();
        flate2::read::MultiGzDecoder::new(stored.as_slice())
            .read_to_end(&mut csv_text)
            .map_err(|e| format!("data file {key} is not gzip: {e}"))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(csv_text.as_slice());
        for record in reader.records() {
            let record = record.map_err(|e| format!("data file {key}: {e}"))?;
            if record.len() != columns {
                return Err(format!("data file {key}: a row of {} fields", record.len()));
            }
            rows.push(record.iter().map(str::to_string).collect());
        }
    }
    Ok(rows)
}

/// [`inventory_manifest_rows`] of `s3://bucket/manifest_key`, the data files read from the
/// same bucket; also the data files' server-side encryption, in order (Batch Operations can't
/// read an SSE-KMS manifest written by others than S3 Inventory, so Ferry's must be SSE-S3).
pub async fn inventory_manifest_rows_in_s3(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest_key: &str,
) -> Result<
    (
        Vec<Vec<String>>,
        Vec<Option<aws_sdk_s3::types::ServerSideEncryption>>,
    ),
    String,
> {
    let read = |key: String| async move {
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("s3://{bucket}/{key}: {e:?}"))?;
        let encryption = out.server_side_encryption().cloned();
        let body = out.body.collect().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((body.to_vec(), encryption))
    };
    let (json, _) = read(manifest_key.to_string()).await?;
    let manifest: Value = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    let mut files = std::collections::BTreeMap::new();
    let mut encryption = Vec::new();
    for file in manifest["files"].as_array().cloned().unwrap_or_default() {
        let key = file["key"].as_str().unwrap_or_default().to_string();
        let (body, sse) = read(key.clone()).await?;
        encryption.push(sse);
        files.insert(key, body);
    }
    let rows = inventory_manifest_rows(&json, |key| files.get(key).cloned())?;
    Ok((rows, encryption))
}
