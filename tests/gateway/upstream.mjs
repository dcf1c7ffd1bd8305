// The gateway's own view of moto: signed admin requests straight to the upstream server (never
// through the gateway, so they are neither authorized nor recorded), one admin credential per
// account, and the small XML helpers needed to read moto's query/REST-XML answers.
//
// Admin credentials: the bootstrap key acts in moto's default account; for any other account the
// gateway assumes `arn:aws:iam::<account>:role/<adminRoleName>` with the bootstrap key, exactly
// as the Rust testkit does (moto needs no such role to exist and returns credentials that act in
// that account).

import http from 'node:http'
import { signRequest } from './sigv4.mjs'

/** Decodes the five XML entities and numeric character references. */
export function xmlDecode(s) {
  return s
    .replace(/&#x([0-9a-fA-F]+);/g, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')
}

export function xmlEncode(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/**
 * Raw inner texts of every `<tag>…</tag>` (or `<tag attr…>…</tag>`) in `xml`, in order. Enough for
 * moto's answers: the tags read here never nest inside themselves.
 */
export function xmlRawAll(xml, tag) {
  const out = []
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g')
  for (let m; (m = re.exec(xml ?? '')); ) out.push(m[1])
  return out
}
/** Decoded inner texts of every `<tag>` in `xml`. */
export const xmlAll = (xml, tag) => xmlRawAll(xml, tag).map(xmlDecode)
/** Decoded inner text of the first `<tag>` in `xml`, or undefined. */
export const xmlFirst = (xml, tag) => xmlAll(xml, tag)[0]
/** Raw inner XML of the first `<tag>` (to search inside it). */
export const xmlSection = (xml, tag) => xmlRawAll(xml, tag)[0]

/** A policy document as IAM returns it: URL-encoded JSON (AWS) or plain JSON (some moto paths). */
export function parsePolicyDocument(text) {
  if (text === undefined || text === null || text === '') return undefined
  if (typeof text === 'object') return text
  try {
    return JSON.parse(text)
  } catch {
    return JSON.parse(decodeURIComponent(text.replace(/\+/g, ' ')))
  }
}

export class Upstream {
  /**
   * @param {{upstream: string, bootstrap: {accessKeyId: string, secretAccessKey: string}, defaultAccount: string, adminRoleName: string}} opts
   */
  constructor(opts) {
    this.url = new URL(opts.upstream)
    this.bootstrap = opts.bootstrap
    this.defaultAccount = opts.defaultAccount
    this.adminRoleName = opts.adminRoleName
    /** account → Promise<credentials> */
    this.adminCredentials = new Map()
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  }

  close() {
    this.agent.destroy()
  }

  /** One HTTP exchange with the upstream server; resolves with status, headers and the body text. */
  raw({ method, path, headers = {}, body }) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.url.hostname, port: this.url.port, method, path, headers, agent: this.agent },
        (res) => {
          const chunks = []
          res.on('data', (c) => chunks.push(c))
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      if (body !== undefined) req.end(body)
      else req.end()
    })
  }

  /** Credentials that act as admin in `account` (cached per account). */
  credentialsFor(account) {
    if (account === this.defaultAccount) return Promise.resolve(this.bootstrap)
    let p = this.adminCredentials.get(account)
    if (!p) {
      p = this.#assumeAdmin(account)
      p.catch(() => this.adminCredentials.delete(account))
      this.adminCredentials.set(account, p)
    }
    return p
  }

  async #assumeAdmin(account) {
    const roleArn = `arn:aws:iam::${account}:role/${this.adminRoleName}`
    const xml = await this.query(this.defaultAccount, 'sts', 'us-east-1', {
      Action: 'AssumeRole',
      Version: '2011-06-15',
      RoleArn: roleArn,
      RoleSessionName: 'ferry-gateway',
    })
    const credentials = {
      accessKeyId: xmlFirst(xml, 'AccessKeyId'),
      secretAccessKey: xmlFirst(xml, 'SecretAccessKey'),
      sessionToken: xmlFirst(xml, 'SessionToken'),
    }
    if (!credentials.accessKeyId) throw new Error(`gateway could not assume ${roleArn} on moto: ${xml.slice(0, 300)}`)
    return credentials
  }

  /** A signed request as admin of `account`. `path` is the encoded path; `query` unencoded pairs. */
  async signed(account, { method, path, query, headers = {}, body, region, service }) {
    const credentials = await this.credentialsFor(account)
    const h = { ...headers }
    const qs = signRequest({ method, host: this.url.host, path, query, headers: h, body, region, service, credentials })
    return this.raw({ method, path: qs ? `${path}?${qs}` : path, headers: h, body })
  }

  /** A query-protocol call (STS, IAM, SNS, SQS) as admin of `account`; throws on an error answer. */
  async query(account, service, region, params) {
    const body = new URLSearchParams(params).toString()
    const res = await this.signed(account, {
      method: 'POST',
      path: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body,
      region,
      service,
    })
    if (res.status >= 300) {
      const err = new Error(`moto ${service} ${params.Action} answered ${res.status}: ${xmlFirst(res.body, 'Code') ?? ''} ${xmlFirst(res.body, 'Message') ?? res.body.slice(0, 200)}`)
      err.status = res.status
      err.code = xmlFirst(res.body, 'Code')
      throw err
    }
    return res.body
  }

  /** A JSON-protocol call (KMS) as admin of `account`; resolves with {status, json}. */
  async json(account, service, region, target, payload) {
    const body = JSON.stringify(payload)
    const res = await this.signed(account, {
      method: 'POST',
      path: '/',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target },
      body,
      region,
      service,
    })
    let json
    try {
      json = JSON.parse(res.body || '{}')
    } catch {
      json = { raw: res.body }
    }
    return { status: res.status, json }
  }

  /** An S3 REST call as admin of `account`. `path` like `/bucket` or `/bucket/key` (encoded). */
  s3(account, region, method, path, query = {}) {
    return this.signed(account, { method, path, query, region, service: 's3' })
  }
}

/** Encodes an S3 key for a path: each segment URI-encoded, '/' kept. */
export function encodeKeyPath(key) {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/')
}
