/**
 * Issue 9's rules for reconciliation and destroy, on the real Nest app with a
 * fake engine: per-record failures, no race with operations in flight,
 * unknown containers left alone, repair, one destroy at a time, and reuse of
 * a kept volume.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RegistryRecord } from '../registry/registry.types.js';
import { HBA_PATH, pgHba } from '../postgres/postgres-container.js';
import { FakeDocker } from '../testing/fake-docker.js';
import { FakeProbe } from '../testing/fake-probe.js';
import { testRecord as record } from '../testing/records.js';
import { createTestApp } from '../testing/test-app.js';
import { ReconcileService } from '../database/reconcile.service.js';

const INSTANCE = 'abcdef012345';
const labelsOf = (name: string) => ({ 'pgdb.managed': 'true', 'pgdb.instance': INSTANCE, 'pgdb.name': name, 'pgdb.postgres_version': '17' });

function state(records: RegistryRecord[]) {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-robust-'));
  writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: INSTANCE, items: records }), { mode: 0o600 });
  const docker = new FakeDocker();
  for (const r of records) docker.volumes.set(r.volume_name, labelsOf(r.name));
  return { dataDir, docker };
}

describe('reconciliation, record by record', () => {
  it('shows a record whose teardown fails as a problem, and keeps serving every other database', async () => {
    const { dataDir, docker } = state([record('stuck', { pending: 'destroying' }), record('fine', { host_port: 40051 })]);
    docker.seedContainer('id-fine', 'pgdb-fine-vol', labelsOf('fine'));
    // The volume is held by something else: Docker refuses to remove it.
    const removeVolume = docker.removeVolume.bind(docker);
    docker.removeVolume = async (name) => {
      if (name === 'pgdb-stuck-vol') throw new Error('volume is in use by another container');
      return removeVolume(name);
    };
    const t = await createTestApp({ dataDir, docker });
    try {
      const status = await t.request('GET', '/v1/status');
      assert.equal(status.status, 200);
      const stuck = status.body.items.find((i: { name: string }) => i.name === 'stuck');
      assert.equal(stuck.state, 'destroying');
      assert.match(stuck.problem, /finish-destroy failed 1x: volume is in use/);
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'new' } })).status, 201);
      assert.equal((await t.request('DELETE', '/v1/db/fine')).status, 200);
      // A second DELETE of the stuck one is refused, not run twice.
      assert.equal((await t.request('DELETE', '/v1/db/stuck')).body.error.code, 'DB_BUSY');
    } finally {
      await t.close();
    }
  });

  it('never removes the container of a deploy that settles while reconciliation lists containers', async () => {
    const { dataDir, docker } = state([]);
    const t = await createTestApp({ dataDir, docker });
    try {
      const reconcile = t.app.get(ReconcileService);
      // Inject the interleaving: reconciliation reads the registry before the
      // deploy settles, and lists containers while it is still in flight...
      const list = docker.listContainers.bind(docker);
      let deployed: Promise<unknown> | undefined;
      docker.listContainers = async (labels) => {
        const containers = await list(labels);
        if (deployed && labels['pgdb.name'] === undefined && containers.some((c) => c.labels['pgdb.name'] === 'racer')) {
          // ...and the deploy finishes (201) before reconciliation decides.
          await deployed;
        }
        return containers;
      };
      const probeWait = t.probe.waitUntilReady.bind(t.probe);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let first = true;
      t.probe.waitUntilReady = async (target) => {
        if (first && target.user !== 'pgdb_admin') {
          first = false;
          await gate;
        }
        return probeWait(target);
      };
      deployed = t.request('POST', '/v1/deploy', { body: { name: 'racer' } });
      while (![...docker.containers.values()].some((c) => c.spec.labels['pgdb.name'] === 'racer')) await new Promise((r) => setImmediate(r));
      const pass = reconcile.reconcile();
      await new Promise((r) => setTimeout(r, 20));
      release();
      assert.equal(((await deployed) as { status: number }).status, 201);
      await pass;
      assert.equal([...docker.containers.values()].filter((c) => c.spec.labels['pgdb.name'] === 'racer').length, 1, 'the container survived');
      const status = await t.request('GET', '/v1/status');
      assert.equal(status.body.items[0].state, 'running');
    } finally {
      await t.close();
    }
  });

  it('leaves a container it has no record of alone and reports it (an older registry was restored)', async () => {
    const { dataDir, docker } = state([record('known')]);
    docker.seedContainer('id-known', 'pgdb-known-vol', labelsOf('known'));
    docker.volumes.set('pgdb-later-vol', labelsOf('later'));
    docker.seedContainer('id-later', 'pgdb-later-vol', labelsOf('later'));
    const t = await createTestApp({ dataDir, docker });
    try {
      assert.ok(docker.containers.has('id-later'), 'the unknown container is still there');
      assert.ok(docker.volumes.has('pgdb-later-vol'), 'and its volume');
      const status = (await t.request('GET', '/v1/status')).body;
      assert.deepEqual(status.unknown_containers.map((c: { container_id: string; name: string }) => [c.container_id, c.name]), [['id-later', 'later']]);
      assert.deepEqual(status.items.map((i: { name: string }) => i.name), ['known']);
    } finally {
      await t.close();
    }
  });

  it('repairs a database whose container is missing: same port and credentials, from the record and volume', async () => {
    const { dataDir, docker } = state([record('lost')]);
    const t = await createTestApp({ dataDir, docker });
    try {
      const [container] = [...docker.containers.values()];
      assert.ok(container, 'a container was made');
      assert.equal(container.spec.volumeName, 'pgdb-lost-vol');
      assert.equal(container.spec.hostPort, 40050);
      const item = (await t.request('GET', '/v1/status?show_secrets=true')).body.items[0];
      assert.equal(item.container_id, container.id);
      assert.equal(item.password, 'pw');
      assert.ok(t.probe.probed.some((p) => p.user === 'u_x' && p.password === 'pw' && p.port === 40050));
    } finally {
      await t.close();
    }
  });

  it('does not invent an empty database when the volume is missing too: it reports the problem', async () => {
    const { dataDir, docker } = state([record('gone')]);
    docker.volumes.clear();
    const t = await createTestApp({ dataDir, docker });
    try {
      assert.equal(docker.containers.size, 0);
      assert.equal(docker.volumes.size, 0);
      const [item] = (await t.request('GET', '/v1/status')).body.items;
      assert.equal(item.state, 'missing');
      assert.match(item.problem, /repair failed 1x: its volume pgdb-gone-vol is missing/);
    } finally {
      await t.close();
    }
  });
});

describe('kept volumes', () => {
  it('are taken over by a deploy with from_volume: the same data, new credentials, holder removed', async () => {
    const { dataDir, docker } = state([]);
    const t = await createTestApp({ dataDir, docker });
    try {
      const first = (await t.request('POST', '/v1/deploy', { body: { name: 'old', memory_mb: 256 } })).body;
      assert.equal((await t.request('DELETE', '/v1/db/old?keep_data=true')).status, 200);
      const [detached] = (await t.request('GET', '/v1/status')).body.detached_volumes;
      docker.execAnswers.set(
        'psql -X -q -At -v ON_ERROR_STOP=1 -h /var/run/postgresql -U pgdb_admin -d postgres',
        { exitCode: 0, stdout: `${JSON.stringify([first.db, first.user])}\n`, stderr: '' },
      );
      const again = await t.request('POST', '/v1/deploy', { body: { name: 'again', from_volume: detached.volume_name } });
      assert.equal(again.status, 201, JSON.stringify(again.body));
      assert.equal(again.body.db, first.db);
      assert.equal(again.body.user, first.user);
      assert.notEqual(again.body.password, first.password);
      const containers = [...docker.containers.values()];
      assert.equal(containers.length, 1, 'the holder is gone');
      assert.equal(containers[0].spec.volumeName, detached.volume_name);
      assert.deepEqual((await t.request('GET', '/v1/status')).body.detached_volumes, []);
    } finally {
      await t.close();
    }
  });

  it('refuse a volume that is not a detached pgdb volume of this daemon, or another major', async () => {
    const { dataDir, docker } = state([record('owner')]);
    docker.seedContainer('id-owner', 'pgdb-owner-vol', labelsOf('owner'));
    const t = await createTestApp({ dataDir, docker });
    try {
      const missing = await t.request('POST', '/v1/deploy', { body: { from_volume: 'pgdb-nothing' } });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'VOLUME_NOT_FOUND');
      assert.match(missing.body.error.message, /no pgdb volume named pgdb-nothing/);
      const taken = await t.request('POST', '/v1/deploy', { body: { name: 'thief', from_volume: 'pgdb-owner-vol' } });
      assert.equal(taken.status, 409);
      assert.match(taken.body.error.message, /belongs to database "owner"/);
      const major = await t.request('POST', '/v1/deploy', { body: { from_volume: 'pgdb-owner-vol', version: 15 } });
      assert.equal(major.status, 400);
      assert.match(major.body.error.message, /holds a Postgres 17 cluster, not 15/);
      assert.ok(docker.volumes.has('pgdb-owner-vol'));
    } finally {
      await t.close();
    }
  });

  it('stay when a deploy that adopted one fails', async () => {
    const { dataDir, docker } = state([]);
    docker.volumes.set('pgdb-precious-abc', labelsOf('precious'));
    const t = await createTestApp({ dataDir, docker });
    try {
      docker.execAnswers.set('psql -X -q -At -v ON_ERROR_STOP=1 -h /var/run/postgresql -U pgdb_admin -d postgres', {
        exitCode: 2,
        stdout: '',
        stderr: 'FATAL:  role "pgdb_admin" does not exist',
      });
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'x', from_volume: 'pgdb-precious-abc' } });
      assert.equal(res.status, 400);
      assert.match(res.body.error.message, /has no pgdb_admin role/);
      assert.ok(docker.volumes.has('pgdb-precious-abc'), 'the volume was not removed');
      assert.deepEqual((await t.request('GET', '/v1/status')).body.items, []);
    } finally {
      await t.close();
    }
  });
});

describe("reconciliation and the admin's password in a container's environment", () => {
  const registryOf = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, 'registry.json'), 'utf8')).items as RegistryRecord[];

  it('changes the password of a database whose container (from an earlier release) carries it, and leaves a current one alone', async () => {
    const { dataDir, docker } = state([record('old', { admin_password: 'exposed-pw' }), record('new', { host_port: 40051, admin_password: 'kept-pw' })]);
    docker.seedContainer('id-old', 'pgdb-old-vol', labelsOf('old'));
    docker.containers.get('id-old')!.spec.env = { POSTGRES_PASSWORD: 'exposed-pw' };
    docker.seedContainer('id-new', 'pgdb-new-vol', labelsOf('new'));
    docker.containers.get('id-new')!.spec.env = { POSTGRES_PASSWORD: 'derived-initial-pw' };
    // Backups off: a record without a stanza would otherwise have its container re-created for archiving first.
    const t = await createTestApp({ dataDir, docker, env: { PGDB_BACKUP: 'off' } });
    try {
      await t.app.get(ReconcileService).ensureReconciled();
      const [old, current] = registryOf(dataDir);
      assert.notEqual(old.admin_password, 'exposed-pw');
      assert.equal(old.admin_password_previous, undefined);
      assert.equal(current.admin_password, 'kept-pw');
      // Set with the old password, to the new one's verifier; nothing run for the other database.
      const changes = t.probe.executed.filter((e) => e.statements.some((s) => s.startsWith('ALTER ROLE pgdb_admin PASSWORD')));
      assert.deepEqual(changes.map((e) => e.target.password), ['exposed-pw']);
      assert.match(changes[0].statements[0], /SCRAM-SHA-256\$4096:/);
    } finally {
      await t.close();
    }
  });

  /** A database whose running container has an earlier release's pg_hba.conf: pgdb_admin from any address. */
  function withOpenAccessRules(name: string) {
    const made = state([record(name, { admin_password: 'pw' })]);
    made.docker.seedContainer(`id-${name}`, `pgdb-${name}-vol`, labelsOf(name));
    made.docker.containers.get(`id-${name}`)!.files.set(HBA_PATH, { path: HBA_PATH, content: pgHba(undefined), mode: 0o644, uid: 0, gid: 0 });
    return made;
  }

  it("replaces an earlier release's pg_hba.conf (pgdb_admin from any address) with today's, reloads it over the socket and checks its own connection", async () => {
    const { dataDir, docker } = withOpenAccessRules('open');
    const t = await createTestApp({ dataDir, docker, env: { PGDB_BACKUP: 'off' } });
    try {
      await t.app.get(ReconcileService).ensureReconciled();
      const written = docker.containers.get('id-open')!.files.get(HBA_PATH)!.content;
      assert.match(written, /^host all pgdb_admin all reject$/m);
      assert.ok(docker.execs.some((command) => command.at(-1) === 'SELECT pg_catalog.pg_reload_conf()' && command.includes('/var/run/postgresql')), 'reloaded over the socket');
      assert.ok(t.probe.executed.some((e) => e.target.user === 'pgdb_admin' && e.statements[0] === 'SELECT 1'), 'checked with its own connection');
      // Once in place, the next start leaves it alone.
      const reloads = docker.execs.filter((command) => command.at(-1) === 'SELECT pg_catalog.pg_reload_conf()').length;
      const again = await createTestApp({ dataDir, docker, env: { PGDB_BACKUP: 'off' } });
      await again.app.get(ReconcileService).ensureReconciled();
      await again.close();
      assert.equal(docker.execs.filter((command) => command.at(-1) === 'SELECT pg_catalog.pg_reload_conf()').length, reloads);
    } finally {
      await t.close();
    }
  });

  it('puts the open pg_hba.conf back when the new one would lock the daemon out (its connections come from an address not foreseen)', async () => {
    const { dataDir, docker } = withOpenAccessRules('odd');
    const probe = new FakeProbe();
    probe.executeError = (_target, statements) =>
      statements[0] === 'SELECT 1' ? Object.assign(new Error('pg_hba.conf rejects connection for host "10.9.8.7", user "pgdb_admin"'), { code: '28000' }) : undefined;
    const t = await createTestApp({ dataDir, docker, probe, env: { PGDB_BACKUP: 'off' } });
    try {
      await t.app.get(ReconcileService).ensureReconciled();
      assert.equal(docker.containers.get('id-odd')!.files.get(HBA_PATH)!.content, pgHba(undefined), 'the open file is back');
      assert.equal(docker.execs.filter((command) => command.at(-1) === 'SELECT pg_catalog.pg_reload_conf()').length, 2, 'and read again');
    } finally {
      await t.close();
    }
  });

  it('finishes a change a crash interrupted: the new password recorded, the old one beside it', async () => {
    const { dataDir, docker } = state([record('half', { admin_password: 'new-pw', admin_password_previous: 'old-pw' })]);
    docker.seedContainer('id-half', 'pgdb-half-vol', labelsOf('half'));
    const t = await createTestApp({ dataDir, docker, env: { PGDB_BACKUP: 'off' } });
    try {
      await t.app.get(ReconcileService).ensureReconciled();
      const [half] = registryOf(dataDir);
      assert.equal(half.admin_password, 'new-pw');
      assert.equal(half.admin_password_previous, undefined);
      const change = t.probe.executed.find((e) => e.statements.some((s) => s.startsWith('ALTER ROLE pgdb_admin PASSWORD')));
      assert.equal(change?.target.password, 'old-pw');
    } finally {
      await t.close();
    }
  });
});
