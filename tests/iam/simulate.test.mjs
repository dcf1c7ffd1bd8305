// Offline proof of Ferry's policies with an IAM policy simulator.
//
// For every spec in examples/*.toml and tests/iam/scenarios/*.toml this file runs
// `ferry plan SPEC --format json`, then derives from the spec itself (not from the generated
// policies, and not from Ferry's Rust code) what an S3 Batch Operations Copy job must be able to
// do, and what nobody should be able to do because of the plan. Each access is simulated with
// @cloud-copilot/iam-simulate: the Batch Operations role as principal, the role's permissions
// policy as identity policy, and as resource policy whatever Ferry emits for the owning account
// (bucket policy, key policy, trust policy).
//
// Simulator limitations worked around here (it does not derive request context):
//   * aws:ResourceAccount, aws:PrincipalAccount, aws:PrincipalArn are given by hand on every
//     request; Ferry's identity statements depend on aws:ResourceAccount.
//   * kms:ViaService and kms:CallerAccount are given by hand for KMS calls made through S3.
//   * aws:SourceAccount / aws:SourceArn are given by hand for the service's sts:AssumeRole.
//   * The principal is the role ARN (the brief's model); one extra check per cross-account spec
//     uses an assumed-role session ARN, which is what S3 actually sees.
//   * A real key policy is Ferry's statements merged (by Sid) into the existing key policy,
//     which normally keeps the default "Enable IAM User Permissions" (account root, kms:*)
//     statement. Every KMS check is therefore run twice: against Ferry's statements alone and
//     against them merged with that default statement.
// Each simulation also asserts that the simulator ignored none of the supplied context keys,
// so a key silently dropped for an action cannot make a check pass.

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { parse as parseToml } from 'smol-toml'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = resolve(HERE, '..', '..')
const FERRY_BIN = process.env.FERRY_BIN || join(REPO, 'target', 'debug', 'ferry')

const BATCH_OPS = 'batchoperations.s3.amazonaws.com'

const SOURCE_KEY = 'some/key.txt'
const JOB_ID = 'job-123'

// ---------------------------------------------------------------------------------------------
// Spec meaning, independent of Ferry's code.

function partitionOf(region) {
  if (region.startsWith('cn-')) return 'aws-cn'
  if (region.startsWith('us-gov-')) return 'aws-us-gov'
  return 'aws'
}

function viaS3(region) {
  return `s3.${region}.${partitionOf(region) === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com'}`
}

function accountOf(arn) {
  return arn.split(':')[4]
}

function otherRegion(region) {
  return region === 'us-east-1' ? 'eu-west-1' : 'us-east-1'
}

/** The spec with its defaults filled in, as the spec format documents them. */
function normalize(raw) {
  const dst = raw.destination
  const spec = {
    name: raw.name,
    source: { versioned: false, ...raw.source },
    destination: { tags: 'copy', metadata: 'copy', ...dst },
    manifest: { version_ids: false, ...raw.manifest },
    report: { ...raw.report },
    job: { ...(raw.job ?? {}) },
  }
  // S3 Inventory delivers only to a bucket in the source bucket's Region; a CSV manifest sits by
  // default in the job's (destination) Region.
  spec.manifest.region ??= spec.manifest.kind === 'inventory' ? spec.source.region : dst.region
  spec.report.region ??= dst.region
  spec.partition = partitionOf(dst.region)
  spec.crossAccount = spec.source.account_id !== dst.account_id
  spec.inPlace = spec.source.bucket === dst.bucket
  spec.jobRegion = dst.region // copy jobs run in the destination region
  spec.roleName = spec.job.role_name ?? `ferry-${spec.name}-batch`
  spec.roleArn = `arn:${spec.partition}:iam::${dst.account_id}:role/${spec.roleName}`
  const used = new Set([spec.source.account_id, dst.account_id])
  spec.otherAccount = ['123456789012', '210987654321'].find((a) => !used.has(a))
  return spec
}

function s3Arn(spec, bucket, key) {
  return key === undefined ? `arn:${spec.partition}:s3:::${bucket}` : `arn:${spec.partition}:s3:::${bucket}/${key}`
}

/** Manifest objects a job reads: a CSV file, or an inventory manifest.json plus its data files. */
function manifestObjects(spec) {
  const m = spec.manifest
  if (m.kind === 'csv') return [m.key]
  // <prefix>/<source-bucket>/<config-id>/<date>/manifest.json; data files sit in
  // <prefix>/<source-bucket>/<config-id>/data/, sibling of the date folder.
  const parts = m.key.split('/')
  return [m.key, [...parts.slice(0, -2), 'data', 'x.csv.gz'].join('/')]
}

/** Every KMS key the job uses, with the owning account, the bucket region and what S3 does. */
function keysUsed(spec) {
  const s = spec.source
  const d = spec.destination
  const out = []
  if (s.kms_key_arn) out.push({ role: 'source key', arn: s.kms_key_arn, account: s.account_id, region: s.region, actions: ['kms:Decrypt'] })
  // AWS: for an SSE-KMS inventory manifest the job role needs kms:Decrypt and kms:GenerateDataKey
  // (S3 User Guide, "Granting permissions for Batch Operations").
  if (spec.manifest.kms_key_arn)
    out.push({ role: 'manifest key', arn: spec.manifest.kms_key_arn, account: spec.manifest.account_id, region: spec.manifest.region, actions: ['kms:Decrypt', 'kms:GenerateDataKey'] })
  if (d.kms_key_arn)
    out.push({ role: 'destination key', arn: d.kms_key_arn, account: d.account_id, region: d.region, actions: ['kms:GenerateDataKey', 'kms:Decrypt'] })
  if (spec.report.kms_key_arn)
    out.push({ role: 'report key', arn: spec.report.kms_key_arn, account: spec.report.account_id, region: spec.report.region, actions: ['kms:GenerateDataKey', 'kms:Decrypt'] })
  return out
}

/**
 * A key that a policy would also match if the '*' / '?' in `literal` were read as wildcards
 * (the job only ever uses `literal` itself), or undefined when `literal` has none.
 */
function wildcardReading(literal) {
  if (!/[*?]/.test(literal)) return undefined
  return literal.replace(/\*/g, 'SOMETHING-ELSE').replace(/\?/g, 'Q')
}

/** Writes the job legitimately makes: used to skip "denied" checks that a needed grant covers. */
function isNeededWrite(spec, bucket, key) {
  const d = spec.destination
  if (bucket === d.bucket && key.startsWith(d.key_prefix ?? '')) return true
  if (bucket === spec.report.bucket && key.startsWith(`${spec.report.prefix}/`)) return true
  return false
}

// ---------------------------------------------------------------------------------------------
// Plan lookups: the resource policy the owning account would have.

function accountSections(plan, account) {
  return [plan.source_account, plan.destination_account].filter((s) => s && s.account_id === account)
}

function bucketPolicy(plan, account, bucket) {
  const found = accountSections(plan, account).map((s) => s.bucket_policies?.[bucket]).filter(Boolean)
  if (found.length === 0) return undefined
  return { Version: '2012-10-17', Statement: found.flatMap((p) => p.Statement) }
}

function keyPolicy(plan, account, keyArn) {
  const found = accountSections(plan, account).map((s) => s.key_policies?.[keyArn]).filter(Boolean)
  if (found.length === 0) return undefined
  return { Version: '2012-10-17', Statement: found.flatMap((p) => p.Statement) }
}

function defaultKeyStatement(partition, account) {
  return {
    Sid: 'EnableIAMUserPermissions',
    Effect: 'Allow',
    Principal: { AWS: `arn:${partition}:iam::${account}:root` },
    Action: 'kms:*',
    Resource: '*',
  }
}

function withDefaultKeyStatement(policy, partition, account) {
  return { Version: '2012-10-17', Statement: [defaultKeyStatement(partition, account), ...(policy?.Statement ?? [])] }
}

function accountTrustingBucketPolicy(spec, bucket, account) {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'TrustWholeAccount',
        Effect: 'Allow',
        Principal: { AWS: `arn:${spec.partition}:iam::${account}:root` },
        Action: 's3:*',
        Resource: [s3Arn(spec, bucket), s3Arn(spec, bucket, '*')],
      },
    ],
  }
}

const ALLOW_ALL_S3_KMS = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'Everything', Effect: 'Allow', Action: ['s3:*', 'kms:*', 'sts:AssumeRole'], Resource: '*' }],
}

// ---------------------------------------------------------------------------------------------
// Checks

/**
 * One simulated request and its expected outcome. `expect` is 'Allowed' or 'Denied' (either
 * ImplicitlyDenied or ExplicitlyDenied).
 */
function check(name, expect, { principal, action, resource, resourceAccount, context = {}, identity, resourcePolicy }) {
  return { name, expect, principal, action, resource, resourceAccount, context, identity, resourcePolicy }
}

function s3Context(principal, owner) {
  const ctx = { 'aws:ResourceAccount': owner }
  if (principal.startsWith('arn:')) {
    ctx['aws:PrincipalAccount'] = accountOf(principal)
    ctx['aws:PrincipalArn'] = principal.includes(':assumed-role/')
      ? principal.replace(':sts::', ':iam::').replace(':assumed-role/', ':role/').replace(/\/[^/]+$/, '')
      : principal
  }
  return ctx
}

function kmsContext(principal, owner, via) {
  const ctx = { ...s3Context(principal, owner), 'kms:CallerAccount': accountOf(principal) }
  if (via !== undefined) ctx['kms:ViaService'] = via
  return ctx
}

/** All checks for one spec, grouped: { group: [check, ...] }. */
function deriveChecks(spec, plan) {
  const s = spec.source
  const d = spec.destination
  const role = spec.roleArn
  const perms = plan.batch_role.permissions_policy
  const dstAcct = d.account_id
  const groups = {}
  const add = (group, c) => (groups[group] ??= []).push(c)

  const s3 = (name, expect, action, bucket, key, owner, opts = {}) => {
    const principal = opts.principal ?? role
    return check(name, expect, {
      principal,
      action,
      resource: s3Arn(spec, bucket, key),
      resourceAccount: owner,
      context: s3Context(principal, owner),
      identity: opts.identity ?? perms,
      resourcePolicy: 'resourcePolicy' in opts ? opts.resourcePolicy : bucketPolicy(plan, owner, bucket),
    })
  }

  // --- What the job needs -------------------------------------------------------------------
  const srcObj = `s3://${s.bucket}/${SOURCE_KEY}`
  add('job needs (Allowed)', s3(`s3:GetObject on source object ${srcObj}`, 'Allowed', 's3:GetObject', s.bucket, SOURCE_KEY, s.account_id))
  if (d.tags === 'copy')
    add('job needs (Allowed)', s3(`s3:GetObjectTagging on source object (tags = "copy")`, 'Allowed', 's3:GetObjectTagging', s.bucket, SOURCE_KEY, s.account_id))
  if (s.versioned) {
    add('job needs (Allowed)', s3(`s3:GetObjectVersion on source object (source.versioned)`, 'Allowed', 's3:GetObjectVersion', s.bucket, SOURCE_KEY, s.account_id))
    if (d.tags === 'copy')
      add('job needs (Allowed)', s3(`s3:GetObjectVersionTagging on source object (versioned, tags = "copy")`, 'Allowed', 's3:GetObjectVersionTagging', s.bucket, SOURCE_KEY, s.account_id))
  }
  if (spec.crossAccount) {
    const session = `arn:${spec.partition}:sts::${dstAcct}:assumed-role/${spec.roleName}/s3-batch-operations`
    add('job needs (Allowed)', s3(`s3:GetObject on source object as an assumed-role session of the role`, 'Allowed', 's3:GetObject', s.bucket, SOURCE_KEY, s.account_id, { principal: session }))
  }
  for (const key of manifestObjects(spec))
    add('job needs (Allowed)', s3(`s3:GetObject on manifest object s3://${spec.manifest.bucket}/${key}`, 'Allowed', 's3:GetObject', spec.manifest.bucket, key, spec.manifest.account_id))
  // The stack creates its job on the manifest version its approval e-mails named, in a versioned
  // manifest bucket (Manifest.Location.ObjectVersionId, #15 item 13).
  add('job needs (Allowed)', s3(`s3:GetObjectVersion on the manifest s3://${spec.manifest.bucket}/${spec.manifest.key} (a job created on its version)`, 'Allowed', 's3:GetObjectVersion', spec.manifest.bucket, spec.manifest.key, spec.manifest.account_id))
  // Batch Operations puts a '/' between TargetKeyPrefix and the key (boto/boto3#3420).
  const dstKey = d.key_prefix ? `${d.key_prefix.replace(/\/+$/, '')}/${SOURCE_KEY}` : SOURCE_KEY
  add('job needs (Allowed)', s3(`s3:PutObject on destination object s3://${d.bucket}/${dstKey}`, 'Allowed', 's3:PutObject', d.bucket, dstKey, dstAcct))
  if (d.tags !== 'remove')
    add('job needs (Allowed)', s3(`s3:PutObjectTagging on destination object (tags = "${d.tags}")`, 'Allowed', 's3:PutObjectTagging', d.bucket, dstKey, dstAcct))
  for (const key of [`${spec.report.prefix}/${JOB_ID}/results/x.csv`, `${spec.report.prefix}/${JOB_ID}/manifest.json`])
    add('job needs (Allowed)', s3(`s3:PutObject on report object s3://${spec.report.bucket}/${key}`, 'Allowed', 's3:PutObject', spec.report.bucket, key, spec.report.account_id))

  // KMS, each run against Ferry's key-policy statements alone and merged with the default one.
  const kmsVariants = (keyInfo) => [
    { label: 'key policy: Ferry statements only', policy: keyPolicy(plan, keyInfo.account, keyInfo.arn) },
    { label: 'key policy: Ferry statements + default root statement', policy: withDefaultKeyStatement(keyPolicy(plan, keyInfo.account, keyInfo.arn), spec.partition, keyInfo.account) },
  ]
  const kms = (name, expect, action, keyInfo, via, variant, opts = {}) => {
    const principal = opts.principal ?? role
    return check(`${name} [${variant.label}]`, expect, {
      principal,
      action,
      resource: keyInfo.arn,
      resourceAccount: keyInfo.account,
      context: kmsContext(principal, keyInfo.account, via),
      identity: opts.identity ?? perms,
      resourcePolicy: variant.policy,
    })
  }
  for (const k of keysUsed(spec))
    for (const action of k.actions)
      for (const v of kmsVariants(k))
        add('job needs (Allowed)', kms(`${action} on ${k.role} via ${viaS3(k.region)}`, 'Allowed', action, k, viaS3(k.region), v))

  // S3 Inventory writes an SSE-KMS inventory as the service principal s3.amazonaws.com, for the
  // source bucket of the source account only (S3 User Guide, "Configuring Amazon S3 Inventory").
  if (spec.manifest.kind === 'inventory' && spec.manifest.kms_key_arn) {
    const key = spec.manifest.kms_key_arn
    const owner = spec.manifest.account_id
    const delivery = (name, expect, context, action = 'kms:GenerateDataKey') =>
      check(name, expect, { principal: 's3.amazonaws.com', action, resource: key, resourceAccount: owner, context, identity: [], resourcePolicy: keyPolicy(plan, owner, key) })
    const sourceArn = (bucket) => s3Arn(spec, bucket)
    add('inventory delivery', delivery(`s3.amazonaws.com may kms:GenerateDataKey on the inventory key for s3://${s.bucket}'s inventory`, 'Allowed', { 'aws:SourceAccount': s.account_id, 'aws:SourceArn': sourceArn(s.bucket) }))
    add('inventory delivery', delivery(`denied: another bucket's inventory (s3://someone-elses-bucket) may not use the inventory key`, 'Denied', { 'aws:SourceAccount': s.account_id, 'aws:SourceArn': sourceArn('someone-elses-bucket') }))
    add('inventory delivery', delivery(`denied: a bucket of another account (${spec.otherAccount}) may not use the inventory key`, 'Denied', { 'aws:SourceAccount': spec.otherAccount, 'aws:SourceArn': sourceArn(s.bucket) }))
    add('inventory delivery', delivery(`denied: s3.amazonaws.com may not kms:Decrypt with the inventory key`, 'Denied', { 'aws:SourceAccount': s.account_id, 'aws:SourceArn': sourceArn(s.bucket) }, 'kms:Decrypt'))
  }

  // Trust: the form AWS documents (no conditions). Batch Operations may assume the role; nobody
  // else may, whatever their own policies say.
  const trust = (name, expect, principal, context, identity = []) =>
    check(name, expect, {
      principal,
      action: 'sts:AssumeRole',
      resource: role,
      resourceAccount: dstAcct,
      context,
      identity,
      resourcePolicy: plan.batch_role.trust_policy,
    })
  const jobArn = (region, account) => `arn:${partitionOf(region)}:s3:${region}:${account}:job/7f3c9a2e-0b1d-4e5f-8a6b-1c2d3e4f5a6b`
  add('trust policy', trust(`${BATCH_OPS} may assume the role for a job of ${dstAcct} in ${spec.jobRegion}`, 'Allowed', BATCH_OPS, {
    'aws:SourceAccount': dstAcct,
    'aws:SourceArn': jobArn(spec.jobRegion, dstAcct),
  }))
  // AWS does not document that Batch Operations sends these keys: the role must work without them.
  add('trust policy', trust(`${BATCH_OPS} may assume the role without aws:SourceAccount / aws:SourceArn`, 'Allowed', BATCH_OPS, {}))
  add('trust policy', trust(`denied: another service principal (lambda.amazonaws.com)`, 'Denied', 'lambda.amazonaws.com', {
    'aws:SourceAccount': dstAcct,
    'aws:SourceArn': `arn:${spec.partition}:lambda:${spec.jobRegion}:${dstAcct}:function:f`,
  }))
  add('trust policy', trust(`denied: a role of ${dstAcct} allowed sts:AssumeRole on * by its own policy`, 'Denied', `arn:${spec.partition}:iam::${dstAcct}:role/intruder`, {
    'aws:PrincipalAccount': dstAcct,
  }, [{ name: 'intruder', policy: ALLOW_ALL_S3_KMS }]))

  // --- What must stay denied ----------------------------------------------------------------
  const deny = 'not granted (Denied)'
  const srcActions = spec.inPlace ? ['s3:DeleteObject', 's3:DeleteObjectVersion'] : ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutObject', 's3:PutObjectAcl']
  for (const action of srcActions)
    add(deny, s3(`${action} on source object ${srcObj}`, 'Denied', action, s.bucket, SOURCE_KEY, s.account_id))
  if (spec.inPlace && d.key_prefix)
    add(deny, s3(`in place: s3:PutObject on source object outside key_prefix "${d.key_prefix}"`, 'Denied', 's3:PutObject', s.bucket, SOURCE_KEY, s.account_id))
  if (!s.versioned)
    add(deny, s3(`s3:GetObjectVersion on source object (source not versioned)`, 'Denied', 's3:GetObjectVersion', s.bucket, SOURCE_KEY, s.account_id))
  if (d.tags !== 'copy')
    add(deny, s3(`s3:GetObjectTagging on source object (tags = "${d.tags}": source tags not read)`, 'Denied', 's3:GetObjectTagging', s.bucket, SOURCE_KEY, s.account_id))
  if (d.tags === 'remove')
    add(deny, s3(`s3:PutObjectTagging on destination object (tags = "remove")`, 'Denied', 's3:PutObjectTagging', d.bucket, dstKey, dstAcct))
  add(deny, s3(`s3:PutObjectAcl on destination object (Ferry never writes ACLs)`, 'Denied', 's3:PutObjectAcl', d.bucket, dstKey, dstAcct))
  add(deny, s3(`s3:DeleteObject on destination object`, 'Denied', 's3:DeleteObject', d.bucket, dstKey, dstAcct))
  const other = `${s.bucket}-other`
  add(deny, s3(`s3:GetObject on another bucket of the source account (s3://${other})`, 'Denied', 's3:GetObject', other, SOURCE_KEY, s.account_id))
  if (!spec.inPlace)
    // The large-object copier checks each copy with HeadObject, so it reads the destination.
    if (!spec.job.large_object_copier_arn)
      add(deny, s3(`s3:GetObject on destination object s3://${d.bucket}/${dstKey} (the job never reads it)`, 'Denied', 's3:GetObject', d.bucket, dstKey, dstAcct))
  if (d.key_prefix && !isNeededWrite(spec, d.bucket, SOURCE_KEY))
    add(deny, s3(`s3:PutObject on destination outside key_prefix "${d.key_prefix}" (s3://${d.bucket}/${SOURCE_KEY})`, 'Denied', 's3:PutObject', d.bucket, SOURCE_KEY, dstAcct))
  for (const key of [`elsewhere/${JOB_ID}/results/x.csv`, `${spec.report.prefix}-other/${JOB_ID}/results/x.csv`])
    if (!isNeededWrite(spec, spec.report.bucket, key))
      add(deny, s3(`s3:PutObject on report bucket outside report prefix (s3://${spec.report.bucket}/${key})`, 'Denied', 's3:PutObject', spec.report.bucket, key, spec.report.account_id))

  // S3 keys may contain '*' and '?'; the job uses them literally, so they must not act as
  // policy wildcards and widen a grant.
  const wildDst = wildcardReading(d.key_prefix ?? '')
  if (wildDst && !isNeededWrite(spec, d.bucket, `${wildDst}${SOURCE_KEY}`))
    add(deny, s3(`s3:PutObject on s3://${d.bucket}/${wildDst}${SOURCE_KEY} (key_prefix "${d.key_prefix}" read as a wildcard)`, 'Denied', 's3:PutObject', d.bucket, `${wildDst}${SOURCE_KEY}`, dstAcct))
  const wildReport = wildcardReading(spec.report.prefix)
  if (wildReport && !isNeededWrite(spec, spec.report.bucket, `${wildReport}/${JOB_ID}/results/x.csv`))
    add(deny, s3(`s3:PutObject on s3://${spec.report.bucket}/${wildReport}/${JOB_ID}/results/x.csv (report prefix "${spec.report.prefix}" read as a wildcard)`, 'Denied', 's3:PutObject', spec.report.bucket, `${wildReport}/${JOB_ID}/results/x.csv`, spec.report.account_id))
  const wildManifest = wildcardReading(spec.manifest.key)
  if (wildManifest)
    add(deny, s3(`s3:GetObject on s3://${spec.manifest.bucket}/${wildManifest} (manifest key "${spec.manifest.key}" read as a wildcard)`, 'Denied', 's3:GetObject', spec.manifest.bucket, wildManifest, spec.manifest.account_id))

  if (spec.crossAccount) {
    // Each layer alone must refuse what the job does not need: the role's identity policy
    // even if the source account trusted the whole destination account, and the source bucket
    // policy even if the role's own policy allowed s3:*.
    const trusting = accountTrustingBucketPolicy(spec, s.bucket, dstAcct)
    for (const action of ['s3:DeleteObject', 's3:PutObject', 's3:PutObjectAcl'])
      add('each layer alone (Denied)', s3(`identity policy alone refuses ${action} on source object (bucket policy trusting all of ${dstAcct})`, 'Denied', action, s.bucket, SOURCE_KEY, s.account_id, { resourcePolicy: trusting }))
    add('each layer alone (Denied)', s3(`identity policy alone refuses s3:GetObject on s3://${other} (its bucket policy trusting all of ${dstAcct})`, 'Denied', 's3:GetObject', other, SOURCE_KEY, s.account_id, { resourcePolicy: accountTrustingBucketPolicy(spec, other, dstAcct) }))
    for (const action of ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutObject', 's3:PutObjectAcl'])
      add('each layer alone (Denied)', s3(`source bucket policy alone refuses ${action} (role's own policy allowing s3:*)`, 'Denied', action, s.bucket, SOURCE_KEY, s.account_id, { identity: ALLOW_ALL_S3_KMS }))

    // Another principal of the destination account, even with s3:* and kms:* on *.
    const intruder = `arn:${spec.partition}:iam::${dstAcct}:role/intruder`
    const asIntruder = { principal: intruder, identity: ALLOW_ALL_S3_KMS }
    add('other principals (Denied)', s3(`${intruder} (s3:*, kms:* on *) reads source object`, 'Denied', 's3:GetObject', s.bucket, SOURCE_KEY, s.account_id, asIntruder))
    if (spec.manifest.account_id === s.account_id)
      add('other principals (Denied)', s3(`${intruder} reads the manifest in the source account`, 'Denied', 's3:GetObject', spec.manifest.bucket, manifestObjects(spec)[0], s.account_id, asIntruder))
    if (spec.report.account_id === s.account_id)
      add('other principals (Denied)', s3(`${intruder} writes under the report prefix in the source account`, 'Denied', 's3:PutObject', spec.report.bucket, `${spec.report.prefix}/${JOB_ID}/results/x.csv`, s.account_id, asIntruder))
    for (const k of keysUsed(spec).filter((k) => k.account === s.account_id))
      for (const v of kmsVariants(k))
        add('other principals (Denied)', kms(`${intruder} kms:Decrypt with ${k.role} via S3`, 'Denied', 'kms:Decrypt', k, viaS3(k.region), v, asIntruder))
  }
  // Same account: the source-side resources belong to the role's own account, where any
  // principal whose identity policy allows s3:* / kms:* (and a key policy delegating to the
  // account) is allowed by AWS design; Ferry's grants change nothing there, so the
  // "another principal" checks are only meaningful across accounts.

  // --- Large-object copier (objects over 5 GiB) ----------------------------------------------
  const copierArn = spec.job.large_object_copier_arn
  const copierRole = spec.job.large_object_copier_role_arn
  if (copierArn) {
    const lambda = (name, expect, resource) => check(name, expect, {
      principal: role, action: 'lambda:InvokeFunction', resource, resourceAccount: dstAcct,
      context: s3Context(role, dstAcct), identity: perms, resourcePolicy: undefined,
    })
    add('large-object copier', lambda(`lambda:InvokeFunction on the copier ${copierArn}`, 'Allowed', copierArn))
    add('large-object copier', lambda('lambda:InvokeFunction on another function', 'Denied', copierArn.replace(/[^:]+$/, 'some-other-function')))
    const dstObj = `${d.key_prefix ?? ''}${SOURCE_KEY}`
    for (const action of ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:GetObject'])
      add('large-object copier', s3(`${action} on the destination object`, 'Allowed', action, d.bucket, dstObj, dstAcct))
    add('large-object copier', s3('s3:ListBucketMultipartUploads on the destination bucket', 'Allowed', 's3:ListBucketMultipartUploads', d.bucket, undefined, dstAcct))
    add('large-object copier', s3('s3:DeleteObject on the destination object (never granted)', 'Denied', 's3:DeleteObject', d.bucket, dstObj, dstAcct))
  }
  if (copierRole) {
    const assume = (name, expect, principal) => check(name, expect, {
      principal, action: 'sts:AssumeRole', resource: role, resourceAccount: dstAcct,
      context: { 'aws:PrincipalAccount': accountOf(principal), 'aws:PrincipalArn': principal },
      identity: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: role }] },
      resourcePolicy: plan.batch_role.trust_policy,
    })
    add('large-object copier', assume(`sts:AssumeRole by the copier's execution role ${copierRole}`, 'Allowed', copierRole))
    add('large-object copier', assume('sts:AssumeRole by another role of the account', 'Denied', copierRole.replace(/[^/]+$/, 'someone-else')))
  }

  for (const k of keysUsed(spec))
    for (const action of k.actions)
      for (const v of kmsVariants(k)) {
        add('KMS only through S3 (Denied)', kms(`${action} on ${k.role} with no kms:ViaService`, 'Denied', action, k, undefined, v))
        add('KMS only through S3 (Denied)', kms(`${action} on ${k.role} via ec2.${k.region}.amazonaws.com`, 'Denied', action, k, `ec2.${k.region}.amazonaws.com`, v))
        add('KMS only through S3 (Denied)', kms(`${action} on ${k.role} via S3 in another region (${viaS3(otherRegion(k.region))})`, 'Denied', action, k, viaS3(otherRegion(k.region)), v))
      }
  const foreignKey = {
    role: `key of another account (${spec.otherAccount})`,
    arn: `arn:${spec.partition}:kms:${s.region}:${spec.otherAccount}:key/00000000-1111-4222-8333-444455556666`,
    account: spec.otherAccount,
    region: s.region,
  }
  add('KMS only through S3 (Denied)', kms(`kms:Decrypt on a ${foreignKey.role} via ${viaS3(s.region)}`, 'Denied', 'kms:Decrypt', foreignKey, viaS3(s.region), {
    label: 'its default key policy',
    policy: withDefaultKeyStatement(undefined, spec.partition, spec.otherAccount),
  }))

  return groups
}

// ---------------------------------------------------------------------------------------------
// Simulation and reporting

async function simulate(c) {
  return runSimulation(
    {
      request: {
        principal: c.principal,
        action: c.action,
        resource: { resource: c.resource, accountId: c.resourceAccount },
        contextVariables: c.context,
      },
      identityPolicies: Array.isArray(c.identity) ? c.identity : [{ name: 'permissions_policy', policy: c.identity }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(c.resourcePolicy ? { resourcePolicy: c.resourcePolicy } : {}),
    },
    {},
  )
}

function statementLines(label, statements, filter = () => true) {
  return (statements ?? []).filter(filter).map((s) => `  ${label} ${JSON.stringify(s.explain)}`)
}

function explainFailure(c, response) {
  const a = response.result?.analysis ?? response.results?.[0]?.analysis
  const lines = [
    `request: ${c.principal} ${c.action} ${c.resource} (resource account ${c.resourceAccount})`,
    `context: ${JSON.stringify(c.context)}`,
    `resource policy: ${c.resourcePolicy ? 'given' : 'none'}; simulator result: ${response.overallResult}` +
      (a?.blockedBy ? ` blockedBy=${a.blockedBy}` : '') +
      ` identity=${a?.identityAnalysis?.result} resource=${a?.resourceAnalysis?.result}`,
  ]
  if (c.expect === 'Allowed') {
    // Decisive: the statements that would have applied but did not match (action matched).
    lines.push('statements for this action that did not apply:')
    lines.push(...statementLines('identity', a?.identityAnalysis?.unmatchedStatements, (s) => s.actionMatch))
    lines.push(...statementLines('resource', a?.resourceAnalysis?.unmatchedStatements, (s) => s.actionMatch))
    lines.push(...statementLines('deny    ', [...(a?.identityAnalysis?.denyStatements ?? []), ...(a?.resourceAnalysis?.denyStatements ?? [])]))
  } else {
    lines.push('statements that allowed it:')
    lines.push(...statementLines('identity', a?.identityAnalysis?.allowStatements))
    lines.push(...statementLines('resource', a?.resourceAnalysis?.allowStatements))
  }
  return lines.join('\n')
}

/** Simulates `c` and returns the simulator's verdict, failing on simulator errors. */
async function verdict(c) {
  const response = await simulate(c)
  if (response.resultType === 'error') assert.fail(`simulator rejected the request: ${JSON.stringify(response.errors, null, 2)}\n${JSON.stringify(c, null, 2)}`)
  const ignored = response.result?.ignoredContextKeys ?? response.results?.flatMap((r) => r.ignoredContextKeys ?? []) ?? []
  assert.deepEqual(ignored, [], `simulator ignored context keys for ${c.action}: ${ignored.join(', ')}`)
  return response
}

async function assertExpected(c) {
  const response = await verdict(c)
  const ok = c.expect === 'Allowed' ? response.overallResult === 'Allowed' : response.overallResult !== 'Allowed'
  if (!ok) assert.fail(`expected ${c.expect}, simulator says ${response.overallResult}\n${explainFailure(c, response)}`)
}

// ---------------------------------------------------------------------------------------------
// Specs

function specFiles() {
  const dirs = [join(REPO, 'examples'), join(HERE, 'scenarios')]
  return dirs.flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.toml'))
      .sort()
      .map((f) => join(dir, f)),
  )
}

function ferryPlan(file) {
  const out = execFileSync(FERRY_BIN, ['plan', file, '--format', 'json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return JSON.parse(out)
}

const loaded = specFiles().map((file) => {
  const rel = relative(REPO, file)
  const spec = normalize(parseToml(readFileSync(file, 'utf8')))
  let plan
  let planError
  try {
    plan = ferryPlan(file)
  } catch (e) {
    planError = `${FERRY_BIN} plan ${rel} failed: ${e.stderr || e.message}`
  }
  return { file, rel, spec, plan, planError }
})

test('at least 9 specs are checked (5 examples + 4 scenarios)', () => {
  assert.ok(loaded.length >= 9, loaded.map((l) => l.rel).join(', '))
})

for (const { rel, spec, plan, planError } of loaded) {
  const kind = spec.inPlace ? 'in place' : spec.crossAccount ? 'cross-account' : 'same account'
  describe(`${rel} (${kind}, ${spec.source.account_id} -> ${spec.destination.account_id})`, () => {
    test('ferry plan succeeds', () => assert.equal(planError, undefined, planError))
    if (!plan) return
    test(`the role is ${spec.roleArn} (destination account)`, () => assert.equal(plan.batch_role.arn, spec.roleArn))
    if (spec.crossAccount)
      test('every source-account bucket and key has its policy under source_account', () => {
        // Filed under the wrong account, a grant would never be applied by the account that
        // owns the resource (and the checks below would find no resource policy).
        const owned = [
          [spec.source.bucket, spec.source.account_id],
          [spec.manifest.bucket, spec.manifest.account_id],
          [spec.report.bucket, spec.report.account_id],
        ].filter(([, account]) => account === spec.source.account_id)
        assert.equal(plan.source_account?.account_id, spec.source.account_id)
        for (const [bucket] of owned) assert.ok(plan.source_account.bucket_policies?.[bucket], `no bucket policy for ${bucket}`)
        for (const k of keysUsed(spec).filter((k) => k.account === spec.source.account_id))
          assert.ok(plan.source_account.key_policies?.[k.arn], `no key policy for ${k.role} ${k.arn}`)
      })
    for (const [group, checks] of Object.entries(deriveChecks(spec, plan))) {
      describe(group, () => {
        for (const c of checks) {
          test(c.name, () => assertExpected(c))
        }
      })
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Harness sanity: deliberately broken plans must make the corresponding checks fail, so the
// checks above cannot be passing vacuously.

describe('harness sanity: broken plans are caught', () => {
  const entry = loaded.find((l) => l.plan && l.spec.crossAccount && l.spec.source.kms_key_arn)
  test('a cross-account spec with a source key exists to mutate', () => assert.ok(entry))
  if (!entry) return
  const { spec, plan } = entry
  const clone = () => structuredClone(plan)
  const find = (groups, name) => Object.values(groups).flat().find((c) => c.name.startsWith(name))
  const statusOf = async (c) => (await verdict(c)).overallResult

  test(`${entry.rel}: removing the source bucket policy denies the cross-account source GetObject`, async () => {
    const good = find(deriveChecks(spec, plan), 's3:GetObject on source object s3://')
    assert.equal(await statusOf(good), 'Allowed')
    const broken = clone()
    delete broken.source_account.bucket_policies[spec.source.bucket]
    const c = find(deriveChecks(spec, broken), 's3:GetObject on source object s3://')
    assert.equal(c.resourcePolicy, undefined)
    assert.notEqual(await statusOf(c), 'Allowed')
  })

  test(`${entry.rel}: removing the source key policy denies the source kms:Decrypt`, async () => {
    const broken = clone()
    delete broken.source_account.key_policies[spec.source.kms_key_arn]
    const c = find(deriveChecks(spec, broken), 'kms:Decrypt on source key via')
    assert.notEqual(await statusOf(c), 'Allowed')
  })

  test(`${entry.rel}: dropping aws:ResourceAccount from the request context denies the source GetObject`, async () => {
    const c = structuredClone(find(deriveChecks(spec, plan), 's3:GetObject on source object s3://'))
    delete c.context['aws:ResourceAccount']
    assert.notEqual(await statusOf(c), 'Allowed')
  })

  test(`${entry.rel}: stripping kms:ViaService from role and key policies lets "no kms:ViaService" through`, async () => {
    const broken = clone()
    const strip = (p) => p.Statement.forEach((st) => st.Condition && delete st.Condition.StringEquals?.['kms:ViaService'])
    strip(broken.batch_role.permissions_policy)
    strip(broken.source_account.key_policies[spec.source.kms_key_arn])
    const c = find(deriveChecks(spec, broken), 'kms:Decrypt on source key with no kms:ViaService')
    assert.equal(await statusOf(c), 'Allowed')
  })

  test(`${entry.rel}: a trust policy requiring aws:SourceAccount fails a job that doesn't send it`, async () => {
    const broken = clone()
    broken.batch_role.trust_policy.Statement[0].Condition = { StringEquals: { 'aws:SourceAccount': spec.destination.account_id } }
    const c = find(deriveChecks(spec, broken), `${BATCH_OPS} may assume the role without aws:SourceAccount`)
    assert.notEqual(await statusOf(c), 'Allowed')
  })

  test(`${entry.rel}: granting s3:* on the source in both policies lets DeleteObject through`, async () => {
    const broken = clone()
    const widen = (p) => p.Statement.filter((st) => JSON.stringify(st.Resource).includes(`:::${spec.source.bucket}/*`)).forEach((st) => (st.Action = ['s3:*']))
    widen(broken.batch_role.permissions_policy)
    widen(broken.source_account.bucket_policies[spec.source.bucket])
    const c = find(deriveChecks(spec, broken), 's3:DeleteObject on source object')
    assert.equal(await statusOf(c), 'Allowed')
  })

  test(`${entry.rel}: a bucket policy naming the whole destination account lets the intruder read`, async () => {
    const broken = clone()
    broken.source_account.bucket_policies[spec.source.bucket].Statement.forEach((st) => (st.Principal = { AWS: `arn:aws:iam::${spec.destination.account_id}:root` }))
    const c = find(deriveChecks(spec, broken), `arn:${spec.partition}:iam::${spec.destination.account_id}:role/intruder (s3:*, kms:* on *) reads source object`)
    assert.equal(await statusOf(c), 'Allowed')
  })
})
