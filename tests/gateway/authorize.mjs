// One authorization decision: runs @cloud-copilot/iam-simulate for a principal, an action, a
// resource (with its account and resource policy) and the request context, and turns a denial
// into the sentence AWS would answer with.
//
// iam-simulate owns the evaluation logic (explicit deny wins; cross-account needs both the
// identity and the resource policy; same-account needs either, except KMS keys and role trust
// policies, where the resource policy must allow, directly or by naming the account root;
// permissions boundaries and session policies limit identity grants).

import { runSimulation } from '@cloud-copilot/iam-simulate'

/**
 * @param {{principal: string, action: string, resource: string, resourceAccount: string,
 *   context: Record<string, string|string[]>, identityPolicies: Array<{name: string, policy: any}>,
 *   permissionBoundaryPolicies?: Array<{name: string, policy: any}>, sessionPolicy?: any, resourcePolicy?: any}} q
 * @returns {Promise<{allowed: boolean, result: string, because?: string, ignoredContextKeys?: string[], error?: string}>}
 */
export async function simulate(q) {
  q = withEncryptionContextKeys(q)
  let response
  try {
    response = await runSimulation(
      {
        request: {
          principal: q.principal,
          action: q.action,
          resource: { resource: q.resource, accountId: q.resourceAccount },
          contextVariables: q.context,
        },
        identityPolicies: q.identityPolicies,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        ...(q.permissionBoundaryPolicies?.length ? { permissionBoundaryPolicies: q.permissionBoundaryPolicies } : {}),
        ...(q.sessionPolicy ? { sessionPolicy: q.sessionPolicy } : {}),
        ...(q.resourcePolicy ? { resourcePolicy: q.resourcePolicy } : {}),
      },
      { simulationMode: 'Strict' },
    )
  } catch (e) {
    return { allowed: false, result: 'Error', because: `the gateway could not evaluate the policies (${e.message})`, error: e.message }
  }
  if (response.resultType === 'error') {
    const detail = JSON.stringify(response.errors).slice(0, 600)
    return { allowed: false, result: 'Error', because: `the gateway could not evaluate the policies: ${detail}`, error: detail }
  }
  const analysis = response.resultType === 'single' ? response.result?.analysis : response.results?.[0]?.analysis
  const ignoredContextKeys = response.resultType === 'single' ? response.result?.ignoredContextKeys : response.results?.[0]?.ignoredContextKeys
  if (response.overallResult === 'Allowed') return { allowed: true, result: 'Allowed', ignoredContextKeys }
  return { allowed: false, result: response.overallResult, because: becauseText(q.action, response.overallResult, analysis), ignoredContextKeys }
}

// iam-simulate drops every `kms:EncryptionContext:<key>` context value (it matches a key with a
// variable part only after a '/', and this one has ':'), so a policy condition on it would never
// match: an Allow that needs it would be refused, a Deny that needs it ignored. The decision is
// kept faithful by renaming those keys, in the context and in every policy's conditions, to the
// global `aws:PrincipalTag/` form iam-simulate does evaluate; the gateway sets no principal tags,
// so nothing else uses that name. Key names compare case-insensitively, as IAM's do.
const EC_KEY = /^kms:encryptioncontext:(.+)$/i
const ecAlias = (suffix) => `aws:PrincipalTag/ferry-kms-ec.${suffix.toLowerCase()}`

function withEncryptionContextKeys(q) {
  if (!Object.keys(q.context ?? {}).some((k) => EC_KEY.test(k)) && !JSON.stringify([q.identityPolicies, q.resourcePolicy, q.sessionPolicy, q.permissionBoundaryPolicies]).match(/kms:encryptioncontext:/i)) return q
  const context = {}
  for (const [k, v] of Object.entries(q.context ?? {})) {
    const m = EC_KEY.exec(k)
    context[m ? ecAlias(m[1]) : k] = v
  }
  const rename = (policy) => {
    if (!policy || typeof policy !== 'object') return policy
    const doc = structuredClone(policy)
    const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement ? [doc.Statement] : []
    for (const st of statements) {
      for (const operator of Object.keys(st.Condition ?? {})) {
        const block = st.Condition[operator]
        st.Condition[operator] = Object.fromEntries(Object.entries(block).map(([k, v]) => {
          const m = EC_KEY.exec(k)
          return [m ? ecAlias(m[1]) : k, v]
        }))
      }
    }
    return doc
  }
  const renameAll = (list) => list?.map((p) => ({ ...p, policy: rename(p.policy) }))
  return {
    ...q,
    context,
    identityPolicies: renameAll(q.identityPolicies),
    permissionBoundaryPolicies: renameAll(q.permissionBoundaryPolicies),
    sessionPolicy: rename(q.sessionPolicy),
    resourcePolicy: rename(q.resourcePolicy),
  }
}

const POLICY_WORDS = {
  identity: ['an identity-based policy', 'identity-based policy'],
  resource: ['a resource-based policy', 'resource-based policy'],
  pb: ['a permissions boundary', 'permissions boundary'],
  scp: ['a service control policy', 'service control policy'],
  rcp: ['a resource control policy', 'resource control policy'],
  vpce: ['a VPC endpoint policy', 'VPC endpoint policy'],
  session: ['a session policy', 'session policy'],
}

/**
 * AWS's wording: "with an explicit deny in a resource-based policy", "because no identity-based
 * policy allows the X action". Read from the per-policy-type parts of iam-simulate's analysis
 * (getDenialReasons reports nothing for a missing resource policy, so it cannot be used alone).
 */
function becauseText(action, result, analysis) {
  const parts = [
    ['identity', analysis?.identityAnalysis?.result],
    ['resource', analysis?.resourceAnalysis?.result],
    ['pb', analysis?.permissionBoundaryAnalysis?.result],
    ['session', analysis?.sessionAnalysis?.result],
    ['scp', analysis?.scpAnalysis?.result],
    ['rcp', analysis?.rcpAnalysis?.result],
    ['vpce', analysis?.endpointAnalysis?.result],
  ]
  if (result === 'ExplicitlyDenied') {
    // The resource policy first: AWS reports a resource-based deny when both sides deny.
    const order = ['resource', 'identity', 'pb', 'session', 'scp', 'rcp', 'vpce']
    const found = order.find((t) => parts.find(([k]) => k === t)?.[1] === 'ExplicitlyDenied')
    return `with an explicit deny in ${(POLICY_WORDS[found] ?? ['a policy'])[0]}`
  }
  const identity = analysis?.identityAnalysis?.result
  const resource = analysis?.resourceAnalysis?.result
  // Guardrails that blocked an otherwise allowed request.
  const blocked = analysis?.blockedBy?.find((b) => b !== 'identity' && b !== 'resource')
  let type
  if (blocked) type = blocked
  else if (identity !== 'Allowed' && resource !== 'Allowed') type = 'identity'
  else if (identity === 'Allowed') type = ['pb', 'session'].find((t) => { const r = parts.find(([k]) => k === t)?.[1]; return r && r !== 'Allowed' }) ?? 'resource'
  else type = 'identity'
  return `because no ${(POLICY_WORDS[type] ?? POLICY_WORDS.identity)[1]} allows the ${action} action`
}

/** "User: P is not authorized to perform: A on resource: R because …" (S3 quotes the resource). */
export function deniedMessage({ principal, action, resource, because, quoteResource }) {
  const r = quoteResource ? `"${resource}"` : resource
  return `User: ${principal} is not authorized to perform: ${action} on resource: ${r} ${because}`
}
