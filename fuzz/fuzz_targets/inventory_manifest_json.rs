//! An S3 Inventory `manifest.json` (`InventoryManifest::from_json`): any bytes. A refusal lists
//! at least one problem and each names what is wrong; an accepted manifest is one Ferry can
//! use (a bucket ARN, a schema with Bucket and Key, files with keys).
#![no_main]

use ferry_plan::inventory_fields::Column;
use ferry_listings::inventory::manifest_json::{InventoryManifest, ManifestJsonError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match InventoryManifest::from_json(data) {
        Ok(m) => {
            assert!(!m.source_bucket.is_empty());
            assert!(!m.destination_bucket_name().is_empty());
            assert!(m.schema.has(Column::Bucket) && m.schema.has(Column::Key));
            assert_eq!(m.schema.names().len(), m.schema.columns().len());
            // Serialising must work (the functions log and store it).
            if let Err(e) = serde_json::to_string(&m) {
                panic!("an accepted manifest does not serialise: {e}");
            }
        }
        Err(ManifestJsonError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "refused without a reason");
            for p in &problems {
                assert!(!p.trim().is_empty(), "an empty problem");
            }
        }
        Err(ManifestJsonError::NotJson(_)) => {}
    }
});
