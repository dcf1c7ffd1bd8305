// One function's execution role as the stack would deploy it, for tests that run the function
// under that role (through the authorizing gateway in front of moto): the role's name and ARN,
// its policy documents resolved for one deployment (sam-roles.mjs, the same model the
// function-role proofs use; AWS managed policies inlined, since moto doesn't hold their
// content), the physical names of the stack's resources those documents name, and the state
// bucket's policy.
//
// Usage: [FERRY_TEMPLATE=path] node function-role.mjs FUNCTION_ID ACCOUNT REGION STACK_NAME PARAMETERS_JSON [STACK_ID]
// Prints one JSON object on stdout. STACK_ID is what AWS::StackId resolves to (the id of a stack
// the test made on moto); without it, a made-up id of the stack's name.

import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadTemplate, Resolver } from './cfn.mjs'
import { functionRoles, samRoleResources } from './sam-roles.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const [fnId, account, region, stackName, parametersJson, stackId] = process.argv.slice(2)
if (!parametersJson) {
  process.stderr.write('usage: node function-role.mjs FUNCTION_ID ACCOUNT REGION STACK_NAME PARAMETERS_JSON [STACK_ID]\n')
  process.exit(2)
}
// FERRY_TEMPLATE: another template (say, one with a fix taken out, to see a test fail).
const template = loadTemplate(process.env.FERRY_TEMPLATE ?? join(HERE, '..', '..', 'template.yaml'))
const resolver = new Resolver(template, JSON.parse(parametersJson), { account, region, stackName, ...(stackId ? { stackId } : {}) }, samRoleResources(template))
const role = functionRoles(template, resolver)[fnId]
if (!role) {
  process.stderr.write(`${fnId} is not a function of the template in this parameter set\n`)
  process.exit(2)
}
const refOr = (id) => (resolver.exists(id) ? resolver.ref(id) : null)
process.stdout.write(
  JSON.stringify({
    roleName: resolver.ref(role.roleLogicalId),
    roleArn: role.roleArn,
    policies: role.policies.map((p, i) => ({ name: `policy-${i}`, source: p.name, document: p.policy })),
    stateBucket: refOr('StateBucket'),
    notificationTopicArn: refOr('NotificationTopic'),
    approvalTopicArn: refOr('ApprovalTopic'),
    // The state bucket's policy as deployed (who may read redrive manifests, TLS only).
    stateBucketPolicy: resolver.exists('StateBucketPolicy') ? resolver.resolve(template.Resources.StateBucketPolicy.Properties.PolicyDocument) : null,
    // The topics' policies as deployed (who may publish, subscribe, change them): topic ARN → document.
    topicPolicies: Object.fromEntries(
      Object.values(template.Resources)
        .filter((r) => r.Type === 'AWS::SNS::TopicPolicy')
        .flatMap((r) => resolver.resolve(r.Properties.Topics).map((arn) => [arn, resolver.resolve(r.Properties.PolicyDocument)])),
    ),
    // The batch role's permissions boundary (a managed policy the stack creates), as deployed.
    batchRoleBoundary: resolver.exists('BatchRoleBoundary')
      ? { arn: resolver.ref('BatchRoleBoundary'), document: resolver.resolve(template.Resources.BatchRoleBoundary.Properties.PolicyDocument) }
      : null,
    // The function's environment as Lambda gets it: Globals' variables, then its own (a value
    // the model can't resolve, such as a custom resource's attribute, is null).
    environment: Object.fromEntries(
      Object.entries({
        ...(template.Globals?.Function?.Environment?.Variables ?? {}),
        ...(template.Resources[fnId].Properties.Environment?.Variables ?? {}),
      }).map(([name, value]) => {
        try {
          return [name, resolver.resolve(value)]
        } catch {
          return [name, null]
        }
      }),
    ),
  }) + '\n',
)
