import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import aws4 from 'aws4';
import { authenticate, authorise, checkDeleteKeys, isDenial, stanzaCredentials, type Denial, type IncomingS3Request } from './s3-access.js';

const SECRET = randomBytes(32);
const STANZA = 'pgdb-shop-abc123';
const SCOPE = { bucket: 'backups', prefix: `pgdb/${STANZA}/` };
const NOW = new Date('2026-12-07T12:00:00Z');

/** A request as pgBackRest would send it to the gateway, signed with `stanza`'s credential by aws4. */
function signed(method: string, path: string, options: { stanza?: string; headers?: Record<string, string>; body?: string; at?: Date } = {}): IncomingS3Request {
  const credentials = stanzaCredentials(SECRET, options.stanza ?? STANZA);
  const body = options.body ?? '';
  const request = aws4.sign(
    {
      host: '172.18.0.1',
      port: 8433,
      method,
      path,
      service: 's3',
      region: 'fsn1',
      headers: {
        'x-amz-date': (options.at ?? NOW).toISOString().replace(/[:-]|\.\d{3}/g, ''),
        'x-amz-content-sha256': aws4Hash(body),
        ...options.headers,
      },
    },
    { accessKeyId: credentials.accessKey, secretAccessKey: credentials.secretKey },
  );
  const headers = Object.fromEntries(Object.entries(request.headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)]));
  return { method, url: request.path ?? path, headers };
}

function aws4Hash(body: string): string {
  return new aws4.RequestSigner({ service: 's3', body }).canonicalString().split('\n').at(-1)!;
}

const secretOf = (stanza: string) => stanzaCredentials(SECRET, stanza).secretKey;

function denial(value: unknown): Denial {
  assert.ok(isDenial(value), `expected a denial, got ${JSON.stringify(value)}`);
  return value;
}

describe('s3-access: who signed it', () => {
  it('checks AWS\'s own example (GET Object with a Range header) to the documented signature', () => {
    // From AWS's "Signature Calculations for the Authorization Header" (Signature Version 4), GET Object example.
    const request: IncomingS3Request = {
      method: 'GET',
      url: '/test.txt',
      headers: {
        host: 'examplebucket.s3.amazonaws.com',
        range: 'bytes=0-9',
        'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
        'x-amz-date': '20130524T000000Z',
        authorization:
          'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, ' +
          'SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
      },
    };
    const secret = (key: string) => (key === 'AKIAIOSFODNN7EXAMPLE' ? 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' : undefined);
    assert.equal(authenticate(request, secret, new Date('2013-05-24T00:01:00Z')), 'AKIAIOSFODNN7EXAMPLE');
    const tampered = { ...request, headers: { ...request.headers, range: 'bytes=0-99' } };
    assert.equal(denial(authenticate(tampered, secret, new Date('2013-05-24T00:01:00Z'))).code, 'SignatureDoesNotMatch');
  });

  it('accepts a stanza\'s own signature, and names the stanza', () => {
    const request = signed('GET', `/backups/pgdb/${STANZA}/backup/${STANZA}/backup.info`);
    assert.equal(authenticate(request, secretOf, NOW), STANZA);
  });

  it('refuses a request changed after signing, one signed with another stanza\'s secret, and an unknown key', () => {
    const request = signed('GET', `/backups/pgdb/${STANZA}/backup/${STANZA}/backup.info`);
    assert.equal(denial(authenticate({ ...request, url: `/backups/pgdb/other/backup/other/backup.info` }, secretOf, NOW)).code, 'SignatureDoesNotMatch');
    // A tenant that read its own secret signs as another stanza: the key names that stanza, the secret is not its.
    const forged = signed('GET', '/backups/pgdb/other/backup.info');
    const asOther = { ...forged, headers: { ...forged.headers, authorization: forged.headers.authorization!.toString().replace(`Credential=${STANZA}/`, 'Credential=pgdb-other-999/') } };
    assert.equal(denial(authenticate(asOther, secretOf, NOW)).code, 'SignatureDoesNotMatch');
    assert.equal(denial(authenticate(request, () => undefined, NOW)).code, 'AccessDenied');
  });

  it('refuses presigned URLs, unsigned requests, a stale signature and streaming payloads', () => {
    const request = signed('GET', `/backups/pgdb/${STANZA}/x`);
    const { authorization: _, ...unsigned } = request.headers;
    assert.equal(denial(authenticate({ ...request, headers: unsigned }, secretOf, NOW)).code, 'AccessDenied');
    assert.equal(denial(authenticate({ ...request, url: `${request.url}?X-Amz-Signature=00`, headers: unsigned }, secretOf, NOW)).code, 'AccessDenied');
    assert.equal(denial(authenticate(request, secretOf, new Date(NOW.getTime() + 16 * 60_000))).code, 'RequestTimeTooSkewed');
    const streaming = signed('PUT', `/backups/pgdb/${STANZA}/x`, { headers: { 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' } });
    assert.equal(denial(authenticate(streaming, secretOf, NOW)).code, 'InvalidRequest');
  });

  it('gives each stanza its own secret, stable for the gateway\'s secret', () => {
    assert.equal(stanzaCredentials(SECRET, 'a').secretKey, stanzaCredentials(SECRET, 'a').secretKey);
    assert.notEqual(stanzaCredentials(SECRET, 'a').secretKey, stanzaCredentials(SECRET, 'b').secretKey);
    assert.notEqual(stanzaCredentials(SECRET, 'a').secretKey, stanzaCredentials(randomBytes(32), 'a').secretKey);
    assert.equal(stanzaCredentials(SECRET, 'a').accessKey, 'a');
  });
});

describe('s3-access: what it may touch', () => {
  const request = (method: string, url: string, headers: Record<string, string> = {}): IncomingS3Request => ({ method, url, headers });

  it('allows reads, writes, deletes and multipart uploads of objects under the stanza\'s prefix', () => {
    const key = `pgdb/${STANZA}/archive/${STANZA}/17-1/0000000100000000/000000010000000000000001-abc.zst`;
    for (const [method, query] of [['GET', ''], ['HEAD', ''], ['PUT', ''], ['DELETE', ''], ['POST', '?uploads'], ['PUT', '?partNumber=2&uploadId=xyz'], ['POST', '?uploadId=xyz'], ['DELETE', '?uploadId=xyz']]) {
      const allowed = authorise(request(method, `/backups/${key}${query}`), SCOPE);
      assert.ok(!isDenial(allowed), `${method} ${query}: ${JSON.stringify(allowed)}`);
      assert.equal(allowed.key, key);
    }
  });

  it('allows listings under the prefix, decoded as S3 reads them', () => {
    const allowed = authorise(request('GET', `/backups?delimiter=%2F&list-type=2&prefix=pgdb%2F${STANZA}%2Fbackup%2F`), SCOPE);
    assert.ok(!isDenial(allowed));
    assert.equal(allowed.key, undefined);
    assert.deepEqual(allowed.query.find(([name]) => name === 'prefix'), ['prefix', `pgdb/${STANZA}/backup/`]);
  });

  it('refuses another stanza, a sibling prefix, the server record, dot segments and another bucket', () => {
    for (const url of [
      '/backups/pgdb/pgdb-other-def456/backup/x',
      `/backups/pgdb/${STANZA}-2/backup/x`,
      '/backups/pgdb/server.pgdb',
      `/backups/pgdb/${STANZA}/../pgdb-other-def456/x`,
      `/backups/pgdb/${STANZA}/%2E%2E/pgdb-other-def456/x`,
      `/backups/pgdb/${STANZA}//x`,
      `/other-bucket/pgdb/${STANZA}/x`,
      `/backups/pgdb/${STANZA}/a%5C..%5Cb`,
    ]) {
      assert.equal(denial(authorise(request('GET', url), SCOPE)).code, 'AccessDenied', url);
    }
  });

  it('refuses listings outside the prefix, or of the whole bucket', () => {
    for (const query of ['list-type=2', 'list-type=2&prefix=pgdb%2F', `list-type=2&prefix=pgdb%2F${STANZA}`, 'list-type=2&prefix=pgdb%2Fpgdb-other%2F', 'uploads', 'versions', 'acl', 'policy']) {
      assert.equal(denial(authorise(request('GET', `/backups?${query}`), SCOPE)).code, 'AccessDenied', query);
    }
    assert.equal(denial(authorise(request('PUT', '/backups'), SCOPE)).code, 'AccessDenied');
    assert.equal(denial(authorise(request('DELETE', '/backups/'), SCOPE)).code, 'AccessDenied');
  });

  it('refuses copies from elsewhere, sub-resources of an object, repeated parameters and other methods', () => {
    const key = `/backups/pgdb/${STANZA}/x`;
    assert.equal(denial(authorise(request('PUT', key, { 'x-amz-copy-source': '/backups/pgdb/pgdb-other/x' }), SCOPE)).code, 'AccessDenied');
    assert.equal(denial(authorise(request('GET', `${key}?acl`), SCOPE)).code, 'AccessDenied');
    assert.equal(denial(authorise(request('PUT', `${key}?tagging`), SCOPE)).code, 'AccessDenied');
    assert.equal(denial(authorise(request('GET', `/backups?list-type=2&prefix=pgdb%2F${STANZA}%2F&prefix=pgdb%2F`), SCOPE)).code, 'InvalidRequest');
    assert.equal(denial(authorise(request('PATCH', key), SCOPE)).code, 'MethodNotAllowed');
    assert.equal(denial(authorise(request('GET', '/backups/pgdb/%E0%A4%A'), SCOPE)).code, 'InvalidRequest');
  });

  it('takes a bulk delete of the stanza\'s keys and refuses one that reaches out of it', () => {
    assert.deepEqual(authorise(request('POST', '/backups?delete'), SCOPE), { method: 'POST', query: [['delete', '']], bulkDelete: true });
    const body = (keys: string[]) =>
      `<?xml version="1.0" encoding="UTF-8"?>\n<Delete><Quiet>true</Quiet>${keys.map((k) => `<Object><Key>${k}</Key></Object>`).join('')}</Delete>`;
    assert.deepEqual(checkDeleteKeys(body([`pgdb/${STANZA}/a`, `pgdb/${STANZA}/b&amp;c`]), SCOPE), [`pgdb/${STANZA}/a`, `pgdb/${STANZA}/b&c`]);
    assert.equal(denial(checkDeleteKeys(body([`pgdb/${STANZA}/a`, 'pgdb/server.pgdb']), SCOPE)).code, 'AccessDenied');
    assert.equal(denial(checkDeleteKeys(body([`pgdb/${STANZA}/&#46;&#46;/pgdb-other/x`]), SCOPE)).code, 'AccessDenied');
    assert.equal(denial(checkDeleteKeys(body([`pgdb/${STANZA}/a`]).replace('</Delete>', '<Extra/></Delete>'), SCOPE)).code, 'MalformedXML');
    assert.equal(denial(checkDeleteKeys(body([`pgdb/${STANZA}/&#x110000;`]), SCOPE)).code, 'MalformedXML');
    assert.equal(denial(checkDeleteKeys(body([]), SCOPE)).code, 'MalformedXML');
  });
});
