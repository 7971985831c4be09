/**
 * `pgdb export` and `pgdb import` (issue 14), and `pgdb resize --cpus`,
 * through the built CLI and the API, against the real pgdbd, the real
 * Docker engine and the Postgres it runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HTTP_LIMITS } from '../daemon/src/common/http-edge.js';
import { CLI, pgdbCli } from './support/cli.js';
import { docker, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { run, type Env } from './support/run.js';
import { testPorts } from './support/ports.js';
import { eventually } from './support/eventually.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(50);

/** The schema of a database as a comparable text: tables and columns, indexes, views, sequences. */
const SCHEMA_QUERY = `SELECT string_agg(line, E'\\n' ORDER BY line) AS schema FROM (
  SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS line
    FROM information_schema.columns WHERE table_schema = 'public'
  UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'public'
  UNION ALL SELECT 'sequence ' || sequencename || ' ' || coalesce(last_value, 0) FROM pg_sequences WHERE schemaname = 'public'
  UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
) lines`;

const ROW_COUNTS = `SELECT (SELECT count(*) FROM customers)::int AS customers, (SELECT count(*) FROM orders)::int AS orders,
  (SELECT sum(total)::text FROM orders) AS total`;

describe('export and import against a real pgdbd', () => {
  const daemon = new TestDaemon({ portRange: PORT_RANGE });
  const work = mkdtempSync(join(tmpdir(), 'pgdb-transfer-'));
  let env: Env;
  const urls: Record<string, string> = {};
  const { pgdb, json } = pgdbCli(() => env);
  /** A shell command line with $CLI for the built pgdb: redirections are the point of export and import. */
  const sh = (line: string) => run('/bin/sh', ['-c', line], { ...env, CLI: `${process.execPath} ${CLI}` });
  const deploy = async (name: string) => {
    urls[name] = (await json(['deploy', '--name', name])).DATABASE_URL;
    return urls[name];
  };

  before(async () => {
    requireDockerAndImages([17]);
    await daemon.start();
    env = { XDG_CONFIG_HOME: join(work, 'config'), PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
    await deploy('shop');
    await query(urls.shop, `
      CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, created date DEFAULT now());
      CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL REFERENCES customers, total numeric(10,2) CHECK (total >= 0));
      CREATE INDEX orders_customer ON orders (customer);
      CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
      INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
      INSERT INTO orders (customer, total) SELECT 1 + g % 2000, (g % 500) + 0.25 FROM generate_series(1, 20000) g;`);
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('export from one database and import into another: the same row counts and schema', async () => {
    const exported = await sh(`$CLI export shop > ${work}/shop.dump`);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(readFileSync(join(work, 'shop.dump')).subarray(0, 5).toString(), 'PGDMP');

    const copy = await deploy('shop-copy');
    const imported = await sh(`$CLI import shop-copy < ${work}/shop.dump`);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stderr, /^imported .+ into shop-copy in [\d.]+s\n$/);

    assert.deepEqual(await query(copy, ROW_COUNTS), await query(urls.shop, ROW_COUNTS));
    const [source] = await query(urls.shop, SCHEMA_QUERY);
    const [target] = await query(copy, SCHEMA_QUERY);
    assert.match(source.schema, /index CREATE INDEX orders_customer/);
    assert.equal(target.schema, source.schema);
    // Everything belongs to the database's own role, which can use and change it.
    await query(copy, "INSERT INTO customers (email) VALUES ('new@example.com'); DROP VIEW big_orders");

    // --output writes the file only once the dump is complete; --json describes it.
    const file = join(work, 'shop-o.dump');
    const described = await json(['export', 'shop', '--output', file]);
    assert.deepEqual(described, { name: 'shop', file, bytes: statSync(file).size });
    assert.ok(!existsSync(`${file}.partial`));
    // An import from a file argument, with --json.
    await deploy('shop-copy2');
    const result = await json(['import', 'shop-copy2', file]);
    assert.deepEqual([result.name, result.bytes], ['shop-copy2', statSync(file).size]);
    assert.deepEqual(await query(urls['shop-copy2'], ROW_COUNTS), await query(urls.shop, ROW_COUNTS));
  });

  it('a complete export ends with the pgdb-export trailer', async () => {
    const { status, bytes, trailers } = await rawExport(daemon, 'shop', () => undefined);
    assert.equal(status, 200);
    assert.ok(bytes > 1000);
    assert.equal(trailers['pgdb-export'], 'complete');
  });

  it('a truncated dump is refused and the database is unchanged', async () => {
    const target = await deploy('partial');
    await query(target, "CREATE TABLE sentinel (note text); INSERT INTO sentinel VALUES ('before')");
    const whole = readFileSync(join(work, 'shop.dump'));
    for (const fraction of [0.5, 0.97]) {
      writeFileSync(join(work, 'cut.dump'), whole.subarray(0, Math.floor(whole.length * fraction)));
      const cut = await sh(`$CLI import partial < ${work}/cut.dump`);
      assert.equal(cut.code, 1, `cut at ${fraction}: ${cut.stderr}`);
      assert.match(cut.stderr, /error: the import into "partial" failed.*(end of file|could not read)/);
      assert.match(cut.stderr, /nothing was changed/);
      const tables = await query(target, "SELECT string_agg(tablename, ',' ORDER BY tablename) AS t FROM pg_tables WHERE schemaname = 'public'");
      assert.equal(tables[0].t, 'sentinel', `cut at ${fraction}: nothing of the archive is left`);
    }
    assert.deepEqual(await query(target, 'SELECT note FROM sentinel'), [{ note: 'before' }]);
  });

  it('an import that fails on an object says which one, and changes nothing', async () => {
    const target = await deploy('clash');
    await query(target, 'CREATE TABLE orders (id int); INSERT INTO orders VALUES (42)');
    const failed = await sh(`$CLI import clash < ${work}/shop.dump`);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /error: the import into "clash" failed at CREATE TABLE public\.orders: ERROR: relation "orders" already exists; nothing was changed/);
    assert.deepEqual(await query(target, "SELECT string_agg(tablename, ',') AS t FROM pg_tables WHERE schemaname = 'public'"), [{ t: 'orders' }]);
    assert.deepEqual(await query(target, 'SELECT id FROM orders'), [{ id: 42 }]);
    // --clean replaces what the archive has.
    const cleaned = await sh(`$CLI import clash --clean < ${work}/shop.dump`);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.deepEqual(await query(target, ROW_COUNTS), await query(urls.shop, ROW_COUNTS));
  });

  it('a file that is not a dump is refused (by the CLI for a file, by the daemon on stdin and through the API); nothing changes', async () => {
    const target = urls.partial;
    writeFileSync(join(work, 'plain.sql'), 'CREATE TABLE hacked (id int);\n');
    const file = await pgdb(['import', 'partial', join(work, 'plain.sql')]);
    assert.equal(file.code, 1);
    assert.match(file.stderr, /error: .*plain\.sql is not a pg_dump custom-format archive/);
    const piped = await sh(`$CLI import partial < ${work}/plain.sql`);
    assert.equal(piped.code, 1);
    assert.match(piped.stderr, /error: the upload is not a pg_dump custom-format archive/);
    const empty = await sh('$CLI import partial < /dev/null');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /error: the upload is empty/);
    const api = await upload(daemon, '/v1/db/partial/import', Buffer.from('CREATE TABLE hacked (id int);'));
    assert.deepEqual([api.status, JSON.parse(api.body).error.code], [400, 'INVALID_REQUEST']);
    const json = await daemon.api('POST', '/v1/db/partial/import', {});
    assert.deepEqual([json.status, json.body.error.code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
    // Other routes take no raw bytes.
    const deployBytes = await upload(daemon, '/v1/deploy', Buffer.from('PGDMP'));
    assert.deepEqual([deployBytes.status, JSON.parse(deployBytes.body).error.code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
    assert.deepEqual(await query(target, "SELECT string_agg(tablename, ',') AS t FROM pg_tables WHERE schemaname = 'public'"), [{ t: 'sentinel' }]);
  });

  it('an import whose client goes away mid-upload is rolled back, and the database is free again', async () => {
    const target = urls.partial;
    const whole = readFileSync(join(work, 'shop.dump'));
    const outgoing = request(`${daemon.url}/v1/db/partial/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${daemon.token}`, 'content-type': 'application/octet-stream' },
    });
    outgoing.on('error', () => undefined);
    outgoing.write(whole.subarray(0, Math.floor(whole.length / 2)));
    // pg_restore has started on what arrived; then the client dies.
    const restoring = async () => (await query(target, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'pgdb-import-%'"))[0].n as number;
    await eventually('the restore session starting', 10_000, async () => ((await restoring()) > 0 ? true : undefined), 100);
    outgoing.destroy();
    await eventually('the restore session ending once its client is gone', 10_000, async () => ((await restoring()) === 0 ? true : undefined), 100);
    assert.deepEqual(await query(target, "SELECT string_agg(tablename, ',') AS t FROM pg_tables WHERE schemaname = 'public'"), [{ t: 'sentinel' }]);
    // The database's slot is free: another operation on it runs.
    const stop = await daemon.api('POST', '/v1/db/partial/restart');
    assert.equal(stop.status, 200, JSON.stringify(stop.body));
  });

  it('an unknown database: export and import exit 1 and say so', async () => {
    for (const line of [`$CLI export nope > ${work}/nope.dump`, `$CLI import nope < ${work}/shop.dump`]) {
      const result = await sh(line);
      assert.equal(result.code, 1, line);
      assert.match(result.stderr, /error: no database named "nope"\nhint: run `pgdb status`/, line);
    }
    const api = await upload(daemon, '/v1/db/nope/import', readFileSync(join(work, 'shop.dump')));
    assert.deepEqual([api.status, JSON.parse(api.body).error.code], [404, 'DB_NOT_FOUND']);
    const refused = await pgdb(['export', 'shop', '--json']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--json needs --output/);
  });

  it('an upload slower than the daemon\'s whole-request limit still imports', async () => {
    const target = await deploy('slow');
    const dump = readFileSync(join(work, 'shop.dump'));
    const seconds = HTTP_LIMITS.requestTimeoutMs / 1000 + 5;
    const parts = 10;
    const answer = await upload(daemon, '/v1/db/slow/import', dump, { parts, pauseMs: (seconds * 1000) / parts });
    assert.equal(answer.status, 200, answer.body);
    assert.deepEqual(await query(target, ROW_COUNTS), await query(urls.shop, ROW_COUNTS));
  });

  it('pg_dump failing after the first byte: no trailer for the API client, exit 1 for the CLI', async () => {
    const big = await deploy('big');
    // Incompressible enough that the dump cannot sit in the buffers between pg_dump and the client.
    const md5s = Array.from({ length: 8 }, () => 'md5(random()::text)').join(' || ');
    await query(big, `CREATE TABLE blob (id int, v text); INSERT INTO blob SELECT g, ${md5s} FROM generate_series(1, 150000) g`);
    const endDump = async () => {
      await eventually('pg_dump seen copying (and ended)', 10_000, async () => {
        const [row] = await query(big, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS ended FROM pg_stat_activity WHERE application_name LIKE 'pgdb-export-%' AND query LIKE 'COPY%'");
        return row.ended > 0 ? true : undefined;
      }, 100);
    };

    // Through the API: the client reads the first bytes, stops reading, pg_dump is killed, then it reads on.
    const raw = await rawExport(daemon, 'big', endDump);
    assert.equal(raw.status, 200);
    assert.ok(raw.broken, `the stream ended normally after ${raw.bytes} bytes`);
    assert.equal(raw.trailers['pgdb-export'], undefined);

    // Through the CLI: its stdout is a pipe nobody reads until pg_dump has been killed.
    const child = spawn(process.execPath, [CLI, 'export', 'big'], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    await endDump();
    let bytes = 0;
    child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1, stderr);
    assert.ok(bytes > 0);
    assert.match(stderr, /error: the export of "big" failed after \d+ bytes: the daemon ended the stream without marking the dump complete/);
    // The database's slot is free again: the next export works.
    const again = await pgdb(['export', 'big', '--output', join(work, 'big.dump')]);
    assert.equal(again.code, 0, again.stderr);
  });

  it('resize --cpus sets the running container\'s CPU limit without a restart; 0, negatives and more than the host has are refused', async () => {
    const container = () => docker('ps', '-aq', '--no-trunc', '--filter', `label=pgdb.name=shop`, '--filter', `label=pgdb.instance=${daemon.instanceId()}`);
    const before = docker('inspect', '--format', '{{.State.StartedAt}}', container());
    // A new database gets PGDB_DEFAULT_CPUS (1 unless set, at most the host's count).
    const byDefault = Math.min(1, availableParallelism());
    assert.equal(docker('inspect', '--format', '{{.HostConfig.NanoCpus}}', container()), String(byDefault * 1e9));
    const resized = await pgdb(['resize', 'shop', '--cpus', '0.5']);
    assert.deepEqual([resized.code, resized.stdout], [0, `shop: cpu limit 0.5 (was ${byDefault})\n`], resized.stderr);
    assert.equal(docker('inspect', '--format', '{{.HostConfig.NanoCpus}}', container()), '500000000');
    assert.equal(docker('inspect', '--format', '{{.State.StartedAt}}', container()), before, 'no restart');
    const info = await json(['info', 'shop']);
    assert.equal(info.limits.cpus, 0.5);
    assert.match((await pgdb(['info', 'shop'])).stdout, /^cpu limit: +0\.5 CPUs$/m);

    for (const bad of ['0', '-1', 'lots']) {
      const refused = await pgdb(['resize', 'shop', `--cpus=${bad}`]);
      assert.equal(refused.code, 2, bad);
      assert.match(refused.stderr, /error: --cpus must be a number from 0\.01/, bad);
    }
    for (const body of [{ cpus: 0 }, { cpus: -1 }, { cpus: 'two' }, {}]) {
      const api = await daemon.api('POST', '/v1/db/shop/resize', body);
      assert.deepEqual([api.status, api.body.error.code], [400, 'INVALID_REQUEST'], JSON.stringify(body));
    }
    const host = availableParallelism();
    const huge = await pgdb(['resize', 'shop', '--cpus', String(host + 1)]);
    assert.equal(huge.code, 1);
    assert.match(huge.stderr, new RegExp(`error: cpus ${host + 1} is more than this server has \\(${host}\\); nothing was changed`));
    assert.equal(docker('inspect', '--format', '{{.HostConfig.NanoCpus}}', container()), '500000000');

    // The limit is in the record: a re-created container keeps it.
    await json(['stop', 'shop']);
    docker('rm', container());
    await json(['start', 'shop']);
    assert.equal(docker('inspect', '--format', '{{.HostConfig.NanoCpus}}', container()), '500000000');
    const both = await json(['resize', 'shop', '--cpus', '1', '--memory-mb', '512']);
    assert.deepEqual(both, {
      name: 'shop', memory_mb: 512, previous_memory_mb: both.previous_memory_mb, cpus: 1, previous_cpus: 0.5,
      // The volume untouched: its size, enforced (PGDB_SIZE_LIMITS is on unless set off), and no restart.
      size_gb: 10, previous_size_gb: 10, size_enforced: true, restarted: false,
    });
  });
});

/** `GET /export` over node:http (fetch hides trailers); `stall` runs after the first chunk, while nothing is read. */
function rawExport(
  daemon: TestDaemon,
  name: string,
  stall: () => Promise<void> | void,
): Promise<{ status: number; bytes: number; trailers: NodeJS.Dict<string>; broken: boolean }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(`${daemon.url}/v1/db/${name}/export`, { headers: { authorization: `Bearer ${daemon.token}` } }, (response) => {
      let bytes = 0;
      let stalled = false;
      let broken = false;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (stalled) return;
        stalled = true;
        response.pause();
        Promise.resolve(stall()).then(() => response.resume(), reject);
      });
      response.on('aborted', () => (broken = true));
      response.on('error', () => (broken = true));
      response.on('close', () => resolve({ status: response.statusCode ?? 0, bytes, trailers: response.trailers, broken: broken || !response.complete }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** POST of raw bytes, optionally in `parts` with a pause between them. */
function upload(
  daemon: TestDaemon,
  path: string,
  body: Buffer,
  pace: { parts: number; pauseMs: number } = { parts: 1, pauseMs: 0 },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      `${daemon.url}${path}`,
      { method: 'POST', headers: { authorization: `Bearer ${daemon.token}`, 'content-type': 'application/octet-stream' } },
      (response) => {
        let text = '';
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      },
    );
    outgoing.on('error', reject);
    void (async () => {
      const size = Math.ceil(body.length / pace.parts);
      for (let offset = 0; offset < body.length; offset += size) {
        if (offset > 0) await sleep(pace.pauseMs);
        outgoing.write(body.subarray(offset, offset + size));
      }
      outgoing.end();
    })();
  });
}
