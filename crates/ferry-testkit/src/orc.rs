//! ORC files written by Apache ORC's own C++ writer (through pyorc in `.venv`), so Ferry's ORC
//! reader is tested against what a real ORC implementation writes, not against itself.
//!
//! The Python side is `python/write_orc.py`; `bash scripts/setup-python` installs pyorc.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// How the file is written. The defaults are ORC's (ZLIB, 64 MiB stripes) with direct strings.
#[derive(Debug, Clone)]
pub struct OrcOptions {
    /// `ZLIB`, `SNAPPY`, `LZ4`, `ZSTD` or `NONE`.
    pub compression: &'static str,
    /// Dictionary-encode every string column (else every one is direct).
    pub dictionary: bool,
    pub stripe_size: u64,
    /// The compression chunk size.
    pub block_size: u64,
    /// The writer's time zone, recorded in each stripe footer.
    pub timezone: &'static str,
}

impl Default for OrcOptions {
    fn default() -> Self {
        Self {
            compression: "ZLIB",
            dictionary: false,
            stripe_size: 64 << 20,
            block_size: 64 << 10,
            timezone: "UTC",
        }
    }
}

/// An ORC file of `rows` (JSON arrays in `schema` order; timestamps as epoch milliseconds).
/// Panics with the writer's message if pyorc is missing or refuses the rows: this is test support.
pub fn write_orc(schema: &str, rows: &[Value], options: &OrcOptions) -> Vec<u8> {
    let request = json!({
        "schema": schema,
        "rows": rows,
        "compression": options.compression,
        "dictionary": options.dictionary,
        "stripe_size": options.stripe_size,
        "block_size": options.block_size,
        "timezone": options.timezone,
    });
    let python = crate::moto::workspace_root().join(".venv/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/write_orc.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run `bash scripts/setup-python` first): {e}",
                python.display()
            )
        });
    let mut stdin = child.stdin.take().expect("piped stdin");
    let body = request.to_string();
    // Written from a thread: a large request could otherwise fill the pipe while the child
    // blocks writing its output.
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let output = child.wait_with_output().expect("write_orc.py runs");
    writer
        .join()
        .expect("stdin writer thread")
        .expect("request written to write_orc.py");
    assert!(
        output.status.success(),
        "write_orc.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
