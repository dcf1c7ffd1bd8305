//! S3 Inventory CSV data files: any bytes, read as plain CSV, as bytes we gzip (one or two
//! members), and as raw bytes handed to the gzip reader; under one of four schemas. Every row
//! is checked, routed and written, and what is written must check clean (see `ferry_fuzz`).
#![no_main]

use std::io::Write;

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_fuzz::{
    inventory_manifest, read_route_and_check, split_first, CSV_ALL_VERSIONS, CSV_CURRENT,
    CSV_NO_SIZE, CSV_VERSIONS_SMALL, DATA_KEY,
};
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;

fn gzip(members: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let done = gz.write_all(m).and_then(|()| gz.finish());
        match done {
            Ok(bytes) => out.extend(bytes),
            Err(e) => panic!("gzip to memory failed: {e}"),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (selector, body) = split_first(data);
    let schema = [
        CSV_ALL_VERSIONS,
        CSV_CURRENT,
        CSV_VERSIONS_SMALL,
        CSV_NO_SIZE,
    ][usize::from(selector & 3)];
    let manifest = inventory_manifest("CSV", schema);
    // Rows are bounded by the decompressed size; raw gzip can expand, so count generously.
    let limit = body.len() * 1100 + 2;
    match (selector >> 2) & 3 {
        0 => match CsvInventoryReader::from_decompressed(&manifest, DATA_KEY, body) {
            Ok(r) => read_route_and_check(&manifest, r, limit),
            Err(e) => panic!("opening a CSV file failed: {e}"),
        },
        1 | 2 => {
            // Two members split at an arbitrary point: concatenated gzip streams are one file.
            let cut = if selector & 16 == 0 {
                body.len()
            } else {
                body.len() / 2
            };
            let gz = gzip(&[&body[..cut], &body[cut..]]);
            let plain = match CsvInventoryReader::from_decompressed(&manifest, DATA_KEY, body) {
                Ok(r) => r.map(|r| r.map_err(|e| e.to_string())).collect::<Vec<_>>(),
                Err(e) => panic!("opening a CSV file failed: {e}"),
            };
            let zipped = match CsvInventoryReader::new(&manifest, DATA_KEY, gz.as_slice()) {
                Ok(r) => r.map(|r| r.map_err(|e| e.to_string())).collect::<Vec<_>>(),
                Err(e) => panic!("opening a gzip file failed: {e}"),
            };
            assert_eq!(plain, zipped, "gzip changed what was read");
            match CsvInventoryReader::new(&manifest, DATA_KEY, gz.as_slice()) {
                Ok(r) => read_route_and_check(&manifest, r, limit),
                Err(e) => panic!("opening a gzip file failed: {e}"),
            }
        }
        _ => {
            // Raw bytes as a .csv.gz: damaged gzip must be an error, never a panic or a hang.
            let r = CsvInventoryReader::new(&manifest, DATA_KEY, body);
            match r {
                Ok(r) => read_route_and_check(&manifest, r.take(100_000), usize::MAX),
                Err(e) => panic!("opening a gzip file failed: {e}"),
            }
        }
    }
});
