// Checks policies as they are live in an account (read back after `ferry grant` / `ferry revoke`)
// with iam-simulate: can the plan's Batch Operations role read a source object and decrypt with
// the source key, given the role's own policy and those live bucket and key policies?
//
//   node check-live-policies.mjs PLAN.json BUCKET_POLICY.json KEY_POLICY.json allowed|denied
//
// A missing bucket policy is given as the file `none`. Exit 0 when both accesses match the
// expectation, 1 otherwise (each result is printed).
import { readFileSync } from 'node:fs'
import { runSimulation } from '@cloud-copilot/iam-simulate'

const [planFile, bucketFile, keyFile, expect] = process.argv.slice(2)
if (!planFile || !bucketFile || !keyFile || !['allowed', 'denied'].includes(expect)) {
  console.error('usage: check-live-policies.mjs PLAN.json BUCKET_POLICY.json KEY_POLICY.json allowed|denied')
  process.exit(2)
}
const readJson = (f) => (f === 'none' ? undefined : JSON.parse(readFileSync(f, 'utf8')))
const plan = readJson(planFile)
const bucketPolicy = readJson(bucketFile)
const keyPolicy = readJson(keyFile)

const role = plan.batch_role.arn
const roleAccount = role.split(':')[4]
const sourceAccount = plan.source_account.account_id
const sourceBucket = plan.transfer.source.replace('s3://', '')
const keyArn = Object.keys(plan.source_account.key_policies)[0]
const keyRegion = keyArn.split(':')[3]

async function simulate(action, resource, resourceAccount, resourcePolicy, extra) {
  const response = await runSimulation(
    {
      request: {
        principal: role,
        action,
        resource: { resource, accountId: resourceAccount },
        contextVariables: {
          'aws:ResourceAccount': resourceAccount,
          'aws:PrincipalAccount': roleAccount,
          'aws:PrincipalArn': role,
          ...extra,
        },
      },
      identityPolicies: [{ name: 'permissions_policy', policy: plan.batch_role.permissions_policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy } : {}),
    },
    {},
  )
  if (response.resultType === 'error') throw new Error(JSON.stringify(response.errors))
  return response.overallResult
}

const results = [
  ['s3:GetObject on the source', await simulate('s3:GetObject', `arn:aws:s3:::${sourceBucket}/some/key.txt`, sourceAccount, bucketPolicy, {})],
  [
    'kms:Decrypt with the source key via S3',
    await simulate('kms:Decrypt', keyArn, sourceAccount, keyPolicy, {
      'kms:ViaService': `s3.${keyRegion}.amazonaws.com`,
      'kms:CallerAccount': roleAccount,
    }),
  ],
]
let ok = true
for (const [what, result] of results) {
  const matches = expect === 'allowed' ? result === 'Allowed' : result !== 'Allowed'
  ok &&= matches
  console.log(`${matches ? 'ok' : 'MISMATCH'}: ${what}: ${result} (expected ${expect})`)
}
process.exit(ok ? 0 : 1)
