//! S3 Inventory reports: the `manifest.json`, streaming readers of its data files, the
//! transfer's `[filter]`, and the router that turns inventory rows into Batch Operations CSV
//! manifests.
//!
//! The flow, one data file at a time:
//!
//! 1. [`InventoryManifest::from_json`] reads `manifest.json` (every problem at once) and its
//!    [`InventorySchema`] (the columns, from `fileSchema`).
//! 2. [`CsvInventoryReader`] (gzip CSV), [`ParquetInventoryReader`] or [`OrcInventoryReader`]
//!    yields [`InventoryRow`]s with decoded keys. Batch Operations only accepts CSV inventories,
//!    so Parquet and ORC ones are always rewritten.
//! 3. [`ManifestSplitter`] sends each row to exactly one place: the copy manifest (≤ 5 GiB), the
//!    large-object manifest (> 5 GiB, for the LambdaInvoke job), or a skip reason in
//!    [`RouteStats`]. Nothing is dropped without being counted.
//! 4. [`fast_path`] says whether the job can read the inventory's `manifest.json` directly.
//! 5. [`scan::scan_data_files`] does 2–3 for many data files at once, one per core, each into
//!    its own parts ([`part`]); [`copy_manifest`] lists the copy parts in a `manifest.json` of
//!    S3 Inventory's form, so one job reads them all.
//! 6. [`spill`] splits 2–3 in two for the fan-out across functions: data files spilled by
//!    shard, then each shard compared with its shard of the last index.
//!
//! Memory stays bounded by the widest row (CSV), or one Parquet or ORC file plus one batch of
//! rows or one compression chunk per column (both formats need random access to their footer).

pub mod copy_manifest;
pub mod csv_reader;
pub mod file_format;
pub mod filter;
pub mod index;
pub mod manifest_json;
pub mod orc;
pub mod parquet_reader;
pub mod part;
pub mod route;
pub mod row;
pub mod scan;
pub mod spill;

pub use csv_reader::CsvInventoryReader;
pub use filter::{Outcome, RowFilter, SkipReason, MAX_COPY_OBJECT_BYTES};
pub use manifest_json::{
    FileFormat, InventoryFile, InventoryManifest, InventorySchema, ManifestJsonError,
};
pub use orc::OrcInventoryReader;
pub use parquet_reader::ParquetInventoryReader;
pub use route::{
    can_use_inventory_directly, fast_path, route, FastPath, ManifestSplitter, RouteStats,
    SplitOutput, Tally, MAX_LISTED_EXAMPLES,
};
pub use row::{InventoryError, InventoryRow};
