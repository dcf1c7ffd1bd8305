//! The stack's view of a transfer: custom resource properties (all strings, as CloudFormation
//! sends them) turned into a [`TransferSpec`] plus the approval settings. Property names are
//! the contract with `template.yaml` (see `docs/stack.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{FerryError, SpecProblem};
use crate::spec::{
    ChecksumAlgorithm, DestinationSpec, FilterSpec, InventoryFormat, InventoryFrequency,
    InventoryRunSpec, InventoryVersions, JobSpec, ManifestKind, ManifestSpec, ReportScope,
    ReportSpec, SourceSpec, StorageClass, TagHandling, TransferSpec,
};

/// How the first job waits for a person's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The stack waits (up to its WaitCondition timeout) and launches on approval.
    Wait,
    /// The stack completes at once; the approval, whenever it comes, launches the job.
    Deferred,
}

/// Everything `Custom::FerryTransferPlan` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPlanProperties {
    pub spec: TransferSpec,
    pub approval_mode: ApprovalMode,
    /// The WaitConditionHandle's presigned URL (wait mode only).
    pub wait_handle_url: Option<String>,
    pub approval_timeout_seconds: u32,
}

/// WaitCondition's maximum timeout: 12 hours.
pub const MAX_WAIT_SECONDS: u32 = 43_200;

impl TransferPlanProperties {
    /// Reads the properties, reporting every missing or malformed one at once. The spec is
    /// then validated by `Plan::build` like any other.
    pub fn from_properties(props: &serde_json::Value) -> Result<Self, FerryError> {
        let mut r = Reader::new(props);
        let destination_account = r.required("DestinationAccountId");
        let optional_account = |r: &mut Reader, name: &str| {
            r.optional(name)
                .unwrap_or_else(|| destination_account.clone())
        };
        let spec = TransferSpec {
            name: r.required("TransferName"),
            source: SourceSpec {
                account_id: r.required("SourceAccountId"),
                region: r.required("SourceRegion"),
                bucket: r.required("SourceBucket"),
                kms_key_arn: r.optional("SourceKmsKeyArn"),
                versioned: r.boolean("SourceVersioned", false),
            },
            destination: DestinationSpec {
                account_id: destination_account.clone(),
                region: r.required("DestinationRegion"),
                bucket: r.required("DestinationBucket"),
                kms_key_arn: r.optional("DestinationKmsKeyArn"),
                bucket_key_enabled: r.boolean("BucketKeyEnabled", false),
                storage_class: r.enumeration::<StorageClass>("StorageClass"),
                key_prefix: r.optional("DestinationKeyPrefix"),
                checksum_algorithm: r.enumeration::<ChecksumAlgorithm>("ChecksumAlgorithm"),
                metadata: Default::default(),
                new_metadata: None,
                tags: r
                    .enumeration::<TagHandling>("DestinationTags")
                    .unwrap_or_default(),
                new_tags: r.json::<BTreeMap<String, String>>("DestinationNewTags"),
            },
            manifest: ManifestSpec {
                kind: r
                    .enumeration::<ManifestKind>("ManifestKind")
                    .unwrap_or(ManifestKind::Inventory),
                bucket: r.required("ManifestBucket"),
                account_id: optional_account(&mut r, "ManifestAccountId"),
                region: None,
                key: r.required("ManifestKey"),
                kms_key_arn: r.optional("ManifestKmsKeyArn"),
                version_ids: r.boolean("ManifestVersionIds", false),
            },
            report: ReportSpec {
                bucket: r.required("ReportBucket"),
                account_id: optional_account(&mut r, "ReportAccountId"),
                region: None,
                prefix: r.required("ReportPrefix"),
                kms_key_arn: r.optional("ReportKmsKeyArn"),
                scope: r
                    .enumeration::<ReportScope>("ReportScope")
                    .unwrap_or_default(),
            },
            job: JobSpec {
                confirmation_required: r.boolean("ConfirmationRequired", true),
                priority: r.number("JobPriority", 10),
                description: r.optional("JobDescription"),
                large_object_copier_arn: r.optional("LargeObjectCopierArn"),
                large_object_copier_role_arn: r.optional("LargeObjectCopierRoleArn"),
                ..JobSpec::default()
            },
            estimate: None,
            filter: r.json::<FilterSpec>("InventoryFilter"),
            inventory: None,
        };
        let mut spec = spec;
        // Event-driven runs (`InventoryRuns` = "true"): every new inventory is copied, delta.
        if r.boolean("InventoryRuns", false) {
            spec.inventory = Some(InventoryRunSpec {
                format: r
                    .enumeration::<InventoryFormat>("InventoryFormat")
                    .unwrap_or_default(),
                frequency: r
                    .enumeration::<InventoryFrequency>("InventoryFrequency")
                    .unwrap_or_default(),
                versions: r
                    .enumeration::<InventoryVersions>("InventoryVersions")
                    .unwrap_or_default(),
                delta: r.boolean("InventoryDelta", true),
            });
            // An inventory of all versions is copied one version per key, the current one: one
            // job can't keep versions in order (AWS: noncurrent versions first, current ones in
            // a later job), so the stack's runs of one always keep the latest only.
            if spec.inventory.as_ref().map(|i| i.versions) == Some(InventoryVersions::All) {
                spec.filter
                    .get_or_insert_with(FilterSpec::default)
                    .latest_only = true;
            }
        }
        let approval_mode = r
            .enumeration::<ApprovalMode>("ApprovalMode")
            .unwrap_or(ApprovalMode::Wait);
        let wait_handle_url = r.optional("ApprovalWaitHandle");
        let approval_timeout_seconds = r.number("ApprovalTimeoutSeconds", MAX_WAIT_SECONDS);
        if approval_mode == ApprovalMode::Wait && wait_handle_url.is_none() {
            r.problem(
                "ApprovalWaitHandle",
                "",
                "ApprovalMode wait needs the WaitConditionHandle's URL (Ref ApprovalWaitHandle)",
            );
        }
        if spec.manifest.account_id != destination_account {
            // The stack's functions read the manifest's ETag with their own roles, which the
            // source account's policies (written for the Batch Operations role) don't name.
            r.problem(
                "ManifestAccountId",
                &spec.manifest.account_id,
                "the stack reads the manifest's ETag with its own role, so the manifest must be in the destination \
                 account: deliver the S3 Inventory there (or copy the CSV there), or run `ferry plan` by hand",
            );
        }
        if approval_timeout_seconds > MAX_WAIT_SECONDS {
            r.problem(
                "ApprovalTimeoutSeconds",
                &approval_timeout_seconds.to_string(),
                "a WaitCondition waits at most 43200 seconds (12 hours)",
            );
        }
        // Meaning checks too, so one failed create lists everything; fields are renamed to the
        // template's parameter names, and a property already reported isn't reported twice.
        if let Err(FerryError::InvalidSpec(problems)) = crate::validate::validate(&spec) {
            for mut p in problems {
                p.field = property_name(&p.field).to_string();
                if !r.problems.iter().any(|seen| seen.field == p.field) {
                    r.problems.push(p);
                }
            }
        }
        r.finish()?;
        Ok(Self {
            spec,
            approval_mode,
            wait_handle_url,
            approval_timeout_seconds,
        })
    }
}

/// The template parameter (and custom resource property) behind a spec field.
fn property_name(spec_field: &str) -> &str {
    match spec_field {
        "name" => "TransferName",
        "source.account_id" => "SourceAccountId",
        "source.region" => "SourceRegion",
        "source.bucket" => "SourceBucket",
        "source.kms_key_arn" => "SourceKmsKeyArn",
        "source.versioned" => "SourceVersioned",
        "destination.account_id" => "DestinationAccountId",
        "destination.region" => "DestinationRegion",
        "destination.bucket" => "DestinationBucket",
        "destination.kms_key_arn" => "DestinationKmsKeyArn",
        "destination.bucket_key_enabled" => "BucketKeyEnabled",
        "destination.key_prefix" => "DestinationKeyPrefix",
        "manifest.kind" => "ManifestKind",
        "manifest.bucket" => "ManifestBucket",
        // The stack has no region properties for these buckets: both are read in the
        // destination region, so a region conflict is fixed by choosing another bucket.
        "manifest.region" => "ManifestBucket",
        "report.region" => "ReportBucket",
        "manifest.account_id" => "ManifestAccountId",
        "manifest.key" => "ManifestKey",
        "manifest.kms_key_arn" => "ManifestKmsKeyArn",
        "manifest.version_ids" => "ManifestVersionIds",
        "report.bucket" => "ReportBucket",
        "report.account_id" => "ReportAccountId",
        "report.prefix" => "ReportPrefix",
        "report.kms_key_arn" => "ReportKmsKeyArn",
        "job.priority" => "JobPriority",
        "job.description" => "JobDescription",
        "destination.tags" => "DestinationTags",
        "destination.new_tags" => "DestinationNewTags",
        filter if filter == "filter" || filter.starts_with("filter.") => "InventoryFilter",
        other => other,
    }
}

/// Reads string properties and collects problems instead of stopping at the first.
struct Reader<'a> {
    props: &'a serde_json::Value,
    problems: Vec<SpecProblem>,
}

impl<'a> Reader<'a> {
    fn new(props: &'a serde_json::Value) -> Self {
        Self {
            props,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, field: &str, value: &str, message: &str) {
        self.problems.push(SpecProblem {
            field: field.to_string(),
            value: value.to_string(),
            message: message.to_string(),
        });
    }

    /// The trimmed string value; `None` when absent or empty. Numbers and booleans are
    /// accepted too (CloudFormation sends strings, but hand-written events may not).
    fn raw(&self, name: &str) -> Option<String> {
        let text = match self.props.get(name)? {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (!text.is_empty()).then_some(text)
    }

    fn required(&mut self, name: &str) -> String {
        self.raw(name).unwrap_or_else(|| {
            self.problem(name, "", "is required");
            String::new()
        })
    }

    fn optional(&mut self, name: &str) -> Option<String> {
        self.raw(name)
    }

    fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.raw(name).as_deref() {
            None => default,
            Some("true" | "True" | "TRUE") => true,
            Some("false" | "False" | "FALSE") => false,
            Some(other) => {
                self.problem(name, other, "must be true or false");
                default
            }
        }
    }

    fn number(&mut self, name: &str, default: u32) -> u32 {
        match self.raw(name) {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                self.problem(name, &text, "must be a whole number ≥ 0");
                default
            }),
        }
    }

    /// A JSON value of the spec's shape (`DestinationNewTags`, `InventoryFilter`): a template
    /// parameter is a string, so a table of the spec travels as a JSON object.
    fn json<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        let text = self.raw(name)?;
        match serde_json::from_str(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = format!("is not the JSON object it must be: {e}");
                self.problem(name, &text, &message);
                None
            }
        }
    }

    /// An enum by its spec spelling (`STANDARD_IA`, `csv`, `wait`, …).
    fn enumeration<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        let text = self.raw(name)?;
        match serde_json::from_value(serde_json::Value::String(text.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.to_string();
                self.problem(name, &text, &message);
                None
            }
        }
    }

    fn finish(self) -> Result<(), FerryError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(FerryError::InvalidSpec(self.problems))
        }
    }
}

/// `Custom::FerryJob`'s `Approval` property: the WaitCondition's data (a JSON object of
/// `UniqueId → Data`) in wait mode, or the literal `deferred`.
pub fn approval_granted(approval_property: &str) -> bool {
    match serde_json::from_str::<BTreeMap<String, String>>(approval_property) {
        Ok(signals) => signals.values().any(|v| v == "approved"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props() -> serde_json::Value {
        json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:222222222222:function:ferry-stack-handler",
            "TransferName": "photos",
            "SourceAccountId": "111111111111", "SourceRegion": "us-east-1", "SourceBucket": "acme-photos-prod",
            "SourceKmsKeyArn": "", "SourceVersioned": "false",
            "DestinationAccountId": "222222222222", "DestinationRegion": "us-east-1",
            "DestinationBucket": "acme-photos-archive", "DestinationKmsKeyArn": "", "BucketKeyEnabled": "false",
            "StorageClass": "", "DestinationKeyPrefix": "", "ChecksumAlgorithm": "",
            "ManifestKind": "csv", "ManifestBucket": "acme-ferry-manifests", "ManifestAccountId": "",
            "ManifestKey": "photos/manifest.csv", "ManifestKmsKeyArn": "", "ManifestVersionIds": "false",
            "ReportBucket": "acme-ferry-reports", "ReportAccountId": "", "ReportPrefix": "photos",
            "ReportKmsKeyArn": "", "ReportScope": "failed",
            "ConfirmationRequired": "true", "JobPriority": "10",
            "ApprovalMode": "deferred", "ApprovalWaitHandle": "", "ApprovalTimeoutSeconds": "43200"
        })
    }

    #[test]
    fn stack_properties_give_the_same_spec_as_the_example() {
        let p = TransferPlanProperties::from_properties(&props()).unwrap();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sse-s3-csv.toml"
        );
        let mut example =
            TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        example.estimate = None;
        assert_eq!(p.spec, example);
        assert_eq!(p.approval_mode, ApprovalMode::Deferred);
    }

    /// A stack on an inventory of all versions copies the current version of each key (the
    /// spec's rule; the stack has no filter parameters), so it is valid.
    #[test]
    fn an_all_versions_inventory_stack_copies_current_versions() {
        let mut p = props();
        for (k, v) in [
            ("ManifestKind", "inventory"),
            (
                "ManifestKey",
                "inv/acme-photos-prod/all/2026-11-24T01-00Z/manifest.json",
            ),
            ("SourceVersioned", "true"),
            ("InventoryRuns", "true"),
            ("InventoryVersions", "all"),
        ] {
            p[k] = json!(v);
        }
        let spec = TransferPlanProperties::from_properties(&p).unwrap().spec;
        assert!(spec.filter.is_some_and(|f| f.latest_only));
        p["InventoryVersions"] = json!("current");
        let spec = TransferPlanProperties::from_properties(&p).unwrap().spec;
        assert_eq!(spec.filter, None);
    }

    /// The example settings the stack once dropped: replaced tags (versioned-source), a job
    /// description (kms-inventory) and a filter for the runs (inventory-driven). A stack deployed
    /// for those examples copied the source's tags, described the job its own way and copied
    /// every object the inventories listed.
    #[test]
    fn tags_description_and_filter_reach_the_spec() {
        let mut p = props();
        p["DestinationTags"] = json!("replace");
        p["DestinationNewTags"] = json!(r#"{"copied-by": "ferry", "origin": "acme-contracts"}"#);
        p["JobDescription"] = json!("Ledger archive: prod to vault");
        p["ManifestKind"] = json!("inventory");
        p["ManifestKey"] = json!("inv/acme-photos-prod/daily/2026-11-24T01-00Z/manifest.json");
        p["InventoryRuns"] = json!("true");
        p["InventoryFilter"] =
            json!(r#"{"exclude_prefixes": ["tmp/"], "storage_classes": ["STANDARD"]}"#);
        let spec = TransferPlanProperties::from_properties(&p).unwrap().spec;
        assert_eq!(spec.destination.tags, TagHandling::Replace);
        assert_eq!(
            spec.destination.new_tags,
            Some(BTreeMap::from([
                ("copied-by".to_string(), "ferry".to_string()),
                ("origin".to_string(), "acme-contracts".to_string()),
            ]))
        );
        assert_eq!(
            spec.job.description.as_deref(),
            Some("Ledger archive: prod to vault")
        );
        let filter = spec.filter.expect("the filter");
        assert_eq!(filter.exclude_prefixes, ["tmp/"]);
        assert_eq!(filter.storage_classes, ["STANDARD"]);
        // Defaults: the source's tags, Ferry's description, no filter.
        let spec = TransferPlanProperties::from_properties(&props())
            .unwrap()
            .spec;
        assert_eq!(spec.destination.tags, TagHandling::Copy);
        assert_eq!(
            (spec.destination.new_tags, spec.job.description, spec.filter),
            (None, None, None)
        );
    }

    #[test]
    fn malformed_tags_and_filters_are_reported_by_property() {
        let mut p = props();
        p["DestinationTags"] = json!("replace");
        p["DestinationNewTags"] = json!("copied-by=ferry");
        p["InventoryFilter"] = json!(r#"{"exclude_prefix": ["tmp/"]}"#);
        let Err(FerryError::InvalidSpec(problems)) = TransferPlanProperties::from_properties(&p)
        else {
            panic!("expected problems");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"DestinationNewTags"), "{fields:?}");
        assert!(fields.contains(&"InventoryFilter"), "{fields:?}");
        assert!(!fields.iter().any(|f| f.contains('.')), "{fields:?}");
    }

    #[test]
    fn every_bad_property_is_reported() {
        let mut bad = props();
        bad["SourceBucket"] = json!("");
        bad["SourceVersioned"] = json!("yes");
        bad["StorageClass"] = json!("GLACIER_FLEXIBLE");
        bad["JobPriority"] = json!("-1");
        bad["ApprovalMode"] = json!("wait");
        let Err(FerryError::InvalidSpec(problems)) = TransferPlanProperties::from_properties(&bad)
        else {
            panic!("expected problems");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "SourceBucket",
                "SourceVersioned",
                "StorageClass",
                "JobPriority",
                "ApprovalWaitHandle"
            ]
        );
    }

    #[test]
    fn a_manifest_in_the_source_account_is_refused_with_the_reason() {
        let mut p = props();
        p["ManifestAccountId"] = json!("111111111111");
        let Err(FerryError::InvalidSpec(problems)) = TransferPlanProperties::from_properties(&p)
        else {
            panic!("expected a problem");
        };
        assert_eq!(problems[0].field, "ManifestAccountId");
        assert!(problems[0].message.contains("destination account"));
    }

    /// Found by fuzzing (fuzz/ cfn_event): a region conflict of the manifest or report bucket
    /// was reported as `manifest.region` / `report.region`, which no template property is.
    #[test]
    fn every_problem_names_a_template_property() {
        let mut p = props();
        p["SourceRegion"] = json!("eu-west-1");
        p["ManifestBucket"] = json!("acme-photos-prod");
        p["ReportBucket"] = json!("acme-photos-prod");
        let Err(FerryError::InvalidSpec(problems)) = TransferPlanProperties::from_properties(&p)
        else {
            panic!("expected problems");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"ManifestBucket"), "{fields:?}");
        assert!(fields.contains(&"ReportBucket"), "{fields:?}");
        assert!(!fields.iter().any(|f| f.contains('.')), "{fields:?}");
    }

    #[test]
    fn approval_property() {
        assert!(approval_granted(r#"{"approval":"approved"}"#));
        assert!(!approval_granted(r#"{"approval":"deferred"}"#));
        assert!(!approval_granted("deferred"));
    }
}
