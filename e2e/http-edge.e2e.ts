/**
 * The HTTP edge of the real daemon (issue 9 §3) on the real Docker engine:
 * what a client cannot do with a malformed or unauthenticated request, and
 * how the daemon behaves when the engine accepts connections but never
 * answers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerSocketProxy } from './support/docker-proxy.js';
import { dockerObjectExists, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);
const PORT_RANGE_1 = ports.range(10);

/** A request with any headers and body over a real socket; resolves with status and parsed JSON. */
function send(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
  // Node's client frames no body on a DELETE unless told its length.
  const framing = body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) };
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, ...framing } }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : undefined }));
    });
    // The daemon may answer (401, 413) and close before it has read all of a large body.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    req.end(body);
  });
}

describe('pgdbd HTTP edge against a real Docker engine', () => {
  const daemon = new TestDaemon({ portRange: ports.range(20) });
  const auth = () => ({ authorization: `Bearer ${daemon.token}` });

  before(async () => {
    requireDockerAndImages([17]);
    await daemon.start();
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('answers 401 to an unauthenticated 1 MiB body without reading it as JSON', async () => {
    const res = await send(`${daemon.url}/v1/deploy`, 'POST', { 'content-type': 'application/json' }, Buffer.alloc(1024 * 1024, '['));
    assert.equal(res.status, 401);
    assert.equal(res.body.error.code, 'UNAUTHORIZED');
  });

  it('refuses a form body with 415 and creates no database', async () => {
    const res = await send(`${daemon.url}/v1/deploy`, 'POST', { ...auth(), 'content-type': 'application/x-www-form-urlencoded' }, 'name=formdb');
    assert.equal(res.status, 415);
    assert.equal(res.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    assert.deepEqual((await daemon.api('GET', '/v1/status')).body.items, []);
  });

  it('answers 400 to a null body and to a deeply nested one, and keeps serving', async () => {
    for (const body of ['null', '[]', '{"name":' + '['.repeat(8000) + ']'.repeat(8000) + '}', '{} trailing']) {
      const res = await send(`${daemon.url}/v1/deploy`, 'POST', { ...auth(), 'content-type': 'application/json' }, body);
      assert.equal(res.status, 400, body.slice(0, 20));
      assert.equal(res.body.error.code, 'INVALID_REQUEST');
    }
    assert.equal((await daemon.api('GET', '/v1/health', undefined, null)).status, 200);
  });

  it('serves its OpenAPI document without a token', async () => {
    const res = await daemon.api('GET', '/v1/openapi.json', undefined, null);
    assert.equal(res.status, 200);
    assert.equal(res.body.openapi, '3.0.0');
    assert.ok(res.body.paths['/v1/deploy'].post);
  });

  it('does not delete anything for ?keepdata=true or a {"keep_data":true} body, and deletes for keep_data=false', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'edge-strict' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const misspelt = await send(`${daemon.url}/v1/db/edge-strict?keepdata=true`, 'DELETE', auth());
    assert.equal(misspelt.status, 400);
    const withBody = await send(`${daemon.url}/v1/db/edge-strict`, 'DELETE', { ...auth(), 'content-type': 'application/json' }, '{"keep_data":true}');
    assert.equal(withBody.status, 400);
    assert.match(withBody.body.error.message, /take no body/);
    const { body } = await daemon.api('GET', '/v1/status');
    const item = body.items.find((i: { name: string }) => i.name === 'edge-strict');
    assert.equal(item?.state, 'running', 'the database is still there');
    assert.ok(dockerObjectExists('container', item.container_id));
    const volume = item.volume_name;
    const removed = await send(`${daemon.url}/v1/db/edge-strict?keep_data=false`, 'DELETE', auth());
    assert.equal(removed.status, 200);
    assert.equal(dockerObjectExists('volume', volume), false);
  });

  it('sends Cache-Control: no-store with credentials', async () => {
    const res = await send(`${daemon.url}/v1/status?show_secrets=true`, 'GET', auth());
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
  });
});

describe('pgdbd when the Docker engine accepts connections but never answers', () => {
  const proxy = new DockerSocketProxy(join(mkdtempSync(join(tmpdir(), 'pgdb-sock-')), 'docker.sock'));
  const daemon = new TestDaemon({
    portRange: PORT_RANGE_1,
    env: { PGDB_DOCKER_SOCKET: proxy.path, PGDB_DOCKER_TIMEOUT_MS: '4000' },
  });

  before(async () => {
    requireDockerAndImages([17]);
    await proxy.up();
    await daemon.start();
  });
  after(async () => {
    await proxy.up();
    await daemon.destroyAll();
    await proxy.down();
  });

  it('works through the relay while the engine answers', async () => {
    assert.equal((await daemon.api('GET', '/v1/health', undefined, null)).status, 200);
    const res = await daemon.api('POST', '/v1/deploy', { name: 'before-hang' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  });

  it('answers health with 503 within 5 s', async () => {
    await proxy.hang();
    const started = Date.now();
    const res = await daemon.api('GET', '/v1/health');
    const elapsed = Date.now() - started;
    assert.equal(res.status, 503);
    assert.equal(res.body.docker, 'unreachable');
    assert.ok(elapsed < 5000, `health took ${elapsed} ms`);
  });

  it('fails a deploy with DOCKER_UNAVAILABLE "did not answer within 4 s", in bounded time', async () => {
    const started = Date.now();
    const res = await daemon.api('POST', '/v1/deploy', { name: 'during-hang' });
    const elapsed = Date.now() - started;
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'DOCKER_UNAVAILABLE');
    assert.match(res.body.error.message, /did not answer within 4 s/);
    assert.ok(elapsed < 15_000, `deploy took ${elapsed} ms`);
  });

  it('fails status the same way, and leaves no connection hanging', async () => {
    const res = await daemon.api('GET', '/v1/status');
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'DOCKER_UNAVAILABLE');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(proxy.openConnections, 0, 'the daemon closed the connections it gave up on');
  });

  it('recovers when the engine answers again', async () => {
    await proxy.up();
    assert.equal((await daemon.api('GET', '/v1/health', undefined, null)).status, 200);
    const { body } = await daemon.api('GET', '/v1/status');
    const item = body.items.find((i: { name: string }) => i.name === 'before-hang');
    assert.equal(item?.state, 'running', JSON.stringify(body));
    assert.equal((await daemon.api('POST', '/v1/deploy', { name: 'after-hang' })).status, 201);
  });
});

describe('pgdbd on a public address: 600 idle connections from one address that never start TLS', () => {
  const daemon = new TestDaemon({ portRange: PORT_RANGE_1, public: true });
  const idle: Socket[] = [];

  before(async () => {
    requireDockerAndImages([17]);
    await daemon.start();
  });
  after(async () => {
    for (const socket of idle) socket.destroy();
    await daemon.destroyAll();
  });

  /** GET /v1/health over HTTPS, verified against the daemon's CA, from another loopback address. */
  function healthFrom(localAddress: string): Promise<number> {
    const url = new URL(daemon.url);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: url.port, path: '/v1/health', ca: daemon.caCertificate(), localAddress, agent: false, timeout: 5000 },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
      req.on('error', reject);
      req.end();
    });
  }

  it('does not lock another client out, and drops the idle ones within a few seconds', async () => {
    const port = Number(new URL(daemon.url).port);
    let closed = 0;
    for (let i = 0; i < 600; i++) {
      const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
      socket.on('error', () => undefined);
      socket.on('close', () => closed++);
      idle.push(socket);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // Linux answers on all of 127.0.0.0/8: 127.0.0.2 is another client.
    const started = Date.now();
    assert.equal(await healthFrom('127.0.0.2'), 200);
    assert.ok(Date.now() - started < 3000, `another client waited ${Date.now() - started} ms`);
    assert.ok(closed >= 600 - 64, `connections beyond 64 from one address are closed at once (${closed} of 600)`);
    // The handshake limit (5 s) ends the rest.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    assert.equal(closed, 600, 'every idle connection was closed');
    assert.equal(await healthFrom('127.0.0.1'), 200, 'the first address is served again');
  });
});
