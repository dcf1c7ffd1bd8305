//! Properties of the delta: against the index of an earlier inventory, a later one's manifest
//! holds exactly the objects added or changed (size or ETag), whatever the keys hold (spaces,
//! `+`, `%`, commas, quotes, newlines, non-ASCII), and every row is still accounted for.

mod inventory_support;

use std::collections::{BTreeMap, BTreeSet};

use ferry_listings::inventory::csv_reader::CsvInventoryReader;
use ferry_listings::inventory::filter::{RowFilter, SkipReason};
use ferry_listings::inventory::index::{DeltaBase, ObjectIndex};
use ferry_listings::inventory::route::ManifestSplitter;
use ferry_listings::manifest::CsvManifestReader;
use inventory_support::*;
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::sample::select(vec!['a', 'b', 'c', '/']),
        3 => prop::sample::select(vec![' ', '+', '%', ',', '"', '\n', 'é', '日', '😀', '*', '~']),
    ];
    prop::collection::vec(c, 1..16).prop_map(|c| c.into_iter().collect())
}

/// Splits `objs` against `previous`; returns (decoded copy keys, next index, unchanged count).
fn run(objs: &[Obj], previous: Option<ObjectIndex>) -> (BTreeSet<String>, ObjectIndex, u64) {
    let base = previous.map(DeltaBase::new);
    let manifest = csv_manifest(CURRENT_SCHEMA);
    let gz = gzip(csv_text(CURRENT_SCHEMA, objs).as_bytes());
    let reader = CsvInventoryReader::new(&manifest, DATA_KEY, gz.as_slice()).unwrap();
    let mut splitter = ManifestSplitter::new(
        &manifest.schema,
        RowFilter::new(None).unwrap(),
        Vec::new(),
        Vec::new(),
    )
    .unwrap()
    .with_delta(base.clone(), 0);
    for item in reader {
        splitter.push_result(item).unwrap();
    }
    let out = splitter.finish().unwrap();
    assert!(out.stats.is_balanced(), "{:?}", out.stats);
    let keys = CsvManifestReader::new(out.copy.as_slice())
        .map(|r| r.unwrap().key)
        .collect();
    let unchanged = out.stats.skipped(SkipReason::Unchanged).objects;
    let next = match base {
        Some(base) => base.into_next(out.next_index).unwrap(),
        None => ObjectIndex::from_entries(out.next_index).unwrap(),
    };
    (keys, next, unchanged)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_delta_is_exactly_the_added_and_changed(
        old in prop::collection::btree_map(key(), 0u64..1000, 0..40),
        changes in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 0..20),
        added in prop::collection::btree_map(key(), 0u64..1000, 0..10),
    ) {
        let mut new: BTreeMap<String, u64> = old.clone();
        let keys: Vec<String> = old.keys().cloned().collect();
        let mut changed = BTreeSet::new();
        for (i, what) in changes {
            if keys.is_empty() { break; }
            let k = &keys[i.index(keys.len())];
            match what {
                0 => { new.remove(k); changed.remove(k); }
                _ => if new.contains_key(k) {
                    *new.get_mut(k).unwrap() += 1000;
                    changed.insert(k.clone());
                },
            }
        }
        let mut expected = changed;
        for (k, size) in &added {
            if !old.contains_key(k) {
                new.insert(k.clone(), *size);
                expected.insert(k.clone());
            }
        }
        let objs = |m: &BTreeMap<String, u64>| -> Vec<Obj> {
            m.iter().map(|(k, s)| Obj::new(k).size(*s)).collect()
        };
        let (first, index, _) = run(&objs(&old), None);
        prop_assert_eq!(&first, &old.keys().cloned().collect::<BTreeSet<_>>());
        let (delta, next, unchanged) = run(&objs(&new), Some(index));
        prop_assert_eq!(&delta, &expected);
        prop_assert_eq!(unchanged as usize, new.len() - expected.len());
        // The next index covers the whole new inventory, so nothing repeats a third time.
        prop_assert_eq!(next.len(), new.len());
        let (again, _, _) = run(&objs(&new), Some(next));
        prop_assert!(again.is_empty());
    }
}
