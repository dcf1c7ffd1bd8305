//! Reading an inventory's data files on several threads gives exactly what one splitter reading
//! them one after another gives: the same copy rows in the same order (the gzip parts
//! decompressed and put end to end), the same large-object rows, the same figures and the same
//! next index, for any number of files and threads, with awkward keys, versions, delete
//! markers, large objects, a filter and a delta base. And a data file whose MD5 is not the
//! manifest's is refused whatever the thread count, naming the first such file.
//!
//! The fan-out across functions (#18 part 4, [`ferry_listings::inventory::spill`]): data files
//! spilled by shard, each shard diffed against its shard of the base, gives the same rows (as a
//! set: they come in shard order), the same figures and the same next index, for 1 to 16 shards.

mod inventory_support;

use std::io::Read;
use std::path::Path;

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_listings::inventory::filter::RowFilter;
use ferry_listings::inventory::index::{DeltaBase, ObjectIndex};
use ferry_listings::inventory::manifest_json::InventoryManifest;
use ferry_listings::inventory::route::{ManifestSplitter, RouteStats};
use ferry_listings::inventory::row::InventoryError;
use ferry_listings::inventory::scan::{scan_data_files, LocalDataFile, ScanInput, ScanTotals};
use ferry_listings::inventory::spill::{
    check_spill_part, diff_shard, shard_of, spill_data_files, DiffInput, SpillInput,
};
use ferry_plan::spec::FilterSpec;
use ferry_testkit::inventory::md5_hex;
use inventory_support::*;
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::sample::select(vec!['a', 'b', 't', 'm', 'p', '/']),
        2 => prop::sample::select(vec![' ', '+', '%', ',', '"', '\n', 'é', '日', '😀', '~']),
    ];
    prop::collection::vec(c, 1..12).prop_map(|c| c.into_iter().collect())
}

fn object() -> impl Strategy<Value = Obj> {
    (
        key(),
        prop_oneof![
            Just(None),
            Just(Some("v1")),
            Just(Some("3HL4kqtJlcpXroDTDmJ"))
        ],
        0u8..10,
        prop::sample::select(vec!["STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"]),
        prop_oneof![0u64..1000, Just(6 * GIB)],
    )
        .prop_map(|(key, version, kind, class, size)| {
            let o = Obj::new(&key)
                .version(version, true)
                .class(class)
                .size(size);
            if kind == 0 {
                o.delete_marker()
            } else {
                o
            }
        })
}

/// A manifest listing `files` (each its gzip bytes) under `data/<i>.csv.gz`.
fn manifest_of(schema: &str, files: &[Vec<u8>]) -> InventoryManifest {
    let listed: Vec<serde_json::Value> = files
        .iter()
        .enumerate()
        .map(|(i, gz)| {
            serde_json::json!({"key": format!("inv/src-bucket/all/data/{i}.csv.gz"), "size": gz.len(),
                "MD5checksum": md5_hex(gz)})
        })
        .collect();
    let json = serde_json::json!({
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "version": "2016-11-30",
        "creationTimestamp": "1714521600000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": listed,
    });
    InventoryManifest::from_json(json.to_string().as_bytes()).unwrap()
}

fn filter() -> RowFilter {
    RowFilter::new(Some(&FilterSpec {
        exclude_prefixes: vec!["t".to_string()],
        ..FilterSpec::default()
    }))
    .unwrap()
}

/// What a run produced, comparable.
#[derive(Debug, PartialEq)]
struct Produced {
    copy: Vec<u8>,
    large: Vec<u8>,
    stats: RouteStats,
    /// The whole next index (the base's unchanged entries and the added ones).
    next_index: ObjectIndex,
}

/// The next index of a run on `base` (a fresh [`DeltaBase`] of it, or none).
fn next_of(
    base: Option<DeltaBase>,
    added: Vec<ferry_listings::inventory::index::IndexEntry>,
) -> ObjectIndex {
    match base {
        Some(base) => base.into_next(added).unwrap(),
        None => ObjectIndex::from_entries(added).unwrap(),
    }
}

/// One splitter over every file in order: the single-thread reference.
fn one_splitter(
    manifest: &InventoryManifest,
    gz: &[Vec<u8>],
    previous: Option<&ObjectIndex>,
) -> Produced {
    let base = previous.map(|p| DeltaBase::new(p.clone()));
    let as_inventory = !manifest.has_version_ids();
    let mut splitter = if as_inventory {
        ManifestSplitter::with_inventory_copy_rows(
            &manifest.schema,
            filter(),
            Vec::new(),
            Vec::new(),
        )
    } else {
        ManifestSplitter::new(&manifest.schema, filter(), Vec::new(), Vec::new())
    }
    .unwrap()
    .with_delta(base.clone(), 0);
    for (i, file) in gz.iter().enumerate() {
        let key = format!("inv/src-bucket/all/data/{i}.csv.gz");
        for item in CsvInventoryReader::new(manifest, &key, file.as_slice()).unwrap() {
            splitter.push_result(item).unwrap();
        }
    }
    let out = splitter.finish().unwrap();
    Produced {
        copy: out.copy,
        large: out.large,
        stats: out.stats,
        next_index: next_of(base, out.next_index),
    }
}

/// The files written to `dir`, scanned on `threads` threads, parts put end to end.
fn scanned(
    manifest: &InventoryManifest,
    dir: &Path,
    previous: Option<&ObjectIndex>,
    threads: usize,
) -> Result<Produced, InventoryError> {
    let base = previous.map(|p| DeltaBase::new(p.clone()));
    let out_dir = dir.join(format!("parts-{threads}"));
    std::fs::create_dir_all(&out_dir).unwrap();
    let filter = filter();
    let input = ScanInput {
        manifest,
        filter: &filter,
        delta: true,
        previous: base.as_ref(),
        out_dir: &out_dir,
        copy_as_inventory: !manifest.has_version_ids(),
    };
    let files = LocalDataFile::all_of(manifest, |position, _| dir.join(format!("data-{position}")));
    let mut totals = ScanTotals::new(manifest);
    let mut copy = Vec::new();
    let mut large = Vec::new();
    for mut file in scan_data_files(input, &files, threads)? {
        totals.add(&mut file);
        if let Some(part) = &file.copy {
            let stored = std::fs::read(&part.path).unwrap();
            assert_eq!(part.digest.size, stored.len() as u64);
            assert_eq!(part.digest.md5_hex, md5_hex(&stored));
            assert_eq!(part.position, file.position);
            if input.copy_as_inventory {
                flate2::read::GzDecoder::new(stored.as_slice())
                    .read_to_end(&mut copy)
                    .unwrap();
            } else {
                copy.extend(stored);
            }
        }
        if let Some(part) = &file.large {
            large.extend(std::fs::read(&part.path).unwrap());
        }
    }
    Ok(Produced {
        copy,
        large,
        stats: totals.stats,
        next_index: next_of(base, totals.next_index),
    })
}

/// Rows as a sorted list (quotes dropped: the fan-out writes inventory-format rows, the single
/// path plain CSV ones when there are version ids).
fn row_set(text: &[u8]) -> Vec<String> {
    let mut rows: Vec<String> = String::from_utf8_lossy(text)
        .lines()
        .map(|l| l.replace('"', ""))
        .collect();
    rows.sort();
    rows
}

/// A run's figures with the examples sorted (the fan-out lists them shard by shard).
fn comparable(mut stats: RouteStats) -> RouteStats {
    stats.examples.sort();
    stats
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The files written to `dir`, fanned out to 2^`bits` shards: spilled on `threads` threads, then
/// each shard diffed against its shard of `previous`.
fn fanned_out(
    manifest: &InventoryManifest,
    dir: &Path,
    previous: Option<&ObjectIndex>,
    bits: u32,
    threads: usize,
) -> Result<(Vec<String>, Vec<String>, RouteStats, ObjectIndex), InventoryError> {
    let out_dir = dir.join(format!("fanout-{bits}-{threads}"));
    std::fs::create_dir_all(&out_dir).unwrap();
    let filter = filter();
    let input = SpillInput {
        manifest,
        filter: &filter,
        shard_bits: bits,
        out_dir: &out_dir,
    };
    let files = LocalDataFile::all_of(manifest, |position, _| dir.join(format!("data-{position}")));
    let spilled = spill_data_files(input, &files, threads)?;
    let mut stats = ScanTotals::new(manifest).stats;
    let (mut copy, mut large, mut next) = (Vec::new(), Vec::new(), Vec::new());
    for file in &spilled {
        stats.merge(&file.stats);
    }
    for shard in 0..1usize << bits {
        let parts: Vec<_> = spilled
            .iter()
            .flat_map(|f| f.parts.iter().filter(|p| p.shard == shard))
            .collect();
        for part in &parts {
            check_spill_part(&part.path, &part.digest)?;
        }
        let base = previous.map(|p| {
            DeltaBase::new(
                ObjectIndex::from_entries(
                    p.entries()
                        .iter()
                        .filter(|e| shard_of(e.identity, bits) == shard)
                        .copied()
                        .collect(),
                )
                .unwrap(),
            )
        });
        let diffed = diff_shard(
            DiffInput {
                shard,
                shard_bits: bits,
                base: base.as_ref(),
                delta: true,
                with_version_ids: manifest.has_version_ids(),
                out_dir: &out_dir,
            },
            parts.iter().map(|p| {
                (
                    p.path.display().to_string(),
                    std::fs::File::open(&p.path).unwrap(),
                )
            }),
        )?;
        stats.merge(&diffed.stats);
        if let Some(part) = &diffed.copy {
            let stored = std::fs::read(&part.path).unwrap();
            assert_eq!(part.digest.md5_hex, md5_hex(&stored));
            copy.extend(gunzip(&stored));
        }
        if let Some(part) = &diffed.large {
            large.extend(std::fs::read(&part.path).unwrap());
        }
        next.extend_from_slice(next_of(base, diffed.added).entries());
    }
    // Shards are identity ranges: put end to end, their next indexes are sorted already.
    assert!(next.windows(2).all(|w| w[0] < w[1]), "shards out of order");
    Ok((
        row_set(&copy),
        row_set(&large),
        stats,
        ObjectIndex::from_entries(next).unwrap(),
    ))
}

fn write_files(dir: &Path, gz: &[Vec<u8>]) {
    for (i, file) in gz.iter().enumerate() {
        std::fs::write(dir.join(format!("data-{i}")), file).unwrap();
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ferry-scan-{name}-{}-{:x}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `objs` cut into data files at `cuts` (positions into `objs`).
fn cut(schema: &str, objs: &[Obj], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (objs.len() + 1)).collect();
    points.push(0);
    points.push(objs.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| gzip(csv_text(schema, &objs[w[0]..w[1]]).as_bytes()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_thread_count_gives_what_one_splitter_gives(
        objs in prop::collection::vec(object(), 0..60),
        cuts in prop::collection::vec(0usize..100, 0..7),
        versions in any::<bool>(),
        earlier in prop::collection::vec(0usize..60, 0..30),
    ) {
        let schema = if versions { ALL_VERSIONS_SCHEMA } else { CURRENT_SCHEMA };
        let gz = cut(schema, &objs, &cuts);
        let manifest = manifest_of(schema, &gz);
        let dir = tempdir("prop");
        write_files(&dir, &gz);
        // A delta base: some of the same objects, as an earlier run indexed them.
        let base: Vec<Obj> = earlier.iter().filter_map(|i| objs.get(*i).cloned()).collect();
        let base_gz = vec![gzip(csv_text(schema, &base).as_bytes())];
        let base_manifest = manifest_of(schema, &base_gz);
        let previous = one_splitter(&base_manifest, &base_gz, None).next_index;
        for previous in [None, Some(&previous)] {
            let reference = one_splitter(&manifest, &gz, previous);
            prop_assert!(reference.stats.is_balanced());
            for threads in [1, 2, 4] {
                let got = scanned(&manifest, &dir, previous, threads).unwrap();
                prop_assert_eq!(&got, &reference, "threads {}", threads);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn the_fan_out_over_any_shard_count_gives_what_one_splitter_gives(
        objs in prop::collection::vec(object(), 0..60),
        cuts in prop::collection::vec(0usize..100, 0..7),
        versions in any::<bool>(),
        earlier in prop::collection::vec(0usize..60, 0..30),
        threads in 1usize..4,
    ) {
        let schema = if versions { ALL_VERSIONS_SCHEMA } else { CURRENT_SCHEMA };
        let gz = cut(schema, &objs, &cuts);
        let manifest = manifest_of(schema, &gz);
        let dir = tempdir("fanout");
        write_files(&dir, &gz);
        let base: Vec<Obj> = earlier.iter().filter_map(|i| objs.get(*i).cloned()).collect();
        let base_gz = vec![gzip(csv_text(schema, &base).as_bytes())];
        let base_manifest = manifest_of(schema, &base_gz);
        let previous = one_splitter(&base_manifest, &base_gz, None).next_index;
        for previous in [None, Some(&previous)] {
            let reference = one_splitter(&manifest, &gz, previous);
            for bits in [0, 1, 2, 4] {
                let (copy, large, stats, next) =
                    fanned_out(&manifest, &dir, previous, bits, threads).unwrap();
                prop_assert_eq!(&copy, &row_set(&reference.copy), "copy rows, {} shard bits", bits);
                prop_assert_eq!(&large, &row_set(&reference.large), "large rows, {} shard bits", bits);
                prop_assert!(stats.is_balanced());
                prop_assert_eq!(
                    comparable(stats),
                    comparable(reference.stats.clone()),
                    "figures, {} shard bits", bits
                );
                prop_assert_eq!(&next, &reference.next_index, "next index, {} shard bits", bits);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A spill part changed after its spill wrote it is refused by the diff, naming it.
#[test]
fn a_damaged_spill_part_is_refused_by_name() {
    let objs: Vec<Obj> = (0..50).map(|i| Obj::new(&format!("k{i}"))).collect();
    let gz = cut(CURRENT_SCHEMA, &objs, &[20]);
    let manifest = manifest_of(CURRENT_SCHEMA, &gz);
    let dir = tempdir("spill-damaged");
    write_files(&dir, &gz);
    let filter = filter();
    let files = LocalDataFile::all_of(&manifest, |position, _| {
        dir.join(format!("data-{position}"))
    });
    let spilled = spill_data_files(
        SpillInput {
            manifest: &manifest,
            filter: &filter,
            shard_bits: 1,
            out_dir: &dir,
        },
        &files,
        1,
    )
    .unwrap();
    let part = &spilled[0].parts[0];
    let mut bytes = std::fs::read(&part.path).unwrap();
    let cut_at = bytes.len() - 3;
    bytes.truncate(cut_at);
    std::fs::write(&part.path, &bytes).unwrap();
    let err = check_spill_part(&part.path, &part.digest).unwrap_err();
    assert!(err.to_string().contains("its spill recorded"), "{err}");
    // Read anyway, the truncated record is refused too, never half-used.
    let err = diff_shard(
        DiffInput {
            shard: part.shard,
            shard_bits: 1,
            base: None,
            delta: true,
            with_version_ids: false,
            out_dir: &dir,
        },
        [(
            part.path.display().to_string(),
            std::fs::File::open(&part.path).unwrap(),
        )],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, InventoryError::Spill { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&part.path.display().to_string()),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_changed_after_s3_wrote_it_is_refused_naming_the_first_one() {
    let objs: Vec<Obj> = (0..9).map(|i| Obj::new(&format!("k{i}"))).collect();
    let gz = cut(CURRENT_SCHEMA, &objs, &[3, 6]);
    let manifest = manifest_of(CURRENT_SCHEMA, &gz);
    let dir = tempdir("md5");
    write_files(&dir, &gz);
    // Files 1 and 2 rewritten in place after the manifest was written.
    for i in [1, 2] {
        let other = gzip(csv_text(CURRENT_SCHEMA, &[Obj::new("planted")]).as_bytes());
        std::fs::write(dir.join(format!("data-{i}")), other).unwrap();
    }
    for threads in [1, 3] {
        match scanned(&manifest, &dir, None, threads) {
            Err(InventoryError::Checksum { file, expected, .. }) => {
                assert_eq!(
                    file, "inv/src-bucket/all/data/1.csv.gz",
                    "threads {threads}"
                );
                assert_eq!(expected, md5_hex(&gz[1]));
            }
            other => panic!("threads {threads}: {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_truncated_data_file_ends_the_scan_with_its_name() {
    let objs: Vec<Obj> = (0..2000)
        .map(|i| Obj::new(&format!("photos/{i:05}.jpg")))
        .collect();
    let whole = gzip(csv_text(CURRENT_SCHEMA, &objs).as_bytes());
    let truncated = whole[..whole.len() / 2].to_vec();
    // The manifest lists the truncated bytes (MD5 and size agree): the gzip stream itself ends early.
    let gz = vec![
        gzip(csv_text(CURRENT_SCHEMA, &objs[..1]).as_bytes()),
        truncated,
    ];
    let manifest = manifest_of(CURRENT_SCHEMA, &gz);
    let dir = tempdir("truncated");
    write_files(&dir, &gz);
    for threads in [1, 2] {
        let err = scanned(&manifest, &dir, None, threads)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, InventoryError::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains("inv/src-bucket/all/data/1.csv.gz"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// #18 review: a data file that expands far more than CSV does (a gzip bomb) ends its scan with
/// its name instead of keeping a thread busy past the function's timeout.
#[test]
fn a_gzip_bomb_is_refused_with_its_name() {
    let row = csv_text(CURRENT_SCHEMA, &[Obj::new("same/key.jpg")]);
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut bomb, row.repeat(200_000).as_bytes()).unwrap();
    let gz = vec![bomb.finish().unwrap()];
    assert!(
        row.len() * 200_000 > 256 * gz[0].len(),
        "the file must expand over 256 times"
    );
    let manifest = manifest_of(CURRENT_SCHEMA, &gz);
    let dir = tempdir("bomb");
    write_files(&dir, &gz);
    let err = scanned(&manifest, &dir, None, 1).map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, InventoryError::Io { file, .. } if file == "inv/src-bucket/all/data/0.csv.gz"),
        "{err:?}"
    );
    assert!(err.to_string().contains("256 times its size"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
