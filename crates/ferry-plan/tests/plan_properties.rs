//! Properties of generated plans that must hold for every transfer shape, checked on the
//! shipped examples and on variations of them.

use std::path::Path;
use std::process::Command;

use ferry_plan::plan::TransferKind;
use ferry_plan::render::JQ_MERGE_BY_SID;
use ferry_plan::{Plan, TransferSpec};
use proptest::prelude::*;
use serde_json::{json, Value};

fn example(name: &str) -> TransferSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("example exists");
    TransferSpec::from_toml_str(&text).expect("example parses")
}

fn all_actions(plan: &Plan) -> Vec<String> {
    plan.batch_role
        .permissions_policy
        .statements
        .iter()
        .flat_map(|s| s.actions.clone())
        .collect()
}

#[test]
fn cross_account_source_gets_bucket_and_key_statements_naming_the_role() {
    let plan = Plan::build(&example("kms-inventory.toml")).unwrap();
    assert_eq!(plan.transfer.kind, TransferKind::CrossAccount);
    let src = &plan.source_account;
    assert_eq!(src.account_id, "111111111111");
    let bucket = &src.bucket_policies["acme-ledger-prod"];
    let key = &src.key_policies
        ["arn:aws:kms:eu-west-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011"];
    for s in bucket.statements.iter().chain(&key.statements) {
        let principal = serde_json::to_value(&s.principal).unwrap();
        assert_eq!(principal["AWS"], plan.batch_role.arn, "{}", s.sid);
    }
    let cond = key.statements[0].condition.as_ref().unwrap();
    assert_eq!(
        cond["StringEquals"]["kms:ViaService"],
        "s3.eu-west-1.amazonaws.com"
    );
    assert_eq!(cond["StringEquals"]["kms:CallerAccount"], "222222222222");
    assert_eq!(key.statements[0].actions, vec!["kms:Decrypt"]);
    // The destination owns the manifest, report and destination buckets: no bucket policies.
    assert!(plan.destination_account.bucket_policies.is_empty());
    assert_eq!(plan.destination_account.key_policies.len(), 2);
}

#[test]
fn same_account_and_in_place_carry_no_cross_account_statements() {
    let plan = Plan::build(&example("in-place-reencrypt.toml")).unwrap();
    assert_eq!(plan.transfer.kind, TransferKind::InPlace);
    assert!(plan.source_account.is_empty());
    assert!(plan.destination_account.bucket_policies.is_empty());
    for doc in plan.destination_account.key_policies.values() {
        for s in &doc.statements {
            let cond = s.condition.as_ref().unwrap();
            assert_eq!(cond["StringEquals"]["kms:CallerAccount"], "333333333333");
        }
    }

    let mut spec = example("sse-s3-csv.toml");
    spec.source.account_id = spec.destination.account_id.clone();
    let plan = Plan::build(&spec).unwrap();
    assert_eq!(plan.transfer.kind, TransferKind::SameAccount);
    assert!(plan.source_account.is_empty() && plan.destination_account.is_empty());
}

/// Versions of source objects are read only from a versioned source. The manifest's version is
/// read always: the stack creates its job on the version its approval e-mails named, in a
/// versioned manifest bucket (`ObjectVersionId`, #15 item 13).
#[test]
fn version_reads_only_for_versioned_sources_and_the_manifest() {
    let plan = Plan::build(&example("sse-s3-csv.toml")).unwrap();
    let manifest = "arn:aws:s3:::acme-ferry-manifests/photos/manifest.csv".to_string();
    for s in &plan.batch_role.permissions_policy.statements {
        if s.actions.iter().any(|a| a.contains("Version")) {
            assert_eq!(s.resources, vec![manifest.clone()], "{}", s.sid);
            assert_eq!(
                s.actions,
                ["s3:GetObject", "s3:GetObjectVersion"],
                "{}",
                s.sid
            );
        }
    }
    assert!(all_actions(&plan).contains(&"s3:GetObjectVersion".to_string()));
    let plan = Plan::build(&example("versioned-source.toml")).unwrap();
    let source = plan
        .batch_role
        .permissions_policy
        .statements
        .iter()
        .find(|s| s.sid.ends_with("ReadSourceObjects"))
        .unwrap();
    assert!(source.actions.contains(&"s3:GetObjectVersion".to_string()));
}

#[test]
fn kms_is_granted_exactly_where_a_bucket_is_kms_encrypted() {
    let plan = Plan::build(&example("sse-s3-csv.toml")).unwrap();
    assert!(!all_actions(&plan).iter().any(|a| a.starts_with("kms:")));
    let plan = Plan::build(&example("kms-inventory.toml")).unwrap();
    let kms: Vec<_> = plan
        .batch_role
        .permissions_policy
        .statements
        .iter()
        .filter(|s| s.actions.iter().any(|a| a.starts_with("kms:")))
        .map(|s| (s.sid.as_str(), s.actions.join(",")))
        .collect();
    assert_eq!(
        kms,
        vec![
            ("FerryLedgerDecryptSourceObjects", "kms:Decrypt".to_string()),
            // An SSE-KMS inventory manifest: Decrypt and GenerateDataKey, as AWS documents.
            (
                "FerryLedgerDecryptManifest",
                "kms:GenerateDataKey,kms:Decrypt".to_string()
            ),
            (
                "FerryLedgerEncryptDestinationObjects",
                "kms:GenerateDataKey,kms:Decrypt".to_string()
            ),
            (
                "FerryLedgerEncryptCompletionReport",
                "kms:GenerateDataKey,kms:Decrypt".to_string()
            ),
        ]
    );
}

#[test]
fn cross_region_uses_each_keys_own_region_for_via_service() {
    let plan = Plan::build(&example("cross-region.toml")).unwrap();
    let via: Vec<_> = plan
        .batch_role
        .permissions_policy
        .statements
        .iter()
        .filter_map(|s| {
            s.condition
                .as_ref()?
                .get("StringEquals")?
                .get("kms:ViaService")
        })
        .cloned()
        .collect();
    assert_eq!(
        via,
        vec![
            "s3.us-east-1.amazonaws.com",
            "s3.eu-central-1.amazonaws.com"
        ]
    );
    // AWS's documented trust policy: the service, no conditions (iam:PassRole is the guard).
    let trust = serde_json::to_value(&plan.batch_role.trust_policy).unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "batchoperations.s3.amazonaws.com"
    );
    assert!(trust["Statement"][0].get("Condition").is_none(), "{trust}");
}

#[test]
fn the_plan_fingerprint_changes_with_the_transfer_and_drives_the_token() {
    let spec = example("sse-s3-csv.toml");
    let plan = Plan::build(&spec).unwrap();
    let mut other = spec.clone();
    other.destination.key_prefix = Some("x/".into());
    assert_ne!(
        plan.transfer.fingerprint,
        Plan::build(&other).unwrap().transfer.fingerprint
    );
    assert_eq!(
        plan.transfer.fingerprint,
        Plan::build(&spec).unwrap().transfer.fingerprint
    );

    let fp = &plan.transfer.fingerprint;
    let launched = plan
        .create_job
        .for_manifest_etag(fp, "\"9b2cf535f27731c974343645a3985328\"")
        .unwrap();
    assert_eq!(
        launched.manifest.location.etag,
        "9b2cf535f27731c974343645a3985328"
    );
    assert_eq!(launched.client_request_token.len(), 64);
    assert!(plan.create_job.for_manifest_etag(fp, "  ").is_none());
}

/// The merge command in the text plan really merges by Sid, keeps other statements (even a
/// lone statement object) and is idempotent. Runs the exact jq program the plan prints.
#[test]
fn jq_merge_by_sid_keeps_other_statements_and_is_idempotent() {
    let dir = std::env::temp_dir().join(format!("ferry-jq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let current = dir.join("current.json");
    let ours = dir.join("ours.json");
    std::fs::write(
        &current,
        r#"{"Version":"2012-10-17","Statement":{"Sid":"DenyInsecure","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}}"#,
    )
    .unwrap();
    let plan = Plan::build(&example("sse-s3-csv.toml")).unwrap();
    let doc = &plan.source_account.bucket_policies["acme-photos-prod"];
    std::fs::write(&ours, doc.to_pretty_json()).unwrap();
    let merge = |input: &Path| -> serde_json::Value {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{JQ_MERGE_BY_SID} '{}' '{}'",
                input.display(),
                ours.display()
            ))
            .output()
            .expect("sh and jq are installed (jq is part of the machine image)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let once = merge(&current);
    let sids: Vec<_> = once["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sids,
        vec![
            "DenyInsecure",
            "FerryPhotosReadSourceObjects",
            "FerryPhotosListSourceBucket"
        ]
    );
    let merged = dir.join("merged.json");
    std::fs::write(&merged, once.to_string()).unwrap();
    assert_eq!(merge(&merged), once, "a second merge changes nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A filter is applied only by inventory runs: without `[inventory]` the job would get the
/// inventory's manifest.json and copy every object, so the plan refuses it rather than warn.
#[test]
fn a_filter_is_not_silently_ignored_by_the_plan() {
    let mut spec = example("kms-inventory.toml");
    assert!(Plan::build(&spec).is_ok());
    spec.filter = Some(Default::default());
    let Err(ferry_plan::error::FerryError::InvalidSpec(problems)) = Plan::build(&spec) else {
        panic!("a filter without [inventory] must be refused")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "filter");
}

/// Batch Operations puts a `/` between `TargetKeyPrefix` and the key (AWS's answer in
/// boto/boto3#3420). The plan sends the spec's folder without its slash, and the large-object
/// copier names its copies exactly as the Copy job does, for awkward keys too.
#[test]
fn copy_job_and_large_object_copier_give_byte_identical_keys() {
    use ferry_plan::large_object_arguments::LargeObjectCopyArguments;
    let spec = example("kms-inventory.toml");
    assert_eq!(spec.destination.key_prefix.as_deref(), Some("from-prod/"));
    let plan = Plan::build(&spec).unwrap();
    let copy = plan.create_job.operation.as_copy().unwrap();
    let sent = copy.target_key_prefix.as_deref().unwrap();
    assert_eq!(sent, "from-prod");
    // AWS's rule, modelled here without Ferry's code.
    let aws_key = |key: &str| format!("{sent}/{key}");
    let copier = LargeObjectCopyArguments::from_spec(&spec);
    for key in [
        "a.txt",
        "dir/sub/b c+d.bin",
        "/leading-slash",
        "é/ü?*.x",
        "dir/",
    ] {
        assert_eq!(copier.destination_key(key), aws_key(key), "{key}");
    }
    // The same for the arguments as the LambdaInvoke job carries them.
    let args = copier.to_user_arguments().unwrap();
    let back = LargeObjectCopyArguments::from_user_arguments(&args).unwrap();
    assert_eq!(back.destination_key("a.txt"), "from-prod/a.txt");
    // An older LambdaInvoke job whose keyPrefix still ends in '/' names the copy the same.
    let mut old = args.clone();
    old.insert("keyPrefix".to_string(), "from-prod/".to_string());
    let old = LargeObjectCopyArguments::from_user_arguments(&old).unwrap();
    assert_eq!(old.destination_key("a.txt"), "from-prod/a.txt");
}

// ---------------------------------------------------------------------------------------------
// No delete, ACL, policy-changing, IAM or wildcard grant, in any policy Ferry emits.
//
// Every policy document of a plan is found by walking the plan's JSON (any object with a
// `Statement`), so a policy added to the plan later is checked too, and must be classified
// below or the test fails. The kinds and what each may hold:
// - the batch role's identity policy (`batch_role.permissions_policy`): no `Principal`; every
//   resource a named ARN: an S3 bucket or object ARN of a named bucket, a KMS key ARN, a
//   Lambda function ARN; never `*`;
// - its trust policy (`batch_role.trust_policy`): only `sts:AssumeRole`, no `Resource` (the
//   resource is the role itself), a named principal;
// - bucket policies (`*.bucket_policies.*`, `inventory_runs.delivery_policy`): only `s3:`
//   actions on ARNs of named buckets, a named principal;
// - key policies (`*.key_policies.*`): only `kms:` actions and `Resource: "*"`, which in a key
//   policy means "this KMS key" (AWS KMS Developer Guide, "Key policies in AWS KMS", Resource
//   element: https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html),
//   a named principal.
// A `Deny` statement grants nothing and is not checked (Ferry writes none); anything else is
// taken as a grant, whatever its `Effect` says.

/// What a policy document is, by where it sits in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PolicyKind {
    Identity,
    Trust,
    Bucket,
    Key,
}

/// Every policy document of the plan: `(where in the plan's JSON, its kind, the document)`.
fn policy_documents(plan: &Plan) -> Vec<(String, PolicyKind, Value)> {
    fn walk(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(map) if map.contains_key("Statement") => {
                out.push((path.to_string(), v.clone()));
            }
            Value::Object(map) => {
                for (k, x) in map {
                    walk(x, &format!("{path}/{k}"), out);
                }
            }
            Value::Array(list) => {
                for (i, x) in list.iter().enumerate() {
                    walk(x, &format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut docs = Vec::new();
    walk(&serde_json::to_value(plan).unwrap(), "", &mut docs);
    docs.into_iter()
        .map(|(path, doc)| {
            let kind = match path.as_str() {
                "/batch_role/permissions_policy" => PolicyKind::Identity,
                "/batch_role/trust_policy" => PolicyKind::Trust,
                "/inventory_runs/delivery_policy" => PolicyKind::Bucket,
                p if p.starts_with("/source_account/bucket_policies/")
                    || p.starts_with("/destination_account/bucket_policies/") =>
                {
                    PolicyKind::Bucket
                }
                p if p.starts_with("/source_account/key_policies/")
                    || p.starts_with("/destination_account/key_policies/") =>
                {
                    PolicyKind::Key
                }
                other => panic!("a policy document at {other} this test doesn't know: classify it"),
            };
            (path, kind, doc)
        })
        .collect()
}

/// A string or a list of strings (IAM allows both); anything else is `None`.
fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    match v {
        None => Some(Vec::new()),
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(list)) => list
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(_) => None,
    }
}

/// Why granting `action` is refused, if it is.
fn forbidden_action(action: &str) -> Option<&'static str> {
    let lower = action.to_ascii_lowercase();
    let Some((service, name)) = lower.split_once(':') else {
        return Some("not service:Action (or the wildcard *)");
    };
    if lower.contains('*') || lower.contains('?') {
        return Some("a wildcard action (*, s3:*, kms:*, s3:Get* ...)");
    }
    if service == "iam" {
        return Some("an IAM action");
    }
    if name.contains("acl") {
        return Some("an ACL action");
    }
    if service == "s3" && name.starts_with("delete") {
        return Some("an S3 delete");
    }
    const DESTRUCTIVE: [&str; 7] = [
        "s3:putbucketpolicy",
        // A lifecycle rule expires objects: a delete by another name.
        "s3:putlifecycleconfiguration",
        // Lets object-lock governance retention be overridden, so locked objects deleted.
        "s3:bypassgovernanceretention",
        "kms:schedulekeydeletion",
        "kms:putkeypolicy",
        "kms:disablekey",
        // A grant lets its grantee give itself any use of the key.
        "kms:creategrant",
    ];
    DESTRUCTIVE
        .contains(&lower.as_str())
        .then_some("changes or destroys a bucket or key (policy, lifecycle, retention, key state)")
}

/// Why `resource` is not an S3 ARN of one named bucket with no wildcard but a final `*`.
/// `${*}`, `${?}` and `${$}` are IAM's escapes for those characters in a key (Ferry writes
/// them for keys and prefixes that contain them): they are literal, not wildcards.
fn s3_resource_problem(resource: &str) -> Option<String> {
    let rest = ["aws", "aws-cn", "aws-us-gov"]
        .iter()
        .find_map(|p| resource.strip_prefix(&format!("arn:{p}:s3:::")));
    let Some(rest) = rest else {
        return Some("not an S3 ARN".into());
    };
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty()
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Some(format!("bucket {bucket:?} is not one named bucket"));
    }
    let mut path = path.strip_suffix('*').unwrap_or(path);
    while let Some(c) = path.chars().next() {
        if ["${*}", "${?}", "${$}"].iter().any(|e| path.starts_with(e)) {
            path = &path[4..];
        } else if matches!(c, '*' | '?' | '$') {
            return Some(format!(
                "{c:?} in the path is a wildcard or a policy variable (only a final * is expected)"
            ));
        } else {
            path = &path[c.len_utf8()..];
        }
    }
    None
}

/// Why `resource`, the resource of an identity-policy `action`, is not one named resource.
fn identity_resource_problem(action: &str, resource: &str) -> Option<String> {
    let service = action.split_once(':').map_or("", |(s, _)| s);
    match service {
        "s3" => s3_resource_problem(resource),
        "kms" => {
            let parts: Vec<&str> = resource.splitn(6, ':').collect();
            let ok = parts.len() == 6
                && parts[0] == "arn"
                && parts[2] == "kms"
                && parts[5].starts_with("key/")
                && !resource.contains(['*', '?']);
            (!ok).then(|| "not one KMS key ARN".to_string())
        }
        "lambda" => (!resource.contains(":lambda:")
            || !resource.contains(":function:")
            || resource.contains(['*', '?']))
        .then(|| "not one Lambda function ARN".to_string()),
        _ => Some(format!(
            "no resource of {service} is expected in the role's policy"
        )),
    }
}

/// Why a granting statement's `Principal` is not one named role or service.
fn principal_problem(principal: Option<&Value>) -> Option<String> {
    let Some(Value::Object(map)) = principal else {
        return Some(format!(
            "principal {principal:?} is not {{AWS|Service: name}}"
        ));
    };
    if map.len() != 1 {
        return Some(format!("principal {map:?} names more than one thing"));
    }
    let (kind, value) = map.iter().next().unwrap();
    let Some(value) = value.as_str() else {
        return Some(format!("principal {value} is not one name"));
    };
    if value.contains(['*', '?']) {
        return Some(format!("principal {value} is a wildcard"));
    }
    match kind.as_str() {
        "AWS"
            if value.starts_with("arn:")
                && value.contains(":iam::")
                && value.contains(":role/") =>
        {
            None
        }
        "Service" if value.ends_with(".amazonaws.com") => None,
        _ => Some(format!(
            "principal {kind}: {value} is not a role ARN or a service"
        )),
    }
}

/// Every grant of `doc` (of kind `kind`) that Ferry must never make, described.
fn forbidden_grants(kind: PolicyKind, doc: &Value) -> Vec<String> {
    let statements = match &doc["Statement"] {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let mut found = Vec::new();
    for s in &statements {
        let sid = s["Sid"].as_str().unwrap_or("(no Sid)");
        let mut bad = |why: String| found.push(format!("{sid}: {why}"));
        if s["Effect"] == "Deny" {
            continue;
        }
        if s["Effect"] != "Allow" {
            bad(format!("Effect {} (taken as a grant)", s["Effect"]));
        }
        for key in s
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_else(Vec::new)
        {
            if ![
                "Sid",
                "Effect",
                "Principal",
                "Action",
                "Resource",
                "Condition",
            ]
            .contains(&key.as_str())
            {
                bad(format!(
                    "{key} (NotAction, NotResource and NotPrincipal grant everything else)"
                ));
            }
        }
        let (Some(actions), Some(resources)) =
            (strings(s.get("Action")), strings(s.get("Resource")))
        else {
            bad("Action or Resource is not a string or a list of strings".into());
            continue;
        };
        if actions.is_empty() {
            bad("no Action".into());
        }
        for a in &actions {
            if let Some(why) = forbidden_action(a) {
                bad(format!("{a}: {why}"));
            }
        }
        let only_service = |service: &str| {
            actions
                .iter()
                .all(|a| a.split_once(':').is_some_and(|(s, _)| s == service))
        };
        match kind {
            PolicyKind::Identity => {
                if s.get("Principal").is_some() {
                    bad("a Principal in an identity policy".into());
                }
                if resources.is_empty() {
                    bad("no Resource".into());
                }
                for a in &actions {
                    for r in &resources {
                        if let Some(why) = identity_resource_problem(a, r) {
                            bad(format!("{a} on {r}: {why}"));
                        }
                    }
                }
            }
            PolicyKind::Trust => {
                if actions != ["sts:AssumeRole"] {
                    bad(format!(
                        "{actions:?} in a trust policy (only sts:AssumeRole)"
                    ));
                }
                if !resources.is_empty() {
                    bad(format!("Resource {resources:?} in a trust policy"));
                }
            }
            PolicyKind::Bucket => {
                if !only_service("s3") {
                    bad(format!("{actions:?} in a bucket policy (s3: only)"));
                }
                if resources.is_empty() {
                    bad("no Resource".into());
                }
                for r in &resources {
                    if let Some(why) = s3_resource_problem(r) {
                        bad(format!("{r}: {why}"));
                    }
                }
            }
            PolicyKind::Key => {
                if !only_service("kms") {
                    bad(format!("{actions:?} in a key policy (kms: only)"));
                }
                if resources != ["*"] {
                    bad(format!(
                        "Resource {resources:?} in a key policy (\"*\", this key)"
                    ));
                }
            }
        }
        if kind != PolicyKind::Identity {
            if let Some(why) = principal_problem(s.get("Principal")) {
                bad(why);
            }
        }
    }
    found
}

/// The specs the suite plans: every example, and every scenario the IAM proofs simulate
/// (`tests/iam/scenarios`; the CLI's `tests/bad-specs` are invalid on purpose and left out).
fn spec_corpus() -> Vec<(String, TransferSpec)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut corpus = Vec::new();
    for dir in ["examples", "tests/iam/scenarios"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{dir} has no spec");
        for path in files {
            let name = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&path).unwrap();
            let spec = TransferSpec::from_toml_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            corpus.push((name, spec));
        }
    }
    corpus
}

/// Each forbidden grant Ferry could make, planted in a policy of the kind it would be in, is
/// found; a Deny, which grants nothing, is not; and Ferry's own kinds of grant pass.
#[test]
fn the_grant_check_finds_each_forbidden_grant_and_ignores_denies() {
    let role = json!({"AWS": "arn:aws:iam::222222222222:role/ferry-x-batch"});
    let doc = |s: Value| json!({"Version": "2012-10-17", "Statement": [s]});
    let identity = |action: &str, resource: &str| {
        doc(json!({"Sid": "X", "Effect": "Allow", "Action": [action], "Resource": [resource]}))
    };
    let bucket = |action: &str, resource: &str| {
        doc(
            json!({"Sid": "X", "Effect": "Allow", "Principal": role, "Action": action, "Resource": resource}),
        )
    };
    let key = |action: &str| {
        doc(
            json!({"Sid": "X", "Effect": "Allow", "Principal": role, "Action": [action], "Resource": "*"}),
        )
    };
    let object = "arn:aws:s3:::src/*";
    let forbidden = [
        (PolicyKind::Identity, identity("s3:DeleteObject", object)),
        (
            PolicyKind::Identity,
            identity("s3:DeleteObjectVersion", object),
        ),
        (PolicyKind::Identity, identity("s3:PutObjectAcl", object)),
        (
            PolicyKind::Identity,
            identity("s3:PutBucketAcl", "arn:aws:s3:::src"),
        ),
        (
            PolicyKind::Identity,
            identity("s3:PutBucketPolicy", "arn:aws:s3:::src"),
        ),
        (
            PolicyKind::Identity,
            identity("s3:PutLifecycleConfiguration", "arn:aws:s3:::src"),
        ),
        (
            PolicyKind::Identity,
            identity("iam:PassRole", "arn:aws:iam::222222222222:role/r"),
        ),
        (PolicyKind::Identity, identity("*", object)),
        (PolicyKind::Identity, identity("s3:*", object)),
        (PolicyKind::Identity, identity("s3:Get*", object)),
        (PolicyKind::Identity, identity("s3:GetObject", "*")),
        (
            PolicyKind::Identity,
            identity("s3:GetObject", "arn:aws:s3:::*/*"),
        ),
        (
            PolicyKind::Identity,
            identity("s3:GetObject", "arn:aws:s3:::src/a*b/*"),
        ),
        (
            PolicyKind::Identity,
            identity("s3:GetObject", "arn:aws:s3:::src/${aws:username}/*"),
        ),
        (PolicyKind::Identity, identity("kms:Decrypt", "*")),
        (PolicyKind::Identity, identity("lambda:InvokeFunction", "*")),
        (PolicyKind::Bucket, bucket("s3:GetObject", "*")),
        (PolicyKind::Bucket, bucket("s3:DeleteObject", object)),
        (PolicyKind::Bucket, bucket("kms:Decrypt", object)),
        (PolicyKind::Key, key("kms:*")),
        (PolicyKind::Key, key("kms:ScheduleKeyDeletion")),
        (PolicyKind::Key, key("kms:PutKeyPolicy")),
        (PolicyKind::Key, key("kms:CreateGrant")),
        (
            PolicyKind::Bucket,
            doc(
                json!({"Sid": "X", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": object}),
            ),
        ),
        (
            PolicyKind::Bucket,
            doc(
                json!({"Sid": "X", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": object}),
            ),
        ),
        (
            PolicyKind::Trust,
            doc(
                json!({"Sid": "X", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}),
            ),
        ),
        (
            PolicyKind::Identity,
            doc(
                json!({"Sid": "X", "Effect": "Allow", "NotAction": "s3:GetObject", "Resource": object}),
            ),
        ),
        // Anything but Deny counts as a grant.
        (
            PolicyKind::Identity,
            doc(
                json!({"Sid": "X", "Effect": "allow", "Action": "s3:DeleteObject", "Resource": object}),
            ),
        ),
    ];
    for (kind, d) in &forbidden {
        assert!(!forbidden_grants(*kind, d).is_empty(), "not found: {d}");
    }
    let deny = doc(
        json!({"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
    );
    for kind in [PolicyKind::Identity, PolicyKind::Bucket, PolicyKind::Key] {
        assert_eq!(forbidden_grants(kind, &deny), Vec::<String>::new());
    }
    let fine = [
        (
            PolicyKind::Identity,
            identity("s3:GetObject", "arn:aws:s3:::src/odd-${*}${?}${$}/*"),
        ),
        (
            PolicyKind::Identity,
            identity(
                "kms:Decrypt",
                "arn:aws:kms:eu-west-1:111111111111:key/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011",
            ),
        ),
        (PolicyKind::Key, key("kms:Decrypt")),
        (
            PolicyKind::Bucket,
            bucket("s3:ListBucket", "arn:aws:s3:::src"),
        ),
    ];
    for (kind, d) in &fine {
        assert_eq!(forbidden_grants(*kind, d), Vec::<String>::new(), "{d}");
    }
}

/// Every example and IAM scenario: each policy of its plan (role, trust, bucket, key and
/// inventory-delivery policies, whoever they are for) grants nothing forbidden; and between
/// them they have every kind of policy a plan holds, so none goes unchecked.
#[test]
fn no_delete_acl_or_wildcard_action_is_ever_granted() {
    let mut places = std::collections::BTreeSet::new();
    let mut actions = std::collections::BTreeSet::new();
    for (name, spec) in spec_corpus() {
        let plan = Plan::build(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        let docs = policy_documents(&plan);
        assert!(docs.len() >= 2, "{name}: the role's two policies at least");
        for (path, kind, doc) in docs {
            assert_eq!(
                forbidden_grants(kind, &doc),
                Vec::<String>::new(),
                "{name}: {path}"
            );
            // The place without the bucket or key it is for.
            places.insert(path.splitn(4, '/').take(3).collect::<Vec<_>>().join("/"));
            for s in doc["Statement"].as_array().unwrap() {
                actions.extend(strings(s.get("Action")).unwrap());
            }
        }
    }
    // A destination-account bucket never needs a bucket policy (the role's own policy is
    // enough in its account), so `destination_account/bucket_policies` is always empty.
    let expected = [
        "/batch_role/permissions_policy",
        "/batch_role/trust_policy",
        "/destination_account/key_policies",
        "/inventory_runs/delivery_policy",
        "/source_account/bucket_policies",
        "/source_account/key_policies",
    ];
    assert_eq!(
        places.iter().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    for a in [
        "sts:AssumeRole",
        "lambda:InvokeFunction",
        "kms:GenerateDataKey",
        "s3:PutObject",
    ] {
        assert!(
            actions.contains(a),
            "no spec of the corpus grants {a}: {actions:?}"
        );
    }
}

/// One variation of a corpus spec: other name, same- or cross-account, KMS on any bucket,
/// versions, tags and metadata handling, odd characters in prefixes and the manifest key,
/// the large-object copier.
#[derive(Debug, Clone)]
struct Variation {
    seed: usize,
    name: String,
    same_account: bool,
    manifest_in_source: bool,
    keys: [Option<u8>; 4],
    versioned: bool,
    version_ids: bool,
    tags: u8,
    replace_metadata: bool,
    key_prefix: Option<String>,
    report_prefix: String,
    csv_key: String,
    copier: bool,
    keep_inventory: bool,
}

fn variation(seeds: usize) -> impl Strategy<Value = Variation> {
    // Characters that are wildcards or policy variables in IAM: Ferry must escape them.
    (
        (
            0..seeds,
            "[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4}){0,2}",
            any::<bool>(),
            any::<bool>(),
            prop::array::uniform4(prop::option::of(0u8..16)),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            0u8..3,
            any::<bool>(),
            prop::option::of("[a-z0-9][a-z0-9*?${}]{0,4}(/[a-z0-9*?${}]{1,4})?/"),
            "[a-z0-9][a-z0-9*?${}]{0,4}(/[a-z0-9*?${}]{1,4})?",
            "[a-z0-9*?${}]{1,5}/[a-z0-9*?${}]{1,5}\\.csv",
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (seed, name, same_account, manifest_in_source, keys, versioned, version_ids),
                (
                    tags,
                    replace_metadata,
                    key_prefix,
                    report_prefix,
                    csv_key,
                    copier,
                    keep_inventory,
                ),
            )| Variation {
                seed,
                name,
                same_account,
                manifest_in_source,
                keys,
                versioned,
                version_ids,
                tags,
                replace_metadata,
                key_prefix,
                report_prefix,
                csv_key,
                copier,
                keep_inventory,
            },
        )
}

fn vary(seed: &TransferSpec, v: &Variation) -> TransferSpec {
    use ferry_plan::spec::{ManifestKind, MetadataHandling, NewMetadataSpec, TagHandling};
    let mut s = seed.clone();
    s.name = v.name.clone();
    s.job.role_name = None;
    let destination = s.destination.account_id.clone();
    if v.same_account {
        s.source.account_id = destination.clone();
    }
    s.manifest.account_id = if v.manifest_in_source {
        s.source.account_id.clone()
    } else {
        destination.clone()
    };
    s.report.account_id = destination.clone();
    let key = |region: &str, account: &str, digit: u8| {
        format!("arn:aws:kms:{region}:{account}:key/{digit:x}a1a1a1a-1111-4222-8333-44445555666{digit:x}")
    };
    let places = [
        (s.source.region.clone(), s.source.account_id.clone()),
        (s.destination.region.clone(), destination.clone()),
        (
            s.manifest_region().to_string(),
            s.manifest.account_id.clone(),
        ),
        (s.report_region().to_string(), destination.clone()),
    ];
    let [source_key, destination_key, manifest_key, report_key] =
        std::array::from_fn(|i| v.keys[i].map(|d| key(&places[i].0, &places[i].1, d)));
    s.source.kms_key_arn = source_key;
    s.destination.bucket_key_enabled &= destination_key.is_some();
    s.destination.kms_key_arn = destination_key;
    s.report.kms_key_arn = report_key;
    s.source.versioned = v.versioned;
    match s.manifest.kind {
        ManifestKind::Csv => {
            s.manifest.kms_key_arn = None;
            s.manifest.key = v.csv_key.clone();
            s.manifest.version_ids = v.version_ids && v.versioned;
        }
        ManifestKind::Inventory => s.manifest.kms_key_arn = manifest_key,
    }
    (s.destination.tags, s.destination.new_tags) = match v.tags {
        0 => (TagHandling::Copy, None),
        1 => (TagHandling::Remove, None),
        _ => (
            TagHandling::Replace,
            Some([("project".to_string(), "ferry".to_string())].into()),
        ),
    };
    (s.destination.metadata, s.destination.new_metadata) = if v.replace_metadata {
        let metadata = NewMetadataSpec {
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        (MetadataHandling::Replace, Some(metadata))
    } else {
        (MetadataHandling::Copy, None)
    };
    s.destination.key_prefix = v.key_prefix.clone();
    s.report.prefix = v.report_prefix.clone();
    (
        s.job.large_object_copier_arn,
        s.job.large_object_copier_role_arn,
    ) = if v.copier {
        (
            Some(format!(
                "arn:aws:lambda:{}:{destination}:function:ferry-{}-large-object-copier",
                s.destination.region, v.name
            )),
            Some(format!(
                "arn:aws:iam::{destination}:role/ferry-{}-copier",
                v.name
            )),
        )
    } else {
        (None, None)
    };
    if !v.keep_inventory {
        s.inventory = None;
        s.filter = None;
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The same for variations of every corpus spec that Ferry accepts (invalid variations
    /// are discarded; proptest fails if too many are).
    #[test]
    fn no_forbidden_grant_in_any_policy_of_generated_specs(v in variation(spec_corpus().len())) {
        let (name, seed) = &spec_corpus()[v.seed];
        let spec = vary(seed, &v);
        let plan = Plan::build(&spec);
        prop_assume!(plan.is_ok());
        for (path, kind, doc) in policy_documents(&plan.unwrap()) {
            let found = forbidden_grants(kind, &doc);
            prop_assert!(found.is_empty(), "{} varied {:?}: {}: {:?}", name, v, path, found);
        }
    }
}
