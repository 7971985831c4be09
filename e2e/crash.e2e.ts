/**
 * The daemon killed (SIGKILL, as a power loss) at every step of a deploy and
 * of a destroy, with and without keep_data: the next start converges.
 * Nothing is orphaned, kept volumes are kept, and every database that
 * answered 201 still connects. The kill comes from the daemon's failpoints
 * (PGDB_FAILPOINTS), so each step is hit exactly, not by timing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const DEPLOY_STEPS = ['deploy:reserved', 'deploy:volume-created', 'deploy:container-created', 'deploy:container-started', 'deploy:ready'];

function objectsOf(instance: string, name: string): { containers: string[]; volumes: string[] } {
  const filter = ['--filter', `label=pgdb.instance=${instance}`, '--filter', `label=pgdb.name=${name}`];
  return {
    containers: docker('ps', '-aq', ...filter).split('\n').filter(Boolean),
    volumes: docker('volume', 'ls', '-q', ...filter).split('\n').filter(Boolean),
  };
}

function holdersOf(instance: string, volume: string): string[] {
  return docker('ps', '-aq', '--filter', `label=pgdb.instance=${instance}`, '--filter', `label=pgdb.keeps_volume=${volume}`)
    .split('\n')
    .filter(Boolean);
}

describe('a SIGKILL at every step', () => {
  let daemon: TestDaemon;
  let survivorUrl: string;

  before(async () => {
    requireDockerAndImages([17]);
    daemon = await new TestDaemon({ portRange: ports.range(50) }).start();
    const survivor = await daemon.api('POST', '/v1/deploy', { name: 'survivor' });
    assert.equal(survivor.status, 201);
    survivorUrl = survivor.body.database_url;
    await query(survivorUrl, 'CREATE TABLE t AS SELECT 1 AS x');
  });
  after(async () => daemon?.destroyAll());

  /** Restarts the daemon with `failpoint` armed, runs `request`, and waits for the daemon to die there. */
  async function killedAt(failpoint: string, request: () => Promise<unknown>): Promise<void> {
    await daemon.stop();
    await daemon.start({ PGDB_FAILPOINTS: failpoint });
    await request().then(
      () => assert.fail(`the request survived the failpoint ${failpoint}`),
      () => undefined,
    );
    const { signal } = await daemon.exited();
    assert.equal(signal, 'SIGKILL', `the daemon died at ${failpoint}`);
    await daemon.start();
  }

  for (const step of DEPLOY_STEPS) {
    it(`deploy killed at ${step}: the half-made database is gone without a trace`, async () => {
      const name = `crash-${step.split(':')[1]}`;
      await killedAt(step, () => daemon.api('POST', '/v1/deploy', { name }));
      const status = (await daemon.api('GET', '/v1/status')).body;
      assert.equal(status.items.some((i: { name: string }) => i.name === name), false);
      assert.deepEqual(objectsOf(daemon.instanceId(), name), { containers: [], volumes: [] });
      assert.deepEqual(status.unknown_containers, []);
      assert.deepEqual(await query(survivorUrl, 'SELECT x FROM t'), [{ x: 1 }]);
    });
  }

  it('deploy killed after the record was written: the database exists, runs and connects', async () => {
    await killedAt('deploy:recorded', () => daemon.api('POST', '/v1/deploy', { name: 'crash-recorded' }));
    const item = (await daemon.api('GET', '/v1/status?show_secrets=true')).body.items.find((i: { name: string }) => i.name === 'crash-recorded');
    assert.equal(item.state, 'running');
    assert.deepEqual(await query(item.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);
  });

  for (const keepData of [false, true]) {
    for (const step of ['destroy:marked', 'destroy:containers-removed', 'destroy:volume-handled']) {
      it(`destroy${keepData ? ' --keep-data' : ''} killed at ${step}: finished at the next start`, async () => {
        const name = `gone-${keepData ? 'kept' : 'all'}-${step.split(':')[1]}`;
        const created = await daemon.api('POST', '/v1/deploy', { name });
        assert.equal(created.status, 201);
        const volume = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === name).volume_name;
        await killedAt(step, () => daemon.api('DELETE', `/v1/db/${name}?keep_data=${keepData}`));
        const status = (await daemon.api('GET', '/v1/status')).body;
        assert.equal(status.items.some((i: { name: string }) => i.name === name), false, 'the record is gone');
        const left = objectsOf(daemon.instanceId(), name);
        assert.deepEqual(left.containers, [], 'no database container is left');
        if (keepData) {
          assert.deepEqual(left.volumes, [volume], 'the kept volume is kept');
          assert.equal(holdersOf(daemon.instanceId(), volume).length, 1, 'and held against docker volume prune');
          assert.ok(status.detached_volumes.some((v: { volume_name: string }) => v.volume_name === volume));
        } else {
          assert.deepEqual(left.volumes, [], 'the volume is removed');
          assert.deepEqual(holdersOf(daemon.instanceId(), volume), []);
        }
        assert.deepEqual(await query(survivorUrl, 'SELECT x FROM t'), [{ x: 1 }]);
      });
    }
  }
});
