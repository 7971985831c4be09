/**
 * The built `pgdb` CLI, run as a subprocess against the real pgdbd, the real
 * Docker engine and the Postgres it creates.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { docker, dockerObjectExists, query, requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';
import { run, type Env } from './support/run.js';
import { publicKeyFingerprintOf as publicKeyFingerprint } from '../daemon/src/tls/certificates.js';
import { Impostor } from './support/impostor.js';
import { TcpRelay } from './support/tcp-relay.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');
const INTEGRATION_TEST = join(ROOT, 'scripts/integration_test.sh');
const DEPLOY_KEYS = ['name', 'host', 'port', 'db', 'user', 'password', 'DATABASE_URL'];


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
  const daemon = new TestDaemon({ portRange: ports.range(100) });
  const other = new TestDaemon({ portRange: ports.range(50) });
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
    assert.deepEqual(JSON.parse(result.stdout), { ok: true, name: 'cli-human', keep_data: true, backups_kept: false });
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

/** `sha256:<hex>` of a PEM certificate, computed here independently of the CLI. */
function fingerprint(pem: string): string {
  return `sha256:${new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase()}`;
}

describe('pgdb CLI and TLS against a real pgdbd serving HTTPS', () => {
  // Two daemons listening beyond loopback, so both serve HTTPS, each from its own CA.
  const first = new TestDaemon({ portRange: ports.range(30), public: true });
  const second = new TestDaemon({ portRange: ports.range(30), public: true });
  const configHome = mkdtempSync(join(tmpdir(), 'pgdb-cli-tls-e2e-'));
  const configFile = join(configHome, 'pgdb/config.json');
  // The CLI reaches "the server" through a relay, which the test can point at the other daemon:
  // what a client sees when the server at its address was replaced, or someone sits in the middle.
  let relay: TcpRelay;
  let env: Env;
  const pgdb = (args: string[], overrides: Env = {}) => run(process.execPath, [CLI, ...args], { ...env, ...overrides });
  const pinned = () => JSON.parse(readFileSync(configFile, 'utf8')).servers.tls.ca_fingerprint;

  before(async () => {
    requireDockerAndImages([17]);
    await Promise.all([first.start(), second.start()]);
    relay = await new TcpRelay(Number(new URL(first.url).port)).start();
    env = { XDG_CONFIG_HOME: configHome, PGDB_TOKEN: first.token };
    const set = await pgdb(['config', 'set', 'server.tls', `https://127.0.0.1:${relay.port}`]);
    assert.equal(set.code, 0, set.stderr);
  });
  after(async () => {
    await relay?.stop();
    await Promise.all([first.destroyAll(), second.destroyAll()]);
  });

  it('first use in a script: refuses without a pin, naming --trust-fingerprint and --ca-file and the CA it saw', async () => {
    const result = await pgdb(['status', '--server', 'tls']);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, new RegExp(`^error: .* presents a certificate authority pgdb does not trust yet \\(${fingerprint(first.caCertificate())}\\)`, 'm'));
    assert.match(result.stderr, /--trust-fingerprint sha256:\.\.\..*--ca-file <path>/);
  });

  it('first-use trust with --trust-fingerprint pins the CA; the next runs need no flag', async () => {
    const expected = fingerprint(first.caCertificate());
    const result = await pgdb(['status', '--server', 'tls', '--trust-fingerprint', expected, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).items, []);
    assert.match(result.stderr, /^pinned the CA sha256:[0-9a-f]{64} of https:\/\/127\.0\.0\.1:\d+ in server\.tls/m);
    assert.equal(pinned(), expected);
    assert.equal((await pgdb(['status', '--server', 'tls'])).code, 0);
  });

  it('deploy --memory --verify: the memory limit is applied and psql connects with the verify-full URL', async () => {
    const result = await pgdb(['deploy', '--server', 'tls', '--name', 'cli-verify', '--memory', '512', '--verify', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const url = new URL(JSON.parse(result.stdout).DATABASE_URL);
    const caFile = join(configHome, 'pgdb/ca/tls.pem');
    assert.deepEqual([url.searchParams.get('sslmode'), url.searchParams.get('sslrootcert')], ['verify-full', caFile]);
    assert.equal(fingerprint(readFileSync(caFile, 'utf8')), fingerprint(first.caCertificate()));
    const psql = await run('psql', [url.toString(), '--no-psqlrc', '-tAc', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'], {});
    assert.deepEqual([psql.code, psql.stdout], [0, 't\n'], psql.stderr);

    const status = JSON.parse((await pgdb(['status', '--server', 'tls', '--json'])).stdout);
    const item = status.items.find((entry: { name: string }) => entry.name === 'cli-verify');
    assert.equal(item.memory_mb, 512);
    assert.equal(docker('inspect', '--format', '{{.HostConfig.Memory}}', item.container_id), String(512 * 1024 * 1024));

    // Later, the same verify-full URL for an existing database.
    const later = await pgdb(['url', 'cli-verify', '--server', 'tls', '--verify']);
    assert.equal(later.code, 0, later.stderr);
    assert.equal(later.stdout.trim(), url.toString());
    const again = await run('psql', [later.stdout.trim(), '--no-psqlrc', '-tAc', 'SELECT 1'], {});
    assert.deepEqual([again.code, again.stdout], [0, '1\n'], again.stderr);
  });

  it('pgdb ca saves the pinned CA and prints its path and fingerprint', async () => {
    const out = join(configHome, 'saved-ca.pem');
    const result = await pgdb(['ca', '--server', 'tls', '--out', out], { PGDB_TOKEN: undefined });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `path: ${out}\nfingerprint: ${fingerprint(first.caCertificate())}\n`);
    assert.equal(fingerprint(readFileSync(out, 'utf8')), fingerprint(first.caCertificate()));
  });

  it("the attack: a database's own certificate and key, served over HTTPS where the API answers, get no token, pinned or at first use", async () => {
    const deployed = await pgdb(['deploy', '--server', 'tls', '--name', 'impostor', '--json']);
    assert.equal(deployed.code, 0, deployed.stderr);
    const publicRoutes = { '/v1/ca': first.caCertificate(), '/v1/api-certificate': await first.apiCertificate() };
    const impostor = await new Impostor(first.record('impostor').container_id, publicRoutes).start();
    const databaseKey = publicKeyFingerprint(impostor.credentials().cert);
    assert.notEqual(databaseKey, JSON.parse(readFileSync(configFile, 'utf8')).servers.tls.api_key, "the database's key is not the API's");
    relay.retarget(impostor.port);
    try {
      const refused = await pgdb(['status', '--server', 'tls']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^error: REFUSED: https:\/\/127\.0\.0\.1:\d+ presents another key than the API key pinned for it in server\.tls .*the pinned CA does not vouch for the new one\. This may be an attack/m);
      // At first use, with the CA's fingerprint the user checked: the CA's certificate, but not the API's.
      const fresh = await pgdb(['status', '--server', `https://127.0.0.1:${relay.port}`, '--trust-fingerprint', fingerprint(first.caCertificate())], {
        XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-impostor-')),
      });
      assert.equal(fresh.code, 1);
      assert.match(fresh.stderr, /cannot be trusted: its certificate is one of the CA's but not the API's/);
      assert.deepEqual(impostor.tokens(), [], 'no request with the token reached the impostor');
      assert.ok(impostor.seen.length > 0, 'the CLI did reach the impostor (without the token): the check above could have failed');
    } finally {
      relay.retarget(Number(new URL(first.url).port));
      await impostor.stop();
    }
    assert.equal((await pgdb(['status', '--server', 'tls'])).code, 0, 'the real API is still accepted');
    assert.equal((await pgdb(['destroy', '--server', 'tls', 'impostor', '--yes'])).code, 0);
  });

  it('refuses a server whose CA changed, sending it nothing, until the user re-pins deliberately', async () => {
    relay.retarget(Number(new URL(second.url).port));
    const logBefore = second.logs().length;
    const refused = await pgdb(['status', '--server', 'tls'], { PGDB_TOKEN: second.token });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: REFUSED: the certificate of https:\/\/127\.0\.0\.1:\d+ is not issued by the CA pinned for it in server\.tls .*This may be an attack/m);
    assert.match(refused.stderr, /^hint: .*--trust-fingerprint sha256:<new>.*pgdb config unset server\.tls\.ca/m);
    assert.equal(pinned(), fingerprint(first.caCertificate()));
    assert.doesNotMatch(second.logs().slice(logBefore), /\/v1\/status/, 'no request reached the new server');

    const repinned = await pgdb(['status', '--server', 'tls', '--trust-fingerprint', fingerprint(second.caCertificate())], { PGDB_TOKEN: second.token });
    assert.equal(repinned.code, 0, repinned.stderr);
    assert.equal(pinned(), fingerprint(second.caCertificate()));
    // The same server logs requests that do reach it: the check above could have failed.
    assert.match(second.logs().slice(logBefore), /\/v1\/status/);
  });
});

describe('pgdb CLI: no token over plain HTTP to a host that is not loopback', () => {
  const daemon = new TestDaemon({ portRange: ports.range(10) });
  let relay: TcpRelay;
  const hosts = ['0.0.0.0'];
  const configHome = mkdtempSync(join(tmpdir(), 'pgdb-cli-http-e2e-'));

  before(async () => {
    requireDockerAndImages([17]);
    await daemon.start();
    relay = await new TcpRelay(Number(new URL(daemon.url).port)).start();
    // This machine's own name, when it resolves to loopback (as /etc/hosts usually makes it).
    const addresses = await lookup(hostname(), { all: true }).catch(() => []);
    if (addresses.length > 0 && addresses.every(({ address }) => address.startsWith('127.') || address === '::1')) hosts.push(hostname());
  });
  after(async () => {
    await relay?.stop();
    await daemon.destroyAll();
  });

  it('refuses without --insecure and opens no connection; with --insecure the same URL reaches the daemon', async (t) => {
    t.diagnostic(`names that reach this machine without being literal loopback: ${hosts.join(', ')}`);
    for (const host of hosts) {
      const url = `http://${host}:${relay.port}`;
      const env: Env = { XDG_CONFIG_HOME: configHome, PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: url };
      const before = relay.connections;
      const refused = await run(process.execPath, [CLI, 'status'], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, new RegExp(`^error: refusing to send the token to ${url} over plain HTTP: ${host} is not a loopback address; nothing was sent$`, 'm'));
      assert.match(refused.stderr, /--insecure/);
      assert.equal(relay.connections, before, `no connection for ${host}`);

      const insecure = await run(process.execPath, [CLI, 'status', '--json', '--insecure'], env);
      assert.equal(insecure.code, 0, insecure.stderr);
      assert.deepEqual(JSON.parse(insecure.stdout).items, []);
      assert.ok(relay.connections > before, `--insecure reached the daemon through ${host}`);
    }
  });
});
