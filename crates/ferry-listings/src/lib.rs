//! Ferry's object listings, in and out, streamed with bounded memory: Batch Operations CSV
//! manifests ([`manifest`]: write, read, check), S3 Inventory reports ([`inventory`]: the
//! `manifest.json`, the CSV, Parquet and ORC data files, the `[filter]`, the routing into copy
//! and large-object manifests, the delta index) and completion reports ([`report`]: its
//! `manifest.json` and result CSVs).
//!
//! Pure: it reads and writes bytes it is handed, with no ports, no async and no clock. It
//! depends only on `ferry-plan` (the spec and the AWS names it reads data against); the
//! benchmarks and fuzz targets sit on it. `ferry-flows` depends on it, never the other way round.

pub mod inventory;
pub mod manifest;
pub mod report;
