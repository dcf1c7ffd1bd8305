//! Gzip inflaters on an inventory's data files (run through `scripts/bench-inventory`, not a
//! test).
//!
//! ```text
//! bench_inflate <dir>/multi              # every inflater, each in its own process
//! bench_inflate <dir>/multi <inflater>   # one: flate2-zlib-rs | miniz_oxide | libdeflate | zune-inflate
//! ```
//!
//! Each inflater decompresses every data file `<dir>/manifest.json` lists, one after the other
//! on one thread, into a sink, and prints one JSON line: decompressed MB/s (10^6 bytes), and
//! whether it streams (memory bounded by its buffers) or needs the whole file and the whole
//! output in memory. Every one checks the gzip trailer's CRC-32 and size. Each runs in a
//! process of its own so that its peak RSS is its own.
//!
//! - `flate2-zlib-rs`: `flate2::bufread::MultiGzDecoder` with the workspace's backend (zlib-rs),
//!   what the engine reads CSV inventories with. Streams.
//! - `miniz_oxide`: flate2's default `rust_backend`, driven directly through its streaming API
//!   (`inflate::stream`, raw deflate; the gzip header and trailer are read here, the CRC-32 by
//!   crc32fast as flate2 does). flate2's backend is a compile-time feature and Cargo unifies
//!   features, so a renamed second flate2 with `rust_backend` would still get zlib-rs (which
//!   flate2 prefers over miniz_oxide when both are on). Streams.
//! - `libdeflate` (libdeflater): whole buffers only: the compressed file and its output (sized
//!   from the trailer's ISIZE, so files under 4 GiB, one gzip member) must both be in memory.
//! - `zune-inflate`: whole buffers too (it grows its output vector itself).
//! - zlib-ng (`libz-ng-sys`, or flate2's `zlib-ng` feature) is not included: building it needs
//!   cmake, and turning on flate2's feature would switch every flate2 user in this build to it.

mod bench_support;
use bench_support::peak_rss;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

const INFLATERS: [&str; 4] = [
    "flate2-zlib-rs",
    "miniz_oxide",
    "libdeflate",
    "zune-inflate",
];
const BUFFER_BYTES: usize = 256 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.len() {
        2 => all(&args[1]),
        3 => one(&args[1], &args[2]),
        _ => Err(format!(
            "usage: bench_inflate <dir>/multi [{}]",
            INFLATERS.join(" | ")
        )),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(2);
    }
}

/// Runs every inflater in a child process and checks that they agree on the output size.
fn all(dir: &str) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut sizes = Vec::new();
    for name in INFLATERS {
        let out = std::process::Command::new(&me)
            .arg(dir)
            .arg(name)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: {e}", me.display()))?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            println!(
                "{}",
                serde_json::json!({"inflater": name, "error": format!("exit {}", out.status)})
            );
            continue;
        }
        println!("{line}");
        let output_bytes = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["output_bytes"].as_u64());
        sizes.push((name, output_bytes));
    }
    println!(
        "{}",
        serde_json::json!({
            "inflater": "zlib-ng",
            "skipped": "not built: libz-ng-sys needs cmake, and flate2's zlib-ng feature would switch the whole build's flate2 backend",
        })
    );
    let first = sizes.first().and_then(|(_, s)| *s);
    if sizes.iter().any(|(_, s)| *s != first || s.is_none()) {
        return Err(format!(
            "the inflaters disagree on the output size: {sizes:?}"
        ));
    }
    Ok(())
}

/// The data files `dir/manifest.json` lists, in order (key `data/<name>` is `dir/<name>`).
fn data_files(dir: &str) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(dir).join("manifest.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let files = manifest["files"]
        .as_array()
        .ok_or_else(|| format!("{}: no files[]", path.display()))?;
    files
        .iter()
        .map(|f| {
            let key = f["key"]
                .as_str()
                .ok_or_else(|| format!("{}: a file without a key", path.display()))?;
            Ok(Path::new(dir).join(key.rsplit('/').next().unwrap_or(key)))
        })
        .collect()
}

/// What one inflater did with one file.
#[derive(Default)]
struct Totals {
    compressed: u64,
    output: u64,
    /// Whole-buffer inflaters: the largest compressed file and output held at once.
    largest_input: u64,
    largest_output: u64,
}

fn one(dir: &str, name: &str) -> Result<(), String> {
    let files = data_files(dir)?;
    let run: fn(&Path, &mut Totals) -> Result<(), String> = match name {
        "flate2-zlib-rs" => flate2_file,
        "miniz_oxide" => miniz_file,
        "libdeflate" => libdeflate_file,
        "zune-inflate" => zune_file,
        _ => {
            return Err(format!(
                "unknown inflater {name:?}: {}",
                INFLATERS.join(", ")
            ))
        }
    };
    let streams = matches!(name, "flate2-zlib-rs" | "miniz_oxide");
    let mut totals = Totals::default();
    let start = Instant::now();
    for path in &files {
        totals.compressed += std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        run(path, &mut totals).map_err(|e| format!("{name}: {}: {e}", path.display()))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let memory = if streams {
        format!("bounded: {BUFFER_BYTES} B input and output buffers plus the inflater's window")
    } else {
        format!(
            "whole buffers: the compressed file and its whole output (largest {} B + {} B)",
            totals.largest_input, totals.largest_output
        )
    };
    println!(
        "{}",
        serde_json::json!({
            "inflater": name,
            "threads": 1,
            "files": files.len(),
            "compressed_bytes": totals.compressed,
            "output_bytes": totals.output,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "output_mb_per_second": (totals.output as f64 / secs / 1e6 * 10.0).round() / 10.0,
            "streams": streams,
            "memory": memory,
            "peak_rss_bytes": peak_rss(),
        })
    );
    Ok(())
}

fn open(path: &Path) -> Result<BufReader<File>, String> {
    Ok(BufReader::with_capacity(
        BUFFER_BYTES,
        File::open(path).map_err(|e| e.to_string())?,
    ))
}

fn flate2_file(path: &Path, totals: &mut Totals) -> Result<(), String> {
    let mut gz = flate2::bufread::MultiGzDecoder::new(open(path)?);
    let mut out = vec![0u8; BUFFER_BYTES];
    loop {
        let n = gz.read(&mut out).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        totals.output += n as u64;
    }
}

/// Reads exactly `n` bytes of `input` (the gzip header and trailer).
fn take(input: &mut impl BufRead, n: usize) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; n];
    input
        .read_exact(&mut bytes)
        .map_err(|e| format!("gzip header or trailer: {e}"))?;
    Ok(bytes)
}

/// Skips one gzip member header (RFC 1952, section 2.3). `Ok(false)` at the end of the input.
fn gzip_header(input: &mut impl BufRead) -> Result<bool, String> {
    if input.fill_buf().map_err(|e| e.to_string())?.is_empty() {
        return Ok(false);
    }
    let fixed = take(input, 10)?;
    if fixed[0] != 0x1f || fixed[1] != 0x8b || fixed[2] != 8 {
        return Err("not a gzip member (deflate)".into());
    }
    let flags = fixed[3];
    if flags & 0x04 != 0 {
        let len = take(input, 2)?;
        take(input, usize::from(u16::from_le_bytes([len[0], len[1]])))?;
    }
    for flag in [0x08, 0x10] {
        // FNAME, FCOMMENT: zero-terminated.
        if flags & flag != 0 {
            let mut text = Vec::new();
            input.read_until(0, &mut text).map_err(|e| e.to_string())?;
        }
    }
    if flags & 0x02 != 0 {
        take(input, 2)?;
    }
    Ok(true)
}

fn miniz_file(path: &Path, totals: &mut Totals) -> Result<(), String> {
    let mut input = open(path)?;
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    let mut out = vec![0u8; BUFFER_BYTES];
    while gzip_header(&mut input)? {
        state.reset(DataFormat::Raw);
        let (mut crc, mut size) = (crc32fast::Hasher::new(), 0u64);
        loop {
            let available = input.fill_buf().map_err(|e| e.to_string())?;
            let eof = available.is_empty();
            let result = inflate(&mut state, available, &mut out, MZFlush::None);
            input.consume(result.bytes_consumed);
            crc.update(&out[..result.bytes_written]);
            size += result.bytes_written as u64;
            match result.status {
                Ok(MZStatus::StreamEnd) => break,
                Ok(_) | Err(MZError::Buf)
                    if !eof || result.bytes_consumed + result.bytes_written > 0 => {}
                Ok(_) | Err(MZError::Buf) => return Err("truncated deflate stream".into()),
                Err(e) => return Err(format!("deflate: {e:?}")),
            }
        }
        let trailer = take(&mut input, 8)?;
        let expected_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let expected_size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc.finalize() != expected_crc || size as u32 != expected_size {
            return Err("gzip trailer: CRC-32 or size mismatch".into());
        }
        totals.output += size;
    }
    Ok(())
}

/// The trailer's ISIZE: the uncompressed size modulo 2^32 (of the last member).
fn isize_of(gz: &[u8]) -> Result<usize, String> {
    let tail: [u8; 4] = gz
        .get(gz.len().saturating_sub(4)..)
        .and_then(|t| t.try_into().ok())
        .ok_or("shorter than a gzip trailer")?;
    Ok(u32::from_le_bytes(tail) as usize)
}

fn libdeflate_file(path: &Path, totals: &mut Totals) -> Result<(), String> {
    thread_local! {
        static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let gz = std::fs::read(path).map_err(|e| e.to_string())?;
    let size = isize_of(&gz)?;
    // One output buffer, grown as needed and reused across files (the best case).
    let n = OUT.with(|out| {
        let mut out = out.borrow_mut();
        if out.len() < size {
            out.resize(size, 0);
        }
        libdeflater::Decompressor::new()
            .gzip_decompress(&gz, &mut out[..size])
            .map_err(|e| format!("{e:?}"))
    })?;
    totals.output += n as u64;
    totals.largest_input = totals.largest_input.max(gz.len() as u64);
    totals.largest_output = totals.largest_output.max(n as u64);
    Ok(())
}

fn zune_file(path: &Path, totals: &mut Totals) -> Result<(), String> {
    let gz = std::fs::read(path).map_err(|e| e.to_string())?;
    let options = zune_inflate::DeflateOptions::default()
        .set_confirm_checksum(true)
        .set_limit(usize::MAX);
    let out = zune_inflate::DeflateDecoder::new_with_options(&gz, options)
        .decode_gzip()
        .map_err(|e| format!("{e:?}"))?;
    totals.output += out.len() as u64;
    totals.largest_input = totals.largest_input.max(gz.len() as u64);
    totals.largest_output = totals.largest_output.max(out.len() as u64);
    Ok(())
}
