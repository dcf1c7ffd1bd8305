// End-to-end proof of the authorizing gateway (gateway.mjs): a real moto server behind it, the
// AWS SDK for JavaScript v3 in front, two accounts (A = 111111111111, B = 222222222222) and roles
// made through IAM like a SAM template would. Each test names one IAM behaviour and fails if the
// gateway stopped enforcing it (moto alone allows every one of these requests).
//
//   node --test tests/gateway/        (moto_server from $FERRY_MOTO_SERVER or <repo>/.venv/bin)

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand,
  HeadBucketCommand, CreateMultipartUploadCommand, ListBucketsCommand,
  PutBucketEncryptionCommand, UploadPartCommand, DeleteBucketPolicyCommand, GetObjectCommand, HeadObjectCommand,
  ListBucketMetricsConfigurationsCommand, ListObjectsV2Command, PutBucketPolicyCommand, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3'
import { CreateKeyCommand, DecryptCommand, EncryptCommand, GetKeyPolicyCommand, KMSClient, PutKeyPolicyCommand } from '@aws-sdk/client-kms'
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import { CreateRoleCommand, IAMClient, PutRolePolicyCommand, UpdateAssumeRolePolicyCommand } from '@aws-sdk/client-iam'
import { startGateway } from './gateway.mjs'
import { signRequest } from './sigv4.mjs'
import { withoutJobArns } from './policy-store.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = resolve(HERE, '..', '..')
const MOTO = process.env.FERRY_MOTO_SERVER || join(REPO, '.venv', 'bin', 'moto_server')
const REGION = 'us-east-1'
const A = '111111111111'
const B = '222222222222'
const BOOTSTRAP = { accessKeyId: 'testing', secretAccessKey: 'testing' }

let moto
let gw
let scratch
let recordFile

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolvePort(port))
    })
  })
}

async function startMoto() {
  if (!existsSync(MOTO)) throw new Error(`moto_server not found at ${MOTO}: run scripts/setup-python or set FERRY_MOTO_SERVER`)
  const port = await freePort()
  const child = spawn(MOTO, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MOTO_PORT: String(port) } })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited: ${stderr}`)
    try {
      const res = await fetch(`http://127.0.0.1:${port}/moto-api/`)
      if (res.ok) break
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`moto_server did not answer within 20 s: ${stderr}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return { child, url: `http://127.0.0.1:${port}` }
}

// ---------------------------------------------------------------------------------------------
// SDK helpers (everything goes through the gateway)

const cfg = (credentials) => ({ endpoint: gw.url, region: REGION, credentials, maxAttempts: 1 })
const s3 = (credentials) => new S3Client({ ...cfg(credentials), forcePathStyle: true })
const kms = (credentials) => new KMSClient(cfg(credentials))
const iam = (credentials) => new IAMClient(cfg(credentials))
const sts = (credentials) => new STSClient(cfg(credentials))

async function assume(roleArn, credentials = BOOTSTRAP) {
  const out = await sts(credentials).send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'gateway-test' }))
  const c = out.Credentials
  return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken }
}

/** Admin of an account, as the Rust testkit gets it: assume ferry-test there with the bootstrap key. */
const adminOf = (account) => assume(`arn:aws:iam::${account}:role/ferry-test`)

const policy = (...Statement) => JSON.stringify({ Version: '2012-10-17', Statement })
const allow = (Action, Resource, extra = {}) => ({ Effect: 'Allow', Action, Resource, ...extra })

/** A role made like the SAM template makes function roles: CreateRole + PutRolePolicy. */
async function makeRole(admin, account, name, identityPolicy) {
  const trust = policy({ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' })
  await iam(admin).send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: trust }))
  if (identityPolicy) await setRolePolicy(admin, name, identityPolicy)
  return `arn:aws:iam::${account}:role/${name}`
}
const setRolePolicy = (admin, name, doc) => iam(admin).send(new PutRolePolicyCommand({ RoleName: name, PolicyName: 'permissions', PolicyDocument: doc }))

const bodyText = async (out) => Buffer.from(await out.Body.transformToByteArray()).toString('utf8')

/** Runs `fn`, expects AWS's AccessDenied; returns the message. */
async function denied(fn, code = 'AccessDenied') {
  try {
    await fn()
  } catch (e) {
    assert.equal(e.name, code, `expected ${code}, got ${e.name}: ${e.message}`)
    return e.message
  }
  assert.fail(`expected ${code}, but the request was allowed`)
}

const sessionArn = (roleArn) => `arn:aws:sts::${roleArn.split(':')[4]}:assumed-role/${roleArn.split('/').pop()}/gateway-test`

// ---------------------------------------------------------------------------------------------

let adminA
let adminB

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'ferry-gateway-test-'))
  recordFile = join(scratch, 'decisions.jsonl')
  moto = await startMoto()
  gw = await startGateway({ upstream: moto.url, port: 0, record: recordFile, quiet: true })
  adminA = await adminOf(A)
  adminB = await adminOf(B)
})

after(async () => {
  await gw?.close()
  if (moto?.child && moto.child.exitCode === null) {
    moto.child.kill('SIGTERM')
    await new Promise((r) => moto.child.once('exit', r))
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true })
})

describe('authorizing gateway in front of moto', () => {
  test('(a) admin set-up passes: buckets, objects, roles, policies and keys in both accounts', async () => {
    const before = gw.stats().denied
    await s3(adminA).send(new CreateBucketCommand({ Bucket: 'setup-a' }))
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'setup-b' }))
    await s3(adminB).send(new PutObjectCommand({ Bucket: 'setup-b', Key: 'x', Body: 'x' }))
    await s3(BOOTSTRAP).send(new CreateBucketCommand({ Bucket: 'setup-default' }))
    await makeRole(adminA, A, 'setup-role', policy(allow('s3:GetObject', '*')))
    const key = await kms(adminB).send(new CreateKeyCommand({}))
    assert.match(key.KeyMetadata.Arn, new RegExp(`^arn:aws:kms:${REGION}:${B}:key/`))
    const who = await sts(adminB).send(new GetCallerIdentityCommand({}))
    assert.equal(who.Account, B)
    assert.equal(gw.stats().denied, before, 'admin set-up was denied somewhere')
  })

  test('unknown access keys are refused as AWS refuses them', async () => {
    const stranger = { accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'x' }
    await denied(() => s3(stranger).send(new ListObjectsV2Command({ Bucket: 'setup-a' })), 'InvalidAccessKeyId')
    await denied(() => kms(stranger).send(new CreateKeyCommand({})), 'UnrecognizedClientException')
  })

  test('(b) cross-account GetObject needs the bucket policy and the identity policy', async () => {
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'xacct-b' }))
    await s3(adminB).send(new PutObjectCommand({ Bucket: 'xacct-b', Key: 'data/k.txt', Body: 'hello from B' }))
    const roleArn = await makeRole(adminA, A, 'reader', policy(allow('s3:GetObject', 'arn:aws:s3:::xacct-b/*')))
    const reader = await assume(roleArn)
    const get = () => s3(reader).send(new GetObjectCommand({ Bucket: 'xacct-b', Key: 'data/k.txt' }))

    const noGrant = await denied(get)
    assert.equal(
      noGrant,
      `User: ${sessionArn(roleArn)} is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::xacct-b/data/k.txt" because no resource-based policy allows the s3:GetObject action`,
    )

    await s3(adminB).send(new PutBucketPolicyCommand({
      Bucket: 'xacct-b',
      Policy: policy(allow('s3:GetObject', 'arn:aws:s3:::xacct-b/*', { Principal: { AWS: roleArn } })),
    }))
    assert.equal(await bodyText(await get()), 'hello from B')

    await setRolePolicy(adminA, 'reader', policy(allow('s3:ListBucket', 'arn:aws:s3:::xacct-b')))
    const noIdentity = await denied(get)
    assert.match(noIdentity, /because no identity-based policy allows the s3:GetObject action$/)

    const lines = readFileSync(recordFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    const mine = lines.filter((l) => l.principal === sessionArn(roleArn) && l.action === 's3:GetObject')
    assert.deepEqual(mine.map((l) => l.decision), ['Deny', 'Allow', 'Deny'])
    assert.equal(mine[1].resourceAccount, B)
  })

  test('(c) reading an SSE-KMS object across accounts needs kms:Decrypt in the key policy, via S3 only', async () => {
    const key = (await kms(adminB).send(new CreateKeyCommand({}))).KeyMetadata
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'kms-b' }))
    await s3(adminB).send(new PutObjectCommand({ Bucket: 'kms-b', Key: 'secret.txt', Body: 'sealed', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: key.KeyId }))
    const roleArn = await makeRole(adminA, A, 'kms-reader', policy(
      allow('s3:GetObject', 'arn:aws:s3:::kms-b/*'),
      allow('kms:Decrypt', key.Arn),
    ))
    await s3(adminB).send(new PutBucketPolicyCommand({
      Bucket: 'kms-b',
      Policy: policy(allow('s3:GetObject', 'arn:aws:s3:::kms-b/*', { Principal: { AWS: roleArn } })),
    }))
    const reader = await assume(roleArn)
    const get = () => s3(reader).send(new GetObjectCommand({ Bucket: 'kms-b', Key: 'secret.txt' }))

    // The bucket allows the read, but the default key policy trusts only account B.
    const msg = await denied(get)
    assert.equal(
      msg,
      `User: ${sessionArn(roleArn)} is not authorized to perform: kms:Decrypt on resource: ${key.Arn} because no resource-based policy allows the kms:Decrypt action`,
    )
    // HeadObject reads no data, so it needs no kms:Decrypt.
    await s3(reader).send(new HeadObjectCommand({ Bucket: 'kms-b', Key: 'secret.txt' }))

    const current = JSON.parse((await kms(adminB).send(new GetKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default' }))).Policy)
    current.Statement.push(allow('kms:Decrypt', '*', {
      Sid: 'ReaderViaS3',
      Principal: { AWS: roleArn },
      Condition: { StringEquals: { 'kms:ViaService': `s3.${REGION}.amazonaws.com` } },
    }))
    await kms(adminB).send(new PutKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default', Policy: JSON.stringify(current) }))
    assert.equal(await bodyText(await get()), 'sealed')

    // The same grant does not let the role call KMS itself: kms:ViaService is only set via S3.
    const blob = (await kms(adminB).send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('x') }))).CiphertextBlob
    const direct = await denied(() => kms(reader).send(new DecryptCommand({ KeyId: key.Arn, CiphertextBlob: blob })), 'AccessDeniedException')
    assert.match(direct, /not authorized to perform: kms:Decrypt on resource: arn:aws:kms:/)
  })

  test('(d) a same-account role needs only its identity policy, no bucket policy', async () => {
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'same-b' }))
    await s3(adminB).send(new PutObjectCommand({ Bucket: 'same-b', Key: 'k', Body: 'mine' }))
    const withPolicy = await assume(await makeRole(adminB, B, 'same-reader', policy(allow('s3:GetObject', 'arn:aws:s3:::same-b/*'))))
    assert.equal(await bodyText(await s3(withPolicy).send(new GetObjectCommand({ Bucket: 'same-b', Key: 'k' }))), 'mine')

    const withoutPolicy = await assume(await makeRole(adminB, B, 'same-nothing'))
    const msg = await denied(() => s3(withoutPolicy).send(new GetObjectCommand({ Bucket: 'same-b', Key: 'k' })))
    assert.match(msg, /because no identity-based policy allows the s3:GetObject action$/)
  })

  test('(e) an explicit Deny in the bucket policy wins over an identity Allow', async () => {
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'deny-b' }))
    await s3(adminB).send(new PutObjectCommand({ Bucket: 'deny-b', Key: 'k', Body: 'guarded' }))
    const roleArn = await makeRole(adminB, B, 'deny-reader', policy(allow('s3:*', '*')))
    const reader = await assume(roleArn)
    const get = () => s3(reader).send(new GetObjectCommand({ Bucket: 'deny-b', Key: 'k' }))
    assert.equal(await bodyText(await get()), 'guarded')

    await s3(adminB).send(new PutBucketPolicyCommand({
      Bucket: 'deny-b',
      Policy: policy({ Effect: 'Deny', Principal: { AWS: roleArn }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::deny-b/*' }),
    }))
    const msg = await denied(get)
    assert.match(msg, /s3:GetObject on resource: "arn:aws:s3:::deny-b\/k" with an explicit deny in a resource-based policy$/)

    await s3(adminB).send(new DeleteBucketPolicyCommand({ Bucket: 'deny-b' }))
    assert.equal(await bodyText(await get()), 'guarded')
  })

  test('(f) CopyObject needs read on the source and write on the destination', async () => {
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'copy-src-b' }))
    await s3(adminB).send(new PutObjectCommand({ Bucket: 'copy-src-b', Key: 'in/obj', Body: 'payload' }))
    await s3(adminA).send(new CreateBucketCommand({ Bucket: 'copy-dst-a' }))
    const both = policy(allow('s3:GetObject', 'arn:aws:s3:::copy-src-b/*'), allow('s3:PutObject', 'arn:aws:s3:::copy-dst-a/*'))
    const roleArn = await makeRole(adminA, A, 'copier', both)
    const copier = await assume(roleArn)
    const copy = () => s3(copier).send(new CopyObjectCommand({ Bucket: 'copy-dst-a', Key: 'out/obj', CopySource: 'copy-src-b/in/obj' }))

    // Source bucket in B has no policy for the copier: the source read is refused.
    const noSource = await denied(copy)
    assert.match(noSource, /s3:GetObject on resource: "arn:aws:s3:::copy-src-b\/in\/obj" because no resource-based policy allows/)

    await s3(adminB).send(new PutBucketPolicyCommand({
      Bucket: 'copy-src-b',
      Policy: policy(allow('s3:GetObject', 'arn:aws:s3:::copy-src-b/*', { Principal: { AWS: roleArn } })),
    }))
    await copy()
    assert.equal(await bodyText(await s3(adminA).send(new GetObjectCommand({ Bucket: 'copy-dst-a', Key: 'out/obj' }))), 'payload')

    // Without s3:PutObject on the destination the copy is refused again.
    await setRolePolicy(adminA, 'copier', policy(allow('s3:GetObject', 'arn:aws:s3:::copy-src-b/*')))
    const noTarget = await denied(copy)
    assert.match(noTarget, /s3:PutObject on resource: "arn:aws:s3:::copy-dst-a\/out\/obj" because no identity-based policy allows/)
  })

  test('a refused HeadBucket still names the bucket\'s Region, as S3 does', async () => {
    const roleArn = await makeRole(adminA, A, 'region-prober', policy(allow('s3:GetObject', 'arn:aws:s3:::nowhere/*')))
    const prober = await assume(roleArn)
    let header
    try {
      await s3(prober).send(new HeadBucketCommand({ Bucket: 'setup-b' }))
      assert.fail('HeadBucket was allowed')
    } catch (e) {
      assert.equal(e.$metadata?.httpStatusCode, 403, String(e))
      header = e.$response?.headers?.['x-amz-bucket-region']
    }
    assert.equal(header, REGION)
  })

  test('an object under the AWS managed key aws/s3 is refused to another account, whatever the policies', async () => {
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'managed-b' }))
    await s3(adminB).send(new PutObjectCommand({ Bucket: 'managed-b', Key: 'm.txt', Body: 'managed', ServerSideEncryption: 'aws:kms' }))
    const roleArn = await makeRole(adminA, A, 'managed-reader', policy(allow('s3:GetObject', 'arn:aws:s3:::managed-b/*'), allow('kms:Decrypt', '*')))
    await s3(adminB).send(new PutBucketPolicyCommand({
      Bucket: 'managed-b',
      Policy: policy(allow('s3:GetObject', 'arn:aws:s3:::managed-b/*', { Principal: { AWS: roleArn } })),
    }))
    const reader = await assume(roleArn)
    const message = await denied(() => s3(reader).send(new GetObjectCommand({ Bucket: 'managed-b', Key: 'm.txt' })))
    assert.match(message, /AWS managed key aws\/s3/)
    // Its own account reads it.
    const own = await makeRole(adminB, B, 'managed-owner', policy(allow('s3:GetObject', 'arn:aws:s3:::managed-b/*')))
    const body = await s3(await assume(own)).send(new GetObjectCommand({ Bucket: 'managed-b', Key: 'm.txt' }))
    assert.equal(await bodyText(body), 'managed')
  })

  test('(g) an unmapped request is denied, even for an admin, with a message naming it', async () => {
    const msg = await denied(() => s3(adminA).send(new ListBucketMetricsConfigurationsCommand({ Bucket: 'setup-a' })))
    assert.match(msg, /^ferry gateway: no IAM mapping for S3 GET \/setup-a\/\?metrics=.*bucket sub-resource \?metrics with GET is not mapped/)
    assert.ok(gw.stats().unmapped.some((u) => u.request.startsWith('S3 GET /setup-a/?metrics')), JSON.stringify(gw.stats().unmapped))
    assert.deepEqual(gw.stats().operationMismatches, [])
  })

  test('SSE-KMS writes need kms:GenerateDataKey (also for bucket default encryption) and multipart parts kms:Decrypt', async () => {
    const key = (await kms(adminB).send(new CreateKeyCommand({}))).KeyMetadata
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'mpu-b' }))
    await s3(adminB).send(new PutBucketEncryptionCommand({
      Bucket: 'mpu-b',
      ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key.Arn } }] },
    }))
    const roleArn = await makeRole(adminB, B, 'uploader', policy(allow('s3:PutObject', 'arn:aws:s3:::mpu-b/*')))
    const uploader = await assume(roleArn)

    // No SSE header: the bucket's default key is used, so kms:GenerateDataKey is needed.
    const put = () => s3(uploader).send(new PutObjectCommand({ Bucket: 'mpu-b', Key: 'plain', Body: 'p' }))
    assert.match(await denied(put), new RegExp(`kms:GenerateDataKey on resource: ${key.Arn} because no identity-based policy allows`))

    await setRolePolicy(adminB, 'uploader', policy(allow('s3:PutObject', 'arn:aws:s3:::mpu-b/*'), allow('kms:GenerateDataKey', key.Arn)))
    await put()
    const { UploadId } = await s3(uploader).send(new CreateMultipartUploadCommand({ Bucket: 'mpu-b', Key: 'big', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: key.Arn }))
    const part = () => s3(uploader).send(new UploadPartCommand({ Bucket: 'mpu-b', Key: 'big', UploadId, PartNumber: 1, Body: 'part one' }))
    assert.match(await denied(part), /kms:Decrypt on resource: .* because no identity-based policy allows the kms:Decrypt action/)

    await setRolePolicy(adminB, 'uploader', policy(allow('s3:PutObject', 'arn:aws:s3:::mpu-b/*'), allow(['kms:GenerateDataKey', 'kms:Decrypt'], key.Arn)))
    const { ETag } = await part()
    await s3(uploader).send(new CompleteMultipartUploadCommand({ Bucket: 'mpu-b', Key: 'big', UploadId, MultipartUpload: { Parts: [{ ETag, PartNumber: 1 }] } }))
  })

  test('an object under an S3 Bucket Key is decrypted with the bucket ARN as encryption context, others with their own ARN', async () => {
    const key = (await kms(adminB).send(new CreateKeyCommand({}))).KeyMetadata
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'bk-b' }))
    const put = (Key, BucketKeyEnabled) => s3(adminB).send(new PutObjectCommand({ Bucket: 'bk-b', Key, Body: Key, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: key.Arn, BucketKeyEnabled }))
    await put('with-bucket-key', true)
    await put('without', false)
    const roleArn = await makeRole(adminB, B, 'bk-reader', policy(allow('s3:GetObject', 'arn:aws:s3:::bk-b/*')))
    const current = JSON.parse((await kms(adminB).send(new GetKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default' }))).Policy)
    current.Statement.push(allow('kms:Decrypt', '*', {
      Principal: { AWS: roleArn },
      Condition: { StringEquals: { 'kms:EncryptionContext:aws:s3:arn': 'arn:aws:s3:::bk-b' } },
    }))
    await kms(adminB).send(new PutKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default', Policy: JSON.stringify(current) }))
    const reader = await assume(roleArn)
    assert.equal(await bodyText(await s3(reader).send(new GetObjectCommand({ Bucket: 'bk-b', Key: 'with-bucket-key' }))), 'with-bucket-key')
    assert.match(await denied(() => s3(reader).send(new GetObjectCommand({ Bucket: 'bk-b', Key: 'without' }))), /kms:Decrypt on resource: /)

    // A write naming SSE-KMS but no Bucket Key setting takes the bucket's (S3 User Guide,
    // "Configuring an S3 Bucket Key at the object level"): the bucket ARN is the context.
    const writerArn = await makeRole(adminB, B, 'bk-writer', policy(allow('s3:PutObject', 'arn:aws:s3:::bk-b/*')))
    current.Statement.push(allow('kms:GenerateDataKey', '*', {
      Principal: { AWS: writerArn },
      Condition: { StringEquals: { 'kms:EncryptionContext:aws:s3:arn': 'arn:aws:s3:::bk-b' } },
    }))
    await kms(adminB).send(new PutKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default', Policy: JSON.stringify(current) }))
    const writer = await assume(writerArn)
    const write = (Key) => s3(writer).send(new PutObjectCommand({ Bucket: 'bk-b', Key, Body: 'w', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: key.Arn }))
    assert.match(await denied(() => write('before-default')), /kms:GenerateDataKey on resource: /)
    await s3(adminB).send(new PutBucketEncryptionCommand({
      Bucket: 'bk-b',
      ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key.Arn }, BucketKeyEnabled: true }] },
    }))
    await write('after-default')
  })

  test('CompleteMultipartUpload of an SSE-KMS upload with an additional checksum needs kms:Decrypt', async () => {
    const key = (await kms(adminB).send(new CreateKeyCommand({}))).KeyMetadata
    await s3(adminB).send(new CreateBucketCommand({ Bucket: 'mpu-sum-b' }))
    const uploaderArn = await makeRole(adminB, B, 'sum-uploader', policy(allow('s3:PutObject', 'arn:aws:s3:::mpu-sum-b/*'), allow(['kms:GenerateDataKey', 'kms:Decrypt'], key.Arn)))
    const completerArn = await makeRole(adminB, B, 'sum-completer', policy(allow('s3:PutObject', 'arn:aws:s3:::mpu-sum-b/*'), allow('kms:GenerateDataKey', key.Arn)))
    const uploader = await assume(uploaderArn)
    const completer = await assume(completerArn)
    const upload = async (Key, ChecksumAlgorithm) => {
      const { UploadId } = await s3(uploader).send(new CreateMultipartUploadCommand({ Bucket: 'mpu-sum-b', Key, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: key.Arn, ChecksumAlgorithm }))
      const out = await s3(uploader).send(new UploadPartCommand({ Bucket: 'mpu-sum-b', Key, UploadId, PartNumber: 1, Body: 'part one', ChecksumAlgorithm }))
      const Parts = [{ ETag: out.ETag, PartNumber: 1, ...(out.ChecksumCRC32 ? { ChecksumCRC32: out.ChecksumCRC32 } : {}) }]
      return () => s3(completer).send(new CompleteMultipartUploadCommand({ Bucket: 'mpu-sum-b', Key, UploadId, MultipartUpload: { Parts } }))
    }
    const plain = await upload('plain')
    await plain()
    const summed = await upload('summed', 'CRC32')
    assert.match(await denied(summed), /kms:Decrypt on resource: .* because no identity-based policy allows the kms:Decrypt action/)
  })

  test('sts:AssumeRole by a role needs the target trust policy; the new session acts as the target role', async () => {
    const targetArn = await makeRole(adminB, B, 'target', policy(allow('s3:ListBucket', '*')))
    const jumperArn = await makeRole(adminA, A, 'jumper', policy(allow('sts:AssumeRole', targetArn)))
    const jumper = await assume(jumperArn)
    const msg = await denied(() => assume(targetArn, jumper))
    assert.match(msg, new RegExp(`${sessionArn(jumperArn)} is not authorized to perform: sts:AssumeRole on resource: ${targetArn} because no resource-based policy allows`))

    await iam(adminB).send(new UpdateAssumeRolePolicyCommand({
      RoleName: 'target',
      PolicyDocument: policy({ Effect: 'Allow', Principal: { AWS: jumperArn }, Action: 'sts:AssumeRole' }),
    }))
    const session = await assume(targetArn, jumper)
    const who = await sts(session).send(new GetCallerIdentityCommand({}))
    assert.equal(who.Arn, sessionArn(targetArn))
    // The target role may list buckets' contents but not read objects.
    await s3(session).send(new ListObjectsV2Command({ Bucket: 'same-b' }))
    await denied(() => s3(session).send(new GetObjectCommand({ Bucket: 'same-b', Key: 'k' })))
  })

  test('S3 Control jobs: CreateJob needs s3:CreateJob, iam:PassRole to Batch Operations and (with tags) s3:PutJobTagging; job actions are on the job ARN', async () => {
    const batchRole = `arn:aws:iam::${B}:role/jobs-batch`
    const request = (token, tags = true) =>
      `<?xml version="1.0" encoding="UTF-8"?><CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">` +
      `<ConfirmationRequired>true</ConfirmationRequired><Operation><S3PutObjectCopy><TargetResource>arn:aws:s3:::dst</TargetResource></S3PutObjectCopy></Operation>` +
      `<Report><Enabled>false</Enabled></Report><ClientRequestToken>${token}</ClientRequestToken>` +
      `<Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format><Fields><member>Bucket</member><member>Key</member></Fields></Spec>` +
      `<Location><ObjectArn>arn:aws:s3:::ops/m.csv</ObjectArn><ETag>"e"</ETag></Location></Manifest><Description>copy &amp; check</Description>` +
      `<Priority>10</Priority><RoleArn>${batchRole}</RoleArn>` +
      (tags ? `<Tags><member><Key>ferry:transfer</Key><Value>t1</Value></member></Tags>` : '') +
      `</CreateJobRequest>`
    /** One signed S3 Control call as `credentials` in account B; {status, text}. */
    const control = async (credentials, method, path, { query = {}, body = '' } = {}) => {
      const r = { method, host: `${B}.s3-control.${REGION}.amazonaws.com`, path, query, body, region: REGION, service: 's3', credentials, headers: { 'x-amz-account-id': B } }
      const qs = signRequest(r)
      const res = await fetch(`${gw.url}${path}${qs ? `?${qs}` : ''}`, { method, headers: r.headers, body: body || undefined })
      return { status: res.status, text: await res.text() }
    }
    const jobActions = (actions) => allow(actions, `arn:aws:s3:${REGION}:${B}:job/*`)
    // As the testkit's FunctionRole does: moto holds the policy without job ARNs, the gateway the whole.
    const jobRole = async (name, ...statements) => {
      const doc = { Version: '2012-10-17', Statement: [allow('s3:ListAllMyBuckets', '*'), ...statements] }
      const arn = await makeRole(adminB, B, name, JSON.stringify(withoutJobArns(doc)))
      const registered = await fetch(`${gw.url}/_ferry/iam/role-policy/${B}/${name}/permissions`, { method: 'POST', body: JSON.stringify(doc) })
      assert.equal(registered.status, 204)
      return assume(arn)
    }
    const passRole = allow('iam:PassRole', batchRole, { Condition: { StringEquals: { 'iam:PassedToService': 'batchoperations.s3.amazonaws.com' } } })
    const launcher = await jobRole('jobs-launcher', allow('s3:CreateJob', '*'), passRole, jobActions(['s3:PutJobTagging', 's3:DescribeJob', 's3:UpdateJobStatus']))
    const noPass = await jobRole('jobs-no-pass', allow('s3:CreateJob', '*'), jobActions(['s3:PutJobTagging']))
    const noTagging = await jobRole('jobs-no-tagging', allow('s3:CreateJob', '*'), passRole)
    const reader = await jobRole('jobs-reader', jobActions(['s3:GetJobTagging']))

    // Refusals come in S3 Control's wrapped error shape, naming what is missing.
    const refused = await control(noPass, 'POST', '/v20180820/jobs', { body: request('t-no-pass') })
    assert.equal(refused.status, 403)
    assert.match(refused.text, /^<\?xml[^>]*>\n<ErrorResponse><Error><Type>Sender<\/Type><Code>AccessDenied<\/Code><Message>[^<]*iam:PassRole on resource: arn:aws:iam::222222222222:role\/jobs-batch/)
    assert.match((await control(noTagging, 'POST', '/v20180820/jobs', { body: request('t-no-tag') })).text, /s3:PutJobTagging on resource: &quot;arn:aws:s3:us-east-1:222222222222:job\//)
    assert.equal((await control(noTagging, 'POST', '/v20180820/jobs', { body: request('t-untagged', false) })).status, 200)

    // Created; the same token again is the same job; the same token with another request is refused.
    const created = await control(launcher, 'POST', '/v20180820/jobs', { body: request('t-1') })
    assert.equal(created.status, 200, created.text)
    const id = /<JobId>([^<]+)<\/JobId>/.exec(created.text)[1]
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    assert.equal(/<JobId>([^<]+)<\/JobId>/.exec((await control(launcher, 'POST', '/v20180820/jobs', { body: request('t-1') })).text)[1], id)
    assert.match((await control(launcher, 'POST', '/v20180820/jobs', { body: request('t-1').replace('<Priority>10', '<Priority>11') })).text, /IdempotencyException/)

    // DescribeJob: the request's manifest, operation and report, the emulator's status.
    const described = (await control(launcher, 'GET', `/v20180820/jobs/${id}`)).text
    for (const part of [`<JobArn>arn:aws:s3:${REGION}:${B}:job/${id}</JobArn>`, '<Status>New</Status>', '<ObjectArn>arn:aws:s3:::ops/m.csv</ObjectArn>',
      '<S3PutObjectCopy><TargetResource>arn:aws:s3:::dst</TargetResource></S3PutObjectCopy>', '<Description>copy &amp; check</Description>', `<RoleArn>${batchRole}</RoleArn>`]) {
      assert.ok(described.includes(part), `${part} in ${described}`)
    }
    await denied(async () => {
      const r = await control(reader, 'GET', `/v20180820/jobs/${id}`)
      if (r.status !== 200) throw Object.assign(new Error(r.text), { name: /<Code>([^<]+)/.exec(r.text)[1] })
    })
    assert.match((await control(reader, 'GET', `/v20180820/jobs/${id}/tagging`)).text, /<Tags><member><Key>ferry:transfer<\/Key><Value>t1<\/Value><\/member><\/Tags>/)
    assert.equal((await control(launcher, 'GET', '/v20180820/jobs/00000000-0000-0000-0000-000000000000')).status, 404)

    // UpdateJobStatus: Ready only once the job waits for confirmation (the emulator says so).
    assert.match((await control(launcher, 'POST', `/v20180820/jobs/${id}/status`, { query: { requestedJobStatus: 'Ready' } })).text, /JobStatusException/)
    const post = (path, json) => fetch(`${gw.url}${path}`, { method: 'POST', body: JSON.stringify(json) })
    assert.equal((await post(`/_ferry/s3control/jobs/${B}/${REGION}/${id}`, { status: 'Suspended', total: 3 })).status, 200)
    assert.match((await control(launcher, 'POST', `/v20180820/jobs/${id}/status`, { query: { requestedJobStatus: 'Ready' } })).text, /<Status>Ready<\/Status>/)
    assert.deepEqual(await (await fetch(`${gw.url}/_ferry/s3control/jobs/${B}/${REGION}/${id}`)).json(), { status: 'Ready', priority: 10, requestedStatus: 'Ready' })

    // The job's tags are its aws:ResourceTag/<key> (Service Authorization Reference, resource
    // type "job"): a role may cancel only the jobs tagged as its transfer's.
    const other = await jobRole('jobs-other-canceller', allow('s3:UpdateJobStatus', `arn:aws:s3:${REGION}:${B}:job/*`, { Condition: { StringEquals: { 'aws:ResourceTag/ferry:transfer': 't2' } } }))
    const own = await jobRole('jobs-own-canceller', allow('s3:UpdateJobStatus', `arn:aws:s3:${REGION}:${B}:job/*`, { Condition: { StringEquals: { 'aws:ResourceTag/ferry:transfer': 't1' } } }))
    const victim = /<JobId>([^<]+)<\/JobId>/.exec((await control(launcher, 'POST', '/v20180820/jobs', { body: request('t-cancel') })).text)[1]
    const cancel = (who) => control(who, 'POST', `/v20180820/jobs/${victim}/status`, { query: { requestedJobStatus: 'Cancelled' } })
    const refusedCancel = await cancel(other)
    assert.equal(refusedCancel.status, 403, refusedCancel.text)
    assert.match((await cancel(own)).text, /<Status>Cancelling<\/Status>/)
  })

  test('a role policy on job ARNs (which moto refuses) is used only if moto holds it without them', async () => {
    const jobsArn = `arn:aws:s3:${REGION}:${B}:job/*`
    const whole = { Version: '2012-10-17', Statement: [allow('s3:ListAllMyBuckets', '*'), allow('s3:DescribeJob', jobsArn)] }
    const roleArn = await makeRole(adminB, B, 'jobs-shadow', policy(allow('s3:ListAllMyBuckets', '*')))
    const post = (doc) => fetch(`${gw.url}/_ferry/iam/role-policy/${B}/jobs-shadow/permissions`, { method: 'POST', body: JSON.stringify(doc) })
    assert.equal((await post(whole)).status, 204)
    const session = await assume(roleArn)
    await s3(session).send(new ListBucketsCommand({}))
    // More than job ARNs differs from moto's copy: every decision for the role fails.
    assert.equal((await post({ ...whole, Statement: [...whole.Statement, allow('s3:*', '*')] })).status, 204)
    const msg = await denied(() => s3(session).send(new ListBucketsCommand({})))
    assert.match(msg, /differs from moto's beyond S3 job ARNs/)
  })

  // -------------------------------------------------------------------------------------------
  // SNS: topic policies read from moto (the stack's topics deny everyone but named principals).

  /** One signed SNS query-protocol call as `credentials`; {status, text, code}. */
  const sns = async (credentials, params) => {
    const body = new URLSearchParams({ Version: '2010-03-31', ...params }).toString()
    const r = { method: 'POST', host: `sns.${REGION}.amazonaws.com`, path: '/', body, region: REGION, service: 'sns', credentials, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' } }
    signRequest(r)
    const res = await fetch(`${gw.url}/`, { method: 'POST', headers: r.headers, body })
    const text = await res.text()
    return { status: res.status, text, code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1] }
  }
  const topicArn = (account, name) => `arn:aws:sns:${REGION}:${account}:${name}`
  const makeTopic = async (admin, account, name, doc) => {
    assert.equal((await sns(admin, { Action: 'CreateTopic', Name: name })).status, 200)
    if (doc) assert.equal((await sns(admin, { Action: 'SetTopicAttributes', TopicArn: topicArn(account, name), AttributeName: 'Policy', AttributeValue: doc })).status, 200)
    return topicArn(account, name)
  }
  const snsDenied = (out, because) => {
    assert.equal(out.status, 403, out.text)
    assert.equal(out.code, 'AuthorizationError', out.text)
    assert.match(out.text, because)
  }

  test('SNS Publish: a topic policy denying every aws:PrincipalArn but one refuses the others, whatever their identity policy allows', async () => {
    const topic = topicArn(B, 'gw-approvals')
    const approverArn = await makeRole(adminB, B, 'sns-approver', policy(allow('sns:Publish', topic)))
    const otherArn = await makeRole(adminB, B, 'sns-power-user', policy(allow('sns:*', '*')))
    await makeTopic(adminB, B, 'gw-approvals', policy({ Sid: 'OnlyApprovers', Effect: 'Deny', Principal: '*', Action: 'sns:Publish', Resource: topic, Condition: { ArnNotEquals: { 'aws:PrincipalArn': [approverArn] } } }))
    const [approver, other] = [await assume(approverArn), await assume(otherArn)]
    const out = await sns(approver, { Action: 'Publish', TopicArn: topic, Message: '{"action":"resend"}' })
    assert.equal(out.status, 200, out.text)
    snsDenied(await sns(other, { Action: 'Publish', TopicArn: topic, Message: '{"action":"resend"}' }), /with an explicit deny in a resource-based policy/)
    // PublishBatch is sns:Publish too.
    snsDenied(await sns(other, { Action: 'PublishBatch', TopicArn: topic, 'PublishBatchRequestEntries.member.1.Id': 'a', 'PublishBatchRequestEntries.member.1.Message': 'x' }), /sns:Publish/)
    // Without the topic's Deny, a role without sns:Publish of its own is refused by its identity
    // policy, and one with it is allowed (same account: no topic policy needed).
    const plain = await makeTopic(adminB, B, 'gw-plain')
    const noneArn = await makeRole(adminB, B, 'sns-none', policy(allow('s3:ListAllMyBuckets', '*')))
    snsDenied(await sns(await assume(noneArn), { Action: 'Publish', TopicArn: plain, Message: 'x' }), /because no identity-based policy allows the sns:Publish action/)
    assert.equal((await sns(other, { Action: 'Publish', TopicArn: plain, Message: 'x' })).status, 200)
  })

  test('SNS Subscribe is decided with sns:Protocol and sns:Endpoint from the request', async () => {
    const topic = topicArn(B, 'gw-notifications')
    const roleArn = await makeRole(adminB, B, 'sns-subscriber', policy(allow('sns:*', '*')))
    await makeTopic(
      adminB,
      B,
      'gw-notifications',
      policy(
        { Sid: 'OnlyTheAddress', Effect: 'Deny', Principal: '*', Action: 'sns:Subscribe', Resource: topic, Condition: { StringNotEquals: { 'sns:Endpoint': 'team@example.com' } } },
        { Sid: 'OnlyEmail', Effect: 'Deny', Principal: '*', Action: 'sns:Subscribe', Resource: topic, Condition: { StringNotEquals: { 'sns:Protocol': 'email' } } },
      ),
    )
    const session = await assume(roleArn)
    const ok = await sns(session, { Action: 'Subscribe', TopicArn: topic, Protocol: 'email', Endpoint: 'team@example.com' })
    assert.equal(ok.status, 200, ok.text)
    for (const [protocol, endpoint] of [['email', 'mallory@example.com'], ['email-json', 'team@example.com'], ['sqs', `arn:aws:sqs:${REGION}:${B}:mallory`]]) {
      snsDenied(await sns(session, { Action: 'Subscribe', TopicArn: topic, Protocol: protocol, Endpoint: endpoint }), /explicit deny in a resource-based policy/)
    }
    const line = recorded().filter((l) => l.principal === sessionArn(roleArn) && l.decision === 'Deny').pop()
    assert.deepEqual([line.action, line.resource], ['sns:Subscribe', topic])
  })

  test('SNS policy changes: a Deny unless aws:CalledVia names CloudFormation refuses a direct SetTopicAttributes (the key is absent); a change the gateway forwards is enforced at once', async () => {
    const topic = topicArn(B, 'gw-guarded')
    const roleArn = await makeRole(adminB, B, 'sns-admin-ish', policy(allow('sns:*', '*')))
    const guard = { Sid: 'OnlyTheStack', Effect: 'Deny', Principal: '*', Action: ['sns:SetTopicAttributes', 'sns:AddPermission', 'sns:DeleteTopic'], Resource: topic, Condition: { 'ForAllValues:StringNotEquals': { 'aws:CalledVia': ['cloudformation.amazonaws.com'] } } }
    await makeTopic(adminB, B, 'gw-guarded', policy(guard))
    const session = await assume(roleArn)
    const open = policy({ Effect: 'Allow', Principal: '*', Action: 'sns:*', Resource: topic })
    snsDenied(await sns(session, { Action: 'SetTopicAttributes', TopicArn: topic, AttributeName: 'Policy', AttributeValue: open }), /explicit deny/)
    snsDenied(await sns(session, { Action: 'AddPermission', TopicArn: topic, Label: 'x', 'AWSAccountId.member.1': A, 'ActionName.member.1': 'Subscribe' }), /explicit deny/)
    snsDenied(await sns(session, { Action: 'DeleteTopic', TopicArn: topic }), /explicit deny/)
    // The administrator lifts the guard (as CloudFormation would); the role's next call sees it.
    assert.equal((await sns(adminB, { Action: 'SetTopicAttributes', TopicArn: topic, AttributeName: 'Policy', AttributeValue: open })).status, 200)
    const out = await sns(session, { Action: 'SetTopicAttributes', TopicArn: topic, AttributeName: 'DisplayName', AttributeValue: 'x' })
    assert.equal(out.status, 200, out.text)
  })

  test('SNS across accounts: Publish to another account\'s topic needs its topic policy too', async () => {
    const topic = await makeTopic(adminB, B, 'gw-shared')
    const roleArn = await makeRole(adminA, A, 'sns-cross', policy(allow('sns:Publish', topic)))
    const session = await assume(roleArn)
    snsDenied(await sns(session, { Action: 'Publish', TopicArn: topic, Message: 'x' }), /because no resource-based policy allows the sns:Publish action/)
    await sns(adminB, { Action: 'SetTopicAttributes', TopicArn: topic, AttributeName: 'Policy', AttributeValue: policy({ Effect: 'Allow', Principal: { AWS: roleArn }, Action: 'sns:Publish', Resource: topic }) })
    const out = await sns(session, { Action: 'Publish', TopicArn: topic, Message: 'x' })
    assert.equal(out.status, 200, out.text)
  })

  // -------------------------------------------------------------------------------------------
  // Lambda Invoke: authorized, answered and listed by the gateway (moto would need Docker).

  /** One signed Lambda Invoke as `credentials`, sent to `base`; {status, headers, text}. */
  const invoke = async (credentials, functionName, { type, payload = '', query = {}, base = gw.url } = {}) => {
    const path = `/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`
    const headers = { 'content-type': 'application/json', ...(type ? { 'x-amz-invocation-type': type } : {}) }
    const r = { method: 'POST', host: `lambda.${REGION}.amazonaws.com`, path, query, body: payload, region: REGION, service: 'lambda', credentials, headers }
    const qs = signRequest(r)
    const res = await fetch(`${base}${path}${qs ? `?${qs}` : ''}`, { method: 'POST', headers: r.headers, body: payload })
    return { status: res.status, headers: res.headers, text: await res.text() }
  }
  /** The harness's list of invocations (unsigned). */
  const invocations = async (base = gw.url) => {
    const res = await fetch(`${base}/_ferry/lambda/invocations`)
    assert.equal(res.status, 200)
    return res.json()
  }
  /** What a block of code added to the harness's list. */
  const listedBy = async (fn) => {
    const before = (await invocations()).length
    const out = await fn()
    return { out, listed: (await invocations()).slice(before) }
  }
  const recorded = () => readFileSync(recordFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  const fnArn = (account, name) => `arn:aws:lambda:${REGION}:${account}:function:${name}`
  const invoker = async (admin, account, name, ...resources) => {
    const roleArn = await makeRole(admin, account, name, policy(allow('lambda:InvokeFunction', resources)))
    return { roleArn, session: await assume(roleArn) }
  }
  const invokeDenial = (principal, resource, because) => ({
    Type: 'User',
    message: `User: ${principal} is not authorized to perform: lambda:InvokeFunction on resource: ${resource} ${because}`,
  })

  test('Lambda Invoke (Event) needs lambda:InvokeFunction on the function ARN; the gateway answers 202, forwards nothing and lists it for the harness', async () => {
    const fn = fnArn(B, 'ferry-inv')
    const { roleArn, session } = await invoker(adminB, B, 'inv-event', fn)
    const forwarded = gw.stats().forwarded
    const { out, listed } = await listedBy(() => invoke(session, fn, { type: 'Event', payload: JSON.stringify({ hello: 'world', n: 1 }) }))
    assert.equal(out.status, 202, out.text)
    assert.equal(out.text, '')
    assert.ok(out.headers.get('x-amzn-requestid'), 'x-amzn-requestid')
    assert.equal(gw.stats().forwarded, forwarded, 'the Invoke reached moto')
    assert.deepEqual(listed, [{ functionArn: fn, invocationType: 'Event', principal: sessionArn(roleArn), payload: { hello: 'world', n: 1 } }])

    // A payload that is not JSON is listed as its text.
    const text = await listedBy(() => invoke(session, fn, { type: 'Event', payload: 'plain words' }))
    assert.equal(text.out.status, 202)
    assert.equal(text.listed[0].payload, 'plain words')

    // Recorded like every decision.
    const mine = recorded().filter((l) => l.principal === sessionArn(roleArn))
    assert.deepEqual(mine.map((l) => [l.decision, l.service, l.operation, l.action, l.resource, l.resourceAccount]), [
      ['Allow', 'lambda', 'Invoke', 'lambda:InvokeFunction', fn, B],
      ['Allow', 'lambda', 'Invoke', 'lambda:InvokeFunction', fn, B],
    ])
  })

  test('Lambda Invoke of a function the role may not invoke is AccessDeniedException (403) in Lambda\'s shape, not listed', async () => {
    const { roleArn, session } = await invoker(adminB, B, 'inv-other', fnArn(B, 'ferry-inv'))
    const { out, listed } = await listedBy(() => invoke(session, 'other', { type: 'Event', payload: '{}' }))
    assert.equal(out.status, 403, out.text)
    assert.equal(out.headers.get('x-amzn-errortype'), 'AccessDeniedException')
    assert.deepEqual(JSON.parse(out.text), invokeDenial(sessionArn(roleArn), fnArn(B, 'other'), 'because no identity-based policy allows the lambda:InvokeFunction action'))
    assert.deepEqual(listed, [])
    const line = recorded().filter((l) => l.principal === sessionArn(roleArn)).pop()
    assert.deepEqual([line.decision, line.action, line.resource], ['Deny', 'lambda:InvokeFunction', fnArn(B, 'other')])
  })

  test('Lambda Invoke across accounts is denied: the function has no resource policy granting the caller', async () => {
    const fn = fnArn(B, 'ferry-inv')
    const { roleArn, session } = await invoker(adminA, A, 'inv-cross', fn)
    const because = 'because no resource-based policy allows the lambda:InvokeFunction action'
    for (const name of [fn, `${B}:function:ferry-inv`]) {
      const { out, listed } = await listedBy(() => invoke(session, name, { type: 'Event', payload: '{}' }))
      assert.equal(out.status, 403, `${name}: ${out.text}`)
      assert.deepEqual(JSON.parse(out.text), invokeDenial(sessionArn(roleArn), fn, because))
      assert.deepEqual(listed, [])
    }
    const lines = recorded().filter((l) => l.principal === sessionArn(roleArn))
    assert.deepEqual(lines.map((l) => [l.decision, l.resourceAccount]), [['Deny', B], ['Deny', B]])
  })

  test('Lambda Invoke by name acts on the caller\'s account; a qualifier is part of the resource', async () => {
    const { roleArn, session } = await invoker(adminA, A, 'inv-name', fnArn(A, 'ferry-inv'), `${fnArn(A, 'ferry-inv')}:live`)
    const byName = await listedBy(() => invoke(session, 'ferry-inv', { type: 'Event', payload: '{"k":1}' }))
    assert.equal(byName.out.status, 202, byName.out.text)
    assert.deepEqual(byName.listed, [{ functionArn: fnArn(A, 'ferry-inv'), invocationType: 'Event', principal: sessionArn(roleArn), payload: { k: 1 } }])

    for (const [name, query] of [['ferry-inv', { Qualifier: 'live' }], ['ferry-inv:live', {}]]) {
      const q = await listedBy(() => invoke(session, name, { type: 'Event', payload: '{}', query }))
      assert.equal(q.out.status, 202, q.out.text)
      assert.deepEqual(q.listed.map((i) => [i.functionArn, i.qualifier]), [[fnArn(A, 'ferry-inv'), 'live']])
    }
    const old = await invoke(session, 'ferry-inv', { type: 'Event', payload: '{}', query: { Qualifier: 'old' } })
    assert.equal(old.status, 403)
    assert.equal(JSON.parse(old.text).message.split(' on resource: ')[1].split(' ')[0], `${fnArn(A, 'ferry-inv')}:old`)
  })

  test('Lambda Invoke DryRun is authorized and answered 204, not listed; RequestResponse (the default) is listed and answered 500', async () => {
    const fn = fnArn(B, 'ferry-inv')
    const { roleArn, session } = await invoker(adminB, B, 'inv-types', fn)
    const dry = await listedBy(() => invoke(session, fn, { type: 'DryRun', payload: '{}' }))
    assert.equal(dry.out.status, 204, dry.out.text)
    assert.deepEqual(dry.listed, [])
    const dryDenied = await invoke(session, fnArn(B, 'other'), { type: 'DryRun', payload: '{}' })
    assert.equal(dryDenied.status, 403)

    const sync = await listedBy(() => invoke(session, fn, { payload: '{"sync":true}' }))
    assert.equal(sync.out.status, 500)
    assert.equal(sync.out.headers.get('x-amzn-errortype'), 'ServiceException')
    assert.deepEqual(JSON.parse(sync.out.text), { Type: 'Service', message: "ferry gateway: a synchronous Invoke can't be answered here; tests run the handler from /_ferry/lambda/invocations" })
    assert.deepEqual(sync.listed, [{ functionArn: fn, invocationType: 'RequestResponse', principal: sessionArn(roleArn), payload: { sync: true } }])
  })

  test('other Lambda requests are unmapped and denied, admins included; unknown keys get UnrecognizedClientException', async () => {
    const r = { method: 'GET', host: `lambda.${REGION}.amazonaws.com`, path: '/2015-03-31/functions/', region: REGION, service: 'lambda', credentials: BOOTSTRAP, headers: {} }
    signRequest(r)
    const res = await fetch(`${gw.url}${r.path}`, { headers: r.headers })
    assert.equal(res.status, 403)
    assert.equal(res.headers.get('x-amzn-errortype'), 'AccessDeniedException')
    assert.match((await res.json()).message, /no IAM mapping for lambda GET \/2015-03-31\/functions\/: only Invoke is mapped/)
    assert.ok(gw.stats().unmapped.some((u) => u.request.startsWith('lambda GET /2015-03-31/functions/')))

    const stranger = await invoke({ accessKeyId: 'AKIANOBODYLAMBDA', secretAccessKey: 'x' }, 'ferry-inv', { type: 'Event', payload: '{}' })
    assert.equal(stranger.status, 403)
    assert.equal(stranger.headers.get('x-amzn-errortype'), 'UnrecognizedClientException')
  })

  test('a reset through the gateway empties the list of Lambda invocations', async () => {
    // A stand-in upstream that answers 200 to everything, so that the shared moto is not reset.
    const fake = http.createServer((req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
    await new Promise((r) => fake.listen(0, '127.0.0.1', r))
    const other = await startGateway({ upstream: `http://127.0.0.1:${fake.address().port}`, port: 0, quiet: true })
    try {
      const out = await invoke(BOOTSTRAP, 'ferry-inv', { type: 'Event', payload: '{}', base: other.url })
      assert.equal(out.status, 202, out.text)
      assert.deepEqual((await invocations(other.url)).map((i) => [i.functionArn, i.principal]), [[fnArn('123456789012', 'ferry-inv'), 'arn:aws:iam::123456789012:root']])
      assert.equal((await fetch(`${other.url}/moto-api/reset`, { method: 'POST' })).status, 200)
      assert.deepEqual(await invocations(other.url), [])
    } finally {
      await other.close()
      await new Promise((r) => fake.close(r))
    }
  })

  // -------------------------------------------------------------------------------------------
  // CloudFormation: the stack resource, and the harness's stack statuses (moto completes every
  // stack at once).

  /** One signed CloudFormation query call as `credentials`; {status, text, code}. */
  const cfn = async (credentials, params) => {
    const body = new URLSearchParams({ Version: '2010-05-15', ...params }).toString()
    const r = { method: 'POST', host: `cloudformation.${REGION}.amazonaws.com`, path: '/', body, region: REGION, service: 'cloudformation', credentials, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' } }
    signRequest(r)
    const res = await fetch(`${gw.url}/`, { method: 'POST', headers: r.headers, body })
    const text = await res.text()
    return { status: res.status, text, code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1] }
  }
  const createStack = async (admin, name) => {
    const template = JSON.stringify({ Resources: { Handle: { Type: 'AWS::CloudFormation::WaitConditionHandle' } } })
    const out = await cfn(admin, { Action: 'CreateStack', StackName: name, TemplateBody: template })
    assert.equal(out.status, 200, out.text)
    return /<StackId>([^<]*)<\/StackId>/.exec(out.text)[1]
  }
  const statusOf = (out) => /<StackStatus>([^<]*)<\/StackStatus>/.exec(out.text)?.[1]
  const setStatus = async (stackId, status) => {
    const res = await fetch(`${gw.url}/_ferry/cloudformation/stack-status`, { method: 'POST', body: JSON.stringify({ stackId, status }) })
    return { status: res.status, json: await res.json() }
  }

  test('CloudFormation DescribeStacks needs cloudformation:DescribeStacks on the stack\'s ARN, by id or by name', async () => {
    const mine = await createStack(adminB, 'ferry-cfn-mine')
    const other = await createStack(adminB, 'ferry-cfn-other')
    assert.match(mine, new RegExp(`^arn:aws:cloudformation:${REGION}:${B}:stack/ferry-cfn-mine/`))
    const roleArn = await makeRole(adminB, B, 'cfn-describer', policy(allow('cloudformation:DescribeStacks', mine)))
    const session = await assume(roleArn)

    const byId = await cfn(session, { Action: 'DescribeStacks', StackName: mine })
    assert.equal(byId.status, 200, byId.text)
    assert.equal(statusOf(byId), 'CREATE_COMPLETE', 'moto completes the stack at once')
    const byName = await cfn(session, { Action: 'DescribeStacks', StackName: 'ferry-cfn-mine' })
    assert.equal(byName.status, 200, byName.text)

    for (const name of [other, 'ferry-cfn-other']) {
      const out = await cfn(session, { Action: 'DescribeStacks', StackName: name })
      assert.equal(out.status, 403, out.text)
      assert.equal(out.code, 'AccessDenied')
      assert.match(out.text, new RegExp(`is not authorized to perform: cloudformation:DescribeStacks on resource: ${other.replace(/[/.]/g, '\\$&')} because no identity-based policy allows`))
    }
    // Every stack (no StackName) is checked on "*" by AWS; unmapped here, admins included.
    for (const who of [session, adminB]) {
      const all = await cfn(who, { Action: 'DescribeStacks' })
      assert.equal(all.status, 403, all.text)
      assert.match(all.text, /no IAM mapping for cloudformation DescribeStacks without StackName/)
    }

    const lines = recorded().filter((l) => l.principal === sessionArn(roleArn) && !l.unmapped)
    assert.deepEqual(lines.map((l) => [l.decision, l.service, l.action, l.resource]), [
      ['Allow', 'cloudformation', 'cloudformation:DescribeStacks', mine],
      ['Allow', 'cloudformation', 'cloudformation:DescribeStacks', mine],
      ['Deny', 'cloudformation', 'cloudformation:DescribeStacks', other],
      ['Deny', 'cloudformation', 'cloudformation:DescribeStacks', other],
    ])
  })

  test('the harness sets the status DescribeStacks reports for a stack, for every caller, until it forgets it', async () => {
    const stack = await createStack(adminA, 'ferry-cfn-status')
    const bystander = await createStack(adminA, 'ferry-cfn-bystander')
    const roleArn = await makeRole(adminA, A, 'cfn-status', policy(allow('cloudformation:DescribeStacks', [stack, bystander])))
    const session = await assume(roleArn)

    assert.deepEqual(await setStatus(stack, 'UPDATE_IN_PROGRESS'), { status: 200, json: { stackId: stack, status: 'UPDATE_IN_PROGRESS' } })
    for (const who of [session, adminA]) {
      const out = await cfn(who, { Action: 'DescribeStacks', StackName: stack })
      assert.equal(out.status, 200, out.text)
      assert.equal(statusOf(out), 'UPDATE_IN_PROGRESS')
    }
    assert.equal(statusOf(await cfn(session, { Action: 'DescribeStacks', StackName: bystander })), 'CREATE_COMPLETE', 'other stacks keep moto\'s status')
    // Described by name, the same stack's answer is rewritten too.
    assert.equal(statusOf(await cfn(session, { Action: 'DescribeStacks', StackName: 'ferry-cfn-status' })), 'UPDATE_IN_PROGRESS')

    await setStatus(stack, 'UPDATE_COMPLETE')
    assert.equal(statusOf(await cfn(session, { Action: 'DescribeStacks', StackName: stack })), 'UPDATE_COMPLETE')
    assert.deepEqual((await fetch(`${gw.url}/_ferry/cloudformation/stack-status`).then((r) => r.json()))[stack], 'UPDATE_COMPLETE')
    await setStatus(stack, null)
    assert.equal(statusOf(await cfn(session, { Action: 'DescribeStacks', StackName: stack })), 'CREATE_COMPLETE', 'forgotten: moto\'s own again')

    // Only CloudFormation's statuses, only stack ARNs.
    assert.equal((await setStatus(stack, 'SLEEPING')).status, 400)
    assert.equal((await setStatus('ferry-cfn-status', 'UPDATE_IN_PROGRESS')).status, 400)
  })

  // -------------------------------------------------------------------------------------------
  // Step Functions (awsJson 1.0, SigV4 service `states`): authorized on the ARN the request names,
  // then forwarded to moto, which serves Step Functions itself (stepfunctions.mjs).

  /** One signed Step Functions call as `credentials`; {status, headers, text, json}. */
  const sfn = async (credentials, operation, payload) => {
    const body = JSON.stringify(payload)
    const headers = { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AWSStepFunctions.${operation}` }
    const r = { method: 'POST', host: `states.${REGION}.amazonaws.com`, path: '/', body, region: REGION, service: 'states', credentials, headers }
    signRequest(r)
    const res = await fetch(`${gw.url}/`, { method: 'POST', headers: r.headers, body })
    const text = await res.text()
    let json
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: res.status, headers: res.headers, text, json }
  }
  const smArn = (account, name) => `arn:aws:states:${REGION}:${account}:stateMachine:${name}`
  const DEFINITION = JSON.stringify({ StartAt: 'Done', States: { Done: { Type: 'Pass', End: true } } })
  /** A state machine made by an account's admin, as the stack makes InventoryFanOut. */
  const makeStateMachine = async (admin, account, name) => {
    const out = await sfn(admin, 'CreateStateMachine', { name, definition: DEFINITION, roleArn: `arn:aws:iam::${account}:role/sfn-machine-role` })
    assert.equal(out.status, 200, out.text)
    assert.equal(out.json.stateMachineArn, smArn(account, name))
    return out.json.stateMachineArn
  }
  /** AWS's refusal in the awsJson 1.0 shape. */
  const sfnDenied = (out, principal, action, resource, because = `because no identity-based policy allows the ${action} action`) => {
    assert.equal(out.status, 400, out.text)
    assert.equal(out.headers.get('content-type'), 'application/x-amz-json-1.0')
    assert.equal(out.headers.get('x-amzn-errortype'), 'AccessDeniedException')
    assert.deepEqual(out.json, { __type: 'AccessDeniedException', message: `User: ${principal} is not authorized to perform: ${action} on resource: ${resource} ${because}` })
  }

  test('Step Functions StartExecution needs states:StartExecution on the state machine\'s ARN; allowed ones reach moto, others are AccessDeniedException in the JSON shape', async () => {
    const fanout = await makeStateMachine(adminB, B, 'sfn-fanout')
    const other = await makeStateMachine(adminB, B, 'sfn-other')
    const roleArn = await makeRole(adminB, B, 'sfn-starter', policy(
      allow('states:StartExecution', fanout),
      allow(['states:DescribeExecution'], `arn:aws:states:${REGION}:${B}:execution:sfn-fanout:*`),
      allow('states:ListExecutions', fanout),
    ))
    const session = await assume(roleArn)
    const principal = sessionArn(roleArn)
    const run = '0123456789abcdef0123456789abcdef'
    const input = JSON.stringify({ Fingerprint: 'f'.repeat(64), Run: run })

    const started = await sfn(session, 'StartExecution', { stateMachineArn: fanout, name: `ferry-${run}`, input })
    assert.equal(started.status, 200, started.text)
    const executionArn = `arn:aws:states:${REGION}:${B}:execution:sfn-fanout:ferry-${run}`
    assert.equal(started.json.executionArn, executionArn)
    const described = await sfn(session, 'DescribeExecution', { executionArn })
    assert.equal(described.status, 200, described.text)
    assert.deepEqual([described.json.stateMachineArn, described.json.name, described.json.input], [fanout, `ferry-${run}`, input])
    const listed = await sfn(session, 'ListExecutions', { stateMachineArn: fanout })
    assert.equal(listed.status, 200, listed.text)
    assert.deepEqual(listed.json.executions.map((e) => e.executionArn), [executionArn])

    // Another state machine, stopping the execution, describing the state machine: not granted.
    sfnDenied(await sfn(session, 'StartExecution', { stateMachineArn: other, name: `ferry-${run}`, input }), principal, 'states:StartExecution', other)
    sfnDenied(await sfn(session, 'StopExecution', { executionArn }), principal, 'states:StopExecution', executionArn)
    sfnDenied(await sfn(session, 'DescribeStateMachine', { stateMachineArn: fanout }), principal, 'states:DescribeStateMachine', fanout)
    sfnDenied(await sfn(session, 'ListExecutions', { stateMachineArn: other }), principal, 'states:ListExecutions', other)
    // A version (qualified ARN) is its own resource: a grant on the state machine doesn't cover it.
    sfnDenied(await sfn(session, 'StartExecution', { stateMachineArn: `${fanout}:1`, input }), principal, 'states:StartExecution', `${fanout}:1`)
    // Nothing refused reached moto; the execution still runs.
    assert.deepEqual((await sfn(adminB, 'ListExecutions', { stateMachineArn: other })).json.executions, [])
    assert.equal((await sfn(adminB, 'DescribeExecution', { executionArn })).json.status, 'RUNNING')

    const lines = recorded().filter((l) => l.principal === principal)
    assert.deepEqual(lines.map((l) => [l.decision, l.service, l.operation, l.action, l.resource, l.resourceAccount]), [
      ['Allow', 'states', 'StartExecution', 'states:StartExecution', fanout, B],
      ['Allow', 'states', 'DescribeExecution', 'states:DescribeExecution', executionArn, B],
      ['Allow', 'states', 'ListExecutions', 'states:ListExecutions', fanout, B],
      ['Deny', 'states', 'StartExecution', 'states:StartExecution', other, B],
      ['Deny', 'states', 'StopExecution', 'states:StopExecution', executionArn, B],
      ['Deny', 'states', 'DescribeStateMachine', 'states:DescribeStateMachine', fanout, B],
      ['Deny', 'states', 'ListExecutions', 'states:ListExecutions', other, B],
      ['Deny', 'states', 'StartExecution', 'states:StartExecution', `${fanout}:1`, B],
    ])
  })

  test('Step Functions across accounts is denied: a state machine has no resource policy', async () => {
    const machine = await makeStateMachine(adminB, B, 'sfn-cross')
    const roleArn = await makeRole(adminA, A, 'sfn-cross-starter', policy(allow('states:StartExecution', machine)))
    const out = await sfn(await assume(roleArn), 'StartExecution', { stateMachineArn: machine, input: '{}' })
    sfnDenied(out, sessionArn(roleArn), 'states:StartExecution', machine, 'because no resource-based policy allows the states:StartExecution action')
    assert.deepEqual((await sfn(adminB, 'ListExecutions', { stateMachineArn: machine })).json.executions, [])
  })

  test('Step Functions CreateStateMachine needs iam:PassRole on its role, passed to states.amazonaws.com (and states:TagResource for tags); DeleteStateMachine is on the ARN', async () => {
    const machineRole = `arn:aws:iam::${B}:role/sfn-created-role`
    const anyMachine = `arn:aws:states:${REGION}:${B}:stateMachine:*`
    const request = (name, extra = {}) => ({ name, definition: DEFINITION, roleArn: machineRole, ...extra })
    const passTo = (service) => allow('iam:PassRole', machineRole, { Condition: { StringEquals: { 'iam:PassedToService': service } } })

    const noPassArn = await makeRole(adminB, B, 'sfn-creator-no-pass', policy(allow('states:CreateStateMachine', anyMachine)))
    const noPass = await sfn(await assume(noPassArn), 'CreateStateMachine', request('sfn-created'))
    sfnDenied(noPass, sessionArn(noPassArn), 'iam:PassRole', machineRole)
    const lambdaOnlyArn = await makeRole(adminB, B, 'sfn-creator-lambda-pass', policy(allow('states:CreateStateMachine', anyMachine), passTo('lambda.amazonaws.com')))
    sfnDenied(await sfn(await assume(lambdaOnlyArn), 'CreateStateMachine', request('sfn-created')), sessionArn(lambdaOnlyArn), 'iam:PassRole', machineRole)
    const passOnlyArn = await makeRole(adminB, B, 'sfn-creator-pass-only', policy(passTo('states.amazonaws.com')))
    sfnDenied(await sfn(await assume(passOnlyArn), 'CreateStateMachine', request('sfn-created')), sessionArn(passOnlyArn), 'states:CreateStateMachine', smArn(B, 'sfn-created'))
    assert.equal((await sfn(adminB, 'DescribeStateMachine', { stateMachineArn: smArn(B, 'sfn-created') })).json.__type, 'StateMachineDoesNotExist', 'a refused CreateStateMachine reached moto')

    const creatorArn = await makeRole(adminB, B, 'sfn-creator', policy(
      allow(['states:CreateStateMachine', 'states:DescribeStateMachine', 'states:DeleteStateMachine'], anyMachine),
      passTo('states.amazonaws.com'),
    ))
    const creator = await assume(creatorArn)
    const created = await sfn(creator, 'CreateStateMachine', request('sfn-created'))
    assert.equal(created.status, 200, created.text)
    assert.equal(created.json.stateMachineArn, smArn(B, 'sfn-created'))
    const described = await sfn(creator, 'DescribeStateMachine', { stateMachineArn: smArn(B, 'sfn-created') })
    assert.equal(described.status, 200, described.text)
    assert.equal(described.json.roleArn, machineRole)
    // Tags on create also need states:TagResource (Service Authorization Reference, CreateStateMachine).
    sfnDenied(await sfn(creator, 'CreateStateMachine', request('sfn-tagged', { tags: [{ key: 'ferry:stack', value: 's' }] })), sessionArn(creatorArn), 'states:TagResource', smArn(B, 'sfn-tagged'))
    assert.equal((await sfn(creator, 'DeleteStateMachine', { stateMachineArn: smArn(B, 'sfn-created') })).status, 200)

    const lines = recorded().filter((l) => l.principal === sessionArn(creatorArn))
    assert.deepEqual(lines.map((l) => [l.decision, l.operation, l.action, l.resource]), [
      ['Allow', 'CreateStateMachine', 'states:CreateStateMachine', smArn(B, 'sfn-created')],
      ['Allow', 'CreateStateMachine', 'iam:PassRole', machineRole],
      ['Allow', 'DescribeStateMachine', 'states:DescribeStateMachine', smArn(B, 'sfn-created')],
      ['Allow', 'CreateStateMachine', 'states:CreateStateMachine', smArn(B, 'sfn-tagged')],
      ['Deny', 'CreateStateMachine', 'states:TagResource', smArn(B, 'sfn-tagged')],
      ['Allow', 'DeleteStateMachine', 'states:DeleteStateMachine', smArn(B, 'sfn-created')],
    ])
  })

  test('other Step Functions requests, and ones without the ARN they act on, are unmapped and denied, admins included', async () => {
    for (const [operation, payload, reason] of [
      ['CreateActivity', { name: 'a' }, /states CreateActivity: operation not mapped by the gateway/],
      ['StartExecution', { stateMachineArn: 'sfn-fanout' }, /states StartExecution: stateMachineArn "sfn-fanout" is not a state machine ARN/],
      ['DescribeExecution', {}, /states DescribeExecution: executionArn undefined is not an execution ARN/],
    ]) {
      const out = await sfn(adminB, operation, payload)
      assert.equal(out.status, 400, out.text)
      assert.equal(out.json.__type, 'AccessDeniedException')
      assert.match(out.json.message, reason)
    }
    const stranger = await sfn({ accessKeyId: 'AKIANOBODYSTATES', secretAccessKey: 'x' }, 'ListStateMachines', {})
    assert.equal(stranger.json.__type, 'UnrecognizedClientException')
    assert.equal(stranger.headers.get('content-type'), 'application/x-amz-json-1.0')
  })

  test('the CLI prints `listening <port>` and serves until SIGTERM', async () => {
    const child = spawn(process.execPath, [join(HERE, 'gateway.mjs'), '--upstream', moto.url, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const port = await new Promise((resolvePort, reject) => {
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        const m = /^listening (\d+)\n/.exec(out)
        if (m) resolvePort(Number(m[1]))
      })
      child.once('exit', (code) => reject(new Error(`gateway CLI exited ${code}`)))
    })
    const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: REGION, credentials: BOOTSTRAP, forcePathStyle: true, maxAttempts: 1 })
    const listed = await client.send(new ListBucketsCommand({}))
    assert.ok(listed.Buckets.some((b) => b.Name === 'setup-default'))
    const stranger = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: REGION, credentials: { accessKeyId: 'AKIANOBODY', secretAccessKey: 'x' }, forcePathStyle: true, maxAttempts: 1 })
    await denied(() => stranger.send(new ListBucketsCommand({})), 'InvalidAccessKeyId')
    const exited = new Promise((r) => child.once('exit', (code) => r(code)))
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
  })
})
