//! CSV inventories end to end: manifest.json → gzip CSV rows → filter → copy and large-object
//! manifests, with every skipped row counted by reason.

mod inventory_support;

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_listings::inventory::filter::{RowFilter, SkipReason, MAX_COPY_OBJECT_BYTES};
use ferry_listings::inventory::manifest_json::{FileFormat, InventoryManifest, ManifestJsonError};
use ferry_listings::inventory::parquet_reader::ParquetInventoryReader;
use ferry_listings::inventory::route::{
    can_use_inventory_directly, fast_path, route, FastPath, ManifestSplitter,
};
use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_listings::manifest::{check_csv_manifest, CheckOptions, CsvManifestReader};
use ferry_plan::inventory_fields::Column;
use ferry_plan::spec::{EncryptionFilter, FilterSpec};
use inventory_support::*;

fn keys(manifest: &str) -> Vec<(String, Option<String>)> {
    CsvManifestReader::new(manifest.as_bytes())
        .map(|r| {
            let r = r.expect("a valid manifest row");
            (r.key, r.version_id)
        })
        .collect()
}

fn only_keys(manifest: &str) -> Vec<String> {
    keys(manifest).into_iter().map(|(k, _)| k).collect()
}

fn assert_clean(manifest: &str, version_ids: bool) {
    let report = check_csv_manifest(
        manifest.as_bytes(),
        CheckOptions {
            bucket: Some(BUCKET.into()),
            version_ids: Some(version_ids),
        },
    )
    .unwrap();
    assert!(
        report.is_ok() && report.warnings == 0,
        "{:?}",
        report.problems
    );
}

// ---------------------------------------------------------------------------------------------
// Keys and the CSV format

#[test]
fn awkward_keys_survive_inventory_to_manifest() {
    let awkward = [
        "plain/key.txt",
        "with space/and  two.txt",
        "plus+sign/a+b.txt",
        "percent%/100%25.txt",
        "comma,key,\"quoted\".csv",
        "naïve/日本語/😀.bin",
        "line\nbreak\ttab",
        " leading and trailing ",
        "~tilde/star*/under_score",
    ];
    let objs: Vec<Obj> = awkward.iter().map(|k| Obj::new(k)).collect();
    let out = split(CURRENT_SCHEMA, &objs, None);
    assert_eq!(only_keys(&out.copy), awkward);
    assert_eq!(out.stats.copy.objects, awkward.len() as u64);
    assert_clean(&out.copy, false);
    // Ferry's manifests never hold a raw '+' (its meaning there is undocumented).
    assert!(!out.copy.contains('+'));
}

#[test]
fn spaces_written_as_percent_20_read_the_same() {
    let manifest = csv_manifest("Bucket, Key, Size");
    let text = "\"src-bucket\",\"a%20b+c%2Bd\",\"1\"\n";
    let rows: Vec<InventoryRow> =
        CsvInventoryReader::new(&manifest, DATA_KEY, gzip(text.as_bytes()).as_slice())
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_eq!(rows[0].key, "a b c+d");
}

#[test]
fn concatenated_gzip_members_are_all_read() {
    let manifest = csv_manifest(CURRENT_SCHEMA);
    let mut gz = gzip(csv_text(CURRENT_SCHEMA, &[Obj::new("one")]).as_bytes());
    gz.extend(gzip(
        csv_text(CURRENT_SCHEMA, &[Obj::new("two"), Obj::new("three")]).as_bytes(),
    ));
    let out = split_gz(&manifest, &gz, None);
    assert_eq!(only_keys(&out.copy), ["one", "two", "three"]);
}

#[test]
fn rows_carry_every_known_column() {
    let manifest = csv_manifest(ALL_VERSIONS_SCHEMA);
    let obj = Obj::new("a/b c")
        .version(Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"), true)
        .size(42)
        .modified("2024-05-01T12:30:00.000Z")
        .class("INTELLIGENT_TIERING")
        .tier("INFREQUENT")
        .encryption("SSE-KMS", "ENABLED");
    let gz = gzip(csv_text(ALL_VERSIONS_SCHEMA, &[obj]).as_bytes());
    let row = CsvInventoryReader::new(&manifest, DATA_KEY, gz.as_slice())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(row.bucket, BUCKET);
    assert_eq!(row.key, "a/b c");
    assert_eq!(
        row.version_id.as_deref(),
        Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    );
    assert_eq!(row.is_latest, Some(true));
    assert_eq!(row.is_delete_marker, Some(false));
    assert_eq!(row.size, Some(42));
    assert_eq!(row.last_modified_ms, Some(1_714_566_600_000));
    assert_eq!(
        row.etag.as_deref(),
        Some("d41d8cd98f00b204e9800998ecf8427e")
    );
    assert_eq!(row.storage_class.as_deref(), Some("INTELLIGENT_TIERING"));
    assert_eq!(
        row.intelligent_tiering_access_tier.as_deref(),
        Some("INFREQUENT")
    );
    assert_eq!(row.encryption_status.as_deref(), Some("SSE-KMS"));
    assert_eq!(row.bucket_key_status.as_deref(), Some("ENABLED"));
    assert_eq!(row.is_multipart_uploaded, Some(false));
    assert_eq!(row.replication_status, None);
    assert!(row.object_owner.is_some());
}

#[test]
fn unknown_columns_are_ignored() {
    let schema = "Bucket, Key, SomeFutureField, Size";
    let manifest = csv_manifest(schema);
    assert_eq!(manifest.schema.columns()[2], None);
    let text = "\"src-bucket\",\"k\",\"whatever, really\",\"7\"\n";
    let row = CsvInventoryReader::new(&manifest, DATA_KEY, gzip(text.as_bytes()).as_slice())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((row.key.as_str(), row.size), ("k", Some(7)));
}

#[test]
fn bad_rows_are_counted_with_file_and_row_and_reading_goes_on() {
    let manifest = csv_manifest("Bucket, Key, Size");
    let text = [
        "\"src-bucket\",\"good-1\",\"1\"",
        "\"src-bucket\",\"too\",\"many\",\"fields\"",
        "\"src-bucket\",\"bad-size\",\"12kB\"",
        "\"src-bucket\",\"50%\",\"1\"",
        "\"other-bucket\",\"k\",\"1\"",
        "\"src-bucket\",\"\",\"1\"",
        "\"src-bucket\",\"no-size\",\"\"",
        "\"src-bucket\",\"good-2\",\"2\"",
    ]
    .join("\n");
    let out = split_gz(&manifest, &gzip(text.as_bytes()), None);
    assert_eq!(only_keys(&out.copy), ["good-1", "good-2"]);
    assert_eq!(out.stats.rows, 8);
    assert_eq!(out.stats.skipped(SkipReason::Malformed).objects, 6);
    let examples = out.stats.examples.join("\n");
    for expected in [
        "row 2: 4 fields, but fileSchema names 3 columns",
        "row 3: Size \"12kB\" is not a byte count",
        "row 4: Key \"50%\"",
        "row 5: Bucket \"other-bucket\" is not the inventory's sourceBucket",
        "row 6: Key is empty",
        "row 7: Size is empty",
    ] {
        assert!(
            examples.contains(&format!("{DATA_KEY} {expected}")),
            "{expected}\n{examples}"
        );
    }
}

#[test]
fn a_truncated_gzip_file_is_an_error_not_a_short_inventory() {
    let manifest = csv_manifest(CURRENT_SCHEMA);
    let objs: Vec<Obj> = (0..2000).map(|i| Obj::new(&format!("key-{i}"))).collect();
    let gz = gzip(csv_text(CURRENT_SCHEMA, &objs).as_bytes());
    let cut = &gz[..gz.len() / 2];
    let filter = RowFilter::new(None).unwrap();
    let reader = CsvInventoryReader::new(&manifest, DATA_KEY, cut).unwrap();
    match route(&manifest.schema, reader, &filter) {
        Err(InventoryError::Io { file, .. }) => assert_eq!(file, DATA_KEY),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Versions, delete markers, archives, SSE-C and size routing

#[test]
fn all_versions_inventory_with_delete_markers_and_null_versions() {
    let objs = [
        Obj::new("a").version(Some("v2"), true),
        Obj::new("a").version(Some("v1"), false),
        // Written before versioning was enabled.
        Obj::new("a").version(None, false),
        Obj::new("deleted")
            .version(Some("dm1"), true)
            .delete_marker(),
        Obj::new("deleted").version(Some("v1"), false),
        Obj::new("old").version(None, true),
    ];
    let out = split(ALL_VERSIONS_SCHEMA, &objs, None);
    assert_eq!(
        out.copy,
        "src-bucket,a,v2\nsrc-bucket,a,v1\nsrc-bucket,a,null\nsrc-bucket,deleted,v1\nsrc-bucket,old,null\n"
    );
    assert_clean(&out.copy, true);
    assert_eq!(out.stats.skipped(SkipReason::DeleteMarker).objects, 1);
    assert_eq!(out.stats.skipped(SkipReason::DeleteMarker).bytes, 0);

    let latest = FilterSpec {
        latest_only: true,
        ..FilterSpec::default()
    };
    let out = split(ALL_VERSIONS_SCHEMA, &objs, Some(&latest));
    assert_eq!(out.copy, "src-bucket,a,v2\nsrc-bucket,old,null\n");
    assert_eq!(out.stats.skipped(SkipReason::NotLatest).objects, 3);
    assert_eq!(out.stats.skipped(SkipReason::DeleteMarker).objects, 1);
}

#[test]
fn archived_objects_are_skipped_and_reported() {
    let objs = [
        Obj::new("glacier").class("GLACIER").size(10),
        Obj::new("deep").class("DEEP_ARCHIVE").size(20),
        Obj::new("it-archive")
            .class("INTELLIGENT_TIERING")
            .tier("ARCHIVE")
            .size(40),
        Obj::new("it-deep")
            .class("INTELLIGENT_TIERING")
            .tier("DEEP_ARCHIVE")
            .size(80),
        Obj::new("it-instant")
            .class("INTELLIGENT_TIERING")
            .tier("ARCHIVE_INSTANT_ACCESS"),
        Obj::new("glacier-ir").class("GLACIER_IR"),
        Obj::new("customer-key").encryption("SSE-C", ""),
    ];
    let out = split(CURRENT_SCHEMA, &objs, None);
    assert_eq!(only_keys(&out.copy), ["it-instant", "glacier-ir"]);
    let archived = out.stats.skipped(SkipReason::Archived);
    assert_eq!((archived.objects, archived.bytes), (4, 150));
    assert_eq!(out.stats.skipped(SkipReason::SseC).objects, 1);
}

#[test]
fn objects_over_5_gib_go_to_the_large_manifest() {
    assert_eq!(MAX_COPY_OBJECT_BYTES, 5_368_709_120);
    let objs = [
        Obj::new("exactly-5gib").size(5 * GIB),
        Obj::new("one-byte-more").size(5 * GIB + 1),
        Obj::new("huge").size(5 * 1024 * GIB),
        Obj::new("empty").size(0),
    ];
    let out = split(CURRENT_SCHEMA, &objs, None);
    assert_eq!(only_keys(&out.copy), ["exactly-5gib", "empty"]);
    assert_eq!(only_keys(&out.large), ["one-byte-more", "huge"]);
    assert_eq!(out.stats.large.bytes, 5 * GIB + 1 + 5 * 1024 * GIB);
    assert_clean(&out.large, false);

    // Version ids reach the large manifest too.
    let big = [Obj::new("big").size(6 * GIB).version(None, true)];
    let out = split(ALL_VERSIONS_SCHEMA, &big, None);
    assert_eq!(out.large, "src-bucket,big,null\n");
}

// ---------------------------------------------------------------------------------------------
// Each filter dimension

fn filtered(
    objs: &[Obj],
    filter: FilterSpec,
) -> (Vec<String>, ferry_listings::inventory::route::RouteStats) {
    let out = split(CURRENT_SCHEMA, objs, Some(&filter));
    (only_keys(&out.copy), out.stats)
}

#[test]
fn prefixes() {
    let objs = ["logs/a", "logs/tmp/b", "data/c", "other"].map(Obj::new);
    let (copied, stats) = filtered(
        &objs,
        FilterSpec {
            include_prefixes: vec!["logs/".into(), "data/".into()],
            exclude_prefixes: vec!["logs/tmp/".into()],
            ..FilterSpec::default()
        },
    );
    assert_eq!(copied, ["logs/a", "data/c"]);
    assert_eq!(stats.skipped(SkipReason::Prefix).objects, 2);
}

#[test]
fn size_range_is_inclusive() {
    let objs = [0, 99, 100, 500, 501].map(|s| Obj::new(&format!("s{s}")).size(s));
    let (copied, stats) = filtered(
        &objs,
        FilterSpec {
            min_size: Some(100),
            max_size: Some(500),
            ..FilterSpec::default()
        },
    );
    assert_eq!(copied, ["s100", "s500"]);
    assert_eq!(stats.skipped(SkipReason::Size).objects, 3);
    assert_eq!(stats.skipped(SkipReason::Size).bytes, 600);
}

#[test]
fn storage_class_allow_list() {
    let objs = [
        Obj::new("std"),
        Obj::new("ia").class("STANDARD_IA"),
        Obj::new("rr").class("REDUCED_REDUNDANCY"),
        Obj::new("glacier").class("GLACIER"),
    ];
    let (copied, stats) = filtered(
        &objs,
        FilterSpec {
            storage_classes: vec!["STANDARD_IA".into(), "REDUCED_REDUNDANCY".into()],
            ..FilterSpec::default()
        },
    );
    assert_eq!(copied, ["ia", "rr"]);
    // Not on the list: counted as filtered, not as archived.
    assert_eq!(stats.skipped(SkipReason::StorageClass).objects, 2);
    assert_eq!(stats.skipped(SkipReason::Archived).objects, 0);
}

#[test]
fn encryption_filters() {
    let objs = [
        Obj::new("none").encryption("NOT-SSE", ""),
        Obj::new("s3").encryption("SSE-S3", "DISABLED"),
        Obj::new("kms").encryption("SSE-KMS", "DISABLED"),
        Obj::new("kms-bk").encryption("SSE-KMS", "ENABLED"),
        Obj::new("dsse").encryption("DSSE-KMS", "DISABLED"),
        Obj::new("kms-unknown-bk").encryption("SSE-KMS", ""),
        Obj::new("unknown").encryption("", ""),
    ];
    let cases = [
        (
            EncryptionFilter::NotSseKmsBucketKey,
            vec!["none", "s3", "kms", "dsse"],
        ),
        (EncryptionFilter::NotSseKms, vec!["none", "s3"]),
        (
            EncryptionFilter::SseKms,
            vec!["kms", "kms-bk", "dsse", "kms-unknown-bk"],
        ),
        (EncryptionFilter::SseS3, vec!["s3"]),
        (EncryptionFilter::NotSse, vec!["none"]),
    ];
    for (encryption, expected) in cases {
        let (copied, stats) = filtered(
            &objs,
            FilterSpec {
                encryption: Some(encryption),
                ..FilterSpec::default()
            },
        );
        assert_eq!(copied, expected, "{encryption:?}");
        assert_eq!(
            stats.skipped(SkipReason::Encryption).objects,
            (objs.len() - expected.len()) as u64,
            "{encryption:?}"
        );
    }
}

#[test]
fn modified_window_is_after_inclusive_before_exclusive() {
    let objs = [
        Obj::new("before").modified("2024-04-30T23:59:59.999Z"),
        Obj::new("at-start").modified("2024-05-01T00:00:00.000Z"),
        Obj::new("inside").modified("2024-05-15T10:00:00.000Z"),
        Obj::new("at-end").modified("2024-06-01T00:00:00.000Z"),
    ];
    let (copied, stats) = filtered(
        &objs,
        FilterSpec {
            modified_after: Some("2024-05-01T02:00:00+02:00".into()),
            modified_before: Some("2024-06-01T00:00:00Z".into()),
            ..FilterSpec::default()
        },
    );
    assert_eq!(copied, ["at-start", "inside"]);
    assert_eq!(stats.skipped(SkipReason::ModifiedDate).objects, 2);
}

#[test]
fn a_filter_needing_a_missing_column_is_refused_up_front() {
    let manifest = csv_manifest("Bucket, Key, Size");
    let filter = RowFilter::new(Some(&FilterSpec {
        storage_classes: vec!["STANDARD".into()],
        modified_after: Some("2024-01-01T00:00:00Z".into()),
        ..FilterSpec::default()
    }))
    .unwrap();
    let err = ManifestSplitter::new(&manifest.schema, filter, Vec::new(), Vec::new())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("no StorageClass column (for filter.storage_classes)"),
        "{text}"
    );
    assert!(text.contains("LastModifiedDate"), "{text}");

    // Routing always needs sizes.
    let no_size = csv_manifest("Bucket, Key");
    let err = ManifestSplitter::new(
        &no_size.schema,
        RowFilter::new(None).unwrap(),
        Vec::new(),
        Vec::new(),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("no Size"), "{err}");

    // Without StorageClass the run works but says what it can't see.
    let stats = route(
        &manifest.schema,
        std::iter::empty(),
        &RowFilter::new(None).unwrap(),
    )
    .unwrap();
    assert!(
        stats.warnings.iter().any(|w| w.contains("GLACIER")),
        "{stats:?}"
    );
}

#[test]
fn a_bad_filter_time_is_an_error_naming_the_field() {
    let err = RowFilter::new(Some(&FilterSpec {
        modified_before: Some("yesterday".into()),
        ..FilterSpec::default()
    }))
    .unwrap_err();
    assert!(err.contains("filter.modified_before"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The fast path

#[test]
fn fast_path_only_after_a_clean_scan() {
    let manifest = csv_manifest(CURRENT_SCHEMA);
    let empty = RowFilter::new(None).unwrap();
    assert_eq!(fast_path(&manifest, &empty, None), FastPath::NeedsScan);

    let clean = split(CURRENT_SCHEMA, &[Obj::new("a"), Obj::new("b")], None);
    assert!(can_use_inventory_directly(
        &manifest,
        &empty,
        Some(&clean.stats)
    ));

    let big = split(
        CURRENT_SCHEMA,
        &[Obj::new("a"), Obj::new("b").size(6 * GIB)],
        None,
    );
    match fast_path(&manifest, &empty, Some(&big.stats)) {
        FastPath::NotDirect(reasons) => assert!(reasons[0].contains("over 5 GiB"), "{reasons:?}"),
        other => panic!("{other:?}"),
    }

    let glacier = split(CURRENT_SCHEMA, &[Obj::new("a").class("GLACIER")], None);
    assert!(!can_use_inventory_directly(
        &manifest,
        &empty,
        Some(&glacier.stats)
    ));

    // A filter that skipped nothing changes nothing.
    let prefix = RowFilter::new(Some(&FilterSpec {
        include_prefixes: vec!["a".into()],
        ..FilterSpec::default()
    }))
    .unwrap();
    let scan = split(CURRENT_SCHEMA, &[Obj::new("a1")], Some(prefix.spec()));
    assert!(can_use_inventory_directly(
        &manifest,
        &prefix,
        Some(&scan.stats)
    ));

    let parquet = InventoryManifest::from_json(
        manifest_json(
            "Parquet",
            "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional int64 size; }",
            &[("d.parquet", 1)],
        )
        .as_bytes(),
    )
    .unwrap();
    match fast_path(&parquet, &empty, Some(&clean.stats)) {
        FastPath::NotDirect(reasons) => assert!(reasons[0].contains("only CSV"), "{reasons:?}"),
        other => panic!("{other:?}"),
    }
    let no_size = csv_manifest("Bucket, Key");
    assert!(matches!(
        fast_path(&no_size, &empty, None),
        FastPath::NotDirect(_)
    ));

    // An inventory of all versions never goes to a job as it is, however clean the scan: its
    // null versions carry an empty VersionId, which fails the task.
    let versions = csv_manifest(ALL_VERSIONS_SCHEMA);
    let clean_versions = split(ALL_VERSIONS_SCHEMA, &[Obj::new("a")], None);
    match fast_path(&versions, &empty, Some(&clean_versions.stats)) {
        FastPath::NotDirect(reasons) => {
            assert!(reasons.iter().any(|r| r.contains("`null`")), "{reasons:?}")
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// manifest.json

#[test]
fn aws_example_manifests_parse() {
    let csv = csv_manifest(ALL_VERSIONS_SCHEMA);
    assert_eq!(csv.file_format, FileFormat::Csv);
    assert_eq!(csv.destination_bucket_name(), "inventory-bucket");
    assert_eq!(csv.creation_timestamp_ms, 1_714_521_600_000);
    assert_eq!(csv.schema.len(), 21);
    assert!(csv.has_version_ids());
    assert_eq!(csv.files[0].key, DATA_KEY);

    let orc = InventoryManifest::from_json(
        manifest_json(
            "ORC",
            "struct<bucket:string,key:string,version_id:string,is_latest:boolean,size:bigint>",
            &[("d.orc", 56291)],
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(orc.schema.position(Column::Size), Some(4));
    // An ORC manifest's files are not read as CSV or Parquet.
    assert!(matches!(
        CsvInventoryReader::new(&orc, "d.orc", &b""[..]),
        Err(InventoryError::WrongFormat { .. })
    ));
    assert!(matches!(
        ParquetInventoryReader::from_bytes(&orc, "d.orc", Vec::new()),
        Err(InventoryError::WrongFormat { .. })
    ));

    // A reader of the wrong format says so.
    match CsvInventoryReader::new(&orc_as_parquet(), "d.parquet", &b""[..]) {
        Err(e @ InventoryError::WrongFormat { .. }) => {
            assert!(e.to_string().contains("fileFormat is Parquet"), "{e}")
        }
        other => panic!("{:?}", other.err()),
    }
}

fn orc_as_parquet() -> InventoryManifest {
    InventoryManifest::from_json(
        manifest_json(
            "Parquet",
            "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); }",
            &[],
        )
        .as_bytes(),
    )
    .unwrap()
}

fn problems(json: &str) -> Vec<String> {
    match InventoryManifest::from_json(json.as_bytes()) {
        Err(ManifestJsonError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn manifest_json_problems_are_all_reported_by_field() {
    let p = problems(r#"{"files": [{"key": "a", "size": 1}, {"size": -3}, 7]}"#);
    for expected in [
        "sourceBucket is missing",
        "destinationBucket is missing",
        "version is missing",
        "creationTimestamp is missing",
        "fileFormat is missing",
        "fileSchema is missing",
        "files[1].key is missing",
        "files[1].size -3 is not a byte count",
        "files[2] is a number, not an object",
    ] {
        assert!(
            p.iter().any(|m| m == expected),
            "{expected:?} not in {p:#?}"
        );
    }

    let mut good: serde_json::Value =
        serde_json::from_str(&manifest_json("CSV", CURRENT_SCHEMA, &[("k", 1)])).unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut m = good.clone();
        m[field] = value;
        m.to_string()
    };
    let one = |json: String| {
        let p = problems(&json);
        assert_eq!(p.len(), 1, "{p:?}");
        p[0].clone()
    };
    assert!(one(with("fileFormat", "XLSX".into()))
        .contains("fileFormat \"XLSX\" is not CSV, ORC or Parquet"));
    assert!(one(with("fileSchema", "Key, Size".into())).contains("no Bucket column"));
    assert!(one(with("fileSchema", "Bucket, Key, Size, Size".into())).contains("Size twice"));
    assert!(one(with("creationTimestamp", "2024-05-01".into())).contains("creationTimestamp"));
    assert!(one(with("destinationBucket", "inventory-bucket".into())).contains("not a bucket ARN"));
    assert!(one(with("sourceBucket", "Not_A_Bucket".into())).contains("sourceBucket"));
    assert!(one(with("files", serde_json::json!({}))).contains("files is an object, not an array"));
    assert!(
        one(with("version", serde_json::json!(2016))).contains("version is a number, not a string")
    );
    // A number is accepted where AWS writes a numeric string.
    good["creationTimestamp"] = serde_json::json!(1_714_521_600_000u64);
    assert!(InventoryManifest::from_json(good.to_string().as_bytes()).is_ok());

    assert!(matches!(
        InventoryManifest::from_json(b"{not json"),
        Err(ManifestJsonError::NotJson(_))
    ));
    assert_eq!(problems("[]"), ["manifest.json is not a JSON object"]);
    let rendered = InventoryManifest::from_json(b"{}").unwrap_err().to_string();
    assert!(
        rendered.starts_with("manifest.json has 7 problems:"),
        "{rendered}"
    );
}
