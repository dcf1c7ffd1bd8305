//! The stack's workflows, written against [`crate::ports`]: set a transfer up (role, stored
//! plan, approval, e-mail), launch its job once approved, take approvals and rejections, hand
//! over waits that are about to time out, and tear down without stopping a running copy.
//! The Lambda functions only translate events into these calls (see `docs/stack.md`).

use serde::{Deserialize, Serialize};

use crate::aws_error::{AwsCallError, AwsCaused, AwsErrorKind, RetryPolicy};
use crate::launch::{launch, LaunchError, LaunchRequest};
use crate::ports::LaunchApi;
use crate::ports::PreflightApi;
use crate::ports::{
    describe_undo_failures, is_terminal_job_status, undo_by_delete, undo_by_restore,
    InventoryRunTrigger, JobControl, Notifier, RoleAdmin, StateStore, UndoFailure,
    WaitConditionSignal, WaitSignal, WaitStatus,
};
use crate::preflight::{preflight, render_checks, Check, CheckStatus};
use ferry_plan::approval::{
    keys, ApprovalMessage, ApprovalMessageError, ApprovalRecord, ApprovalToken, ManifestPin,
    APPROVAL_TOKEN_TTL_SECONDS,
};
use ferry_plan::error::FerryError;
use ferry_plan::plan::Plan;
use ferry_plan::policy::batch_role::batch_role;
use ferry_plan::render::{
    render_instructions_email, render_token_email, ApprovalInstructions, ManifestAsSent,
};
use ferry_plan::spec::TransferSpec;
use ferry_plan::stack::{approval_granted, ApprovalMode, TransferPlanProperties};

/// `Custom::FerryJob`'s answer while no approval has come.
pub const AWAITING_APPROVAL: &str = "awaiting-approval";
/// `Custom::FerryJob`'s answer when the first copy is an inventory run: inventory-handler
/// launches the job (and records it) once it has read and filtered the inventory.
pub const INVENTORY_RUN_STARTED: &str = "inventory-run-started";
/// `Custom::FerryJob`'s answer when the event names a plan that is not the stack's current one
/// (`plans/current.json`): nothing was launched, and the people are told.
pub const NOT_THE_CURRENT_PLAN: &str = "not-the-current-plan";
/// At most one `resend` per quarter hour of the clock (UTC :00, :15, :30, :45).
pub const RESEND_INTERVAL_SECONDS: u64 = 15 * 60;
/// A wait this close to its timeout is handed over (signalled `deferred`).
pub const RELEASE_WAIT_BEFORE_SECONDS: u64 = 20 * 60;
/// WaitCondition signal id Ferry uses.
pub const APPROVAL_SIGNAL_ID: &str = "approval";

/// What the workflows need from their surroundings besides the ports.
#[derive(Debug, Clone)]
pub struct StackContext {
    pub approval_topic_arn: String,
    pub now_unix: u64,
    pub retry: RetryPolicy,
}

/// The plan as stored at `plans/<fingerprint>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub fingerprint: String,
    pub spec: TransferSpec,
}

/// The stack's current plan, stored at `plans/current.json` (`keys::current_plan`). stack-handler
/// writes it when a TransferPlan Create or Update has applied a plan (a rollback's Update back to
/// the old properties writes the old one again), and never removes it. FirstJob, an approval, a
/// launch and a redrive act only on this plan (#15 items 2 and 5): a stored plan that hashes to
/// its fingerprint may still be one the stack has moved on from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentPlan {
    pub fingerprint: String,
    /// Unix seconds when stack-handler recorded it.
    pub recorded_unix: u64,
    /// Unix seconds since when this plan is the current one (kept while Updates record the same
    /// plan): only a decision taken since then approves it ([`approval_in_force`]). 0 for the
    /// record's first write on a stack of an earlier Ferry, whose approvals predate it.
    #[serde(default)]
    pub since_unix: u64,
}

/// A launched job, stored at `jobs/<fingerprint>/<job-id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub plan_fingerprint: String,
    pub account_id: String,
    pub region: String,
    pub manifest_etag: String,
    pub client_request_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Decision {
    decision: String,
    plan_fingerprint: String,
    at_unix: u64,
    /// The manifest's ETag the approval was for: the one its token's e-mails named (#15 item
    /// 13), found unchanged at the approval. The job is launched on exactly that manifest
    /// (whoever can write the manifest must not change the copy, before or after the approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest_etag: Option<String>,
    /// The manifest's version id the e-mails named (a versioned bucket): the job reads that
    /// version (CreateJob `Manifest.Location.ObjectVersionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest_version_id: Option<String>,
    /// Who published the message that decided, as far as the stack can know (#15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_by: Option<Publisher>,
}

/// Who published an approval message, as far as the stack can know it. SNS hands its
/// subscribers no publisher identity, so this is what the approval topic's policy guarantees:
/// only `one_of` may publish there (the stack's ApproverArns and the account's root user, set in
/// approval-handler's environment by the template, never read from the message). `message_id`
/// is SNS's id of the message: with CloudTrail data events for SNS turned on, the `Publish`
/// event whose `responseElements.messageId` is this one names the exact principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    pub topic_arn: String,
    pub message_id: String,
    pub one_of: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Spec(#[from] FerryError),
    #[error("{what}: {cause}")]
    Aws { what: String, cause: AwsCallError },
    #[error(transparent)]
    Launch(Box<LaunchError>),
    #[error(
        "no plan {fingerprint} in the state bucket (plans/{fingerprint}.json): the stack's TransferPlan \
         resource stores it on create; update the stack to store it again"
    )]
    PlanMissing { fingerprint: String },
    #[error(
        "the stored plan plans/{fingerprint}.json is not that plan: its spec's fingerprint is {found}. \
         It was changed after the stack stored it, so nothing is launched from it; update the stack to \
         store the plan again, and find out who wrote to the state bucket"
    )]
    PlanTampered { fingerprint: String, found: String },
    #[error(
        "plan {fingerprint} is not the stack's current plan (that is {current}: plans/current.json in the state \
         bucket, which stack-handler writes when the stack's TransferPlan applies a plan). The stack moved on from \
         this plan, so nothing is approved or launched for it. The token of the newest Ferry e-mail approves the \
         current plan"
    )]
    PlanNotCurrent {
        /// Escaped for e-mail: it may come from event text (FirstJob's PlanFingerprint).
        fingerprint: String,
        current: String,
    },
    #[error("the state object {key} is unreadable ({message}); it was not written by this Ferry version")]
    CorruptState { key: String, message: String },
    #[error(transparent)]
    BadMessage(#[from] ApprovalMessageError),
    #[error("the approval token is unknown: use the token from the newest Ferry e-mail for this transfer")]
    UnknownToken,
    #[error(
        "the approval token was already used; a new e-mail (after a stack update) brings a new one"
    )]
    TokenSpent,
    #[error("no approval is pending for this stack: nothing to re-send")]
    NothingPending,
    #[error(
        "a new approval token was already e-mailed in this quarter hour (re-sends are limited to one per quarter \
         hour, so nobody can keep retiring the pending token): the token of the newest approval-token e-mail \
         still works; to ask again, publish {{\"action\":\"resend\"}} after {next}"
    )]
    ResendTooSoon {
        /// When the next quarter hour starts (UTC).
        next: String,
    },
    #[error(
        "the approval token has expired (tokens last 14 days): publish {{\"action\":\"resend\"}} to the approval \
         topic for a new e-mail with a new token"
    )]
    TokenExpired,
    #[error(
        "the approval for {transfer} was not used: the e-mails of its token named no manifest ETag (the \
         manifest {manifest} could not be read when they were sent), so there is no manifest the approval \
         could be held to. Once the manifest is in place, publish {{\"action\":\"resend\"}} to the approval \
         topic: the new e-mails name the manifest's ETag, and their token approves exactly that manifest"
    )]
    ManifestNotPinned {
        transfer: String,
        /// `s3://bucket/key`, escaped for e-mail.
        manifest: String,
    },
    #[error(
        "the approval for {transfer} was not used: the manifest changed since the plan was e-mailed (pinned \
         ETag {pinned}, now {found}): whoever rewrote {manifest} changed what would be copied. Check it, then \
         publish {{\"action\":\"resend\"}} to the approval topic for a new token that pins the current \
         manifest (or put the e-mailed manifest back: then the same approval message works)"
    )]
    ManifestChanged {
        transfer: String,
        /// `s3://bucket/key`, escaped for e-mail.
        manifest: String,
        pinned: String,
        /// The ETag found now (escaped), or what was found instead of one.
        found: String,
    },
    #[error(
        "the approval for {transfer} was not used: preflight found what would make the job fail. \
         Fix it, then publish the same approval message again (the token still works).\n\n{report}"
    )]
    PreflightFailed {
        transfer: String,
        /// The failed and warning checks with their fixes, then the ones that couldn't be made.
        report: String,
    },
    /// A step failed and putting the state back failed too: both are said. Never retried (a
    /// retry would meet the state left behind, e.g. a spent token), so the person is told.
    #[error("{error}\n\nPutting the state back after this failure failed too: {}", describe_undo_failures(.undo))]
    UndoFailed {
        error: Box<WorkflowError>,
        undo: Vec<UndoFailure>,
    },
}

impl AwsCaused for WorkflowError {
    fn aws_cause(&self) -> Option<&AwsCallError> {
        match self {
            WorkflowError::Aws { cause, .. } => Some(cause),
            WorkflowError::Launch(l) => l.aws_cause(),
            _ => None,
        }
    }
}

impl From<LaunchError> for WorkflowError {
    fn from(e: LaunchError) -> Self {
        WorkflowError::Launch(Box::new(e))
    }
}

impl WorkflowError {
    fn aws(what: impl Into<String>) -> impl FnOnce(AwsCallError) -> Self {
        let what = what.into();
        move |cause| WorkflowError::Aws { what, cause }
    }
}

/// Result of setting a transfer up or updating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReady {
    pub fingerprint: String,
    pub role_arn: String,
    /// An instructions e-mail with a new token went out.
    pub approval_requested: bool,
}

/// `TransferPlan` Create: role, stored plan, approval record, instructions e-mail.
pub async fn create_transfer<P>(
    ports: &P,
    props: &TransferPlanProperties,
    token: &ApprovalToken,
    ctx: &StackContext,
) -> Result<TransferReady, WorkflowError>
where
    P: StateStore + Notifier + RoleAdmin + LaunchApi + Sync,
{
    apply_transfer(ports, None, props, props.approval_mode, token, ctx).await
}

/// `TransferPlan` Update: the role always follows the plan; a changed transfer gets a new
/// approval (launched on approval, since a stack update can't wait again).
pub async fn update_transfer<P>(
    ports: &P,
    old_fingerprint: Option<&str>,
    props: &TransferPlanProperties,
    token: &ApprovalToken,
    ctx: &StackContext,
) -> Result<TransferReady, WorkflowError>
where
    P: StateStore + Notifier + RoleAdmin + LaunchApi + Sync,
{
    let old = Some(old_fingerprint.unwrap_or_default());
    apply_transfer(ports, old, props, ApprovalMode::Deferred, token, ctx).await
}

/// The role follows the plan; a new or changed plan is stored and sent for approval.
/// `old_fingerprint` is `None` on Create.
async fn apply_transfer<P>(
    ports: &P,
    old_fingerprint: Option<&str>,
    props: &TransferPlanProperties,
    mode: ApprovalMode,
    token: &ApprovalToken,
    ctx: &StackContext,
) -> Result<TransferReady, WorkflowError>
where
    P: StateStore + Notifier + RoleAdmin + LaunchApi + Sync,
{
    let plan = Plan::build(&props.spec)?;
    ports
        .apply_role(&plan.batch_role)
        .await
        .map_err(WorkflowError::aws(
            "applying the plan to the Batch Operations role",
        ))?;
    // OldResourceProperties is event text (#15): a hand-made Update can say old = new. A plan
    // the stack never stored is new whatever the event says, so it is stored, retires the
    // pending tokens and is e-mailed for approval, never applied silently.
    let stored = ports
        .get(&keys::plan(&plan.transfer.fingerprint))
        .await
        .map_err(WorkflowError::aws("reading the stored plan"))?
        .is_some();
    let mut changed = old_fingerprint != Some(plan.transfer.fingerprint.as_str()) || !stored;
    if changed {
        store_plan(ports, &props.spec, &plan).await?;
    }
    // Recorded on every Create and Update, changed or not (a stack of an earlier Ferry gets its
    // record at its first TransferPlan Update), and before any token is retired: from here on an
    // approval or launch of any other plan is refused (#15 items 2 and 5), even one racing this
    // update. A plan made current again is a change too, whatever OldResourceProperties (event
    // text) says: it is e-mailed for a fresh approval, and its old one no longer counts.
    changed |= record_current_plan(ports, &plan.transfer.fingerprint, ctx).await?;
    if changed {
        // The plan changed: every approval still pending is for a plan that no longer is.
        retire_pending_approvals(ports, ctx).await?;
        request_approval(ports, props, mode, &plan, token, ctx).await?;
    }
    Ok(TransferReady {
        fingerprint: plan.transfer.fingerprint.clone(),
        role_arn: plan.batch_role.arn.clone(),
        approval_requested: changed,
    })
}

/// Every approval record in the state bucket, with its key (`approvals/<token hash>.json`).
/// There is one per instructions e-mail, so they are few.
async fn approval_records<P: StateStore + Sync>(
    ports: &P,
) -> Result<Vec<(String, ApprovalRecord)>, WorkflowError> {
    let mut records = Vec::new();
    for key in ports
        .list(keys::APPROVALS_PREFIX)
        .await
        .map_err(WorkflowError::aws("listing approvals"))?
        .into_iter()
        .filter(|k| k.ends_with(".json"))
    {
        if let Some(record) =
            read_state::<ApprovalRecord, _>(ports, &key, "reading an approval record").await?
        {
            records.push((key, record));
        }
    }
    Ok(records)
}

/// The decision object beside an approval record (`approvals/<hash>.decision`).
fn decision_key_of(record_key: &str) -> String {
    record_key.trim_end_matches(".json").to_string() + ".decision"
}

/// Marks every approval token not yet used as spent (`superseded`): after a plan change an old
/// token must not approve, whatever its plan.
async fn retire_pending_approvals<P: StateStore + Sync>(
    ports: &P,
    ctx: &StackContext,
) -> Result<(), WorkflowError> {
    for (key, record) in approval_records(ports).await? {
        let retired = Decision {
            decision: "superseded".to_string(),
            plan_fingerprint: record.plan_fingerprint,
            at_unix: ctx.now_unix,
            manifest_etag: None,
            manifest_version_id: None,
            decided_by: None,
        };
        let decided = decision_key_of(&key);
        // Already decided (used, rejected, superseded) stays as it is.
        ports
            .put_if_absent(&decided, to_json(&retired))
            .await
            .map_err(WorkflowError::aws("retiring an old approval token"))?;
    }
    Ok(())
}

async fn store_plan<P: StateStore + Sync>(
    ports: &P,
    spec: &TransferSpec,
    plan: &Plan,
) -> Result<(), WorkflowError> {
    let stored = StoredPlan {
        fingerprint: plan.transfer.fingerprint.clone(),
        spec: spec.clone(),
    };
    ports
        .put(&keys::plan(&stored.fingerprint), to_json(&stored))
        .await
        .map_err(WorkflowError::aws("storing the plan in the state bucket"))
}

/// Records `fingerprint` as the stack's current plan (`plans/current.json`).
///
/// The recorded `approve` decision of the plan left behind (`decisions/<old>.json`) is not
/// rewritten: this record alone keeps it from acting, since every path that launches or approves
/// ([`ensure_current_plan`]) refuses a plan that is not current, and inventory-handler acts only
/// for the fingerprint the template pins in its environment (`!GetAtt TransferPlan.Fingerprint`).
/// A decision is approval-handler's record of who approved (only approval-handler may write
/// `decisions/`), and a rollback's Update back to the old plan makes it current again with its
/// approval intact, as the stack was before the failed update.
///
/// Returns whether the current plan changed to it: a plan made current again (a rollback, or
/// an Update forged during a stack operation naming an old plan) needs a fresh approval, since
/// its old decision predates its `since_unix` (#15 review).
async fn record_current_plan<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    ctx: &StackContext,
) -> Result<bool, WorkflowError> {
    let (since_unix, switched) = match current_plan(ports).await? {
        Some(before) if before.fingerprint == fingerprint => (before.since_unix, false),
        Some(_) => (ctx.now_unix, true),
        // A stack of an earlier Ferry: its plan's approval was taken before any record.
        None => (0, false),
    };
    let current = CurrentPlan {
        fingerprint: fingerprint.to_string(),
        recorded_unix: ctx.now_unix,
        since_unix,
    };
    ports
        .put(&keys::current_plan(), to_json(&current))
        .await
        .map_err(WorkflowError::aws("recording the stack's current plan"))?;
    Ok(switched)
}

/// Whether a decision taken at `decided_at_unix` for `fingerprint` is in force: the plan is the
/// current one and the decision was taken since it became so (no record: a stack of an earlier
/// Ferry, as before).
pub async fn approval_in_force<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
    decided_at_unix: u64,
) -> Result<bool, WorkflowError> {
    Ok(match current_plan(ports).await? {
        None => true,
        Some(current) => {
            current.fingerprint == fingerprint && decided_at_unix >= current.since_unix
        }
    })
}

/// The stack's current plan as stack-handler recorded it; `None` when there is no record.
pub async fn current_plan<P: StateStore + Sync>(
    ports: &P,
) -> Result<Option<CurrentPlan>, WorkflowError> {
    read_state::<CurrentPlan, _>(
        ports,
        &keys::current_plan(),
        "reading the stack's current plan",
    )
    .await
}

/// Refuses `fingerprint` unless it is the stack's current plan (#15 items 2 and 5): FirstJob's
/// `PlanFingerprint` is event text, and an approved plan the stack has since replaced must not be
/// launched (by a forged FirstJob during a stack operation, a token left pending, a redrive).
///
/// No record (`plans/current.json` absent) accepts: only a stack deployed by an earlier Ferry,
/// whose TransferPlan was not updated since, has none (every Create and Update writes it, and
/// nothing removes it). Refusing there would stop that stack's pending approval and its FirstJob
/// until an update; accepting keeps what that stack did before (tokens of replaced plans were
/// retired then too). Only stack-handler and `StateOperatorArn` may write or delete `plans/`
/// (StateBucketPolicy), so nobody else can remove the record to get here, and the next
/// TransferPlan Update writes it. An unreadable record refuses (`CorruptState`).
pub async fn ensure_current_plan<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<(), WorkflowError> {
    match current_plan(ports).await? {
        Some(current) if current.fingerprint != fingerprint => Err(WorkflowError::PlanNotCurrent {
            fingerprint: ferry_plan::untrusted::untrusted(fingerprint).into_owned(),
            current: ferry_plan::untrusted::untrusted(&current.fingerprint).into_owned(),
        }),
        _ => Ok(()),
    }
}

async fn request_approval<P: StateStore + Notifier + LaunchApi + Sync>(
    ports: &P,
    props: &TransferPlanProperties,
    mode: ApprovalMode,
    plan: &Plan,
    token: &ApprovalToken,
    ctx: &StackContext,
) -> Result<(), WorkflowError> {
    let waiting = mode == ApprovalMode::Wait;
    let record = ApprovalRecord {
        transfer_name: plan.transfer.name.clone(),
        plan_fingerprint: plan.transfer.fingerprint.clone(),
        mode,
        wait_handle_url: props.wait_handle_url.clone().filter(|_| waiting),
        wait_deadline: waiting.then(|| ctx.now_unix + u64::from(props.approval_timeout_seconds)),
        wait_released: false,
        created_unix: ctx.now_unix,
        // Read by send_instructions, just before the e-mails that name it.
        manifest: None,
    };
    send_instructions(ports, plan, &props.spec, record, token, ctx).await
}

/// Reads the plan's manifest (HeadObject) to pin it in an approval record and its e-mails: the
/// error text when it can't be read (missing, denied, throttled, in another Region). Not being
/// able to read it fails nothing here: the deployer may upload the manifest after the stack, and
/// `resend` reads it again; until then the approval refuses the token.
async fn read_manifest_pin<P: LaunchApi + Sync>(
    ports: &P,
    spec: &TransferSpec,
) -> Result<ManifestPin, String> {
    let m = &spec.manifest;
    let head = ports
        .head_manifest(&m.bucket, &m.key)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(region) = head.bucket_region.as_deref() {
        if region != spec.manifest_region() {
            return Err(format!(
                "the bucket is in {region}, not in {}",
                spec.manifest_region()
            ));
        }
    }
    head.pin()
        .ok_or_else(|| "HeadObject returned no ETag".to_string())
}

/// Stores the approval record under the token's hash, with the manifest as it is now (#15 item
/// 13: the token approves only that manifest), and e-mails the instructions and the token, both
/// naming it.
async fn send_instructions<P: StateStore + Notifier + LaunchApi + Sync>(
    ports: &P,
    plan: &Plan,
    spec: &TransferSpec,
    mut record: ApprovalRecord,
    token: &ApprovalToken,
    ctx: &StackContext,
) -> Result<(), WorkflowError> {
    let read = read_manifest_pin(ports, spec).await;
    // A resend re-pins the manifest as it is now. Resends can't be told from forged ones
    // (approval-handler can be invoked directly), so a manifest changed since the last e-mail
    // is said first, in both e-mails, with both pins: the approver must look before approving.
    let changed = match (&record.manifest, &read) {
        (Some(before), Ok(now)) if before.etag != now.etag || before.version_id != now.version_id => {
            Some(format!(
                "WARNING: the manifest CHANGED since the last instructions e-mail: ETag {} ({} bytes, {}) is now \
                 ETag {} ({} bytes, {}). A resend pins the manifest as it is now, and who asked for this resend \
                 can't be verified. Approve only if you know why it changed, after checking every row of it, \
                 not just the first ones.\n\n",
                ferry_plan::untrusted::untrusted(&before.etag),
                before.size.map_or("?".to_string(), |n| n.to_string()),
                ferry_plan::untrusted::untrusted(before.last_modified.as_deref().unwrap_or("?")),
                ferry_plan::untrusted::untrusted(&now.etag),
                now.size.map_or("?".to_string(), |n| n.to_string()),
                ferry_plan::untrusted::untrusted(now.last_modified.as_deref().unwrap_or("?")),
            ))
        }
        _ => None,
    };
    record.manifest = read.as_ref().ok().cloned();
    ports
        .put(&keys::approval(&token.hash()), to_json(&record))
        .await
        .map_err(WorkflowError::aws("storing the approval record"))?;
    let stack_still_waits = record.wait_deadline.is_some() && !record.wait_released;
    let approval = ApprovalInstructions {
        topic_arn: &ctx.approval_topic_arn,
        mode: if stack_still_waits {
            ApprovalMode::Wait
        } else {
            ApprovalMode::Deferred
        },
        wait_deadline: record.wait_deadline.filter(|_| stack_still_waits),
        manifest: match &read {
            Ok(pin) => ManifestAsSent::Pinned(pin),
            Err(cause) => ManifestAsSent::Unreadable(cause),
        },
    };
    // Two messages (#15): the instructions, meant to be forwarded to the source account, carry
    // no token; the token comes alone in the second.
    let mut email = render_instructions_email(plan, spec, &approval);
    let mut token_email = render_token_email(plan, &approval, token);
    if let Some(warning) = &changed {
        for e in [&mut email, &mut token_email] {
            e.subject = format!("MANIFEST CHANGED: {}", e.subject);
            e.body = format!("{warning}{}", e.body);
        }
    }
    ports
        .notify(&email.subject, &email.body)
        .await
        .map_err(WorkflowError::aws("publishing the instructions e-mail"))?;
    ports
        .notify(&token_email.subject, &token_email.body)
        .await
        .map_err(WorkflowError::aws("publishing the approval-token e-mail"))
}

/// `FirstJob`: launch when an approval is recorded for this very plan, otherwise leave it to
/// the approval. The stack's wait data (`{"approval":"approved"}`) is not an approval: anyone
/// who can read the WaitConditionHandle's URL (the state bucket, `DescribeStackResources`,
/// logs) can PUT SUCCESS to it. approval-handler records the decision before it signals, so a
/// real approval is always found; wait data saying "approved" without one is reported.
pub async fn first_job<P>(
    ports: &P,
    fingerprint: &str,
    approval_property: &str,
    on_update: bool,
    ctx: &StackContext,
) -> Result<String, WorkflowError>
where
    P: StateStore + LaunchApi + Notifier + InventoryRunTrigger + Sync,
{
    // PlanFingerprint is event text: a FirstJob naming a plan the stack replaced (approved but
    // never launched) launches nothing and marks no wait over. Answered SUCCESS, like a missing
    // approval, so a real stack operation is never stuck on it; the people are told.
    match ensure_current_plan(ports, fingerprint).await {
        Ok(()) => {}
        Err(refusal @ WorkflowError::PlanNotCurrent { .. }) => {
            let _ = ports
                .notify(
                    "Ferry: FirstJob launched nothing (not the stack's current plan)",
                    &format!(
                        "FirstJob was asked to launch a plan that is not the stack's current plan, so no \
                         job was launched: {refusal}.\nCloudFormation sends FirstJob the current plan's \
                         fingerprint; a request naming another was made by hand.\n"
                    ),
                )
                .await;
            return Ok(NOT_THE_CURRENT_PLAN.to_string());
        }
        Err(e) => return Err(e),
    }
    if let Some(existing) = launched_job(ports, fingerprint).await? {
        return Ok(existing);
    }
    // CloudFormation creates FirstJob once the wait is over: an approval that comes later must
    // launch the job itself rather than signal a wait nobody waits on. Marked before the
    // decision is looked for, so an approval recording its decision meanwhile sees the mark.
    end_waits_of(ports, fingerprint).await?;
    if !recorded_approval(ports, fingerprint).await? {
        if !on_update && approval_granted(approval_property) {
            let _ = ports
                .notify(
                    "Ferry: FirstJob launched nothing (no recorded approval)",
                    &format!(
                        "The stack's approval wait was signalled \"approved\", but no approval is recorded for \
                         plan {}, so no job was launched. Only the approve command from the \
                         instructions e-mail approves; a signal sent to the wait's URL by anyone else does not. \
                         If you did approve, send the approve command again: it launches the job.\n",
                        ferry_plan::untrusted::untrusted(fingerprint)
                    ),
                )
                .await;
        }
        return Ok(AWAITING_APPROVAL.to_string());
    }
    Ok(match start_first_copy(ports, fingerprint, ctx).await? {
        FirstCopy::Job(job) => job.job_id,
        FirstCopy::InventoryRun { .. } => INVENTORY_RUN_STARTED.to_string(),
    })
}

/// Marks the pending approvals of `fingerprint` as no longer waited on (`wait_released`).
async fn end_waits_of<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<(), WorkflowError> {
    for (key, mut record) in approval_records(ports).await? {
        if record.plan_fingerprint != fingerprint
            || record.mode != ApprovalMode::Wait
            || record.wait_released
        {
            continue;
        }
        record.wait_released = true;
        ports
            .put(&key, to_json(&record))
            .await
            .map_err(WorkflowError::aws("marking the wait as over"))?;
    }
    Ok(())
}

/// What an approved plan's first copy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstCopy {
    /// A job on the plan's manifest, launched here.
    Job(JobRecord),
    /// An inventory run of the plan's inventory, started in inventory-handler.
    InventoryRun { manifest_key: String },
}

/// The approved plan's first copy. A transfer with event-driven runs (`[inventory]`) starts
/// with a run of the inventory its plan names, in inventory-handler: that run applies
/// `[filter]`, routes objects over 5 GiB, writes `null` version ids, and its index is the base
/// the next inventory's delta is taken against. Handing that `manifest.json` to a job as it
/// is would copy what the filter excludes, and the next run would copy everything again.
/// Every other plan launches its job here.
pub async fn start_first_copy<P>(
    ports: &P,
    fingerprint: &str,
    ctx: &StackContext,
) -> Result<FirstCopy, WorkflowError>
where
    P: StateStore + LaunchApi + Notifier + InventoryRunTrigger + Sync,
{
    ensure_current_plan(ports, fingerprint).await?;
    let (stored, plan) = load_plan(ports, fingerprint).await?;
    if stored.spec.inventory.is_none() {
        return Ok(FirstCopy::Job(launch_job(ports, fingerprint, ctx).await?));
    }
    let spec = &stored.spec;
    let Some(dir) = spec
        .manifest
        .key
        .strip_suffix(ferry_plan::inventory_setup::MANIFEST_FILE)
    else {
        return Err(WorkflowError::Spec(FerryError::InvalidSpec(vec![
            ferry_plan::error::SpecProblem {
                field: "manifest.key".to_string(),
                value: spec.manifest.key.clone(),
                message: "an [inventory] transfer's manifest is an inventory's manifest.json"
                    .to_string(),
            },
        ])));
    };
    let checksum_key = format!("{dir}{}", ferry_plan::inventory_setup::CHECKSUM_FILE);
    let event = crate::inventory::event::first_run_event(&spec.manifest.bucket, &checksum_key);
    ports
        .start_inventory_run(&event)
        .await
        .map_err(WorkflowError::aws("starting the first inventory run"))?;
    // The run is queued and can't be taken back: a failed announcement must not undo the
    // approval (the run's own e-mail says what it launched).
    let _ = ports
        .notify(
            &format!("Ferry {}: first inventory run requested", plan.transfer.name),
            &format!(
                "The approval of plan {fingerprint} asked the stack's inventory-handler to copy the inventory \
                 s3://{}/{}: it checks the recorded approval, applies the transfer's filter, launches the copy \
                 to {} and e-mails what it launched. Later inventories copy only what changed since.\n",
                spec.manifest.bucket, spec.manifest.key, plan.transfer.destination
            ),
        )
        .await;
    Ok(FirstCopy::InventoryRun {
        manifest_key: spec.manifest.key.clone(),
    })
}

/// The job already launched for a plan, if any (an update that changes nothing keeps it).
async fn launched_job<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<Option<String>, WorkflowError> {
    let keys_found = ports
        .list(&keys::jobs_of(fingerprint))
        .await
        .map_err(WorkflowError::aws("listing the plan's jobs"))?;
    let Some(key) = keys_found.first() else {
        return Ok(None);
    };
    let job = read_state::<JobRecord, _>(ports, key, "reading a job record").await?;
    Ok(job.map(|j| j.job_id))
}

async fn recorded_approval<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<bool, WorkflowError> {
    let key = keys::plan_decision(fingerprint);
    let decision = read_state::<Decision, _>(ports, &key, "reading the decision").await?;
    match decision {
        Some(d) if d.decision == "approve" => {
            approval_in_force(ports, fingerprint, d.at_unix).await
        }
        _ => Ok(false),
    }
}

/// Launches the stored plan's job (idempotent: the same manifest gives the same job) and
/// records and announces it.
pub async fn launch_job<P>(
    ports: &P,
    fingerprint: &str,
    ctx: &StackContext,
) -> Result<JobRecord, WorkflowError>
where
    P: StateStore + LaunchApi + Notifier + Sync,
{
    // Checked again just before CreateJob: an approval that began while its plan was current
    // launches nothing once stack-handler has recorded another.
    ensure_current_plan(ports, fingerprint).await?;
    let (stored, plan) = load_plan(ports, fingerprint).await?;
    // On the manifest as it was approved (the ETag, and the version, its token's e-mails named),
    // when the approval recorded it.
    let approved = read_state::<Decision, _>(
        ports,
        &keys::plan_decision(fingerprint),
        "reading the decision",
    )
    .await?;
    let (approved_etag, approved_version) = approved
        .map(|d| (d.manifest_etag, d.manifest_version_id))
        .unwrap_or_default();
    // A pinned version: Batch Operations reads exactly it, whatever is written over the key
    // between CreateJob and the job's reading of the manifest.
    let mut template = plan.create_job.clone();
    if approved_etag.is_some() {
        template.manifest.location.object_version_id = approved_version;
    }
    let request = LaunchRequest {
        template: &template,
        expected_etag: approved_etag.as_deref(),
        ..LaunchRequest::for_plan(&plan)
    };
    let launched = launch(ports, request, ctx.retry).await?;
    let record = JobRecord {
        job_id: launched.job_id.clone(),
        plan_fingerprint: fingerprint.to_string(),
        account_id: stored.spec.destination.account_id.clone(),
        region: plan.transfer.job_region.clone(),
        manifest_etag: launched.manifest_etag,
        client_request_token: launched.client_request_token,
    };
    ports
        .put(&keys::job(fingerprint, &record.job_id), to_json(&record))
        .await
        .map_err(WorkflowError::aws("recording the job"))?;
    let mut body = format!(
        "Ferry started the job {} for transfer {} (s3://{} to {}), on the manifest with ETag {}.\n",
        record.job_id,
        plan.transfer.name,
        stored.spec.source.bucket,
        plan.transfer.destination,
        record.manifest_etag
    );
    if stored.spec.job.confirmation_required {
        body.push_str(&format!(
            "\nThe job waits in Suspended for your confirmation. Check it, then let it run:\n\n\
             aws s3control describe-job --region {r} --account-id {a} --job-id {j}\n\
             aws s3control update-job-status --region {r} --account-id {a} --job-id {j} --requested-job-status Ready\n",
            r = record.region,
            a = record.account_id,
            j = record.job_id
        ));
    }
    ports
        .notify(
            &format!(
                "Ferry {}: job {} started",
                plan.transfer.name, record.job_id
            ),
            &body,
        )
        .await
        .map_err(WorkflowError::aws("announcing the job"))?;
    Ok(record)
}

/// What an approval message led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// The stack was waiting: it now continues and `FirstJob` launches the job.
    WaitSignalled,
    JobLaunched(JobRecord),
    /// The plan's first copy is an inventory run, started in inventory-handler.
    InventoryRunStarted {
        manifest_key: String,
    },
    Rejected {
        stack_signalled: bool,
    },
    /// The instructions went out again with a new token for this transfer.
    Resent {
        transfer_name: String,
    },
}

/// What a re-send claim (`approvals/resend-<quarter hour>.claim`) records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ResendClaim {
    at_unix: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requested_by: Option<Publisher>,
}

/// Re-sends the newest pending approval with a new token; the old token stops working. At most
/// one re-send per quarter hour of the clock ([`RESEND_INTERVAL_SECONDS`]): the quarter hour is
/// claimed with a conditional write before anything changes, so concurrent re-sends can't both
/// go through, and a refused one leaves the pending token as it was (#15: a `resend` needs no
/// token, so without a limit anyone allowed to publish could keep retiring the approver's).
async fn resend_instructions<P>(
    ports: &P,
    token: &ApprovalToken,
    requested_by: Option<&Publisher>,
    ctx: &StackContext,
) -> Result<ApprovalOutcome, WorkflowError>
where
    P: StateStore + Notifier + LaunchApi + Sync,
{
    let mut newest: Option<(String, ApprovalRecord)> = None;
    // A token re-sent for a plan the stack replaced would approve nothing (#15 item 5).
    let current = current_plan(ports).await?;
    for (key, record) in approval_records(ports).await? {
        if current
            .as_ref()
            .is_some_and(|c| c.fingerprint != record.plan_fingerprint)
        {
            continue;
        }
        if ports
            .get(&decision_key_of(&key))
            .await
            .map_err(WorkflowError::aws("reading a decision"))?
            .is_some()
        {
            continue;
        }
        if newest
            .as_ref()
            .is_none_or(|(_, n)| record.created_unix >= n.created_unix)
        {
            newest = Some((key, record));
        }
    }
    let Some((old_key, record)) = newest else {
        return Err(WorkflowError::NothingPending);
    };
    let (stored, plan) = load_plan(ports, &record.plan_fingerprint).await?;
    let quarter = ctx.now_unix - ctx.now_unix % RESEND_INTERVAL_SECONDS;
    let claim = ResendClaim {
        at_unix: ctx.now_unix,
        requested_by: requested_by.cloned(),
    };
    if !ports
        .put_if_absent(&keys::resend_claim(quarter), to_json(&claim))
        .await
        .map_err(WorkflowError::aws("claiming this quarter hour's re-send"))?
    {
        return Err(WorkflowError::ResendTooSoon {
            next: ferry_plan::render::utc_timestamp(quarter + RESEND_INTERVAL_SECONDS),
        });
    }
    // Retire the old token first: at no moment do two tokens work.
    let retired = Decision {
        decision: "superseded".to_string(),
        plan_fingerprint: record.plan_fingerprint.clone(),
        at_unix: ctx.now_unix,
        manifest_etag: None,
        manifest_version_id: None,
        decided_by: requested_by.cloned(),
    };
    let old_decision = decision_key_of(&old_key);
    if !ports
        .put_if_absent(&old_decision, to_json(&retired))
        .await
        .map_err(WorkflowError::aws("retiring the old token"))?
    {
        return Err(WorkflowError::TokenSpent);
    }
    let transfer_name = record.transfer_name.clone();
    let renewed = ApprovalRecord {
        created_unix: ctx.now_unix,
        ..record
    };
    if let Err(error) = send_instructions(ports, &plan, &stored.spec, renewed, token, ctx).await {
        // The new token was not e-mailed (and the old one is retired): the quarter hour goes
        // back, so the delivery's retry re-sends instead of being refused as too soon (#16
        // review).
        // The re-send is undone whole: the token it made (maybe never e-mailed) is retired,
        // and then the old one works again (its "superseded" mark goes), so the approver is
        // never left without an e-mailed token and no two tokens work at once.
        let next = ferry_plan::render::utc_timestamp(quarter + RESEND_INTERVAL_SECONDS);
        let mut undo = Vec::new();
        let new_retired = ports
            .put_if_absent(&keys::decision(&token.hash()), to_json(&retired))
            .await;
        match new_retired {
            Ok(_) => {
                if let Err(failed) = undo_by_delete(
                    ports,
                    &old_decision,
                    "the token e-mailed before stays retired, and the one this re-send made was not \
                     e-mailed",
                )
                .await
                {
                    undo.push(failed);
                }
            }
            Err(cause) => undo.push(UndoFailure {
                key: keys::decision(&token.hash()),
                action: "written",
                consequence:
                    "the token e-mailed before stays retired (so that no two tokens work), \
                              and the one this re-send made may not have been e-mailed"
                        .to_string(),
                cause,
            }),
        }
        if let Err(failed) = undo_by_delete(
            ports,
            &keys::resend_claim(quarter),
            format!(
                "re-sends are refused until {next}: publish {{\"action\":\"resend\"}} to the approval \
                 topic after {next}"
            ),
        )
        .await
        {
            undo.push(failed);
        }
        return Err(if undo.is_empty() {
            error
        } else {
            WorkflowError::UndoFailed {
                error: Box::new(error),
                undo,
            }
        });
    }
    Ok(ApprovalOutcome::Resent { transfer_name })
}

/// Takes one message from the approval topic, without knowing who published it: the decision
/// records no publisher. approval-handler uses [`handle_approval_from`].
pub async fn handle_approval<P>(
    ports: &P,
    message: &str,
    fresh_token: &ApprovalToken,
    ctx: &StackContext,
) -> Result<ApprovalOutcome, WorkflowError>
where
    P: StateStore + WaitSignal + PreflightApi + Notifier + InventoryRunTrigger + Sync,
{
    handle_approval_from(ports, message, None, fresh_token, ctx).await
}

/// Takes one message from the approval topic, published by `publisher` (recorded with the
/// decision, and with a re-send's claim). The token is checked, spent exactly once, and never
/// logged or echoed; a failure after spending it gives it back so the person can retry.
pub async fn handle_approval_from<P>(
    ports: &P,
    message: &str,
    publisher: Option<&Publisher>,
    fresh_token: &ApprovalToken,
    ctx: &StackContext,
) -> Result<ApprovalOutcome, WorkflowError>
where
    P: StateStore + WaitSignal + PreflightApi + Notifier + InventoryRunTrigger + Sync,
{
    let message = ApprovalMessage::parse(message)?;
    if let ApprovalMessage::Redrive { .. } = message {
        // approval-handler sends redrives to report::redrive::redrive; they spend no token.
        return Err(WorkflowError::BadMessage(
            ApprovalMessageError::Unrecognised,
        ));
    }
    let Some(token) = message.token() else {
        return resend_instructions(ports, fresh_token, publisher, ctx).await;
    };
    let hash = token.hash();
    let record_key = keys::approval(&hash);
    let record = read_state::<ApprovalRecord, _>(ports, &record_key, "reading the approval record")
        .await?
        .ok_or(WorkflowError::UnknownToken)?;
    // A token lives APPROVAL_TOKEN_TTL_SECONDS; `resend` issues a fresh one.
    if ctx.now_unix
        > record
            .created_unix
            .saturating_add(APPROVAL_TOKEN_TTL_SECONDS)
    {
        return Err(WorkflowError::TokenExpired);
    }
    let decision_key = keys::decision(&hash);
    // A token of a plan the stack replaced decides nothing, like a superseded one (#15 items 2
    // and 5). A changed plan retires every pending token, but one written after that (a
    // `resend` racing the update) would be left; checked before the token is spent, so nothing
    // is recorded (a token already spent or retired is said as such first). The launch checks
    // again.
    if ports
        .get(&decision_key)
        .await
        .map_err(WorkflowError::aws("reading the approval token's decision"))?
        .is_some()
    {
        return Err(WorkflowError::TokenSpent);
    }
    ensure_current_plan(ports, &record.plan_fingerprint).await?;
    let decision = Decision {
        decision: match message {
            ApprovalMessage::Approve { .. } => "approve",
            ApprovalMessage::Reject { .. }
            | ApprovalMessage::Resend
            | ApprovalMessage::Redrive { .. } => "reject",
        }
        .to_string(),
        plan_fingerprint: record.plan_fingerprint.clone(),
        at_unix: ctx.now_unix,
        manifest_etag: None,
        manifest_version_id: None,
        decided_by: publisher.cloned(),
    };
    let claimed = ports
        .put_if_absent(&decision_key, to_json(&decision))
        .await
        .map_err(WorkflowError::aws("spending the approval token"))?;
    if !claimed {
        return Err(WorkflowError::TokenSpent);
    }
    // The plan's decision as it was: a failed decision puts it back rather than deleting it, so
    // a second token of an approved plan that fails (a changed manifest, a preflight refusal)
    // doesn't erase the earlier approval.
    let plan_decision_key = keys::plan_decision(&record.plan_fingerprint);
    let prior = ports
        .get(&plan_decision_key)
        .await
        .map_err(WorkflowError::aws("reading the plan's decision"))?;
    // Boxed: the decision's state machine (preflight, launch, signal) is large; on the
    // caller's stack it overflows a 2 MiB thread's in debug builds.
    let error = match Box::pin(act_on_decision(
        ports,
        &message,
        &record,
        &record_key,
        &decision,
        ctx,
    ))
    .await
    {
        Ok(outcome) => return Ok(outcome),
        Err(error) => error,
    };
    // Give the token back: nothing happened, so the person may simply try again. An undo that
    // fails is said, never swallowed (#16 item 6): a leftover decision would read as decided.
    let mut undo = Vec::new();
    // The plan's decision first, then the token: a token given back first could be spent by a
    // redelivered message that would then read this attempt's decision as the prior one. A
    // reject is never undone: once recorded it stands (a failed announcement is retried with
    // the token given back), so nobody can bring an approval back by making its e-mail fail.
    let prior_reads = match &prior {
        Some(_) => "the plan's earlier decision",
        None => "no decision",
    };
    if decision.decision != "reject" {
        if let Err(failed) = undo_by_restore(
            ports,
            &plan_decision_key,
            prior,
            format!(
                "the plan's decision may still read \"{}\" instead of {prior_reads}, although this \
                 decision failed: inventory runs, FirstJob and redrives act on it; a reject with this \
                 token (or, if it stays spent, with the token of the next e-mail) withdraws it",
                decision.decision
            ),
        )
        .await
        {
            undo.push(failed);
        }
    }
    if let Err(failed) = undo_by_delete(
        ports,
        &decision_key,
        "the approval token stays spent: the same message is refused as used, and `resend` finds no \
         pending token (this one reads as decided). A new token comes with the next change of the \
         transfer (a stack update)",
    )
    .await
    {
        undo.push(failed);
    }
    Err(if undo.is_empty() {
        error
    } else {
        WorkflowError::UndoFailed {
            error: Box::new(error),
            undo,
        }
    })
}

async fn act_on_decision<P>(
    ports: &P,
    message: &ApprovalMessage,
    record: &ApprovalRecord,
    record_key: &str,
    decision: &Decision,
    ctx: &StackContext,
) -> Result<ApprovalOutcome, WorkflowError>
where
    P: StateStore + WaitSignal + PreflightApi + Notifier + InventoryRunTrigger + Sync,
{
    let stack_waiting = match (&record.wait_handle_url, record.wait_deadline) {
        (Some(_), Some(deadline)) => {
            record.mode == ApprovalMode::Wait && !record.wait_released && deadline > ctx.now_unix
        }
        _ => false,
    };
    let name = &record.transfer_name;
    match message {
        ApprovalMessage::Approve { .. } => {
            // #15 item 13: the approver approved the manifest its token's e-mails named, no
            // other. Without a pin (the manifest was unreadable when they were sent) there is
            // nothing to hold the approval to: `resend` pins it.
            let Some(pin) = &record.manifest else {
                let (stored, _) = load_plan(ports, &record.plan_fingerprint).await?;
                return Err(WorkflowError::ManifestNotPinned {
                    transfer: record.transfer_name.clone(),
                    manifest: manifest_uri(&stored.spec),
                });
            };
            let checks = preflight_gate(ports, record).await?;
            // The manifest as e-mailed: it must still be there, unchanged, and the launch (here
            // or FirstJob's) must find it so too.
            let (stored, _) = load_plan(ports, &record.plan_fingerprint).await?;
            let m = &stored.spec.manifest;
            let head = ports
                .head_manifest(&m.bucket, &m.key)
                .await
                .map_err(WorkflowError::aws(format!(
                    "reading the manifest s3://{}/{}",
                    m.bucket, m.key
                )))?;
            let etag = head.etag.trim().trim_matches('"').to_string();
            if etag.is_empty() {
                // No ETag to compare (an answer from another Region has none): nothing approved.
                return Err(WorkflowError::Aws {
                    what: format!("reading the manifest s3://{}/{}", m.bucket, m.key),
                    cause: AwsCallError {
                        kind: AwsErrorKind::Other,
                        code: "MissingETag".to_string(),
                        message: "HeadObject returned no ETag to compare with the e-mailed one"
                            .to_string(),
                    },
                });
            }
            // In a versioned bucket the job reads the pinned version, so the approver must be
            // looking at it: the current version must be the pinned one, not merely have its
            // ETag (an MD5 collision could put other rows in a later version with the same ETag).
            let version_moved = pin.version_id.as_deref().is_some_and(|pinned| {
                head.version_id.as_deref().filter(|v| *v != "null") != Some(pinned)
            });
            if etag != pin.etag || version_moved {
                let (pinned, found) = if version_moved {
                    (
                        format!(
                            "{} (version {})",
                            pin.etag,
                            pin.version_id.as_deref().unwrap_or("")
                        ),
                        format!(
                            "{etag} (version {})",
                            head.version_id.as_deref().unwrap_or("none")
                        ),
                    )
                } else {
                    (pin.etag.clone(), etag.clone())
                };
                return Err(WorkflowError::ManifestChanged {
                    transfer: record.transfer_name.clone(),
                    manifest: manifest_uri(&stored.spec),
                    pinned: ferry_plan::untrusted::untrusted(&pinned).into_owned(),
                    found: ferry_plan::untrusted::untrusted(&found).into_owned(),
                });
            }
            let approved = Decision {
                manifest_etag: Some(pin.etag.clone()),
                manifest_version_id: pin.version_id.clone(),
                ..decision.clone()
            };
            // Written before signalling, so FirstJob finds it even if a "deferred" hand-over
            // signal won the race for the WaitCondition.
            ports
                .put(
                    &keys::plan_decision(&record.plan_fingerprint),
                    to_json(&approved),
                )
                .await
                .map_err(WorkflowError::aws("recording the approval"))?;
            if let (true, Some(url)) = (stack_waiting, &record.wait_handle_url) {
                signal(
                    ports,
                    url,
                    WaitStatus::Success,
                    "approved",
                    "approved by the approval topic",
                )
                .await?;
                // FirstJob may have run before this decision was written (a forged signal or the
                // hand-over ended the wait first): it marked the wait over before it looked for
                // a decision, so the mark is visible now, and nobody waits on this signal: the
                // approval launches. (S3 reads are strongly consistent after writes.)
                let ended = read_state::<ApprovalRecord, _>(
                    ports,
                    record_key,
                    "re-reading the approval record",
                )
                .await?
                .is_some_and(|r| r.wait_released);
                if ended
                    && launched_job(ports, &record.plan_fingerprint)
                        .await?
                        .is_none()
                {
                    return Ok(
                        match start_first_copy(ports, &record.plan_fingerprint, ctx).await? {
                            FirstCopy::Job(job) => ApprovalOutcome::JobLaunched(job),
                            FirstCopy::InventoryRun { manifest_key } => {
                                ApprovalOutcome::InventoryRunStarted { manifest_key }
                            }
                        },
                    );
                }
                ports
                    .notify(
                        &format!("Ferry {name}: approved"),
                        &format!(
                            "The approval was received; the stack continues and launches the job.\n\n\
                             Preflight (from the destination account):\n{}",
                            render_checks(&checks)
                        ),
                    )
                    .await
                    .map_err(WorkflowError::aws("announcing the approval"))?;
                Ok(ApprovalOutcome::WaitSignalled)
            } else {
                Ok(
                    match start_first_copy(ports, &record.plan_fingerprint, ctx).await? {
                        FirstCopy::Job(job) => ApprovalOutcome::JobLaunched(job),
                        FirstCopy::InventoryRun { manifest_key } => {
                            ApprovalOutcome::InventoryRunStarted { manifest_key }
                        }
                    },
                )
            }
        }
        ApprovalMessage::Resend | ApprovalMessage::Redrive { .. } => Err(
            WorkflowError::BadMessage(ApprovalMessageError::Unrecognised),
        ),
        ApprovalMessage::Reject { reason, .. } => {
            // Recorded as the plan's decision, so a reject withdraws an earlier approval:
            // inventory runs, FirstJob and redrives then act on nothing. Jobs already running
            // are not cancelled (a stack delete with CancelJobsOnDelete does that).
            ports
                .put(
                    &keys::plan_decision(&record.plan_fingerprint),
                    to_json(decision),
                )
                .await
                .map_err(WorkflowError::aws("recording the rejection"))?;
            let mut stack_signalled = false;
            if let (true, Some(url)) = (stack_waiting, &record.wait_handle_url) {
                signal(
                    ports,
                    url,
                    WaitStatus::Failure,
                    "rejected",
                    &format!("Rejected: {reason}"),
                )
                .await?;
                stack_signalled = true;
            }
            let what_happens = if stack_signalled {
                "The stack rolls back; no job was created."
            } else {
                "No job is created from this plan from now on (inventory runs, FirstJob and redrives \
                 need an approval). Jobs launched earlier are not cancelled: list them with `ferry status`."
            };
            ports
                .notify(
                    &format!("Ferry {name}: rejected"),
                    // The reason is the publisher's text.
                    &format!(
                        "Rejected: {}\n{what_happens}",
                        ferry_plan::untrusted::untrusted(reason)
                    ),
                )
                .await
                .map_err(WorkflowError::aws("announcing the rejection"))?;
            Ok(ApprovalOutcome::Rejected { stack_signalled })
        }
    }
}

/// Preflight between an approval and the job: a check that fails for certain (missing role,
/// manifest or bucket, wrong region, disabled key) refuses the approval before money is spent,
/// and the token is given back so the same message works once fixed. Checks that fail on
/// throttling or a server error make the whole approval retryable instead; checks that can't be
/// made from the destination account don't block.
async fn preflight_gate<P>(ports: &P, record: &ApprovalRecord) -> Result<Vec<Check>, WorkflowError>
where
    P: StateStore + PreflightApi + Sync,
{
    let (stored, plan) = load_plan(ports, &record.plan_fingerprint).await?;
    let checks = preflight(ports, &stored.spec, &plan).await;
    let failed = |c: &&Check| c.status == CheckStatus::Fail;
    if let Some(check) = checks.iter().filter(failed).find(|c| c.transient) {
        return Err(WorkflowError::Aws {
            what: format!("preflight ({})", check.name),
            cause: AwsCallError {
                kind: AwsErrorKind::Transient,
                code: "PreflightInterrupted".to_string(),
                message: check.detail.clone(),
            },
        });
    }
    if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        let order = |c: &&Check| match c.status {
            CheckStatus::Fail => 0,
            CheckStatus::Warn => 1,
            CheckStatus::CannotCheck => 2,
            CheckStatus::Pass => 3,
        };
        let mut shown: Vec<&Check> = checks
            .iter()
            .filter(|c| c.status != CheckStatus::Pass)
            .collect();
        shown.sort_by_key(order);
        return Err(WorkflowError::PreflightFailed {
            transfer: record.transfer_name.clone(),
            report: render_checks(shown),
        });
    }
    Ok(checks)
}

async fn signal<P: WaitSignal + Sync>(
    ports: &P,
    url: &str,
    status: WaitStatus,
    data: &str,
    reason: &str,
) -> Result<(), WorkflowError> {
    ports
        .signal(
            url,
            &WaitConditionSignal {
                status,
                unique_id: APPROVAL_SIGNAL_ID.to_string(),
                data: data.to_string(),
                reason: reason.to_string(),
            },
        )
        .await
        .map_err(WorkflowError::aws("signalling the stack's approval wait"))
}

/// The scheduled check: a wait less than [`RELEASE_WAIT_BEFORE_SECONDS`] from its timeout is
/// signalled `deferred`, so the stack completes instead of rolling back and the approval,
/// whenever it comes, launches the job. Returns the transfers released.
pub async fn release_expiring_waits<P>(
    ports: &P,
    ctx: &StackContext,
) -> Result<Vec<String>, WorkflowError>
where
    P: StateStore + WaitSignal + Notifier + Sync,
{
    let mut released = Vec::new();
    for (key, mut record) in approval_records(ports).await? {
        let (Some(url), Some(deadline)) = (record.wait_handle_url.clone(), record.wait_deadline)
        else {
            continue;
        };
        let decided_key = decision_key_of(&key);
        if record.mode != ApprovalMode::Wait
            || record.wait_released
            || deadline.saturating_sub(ctx.now_unix) > RELEASE_WAIT_BEFORE_SECONDS
            || ports
                .get(&decided_key)
                .await
                .map_err(WorkflowError::aws("reading a decision"))?
                .is_some()
        {
            continue;
        }
        // Marked first: an approval racing this hand-over then launches the job itself.
        record.wait_released = true;
        ports
            .put(&key, to_json(&record))
            .await
            .map_err(WorkflowError::aws("marking the wait as handed over"))?;
        signal(
            ports,
            &url,
            WaitStatus::Success,
            "deferred",
            "no approval before the wait's timeout: completing; approval will launch the job",
        )
        .await?;
        ports
            .notify(
                &format!("Ferry {}: still awaiting approval", record.transfer_name),
                "No approval came before the stack's wait timed out. The stack completes without starting the \
                 job; the approve command from the instructions e-mail still works and starts it.",
            )
            .await
            .map_err(WorkflowError::aws("announcing the hand-over"))?;
        released.push(record.transfer_name.clone());
    }
    Ok(released)
}

/// What deleting the stack did to the transfer's jobs and role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teardown {
    pub cancelled: Vec<String>,
    pub left_running: Vec<String>,
    pub role_deleted: bool,
}

/// Whether the job carries the tags Ferry gave it for this plan (`ferry:transfer` = the plan's
/// transfer name, `ferry:plan` = its fingerprint). A job record in the state bucket can be
/// written by others; the tags are the job's own.
async fn tagged_for<P>(ports: &P, job: &JobRecord) -> Result<bool, WorkflowError>
where
    P: StateStore + JobControl + Sync,
{
    let name = match load_plan(ports, &job.plan_fingerprint).await {
        Ok((stored, _)) => stored.spec.name,
        Err(WorkflowError::PlanMissing { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let tags = ports
        .job_tags(&job.account_id, &job.job_id)
        .await
        .map_err(WorkflowError::aws(format!(
            "reading the tags of job {}",
            job.job_id
        )))?;
    let has = |k: &str, v: &str| tags.iter().any(|t| t.key == k && t.value == v);
    Ok(has(ferry_plan::job::TRANSFER_TAG, &name)
        && has(ferry_plan::job::PLAN_TAG, &job.plan_fingerprint))
}

/// `FirstJob` Delete: never fails the stack, cancels only when asked, reports what it left.
/// Covers every job the stack launched, for every plan it had.
pub async fn delete_jobs<P>(ports: &P, cancel_running: bool) -> Result<Teardown, WorkflowError>
where
    P: StateStore + JobControl + Notifier + Sync,
{
    let mut teardown = Teardown::default();
    for key in ports
        .list(keys::JOBS_PREFIX)
        .await
        .map_err(WorkflowError::aws("listing the transfer's jobs"))?
    {
        let Some(job) = read_state::<JobRecord, _>(ports, &key, "reading a job record").await?
        else {
            continue;
        };
        let status = ports
            .job_status(&job.account_id, &job.job_id)
            .await
            .map_err(WorkflowError::aws(format!("describing job {}", job.job_id)))?;
        // A cancelling job no longer copies, so it needs neither a decision nor the role.
        if is_terminal_job_status(&status) || status == "Cancelling" {
            continue;
        }
        if cancel_running {
            // Only a job tagged as this transfer's is cancelled (#15: records can be forged).
            // Neither a refusal nor a failed tag read fails the deletion: the job is reported.
            match tagged_for(ports, &job).await {
                Ok(true) => {}
                Ok(false) => {
                    teardown.left_running.push(format!(
                        "{} ({status}; not cancelled: it is not tagged as this transfer's job)",
                        job.job_id
                    ));
                    continue;
                }
                Err(e) => {
                    teardown
                        .left_running
                        .push(format!("{} ({status}; not cancelled: {e})", job.job_id));
                    continue;
                }
            }
            match ports.cancel_job(&job.account_id, &job.job_id).await {
                Ok(()) => teardown.cancelled.push(job.job_id),
                // The role cancels only jobs tagged with the stack's current TransferName.
                Err(e) if e.kind == AwsErrorKind::AccessDenied => {
                    teardown.left_running.push(format!(
                        "{} ({status}; not cancelled: {})",
                        job.job_id, e.message
                    ));
                }
                Err(e) => {
                    return Err(WorkflowError::aws(format!("cancelling job {}", job.job_id))(e))
                }
            }
        } else {
            teardown
                .left_running
                .push(format!("{} ({status})", job.job_id));
        }
    }
    Ok(teardown)
}

/// `TransferPlan` Delete: the role goes unless a job still needs it.
pub async fn delete_transfer<P>(
    ports: &P,
    spec: &TransferSpec,
    jobs_left_running: &[String],
) -> Result<Teardown, WorkflowError>
where
    P: RoleAdmin + Notifier + Sync,
{
    let role = batch_role(spec);
    let (role_name, policy_name) = (&role.name, &role.policy_name);
    if !jobs_left_running.is_empty() {
        ports
            .notify(
                &format!("Ferry {}: stack deleted, copy still running", spec.name),
                &format!(
                    "The stack was deleted while these jobs were still running: {}. They keep running; the role \
                     {role_name} was kept so they can finish. When they are done, delete it:\n\n\
                     aws iam delete-role-policy --role-name {role_name} --policy-name {policy_name}\n\
                     aws iam delete-role --role-name {role_name}\n\n\
                     Also remove the statements whose Sid starts with {} from the source account's bucket and key policies.",
                    jobs_left_running.join(", "),
                    ferry_plan::policy::sid(&spec.name, "")
                ),
            )
            .await
            .map_err(WorkflowError::aws("announcing what was left running"))?;
        return Ok(Teardown {
            left_running: jobs_left_running.to_vec(),
            ..Teardown::default()
        });
    }
    ports
        .delete_role(&role)
        .await
        .map_err(WorkflowError::aws("deleting the Batch Operations role"))?;
    Ok(Teardown {
        role_deleted: true,
        ..Teardown::default()
    })
}

/// `s3://bucket/key` of the plan's manifest, for an e-mail.
fn manifest_uri(spec: &TransferSpec) -> String {
    format!(
        "s3://{}/{}",
        spec.manifest.bucket,
        ferry_plan::untrusted::untrusted(&spec.manifest.key)
    )
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// The stored spec of a plan and the plan rebuilt from it.
pub(crate) async fn load_plan<P: StateStore + Sync>(
    ports: &P,
    fingerprint: &str,
) -> Result<(StoredPlan, Plan), WorkflowError> {
    let stored =
        read_state::<StoredPlan, _>(ports, &keys::plan(fingerprint), "reading the stored plan")
            .await?
            .ok_or_else(|| WorkflowError::PlanMissing {
                fingerprint: fingerprint.to_string(),
            })?;
    let plan = Plan::build(&stored.spec)?;
    // The state bucket can be written by others (#15): a plan is what its fingerprint says
    // only if the stored spec still hashes to it, so an overwritten plan (same key, other copy
    // settings) is refused rather than launched on an approval given for the original.
    if plan.transfer.fingerprint != fingerprint || stored.fingerprint != fingerprint {
        return Err(WorkflowError::PlanTampered {
            fingerprint: fingerprint.to_string(),
            found: plan.transfer.fingerprint.clone(),
        });
    }
    Ok((stored, plan))
}

/// A JSON object of the state bucket, `None` when absent.
async fn read_state<T: serde::de::DeserializeOwned, P: StateStore + Sync>(
    ports: &P,
    key: &str,
    what: &str,
) -> Result<Option<T>, WorkflowError> {
    match ports.get(key).await.map_err(WorkflowError::aws(what))? {
        Some(bytes) => Ok(Some(from_json(key, &bytes)?)),
        None => Ok(None),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, WorkflowError> {
    serde_json::from_slice(bytes).map_err(|e| WorkflowError::CorruptState {
        key: key.to_string(),
        message: e.to_string(),
    })
}
