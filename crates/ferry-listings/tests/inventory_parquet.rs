//! Parquet inventories: files written here with the parquet crate's writer, in the schema of the
//! S3 user guide's example, read back through `ParquetInventoryReader` and routed.

mod inventory_support;

use std::sync::Arc;

use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::parquet_reader::ParquetInventoryReader;
use ferry_listings::inventory::row::{InventoryError, InventoryRow};
use ferry_listings::manifest::CsvManifestReader;
use inventory_support::{
    assert_binary_format_sample_routed, binary_format_sample, manifest_json, split_rows, Obj,
    BUCKET,
};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// The fileSchema of the S3 user guide's Parquet manifest example.
const AWS_SCHEMA: &str = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); \
    optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; \
    optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); \
    optional binary storage_class (UTF8); optional boolean is_multipart_uploaded; \
    optional binary replication_status (UTF8); optional binary encryption_status (UTF8); \
    optional int64 object_lock_retain_until_date (TIMESTAMP_MILLIS); optional binary object_lock_mode (UTF8); \
    optional binary object_lock_legal_hold_status (UTF8); optional binary intelligent_tiering_access_tier (UTF8); \
    optional binary bucket_key_status (UTF8); optional binary checksum_algorithm (UTF8); \
    optional binary object_access_control_list (UTF8); optional binary object_owner (UTF8);}";

const DATA_KEY: &str = "inv/src-bucket/all/data/d754c470.parquet";

fn manifest(schema: &str) -> InventoryManifest {
    InventoryManifest::from_json(manifest_json("Parquet", schema, &[(DATA_KEY, 1)]).as_bytes())
        .expect("valid manifest.json")
}

enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

/// The value of Parquet column `name` for `o`, as S3 would write it (keys as they are).
fn cell(o: &Obj, name: &str) -> Cell {
    let dm = o.delete_marker;
    let text = |s: &str| Cell::Text((!s.is_empty()).then(|| s.to_string()));
    match name {
        "bucket" => text(BUCKET),
        "key" => text(&o.key),
        "version_id" => Cell::Text(o.version_id.clone()),
        "is_latest" => Cell::Bool(Some(o.is_latest)),
        "is_delete_marker" => Cell::Bool(Some(dm)),
        "size" => Cell::Int((!dm).then_some(o.size as i64)),
        "last_modified_date" => Cell::Int(ferry_plan::time::parse_rfc3339_ms(&o.last_modified)),
        "e_tag" if !dm => text("d41d8cd98f00b204e9800998ecf8427e"),
        "storage_class" if !dm => text(&o.storage_class),
        "encryption_status" if !dm => text(&o.encryption),
        "bucket_key_status" if !dm => text(&o.bucket_key),
        "intelligent_tiering_access_tier" => text(&o.tier),
        "is_multipart_uploaded" => Cell::Bool((!dm).then_some(true)),
        "object_lock_retain_until_date" => Cell::Int(None),
        _ => Cell::Text(None),
    }
}

/// A Parquet file of `objs` in `schema`, `group` rows per row group, small pages.
fn parquet_file(schema: &str, objs: &[Obj], compression: Compression, group: usize) -> Vec<u8> {
    let schema = Arc::new(parse_message_type(schema).expect("a Parquet message type"));
    let names: Vec<String> = schema
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .build(),
    );
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props).unwrap();
    for chunk in objs.chunks(group) {
        let mut rg = writer.next_row_group().unwrap();
        let mut i = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            let cells: Vec<Cell> = chunk.iter().map(|o| cell(o, &names[i])).collect();
            let required = names[i] == "bucket" || names[i] == "key";
            let defs: Vec<i16> = cells
                .iter()
                .map(|c| match c {
                    Cell::Text(v) => i16::from(v.is_some()),
                    Cell::Int(v) => i16::from(v.is_some()),
                    Cell::Bool(v) => i16::from(v.is_some()),
                })
                .collect();
            let defs = (!required).then_some(defs.as_slice());
            match col.untyped() {
                ColumnWriter::ByteArrayColumnWriter(w) => {
                    let values: Vec<ByteArray> = cells
                        .iter()
                        .filter_map(|c| match c {
                            Cell::Text(Some(s)) => Some(ByteArray::from(s.as_str())),
                            _ => None,
                        })
                        .collect();
                    w.write_batch(&values, defs, None).unwrap();
                }
                ColumnWriter::Int64ColumnWriter(w) => {
                    let values: Vec<i64> = cells
                        .iter()
                        .filter_map(|c| match c {
                            Cell::Int(v) => *v,
                            _ => None,
                        })
                        .collect();
                    w.write_batch(&values, defs, None).unwrap();
                }
                ColumnWriter::BoolColumnWriter(w) => {
                    let values: Vec<bool> = cells
                        .iter()
                        .filter_map(|c| match c {
                            Cell::Bool(v) => *v,
                            _ => None,
                        })
                        .collect();
                    w.write_batch(&values, defs, None).unwrap();
                }
                _ => unreachable!("the inventory schema has no other types"),
            }
            col.close().unwrap();
            i += 1;
        }
        rg.close().unwrap();
    }
    writer.close().unwrap();
    out
}

fn sample() -> Vec<Obj> {
    binary_format_sample()
}

fn read_all(manifest: &InventoryManifest, bytes: Vec<u8>) -> Vec<InventoryRow> {
    ParquetInventoryReader::from_bytes(manifest, DATA_KEY, bytes)
        .expect("opens")
        .map(|r| r.expect("a good row"))
        .collect()
}

#[test]
fn parquet_round_trip_with_every_codec() {
    let m = manifest(AWS_SCHEMA);
    for compression in [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::GZIP(GzipLevel::default()),
        Compression::ZSTD(ZstdLevel::default()),
    ] {
        let rows = read_all(&m, parquet_file(AWS_SCHEMA, &sample(), compression, 1000));
        assert_eq!(rows.len(), 7, "{compression:?}");
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        // Keys are not URL-encoded in Parquet: a '+' and a "%20" stay as they are.
        assert_eq!(
            keys,
            [
                "plain.txt",
                "with space+plus%20.txt",
                "comma,\"quote\"/日本.bin",
                "gone",
                "cold",
                "huge",
                "kms-bk"
            ]
        );
        let first = &rows[0];
        assert_eq!(first.bucket, BUCKET);
        assert_eq!(first.version_id.as_deref(), Some("v2"));
        assert_eq!(first.is_latest, Some(true));
        assert_eq!(first.is_delete_marker, Some(false));
        assert_eq!(first.size, Some(100));
        assert_eq!(first.last_modified_ms, Some(1_714_521_600_000));
        assert_eq!(first.storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(first.is_multipart_uploaded, Some(true));
        assert_eq!(first.object_lock_retain_until_ms, None);
        assert_eq!(rows[1].version_id, None);
        assert_eq!(rows[3].is_delete_marker, Some(true));
        assert_eq!(rows[3].size, None);
        assert_eq!(rows[6].bucket_key_status.as_deref(), Some("ENABLED"));
    }
}

#[test]
fn parquet_rows_are_routed_into_csv_manifests() {
    let m = manifest(AWS_SCHEMA);
    let bytes = parquet_file(AWS_SCHEMA, &sample(), Compression::SNAPPY, 3);
    let reader = ParquetInventoryReader::from_bytes(&m, DATA_KEY, bytes).unwrap();
    let split = split_rows(&m, reader, None);
    assert_binary_format_sample_routed(&split);
    // The manifest reads back to the same keys.
    let back: Vec<String> = CsvManifestReader::new(split.copy.as_bytes())
        .map(|r| r.unwrap().key)
        .collect();
    assert_eq!(back[1], "with space+plus%20.txt");
}

#[test]
fn many_row_groups_pages_and_batches() {
    let m = manifest(AWS_SCHEMA);
    // More rows than one decoding batch (1024), several row groups of uneven length, nulls in
    // every optional column.
    let objs: Vec<Obj> = (0..2600)
        .map(|i| {
            let o = Obj::new(&format!("k/{i:05}")).size(i);
            match i % 5 {
                0 => o.version(Some("v"), true),
                1 => o.version(None, false),
                2 => o.version(Some("dm"), true).delete_marker(),
                _ => o.tier(if i % 2 == 0 { "FREQUENT" } else { "" }),
            }
        })
        .collect();
    let rows = read_all(
        &m,
        parquet_file(AWS_SCHEMA, &objs, Compression::SNAPPY, 777),
    );
    assert_eq!(rows.len(), objs.len());
    for (row, o) in rows.iter().zip(&objs) {
        assert_eq!(row.key, o.key);
        assert_eq!(row.version_id, o.version_id);
        assert_eq!(row.is_delete_marker, Some(o.delete_marker));
        assert_eq!(row.size, (!o.delete_marker).then_some(o.size));
        assert_eq!(
            row.intelligent_tiering_access_tier.as_deref(),
            (!o.tier.is_empty()).then_some(o.tier.as_str())
        );
    }
}

#[test]
fn a_parquet_file_on_disk_is_read_without_loading_it() {
    let m = manifest(AWS_SCHEMA);
    let path = std::env::temp_dir().join(format!("ferry-inventory-{}.parquet", std::process::id()));
    std::fs::write(
        &path,
        parquet_file(AWS_SCHEMA, &sample(), Compression::SNAPPY, 4),
    )
    .unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let n = ParquetInventoryReader::new(&m, DATA_KEY, file)
        .unwrap()
        .filter(Result::is_ok)
        .count();
    std::fs::remove_file(&path).ok();
    assert_eq!(n, 7);
}

#[test]
fn broken_parquet_files_are_errors_not_panics() {
    let m = manifest(AWS_SCHEMA);
    match ParquetInventoryReader::from_bytes(&m, DATA_KEY, b"PAR1 not really".to_vec()) {
        Err(e @ InventoryError::Parquet { .. }) => assert!(e.to_string().contains(DATA_KEY), "{e}"),
        other => panic!("{:?}", other.err()),
    }
    // A file cut in the middle: the footer is gone.
    let whole = parquet_file(AWS_SCHEMA, &sample(), Compression::SNAPPY, 1000);
    assert!(
        ParquetInventoryReader::from_bytes(&m, DATA_KEY, whole[..whole.len() / 2].to_vec())
            .is_err()
    );

    // Without a key column.
    let no_key = "message s3.inventory { required binary bucket (UTF8); optional int64 size; }";
    let bytes = parquet_file(no_key, &sample(), Compression::SNAPPY, 1000);
    match ParquetInventoryReader::from_bytes(&manifest(AWS_SCHEMA), DATA_KEY, bytes) {
        Err(e @ InventoryError::Schema { .. }) => {
            assert!(e.to_string().contains("no key column"), "{e}")
        }
        other => panic!("{:?}", other.err()),
    }
    // Found by fuzzing (fuzz/ inventory_parquet): a file without a column manifest.json lists
    // (here size) gave rows without sizes, each counted Malformed with no word of why.
    let no_size =
        "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); }";
    let bytes = parquet_file(no_size, &sample(), Compression::SNAPPY, 1000);
    match ParquetInventoryReader::from_bytes(&manifest(AWS_SCHEMA), DATA_KEY, bytes) {
        Err(e @ InventoryError::Schema { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(DATA_KEY) && text.contains("lists version_id, is_latest"),
                "{e}"
            );
            assert!(text.contains("size"), "{e}");
        }
        other => panic!("{:?}", other.err()),
    }
    // A column of an unexpected type.
    let odd = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary size (UTF8); }";
    let bytes = parquet_file(odd, &[], Compression::SNAPPY, 1000);
    match ParquetInventoryReader::from_bytes(&manifest(AWS_SCHEMA), DATA_KEY, bytes) {
        Err(e @ InventoryError::Schema { .. }) => {
            assert!(e.to_string().contains("column size"), "{e}")
        }
        other => panic!("{:?}", other.err()),
    }
}
