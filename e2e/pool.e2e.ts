/**
 * The warm pool against the real daemon, Docker and Postgres: concurrent
 * deploys beyond the pool, a restart while it fills, and destroying a
 * database that came from it.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { docker, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

async function poolReady(daemon: TestDaemon, ready: number, timeoutMs = 120_000): Promise<void> {
  await eventually(`a pool of ${ready} ready`, timeoutMs, async () => {
    const [summary] = (await daemon.api('GET', '/v1/status')).body.pool;
    if (summary?.ready === ready && summary.filling === 0) return true;
    throw new Error(`pool: ${JSON.stringify(summary)}`);
  }, 200);
}

/** The daemon's log lines that match, once `count` of them are there: its log is written asynchronously. */
async function logLines(daemon: TestDaemon, match: (line: string) => boolean, count: number): Promise<string[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = daemon.logs().split('\n').filter(match);
    if (lines.length >= count || Date.now() > deadline) return lines;
    await sleep(50);
  }
}

function objects(instance: string): { containers: string[]; volumes: string[] } {
  const filter = `label=pgdb.instance=${instance}`;
  return {
    containers: docker('ps', '-aq', '--filter', filter).split('\n').filter(Boolean),
    volumes: docker('volume', 'ls', '-q', '--filter', filter).split('\n').filter(Boolean),
  };
}

describe('warm pool', () => {
  let daemon: TestDaemon;

  before(async () => {
    requireDockerAndImages([17]);
    // Twenty initdb runs at once on two cores can take more than the default minute.
    daemon = await new TestDaemon({ portRange: ports.range(100), env: { PGDB_POOL: '17:2', PGDB_READY_TIMEOUT_MS: '240000' } }).start();
    await poolReady(daemon, 2);
  });
  after(async () => daemon?.destroyAll());

  it('answers 20 concurrent deploys with a pool of 2: 2 warm, 18 cold, no failure, 20 ports, every URL connects', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => daemon.api('POST', '/v1/deploy', { name: `burst-${i}` })),
    );
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(201), JSON.stringify(results.find((r) => r.status !== 201)?.body));
    const ports = results.map((r) => `${r.body.name}:${r.body.port}`);
    assert.equal(new Set(results.map((r) => r.body.port)).size, 20, `ports: ${ports.join(' ')}\n${daemon.logs().split('\n').filter((l) => /port|standby/.test(l)).join('\n')}`);
    const ready = await logLines(daemon, (line) => line.includes('"database ready"') && line.includes('burst-'), 20);
    assert.equal(ready.filter((line) => line.includes('"pool":true')).length, 2, 'two came from the pool');
    assert.equal(ready.length, 20);
    await Promise.all(results.map(async (r) => assert.deepEqual(await query(r.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }])));
    const [{ rolsuper }] = await query(results[0].body.database_url, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
    assert.equal(rolsuper, false);
  });

  it('removes a claimed database completely on destroy, as a cold one', async () => {
    await poolReady(daemon, 2);
    const res = await daemon.api('POST', '/v1/deploy', { name: 'from-pool' });
    assert.equal(res.status, 201);
    const [line] = await logLines(daemon, (l) => l.includes('"database ready"') && l.includes('"from-pool"'), 1);
    assert.match(line ?? '', /"pool":true/);
    const item = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'from-pool');
    assert.match(docker('inspect', '--format', '{{.Name}}', item.container_id), /^\/pgdb-from-pool-/);
    assert.equal((await daemon.api('DELETE', '/v1/db/from-pool')).status, 200);
    assert.equal(docker('ps', '-aq', '--filter', `id=${item.container_id}`), '');
    assert.equal(docker('volume', 'ls', '-q', '--filter', `name=^${item.volume_name}$`), '');
  });

  it('lists the volume a claimed database kept (destroy --keep-data) under its name, and a deploy takes it back', async () => {
    await poolReady(daemon, 2);
    const res = await daemon.api('POST', '/v1/deploy', { name: 'kept-warm' });
    assert.equal(res.status, 201);
    await query(res.body.database_url, "CREATE TABLE t AS SELECT 'kept' AS v");
    const volume = daemon.record('kept-warm').volume_name;
    assert.match(volume, /^pgdb-pool-/, 'a standby volume, which carries no name label');
    assert.equal((await daemon.api('DELETE', '/v1/db/kept-warm?keep_data=true')).status, 200);
    const kept = (await daemon.api('GET', '/v1/status')).body.detached_volumes;
    assert.deepEqual(kept.filter((v: { volume_name: string }) => v.volume_name === volume).map((v: { name: string }) => v.name), ['kept-warm']);
    const back = await daemon.api('POST', '/v1/deploy', { name: 'kept-again', from_volume: volume });
    assert.equal(back.status, 201, JSON.stringify(back.body));
    assert.deepEqual(await query(back.body.database_url, 'SELECT v FROM t'), [{ v: 'kept' }]);
    assert.equal((await daemon.api('DELETE', '/v1/db/kept-again')).status, 200);
  });

  it('leaves nothing behind after a restart while the pool fills, and refills', async () => {
    await poolReady(daemon, 2);
    // Two claims empty the pool; the daemon dies while it refills.
    for (const name of ['drain-1', 'drain-2']) assert.equal((await daemon.api('POST', '/v1/deploy', { name })).status, 201);
    await sleep(300);
    await daemon.stop('SIGKILL');
    await daemon.start();
    await poolReady(daemon, 2);
    const status = (await daemon.api('GET', '/v1/status')).body;
    const { containers, volumes } = objects(daemon.instanceId());
    // Every container and volume is a database's or one of the two standbys.
    assert.equal(containers.length, status.items.length + 2);
    assert.equal(volumes.length, status.items.length + 2);
    assert.deepEqual(status.unknown_containers, []);
  });
});
