//! A redrive keeps only the failed tasks of the job's own manifest, for every manifest form a
//! Ferry job has (report::job_manifest): a CSV manifest (with version ids), and an S3 Inventory
//! `manifest.json` whose gzipped data files must match the MD5 it lists.

use std::collections::HashMap;
use std::io::Write;

use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::report::job_manifest::{select_failed_rows, FailedTasks, JobManifestError};
use ferry_flows::report::jobs::{JobManifestRef, ManifestObjects, ReportObjects};

/// Objects by (bucket, key) with their ETag; If-Match compares it.
#[derive(Default)]
struct Objects(HashMap<(String, String), (Vec<u8>, String)>);

impl Objects {
    fn put(&mut self, bucket: &str, key: &str, body: Vec<u8>, etag: &str) {
        self.0
            .insert((bucket.into(), key.into()), (body, etag.to_string()));
    }
    fn get(&self, bucket: &str, key: &str) -> Result<&(Vec<u8>, String), AwsCallError> {
        self.0
            .get(&(bucket.to_string(), key.to_string()))
            .ok_or(AwsCallError {
                kind: AwsErrorKind::NotFound,
                code: "NoSuchKey".into(),
                message: key.into(),
            })
    }
}

impl ManifestObjects for Objects {
    async fn stream_object_if_match<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        _version_id: Option<&'a str>,
        etag: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        let (body, actual) = self.get(bucket, key)?;
        if actual != etag {
            return Err(AwsCallError {
                kind: AwsErrorKind::Other,
                code: "PreconditionFailed".into(),
                message: "At least one of the pre-conditions you specified did not hold".into(),
            });
        }
        // In small chunks, so lines span chunks.
        for chunk in body.chunks(7) {
            sink(chunk);
        }
        Ok(body.len() as u64)
    }
}

impl ReportObjects for Objects {
    async fn read_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsCallError> {
        Ok(self.get(bucket, key).ok().map(|(b, _)| b.clone()))
    }
    async fn stream_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64, AwsCallError> {
        let (body, _) = self.get(bucket, key)?;
        for chunk in body.chunks(5) {
            sink(chunk);
        }
        Ok(body.len() as u64)
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_csv_manifest_with_version_ids_keeps_only_its_own_failed_versions() {
    let mut objects = Objects::default();
    objects.put(
        "ops",
        "ferry/ledger.csv",
        b"src,a%20b.pdf,v1\nsrc,a%20b.pdf,v2\r\nsrc,c.pdf,null\nsrc,d.pdf,v9\n".to_vec(),
        "e1",
    );
    let manifest = JobManifestRef {
        format: "S3BatchOperations_CSV_20180820".into(),
        fields: vec!["Bucket".into(), "Key".into(), "VersionId".into()],
        object_arn: "arn:aws:s3:::ops/ferry/ledger.csv".into(),
        object_version_id: None,
        etag: "e1".into(),
    };
    let mut failed = FailedTasks::default();
    failed.insert("src", "a b.pdf", Some("v2"));
    failed.insert("src", "c.pdf", None);
    // Another version of a listed key, and a key the manifest never had: not redriven.
    failed.insert("src", "a b.pdf", Some("v0"));
    failed.insert("src", "secret.pdf", None);
    let sel = block_on(select_failed_rows(&objects, "j-1", &manifest, &mut failed)).unwrap();
    assert_eq!(
        String::from_utf8(sel.body).unwrap(),
        "src,a%20b.pdf,v2\nsrc,c.pdf,null\n"
    );
    assert_eq!((sel.rows, sel.manifest_rows, sel.version_ids), (2, 4, true));
    assert_eq!(failed.unmatched(), 2);
    assert!(failed.is_unmatched("src", "secret.pdf", None));

    // Rewritten since the job ran: refused, never read as the new content.
    objects.put(
        "ops",
        "ferry/ledger.csv",
        b"src,secret.pdf,null\n".to_vec(),
        "e2",
    );
    let err = block_on(select_failed_rows(
        &objects,
        "j-1",
        &manifest,
        &mut FailedTasks::default(),
    ))
    .unwrap_err();
    assert!(matches!(err, JobManifestError::Changed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is no longer the manifest job j-1 ran on"),
        "{err}"
    );
}

fn inventory(objects: &mut Objects, data: &str, listed_md5: Option<&str>) -> JobManifestRef {
    inventory_with_data_at(objects, data, listed_md5, "data/0123.csv.gz")
}

/// An inventory whose one data file is at `<prefix>/<source-bucket>/<configuration-id>/<data_at>`.
fn inventory_with_data_at(
    objects: &mut Objects,
    data: &str,
    listed_md5: Option<&str>,
    data_at: &str,
) -> JobManifestRef {
    let gz = gzip(data);
    let md5 = listed_md5.map_or_else(|| md5_hex(&gz), str::to_string);
    let dir = "inv/src/all";
    let data_key = format!("{dir}/{data_at}");
    objects.put("ops", &data_key, gz, "whatever");
    let json = serde_json::json!({
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::ops",
        "version": "2016-11-30",
        "creationTimestamp": "1795400000000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, Size",
        "files": [{"key": data_key, "size": 10, "MD5checksum": md5}]
    });
    let key = format!("{dir}/2026-12-01T01-00Z/manifest.json");
    objects.put("ops", &key, json.to_string().into_bytes(), "m1");
    JobManifestRef {
        format: "S3InventoryReport_CSV_20161130".into(),
        fields: vec![],
        object_arn: format!("arn:aws:s3:::ops/{key}"),
        object_version_id: None,
        etag: "m1".into(),
    }
}

#[test]
fn an_inventory_manifest_is_read_through_its_data_files() {
    let mut objects = Objects::default();
    let data = "\"src\",\"a+b.pdf\",\"v1\",\"true\",\"5\"\n\"src\",\"c.pdf\",\"\",\"true\",\"7\"\n\"src\",\"e.pdf\",\"v3\",\"true\",\"1\"\n";
    let manifest = inventory(&mut objects, data, None);
    let mut failed = FailedTasks::default();
    failed.insert("src", "a b.pdf", Some("v1"));
    failed.insert("src", "c.pdf", Some("null"));
    failed.insert("src", "secret.pdf", None);
    let sel = block_on(select_failed_rows(&objects, "j-2", &manifest, &mut failed)).unwrap();
    assert_eq!(
        String::from_utf8(sel.body).unwrap(),
        "src,a%20b.pdf,v1\nsrc,c.pdf,null\n"
    );
    assert_eq!((sel.rows, sel.manifest_rows), (2, 3));
    assert_eq!(failed.unmatched(), 1);
}

#[test]
fn an_inventory_data_file_rewritten_after_the_manifest_is_refused() {
    let mut objects = Objects::default();
    // manifest.json lists another file's MD5: the data file was replaced (to add a row, say).
    let manifest = inventory(
        &mut objects,
        "\"src\",\"secret.pdf\",\"\",\"true\",\"5\"\n",
        Some("0123456789abcdef0123456789abcdef"),
    );
    let mut failed = FailedTasks::default();
    failed.insert("src", "secret.pdf", None);
    let err = block_on(select_failed_rows(&objects, "j-3", &manifest, &mut failed)).unwrap_err();
    assert!(
        matches!(err, JobManifestError::DataFileChanged { .. }),
        "{err}"
    );
}

/// A data file elsewhere in the inventory's directory (where Ferry writes its run manifests, or
/// anyone may plant one) is not the inventory's, even with the right MD5: only `data/` holds the
/// data files (S3 User Guide, "Locating your inventory list").
#[test]
fn an_inventory_data_file_outside_data_is_refused() {
    let mut objects = Objects::default();
    let manifest = inventory_with_data_at(
        &mut objects,
        "\"src\",\"secret.pdf\",\"\",\"true\",\"5\"\n",
        None,
        "ferry-run1/planted.csv.gz",
    );
    let mut failed = FailedTasks::default();
    failed.insert("src", "secret.pdf", None);
    let err = block_on(select_failed_rows(&objects, "j-4", &manifest, &mut failed)).unwrap_err();
    assert!(
        matches!(err, JobManifestError::BadInventory { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("inv/src/all/data/"), "{err}");
}

/// `MD5checksum` is compared as the inventory run compares it: hex in either case, or base64.
#[test]
fn an_inventory_md5_in_base64_or_upper_case_hex_is_accepted() {
    use base64::Engine;
    use md5::{Digest, Md5};
    let data = "\"src\",\"a.pdf\",\"\",\"true\",\"5\"\n";
    let digest = Md5::digest(gzip(data));
    for listed in [
        base64::engine::general_purpose::STANDARD.encode(digest),
        md5_hex(&gzip(data)).to_uppercase(),
    ] {
        let mut objects = Objects::default();
        let manifest = inventory(&mut objects, data, Some(&listed));
        let mut failed = FailedTasks::default();
        failed.insert("src", "a.pdf", None);
        let sel = block_on(select_failed_rows(&objects, "j-5", &manifest, &mut failed))
            .unwrap_or_else(|e| panic!("{listed}: {e}"));
        assert_eq!(sel.rows, 1, "{listed}");
    }
}

/// #18: the copy list of an inventory run is Ferry's own inventory report,
/// `inventory/<plan>/runs/<run>/copy/manifest.json` in the state bucket with its parts in
/// `…/runs/<run>/data/`: a redrive reads it as it reads S3's (the parts under the `data/` beside
/// the manifest's parent, their MD5s, keys URL-encoded, every field quoted).
#[test]
fn ferrys_own_inventory_report_is_read_through_its_parts() {
    use ferry_listings::inventory::copy_manifest::CopyManifestJson;
    use ferry_listings::inventory::manifest_json::InventoryFile;
    let mut objects = Objects::default();
    let run = "inventory/fp/runs/0f3c";
    let mut files = Vec::new();
    for (i, text) in [
        "\"src\",\"a%20b.pdf\"\n\"src\",\"c%2Bd.pdf\"\n",
        "\"src\",\"e.pdf\"\n",
    ]
    .iter()
    .enumerate()
    {
        let gz = gzip(text);
        let key = format!("{run}/data/{i:06}.csv.gz");
        files.push(InventoryFile {
            key: key.clone(),
            size: gz.len() as u64,
            md5_checksum: md5_hex(&gz),
        });
        objects.put("ops", &key, gz, "p");
    }
    let json = CopyManifestJson {
        source_bucket: "src",
        report_bucket: "ops",
        partition: "aws",
        creation_timestamp_ms: 1_795_400_000_000,
        files: &files,
    }
    .to_bytes()
    .unwrap();
    let key = format!("{run}/copy/manifest.json");
    objects.put("ops", &key, json, "m1");
    let manifest = JobManifestRef {
        format: "S3InventoryReport_CSV_20161130".into(),
        fields: vec![],
        object_arn: format!("arn:aws:s3:::ops/{key}"),
        object_version_id: None,
        etag: "m1".into(),
    };
    let mut failed = FailedTasks::default();
    failed.insert("src", "c+d.pdf", None);
    failed.insert("src", "e.pdf", None);
    let sel = block_on(select_failed_rows(&objects, "j-9", &manifest, &mut failed)).unwrap();
    assert_eq!(
        String::from_utf8(sel.body).unwrap(),
        "src,c%2Bd.pdf\nsrc,e.pdf\n"
    );
    assert_eq!((sel.rows, sel.manifest_rows), (2, 3));
    assert_eq!(failed.unmatched(), 0);
}
