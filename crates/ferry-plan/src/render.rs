//! The plan as instructions a person follows once, in order, account by account: every
//! document filled in, every command ready to paste. Markdown, so it reads well in a terminal
//! and in the instructions e-mail alike.

use std::fmt::Write;

use crate::approval::{ApprovalToken, ManifestPin};
use crate::job::{ETAG_PLACEHOLDER, TOKEN_PLACEHOLDER};
use crate::plan::{Plan, TransferKind};
use crate::policy::resource::AccountPolicies;
use crate::policy::PolicyDocument;
use crate::spec::TransferSpec;
use crate::stack::ApprovalMode;
use crate::untrusted::untrusted;

/// Merges Ferry's statements (second file) into an existing policy (first file) by `Sid`:
/// statements with other Sids are kept as they are; Ferry's are added or replaced. A statement
/// under one of Ferry's Sids that is not an Allow for the same principal (a Deny someone put
/// there, another transfer's or the owner's Allow), or a Sid that differs from one of Ferry's
/// only in letter case, is not Ferry's: jq stops with an error and nothing is written, as
/// `ferry grant` refuses it (#16 review).
pub const JQ_MERGE_BY_SID: &str = r#"jq -s '(.[1].Statement // []) as $new | ($new | map(.Sid)) as $ours | ($new | map({key: .Sid, value: .Principal}) | from_entries) as $principal | ($ours | map(ascii_downcase)) as $lower | .[0] | [(.Statement // []) | if type == "array" then .[] else . end] as $old | [$old[] | (.Sid // "") as $sid | select(($sid | IN($ours[])) and (.Effect != "Allow" or .Principal != $principal[$sid])) | $sid] as $foreign | [$old[] | (.Sid // "") as $sid | select(($sid | IN($ours[]) | not) and ($sid | ascii_downcase | IN($lower[]))) | $sid] as $twins | if ($foreign + $twins | length) > 0 then error("Sid " + (($foreign + $twins)[0]) + " is taken by a statement that is not the Allow this plan writes for the same role (or differs from one of its Sids only in letter case): nothing is written; look at it first, as ferry grant would") else .Statement = ([$old[] | select((.Sid // "") | IN($ours[]) | not)] + $new) end'"#;

const EMPTY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

/// The `ferry:role` tag of a role the text plan created: a role of the same name without it is
/// someone else's, and the plan never changes it.
const ROLE_TAG_VALUE: &str = "batch-operations";

/// Opens a shell block. Its commands run in a subshell under `set -euo pipefail`: the block
/// stops at its first failed command (so a failed read is never followed by a write), and
/// pasting it into a terminal neither changes that shell's options nor exits it.
const SH_OPEN: &str = "```bash\n(\nset -euo pipefail\n";
/// Closes a block opened with [`SH_OPEN`].
const SH_CLOSE: &str = ")\n```\n";

/// The CLI's plan: every step done by hand.
pub fn render_text(plan: &Plan, spec: &TransferSpec) -> String {
    let mut r = Renderer::new(plan, spec);
    r.header();
    r.warnings();
    r.role_step(RoleStep::CreateByHand);
    r.resource_policy_steps();
    r.inventory_runs_step();
    r.create_job_step();
    r.confirm_step("<JobId>");
    r.cost_and_notes();
    r.out
}

/// How the e-mails tell a person to approve or reject. The token itself is not here: it goes
/// only in the approval-token e-mail ([`render_token_email`]), never in the instructions, which
/// are meant to be forwarded to the source account's administrators (#15).
#[derive(Debug, Clone)]
pub struct ApprovalInstructions<'a> {
    pub topic_arn: &'a str,
    pub mode: ApprovalMode,
    /// Unix seconds when the stack stops waiting (wait mode).
    pub wait_deadline: Option<u64>,
    /// The manifest the token approves (#15 item 13), as it was when the e-mails were sent.
    pub manifest: ManifestAsSent<'a>,
}

/// What the stack found at the plan's manifest when it sent the approval e-mails.
#[derive(Debug, Clone, Copy)]
pub enum ManifestAsSent<'a> {
    /// Read: the token approves only these bytes.
    Pinned(&'a ManifestPin),
    /// Not readable (the error): the token approves nothing until `resend` pins the manifest.
    Unreadable(&'a str),
}

/// The paragraph both approval e-mails carry about the manifest: which bytes the approval is
/// for, and how to check them; or, when it could not be read, that `resend` is needed. S3's
/// answers (ETag, version id, error text) pass through [`untrusted`].
fn manifest_paragraph(out: &mut String, plan: &Plan, manifest: &ManifestAsSent<'_>) {
    let m = &plan.transfer.manifest;
    let (bucket, key, region) = (&m.bucket, &m.key, &m.region);
    let uri = format!("s3://{bucket}/{}", untrusted(key));
    match manifest {
        ManifestAsSent::Pinned(pin) => {
            let etag = untrusted(&pin.etag);
            let mut facts = vec![format!("ETag \"{etag}\"")];
            if let Some(v) = &pin.version_id {
                facts.push(format!("version id {}", untrusted(v)));
            }
            if let Some(size) = pin.size {
                facts.push(format!("{size} bytes"));
            }
            if let Some(t) = &pin.last_modified {
                facts.push(format!("last modified {}", untrusted(t)));
            }
            // An [inventory] transfer's first copy is an inventory run, not a job on this object.
            let launched_on = match (plan.inventory_runs.is_some(), pin.version_id.is_some()) {
                (true, _) => "",
                (false, true) => "the job is launched on this ETag and version, and ",
                (false, false) => "the job is launched on this ETag, and ",
            };
            let _ = write!(
                out,
                "\nThe manifest this approval is for: {uri}, {} (as the stack read it when this e-mail was \
                 sent). Approving approves exactly these bytes: {launched_on}an approval is refused if the \
                 manifest has changed by then. Before approving, check that the manifest lists what should \
                 be copied and still has this ETag:\n\n{SH_OPEN}",
                facts.join(", ")
            );
            // The object as it is now: the approval compares its ETag with this one. Its first
            // 4 KiB (a ranged GET) rather than `aws s3 cp … - | head`: `head` closing the pipe
            // makes the CLI fail with a broken pipe under pipefail, and the whole object may be
            // gigabytes.
            // The rows are someone's bytes: control characters become `?` before they reach the
            // approver's terminal (escape sequences could hide rows). A 0-byte object has no
            // range to read (S3 answers 416 InvalidRange).
            let _ = writeln!(
                out,
                "aws s3api head-object --region {region} --bucket {bucket} --key '{}' --query '[ETag,VersionId]'",
                shell_single_quoted(&untrusted(key)),
            );
            if pin.size != Some(0) {
                let _ = writeln!(
                    out,
                    "aws s3api get-object --region {region} --bucket {bucket} --key '{}' --range bytes=0-4095 manifest-start.txt > /dev/null\n\
                     LC_ALL=C tr -c '[:print:]\\n' '?' < manifest-start.txt | head",
                    shell_single_quoted(&untrusted(key)),
                );
            }
            out.push_str(SH_CLOSE);
        }
        ManifestAsSent::Unreadable(cause) => {
            let _ = writeln!(
                out,
                "\nThe manifest {uri} could not be read when this e-mail was sent ({}). So there is nothing \
                 for an approval to be held to, and this e-mail's token approves nothing. Once the manifest \
                 is in place, publish {{\"action\":\"resend\"}} to the approval topic: the new e-mails name the \
                 manifest's ETag, and their token approves exactly that manifest.",
                untrusted(cause)
            );
        }
    }
}

/// Subject of the approval-token e-mail, which the instructions e-mail names.
pub fn token_email_subject(transfer_name: &str) -> String {
    ascii_subject(&format!(
        "Ferry {transfer_name}: approval token (keep private, do not forward)"
    ))
}

/// SNS e-mail subjects: ASCII without control characters, under 100 characters.
fn ascii_subject(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(99)
        .collect()
}

/// What stands for the token in the instructions e-mail's commands.
pub const TOKEN_IN_OTHER_EMAIL: &str = "<token from the approval-token e-mail>";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionsEmail {
    /// ASCII, under 100 characters (SNS's limits for e-mail subjects).
    pub subject: String,
    pub body: String,
}

/// The stack's instructions e-mail: the role already exists, so it leads with what the source
/// account must apply, then how to approve; the role's documents follow for reference.
pub fn render_instructions_email(
    plan: &Plan,
    spec: &TransferSpec,
    approval: &ApprovalInstructions<'_>,
) -> InstructionsEmail {
    let mut r = Renderer::new(plan, spec);
    r.spec_file = format!("ferry-{}.toml", plan.transfer.name);
    r.spec_in_email = true;
    r.header();
    r.warnings();
    r.resource_policy_steps();
    r.inventory_runs_step();
    r.approval_step(approval);
    r.role_step(RoleStep::CreatedByStack);
    r.confirm_step("<JobId from the job-started message>");
    r.cost_and_notes();
    r.spec_appendix();
    let subject = ascii_subject(&format!(
        "Ferry {}: approve copying s3://{} to s3://{}",
        plan.transfer.name, spec.source.bucket, spec.destination.bucket
    ));
    InstructionsEmail {
        subject,
        body: r.out,
    }
}

/// The approval-token e-mail: the one-time token in the approve and reject commands, and
/// nothing else to forward. Sent apart from the instructions (#15): those go to the source
/// account's administrators, and whoever holds the token can approve (if the approval topic
/// lets them publish) or burn it with a rejection.
pub fn render_token_email(
    plan: &Plan,
    approval: &ApprovalInstructions<'_>,
    token: &ApprovalToken,
) -> InstructionsEmail {
    let t = &plan.transfer;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Ferry {}: approval token\n\n\
         The one-time approval token for transfer {} (plan {}): {} to {}. Keep this e-mail to \
         yourself: do not forward it. The instructions for the source account came in a separate \
         e-mail (\"Ferry {}: approve copying ...\"), which holds no token and is the one to forward.",
        t.name, t.name, t.fingerprint, t.source, t.destination, t.name
    );
    let _ = writeln!(
        out,
        "\nThe approval topic takes messages only from the principals the stack's ApproverArns \
         parameter names (and the account's root user); run the command with the credentials of \
         one of them, in the destination account, once the source account's statements are in place."
    );
    manifest_paragraph(&mut out, plan, &approval.manifest);
    approval_commands(&mut out, &t.job_region, approval, token.expose());
    let _ = writeln!(
        out,
        "\nThe token works once, for {} days. Publishing {{\"action\":\"resend\"}} to the same topic \
         (at most once per quarter hour) e-mails a new one and retires this one.",
        crate::approval::APPROVAL_TOKEN_TTL_SECONDS / 86_400
    );
    InstructionsEmail {
        subject: token_email_subject(&t.name),
        body: out,
    }
}

/// The approve and reject commands with `token` (the token, or a placeholder), and what
/// happens next.
fn approval_commands(
    out: &mut String,
    region: &str,
    approval: &ApprovalInstructions<'_>,
    token: &str,
) {
    let _ = write!(out, "\n{SH_OPEN}");
    let _ = writeln!(
        out,
        "aws sns publish --region {region} --topic-arn {} --message '{{\"action\":\"approve\",\"token\":\"{token}\"}}'",
        approval.topic_arn
    );
    let _ = write!(out, "{SH_CLOSE}\nTo reject instead:\n\n{SH_OPEN}");
    let _ = writeln!(
        out,
        "aws sns publish --region {region} --topic-arn {} --message '{{\"action\":\"reject\",\"token\":\"{token}\",\"reason\":\"<why>\"}}'",
        approval.topic_arn
    );
    let _ = writeln!(out, "{SH_CLOSE}");
    match (approval.mode, approval.wait_deadline) {
        (ApprovalMode::Wait, Some(deadline)) => {
            let _ = writeln!(
                out,
                "The stack waits for this approval until about {}. If none comes by then, the stack completes \
                 without starting the job, and the approve command still starts it later. A rejection \
                 rolls the stack back.",
                utc_timestamp(deadline)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "The stack has completed; the job starts when you approve."
            );
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RoleStep {
    CreateByHand,
    CreatedByStack,
}

struct Renderer<'a> {
    plan: &'a Plan,
    spec: &'a TransferSpec,
    out: String,
    step: u32,
    /// How the text names the spec file in `ferry grant` commands.
    spec_file: String,
    spec_in_email: bool,
}

impl<'a> Renderer<'a> {
    fn new(plan: &'a Plan, spec: &'a TransferSpec) -> Self {
        Self {
            plan,
            spec,
            out: String::new(),
            step: 0,
            spec_file: "SPEC.toml".to_string(),
            spec_in_email: false,
        }
    }

    fn next_step(&mut self, title: String) {
        self.step += 1;
        let _ = writeln!(self.out, "\n## Step {}: {title}\n", self.step);
    }

    fn header(&mut self) {
        let (plan, spec, out) = (self.plan, self.spec, &mut self.out);
        let t = &plan.transfer;
        let role = &plan.batch_role;
        let region = &t.job_region;
        let dst_account = &spec.destination.account_id;
        let _ = writeln!(out, "# Ferry plan: {}\n", t.name);
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
    }

    fn warnings(&mut self) {
        if self.plan.warnings.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "\n## Warnings\n");
        for w in &self.plan.warnings {
            let _ = writeln!(self.out, "- {w}");
        }
    }

    fn role_step(&mut self, how: RoleStep) {
        let dst_account = &self.spec.destination.account_id;
        let region = &self.plan.transfer.job_region;
        let name = &self.plan.transfer.name;
        let role = &self.plan.batch_role;
        match how {
            RoleStep::CreateByHand => self.next_step(format!(
                "create the Batch Operations role (destination account {dst_account})"
            )),
            RoleStep::CreatedByStack => self.next_step(format!(
                "for reference: the Batch Operations role the stack created (destination account {dst_account})"
            )),
        }
        let out = &mut self.out;
        // AWS documents the trust policy without conditions (S3 User Guide, "Granting permissions
        // for Batch Operations"); what stops anyone else's job from using the role is iam:PassRole.
        let _ = writeln!(
            out,
            "The role may do only what this copy needs. Its trust policy is the one AWS documents for Batch \
             Operations (the service may assume it, with no conditions: AWS does not document that Batch Operations \
             sends aws:SourceAccount or aws:SourceArn). What keeps other jobs from using it is iam:PassRole: a job \
             of account {dst_account}, in any Region, can run as this role only if its creator may pass it. Grant \
             iam:PassRole on it only to those who launch this transfer's jobs (the stack's functions, or the \
             people running them by hand; jobs of this plan run in {region}); a policy allowing iam:PassRole on \
             \"*\" includes it, so an SCP or permissions boundary denying iam:PassRole on this role to everyone \
             else closes that door."
        );
        if how == RoleStep::CreateByHand {
            let _ = writeln!(
                out,
                "\nRun again after a change, the block updates the role it created (tagged ferry:role={ROLE_TAG_VALUE}) \
                 and stops at a role of the same name that it did not create. It needs iam:GetRole, iam:CreateRole, \
                 iam:TagRole, iam:UpdateAssumeRolePolicy and iam:PutRolePolicy on the role."
            );
        }
        let trust_file = format!("ferry-{name}-trust-policy.json");
        let permissions_file = format!("ferry-{name}-permissions-policy.json");
        out.push('\n');
        out.push_str(SH_OPEN);
        heredoc(out, &trust_file, &role.trust_policy);
        heredoc(out, &permissions_file, &role.permissions_policy);
        if how == RoleStep::CreateByHand {
            // Run again after a spec change, the block updates the role it made: CreateRole on
            // an existing role fails with EntityAlreadyExists (IAM API Reference, CreateRole), so
            // the role is looked up first; only NoSuchEntity (GetRole) means "create it", any
            // other failure stops the block. A role of that name that this block did not create
            // (no `ferry:role` tag) is someone else's: it is never taken over.
            let r = &role.name;
            let _ = writeln!(
                out,
                "if aws iam get-role --role-name '{r}' --query \"Role.Tags[?Key=='ferry:role'].Value | [0]\" --output text > '{r}.tag.txt' 2> '{r}.get-error.txt'; then\n  \
                 [ \"$(cat '{r}.tag.txt')\" = {ROLE_TAG_VALUE} ] || {{ echo \"the role {r} exists and was not made by Ferry (no ferry:role={ROLE_TAG_VALUE} tag): nothing was changed; set job.role_name to another name\" >&2; exit 1; }}\n  \
                 aws iam update-assume-role-policy --role-name '{r}' --policy-document file://{trust_file}\n\
                 else\n  \
                 grep -qF 'NoSuchEntity' '{r}.get-error.txt' || {{ cat '{r}.get-error.txt' >&2; exit 1; }}\n  \
                 aws iam create-role --role-name '{r}' --assume-role-policy-document file://{trust_file} --tags Key=ferry:role,Value={ROLE_TAG_VALUE}\n\
                 fi"
            );
            let _ = writeln!(
                out,
                "aws iam put-role-policy --role-name '{}' --policy-name {} --policy-document file://{permissions_file}",
                role.name, role.policy_name
            );
        }
        out.push_str(SH_CLOSE);
    }

    fn resource_policy_steps(&mut self) {
        let plan = self.plan;
        let source_is_other_account =
            plan.source_account.account_id != plan.destination_account.account_id;
        for (section, label) in [
            (&plan.destination_account, "destination"),
            (&plan.source_account, "source"),
        ] {
            if section.is_empty() || (label == "source" && !source_is_other_account) {
                continue;
            }
            self.next_step(format!(
                "add Ferry's statements to resource policies ({label} account {})",
                section.account_id
            ));
            let _ = writeln!(
                self.out,
                "The one-command way, with this account's credentials and the spec{}: \
                 `ferry grant {} --side {label}` shows the change as a diff and writes it with `--apply` \
                 (`ferry revoke` takes it out again). By hand:\n",
                if self.spec_in_email { " from the end of this e-mail" } else { "" },
                self.spec_file
            );
            render_account_policies(
                &mut self.out,
                &plan.transfer.name,
                section,
                label == "destination",
            );
        }
    }

    /// `[inventory]`: the inventory delivery (destination account) and configuration (source
    /// account) event-driven runs need, and what each run does.
    fn inventory_runs_step(&mut self) {
        let Some(runs) = &self.plan.inventory_runs else {
            return;
        };
        let spec = self.spec;
        let name = &self.plan.transfer.name;
        self.next_step(format!(
            "deliver the S3 Inventory to {} and let each new one run by itself",
            runs.watches
        ));
        let out = &mut self.out;
        let _ = writeln!(out, "Each new inventory is an event-driven run:\n");
        for step in &runs.steps {
            let _ = writeln!(out, "- {step}");
        }
        let _ = writeln!(
            out,
            "\nIn the destination account {}, let S3 deliver the reports from s3://{} into the inventory bucket.",
            spec.manifest.account_id, spec.source.bucket
        );
        let mut delivery = AccountPolicies {
            account_id: spec.manifest.account_id.clone(),
            bucket_policies: Default::default(),
            key_policies: Default::default(),
        };
        delivery
            .bucket_policies
            .insert(spec.manifest.bucket.clone(), runs.delivery_policy.clone());
        render_account_policies(out, &format!("{name}-inventory"), &delivery, true);
        let config_file = format!("ferry-{name}-inventory-configuration.json");
        let id = &runs.inventory_configuration.id;
        let _ = write!(
            out,
            "\nIn the source account {}, the inventory configuration (it replaces one with the same id; the \
             first report can take up to 48 hours):\n\n{SH_OPEN}cat > {config_file} <<'EOF'\n{}\nEOF\n\
             aws s3api put-bucket-inventory-configuration --bucket {} --id {id} \\\n  \
             --inventory-configuration file://{config_file}\n{SH_CLOSE}",
            spec.source.account_id,
            serde_json::to_string_pretty(&runs.inventory_configuration).unwrap_or_default(),
            spec.source.bucket,
        );
    }

    fn create_job_step(&mut self) {
        let (plan, spec) = (self.plan, self.spec);
        let t = &plan.transfer;
        let name = &t.name;
        let region = &t.job_region;
        let role = &plan.batch_role;
        if spec.inventory.is_some() {
            // The first copy is a run (workflow::start_first_copy): a hand-made CreateJob on
            // manifest.json would copy what [filter] leaves out and give later runs no delta base.
            self.next_step(format!(
                "start the first copy (destination account {}, {region})",
                spec.destination.account_id
            ));
            let _ = writeln!(
                self.out,
                "With [inventory], the first copy is an inventory run like every later one: deploy the stack \
                 (InventoryRuns = true) and approve. The approval starts a run of s3://{}/{} in the stack's \
                 inventory-handler, which applies [filter], launches the job as {} and makes this inventory the \
                 base of the next one's delta. Don't create a job on that manifest.json by hand: it would copy \
                 every object the inventory lists.",
                spec.manifest.bucket, spec.manifest.key, role.arn
            );
            return;
        }
        self.next_step(format!(
            "create the job (destination account {}, {region})",
            spec.destination.account_id
        ));
        let out = &mut self.out;
        let job_file = format!("ferry-{name}-create-job.json");
        let ready_file = format!("ferry-{name}-create-job.ready.json");
        let _ = writeln!(
            out,
            "CreateJob needs the manifest's current ETag, and a client request token derived from it so a repeated \
             launch never makes a second job. Reading the ETag needs credentials that can read s3://{}/{} (account {}). \
             Creating the job needs s3:CreateJob, s3:PutJobTagging and iam:PassRole on {}.",
            spec.manifest.bucket, spec.manifest.key, spec.manifest.account_id, role.arn
        );
        out.push('\n');
        out.push_str(SH_OPEN);
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
        out.push_str(SH_CLOSE);
    }

    fn approval_step(&mut self, approval: &ApprovalInstructions<'_>) {
        let region = self.plan.transfer.job_region.clone();
        let name = self.plan.transfer.name.clone();
        self.next_step("approve (or reject) the copy".to_string());
        let out = &mut self.out;
        let _ = writeln!(
            out,
            "When the statements above are in place, an approver (a principal the stack's ApproverArns \
             parameter names) approves with the command below, with destination account credentials. The \
             one-time token is not in this e-mail, so it can be forwarded as it is: it comes in a separate \
             e-mail, \"{}\", with the commands ready to paste.",
            token_email_subject(&name)
        );
        manifest_paragraph(out, self.plan, &approval.manifest);
        approval_commands(out, &region, approval, TOKEN_IN_OTHER_EMAIL);
    }

    fn confirm_step(&mut self, job_id: &str) {
        if !self.spec.job.confirmation_required {
            return;
        }
        let region = self.plan.transfer.job_region.clone();
        let dst_account = self.spec.destination.account_id.clone();
        self.next_step("check the job, then confirm it".to_string());
        let out = &mut self.out;
        let _ = writeln!(
            out,
            "The job reads the manifest and waits in Suspended. Check the object count, then let it run:"
        );
        out.push('\n');
        out.push_str(SH_OPEN);
        // Quoted, so a block pasted before the id is filled in fails on an unknown job id
        // rather than on shell syntax (`<` is a redirection).
        let _ = writeln!(
            out,
            "aws s3control describe-job --region {region} --account-id {dst_account} --job-id '{job_id}' \
             --query 'Job.[Status,ProgressSummary.TotalNumberOfTasks]'"
        );
        out.push_str(SH_CLOSE);
        // A block of its own, so pasting the check never confirms the job before it is read.
        let _ = writeln!(out, "\nIf the count is what you expect, let it run:\n");
        out.push_str(SH_OPEN);
        let _ = writeln!(
            out,
            "aws s3control update-job-status --region {region} --account-id {dst_account} --job-id '{job_id}' --requested-job-status Ready"
        );
        out.push_str(SH_CLOSE);
    }

    /// The spec as TOML, so `ferry grant` and `ferry plan` can be run on exactly this transfer.
    fn spec_appendix(&mut self) {
        let toml = toml::to_string(self.spec).unwrap_or_default();
        let _ = writeln!(
            self.out,
            "\n## The transfer spec\n\nSave as {} for `ferry grant` / `ferry plan`:\n\n```toml\n{}```",
            self.spec_file, toml
        );
    }

    fn cost_and_notes(&mut self) {
        let name = self.plan.transfer.name.clone();
        let c = &self.plan.cost_estimate;
        let out = &mut self.out;
        let _ = writeln!(out, "\n## Cost estimate\n");
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
            crate::policy::sid(&name, "")
        );
    }
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
         by Sid (keeping every other statement as it is) and writes the result back. A policy that can't be read \
         stops the block before anything is written over it (only a bucket without a policy starts from an empty \
         one). Needs jq."
    );
    if own_account && !section.key_policies.is_empty() {
        let _ = writeln!(
            out,
            "\nThe key statements name the role directly; they are not needed if the key policy already lets IAM \
             policies of this account grant use of the key (the default key policy does), but they do no harm."
        );
    }
    out.push('\n');
    out.push_str(SH_OPEN);
    for (bucket, doc) in &section.bucket_policies {
        let file = format!("ferry-{name}-bucket-{bucket}.json");
        heredoc(out, &file, doc);
        // Only NoSuchBucketPolicy means "no policy yet" (S3 API Reference, "Error responses":
        // https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html). The CLI prints
        // "An error occurred (NoSuchBucketPolicy) when calling the GetBucketPolicy operation: ..."
        // (botocore/exceptions.py, ClientError.MSG_TEMPLATE; a retried call adds "(reached max
        // retries: N)" after "operation"; the CLI's other error formats, `cli_error_format`
        // json/yaml/table, print the code without parentheses, so only the code is matched) and
        // exits 254 (https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-returncodes.html).
        // Any other failure (AccessDenied, throttling, another account's bucket) stops the block:
        // an empty policy there would make the put drop every statement the owner has.
        let _ = writeln!(
            out,
            "if ! aws s3api get-bucket-policy --bucket {bucket} --query Policy --output text > {bucket}.current.json 2> {bucket}.get-error.txt; then\n  \
             grep -qF 'NoSuchBucketPolicy' {bucket}.get-error.txt || {{ cat {bucket}.get-error.txt >&2; exit 1; }}\n  \
             echo '{EMPTY_POLICY}' > {bucket}.current.json\n\
             fi"
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
        // A key always has a policy: a failed read stops the block (set -e), and nothing stands
        // in for it, since a put of Ferry's statements alone would lock the key's owners out.
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
    out.push_str(SH_CLOSE);
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

/// `2026-11-24 14:05 UTC` from Unix seconds (proleptic Gregorian, no time zone database).
pub fn utc_timestamp(unix_seconds: u64) -> String {
    let (year, month, day) = crate::time::civil_from_days((unix_seconds / 86_400) as i64);
    let secs = unix_seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// Escapes a value for use inside single quotes in sh.
fn shell_single_quoted(s: &str) -> String {
    s.replace('\'', r"'\''")
}

#[cfg(test)]
mod tests {
    use super::utc_timestamp;

    #[test]
    fn utc_timestamps() {
        // Checked against Python's datetime.fromtimestamp(t, UTC).
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_timestamp(1_795_500_000), "2026-11-24 06:00 UTC");
        assert_eq!(utc_timestamp(4_102_444_800), "2100-01-01 00:00 UTC");
    }
}
