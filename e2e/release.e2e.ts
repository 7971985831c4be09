/**
 * The CLI as a user installs it without a checkout: `npm run pack:cli`'s
 * tarball (tools/release/pack.ts), installed with `npm install -g` in a clean
 * Debian container (the install test image: no Node.js, no checkout; this
 * machine's node and npm are mounted in, as a user brings their own), with
 * no network to a registry (`--offline`, the Pulumi packages omitted). Then
 * the installed `pgdb` runs there against the real pgdbd on this machine:
 * --version, deploy, status, destroy; `pgdb infra init --help`; and `pgdb
 * infra init` says what it lacks.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { query, requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);
const IMAGE = process.env.PGDB_INSTALL_TEST_IMAGE ?? 'pgdb-test/install-debian:12';
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('the CLI release tarball, installed with npm in a clean container', () => {
  const daemon = new TestDaemon({ portRange: ports.range(20) });
  const container = `pgdb-release-e2e-${process.pid}`;
  let tarball = '';

  /** Runs `script` in the container as root; the daemon's URL and token in the environment. */
  const inside = (script: string) =>
    spawnSync('docker', ['exec', '-e', `PGDB_SERVER_URL=${daemon.url}`, '-e', `PGDB_TOKEN=${daemon.token}`, container, 'bash', '-c', script], { encoding: 'utf8' });

  before(async () => {
    requireDockerAndImages([17]);
    // As `npm run pack:cli` makes it (after the build the suite ran).
    tarball = execFileSync(process.execPath, [join(ROOT, 'dist/tools/release/pack.js'), mkdtempSync(join(tmpdir(), 'pgdb-release-'))], { encoding: 'utf8' }).trim();
    await daemon.start();
    const node = realpathSync(process.execPath);
    const npm = dirname(dirname(realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim())));
    // The host's network: the installed CLI reaches the test daemon on 127.0.0.1; npm runs --offline.
    execFileSync('docker', [
      'run', '-d', '--rm', '--name', container, '--network', 'host',
      '-v', `${node}:/usr/local/bin/node:ro`,
      '-v', `${npm}:/usr/local/lib/npm:ro`,
      '-v', `${tarball}:/tmp/pgdb-${VERSION}.tgz:ro`,
      '--entrypoint', 'sleep', IMAGE, 'infinity',
    ]);
  });

  after(async () => {
    spawnSync('docker', ['rm', '-f', container]);
    await daemon.destroyAll();
  });

  it('installs with one command, offline and without the optional Pulumi packages, carrying no dependency', () => {
    const install = inside(`node /usr/local/lib/npm/bin/npm-cli.js install -g --offline --omit=optional --no-audit --no-fund /tmp/pgdb-${VERSION}.tgz`);
    assert.equal(install.status, 0, install.stdout + install.stderr);
    assert.equal(inside('command -v pgdb').stdout.trim(), '/usr/local/bin/pgdb');
    const files = inside('cd /usr/local/lib/node_modules/pgdb && find . -type f | sort');
    assert.equal(files.status, 0, files.stderr);
    const list = files.stdout.trim().split('\n');
    assert.equal(list.some((file) => file.startsWith('./node_modules/')), false, 'no dependency installed');
    assert.ok(list.includes('./dist/cli/bin/pgdb.bundle.cjs'));
    assert.ok(list.includes('./server/scripts/install.sh'), 'what bootstrap copies to a server');
    assert.equal(list.some((file) => /\.spec\.|\/e2e\/|\.ts$/.test(file) && !file.startsWith('./server/')), false, 'no tests, no sources outside server/');
  });

  it('pgdb --version prints the package version', () => {
    const version = inside('pgdb --version');
    assert.deepEqual([version.status, version.stdout], [0, `pgdb ${VERSION}\n`], version.stderr);
  });

  it('deploys, lists and destroys a database through the test daemon, and the URL it prints connects', async () => {
    const deploy = inside('pgdb deploy --name released --json');
    assert.equal(deploy.status, 0, deploy.stderr);
    const deployed = JSON.parse(deploy.stdout) as { DATABASE_URL: string };
    const [row] = await query(deployed.DATABASE_URL, 'SELECT 40 + 2 AS answer');
    assert.equal(row.answer, 42);
    const status = inside('pgdb status');
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /^released\s+17\s+\d+\s+running/m);
    const destroy = inside('pgdb destroy released --yes');
    assert.deepEqual([destroy.status, destroy.stdout], [0, 'destroyed released\n'], destroy.stderr);
  });

  it('pgdb infra init --help works without Pulumi; pgdb infra init says how to get it', () => {
    const help = inside('pgdb infra init --help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--type/);
    assert.match(help.stdout, /--yes/);
    const init = inside('HCLOUD_TOKEN=$(printf "%064d" 0) pgdb infra init');
    assert.equal(init.status, 1, init.stdout + init.stderr);
    assert.match(init.stderr, /^error: pgdb infra needs the Pulumi packages, which are not installed$/m);
    assert.match(init.stderr, /^hint: .*--include=optional/m);
  });
});
