/**
 * Faults and deliberate destroys against the real daemon, Docker and
 * Postgres: kept volumes survive `docker volume prune` and come back with
 * their rows under new credentials after a clean shutdown; a lost container
 * is repaired; a restored older registry deletes nothing; a damaged registry
 * stops the daemon with exit code 78.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tmpdir } from 'node:os';
import { loadConfig } from '../daemon/src/common/config.js';
import type { DomainError } from '../daemon/src/common/errors.js';
import { createLogger } from '../daemon/src/common/logger.js';
import { DockerodeGateway } from '../daemon/src/docker/dockerode.gateway.js';
import { DAEMON_MAIN, docker, dockerObjectExists, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

describe('robustness', () => {
  let daemon: TestDaemon;

  before(async () => {
    requireDockerAndImages([17]);
    daemon = await new TestDaemon({ portRange: ports.range(50) }).start();
  });
  after(async () => daemon?.destroyAll());

  it('a bind path the engine cannot see (Docker in a container, snap, rootless) is a clear error, not INTERNAL', async () => {
    const gateway = new DockerodeGateway(loadConfig({ PGDB_TOKEN: 'robustness-token-0123456789' }), createLogger('silent'));
    const missing = join(tmpdir(), `pgdb-not-on-the-engine-${process.pid}`);
    const name = `pgdb-task-bindcheck-${process.pid}`;
    await assert.rejects(
      gateway.runTask({
        containerName: name,
        image: 'pgdb-test/postgres:17',
        command: ['true'],
        user: '999:999',
        labels: { 'pgdb.instance': daemon.instanceId() },
        volumes: [],
        binds: [{ source: missing, target: '/var/lib/pgdb-backups' }],
        files: [],
        network: 'none',
        memoryBytes: 64 * 1024 * 1024,
        timeoutMs: 60_000,
      }),
      (error: DomainError) => error.code === 'DOCKER_UNAVAILABLE' && error.message.includes(`cannot see ${missing}`) && /S3/.test(error.message),
    );
    assert.equal(dockerObjectExists('container', name), false, 'nothing is left behind');
  });

  it('keeps a kept volume through docker volume prune, and a deploy from it has the rows and new credentials', async () => {
    const first = await daemon.api('POST', '/v1/deploy', { name: 'keeper' });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    await query(first.body.database_url, 'CREATE TABLE notes (body text NOT NULL)');
    await query(first.body.database_url, "INSERT INTO notes SELECT 'note ' || g FROM generate_series(1, 100) g");
    const volume = (await daemon.api('GET', '/v1/status')).body.items[0].volume_name;
    assert.equal((await daemon.api('DELETE', '/v1/db/keeper?keep_data=true')).status, 200);

    // Positive control: an unused volume with this daemon's labels is pruned on this engine.
    const control = `pgdb-prune-control-${daemon.instanceId()}`;
    docker('volume', 'create', '--label', `pgdb.instance=${daemon.instanceId()}`, control);
    docker('volume', 'prune', '-f', '--filter', `label=pgdb.instance=${daemon.instanceId()}`);
    assert.equal(dockerObjectExists('volume', control), false, 'prune removes unused volumes on this engine');
    assert.equal(dockerObjectExists('volume', volume), true, 'the kept volume survived the prune');

    const again = await daemon.api('POST', '/v1/deploy', { name: 'keeper-again', from_volume: volume });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.notEqual(again.body.password, first.body.password);
    assert.deepEqual(await query(again.body.database_url, 'SELECT count(*)::int AS n FROM notes'), [{ n: 100 }]);
    await assert.rejects(query(first.body.database_url.replace(/:\d+\//, `:${again.body.port}/`), 'SELECT 1'), /password authentication failed/);
    // The kept volume was shut down cleanly: no crash recovery when it started again.
    const container = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'keeper-again').container_id;
    const logs = spawnSync('docker', ['logs', container], { encoding: 'utf8' });
    assert.doesNotMatch(`${logs.stdout}${logs.stderr}`, /not properly shut down|automatic recovery in progress/);
    assert.equal((await daemon.api('GET', '/v1/status')).body.detached_volumes.length, 0);
  });

  it('repairs a database whose container was removed by hand: same port, same credentials, same rows', async () => {
    const res = await daemon.api('POST', '/v1/deploy', { name: 'fragile' });
    assert.equal(res.status, 201);
    await query(res.body.database_url, 'CREATE TABLE t AS SELECT 42 AS answer');
    const before = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'fragile');
    docker('rm', '-f', before.container_id);
    await daemon.restart();
    const after = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'fragile');
    assert.notEqual(after.container_id, before.container_id);
    assert.equal(after.host_port, before.host_port);
    assert.equal(after.state, 'running');
    assert.deepEqual(await query(res.body.database_url, 'SELECT answer FROM t'), [{ answer: 42 }]);
  });

  it('deletes nothing after an older registry.json is restored, and lists what it does not know', async () => {
    const registry = join(daemon.dataDir, 'registry.json');
    const backup = `${registry}.backup-for-test`;
    copyFileSync(registry, backup);
    const later = await daemon.api('POST', '/v1/deploy', { name: 'after-backup' });
    assert.equal(later.status, 201);
    await query(later.body.database_url, 'CREATE TABLE precious AS SELECT 1 AS x');
    await daemon.stop();
    copyFileSync(backup, registry);
    await daemon.start();
    const status = (await daemon.api('GET', '/v1/status')).body;
    assert.equal(status.items.some((i: { name: string }) => i.name === 'after-backup'), false);
    assert.deepEqual(status.unknown_containers.map((c: { name: string }) => c.name), ['after-backup']);
    // Still there, still serving its data.
    assert.deepEqual(await query(later.body.database_url, 'SELECT x FROM precious'), [{ x: 1 }]);
  });

  it('stops with exit code 78 and names the file when the registry is damaged', async () => {
    await daemon.stop();
    const registry = join(daemon.dataDir, 'registry.json');
    const good = readFileSync(registry, 'utf8');
    const file = JSON.parse(good);
    file.items[0].host_port = 'not a port';
    writeFileSync(registry, JSON.stringify(file));
    const run = spawnSync(process.execPath, [DAEMON_MAIN], {
      env: { PATH: process.env.PATH, PGDB_TOKEN: daemon.token, PGDB_LISTEN: '127.0.0.1:0', PGDB_DATA_DIR: daemon.dataDir },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 78, run.stderr);
    assert.match(run.stderr, new RegExp(`registry ${registry}: item 0 \\("[a-z-]+"\\) has an invalid "host_port"`));
    writeFileSync(registry, good);
    await daemon.start();
  });
});
