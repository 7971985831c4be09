import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { RegistryService } from './registry.service.js';
import { testRecord as record } from '../testing/records.js';

function registryIn(dataDir = join(mkdtempSync(join(tmpdir(), 'pgdb-reg-')), 'data')) {
  return new RegistryService(
    loadConfig({ PGDB_TOKEN: 'registry-test-token', PGDB_DATA_DIR: dataDir }),
    createLogger('silent'),
  );
}

describe('RegistryService', () => {
  it('creates the data directory and an empty registry with a stable instance id', async () => {
    const registry = registryIn();
    await registry.init();
    const id = await registry.instanceId();
    assert.match(id, /^[0-9a-f]{12}$/);
    assert.equal(await registry.instanceId(), id);
    assert.deepEqual(await registry.list(), []);
  });

  it('serializes concurrent updates: none is lost', async () => {
    const registry = registryIn();
    await registry.init();
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        registry.update((items) => ({ items: [...items, record(`db${i}`, { host_port: 1000 + i })], result: undefined })),
      ),
    );
    assert.equal((await registry.list()).length, 50);
  });

  it('leaves the registry untouched when a change throws', async () => {
    const registry = registryIn();
    await registry.init();
    await registry.update((items) => ({ items: [...items, record('kept')], result: undefined }));
    await assert.rejects(
      registry.update(() => {
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    assert.deepEqual((await registry.list()).map((r) => r.name), ['kept']);
  });

  it('leaves no temporary files behind', async () => {
    const registry = registryIn();
    await registry.init();
    await registry.update((items) => ({ items: [...items, record('a')], result: undefined }));
    const dir = registry.path.replace(/\/registry\.json$/, '');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });

  it('refuses a corrupt registry instead of overwriting it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-reg-'));
    writeFileSync(join(dataDir, 'registry.json'), '{"version":1,"items":[{"name":');
    const registry = registryIn(dataDir);
    await assert.rejects(registry.init(), /not valid JSON/);
    assert.equal(readFileSync(join(dataDir, 'registry.json'), 'utf8'), '{"version":1,"items":[{"name":');
  });

  it('waits for a lock another process holds, then proceeds', async () => {
    const registry = registryIn();
    await registry.init();
    const lockDir = registry.path.replace(/registry\.json$/, 'registry.lock');
    mkdirSync(lockDir);
    const update = registry.update((items) => ({ items: [...items, record('after-lock')], result: 'done' }));
    setTimeout(() => rmdirSync(lockDir), 150);
    assert.equal(await update, 'done');
    assert.deepEqual((await registry.list()).map((r) => r.name), ['after-lock']);
  });
});
