import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { FakeDocker } from '../testing/fake-docker.js';
import { createTestApp, type TestApp } from '../testing/test-app.js';
import { RegistryService } from '../registry/registry.service.js';
import { PoolService } from './pool.service.js';
import { HBA_PATH, pgHba } from '../postgres/postgres-container.js';

async function poolReady(t: TestApp, ready: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const [summary] = (await t.request('GET', '/v1/status')).body.pool;
    if (summary?.ready === ready && summary.filling === 0) return;
    if (Date.now() > deadline) assert.fail(`pool not ready: ${JSON.stringify(summary)}`);
    await sleep(10);
  }
}

describe('warm pool', () => {
  it('fills to its target, and a deploy claims a standby: same response shape, tenant role made by the admin, container renamed', async () => {
    const t = await createTestApp({ env: { PGDB_POOL: '17:2' } });
    try {
      await poolReady(t, 2);
      const standbys = [...t.docker.containers.values()].filter((c) => c.spec.labels['pgdb.pool']);
      assert.equal(standbys.length, 2);
      assert.deepEqual((await t.request('GET', '/v1/status')).body.detached_volumes, [], "standbys' volumes are not detached data");
      assert.ok(standbys.every((c) => c.spec.labels['pgdb.name'] === undefined), 'standbys belong to no database yet');
      // A standby's admin only got its real password (it starts with a derived one: see initialPassword).
      assert.ok(t.probe.executed.every((e) => /^ALTER ROLE pgdb_admin PASSWORD /.test(e.statements.join(';'))), 'no tenant role exists in a standby');
      const filled = t.probe.executed.length;

      const res = await t.request('POST', '/v1/deploy', { body: { name: 'quick' } });
      assert.equal(res.status, 201);
      assert.deepEqual(Object.keys(res.body).sort(), ['created_at', 'database_url', 'db', 'host', 'memory_mb', 'name', 'password', 'port', 'postgres_version', 'user']);
      const claimed = standbys.find((c) => c.spec.hostPort === res.body.port);
      assert.ok(claimed, 'the database runs in a standby');
      assert.equal(t.docker.containers.get(claimed.id)!.spec.containerName, `pgdb-quick-${claimed.spec.volumeName.replace('pgdb-pool-', '')}`);
      const setup = t.probe.executed[filled];
      assert.equal(setup.target.user, 'pgdb_admin');
      assert.match(setup.statements[0], new RegExp(`^CREATE ROLE "${res.body.user}" LOGIN`));
      assert.ok(t.probe.probed.some((p) => p.user === res.body.user && p.password === res.body.password), 'the returned credentials were proven');
      // The pool refills behind the claim.
      await poolReady(t, 2);
      const item = (await t.request('GET', '/v1/status')).body.items[0];
      assert.equal(item.container_id, claimed.id);
      assert.equal(item.state, 'running');
      // Destroying it removes everything, as for a cold one.
      assert.equal((await t.request('DELETE', '/v1/db/quick')).status, 200);
      assert.equal(t.docker.containers.has(claimed.id), false);
      assert.equal(t.docker.volumes.has(claimed.spec.volumeName), false);
    } finally {
      await t.close();
    }
  });

  it('a kept volume shows the database it belonged to, claimed from the pool or made cold', async () => {
    const t = await createTestApp({ env: { PGDB_POOL: '17:1' } });
    try {
      await poolReady(t, 1);
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'warm' } })).status, 201);
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'cold', version: 15 } })).status, 201);
      const volumes = Object.fromEntries(
        ((await t.request('GET', '/v1/status')).body.items as Array<{ name: string; volume_name: string }>).map((i) => [i.name, i.volume_name]),
      );
      assert.match(volumes.warm, /^pgdb-pool-/, 'the warm one runs on a standby volume');
      for (const name of ['warm', 'cold']) assert.equal((await t.request('DELETE', `/v1/db/${name}?keep_data=true`)).status, 200);
      const kept = (await t.request('GET', '/v1/status')).body.detached_volumes as Array<{ name: string; volume_name: string }>;
      assert.deepEqual(
        kept.map((v) => [v.volume_name, v.name]).sort(),
        [
          [volumes.cold, 'cold'],
          [volumes.warm, 'warm'],
        ].sort(),
      );
    } finally {
      await t.close();
    }
  });

  it("standbys' volumes have the default size; a deploy of another size takes the cold path and gets a volume of its own size", async () => {
    const t = await createTestApp({ env: { PGDB_POOL: '17:1' } });
    try {
      await poolReady(t, 1);
      const [standby] = [...t.docker.containers.values()].filter((c) => c.spec.labels['pgdb.pool']);
      assert.equal(t.docker.volumeSizes.get(standby.spec.volumeName), 10);
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'big', size_gb: 30 } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.notEqual(res.body.port, standby.spec.hostPort, 'not the standby');
      const volume = (await t.request('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'big').volume_name;
      assert.equal(t.docker.volumeSizes.get(volume), 30);
      const small = await t.request('POST', '/v1/deploy', { body: { name: 'small' } });
      assert.equal(small.body.port, standby.spec.hostPort, 'the default size claims the standby');
    } finally {
      await t.close();
    }
  });

  it('takes the cold path when the claimed standby cannot be reached: the caller gets a database, the standby is discarded and replaced', async () => {
    const t = await createTestApp({ env: { PGDB_POOL: '17:1' } });
    try {
      await poolReady(t, 1);
      const [standby] = [...t.docker.containers.values()].filter((c) => c.spec.labels['pgdb.pool']);
      let refused = 0;
      // The claim's role set-up, once: not the admin's password of the standby that refills, nor
      // anything later on the freed port, which the refilling standby may get (counting those raced the assertion).
      t.probe.failExecute = (target, statements) => {
        if (refused > 0 || target.port !== standby.spec.hostPort || statements[0].startsWith('ALTER ROLE pgdb_admin')) return false;
        refused += 1;
        return true;
      };
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'fallback' } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(refused, 1, 'the standby was tried first');
      assert.notEqual(res.body.port, standby.spec.hostPort, 'a cold database, on its own port');
      assert.equal(t.docker.containers.has(standby.id), false, 'the failed standby is removed');
      const running = [...t.docker.containers.values()].find((c) => c.spec.hostPort === res.body.port)!;
      assert.equal(running.spec.labels['pgdb.name'], 'fallback');
      assert.ok(t.probe.probed.some((p) => p.user === res.body.user && p.password === res.body.password), 'the returned credentials were proven');
      await poolReady(t, 1);
      const items = (await t.request('GET', '/v1/status')).body.items as Array<{ name: string }>;
      assert.deepEqual(items.map((i) => i.name), ['fallback']);
      assert.deepEqual(await t.app.get(RegistryService).destroyed(), [], 'the standby left no destroyed entry');
    } finally {
      await t.close();
    }
  });

  it('hands no standby out twice: concurrent deploys beyond the pool go the cold way', async () => {
    const t = await createTestApp({ env: { PGDB_POOL: '17:2' } });
    try {
      await poolReady(t, 2);
      const standbyIds = new Set([...t.docker.containers.values()].filter((c) => c.spec.labels['pgdb.pool']).map((c) => c.id));
      const results = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((name) => t.request('POST', '/v1/deploy', { body: { name } })));
      assert.deepEqual(results.map((r) => r.status), [201, 201, 201, 201, 201]);
      assert.equal(new Set(results.map((r) => r.body.port)).size, 5, 'five distinct ports');
      const items = (await t.request('GET', '/v1/status')).body.items as Array<{ container_id: string }>;
      assert.equal(items.filter((i) => standbyIds.has(i.container_id)).length, 2, 'two warm');
      assert.equal(new Set(items.map((i) => i.container_id)).size, 5);
    } finally {
      await t.close();
    }
  });

  it('gives 20 concurrent deploys with a pool of 2 twenty distinct ports, with ports taken outside pgdb in the way', async () => {
    const t = await createTestApp({ env: { PGDB_POOL: '17:2' } });
    try {
      await poolReady(t, 2);
      // Deploys that reserved these move to others (movePort) while claims and the refill run.
      for (const port of [40002, 40003, 40005, 40008, 40013]) t.docker.foreignPorts.add(port);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => t.request('POST', '/v1/deploy', { body: { name: `burst-${i}` } })));
      assert.deepEqual(results.map((r) => r.status), Array(20).fill(201), JSON.stringify(results.find((r) => r.status !== 201)?.body));
      const ports = results.map((r) => r.body.port as number);
      assert.equal(new Set(ports).size, 20, `ports: ${ports.join(' ')}`);
      assert.ok(ports.every((port) => !t.docker.foreignPorts.has(port)));
      await poolReady(t, 2);
      const file = JSON.parse(readFileSync(join(t.config.dataDir, 'registry.json'), 'utf8'));
      const held = [...file.items, ...file.standbys].map((r: { host_port: number }) => r.host_port);
      assert.equal(new Set(held).size, held.length, `registry ports: ${held.join(' ')}`);
      // Every database runs in a container publishing its recorded port.
      for (const item of file.items as Array<{ container_id: string; host_port: number }>) {
        assert.equal(t.docker.containers.get(item.container_id)?.spec.hostPort, item.host_port);
      }
    } finally {
      await t.close();
    }
  });

  it('fills past a port the engine refuses (held outside pgdb, invisible to the bind check), and no deploy tries it again', async () => {
    const docker = new FakeDocker();
    docker.foreignPorts.add(40000);
    const t = await createTestApp({ docker, env: { PGDB_POOL: '17:1' } });
    try {
      await poolReady(t, 1);
      const [standby] = [...docker.containers.values()].filter((c) => c.spec.labels['pgdb.pool']);
      assert.equal(standby.spec.hostPort, 40001);
      const cold = await t.request('POST', '/v1/deploy', { body: { name: 'cold', version: 15 } });
      assert.equal(cold.status, 201, JSON.stringify(cold.body));
      assert.equal(cold.body.port, 40002, 'the refused port is skipped');
    } finally {
      await t.close();
    }
  });

  it('misses for a major without a pool or another memory limit, and falls back to the cold path', async () => {
    const t = await createTestApp({ env: { PGDB_POOL: '17:1' } });
    try {
      await poolReady(t, 1);
      const other = await t.request('POST', '/v1/deploy', { body: { name: 'old', version: 15 } });
      const bigger = await t.request('POST', '/v1/deploy', { body: { name: 'big', memory_mb: 1024 } });
      assert.equal(other.status, 201);
      assert.equal(bigger.status, 201);
      assert.equal((await t.request('GET', '/v1/status')).body.pool[0].ready, 1, 'the standby is still there');
    } finally {
      await t.close();
    }
  });

  it("at a start, replaces a standby whose pg_hba.conf an earlier release wrote (pgdb_admin from any address) and keeps one with today's", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-pool-'));
    const docker = new FakeDocker();
    const standbyIds = async (t: TestApp) => (await t.app.get(RegistryService).standbys()).map((s) => s.container_id);
    let t = await createTestApp({ dataDir, docker, env: { PGDB_POOL: '17:1' } });
    await poolReady(t, 1);
    const [today] = await standbyIds(t);
    await t.close();
    // Control: a start with today's file keeps the standby.
    t = await createTestApp({ dataDir, docker, env: { PGDB_POOL: '17:1' } });
    try {
      await poolReady(t, 1);
      await t.app.get(PoolService).recover();
      assert.deepEqual(await standbyIds(t), [today]);
    } finally {
      await t.close();
    }
    docker.containers.get(today)!.files.set(HBA_PATH, { path: HBA_PATH, content: pgHba(undefined), mode: 0o644, uid: 0, gid: 0 });
    t = await createTestApp({ dataDir, docker, env: { PGDB_POOL: '17:1' } });
    try {
      // The pool recovers after the first reconciliation, in the background.
      for (let i = 0; i < 500 && (await standbyIds(t)).includes(today); i++) await sleep(10);
      await poolReady(t, 1);
      const [replacement] = await standbyIds(t);
      assert.notEqual(replacement, today);
      assert.equal(docker.containers.has(today), false, 'the open standby is removed');
      assert.notEqual(docker.containers.get(replacement)!.files.get(HBA_PATH)!.content, pgHba(undefined));
    } finally {
      await t.close();
    }
  });

  it('after a crash: removes a standby that was filling and a claim that never answered, then refills', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-pool-'));
    const instance = 'abcdef012345';
    const labels = (extra: Record<string, string>) => ({ 'pgdb.managed': 'true', 'pgdb.instance': instance, ...extra });
    const docker = new FakeDocker();
    docker.volumes.set('pgdb-pool-half', labels({ 'pgdb.pool': 'half' }));
    docker.seedContainer('id-half', 'pgdb-pool-half', labels({ 'pgdb.pool': 'half' }));
    docker.volumes.set('pgdb-pool-taken', labels({ 'pgdb.pool': 'taken' }));
    docker.seedContainer('id-taken', 'pgdb-pool-taken', labels({ 'pgdb.pool': 'taken' }));
    const standby = { id: 'half', container_id: 'id-half', volume_name: 'pgdb-pool-half', host_port: 40060, postgres_version: 17, db: 'pg_h', admin_password: 'a', memory_mb: 512, created_at: new Date(0).toISOString(), state: 'filling' };
    const claimed = {
      name: 'never-answered', container_id: 'id-taken', volume_name: 'pgdb-pool-taken', host_port: 40061, db: 'pg_t', user: 'u_t',
      created_at: new Date(0).toISOString(), postgres_version: 17, host: '127.0.0.1', password: 'p', admin_password: 'a', size_gb: 10,
      memory_mb: 512, layout: 2, pending: 'creating',
    };
    writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: instance, items: [claimed], standbys: [standby] }), { mode: 0o600 });
    const t = await createTestApp({ dataDir, docker, env: { PGDB_POOL: '17:1' } });
    try {
      await poolReady(t, 1);
      assert.equal(docker.containers.has('id-half'), false);
      assert.equal(docker.volumes.has('pgdb-pool-half'), false);
      assert.equal(docker.containers.has('id-taken'), false);
      assert.equal(docker.volumes.has('pgdb-pool-taken'), false);
      const file = JSON.parse(readFileSync(join(dataDir, 'registry.json'), 'utf8'));
      assert.deepEqual(file.items, []);
      assert.equal(file.standbys.length, 1);
      assert.equal(file.standbys[0].state, 'ready');
      // The fill time is recorded just after the standby is marked ready.
      const pool = t.app.get(PoolService);
      for (let i = 0; i < 100 && pool.fillTimes.length === 0; i++) await sleep(10);
      assert.ok(pool.fillTimes.length >= 1);
    } finally {
      await t.close();
    }
  });
});
