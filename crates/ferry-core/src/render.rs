//! The plan as instructions a person follows once, in order, account by account: every
//! document filled in, every command ready to paste. Markdown, so it reads well in a terminal
//! and in the instructions e-mail alike.

use std::fmt::Write;

use crate::job::{ETAG_PLACEHOLDER, TOKEN_PLACEHOLDER};
use crate::plan::{Plan, TransferKind};
use crate::policy::resource::AccountPolicies;
use crate::policy::PolicyDocument;
use crate::spec::TransferSpec;

/// Merges Ferry's statements (second file) into an existing policy (first file) by `Sid`:
/// statements with other Sids are kept as they are; Ferry's are added or replaced.
pub const JQ_MERGE_BY_SID: &str = r#"jq -s '.[1].Statement as $new | ($new | map(.Sid)) as $ours | .[0] | .Statement = ([.Statement | if type == "array" then .[] else . end | select(.Sid | IN($ours[]) | not)] + $new)'"#;

const EMPTY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

pub fn render_text(plan: &Plan, spec: &TransferSpec) -> String {
    let mut out = String::new();
    let t = &plan.transfer;
    let name = &t.name;
    let role = &plan.batch_role;
    let region = &t.job_region;
    let dst_account = &spec.destination.account_id;

    let _ = writeln!(out, "# Ferry plan: {name}\n");
    let kind = match t.kind {
        TransferKind::CrossAccount => "cross-account copy",
        TransferKind::SameAccount => "same-account copy",
        TransferKind::InPlace => "in-place copy (objects are copied onto themselves)",
    };
    let _ = writeln!(
        out,
        "- Transfer: {kind}, plan fingerprint {}",
        t.fingerprint
    );
    let _ = writeln!(
        out,
        "- From: {} (account {}, {}, {})",
        t.source,
        spec.source.account_id,
        spec.source.region,
        encryption(spec.source.kms_key_arn.as_deref(), false)
    );
    let _ = writeln!(
        out,
        "- To: {} (account {}, {}, {})",
        t.destination,
        dst_account,
        spec.destination.region,
        encryption(
            spec.destination.kms_key_arn.as_deref(),
            spec.destination.bucket_key_enabled
        )
    );
    let _ = writeln!(
        out,
        "- Job: runs in {region} as {}, {}",
        role.arn,
        if spec.job.confirmation_required {
            "waits for your confirmation before copying"
        } else {
            "starts copying as soon as it is ready"
        }
    );
    let _ = writeln!(
        out,
        "- Completion report: s3://{}/{}/job-<JobId>/",
        spec.report.bucket, spec.report.prefix
    );

    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\n## Warnings\n");
        for w in &plan.warnings {
            let _ = writeln!(out, "- {w}");
        }
    }

    let mut step = 0;
    let mut next_step = |out: &mut String, title: String| {
        step += 1;
        let _ = writeln!(out, "\n## Step {step}: {title}\n");
    };

    next_step(
        &mut out,
        format!("create the Batch Operations role (destination account {dst_account})"),
    );
    let _ = writeln!(
        out,
        "The role may be assumed only by Batch Operations jobs of account {dst_account} in {region}, and may do \
         only what this copy needs."
    );
    let trust_file = format!("ferry-{name}-trust-policy.json");
    let permissions_file = format!("ferry-{name}-permissions-policy.json");
    out.push_str("\n```sh\n");
    heredoc(&mut out, &trust_file, &role.trust_policy);
    heredoc(&mut out, &permissions_file, &role.permissions_policy);
    let _ = writeln!(
        out,
        "aws iam create-role --role-name {} --assume-role-policy-document file://{trust_file}",
        role.name
    );
    let _ = writeln!(
        out,
        "aws iam put-role-policy --role-name {} --policy-name ferry-{name} --policy-document file://{permissions_file}",
        role.name
    );
    out.push_str("```\n");

    let source_is_other_account =
        plan.source_account.account_id != plan.destination_account.account_id;
    for (section, label) in [
        (&plan.destination_account, "destination"),
        (&plan.source_account, "source"),
    ] {
        if section.is_empty() || (label == "source" && !source_is_other_account) {
            continue;
        }
        next_step(
            &mut out,
            format!(
                "add Ferry's statements to resource policies ({label} account {})",
                section.account_id
            ),
        );
        render_account_policies(&mut out, name, section, label == "destination");
    }

    next_step(
        &mut out,
        format!("create the job (destination account {dst_account}, {region})"),
    );
    let job_file = format!("ferry-{name}-create-job.json");
    let ready_file = format!("ferry-{name}-create-job.ready.json");
    let _ = writeln!(
        out,
        "CreateJob needs the manifest's current ETag, and a client request token derived from it so a repeated \
         launch never makes a second job. Reading the ETag needs credentials that can read s3://{}/{} (account {}). \
         Creating the job needs s3:CreateJob, s3:PutJobTagging and iam:PassRole on {}.",
        spec.manifest.bucket, spec.manifest.key, spec.manifest.account_id, role.arn
    );
    out.push_str("\n```sh\n");
    let _ = writeln!(
        out,
        "ETAG=$(aws s3api head-object --bucket {} --key '{}' --query ETag --output text | tr -d '\"')",
        spec.manifest.bucket,
        shell_single_quoted(&spec.manifest.key)
    );
    let _ = writeln!(
        out,
        "TOKEN=$(printf '%s:%s' {} \"$ETAG\" | sha256sum | cut -c1-64)",
        t.fingerprint
    );
    let job_json = serde_json::to_string_pretty(&plan.create_job).unwrap_or_default();
    let _ = writeln!(out, "cat > {job_file} <<'EOF'\n{job_json}\nEOF");
    let _ = writeln!(
        out,
        "sed -e \"s/{ETAG_PLACEHOLDER}/$ETAG/\" -e \"s/{TOKEN_PLACEHOLDER}/$TOKEN/\" {job_file} > {ready_file}"
    );
    let _ = writeln!(
        out,
        "aws s3control create-job --region {region} --cli-input-json file://{ready_file}"
    );
    out.push_str("```\n");

    if spec.job.confirmation_required {
        next_step(&mut out, "check the job, then confirm it".to_string());
        let _ = writeln!(
            out,
            "The job reads the manifest and waits in Suspended. Check the object count, then let it run:"
        );
        out.push_str("\n```sh\n");
        let _ = writeln!(
            out,
            "aws s3control describe-job --region {region} --account-id {dst_account} --job-id <JobId>"
        );
        let _ = writeln!(
            out,
            "aws s3control update-job-status --region {region} --account-id {dst_account} --job-id <JobId> --requested-job-status Ready"
        );
        out.push_str("```\n");
    }

    let _ = writeln!(out, "\n## Cost estimate\n");
    let c = &plan.cost_estimate;
    let _ = writeln!(out, "| item | unit price (USD) | quantity | cost (USD) |");
    let _ = writeln!(out, "|---|---|---|---|");
    for i in &c.line_items {
        let _ = writeln!(
            out,
            "| {} | {} per {} | {} | {} |",
            i.item,
            i.unit_price_usd,
            i.unit,
            i.quantity.map_or("?".to_string(), |q| format!("{q:.3}")),
            i.cost_usd.map_or("?".to_string(), |c| format!("{c:.2}"))
        );
    }
    let _ = writeln!(
        out,
        "\nTotal: {:.2} USD; {:.2} USD per million objects.",
        c.total_usd, c.per_million_objects_usd
    );
    for a in &c.assumptions {
        let _ = writeln!(out, "- {a}");
    }

    let _ = writeln!(out, "\n## Notes\n");
    let _ = writeln!(
        out,
        "- Batch Operations Copy handles objects up to 5 GB; larger ones fail as tasks and are listed in the \
         completion report."
    );
    let _ = writeln!(
        out,
        "- Objects in S3 Glacier Flexible Retrieval or Deep Archive must be restored first; SSE-C objects can't be copied."
    );
    let _ = writeln!(
        out,
        "- Clean-up: when the copy is done, remove the statements whose Sid starts with {} and delete the role.",
        crate::policy::sid(name, "")
    );
    out
}

fn render_account_policies(
    out: &mut String,
    name: &str,
    section: &AccountPolicies,
    own_account: bool,
) {
    let _ = writeln!(
        out,
        "A put replaces the whole policy, so each command below reads the current policy, adds Ferry's statements \
         by Sid (keeping every other statement as it is) and writes the result back. Needs jq."
    );
    if own_account && !section.key_policies.is_empty() {
        let _ = writeln!(
            out,
            "\nThe key statements name the role directly; they are not needed if the key policy already lets IAM \
             policies of this account grant use of the key (the default key policy does), but they do no harm."
        );
    }
    out.push_str("\n```sh\n");
    for (bucket, doc) in &section.bucket_policies {
        let file = format!("ferry-{name}-bucket-{bucket}.json");
        heredoc(out, &file, doc);
        let _ = writeln!(
            out,
            "aws s3api get-bucket-policy --bucket {bucket} --query Policy --output text > {bucket}.current.json \\\n  || echo '{EMPTY_POLICY}' > {bucket}.current.json"
        );
        let _ = writeln!(
            out,
            "{JQ_MERGE_BY_SID} {bucket}.current.json {file} > {bucket}.merged.json"
        );
        let _ = writeln!(
            out,
            "aws s3api put-bucket-policy --bucket {bucket} --policy file://{bucket}.merged.json"
        );
    }
    for (key_arn, doc) in &section.key_policies {
        let key_id = key_arn.rsplit('/').next().unwrap_or(key_arn);
        let region = key_arn.split(':').nth(3).unwrap_or_default();
        let file = format!("ferry-{name}-key-{key_id}.json");
        heredoc(out, &file, doc);
        let _ = writeln!(
            out,
            "aws kms get-key-policy --region {region} --key-id {key_arn} --policy-name default --query Policy --output text > {key_id}.current.json"
        );
        let _ = writeln!(
            out,
            "{JQ_MERGE_BY_SID} {key_id}.current.json {file} > {key_id}.merged.json"
        );
        let _ = writeln!(
            out,
            "aws kms put-key-policy --region {region} --key-id {key_arn} --policy-name default --policy file://{key_id}.merged.json"
        );
    }
    out.push_str("```\n");
}

fn heredoc(out: &mut String, file: &str, doc: &PolicyDocument) {
    let _ = writeln!(out, "cat > {file} <<'EOF'\n{}\nEOF", doc.to_pretty_json());
}

fn encryption(key: Option<&str>, bucket_key: bool) -> String {
    match (key, bucket_key) {
        (Some(k), true) => format!("SSE-KMS with {k} and an S3 Bucket Key"),
        (Some(k), false) => format!("SSE-KMS with {k}"),
        (None, _) => "SSE-S3".to_string(),
    }
}

/// Escapes a value for use inside single quotes in sh.
fn shell_single_quoted(s: &str) -> String {
    s.replace('\'', r"'\''")
}
