/**
 * A hostile tenant, with nothing but the DATABASE_URL that a deploy returned,
 * against the real daemon, Docker, pgBackRest and Postgres 15, 17 and 18.
 *
 * The tenant owns its database, so it may set the database's search_path
 * (ALTER DATABASE ... SET search_path = public, pg_catalog) and put in
 * `public` a view or function named like a catalog one: pg_stat_archiver,
 * pg_stat_activity, pg_class, pg_namespace, pg_database, pg_reload_conf(),
 * and a count(*) aggregate. Each calls the trap, which logs who called it
 * and, when the caller is a superuser, makes the tenant's role a superuser
 * (and with `raise` set, also fails the caller's statement, so that a trap
 * sprung in a throwaway copy, such as a drill's or an upgrade's old cluster,
 * is seen in the daemon's answer).
 *
 * Each test makes the daemon do its work in such a database: the periodic
 * archiver check (at least twice), info, credential rotation, certificate
 * renewal, a restore drill, an upgrade, and the import of a pg_dump archive
 * whose CHECK constraint arms the database while it is restored. Each then
 * asserts that the tenant is still no superuser and that no trap ever ran
 * in one of the daemon's sessions. A positive control shows that each trap
 * is armed: a plain new session of the tenant's walks into it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import Docker from 'dockerode';
import { query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(50);
/** The daemon reads every database's archiver 5 s after start, then every 30 s. */
const TWO_ARCHIVER_CHECKS_MS = 70_000;
/** The tenant's own sessions in these tests: not steered by the traps they set. */
const OWN = { options: '-c search_path=pg_catalog,public' };

interface Tenant {
  name: string;
  version: number;
  url: string;
  user: string;
  db: string;
}

/** Run as the tenant in its database: the trap, its log, and the catalog names it hides behind. */
function trapSql(): string {
  return `
CREATE TABLE public.trap_log (at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(), via text NOT NULL, who name NOT NULL, superuser boolean NOT NULL);
CREATE TABLE public.trap_config (raise boolean NOT NULL);
INSERT INTO public.trap_config VALUES (false);
CREATE FUNCTION public.trap(via text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  su boolean := pg_catalog.current_setting('is_superuser') = 'on';
  owner name := (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
BEGIN
  INSERT INTO public.trap_log (via, who, superuser) VALUES (via, session_user, su);
  IF su THEN
    EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', owner);
    IF (SELECT c.raise FROM public.trap_config c) THEN
      RAISE EXCEPTION 'pgdb-trap: % sprung by superuser %', via, session_user;
    END IF;
  END IF;
  RETURN true;
END $$;
CREATE VIEW public.pg_stat_archiver AS SELECT s.* FROM pg_catalog.pg_stat_archiver s WHERE public.trap('pg_stat_archiver');
CREATE VIEW public.pg_stat_activity AS SELECT s.* FROM pg_catalog.pg_stat_activity s WHERE public.trap('pg_stat_activity');
CREATE VIEW public.pg_class AS SELECT c.* FROM pg_catalog.pg_class c WHERE public.trap('pg_class');
CREATE VIEW public.pg_namespace AS SELECT n.* FROM pg_catalog.pg_namespace n WHERE public.trap('pg_namespace');
CREATE VIEW public.pg_database AS SELECT d.* FROM pg_catalog.pg_database d WHERE public.trap('pg_database');
CREATE FUNCTION public.pg_reload_conf() RETURNS boolean LANGUAGE sql AS $$ SELECT public.trap('pg_reload_conf()') $$;
CREATE FUNCTION public.trap_count(bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('count(*)'); RETURN $1 + 1; END $$;
CREATE AGGREGATE public.count(*) (SFUNC = public.trap_count, STYPE = bigint, INITCOND = '0');
`;
}

/** Makes every new session in the database, whoever opens it, search `public` before the catalog. */
function armSql(db: string): string {
  return `ALTER DATABASE "${db.replaceAll('"', '""')}" SET search_path = public, pg_catalog`;
}

describe('a hostile tenant stays a tenant', { timeout: 1_500_000 }, () => {
  let daemon: TestDaemon;
  const tenants = new Map<string, Tenant>();
  let armedAt = 0;

  async function deploy(name: string, version: number): Promise<Tenant> {
    const deployed = await daemon.api('POST', '/v1/deploy', { name, version });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const tenant = { name, version, url: deployed.body.database_url, user: deployed.body.user, db: deployed.body.db };
    tenants.set(name, tenant);
    return tenant;
  }

  async function rolsuper(tenant: Tenant): Promise<boolean> {
    const [row] = await query(tenant.url, 'SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user', [], OWN);
    return row.rolsuper;
  }

  /** The trap's log: who walked into which trap. */
  async function sprung(tenant: Tenant): Promise<Array<{ via: string; who: string; superuser: boolean }>> {
    return query(tenant.url, 'SELECT via, who, superuser FROM public.trap_log ORDER BY at', [], OWN);
  }

  /** The tenant is no superuser, and none of the daemon's sessions (nor any superuser) ever ran its trap. */
  async function assertStillATenant(tenant: Tenant): Promise<void> {
    assert.equal(await rolsuper(tenant), false, `${tenant.name}: the tenant became a superuser`);
    const log = await sprung(tenant);
    assert.deepEqual(log.filter((row) => row.superuser || row.who !== tenant.user), [], `${tenant.name}: the trap ran in someone else's session`);
  }

  /** Positive control: a new session of the tenant's own, with no options, walks into the traps. */
  async function assertArmed(tenant: Tenant): Promise<void> {
    const [path] = await query(tenant.url, 'SHOW search_path');
    assert.equal(path.search_path, 'public, pg_catalog', `${tenant.name} is armed`);
    await query(tenant.url, 'SELECT * FROM pg_stat_archiver');
    await query(tenant.url, 'SELECT pg_reload_conf()');
    const log = await sprung(tenant);
    assert.deepEqual(
      log.map((row) => [row.via, row.who, row.superuser]),
      [['pg_stat_archiver', tenant.user, false], ['pg_reload_conf()', tenant.user, false]],
      `${tenant.name}: the control sprang both traps, as the tenant`,
    );
    await query(tenant.url, 'DELETE FROM public.trap_log', [], OWN);
  }

  /** Runs SQL as the tenant in another database of its cluster, named as it is (no URL to escape it into). */
  async function inDatabase(tenant: Tenant, database: string, sql: string): Promise<void> {
    const url = new URL(tenant.url);
    const client = new pg.Client({
      host: url.hostname,
      port: Number(url.port),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database,
      ssl: { rejectUnauthorized: false },
      ...OWN,
    });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  before(async () => {
    requireDockerAndImages([15, 17, 18]);
    daemon = await new TestDaemon({ portRange: PORT_RANGE, env: { PGDB_BACKUP: 'on', PGDB_BACKUP_DRILL_SCHEDULE: 'off' } }).start();
    for (const [name, version] of [['hostile15', 15], ['hostile17', 17], ['hostile18', 18]] as const) {
      const tenant = await deploy(name, version);
      await query(tenant.url, trapSql(), [], OWN);
      await query(tenant.url, armSql(tenant.db), [], OWN);
      await assertArmed(tenant);
    }
    armedAt = Date.now();
  });

  after(async () => {
    await daemon?.destroyAll();
  });

  test('import: a stock pg_dump archive whose CHECK constraint sets the database search_path while it is restored', async () => {
    // The attacker's archive, made with pg_dump from a database of its own.
    const forge = await deploy('forge', 17);
    await query(forge.url, `
      CREATE SCHEMA src;
      CREATE FUNCTION src.arm(v int) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN
        EXECUTE pg_catalog.format('ALTER DATABASE %I SET search_path = public, pg_catalog', pg_catalog.current_database());
        RETURN true;
      END $$;
      CREATE TABLE src.t (v int CHECK (src.arm(v)));
      INSERT INTO src.t VALUES (1), (2);
    `, [], OWN);
    const archive = execFileSync('docker', [
      'exec', daemon.record('forge').container_id,
      'pg_dump', '--format=custom', '-h', '/var/run/postgresql', '-U', forge.user, '--schema=src', `dbname=${forge.db}`,
    ], { maxBuffer: 64 * 1024 * 1024 });
    assert.equal(archive.subarray(0, 5).toString('latin1'), 'PGDMP');
    tenants.delete('forge');
    assert.equal((await daemon.api('DELETE', '/v1/db/forge')).status, 200);

    const target = await deploy('imported', 17);
    await query(target.url, trapSql(), [], OWN);
    const [before] = await query(target.url, 'SHOW search_path');
    assert.equal(before.search_path, '"$user", public', 'not armed before the import');
    const imported = await fetch(`${daemon.url}/v1/db/imported/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${daemon.token}`, 'content-type': 'application/octet-stream' },
      body: archive,
    });
    assert.equal(imported.status, 200, await imported.clone().text());
    // The archive armed the database as it was restored (the attack's first half worked).
    await assertArmed(target);
    assert.deepEqual((await query(target.url, 'SELECT v FROM src.t ORDER BY v', [], OWN)).map((r) => r.v), [1, 2]);
    await assertStillATenant(target);
    armedAt = Date.now();
  });

  test('info and credential rotation read pg_stat_activity and end sessions without springing a trap', async () => {
    for (const tenant of tenants.values()) {
      const info = await daemon.api('GET', `/v1/db/${tenant.name}`);
      assert.equal(info.status, 200, JSON.stringify(info.body));
      assert.equal(typeof info.body.connections, 'number', `the live part of info was read: ${JSON.stringify(info.body)}`);
    }
    const rotated = await daemon.api('POST', '/v1/db/hostile17/credentials/rotate');
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    tenants.get('hostile17')!.url = rotated.body.database_url;
    for (const tenant of tenants.values()) await assertStillATenant(tenant);
  });

  test("the periodic archiver check, run at least twice, reads the catalog's pg_stat_archiver", async () => {
    const wait = armedAt + TWO_ARCHIVER_CHECKS_MS - Date.now();
    if (wait > 0) await sleep(wait);
    for (const tenant of tenants.values()) await assertStillATenant(tenant);
    const health = await daemon.api('GET', '/v1/health');
    assert.equal(health.body.status, 'ok', JSON.stringify(health.body));
  });

  test('certificate renewal reloads the configuration without springing a trap', async () => {
    const tenant = tenants.get('hostile18')!;
    await daemon.stop();
    const file = join(daemon.dataDir, 'registry.json');
    const registry = JSON.parse(readFileSync(file, 'utf8'));
    registry.items.find((item: { name: string }) => item.name === tenant.name).tls_not_after = '2001-01-01T00:00:00.000Z';
    writeFileSync(file, JSON.stringify(registry, null, 2), { mode: 0o600 });
    await daemon.start();
    await eventually('the renewed certificate', 60_000, async () => (Date.parse(daemon.record(tenant.name).tls_not_after) > Date.now() ? true : undefined));
    for (const t of tenants.values()) await assertStillATenant(t);
  });

  test('a restore drill of an armed copy counts its tables, also in databases named like connection strings and shell code', async () => {
    const tenant = tenants.get('hostile17')!;
    // (A name with a newline is left out: pgBackRest 2.55 then writes a backup manifest it cannot read back.)
    const odd = ['host=/tmp dbname=postgres', "it's; touch /tmp/pgdb-pwned; echo '", 'tab\there'];
    for (const name of odd) {
      await query(tenant.url, `CREATE DATABASE "${name.replaceAll('"', '""')}"`, [], OWN);
      await inDatabase(tenant, name, 'CREATE TABLE public.marker AS SELECT g FROM pg_catalog.generate_series(1, 3) g');
    }
    await query(tenant.url, 'CREATE TABLE public.items AS SELECT g FROM pg_catalog.generate_series(1, 40) g', [], OWN);
    // In the copy the trap also fails the superuser's statement, so a sprung trap shows in the drill's answer.
    await query(tenant.url, 'UPDATE public.trap_config SET raise = true', [], OWN);
    // The first backup, which the deploy started, is done before this one is asked for.
    await eventually('the first backup', 180_000, async () => {
      const listed = await daemon.api('GET', `/v1/db/${tenant.name}/backups`);
      return listed.status === 200 && listed.body.backups.length > 0 ? true : undefined;
    });
    const taken = await daemon.api('POST', `/v1/db/${tenant.name}/backups`, { type: 'full' });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    const drill = await daemon.api('POST', `/v1/db/${tenant.name}/backups/verify`);
    assert.equal(drill.status, 200, JSON.stringify(drill.body));
    assert.doesNotMatch(JSON.stringify(drill.body), /pgdb-trap/);
    assert.equal(drill.body.ok, true, drill.body.detail);
    const tables = drill.body.tables.map((t: { database: string; table: string; rows: number }) => [t.database, t.table, t.rows]);
    assert.deepEqual(tables.filter(([database]: [string]) => database === tenant.db), [
      [tenant.db, 'public.items', 40],
      [tenant.db, 'public.trap_config', 1],
      [tenant.db, 'public.trap_log', 0],
    ]);
    // Every one by its own name, a tab in it too (the drill's lines are JSON), and compared with the source.
    for (const name of odd) {
      assert.deepEqual(tables.filter(([database]: [string]) => database === name), [[name, 'public.marker', 3]], name);
    }
    assert.equal(drill.body.comparison?.status, 'match', JSON.stringify(drill.body.comparison));
    await assertStillATenant(tenant);
  });

  test('upgrade 15 to 17 of an armed database: the dump and the row counts spring no trap', async () => {
    const tenant = tenants.get('hostile15')!;
    await query(tenant.url, 'CREATE TABLE public.items AS SELECT g FROM pg_catalog.generate_series(1, 25) g', [], OWN);
    // pg_database's columns differ between 15 and 17, so this one view of the tenant's would not restore into 17;
    // the old cluster stays armed by the others (count(*), pg_class, pg_namespace, pg_stat_activity).
    await query(tenant.url, 'DROP VIEW public.pg_database', [], OWN);
    await query(tenant.url, 'UPDATE public.trap_config SET raise = true', [], OWN);
    const upgraded = await daemon.api('POST', `/v1/db/${tenant.name}/upgrade`, { version: 17 });
    assert.equal(upgraded.status, 200, JSON.stringify(upgraded.body));
    assert.doesNotMatch(JSON.stringify(upgraded.body), /pgdb-trap/);
    assert.deepEqual([upgraded.body.from_version, upgraded.body.to_version], [15, 17]);
    tenant.version = 17;
    await assertStillATenant(tenant);
    const rolled = await daemon.api('POST', `/v1/db/${tenant.name}/upgrade/rollback`);
    assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
    // Back on the old cluster, which the dump and the counts read: still a tenant there.
    await assertStillATenant(tenant);
  });

  test("what a superuser tenant reads in its container's environment (/proc/1/environ) logs no one in as pgdb_admin", async () => {
    const tenant = tenants.get('hostile17')!;
    const record = daemon.record(tenant.name);
    // As the postgres OS user, which a superuser's COPY ... FROM PROGRAM runs as.
    const environ = execFileSync('docker', ['exec', '-u', 'postgres', record.container_id, 'cat', '/proc/1/environ'], { encoding: 'utf8' }).split('\0');
    const initial = environ.find((line) => line.startsWith('POSTGRES_PASSWORD='))?.slice('POSTGRES_PASSWORD='.length);
    assert.ok(initial, 'the image was given an initial password');
    assert.ok(!environ.some((line) => line.includes(record.admin_password)), "the admin's password is nowhere in the environment");
    const url = new URL(tenant.url);
    const asAdmin = (password: string) =>
      query(`postgres://pgdb_admin:${encodeURIComponent(password)}@${url.host}/postgres?sslmode=require`, 'SELECT 1 AS one');
    await assert.rejects(asAdmin(initial), /password authentication failed for user "pgdb_admin"/);
    // Positive control: the daemon's own password does log in.
    assert.deepEqual(await asAdmin(record.admin_password), [{ one: 1 }]);
  });

  test("a container an earlier release made, with the admin's password in its environment: the daemon's next start changes the password, so what the environment holds logs no one in", async () => {
    const tenant = await deploy('oldenv', 17);
    const record = daemon.record(tenant.name);
    await daemon.stop();
    // The same container, but with the admin's real password in POSTGRES_PASSWORD (as releases before the
    // initial password made it): re-created from its own inspect, with its files under /etc/pgdb copied over.
    const engine = new Docker();
    const old = engine.getContainer(record.container_id);
    const info = await old.inspect();
    await old.stop();
    await old.rename({ name: `${info.Name.slice(1)}-replaced` });
    const [network] = Object.keys(info.NetworkSettings.Networks);
    const made = await engine.createContainer({
      ...info.Config,
      name: info.Name.slice(1),
      Env: info.Config.Env.map((e) => (e.startsWith('POSTGRES_PASSWORD=') ? `POSTGRES_PASSWORD=${record.admin_password}` : e)),
      HostConfig: info.HostConfig,
      NetworkingConfig: { EndpointsConfig: { [network]: {} } },
    });
    execFileSync('sh', ['-c', `docker cp -a ${record.container_id}:/etc/pgdb - | docker cp -a - ${made.id}:/etc`]);
    await old.remove();
    await made.start();
    const file = JSON.parse(readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8'));
    file.items.find((item: { name: string }) => item.name === tenant.name).container_id = made.id;
    writeFileSync(join(daemon.dataDir, 'registry.json'), JSON.stringify(file), { mode: 0o600 });
    const environ = () => execFileSync('docker', ['exec', '-u', 'postgres', made.id, 'cat', '/proc/1/environ'], { encoding: 'utf8' }).split('\0');
    assert.ok(environ().includes(`POSTGRES_PASSWORD=${record.admin_password}`), 'the container carries the real password, as an old one did');

    await daemon.start();
    const changed = await eventually("the admin's password changed", 60_000, async () => {
      const now = daemon.record(tenant.name);
      return now.admin_password !== record.admin_password && now.admin_password_previous === undefined ? now : undefined;
    });
    const url = new URL(tenant.url);
    const asAdmin = (password: string) =>
      query(`postgres://pgdb_admin:${encodeURIComponent(password)}@${url.host}/postgres?sslmode=require`, 'SELECT 1 AS one');
    assert.ok(environ().includes(`POSTGRES_PASSWORD=${record.admin_password}`), 'the environment cannot change');
    await assert.rejects(asAdmin(record.admin_password), /password authentication failed for user "pgdb_admin"/);
    assert.deepEqual(await asAdmin(changed.admin_password), [{ one: 1 }]);
    // The tenant and the daemon's own work are as before.
    assert.deepEqual(await query(tenant.url, 'SELECT 1 AS one', [], OWN), [{ one: 1 }]);
    assert.equal((await daemon.api('GET', `/v1/db/${tenant.name}`)).status, 200);
  });

  /**
   * As a Postgres bug might: the daemon's superuser, over the container's socket, makes roles it should never have.
   * The tenant's role becomes a superuser and a member of pg_execute_server_program; a new role `backdoor` logs in as a superuser.
   */
  function escalateBehindTheDaemon(tenant: Tenant): void {
    execFileSync('docker', [
      'exec', daemon.record(tenant.name).container_id,
      'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres', '-c',
      `ALTER ROLE "${tenant.user}" SUPERUSER CREATEROLE; GRANT pg_execute_server_program TO "${tenant.user}"; CREATE ROLE backdoor SUPERUSER LOGIN PASSWORD 'open-sesame'`,
    ]);
  }

  async function rolesOf(tenant: Tenant): Promise<Array<{ rolname: string; rolsuper: boolean; rolcreaterole: boolean; member_of: string[] }>> {
    return query(tenant.url, `SELECT r.rolname, r.rolsuper, r.rolcreaterole,
        ARRAY(SELECT g.rolname FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles g ON g.oid = a.roleid WHERE a.member = r.oid ORDER BY 1)::text[] AS member_of
      FROM pg_catalog.pg_roles r WHERE r.rolname IN ($1, 'backdoor') ORDER BY r.rolname`, [tenant.user], OWN);
  }

  test('a role made a superuser behind the daemon is a tenant again after an import (Postgres 15)', async () => {
    const tenant = tenants.get('hostile15')!;
    await query(tenant.url, 'CREATE SCHEMA carried; CREATE TABLE carried.t (v int); INSERT INTO carried.t VALUES (7)', [], OWN);
    const archive = execFileSync('docker', [
      'exec', daemon.record(tenant.name).container_id,
      'pg_dump', '--format=custom', '-h', '/var/run/postgresql', '-U', tenant.user, '--schema=carried', `dbname=${tenant.db}`,
    ], { maxBuffer: 16 * 1024 * 1024 });
    await query(tenant.url, 'DROP SCHEMA carried CASCADE', [], OWN);
    escalateBehindTheDaemon(tenant);
    assert.deepEqual((await rolesOf(tenant)).map((r) => [r.rolname, r.rolsuper]), [['backdoor', true], [tenant.user, true]], 'the escalation took');
    const imported = await fetch(`${daemon.url}/v1/db/${tenant.name}/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${daemon.token}`, 'content-type': 'application/octet-stream' },
      body: archive,
    });
    assert.equal(imported.status, 200, await imported.clone().text());
    assert.deepEqual(await rolesOf(tenant), [
      { rolname: 'backdoor', rolsuper: false, rolcreaterole: false, member_of: [] },
      { rolname: tenant.user, rolsuper: false, rolcreaterole: false, member_of: [] },
    ]);
    assert.deepEqual(await query(tenant.url, 'SELECT v FROM carried.t', [], OWN), [{ v: 7 }]);
  });

  test('a volume written while its role was a superuser is adopted as a tenant\'s (Postgres 18: memberships revoked as granted; what it made as a superuser acts for no one)', async () => {
    const tenant = tenants.get('hostile18')!;
    escalateBehindTheDaemon(tenant);
    // What a superuser leaves behind to get its rights back later: an `internal` alias of pg_read_file
    // (whose only guard is its EXECUTE grant), a SECURITY DEFINER function owned by the daemon's
    // superuser, and an event trigger that makes the tenant a superuser when a superuser runs DDL.
    await query(tenant.url, `DO $$ BEGIN
        EXECUTE pg_catalog.format('CREATE FUNCTION public.read_server_file(text) RETURNS text LANGUAGE internal STRICT AS %L',
          (SELECT prosrc FROM pg_catalog.pg_proc WHERE oid = 'pg_catalog.pg_read_file(text)'::pg_catalog.regprocedure));
      END $$;
      CREATE FUNCTION public.become() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
        AS $f$ BEGIN EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', session_user); END $f$;
      ALTER FUNCTION public.become() OWNER TO pgdb_admin;
      GRANT EXECUTE ON FUNCTION public.become() TO PUBLIC;
      CREATE FUNCTION public.on_ddl() RETURNS event_trigger LANGUAGE plpgsql
        AS $f$ BEGIN EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '${tenant.user}'); END $f$;
      CREATE EVENT TRIGGER on_ddl ON ddl_command_start EXECUTE FUNCTION public.on_ddl();
      ALTER ROLE pgdb_admin SET search_path = public, pg_catalog;
      -- Traps behind the catalog names the daemon's clean-up reads in this database.
      CREATE VIEW public.pg_proc AS SELECT p.* FROM pg_catalog.pg_proc p WHERE public.trap('pg_proc');
      CREATE VIEW public.pg_roles AS SELECT r.* FROM pg_catalog.pg_roles r WHERE public.trap('pg_roles');
      CREATE VIEW public.pg_event_trigger AS SELECT e.* FROM pg_catalog.pg_event_trigger e WHERE public.trap('pg_event_trigger')`, [], OWN);
    // Positive control: as a superuser the alias reads a server file.
    assert.match((await query(tenant.url, "SELECT public.read_server_file('/etc/passwd') AS f", [], OWN))[0].f, /^root:/);
    const volume = daemon.record(tenant.name).volume_name;
    assert.equal((await daemon.api('DELETE', `/v1/db/${tenant.name}?keep_data=true`)).status, 200);
    const adopted = await daemon.api('POST', '/v1/deploy', { name: 'adopted18', from_volume: volume });
    assert.equal(adopted.status, 201, JSON.stringify(adopted.body));
    const again = { ...tenant, name: 'adopted18', url: adopted.body.database_url };
    tenants.delete(tenant.name);
    tenants.set(again.name, again);
    assert.equal(adopted.body.user, tenant.user);
    assert.deepEqual(await rolesOf(again), [
      { rolname: 'backdoor', rolsuper: false, rolcreaterole: false, member_of: [] },
      { rolname: tenant.user, rolsuper: false, rolcreaterole: false, member_of: [] },
    ]);
    await assert.rejects(query(again.url, "SELECT public.read_server_file('/etc/passwd')", [], OWN), /permission denied for function read_server_file/);
    await assert.rejects(query(again.url, 'SELECT public.become()', [], OWN), /permission denied for function become/);
    assert.deepEqual(
      await query(again.url, 'SELECT evtname, evtenabled, pg_catalog.pg_get_userbyid(evtowner) AS owner FROM pg_catalog.pg_event_trigger', [], OWN),
      [{ evtname: 'on_ddl', evtenabled: 'D', owner: 'pgdb_admin' }],
    );
    await assert.rejects(query(again.url, 'ALTER EVENT TRIGGER on_ddl ENABLE', [], OWN), /must be owner of event trigger on_ddl/);
    assert.deepEqual(await query(again.url, "SELECT pg_catalog.count(*)::int AS n FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'pgdb_admin'", [], OWN), [{ n: 0 }]);
    // The clean-up ran in this database without walking into the traps; a plain session of the tenant's does (control).
    await assertStillATenant(again);
    await query(again.url, 'SELECT 1 FROM pg_event_trigger');
    assert.ok((await sprung(again)).some((row) => row.via === 'pg_event_trigger' && row.who === tenant.user && !row.superuser), 'the control sprang the trap');
  });
});

