// What the gateway knows about the accounts behind moto, read from moto with admin credentials
// and cached: identity policies of roles and users (inline, attached managed, group, permissions
// boundary), role trust policies, bucket policies, bucket owners and default encryption, KMS key
// ARNs and key policies, SNS topic and SQS queue policies, and the SSE-KMS key of multipart uploads.
//
// Caches are invalidated by the gateway when it forwards a call that can change them (any IAM
// write clears all identity data; Put/DeleteBucketPolicy clears that bucket's policy; and so on),
// so a policy change made through the gateway is seen by the next request.

import { Upstream, encodeKeyPath, parsePolicyDocument, xmlAll, xmlFirst, xmlRawAll, xmlSection } from './upstream.mjs'

const IAM = { service: 'iam', region: 'us-east-1', version: '2010-05-08' }

export class PolicyStore {
  /**
   * @param {Upstream} upstream
   * @param {Set<string>} knownAccounts accounts to search for a bucket's owner (grows as the gateway sees accounts)
   */
  constructor(upstream, knownAccounts) {
    this.up = upstream
    this.knownAccounts = knownAccounts
    this.identity = new Map() // principal key → Promise<{exists, identityPolicies, permissionBoundaryPolicies}>
    this.trust = new Map() // role ARN → Promise<policy|null>
    this.bucketPolicies = new Map() // bucket → Promise<policy|null>
    this.bucketOwners = new Map() // bucket → account
    this.bucketEncryption = new Map() // bucket → Promise<{keyId?: string, managed?: true}|null>
    this.keyArns = new Map() // `${account}|${region}|${keyId}` → arn (hits only)
    this.keyPolicies = new Map() // key ARN → Promise<policy|null>
    this.topicPolicies = new Map() // topic ARN → Promise<policy|null>
    this.queuePolicies = new Map() // queue ARN → Promise<policy|null>
    this.uploads = new Map() // uploadId → {keyId, bucketKey, checksum?} | null (SSE-KMS of a multipart upload)
    // `${account}|${role}|${policy}` → the inline role policy as AWS would hold it, where moto
    // refused part of it: moto's IAM rejects S3 ARNs with a Region, so a statement on S3 Batch
    // Operations jobs (`arn:aws:s3:REGION:ACCOUNT:job/*`) cannot be stored there. The harness
    // registers the whole document; it is used only while it equals moto's copy once its job
    // ARNs are taken out (so nothing but job ARNs can be added this way).
    this.jobArnPolicies = new Map()
  }

  /** Registers the whole inline role policy of which moto holds the copy without job ARNs. */
  setJobArnPolicy(account, roleName, policyName, policy) {
    this.jobArnPolicies.set(`${account}|${roleName}|${policyName}`, policy)
    this.identity.delete(`role|${account}|${roleName}`)
  }
  dropJobArnPolicy(account, roleName, policyName) {
    this.jobArnPolicies.delete(`${account}|${roleName}|${policyName}`)
  }

  // ---------------------------------------------------------------------------------------------
  // Invalidation

  /** Everything forgotten, as moto forgets everything on a reset. */
  clearAll() {
    for (const value of Object.values(this)) if (value instanceof Map) value.clear()
  }
  clearIdentity() {
    this.identity.clear()
    this.trust.clear()
  }
  clearBucket(bucket) {
    this.bucketPolicies.delete(bucket)
    this.bucketEncryption.delete(bucket)
  }
  forgetBucket(bucket) {
    this.clearBucket(bucket)
    this.bucketOwners.delete(bucket)
  }
  clearKeys() {
    this.keyArns.clear()
    this.keyPolicies.clear()
  }
  clearTopics() {
    this.topicPolicies.clear()
  }
  clearQueues() {
    this.queuePolicies.clear()
  }

  /** Caches a promise, dropping it again if it fails (so a transient error is not remembered). */
  #cached(map, key, load) {
    let p = map.get(key)
    if (!p) {
      p = load()
      map.set(key, p)
      p.catch(() => {
        if (map.get(key) === p) map.delete(key)
      })
    }
    return p
  }

  #iam(account, params) {
    return this.up.query(account, IAM.service, IAM.region, { Version: IAM.version, ...params })
  }

  /** The ARN (stack id) of the stack `name` in `account`/`region`, as moto describes it; undefined if none. */
  async stackArn(account, region, name) {
    try {
      const xml = await this.up.query(account, 'cloudformation', region, { Action: 'DescribeStacks', Version: '2010-05-15', StackName: name })
      return xmlFirst(xml, 'StackId') || undefined
    } catch (e) {
      if (e.status === 400) return undefined // ValidationError: Stack with id NAME does not exist
      throw e
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Identity policies

  async #managedPolicy(account, arn) {
    const policy = await this.#iam(account, { Action: 'GetPolicy', PolicyArn: arn })
    const version = xmlFirst(policy, 'DefaultVersionId')
    const doc = await this.#iam(account, { Action: 'GetPolicyVersion', PolicyArn: arn, VersionId: version })
    return { name: arn, policy: parsePolicyDocument(xmlFirst(doc, 'Document')) }
  }

  async #attached(account, action, nameParam, name) {
    const xml = await this.#iam(account, { Action: action, [nameParam]: name })
    const arns = xmlAll(xmlSection(xml, 'AttachedPolicies') ?? '', 'PolicyArn')
    return Promise.all(arns.map((arn) => this.#managedPolicy(account, arn)))
  }

  async #inline(account, listAction, getAction, nameParam, name) {
    const xml = await this.#iam(account, { Action: listAction, [nameParam]: name })
    const names = xmlAll(xmlSection(xml, 'PolicyNames') ?? '', 'member')
    return Promise.all(
      names.map(async (policyName) => {
        const doc = await this.#iam(account, { Action: getAction, [nameParam]: name, PolicyName: policyName })
        const held = parsePolicyDocument(xmlFirst(doc, 'PolicyDocument'))
        const whole = nameParam === 'RoleName' ? this.jobArnPolicies.get(`${account}|${name}|${policyName}`) : undefined
        if (whole === undefined) return { name: `${name}/${policyName}`, policy: held }
        if (!sameJson(withoutJobArns(whole), held)) {
          throw new Error(`the policy registered for ${name}/${policyName} differs from moto's beyond S3 job ARNs`)
        }
        return { name: `${name}/${policyName}`, policy: whole }
      }),
    )
  }

  async #boundary(account, entityXml) {
    const arn = xmlFirst(xmlSection(entityXml, 'PermissionsBoundary') ?? '', 'PermissionsBoundaryArn')
    return arn ? [await this.#managedPolicy(account, arn)] : undefined
  }

  /**
   * The ARN of a role's permissions boundary, `undefined` when it has none or doesn't exist:
   * IAM evaluates iam:PermissionsBoundary of PutRolePolicy, DeleteRolePolicy and the like as the
   * role's present boundary (IAM User Guide, "Permissions boundaries for IAM entities"). Read
   * fresh each time (it is rare and the boundary can just have changed).
   */
  async roleBoundaryArn(account, roleName) {
    let role
    try {
      role = await this.#iam(account, { Action: 'GetRole', RoleName: roleName })
    } catch (e) {
      if (e.code === 'NoSuchEntity') return undefined
      throw e
    }
    return xmlFirst(xmlSection(role, 'PermissionsBoundary') ?? '', 'PermissionsBoundaryArn') || undefined
  }

  /** Identity policies of a role: {exists, identityPolicies, permissionBoundaryPolicies?}. */
  rolePolicies(account, roleName) {
    return this.#cached(this.identity, `role|${account}|${roleName}`, async () => {
      let role
      try {
        role = await this.#iam(account, { Action: 'GetRole', RoleName: roleName })
      } catch (e) {
        if (e.code === 'NoSuchEntity') return { exists: false, identityPolicies: [] }
        throw e
      }
      const [inline, attached, boundary] = await Promise.all([
        this.#inline(account, 'ListRolePolicies', 'GetRolePolicy', 'RoleName', roleName),
        this.#attached(account, 'ListAttachedRolePolicies', 'RoleName', roleName),
        this.#boundary(account, role),
      ])
      return { exists: true, identityPolicies: [...inline, ...attached], permissionBoundaryPolicies: boundary }
    })
  }

  /** Identity policies of a user, its groups' included. */
  userPolicies(account, userName) {
    return this.#cached(this.identity, `user|${account}|${userName}`, async () => {
      let user
      try {
        user = await this.#iam(account, { Action: 'GetUser', UserName: userName })
      } catch (e) {
        if (e.code === 'NoSuchEntity') return { exists: false, identityPolicies: [] }
        throw e
      }
      const groupsXml = await this.#iam(account, { Action: 'ListGroupsForUser', UserName: userName })
      const groups = xmlAll(groupsXml, 'GroupName')
      const parts = await Promise.all([
        this.#inline(account, 'ListUserPolicies', 'GetUserPolicy', 'UserName', userName),
        this.#attached(account, 'ListAttachedUserPolicies', 'UserName', userName),
        ...groups.flatMap((g) => [
          this.#inline(account, 'ListGroupPolicies', 'GetGroupPolicy', 'GroupName', g),
          this.#attached(account, 'ListAttachedGroupPolicies', 'GroupName', g),
        ]),
      ])
      return { exists: true, identityPolicies: parts.flat(), permissionBoundaryPolicies: await this.#boundary(account, user) }
    })
  }

  /** A role's trust policy, or null when the role does not exist. */
  trustPolicy(roleArn) {
    return this.#cached(this.trust, roleArn, async () => {
      const account = roleArn.split(':')[4]
      const roleName = roleArn.split('/').pop()
      try {
        const role = await this.#iam(account, { Action: 'GetRole', RoleName: roleName })
        return parsePolicyDocument(xmlFirst(role, 'AssumeRolePolicyDocument')) ?? null
      } catch (e) {
        if (e.code === 'NoSuchEntity') return null
        throw e
      }
    })
  }

  // ---------------------------------------------------------------------------------------------
  // S3

  /** Records the owner of a bucket seen being created. */
  setBucketOwner(bucket, account) {
    this.bucketOwners.set(bucket, account)
  }

  /** The account owning `bucket`, or undefined if no known account has it. */
  async bucketOwner(bucket, region) {
    const known = this.bucketOwners.get(bucket)
    if (known) return known
    for (const account of this.knownAccounts) {
      const res = await this.up.s3(account, region, 'GET', '/')
      if (res.status === 200 && xmlAll(res.body, 'Name').includes(bucket)) {
        this.bucketOwners.set(bucket, account)
        return account
      }
    }
    return undefined
  }

  /** The bucket's Region, as its owner sees it (GetBucketLocation; empty means us-east-1). */
  async bucketRegion(bucket, region) {
    const owner = await this.bucketOwner(bucket, region)
    if (!owner) return undefined
    const res = await this.up.s3(owner, region, 'GET', `/${encodeURIComponent(bucket)}`, { location: '' })
    if (res.status !== 200) return undefined
    const constraint = (xmlAll(res.body, 'LocationConstraint')[0] ?? '').trim()
    return constraint === '' ? 'us-east-1' : constraint
  }

  bucketPolicy(bucket, owner, region) {
    return this.#cached(this.bucketPolicies, bucket, async () => {
      const res = await this.up.s3(owner, region, 'GET', `/${encodeURIComponent(bucket)}`, { policy: '' })
      if (res.status === 200) return parsePolicyDocument(res.body)
      if (res.status === 404) return null
      throw new Error(`moto GetBucketPolicy ${bucket} answered ${res.status}: ${res.body.slice(0, 200)}`)
    })
  }

  /** The bucket's default encryption: {keyId} for SSE-KMS with a key, {managed: true} for aws/s3, null otherwise. */
  bucketDefaultKms(bucket, owner, region) {
    return this.#cached(this.bucketEncryption, bucket, async () => {
      const res = await this.up.s3(owner, region, 'GET', `/${encodeURIComponent(bucket)}`, { encryption: '' })
      // No default encryption is a 404; any other failure must not skip the KMS check.
      if (res.status === 404) return null
      if (res.status !== 200) throw new Error(`moto GetBucketEncryption ${bucket} answered ${res.status}`)
      const bucketKey = xmlFirst(res.body, 'BucketKeyEnabled') === 'true'
      // Not SSE-KMS by default: no key, but the Bucket Key setting still applies to SSE-KMS writes.
      if (xmlFirst(res.body, 'SSEAlgorithm') !== 'aws:kms') return bucketKey ? { bucketKey } : null
      const keyId = xmlFirst(res.body, 'KMSMasterKeyID')
      return keyId ? { keyId, bucketKey } : { managed: true, bucketKey }
    })
  }

  /**
   * The SSE-KMS key id stored with an object (as written: id, alias or ARN) and whether it was
   * written with an S3 Bucket Key ({keyId, bucketKey}), or undefined. Not cached.
   */
  async objectKms(bucket, key, versionId, owner, region) {
    const res = await this.up.s3(owner, region, 'HEAD', `/${encodeURIComponent(bucket)}/${encodeKeyPath(key)}`, versionId ? { versionId } : {})
    // A missing object needs no key (the request fails on its own); any other failure must not
    // skip the KMS check.
    if (res.status === 404) return undefined
    if (res.status !== 200) throw new Error(`moto HeadObject ${bucket}/${key} answered ${res.status}`)
    if (res.headers['x-amz-server-side-encryption'] !== 'aws:kms') return undefined
    return {
      keyId: res.headers['x-amz-server-side-encryption-aws-kms-key-id'] ?? 'aws/s3',
      bucketKey: res.headers['x-amz-server-side-encryption-bucket-key-enabled'] === 'true',
    }
  }

  // ---------------------------------------------------------------------------------------------
  // KMS

  /** The ARN of the key that `keyId` (id, ARN, alias name or alias ARN) names in `account`, or undefined. */
  async resolveKey(account, region, keyId) {
    if (/^arn:[^:]+:kms:[^:]+:\d{12}:key\//.test(keyId)) return keyId
    const cacheKey = `${account}|${region}|${keyId}`
    const hit = this.keyArns.get(cacheKey)
    if (hit) return hit
    const res = await this.up.json(account, 'kms', region, 'TrentService.DescribeKey', { KeyId: keyId })
    const arn = res.status === 200 ? res.json?.KeyMetadata?.Arn : undefined
    if (arn) this.keyArns.set(cacheKey, arn)
    return arn
  }

  keyPolicy(keyArn) {
    return this.#cached(this.keyPolicies, keyArn, async () => {
      const [, , , region, account] = keyArn.split(':')
      const res = await this.up.json(account, 'kms', region, 'TrentService.GetKeyPolicy', { KeyId: keyArn, PolicyName: 'default' })
      if (res.status === 200) return parsePolicyDocument(res.json.Policy) ?? null
      if (res.status === 400 && /NotFound/.test(res.json?.__type ?? '')) return null
      throw new Error(`moto GetKeyPolicy ${keyArn} answered ${res.status}: ${JSON.stringify(res.json).slice(0, 200)}`)
    })
  }

  // ---------------------------------------------------------------------------------------------
  // SNS, SQS

  topicPolicy(topicArn) {
    return this.#cached(this.topicPolicies, topicArn, async () => {
      const [, , , region, account] = topicArn.split(':')
      let xml
      try {
        xml = await this.up.query(account, 'sns', region, { Action: 'GetTopicAttributes', Version: '2010-03-31', TopicArn: topicArn })
      } catch (e) {
        if (e.status === 404 || e.code === 'NotFound') return null
        throw e
      }
      for (const entry of xmlRawAll(xml, 'entry')) {
        if (xmlFirst(entry, 'key') === 'Policy') return parsePolicyDocument(xmlFirst(entry, 'value')) ?? null
      }
      return null
    })
  }

  queuePolicy(queueArn, queueUrl) {
    return this.#cached(this.queuePolicies, queueArn, async () => {
      const [, , , region, account, name] = queueArn.split(':')
      const url = queueUrl ?? `${this.up.url.origin}/${account}/${name}`
      let xml
      try {
        xml = await this.up.query(account, 'sqs', region, {
          Action: 'GetQueueAttributes', Version: '2012-11-05', QueueUrl: url, 'AttributeName.1': 'Policy',
        })
      } catch (e) {
        if (e.status === 400 || e.status === 404) return null
        throw e
      }
      for (const attr of xmlRawAll(xml, 'Attribute')) {
        if (xmlFirst(attr, 'Name') === 'Policy') return parsePolicyDocument(xmlFirst(attr, 'Value')) ?? null
      }
      return null
    })
  }
}

/** A policy document without S3 Batch Operations job ARNs (what moto can store of it). */
export function withoutJobArns(policy) {
  const isJob = (r) => {
    const parts = typeof r === 'string' ? r.split(':') : []
    return parts.length >= 6 && parts[2] === 's3' && parts[3] !== '' && parts.slice(5).join(':').startsWith('job/')
  }
  const doc = structuredClone(policy)
  const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement ? [doc.Statement] : []
  doc.Statement = statements.filter((st) => {
    if (Array.isArray(st.Resource)) {
      st.Resource = st.Resource.filter((r) => !isJob(r))
      return st.Resource.length > 0
    }
    return st.Resource === undefined || !isJob(st.Resource)
  })
  return doc
}

/** Deep equality of two JSON values, object key order ignored. */
function sameJson(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]))
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort()
    const kb = Object.keys(b).sort()
    return sameJson(ka, kb) && ka.every((k) => sameJson(a[k], b[k]))
  }
  return a === b
}
