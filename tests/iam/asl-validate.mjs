// Validates the Amazon States Language of each AWS::StepFunctions::StateMachine in template.yaml
// as CloudFormation hands it to Step Functions, with asl-validator
// (https://github.com/ChristopheBougere/asl-validator).
//
// CloudFormation's StateMachine handler serializes a `Definition` object to JSON, then replaces
// each `${Name}` of `DefinitionSubstitutions` in that text (StringUtils.replaceEachRepeatedly in
// aws-cloudformation-resource-providers-stepfunctions, DefinitionProcessor.java). Rendered the
// same way here: intrinsics resolved by cfn.mjs for a few deployments (the aws and aws-cn
// partitions), substitutions put in as text. So a number written `${Concurrency}` arrives as the
// string "50", which Step Functions (and asl-validator) refuse where an integer is required.
//
// Also refused, before asl-validator runs:
//   * a null anywhere in the template (CloudFormation: "'null' values are not allowed in
//     templates"; cfn-lint lets them through inside a Definition): "ResultPath: null" can't be
//     deployed as YAML;
//   * a `${...}` left after the substitutions (CloudFormation would leave it in as text);
//   * a substitution the definition never uses.
//
// Usage: node asl-validate.mjs [TEMPLATE]   (FERRY_TEMPLATE works too; default ../../template.yaml)
// Prints one line per state machine and deployment; exits 1 on any finding, 2 on a usage error.

import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import validator from 'asl-validator'
import { loadTemplate, Resolver } from './cfn.mjs'
import { samRoleResources } from './sam-roles.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))

const BASE = {
  TransferName: 'media-archive',
  SourceAccountId: '444455556666',
  SourceBucket: 'media-source',
  DestinationBucket: 'media-destination',
  ManifestBucket: 'media-inventory',
  ManifestKey: 'inventory/media-source/all/2025-01-01T01-00Z/manifest.json',
  ReportBucket: 'media-reports',
  ReportPrefix: 'ferry/reports',
  NotificationEmail: 'storage-team@example.com',
  InventoryRuns: 'true',
}

/** Deployments the definitions are rendered for: both partitions, the parameters' bounds. */
export const DEPLOYMENTS = [
  { name: 'aws, us-east-1, defaults', env: { account: '111122223333', region: 'us-east-1', stackName: 'ferry-media' }, parameters: { ...BASE, SourceRegion: 'us-east-1' } },
  {
    name: 'aws-cn, cn-north-1, concurrency 1000, every run fanned out',
    env: { account: '111122223333', region: 'cn-north-1', stackName: 'ferry-media' },
    parameters: { ...BASE, SourceRegion: 'cn-north-1', InventoryFanOutConcurrency: '1000', InventoryFanOutDataBytes: '0' },
  },
]

/** JSON paths of the null values in `node` (CloudFormation refuses a template with any). */
export function nullPaths(node, path = '') {
  if (node === null) return [path || '/']
  if (Array.isArray(node)) return node.flatMap((v, i) => nullPaths(v, `${path}/${i}`))
  if (typeof node === 'object') return Object.entries(node).flatMap(([k, v]) => nullPaths(v, `${path}/${k}`))
  return []
}

/**
 * The definition of state machine `logicalId` as Step Functions receives it in this deployment:
 * { definition (parsed), text, problems } — problems are substitution findings.
 */
export function renderDefinition(template, resolver, logicalId) {
  const props = template.Resources[logicalId].Properties ?? {}
  if (props.Definition === undefined) throw new Error(`${logicalId}: only a Definition object is modeled (not DefinitionString or DefinitionS3Location)`)
  const substitutions = Object.entries(resolver.resolve(props.DefinitionSubstitutions ?? {})).map(([k, v]) => [k, resolver.scalar(v, `${logicalId}.DefinitionSubstitutions.${k}`)])
  const problems = []
  let text = JSON.stringify(resolver.resolve(props.Definition), null, 2)
  for (const [k] of substitutions) if (!text.includes(`\${${k}}`)) problems.push(`substitution ${k} is not used in the definition`)
  // replaceEachRepeatedly: again until nothing changes (a value may itself hold a placeholder).
  for (let round = 0; ; round++) {
    if (round > substitutions.length + 1) throw new Error(`${logicalId}: the substitutions refer to each other in a cycle`)
    const before = text
    for (const [k, v] of substitutions) text = text.split(`\${${k}}`).join(v)
    if (text === before) break
  }
  for (const m of new Set(text.match(/\$\{[^}]*\}/g) ?? [])) problems.push(`${m} is left in the definition: no DefinitionSubstitutions entry names it`)
  let definition
  try {
    definition = JSON.parse(text)
  } catch (e) {
    problems.push(`the substituted definition is not JSON: ${e.message}`)
  }
  return { definition, text, problems }
}

/** Every finding for `template`: [{ where, problems: [...] }] with a line per check made. */
export function validateTemplate(template) {
  const results = []
  const nulls = nullPaths(template)
  results.push({ where: 'template', problems: nulls.map((p) => `null value at ${p} ('null' values are not allowed in templates)`) })
  const machines = Object.entries(template.Resources ?? {}).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')
  let rendered = 0
  for (const d of DEPLOYMENTS) {
    const resolver = new Resolver(template, d.parameters, d.env, samRoleResources(template))
    for (const [id] of machines) {
      if (!resolver.exists(id)) continue
      rendered++
      const { definition, problems } = renderDefinition(template, resolver, id)
      if (definition !== undefined) {
        const result = validator(structuredClone(definition), { checkPaths: true, checkArn: true })
        if (!result.isValid) problems.push(...result.errors.map((e) => `${e['Error code']}: ${e.Message}${e.path ? ` at ${e.path}` : ''}`))
      }
      results.push({ where: `${id} (${d.name})`, problems })
    }
  }
  if (!rendered) results.push({ where: 'template', problems: ['no state machine exists in any deployment: nothing was validated'] })
  return results
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  if (args.length > 1 || args[0]?.startsWith('-')) {
    process.stderr.write('usage: node asl-validate.mjs [TEMPLATE]\n')
    process.exit(2)
  }
  const path = args[0] ?? process.env.FERRY_TEMPLATE ?? join(HERE, '..', '..', 'template.yaml')
  let failed = false
  for (const { where, problems } of validateTemplate(loadTemplate(path))) {
    if (problems.length) {
      failed = true
      process.stdout.write(`✕ ${where}:\n${problems.map((p) => `    ${p}`).join('\n')}\n`)
    } else {
      process.stdout.write(`✓ ${where}: ${where === 'template' ? 'no null values' : 'valid Amazon States Language (asl-validator)'}\n`)
    }
  }
  process.exit(failed ? 1 : 0)
}
