//! Properties of routing: every inventory row ends up in exactly one place (the copy manifest,
//! the large-object manifest, or one skip reason), keys survive inventory → manifest, and nothing
//! that can't be copied is ever written.

mod inventory_support;

use std::collections::HashMap;

use ferry_core::inventory::{
    route, CsvInventoryReader, EncryptionFilter, RowFilter, SkipReason, MAX_COPY_OBJECT_BYTES,
};
use ferry_core::manifest::CsvManifestReader;
use ferry_core::spec::FilterSpec;
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
        ("SSE-C", ""),
    ]);
    let version = prop::sample::select(vec![None, Some("v1"), Some("v2")]);
    let modified = prop::sample::select(vec![
        "2023-12-31T23:59:59.000Z",
        "2024-01-01T00:00:00.000Z",
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
            prop::option::of(0u64..3000),
            prop::option::of(1000u64..u64::MAX),
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_row_lands_in_exactly_one_place(
        objs in prop::collection::vec(obj(), 0..40),
        spec in prop::option::of(filter()),
    ) {
        let out = split(ALL_VERSIONS_SCHEMA, &objs, spec.as_ref());
        let s = &out.stats;
        prop_assert_eq!(s.rows, objs.len() as u64);
        prop_assert!(s.is_balanced(), "{:?}", s);
        prop_assert_eq!(s.skipped(SkipReason::Malformed).objects, 0, "{:?}", s.examples);
        prop_assert_eq!(s.skipped(SkipReason::Rejected).objects, 0, "{:?}", s.examples);
        prop_assert_eq!(
            s.skipped(SkipReason::DeleteMarker).objects,
            objs.iter().filter(|o| o.delete_marker).count() as u64
        );

        // What was written is a sub-multiset of the inventory, each entry in the right manifest,
        // and never something that can't be copied.
        let mut available: HashMap<(Entry, bool), usize> = HashMap::new();
        for o in &objs {
            let copyable = !o.delete_marker
                && !["GLACIER", "DEEP_ARCHIVE"].contains(&o.storage_class.as_str())
                && o.tier != "ARCHIVE"
                && o.encryption != "SSE-C";
            if copyable {
                let large = o.size > MAX_COPY_OBJECT_BYTES;
                *available.entry(((o.key.clone(), o.version_id.clone()), large)).or_default() += 1;
            }
        }
        for (manifest, large) in [(&out.copy, false), (&out.large, true)] {
            for entry in entries(manifest) {
                let slot = available.get_mut(&(entry.clone(), large));
                prop_assert!(
                    slot.as_ref().is_some_and(|n| **n > 0),
                    "{:?} written to the {} manifest but not available there",
                    entry,
                    if large { "large" } else { "copy" }
                );
                if let Some(n) = slot {
                    *n -= 1;
                }
            }
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
        let _ = ferry_core::inventory::InventoryManifest::from_json(json.as_bytes());
        let _ = ferry_core::inventory::InventoryManifest::from_json(&csv);
    }
}
