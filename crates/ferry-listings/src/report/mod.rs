//! Batch Operations completion reports as data: the report's `manifest.json` ([`manifest_json`])
//! and its result CSVs ([`results`]), parsed defensively and streamed. What a report means for a
//! job (diagnosis, summary, accounting, redrive) is `ferry_flows::report`.

pub mod manifest_json;
pub mod results;
