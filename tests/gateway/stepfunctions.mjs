// AWS Step Functions for the gateway: the IAM checks of one request. moto serves Step Functions
// itself, so an authorized request is forwarded unchanged, like KMS, SNS or SQS.
//
// Protocol (botocore `stepfunctions/2016-11-23/service-2.json`, metadata): awsJson 1.0, SigV4
// signing name `states`, `X-Amz-Target: AWSStepFunctions.<Operation>`, every request `POST /` with
// a JSON body. The operation name is the IAM action (`states:StartExecution`, …; checked against
// iam-data like the other JSON services). The resource is the ARN the request names (Service
// Authorization Reference, AWS Step Functions, resource types and the "API operations" table):
//
//   StartExecution, StartSyncExecution, DescribeStateMachine, DeleteStateMachine
//       → `stateMachineArn` (type statemachine; a version or alias ARN `…:stateMachine:NAME:Q` is
//         checked as it is, with `states:StateMachineQualifier` = [Q])
//   ListExecutions → `stateMachineArn` (statemachine), or `mapRunArn` (maprun)
//   DescribeExecution, StopExecution, GetExecutionHistory, DescribeStateMachineForExecution
//       → `executionArn` (type execution, or express)
//   CreateStateMachine → `arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME` (the caller's
//       account and the signing Region; `aws:RequestTag/*`, `aws:TagKeys` from `tags`), and
//       `iam:PassRole` on `roleArn` with `iam:PassedToService = states.amazonaws.com`;
//       `states:TagResource` on the new state machine when the request has tags and
//       `states:PublishStateMachineVersion` when `publish` is true (the "API operations" table
//       lists both under CreateStateMachine; asked only when the request uses them, as for
//       S3 Control CreateJob's tags)
//   ListStateMachines → `*` (the action has no resource type)
//
// Step Functions has no resource-based policies: every state machine is evaluated as having
// none, so another account's state machine is refused (cross-account needs both sides). Any
// other Step Functions operation, or a request without (or with a malformed) ARN it needs, is
// unmapped (and denied). Refusals are the awsJson 1.0 `{"__type": "AccessDeniedException",
// "message"}` (HTTP 400), as for the other JSON services (gateway.mjs `denial`).

// (api-operations.mjs imports this file: its helpers are repeated here rather than imported back.)
const partitionOf = (region) => (region?.startsWith('cn-') ? 'aws-cn' : region?.startsWith('us-gov-') ? 'aws-us-gov' : 'aws')
const accountOfArn = (arn) => arn?.split(':')[4]

/** `arn:P:states:R:ACCOUNT:stateMachine:NAME[:QUALIFIER]` (a Distributed Map label `NAME/LABEL` is not a state machine). */
const STATE_MACHINE_ARN = /^arn:[^:]+:states:[^:]+:(\d{12}):stateMachine:([^:/]+)(?::([^:/]+))?$/
/** `arn:P:states:R:ACCOUNT:execution:NAME[/LABEL]:ID` or `…:express:NAME:ID:ID2`. */
const EXECUTION_ARN = /^arn:[^:]+:states:[^:]+:(\d{12}):(?:execution:[^:]+:[^:]+|express:[^:]+:[^:]+:[^:]+)$/
/** `arn:P:states:R:ACCOUNT:mapRun:NAME/LABEL:ID`. */
const MAP_RUN_ARN = /^arn:[^:]+:states:[^:]+:(\d{12}):mapRun:[^:/]+\/[^:]+:[^:]+$/

/** Operations checked on the state machine named in `stateMachineArn`. */
const ON_STATE_MACHINE = new Set(['StartExecution', 'StartSyncExecution', 'DescribeStateMachine', 'DeleteStateMachine'])
/** Operations checked on the execution named in `executionArn`. */
const ON_EXECUTION = new Set(['DescribeExecution', 'StopExecution', 'GetExecutionHistory', 'DescribeStateMachineForExecution'])

export const PASSED_TO_STATES = 'states.amazonaws.com'

/**
 * The checks of one Step Functions request (`one(resource, account, extra)` builds them for the
 * operation's action), or `{unmapped}`.
 * @param {{operation: string, params: Record<string, any>, region: string, caller: {account: string}}} r
 * @param {{actionExists(action: string): Promise<boolean>}} store
 */
export async function stepFunctionsChecks(r, store, one) {
  const { operation, params, caller } = r
  const what = `states ${operation}`

  if (ON_STATE_MACHINE.has(operation) || (operation === 'ListExecutions' && params.stateMachineArn !== undefined)) {
    if (operation === 'ListExecutions' && params.mapRunArn !== undefined) return { unmapped: `${what}: both stateMachineArn and mapRunArn` }
    return stateMachineCheck(what, params.stateMachineArn, one)
  }
  if (operation === 'ListExecutions') {
    const arn = params.mapRunArn
    if (typeof arn !== 'string' || !MAP_RUN_ARN.test(arn)) return { unmapped: `${what}: neither a stateMachineArn nor a Map Run ARN in mapRunArn` }
    return one(arn, accountOfArn(arn))
  }
  if (ON_EXECUTION.has(operation)) {
    const arn = params.executionArn
    if (typeof arn !== 'string' || !EXECUTION_ARN.test(arn)) return { unmapped: `${what}: executionArn ${JSON.stringify(arn)} is not an execution ARN` }
    return one(arn, accountOfArn(arn))
  }
  if (operation === 'ListStateMachines') return one('*', caller.account)
  if (operation === 'CreateStateMachine') return createStateMachineChecks(r, store, one)
  return { unmapped: `${what}: operation not mapped by the gateway` }
}

function stateMachineCheck(what, arn, one) {
  const m = typeof arn === 'string' ? STATE_MACHINE_ARN.exec(arn) : null
  if (!m) return { unmapped: `${what}: stateMachineArn ${JSON.stringify(arn)} is not a state machine ARN` }
  const qualifier = m[3]
  return one(arn, m[1], qualifier ? { context: { 'states:StateMachineQualifier': [qualifier] } } : {})
}

async function createStateMachineChecks(r, store, one) {
  const { params, region, caller } = r
  const what = `states ${r.operation}`
  const name = params.name
  // Step Functions' name rules (1–80 characters) are moto's to answer; only a name that could not
  // be part of an ARN is unmapped here.
  if (typeof name !== 'string' || !name || /[:/\s]/.test(name)) return { unmapped: `${what}: name ${JSON.stringify(name)} can't name a state machine ARN` }
  const roleArn = params.roleArn
  if (typeof roleArn !== 'string' || !/^arn:[^:]+:iam::\d{12}:role\/.+$/.test(roleArn)) return { unmapped: `${what}: roleArn ${JSON.stringify(roleArn)} is not a role ARN` }
  const tags = Array.isArray(params.tags) ? params.tags : []
  const context = {}
  if (tags.length) {
    context['aws:TagKeys'] = tags.map((t) => String(t?.key))
    for (const t of tags) context[`aws:RequestTag/${t?.key}`] = String(t?.value ?? '')
  }
  const arn = `arn:${partitionOf(region)}:states:${region}:${caller.account}:stateMachine:${name}`
  const checks = one(arn, caller.account, { context })
  const extra = []
  if (params.publish === true) extra.push({ action: 'states:PublishStateMachineVersion', resource: arn, resourceAccount: caller.account, context: {} })
  if (tags.length) extra.push({ action: 'states:TagResource', resource: arn, resourceAccount: caller.account, context: { ...context } })
  extra.push({ action: 'iam:PassRole', resource: roleArn, resourceAccount: accountOfArn(roleArn), context: { 'iam:PassedToService': PASSED_TO_STATES } })
  for (const c of extra) {
    if (!(await store.actionExists(c.action))) return { unmapped: `${what}: no IAM action named ${c.action} in the Service Authorization Reference data` }
  }
  return [...checks, ...extra]
}
