// AWS CloudFormation for the gateway: the stack resource of an operation, and the harness's
// control of what DescribeStacks says a stack's status is.
//
// Mapping (query protocol, SigV4 service `cloudformation`): the operation name is the IAM action
// (`cloudformation:DescribeStacks`, …; checked against iam-data like the other query services).
// An operation naming a stack in `StackName` is checked on the stack's ARN,
// `arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/ID` (Service Authorization Reference,
// AWS CloudFormation, resource type `stack`): a stack id is that ARN; a name is resolved through
// moto (as CloudFormation resolves it), and a name moto doesn't know (CreateStack) is checked on
// `…:stack/NAME/*`. A request without `StackName` (DescribeStacks of every stack, ListStacks) is
// unmapped: AWS checks it on `*`, but iam-simulate reads a `*` resource as "any resource", so a
// grant on one stack would pass it; nothing of Ferry's makes one.
//
// Status control: moto completes every stack operation at once (CreateStack answers with the
// stack already CREATE_COMPLETE), so no test could meet a stack in an operation. The harness
// sets the status DescribeStacks reports for a stack id:
//   POST /_ferry/cloudformation/stack-status  {"stackId": ARN, "status": "UPDATE_IN_PROGRESS"}
//        → 200 {"stackId", "status"}; "status": null forgets the override (moto's own is shown)
//   GET  /_ferry/cloudformation/stack-status  → 200 {ARN: status, …}
// A status must be one of CloudFormation's StackStatus values (400 otherwise). The gateway
// rewrites `<StackStatus>` of that stack in every DescribeStacks answer moto gives (whoever
// asks, after authorization); nothing else about the stack changes, in moto or in the answer.
// `POST /moto-api/reset` through the gateway forgets every override.

import { xmlDecode, xmlEncode } from './upstream.mjs'

// (api-operations.mjs imports this file: its helpers are repeated here rather than imported back.)
const partitionOf = (region) => (region?.startsWith('cn-') ? 'aws-cn' : region?.startsWith('us-gov-') ? 'aws-us-gov' : 'aws')
const accountOfArn = (arn) => arn?.split(':')[4]

/**
 * CloudFormation's StackStatus values: botocore `botocore/data/cloudformation/2010-05-15/service-2.json`,
 * shape `StackStatus` (the same list as ferry-flows's `stack_status::STACK_STATUSES`).
 */
export const STACK_STATUSES = new Set([
  'CREATE_IN_PROGRESS', 'CREATE_FAILED', 'CREATE_COMPLETE',
  'ROLLBACK_IN_PROGRESS', 'ROLLBACK_FAILED', 'ROLLBACK_COMPLETE',
  'DELETE_IN_PROGRESS', 'DELETE_FAILED', 'DELETE_COMPLETE',
  'UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', 'UPDATE_COMPLETE', 'UPDATE_FAILED',
  'UPDATE_ROLLBACK_IN_PROGRESS', 'UPDATE_ROLLBACK_FAILED', 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS', 'UPDATE_ROLLBACK_COMPLETE',
  'REVIEW_IN_PROGRESS',
  'IMPORT_IN_PROGRESS', 'IMPORT_COMPLETE', 'IMPORT_ROLLBACK_IN_PROGRESS', 'IMPORT_ROLLBACK_FAILED', 'IMPORT_ROLLBACK_COMPLETE',
])

const STACK_ARN = /^arn:[^:]+:cloudformation:[^:]+:\d{12}:stack\/[^/]+\/[^/]+$/

/**
 * The checks of one CloudFormation request (`one(resource, account)` builds them for the action).
 * @param {{operation: string, params: Record<string, string>, region: string, caller: {account: string}}} r
 * @param {{stackArn(account: string, region: string, name: string): Promise<string|undefined>}} store
 */
export async function cloudFormationChecks(r, store, one) {
  const { params, region, caller } = r
  const name = params.StackName
  if (!name) return { unmapped: `cloudformation ${r.operation} without StackName: checked on "*" by AWS, which iam-simulate would read as any stack` }
  if (name.startsWith('arn:')) {
    if (!STACK_ARN.test(name)) return { unmapped: `cloudformation ${r.operation}: StackName ${name} is not a stack ARN` }
    return one(name, accountOfArn(name))
  }
  const arn = await store.stackArn(caller.account, region, name)
  return one(arn ?? `arn:${partitionOf(region)}:cloudformation:${region}:${caller.account}:stack/${name}/*`, caller.account)
}

/** The statuses the harness set, by stack id. */
export class StackStatusTable {
  constructor() {
    /** stack ARN → status */
    this.statuses = new Map()
  }

  clear() {
    this.statuses.clear()
  }

  /** The harness API (see the top of this file). */
  control(method, json) {
    const answer = (status, body) => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    if (method === 'GET') return answer(200, Object.fromEntries(this.statuses))
    if (method !== 'POST') return answer(405, { error: 'GET or POST' })
    let update
    try {
      update = JSON.parse(json || '{}')
    } catch (e) {
      return answer(400, { error: `not JSON: ${e.message}` })
    }
    const { stackId, status } = update
    if (typeof stackId !== 'string' || !STACK_ARN.test(stackId)) return answer(400, { error: `stackId must be a stack ARN, got ${JSON.stringify(stackId)}` })
    if (status === null) {
      this.statuses.delete(stackId)
      return answer(200, { stackId, status: null })
    }
    if (!STACK_STATUSES.has(status)) return answer(400, { error: `status must be a CloudFormation StackStatus, got ${JSON.stringify(status)}` })
    this.statuses.set(stackId, status)
    return answer(200, { stackId, status })
  }

  /** Whether a DescribeStacks answer needs rewriting at all. */
  get active() {
    return this.statuses.size > 0
  }

  /**
   * moto's DescribeStacks XML with the harness's statuses: in each stack member, the
   * `<StackStatus>` following its `<StackId>` (moto writes StackId first, and a member's
   * Parameters, Outputs and Tags hold no StackStatus).
   */
  rewrite(xml) {
    return xml.replace(/(<StackId>([^<]*)<\/StackId>[\s\S]*?<StackStatus>)([^<]*)(<\/StackStatus>)/g, (all, head, id, status, tail) => {
      const set = this.statuses.get(xmlDecode(id))
      return set === undefined ? all : `${head}${xmlEncode(set)}${tail}`
    })
  }
}
