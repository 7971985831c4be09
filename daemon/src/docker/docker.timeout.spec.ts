/**
 * The real Docker gateway (dockerode) against an "engine" that accepts
 * connections and never answers: every call ends within its limit with
 * DOCKER_UNAVAILABLE, and the hung connections are closed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { DockerodeGateway, PING_TIMEOUT_MS } from './dockerode.gateway.js';

/** A unix socket that accepts every connection, reads what it is sent and never says a word. */
class SilentEngine {
  readonly path = join(mkdtempSync(join(tmpdir(), 'pgdb-silent-')), 'docker.sock');
  readonly open = new Set<Socket>();
  accepted = 0;
  private server: Server | undefined;

  async start(): Promise<void> {
    this.server = createServer((socket) => {
      this.accepted++;
      this.open.add(socket);
      socket.on('close', () => this.open.delete(socket));
      socket.on('error', () => undefined);
      socket.resume();
    });
    await new Promise<void>((resolve) => this.server!.listen(this.path, resolve));
  }

  async stop(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

function gateway(socket: string, timeoutMs?: number): DockerodeGateway {
  const config = loadConfig({
    PGDB_TOKEN: 'test-token-0123456789abcdef',
    PGDB_DOCKER_SOCKET: socket,
    ...(timeoutMs ? { PGDB_DOCKER_TIMEOUT_MS: String(timeoutMs) } : {}),
  });
  return new DockerodeGateway(config, createLogger('silent'));
}

async function failure(operation: Promise<unknown>): Promise<{ error: DomainError; ms: number }> {
  const started = Date.now();
  try {
    await operation;
  } catch (error) {
    assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
    return { error, ms: Date.now() - started };
  }
  assert.fail('expected the call to fail');
}

describe('Docker gateway against an engine that never answers', () => {
  const engine = new SilentEngine();
  before(() => engine.start());
  after(() => engine.stop());

  it(`gives up pinging after ${PING_TIMEOUT_MS / 1000} s even with the default call limit, so health can answer within 5 s`, async () => {
    const { error, ms } = await failure(gateway(engine.path).ping());
    assert.equal(error.code, 'DOCKER_UNAVAILABLE');
    assert.match(error.message, /did not answer within 3 s/);
    assert.ok(ms >= PING_TIMEOUT_MS - 50 && ms < 4500, `ping failed after ${ms} ms`);
  });

  it('fails every other call after PGDB_DOCKER_TIMEOUT_MS with a clear message', async () => {
    const docker = gateway(engine.path, 1000);
    const calls: Array<[string, Promise<unknown>]> = [
      ['ensureImage', docker.ensureImage('postgres:17')],
      ['createVolume', docker.createVolume('v', {})],
      ['containerStatus', docker.containerStatus('c')],
      ['listContainers', docker.listContainers({ 'pgdb.managed': 'true' })],
      ['listVolumes', docker.listVolumes({ 'pgdb.managed': 'true' })],
      ['removeContainer', docker.removeContainer('c')],
      ['removeVolume', docker.removeVolume('v')],
      ['volumeUsage', docker.volumeUsage()],
    ];
    for (const [name, call] of calls) {
      const { error, ms } = await failure(call);
      assert.equal(error.code, 'DOCKER_UNAVAILABLE', name);
      assert.match(error.message, /did not answer within 1 s/, name);
      assert.ok(ms < 2500, `${name} failed after ${ms} ms`);
    }
  });

  it('closes the connection of a call it gave up on', async () => {
    const docker = gateway(engine.path, 1000);
    const before = engine.accepted;
    await failure(docker.listContainers({}));
    assert.equal(engine.accepted, before + 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(engine.open.size, 0, 'the hung connection was closed');
  });

  it('still says "unreachable" at once when nothing listens on the socket', async () => {
    const { error, ms } = await failure(gateway('/nonexistent/docker.sock', 5000).ping());
    assert.equal(error.code, 'DOCKER_UNAVAILABLE');
    assert.match(error.message, /unreachable .*ENOENT/);
    assert.ok(ms < 1000);
  });
});
