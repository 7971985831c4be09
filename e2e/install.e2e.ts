/**
 * scripts/install.sh for real. A Debian 12 "server" container with systemd as
 * PID 1 (scripts/build-install-test-image.sh: no Node.js, no Docker, no
 * compiler) gets a copy of this checkout and runs the installer as
 * docs/install.md says. pgdbd then runs under systemd with the unit's hardening, against the
 * host's Docker engine through the mounted socket; the test talks to it, and
 * to the databases it creates, from the host.
 *
 * The container shares the host's network so that the daemon's readiness
 * probe reaches the ports the engine publishes on the host's 127.0.0.1. It is
 * not privileged: CAP_SYS_ADMIN and a private cgroup namespace are enough for
 * systemd and for the unit's sandboxing.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { publicKeyFingerprintOf } from '../daemon/src/tls/certificates.js';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { docker, freePort, query, removeInstanceObjects, requireDockerAndImages, ROOT, TEST_IMAGE_REPO } from './support/daemon.js';
import { bounds, testPorts } from './support/ports.js';
import { eventually } from './support/eventually.js';

const ports = testPorts(import.meta.url);

const SERVER_IMAGE = process.env.PGDB_INSTALL_TEST_IMAGE ?? 'pgdb-test/install-debian:12';
const CHECKOUT = '/srv/pgdb';
const INSTALL = `${CHECKOUT}/scripts/install.sh`;
const PORT_RANGE = ports.range(100);
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** The CA pgdbd creates on first start, which clients pin. */
const DAEMON_CA = '/var/lib/pgdb/tls/ca.crt';
const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');
/** Paths the installer creates; a refused run must leave none of them. */
const INSTALLED_PATHS = ['/etc/pgdb', '/opt/pgdb', '/var/lib/pgdb', '/var/cache/pgdb', '/etc/systemd/system/pgdbd.service'];

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A throw-away Debian server: a systemd container on the host's engine. With
 * `hostDocker` it shares the host's network and Docker socket; without, it has
 * a network of its own and no Docker, so that install.sh installs docker.io
 * and runs an engine inside (NET_ADMIN for its iptables rules).
 */
class ServerContainer {
  readonly name = `pgdb-install-e2e-${randomBytes(4).toString('hex')}`;

  constructor(private readonly options: { hostDocker: boolean }) {}

  start(): void {
    const args = ['run', '-d', '--name', this.name, '--label', 'pgdb.test=install-e2e', '--hostname', 'pgdb-server'];
    args.push('--cgroupns=private', '--cap-add', 'SYS_ADMIN', '--security-opt', 'seccomp=unconfined');
    args.push('--tmpfs', '/run', '--tmpfs', '/run/lock', '--tmpfs', '/tmp');
    if (this.options.hostDocker) {
      args.push('--network', 'host', '-v', '/var/run/docker.sock:/var/run/docker.sock');
    } else {
      // NET_ADMIN for the engine's iptables rules; the loop control device, which pgdbd opens at
      // start to give volumes their size (PGDB_SIZE_LIMITS=on), through the unit's DeviceAllow.
      args.push('--cap-add', 'NET_ADMIN', '--device', '/dev/loop-control');
    }
    // The host may reach the npm registry only through a TLS-inspecting proxy
    // whose CA it trusts: let the server trust what the host trusts.
    if (existsSync(CA_BUNDLE)) args.push('-v', `${CA_BUNDLE}:${CA_BUNDLE}:ro`);
    docker(...args, SERVER_IMAGE);
  }

  /** Runs a command in the container; `env` values travel in the docker CLI's environment, never its arguments. */
  exec(command: string[], options: { env?: Record<string, string>; user?: string; input?: Buffer; timeoutMs?: number } = {}): Result {
    const args = ['exec', '-i'];
    if (options.user) args.push('-u', options.user);
    for (const name of Object.keys(options.env ?? {})) args.push('-e', name);
    const result = spawnSync('docker', [...args, this.name, ...command], {
      env: { PATH: process.env.PATH, ...options.env },
      input: options.input ?? Buffer.alloc(0),
      encoding: 'utf8',
      timeout: options.timeoutMs ?? 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (result.error) throw result.error;
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  sh(script: string): string {
    const result = this.exec(['bash', '-c', script]);
    assert.equal(result.status, 0, `${script}\n${result.stdout}${result.stderr}`);
    return result.stdout.trim();
  }

  /** Runs scripts/install.sh as root (or `user`), with the proxy settings of the host. */
  install(env: Record<string, string> = {}, user?: string): Result {
    const proxies = Object.fromEntries(
      Object.entries(process.env).filter(([k, v]) => /^(https?|no)_proxy$/i.test(k) && v !== undefined),
    ) as Record<string, string>;
    return this.exec(['bash', INSTALL], { env: { ...proxies, ...env }, user, timeoutMs: 300_000 });
  }

  async waitForSystemd(): Promise<void> {
    await eventually(`systemd in ${this.name} finishing its boot`, 60_000, async () => {
      const state = this.exec(['systemctl', 'is-system-running']).stdout.trim();
      if (state === 'running' || state === 'degraded') return state;
      throw new Error(`systemctl is-system-running: ${state}`);
    }, 200);
  }

  /** Copies the working tree (tracked and untracked, without ignored files such as node_modules and dist). */
  copyCheckout(): void {
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
      .split('\0')
      .filter((file) => file && existsSync(join(ROOT, file)));
    const tar = execFileSync('tar', ['--null', '-T', '-', '-cf', '-'], { cwd: ROOT, input: files.join('\0'), maxBuffer: 256 * 1024 * 1024 });
    this.sh(`mkdir -p ${CHECKOUT}`);
    const result = this.exec(['tar', '-xf', '-', '-C', CHECKOUT], { input: tar });
    assert.equal(result.status, 0, result.stderr);
  }

  /** What is left of the installer's paths (empty when none exist). */
  installedPaths(): string[] {
    return this.sh(`for p in ${INSTALLED_PATHS.join(' ')}; do [ ! -e "$p" ] || echo "$p"; done`).split('\n').filter(Boolean);
  }

  mainPid(): string {
    return this.sh('systemctl show -p MainPID --value pgdbd');
  }

  appRelease(): string {
    return this.sh('readlink /opt/pgdb/app');
  }

  /** Stops pgdbd, then removes its databases from the host's engine and the container itself. */
  remove(): void {
    let instance = '';
    try {
      this.exec(['systemctl', 'stop', 'pgdbd']);
      instance = JSON.parse(this.sh('cat /var/lib/pgdb/registry.json')).instance_id ?? '';
    } catch {
      // never installed, or the container is gone
    }
    if (instance) removeInstanceObjects(instance);
    try {
      docker('rm', '-f', '-v', this.name);
    } catch {
      // not started
    }
  }
}

/** One request to the installed daemon's HTTPS API, verified against its CA (a new connection each time). */
function api(url: string, ca: string, method: string, path: string, token: string | null, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest(`${url}${path}`, { method, headers, ca, agent: false, timeout: 120_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: response.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
      });
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${url}${path}: no answer`)));
    outgoing.on('error', reject);
    outgoing.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function fingerprint(pem: string): string {
  return `sha256:${new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase()}`;
}

/** Runs the built `pgdb` on the host, with only PATH and `env`. */
function pgdb(args: string[], env: Record<string, string>): Result {
  const result = spawnSync(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function requireServerImage(): void {
  try {
    docker('image', 'inspect', '--format', '{{.Id}}', SERVER_IMAGE);
  } catch {
    throw new Error(`test image ${SERVER_IMAGE} is missing (run scripts/build-install-test-image.sh)`);
  }
}

function assertNoToken(token: string, ...outputs: string[]): void {
  for (const output of outputs) assert.equal(output.includes(token), false, 'the token appears in the output');
}

describe('install files', () => {
  it('every script passes shellcheck', () => {
    const scripts = execFileSync('bash', ['-c', 'ls scripts/*.sh scripts/lib/*.sh scripts/images/*/*.sh'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
    assert.ok(scripts.includes('scripts/install.sh'));
    const result = spawnSync('shellcheck', scripts, { cwd: ROOT, encoding: 'utf8' });
    assert.ok(!result.error, `shellcheck is not installed (scripts/test.sh installs it): ${result.error?.message}`);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  it('the unit passes systemd-analyze verify', () => {
    // Here /opt/pgdb/bin/node does not exist: verify a copy that starts this
    // Node instead (the server test verifies the installed unit as it is).
    const unit = readFileSync(join(ROOT, 'systemd/pgdbd.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/opt\/pgdb\/bin\/node \/opt\/pgdb\/app\/dist\/daemon\/src\/main\.js$/m);
    const copy = join(mkdtempSync(join(tmpdir(), 'pgdb-unit-')), 'pgdbd.service');
    writeFileSync(copy, unit.replace('ExecStart=/opt/pgdb/bin/node ', `ExecStart=${process.execPath} `));
    const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    assert.ok(!result.error, `systemd-analyze is missing: ${result.error?.message}`);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.equal(result.stderr.trim(), '', result.stderr);
  });
});

describe('scripts/install.sh on a fresh Debian 12 server with systemd', () => {
  const server = new ServerContainer({ hostDocker: true });
  const token = randomBytes(32).toString('hex');
  let apiPort = 0;
  let url = '';
  /** The daemon's CA, read from the server once it is installed. */
  let ca = '';
  const settings = () => ({
    PGDB_TOKEN: token,
    // On loopback the API would serve plain HTTP by default: ask for HTTPS (the test on its own
    // network below covers the default, HTTPS because it listens on every address).
    PGDB_LISTEN: `127.0.0.1:${apiPort}`,
    PGDB_API_TLS: 'on',
    PGDB_PUBLIC_HOST: '127.0.0.1',
    PGDB_POSTGRES_BIND: '127.0.0.1',
    PGDB_IMAGE_TEMPLATE: `${TEST_IMAGE_REPO}:{major}`,
    PGDB_POSTGRES_VERSIONS: '15,17,18',
    PGDB_DEFAULT_VERSION: '17',
    PGDB_PORT_RANGE: PORT_RANGE,
    // The daemon runs inside this test's container but starts databases on the
    // host's engine: a local backup repository under its /var/lib/pgdb would be
    // a path the host does not have. (On a real server both see one disk.)
    PGDB_BACKUP: 'off',
    // Likewise the volumes' disk images, and the loop devices this container does not have
    // (the test on its own network below has them, with the default PGDB_SIZE_LIMITS=on).
    PGDB_SIZE_LIMITS: 'off',
    // And the host's own firewall, which this container (on the host's network, without NET_ADMIN)
    // cannot change; the test on its own network below puts walls up (PGDB_NETWORK_WALLS=on).
    PGDB_NETWORK_WALLS: 'off',
  });
  const outputs: string[] = [];
  const run = (env: Record<string, string> = {}, user?: string) => {
    const result = server.install(env, user);
    outputs.push(result.stdout, result.stderr);
    return result;
  };

  before(async () => {
    requireDockerAndImages([15, 17]);
    requireServerImage();
    apiPort = await freePort();
    url = `https://127.0.0.1:${apiPort}`;
    server.start();
    await server.waitForSystemd();
    server.copyCheckout();
  });
  after(() => {
    server.remove();
  });

  it('refuses without root, changing nothing', () => {
    const result = run(settings(), 'nobody');
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /must run as root/);
    assert.deepEqual(server.installedPaths(), []);
  });

  it('refuses without a token on a first install, changing nothing', () => {
    const { PGDB_TOKEN: _, ...withoutToken } = settings();
    let result = run(withoutToken);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /PGDB_TOKEN is not set/);
    assert.match(result.stderr, /sudo -E/);
    result = run({ ...settings(), PGDB_TOKEN: 'short' });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /at least 16 characters/);
    result = run({ ...settings(), PGDB_API_TLS: 'maybe' });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /PGDB_API_TLS must be auto, on or off/);
    result = run({ ...settings(), PGDB_TLS_CERT_FILE: '/nonexistent/fullchain.pem' });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /PGDB_TLS_CERT_FILE and PGDB_TLS_KEY_FILE go together: PGDB_TLS_KEY_FILE is missing/);
    result = run({ ...settings(), PGDB_TLS_CERT_FILE: '/nonexistent/fullchain.pem', PGDB_TLS_KEY_FILE: '/nonexistent/privkey.pem' });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /PGDB_TLS_CERT_FILE \/nonexistent\/fullchain\.pem cannot be read/);
    assert.deepEqual(server.installedPaths(), []);
  });

  it('refuses on an unsupported system, changing nothing', () => {
    const cases = [
      ['ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"\n', /unsupported system: Fedora Linux 40/],
      ['ID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n', /unsupported system: Ubuntu 20\.04/],
      ['ID=debian\nVERSION_ID="11"\nPRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\n', /unsupported system: Debian GNU\/Linux 11/],
    ] as const;
    for (const [osRelease, message] of cases) {
      server.exec(['bash', '-c', 'cat >/tmp/os-release'], { input: Buffer.from(osRelease) });
      const result = run({ ...settings(), PGDB_INSTALL_OS_RELEASE: '/tmp/os-release' });
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, message);
    }
    assert.deepEqual(server.installedPaths(), []);
  });

  it('installs pgdbd as an enabled systemd service that answers /v1/health over HTTPS', async (t) => {
    const started = Date.now();
    const result = run(settings());
    assert.equal(result.status, 0, result.stdout + result.stderr);
    t.diagnostic(`first install took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.match(result.stderr, /Docker engine answers on \/var\/run\/docker\.sock; not installing Docker/);
    assert.match(result.stderr, /using Node\.js 22\./);
    assert.match(result.stderr, new RegExp(`waiting for ${url}/v1/health`));
    ca = server.sh(`cat ${DAEMON_CA}`);
    const health = await api(url, ca, 'GET', '/v1/health', token);
    assert.equal(health.status, 200);
    assert.equal(health.body.docker, 'reachable');
    assert.deepEqual(health.body.tls, { source: 'own-ca', api: true, ca_fingerprint: fingerprint(ca), api_key_fingerprint: publicKeyFingerprintOf(server.sh('cat /var/lib/pgdb/tls/api.key')) });
    assert.equal(server.sh('systemctl is-enabled pgdbd'), 'enabled');
    assert.equal(server.sh('systemctl is-active pgdbd'), 'active');
    assert.match(server.sh('/opt/pgdb/bin/node --version'), /^v22\./);
  });

  it('prints the CA fingerprint and the exact pgdb commands that trust the server, and they work', () => {
    const output = outputs.at(-1)!;
    const expected = fingerprint(ca);
    const apiKey = publicKeyFingerprintOf(server.sh('cat /var/lib/pgdb/tls/api.key'));
    assert.match(output, new RegExp(`^  TLS: +CA ${DAEMON_CA}, fingerprint ${expected}; API key ${apiKey}$`, 'm'));
    assert.match(output, new RegExp(`^  CA fingerprint: ${expected}$`, 'm'));
    // The container's host name is pgdb-server; PGDB_PUBLIC_HOST is 127.0.0.1 here.
    const lines = output.split('\n').map((line) => line.trim());
    const configSet = `pgdb config set server.pgdb-server https://127.0.0.1:${apiPort}`;
    const trust = `pgdb status --server pgdb-server --trust-fingerprint ${expected}`;
    assert.ok(lines.includes(configSet), output);
    assert.ok(lines.includes(trust), output);

    // Run them from "the user's machine" (the host), as printed, with the token in the environment.
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-install-cli-')), PGDB_TOKEN: token };
    for (const command of [configSet, trust]) {
      const result = pgdb(command.split(' ').slice(1), env);
      assert.equal(result.status, 0, `${command}\n${result.stdout}${result.stderr}`);
    }
    assert.match(pgdb(['status', '--server', 'pgdb-server'], env).stdout, /^no databases on /);
    // The key the CLI pinned is the one printed.
    assert.equal(pgdb(['config', 'get', 'server.pgdb-server.api_key'], env).stdout.trim(), apiKey);
  });

  it('keeps the configuration and the data private to root', () => {
    assert.deepEqual(
      server.sh('stat -c "%a %U:%G %n" /etc/pgdb /etc/pgdb/pgdbd.env /var/lib/pgdb /var/lib/pgdb/registry.json').split('\n'),
      ['700 root:root /etc/pgdb', '600 root:root /etc/pgdb/pgdbd.env', '700 root:root /var/lib/pgdb', '600 root:root /var/lib/pgdb/registry.json'],
    );
    assert.equal(server.sh("stat -c '%a' /var/lib/pgdb/tls/ca.key"), '600');
    const env = server.sh('cat /etc/pgdb/pgdbd.env');
    assert.match(env, new RegExp(`^PGDB_TOKEN=${token}$`, 'm'));
    assert.match(env, new RegExp(`^PGDB_PORT_RANGE=${PORT_RANGE}$`, 'm'));
    assert.match(env, /^PGDB_API_TLS=on$/m);
    // Nothing the installer built is writable by anyone but root.
    assert.equal(server.sh('find /opt/pgdb -perm /022 ! -type l | head -n 5'), '');
  });

  it('runs the daemon with the unit as installed: verified, sandboxed, no device but loop devices, no capability but CAP_NET_BIND_SERVICE (the ACME ports), CAP_SYS_RESOURCE (growing a volume online) and CAP_NET_ADMIN (the network walls)', () => {
    const verify = server.exec(['systemd-analyze', 'verify', '/etc/systemd/system/pgdbd.service']);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.equal(verify.stderr.trim(), '');
    const properties = server.sh(
      'systemctl show pgdbd -p Restart -p RestartPreventExitStatus -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp -p DevicePolicy -p DeviceAllow -p CapabilityBoundingSet -p After',
    );
    for (const expected of ['Restart=on-failure', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'DevicePolicy=closed', 'CapabilityBoundingSet=cap_net_bind_service cap_net_admin cap_sys_resource']) {
      assert.match(properties, new RegExp(`^${expected}$`, 'm'));
    }
    assert.match(properties, /^DeviceAllow=.*\/dev\/loop-control rw/m);
    assert.match(properties, /^DeviceAllow=.*block-loop rw/m);
    assert.match(properties, /^RestartPreventExitStatus=78$/m);
    assert.match(properties, /^After=.*docker\.service/m);
    const status = server.sh(`grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/$(systemctl show -p MainPID --value pgdbd)/status`);
    // CAP_NET_BIND_SERVICE is capability 10 (bit 0x400), CAP_NET_ADMIN 12 (bit 0x1000), CAP_SYS_RESOURCE 24 (bit 0x1000000),
    // and nothing else. systemd cannot give what the container lacks (this one has neither CAP_NET_ADMIN nor, on this
    // machine's engine, CAP_SYS_RESOURCE; it runs with PGDB_NETWORK_WALLS=off): at most those three.
    for (const set of ['CapEff', 'CapBnd']) {
      const bits = BigInt(`0x${new RegExp(`^${set}:\\s+([0-9a-f]+)$`, 'm').exec(status)![1]}`);
      assert.equal(bits & ~0x1001400n, 0n, `${set} holds only CAP_NET_BIND_SERVICE, CAP_NET_ADMIN and CAP_SYS_RESOURCE: ${status}`);
      assert.equal(bits & 0x400n, 0x400n, `${set} holds CAP_NET_BIND_SERVICE: ${status}`);
    }
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^Seccomp:\s+2$/m);
  });

  it('deploys databases through the installed daemon whose URLs connect', async () => {
    for (const [name, version] of [['installed', 17], ['installed-15', 15]] as const) {
      const res = await api(url, ca, 'POST', '/v1/deploy', token, { name, version });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const [first, last] = bounds(PORT_RANGE);
      assert.ok(res.body.port >= first && res.body.port <= last, `port ${res.body.port} in ${PORT_RANGE}`);
      await query(res.body.database_url, 'CREATE TABLE notes (body text NOT NULL)');
      await query(res.body.database_url, 'INSERT INTO notes VALUES ($1)', [`written before the upgrade to ${name}`]);
    }
    assert.equal((await api(url, ca, 'GET', '/v1/status', 'not-the-token-not-the-token')).status, 401);
  });

  it('restarts the daemon when it dies', async () => {
    const pid = server.mainPid();
    server.sh('systemctl kill -s KILL pgdbd');
    await eventually('a new pgdbd answering', 30_000, async () => {
      const current = server.exec(['systemctl', 'show', '-p', 'MainPID', '--value', 'pgdbd']).stdout.trim();
      if (current === '0' || current === pid) throw new Error(`MainPID is ${current}`);
      return (await api(url, ca, 'GET', '/v1/health', null)).status === 200 ? current : undefined;
    }, 250);
    assert.notEqual(server.mainPid(), pid);
    assert.equal((await api(url, ca, 'GET', '/v1/health', null)).status, 200);
    assert.equal(server.sh('systemctl show -p NRestarts --value pgdbd'), '1');
  });

  it('logs to the journal, readable with journalctl -u pgdbd, never the token', () => {
    const journal = server.sh('journalctl -u pgdbd --no-pager');
    assert.match(journal, /pgdbd ready/);
    assert.match(journal, /database ready/);
    assertNoToken(token, server.sh('journalctl --no-pager'), ...outputs);
  });

  it('upgrades in place when run again without PGDB_TOKEN: same token, same databases and data', async (t) => {
    const before = { release: server.appRelease(), pid: server.mainPid(), registry: JSON.parse(server.sh('cat /var/lib/pgdb/registry.json')) };
    // A new version of the source: the upgrade must build and switch to it.
    server.sh(`echo '// upgraded' >>${CHECKOUT}/daemon/src/main.ts`);
    const started = Date.now();
    // Settings given to the upgrade: a cron schedule has spaces, and a webhook URL a query.
    const schedule = 'full=15 3 * * 0;diff=15 3 * * 1-6';
    const result = run({ PGDB_BACKUP_SCHEDULE: schedule, PGDB_ALERT_WEBHOOK: 'http://127.0.0.1:9/pgdb-alerts?server=a' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    t.diagnostic(`upgrade took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.match(result.stderr, /upgrading the pgdbd installed under \/opt\/pgdb \(token kept/);
    assert.notEqual(server.appRelease(), before.release);
    assert.notEqual(server.mainPid(), before.pid);
    assert.equal(JSON.parse(server.sh('cat /var/lib/pgdb/registry.json')).instance_id, before.registry.instance_id);

    const status = await api(url, ca, 'GET', '/v1/status?show_secrets=true', token);
    assert.equal(status.status, 200);
    const names = status.body.items.map((i: { name: string }) => i.name).sort();
    assert.deepEqual(names, ['installed', 'installed-15']);
    for (const item of status.body.items) {
      assert.equal(item.state, 'running', item.name);
      assert.deepEqual(await query(item.database_url, 'SELECT body FROM notes'), [{ body: `written before the upgrade to ${item.name}` }]);
    }
    assert.match(server.sh('cat /etc/pgdb/pgdbd.env'), new RegExp(`^PGDB_LISTEN=127\\.0\\.0\\.1:${apiPort}$`, 'm'));
    assert.match(server.sh('cat /etc/pgdb/pgdbd.env'), /^PGDB_BACKUP_SCHEDULE="full=15 3 \* \* 0;diff=15 3 \* \* 1-6"$/m);
    // systemd hands the daemon the value without the quotes, spaces kept.
    const environ = server.sh(`tr '\\0' '\\n' </proc/${server.mainPid()}/environ`);
    assert.ok(environ.split('\n').includes(`PGDB_BACKUP_SCHEDULE=${schedule}`), environ.split('\n').filter((l) => l.startsWith('PGDB_B')).join(' | '));
    assert.ok(environ.split('\n').includes('PGDB_ALERT_WEBHOOK=http://127.0.0.1:9/pgdb-alerts?server=a'));
  });

  it('leaves the running daemon untouched when the build fails', async () => {
    const before = { release: server.appRelease(), pid: server.mainPid() };
    server.sh(`cp ${CHECKOUT}/daemon/src/main.ts /tmp/main.ts && echo 'const broken: number = "x";' >>${CHECKOUT}/daemon/src/main.ts`);
    const result = run();
    server.sh(`cp /tmp/main.ts ${CHECKOUT}/daemon/src/main.ts`);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /the build failed .*the installed pgdbd was not changed/);
    assert.deepEqual({ release: server.appRelease(), pid: server.mainPid() }, before);
    assert.equal((await api(url, ca, 'GET', '/v1/status', token)).status, 200);
  });

  it('rolls back to the previous configuration when the daemon does not start with the new one', async () => {
    const envBefore = server.sh('cat /etc/pgdb/pgdbd.env');
    const release = server.appRelease();
    const result = run({ PGDB_LOG_LEVEL: 'loud' });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /PGDB_LOG_LEVEL must be one of/);
    assert.match(result.stderr, /the previous version and configuration run again/);
    assert.equal(server.sh('cat /etc/pgdb/pgdbd.env'), envBefore);
    assert.equal(server.appRelease(), release);
    const status = await api(url, ca, 'GET', '/v1/status', token);
    assert.equal(status.status, 200);
    assert.equal(status.body.items.length, 2);
    assertNoToken(token, ...outputs);
  });
});

describe('scripts/install.sh on a server without Docker', () => {
  const server = new ServerContainer({ hostDocker: false });
  const token = randomBytes(32).toString('hex');

  before(async () => {
    requireServerImage();
    server.start();
    await server.waitForSystemd();
    server.copyCheckout();
  });
  after(() => {
    server.remove();
  });

  it('installs docker.io, starts it and runs pgdbd on the default :8080 with only a token given', (t) => {
    const started = Date.now();
    const result = server.install({ PGDB_TOKEN: token });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    t.diagnostic(`install with docker.io took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.match(result.stderr, /apt-get install docker\.io/);
    assert.match(result.stderr, /PGDB_PUBLIC_HOST not set; using \S+ in database URLs/);
    assertNoToken(token, result.stdout, result.stderr);
    assert.equal(server.sh('systemctl is-enabled docker.service pgdbd.service'), 'enabled\nenabled');
    assert.equal(server.sh('systemctl is-active docker.service pgdbd.service'), 'active\nactive');
    // Listening on every address, the API serves HTTPS by default, and only HTTPS.
    const ca = server.sh(`cat ${DAEMON_CA}`);
    // Without the token: the verdict and the TLS summary, nothing about databases or the version.
    assert.deepEqual(JSON.parse(server.sh(`curl -fsS --cacert ${DAEMON_CA} https://127.0.0.1:8080/v1/health`)), {
      status: 'ok',
      tls: { source: 'own-ca', api: true, ca_fingerprint: fingerprint(ca), api_key_fingerprint: publicKeyFingerprintOf(server.sh('cat /var/lib/pgdb/tls/api.key')) },
    });
    assert.match(result.stderr, new RegExp(`pgdbd ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version.replaceAll('.', '\\.')} is running and healthy`));
    assert.notEqual(server.exec(['curl', '-fsS', '--max-time', '5', 'http://127.0.0.1:8080/v1/health']).status, 0);
    assert.match(result.stderr, /waiting for https:\/\/127\.0\.0\.1:8080\/v1\/health/);
    assert.match(result.stderr, new RegExp(`^  pgdb status --server pgdb-server --trust-fingerprint ${fingerprint(ca)}$`, 'm'));
    assert.match(server.sh('cat /etc/pgdb/pgdbd.env'), /^PGDB_LISTEN=:8080$/m);
    // The unit lets the daemon put its network walls up (CAP_NET_ADMIN, iptables): done at start, before it answers.
    assert.match(server.sh('iptables -w -S INPUT'), /^-A INPUT -i br-[0-9a-f]+ -j PGDB-IN-[0-9a-f]+$/m);
    assert.match(server.sh('iptables -w -S DOCKER-USER'), /^-A DOCKER-USER -i br-[0-9a-f]+ -j PGDB-FWD-[0-9a-f]+$/m);
  });

  it('leaves a first install whose daemon never starts stopped and disabled, not restarting forever', () => {
    // Back to a server pgdbd was never installed on (Docker stays).
    server.sh('systemctl disable --now pgdbd.service; rm -rf /opt/pgdb /etc/pgdb /var/lib/pgdb /etc/systemd/system/pgdbd.service; systemctl daemon-reload');
    // An address this server does not have: pgdbd refuses its configuration (exit 78).
    const result = server.install({ PGDB_TOKEN: token, PGDB_POSTGRES_BIND: '203.0.113.77' });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /pgdbd did not start .*the unit is stopped and disabled/);
    assert.match(result.stderr, /PGDB_POSTGRES_BIND 203\.0\.113\.77 is not an address of this host/);
    assert.equal(server.exec(['systemctl', 'is-enabled', 'pgdbd.service']).stdout.trim(), 'disabled');
    assert.notEqual(server.exec(['systemctl', 'is-active', 'pgdbd.service']).stdout.trim(), 'active');
    assertNoToken(token, result.stdout, result.stderr);
  });
});
