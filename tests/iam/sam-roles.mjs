// The identity policies of each AWS::Serverless::Function's execution role, as the SAM transform
// would build them (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-resource-function.html):
//
//   * no `Role` property: SAM creates `<LogicalId>Role` with the AWS managed
//     AWSLambdaBasicExecutionRole, each `Policies` entry (inline document, SAM policy template,
//     managed policy ARN), and for `DeadLetterQueue` sqs:SendMessage (SQS) or sns:Publish (SNS)
//     on the target;
//   * `Role: !GetAtt SomeRole.Arn` of an AWS::IAM::Role in the template: that role's inline
//     policies and managed policies;
//   * plus every AWS::IAM::Policy / AWS::IAM::ManagedPolicy / AWS::IAM::RolePolicy of the
//     template attached to that role.
//
// Whatever SAM would add to the role that is not modeled here (VPC access, X-Ray tracing,
// polling event sources, event destinations, connectors, permission boundaries, policy
// templates not listed in POLICY_TEMPLATES, managed policies other than the basic execution
// role) throws, so the proofs never run against a role narrower than the deployed one.

import { NO_VALUE } from './cfn.mjs'

/** AWS managed policies we know the content of (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/). */
export const MANAGED_POLICIES = {
  // Version 1 of AWSLambdaBasicExecutionRole: log group and stream creation and log events, on "*".
  AWSLambdaBasicExecutionRole: {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], Resource: '*' }],
  },
}

/** SAM policy templates we model (https://github.com/aws/serverless-application-model/blob/develop/samtranslator/policy_templates_data/policy_templates.json). */
const POLICY_TEMPLATES = {
  SQSSendMessagePolicy: ({ QueueName }, env) => [
    { Effect: 'Allow', Action: ['sqs:SendMessage*'], Resource: `arn:${env.partition}:sqs:${env.region}:${env.account}:${QueueName}` },
  ],
  SNSPublishMessagePolicy: ({ TopicName }, env) => [
    { Effect: 'Allow', Action: ['sns:Publish'], Resource: `arn:${env.partition}:sns:${env.region}:${env.account}:${TopicName}` },
  ],
}

/** Event source types whose SAM translation adds nothing to the function's role. */
const EVENTS_WITHOUT_ROLE_CHANGES = new Set(['SNS', 'S3', 'Schedule', 'ScheduleV2', 'EventBridgeRule', 'CloudWatchEvent', 'Api', 'HttpApi', 'CloudWatchLogs', 'IoTRule', 'Cognito', 'AlexaSkill'])

/** Function properties that change the role in ways not modeled here. */
const UNMODELED_ROLE_PROPERTIES = ['VpcConfig', 'Tracing', 'EventInvokeConfig', 'PermissionsBoundary', 'AssumeRolePolicyDocument', 'RolePath', 'FileSystemConfigs', 'KmsKeyArn']

/** Properties that Globals could give every function and that change the role. */
const ROLE_PROPERTIES = ['Role', 'Policies', 'DeadLetterQueue', 'Events', ...UNMODELED_ROLE_PROPERTIES]


function asList(v) {
  return v === undefined ? [] : Array.isArray(v) ? v : [v]
}

function documentStatements(doc, where) {
  if (!doc || typeof doc !== 'object' || doc.Statement === undefined) throw new Error(`${where}: not a policy document: ${JSON.stringify(doc)}`)
  return asList(doc.Statement)
}

/** The names of the template's SAM-created function roles: `<LogicalId>Role`. */
export function samRoleResources(template) {
  const extra = {}
  for (const [id, r] of Object.entries(template.Resources ?? {}))
    if (r.Type === 'AWS::Serverless::Function' && r.Properties?.Role === undefined)
      extra[`${id}Role`] = { Type: 'AWS::IAM::Role', Condition: r.Condition, Properties: {} }
  return extra
}

/**
 * { logicalId: { roleArn, roleLogicalId, policies: [{ name, policy, managed? }] } } for every function
 * (`managed`: the AWS managed policy's name)
 * existing under the resolver's parameter set.
 */
export function functionRoles(template, resolver) {
  const globals = template.Globals?.Function ?? {}
  for (const key of ROLE_PROPERTIES)
    if (key in globals) throw new Error(`Globals.Function.${key} is not modeled by sam-roles.mjs: set it on each function, or model how SAM merges it`)
  if (Object.values(template.Resources).some((r) => r.Type === 'AWS::Serverless::Connector' || r.Connectors))
    throw new Error('SAM connectors add role policies that sam-roles.mjs does not model')

  const out = {}
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::Serverless::Function' || !resolver.exists(id)) continue
    const p = r.Properties ?? {}
    for (const key of UNMODELED_ROLE_PROPERTIES) {
      // EventInvokeConfig changes the role only through DestinationConfig (SAM adds the
      // destination's send permission); retry limits alone don't.
      if (key === 'EventInvokeConfig' && p[key] !== undefined && p[key].DestinationConfig === undefined) continue
      if (p[key] !== undefined) throw new Error(`${id}.${key} changes the function's role in a way sam-roles.mjs does not model`)
    }
    for (const [name, ev] of Object.entries(p.Events ?? {}))
      if (!EVENTS_WITHOUT_ROLE_CHANGES.has(ev.Type))
        throw new Error(`${id} event ${name} of type ${ev.Type}: SAM adds role permissions for it that sam-roles.mjs does not model`)

    const policies = []
    let roleLogicalId
    if (p.Role !== undefined) {
      if (p.Policies !== undefined || p.DeadLetterQueue !== undefined)
        throw new Error(`${id}: Role together with Policies/DeadLetterQueue is not modeled (SAM ignores or rejects them)`)
      roleLogicalId = roleOfArn(p.Role, id)
      const role = template.Resources[roleLogicalId]
      for (const [i, pol] of asList(resolver.resolve(role.Properties?.Policies)).entries())
        policies.push({ name: `${roleLogicalId}.Policies[${i}] ${pol.PolicyName}`, policy: pol.PolicyDocument })
      for (const arn of asList(resolver.resolve(role.Properties?.ManagedPolicyArns))) policies.push(managedPolicy(arn, template, resolver, `${roleLogicalId}.ManagedPolicyArns`))
      for (const s of documentStatements(resolver.resolve(role.Properties?.AssumeRolePolicyDocument), `${roleLogicalId}.AssumeRolePolicyDocument`))
        if (JSON.stringify(s.Principal) !== JSON.stringify({ Service: 'lambda.amazonaws.com' }) && JSON.stringify(s.Principal) !== JSON.stringify({ Service: ['lambda.amazonaws.com'] }))
          throw new Error(`${roleLogicalId} trusts ${JSON.stringify(s.Principal)}, not only lambda.amazonaws.com`)
    } else {
      roleLogicalId = `${id}Role`
      policies.push({ name: 'AWSLambdaBasicExecutionRole (added by SAM)', policy: MANAGED_POLICIES.AWSLambdaBasicExecutionRole, managed: 'AWSLambdaBasicExecutionRole' })
      const entries = p.Policies === undefined ? [] : typeof p.Policies === 'string' || !Array.isArray(p.Policies) ? [p.Policies] : p.Policies
      for (const [i, entry] of entries.entries()) policies.push(...policyEntry(entry, `${id}.Policies[${i}]`, template, resolver))
      if (p.DeadLetterQueue !== undefined) {
        const dlq = resolver.resolve(p.DeadLetterQueue)
        const action = { SQS: 'sqs:SendMessage', SNS: 'sns:Publish' }[dlq.Type]
        if (!action) throw new Error(`${id}.DeadLetterQueue.Type ${dlq.Type} is not SQS or SNS`)
        policies.push({ name: `DeadLetterQueue (added by SAM)`, policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: action, Resource: dlq.TargetArn }] } })
      }
    }
    const roleArn = resolver.getAtt(roleLogicalId, 'Arn')
    const roleName = resolver.ref(roleLogicalId)
    policies.push(...attachedPolicies(template, resolver, roleName))
    out[id] = { roleLogicalId, roleArn, policies }
  }
  return out
}

/**
 * An AWS::IAM::Role of the template that no function uses (say, a state machine's), as deployed:
 * { roleArn, roleLogicalId, trustPolicy, policies: [{ name, policy, managed? }] } with its inline
 * policies, managed policies and the template's policy resources attached to it.
 */
export function templateRole(template, resolver, roleLogicalId) {
  const role = template.Resources[roleLogicalId]
  if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${roleLogicalId} is not an AWS::IAM::Role of the template`)
  if (role.Properties?.PermissionsBoundary !== undefined) throw new Error(`${roleLogicalId}.PermissionsBoundary is not modeled by sam-roles.mjs`)
  const policies = []
  for (const [i, pol] of asList(resolver.resolve(role.Properties?.Policies)).entries())
    policies.push({ name: `${roleLogicalId}.Policies[${i}] ${pol.PolicyName}`, policy: pol.PolicyDocument })
  for (const arn of asList(resolver.resolve(role.Properties?.ManagedPolicyArns))) policies.push(managedPolicy(arn, template, resolver, `${roleLogicalId}.ManagedPolicyArns`))
  policies.push(...attachedPolicies(template, resolver, resolver.ref(roleLogicalId)))
  return { roleLogicalId, roleArn: resolver.getAtt(roleLogicalId, 'Arn'), trustPolicy: resolver.resolve(role.Properties.AssumeRolePolicyDocument), policies }
}

function roleOfArn(node, id) {
  const getAtt = node?.['Fn::GetAtt']
  const [logical, attr] = typeof getAtt === 'string' ? getAtt.split('.') : getAtt ?? []
  if (attr !== 'Arn') throw new Error(`${id}.Role must be !GetAtt <AWS::IAM::Role in this template>.Arn to be checked, got ${JSON.stringify(node)}`)
  return logical
}

function policyEntry(entry, where, template, resolver) {
  const resolved = resolver.resolve(entry)
  if (resolved === NO_VALUE) return []
  if (typeof resolved === 'string') return [managedPolicy(resolved, template, resolver, where)]
  if (resolved.Statement !== undefined) return [{ name: where, policy: resolved }]
  const names = Object.keys(resolved)
  const make = names.length === 1 ? POLICY_TEMPLATES[names[0]] : undefined
  if (!make) throw new Error(`${where}: policy form ${JSON.stringify(resolved)} is not modeled (inline document, managed policy, or one of the SAM policy templates ${Object.keys(POLICY_TEMPLATES).join(', ')})`)
  return [{ name: `${where} ${names[0]}`, policy: { Version: '2012-10-17', Statement: make(resolved[names[0]], resolver.env) } }]
}

/** A managed policy by ARN (or SAM's short name): one of the template's, or a known AWS one. */
function managedPolicy(arn, template, resolver, where) {
  for (const [id, r] of Object.entries(template.Resources))
    if (r.Type === 'AWS::IAM::ManagedPolicy' && resolver.exists(id) && resolver.ref(id) === arn) return { name: `${where} ${id}`, policy: resolver.resolve(r.Properties.PolicyDocument) }
  const short = arn.replace(/^arn:[^:]+:iam::aws:policy\/(service-role\/)?/, '')
  if (MANAGED_POLICIES[short]) return { name: `${where} ${short}`, policy: MANAGED_POLICIES[short], managed: short }
  throw new Error(`${where}: managed policy ${arn} is not modeled: add its document to MANAGED_POLICIES in sam-roles.mjs`)
}

/** The template's IAM policy resources attached to the role named `roleName`. */
function attachedPolicies(template, resolver, roleName) {
  const out = []
  for (const [id, r] of Object.entries(template.Resources)) {
    if (!['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy', 'AWS::IAM::RolePolicy'].includes(r.Type) || !resolver.exists(id)) continue
    const roles = r.Type === 'AWS::IAM::RolePolicy' ? [resolver.resolve(r.Properties.RoleName)] : asList(resolver.resolve(r.Properties.Roles))
    if (roles.includes(roleName)) out.push({ name: `${id} (${r.Type})`, policy: resolver.resolve(r.Properties.PolicyDocument) })
  }
  return out
}

export { documentStatements }
