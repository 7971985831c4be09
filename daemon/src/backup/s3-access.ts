/**
 * What the backup gateway lets a database's container do in the S3 bucket,
 * as pure functions: who signed a request (AWS Signature Version 4, checked
 * with `aws4` against the stanza's own secret) and whether the request stays
 * inside that stanza's prefix. The gateway (s3-gateway.ts) forwards only
 * what these functions allow, rebuilt from the checked parts and signed with
 * the server's real keys, which never enter a container.
 *
 * A container's credential is its stanza's: the access key is the stanza's
 * name, the secret an HMAC of it under a secret only the daemon holds. So a
 * tenant that becomes superuser in its container (and reads pgbackrest.conf)
 * can read and delete its own backups, and nothing else in the bucket.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import aws4 from 'aws4';

/** S3 refuses a request signed further than this from its own clock; so does the gateway. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
/** A DeleteObjects body lists at most 1000 keys; this is ample for them. */
export const MAX_DELETE_BODY_BYTES = 1024 * 1024;

const STANZA = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/\s,]+)\/(\d{8})\/([^/\s,]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** The part of the bucket a stanza's credential reaches. */
export interface Scope {
  bucket: string;
  /** Every key must start with it: `<repository prefix>/<stanza>/`. */
  prefix: string;
}

export interface StanzaCredentials {
  accessKey: string;
  secretKey: string;
}

/** A stanza's credential for the gateway, derived from the daemon's gateway secret. */
export function stanzaCredentials(gatewaySecret: Buffer, stanza: string): StanzaCredentials {
  return { accessKey: stanza, secretKey: createHmac('sha256', gatewaySecret).update(`pgdb s3 gateway\0${stanza}`).digest('base64url') };
}

export function isStanzaName(value: string): boolean {
  return STANZA.test(value);
}

export interface IncomingS3Request {
  method: string;
  /** The request target as received: path and query, still percent-encoded. */
  url: string;
  headers: IncomingHttpHeaders;
}

/** Why a request is turned away, in S3's terms. */
export interface Denial {
  status: 400 | 403 | 405;
  code: 'AccessDenied' | 'SignatureDoesNotMatch' | 'RequestTimeTooSkewed' | 'InvalidRequest' | 'MalformedXML' | 'MethodNotAllowed';
  message: string;
}

export function isDenial(value: unknown): value is Denial {
  return typeof value === 'object' && value !== null && 'code' in value && 'status' in value;
}

/**
 * Checks the request's SigV4 signature (header form only) against the
 * secret of the stanza its access key names. Returns the stanza, or why not.
 */
export function authenticate(request: IncomingS3Request, secretOf: (stanza: string) => string | undefined, now: Date): string | Denial {
  const authorization = header(request.headers, 'authorization');
  const match = authorization ? AUTHORIZATION.exec(authorization) : null;
  if (!match) return { status: 403, code: 'AccessDenied', message: 'only requests signed with AWS Signature Version 4 in the Authorization header are accepted' };
  const [, accessKey, day, region, signedList, signature] = match;
  const secret = isStanzaName(accessKey) ? secretOf(accessKey) : undefined;
  if (secret === undefined) return { status: 403, code: 'AccessDenied', message: `unknown access key ${JSON.stringify(accessKey.slice(0, 140))}` };
  const signed = signedList.split(';');
  for (const required of ['host', 'x-amz-date', 'x-amz-content-sha256']) {
    if (!signed.includes(required)) return { status: 403, code: 'AccessDenied', message: `the signature must cover ${required}` };
  }
  const amzDate = header(request.headers, 'x-amz-date') ?? '';
  const moment = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!moment || !amzDate.startsWith(day)) return { status: 403, code: 'AccessDenied', message: 'x-amz-date is missing, malformed or not the credential\'s day' };
  const signedAt = Date.UTC(+moment[1], +moment[2] - 1, +moment[3], +moment[4], +moment[5], +moment[6]);
  if (Math.abs(now.getTime() - signedAt) > MAX_CLOCK_SKEW_MS) {
    return { status: 403, code: 'RequestTimeTooSkewed', message: 'the request was signed more than 15 minutes away from the gateway\'s clock' };
  }
  if (/^STREAMING-/.test(header(request.headers, 'x-amz-content-sha256') ?? '')) {
    return { status: 400, code: 'InvalidRequest', message: 'chunked (streaming) signatures are not supported' };
  }
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = header(request.headers, name);
    if (value === undefined) return { status: 403, code: 'AccessDenied', message: `signed header ${name} is missing` };
    headers[name] = value;
  }
  const signer = new aws4.RequestSigner(
    {
      method: request.method,
      path: request.url,
      headers,
      service: 's3',
      region,
      doNotModifyHeaders: true,
      // Sign exactly the headers the client listed, even those aws4 leaves out by default (range, user-agent).
      extraHeadersToInclude: Object.fromEntries(signed.map((name) => [name, true])),
    } as aws4.Request,
    { accessKeyId: accessKey, secretAccessKey: secret },
  );
  // With doNotModifyHeaders aws4 would take the time from the clock; the signature is over x-amz-date.
  signer.datetime = amzDate;
  const expected = Buffer.from(signer.signature(), 'hex');
  if (signer.signedHeaders() !== signedList || !timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    return { status: 403, code: 'SignatureDoesNotMatch', message: 'the request signature does not match the access key\'s secret' };
  }
  return accessKey;
}

/** What the gateway sends on: a key (or none, for the bucket itself) and the query, both checked. */
export interface Allowed {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** Decoded object key; undefined for a request on the bucket (a listing, a bulk delete). */
  key?: string;
  /** Query parameters in order, decoded. */
  query: Array<[string, string]>;
  /** A bulk delete: the body must be read and its keys checked (deleteKeys) before it is sent on. */
  bulkDelete: boolean;
}

const OBJECT_QUERIES: Record<string, string[][]> = {
  // A plain read, write or delete; or the steps of a multipart upload.
  GET: [[]],
  HEAD: [[]],
  PUT: [[], ['partNumber', 'uploadId']],
  POST: [['uploads'], ['uploadId']],
  DELETE: [[], ['uploadId']],
};
const LIST_QUERY = new Set(['list-type', 'prefix', 'delimiter', 'continuation-token', 'start-after', 'max-keys', 'encoding-type', 'fetch-owner']);

/**
 * Whether a request stays inside `scope`: objects under the prefix (read,
 * written, deleted, uploaded in parts), listings whose prefix is inside it,
 * and bulk deletes (whose keys the caller checks with deleteKeys). Nothing
 * on the bucket as a whole, no copies from elsewhere, no sub-resources
 * (ACLs, policies, versions, the bucket's list of uploads).
 */
export function authorise(request: IncomingS3Request, scope: Scope): Allowed | Denial {
  const method = request.method.toUpperCase();
  if (!['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].includes(method)) {
    return { status: 405, code: 'MethodNotAllowed', message: `${method} is not allowed` };
  }
  const queryAt = request.url.indexOf('?');
  const rawPath = queryAt < 0 ? request.url : request.url.slice(0, queryAt);
  let path: string;
  let query: Array<[string, string]>;
  try {
    path = decodeURIComponent(rawPath);
    query = queryAt < 0 ? [] : request.url.slice(queryAt + 1).split('&').filter(Boolean).map((pair) => {
      const at = pair.indexOf('=');
      const name = decodeURIComponent((at < 0 ? pair : pair.slice(0, at)).replace(/\+/g, ' '));
      return [name, at < 0 ? '' : decodeURIComponent(pair.slice(at + 1).replace(/\+/g, ' '))] as [string, string];
    });
  } catch {
    return { status: 400, code: 'InvalidRequest', message: 'the request target is not valid percent-encoding' };
  }
  const names = query.map(([name]) => name);
  if (new Set(names).size !== names.length) return { status: 400, code: 'InvalidRequest', message: 'a query parameter is repeated' };
  if (header(request.headers, 'x-amz-copy-source') !== undefined) {
    return { status: 403, code: 'AccessDenied', message: 'copies are not allowed' };
  }
  const match = /^\/([^/]+)(?:\/(.*))?$/s.exec(path);
  if (!match || match[1] !== scope.bucket) return { status: 403, code: 'AccessDenied', message: `only bucket ${scope.bucket} is reachable` };
  const key = match[2];
  if (key === undefined || key === '') {
    // The bucket itself: a listing inside the prefix, or a bulk delete.
    if (method === 'GET' && names.includes('list-type') && names.every((name) => LIST_QUERY.has(name))) {
      const prefix = query.find(([name]) => name === 'prefix')?.[1] ?? '';
      if (!prefix.startsWith(scope.prefix) || !isCleanKey(prefix)) {
        return { status: 403, code: 'AccessDenied', message: `listings must stay under ${scope.prefix}` };
      }
      return { method, query, bulkDelete: false };
    }
    if (method === 'POST' && names.length === 1 && names[0] === 'delete') return { method, query, bulkDelete: true };
    return { status: 403, code: 'AccessDenied', message: 'requests on the bucket itself are not allowed' };
  }
  if (!key.startsWith(scope.prefix) || !isCleanKey(key)) {
    return { status: 403, code: 'AccessDenied', message: `keys must stay under ${scope.prefix}` };
  }
  const shapes = OBJECT_QUERIES[method];
  const sorted = [...names].sort().join('&');
  if (!shapes.some((shape) => [...shape].sort().join('&') === sorted)) {
    return { status: 403, code: 'AccessDenied', message: `${method} with ?${names.join('&')} is not allowed` };
  }
  return { method: method as Allowed['method'], key, query, bulkDelete: false };
}

/**
 * The keys of a DeleteObjects body, or a Denial when it is not the plain
 * form S3 documents or a key leaves the scope.
 */
export function checkDeleteKeys(xml: string, scope: Scope): string[] | Denial {
  const body = xml.replace(/^\uFEFF/, '').replace(/^<\?xml[^?]*\?>/, '').trim();
  const outer = /^<Delete(?:\s+xmlns="[^"]*")?>([\s\S]*)<\/Delete>$/.exec(body);
  if (!outer) return { status: 400, code: 'MalformedXML', message: 'the body is not a DeleteObjects request' };
  let rest = outer[1].replace(/<Quiet>(true|false)<\/Quiet>/, '');
  const keys: string[] = [];
  try {
    rest = rest.replace(/<Object>\s*<Key>([^<]*)<\/Key>(?:\s*<VersionId>[^<]*<\/VersionId>)?\s*<\/Object>/g, (_, key: string) => {
      keys.push(decodeXml(key));
      return '';
    });
  } catch {
    return { status: 400, code: 'MalformedXML', message: 'a key holds a character reference that is not one' };
  }
  if (rest.trim() !== '' || keys.length === 0) return { status: 400, code: 'MalformedXML', message: 'the body holds more than Quiet and Object/Key elements' };
  for (const key of keys) {
    if (!key.startsWith(scope.prefix) || !isCleanKey(key)) return { status: 403, code: 'AccessDenied', message: `keys must stay under ${scope.prefix}` };
  }
  return keys;
}

/** No empty, `.` or `..` segment and no control character or backslash: a store that normalises paths reads it as written. */
function isCleanKey(key: string): boolean {
  if (/[\u0000-\u001f\u007f\\]/.test(key)) return false;
  const segments = key.split('/');
  // A trailing slash (a prefix) leaves one empty last segment; that one is fine.
  if (segments.at(-1) === '') segments.pop();
  return segments.every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

function decodeXml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, entity: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (named[entity.toLowerCase()]) return named[entity.toLowerCase()];
    const code = entity[1].toLowerCase() === 'x' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
    return String.fromCodePoint(code);
  });
}

/** Percent-encodes a key for a path the way SigV4 canonicalises it (every byte but unreserved ones and `/`). */
export function encodeKey(key: string): string {
  return key.split('/').map((segment) => encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}
