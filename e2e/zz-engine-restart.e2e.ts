/**
 * A restart of the machine's Docker engine (as after an upgrade of docker.io
 * or a reboot): every database comes back on its port with its data, and
 * pgdbd, which kept running, reports the engine again.
 *
 * Named to run last: it stops the engine every other test uses. It starts it
 * again the way the test suite started it (scripts/setup-docker.sh).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { query, requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';

async function until<T>(what: string, attempt: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(error as Error).message}`);
      await sleep(500);
    }
  }
}

describe('a Docker engine restart', () => {
  let daemon: TestDaemon;

  before(async () => {
    requireDockerAndImages([15, 17]);
    daemon = await new TestDaemon({ portRange: '24800-24849' }).start();
  });
  after(async () => daemon?.destroyAll());

  it('brings every database back on its port, with its data', async () => {
    const databases = [];
    for (const [name, version] of [['engine-a', 17], ['engine-b', 15]] as const) {
      const res = await daemon.api('POST', '/v1/deploy', { name, version });
      assert.equal(res.status, 201);
      await query(res.body.database_url, `CREATE TABLE t AS SELECT '${name}'::text AS who`);
      databases.push(res.body);
    }

    // Stop the engine as a service manager would (SIGTERM), wait until it is gone.
    spawnSync('pkill', ['-TERM', '-x', 'dockerd']);
    await until('dockerd to stop', async () => {
      if (spawnSync('pgrep', ['-x', 'dockerd']).status === 0) throw new Error('still running');
    });
    const down = await daemon.api('GET', '/v1/health');
    assert.equal(down.status, 503);
    assert.equal(down.body.docker, 'unreachable');

    // The engine outlives this test run: it must not inherit the run's
    // environment (test.sh points TMPDIR at a directory it deletes at the end,
    // and runc keeps its exec state there: every later `docker exec` would fail).
    const { TMPDIR: _runTmp, ...env } = process.env;
    void _runTmp;
    execFileSync('bash', [join(ROOT, 'scripts/setup-docker.sh')], { stdio: 'ignore', env });
    await until('pgdbd to see the engine again', async () => {
      const health = await daemon.api('GET', '/v1/health', undefined, null);
      if (health.status !== 200) throw new Error(JSON.stringify(health.body));
    });
    for (const db of databases) {
      const rows = await until(`${db.name} to accept connections`, () => query(db.database_url, 'SELECT who FROM t'));
      assert.deepEqual(rows, [{ who: db.name }]);
    }
    const items = (await daemon.api('GET', '/v1/status')).body.items;
    for (const db of databases) {
      const item = items.find((i: { name: string }) => i.name === db.name);
      assert.equal(item.host_port, db.port, 'same port');
      assert.equal(item.state, 'running');
    }
  });
});
