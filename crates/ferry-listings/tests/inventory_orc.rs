//! ORC inventories: files written by Apache ORC's own C++ writer (pyorc, via ferry-testkit) in
//! the schema of the S3 user guide's ORC manifest example, read back through
//! `OrcInventoryReader` and routed. Every codec, direct and dictionary strings, many stripes and
//! compression chunks, every RLE v2 sub-encoding, nulls, damaged files, and a property test
//! round-tripping awkward keys through ORC → CSV manifest.

mod inventory_support;

use ferry_listings::inventory::filter::RowFilter;
use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::orc::OrcInventoryReader;
use ferry_listings::inventory::route::ManifestSplitter;
use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_listings::manifest::CsvManifestReader;
use ferry_testkit::{write_orc, OrcOptions};
use inventory_support::{
    assert_binary_format_sample_routed, binary_format_sample, manifest_json, split_rows, Obj,
    BUCKET, GIB,
};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The fileSchema of the S3 user guide's ORC manifest example.
const AWS_SCHEMA: &str = "struct<bucket:string,key:string,version_id:string,is_latest:boolean,\
    is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,e_tag:string,\
    storage_class:string,is_multipart_uploaded:boolean,replication_status:string,\
    encryption_status:string,object_lock_retain_until_date:timestamp,object_lock_mode:string,\
    object_lock_legal_hold_status:string,intelligent_tiering_access_tier:string,\
    bucket_key_status:string,checksum_algorithm:string,object_access_control_list:string,\
    object_owner:string>";

const DATA_KEY: &str = "inv/src-bucket/all/data/d754c470.orc";

const CODECS: [&str; 5] = ["NONE", "ZLIB", "SNAPPY", "LZ4", "ZSTD"];

fn manifest(schema: &str) -> InventoryManifest {
    InventoryManifest::from_json(manifest_json("ORC", schema, &[(DATA_KEY, 1)]).as_bytes())
        .expect("valid manifest.json")
}

/// `o` as a row of [`AWS_SCHEMA`], as S3 would write it (keys as they are, nulls where a
/// delete marker has no value).
fn aws_row(o: &Obj) -> Value {
    let dm = o.delete_marker;
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let object = |v: Value| if dm { Value::Null } else { v };
    json!([
        BUCKET,
        o.key,
        o.version_id,
        o.is_latest,
        dm,
        object(json!(o.size)),
        ferry_plan::time::parse_rfc3339_ms(&o.last_modified),
        object(json!("d41d8cd98f00b204e9800998ecf8427e")),
        object(json!(o.storage_class)),
        object(json!(true)),
        null,
        object(json!(o.encryption)),
        null,
        null,
        null,
        text(&o.tier),
        object(json!(o.bucket_key)),
        null,
        null,
        null,
    ])
}

fn orc(objs: &[Obj], options: &OrcOptions) -> Vec<u8> {
    let rows: Vec<Value> = objs.iter().map(aws_row).collect();
    write_orc(AWS_SCHEMA, &rows, options)
}

fn sample() -> Vec<Obj> {
    binary_format_sample()
}

fn read_all(manifest: &InventoryManifest, bytes: Vec<u8>) -> Vec<InventoryRow> {
    OrcInventoryReader::from_bytes(manifest, DATA_KEY, bytes)
        .expect("opens")
        .map(|r| r.expect("a good row"))
        .collect()
}

fn assert_rows_match(rows: &[InventoryRow], objs: &[Obj], context: &str) {
    assert_eq!(rows.len(), objs.len(), "{context}");
    for (row, o) in rows.iter().zip(objs) {
        let dm = o.delete_marker;
        assert_eq!(row.bucket, BUCKET, "{context}");
        assert_eq!(row.key, o.key, "{context}");
        assert_eq!(row.version_id, o.version_id, "{context} {}", o.key);
        assert_eq!(row.is_latest, Some(o.is_latest), "{context} {}", o.key);
        assert_eq!(row.is_delete_marker, Some(dm), "{context} {}", o.key);
        assert_eq!(row.size, (!dm).then_some(o.size), "{context} {}", o.key);
        assert_eq!(
            row.last_modified_ms,
            ferry_plan::time::parse_rfc3339_ms(&o.last_modified),
            "{context} {}",
            o.key
        );
        assert_eq!(
            row.storage_class.as_deref(),
            (!dm).then_some(o.storage_class.as_str()),
            "{context} {}",
            o.key
        );
        assert_eq!(
            row.intelligent_tiering_access_tier.as_deref(),
            (!o.tier.is_empty()).then_some(o.tier.as_str()),
            "{context} {}",
            o.key
        );
        assert_eq!(row.object_lock_retain_until_ms, None, "{context}");
        assert_eq!(row.replication_status, None, "{context}");
    }
}

#[test]
fn orc_round_trip_with_every_codec_direct_and_dictionary() {
    let m = manifest(AWS_SCHEMA);
    for compression in CODECS {
        for dictionary in [false, true] {
            let options = OrcOptions {
                compression,
                dictionary,
                ..OrcOptions::default()
            };
            let rows = read_all(&m, orc(&sample(), &options));
            let context = format!("{compression} dictionary={dictionary}");
            assert_rows_match(&rows, &sample(), &context);
            let first = &rows[0];
            assert_eq!(first.last_modified_ms, Some(1_714_521_600_000));
            assert_eq!(
                first.etag.as_deref(),
                Some("d41d8cd98f00b204e9800998ecf8427e")
            );
            assert_eq!(first.is_multipart_uploaded, Some(true));
            assert_eq!(first.encryption_status.as_deref(), Some("SSE-S3"));
            assert_eq!(rows[3].etag, None, "{context}: a delete marker has no ETag");
            assert_eq!(rows[6].bucket_key_status.as_deref(), Some("ENABLED"));
        }
    }
}

#[test]
fn orc_rows_are_routed_into_csv_manifests() {
    let m = manifest(AWS_SCHEMA);
    let bytes = orc(&sample(), &OrcOptions::default());
    let reader = OrcInventoryReader::from_bytes(&m, DATA_KEY, bytes).unwrap();
    assert_binary_format_sample_routed(&split_rows(&m, reader, None));
}

/// Many rows over many small stripes and compression chunks; sizes chosen so the writer uses
/// every RLE v2 sub-encoding (short repeats, deltas, direct, and patched base for the rare
/// huge object among small ones); nulls in every optional column; repeated and distinct strings.
fn varied_objects(n: u64) -> Vec<Obj> {
    (0..n)
        .map(|i| {
            // The writer picks an encoding per run of up to 512 values: each kind of sequence
            // is 1000 rows long so that whole runs of it exist.
            let size = match i % 5000 {
                0..=999 => 4096,                       // short repeat
                1000..=1999 => 10 * i,                 // delta, fixed step
                2000..=2999 => i * i,                  // delta, growing steps
                3000..=3999 => 10_000_000_000 - i * i, // delta, shrinking steps
                j if j % 97 == 0 => 7 * GIB + i,       // patched base: rare outliers
                _ => (i * 7919) % 100_000,             // direct
            };
            let o = Obj::new(&format!("logs/2026/{:03}/part-{i:07}.gz", i % 97))
                .size(size)
                .modified(&ferry_plan::time::format_rfc3339_ms(
                    // Whole seconds (a fixed delta) for half the rows, then uneven ones.
                    1_700_000_000_000 + (i as i64) * if i % 5000 < 2500 { 1_000 } else { 1_337 },
                ));
            match i % 5 {
                0 => o.version(Some(&format!("v{i}")), true),
                1 => o.version(None, false),
                2 => o.version(Some("dm"), true).delete_marker(),
                _ => o.tier(if i % 2 == 0 { "FREQUENT" } else { "" }),
            }
        })
        .collect()
}

#[test]
fn many_stripes_chunks_and_every_integer_encoding() {
    let m = manifest(AWS_SCHEMA);
    let objs = varied_objects(30_000);
    for (compression, dictionary) in [("ZLIB", false), ("ZSTD", true), ("NONE", true)] {
        let options = OrcOptions {
            compression,
            dictionary,
            stripe_size: 256 * 1024,
            block_size: 4096,
            ..OrcOptions::default()
        };
        let bytes = orc(&objs, &options);
        let mut reader = OrcInventoryReader::from_bytes(&m, DATA_KEY, bytes).unwrap();
        let mut rows = Vec::new();
        let mut row = InventoryRow::default();
        while reader.read_into(&mut row).unwrap() {
            rows.push(row.clone());
        }
        assert_eq!(reader.rows_read(), objs.len() as u64);
        assert_rows_match(
            &rows,
            &objs,
            &format!("{compression} dictionary={dictionary}"),
        );
    }
}

#[test]
fn timestamps_before_2015_and_1970_and_the_instant_type() {
    let schema = "struct<bucket:string,key:string,last_modified_date:timestamp,\
                  object_lock_retain_until_date:timestamp with local time zone>";
    let m = manifest(schema);
    let times: [i64; 6] = [
        1_714_521_600_123, // 2024, milliseconds
        1_420_070_400_000, // ORC's epoch
        1_150_000_000_999, // 2006: negative ORC seconds
        -1_500,            // 1969-12-31T23:59:58.500Z
        0,
        4_102_444_800_000, // 2100
    ];
    let rows: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| json!([BUCKET, format!("k{i}"), t, t]))
        .collect();
    for compression in ["ZLIB", "NONE"] {
        let options = OrcOptions {
            compression,
            ..OrcOptions::default()
        };
        let read = read_all(&m, write_orc(schema, &rows, &options));
        let got: Vec<(Option<i64>, Option<i64>)> = read
            .iter()
            .map(|r| (r.last_modified_ms, r.object_lock_retain_until_ms))
            .collect();
        let want: Vec<(Option<i64>, Option<i64>)> =
            times.iter().map(|t| (Some(*t), Some(*t))).collect();
        assert_eq!(got, want, "{compression}");
    }
}

#[test]
fn timestamps_from_a_writer_outside_utc_are_refused_by_name() {
    let schema = "struct<bucket:string,key:string,last_modified_date:timestamp>";
    let m = manifest(schema);
    let options = OrcOptions {
        timezone: "America/New_York",
        ..OrcOptions::default()
    };
    let bytes = write_orc(
        schema,
        &[json!([BUCKET, "k", 1_714_521_600_000i64])],
        &options,
    );
    let mut reader = OrcInventoryReader::from_bytes(&m, DATA_KEY, bytes).unwrap();
    match reader.next() {
        Some(Err(e @ InventoryError::Orc { .. })) => {
            let text = e.to_string();
            assert!(text.contains(DATA_KEY), "{text}");
            assert!(text.contains("last_modified_date"), "{text}");
            assert!(text.contains("America/New_York"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(reader.next().is_none(), "the file ends after a file error");

    // The instant type is UTC whatever the writer's zone.
    let schema =
        "struct<bucket:string,key:string,last_modified_date:timestamp with local time zone>";
    let bytes = write_orc(
        schema,
        &[json!([BUCKET, "k", 1_714_521_600_000i64])],
        &options,
    );
    let rows = read_all(&manifest(schema), bytes);
    assert_eq!(rows[0].last_modified_ms, Some(1_714_521_600_000));
}

#[test]
fn an_orc_file_on_disk_is_read_through_the_file() {
    let m = manifest(AWS_SCHEMA);
    let path = std::env::temp_dir().join(format!("ferry-inventory-{}.orc", std::process::id()));
    std::fs::write(&path, orc(&sample(), &OrcOptions::default())).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let n = OrcInventoryReader::new(&m, DATA_KEY, file)
        .unwrap()
        .filter(Result::is_ok)
        .count();
    std::fs::remove_file(&path).ok();
    assert_eq!(n, 7);
}

#[test]
fn bad_rows_are_reported_by_row_and_reading_goes_on() {
    let schema = "struct<bucket:string,key:string,size:bigint>";
    let m = manifest(schema);
    let rows = [
        json!([BUCKET, "ok-1", 1]),
        json!(["another-bucket", "wrong-bucket", 2]),
        json!([BUCKET, "negative", -5]),
        json!([BUCKET, "", 3]),
        json!([BUCKET, "no-size", null]),
        json!([BUCKET, "ok-2", 4]),
    ];
    let results: Vec<_> = OrcInventoryReader::from_bytes(
        &m,
        DATA_KEY,
        write_orc(schema, &rows, &OrcOptions::default()),
    )
    .unwrap()
    .collect();
    assert_eq!(results.len(), 6);
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| {
            assert!(e.is_row_error(), "{e}");
            e.to_string()
        })
        .collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].contains("row 2") && errors[0].contains("another-bucket"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("row 3") && errors[1].contains("negative"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("row 4") && errors[2].contains("Key is empty"),
        "{errors:?}"
    );
    assert!(
        errors[3].contains("row 5") && errors[3].contains("Size is empty"),
        "{errors:?}"
    );
    let keys: Vec<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(keys, ["ok-1", "ok-2"]);
}

#[test]
fn an_overlong_value_refuses_its_row_without_being_buffered() {
    let schema = "struct<bucket:string,key:string,size:bigint>";
    let m = manifest(schema);
    let long = "k".repeat(70_000);
    let rows = [json!([BUCKET, long, 1]), json!([BUCKET, "short", 2])];
    // Direct strings: the row is refused, the next one is read.
    let results: Vec<_> = OrcInventoryReader::from_bytes(
        &m,
        DATA_KEY,
        write_orc(schema, &rows, &OrcOptions::default()),
    )
    .unwrap()
    .collect();
    match &results[..] {
        [Err(e), Ok(row)] => {
            assert!(e.is_row_error(), "{e}");
            assert!(e.to_string().contains("Key is 70000 bytes long"), "{e}");
            assert_eq!(row.key, "short");
        }
        other => panic!("{other:?}"),
    }
    // In a dictionary, the value is shared by rows: the file is refused.
    let options = OrcOptions {
        dictionary: true,
        ..OrcOptions::default()
    };
    let mut reader =
        OrcInventoryReader::from_bytes(&m, DATA_KEY, write_orc(schema, &rows, &options)).unwrap();
    match reader.next() {
        Some(Err(e @ InventoryError::Orc { .. })) => {
            assert!(e.to_string().contains("70000 bytes long"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_schemas_are_refused_with_every_problem_named() {
    // size as a string, is_latest as an int, no bucket column.
    let schema = "struct<key:string,size:string,is_latest:int>";
    let bytes = write_orc(schema, &[json!(["k", "1", 1])], &OrcOptions::default());
    let m = manifest("struct<bucket:string,key:string>");
    match OrcInventoryReader::from_bytes(&m, DATA_KEY, bytes) {
        Err(e @ InventoryError::Schema { .. }) => {
            let text = e.to_string();
            assert!(text.contains("column size is string"), "{text}");
            assert!(text.contains("column is_latest is int"), "{text}");
            assert!(text.contains("no bucket column"), "{text}");
        }
        other => panic!("{:?}", other.err()),
    }
    // manifest.json lists a column the file lacks.
    let schema = "struct<bucket:string,key:string>";
    let bytes = write_orc(schema, &[json!([BUCKET, "k"])], &OrcOptions::default());
    let m = manifest("struct<bucket:string,key:string,size:bigint>");
    match OrcInventoryReader::from_bytes(&m, DATA_KEY, bytes) {
        Err(e @ InventoryError::Schema { .. }) => assert!(e.to_string().contains("size"), "{e}"),
        other => panic!("{:?}", other.err()),
    }
    // A CSV manifest's file is not read as ORC.
    let csv = InventoryManifest::from_json(
        manifest_json("CSV", "Bucket, Key", &[(DATA_KEY, 1)]).as_bytes(),
    )
    .unwrap();
    assert!(matches!(
        OrcInventoryReader::from_bytes(&csv, DATA_KEY, Vec::new()),
        Err(InventoryError::WrongFormat { .. })
    ));
}

#[test]
fn damaged_orc_files_are_errors_never_panics() {
    let m = manifest(AWS_SCHEMA);
    let whole = orc(&varied_objects(300), &OrcOptions::default());
    match OrcInventoryReader::from_bytes(&m, DATA_KEY, b"ORC not really".to_vec()) {
        Err(e @ InventoryError::Orc { .. }) => assert!(e.to_string().contains(DATA_KEY), "{e}"),
        other => panic!("{:?}", other.err()),
    }
    // Every truncation and a flipped byte at many offsets: an error or fewer rows, never a
    // panic and never more rows than written.
    let drain = |bytes: Vec<u8>| -> usize {
        match OrcInventoryReader::from_bytes(&m, DATA_KEY, bytes) {
            Ok(reader) => reader.take(10_000).filter(Result::is_ok).count(),
            Err(_) => 0,
        }
    };
    for cut in (0..whole.len()).step_by(7) {
        assert!(drain(whole[..cut].to_vec()) <= 300);
    }
    for at in (0..whole.len()).step_by(3) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = whole.clone();
            damaged[at] ^= flip;
            assert!(drain(damaged) <= 300, "byte {at} ^ {flip:#x}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Keys with spaces, `+`, `%`, commas, quotes, newlines and non-ASCII survive ORC → row →
    /// CSV manifest → key.
    #[test]
    fn awkward_keys_round_trip_through_orc_and_the_manifest(
        keys in proptest::collection::vec("[a-z /+%,\"\n\r\t'=&?#é日本🚀-]{1,40}", 1..60),
        dictionary in any::<bool>(),
        codec in 0usize..CODECS.len(),
    ) {
        let schema = "struct<bucket:string,key:string,size:bigint>";
        let m = manifest(schema);
        let rows: Vec<Value> = keys.iter().map(|k| json!([BUCKET, k, 1])).collect();
        let options = OrcOptions { compression: CODECS[codec], dictionary, ..OrcOptions::default() };
        let reader = OrcInventoryReader::from_bytes(&m, DATA_KEY, write_orc(schema, &rows, &options)).unwrap();
        let mut splitter = ManifestSplitter::new(&m.schema, RowFilter::new(None).unwrap(), Vec::new(), Vec::new()).unwrap();
        for item in reader {
            splitter.push_result(item).unwrap();
        }
        let out = splitter.finish().unwrap();
        let back: Vec<String> = CsvManifestReader::new(&out.copy[..]).map(|r| r.unwrap().key).collect();
        prop_assert_eq!(back, keys);
    }
}
