/**
 * Backups end to end: the real daemon with backups on, real Docker, real
 * pgBackRest inside the real Postgres images, the local repository under
 * the daemon's data directory. Point-in-time restore for every supported
 * major, undo of a destroy, archiving that fails loudly and catches up,
 * bad input, and a daemon killed in the middle of a restore.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { docker, query, requireDockerAndImages, ROOT, TEST_VERSIONS, TestDaemon, type ApiResponse } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { run } from './support/run.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(50);
const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');

function expectError(response: ApiResponse, status: number, code: string, message?: RegExp): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.error.code, code, JSON.stringify(response.body));
  if (message) assert.match(response.body.error.message, message);
}

async function deploy(daemon: TestDaemon, name: string, version?: number): Promise<string> {
  const response = await daemon.api('POST', '/v1/deploy', { name, ...(version ? { version } : {}) });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.database_url as string;
}

/** The first full backup, which a deploy starts by itself. */
function firstBackup(daemon: TestDaemon, name: string): Promise<any> {
  return eventually(`first backup of ${name}`, 180_000, async () => {
    const listed = await daemon.api('GET', `/v1/db/${name}/backups`);
    return listed.status === 200 && listed.body.backups.length > 0 ? listed.body : undefined;
  });
}

async function count(url: string, table = 'items'): Promise<number> {
  const rows = await query<{ n: string }>(url, `SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0].n);
}

async function insert(url: string, from: number, to: number): Promise<void> {
  await query(url, `INSERT INTO items SELECT g, md5(g::text) FROM generate_series(${from}, ${to}) g`);
}

describe('backups', { timeout: 1_800_000 }, () => {
  let daemon: TestDaemon;

  before(async () => {
    requireDockerAndImages();
    daemon = await new TestDaemon({ portRange: PORT_RANGE, env: { PGDB_BACKUP: 'on' } }).start();
  });

  after(async () => {
    await daemon?.destroyAll();
  });

  for (const version of TEST_VERSIONS) {
    test(`point-in-time restore into a new database, Postgres ${version}: exactly the rows committed before T, source untouched`, async () => {
      const name = `pitr-${version}`;
      const url = await deploy(daemon, name, version);
      await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
      await insert(url, 1, 100);
      await firstBackup(daemon, name);
      await insert(url, 101, 200);
      await sleep(1100);
      const t = new Date().toISOString();
      await sleep(1100);
      await insert(url, 201, 250);

      const restored = await daemon.api('POST', `/v1/db/${name}/restore`, { as: `${name}-copy`, time: t });
      assert.equal(restored.status, 201, JSON.stringify(restored.body));
      assert.equal(restored.body.restored_from, name);
      assert.equal(restored.body.postgres_version, version);
      assert.notEqual(restored.body.password, new URL(url).password, 'the copy has new credentials');
      assert.equal(await count(restored.body.database_url), 200, 'the copy holds exactly the rows committed before T');
      assert.equal(await count(url), 250, 'the source is untouched');
      // The copy is a database like any other: writable, and backed up under its own stanza.
      await insert(restored.body.database_url, 1000, 1000);
      await firstBackup(daemon, `${name}-copy`);
    });
  }

  test('status and health show each database\'s backups and archiving', async () => {
    const status = await daemon.api('GET', '/v1/status');
    assert.equal(status.status, 200);
    assert.equal(status.body.backups.kind, 'local');
    assert.match(status.body.backups.note, /not against losing that volume/);
    const item = status.body.items.find((i: any) => i.name === 'pitr-17');
    assert.ok(item.backup.last_backup, JSON.stringify(item.backup));
    assert.equal(item.backup.last_backup.type, 'full');
    assert.ok(item.backup.last_backup_age_seconds >= 0);
    const info = await daemon.api('GET', '/v1/db/pitr-17');
    assert.equal(info.body.backups.last_backup.label, item.backup.last_backup.label, 'info shows the same backup summary');
    const health = await daemon.api('GET', '/v1/health');
    assert.equal(health.body.status, 'ok', JSON.stringify(health.body.problems));
    assert.deepEqual(health.body.problems, []);
  });

  test('a backup on demand, listed with the restorable window; restore to that backup', async () => {
    const name = 'ondemand';
    const url = await deploy(daemon, name);
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 10);
    await firstBackup(daemon, name);
    await insert(url, 11, 30);
    const taken = await daemon.api('POST', `/v1/db/${name}/backups`, { type: 'diff' });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    assert.equal(taken.body.type, 'diff');
    await insert(url, 31, 40);
    const listed = await daemon.api('GET', `/v1/db/${name}/backups`);
    assert.equal(listed.body.source, 'running');
    assert.deepEqual(listed.body.backups.map((b: any) => b.type), ['full', 'diff']);
    assert.ok(listed.body.window.earliest <= listed.body.window.latest);
    assert.equal(listed.body.window.earliest, listed.body.backups[0].finished_at);

    const atBackup = await daemon.api('POST', `/v1/db/${name}/restore`, { as: 'ondemand-at-diff', backup: taken.body.label });
    assert.equal(atBackup.status, 201, JSON.stringify(atBackup.body));
    assert.equal(await count(atBackup.body.database_url), 30, 'restored to the end of the differential backup');
    const latest = await daemon.api('POST', `/v1/db/${name}/restore`, { as: 'ondemand-latest' });
    assert.equal(latest.status, 201, JSON.stringify(latest.body));
    assert.equal(await count(latest.body.database_url), 40, 'the latest restore has every commit (WAL switched first)');
  });

  test('undo a destroy: restore <destroyed name> brings the data back; --delete-backups forgets them', async () => {
    const url = await deploy(daemon, 'gone');
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 70);
    await firstBackup(daemon, 'gone');
    await insert(url, 71, 77);
    assert.equal((await daemon.api('DELETE', '/v1/db/gone')).status, 200);

    const destroyed = await daemon.api('GET', '/v1/backups/destroyed');
    assert.ok(destroyed.body.items.some((d: any) => d.name === 'gone'), JSON.stringify(destroyed.body));
    const listed = await daemon.api('GET', '/v1/db/gone/backups');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.equal(listed.body.source, 'destroyed');

    const back = await daemon.api('POST', '/v1/db/gone/restore', { as: 'back' });
    assert.equal(back.status, 201, JSON.stringify(back.body));
    assert.equal(await count(back.body.database_url), 77, 'every commit before the destroy is back');

    // The restored database's own backups, then destroyed with --delete-backups: nothing of them stays.
    await firstBackup(daemon, 'back');
    const stanza = JSON.parse(readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8')).items.find((i: any) => i.name === 'back').backup.stanza;
    const repository = join(daemon.dataDir, 'backups', stanza);
    assert.ok(existsSync(repository), 'its repository directory exists before');
    assert.equal((await daemon.api('DELETE', '/v1/db/back?delete_backups=true')).status, 200);
    assert.equal(existsSync(repository), false, 'its repository directory is gone');
    const destroyedNow = await daemon.api('GET', '/v1/backups/destroyed');
    assert.ok(!destroyedNow.body.items.some((d: any) => d.name === 'back'));
    expectError(await daemon.api('GET', '/v1/db/back/backups'), 404, 'DB_NOT_FOUND');
  });

  test('bad input gets a clear error and creates nothing', async () => {
    const url = await deploy(daemon, 'target');
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    const first = await firstBackup(daemon, 'target');
    const before = await daemon.api('GET', '/v1/status');

    expectError(await daemon.api('POST', '/v1/db/nosuch/restore', { as: 'x1' }), 404, 'DB_NOT_FOUND');
    expectError(await daemon.api('GET', '/v1/db/nosuch/backups'), 404, 'DB_NOT_FOUND');
    expectError(await daemon.api('POST', '/v1/db/nosuch/backups', {}), 404, 'DB_NOT_FOUND');
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expectError(await daemon.api('POST', '/v1/db/target/restore', { as: 'x2', time: future }), 400, 'INVALID_REQUEST', /in the future/);
    const early = new Date(Date.parse(first.window.earliest) - 3_600_000).toISOString();
    expectError(
      await daemon.api('POST', '/v1/db/target/restore', { as: 'x3', time: early }),
      409,
      'NO_BACKUP',
      new RegExp(`outside the restorable window of "target": ${first.window.earliest.replace(/[.]/g, '\\.')} to `),
    );
    expectError(await daemon.api('POST', '/v1/db/target/restore', { as: 'target' }), 409, 'DB_ALREADY_EXISTS');
    expectError(await daemon.api('POST', '/v1/db/target/restore', { as: 'x4', time: '2026-11-29 10:00' }), 400, 'INVALID_REQUEST', /RFC 3339/);
    expectError(await daemon.api('POST', '/v1/db/target/restore', { as: 'x5', time: '2026-02-30T10:00:00Z' }), 400, 'INVALID_REQUEST');
    expectError(
      await daemon.api('POST', '/v1/db/target/restore', { as: 'x6', time: new Date().toISOString(), backup: first.backups[0].label }),
      400,
      'INVALID_REQUEST',
      /not both/,
    );
    expectError(await daemon.api('POST', '/v1/db/target/restore', { as: 'x7', backup: '20200101-000000F' }), 409, 'NO_BACKUP', /no backup labelled/);
    expectError(await daemon.api('POST', '/v1/db/target/restore', { as: 'Bad_Name' }), 400, 'INVALID_REQUEST');
    expectError(await daemon.api('POST', '/v1/db/target/restore', {}), 400, 'INVALID_REQUEST');
    expectError(await daemon.api('POST', '/v1/db/target/backups', { type: 'weekly' }), 400, 'INVALID_REQUEST');

    const afterwards = await daemon.api('GET', '/v1/status');
    assert.deepEqual(afterwards.body.items.map((i: any) => i.name), before.body.items.map((i: any) => i.name), 'no database was created');
    assert.deepEqual(afterwards.body.detached_volumes, [], 'no volume was left behind');
  });

  test('archiving that fails is loud (status, health) while the database keeps serving writes, and catches up', async () => {
    const url = await deploy(daemon, 'loud');
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await firstBackup(daemon, 'loud');
    const status = await daemon.api('GET', '/v1/status');
    const item0 = status.body.items.find((i: any) => i.name === 'loud');
    const volume = item0.volume_name;
    const repo = join(daemon.dataDir, 'backups', volume);
    assert.ok(existsSync(repo), `the local repository ${repo} exists`);
    // Archiving writes deep inside the repository: take write permission away everywhere.
    execFileSync('chmod', ['-R', 'a-w', repo]);
    try {
      await insert(url, 1, 500);
      // The tenant may not switch WAL; the daemon's superuser may, over the container's socket.
      docker('exec', item0.container_id, 'psql', '-X', '-q', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres', '-c', 'SELECT pg_switch_wal()');
      await insert(url, 501, 600);
      const failing = await eventually('archiving of "loud" reported failing', 150_000, async () => {
        const health = await daemon.api('GET', '/v1/health');
        return health.body.problems.some((p: string) => /WAL archiving of "loud" fails/.test(p)) ? health.body : undefined;
      });
      assert.equal(failing.status, 'degraded');
      const item = (await daemon.api('GET', '/v1/status')).body.items.find((i: any) => i.name === 'loud');
      assert.equal(item.backup.archiving, 'failing');
      assert.ok(item.backup.archive_failed_count > 0);
      await insert(url, 601, 650);
    } finally {
      execFileSync('chmod', ['-R', 'u+w', repo]);
      chmodSync(repo, 0o777);
    }
    await eventually('archiving recovered', 150_000, async () => {
      const health = await daemon.api('GET', '/v1/health', undefined, null);
      return health.body.status === 'ok' ? true : undefined;
    });
    const latest = await daemon.api('POST', '/v1/db/loud/restore', { as: 'loud-now' });
    assert.equal(latest.status, 201, JSON.stringify(latest.body));
    assert.equal(await count(latest.body.database_url), 650, 'nothing committed while archiving failed was lost');
  });

  test('a daemon killed in the middle of a restore leaves no half-made database, and the next restore succeeds', async () => {
    const url = await deploy(daemon, 'crashy');
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 42);
    await firstBackup(daemon, 'crashy');
    for (const failpoint of ['restore:volume-created', 'restore:recovered']) {
      await daemon.stop();
      await daemon.start({ PGDB_FAILPOINTS: failpoint });
      await daemon.api('POST', '/v1/db/crashy/restore', { as: 'crashy-copy' }).catch(() => undefined);
      const ended = await daemon.exited();
      assert.equal(ended.signal, 'SIGKILL', `the daemon died at ${failpoint}`);
      await daemon.start();
      const leftovers = await eventually('leftovers removed', 60_000, async () => {
        const status = await daemon.api('GET', '/v1/status');
        const volumes = status.body.detached_volumes.filter((v: any) => v.name === 'crashy-copy');
        return volumes.length === 0 ? status.body : undefined;
      });
      assert.ok(!leftovers.items.some((i: any) => i.name === 'crashy-copy'), `no database "crashy-copy" after a crash at ${failpoint}`);
      const tasks = docker('ps', '-aq', '--filter', `label=pgdb.instance=${daemon.instanceId()}`, '--filter', 'label=pgdb.task').trim();
      assert.equal(tasks, '', 'no task container is left');
    }
    const restored = await daemon.api('POST', '/v1/db/crashy/restore', { as: 'crashy-copy' });
    assert.equal(restored.status, 201, JSON.stringify(restored.body));
    assert.equal(await count(restored.body.database_url), 42);
  });

  test('a daemon killed during a backup: the next backup succeeds', async () => {
    const url = await deploy(daemon, 'midbackup');
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 20000);
    await firstBackup(daemon, 'midbackup');
    const running = daemon.api('POST', '/v1/db/midbackup/backups', { type: 'full' }).catch(() => undefined);
    await sleep(700);
    await daemon.stop('SIGKILL');
    await running;
    await daemon.start();
    const again = await eventually('a backup after the crash', 180_000, async () => {
      const response = await daemon.api('POST', '/v1/db/midbackup/backups', { type: 'full' });
      return response.status === 201 ? response.body : undefined;
    });
    assert.equal(again.type, 'full');
    const listed = await daemon.api('GET', '/v1/db/midbackup/backups');
    assert.ok(listed.body.backups.length >= 2, JSON.stringify(listed.body.backups));
  });

  test('the CLI: pgdb backup, backups, restore --time, backups --destroyed, destroy --delete-backups', async () => {
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-backup-cli-')), PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
    const pgdb = (args: string[]) => run(process.execPath, [CLI, ...args], env);
    const deployed = await pgdb(['deploy', '--name', 'viacli', '--json']);
    assert.equal(deployed.code, 0, deployed.stderr);
    const url = JSON.parse(deployed.stdout).DATABASE_URL;
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 5);
    await firstBackup(daemon, 'viacli');
    const taken = await pgdb(['backup', 'viacli', '--type', 'incr']);
    assert.equal(taken.code, 0, taken.stderr);
    assert.match(taken.stdout, /^viacli: incr backup \d{8}-\d{6}F_\d{8}-\d{6}I, /);
    await insert(url, 6, 9);
    await sleep(1100);
    const t = new Date().toISOString();
    await sleep(1100);
    await insert(url, 10, 12);
    const table = await pgdb(['backups', 'viacli']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^LABEL\s+TYPE\s+STARTED\s+FINISHED\s+DATA\s+STORED$/m);
    assert.match(table.stdout, /viacli \(running\): restorable from \S+ to \S+; local repository /);
    const restored = await pgdb(['restore', 'viacli', '--as', 'viacli-t', '--time', t, '--json']);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(await count(JSON.parse(restored.stdout).DATABASE_URL), 9);
    const bad = await pgdb(['restore', 'viacli', '--as', 'viacli-x', '--time', 'yesterday']);
    assert.equal(bad.code, 2, 'a bad --time is a usage error, refused before any request');
    assert.match(bad.stderr, /--time must be an RFC 3339 time/);
    const gone = await pgdb(['destroy', 'viacli-t', '--yes']);
    assert.equal(gone.code, 0, gone.stderr);
    assert.match(gone.stdout, /its backups are kept until they expire \(undo with `pgdb restore viacli-t --as <new name>`\)/);
    const destroyed = await pgdb(['backups', '--destroyed', '--json']);
    assert.ok(JSON.parse(destroyed.stdout).items.some((d: any) => d.name === 'viacli-t'));
    const forgotten = await pgdb(['destroy', 'viacli', '--yes', '--delete-backups', '--json']);
    assert.equal(forgotten.code, 0, forgotten.stderr);
    assert.equal(JSON.parse(forgotten.stdout).backups_kept, false);
    const none = await pgdb(['backups', 'viacli']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no database named "viacli"/);
    const key = await pgdb(['backup', 'key']);
    assert.equal(key.code, 0, key.stderr);
    assert.equal(key.stdout, readFileSync(join(daemon.dataDir, 'backup.key'), 'utf8'), 'stdout is the key file, so `> file` saves it');
    assert.match(key.stderr, /keep this key somewhere other than/);
  });
});

describe('a database made while backups were off gets archiving and backups once they are on', { timeout: 900_000 }, () => {
  let daemon: TestDaemon;

  before(async () => {
    requireDockerAndImages([17]);
    daemon = await new TestDaemon({ portRange: ports.range(20), env: { PGDB_BACKUP: 'off' } }).start();
  });

  after(async () => {
    await daemon?.destroyAll();
  });

  test('same URL and rows; then archiving, a first full backup, and a point-in-time restore work', async () => {
    const url = await deploy(daemon, 'early');
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 40);
    await daemon.stop();
    await daemon.start({ PGDB_BACKUP: 'on' });

    const listed = await firstBackup(daemon, 'early');
    assert.equal(listed.backups[0].type, 'full');
    const record = JSON.parse(readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8')).items.find((i: any) => i.name === 'early');
    assert.equal(record.backup.stanza, record.volume_name);
    assert.equal(record.archiving_pending, undefined, 'the upgrade finished');
    assert.equal(await count(url), 40, 'the same URL and credentials still work, with every row');
    const [archiving] = await query<{ archive_mode: string }>(url, 'SELECT current_setting($1) AS archive_mode', ['archive_mode']);
    assert.equal(archiving.archive_mode, 'on');

    await insert(url, 41, 50);
    await sleep(1100);
    const t = new Date().toISOString();
    await sleep(1100);
    await insert(url, 51, 60);
    const copy = await daemon.api('POST', '/v1/db/early/restore', { as: 'early-copy', time: t });
    assert.equal(copy.status, 201, JSON.stringify(copy.body));
    assert.equal(await count(copy.body.database_url), 50);
    const health = await daemon.api('GET', '/v1/health');
    assert.deepEqual(health.body.problems, [], JSON.stringify(health.body));
  });
});
