//! S3 Inventory ORC data files, two ways: raw bytes (the corpus starts from real files), and one
//! of the samples Apache ORC's own writer made (`fuzz/samples`, every codec, direct and
//! dictionary strings) with fuzz-chosen bytes overwritten or cut off. Damage must be an error,
//! never a panic or a hang; good rows are checked, routed and written (see `ferry_fuzz`).
//!
//! Ferry's ORC decoder is its own code, so unlike the Parquet target no panic is excused.
#![no_main]

use ferry_listings::inventory::orc::OrcInventoryReader;
use ferry_fuzz::{inventory_manifest, patched, read_route_and_check, split_first, DATA_KEY};
use libfuzzer_sys::fuzz_target;

const SCHEMA: &str = "struct<bucket:string,key:string,version_id:string,is_latest:boolean,\
    is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,storage_class:string,\
    encryption_status:string,bucket_key_status:string>";

/// Made by `fuzz/make_orc_samples.py`.
const SAMPLES: [&[u8]; 10] = [
    include_bytes!("../samples/inventory-none-direct.orc"),
    include_bytes!("../samples/inventory-none-dictionary.orc"),
    include_bytes!("../samples/inventory-zlib-direct.orc"),
    include_bytes!("../samples/inventory-zlib-dictionary.orc"),
    include_bytes!("../samples/inventory-snappy-direct.orc"),
    include_bytes!("../samples/inventory-snappy-dictionary.orc"),
    include_bytes!("../samples/inventory-lz4-direct.orc"),
    include_bytes!("../samples/inventory-lz4-dictionary.orc"),
    include_bytes!("../samples/inventory-zstd-direct.orc"),
    include_bytes!("../samples/inventory-zstd-dictionary.orc"),
];

fuzz_target!(|data: &[u8]| {
    let (selector, body) = split_first(data);
    let manifest = inventory_manifest("ORC", SCHEMA);
    let bytes = if selector % 2 == 0 {
        body.to_vec()
    } else {
        patched(SAMPLES[usize::from(selector / 2) % SAMPLES.len()], body)
    };
    let limit = 100_000;
    match OrcInventoryReader::from_bytes(&manifest, DATA_KEY, bytes) {
        Ok(reader) => read_route_and_check(&manifest, reader.take(limit), limit),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(DATA_KEY), "the error does not name the file: {text}");
        }
    }
});
