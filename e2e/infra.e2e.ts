/**
 * `pgdb infra` as a user runs it: the built CLI as a subprocess, the real
 * Pulumi engine (scripts/build-pulumi.sh), the real npm SDKs and the project's
 * program, with stand-in provider plugins (e2e/support/plugins) against a
 * fake Hetzner Cloud API (e2e/support/fake-hcloud.ts) whose servers are
 * systemd containers running sshd on their own loopback address
 * (e2e/support/test-servers.ts). bootstrap then installs pgdbd there with the
 * real scripts/install.sh, and the test deploys a database through it.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeInstanceObjects, requireDockerAndImages, ROOT, TEST_IMAGE_REPO, docker } from './support/daemon.js';
import { getHealth } from '../infra/health.js';
import { FakeHcloud } from './support/fake-hcloud.js';
import { DockerMachines, INFRA_TEST_IMAGE } from './support/test-servers.js';
import { pluginVersion } from './support/plugins/protocol.js';

const BIN = join(ROOT, 'dist/cli/bin/pgdb.cjs');
const PULUMI =
  process.env.PGDB_TEST_PULUMI ?? join(process.env.PGDB_BUILD_CACHE ?? '/var/cache/pgdb-build', 'pulumi', 'v3.248.0', 'pulumi');
const STACK = 'e2e';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A secret and the forms it travels in: base64 and base64url, of the value
 * alone and with the newline a file adds (the bootstrap script carries
 * values so), padded or not. An output must hold none of them.
 */
function encodedForms(secret: string): string[] {
  const forms = new Set([secret]);
  for (const value of [secret, `${secret}\n`]) {
    for (const encoded of [Buffer.from(value).toString('base64'), Buffer.from(value).toString('base64url')]) forms.add(encoded.replace(/=+$/, ''));
  }
  return [...forms];
}

describe('pgdb infra with the real Pulumi engine against a fake Hetzner Cloud', () => {
  const work = mkdtempSync(join(tmpdir(), 'pgdb-infra-e2e-'));
  const hcloudToken = randomBytes(32).toString('hex');
  const machines = new DockerMachines(join(work, 'volumes'));
  const fake = new FakeHcloud(hcloudToken, machines);
  const outputs: string[] = [];
  let env: Record<string, string> = {};
  let serverId = 0;
  let ipv4 = '';
  let instance = '';
  let databaseUrl = '';
  // The backup secrets bootstrap carries: local files, each one line.
  const s3AccessKey = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
  const s3SecretKey = randomBytes(30).toString('base64url');
  const backupKey = `pgdb-backup-key-1:${randomBytes(32).toString('base64url')}`;
  const secretFile = (name: string, value: string) => {
    const path = join(work, 'secrets', name);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, `${value}\n`, { mode: 0o600 });
    return path;
  };

  const pgdb = (args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<Run> =>
    new Promise((resolve) => {
      const child = execFile(process.execPath, [BIN, ...args], { env: { ...env, ...options.env }, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 }, (error, stdout, stderr) => {
        outputs.push(stdout, stderr);
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
      child.stdin?.end(options.input ?? '');
    });
  const configFile = () => join(work, 'config', 'pgdb', 'config.json');
  const config = () => JSON.parse(readFileSync(configFile(), 'utf8'));
  const errorLines = (run: Run) => run.stderr.split('\n').filter((line) => line.startsWith('error: '));
  const secrets = () => {
    const values = [hcloudToken];
    const passphrase = join(work, 'config', 'pgdb', 'infra', 'passphrase');
    if (existsSync(passphrase)) values.push(readFileSync(passphrase, 'utf8').trim());
    const token = existsSync(configFile()) ? config().servers?.[STACK]?.token : undefined;
    if (token) values.push(token);
    values.push(s3AccessKey, s3SecretKey, backupKey);
    return values.flatMap(encodedForms);
  };

  before(async () => {
    requireDockerAndImages([17]);
    try {
      docker('image', 'inspect', INFRA_TEST_IMAGE);
    } catch {
      throw new Error(`test image ${INFRA_TEST_IMAGE} is missing (run scripts/build-infra-test-image.sh)`);
    }
    if (!existsSync(PULUMI)) throw new Error(`the Pulumi CLI is missing at ${PULUMI} (run scripts/build-pulumi.sh, or set PGDB_TEST_PULUMI)`);
    await fake.start();
    env = {
      PATH: `${dirname(PULUMI)}:${process.env.PATH}`,
      HOME: join(work, 'home'),
      XDG_CONFIG_HOME: join(work, 'config'),
      XDG_CACHE_HOME: join(work, 'cache'),
      PULUMI_HOME: join(work, 'pulumi-home'),
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
      PULUMI_SKIP_UPDATE_CHECK: 'true',
      PULUMI_IGNORE_AMBIENT_PLUGINS: 'true',
      HCLOUD_ENDPOINT: fake.endpoint,
    };
    mkdirSync(env.HOME, { recursive: true });
    // The stand-in plugins, at the versions the npm packages ask for, in a private PULUMI_HOME.
    for (const [name, npmPackage] of [['hcloud', '@pulumi/hcloud'], ['command', '@pulumi/command']]) {
      const launcher = join(work, `pulumi-resource-${name}`);
      writeFileSync(launcher, `#!/bin/sh\nexec ${process.execPath} ${join(ROOT, 'dist/e2e/support/plugins', `${name}.js`)} "$@"\n`);
      chmodSync(launcher, 0o755);
      execFileSync(PULUMI, ['plugin', 'install', 'resource', name, `v${pluginVersion(npmPackage)}`, '--file', launcher], { env, stdio: 'pipe' });
    }
  });

  after(async () => {
    await machines.cleanup();
    if (instance) removeInstanceObjects(instance);
    await fake.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('stores the Hetzner token read from standard input in a 0600 config file', async () => {
    const run = await pgdb(['config', 'set', 'hcloud.token', '-'], { input: `${hcloudToken}\n` });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(statSync(configFile()).mode & 0o777, 0o600);
    assert.equal(config().hcloud.token, hcloudToken);
    assert.equal(run.stdout.includes(hcloudToken) || run.stderr.includes(hcloudToken), false);
  });

  it('a bad token ends with one clear line and exit 1, printing no secret', async () => {
    const wrong = randomBytes(32).toString('hex');
    const run = await pgdb(['infra', 'init', '--name', 'badtoken'], { env: { HCLOUD_TOKEN: wrong } });
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.deepEqual(errorLines(run), ['error: Hetzner Cloud rejected the API token (401 unauthorized)']);
    assert.match(run.stderr, /^hint: .*pgdb config set hcloud\.token -/m);
    assert.equal(`${run.stdout}${run.stderr}`.includes(wrong), false);
    assert.equal([...fake.sshKeys.values()].some((key) => key.name === 'pgdb-badtoken'), false);
  });

  it('an unknown server type ends with one clear line and exit 1; destroy --delete-volume then removes everything', async () => {
    const run = await pgdb(['infra', 'init', '--name', 'badtype', '--type', 'cx999', '--volume-size', '10']);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.deepEqual(errorLines(run), ['error: unknown Hetzner server type "cx999"']);
    assert.equal([...fake.servers.values()].some((server) => server.name === 'pgdb-badtype'), false);
    const destroyed = await pgdb(['infra', 'destroy', '--name', 'badtype', '--yes', '--delete-volume']);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.equal([...fake.volumes.values()].some((volume) => volume.name === 'pgdb-badtype-data'), false);
    assert.equal([...fake.firewalls.values()].some((firewall) => firewall.name === 'pgdb-badtype'), false);
  });

  it('init creates the SSH key, the firewall with rules from the flags, the server behind it and the attached volume', async () => {
    const run = await pgdb(['infra', 'init', '--name', STACK, '--volume-size', '10', '--allow-api', '127.0.0.0/8', '--allow-postgres', '127.0.0.0/8', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout);
    assert.match(out.ipv4, /^127\.0\.0\.\d+$/);
    ({ server_id: serverId, ipv4 } = out);
    const server = fake.servers.get(serverId)!;
    assert.equal(server.name, 'pgdb-e2e');
    const firewall = fake.firewalls.get(out.firewall_id)!;
    assert.deepEqual((server.public_net as { firewalls: unknown[] }).firewalls, [{ id: out.firewall_id, status: 'applied' }]);
    // A set: the provider sends the rules in the order of their hashes, not the program's.
    assert.deepEqual(
      (firewall.rules as Array<{ port: string; source_ips: string[] }>).map((rule) => [rule.port, rule.source_ips]).sort(([a], [b]) => String(a).localeCompare(String(b))),
      [
        ['15432-16431', ['127.0.0.0/8']],
        ['22', ['0.0.0.0/0', '::/0']],
        ['443', ['0.0.0.0/0', '::/0']],
        ['80', ['0.0.0.0/0', '::/0']],
        ['8080', ['127.0.0.0/8']],
      ],
    );
    const volume = fake.volumes.get(out.volume_id)!;
    assert.equal(volume.server, serverId);
    assert.equal(volume.format, 'ext4');
    assert.equal(out.volume_device, `/dev/disk/by-id/scsi-0HC_Volume_${out.volume_id}`);
    assert.match(run.stderr, /created Server server \(\d+\.\d s\)/);
  });

  it('a second init with the same flags changes nothing, and a refresh finds no drift', async () => {
    const before = fake.mutations().length;
    const run = await pgdb(['infra', 'init', '--name', STACK, '--allow-api', '127.0.0.0/8', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout).changes, { same: 6 });
    const status = await pgdb(['infra', 'status', '--name', STACK, '--refresh', '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout).drift, {});
    assert.deepEqual(fake.mutations().slice(before), []);
  });

  it('a lock held by a live run stops init with one line naming it; a lock left by an interrupted run is removed', async () => {
    const locks = join(work, 'config', 'pgdb', 'infra', 'state', '.pulumi', 'locks', 'organization', 'pgdb', STACK);
    mkdirSync(locks, { recursive: true });
    const lock = (pid: number) => JSON.stringify({ pid, username: 'someone', hostname: hostname(), timestamp: new Date().toISOString() });
    writeFileSync(join(locks, 'live.json'), lock(process.pid));
    const held = await pgdb(['infra', 'init', '--name', STACK]);
    assert.equal(held.code, 1, held.stderr);
    assert.deepEqual(errorLines(held), [`error: the stack "${STACK}" is locked by another pgdb or pulumi run`]);
    assert.match(held.stderr, new RegExp(`^hint: a run with pid ${process.pid} on ${hostname()} holds it; .*remove ${join(locks, 'live.json')}`, 'm'));
    rmSync(join(locks, 'live.json'));
    const gone = spawnSync('true').pid!;
    writeFileSync(join(locks, 'stale.json'), lock(gone));
    const recovered = await pgdb(['infra', 'init', '--name', STACK, '--json']);
    assert.equal(recovered.code, 0, recovered.stderr);
    assert.match(recovered.stderr, new RegExp(`^removed the lock left by an interrupted run \\(pid ${gone} on this machine\\)$`, 'm'));
    assert.deepEqual(JSON.parse(recovered.stdout).changes, { same: 6 });
  });

  it('bootstrap names the host and port in one line when SSH is unreachable, and prints no secret', async () => {
    await machines.exec(serverId, 'systemctl stop ssh.service');
    try {
      const run = await pgdb(['infra', 'bootstrap', '--name', STACK]);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      // The command provider's retries: 100 ms, growing by half up to 5 s between tries, about two minutes in all.
      const [line] = errorLines(run);
      const seen = new RegExp(`^error: cannot reach SSH on ${ipv4.replace(/\./g, '\\.')} port 22: connection refused \\(30 attempts in (\\d+) min (\\d+) s\\)$`).exec(line ?? '');
      assert.ok(seen, run.stderr);
      const seconds = Number(seen[1]) * 60 + Number(seen[2]);
      assert.ok(seconds >= 100 && seconds < 240, `${seconds} s`);
      for (const secret of secrets()) assert.equal(`${run.stdout}${run.stderr}`.includes(secret), false);
    } finally {
      await machines.exec(serverId, 'systemctl start ssh.service');
    }
  });

  /** The flags of the bootstrap that installs pgdbd, and of the runs repeating it. */
  const bootstrapArgs = () => [
    '--name',
    STACK,
    '--daemon-env',
    `PGDB_IMAGE_TEMPLATE=${TEST_IMAGE_REPO}:{major}`,
    '--daemon-env',
    'PGDB_POSTGRES_VERSIONS=15,17,18',
    '--daemon-env',
    'PGDB_DEFAULT_VERSION=17',
    // The test server's API listens on a loopback address, where pgdbd would choose plain HTTP.
    '--daemon-env',
    'PGDB_API_TLS=on',
    // Two cores shared with other test runs: give pgdbd's first start (its CA, its certificates) time.
    '--daemon-env',
    'PGDB_INSTALL_HEALTH_TIMEOUT=180',
    // The test server uses this machine's Docker engine (its socket is mounted in):
    // a local backup repository under the server's /var/lib/pgdb would be a path
    // the engine does not have. On a real server both see one disk.
    '--daemon-env',
    'PGDB_BACKUP=off',
    // Likewise a disk image under the server's /var/lib/pgdb, and loop devices the container does not have.
    '--daemon-env',
    'PGDB_SIZE_LIMITS=off',
    // And the firewall: the test server shares the host's network and has no NET_ADMIN.
    '--daemon-env',
    'PGDB_NETWORK_WALLS=off',
    // S3 settings with the keys copied from local files (the daemon reads them at start; backups are off, see above).
    '--daemon-env',
    'PGDB_BACKUP_S3_ENDPOINT=s3.pgdb-e2e.invalid',
    '--daemon-env',
    'PGDB_BACKUP_S3_BUCKET=pgdb-e2e',
    '--daemon-env',
    'PGDB_BACKUP_S3_REGION=fsn1',
    '--s3-access-key-file',
    secretFile('s3-access', s3AccessKey),
    '--s3-secret-key-file',
    secretFile('s3-secret', s3SecretKey),
    '--backup-key-file',
    secretFile('backup-key', backupKey),
  ];

  it('bootstrap installs pgdbd with the data on the volume, no Pulumi on the server, and stores the server alias', async (t) => {
    const started = Date.now();
    const run = await pgdb([
      'infra',
      'bootstrap',
      '--verbose',
      ...bootstrapArgs(),
    ]);
    t.diagnostic(`bootstrap took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const entry = config().servers[STACK];
    t.diagnostic(`stored server ${STACK}: ${entry.url}, CA ${entry.ca_fingerprint}`);
    assert.match(entry.url, new RegExp(`^https?://${ipv4.replace(/\./g, '\\.')}:8080$`));
    assert.match(entry.token, /^[0-9a-f]{64}$/);
    // The daemon's own CA, read over SSH, is pinned in the alias: the one /v1/health reports.
    const health = (await getHealth(entry.url, entry.ca_cert, 5_000)).body as { tls?: { api: boolean; ca_fingerprint: string } };
    assert.match(entry.ca_cert, /^-----BEGIN CERTIFICATE-----/);
    assert.equal(entry.ca_fingerprint, health.tls?.ca_fingerprint);
    assert.equal(entry.url.startsWith('https:'), health.tls?.api === true);
    instance = JSON.parse(await machines.exec(serverId, 'cat /var/lib/pgdb/registry.json')).instance_id;
    // pgdb's data directory and Docker's data live on the Hetzner volume.
    const volumeId = JSON.parse((await pgdb(['infra', 'status', '--name', STACK, '--json'])).stdout).volume_id;
    assert.equal(await machines.exec(serverId, 'findmnt -n -o SOURCE /mnt/pgdb-data'), `/dev/hc/volume-${volumeId}`);
    assert.equal(await machines.exec(serverId, 'findmnt -n -o SOURCE /var/lib/pgdb'), `/dev/hc/volume-${volumeId}[/pgdb]`);
    assert.equal(await machines.exec(serverId, 'findmnt -n -o SOURCE /var/lib/docker'), `/dev/hc/volume-${volumeId}[/docker]`);
    assert.match(await machines.exec(serverId, 'grep " /mnt/pgdb-data " /etc/fstab'), /^\/dev\/disk\/by-id\/scsi-0HC_Volume_\d+ \/mnt\/pgdb-data ext4 /);
    // The client's Pulumi packages stay off the server.
    assert.equal(await machines.exec(serverId, 'ls /opt/pgdb/app/node_modules/@pulumi 2>/dev/null | wc -l'), '0');
    assert.equal(await machines.exec(serverId, 'systemctl is-active pgdbd'), 'active');
    // The backup secrets are on the server, root's alone, and the env file points at the S3 keys.
    const files = '/etc/pgdb/s3-access-key /etc/pgdb/s3-secret-key /var/lib/pgdb/backup.key';
    assert.equal(await machines.exec(serverId, `stat -c '%n %a %U' ${files}`), '/etc/pgdb/s3-access-key 600 root\n/etc/pgdb/s3-secret-key 600 root\n/var/lib/pgdb/backup.key 600 root');
    assert.equal(await machines.exec(serverId, `cat ${files}`), `${s3AccessKey}\n${s3SecretKey}\n${backupKey}`);
    assert.equal(
      await machines.exec(serverId, 'grep -E "^PGDB_BACKUP_S3_(ACCESS|SECRET)_KEY_FILE=" /etc/pgdb/pgdbd.env'),
      'PGDB_BACKUP_S3_ACCESS_KEY_FILE=/etc/pgdb/s3-access-key\nPGDB_BACKUP_S3_SECRET_KEY_FILE=/etc/pgdb/s3-secret-key',
    );
    assert.match(run.stdout, /^S3 keys on the server: \/etc\/pgdb\/s3-access-key and \/etc\/pgdb\/s3-secret-key \(0600\)$/m);
    // The stack's config holds them encrypted only.
    const stackConfig = readdirSync(join(work, 'config', 'pgdb', 'infra'), { recursive: true }).map(String).filter((f) => /Pulumi\.e2e\.yaml$/.test(f));
    assert.ok(stackConfig.length > 0, 'the stack config file');
    for (const file of stackConfig) {
      const text = readFileSync(join(work, 'config', 'pgdb', 'infra', file), 'utf8');
      assert.match(text, /pgdb:s3SecretKey:\n\s+secure: /);
      for (const secret of [s3AccessKey, s3SecretKey, backupKey]) assert.equal(text.includes(secret), false, `a secret in ${file}`);
    }
  });

  it('bootstrap again with the same secrets changes nothing; another backup key is refused and changes nothing', async () => {
    const same = await pgdb(['infra', 'bootstrap', ...bootstrapArgs()]);
    assert.equal(same.code, 0, same.stderr);
    // Every resource unchanged: the install command did not run again.
    assert.match(same.stdout, /^pgdbd answers on \S+ \(release \w+; \d+ unchanged\)$/m);
    const envBefore = await machines.exec(serverId, 'cat /etc/pgdb/pgdbd.env');
    const other = `pgdb-backup-key-1:${randomBytes(32).toString('base64url')}`;
    const args = bootstrapArgs();
    args[args.indexOf('--backup-key-file') + 1] = secretFile('other-key', other);
    const refused = await pgdb(['infra', 'bootstrap', ...args]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.deepEqual(errorLines(refused), [
      "error: /var/lib/pgdb/backup.key on the server holds another backup key than --backup-key-file; a server's key is never overwritten, and nothing was changed",
    ]);
    for (const form of encodedForms(other)) assert.equal(`${refused.stdout}${refused.stderr}`.includes(form), false, form);
    assert.equal(await machines.exec(serverId, 'cat /var/lib/pgdb/backup.key'), backupKey);
    assert.equal(await machines.exec(serverId, 'cat /etc/pgdb/pgdbd.env'), envBefore);
    assert.equal(await machines.exec(serverId, 'systemctl is-active pgdbd'), 'active');
    // The refused key is not kept in the stack: the next run (init below) runs nothing on the server.
  });

  it('a changed daemon setting runs the install again in place (as the command provider updates) and reads the CA again', async () => {
    // Not --json: that prints the daemon's token, which the outputs must not hold (see below).
    const run = await pgdb(['infra', 'bootstrap', ...bootstrapArgs(), '--daemon-env', 'PGDB_LOG_LEVEL=debug']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    // The install keeps its id (an update that ran the script again); the step reading the CA is triggered by what the install ran.
    const summary = /^pgdbd answers on \S+ \(release \w+; (.*)\)$/m.exec(run.stdout)?.[1] ?? '';
    assert.deepEqual(summary.split(', ').filter((part) => !part.endsWith('unchanged')).sort(), ['1 replaced', '1 updated'], run.stdout);
    assert.match(run.stderr, /^updated Command install \(\d+\.\d s\)$/m);
    assert.match(run.stderr, /^(replaced|created a replacement for) Command read-ca/m);
    assert.equal(await machines.exec(serverId, 'grep ^PGDB_LOG_LEVEL= /etc/pgdb/pgdbd.env'), 'PGDB_LOG_LEVEL=debug');
    assert.equal(await machines.exec(serverId, 'systemctl is-active pgdbd'), 'active');
    assert.match(run.stdout, new RegExp(`^its CA: ${config().servers[STACK].ca_fingerprint}$`, 'm'));
  });

  it('pgdb deploy --server <stack> creates a database on the new server whose URL connects', async () => {
    const run = await pgdb(['deploy', '--server', STACK, '--name', 'infra-e2e', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const deployed = JSON.parse(run.stdout);
    assert.equal(deployed.host, ipv4);
    databaseUrl = deployed.DATABASE_URL;
    const answer = execFileSync('psql', [deployed.DATABASE_URL, '-Atc', 'SELECT 40 + 2'], { encoding: 'utf8' }).trim();
    assert.equal(answer, '42');
  });

  it('a new --type resizes the server in place only after --yes: shut down, change_type, started again, and pgdbd and the database come back', async (t) => {
    const refused = await pgdb(['infra', 'init', '--name', STACK, '--type', 'cx32']);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.deepEqual(errorLines(refused), [
      `error: --type cx32 resizes the server of stack "${STACK}" (now cx22) in place: it is shut down, its type changed, and started again; pgdbd and its databases are down meanwhile (typically 1 to 3 minutes)`,
    ]);
    assert.equal((fake.servers.get(serverId)!.server_type as { name: string }).name, 'cx22');
    const before = fake.mutations().length;
    const run = await pgdb(['infra', 'init', '--name', STACK, '--type', 'cx32', '--yes', '--json']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const out = JSON.parse(run.stdout);
    t.diagnostic(`resize: ${JSON.stringify(out.resize)}`);
    assert.equal(out.server_id, serverId, 'the same server');
    assert.equal(out.server_type, 'cx32');
    assert.deepEqual({ ...out.resize, downtime_ms: undefined }, { from: 'cx22', to: 'cx32', databases: 1, clean_shutdown: true, downtime_ms: undefined });
    assert.ok(out.resize.downtime_ms > 0);
    // pgdb shuts the server down cleanly (the provider would cut the power), the provider changes the type and leaves it off, pgdb starts it.
    const calls = fake.mutations().slice(before).map((r) => `${r.method} ${r.path.replace(/\d+/g, 'N')}`);
    assert.deepEqual(calls, ['POST /vN/servers/N/actions/shutdown', 'POST /vN/servers/N/actions/change_type', 'POST /vN/servers/N/actions/poweron']);
    const server = fake.servers.get(serverId)!;
    assert.equal(server.status, 'running');
    assert.equal(server.primary_disk_size, 40, 'keepDisk: a smaller type stays possible');
    assert.equal(await machines.exec(serverId, 'findmnt -n -o SOURCE /var/lib/pgdb'), `/dev/hc/volume-${out.volume_id}[/pgdb]`);
    assert.equal(await machines.exec(serverId, 'systemctl is-active pgdbd'), 'active');
    const answer = execFileSync('psql', [databaseUrl, '-Atc', 'SELECT 40 + 2'], { encoding: 'utf8' }).trim();
    assert.equal(answer, '42');
  });

  it('a changed --allow-api updates the firewall alone', async () => {
    const before = fake.mutations().length;
    const run = await pgdb(['infra', 'init', '--name', STACK, '--allow-api', '127.0.0.0/8', '--allow-api', '127.1.0.0/16', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const changes = JSON.parse(run.stdout).changes;
    assert.equal(changes.update, 1);
    assert.equal(changes.create ?? 0, 0);
    assert.equal(changes.delete ?? 0, 0);
    assert.match(run.stderr, /^updated Firewall firewall/m);
    const calls = fake.mutations().slice(before).map((r) => `${r.method} ${r.path.replace(/\d+/g, 'N')}`);
    assert.deepEqual(calls, ['POST /vN/firewalls/N/actions/set_rules']);
    const status = await pgdb(['infra', 'status', '--name', STACK, '--json']);
    assert.equal(JSON.parse(status.stdout).daemon.answers, true);
  });

  it('keeps every secret out of the outputs and out of the Pulumi state in plain text', () => {
    const stateDir = join(work, 'config', 'pgdb', 'infra', 'state', '.pulumi', 'stacks');
    const files = readdirSync(stateDir, { recursive: true }).map(String).filter((f) => f.endsWith('.json'));
    assert.ok(files.length > 0);
    const privateKey = readFileSync(join(work, 'config', 'pgdb', 'infra', 'keys', STACK, 'id_ed25519'), 'utf8');
    const keyBody = privateKey.split('\n')[1];
    for (const file of files) {
      const text = readFileSync(join(stateDir, file), 'utf8');
      for (const secret of [hcloudToken, config().servers[STACK].token, keyBody, s3AccessKey, s3SecretKey, backupKey]) {
        assert.equal(text.includes(secret), false, `a secret in ${file}`);
      }
    }
    for (const output of outputs) for (const secret of secrets()) assert.equal(output.includes(secret), false);
    const passphrase = join(work, 'config', 'pgdb', 'infra', 'passphrase');
    assert.equal(statSync(passphrase).mode & 0o777, 0o600);
  });

  it('destroy removes the server, firewall and key from the cloud and keeps the volume', async () => {
    const volumeId = JSON.parse((await pgdb(['infra', 'status', '--name', STACK, '--json'])).stdout).volume_id;
    // The server's databases (and warm standbys) run on the host's engine: stop pgdbd first, so it refills nothing.
    await machines.exec(serverId, 'systemctl stop pgdbd');
    if (instance) removeInstanceObjects(instance);
    instance = '';
    const run = await pgdb(['infra', 'destroy', '--name', STACK, '--yes', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual({ ...JSON.parse(run.stdout), changes: undefined }, { stack: STACK, volume_kept: true, alias_removed: true, changes: undefined });
    assert.equal(fake.servers.has(serverId), false);
    assert.equal([...fake.firewalls.values()].some((f) => f.name === 'pgdb-e2e'), false);
    assert.equal([...fake.sshKeys.values()].some((k) => k.name === 'pgdb-e2e'), false);
    const volume = fake.volumes.get(volumeId);
    assert.ok(volume, 'the volume is kept');
    assert.equal(volume.server, null);
    assert.equal(config().servers[STACK], undefined);
  });

  it('init after destroy attaches the kept volume to the new server', async () => {
    const volumeId = [...fake.volumes.values()].find((v) => v.name === 'pgdb-e2e-data')!.id as number;
    const run = await pgdb(['infra', 'init', '--name', STACK, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout);
    assert.notEqual(out.server_id, serverId);
    assert.equal(out.volume_id, volumeId);
    assert.equal(fake.volumes.get(volumeId)!.server, out.server_id);
    assert.equal(await machines.exec(out.server_id, `blkid -o value -s TYPE /dev/disk/by-id/scsi-0HC_Volume_${volumeId}`), 'ext4');
    const removed = await pgdb(['infra', 'destroy', '--name', STACK, '--yes', '--delete-volume']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(fake.volumes.has(volumeId), false);
    assert.equal(fake.servers.size, 0);
  });
});
