import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HcloudApi } from './hcloud-api.js';

/** A tiny Hetzner API: one server whose shutdown takes `offAfter` status reads, actions that run once, then succeed. */
class TinyApi {
  status = 'running';
  offAfter = 0;
  failPowerOn = false;
  readonly calls: string[] = [];
  private server?: Server;

  async start(): Promise<string> {
    this.server = createServer((request, response) => {
      this.calls.push(`${request.method} ${request.url}`);
      const send = (code: number, body: unknown) => {
        response.writeHead(code, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (request.headers.authorization !== 'Bearer t0ken') return send(401, { error: { code: 'unauthorized', message: 'unable to authenticate' } });
      if (request.url === '/v1/servers/7' && request.method === 'GET') {
        if (this.status === 'stopping' && --this.offAfter <= 0) this.status = 'off';
        return send(200, { server: { id: 7, status: this.status } });
      }
      if (request.url === '/v1/servers/7/actions/shutdown') {
        this.status = 'stopping';
        return send(201, { action: { id: 1, status: 'running' } });
      }
      if (request.url === '/v1/servers/7/actions/poweron') {
        if (this.failPowerOn) return send(423, { error: { code: 'locked', message: 'server is locked' } });
        this.status = 'running';
        return send(201, { action: { id: 2, status: 'running' } });
      }
      const action = /^\/v1\/actions\/(\d+)$/.exec(request.url ?? '');
      if (action) return send(200, { action: { id: Number(action[1]), status: 'success' } });
      return send(404, { error: { code: 'not_found', message: 'not found' } });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/v1`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server!.close(() => resolve()));
  }
}

describe('infra Hetzner API calls (a resize)', () => {
  const fake = new TinyApi();
  let api: HcloudApi;

  before(async () => {
    api = new HcloudApi('t0ken', await fake.start(), 5);
  });
  after(() => fake.stop());

  it('shuts a running server down and waits until it is off', async () => {
    fake.offAfter = 3;
    assert.equal(await api.shutdown(7, 5_000), true);
    assert.equal(fake.status, 'off');
    assert.deepEqual(fake.calls.filter((call) => call.startsWith('POST')), ['POST /v1/servers/7/actions/shutdown']);
  });

  it('says so when the server is not off in time, so that the provider cuts the power', async () => {
    fake.status = 'running';
    fake.offAfter = 1_000_000;
    assert.equal(await api.shutdown(7, 50), false);
  });

  it('powers a stopped server on, and leaves a running one alone', async () => {
    fake.status = 'off';
    fake.calls.length = 0;
    await api.powerOn(7, 5_000);
    assert.equal(fake.status, 'running');
    await api.powerOn(7, 5_000);
    assert.deepEqual(fake.calls.filter((call) => call.startsWith('POST')), ['POST /v1/servers/7/actions/poweron']);
  });

  it('turns a refusal into one line with the API code, and an unreachable API into another', async () => {
    fake.status = 'off';
    fake.failPowerOn = true;
    await assert.rejects(api.powerOn(7, 5_000), { name: 'InfraError', message: 'Hetzner Cloud refused POST /servers/7/actions/poweron: server is locked (locked)' });
    await assert.rejects(new HcloudApi('wrong', 'http://127.0.0.1:1/v1').status(7), { name: 'InfraError', message: /^cannot reach the Hetzner Cloud API: / });
  });
});
