/**
 * `GET /v1/status` reuses its lists of containers and volumes while Docker's
 * event stream reports no change to them. What happens outside pgdb must
 * still show at once, without a daemon restart. The lists' age limit is set
 * to 10 minutes here, so only the events can make these tests pass.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const DEADLINE_MS = 60_000;

describe('status after changes made outside pgdb', () => {
  const daemon = new TestDaemon({ portRange: ports.range(10), env: { PGDB_STATUS_CACHE_MS: '600000' } });

  before(async () => {
    requireDockerAndImages([17]);
    await daemon.start();
  });
  after(async () => daemon.destroyAll());

  async function status(): Promise<any> {
    const res = await daemon.api('GET', '/v1/status');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  /** Status until `seen` holds of it; fails with the last answer after DEADLINE_MS. */
  async function statusUntil(seen: (body: any) => boolean, what: string): Promise<any> {
    return eventually(`status to show ${what}`, DEADLINE_MS, async () => {
      const body = await status();
      if (seen(body)) return body;
      throw new Error(`last answer: ${JSON.stringify(body)}`);
    }, 100);
  }

  const stateOf = (body: any, name: string) => body.items.find((i: { name: string }) => i.name === name)?.state;

  /** Status once the daemon follows the engine's events, so that its next lists are kept. */
  async function followingEvents(): Promise<void> {
    await status();
    await eventually("the daemon to follow the engine's events", DEADLINE_MS, async () => {
      if (/following the engine's events/.test(daemon.logs())) return true;
      throw new Error(`its log:\n${daemon.logs()}`);
    }, 50);
    await status();
  }

  it('shows a container removed with docker rm -f as missing, without a restart', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'removed-by-hand' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    await followingEvents();
    const before = (await status()).items.find((i: { name: string }) => i.name === 'removed-by-hand');
    assert.equal(before.state, 'running');
    docker('rm', '-f', before.container_id);
    await statusUntil((body) => stateOf(body, 'removed-by-hand') === 'missing', 'removed-by-hand as missing');
  });

  it('shows docker stop and docker start of a container', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'stopped-by-hand' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    await followingEvents();
    const item = (await status()).items.find((i: { name: string }) => i.name === 'stopped-by-hand');
    assert.equal(item.state, 'running');
    docker('stop', '-t', '5', item.container_id);
    await statusUntil((body) => stateOf(body, 'stopped-by-hand') === 'stopped', 'stopped-by-hand as stopped');
    docker('start', item.container_id);
    await statusUntil((body) => stateOf(body, 'stopped-by-hand') === 'running', 'stopped-by-hand running again');
  });

  it("lists a volume made by hand with this daemon's labels as detached, and drops it once removed", async () => {
    await followingEvents();
    const instance = daemon.instanceId();
    const volume = `pgdb-by-hand-${instance}`;
    assert.equal((await status()).detached_volumes.some((v: { volume_name: string }) => v.volume_name === volume), false);
    docker('volume', 'create', '--label', 'pgdb.managed=true', '--label', `pgdb.instance=${instance}`, '--label', 'pgdb.name=by-hand', volume);
    await statusUntil((body) => body.detached_volumes.some((v: { volume_name: string }) => v.volume_name === volume), `${volume} as detached`);
    docker('volume', 'rm', volume);
    await statusUntil((body) => !body.detached_volumes.some((v: { volume_name: string }) => v.volume_name === volume), `${volume} gone`);
  });
});
