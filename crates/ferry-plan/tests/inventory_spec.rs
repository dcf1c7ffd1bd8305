//! `[inventory]` validation: each problem names the field, the value and the fix; the example
//! spec is valid and its plan describes event-driven runs instead of warning about `[filter]`.

use ferry_plan::spec::{InventoryFormat, InventoryVersions, ManifestKind};
use ferry_plan::{FerryError, Plan, TransferSpec};

fn example() -> TransferSpec {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/inventory-driven.toml");
    TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn problems(spec: &TransferSpec) -> Vec<(String, String, String)> {
    match Plan::build(spec) {
        Err(FerryError::InvalidSpec(p)) => p
            .into_iter()
            .map(|p| (p.field, p.value, p.message))
            .collect(),
        Err(other) => panic!("{other}"),
        Ok(_) => Vec::new(),
    }
}

#[test]
fn the_example_plans_event_driven_runs() {
    let plan = Plan::build(&example()).unwrap();
    let runs = plan.inventory_runs.expect("event-driven runs");
    assert_eq!(
        runs.watches,
        "s3://acme-dr-inventory/inventories/acme-media-prod/ferry-media-sync/"
    );
    assert!(runs.delta);
    assert!(!plan.warnings.iter().any(|w| w.contains("[filter]")));
    // The filter's columns are asked for in the inventory configuration.
    let fields = &runs.inventory_configuration.optional_fields;
    for needed in ["Size", "ETag", "StorageClass"] {
        assert!(fields.iter().any(|f| f == needed), "{needed} in {fields:?}");
    }
}

#[test]
fn each_problem_names_field_value_and_fix() {
    // Every inventory format is read.
    for format in [
        InventoryFormat::Csv,
        InventoryFormat::Parquet,
        InventoryFormat::Orc,
    ] {
        let mut s = example();
        s.inventory.as_mut().unwrap().format = format;
        assert_eq!(problems(&s), Vec::new(), "{format:?}");
    }

    let mut all = example();
    all.inventory.as_mut().unwrap().versions = InventoryVersions::All;
    let p = problems(&all);
    assert_eq!(p[0].0, "inventory.versions");
    assert!(p[0].2.contains("source.versioned = true"));
    // Versions would be copied in one job in no order: only current ones, or refused.
    assert!(
        p.iter()
            .any(|(f, _, m)| f == "inventory.versions" && m.contains("latest_only = true")),
        "{p:?}"
    );
    all.source.versioned = true;
    all.filter.get_or_insert_with(Default::default).latest_only = true;
    assert_eq!(problems(&all), Vec::new());

    let mut key = example();
    key.manifest.key = "inventories/manifest.json".into();
    assert!(
        problems(&key).iter().any(|(f, v, m)| f == "manifest.key"
            && v == "inventories/manifest.json"
            && m.contains("<configuration-id>")),
        "{:?}",
        problems(&key)
    );

    let mut elsewhere = example();
    elsewhere.manifest.account_id = "111111111111".into();
    assert!(problems(&elsewhere)
        .iter()
        .any(|(f, v, m)| f == "manifest.account_id"
            && v == "111111111111"
            && m.contains("222222222222")));

    let mut csv = example();
    csv.manifest.kind = ManifestKind::Csv;
    assert!(problems(&csv).iter().any(|(f, _, _)| f == "inventory"));
}

/// S3 sends an inventory bucket's events to EventBridge in its own Region (the source Region's,
/// where inventories are delivered); the stack's rule is in the destination Region, so runs of
/// a cross-Region transfer would never start: refused, not silently idle.
#[test]
fn event_driven_runs_need_source_and_destination_in_one_region() {
    let mut s = example();
    s.destination.region = "eu-central-1".into();
    let p = problems(&s);
    let runs: Vec<_> = p.iter().filter(|(f, _, _)| f == "inventory").collect();
    assert_eq!(runs.len(), 1, "{p:?}");
    assert!(
        runs[0].2.contains("us-east-1") && runs[0].2.contains("eu-central-1"),
        "{}",
        runs[0].2
    );
    assert!(runs[0].2.contains("never start"), "{}", runs[0].2);
    s.inventory = None;
    s.filter = None;
    assert!(
        !problems(&s).iter().any(|(f, _, _)| f == "inventory"),
        "a one-off cross-Region transfer is fine"
    );
}
