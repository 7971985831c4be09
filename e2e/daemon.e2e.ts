import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { DockerSocketProxy } from './support/docker-proxy.js';
import { docker, dockerObjectExists, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { bounds, testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

describe('pgdbd against a real Docker engine', () => {
  const daemon = new TestDaemon({ portRange: ports.range(100) });

  before(async () => {
    requireDockerAndImages();
    await daemon.start();
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('deploys a database whose URL connects and stores rows', async () => {
    const res = await daemon.api('POST', '/v1/deploy', { name: 'e2e-main', size_gb: 3 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const url = res.body.database_url;
    await query(url, 'CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)');
    await query(url, 'INSERT INTO notes (body) VALUES ($1)', ['hello from e2e']);
    const rows = await query(url, 'SELECT body FROM notes');
    assert.deepEqual(rows, [{ body: 'hello from e2e' }]);
    const [{ current_user: user, current_database: db }] = await query(url, 'SELECT current_user, current_database()');
    assert.deepEqual([user, db], [res.body.user, res.body.db]);
  });

  it('refuses the wrong password on the database it created', async () => {
    const { body } = await daemon.api('GET', '/v1/status?show_secrets=true');
    const item = body.items.find((i: { name: string }) => i.name === 'e2e-main');
    const wrong = item.database_url.replace(item.password, 'not-the-password');
    await assert.rejects(query(wrong, 'SELECT 1'), /password authentication failed/);
  });

  it('deploys without a name', async () => {
    const res = await daemon.api('POST', '/v1/deploy', {});
    assert.equal(res.status, 201);
    assert.match(res.body.name, /^db-[a-z0-9]{8}$/);
    assert.deepEqual(await query(res.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);
  });

  for (const major of [15, 17, 18]) {
    it(`runs Postgres ${major} when asked for it`, async () => {
      const res = await daemon.api('POST', '/v1/deploy', { name: `e2e-v${major}`, version: major });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.postgres_version, major);
      const [{ server_version_num: num }] = await query(res.body.database_url, 'SHOW server_version_num');
      assert.equal(Math.floor(Number(num) / 10000), major);
    });
  }

  it('answers 409 for a duplicate name', async () => {
    const res = await daemon.api('POST', '/v1/deploy', { name: 'e2e-main' });
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, 'DB_ALREADY_EXISTS');
  });

  it('answers 401 for a bad token and 400 for bad bodies', async () => {
    assert.equal((await daemon.api('GET', '/v1/status', undefined, 'wrong-token-wrong-token')).status, 401);
    assert.equal((await daemon.api('GET', '/v1/status', undefined, null)).status, 401);
    for (const body of [{ name: 'Bad Name' }, { size_gb: 'big' }, { version: 9 }, { extra: true }, '{not json']) {
      const res = await daemon.api('POST', '/v1/deploy', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, 'INVALID_REQUEST');
    }
  });

  it('labels what it creates and reports live state with volume usage', async () => {
    const { body } = await daemon.api('GET', '/v1/status');
    const item = body.items.find((i: { name: string }) => i.name === 'e2e-main');
    assert.equal(item.state, 'running');
    assert.equal(item.size_gb, 3);
    assert.equal(item.password, undefined);
    const labels = JSON.parse(docker('inspect', '--format', '{{json .Config.Labels}}', item.container_id));
    assert.equal(labels['pgdb.managed'], 'true');
    assert.equal(labels['pgdb.name'], 'e2e-main');
    const volumeLabels = JSON.parse(docker('volume', 'inspect', '--format', '{{json .Labels}}', item.volume_name));
    assert.equal(volumeLabels['pgdb.name'], 'e2e-main');
    assert.ok(item.used_bytes === null || item.used_bytes > 1_000_000, `used_bytes ${item.used_bytes}`);
  });

  it('gives ten concurrent deploys ten distinct ports that all connect', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => daemon.api('POST', '/v1/deploy', { name: `e2e-par-${i}` })),
    );
    assert.deepEqual(results.map((r) => r.status), Array(10).fill(201), JSON.stringify(results.map((r) => r.body)));
    assert.equal(new Set(results.map((r) => r.body.port)).size, 10);
    await Promise.all(results.map(async (r) => assert.deepEqual(await query(r.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }])));
    await Promise.all(results.map((r) => daemon.api('DELETE', `/v1/db/${r.body.name}`)));
  });

  it('keeps a database on its port when its container restarts', async () => {
    const { body } = await daemon.api('GET', '/v1/status?show_secrets=true');
    const item = body.items.find((i: { name: string }) => i.name === 'e2e-main');
    docker('restart', '--time', '10', item.container_id);
    assert.equal(docker('port', item.container_id, '5432/tcp'), `127.0.0.1:${item.host_port}`);
    const rows = await retry(() => query(item.database_url, 'SELECT body FROM notes'));
    assert.deepEqual(rows, [{ body: 'hello from e2e' }]);
  });

  it('still lists and serves every database after the daemon restarts', async () => {
    const before = (await daemon.api('GET', '/v1/status?show_secrets=true')).body.items;
    await daemon.restart();
    const after = (await daemon.api('GET', '/v1/status?show_secrets=true')).body.items;
    assert.deepEqual(after.map((i: { name: string }) => i.name).sort(), before.map((i: { name: string }) => i.name).sort());
    for (const item of after) {
      assert.equal(item.state, 'running', item.name);
      assert.deepEqual(await query(item.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);
    }
  });

  it('destroys a database: container, volume and record gone', async () => {
    const created = (await daemon.api('POST', '/v1/deploy', { name: 'e2e-gone' })).body;
    const item = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'e2e-gone');
    const res = await daemon.api('DELETE', '/v1/db/e2e-gone');
    assert.deepEqual([res.status, res.body], [200, { ok: true, backups_kept: false }]);
    assert.equal(dockerObjectExists('container', item.container_id), false);
    assert.equal(dockerObjectExists('volume', item.volume_name), false);
    await assert.rejects(query(created.database_url, 'SELECT 1'));
    assert.equal((await daemon.api('DELETE', '/v1/db/e2e-gone')).status, 404);
  });

  it('keeps the volume with keep_data=true', async () => {
    await daemon.api('POST', '/v1/deploy', { name: 'e2e-kept' });
    const item = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'e2e-kept');
    const res = await daemon.api('DELETE', '/v1/db/e2e-kept?keep_data=true');
    assert.equal(res.status, 200);
    assert.equal(dockerObjectExists('container', item.container_id), false);
    assert.equal(dockerObjectExists('volume', item.volume_name), true);
    const status = (await daemon.api('GET', '/v1/status')).body;
    assert.ok(status.detached_volumes.some((v: { volume_name: string }) => v.volume_name === item.volume_name));
  });

  it('never writes a password or the token to its log', async () => {
    const { body } = await daemon.api('GET', '/v1/status?show_secrets=true');
    assert.ok(body.items.length > 0);
    const logs = daemon.logs();
    assert.ok(logs.includes('database ready'), 'the log is captured');
    for (const item of body.items) assert.equal(logs.includes(item.password), false, item.name);
    assert.equal(logs.includes(daemon.token), false);
  });

  it('keeps registry.json private on disk', () => {
    assert.equal(statSync(join(daemon.dataDir, 'registry.json')).mode & 0o777, 0o600);
    assert.equal(statSync(daemon.dataDir).mode & 0o777, 0o700);
  });
});

describe('pgdbd when a port of its range is taken by another program', () => {
  const range = ports.range(10);
  const [first] = bounds(range);
  const daemon = new TestDaemon({ portRange: range });
  const squatter = createServer();

  before(async () => {
    requireDockerAndImages([17]);
    await new Promise<void>((resolve) => squatter.listen(first, '127.0.0.1', resolve));
    await daemon.start();
  });
  after(async () => {
    await daemon.destroyAll();
    squatter.close();
  });

  it('deploys on the next free port', async () => {
    const res = await daemon.api('POST', '/v1/deploy', { name: 'e2e-squat' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.port, first + 1);
    assert.deepEqual(await query(res.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);
  });
});

describe('pgdbd when the Docker engine goes away', () => {
  const proxy = new DockerSocketProxy(join(mkdtempSync(join(tmpdir(), 'pgdb-sock-')), 'docker.sock'));
  const daemon = new TestDaemon({ portRange: ports.range(50), env: { PGDB_DOCKER_SOCKET: proxy.path } });

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

  it('answers 503 with a clear message, then recovers when the engine is back', async () => {
    await proxy.down();
    const deploy = await daemon.api('POST', '/v1/deploy', { name: 'e2e-nodocker' });
    assert.equal(deploy.status, 503);
    assert.equal(deploy.body.error.code, 'DOCKER_UNAVAILABLE');
    assert.match(deploy.body.error.message, /Docker engine unreachable/);
    assert.equal((await daemon.api('GET', '/v1/status')).status, 503);
    assert.equal((await daemon.api('GET', '/v1/health', undefined, null)).status, 503);

    await proxy.up();
    assert.equal((await daemon.api('GET', '/v1/health', undefined, null)).status, 200);
    const res = await daemon.api('POST', '/v1/deploy', { name: 'e2e-nodocker' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(await query(res.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);
  });
});

describe('pgdbd after a crash in the middle of a deploy', () => {
  const daemon = new TestDaemon({ portRange: ports.range(50) });

  before(async () => {
    requireDockerAndImages([17]);
    await daemon.start();
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('removes the half-made database on the next start', async () => {
    const pending = daemon.api('POST', '/v1/deploy', { name: 'e2e-crash' }).catch(() => undefined);
    const filter = `label=pgdb.name=e2e-crash`;
    await retry(async () => assert.notEqual(docker('ps', '-aq', '--filter', filter), ''), 100);
    await daemon.stop('SIGKILL');
    await pending;
    assert.notEqual(docker('ps', '-aq', '--filter', filter), '', 'the container outlived the daemon');

    await daemon.start();
    const status = (await daemon.api('GET', '/v1/status')).body;
    assert.equal(status.items.some((i: { name: string }) => i.name === 'e2e-crash'), false);
    assert.equal(docker('ps', '-aq', '--filter', filter), '');
    assert.equal(docker('volume', 'ls', '-q', '--filter', filter), '');
    const again = await daemon.api('POST', '/v1/deploy', { name: 'e2e-crash' });
    assert.equal(again.status, 201, 'the name is free again');
  });
});

async function retry<T>(attempt: () => Promise<T>, times = 100): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= times) throw error;
      await sleep(50);
    }
  }
}

describe('pgdbd when its disk is full', () => {
  const mountPoint = mkdtempSync(join(tmpdir(), 'pgdb-full-'));
  // The databases' disk images need more than this file system has (disk-limits.e2e.ts fills one of those).
  const daemon = new TestDaemon({ portRange: ports.range(10), dataDir: join(mountPoint, 'data'), env: { PGDB_SIZE_LIMITS: 'off' } });
  const filler = join(mountPoint, 'filler');

  before(async () => {
    requireDockerAndImages([17]);
    // A 256 KiB file system of its own: filling it harms nothing else.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mountPoint]);
    await daemon.start();
  });
  after(async () => {
    await daemon.destroyAll();
    execFileSync('umount', [mountPoint]);
  });

  it('answers 507 with a clear message, loses nothing, and works again once space is freed', async () => {
    const first = await daemon.api('POST', '/v1/deploy', { name: 'e2e-before-full' });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const registryBefore = readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k', 'count=1000'], { stdio: 'ignore' });
    } catch {
      // dd stops with "No space left on device": the point.
    }

    const res = await daemon.api('POST', '/v1/deploy', { name: 'e2e-when-full' });
    assert.equal(res.status, 507, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'DISK_FULL');
    assert.match(res.body.error.message, /no space left/);
    assert.equal(readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8'), registryBefore);
    assert.deepEqual(readdirSync(daemon.dataDir).filter((f) => f.endsWith('.tmp')), []);
    assert.equal(docker('ps', '-aq', '--filter', 'label=pgdb.name=e2e-when-full'), '');
    const status = (await daemon.api('GET', '/v1/status')).body;
    assert.deepEqual(status.items.map((i: { name: string }) => i.name), ['e2e-before-full']);
    assert.deepEqual(await query(first.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);

    rmSync(filler);
    const again = await daemon.api('POST', '/v1/deploy', { name: 'e2e-when-full' });
    assert.equal(again.status, 201, JSON.stringify(again.body));
  });
});

describe('pgdbd after PGDB_POSTGRES_BIND changes', () => {
  // Linux answers on all of 127.0.0.0/8: two addresses of this host, nothing else on either.
  const daemon = new TestDaemon({ portRange: ports.range(10), env: { PGDB_POSTGRES_BIND: '127.0.0.1' } });
  before(() => requireDockerAndImages([17]));
  after(async () => daemon.destroyAll());

  it('reaches a database made before at the address it publishes, and a new one at the new address', async () => {
    await daemon.start();
    const before = await daemon.api('POST', '/v1/deploy', { name: 'before' });
    assert.equal(before.status, 201, JSON.stringify(before.body));
    await daemon.restart({ PGDB_POSTGRES_BIND: '127.0.0.2' });

    // The daemon's own work on it: a credential rotation connects as its superuser, then as the tenant with the new password.
    const rotated = await daemon.api('POST', '/v1/db/before/credentials/rotate', {});
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.deepEqual(await query(rotated.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);
    const info = await daemon.api('GET', '/v1/db/before');
    assert.equal(info.status, 200, JSON.stringify(info.body));
    assert.equal(info.body.state, 'running');

    const after = await daemon.api('POST', '/v1/deploy', { name: 'after' });
    assert.equal(after.status, 201, JSON.stringify(after.body));
    const bindings = (name: string) => JSON.parse(docker('inspect', daemon.record(name).container_id))[0].HostConfig.PortBindings['5432/tcp'][0].HostIp;
    assert.equal(bindings('before'), '127.0.0.1');
    assert.equal(bindings('after'), '127.0.0.2');
  });
});
