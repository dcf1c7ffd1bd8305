// What each Lambda function's execution role must allow (its job) and must not allow.
//
// HOW TO ADD A FUNCTION (function-roles.test.mjs fails for any AWS::Serverless::Function in
// template.yaml without an entry here):
//
//   1. Read the function's code (functions/<name>/src, the ferry-flows workflow it calls and the
//      ferry-aws adapters in crates/ferry-aws/src/*.rs) and list every AWS call it makes with the
//      IAM action it needs (HeadObject → s3:GetObject, HeadBucket → s3:ListBucket, CreateJob with
//      Tags → s3:CreateJob + s3:PutJobTagging, ...).
//   2. Add an entry keyed by the function's logical id:
//
//        MyNewFunction: {
//          code: 'functions/my-new/ (what it does, in a few words)',
//          allowed: (t) => [...lambdaLogs(t), access('s3:GetObject', t.s3.object(t.stateBucket, 'x/y.json'), 'why it needs it'), ...],
//          denied: (t) => [...commonDenied(t), access('s3:DeleteObject', ..., 'why it must not'), ...],
//        },
//
//      `t` describes one deployment (see `deployment()` in function-roles.test.mjs): accounts,
//      region, partition, parameter values `t.p`, the stack's resources with fake physical ids
//      (`t.stateBucket`, `t.notificationTopicArn`, `t.ref(logicalId)`, `t.att(logicalId, attr)`),
//      the function itself (`t.fn`), the transfer's keys (`t.keys`), the stack's id
//      (`t.stackId`), ARN builders (`t.s3`, `t.jobArn`, `t.roleArn`, `t.kmsKey`, `t.stackArn`)
//      and foreign accounts/names to use in denials.
//      An access is `access(action, resource, why, { owner, context })`: `owner` is the
//      account owning the resource (default: the stack's account; another account's resources
//      get a resource policy trusting the function's account, so only the role's own policy
//      decides); `context` adds request context keys (s3:ResourceAccount is filled in for s3
//      actions). Every supplied context key must be one the simulator evaluates for the action.
//   3. Run `bash tests/iam/run.sh`. A failing "allowed" check names the statements that did not
//      apply; a failing "denied" check names the statement that allowed it. Fix the template,
//      not the expectation, unless the code really needs the access.
//
// `commonDenied(t)` holds what no function may do (other roles, other buckets, deletes, the
// approval topic, keys, ...); a function whose job needs one of those accesses filters it out
// with `without(commonDenied(t), ...)` (an action name or a predicate) and says why in a
// comment, e.g. a copier that reads source objects drops the source GetObject denial only.

export const BATCH_OPERATIONS = 'batchoperations.s3.amazonaws.com'

/** One simulated request. */
export function access(action, resource, why, { owner, context = {} } = {}) {
  return { action, resource, why, owner, context }
}

/**
 * `list` minus the accesses a matcher selects (for a job that needs a common denial): a matcher
 * is an action name (every access to it) or a predicate on the access, e.g.
 * `without(commonDenied(t), (a) => a.action === 's3:GetObject' && a.resource.startsWith(t.s3.bucket(t.p.SourceBucket)))`.
 */
export function without(list, ...matchers) {
  const selects = (a) => matchers.some((m) => (typeof m === 'function' ? m(a) : a.action === m))
  return list.filter((a) => !selects(a))
}

// ---------------------------------------------------------------------------------------------
// Building blocks shared by several functions.

/** Writing its own logs (AWSLambdaBasicExecutionRole, which SAM attaches). */
export function lambdaLogs(t) {
  const stream = t.logs.stream(t.fn.logGroupName, '2025/01/01/[$LATEST]0123456789abcdef')
  return [
    access('logs:CreateLogStream', stream, 'Lambda creates a log stream per execution environment'),
    access('logs:PutLogEvents', stream, 'Lambda writes the function logs'),
  ]
}

/** The state bucket through ferry-aws's StateStore: Get/Put (plain and If-None-Match), List. */
export function stateReadWrite(t, keys) {
  return [
    ...keys.flatMap((key) => [
      access('s3:GetObject', t.s3.object(t.stateBucket, key), `StateStore::get ${key}`),
      access('s3:PutObject', t.s3.object(t.stateBucket, key), `StateStore::put / put_if_absent ${key}`),
    ]),
    access('s3:ListBucket', t.s3.bucket(t.stateBucket), 'StateStore::list (ListObjectsV2 under jobs/ and approvals/)'),
  ]
}

/** Launching the plan's job: HeadObject on the manifest (and GetObject of an inventory's manifest.json, decrypted by S3 with the inventory key), CreateJob (with Tags) passing the batch role. */
/**
 * An [inventory] transfer's first copy is an inventory run: the approval (or FirstJob) invokes
 * the stack's inventory-handler asynchronously (ferry-flows workflow::start_first_copy). Without
 * inventory runs there is no such function, and no grant.
 */
export function startFirstInventoryRun(t) {
  const fn = t.functionArn(`${t.stackName}-inventory-handler`)
  // The copier trusts its payload (it runs as the batch role): only Batch Operations calls it.
  const copier = access('lambda:InvokeFunction', t.functionArn(`${t.stackName}-large-object-copier`), 'only Batch Operations invokes the copier')
  const qualified = access('lambda:InvokeFunction', `${fn}:1`, 'the grant is the unqualified function only')
  return t.p.InventoryRuns === 'true'
    ? { allowed: [access('lambda:InvokeFunction', fn, 'the first copy of an [inventory] transfer is an inventory run')], denied: [copier, qualified] }
    : { allowed: [], denied: [copier, access('lambda:InvokeFunction', fn, 'no inventory runs in this stack')] }
}

export function launchJob(t) {
  return [
    access('s3:GetObject', t.s3.object(t.p.ManifestBucket, t.p.ManifestKey), 'HeadObject on the manifest: the ETag the approval e-mails pin and CreateJob needs', { owner: t.manifestAccount }),
    ...(t.keys.manifest
      ? [access('kms:Decrypt', t.keys.manifest.arn, 'S3 decrypts an SSE-KMS inventory manifest.json the launcher reads (all versions?)', { owner: t.keys.manifest.account, context: { 'kms:ViaService': viaS3(t.p.SourceRegion, t.partition) } })]
      : []),
    access('s3:CreateJob', '*', 'CreateJob (no resource type)'),
    access('s3:PutJobTagging', t.jobArn('job-0001'), 'CreateJob with Tags needs s3:PutJobTagging'),
    access('iam:PassRole', t.batchRoleArn, 'CreateJob passes the Batch Operations role', { context: { 'iam:PassedToService': BATCH_OPERATIONS } }),
  ]
}

/** The endpoint KMS sees as kms:ViaService when S3 calls it for a bucket in `region`. */
function viaS3(region, partition) {
  return `s3.${region}.${partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com'}`
}

/** Reading a finished job's completion report (manifest.json and result CSVs) through S3. */
export function readCompletionReports(t) {
  const report = t.keys.report
  return [
    access('s3:GetObject', t.s3.object(t.p.ReportBucket, `${t.p.ReportPrefix}/job-0001/manifest.json`), 'the completion report\'s manifest.json', { owner: t.reportAccount }),
    access('s3:GetObject', t.s3.object(t.p.ReportBucket, `${t.p.ReportPrefix}/job-0001/results/0123.csv`), 'the completion report\'s result CSVs', { owner: t.reportAccount }),
    ...(report
      ? [access('kms:Decrypt', report.arn, 'S3 decrypts the report with the report key for it', { owner: report.account, context: { 'kms:ViaService': `s3.${t.region}.${t.partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com'}` } })]
      : []),
  ]
}

/** What no function of the stack may do. */
export function commonDenied(t) {
  const other = t.foreign
  const stateKey = 'plans/0123abcd.json'
  return [
    // The state bucket is the audit trail: no deletes (the give-backs are the exceptions,
    // each scoped to the claims and marks its function takes back), no policy or bucket changes.
    // Writes: each function only its own records (ownStateWrites / othersStateWrites below).
    access('s3:DeleteObject', t.s3.object(t.stateBucket, stateKey), 'stored plans are the audit trail'),
    access('s3:DeleteObject', t.s3.object(t.stateBucket, 'approvals/0123abcd.json'), 'approval records are the audit trail'),
    access('s3:DeleteObject', t.s3.object(t.stateBucket, 'jobs/0123abcd/job-0001.json'), 'job records are the audit trail'),
    access('s3:DeleteObjectVersion', t.s3.object(t.stateBucket, stateKey), 'versions keep every state change'),
    access('s3:PutBucketPolicy', t.s3.bucket(t.stateBucket), 'state bucket policy is the stack\'s'),
    access('s3:DeleteBucket', t.s3.bucket(t.stateBucket), 'the state bucket is retained'),
    access('s3:PutBucketVersioning', t.s3.bucket(t.stateBucket), 'versioning must stay on'),
    access('s3:PutLifecycleConfiguration', t.s3.bucket(t.stateBucket), 'lifecycle is the stack\'s'),
    // Data buckets: the functions never touch objects; the Batch Operations role copies.
    access('s3:GetObject', t.s3.object(t.p.SourceBucket, 'data/file.bin'), 'source objects are read by the job role only', { owner: t.p.SourceAccountId }),
    access('s3:PutObject', t.s3.object(t.p.SourceBucket, 'data/file.bin'), 'never write the source', { owner: t.p.SourceAccountId }),
    access('s3:DeleteObject', t.s3.object(t.p.SourceBucket, 'data/file.bin'), 'never delete from the source', { owner: t.p.SourceAccountId }),
    access('s3:GetObject', t.s3.object(t.p.DestinationBucket, 'data/file.bin'), 'copies are written by the job role only'),
    access('s3:PutObject', t.s3.object(t.p.DestinationBucket, 'data/file.bin'), 'copies are written by the job role only'),
    access('s3:DeleteObject', t.s3.object(t.p.DestinationBucket, 'data/file.bin'), 'never delete copies'),
    access('s3:PutObject', t.s3.object(t.p.ReportBucket, `${t.p.ReportPrefix}/job-0001/results/x.csv`), 'reports are written by the job role', { owner: t.reportAccount }),
    access('s3:PutObject', t.s3.object(t.p.ManifestBucket, t.p.ManifestKey), 'never overwrite the manifest', { owner: t.manifestAccount }),
    access('s3:GetObject', t.s3.object(t.p.ManifestBucket, `${t.p.ManifestKey}.other`), 'only the manifest object itself', { owner: t.manifestAccount }),
    access('s3:GetObject', t.s3.object(t.p.ManifestBucket, t.p.ManifestKey), 'the same bucket name owned by another account (s3:ResourceAccount)', { owner: other.account }),
    access('s3:PutObject', t.s3.object(other.bucket, 'x'), 's3:PutObject only in the state bucket'),
    access('s3:GetObject', t.s3.object(other.bucket, 'x'), 'no other bucket'),
    access('s3:PutBucketPolicy', t.s3.bucket(t.p.SourceBucket), 'bucket policies are applied by people', { owner: t.p.SourceAccountId }),
    access('s3:PutBucketPolicy', t.s3.bucket(t.p.DestinationBucket), 'bucket policies are applied by people'),
    // Stacks: only stack-handler reads one, its own (ReadThisStacksStatus).
    access('cloudformation:DescribeStacks', t.stackArn('other-stack'), 'no function reads another stack'),
    // Roles: nothing on other roles, nothing that escalates.
    access('iam:PassRole', t.batchRoleArn, 'the batch role goes to Batch Operations only', { context: { 'iam:PassedToService': 'lambda.amazonaws.com' } }),
    access('iam:PassRole', t.batchRoleArn, 'the batch role goes to Batch Operations only', { context: { 'iam:PassedToService': 'ec2.amazonaws.com' } }),
    access('iam:PassRole', t.roleArn(other.roleName), 'no other role', { context: { 'iam:PassedToService': BATCH_OPERATIONS } }),
    access('iam:PassRole', t.fn.roleArn, 'not its own role', { context: { 'iam:PassedToService': 'lambda.amazonaws.com' } }),
    access('iam:CreateRole', t.roleArn(other.roleName), 'no role but the transfer\'s batch role'),
    access('iam:PutRolePolicy', t.roleArn(other.roleName), 'no role but the transfer\'s batch role'),
    access('iam:PutRolePolicy', t.fn.roleArn, 'a function must not widen its own role'),
    access('iam:AttachRolePolicy', t.fn.roleArn, 'a function must not widen its own role'),
    access('iam:AttachRolePolicy', t.batchRoleArn, 'the batch role has its inline policy only'),
    access('iam:UpdateAssumeRolePolicy', t.fn.roleArn, 'a function must not change who may assume its role'),
    access('iam:CreateUser', t.iamArn('user/ferry-intruder'), 'no users'),
    access('iam:CreateAccessKey', t.iamArn('user/admin'), 'no credentials'),
    access('sts:AssumeRole', t.batchRoleArn, 'only Batch Operations assumes the batch role'),
    // Jobs elsewhere.
    access('s3:UpdateJobStatus', t.jobArn('job-0001', { account: other.account }), 'jobs of another account'),
    access('s3:UpdateJobStatus', t.jobArn('job-0001', { region: t.otherRegion }), 'jobs in another region'),
    access('s3:DeleteJobTagging', t.jobArn('job-0001'), 'job tags identify Ferry\'s jobs'),
    // Topics, queues, functions.
    access('sns:Publish', t.approvalTopicArn, 'approvals come from people, never from the functions'),
    access('sns:Publish', t.topicArn(other.topicName), 'only the stack\'s notification topic'),
    access('sns:Subscribe', t.notificationTopicArn, 'subscriptions are the stack\'s'),
    access('sns:SetTopicAttributes', t.approvalTopicArn, 'the approval topic policy is the stack\'s'),
    access('sqs:SendMessage', t.queueArn(other.queueName), 'no other queue'),
    access('sqs:ReceiveMessage', t.failedEventsQueueArn, 'failed events are for people to look at'),
    access('lambda:UpdateFunctionCode', t.fn.arn, 'a function must not replace its own code'),
    access('lambda:InvokeFunction', t.functionArn(other.functionName), 'no other function'),
    // State machines: only inventory-handler starts one, the stack's fan-out (#18).
    access('states:StartExecution', t.stateMachineArn(`${t.stackName}-inventory-fanout`), 'only inventory-handler starts the fan-out'),
    access('states:StartExecution', t.stateMachineArn('other-machine'), 'no other state machine'),
    access('states:StopExecution', t.executionArn(`${t.stackName}-inventory-fanout`, 'ferry-0123456789abcdef0123456789abcdef'), 'a fan-out is stopped by nobody but Step Functions'),
    // Keys: the functions never encrypt or decrypt; at most approval-handler describes them.
    ...Object.entries(t.keys).flatMap(([which, key]) => [
      access('kms:Decrypt', key.arn, `the ${which} key is used by S3 for the job role only`, { owner: key.account }),
      access('kms:GenerateDataKey', key.arn, `the ${which} key is used by S3 for the job role only`, { owner: key.account }),
      access('kms:PutKeyPolicy', key.arn, `the ${which} key policy is applied by people`, { owner: key.account }),
    ]),
    access('kms:DescribeKey', t.kmsKey(other.account), 'no other key', { owner: other.account }),
    access('kms:Decrypt', t.kmsKey(t.account), 'no other key of this account'),
    // Logs of others.
    access('logs:DeleteLogGroup', t.logs.group(t.fn.logGroupName), 'log retention is the stack\'s'),
  ]
}

/** A denial of every iam write on the batch role (for functions that only read or pass it). */
function batchRoleWrites(t) {
  return ['iam:CreateRole', 'iam:PutRolePolicy', 'iam:DeleteRolePolicy', 'iam:UpdateAssumeRolePolicy', 'iam:DeleteRole', 'iam:TagRole'].map((a) =>
    access(a, t.batchRoleArn, 'only stack-handler (TransferPlan) manages the batch role'),
  )
}

const FINGERPRINT = '0123abcd'
const TOKEN_HASH = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'

const SH = 'StackHandlerFunction'
const AH = 'ApprovalHandlerFunction'
const JM = 'JobMonitorFunction'
const IH = 'InventoryHandlerFunction'
const RUN = `inventory/${FINGERPRINT}/runs/run-1`

/**
 * #15 item 2, per-function write prefixes: one key of every kind of state record the code
 * writes (s3:PutObject, plain or conditional; multipart uploads are s3:PutObject too), with the
 * functions whose code writes it and where. Each function's role may write exactly the keys it is
 * listed for (its allowed table), none of the others (its denied table), and StateBucketPolicy
 * holds each family to the same writers whatever a role's policy says ("the state bucket is
 * written only by the stack", function-roles.test.mjs). `StateOperatorArn`, when set, may write
 * any of them (break-glass; `ferry redrive` writes redrive/ and jobs/).
 */
export const STATE_RECORDS = [
  { key: `plans/${FINGERPRINT}.json`, writers: [SH], code: 'workflow::store_plan (TransferPlan Create/Update)' },
  { key: 'plans/current.json', writers: [SH], code: 'workflow::record_current_plan (every TransferPlan Create/Update)' },
  { key: `approvals/${TOKEN_HASH}.json`, writers: [SH, AH], code: 'workflow::send_instructions (TransferPlan; resend), end_waits_of (FirstJob), release_expiring_waits (schedule)' },
  { key: `approvals/${TOKEN_HASH}.decision`, writers: [SH, AH], code: 'workflow::retire_pending_approvals (a changed plan), handle_approval_from, resend_instructions' },
  { key: 'approvals/resend-1795000500.claim', writers: [AH], code: 'workflow::resend_instructions' },
  { key: `decisions/${FINGERPRINT}.json`, writers: [AH], code: 'workflow::act_on_decision, its undo_by_restore' },
  { key: `jobs/${FINGERPRINT}/job-0001.json`, writers: [SH, AH, IH], code: 'workflow::launch_job (FirstJob; an approval), report::redrive, inventory::run launch_one' },
  { key: 'redrive/job-0001/manifest.csv', writers: [AH], code: 'report::redrive' },
  { key: 'redrive/job-0001/redrive.json', writers: [AH], code: 'report::redrive' },
  { key: 'reports/job-0001/breakdown.json', writers: [JM], code: 'report::monitor' },
  { key: 'monitor/job-0001/Complete.announced', writers: [JM], code: 'report::monitor (the once-per-status claim)' },
  { key: `inventory/${FINGERPRINT}/current.json`, writers: [IH, JM], code: 'delta::commit_run (job-monitor; inventory-handler for a run without jobs), delta::current_index\'s layout migration (inventory-handler)' },
  { key: `${RUN}/jobs/job-0001.json`, writers: [IH, JM], code: 'delta::job_finished_with (job-monitor); inventory-handler may write all of inventory/' },
  { key: `${RUN}/index-committed/shard-00-00000.bin`, writers: [IH, JM], code: 'delta::commit_run without the failed objects (job-monitor)' },
  { key: `inventory/${FINGERPRINT}/latest.json`, writers: [IH], code: 'inventory::run' },
  { key: 'inventory/jobs/job-0001.json', writers: [IH], code: 'inventory::run (which run a job is of)' },
  { key: `${RUN}/claim.json`, writers: [IH], code: 'inventory::run' },
  { key: `${RUN}/run.json`, writers: [IH], code: 'inventory::run' },
  { key: `${RUN}/notice-refused`, writers: [IH], code: 'inventory::run' },
  { key: `${RUN}/index/shard-00-00000.bin`, writers: [IH], code: 'the pending delta index' },
  { key: `${RUN}/index-migrated/shard-00-00000.bin`, writers: [IH], code: 'delta::current_index (layout 1 migrated)' },
  { key: `${RUN}/copy/manifest.json`, writers: [IH], code: 'inventory::run launch_parts (the batch role reads it)' },
  { key: `${RUN}/data/000000.csv.gz`, writers: [IH], code: 'inventory::run upload_part (the batch role reads it)' },
  { key: `${RUN}/fanout/run.json`, writers: [IH], code: 'inventory::fanout' },
  { key: `${RUN}/fanout/spill/00000/000000.bin`, writers: [IH], code: 'inventory::fanout spill parts' },
  { key: `${RUN}/fanout/failures/scan-00000.txt`, writers: [IH], code: 'inventory::fanout step failures' },
  { key: 'elsewhere/x.json', writers: [], code: 'no record of Ferry\'s' },
]

/** The StateStore writes `fnId`'s code makes: s3:PutObject on each key it is a writer of. */
export function ownStateWrites(t, fnId) {
  return STATE_RECORDS.filter((r) => r.writers.includes(fnId)).map((r) =>
    access('s3:PutObject', t.s3.object(t.stateBucket, r.key), `StateStore::put / put_if_absent / upload ${r.key}: ${r.code}`),
  )
}

/** s3:PutObject on every kind of state record `fnId`'s code doesn't write: another's prefix. */
export function othersStateWrites(t, fnId) {
  return STATE_RECORDS.filter((r) => !r.writers.includes(fnId)).map((r) =>
    access('s3:PutObject', t.s3.object(t.stateBucket, r.key), r.writers.length ? `${r.key} is written by ${r.writers.join(', ')} only (${r.code})` : 'no function writes outside its prefixes'),
  )
}

// ---------------------------------------------------------------------------------------------
// The table, by logical id.

export const FUNCTION_EXPECTATIONS = {
  StackHandlerFunction: {
    code: 'functions/stack-handler (TransferPlan: role, stored plan, approval record, e-mail; FirstJob: launch, cancel on delete)',
    allowed: (t) => [
      ...lambdaLogs(t),
      ...stateReadWrite(t, [`plans/${FINGERPRINT}.json`, `approvals/${TOKEN_HASH}.json`, `jobs/${FINGERPRINT}/job-0001.json`]),
      ...ownStateWrites(t, SH),
      access('s3:GetObject', t.s3.object(t.stateBucket, `decisions/${FINGERPRINT}.json`), 'FirstJob reads the recorded approval'),
      access('sns:Publish', t.notificationTopicArn, 'instructions and job news'),
      access('sqs:SendMessage', t.att('CustomResourceFailuresQueue', 'Arn'), 'DeadLetterQueue: CloudFormation invokes custom resources asynchronously; Lambda sends events that failed every retry with the function role'),
      // RoleAdmin::apply_role / delete_role on the transfer's batch role.
      ...['iam:GetRole', 'iam:TagRole'].map((a) =>
        access(a, t.batchRoleArn, 'TransferPlan reads the batch role (CreateRole with Tags needs iam:TagRole)'),
      ),
      // ...and creates, updates and deletes it, always with BatchRoleBoundary as its permissions
      // boundary (iam:PermissionsBoundary: the requested one for CreateRole and
      // PutRolePermissionsBoundary, the role's present one for the others).
      ...['iam:CreateRole', 'iam:PutRolePermissionsBoundary', 'iam:UpdateAssumeRolePolicy', 'iam:PutRolePolicy', 'iam:DeleteRolePolicy', 'iam:DeleteRole'].map((a) =>
        access(a, t.batchRoleArn, 'TransferPlan creates, updates and deletes the batch role within its boundary', {
          context: { 'iam:PermissionsBoundary': t.ref('BatchRoleBoundary') },
        }),
      ),
      ...launchJob(t),
      ...startFirstInventoryRun(t).allowed,
      // InventoryTrigger (ferry-aws inventory::enable_eventbridge_delivery): read-modify-write of
      // the inventory bucket's notification configuration, only with event-driven runs.
      ...(t.p.InventoryRuns === 'true'
        ? ['s3:GetBucketNotification', 's3:PutBucketNotification'].map((a) =>
            access(a, t.s3.bucket(t.p.ManifestBucket), 'InventoryTrigger turns on EventBridge delivery, keeping the owner\'s notifications', { owner: t.manifestAccount }),
          )
        : []),
      // Before acting on any event: is this stack in an operation (ferry-flows stack_status)?
      access('cloudformation:DescribeStacks', t.stackId, 'is the stack in an operation? CloudFormation sends custom-resource events only then'),
      access('s3:DescribeJob', t.jobArn('job-0001'), 'FirstJob Delete: is the job still running?'),
      access('s3:GetJobTagging', t.jobArn('job-0001'), 'FirstJob Delete: is the job this transfer\'s?'),
      access('s3:UpdateJobStatus', t.jobArn('job-0001'), 'FirstJob Delete with CancelJobsOnDelete cancels this transfer\'s jobs', { context: { 'aws:ResourceTag/ferry:transfer': t.p.TransferName } }),
    ],
    denied: (t) => [
      ...commonDenied(t),
      ...othersStateWrites(t, SH),
      ...startFirstInventoryRun(t).denied,
      // DescribeStacks of its own stack only, and nothing else on it.
      access('cloudformation:DescribeStacks', t.stackArn(t.stackName), 'a later stack of the same name (another id)'),
      access('cloudformation:DescribeStacks', t.stackArn(t.stackName, { region: t.otherRegion }), 'a stack of the same name in another Region'),
      ...['cloudformation:UpdateStack', 'cloudformation:DeleteStack', 'cloudformation:SignalResource', 'cloudformation:DescribeStackResource'].map((a) =>
        access(a, t.stackId, 'it only reads the stack\'s status'),
      ),
      // A forged job record must not get another job cancelled.
      access('s3:UpdateJobStatus', t.jobArn('payroll-0001'), 'a job of another transfer', { context: { 'aws:ResourceTag/ferry:transfer': 'payroll' } }),
      access('s3:UpdateJobStatus', t.jobArn('untagged-0001'), 'a job without Ferry\'s tag'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `approvals/${TOKEN_HASH}.decision`), 'only approval-handler gives a token back'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `decisions/${FINGERPRINT}.json`), 'only approval-handler gives a token back'),
      access('iam:GetRolePolicy', t.batchRoleArn, 'stack-handler writes the batch role policy, it never reads it back (preflight is approval-handler\'s)'),
      // #15: never without the boundary, never with another, never taking it off.
      ...['iam:CreateRole', 'iam:PutRolePolicy', 'iam:UpdateAssumeRolePolicy', 'iam:DeleteRole'].flatMap((a) => [
        access(a, t.batchRoleArn, 'the batch role only ever under BatchRoleBoundary'),
        access(a, t.batchRoleArn, 'not under another boundary', { context: { 'iam:PermissionsBoundary': t.iamArn('policy/AdministratorAccess') } }),
      ]),
      access('iam:DeleteRolePermissionsBoundary', t.batchRoleArn, 'the boundary stays', { context: { 'iam:PermissionsBoundary': t.ref('BatchRoleBoundary') } }),
      access('iam:ListRoles', '*', 'no listing of the account\'s roles'),
      access('s3:ListBucket', t.s3.bucket(t.p.SourceBucket), 'preflight (bucket regions) is approval-handler\'s', { owner: t.p.SourceAccountId }),
      access('s3:GetBucketOwnershipControls', t.s3.bucket(t.p.DestinationBucket), 'preflight is approval-handler\'s'),
      ...Object.entries(t.keys).map(([which, key]) => access('kms:DescribeKey', key.arn, `preflight of the ${which} key is approval-handler's`, { owner: key.account })),
      access('s3:ListJobs', '*', 'jobs are found through the state bucket'),
      access('sqs:SendMessage', t.failedEventsQueueArn, 'its failed events (with their ResponseURL) go to a queue of their own'),
    ],
  },

  ApprovalHandlerFunction: {
    code: 'functions/approval-handler (approve/reject/resend from the approval topic, preflight, deferred launch, deadline check)',
    allowed: (t) => [
      ...lambdaLogs(t),
      ...stateReadWrite(t, [`approvals/${TOKEN_HASH}.json`, `approvals/${TOKEN_HASH}.decision`, `decisions/${FINGERPRINT}.json`, `jobs/${FINGERPRINT}/job-0001.json`]),
      ...ownStateWrites(t, AH),
      access('s3:GetObject', t.s3.object(t.stateBucket, `plans/${FINGERPRINT}.json`), 'preflight and launch load the stored plan'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `approvals/${TOKEN_HASH}.decision`), 'a failed decision gives the token back'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `decisions/${FINGERPRINT}.json`), 'a failed decision gives the token back'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, 'approvals/resend-1795000500.claim'), 'a re-send whose e-mail failed gives its quarter hour back'),
      access('sns:Publish', t.notificationTopicArn, 'approval outcomes and refusals'),
      access('sqs:SendMessage', t.failedEventsQueueArn, 'DeadLetterQueue: Lambda sends failed asynchronous events with the function role'),
      // Preflight (ferry-aws preflight.rs).
      access('iam:GetRole', t.batchRoleArn, 'preflight reads the batch role\'s trust policy'),
      access('iam:GetRolePolicy', t.batchRoleArn, 'preflight reads the batch role\'s permissions policy'),
      access('s3:ListBucket', t.s3.bucket(t.p.SourceBucket), 'HeadBucket: the source bucket\'s region', { owner: t.p.SourceAccountId }),
      access('s3:ListBucket', t.s3.bucket(t.p.DestinationBucket), 'HeadBucket: the destination bucket\'s region'),
      access('s3:ListBucket', t.s3.bucket(t.p.ManifestBucket), 'HeadBucket: the manifest bucket\'s region', { owner: t.manifestAccount }),
      access('s3:ListBucket', t.s3.bucket(t.p.ReportBucket), 'HeadBucket: the report bucket\'s region', { owner: t.reportAccount }),
      access('s3:GetBucketOwnershipControls', t.s3.bucket(t.p.DestinationBucket), 'the destination\'s object ownership'),
      ...Object.entries(t.keys).map(([which, key]) => access('kms:DescribeKey', key.arn, `preflight: is the ${which} key enabled and customer managed?`, { owner: key.account })),
      // Deferred approval launches the job itself (or starts the first inventory run).
      ...launchJob(t),
      ...startFirstInventoryRun(t).allowed,
      // Redrive ({"action":"redrive","job_id":…}): is it Ferry's job, which tasks failed, then a
      // new job over a CSV manifest of those in the state bucket.
      access('s3:GetJobTagging', t.jobArn('job-0001'), 'redrive: the job must carry ferry:transfer'),
      access('s3:DescribeJob', t.jobArn('job-0001'), 'redrive: is the job finished, where is its report (report::redrive calls DescribeJob)'),
      ...readCompletionReports(t),
      access('s3:PutObject', t.s3.object(t.stateBucket, 'redrive/job-0001/manifest.csv'), 'redrive: the failed tasks\' manifest'),
      // Only rows of the job's own manifest are redriven (#15 item 8): for an inventory transfer
      // that manifest is elsewhere in the manifest bucket (report::job_manifest).
      access('s3:GetObject', t.s3.object(t.p.ManifestBucket, 'inventory/media-source/all/data/0123.csv.gz'), 'redrive: an inventory job\'s data files', { owner: t.manifestAccount }),
      access('s3:GetObject', t.s3.object(t.p.ManifestBucket, 'inventory/media-source/all/2025-01-02T01-00Z/ferry-run1/copy.csv'), 'redrive: an inventory run\'s manifest', { owner: t.manifestAccount }),
      // The plan's job is created on the manifest version its approval e-mails named (#15 item
      // 13, ObjectVersionId): its redrive reads that version (GetObject ?versionId).
      access('s3:GetObjectVersion', t.s3.object(t.p.ManifestBucket, t.p.ManifestKey), 'redrive: the pinned version of the plan\'s manifest', { owner: t.manifestAccount }),
    ],
    denied: (t) => [
      // The manifest bucket is read whole (ReadManifests), in its owner's account only.
      ...without(commonDenied(t), (a) => a.action === 's3:GetObject' && a.resource.startsWith(t.s3.object(t.p.ManifestBucket, '')) && a.owner !== t.foreign.account),
      access('s3:PutObject', t.s3.object(t.p.ManifestBucket, 'inventory/media-source/all/data/0123.csv.gz'), 'never writes inventories', { owner: t.manifestAccount }),
      ...othersStateWrites(t, AH),
      ...batchRoleWrites(t),
      ...startFirstInventoryRun(t).denied,
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `approvals/${TOKEN_HASH}.decision/x`), 'give-back is limited to decision objects'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `approvals/${TOKEN_HASH}.json`), 'an approval record is never deleted'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `plans/${FINGERPRINT}.json`), 'stored plans are the audit trail'),
      // It launches jobs but never watches or changes them (that is stack-handler's FirstJob
      // Delete): confirming or cancelling any job of the account is not its business.
      access('s3:UpdateJobStatus', t.jobArn('job-0001'), 'approval-handler never confirms or cancels jobs'),
      access('s3:DescribeJob', t.jobArn('job-0001', { account: t.foreign.account }), 'redrive describes only jobs of this account'),
      access('s3:ListBucket', t.s3.bucket(t.foreign.bucket), 'preflight HeadBucket is limited to the transfer\'s buckets'),
      access('s3:GetBucketOwnershipControls', t.s3.bucket(t.p.SourceBucket), 'only the destination\'s ownership is checked', { owner: t.p.SourceAccountId }),
      access('s3:PutBucketOwnershipControls', t.s3.bucket(t.p.DestinationBucket), 'preflight only reads'),
      access('s3:GetObject', t.s3.object(t.p.ReportBucket, 'elsewhere/job-0001/manifest.json'), 'only completion reports under the report prefix', { owner: t.reportAccount }),
      access('s3:PutObject', t.s3.object(t.p.ReportBucket, `${t.p.ReportPrefix}/job-0001/manifest.json`), 'reports are written by Batch Operations only', { owner: t.reportAccount }),
    ],
  },

  LargeObjectCopierFunction: {
    code: 'functions/large-object-copier (LambdaInvoke target: multipart copy done as the batch role, which it assumes)',
    allowed: (t) => [
      ...lambdaLogs(t),
      // The source account's policies name one principal, the batch role: the copier works as it
      // (its trust policy names the copier's role, proven in simulate.test.mjs).
      access('sts:AssumeRole', t.batchRoleArn, 'the copy runs with the batch role\'s permissions'),
      // Before acting, it looks up the job the payload names (ferry-flows large_object::invoking_job).
      access('s3:DescribeJob', t.jobArn('job-0001'), 'is the invoking job a LambdaInvoke job of this function, as the batch role, with these arguments?'),
      access('s3:GetJobTagging', t.jobArn('job-0001'), 'is the invoking job tagged ferry:transfer = this transfer?'),
    ],
    denied: (t) => [
      // Assuming the batch role is this function's whole job; every other common denial holds.
      ...without(commonDenied(t), (a) => a.action === 'sts:AssumeRole' && a.resource === t.batchRoleArn),
      ...batchRoleWrites(t),
      // With its own role it touches no data at all: every S3 and KMS access goes through the
      // assumed batch role.
      access('s3:GetObject', t.s3.object(t.p.SourceBucket, 'big/object.bin'), 'reads only as the batch role', { owner: t.p.SourceAccountId }),
      access('s3:PutObject', t.s3.object(t.p.DestinationBucket, 'big/object.bin'), 'writes only as the batch role'),
      access('s3:AbortMultipartUpload', t.s3.object(t.p.DestinationBucket, 'big/object.bin'), 'aborts only as the batch role'),
      access('s3:GetObject', t.s3.object(t.stateBucket, `plans/${FINGERPRINT}.json`), 'the copier needs no state: its settings come in the task'),
      ...othersStateWrites(t, 'LargeObjectCopierFunction'),
      // The invoking job's manifest (is the task one of its rows? ferry-flows large_object::job_manifest)
      // is read as the batch role, who Batch Operations reads it as: no grant of its own.
      access('s3:GetObject', t.s3.object(t.p.ManifestBucket, t.p.ManifestKey), 'reads the job\'s manifest only as the batch role', { owner: t.manifestAccount }),
      access('sns:Publish', t.notificationTopicArn, 'results go to the completion report, not e-mail'),
      access('s3:CreateJob', '*', 'the copier never creates jobs'),
      access('iam:PassRole', t.batchRoleArn, 'the copier passes no role', { context: { 'iam:PassedToService': BATCH_OPERATIONS } }),
      access('sts:AssumeRole', t.roleArn(t.foreign.roleName), 'no role but the batch role'),
      access('sqs:SendMessage', t.failedEventsQueueArn, 'Batch Operations invokes it synchronously: no dead-letter queue'),
      // It reads jobs, never changes them, and only jobs of its own account and Region.
      access('s3:DescribeJob', t.jobArn('job-0001', { account: t.foreign.account }), 'only jobs of this account invoke it'),
      access('s3:DescribeJob', t.jobArn('job-0001', { region: t.otherRegion }), 'only jobs of this Region invoke it'),
      access('s3:UpdateJobStatus', t.jobArn('job-0001'), 'the copier never confirms or cancels jobs'),
      access('s3:PutJobTagging', t.jobArn('job-0001'), 'the copier never tags jobs'),
    ],
  },

  JobMonitorFunction: {
    code: 'functions/job-monitor (JobStatusChanged → DescribeJob, completion report, summary e-mail, breakdown in S3)',
    allowed: (t) => [
      ...lambdaLogs(t),
      access('s3:DescribeJob', t.jobArn('job-0001'), 'status, counts, times and the report location'),
      access('s3:GetJobTagging', t.jobArn('job-0001'), 'only jobs tagged ferry:transfer are Ferry\'s'),
      ...readCompletionReports(t),
      access('s3:GetObject', t.s3.object(t.stateBucket, `plans/${FINGERPRINT}.json`), 'the stored plan: is it this stack\'s job, what it costs, which Sids'),
      access('s3:PutObject', t.s3.object(t.stateBucket, 'reports/job-0001/breakdown.json'), 'the full breakdown the e-mail links'),
      access('s3:PutObject', t.s3.object(t.stateBucket, 'monitor/job-0001/Complete.json'), 'one e-mail per (job, status): the claim'),
      // The end of an inventory run's job (inventory::delta::job_finished).
      access('s3:GetObject', t.s3.object(t.stateBucket, 'inventory/jobs/job-0001.json'), 'is the job one of an inventory run?'),
      access('s3:GetObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/run.json`), 'the run the job is of'),
      access('s3:GetObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/index/shard-00-00000.bin`), 'the run\'s pending index, to commit without the failed objects'),
      access('s3:PutObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/jobs/job-0001.json`), 'the job\'s end, for its run'),
      access('s3:PutObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/current.json`), 'the run\'s delta index becomes current'),
      ...ownStateWrites(t, JM),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, 'monitor/job-0001/Complete.json'), 'the claim is given back when e-mailing fails'),
      access('s3:ListBucket', t.s3.bucket(t.stateBucket), 'a missing plan reads as 404, not 403'),
      access('sns:Publish', t.notificationTopicArn, 'the summary'),
      access('sqs:SendMessage', t.failedEventsQueueArn, 'DeadLetterQueue: Lambda sends failed asynchronous events with the function role'),
    ],
    denied: (t) => [
      ...commonDenied(t),
      ...othersStateWrites(t, JM),
      ...batchRoleWrites(t),
      access('s3:CreateJob', '*', 'the monitor reports; redrive is a person\'s decision (CLI or the approval topic)'),
      access('iam:PassRole', t.batchRoleArn, 'it launches nothing', { context: { 'iam:PassedToService': BATCH_OPERATIONS } }),
      access('s3:UpdateJobStatus', t.jobArn('job-0001'), 'it never confirms or cancels jobs'),
      access('s3:PutObject', t.s3.object(t.stateBucket, `plans/${FINGERPRINT}.json`), 'plans are the stack\'s'),
      access('s3:PutObject', t.s3.object(t.stateBucket, `approvals/${TOKEN_HASH}.json`), 'approvals are not its business'),
      access('s3:GetObject', t.s3.object(t.stateBucket, `approvals/${TOKEN_HASH}.json`), 'approvals are not its business'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, 'reports/job-0001/breakdown.json'), 'breakdowns are kept'),
      access('s3:GetObject', t.s3.object(t.p.ReportBucket, 'elsewhere/job-0001/manifest.json'), 'only completion reports under the report prefix', { owner: t.reportAccount }),
      access('s3:PutObject', t.s3.object(t.p.ReportBucket, `${t.p.ReportPrefix}/job-0001/manifest.json`), 'reports are written by Batch Operations only', { owner: t.reportAccount }),
      access('s3:DescribeJob', t.jobArn('job-0001', { account: t.foreign.account }), 'jobs of another account'),
    ],
  },

  InventoryHandlerFunction: {
    code: 'functions/inventory-handler (manifest.checksum → filter, delta, copy lists in the state bucket, CSV manifests beside the inventory, Copy and LambdaInvoke jobs)',
    allowed: (t) => {
      const dir = 'inventory/media-source/all/2025-01-02T01-00Z'
      return [
        ...lambdaLogs(t),
        access('s3:GetObject', t.s3.object(t.p.ManifestBucket, `${dir}/manifest.checksum`), 'the inventory-complete signal'),
        access('s3:GetObject', t.s3.object(t.p.ManifestBucket, `${dir}/manifest.json`), 'the inventory\'s manifest.json'),
        access('s3:GetObject', t.s3.object(t.p.ManifestBucket, 'inventory/media-source/all/data/0123.csv.gz'), 'its data files'),
        // An SSE-KMS inventory: S3 decrypts what the handler reads, in the inventory's (= the
        // source bucket's) Region.
        ...(t.keys.manifest
          ? [access('kms:Decrypt', t.keys.manifest.arn, 'S3 decrypts the SSE-KMS inventory files for the handler', { owner: t.keys.manifest.account, context: { 'kms:ViaService': viaS3(t.p.SourceRegion, t.partition) } })]
          : []),
        access('s3:PutObject', t.s3.object(t.p.ManifestBucket, `${dir}/ferry-run-1/copy.csv`), 'the Copy job\'s CSV manifest (versions), where the batch role reads'),
        access('s3:PutObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/copy/manifest.json`), 'the Copy job\'s inventory-format manifest, in the state bucket (#18)'),
        access('s3:PutObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/data/000000.csv.gz`), 'its parts'),
        access('s3:PutObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/index/shard-00-00000.bin`), 'the pending delta index, in shards'),
        access('s3:PutObject', t.s3.object(t.p.ManifestBucket, `${dir}/ferry-run-1/large.csv`), 'the large-object job\'s manifest'),
        access('s3:AbortMultipartUpload', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/data/000000.csv.gz`), 'a failed multipart upload of a copy part is aborted, not left to bill its parts'),
        access('s3:AbortMultipartUpload', t.s3.object(t.p.ManifestBucket, `${dir}/ferry-run-1/copy.csv`), 'and of a CSV manifest beside the inventory'),
        ...stateReadWrite(t, [`inventory/${FINGERPRINT}/runs/run-1/claim.json`, `inventory/${FINGERPRINT}/latest.json`, 'inventory/jobs/job-0001.json']),
        ...ownStateWrites(t, IH),
        access('s3:GetObject', t.s3.object(t.stateBucket, `plans/${FINGERPRINT}.json`), 'the stored plan'),
        access('s3:GetObject', t.s3.object(t.stateBucket, `decisions/${FINGERPRINT}.json`), 'is the plan approved?'),
        access('s3:DeleteObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/claim.json`), 'a run that fails for now gives its claim back'),
        access('s3:DeleteObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/notice-refused`), 'a notice that could not be e-mailed gives its mark back'),
        access('s3:DeleteObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/fanout/failures/scan-00000.txt`), 'a fan-out step that succeeds on a retry takes back its failure record'),
        access('s3:CreateJob', '*', 'CreateJob (no resource type)'),
        access('s3:PutJobTagging', t.jobArn('job-0001'), 'CreateJob with Tags needs s3:PutJobTagging'),
        access('iam:PassRole', t.batchRoleArn, 'CreateJob passes the Batch Operations role', { context: { 'iam:PassedToService': BATCH_OPERATIONS } }),
        access('sns:Publish', t.notificationTopicArn, 'run summaries and refusals'),
        access('sqs:SendMessage', t.failedEventsQueueArn, 'DeadLetterQueue: Lambda sends failed asynchronous events with the function role'),
        // #18: a run too large for one invocation is fanned out: one execution of the stack's state machine.
        access('states:StartExecution', t.ref('InventoryFanOut'), 'a large inventory run starts the fan-out (StartExecution ferry-<run>-<nonce>)'),
        access('states:DescribeExecution', t.executionArn(`${t.stackName}-inventory-fanout`, 'ferry-0123456789abcdef0123456789abcdef-0123456789abcdef'), 'FanOutEnded: how an execution ended is asked of Step Functions'),
      ]
    },
    denied: (t) => [
      // Its manifest reads are the inventory bucket's; the common "only the manifest object"
      // denial doesn't hold for a function that reads whole inventories. It starts the fan-out.
      ...without(
        commonDenied(t),
        (a) => a.action === 's3:GetObject' && a.resource.startsWith(t.s3.object(t.p.ManifestBucket, '')) && a.owner !== t.foreign.account,
        (a) => a.action === 'states:StartExecution' && a.resource === t.ref('InventoryFanOut'),
      ),
      // The fan-out: its own state machine only, and it only starts executions (the name and
      // input make a retried start the same execution); Step Functions runs the rest.
      access('states:StartExecution', t.stateMachineArn(`${t.stackName}-inventory-fanout-2`), 'not a state machine whose name merely begins like its own'),
      access('states:StartExecution', t.stateMachineArn(`${t.stackName}-inventory-fanout`).replace(`:${t.region}:`, `:${t.otherRegion}:`), 'not a namesake in another Region'),
      access('states:StartExecution', `${t.ref('InventoryFanOut')}:live`, 'not a version or alias of it'),
      access('states:DescribeExecution', t.executionArn(`${t.stackName}-inventory-fanout-2`, 'ferry-0123456789abcdef0123456789abcdef-0123456789abcdef'), 'only its own state machine\'s executions'),
      access('lambda:InvokeFunction', t.functionArn(`${t.stackName}-inventory-handler`), 'it never invokes itself: the fan-out does'),
      ...othersStateWrites(t, IH),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `decisions/${FINGERPRINT}.json`), 'a plan\'s decision is approval-handler\'s'),
      ...batchRoleWrites(t),
      access('s3:PutObject', t.s3.object(t.p.ManifestBucket, 'inventory/media-source/all/2025-01-02T01-00Z/manifest.json'), 'never rewrites an inventory'),
      access('s3:DeleteObject', t.s3.object(t.p.ManifestBucket, 'inventory/media-source/all/data/0123.csv.gz'), 'never deletes inventories'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/current.json`), 'the delta state is only ever replaced, by the job monitor'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/run.json`), 'a run record is never deleted'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/fanout/run.json`), 'nor a fan-out\'s record, nor what its workers left'),
      access('s3:DeleteObject', t.s3.object(t.stateBucket, `inventory/${FINGERPRINT}/runs/run-1/fanout/spill/00000/000000.bin`), 'nor a spill part'),
      access('s3:UpdateJobStatus', t.jobArn('job-0001'), 'it launches jobs, never confirms or cancels them'),
      access('s3:PutBucketNotification', t.s3.bucket(t.p.ManifestBucket), 'the trigger is stack-handler\'s (InventoryTrigger)'),
      ...(t.keys.manifest
        ? [access('kms:Decrypt', t.keys.manifest.arn, 'the inventory key only through S3 in the inventory\'s Region', { owner: t.keys.manifest.account, context: { 'kms:ViaService': viaS3(t.p.SourceRegion === 'us-west-2' ? 'us-east-2' : 'us-west-2', t.partition) } })]
        : []),
    ],
  },
}
