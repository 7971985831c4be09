import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { RegistryFileError, RegistryService } from './registry.service.js';
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

  it('validates every record when it loads the file, and names the bad one', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...record('a'), host_port: 'x' }, /item 0 \("a"\) has an invalid "host_port"/],
      [{ ...record('a'), name: 'Bad Name' }, /item 0 \("Bad Name"\) has an invalid name/],
      [{ ...record('a'), layout: 3 }, /unknown layout 3/],
      [{ ...record('a'), admin_password: undefined }, /layout 2 but no "admin_password"/],
      [{ ...record('a'), pending: 'deleting' }, /invalid "pending"/],
      [42, /item 0 is not an object/],
    ];
    for (const [item, message] of cases) {
      const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-reg-'));
      writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: 'abcdef012345', items: [item] }));
      const registry = registryIn(dataDir);
      await assert.rejects(registry.init(), (error: Error) => error instanceof RegistryFileError && message.test(error.message));
    }
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-reg-'));
    writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: 'abcdef012345', items: [record('a'), record('a')] }));
    await assert.rejects(registryIn(dataDir).init(), /repeats the name "a"/);
  });

  it('removes temporary files an interrupted write left (they hold passwords)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-reg-'));
    writeFileSync(join(dataDir, 'registry.json.123.abcd.tmp'), '{"secret": "pw"}');
    writeFileSync(join(dataDir, 'unrelated.tmp'), 'x');
    await registryIn(dataDir).init();
    assert.deepEqual(readdirSync(dataDir).filter((f) => f.endsWith('.tmp')), ['unrelated.tmp']);
  });

  it('refuses a second destroy of the same name and the destroy of one being created', async () => {
    const registry = registryIn();
    await registry.init();
    await registry.reserve('a', async () => record('a'));
    await assert.rejects(registry.markDestroying('a', false), /still being created/);
    await registry.settle('a', {});
    const marked = await registry.markDestroying('a', true);
    assert.equal(marked.keep_data, true);
    await assert.rejects(registry.markDestroying('a', false), /already being destroyed/);
    assert.equal((await registry.find('a'))?.keep_data, true, 'keep_data stays as first asked');
  });
});
