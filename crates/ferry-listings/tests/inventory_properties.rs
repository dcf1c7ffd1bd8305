//! Properties of routing: every inventory row ends up in exactly one place (the copy manifest,
//! the large-object manifest, or one skip reason), keys survive inventory → manifest, and nothing
//! that can't be copied is ever written.

mod inventory_support;

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_listings::inventory::filter::{Outcome, RowFilter, SkipReason, MAX_COPY_OBJECT_BYTES};
use ferry_listings::inventory::route::{route, Tally};
use ferry_listings::manifest::CsvManifestReader;
use ferry_plan::spec::{EncryptionFilter, FilterSpec};
use inventory_support::*;
use proptest::prelude::*;

fn key_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec!['a', 'b', 'c', '/']),
        3 => prop::sample::select(vec![
            ' ', '+', '%', ',', '"', '\n', '\t', '~', '.', '-', '_', '#', '?', '&', '=', '\\', '*',
            'é', '日', '😀',
        ]),
        1 => any::<char>().prop_filter("not NUL", |c| *c != '\0'),
    ]
}

fn obj() -> impl Strategy<Value = Obj> {
    let key =
        prop::collection::vec(key_char(), 1..24).prop_map(|c| c.into_iter().collect::<String>());
    let size = prop_oneof![
        3 => 0u64..5000,
        // The bounds the filters below use, and either side of them.
        2 => prop::sample::select(vec![0, 1, 999, 1000, 1001, 2999, 3000, 3001]),
        2 => (MAX_COPY_OBJECT_BYTES - 2)..(MAX_COPY_OBJECT_BYTES + 3),
        1 => (MAX_COPY_OBJECT_BYTES + 3)..(5 * 1024 * GIB),
    ];
    let class = prop::sample::select(vec![
        "STANDARD",
        "STANDARD_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
    ]);
    let tier = prop::sample::select(vec!["", "FREQUENT", "ARCHIVE", "ARCHIVE_INSTANT_ACCESS"]);
    let encryption = prop::sample::select(vec![
        ("NOT-SSE", ""),
        ("SSE-S3", "DISABLED"),
        ("SSE-KMS", "ENABLED"),
        ("SSE-KMS", "DISABLED"),
        // No BucketKeyStatus: whether a Bucket Key is used is unknown.
        ("SSE-KMS", ""),
        ("DSSE-KMS", "DISABLED"),
        ("SSE-C", ""),
    ]);
    let version = prop::sample::select(vec![None, Some("v1"), Some("v2")]);
    let modified = prop::sample::select(vec![
        "2023-12-31T23:59:59.000Z",
        "2024-01-01T00:00:00.000Z",
        "2024-03-01T00:00:00.000Z",
        "2024-06-15T12:00:00.000Z",
    ]);
    (
        key,
        size,
        (class, tier, encryption),
        (version, any::<bool>(), prop::bool::weighted(0.15)),
        modified,
    )
        .prop_map(
            |(key, size, (class, tier, (enc, bk)), (version, latest, dm), modified)| {
                let mut o = Obj::new(&key)
                    .size(size)
                    .class(class)
                    .tier(tier)
                    .encryption(enc, bk)
                    .version(version, latest)
                    .modified(modified);
                if dm {
                    o = o.delete_marker();
                }
                o
            },
        )
}

fn filter() -> impl Strategy<Value = FilterSpec> {
    let prefixes = prop::collection::vec(prop::sample::select(vec!["a", "b/", " ", "日"]), 0..3);
    let classes = prop::collection::vec(
        prop::sample::select(vec!["STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING"]),
        0..3,
    );
    let encryption = prop::option::of(prop::sample::select(vec![
        EncryptionFilter::NotSseKmsBucketKey,
        EncryptionFilter::NotSseKms,
        EncryptionFilter::SseKms,
        EncryptionFilter::SseS3,
        EncryptionFilter::NotSse,
    ]));
    let time = prop::option::of(prop::sample::select(vec![
        "2024-01-01T00:00:00Z",
        "2024-03-01T00:00:00Z",
    ]));
    (
        (prefixes.clone(), prefixes),
        (
            prop::option::of(prop_oneof![0u64..3000, Just(1000), Just(3000)]),
            prop::option::of(prop_oneof![1000u64..u64::MAX, Just(1000), Just(3000)]),
        ),
        classes,
        encryption,
        any::<bool>(),
        (time.clone(), time),
    )
        .prop_map(
            |(
                (include, exclude),
                (min, max),
                classes,
                encryption,
                latest_only,
                (after, before),
            )| {
                let strings = |v: Vec<&str>| v.into_iter().map(String::from).collect();
                FilterSpec {
                    include_prefixes: strings(include),
                    exclude_prefixes: strings(exclude),
                    min_size: min,
                    max_size: max,
                    storage_classes: strings(classes),
                    encryption,
                    latest_only,
                    modified_after: after.map(String::from),
                    modified_before: before.map(String::from),
                }
            },
        )
}

type Entry = (String, Option<String>);

fn entries(manifest: &str) -> Vec<Entry> {
    CsvManifestReader::new(manifest.as_bytes())
        .map(|r| {
            let r = r.expect("a valid manifest row");
            (r.key, r.version_id)
        })
        .collect()
}

/// Where `o` must go under filter `f`, written from what each setting means (`FilterSpec` and
/// `SkipReason` docs, docs/inventory.md) without Ferry's code: every skip reason that applies is
/// collected, and the first of them in `SkipReason`'s documented order is the row's reason.
fn expected_route(f: &FilterSpec, o: &Obj) -> Outcome {
    let starts = |prefixes: &[String]| prefixes.iter().any(|p| o.key.starts_with(p.as_str()));
    // RFC 3339 UTC times to the second, as the generators write them: compared as text.
    let second = |t: &str| t[..19].to_string();
    let modified = second(&o.last_modified);
    // DSSE-KMS is KMS too; a row that doesn't show what the filter needs doesn't pass it.
    let kms = ["SSE-KMS", "DSSE-KMS"].contains(&o.encryption.as_str());
    let mut applies = Vec::new();
    if o.delete_marker {
        applies.push(SkipReason::DeleteMarker);
    }
    if f.latest_only && !o.is_latest {
        applies.push(SkipReason::NotLatest);
    }
    if (!f.include_prefixes.is_empty() && !starts(&f.include_prefixes))
        || starts(&f.exclude_prefixes)
    {
        applies.push(SkipReason::Prefix);
    }
    if f.modified_after
        .as_deref()
        .is_some_and(|a| modified < second(a))
        || f.modified_before
            .as_deref()
            .is_some_and(|b| modified >= second(b))
    {
        applies.push(SkipReason::ModifiedDate);
    }
    if f.min_size.is_some_and(|m| o.size < m) || f.max_size.is_some_and(|m| o.size > m) {
        applies.push(SkipReason::Size);
    }
    if !f.storage_classes.is_empty() && !f.storage_classes.contains(&o.storage_class) {
        applies.push(SkipReason::StorageClass);
    }
    let encryption_ok = match f.encryption {
        None => true,
        Some(EncryptionFilter::NotSseKmsBucketKey) => !kms || o.bucket_key == "DISABLED",
        Some(EncryptionFilter::NotSseKms) => !kms,
        Some(EncryptionFilter::SseKms) => kms,
        Some(EncryptionFilter::SseS3) => o.encryption == "SSE-S3",
        Some(EncryptionFilter::NotSse) => o.encryption == "NOT-SSE",
    };
    if !encryption_ok {
        applies.push(SkipReason::Encryption);
    }
    if o.encryption == "SSE-C" {
        applies.push(SkipReason::SseC);
    }
    if ["GLACIER", "DEEP_ARCHIVE"].contains(&o.storage_class.as_str())
        || ["ARCHIVE", "DEEP_ARCHIVE"].contains(&o.tier.as_str())
    {
        applies.push(SkipReason::Archived);
    }
    let order = |r: &SkipReason| SkipReason::ALL.iter().position(|x| x == r).unwrap();
    match applies.into_iter().min_by_key(order) {
        Some(reason) => Outcome::Skip(reason),
        None if o.size > MAX_COPY_OBJECT_BYTES => Outcome::Large,
        None => Outcome::Copy,
    }
}

/// An object that passes `f` when anything can: a key under an included prefix (and under no
/// excluded one), a time in the window, a size in the range, an allowed class and encryption.
/// Whether it does pass is still for [`expected_route`] to say (`min_size > max_size`, an empty
/// window, an included prefix also excluded).
fn witness(f: &FilterSpec) -> Obj {
    let key = f
        .include_prefixes
        .iter()
        .map(|p| format!("{p}zz"))
        .find(|k| !f.exclude_prefixes.iter().any(|x| k.starts_with(x.as_str())))
        .unwrap_or_else(|| "zz-witness".to_string());
    let modified = [
        "2023-12-31T23:59:59.000Z",
        "2024-01-01T00:00:00.000Z",
        "2024-02-01T00:00:00.000Z",
        "2024-06-15T12:00:00.000Z",
    ]
    .into_iter()
    .find(|t| {
        let t = &t[..19];
        f.modified_after.as_deref().is_none_or(|a| t >= &a[..19])
            && f.modified_before.as_deref().is_none_or(|b| t < &b[..19])
    })
    .unwrap_or("2024-01-01T00:00:00.000Z");
    let (encryption, bucket_key) = match f.encryption {
        Some(EncryptionFilter::SseKms) => ("SSE-KMS", "DISABLED"),
        Some(EncryptionFilter::NotSse) => ("NOT-SSE", ""),
        _ => ("SSE-S3", "DISABLED"),
    };
    Obj::new(&key)
        .size(f.min_size.unwrap_or(100))
        .class(f.storage_classes.first().map_or("STANDARD", String::as_str))
        .encryption(encryption, bucket_key)
        .version(Some("w1"), true)
        .modified(modified)
}

/// Where every object must go, as the three lists and the tallies routing reports.
struct Expected {
    copy: Vec<Entry>,
    large: Vec<Entry>,
    copied: Tally,
    large_tally: Tally,
    skipped: Vec<(SkipReason, Tally)>,
}

fn expected(f: Option<&FilterSpec>, objs: &[Obj]) -> Expected {
    let f = f.cloned().unwrap_or_default();
    let mut e = Expected {
        copy: Vec::new(),
        large: Vec::new(),
        copied: Tally::default(),
        large_tally: Tally::default(),
        skipped: SkipReason::ALL
            .iter()
            .map(|r| (*r, Tally::default()))
            .collect(),
    };
    for o in objs {
        let bytes = if o.delete_marker { 0 } else { o.size };
        let tally = match expected_route(&f, o) {
            Outcome::Copy => {
                e.copy.push((o.key.clone(), o.version_id.clone()));
                &mut e.copied
            }
            Outcome::Large => {
                e.large.push((o.key.clone(), o.version_id.clone()));
                &mut e.large_tally
            }
            Outcome::Skip(reason) => {
                &mut e.skipped.iter_mut().find(|(r, _)| *r == reason).unwrap().1
            }
        };
        tally.objects += 1;
        tally.bytes += bytes;
    }
    e
}

/// Objects and a filter, with the filter's [`witness`] among the objects at a random place,
/// followed by copies of it in every encryption (so each `filter.encryption` meets each).
fn filtered_inventory() -> impl Strategy<Value = (Vec<Obj>, FilterSpec)> {
    (
        prop::collection::vec(obj(), 0..40),
        filter(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut objs, f, at)| {
            let at = at.index(objs.len() + 1);
            let w = witness(&f);
            let encryptions = [
                ("NOT-SSE", ""),
                ("SSE-S3", "DISABLED"),
                ("SSE-KMS", "ENABLED"),
                ("SSE-KMS", "DISABLED"),
                ("SSE-KMS", ""),
                ("DSSE-KMS", "ENABLED"),
                ("SSE-C", ""),
            ];
            let witnesses = std::iter::once(w.clone())
                .chain(encryptions.map(|(e, bk)| w.clone().encryption(e, bk)));
            objs.splice(at..at, witnesses);
            (objs, f)
        })
}

/// The filtered inventories the property below is given keep something in most cases, so
/// it compares kept rows, not only skipped ones.
#[test]
fn generated_filters_keep_rows_in_most_cases() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let cases = 400;
    let keeping = (0..cases)
        .filter(|_| {
            let (objs, f) = filtered_inventory()
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let e = expected(Some(&f), &objs);
            !e.copy.is_empty() || !e.large.is_empty()
        })
        .count();
    assert!(
        keeping * 5 >= cases * 3,
        "{keeping} of {cases} filters keep a row"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Routing does exactly what the filter says: the copy and large-object manifests hold
    /// the rows [`expected_route`] keeps, in inventory order, and each skip reason counts the
    /// rows it should (objects and bytes); and counting without writing agrees.
    #[test]
    fn every_row_lands_in_exactly_one_place(
        (objs, with_filter) in filtered_inventory(),
        filtered in any::<bool>(),
    ) {
        let spec = filtered.then_some(with_filter);
        let out = split(ALL_VERSIONS_SCHEMA, &objs, spec.as_ref());
        let s = &out.stats;
        let e = expected(spec.as_ref(), &objs);
        prop_assert_eq!(s.rows, objs.len() as u64);
        prop_assert!(s.is_balanced(), "{:?}", s);
        prop_assert_eq!(entries(&out.copy), e.copy);
        prop_assert_eq!(entries(&out.large), e.large);
        prop_assert_eq!(s.copy, e.copied);
        prop_assert_eq!(s.large, e.large_tally);
        for (reason, tally) in &e.skipped {
            prop_assert_eq!(s.skipped(*reason), *tally, "{}: {:?}", reason, s.examples);
        }

        // Counting without writing gives the same figures.
        let manifest = csv_manifest(ALL_VERSIONS_SCHEMA);
        let gz = gzip(csv_text(ALL_VERSIONS_SCHEMA, &objs).as_bytes());
        let reader = CsvInventoryReader::new(&manifest, DATA_KEY, gz.as_slice()).unwrap();
        let counted = route(&manifest.schema, reader, &RowFilter::new(spec.as_ref()).unwrap()).unwrap();
        prop_assert_eq!(&counted, s);
    }

    #[test]
    fn without_a_filter_every_copyable_row_is_written(objs in prop::collection::vec(obj(), 0..40)) {
        let out = split(ALL_VERSIONS_SCHEMA, &objs, None);
        let written = entries(&out.copy).len() + entries(&out.large).len();
        let expected = objs
            .iter()
            .filter(|o| {
                !o.delete_marker
                    && !["GLACIER", "DEEP_ARCHIVE"].contains(&o.storage_class.as_str())
                    && o.tier != "ARCHIVE"
                    && o.encryption != "SSE-C"
            })
            .count();
        prop_assert_eq!(written, expected);
        prop_assert_eq!(out.stats.skipped_total().objects as usize, objs.len() - expected);
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(
        csv in prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(b"\"src-bucket,k%+1\n\r".to_vec()),
                1 => any::<u8>(),
            ],
            0..400,
        ),
        json in ".{0,200}",
    ) {
        let manifest = csv_manifest("Bucket, Key, Size, LastModifiedDate, IsLatest");
        let reader = CsvInventoryReader::from_decompressed(&manifest, DATA_KEY, csv.as_slice()).unwrap();
        let stats = route(&manifest.schema, reader, &RowFilter::new(None).unwrap()).unwrap();
        prop_assert!(stats.is_balanced());
        // Compressed garbage ends the file with an error, not a panic.
        let reader = CsvInventoryReader::new(&manifest, DATA_KEY, csv.as_slice()).unwrap();
        let _ = route(&manifest.schema, reader, &RowFilter::new(None).unwrap());
        let _ = ferry_listings::inventory::manifest_json::InventoryManifest::from_json(json.as_bytes());
        let _ = ferry_listings::inventory::manifest_json::InventoryManifest::from_json(&csv);
    }
}
