/**
 * The production path of images, as on a real server: pgdbd pulls
 * `postgres:<major>` from a registry and, because that image lacks
 * pgBackRest, builds `pgdb-local/postgres:<major>` from it. Here a real
 * registry (`distribution`, scripts/build-registry.sh) listens on loopback,
 * and the base image pushed to it is the test image without pgBackRest and
 * without the label that says it has it (the official image has neither).
 * The derived build installs pgBackRest with apt from the repository the base
 * image configures (PGDG's in the official image; here a folder in the image
 * itself, so that the test sends nothing beyond this machine). Then a backup
 * and a restore run on the derived image.
 *
 * And the failures, each one clear line in `deploy` and in `status` (the warm
 * pool's line) and nothing half-made: an image the registry does not have, a
 * derived build that fails (a base image whose apt has no repository), a
 * registry that is down.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { docker, freePort, query, requireDockerAndImages, TEST_IMAGE_REPO, TestDaemon, type ApiResponse } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);
const REGISTRY =
  process.env.PGDB_TEST_REGISTRY ?? join(process.env.PGDB_BUILD_CACHE ?? '/var/cache/pgdb-build', 'registry', 'v3.1.2', 'registry');
/** The label pgdb's images carry when they have pgBackRest (BackupRepository's image needs). */
const PGBACKREST_LABEL = 'org.pgdb.pgbackrest';
const DERIVED = 'pgdb-local/postgres';

/**
 * Shell (one Dockerfile RUN) that turns the installed pgbackrest package back into a .deb in
 * /srv/apt, purges it, and makes that folder the image's only apt repository (a flat one:
 * `Packages` beside the .deb). The tests send no traffic beyond this machine: apt reads files.
 */
const LOCAL_APT_REPOSITORY = [
  'set -eu; d=/tmp/pkg; mkdir -p "$d/DEBIAN" /srv/apt',
  'dpkg -L pgbackrest | while IFS= read -r f; do if [ ! -d "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done > /tmp/files',
  'tar -cf - --no-recursion -T /tmp/files | tar -xf - -C "$d"',
  "dpkg-query -s pgbackrest | grep -E '^(Package|Version|Architecture|Maintainer|Depends|Description):' > \"$d/DEBIAN/control\"",
  'dpkg-deb --build "$d" /srv/apt/pgbackrest.deb >/dev/null; rm -rf "$d" /tmp/files',
  'dpkg --purge pgbackrest >/dev/null',
  '{ dpkg-deb -f /srv/apt/pgbackrest.deb; echo "Filename: ./pgbackrest.deb"; echo "Size: $(stat -c %s /srv/apt/pgbackrest.deb)"; echo "SHA256: $(sha256sum /srv/apt/pgbackrest.deb | cut -d\' \' -f1)"; echo; } > /srv/apt/Packages',
  "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*; echo 'deb [trusted=yes] file:/srv/apt ./' > /etc/apt/sources.list",
].join('; ');

function imageExists(image: string): boolean {
  try {
    docker('image', 'inspect', image);
    return true;
  } catch {
    return false;
  }
}

function removeImage(image: string): void {
  if (imageExists(image)) docker('rmi', '-f', image);
}

/** Builds `tag` from a Dockerfile given as text (no context). */
function build(tag: string, dockerfile: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'pgdb-registry-image-'));
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  docker('build', '-q', '-t', tag, dir);
}

function expectError(response: ApiResponse, status: number, code: string, message: RegExp): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.error.code, code, JSON.stringify(response.body));
  assert.match(response.body.error.message, message);
}

describe('images pulled from a registry, pgBackRest added by a derived build', { timeout: 1_800_000 }, () => {
  const storage = mkdtempSync(join(tmpdir(), 'pgdb-registry-'));
  let registry: ChildProcess | undefined;
  let address = '';
  let daemon: TestDaemon;
  const image = (major: number) => `${address}/postgres:${major}`;

  async function startRegistry(): Promise<void> {
    registry = spawn(REGISTRY, ['serve', join(storage, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    registry.stderr!.on('data', (chunk) => (output += chunk));
    await eventually('the registry answering', 30_000, async () => {
      if (registry!.exitCode !== null) throw new Error(`the registry exited: ${output}`);
      const response = await fetch(`http://${address}/v2/`).catch(() => undefined);
      return response?.status === 200 ? true : undefined;
    });
  }

  async function stopRegistry(): Promise<void> {
    const child = registry;
    // Stopped already (by a test, or it ended): a second wait for 'exit' would never end.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  /** Nothing of a refused deploy: no record, no container, no volume. */
  async function nothingOf(name: string): Promise<void> {
    const status = await daemon.api('GET', '/v1/status');
    assert.equal(status.body.items.some((item: { name: string }) => item.name === name), false);
    assert.equal(docker('ps', '-a', '--filter', `label=pgdb.name=${name}`, '--format', '{{.ID}}'), '');
    assert.equal(docker('volume', 'ls', '--filter', `label=pgdb.name=${name}`, '--format', '{{.Name}}'), '');
  }

  before(async () => {
    requireDockerAndImages([15, 17, 18]);
    if (!existsSync(REGISTRY)) throw new Error(`the registry is missing at ${REGISTRY} (run scripts/build-registry.sh, or set PGDB_TEST_REGISTRY)`);
    address = `127.0.0.1:${await freePort()}`;
    writeFileSync(
      join(storage, 'config.yml'),
      ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(storage, 'data')}`, 'http:', `  addr: ${address}`, ''].join('\n'),
    );
    await startRegistry();
    // Docker pushes to and pulls from a loopback registry over plain HTTP.
    // 17: the test image without pgBackRest and without the label saying it has it, as the official
    // image; the apt repository it configures is a folder of its own that holds the package (repacked
    // from the test image), so the derived build installs it without any network.
    build(image(17), `FROM ${TEST_IMAGE_REPO}:17\nRUN ${LOCAL_APT_REPOSITORY}\nLABEL ${PGBACKREST_LABEL}=""\n`);
    // 18: the same, and an apt with no repository: its derived build cannot install pgBackRest.
    build(image(18), `FROM ${TEST_IMAGE_REPO}:18\nRUN dpkg --purge pgbackrest && rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*\nLABEL ${PGBACKREST_LABEL}=""\n`);
    for (const major of [17, 18]) {
      docker('push', '-q', image(major));
      removeImage(image(major));
    }
    for (const major of [15, 17, 18]) removeImage(`${DERIVED}:${major}`);
    daemon = await new TestDaemon({
      portRange: ports.range(20),
      env: { PGDB_IMAGE_TEMPLATE: `${address}/postgres:{major}`, PGDB_BACKUP: 'on', PGDB_POOL: '0', PGDB_BACKUP_DRILL_SCHEDULE: 'off' },
    }).start();
  });

  after(async () => {
    await daemon?.destroyAll();
    await stopRegistry();
    for (const major of [17, 18]) {
      if (address) removeImage(image(major));
      removeImage(`${DERIVED}:${major}`);
    }
  });

  it('deploys from the registry: pulls the base image, derives one with pgBackRest, and backs up and restores with it', async (t) => {
    const started = Date.now();
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'pulled', version: 17 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    t.diagnostic(`first deploy (pull and derived build): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.ok(imageExists(image(17)), 'the base image was pulled');
    const labels = JSON.parse(docker('image', 'inspect', '--format', '{{json .Config.Labels}}', `${DERIVED}:17`));
    assert.equal(labels['org.pgdb.base'], image(17));
    assert.ok(labels[PGBACKREST_LABEL], 'the derived image says it has pgBackRest');
    const container = (await daemon.api('GET', '/v1/status')).body.items.find((item: { name: string }) => item.name === 'pulled').container_id;
    assert.equal(docker('inspect', '--format', '{{.Config.Image}}', container), `${DERIVED}:17`);
    assert.match(docker('exec', container, 'pgbackrest', 'version'), /^pgBackRest \d/);

    const url = deployed.body.database_url as string;
    await query(url, 'CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 500) g');
    const backup = await daemon.api('POST', '/v1/db/pulled/backups', { type: 'full' });
    assert.equal(backup.status, 201, JSON.stringify(backup.body));
    const restored = await daemon.api('POST', '/v1/db/pulled/restore', { as: 'pulled-copy' });
    assert.equal(restored.status, 201, JSON.stringify(restored.body));
    const [row] = await query(restored.body.database_url, 'SELECT count(*)::int AS n FROM items');
    assert.equal(row.n, 500);
  });

  it('an image the registry does not have: one clear error, and nothing made', async () => {
    const refused = await daemon.api('POST', '/v1/deploy', { name: 'missing', version: 15 });
    expectError(refused, 502, 'IMAGE_UNAVAILABLE', new RegExp(`^image ${image(15).replace(/\./g, '\\.')} is not on the server and could not be pulled \\(.*(not found|unknown).*\\); `));
    await nothingOf('missing');
  });

  it('a derived build that fails: one clear error naming what apt said, and nothing made', async () => {
    const refused = await daemon.api('POST', '/v1/deploy', { name: 'unbuilt', version: 18 });
    expectError(refused, 502, 'IMAGE_UNAVAILABLE', new RegExp(`^building image ${DERIVED}:18 failed \\(.*E: (Unable to locate package pgbackrest|Package 'pgbackrest' has no installation candidate).*\\)`));
    assert.equal(imageExists(`${DERIVED}:18`), false);
    await nothingOf('unbuilt');
  });

  it('a registry that is down: one clear error in deploy, the same in status (the warm pool), and nothing made', async () => {
    await stopRegistry();
    removeImage(`${DERIVED}:17`);
    removeImage(image(17));
    await daemon.restart({ PGDB_POOL: '17:1' });
    const refused = await daemon.api('POST', '/v1/deploy', { name: 'unreachable', version: 17 });
    expectError(refused, 502, 'IMAGE_UNAVAILABLE', new RegExp(`^image ${image(17).replace(/\./g, '\\.')} is not on the server and could not be pulled \\(.*connection refused.*\\)`));
    await nothingOf('unreachable');
    const pool = await eventually('the warm pool reporting why it cannot fill', 60_000, async () => {
      const status = await daemon.api('GET', '/v1/status');
      return status.body.pool.find((entry: { postgres_version: number; problem?: string }) => entry.postgres_version === 17 && entry.problem);
    });
    assert.match(pool.problem, /could not be pulled \(.*connection refused.*\)/);
  });
});
