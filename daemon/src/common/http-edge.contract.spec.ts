/**
 * The HTTP edge (issue 9 §3) on the real Nest/Fastify app with a fake
 * Docker: authentication before the body, JSON object bodies only, strict
 * query parameters, one error shape for Fastify's and Node's own errors,
 * no-store caching of secrets, and the server's time limits.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { BODY_LIMIT_BYTES, ERROR_CODES } from '../../../contract/api.js';
import { createTestApp, TEST_TOKEN, type TestApp } from '../testing/test-app.js';
import { codeForHttpStatus, httpStatusFor } from './errors.js';
import { createAdapter } from '../app.js';
import { createCertificateAuthority, issueServerCertificate } from '../tls/certificates.js';
import { createLogger } from './logger.js';
import { HTTP_LIMITS, nestingExceeds } from './http-edge.js';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: any;
}

/** Any method, any headers, any payload; the token is sent unless `token: null`. */
async function send(
  t: TestApp,
  method: string,
  url: string,
  options: { payload?: string; headers?: Record<string, string>; token?: string | null } = {},
): Promise<Raw> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TEST_TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await t.app
    .getHttpAdapter()
    .getInstance()
    .inject({ method: method as 'GET', url, headers, payload: options.payload });
  const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
  return { status: res.statusCode, headers: res.headers, body: json && res.body ? JSON.parse(res.body) : res.body };
}

const JSON_TYPE = { 'content-type': 'application/json' };

function assertError(res: Raw, status: number, code: string, message?: RegExp): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.deepEqual(Object.keys(res.body), ['error']);
  assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message']);
  assert.equal(res.body.error.code, code);
  assert.equal(typeof res.body.error.message, 'string');
  if (message) assert.match(res.body.error.message, message);
}

describe('HTTP edge (real Nest/Fastify app, fake Docker)', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp();
  });
  afterEach(async () => {
    await t.close();
  });

  describe('authentication comes before the body', () => {
    const unauthenticated: Array<[string, string, Record<string, string>, string]> = [
      ['malformed JSON', 'POST', JSON_TYPE, '{"name":'],
      ['a body over the size limit', 'POST', JSON_TYPE, JSON.stringify({ name: 'x'.repeat(BODY_LIMIT_BYTES * 4) })],
      ['a form body', 'POST', { 'content-type': 'application/x-www-form-urlencoded' }, 'name=evil'],
      ['an unsupported media type', 'POST', { 'content-type': 'application/xml' }, '<deploy/>'],
      ['an array body', 'POST', JSON_TYPE, '[1,2]'],
      ['a body nested too deep', 'POST', JSON_TYPE, '['.repeat(10_000) + ']'.repeat(10_000)],
      ['a DELETE with a body', 'DELETE', JSON_TYPE, '{"keep_data":true}'],
    ];
    for (const [what, method, headers, payload] of unauthenticated) {
      for (const token of [null, 'not-the-token-at-all']) {
        it(`answers 401 to ${what} ${token ? 'with a wrong token' : 'without a token'}`, async () => {
          const url = method === 'POST' ? '/v1/deploy' : '/v1/db/x';
          const res = await send(t, method, url, { headers, payload, token });
          assertError(res, 401, 'UNAUTHORIZED');
          assert.equal(t.docker.containers.size, 0);
        });
      }
    }

    it('answers 401 to unknown query parameters and unknown routes without a token', async () => {
      assertError(await send(t, 'DELETE', '/v1/db/x?keepdata=true', { token: null }), 401, 'UNAUTHORIZED');
      assertError(await send(t, 'GET', '/v1/secret-route', { token: null }), 401, 'UNAUTHORIZED');
    });

    it('keeps health, the CA and the OpenAPI document public', async () => {
      assert.equal((await send(t, 'GET', '/v1/health', { token: null })).status, 200);
      const ca = await send(t, 'GET', '/v1/ca', { token: null });
      assert.equal(ca.status, 200);
      assert.match(ca.body, /BEGIN CERTIFICATE/);
      const doc = await send(t, 'GET', '/v1/openapi.json', { token: null });
      assert.equal(doc.status, 200);
      assert.equal(doc.body.openapi, '3.0.0');
    });

    it('requires the token on every operation the OpenAPI document says is secured, and only there', async () => {
      const doc = (await send(t, 'GET', '/v1/openapi.json')).body;
      const operations = Object.entries(doc.paths as Record<string, Record<string, { security?: unknown[] }>>).flatMap(
        ([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path: path.replace('{name}', 'some-db'), method, op })),
      );
      assert.ok(operations.length >= 4);
      for (const { path, method, op } of operations) {
        const secured = JSON.stringify(op.security) === JSON.stringify([{ bearer: [] }]);
        const res = await send(t, method.toUpperCase(), path, { token: null });
        assert.equal(res.status === 401, secured, `${method} ${path}: ${res.status}`);
      }
    });
  });

  describe('JSON object bodies only', () => {
    it('refuses a form body with 415 and creates nothing', async () => {
      const res = await send(t, 'POST', '/v1/deploy', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'name=formdb',
      });
      assertError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', /application\/json/);
      assert.equal(t.docker.containers.size, 0);
      assert.equal(t.docker.volumes.size, 0);
    });

    for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/json-patch+json']) {
      it(`refuses a ${type} body with 415`, async () => {
        const res = await send(t, 'POST', '/v1/deploy', { headers: { 'content-type': type }, payload: '{}' });
        assertError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
        assert.equal(t.docker.containers.size, 0);
      });
    }

    it('refuses a body without a content type with 415', async () => {
      assertError(await send(t, 'POST', '/v1/deploy', { payload: '{}' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('accepts application/json with a charset', async () => {
      const res = await send(t, 'POST', '/v1/deploy', {
        headers: { 'content-type': 'application/json; charset=utf-8' },
        payload: '{"name":"charset"}',
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    });

    const notObjects: Array<[string, string]> = [
      ['null', 'null'],
      ['an array', '[]'],
      ['an array of an object', '[{"name":"x"}]'],
      ['a string', '"mydb"'],
      ['a number', '42'],
      ['true', 'true'],
    ];
    for (const [what, payload] of notObjects) {
      it(`answers 400 to ${what} as the body and creates nothing`, async () => {
        const res = await send(t, 'POST', '/v1/deploy', { headers: JSON_TYPE, payload });
        assertError(res, 400, 'INVALID_REQUEST', /must be a JSON object/);
        assert.equal(t.docker.containers.size, 0);
      });
    }

    const malformed: Array<[string, string, RegExp]> = [
      ['trailing garbage', '{"name":"x"} garbage', /not valid JSON/],
      ['two objects', '{}{}', /not valid JSON/],
      ['a truncated object', '{"name":', /not valid JSON/],
      ['an empty body', '', /empty/],
      ['whitespace only', '  \n', /empty/],
      ['a __proto__ key', '{"__proto__":{"admin":true}}', /__proto__/],
      ['a constructor.prototype key', '{"constructor":{"prototype":{"admin":true}}}', /__proto__/],
      ['nesting 8,000 deep', '{"name":' + '['.repeat(8000) + ']'.repeat(8000) + '}', /deeper than 8/],
      ['nesting 9 deep', '{"a":' + '{"a":'.repeat(8) + '1' + '}'.repeat(9), /deeper than 8/],
    ];
    for (const [what, payload, message] of malformed) {
      it(`answers 400 to ${what}`, async () => {
        const res = await send(t, 'POST', '/v1/deploy', { headers: JSON_TYPE, payload });
        assertError(res, 400, 'INVALID_REQUEST', message);
        assert.equal(t.docker.containers.size, 0);
      });
    }

    for (const field of ['name', 'size_gb', 'version', 'memory_mb', 'from_volume']) {
      it(`answers 400 to ${field}: null (found by schemathesis: a null name deployed a database)`, async () => {
        const res = await send(t, 'POST', '/v1/deploy', { headers: JSON_TYPE, payload: JSON.stringify({ [field]: null }) });
        assertError(res, 400, 'INVALID_REQUEST');
        assert.equal(t.docker.containers.size, 0);
      });
    }

    it('answers 413 to a body over the limit', async () => {
      const res = await send(t, 'POST', '/v1/deploy', {
        headers: JSON_TYPE,
        payload: JSON.stringify({ name: 'x'.repeat(BODY_LIMIT_BYTES) }),
      });
      assertError(res, 413, 'PAYLOAD_TOO_LARGE', new RegExp(String(BODY_LIMIT_BYTES)));
    });

    it('counts nesting outside strings only', () => {
      assert.equal(nestingExceeds('{"a":"[[[[[[[[[[[[[[[[[[["}', 2), false);
      assert.equal(nestingExceeds('{"a":"\\"[[[[","b":[[[]]]}', 3), true);
      assert.equal(nestingExceeds('{"a":[{"b":[1]}]}', 4), false);
    });
  });

  describe('strict query parameters and no body on DELETE', () => {
    beforeEach(async () => {
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'victim' } })).status, 201);
    });

    async function assertUntouched(): Promise<void> {
      assert.equal(t.docker.containers.size, 1);
      assert.equal(t.docker.volumes.size, 1);
      assert.equal((await t.request('GET', '/v1/status')).body.items[0].name, 'victim');
    }

    for (const query of ['keepdata=true', 'keep_data=true&force=1', 'keep_data=1', 'keep_data=yes', 'keep_data=TRUE', 'keep_data=', 'keep_data=true&keep_data=true']) {
      it(`answers 400 to DELETE ?${query} and deletes nothing`, async () => {
        assertError(await send(t, 'DELETE', `/v1/db/victim?${query}`), 400, 'INVALID_REQUEST');
        await assertUntouched();
      });
    }

    for (const [what, headers] of [
      ['a JSON', JSON_TYPE],
      ['a text', { 'content-type': 'text/plain' }],
      ['an untyped', {}],
    ] as Array<[string, Record<string, string>]>) {
      it(`answers 400 to DELETE with ${what} body {"keep_data":true} and deletes nothing`, async () => {
        const res = await send(t, 'DELETE', '/v1/db/victim', { headers, payload: '{"keep_data":true}' });
        assertError(res, 400, 'INVALID_REQUEST', /take no body/);
        await assertUntouched();
      });
    }

    it('keep_data=false removes the volume; keep_data=true keeps it', async () => {
      assert.equal((await send(t, 'DELETE', '/v1/db/victim?keep_data=false')).status, 200);
      assert.equal(t.docker.volumes.size, 0);
      await t.request('POST', '/v1/deploy', { body: { name: 'kept' } });
      assert.equal((await send(t, 'DELETE', '/v1/db/kept?keep_data=true')).status, 200);
      assert.equal(t.docker.volumes.size, 1);
    });

    for (const query of ['show_secrets=1', 'show_secrets=yes', 'show_secrets=', 'verbose=true', 'show_secrets=true&show_secrets=true']) {
      it(`answers 400 to GET /v1/status?${query}`, async () => {
        assertError(await send(t, 'GET', `/v1/status?${query}`), 400, 'INVALID_REQUEST');
      });
    }

    it('shows secrets only for show_secrets=true', async () => {
      const hidden = await send(t, 'GET', '/v1/status?show_secrets=false');
      assert.equal(hidden.status, 200);
      assert.equal(hidden.body.items[0].password, undefined);
      const shown = await send(t, 'GET', '/v1/status?show_secrets=true');
      assert.equal(typeof shown.body.items[0].password, 'string');
    });
  });

  describe('no caching of secrets', () => {
    it('sends Cache-Control: no-store with deploy and with status showing secrets', async () => {
      const deployed = await send(t, 'POST', '/v1/deploy', { headers: JSON_TYPE, payload: '{"name":"cached"}' });
      assert.equal(deployed.status, 201);
      assert.equal(deployed.headers['cache-control'], 'no-store');
      const status = await send(t, 'GET', '/v1/status?show_secrets=true');
      assert.equal(status.body.items[0].password, deployed.body.password);
      assert.equal(status.headers['cache-control'], 'no-store');
    });
  });

  describe("Fastify's own errors in the one error shape", () => {
    it('answers 400 to a bad percent-encoding', async () => {
      assertError(await send(t, 'DELETE', '/v1/db/%E0%A4%A'), 400, 'INVALID_REQUEST', /percent-encoded/);
    });

    it('answers 414 to a path segment far longer than any name', async () => {
      assertError(await send(t, 'DELETE', `/v1/db/${'a'.repeat(500)}`), 414, 'URI_TOO_LONG');
    });

    it('answers 400, not 414, to a name just over the name limit', async () => {
      assertError(await send(t, 'DELETE', `/v1/db/${'a'.repeat(49)}`), 400, 'INVALID_REQUEST', /1 to 48/);
    });

    it('answers 404 to an unknown route', async () => {
      assertError(await send(t, 'GET', '/v1/nothing'), 404, 'NOT_FOUND');
      assertError(await send(t, 'POST', '/deploy', { headers: JSON_TYPE, payload: '{}' }), 404, 'NOT_FOUND');
    });

    for (const [method, url, allow] of [
      ['GET', '/v1/deploy', 'POST'],
      ['PUT', '/v1/deploy', 'POST'],
      // GET is `pgdb info`, DELETE a destroy.
      ['PATCH', '/v1/db/x', 'DELETE, GET, HEAD'],
      ['GET', '/v1/db/x/stop', 'POST'],
      ['POST', '/v1/status', 'GET, HEAD'],
      ['DELETE', '/v1/status', 'GET, HEAD'],
      ['OPTIONS', '/v1/deploy', 'POST'],
    ]) {
      it(`answers 405 with Allow: ${allow} to ${method} ${url}`, async () => {
        const res = await send(t, method, url);
        assertError(res, 405, 'METHOD_NOT_ALLOWED');
        assert.equal(res.headers.allow, allow);
      });
    }

    it('maps every error code to a status, and each framework status back to its code', () => {
      for (const code of ERROR_CODES) {
        const status = httpStatusFor(code);
        assert.ok(status >= 400 && status <= 599, code);
      }
      for (const code of ['NOT_FOUND', 'METHOD_NOT_ALLOWED', 'REQUEST_TIMEOUT', 'PAYLOAD_TOO_LARGE', 'URI_TOO_LONG', 'UNSUPPORTED_MEDIA_TYPE', 'HEADERS_TOO_LARGE', 'UNAUTHORIZED'] as const) {
        assert.equal(codeForHttpStatus(httpStatusFor(code)), code);
      }
      assert.equal(codeForHttpStatus(400), 'INVALID_REQUEST');
      assert.equal(codeForHttpStatus(418), 'INVALID_REQUEST');
      assert.equal(codeForHttpStatus(502), 'INTERNAL');
    });
  });
});

describe('HTTP server limits (the app listening on a real socket)', () => {
  let t: TestApp;
  let port: number;
  let server: Server;
  const sockets: Socket[] = [];
  beforeEach(async () => {
    t = await createTestApp();
    await t.app.listen(0, '127.0.0.1');
    server = t.app.getHttpServer();
    port = (server.address() as { port: number }).port;
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await t.close();
  });

  /** Opens a raw connection, writes `data`, and resolves with everything the server sends until it closes. */
  function exchange(data: string, { end = false } = {}): { socket: Socket; reply: Promise<string> } {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    let received = '';
    socket.on('data', (chunk) => (received += chunk));
    socket.on('error', () => undefined);
    const reply = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
    socket.write(data);
    if (end) socket.end();
    return { socket, reply };
  }

  function parse(raw: string): { status: number; body: any } {
    const [head, body] = raw.split('\r\n\r\n');
    return { status: Number(head.split(' ')[1]), body: JSON.parse(body) };
  }

  it('sets request, header and keep-alive timeouts and a connection cap', () => {
    assert.equal(server.requestTimeout, HTTP_LIMITS.requestTimeoutMs);
    assert.equal(server.headersTimeout, HTTP_LIMITS.headersTimeoutMs);
    assert.equal(server.keepAliveTimeout, HTTP_LIMITS.keepAliveTimeoutMs);
    assert.equal(server.maxConnections, HTTP_LIMITS.maxConnections);
    assert.ok(HTTP_LIMITS.headersTimeoutMs <= HTTP_LIMITS.requestTimeoutMs);
  });

  it('answers 431 in the error shape to headers over 16 KiB', async () => {
    const { reply } = exchange(`GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const res = parse(await reply);
    assert.equal(res.status, 431);
    assert.equal(res.body.error.code, 'HEADERS_TOO_LARGE');
  });

  it('answers 431 to a URL over 16 KiB', async () => {
    const { reply } = exchange(`GET /v1/status?${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(parse(await reply).body.error.code, 'HEADERS_TOO_LARGE');
  });

  it('answers 400 in the error shape to malformed HTTP', async () => {
    const { reply } = exchange('THIS IS NOT HTTP\r\n\r\n');
    const res = parse(await reply);
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'INVALID_REQUEST');
  });

  it('answers 408 in the error shape to a client that sends its headers too slowly, and closes', async () => {
    server.headersTimeout = 500; // the real limit is HTTP_LIMITS.headersTimeoutMs; the check interval is 1 s
    const started = Date.now();
    const { reply } = exchange('GET /v1/health HTTP/1.1\r\nHost: x\r\n');
    const res = parse(await reply);
    assert.equal(res.status, 408);
    assert.equal(res.body.error.code, 'REQUEST_TIMEOUT');
    assert.ok(Date.now() - started < 5000, `closed after ${Date.now() - started} ms`);
  });

  it('closes connections from an address that holds its cap, while another address is still served', async () => {
    (server as Server & { maxConnectionsPerAddress?: number }).maxConnectionsPerAddress = 2; // the real cap is HTTP_LIMITS.maxConnectionsPerAddress
    const held = [exchange('GET /v1/health HTTP/1.1\r\nHost: x\r\n'), exchange('GET /v1/health HTTP/1.1\r\nHost: x\r\n')];
    await new Promise((resolve) => setTimeout(resolve, 200));
    const third = exchange('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(await third.reply, '', 'a third connection from 127.0.0.1 is closed without an answer');
    // Linux answers on all of 127.0.0.0/8: 127.0.0.2 is another client.
    const other = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    sockets.push(other);
    let answer = '';
    other.on('data', (chunk) => (answer += chunk));
    const closed = new Promise((resolve) => other.on('close', resolve));
    other.write('GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await closed;
    assert.match(answer, /^HTTP\/1\.1 200 /, 'another address is served');
    for (const { socket } of held) assert.ok(!socket.destroyed);
    assert.ok(HTTP_LIMITS.maxConnectionsPerAddress < HTTP_LIMITS.maxConnections);
  });

  it('closes connections beyond the cap', async () => {
    server.maxConnections = 2; // the real cap is HTTP_LIMITS.maxConnections
    const held = [exchange('GET /v1/health HTTP/1.1\r\nHost: x\r\n'), exchange('GET /v1/health HTTP/1.1\r\nHost: x\r\n')];
    await new Promise((resolve) => setTimeout(resolve, 200));
    const third = exchange('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(await third.reply, '', 'the third connection is closed without an answer');
    for (const { socket } of held) assert.ok(!socket.destroyed);
  });
});

describe('HTTPS: a client that never starts its TLS handshake', () => {
  it(`is dropped after ${HTTP_LIMITS.tlsHandshakeTimeoutMs / 1000} s, not Node's 120 s`, async () => {
    const ca = await createCertificateAuthority('pgdb test CA');
    const adapter = createAdapter(createLogger('silent'), await issueServerCertificate(ca, ['127.0.0.1']));
    const fastify = adapter.getInstance();
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = fastify.server.address() as { port: number };
      const started = Date.now();
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise((resolve) => socket.on('close', resolve));
      const ms = Date.now() - started;
      assert.ok(ms >= HTTP_LIMITS.tlsHandshakeTimeoutMs - 200 && ms < HTTP_LIMITS.tlsHandshakeTimeoutMs + 3000, `closed after ${ms} ms`);
    } finally {
      await fastify.close();
    }
  });
});
