// AWS Lambda's Invoke for the gateway: moto would run the function in a Docker container, so
// after the gateway has authorized an Invoke it answers it itself and records the invocation;
// a Rust test then runs the invoked handler with that payload.
//
// This file owns the request mapping (Lambda is REST-JSON, SigV4 service `lambda`; Lambda API
// Reference, Invoke):
//   POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q]
//   X-Amz-Invocation-Type: Event | RequestResponse (the default) | DryRun;  body = the payload
// → `lambda:InvokeFunction` on `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`
// (Service Authorization Reference, AWS Lambda: InvokeFunction, resource type `function`), with
// FunctionName a name (`NAME[:Q]`, in the caller's account and the signing Region), a partial ARN
// (`ACCOUNT:function:NAME[:Q]`) or a full ARN; the answers (Event 202, DryRun 204,
// RequestResponse a 500 ServiceException: nothing runs a function here), Lambda's error shape
// (`x-amzn-ErrorType` header, `{"Type","message"}` body), and the harness's list of invocations:
//   GET /_ferry/lambda/invocations → [{"functionArn", "qualifier"?, "invocationType",
//                                      "principal", "payload"}…] in order
// (functionArn without the qualifier; payload parsed as JSON when it is JSON, else the text).
//
// Function resource policies are not modelled (moto runs no functions and the gateway reads no
// `GetPolicy`): every function is evaluated as having none, so another account's call is denied,
// as AWS denies it without a resource-based policy. Whether the function exists is not checked.
// Any other Lambda request is unmapped (and denied).

import { jsonError, partitionOf, requestId } from './api-operations.mjs'

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/
/** Lambda's FunctionName pattern (Lambda API Reference, Invoke, FunctionName), with groups. */
const FUNCTION_NAME = /^(?:arn:(aws[a-zA-Z-]*)?:lambda:)?(?:([a-z]{2}(?:-gov)?-[a-z]+-\d):)?(?:(\d{12}):)?(function:)?([a-zA-Z0-9_.-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$/
const INVOCATION_TYPES = new Set(['Event', 'RequestResponse', 'DryRun'])
export const INVOKE_ACTION = 'lambda:InvokeFunction'

/**
 * Classifies one Lambda request: Invoke → one `lambda:InvokeFunction` check; anything else unmapped.
 * @param {{method: string, path: string, query: URLSearchParams, headers: Record<string, any>, region: string, caller: {account: string}}} r
 * @param {{actionExists(action: string): Promise<boolean>}} store
 */
export async function classifyLambda(r, store) {
  const what = `lambda ${r.method} ${r.path}`
  const m = INVOKE_PATH.exec(r.path)
  if (!m || r.method !== 'POST') return { unmapped: `${what}: only Invoke is mapped for Lambda` }
  if (!(await store.actionExists(INVOKE_ACTION))) return { unmapped: `${what}: no IAM action named ${INVOKE_ACTION} in the Service Authorization Reference data` }

  let functionName
  try {
    functionName = decodeURIComponent(m[1])
  } catch {
    return { unmapped: `${what}: FunctionName is not URI-encoded` }
  }
  const f = FUNCTION_NAME.exec(functionName)
  if (!f) return { unmapped: `${what}: FunctionName ${functionName} is not a function name or ARN` }
  const [, arnPartition, arnRegion, arnAccount, functionWord, name, nameQualifier] = f
  const isArn = functionName.startsWith('arn:')
  if (isArn && !(arnRegion && arnAccount && functionWord)) return { unmapped: `${what}: FunctionName ${functionName} is not a function ARN` }
  if (arnRegion && arnRegion !== r.region) return { unmapped: `${what}: the function's Region ${arnRegion} is not the Region the request was signed for (${r.region})` }
  const queryQualifier = r.query.get('Qualifier') ?? undefined
  if (nameQualifier && queryQualifier && nameQualifier !== queryQualifier) {
    return { unmapped: `${what}: FunctionName's qualifier ${nameQualifier} and Qualifier ${queryQualifier} differ` }
  }
  const qualifier = nameQualifier ?? queryQualifier
  const invocationType = r.headers['x-amz-invocation-type'] ?? 'RequestResponse'
  if (!INVOCATION_TYPES.has(invocationType)) return { unmapped: `${what}: X-Amz-Invocation-Type ${invocationType} is not Event, RequestResponse or DryRun` }

  const partition = isArn && arnPartition ? arnPartition : partitionOf(r.region)
  const account = arnAccount ?? r.caller.account
  const functionArn = `arn:${partition}:lambda:${r.region}:${account}:function:${name}`
  const resource = qualifier ? `${functionArn}:${qualifier}` : functionArn
  return {
    operation: 'Invoke',
    lambda: { functionArn, qualifier, invocationType },
    // No resource policy: the gateway has none of functions (see the head of this file).
    checks: [{ action: INVOKE_ACTION, resource, resourceAccount: account, context: {} }],
  }
}

/** A Lambda error: `x-amzn-ErrorType` and `{"Type": "User"|"Service", "message"}`. */
export function lambdaError({ type, message, status, fault = 'User' }) {
  return jsonError({ type, message, status, fault })
}

export class InvocationTable {
  constructor() {
    /** @type {Array<{functionArn: string, qualifier?: string, invocationType: string, principal: string, payload: any}>} */
    this.invocations = []
  }

  clear() {
    this.invocations = []
  }

  /**
   * Answers an authorized Invoke (`classified.lambda`) and records it unless it is a DryRun.
   * @param {{functionArn: string, qualifier?: string, invocationType: string}} invoke
   * @param {string} principal the caller's ARN
   * @param {Buffer|undefined} body the payload
   */
  answer(invoke, principal, body) {
    const { functionArn, qualifier, invocationType } = invoke
    if (invocationType === 'DryRun') return { status: 204, headers: { 'x-amzn-requestid': requestId() }, body: '' }
    const text = body?.toString('utf8') ?? ''
    let payload = text
    try {
      payload = JSON.parse(text)
    } catch {
      // not JSON: kept as the text
    }
    this.invocations.push({ functionArn, ...(qualifier ? { qualifier } : {}), invocationType, principal, payload })
    if (invocationType === 'Event') return { status: 202, headers: { 'x-amzn-requestid': requestId() }, body: '' }
    return lambdaError({
      status: 500,
      type: 'ServiceException',
      fault: 'Service',
      message: "ferry gateway: a synchronous Invoke can't be answered here; tests run the handler from /_ferry/lambda/invocations",
    })
  }

  /** The harness's read: GET /_ferry/lambda/invocations. */
  control(method) {
    if (method !== 'GET') return { status: 405, headers: { 'content-type': 'application/json', allow: 'GET' }, body: JSON.stringify({ error: `${method} /_ferry/lambda/invocations: only GET` }) }
    return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(this.invocations) }
  }
}
