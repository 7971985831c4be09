/**
 * Cached lists for status: the cache itself, and the real Docker gateway
 * (dockerode) against a small engine on a unix socket that serves lists and
 * an event stream, so that what invalidates a kept list is proven end to end.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { DockerodeGateway } from './dockerode.gateway.js';
import { ListCache } from './list-cache.js';

const MINE = { 'pgdb.managed': 'true', 'pgdb.instance': 'aaaaaa' };

describe('ListCache', () => {
  function cache(maxAgeMs = 1000) {
    let clock = 0;
    let calls = 0;
    const lists = new ListCache(maxAgeMs, () => clock);
    const list = async () => [++calls];
    return { lists, list, tick: (ms: number) => (clock += ms), calls: () => calls };
  }

  it('keeps nothing while the event stream is not live', async () => {
    const { lists, list, calls } = cache();
    await lists.get('containers', MINE, list);
    await lists.get('containers', MINE, list);
    assert.equal(calls(), 2);
  });

  it('keeps a list while live, for at most maxAgeMs', async () => {
    const { lists, list, calls, tick } = cache(1000);
    lists.setLive(true);
    assert.deepEqual(await lists.get('containers', MINE, list), [1]);
    tick(1000);
    assert.deepEqual(await lists.get('containers', MINE, list), [1]);
    tick(1);
    assert.deepEqual(await lists.get('containers', MINE, list), [2]);
    assert.equal(calls(), 2);
  });

  it('does not keep a list that was in flight when a change was seen', async () => {
    const { lists, calls } = cache();
    lists.setLive(true);
    let count = 0;
    const slow = async () => {
      count++;
      await sleep(20);
      return [count];
    };
    const inFlight = lists.get('containers', MINE, slow);
    lists.changed();
    await inFlight;
    await lists.get('containers', MINE, slow);
    assert.equal(count, 2, 'listed again');
    assert.equal(calls(), 0);
  });

  it('drops lists on a change to a container carrying their labels, not on another instance\'s', async () => {
    const { lists, list, calls } = cache();
    lists.setLive(true);
    await lists.get('containers', MINE, list);
    lists.containerChanged({ 'pgdb.managed': 'true', 'pgdb.instance': 'bbbbbb', name: 'x' });
    await lists.get('containers', MINE, list);
    assert.equal(calls(), 1);
    lists.containerChanged({ ...MINE, 'pgdb.name': 'db', name: 'pgdb-db-1' });
    await lists.get('containers', MINE, list);
    assert.equal(calls(), 2);
  });

  it('drops everything when the stream stops being live, and keeps nothing with maxAgeMs 0', async () => {
    const { lists, list, calls } = cache();
    lists.setLive(true);
    await lists.get('volumes', MINE, list);
    lists.setLive(false);
    await lists.get('volumes', MINE, list);
    assert.equal(calls(), 2);
    const off = cache(0);
    off.lists.setLive(true);
    await off.lists.get('volumes', MINE, off.list);
    await off.lists.get('volumes', MINE, off.list);
    assert.equal(off.calls(), 2);
  });
});

/** Serves /containers/json, /volumes, DELETE /containers/:id and a held-open /events stream; counts the lists. */
class ListingEngine {
  readonly path = join(mkdtempSync(join(tmpdir(), 'pgdb-events-')), 'docker.sock');
  containerLists = 0;
  volumeLists = 0;
  containers = [{ Id: 'c1', Names: ['/pgdb-db-1'], Labels: { ...MINE, 'pgdb.name': 'db' }, State: 'running', Status: 'Up 1 minute (healthy)' }];
  events: ServerResponse | undefined;
  private server: Server | undefined;

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://engine');
      if (url.pathname.endsWith('/events')) {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.flushHeaders();
        this.events = response;
        return;
      }
      if (request.method === 'GET' && url.pathname.endsWith('/containers/json')) {
        this.containerLists++;
        return json(response, this.containers);
      }
      if (request.method === 'GET' && url.pathname.endsWith('/volumes')) {
        this.volumeLists++;
        return json(response, { Volumes: [{ Name: 'pgdb-db-1', Labels: MINE, CreatedAt: '2026-01-01T00:00:00Z' }] });
      }
      if (request.method === 'DELETE' && /\/containers\/[^/]+$/.test(url.pathname)) {
        this.containers = [];
        response.writeHead(204).end();
        return;
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => this.server!.listen(this.path, resolve));
  }

  send(event: object): void {
    this.events!.write(`${JSON.stringify(event)}\n`);
  }

  async stop(): Promise<void> {
    this.events?.destroy();
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

function json(response: ServerResponse, body: unknown): void {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

describe('Docker gateway: cached lists for status', () => {
  const engine = new ListingEngine();
  let docker: DockerodeGateway;
  before(async () => {
    await engine.start();
    const config = loadConfig({ PGDB_TOKEN: 'test-token-0123456789abcdef', PGDB_DOCKER_SOCKET: engine.path });
    docker = new DockerodeGateway(config, createLogger('silent'));
  });
  after(async () => {
    docker.onApplicationShutdown();
    await engine.stop();
  });

  /** Lets the gateway read what the engine wrote. */
  const settle = () => sleep(50);

  it('asks the engine until its event stream is open, then answers from the kept list', async () => {
    await docker.listContainers(MINE, { cached: true });
    for (let i = 0; i < 100 && !engine.events; i++) await settle();
    assert.ok(engine.events, 'the gateway opened the event stream');
    await settle();
    const before = engine.containerLists;
    const first = await docker.listContainers(MINE, { cached: true });
    const second = await docker.listContainers(MINE, { cached: true });
    assert.deepEqual(second, first);
    assert.equal(engine.containerLists, before + 1, 'the second list came from the cache');
    await docker.listContainers(MINE);
    assert.equal(engine.containerLists, before + 2, 'an uncached list always asks the engine');
  });

  it('lists again after an event about one of its containers, not after exec or another instance\'s events', async () => {
    await docker.listContainers(MINE, { cached: true });
    const before = engine.containerLists;
    engine.send({ Type: 'container', Action: 'exec_start: pg_isready', Actor: { ID: 'c1', Attributes: { ...MINE, name: 'pgdb-db-1' } } });
    engine.send({ Type: 'container', Action: 'destroy', Actor: { ID: 'c9', Attributes: { 'pgdb.managed': 'true', 'pgdb.instance': 'bbbbbb' } } });
    await settle();
    await docker.listContainers(MINE, { cached: true });
    assert.equal(engine.containerLists, before, 'still the kept list');
    engine.send({ Type: 'container', Action: 'die', Actor: { ID: 'c1', Attributes: { ...MINE, name: 'pgdb-db-1' } } });
    await settle();
    await docker.listContainers(MINE, { cached: true });
    assert.equal(engine.containerLists, before + 1, 'listed again after the die event');
  });

  it('lists volumes again after any volume is created or removed', async () => {
    await docker.listVolumes(MINE, { cached: true });
    const before = engine.volumeLists;
    await docker.listVolumes(MINE, { cached: true });
    assert.equal(engine.volumeLists, before);
    engine.send({ Type: 'volume', Action: 'destroy', Actor: { ID: 'pgdb-db-1', Attributes: { driver: 'local' } } });
    await settle();
    await docker.listVolumes(MINE, { cached: true });
    assert.equal(engine.volumeLists, before + 1);
  });

  it('lists again right after a change it made itself, before any event', async () => {
    await docker.listContainers(MINE, { cached: true });
    await docker.removeContainer('c1');
    assert.deepEqual(await docker.listContainers(MINE, { cached: true }), []);
  });

  it('asks the engine every time once the event stream has ended', async () => {
    await docker.listContainers(MINE, { cached: true });
    engine.events!.end();
    engine.events = undefined;
    await settle();
    const before = engine.containerLists;
    await docker.listContainers(MINE, { cached: true });
    await docker.listContainers(MINE, { cached: true });
    assert.equal(engine.containerLists, before + 2);
  });
});
