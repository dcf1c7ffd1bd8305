// SigV4 for the gateway: who signed an incoming request (access key id, region, service, from
// the `Authorization` header or a presigned URL's `X-Amz-Credential`), and signing of the
// gateway's own admin requests to moto.
//
// The gateway does not verify incoming signatures (it knows the secrets of assumed-role
// sessions but not of every key, and moto does not verify them either): a request is attributed
// to the access key id it names. See README.md, "Not enforced".
//
// Signing follows the SigV4 specification
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).

import { createHash, createHmac } from 'node:crypto'

/**
 * The credential a request was signed with, or undefined for an unsigned request.
 * @param {import('node:http').IncomingHttpHeaders} headers
 * @param {URLSearchParams} query
 * @returns {{accessKeyId: string, date: string, region: string, service: string, authType: 'REST-HEADER'|'REST-QUERY-STRING', algorithm: string} | undefined}
 */
export function parseSigV4(headers, query) {
  const auth = headers.authorization
  if (typeof auth === 'string' && auth.startsWith('AWS4-HMAC-SHA256 ')) {
    const m = /Credential=([^,\s]+)/.exec(auth)
    if (!m) return undefined
    return fromScope(m[1], 'REST-HEADER', 'AWS4-HMAC-SHA256')
  }
  const credential = query.get('X-Amz-Credential')
  if (credential && query.get('X-Amz-Algorithm') === 'AWS4-HMAC-SHA256') {
    return fromScope(credential, 'REST-QUERY-STRING', 'AWS4-HMAC-SHA256')
  }
  return undefined
}

/** `AKID/20240101/us-east-1/s3/aws4_request` → its parts (the key id itself has no '/'). */
function fromScope(scope, authType, algorithm) {
  const parts = scope.split('/')
  if (parts.length < 5 || parts[4] !== 'aws4_request') return undefined
  const [accessKeyId, date, region, service] = parts
  return { accessKeyId, date, region, service, authType, algorithm }
}

/** Whether the request carries an older (SigV2) signature, which the gateway does not accept. */
export function isSigV2(headers, query) {
  return (typeof headers.authorization === 'string' && headers.authorization.startsWith('AWS ')) || query.has('Signature')
}

const sha256 = (data) => createHash('sha256').update(data).digest('hex')
const hmac = (key, data) => createHmac('sha256', key).update(data).digest()

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
function uriEncode(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/**
 * Signs a request in place: adds x-amz-date, x-amz-content-sha256, the session token and the
 * Authorization header. `path` must already be URI-encoded (as it goes on the wire).
 * @param {{method: string, host: string, path: string, query?: Record<string,string>, headers: Record<string,string>, body?: Buffer|string, region: string, service: string, credentials: {accessKeyId: string, secretAccessKey: string, sessionToken?: string}}} r
 * @returns {string} the query string to send (canonical order)
 */
export function signRequest(r) {
  const now = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const day = now.slice(0, 8)
  const body = r.body ?? ''
  const payloadHash = sha256(body)
  r.headers.host = r.host
  r.headers['x-amz-date'] = now
  r.headers['x-amz-content-sha256'] = payloadHash
  if (r.credentials.sessionToken) r.headers['x-amz-security-token'] = r.credentials.sessionToken

  const query = Object.entries(r.query ?? {})
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const names = Object.keys(r.headers).map((h) => h.toLowerCase()).sort()
  const lower = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), String(v).trim().replace(/\s+/g, ' ')]))
  const canonicalHeaders = names.map((n) => `${n}:${lower[n]}\n`).join('')
  const signedHeaders = names.join(';')
  const canonicalRequest = [r.method, r.path, query, canonicalHeaders, signedHeaders, payloadHash].join('\n')
  const scope = `${day}/${r.region}/${r.service}/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', now, scope, sha256(canonicalRequest)].join('\n')
  let key = hmac(`AWS4${r.credentials.secretAccessKey}`, day)
  for (const part of [r.region, r.service, 'aws4_request']) key = hmac(key, part)
  const signature = createHmac('sha256', key).update(stringToSign).digest('hex')
  r.headers.authorization =
    `AWS4-HMAC-SHA256 Credential=${r.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`
  return query
}
