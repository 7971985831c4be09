/**
 * Day-2 operations (issue 14) through the built `pgdb` CLI and the API,
 * against the real pgdbd, the real Docker engine and the Postgres it runs:
 * version, url, info, logs (and --follow), stop/start/restart across a
 * daemon restart, credentials rotation, psql and resize.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem, tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { CLI, pgdbCli } from './support/cli.js';
import { docker, query, requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';
import { run, type Env } from './support/run.js';
import { testPorts } from './support/ports.js';
import { eventually } from './support/eventually.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(50);
const PACKAGE_VERSION: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;


/** A `pgdb logs --follow` running in the background, with what it printed so far. */
class Follower {
  readonly child: ChildProcess;
  output = '';
  private readonly waiters: Array<() => void> = [];

  constructor(args: string[], env: Env) {
    this.child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk) => {
      this.output += chunk;
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.child.stderr!.on('data', (chunk) => (this.output += chunk));
  }

  /** Resolves when the output matches, or rejects after `ms`. */
  async waitFor(pattern: RegExp, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pattern.test(this.output)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${pattern} within ${ms} ms; got:\n${this.output}`);
      await Promise.race([new Promise<void>((wake) => this.waiters.push(wake)), sleep(left)]);
    }
  }

  exited(): Promise<number | null> {
    if (this.child.exitCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }
}

/** Fails unless connecting with `url` is refused for its password. */
async function assertLoginFails(url: string): Promise<void> {
  await assert.rejects(query(url, 'SELECT 1'), /password authentication failed/);
}

describe('day-2 operations against a real pgdbd', () => {
  const daemon = new TestDaemon({ portRange: PORT_RANGE });
  let env: Env;
  // The daemon listens on a new port after each restart.
  const { pgdb, json } = pgdbCli(() => ({ ...env, PGDB_SERVER_URL: daemon.url }));
  let url: string;
  let port: number;

  before(async () => {
    requireDockerAndImages([17]);
    await daemon.start();
    env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-day2-')), PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
    const deployed = await json(['deploy', '--name', 'day2', '--memory', '384']);
    url = deployed.DATABASE_URL;
    port = deployed.port;
    await query(url, 'CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept SELECT g, md5(g::text) FROM generate_series(1, 500) g');
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('--version prints the CLI version, and with --server the daemon\'s too', async () => {
    const alone = await pgdb(['--version']);
    assert.deepEqual([alone.code, alone.stdout], [0, `pgdb ${PACKAGE_VERSION}\n`]);
    const both = await pgdb(['--version', '--server']);
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.stdout, `pgdb ${PACKAGE_VERSION}\npgdbd ${PACKAGE_VERSION} at ${daemon.url}\n`);
    assert.deepEqual(await json(['--version', '--server', daemon.url]), { cli: PACKAGE_VERSION, server: { url: daemon.url, version: PACKAGE_VERSION } });
  });

  it('url prints the URL alone, and it connects', async () => {
    const result = await pgdb(['url', 'day2']);
    assert.deepEqual([result.code, result.stdout], [0, `${url}\n`], result.stderr);
    const [row] = await query(result.stdout.trim(), 'SELECT count(*)::int AS n FROM kept');
    assert.equal(row.n, 500);
    assert.deepEqual(await json(['url', 'day2']), { name: 'day2', database_url: url });
  });

  it('info shows version, uptime, sizes, connections, the longest query, limits and a masked URL', async () => {
    const client = new pg.Client({ connectionString: url.replace('?sslmode=require', ''), ssl: { rejectUnauthorized: false } });
    await client.connect();
    client.on('error', () => undefined);
    const sleeping = client.query('SELECT pg_sleep(3)').catch(() => undefined);
    try {
      await sleep(1200);
      const info = await json(['info', 'day2']);
      assert.equal(info.state, 'running');
      assert.match(info.server_version, /^17\.\d+/);
      assert.ok(info.uptime_seconds >= 0 && info.uptime_seconds < 3600, String(info.uptime_seconds));
      assert.ok(info.data_bytes > 1_000_000, `data_bytes ${info.data_bytes}`);
      assert.ok(info.volume_free_bytes > 0);
      assert.ok(info.connections >= 1, `connections ${info.connections}`);
      assert.equal(info.max_connections, 100);
      assert.ok(info.longest_query_seconds >= 1, `longest query ${info.longest_query_seconds}`);
      // PGDB_DEFAULT_CPUS is 1 unless set (at most the host's count).
      // The volume is a file system of its size (PGDB_SIZE_LIMITS is on unless set off).
      assert.deepEqual(info.limits, { memory_mb: 384, cpus: Math.min(1, availableParallelism()), size_gb: 10, size_enforced: true });
      assert.equal(info.port, port);
      const password = new URL(url).password;
      assert.equal(info.database_url, url.replace(`:${password}@`, ':****@'));
      assert.ok(!JSON.stringify(info).includes(password));
      const human = await pgdb(['info', 'day2']);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /^version: +17\.\d+/m);
      assert.match(human.stdout, /^state: +running, up /m);
      assert.match(human.stdout, /^connections: +\d+ of 100$/m);
      assert.match(human.stdout, /^memory limit: +384 MiB$/m);
      assert.match(human.stdout, /^size: +10 GiB$/m);
      assert.match(human.stdout, /^url: +postgres:\/\/[^:]+:\*\*\*\*@/m);
      const shown = await pgdb(['info', 'day2', '--show-secrets']);
      assert.ok(shown.stdout.includes(url));
    } finally {
      await sleeping;
      await client.end();
    }
  });

  it('logs shows a query that errored, --follow sees a new one within a second, and Ctrl-C ends it cleanly', async () => {
    await assert.rejects(query(url, 'SELECT * FROM day2_missing_table_one'), /does not exist/);
    const logs = await eventually('the failed query in logs', 2_000, async () => {
      const run = await pgdb(['logs', 'day2', '--since', '10m']);
      if (/day2_missing_table_one/.test(run.stdout)) return run;
      throw new Error(`logs (exit ${run.code}) printed:\n${run.stdout}${run.stderr}`);
    }, 100);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /relation "day2_missing_table_one" does not exist/);
    const tail = await json(['logs', 'day2', '--tail', '3']);
    assert.equal(tail.name, 'day2');
    assert.ok(tail.lines.length <= 3 && tail.lines.length > 0, JSON.stringify(tail));

    const follower = new Follower(['logs', 'day2', '--follow', '--tail', '0'], { ...env, PGDB_SERVER_URL: daemon.url });
    try {
      // The stream is open once the daemon has answered; give it a moment to be attached.
      await sleep(1000);
      const sent = performance.now();
      await assert.rejects(query(url, 'SELECT * FROM day2_missing_table_two'), /does not exist/);
      await follower.waitFor(/day2_missing_table_two/, 1000);
      const seenAfter = performance.now() - sent;
      assert.ok(seenAfter < 1000, `seen after ${Math.round(seenAfter)} ms`);
      assert.doesNotMatch(follower.output, /day2_missing_table_one/, '--tail 0 shows only new lines');
    } finally {
      follower.child.kill('SIGINT');
    }
    assert.equal(await follower.exited(), 0, follower.output);
  });

  it("logs on a terminal shows a tenant's escape sequences as text (--raw passes them, a pipe gets the bytes)", async () => {
    // The tenant puts a title change, a screen clear and a bidi override into its log through an error message.
    const evil = '\u001b]0;pwned\u0007\u001b[2Jtail\u202e';
    await assert.rejects(query(url, `SELECT $1::int AS x`, [evil]), /invalid input syntax/);
    // A pipe gets the log as it is.
    await eventually('the escape sequences in logs, unchanged, on a pipe', 5_000, async () => {
      const piped = await pgdb(['logs', 'day2', '--since', '10m']);
      if (piped.stdout.includes(evil)) return piped;
      throw new Error(`logs (exit ${piped.code}) printed:\n${JSON.stringify(piped.stdout.slice(-2000))}`);
    }, 250);
    // script(1) runs the CLI on a pseudo-terminal: stdout is a TTY there.
    const onTerminal = (args: string[]) =>
      run('script', ['-qefc', [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], { ...env, PGDB_SERVER_URL: daemon.url });
    const escaped = await onTerminal(['logs', 'day2', '--since', '10m']);
    assert.equal(escaped.code, 0, escaped.stderr);
    assert.ok(escaped.stdout.includes('\\x1b]0;pwned\\x07\\x1b[2Jtail\\u202e'), escaped.stdout.slice(-500));
    assert.ok(!escaped.stdout.includes('\u001b]0;pwned'), 'no raw escape sequence reached the terminal');
    const raw = await onTerminal(['logs', 'day2', '--since', '10m', '--raw']);
    assert.ok(raw.stdout.includes('\u001b]0;pwned\u0007'), '--raw passes them');
  });

  it('logs refuses a bad --since (exit 2, and 400 from the API) and an unknown database (exit 1)', async () => {
    const bad = await pgdb(['logs', 'day2', '--since', 'last-tuesday']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error: --since "last-tuesday" is not a duration/);
    const api = await daemon.api('GET', '/v1/db/day2/logs?since=last-tuesday');
    assert.deepEqual([api.status, api.body.error.code], [400, 'INVALID_REQUEST']);
    for (const args of [['logs', 'nope'], ['info', 'nope'], ['url', 'nope'], ['stop', 'nope'], ['credentials', 'rotate', 'nope'], ['resize', 'nope', '--memory-mb', '512']]) {
      const unknown = await pgdb(args);
      assert.equal(unknown.code, 1, args.join(' '));
      assert.match(unknown.stderr, /error: no database named "nope"\nhint: run `pgdb status`/, args.join(' '));
    }
  });

  it('restart keeps the data and the port', async () => {
    const restart = await pgdb(['restart', 'day2']);
    assert.deepEqual([restart.code, restart.stdout], [0, `restarted day2 (port ${port})\n`], restart.stderr);
    const [row] = await query(url, 'SELECT count(*)::int AS n FROM kept');
    assert.equal(row.n, 500);
  });

  it('two lifecycle operations at once: one runs, the other gets 409 DB_BUSY', async () => {
    const [a, b] = await Promise.all([daemon.api('POST', '/v1/db/day2/restart'), daemon.api('POST', '/v1/db/day2/stop')]);
    const statuses = [a.status, b.status].sort();
    assert.deepEqual(statuses, [200, 409], JSON.stringify([a.body, b.body]));
    assert.equal((a.status === 409 ? a : b).body.error.code, 'DB_BUSY');
    // Whichever won, the database ends up running again.
    assert.equal((await daemon.api('POST', '/v1/db/day2/start')).status, 200);
    const [row] = await query(url, 'SELECT count(*)::int AS n FROM kept');
    assert.equal(row.n, 500);
  });

  it('stop survives a daemon restart (not repaired, not started); start brings it back on the same port with its data', async () => {
    const stop = await pgdb(['stop', 'day2']);
    assert.deepEqual([stop.code, stop.stdout], [0, `stopped day2 (port ${port})\n`], stop.stderr);
    const again = await json(['stop', 'day2']);
    assert.deepEqual(again, { name: 'day2', action: 'stop', state: 'stopped', port, changed: false });
    await assert.rejects(query(url, 'SELECT 1'));

    await daemon.restart();
    // Reconciliation has run by the time status answers.
    const item = (await json(['status'])).items.find((i: { name: string }) => i.name === 'day2');
    assert.deepEqual([item.state, item.host_port], ['stopped', port]);
    assert.equal(docker('inspect', '--format', '{{.State.Running}}', item.container_id), 'false');
    await sleep(1000);
    assert.equal(docker('inspect', '--format', '{{.State.Running}}', item.container_id), 'false');
    await assert.rejects(query(url, 'SELECT 1'));
    const info = await json(['info', 'day2']);
    assert.deepEqual([info.state, info.server_version], ['stopped', null]);
    const rotate = await pgdb(['credentials', 'rotate', 'day2']);
    assert.equal(rotate.code, 1);
    assert.match(rotate.stderr, /error: database "day2" is stopped.*\nhint: the database is stopped: start it/);

    const start = await json(['start', 'day2']);
    assert.deepEqual(start, { name: 'day2', action: 'start', state: 'running', port, changed: true });
    const [row] = await query(url, 'SELECT count(*)::int AS n FROM kept');
    assert.equal(row.n, 500);

    // A stopped database whose container is gone (removed by hand, a pruned engine) is not
    // re-created by the daemon's reconciliation at start; `pgdb start` re-creates it.
    await json(['stop', 'day2']);
    docker('rm', containerOf('day2'));
    await daemon.restart();
    const gone = (await json(['status'])).items.find((i: { name: string }) => i.name === 'day2');
    assert.deepEqual([gone.state, gone.host_port], ['stopped', port]);
    assert.equal(containerOf('day2'), '', 'reconciliation did not re-create it');
    const recreated = await json(['start', 'day2']);
    assert.deepEqual([recreated.state, recreated.port], ['running', port]);
    assert.notEqual(containerOf('day2'), '');
    const [again2] = await query(url, 'SELECT count(*)::int AS n FROM kept');
    assert.equal(again2.n, 500);
    const twice = await pgdb(['start', 'day2']);
    assert.deepEqual([twice.code, twice.stdout], [0, `day2 was already running (port ${port})\n`]);
  });

  it('start while another program holds the port: exit 1 with PORT_TAKEN, still stopped; once freed, start works', async () => {
    await json(['stop', 'day2']);
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const refused = await pgdb(['start', 'day2']);
      assert.equal(refused.code, 1, refused.stdout);
      assert.match(refused.stderr, new RegExp(`error: port ${port} of "day2" is held by another program`));
      const item = (await json(['status'])).items.find((i: { name: string }) => i.name === 'day2');
      assert.equal(item.state, 'stopped');
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    const start = await json(['start', 'day2']);
    assert.deepEqual([start.state, start.port], ['running', port]);
    await query(url, 'SELECT 1');
  });

  it('credentials rotate: the old URL fails, the new one works, open sessions end unless --keep-sessions', async () => {
    const session = new pg.Client({ connectionString: url.replace('?sslmode=require', ''), ssl: { rejectUnauthorized: false } });
    session.on('error', () => undefined);
    await session.connect();
    const rotated = await pgdb(['credentials', 'rotate', 'day2']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newUrl = /^DATABASE_URL: (\S+)$/m.exec(rotated.stdout)?.[1];
    assert.ok(newUrl && newUrl !== url, rotated.stdout);
    assert.match(rotated.stderr, /1 open session\(s\) ended/);
    await assertLoginFails(url);
    const [row] = await query(newUrl, 'SELECT count(*)::int AS n FROM kept');
    assert.equal(row.n, 500);
    await assert.rejects(session.query('SELECT 1'));
    await session.end().catch(() => undefined);
    assert.equal((await json(['url', 'day2'])).database_url, newUrl);

    const kept = new pg.Client({ connectionString: newUrl.replace('?sslmode=require', ''), ssl: { rejectUnauthorized: false } });
    await kept.connect();
    try {
      const again = await json(['credentials', 'rotate', 'day2', '--keep-sessions']);
      assert.equal(again.sessions_ended, 0);
      assert.deepEqual((await kept.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
      await assertLoginFails(newUrl);
      await query(again.database_url, 'SELECT 1');
      url = again.database_url;
    } finally {
      await kept.end();
    }
  });

  for (const step of ['rotate:recorded', 'rotate:role-changed']) {
    it(`credentials rotate killed at ${step}: the next start finishes it, and the URL the daemon gives works`, async () => {
      await daemon.stop();
      await daemon.start({ PGDB_FAILPOINTS: step });
      const killed = await pgdb(['credentials', 'rotate', 'day2']);
      assert.equal(killed.code, 1, 'the request died with the daemon');
      assert.equal((await daemon.exited()).signal, 'SIGKILL');
      const registry = JSON.parse(readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8'));
      const pending = registry.items.find((i: { name: string }) => i.name === 'day2');
      assert.equal(typeof pending.next_password, 'string', 'the new password was recorded before the role changed');
      await daemon.start();
      let current = '';
      const deadline = Date.now() + 15_000;
      for (;;) {
        current = (await json(['url', 'day2'])).database_url;
        if (new URL(current).password === pending.next_password) break;
        assert.ok(Date.now() < deadline, 'the interrupted rotation was not finished');
        await sleep(200);
      }
      const [row] = await query(current, 'SELECT count(*)::int AS n FROM kept');
      assert.equal(row.n, 500);
      await assertLoginFails(url);
      url = current;
      const after = JSON.parse(readFileSync(join(daemon.dataDir, 'registry.json'), 'utf8')).items.find((i: { name: string }) => i.name === 'day2');
      assert.equal(after.next_password, undefined);
    });
  }

  it('psql runs the local psql with the password in PGPASSWORD, never on its command line', async () => {
    const result = await pgdb(['psql', 'day2', '--', '-X', '-tAc', 'SELECT count(*) FROM kept']);
    assert.deepEqual([result.code, result.stdout], [0, '500\n'], result.stderr);

    const bin = mkdtempSync(join(tmpdir(), 'pgdb-fake-psql-'));
    writeFileSync(join(bin, 'psql'), '#!/bin/sh\necho "argv: $*"\necho "PGPASSWORD=$PGPASSWORD"\n');
    chmodSync(join(bin, 'psql'), 0o755);
    const fake = await pgdb(['psql', 'day2', '--', '-c', 'SELECT 1'], { PATH: `${bin}:${process.env.PATH}` });
    assert.equal(fake.code, 0, fake.stderr);
    const password = new URL(url).password;
    const argvLine = /^argv: (.*)$/m.exec(fake.stdout)![1];
    assert.ok(!argvLine.includes(password), 'the password is not on argv');
    assert.match(argvLine, new RegExp(`^postgres://[^:@]+@127\\.0\\.0\\.1:${port}/\\w+\\?sslmode=require -c SELECT 1$`));
    assert.equal(/^PGPASSWORD=(.*)$/m.exec(fake.stdout)![1], password);

    const missing = await pgdb(['psql', 'day2'], { PATH: `${bin}-none` });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /error: psql is not installed here/);
    assert.match(missing.stderr, /hint: install the PostgreSQL client: `sudo apt-get install postgresql-client`/);
  });

  it('resize changes the running container\'s memory limit and keeps the data; 0 and more than the host has are refused', async () => {
    const before = docker('inspect', '--format', '{{.Id}} {{.State.StartedAt}}', containerOf('day2'));
    const resized = await pgdb(['resize', 'day2', '--memory-mb', '512']);
    assert.deepEqual([resized.code, resized.stdout], [0, 'day2: memory limit 512 MiB (was 384 MiB)\n'], resized.stderr);
    assert.equal(docker('inspect', '--format', '{{.HostConfig.Memory}}', containerOf('day2')), String(512 * 1024 * 1024));
    assert.equal(docker('inspect', '--format', '{{.Id}} {{.State.StartedAt}}', containerOf('day2')), before, 'no restart');
    const [row] = await query(url, 'SELECT count(*)::int AS n FROM kept');
    assert.equal(row.n, 500);
    assert.equal((await json(['info', 'day2'])).limits.memory_mb, 512);

    const zero = await pgdb(['resize', 'day2', '--memory-mb', '0']);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /error: --memory-mb must be a whole number of MiB from 256/);
    const api = await daemon.api('POST', '/v1/db/day2/resize', { memory_mb: 0 });
    assert.deepEqual([api.status, api.body.error.code], [400, 'INVALID_REQUEST']);
    const hostMb = Math.floor(totalmem() / 1024 / 1024);
    const huge = await pgdb(['resize', 'day2', '--memory-mb', String(hostMb + 1024)]);
    assert.equal(huge.code, 1);
    assert.match(huge.stderr, /more than this server has/);
    assert.equal(docker('inspect', '--format', '{{.HostConfig.Memory}}', containerOf('day2')), String(512 * 1024 * 1024));
  });

  it('a daemon stop with a --follow open: the daemon exits at once, and the follower says the stream broke off', async () => {
    const follower = new Follower(['logs', 'day2', '--follow', '--tail', '1'], { ...env, PGDB_SERVER_URL: daemon.url });
    await follower.waitFor(/\S/, 5000);
    const started = performance.now();
    await daemon.stop();
    assert.ok(performance.now() - started < 5000, `the daemon took ${Math.round(performance.now() - started)} ms to stop`);
    const code = await Promise.race([follower.exited(), sleep(5000).then(() => 'still running')]);
    assert.equal(code, 1, follower.output);
    assert.match(follower.output, /error: the log stream from .* broke off/);
    await daemon.start();
  });

  it('--follow ends cleanly when the database is destroyed', async () => {
    await json(['deploy', '--name', 'day2-gone']);
    const follower = new Follower(['logs', 'day2-gone', '--follow'], { ...env, PGDB_SERVER_URL: daemon.url });
    await follower.waitFor(/ready to accept connections/, 5000);
    const destroyed = await pgdb(['destroy', 'day2-gone', '--yes']);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    const code = await Promise.race([follower.exited(), sleep(10_000).then(() => 'still running')]);
    assert.equal(code, 0, follower.output);
  });

  function containerOf(name: string): string {
    return docker('ps', '-a', '--filter', `label=pgdb.name=${name}`, '--filter', `label=pgdb.instance=${daemon.instanceId()}`, '--format', '{{.ID}}');
  }
});
