// The properties CloudFormation sends the TransferPlan custom resource (Custom::FerryTransferPlan)
// for one deployment: template.yaml's TransferPlan.Properties resolved with the given parameter
// values, the template's defaults for the others, the pseudo parameters and the fake physical ids
// of the stack's own resources (the same Resolver the function-role proofs and function-role.mjs
// use), so a test hands stack-handler exactly what the template would.
//
// Usage: node transfer-plan-properties.mjs ACCOUNT REGION STACK_NAME PARAMETERS_JSON
// Prints one JSON object on stdout.

import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadTemplate, Resolver } from './cfn.mjs'
import { samRoleResources } from './sam-roles.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const [account, region, stackName, parametersJson] = process.argv.slice(2)
if (!parametersJson) {
  process.stderr.write('usage: node transfer-plan-properties.mjs ACCOUNT REGION STACK_NAME PARAMETERS_JSON\n')
  process.exit(2)
}
const template = loadTemplate(join(HERE, '..', '..', 'template.yaml'))
const resolver = new Resolver(template, JSON.parse(parametersJson), { account, region, stackName }, samRoleResources(template))
process.stdout.write(JSON.stringify(resolver.resolve(template.Resources.TransferPlan.Properties)) + '\n')
