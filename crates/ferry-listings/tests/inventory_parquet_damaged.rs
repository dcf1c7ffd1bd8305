//! Damaged Parquet inventory files give errors, never panics, whatever byte is wrong. (Its own
//! test binary: the panic hook is silenced here, which would hide other tests' panics.)

mod inventory_support;

use std::sync::Arc;

use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::parquet_reader::ParquetInventoryReader;
use inventory_support::manifest_json;
use parquet::basic::Compression;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

const SCHEMA: &str = "message s3.inventory { required binary bucket (UTF8); \
    required binary key (UTF8); optional int64 size; }";

fn file(rows: usize, compression: Compression) -> Vec<u8> {
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .set_data_page_row_count_limit(50)
            .set_write_batch_size(50)
            .build(),
    );
    let schema = Arc::new(parse_message_type(SCHEMA).unwrap());
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props).unwrap();
    let mut rg = writer.next_row_group().unwrap();
    let mut column = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        match col.untyped() {
            ColumnWriter::ByteArrayColumnWriter(w) => {
                let values: Vec<ByteArray> = (0..rows)
                    .map(|i| match column {
                        0 => ByteArray::from("src-bucket"),
                        _ => ByteArray::from(format!("key-{}", i % 7).as_str()),
                    })
                    .collect();
                w.write_batch(&values, None, None).unwrap();
            }
            ColumnWriter::Int64ColumnWriter(w) => {
                let values: Vec<i64> = (0..rows as i64).collect();
                w.write_batch(&values, Some(&vec![1; rows]), None).unwrap();
            }
            _ => unreachable!(),
        }
        col.close().unwrap();
        column += 1;
    }
    rg.close().unwrap();
    writer.close().unwrap();
    out
}

#[test]
fn every_single_byte_damage_is_an_error_or_a_read_never_a_panic() {
    std::panic::set_hook(Box::new(|_| {}));
    let manifest = InventoryManifest::from_json(
        manifest_json("Parquet", SCHEMA, &[("d.parquet", 1)]).as_bytes(),
    )
    .unwrap();
    for compression in [Compression::UNCOMPRESSED, Compression::SNAPPY] {
        let whole = file(200, compression);
        for pos in 4..whole.len() - 8 {
            for delta in [1u8, 0x80] {
                let mut damaged = whole.clone();
                damaged[pos] = damaged[pos].wrapping_add(delta);
                let outcome = std::panic::catch_unwind(|| {
                    if let Ok(reader) =
                        ParquetInventoryReader::from_bytes(&manifest, "d.parquet", damaged)
                    {
                        // Bad rows and a damaged file both come back as errors.
                        let _ = reader.count();
                    }
                });
                assert!(
                    outcome.is_ok(),
                    "{compression:?}: byte {pos} + {delta} made the reader panic"
                );
            }
        }
    }
    let _ = std::panic::take_hook();
}
