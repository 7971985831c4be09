import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { RegistryService } from '../registry/registry.service.js';
import { FakeDocker } from '../testing/fake-docker.js';
import { testRecord } from '../testing/records.js';
import { BackupRepository } from './backup-repository.js';
import { S3Gateway } from './s3-gateway.js';
import { ServerCatalog } from './server-catalog.js';
import { RECORD_NAME } from './server-record-store.js';
import { newBackupKey, openServerRecord, parseBackupKey, recoverable, sealServerRecord, ServerRecordError, type ServerRecord } from './server-record.js';

function record(written = '2026-11-30T03:00:00.000Z'): ServerRecord {
  return {
    format: 1,
    written_at: written,
    public_host: '203.0.113.7',
    registry: {
      version: 1,
      instance_id: 'abcdefabcdef',
      items: [
        testRecord('shop', { backup: { stanza: 'pgdb-shop-aaaaaa', cipher_pass: 'p1' }, memory_mb: 512 }),
        testRecord('old', {}),
      ],
      destroyed: [{ name: 'gone', postgres_version: 15, backup: { stanza: 'pgdb-gone-bbbbbb', cipher_pass: 'p2' }, destroyed_at: '2026-11-20T00:00:00.000Z', size_gb: 1 }],
    },
  };
}

describe('the server record', () => {
  it('opens with the key that sealed it, and only with that key', () => {
    const key = parseBackupKey(newBackupKey());
    const original = record();
    const sealed = sealServerRecord(original, key);
    assert.deepEqual(openServerRecord(sealed, key), original);
    assert.ok(!sealed.toString('latin1').includes('pgdb-shop-aaaaaa'), 'the record is encrypted');
    const other = parseBackupKey(newBackupKey());
    assert.throws(() => openServerRecord(sealed, other), (error: ServerRecordError) => error.reason === 'key' && /does not open/.test(error.message));
  });

  it('tells a file that is no record from a wrong key, and a changed byte from neither (the tag fails)', () => {
    const key = parseBackupKey(newBackupKey());
    assert.throws(() => openServerRecord(Buffer.from('{"format":1}'), key), (error: ServerRecordError) => error.reason === 'format');
    const sealed = sealServerRecord(record(), key);
    sealed[sealed.length - 3] ^= 1;
    assert.throws(() => openServerRecord(sealed, key), (error: ServerRecordError) => error.reason === 'key');
  });

  it('refuses key text that is not a key, saying why', () => {
    assert.throws(() => parseBackupKey('hunter2'), /does not start with pgdb-backup-key-1:/);
    assert.throws(() => parseBackupKey(newBackupKey().slice(0, -4)), /not 32 bytes/);
    assert.equal(parseBackupKey(`  ${newBackupKey()}\n`).length, 32);
  });

  it('makes restorable entries of what the registry does not know, databases and destroyed ones alike', () => {
    const found = recoverable(record(), new Set());
    assert.deepEqual(found.map((d) => [d.name, d.backup.stanza, d.recovered]), [
      ['shop', 'pgdb-shop-aaaaaa', true],
      ['gone', 'pgdb-gone-bbbbbb', true],
    ]);
    assert.equal(found[0].destroyed_at, '2026-11-30T03:00:00.000Z');
    assert.equal(found[0].memory_mb, 512);
    assert.deepEqual(recoverable(record(), new Set(['pgdb-shop-aaaaaa', 'pgdb-gone-bbbbbb'])), []);
  });
});

describe('ServerCatalog with the local repository', () => {
  const PASS = randomBytes(32).toString('base64url');
  function server(dataDir: string, env: Record<string, string> = {}, docker = new FakeDocker()) {
    const config = loadConfig({ PGDB_TOKEN: 'catalog-test-token', PGDB_DATA_DIR: dataDir, ...env });
    const logger = createLogger('silent');
    const registry = new RegistryService(config, logger);
    const catalog = new ServerCatalog(config, new BackupRepository(config, docker, new S3Gateway(config, docker, logger)), registry, logger);
    return { registry, catalog, start: async () => {
      await registry.init();
      await catalog.onModuleInit();
      catalog.onApplicationBootstrap();
    } };
  }

  async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
    for (let i = 0; i < 200; i++) {
      const value = await probe();
      if (value !== undefined) return value;
      await sleep(10);
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  it('makes a 0600 key at first start, writes the registry into the repository, and a rebuilt server with that key lists its databases', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgdb-catalog-'));
    try {
      const first = server(join(root, 'data'));
      await first.start();
      const keyFile = join(root, 'data', 'backup.key');
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      await first.registry.update((items) => ({ items: [...items, testRecord('shop', { backup: { stanza: 'pgdb-shop-x', cipher_pass: PASS } })], result: undefined }));
      const recordFile = join(root, 'data', 'backups', RECORD_NAME);
      const sealed = await until('the record with shop', () => {
        try {
          const opened = openServerRecord(readFileSync(recordFile), parseBackupKey(readFileSync(keyFile, 'utf8')));
          return opened.registry.items.some((i) => i.name === 'shop') ? opened : undefined;
        } catch {
          return undefined;
        }
      });
      assert.equal(sealed.registry.items[0].backup?.cipher_pass, PASS);
      assert.equal(first.catalog.printable().key, readFileSync(keyFile, 'utf8').trim());

      // The data directory is lost, but not the repository: a new registry, the same key.
      rmSync(join(root, 'data', 'registry.json'));
      const savedKey = join(root, 'saved.key');
      writeFileSync(savedKey, readFileSync(keyFile));
      const rebuilt = server(join(root, 'data'), { PGDB_BACKUP_KEY_FILE: savedKey });
      await rebuilt.start();
      const destroyed = await until('the recovered entry', async () => {
        const list = await rebuilt.registry.destroyed();
        return list.length > 0 ? list : undefined;
      });
      assert.deepEqual(destroyed.map((d) => [d.name, d.backup.cipher_pass, d.recovered]), [['shop', PASS, true]]);
      assert.deepEqual(rebuilt.catalog.problems(), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('with a wrong key: a clear problem and error, and the repository\'s record is never overwritten', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgdb-catalog-'));
    try {
      const first = server(join(root, 'a'));
      await first.start();
      await first.registry.update((items) => ({ items: [...items, testRecord('shop', { backup: { stanza: 'pgdb-shop-y', cipher_pass: PASS } })], result: undefined }));
      const recordFile = join(root, 'a', 'backups', RECORD_NAME);
      await until('the record', () => {
        try {
          return readFileSync(recordFile);
        } catch {
          return undefined;
        }
      });
      await sleep(50);
      const before = readFileSync(recordFile);
      // Another server's key on the same repository (here: the same data directory, a new key file).
      const wrongKey = join(root, 'wrong.key');
      writeFileSync(wrongKey, `${newBackupKey()}\n`);
      rmSync(join(root, 'a', 'registry.json'));
      const second = server(join(root, 'a'), { PGDB_BACKUP_KEY_FILE: wrongKey });
      await second.start();
      const problems = await until('the key problem', () => (second.catalog.problems().length > 0 ? second.catalog.problems() : undefined));
      assert.match(problems[0], /backup key does not open the repository's server record/);
      assert.throws(() => second.catalog.requireMatchingKey(), (error: DomainError) => error.code === 'BACKUP_KEY_MISMATCH');
      await second.registry.update((items) => ({ items: [...items, testRecord('other', {})], result: undefined }));
      await sleep(100);
      assert.deepEqual(readFileSync(recordFile), before, 'the record is left as it was');
      assert.deepEqual(await second.registry.destroyed(), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses to start on a key file that holds no key, or a configured one that is missing', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgdb-catalog-'));
    try {
      const bad = join(root, 'bad.key');
      writeFileSync(bad, 'not a key\n');
      await assert.rejects(server(join(root, 'd1'), { PGDB_BACKUP_KEY_FILE: bad }).start(), /backup key in .*bad\.key is not valid: it does not start with/);
      await assert.rejects(server(join(root, 'd2'), { PGDB_BACKUP_KEY_FILE: join(root, 'missing.key') }).start(), /PGDB_BACKUP_KEY_FILE .*missing\.key cannot be read \(ENOENT\)/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  describe('with S3 at PGDB_BACKUP_S3_ADDRESS=host-gateway', () => {
    function s3Env(root: string): Record<string, string> {
      writeFileSync(join(root, 'access'), 'AKIATEST\n');
      writeFileSync(join(root, 'secret'), 'secret-test\n');
      return {
        // Port 9 (discard) on loopback: nothing listens, so a connection is refused at once.
        PGDB_BACKUP_S3_ENDPOINT: 'https://s3.test:9',
        PGDB_BACKUP_S3_BUCKET: 'backups',
        PGDB_BACKUP_S3_REGION: 'test',
        PGDB_BACKUP_S3_ACCESS_KEY_FILE: join(root, 'access'),
        PGDB_BACKUP_S3_SECRET_KEY_FILE: join(root, 'secret'),
        PGDB_BACKUP_S3_ADDRESS: 'host-gateway',
      };
    }
    /** Docker 20.10's default bridge: a subnet, no Gateway. */
    function gatewayless(): FakeDocker {
      const docker = new FakeDocker();
      docker.bridge = { Driver: 'bridge', Options: { 'com.docker.network.bridge.name': 'docker0' }, IPAM: { Config: [{ Subnet: '127.0.0.0/8' }] } };
      return docker;
    }

    it("connects to the bridge's address when the engine reports no gateway and docker0 is down", async () => {
      const root = mkdtempSync(join(tmpdir(), 'pgdb-catalog-'));
      try {
        const docker = gatewayless();
        // docker0 is down (no container on it): only the kernel's local table has its address.
        docker.host = { interfaces: {}, localIpv4: ['10.1.2.3', '127.0.0.1'] };
        const s = server(join(root, 'data'), s3Env(root), docker);
        await s.start();
        const problems = await until('the refused connection', () => (s.catalog.problems().length > 0 ? s.catalog.problems() : undefined));
        assert.match(problems[0], /ECONNREFUSED 127\.0\.0\.1:9/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    it('reports a clear problem when the bridge has neither a gateway nor an interface address, and connects nowhere', async () => {
      const root = mkdtempSync(join(tmpdir(), 'pgdb-catalog-'));
      try {
        const s = server(join(root, 'data'), s3Env(root), gatewayless());
        await s.start();
        const problems = await until('the address problem', () => (s.catalog.problems().length > 0 ? s.catalog.problems() : undefined));
        assert.match(problems[0], /cannot find this host's address on Docker's "bridge" network: the engine reports no gateway \(subnets: 127\.0\.0\.0\/8\), the interface docker0 has no address in them, and no local address of this host is in them/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  });
});
