import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RegistryRecord } from '../registry/registry.types.js';
import { testRecord as record } from '../testing/records.js';
import { FakeDocker } from '../testing/fake-docker.js';
import { createTestApp } from '../testing/test-app.js';

/** The seeded records have no stanza: with backups on, the start would re-create their containers to add archiving. */
const NO_BACKUPS = { PGDB_BACKUP: 'off' };

const INSTANCE = 'abcdef012345';
const labelsOf = (name: string) => ({ 'pgdb.managed': 'true', 'pgdb.instance': INSTANCE, 'pgdb.name': name });

/** A data directory and an engine as a crash left them. */
function crashedState(records: RegistryRecord[], containers: Array<{ id: string; name: string }>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-reconcile-'));
  writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: INSTANCE, items: records }), { mode: 0o600 });
  const docker = new FakeDocker();
  for (const r of records) docker.volumes.set(r.volume_name, labelsOf(r.name));
  for (const c of containers) {
    const volumeName = `pgdb-${c.name}-vol`;
    if (!docker.volumes.has(volumeName) && !records.some((r) => r.name === c.name)) docker.volumes.set(volumeName, labelsOf(c.name));
    docker.seedContainer(c.id, records.find((r) => r.name === c.name)?.volume_name ?? volumeName, labelsOf(c.name));
  }
  return { dataDir, docker };
}

describe('reconciliation at start', () => {
  it('removes a deploy that a crash interrupted: container, volume and record', async () => {
    const { dataDir, docker } = crashedState([record('half', { pending: 'creating' })], [{ id: 'id-half', name: 'half' }]);
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      assert.equal(docker.containers.size, 0);
      assert.equal(docker.volumes.size, 0);
      assert.deepEqual((await t.request('GET', '/v1/status')).body.items, []);
    } finally {
      await t.close();
    }
  });

  it('starts a container that is down though its database was not stopped (a sized volume the engine could not mount at boot); leaves a stopped one down', async () => {
    const { dataDir, docker } = crashedState(
      [record('booted', { container_id: 'id-booted' }), record('parked', { container_id: 'id-parked', stopped: true })],
      [{ id: 'id-booted', name: 'booted' }, { id: 'id-parked', name: 'parked' }],
    );
    docker.containers.get('id-booted')!.running = false;
    docker.containers.get('id-parked')!.running = false;
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      await t.request('GET', '/v1/status');
      assert.equal(docker.containers.get('id-booted')!.running, true);
      assert.equal(docker.containers.get('id-parked')!.running, false);
    } finally {
      await t.close();
    }
  });

  it('finishes an interrupted destroy, keeping the volume when asked', async () => {
    const { dataDir, docker } = crashedState(
      [record('going', { pending: 'destroying', keep_data: true }), record('staying')],
      [{ id: 'id-going', name: 'going' }, { id: 'id-staying', name: 'staying' }],
    );
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      const databases = [...docker.containers.values()].filter((c) => !c.spec.labels['pgdb.keeps_volume']);
      assert.deepEqual(databases.map((c) => c.id), ['id-staying']);
      assert.ok(docker.volumes.has('pgdb-going-vol'));
      const status = (await t.request('GET', '/v1/status')).body;
      assert.deepEqual(status.items.map((i: { name: string }) => i.name), ['staying']);
      assert.deepEqual(status.detached_volumes.map((v: { volume_name: string }) => v.volume_name), ['pgdb-going-vol']);
    } finally {
      await t.close();
    }
  });

  it('leaves a pgdb container that has no record, and its volume, alone', async () => {
    const { dataDir, docker } = crashedState([], [{ id: 'id-orphan', name: 'orphan' }]);
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      assert.ok(docker.containers.has('id-orphan'));
      assert.ok(docker.volumes.has('pgdb-orphan-vol'));
      assert.equal((await t.request('GET', '/v1/status')).body.unknown_containers[0].container_id, 'id-orphan');
    } finally {
      await t.close();
    }
  });

  it('leaves containers of other data directories alone', async () => {
    const { dataDir, docker } = crashedState([], []);
    docker.seedContainer('id-foreign', 'v', { ...labelsOf('x'), 'pgdb.instance': 'another' });
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      assert.ok(docker.containers.has('id-foreign'));
    } finally {
      await t.close();
    }
  });

  it('waits for an unreachable engine and reconciles before the first request it serves', async () => {
    const { dataDir, docker } = crashedState([record('half', { pending: 'creating' })], [{ id: 'id-half', name: 'half' }]);
    docker.reachable = false;
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      assert.equal(docker.containers.size, 1, 'nothing can happen without the engine');
      assert.equal((await t.request('GET', '/v1/status')).status, 503);
      docker.reachable = true;
      const status = await t.request('GET', '/v1/status');
      assert.equal(status.status, 200);
      assert.deepEqual(status.body.items, []);
      assert.equal(docker.containers.size, 0);
    } finally {
      await t.close();
    }
  });
});
