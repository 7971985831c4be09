/**
 * Restore drills and alerts end to end: the real daemon with backups on,
 * real Docker, real pgBackRest and Postgres, the local repository under the
 * daemon's data directory, and a real HTTP receiver for PGDB_ALERT_WEBHOOK.
 * A healthy database's drill restores its latest backup with the WAL up to
 * a restore point made in the source, compares every table's rows with the
 * source's at that point, passes and is recorded in status; a byte flipped
 * in a stored backup file makes the drill fail, health degraded and the
 * webhook name the database; a receiver failing twice still gets the event
 * (retries); a source that never stops writing is drilled but not compared
 * (never a false pass or failure); a hostile tenant's traps and odd names
 * change nothing; a WAL segment lost from the repository between the backup
 * and the restore point fails the drill, naming the point; bad input is
 * refused and changes nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { docker, query, requireDockerAndImages, ROOT, TestDaemon, type ApiResponse } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { run } from './support/run.js';
import { WebhookReceiver } from './support/webhook-receiver.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(25);
const SCHEDULED_PORT_RANGE = ports.range(25);
const SECRET = 'hook-secret-7f3a9c';
const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');

function expectError(response: ApiResponse, status: number, code: string, message?: RegExp): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.error.code, code, JSON.stringify(response.body));
  if (message) assert.match(response.body.error.message, message);
}

describe('restore drills and alerts', { timeout: 1_800_000 }, () => {
  let daemon: TestDaemon;
  let receiver: WebhookReceiver;
  const name = 'drilled';
  let url = '';

  before(async () => {
    requireDockerAndImages([17]);
    receiver = await new WebhookReceiver(SECRET).start();
    daemon = await new TestDaemon({ portRange: PORT_RANGE, env: { PGDB_BACKUP: 'on', PGDB_ALERT_WEBHOOK: receiver.url, PGDB_BACKUP_DRILL_SCHEDULE: 'off' } }).start();
  });

  after(async () => {
    await daemon?.destroyAll();
    await receiver?.stop();
  });

  function pgdb(args: string[]) {
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-drill-cli-')), PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
    return run(process.execPath, [CLI, ...args], env);
  }

  function stanzaOf(database: string): string {
    const registry = JSON.parse(readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8'));
    return registry.items.find((r: any) => r.name === database).backup.stanza;
  }

  function drillLeftovers(): string[] {
    const instance = daemon.instanceId();
    const volumes = docker('volume', 'ls', '-q', '--filter', `label=pgdb.instance=${instance}`, '--filter', 'label=pgdb.restoring').split('\n').filter(Boolean);
    const tasks = docker('ps', '-aq', '--filter', `label=pgdb.instance=${instance}`, '--filter', 'label=pgdb.task').split('\n').filter(Boolean);
    return [...volumes, ...tasks];
  }

  async function latestBackup(database: string): Promise<string> {
    return eventually(`a backup of ${database}`, 180_000, async () => {
      const listed = await daemon.api('GET', `/v1/db/${database}/backups`);
      return listed.status === 200 && listed.body.backups.length > 0 ? (listed.body.backups.at(-1).label as string) : undefined;
    });
  }

  test('a drill of a healthy database passes, compares its row counts with the source at a restore point made for it, leaves nothing behind and is recorded in status', async (t) => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    url = deployed.body.database_url;
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await query(url, "INSERT INTO items SELECT g, repeat('x', g % 50) FROM generate_series(1, 1234) g");
    await query(url, 'CREATE TABLE empty_one (id int)');
    // The first backup starts after the deploy and may have begun before the rows: take one that has them.
    await latestBackup(name);
    const taken = await daemon.api('POST', `/v1/db/${name}/backups`, { type: 'full' });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    // Written after the backup: only the WAL up to the drill's restore point brings these into the copy.
    await query(url, "INSERT INTO items SELECT g, 'after' FROM generate_series(1235, 1300) g");
    await query(url, 'CREATE TABLE later AS SELECT g FROM generate_series(1, 7) g');
    // Never compared: every restored copy has an unlogged table empty, and a materialized view never populated cannot be read.
    await query(url, 'CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 9) g');
    await query(url, 'CREATE MATERIALIZED VIEW unread AS SELECT 1 AS one WITH NO DATA');

    const drill = await daemon.api('POST', `/v1/db/${name}/backups/verify`);
    assert.equal(drill.status, 200, JSON.stringify(drill.body));
    assert.equal(drill.body.ok, true, drill.body.detail);
    t.diagnostic(`drill: ${drill.body.duration_ms} ms, ${drill.body.detail}`);
    assert.equal(drill.body.name, name);
    assert.equal(drill.body.backup, taken.body.label, 'the latest backup was drilled');
    assert.equal(drill.body.amcheck, 'ok', 'the test image has pg_amcheck');
    const dbName = new URL(url).pathname.slice(1);
    assert.deepEqual(
      drill.body.tables.filter((t: any) => t.database === dbName),
      [
        { database: dbName, table: 'public.empty_one', rows: 0, source_rows: 0 },
        { database: dbName, table: 'public.items', rows: 1300, source_rows: 1300 },
        { database: dbName, table: 'public.later', rows: 7, source_rows: 7 },
      ],
      'the restored copy has the rows the source had at the restore point, those written after the backup too',
    );
    const comparison = drill.body.comparison;
    assert.equal(comparison.status, 'match', JSON.stringify(comparison));
    assert.equal(comparison.reason, null);
    assert.match(comparison.restore_point.name, /^pgdb-drill-[a-z0-9]+-\d$/);
    assert.match(comparison.restore_point.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(comparison.tables_compared, drill.body.tables.length);
    assert.deepEqual(comparison.differences, []);
    assert.match(drill.body.detail, /every table had the rows the source had at restore point pgdb-drill-/);
    assert.ok(drill.body.duration_ms > 0);
    assert.deepEqual(drillLeftovers(), [], 'the drill removed its container and volume');

    const status = await daemon.api('GET', '/v1/status');
    const item = status.body.items.find((i: any) => i.name === name);
    assert.equal(item.backup.last_drill.ok, true);
    assert.equal(item.backup.last_drill.at, drill.body.at);
    const health = await daemon.api('GET', '/v1/health');
    assert.equal(health.body.status, 'ok', JSON.stringify(health.body.problems));
    // The source was not touched and still takes writes.
    await query(url, 'INSERT INTO items VALUES (5000, $1)', ['after the drill']);
    assert.equal(Number((await query(url, 'SELECT count(*) AS n FROM items'))[0].n), 1301);
    assert.equal(receiver.deliveries.filter((d) => d.body?.database === name).length, 0, 'no alert while all is well');
  });

  test('bad input: unknown database 404, bad name 400, no backup yet 409 NO_BACKUP; nothing recorded', async () => {
    expectError(await daemon.api('POST', '/v1/db/no-such-db/backups/verify'), 404, 'DB_NOT_FOUND', /no-such-db/);
    expectError(await daemon.api('POST', '/v1/db/Bad_Name/backups/verify'), 400, 'INVALID_REQUEST');
    const unknown = await pgdb(['backup', 'verify', 'no-such-db']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no database named "no-such-db"/);
    const stray = await pgdb(['backup', name, 'extra']);
    assert.equal(stray.code, 2, 'a second name without verify is a usage error');
    assert.match(stray.stderr, /did you mean `backup verify extra`/);
    // A drill of "drilled" holds the one-at-a-time queue, so the new database's first backup waits behind it.
    const busy = daemon.api('POST', `/v1/db/${name}/backups/verify`);
    await sleep(500);
    const fresh = await daemon.api('POST', '/v1/deploy', { name: 'fresh' });
    assert.equal(fresh.status, 201, JSON.stringify(fresh.body));
    expectError(await daemon.api('POST', '/v1/db/fresh/backups/verify'), 409, 'NO_BACKUP', /no finished backup/);
    const status = await daemon.api('GET', '/v1/status');
    assert.equal(status.body.items.find((i: any) => i.name === 'fresh').backup.last_drill, null, 'the refused drill recorded nothing');
    assert.equal((await busy).body.ok, true);
    assert.deepEqual(drillLeftovers(), []);
  });

  test('a byte flipped in a stored backup file: the drill fails, health is degraded naming the database, and the webhook names it', async (t) => {
    const label = await latestBackup(name);
    const stanza = stanzaOf(name);
    const file = join(daemon.dataDir, 'backups', stanza, 'backup', stanza, label, 'pg_data', 'base', '1', '1247.zst');
    const bytes = readFileSync(file);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] ^= 0xff;
    writeFileSync(file, bytes);

    const drill = await daemon.api('POST', `/v1/db/${name}/backups/verify`);
    assert.equal(drill.status, 200, JSON.stringify(drill.body));
    assert.equal(drill.body.ok, false, 'the corrupted backup must not pass');
    assert.equal(drill.body.backup, label);
    assert.match(drill.body.detail, /error|corrupt/i);
    t.diagnostic(`failed drill: ${drill.body.detail}`);
    assert.deepEqual(drillLeftovers(), [], 'a failed drill removes its container and volume too');

    const health = await daemon.api('GET', '/v1/health');
    assert.equal(health.body.status, 'degraded');
    assert.ok(health.body.problems.some((p: string) => p.includes(`restore drill of "${name}" failed`)), JSON.stringify(health.body.problems));
    const status = await daemon.api('GET', '/v1/status');
    const item = status.body.items.find((i: any) => i.name === name);
    assert.equal(item.backup.last_drill.ok, false);
    assert.ok(item.backup.problems.some((p: string) => p.includes('restore drill')));

    const alert = await eventually('the problem alert', 60_000, async () => receiver.about(name, 'problem').find((d) => d.status === 204));
    assert.match(alert.body.problem, /restore drill of "drilled" failed/);
    assert.equal(alert.body.server, '127.0.0.1');
    assert.ok(!Number.isNaN(Date.parse(alert.body.at)));
    assert.equal(alert.path, `/hooks/${SECRET}`);

    const cli = await pgdb(['backup', 'verify', name]);
    assert.equal(cli.code, 1, 'a failed drill fails the command');
    assert.match(cli.stdout, /^drilled: restore drill FAILED after [\d.]+ s: backup \S+ did not pass: /);
    assert.match(cli.stderr, /the restore drill of drilled failed/);
  });

  test('the webhook receiver fails twice: the resolved event still arrives (retries), after a new backup passes its drill; a source that never stops writing is not compared', async () => {
    receiver.failNext = 2;
    const before = receiver.deliveries.length;
    const taken = await daemon.api('POST', `/v1/db/${name}/backups`, { type: 'full' });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    // A commit every few milliseconds while the drill looks for a quiet restore point: it never finds one.
    let writing = true;
    const writer = (async () => {
      const client = new pg.Client({ connectionString: url.replace(/\?.*$/, ''), ssl: { rejectUnauthorized: false } });
      client.on('error', () => undefined);
      await client.connect();
      try {
        while (writing) await client.query('INSERT INTO empty_one VALUES (1)');
      } finally {
        await client.end();
      }
    })();
    let cli;
    try {
      cli = await pgdb(['backup', 'verify', name, '--json']);
    } finally {
      writing = false;
      await writer;
    }
    assert.equal(cli.code, 0, cli.stderr);
    const drill = JSON.parse(cli.stdout);
    assert.equal(drill.ok, true, drill.detail);
    assert.equal(drill.backup, taken.body.label);
    assert.equal(drill.comparison.status, 'not_compared', JSON.stringify(drill.comparison));
    assert.match(drill.comparison.reason, /never quiet at a restore point in 5 tries/);
    assert.ok(drill.comparison.restore_point, 'restored to the last restore point all the same');
    assert.match(drill.detail, /NOT compared with the source: the source was never quiet/);
    assert.ok(drill.tables.every((t: any) => t.source_rows === null), 'no source figures without a comparison');

    const delivered = await eventually('the resolved alert', 90_000, async () => receiver.about(name, 'resolved').find((d) => d.status === 204));
    const attempts = receiver.deliveries.slice(before).filter((d) => d.body?.event === 'resolved' && d.body?.database === name);
    assert.deepEqual(attempts.map((d) => d.status), [500, 500, 204], 'two failed attempts, then delivered');
    assert.match(delivered.body.problem, /restore drill of "drilled" failed/);
    const health = await daemon.api('GET', '/v1/health');
    assert.equal(health.body.status, 'ok', JSON.stringify(health.body.problems));
    assert.ok(!daemon.logs().includes(SECRET), 'the webhook URL\'s secret path is never logged');
  });

  test('a hostile tenant: traps behind catalog names, row security, hostile names and an armed search_path change nothing; the drill compares every table', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'hostile' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const tenantUrl = deployed.body.database_url;
    const db = deployed.body.db;
    const own = { options: '-c search_path=pg_catalog,public' };
    await latestBackup('hostile');
    // Made after the backup: the copy gets all of it from the WAL up to the restore point.
    await query(tenantUrl, `
      CREATE TABLE public.trap_log (via text NOT NULL, who name NOT NULL, superuser boolean NOT NULL);
      CREATE FUNCTION public.trap(via text) RETURNS boolean LANGUAGE plpgsql AS $$
      DECLARE su boolean := pg_catalog.current_setting('is_superuser') = 'on';
      BEGIN
        INSERT INTO public.trap_log VALUES (via, session_user, su);
        IF su THEN
          EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()));
        END IF;
        RETURN true;
      END $$;
      CREATE VIEW public.pg_class AS SELECT c.* FROM pg_catalog.pg_class c WHERE public.trap('pg_class');
      CREATE VIEW public.pg_namespace AS SELECT n.* FROM pg_catalog.pg_namespace n WHERE public.trap('pg_namespace');
      CREATE VIEW public.pg_database AS SELECT d.* FROM pg_catalog.pg_database d WHERE public.trap('pg_database');
      CREATE FUNCTION public.pg_current_snapshot() RETURNS text LANGUAGE sql AS $$ SELECT public.trap('pg_current_snapshot()')::text $$;
      CREATE FUNCTION public.pg_create_restore_point(text) RETURNS text LANGUAGE sql AS $$ SELECT public.trap('pg_create_restore_point()')::text $$;
      CREATE FUNCTION public.trap_count(bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('count(*)'); RETURN $1 + 1; END $$;
      CREATE AGGREGATE public.count(*) (SFUNC = public.trap_count, STYPE = bigint, INITCOND = '0');
      CREATE FUNCTION public.trap_eq(name, name) RETURNS boolean LANGUAGE sql AS $$ SELECT public.trap('=') AND $1::text OPERATOR(pg_catalog.=) $2::text $$;
      CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.trap_eq);
      CREATE SCHEMA "we""ird schema";
      CREATE TABLE "we""ird schema"."it's a
new line" (g int);
      INSERT INTO "we""ird schema"."it's a
new line" SELECT pg_catalog.generate_series(1, 11);
      CREATE TABLE public."tab	and ""quote""" AS SELECT pg_catalog.generate_series(1, 4) AS g;
      -- Row security that hides every row, from the owner too: a count as the tenant would differ from the copy's.
      CREATE TABLE public.secret AS SELECT pg_catalog.generate_series(1, 5) AS g;
      ALTER TABLE public.secret ENABLE ROW LEVEL SECURITY;
      ALTER TABLE public.secret FORCE ROW LEVEL SECURITY;
      CREATE POLICY hide ON public.secret USING (public.trap('policy') AND false);
    `, [], own);
    await query(tenantUrl, `ALTER DATABASE "${db}" SET search_path = public, pg_catalog`, [], own);
    // Positive control: a new session of the tenant's own, with no options, walks into the traps.
    await query(tenantUrl, 'SELECT pg_current_snapshot(), count(*) FROM pg_class');
    assert.ok((await query(tenantUrl, 'SELECT via FROM public.trap_log', [], own)).length >= 3, 'the traps are armed');
    await query(tenantUrl, 'DELETE FROM public.trap_log', [], own);

    const drill = await daemon.api('POST', '/v1/db/hostile/backups/verify');
    assert.equal(drill.status, 200, JSON.stringify(drill.body));
    assert.equal(drill.body.ok, true, drill.body.detail);
    assert.equal(drill.body.comparison.status, 'match', JSON.stringify(drill.body.comparison));
    const tables = drill.body.tables.filter((t: any) => t.database === db).map((t: any) => [t.table, t.rows, t.source_rows]);
    assert.deepEqual(tables, [
      ['public.secret', 5, 5],
      ['public.tab\tand "quote"', 4, 4],
      ['public.trap_log', 0, 0],
      ['we"ird schema.it\'s a\nnew line', 11, 11],
    ]);
    assert.deepEqual(await query(tenantUrl, 'SELECT via, who, superuser FROM public.trap_log', [], own), [], "no trap ran in any of the drill's sessions");
    const [role] = await query(tenantUrl, 'SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user', [], own);
    assert.equal(role.rolsuper, false, 'the tenant is no superuser');
    assert.deepEqual(drillLeftovers(), []);
  });

  test('a WAL segment lost from the repository between the backup and the restore point: the drill fails, naming the point it could not reach', async (t) => {
    const taken = await daemon.api('POST', `/v1/db/${name}/backups`, { type: 'full' });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    await query(url, "INSERT INTO items SELECT g, 'lost' FROM generate_series(2001, 2500) g");
    // The segment that holds those rows is switched out and archived, then removed from the repository.
    const container = daemon.record(name).container_id;
    const psql = (sql: string) => docker('exec', '-u', 'postgres', container, 'psql', '-X', '-At', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres', '-c', sql).trim();
    const segment = psql('SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())');
    psql('SELECT pg_catalog.pg_switch_wal()');
    const stanza = stanzaOf(name);
    const archive = join(daemon.dataDir, 'backups', stanza, 'archive', stanza);
    const file = await eventually(`segment ${segment} in the repository`, 60_000, async () => {
      for (const timeline of readdirSync(archive).filter((d) => !d.includes('.'))) {
        const dir = join(archive, timeline, segment.slice(0, 16));
        const found = existsSync(dir) ? readdirSync(dir).find((f) => f.startsWith(`${segment}-`)) : undefined;
        if (found) return join(dir, found);
      }
      return undefined;
    });
    rmSync(file);

    const drill = await daemon.api('POST', `/v1/db/${name}/backups/verify`);
    assert.equal(drill.status, 200, JSON.stringify(drill.body));
    t.diagnostic(`failed drill: ${drill.body.detail}`);
    assert.equal(drill.body.ok, false, "a copy that cannot reach the source's restore point must not pass");
    assert.equal(drill.body.backup, taken.body.label);
    assert.match(drill.body.detail, /the copy did not reach restore point pgdb-drill-[a-z0-9]+-\d, made in the source just before the drill: the repository lacks WAL/);
    assert.match(drill.body.detail, /recovery ended before configured recovery target was reached/);
    assert.equal(drill.body.comparison.status, 'not_compared');
    assert.equal(drill.body.comparison.restore_point.name, /restore point (\S+),/.exec(drill.body.detail)![1]);
    assert.deepEqual(drillLeftovers(), []);
    const health = await daemon.api('GET', '/v1/health');
    assert.ok(health.body.problems.some((p: string) => p.includes(`restore drill of "${name}" failed`) && p.includes('did not reach restore point')), JSON.stringify(health.body.problems));
  });

  test('a bad PGDB_ALERT_WEBHOOK or drill schedule stops the daemon at start (exit 78) without echoing the URL', async () => {
    for (const [env, message] of [
      [{ PGDB_ALERT_WEBHOOK: `ftp://alerts.example/${SECRET}` }, /PGDB_ALERT_WEBHOOK must be an http or https URL/],
      [{ PGDB_ALERT_WEBHOOK: `not a url ${SECRET}` }, /PGDB_ALERT_WEBHOOK must be an http or https URL/],
      [{ PGDB_BACKUP_DRILL_SCHEDULE: 'weekly' }, /PGDB_BACKUP_DRILL_SCHEDULE/],
    ] as Array<[Record<string, string>, RegExp]>) {
      const bad = new TestDaemon({ portRange: PORT_RANGE, env: { PGDB_BACKUP: 'on', ...env } });
      try {
        await assert.rejects(bad.start(), (error: Error) => {
          assert.match(error.message, /exited with 78/);
          assert.match(error.message, message);
          assert.ok(!error.message.includes(SECRET), error.message);
          return true;
        });
      } finally {
        await bad.stop();
        rmSync(bad.dataDir, { recursive: true, force: true });
      }
    }
  });
});

describe('scheduled restore drills', { timeout: 900_000 }, () => {
  let daemon: TestDaemon;

  before(async () => {
    requireDockerAndImages([17]);
    // Every minute: the scheduler's tick (each minute) drills a database once a slot has passed since its first backup.
    daemon = await new TestDaemon({ portRange: SCHEDULED_PORT_RANGE, env: { PGDB_BACKUP: 'on', PGDB_BACKUP_DRILL_SCHEDULE: '* * * * *' } }).start();
  });

  after(async () => {
    await daemon?.destroyAll();
  });

  test('the schedule drills a database by itself, and the result survives a daemon restart (drills.json, 0600)', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'scheduled' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    await query(deployed.body.database_url, 'CREATE TABLE t AS SELECT generate_series(1, 10) AS id');
    const drill = await eventually('a scheduled drill', 300_000, async () => {
      const status = await daemon.api('GET', '/v1/status');
      return status.body.items.find((i: any) => i.name === 'scheduled')?.backup?.last_drill ?? undefined;
    });
    assert.equal(drill.ok, true, drill.detail);
    const file = join(daemon.dataDir, 'drills.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(!readFileSync(file, 'utf8').includes(deployed.body.password), 'no credentials in the drill state');
    await daemon.restart();
    const status = await daemon.api('GET', '/v1/status');
    const after = status.body.items.find((i: any) => i.name === 'scheduled').backup.last_drill;
    assert.ok(after && after.at >= drill.at, JSON.stringify(after));
  });
});
