/**
 * The built `pgdb` CLI, run as a subprocess against the real pgdbd, the real
 * Docker engine and the Postgres it creates.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { dockerObjectExists, query, requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';

const CLI = join(ROOT, 'dist/cli/bin/pgdb.js');
const INTEGRATION_TEST = join(ROOT, 'scripts/integration_test.sh');
const DEPLOY_KEYS = ['name', 'host', 'port', 'db', 'user', 'password', 'DATABASE_URL'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

type Env = Record<string, string | undefined>;

/** Runs a program with only PATH and `env`: nothing leaks in from the test's own environment. */
async function run(file: string, args: string[], env: Env): Promise<Run> {
  try {
    const { stdout, stderr } = await promisify(execFile)(file, args, { env: { PATH: process.env.PATH, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** `key: value` lines into an object, keeping the order of the keys. */
function parseLines(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .trimEnd()
      .split('\n')
      .map((line) => {
        const colon = line.indexOf(': ');
        return [line.slice(0, colon), line.slice(colon + 2)];
      }),
  );
}

describe('pgdb CLI against a real pgdbd', () => {
  const daemon = new TestDaemon({ portRange: '21200-21299' });
  const other = new TestDaemon({ portRange: '21300-21349' });
  const configHome = mkdtempSync(join(tmpdir(), 'pgdb-cli-e2e-'));
  let env: Env;
  const pgdb = (args: string[], overrides: Env = {}) => run(process.execPath, [CLI, ...args], { ...env, ...overrides });

  const item = async (name: string) => {
    const status = JSON.parse((await pgdb(['status', '--json'])).stdout);
    return status.items.find((entry: { name: string }) => entry.name === name);
  };

  before(async () => {
    requireDockerAndImages([17]);
    await Promise.all([daemon.start(), other.start()]);
    env = { XDG_CONFIG_HOME: configHome, PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
  });
  after(async () => {
    await Promise.all([daemon.destroyAll(), other.destroyAll()]);
  });

  it('deploy prints the seven lines, and the printed DATABASE_URL connects', async () => {
    const result = await pgdb(['deploy', '--name', 'cli-human', '--size', '2']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const lines = parseLines(result.stdout);
    assert.deepEqual(Object.keys(lines), DEPLOY_KEYS);
    assert.equal(lines.name, 'cli-human');
    const [row] = await query(lines.DATABASE_URL, 'SELECT current_user, current_database(), 1 AS one');
    assert.deepEqual(row, { current_user: lines.user, current_database: lines.db, one: 1 });
  });

  it('deploy --json prints one JSON object, and psql connects with its DATABASE_URL', async () => {
    const result = await pgdb(['deploy', '--name', 'cli-json', '--version', '17', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const json = JSON.parse(result.stdout);
    assert.deepEqual(Object.keys(json), DEPLOY_KEYS);
    assert.equal(typeof json.port, 'number');
    const psql = await run('psql', [json.DATABASE_URL, '--no-psqlrc', '-tAc', 'SELECT 1'], {});
    assert.deepEqual([psql.code, psql.stdout], [0, '1\n'], psql.stderr);
  });

  it("status lists the databases in a table and as the daemon's JSON", async () => {
    const table = await pgdb(['status']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME\s+VERSION\s+PORT\s+STATE\s+SIZE\s+CREATED$/m);
    // Right after a deploy Docker's health check may still say "starting".
    const row = /^cli-human\s+17\s+\d+\s+running(?: \(starting\))?\s+\S+ \S+ \/ 2 GB\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC$/m;
    assert.match(table.stdout, row);
    assert.match(table.stdout, /^cli-json\s+17\s+\d+\s+running/m);
    const json = JSON.parse((await pgdb(['status', '--json'])).stdout);
    assert.deepEqual(json.items.map((entry: { name: string }) => entry.name).sort(), ['cli-human', 'cli-json']);
    assert.deepEqual(json.detached_volumes, []);
  });

  it('on a terminal: a spinner while deploy waits, and destroy asks for the name', () => {
    // script(1) gives the CLI a pseudo-terminal; what it draws comes back on stdout.
    const onTerminal = (args: string, input = '') =>
      spawnSync('script', ['-qec', `"${process.execPath}" "${CLI}" ${args}`, '/dev/null'], {
        input,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, ...env },
      });
    const deploy = onTerminal('deploy --name cli-tty');
    assert.equal(deploy.status, 0, deploy.stdout);
    assert.match(deploy.stdout, /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] .*\(\d+s\)/, 'a spinner frame');
    assert.match(deploy.stdout, /^DATABASE_URL: postgres:\/\//m);

    const destroy = onTerminal('destroy cli-tty', 'cli-tty\n');
    assert.equal(destroy.status, 0, destroy.stdout);
    assert.match(destroy.stdout, /Type the name to confirm/);
    assert.match(destroy.stdout, /destroyed cli-tty/);
  });

  it('destroy --yes removes the container, the volume and the record', async () => {
    const before = await item('cli-json');
    const result = await pgdb(['destroy', 'cli-json', '--yes']);
    assert.deepEqual([result.code, result.stdout], [0, 'destroyed cli-json\n'], result.stderr);
    assert.equal(dockerObjectExists('container', before.container_id), false);
    assert.equal(dockerObjectExists('volume', before.volume_name), false);
    assert.equal(await item('cli-json'), undefined);
  });

  it('destroy --keep-data keeps the volume, and status lists it as kept', async () => {
    const before = await item('cli-human');
    const result = await pgdb(['destroy', 'cli-human', '--keep-data', '--yes', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { ok: true, name: 'cli-human', keep_data: true });
    assert.equal(dockerObjectExists('container', before.container_id), false);
    assert.equal(dockerObjectExists('volume', before.volume_name), true);
    const status = await pgdb(['status']);
    assert.match(status.stdout, new RegExp(`^kept data volumes[^]*^cli-human\\s+${before.volume_name}\\s`, 'm'));
  });

  it('destroy refuses to run without --yes when stdin is not a terminal', async () => {
    const result = await pgdb(['destroy', 'anything']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^error: refusing to destroy "anything" without --yes$/m);
  });

  it("an unknown database: the daemon's message, a hint, exit 1", async () => {
    const result = await pgdb(['destroy', 'cli-ghost', '--yes']);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^error: .*cli-ghost.*\nhint: run `pgdb status`/m);
  });

  it("a taken name: the daemon's message, a hint, exit 1", async () => {
    assert.equal((await pgdb(['deploy', '--name', 'cli-taken'])).code, 0);
    const result = await pgdb(['deploy', '--name', 'cli-taken', '--json']);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^error: .*cli-taken.*\nhint: choose another --name/m);
  });

  it('a wrong token: says so, exit 1', async () => {
    const result = await pgdb(['status'], { PGDB_TOKEN: 'not-the-token-not-the-token' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: unauthorized: PGDB_TOKEN does not match the server's\nhint: the token came from PGDB_TOKEN/);
  });

  it('--server selects a configured server with its stored token', async () => {
    const stored: Env = { PGDB_TOKEN: undefined, PGDB_SERVER_URL: undefined };
    for (const [key, value] of [
      ['server.default', daemon.url],
      ['server.default.token', daemon.token],
      ['server.other', other.url],
      ['server.other.token', other.token],
    ]) {
      const set = await pgdb(['config', 'set', key, value], stored);
      assert.equal(set.code, 0, set.stderr);
    }
    assert.equal(statSync(join(configHome, 'pgdb/config.json')).mode & 0o777, 0o600);

    const deployed = await pgdb(['deploy', '--server', 'other', '--name', 'cli-other', '--json'], stored);
    assert.equal(deployed.code, 0, deployed.stderr);
    const url = JSON.parse(deployed.stdout).DATABASE_URL;
    assert.deepEqual(await query(url, 'SELECT 1 AS one'), [{ one: 1 }]);

    const names = async (args: string[]) =>
      JSON.parse((await pgdb(['status', '--json', ...args], stored)).stdout).items.map((entry: { name: string }) => entry.name);
    assert.deepEqual(await names(['--server', 'other']), ['cli-other']);
    assert.equal((await names([])).includes('cli-other'), false);
  });

  it('a daemon that is down: names the URL, suggests checking the daemon and the firewall, exit 1', async () => {
    await other.stop();
    const result = await pgdb(['status', '--server', 'other'], { PGDB_TOKEN: undefined, PGDB_SERVER_URL: undefined });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr.split('\n')[0],
      `error: cannot reach pgdbd at ${other.url}: connection refused`,
    );
    assert.match(result.stderr, /^hint: check that the daemon runs .*firewall/m);
  });

  it('scripts/integration_test.sh deploys, runs SELECT 1 through psql and destroys; it fails on a wrong token', async () => {
    const before = (await pgdb(['status', '--json'])).stdout;
    const passed = await run('bash', [INTEGRATION_TEST], env);
    assert.equal(passed.code, 0, passed.stderr);
    assert.match(passed.stderr, /\[integration_test\] ok/);
    assert.equal(JSON.parse((await pgdb(['status', '--json'])).stdout).items.length, JSON.parse(before).items.length);

    const failed = await run('bash', [INTEGRATION_TEST], { ...env, PGDB_TOKEN: 'not-the-token-not-the-token' });
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /unauthorized/);
  });
});
