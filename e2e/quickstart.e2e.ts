import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, query, removeInstanceObjects, requireDockerAndImages, ROOT, TEST_IMAGE_REPO } from './support/daemon.js';

/** The README's first command, run as a user would, against the real engine. */
describe('scripts/quickstart.sh', () => {
  const home = mkdtempSync(join(tmpdir(), 'pgdb-quickstart-'));
  let port = 0;
  const run = (...args: string[]) =>
    spawnSync('bash', ['scripts/quickstart.sh', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      // The locally built test image has the same recipe as the quick start's.
      env: { ...process.env, PGDB_HOME: home, PGDB_PORT: String(port), PGDB_LOCAL_IMAGE_REPO: TEST_IMAGE_REPO },
    });

  before(async () => {
    requireDockerAndImages([17]);
    port = await freePort();
  });
  after(() => {
    run('stop');
    const instance = JSON.parse(readFileSync(join(home, 'data', 'registry.json'), 'utf8')).instance_id;
    removeInstanceObjects(instance);
  });

  it('starts a daemon and prints the URL of a first database that connects', async () => {
    const result = run();
    assert.equal(result.status, 0, result.stderr);
    const url = /^DATABASE_URL: (\S+)$/m.exec(result.stdout)?.[1];
    assert.ok(url, result.stdout);
    assert.deepEqual(await query(url, 'SELECT 1 AS one'), [{ one: 1 }]);
    assert.match(result.stderr, new RegExp(`pgdbd is running on http://127.0.0.1:${port}`));
  });

  it('is safe to run again: same daemon, same database', async () => {
    const result = run();
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /pgdbd already running/);
    assert.match(result.stderr, /database "first" already exists/);
    assert.doesNotMatch(result.stdout, /DATABASE_URL/);
  });

  it('stops the daemon', async () => {
    assert.equal(run('stop').status, 0);
    const answered = await fetch(`http://127.0.0.1:${port}/v1/health`).then(() => true, () => false);
    assert.equal(answered, false);
  });
});
