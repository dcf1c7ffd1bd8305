//! S3 Inventory Parquet data files, three ways: raw bytes; a valid file (any of the codecs S3
//! may use) with fuzz-chosen bytes overwritten or cut off; and a file written from fuzz-chosen
//! rows (any bytes as keys and version ids, any sizes and times). Damage must be an error, never
//! a panic or a hang; good rows are checked, routed and written (see `ferry_fuzz`).
//!
//! The reader catches the parquet crate's own panics (`fenced`) and turns them into errors.
//! libFuzzer's panic hook would abort on those before they are caught, so this target's hook
//! aborts only on panics outside the parquet crate and its codecs.
#![no_main]

use std::sync::{Arc, OnceLock};

use ferry_listings::inventory::parquet_reader::ParquetInventoryReader;
use ferry_fuzz::{inventory_manifest, patched, read_route_and_check, split_first, DATA_KEY};
use libfuzzer_sys::fuzz_target;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

const SCHEMA: &str = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); \
    optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; \
    optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); \
    optional binary storage_class (UTF8); optional binary encryption_status (UTF8); \
    optional binary bucket_key_status (UTF8); }";

struct Row {
    bucket: Vec<u8>,
    key: Vec<u8>,
    version_id: Option<Vec<u8>>,
    is_latest: Option<bool>,
    is_delete_marker: Option<bool>,
    size: Option<i64>,
    last_modified: Option<i64>,
    storage_class: Option<Vec<u8>>,
}

fn codec(selector: u8) -> Compression {
    match selector % 4 {
        0 => Compression::UNCOMPRESSED,
        1 => Compression::SNAPPY,
        2 => Compression::GZIP(GzipLevel::default()),
        _ => Compression::ZSTD(ZstdLevel::default()),
    }
}

fn sample() -> Vec<Row> {
    let row = |key: &str, size: i64, dm: bool| Row {
        bucket: b"src-bucket".to_vec(),
        key: key.as_bytes().to_vec(),
        version_id: Some(format!("v-{key}").into_bytes()),
        is_latest: Some(true),
        is_delete_marker: Some(dm),
        size: (!dm).then_some(size),
        last_modified: Some(1_714_521_600_000),
        storage_class: Some(b"STANDARD".to_vec()),
    };
    vec![
        row("plain.txt", 100, false),
        row("with space+plus%20.txt", 0, false),
        row("comma,\"quote\"/日本.bin", 7, false),
        row("gone", 0, true),
        row("huge", 6 << 30, false),
    ]
}

/// Rows from fuzz bytes: rows split at 0xFF, fields at 0xFE.
fn rows_from(data: &[u8]) -> Vec<Row> {
    data.split(|b| *b == 0xFF)
        .take(64)
        .map(|chunk| {
            let mut f = chunk.split(|b| *b == 0xFE);
            let key = f.next().unwrap_or_default().to_vec();
            let version = f.next().map(<[u8]>::to_vec);
            let flags = f.next().and_then(|b| b.first().copied()).unwrap_or(0);
            let num = |bytes: Option<&[u8]>| {
                bytes.map(|b| {
                    let mut a = [0u8; 8];
                    for (d, s) in a.iter_mut().zip(b) {
                        *d = *s;
                    }
                    i64::from_le_bytes(a)
                })
            };
            let size = num(f.next());
            let last_modified = num(f.next());
            let storage_class = f.next().map(<[u8]>::to_vec);
            Row {
                bucket: if flags & 1 == 0 {
                    b"src-bucket".to_vec()
                } else {
                    b"other".to_vec()
                },
                key,
                version_id: version,
                is_latest: (flags & 2 != 0).then_some(flags & 4 != 0),
                is_delete_marker: (flags & 8 != 0).then_some(flags & 16 != 0),
                size,
                last_modified,
                storage_class,
            }
        })
        .collect()
}

fn write_file(rows: &[Row], compression: Compression, group: usize) -> Vec<u8> {
    let schema = match parse_message_type(SCHEMA) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the harness's schema: {e}"),
    };
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .set_data_page_row_count_limit(2)
            .set_write_batch_size(2)
            .build(),
    );
    let mut out = Vec::new();
    let result = (|| -> parquet::errors::Result<()> {
        let mut writer = SerializedFileWriter::new(&mut out, schema, props)?;
        for chunk in rows.chunks(group.max(1)) {
            let mut rg = writer.next_row_group()?;
            let mut i = 0;
            while let Some(mut col) = rg.next_column()? {
                let bytes = |pick: &dyn Fn(&Row) -> Option<Vec<u8>>| -> (Vec<ByteArray>, Vec<i16>) {
                    let vals: Vec<Option<Vec<u8>>> = chunk.iter().map(pick).collect();
                    let defs = vals.iter().map(|v| i16::from(v.is_some())).collect();
                    (
                        vals.into_iter().flatten().map(ByteArray::from).collect(),
                        defs,
                    )
                };
                match (i, col.untyped()) {
                    (0 | 1, ColumnWriter::ByteArrayColumnWriter(w)) => {
                        let (v, _) = bytes(&|r| {
                            Some(if i == 0 {
                                r.bucket.clone()
                            } else {
                                r.key.clone()
                            })
                        });
                        w.write_batch(&v, None, None)?;
                    }
                    (2 | 7 | 8 | 9, ColumnWriter::ByteArrayColumnWriter(w)) => {
                        let (v, d) = bytes(&|r| match i {
                            2 => r.version_id.clone(),
                            7 => r.storage_class.clone(),
                            8 => Some(b"SSE-S3".to_vec()),
                            _ => Some(b"DISABLED".to_vec()),
                        });
                        w.write_batch(&v, Some(&d), None)?;
                    }
                    (_, ColumnWriter::BoolColumnWriter(w)) => {
                        let vals: Vec<Option<bool>> = chunk
                            .iter()
                            .map(|r| {
                                if i == 3 {
                                    r.is_latest
                                } else {
                                    r.is_delete_marker
                                }
                            })
                            .collect();
                        let d: Vec<i16> = vals.iter().map(|v| i16::from(v.is_some())).collect();
                        let v: Vec<bool> = vals.into_iter().flatten().collect();
                        w.write_batch(&v, Some(&d), None)?;
                    }
                    (_, ColumnWriter::Int64ColumnWriter(w)) => {
                        let vals: Vec<Option<i64>> = chunk
                            .iter()
                            .map(|r| if i == 5 { r.size } else { r.last_modified })
                            .collect();
                        let d: Vec<i16> = vals.iter().map(|v| i16::from(v.is_some())).collect();
                        let v: Vec<i64> = vals.into_iter().flatten().collect();
                        w.write_batch(&v, Some(&d), None)?;
                    }
                    _ => panic!("column {i} has an unexpected type"),
                }
                col.close()?;
                i += 1;
            }
            rg.close()?;
        }
        writer.close()?;
        Ok(())
    })();
    if let Err(e) = result {
        panic!("writing a Parquet file to memory failed: {e}");
    }
    out
}

fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let inside_decoder = info.location().is_some_and(|l| {
            let file = l.file();
            // Registry crates (parquet, thrift, snap, zstd, flate2, …) and std called by them.
            file.contains("/.cargo/registry/") || file.starts_with("/rustc/")
        });
        if !inside_decoder {
            default_hook(info);
            std::process::abort();
        }
    }));
}

fuzz_target!(init: install_panic_hook(), |data: &[u8]| {
    let (selector, body) = split_first(data);
    let manifest = inventory_manifest("Parquet", SCHEMA);
    let bytes = match selector % 3 {
        0 => body.to_vec(),
        1 => {
            // Written once per codec: writing is most of an input's time otherwise.
            static SAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
            let samples = SAMPLES.get_or_init(|| (0..4).map(|c| write_file(&sample(), codec(c), 2)).collect());
            patched(&samples[usize::from(selector / 3 % 4)], body)
        }
        _ => write_file(&rows_from(body), codec(selector / 3), 1 + usize::from(selector / 12)),
    };
    let limit = 100_000;
    match ParquetInventoryReader::from_bytes(&manifest, DATA_KEY, bytes) {
        Ok(reader) => read_route_and_check(&manifest, reader.take(limit), limit),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(DATA_KEY), "the error does not name the file: {text}");
        }
    }
});
