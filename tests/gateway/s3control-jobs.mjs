// S3 Batch Operations jobs as S3 Control answers them, for the gateway: moto implements no jobs,
// so after the gateway has authorized a job request it is answered here instead of forwarded.
//
// This file owns the job table (per account and Region), the answers to the job operations of
// the S3 Control API (CreateJob, DescribeJob, ListJobs, UpdateJobStatus, UpdateJobPriority,
// Get/Put/DeleteJobTagging) in the service model's restXml shapes (botocore
// data/s3control/2018-08-20/service-2.json: CreateJobResult, DescribeJobResult > Job
// (JobDescriptor), ListJobsResult > Jobs > member, GetJobTaggingResult > Tags > member,
// UpdateJobStatusResult, UpdateJobPriorityResult; errors wrapped in ErrorResponse), and the
// harness's control API the Batch Operations emulator (crates/ferry-testkit/src/batch_ops.rs)
// uses to move a job through its statuses:
//   GET  /_ferry/s3control/jobs/ACCOUNT/REGION/ID  → {"status", "requestedStatus"?, "priority"}
//   POST /_ferry/s3control/jobs/ACCOUNT/REGION/ID  ← {"status", "total", "succeeded", "failed",
//                                                      "failureReasons": [[code, reason]…]}
//
// What AWS documents and this follows (S3 User Guide, "Job statuses"; S3 Control API Reference,
// CreateJob, UpdateJobStatus):
//   * CreateJob is idempotent on ClientRequestToken: the same token gives the same job; the same
//     token with another request is IdempotencyException. The job id is derived from the token
//     and the role (as the testkit's `job_id_for`), so a mocked CreateJob can answer the same.
//   * a new job is `New`; the emulator moves it to Preparing, Suspended, Active, Complete, Failed;
//   * UpdateJobStatus `Ready` is accepted only for a Suspended job (one awaiting confirmation);
//     `Cancelled` for a job not yet finished (it becomes Cancelling); anything else is
//     JobStatusException (400);
//   * a job id this account and Region do not have is NotFoundException (404).

import { createHash } from 'node:crypto'
import { xmlEncode, xmlFirst, xmlRawAll, xmlSection } from './upstream.mjs'
import { partitionOf, queryError } from './api-operations.mjs'

const NS = 'http://awss3control.amazonaws.com/doc/2018-08-20/'
const FINISHED = new Set(['Complete', 'Failed', 'Cancelled'])
const CANCELLABLE = new Set(['New', 'Preparing', 'Suspended', 'Ready', 'Active', 'Pausing', 'Paused'])

/** The job id S3 Control gives a request: one per client request token and role. */
export function jobIdFor(token, roleArn) {
  const d = createHash('md5').update(`${token}:${roleArn}`).digest('hex')
  return `${d.slice(0, 8)}-${d.slice(8, 12)}-${d.slice(12, 16)}-${d.slice(16, 20)}-${d.slice(20, 32)}`
}

/** Tags of a `<Tags><member><Key/><Value/></member>…</Tags>` element (S3TagSet). */
function tagsOf(xml) {
  const section = xmlSection(xml, 'Tags')
  if (section === undefined) return []
  return xmlRawAll(section, 'member').map((m) => ({ Key: xmlFirst(m, 'Key') ?? '', Value: xmlFirst(m, 'Value') ?? '' }))
}

const tagsXml = (tags) => `<Tags>${tags.map((t) => `<member><Key>${xmlEncode(t.Key)}</Key><Value>${xmlEncode(t.Value)}</Value></member>`).join('')}</Tags>`

const ok = (root, inner) => ({
  status: 200,
  headers: { 'content-type': 'application/xml' },
  body: `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${NS}">${inner}</${root}>`,
})

const error = (status, code, message) => queryError({ status, code, message, type: 'Sender' })

export class JobTable {
  constructor() {
    /** `${account}/${region}/${id}` → job */
    this.jobs = new Map()
  }

  clear() {
    this.jobs.clear()
  }

  #get(account, region, id) {
    return this.jobs.get(`${account}/${region}/${id}`)
  }

  /** Condition keys of an existing job (s3:ExistingJobPriority, s3:ExistingJobOperation). */
  existingJobContext(account, region, id) {
    const job = this.#get(account, region, id)
    if (!job) return {}
    // The job resource type takes aws:ResourceTag/<key> (Service Authorization Reference).
    const tags = Object.fromEntries(job.tags.map((t) => [`aws:ResourceTag/${t.Key}`, t.Value]))
    return { 's3:ExistingJobPriority': String(job.priority), 's3:ExistingJobOperation': job.operationName, ...tags }
  }

  /** Condition keys of a CreateJob request (s3:RequestJobPriority, s3:RequestJobOperation). */
  static createJobContext(body) {
    const ctx = {}
    const priority = xmlFirst(body, 'Priority')
    if (priority !== undefined) ctx['s3:RequestJobPriority'] = priority
    const op = operationName(xmlSection(body, 'Operation') ?? '')
    if (op) ctx['s3:RequestJobOperation'] = op
    return ctx
  }

  /**
   * Answers an authorized S3 Control job request.
   * @param {{operation: string, account: string, region: string, job?: string, query: URLSearchParams, body?: string}} r
   */
  answer(r) {
    switch (r.operation) {
      case 'CreateJob':
        return this.#create(r)
      case 'ListJobs':
        return this.#list(r)
      default:
        break
    }
    const job = this.#get(r.account, r.region, r.job)
    if (!job) return error(404, 'NotFoundException', `The specified job ${r.job} was not found in account ${r.account} in ${r.region}.`)
    switch (r.operation) {
      case 'DescribeJob':
        return ok('DescribeJobResult', `<Job>${describe(job)}</Job>`)
      case 'GetJobTagging':
        return ok('GetJobTaggingResult', tagsXml(job.tags))
      case 'PutJobTagging':
        job.tags = tagsOf(r.body ?? '')
        return ok('PutJobTaggingResult', '')
      case 'DeleteJobTagging':
        job.tags = []
        return ok('DeleteJobTaggingResult', '')
      case 'UpdateJobPriority': {
        const p = Number(r.query.get('priority'))
        if (!Number.isInteger(p) || p < 0 || p > 2147483647) return error(400, 'BadRequestException', `priority ${r.query.get('priority')} is not an integer from 0 to 2147483647`)
        job.priority = p
        return ok('UpdateJobPriorityResult', `<JobId>${job.id}</JobId><Priority>${p}</Priority>`)
      }
      case 'UpdateJobStatus': {
        const requested = r.query.get('requestedJobStatus')
        if (requested === 'Ready' && job.status === 'Suspended') {
          job.status = 'Ready'
          job.requestedStatus = 'Ready'
        } else if (requested === 'Cancelled' && CANCELLABLE.has(job.status)) {
          job.status = 'Cancelling'
          job.requestedStatus = 'Cancelled'
        } else {
          return error(400, 'JobStatusException', `Job ${job.id} is ${job.status}: it cannot be moved to ${requested}.`)
        }
        job.statusUpdateReason = r.query.get('statusUpdateReason') ?? undefined
        return ok('UpdateJobStatusResult', `<JobId>${job.id}</JobId><Status>${job.status}</Status>${job.statusUpdateReason ? `<StatusUpdateReason>${xmlEncode(job.statusUpdateReason)}</StatusUpdateReason>` : ''}`)
      }
      default:
        return undefined
    }
  }

  #create(r) {
    const body = r.body ?? ''
    const missing = ['ClientRequestToken', 'Operation', 'Report', 'Priority', 'RoleArn'].filter((f) => xmlSection(body, f) === undefined)
    if (xmlSection(body, 'Manifest') === undefined && xmlSection(body, 'ManifestGenerator') === undefined) missing.push('Manifest')
    if (missing.length) return error(400, 'BadRequestException', `CreateJob is missing ${missing.join(', ')}.`)
    const token = xmlFirst(body, 'ClientRequestToken')
    const roleArn = xmlFirst(body, 'RoleArn')
    const id = jobIdFor(token, roleArn)
    const fingerprint = createHash('sha256').update(body).digest('hex')
    const existing = this.#get(r.account, r.region, id)
    if (existing) {
      if (existing.fingerprint !== fingerprint) return error(409, 'IdempotencyException', `ClientRequestToken ${token} was used with another CreateJob request.`)
      return ok('CreateJobResult', `<JobId>${id}</JobId>`)
    }
    const section = (tag) => {
      const inner = xmlSection(body, tag)
      return inner === undefined ? '' : `<${tag}>${inner}</${tag}>`
    }
    this.jobs.set(`${r.account}/${r.region}/${id}`, {
      id,
      account: r.account,
      region: r.region,
      fingerprint,
      roleArn,
      priority: Number(xmlFirst(body, 'Priority')),
      confirmationRequired: xmlFirst(body, 'ConfirmationRequired') === 'true',
      description: xmlFirst(body, 'Description'),
      operationName: operationName(xmlSection(body, 'Operation') ?? ''),
      sections: ['Manifest', 'Operation', 'Report', 'ManifestGenerator'].map(section).join(''),
      tags: tagsOf(body),
      status: 'New',
      creationTime: new Date().toISOString(),
      total: 0,
      succeeded: 0,
      failed: 0,
      failureReasons: [],
    })
    return ok('CreateJobResult', `<JobId>${id}</JobId>`)
  }

  #list(r) {
    const wanted = new Set(r.query.getAll('jobStatuses'))
    const jobs = [...this.jobs.values()]
      .filter((j) => j.account === r.account && j.region === r.region && (!wanted.size || wanted.has(j.status)))
      .sort((a, b) => (a.creationTime < b.creationTime ? 1 : -1))
    const members = jobs
      .map((j) => `<member><JobId>${j.id}</JobId>${j.description ? `<Description>${xmlEncode(j.description)}</Description>` : ''}<Operation>${j.operationName}</Operation><Priority>${j.priority}</Priority><Status>${j.status}</Status><CreationTime>${j.creationTime}</CreationTime>${progress(j)}</member>`)
      .join('')
    return ok('ListJobsResult', `<Jobs>${members}</Jobs>`)
  }

  /** The harness's read of a job (the emulator's). */
  control(method, account, region, id, json) {
    const job = this.#get(account, region, id)
    if (!job) {
      // Where S3 Control does have it, so the emulator can tell a job created in the wrong Region.
      const regions = [...this.jobs.values()].filter((j) => j.account === account && j.id === id).map((j) => j.region)
      return { status: 404, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: `no job ${id} in ${account} ${region}`, regions }) }
    }
    if (method === 'POST') {
      const update = JSON.parse(json || '{}')
      for (const field of ['status', 'total', 'succeeded', 'failed']) if (update[field] !== undefined) job[field] = update[field]
      if (Array.isArray(update.failureReasons)) job.failureReasons = update.failureReasons.map(([code, reason]) => ({ code: String(code), reason: String(reason) }))
      if (FINISHED.has(job.status)) job.terminationDate = new Date().toISOString()
    }
    const view = { status: job.status, priority: job.priority, ...(job.requestedStatus ? { requestedStatus: job.requestedStatus } : {}) }
    return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(view) }
  }
}

/** The operation's member name in JobOperation (S3PutObjectCopy, LambdaInvoke, …). */
function operationName(operationXml) {
  return /<([A-Za-z0-9]+)(?:\s[^>]*)?>/.exec(operationXml)?.[1]
}

function progress(job) {
  return `<ProgressSummary><TotalNumberOfTasks>${job.total}</TotalNumberOfTasks><NumberOfTasksSucceeded>${job.succeeded}</NumberOfTasksSucceeded><NumberOfTasksFailed>${job.failed}</NumberOfTasksFailed></ProgressSummary>`
}

/** A JobDescriptor's members. */
function describe(job) {
  const failures = job.failureReasons.length
    ? `<FailureReasons>${job.failureReasons.map((f) => `<member><FailureCode>${xmlEncode(f.code)}</FailureCode><FailureReason>${xmlEncode(f.reason)}</FailureReason></member>`).join('')}</FailureReasons>`
    : ''
  return (
    `<JobId>${job.id}</JobId><ConfirmationRequired>${job.confirmationRequired}</ConfirmationRequired>` +
    (job.description ? `<Description>${xmlEncode(job.description)}</Description>` : '') +
    `<JobArn>arn:${partitionOf(job.region)}:s3:${job.region}:${job.account}:job/${job.id}</JobArn><Status>${job.status}</Status>` +
    `${job.sections}<Priority>${job.priority}</Priority>${progress(job)}` +
    (job.statusUpdateReason ? `<StatusUpdateReason>${xmlEncode(job.statusUpdateReason)}</StatusUpdateReason>` : '') +
    `${failures}<CreationTime>${job.creationTime}</CreationTime>` +
    (job.terminationDate ? `<TerminationDate>${job.terminationDate}</TerminationDate>` : '') +
    `<RoleArn>${xmlEncode(job.roleArn)}</RoleArn>`
  )
}

