import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BACKUP_TARGET_KINDS } from '../../../../contract/api.js';
import { loadConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import type { ExecResult } from '../../docker/docker.gateway.js';
import { FakeDocker } from '../../testing/fake-docker.js';
import { backupTarget } from '../backup-repository.js';
import { S3Gateway } from '../s3-gateway.js';
import { LocalTarget } from './local.js';

const IDENTITY = { stanza: 'pgdb-shop-abc123', cipher_pass: 'x'.repeat(43) };

function recorder(result: ExecResult = { exitCode: 0, stdout: '', stderr: '' }) {
  const scripts: string[] = [];
  return { scripts, run: (script: string) => (scripts.push(script), Promise.resolve(result)) };
}

function configWith(env: Record<string, string>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-targets-'));
  return loadConfig({ PGDB_TOKEN: 'targets-spec-token-0123456789abcdef', PGDB_DATA_DIR: dataDir, PGDB_LOG_LEVEL: 'silent', ...env });
}

describe('backup targets', () => {
  it('are chosen by the configuration: local without PGDB_BACKUP_S3_*, S3 with; each kind the contract names has one', () => {
    const docker = new FakeDocker();
    const logger = createLogger('silent');
    const local = configWith({});
    assert.equal(backupTarget(local, new S3Gateway(local, docker, logger), docker).kind, 'local');
    const secrets = mkdtempSync(join(tmpdir(), 'pgdb-s3-keys-'));
    writeFileSync(join(secrets, 'ak'), 'AK\n');
    writeFileSync(join(secrets, 'sk'), 'SK\n');
    const s3 = configWith({
      PGDB_BACKUP_S3_ENDPOINT: 'fsn1.your-objectstorage.com',
      PGDB_BACKUP_S3_BUCKET: 'b',
      PGDB_BACKUP_S3_REGION: 'fsn1',
      PGDB_BACKUP_S3_ACCESS_KEY_FILE: join(secrets, 'ak'),
      PGDB_BACKUP_S3_SECRET_KEY_FILE: join(secrets, 'sk'),
    });
    const target = backupTarget(s3, new S3Gateway(s3, docker, logger), docker);
    assert.equal(target.kind, 's3');
    assert.deepEqual(target.binds(IDENTITY), [], 'S3 stanzas are reached through the gateway, not a bind');
    assert.deepEqual(target.hostPorts(), [s3.backup.gatewayPort]);
    assert.deepEqual([...BACKUP_TARGET_KINDS].sort(), ['local', 's3']);
  });

  it('local: a stanza\'s directory is writable by the container\'s user inside a 0700 root, and bound into its containers', async () => {
    const root = join(mkdtempSync(join(tmpdir(), 'pgdb-local-')), 'backups');
    const target = new LocalTarget(root);
    await target.prepare(IDENTITY);
    assert.equal(statSync(root).mode & 0o777, 0o700);
    assert.equal(statSync(join(root, IDENTITY.stanza)).mode & 0o777, 0o777);
    assert.deepEqual(target.binds(IDENTITY), [{ source: join(root, IDENTITY.stanza), target: '/var/lib/pgdb-backups' }]);
    assert.equal(target.hostPorts().length, 0);
  });

  it('local: deleting an empty stanza needs no task; a filled one is emptied by a task, then removed; a failed task keeps it and says so', async () => {
    const root = join(mkdtempSync(join(tmpdir(), 'pgdb-local-')), 'backups');
    const target = new LocalTarget(root);
    await target.prepare(IDENTITY);
    const empty = recorder();
    await target.deleteStanza(IDENTITY, empty.run);
    assert.deepEqual(empty.scripts, []);
    assert.equal(existsSync(join(root, IDENTITY.stanza)), false);

    await target.prepare(IDENTITY);
    writeFileSync(join(root, IDENTITY.stanza, 'backup.info'), 'x');
    const failing = recorder({ exitCode: 1, stdout: 'Permission denied', stderr: '' });
    await assert.rejects(target.deleteStanza(IDENTITY, failing.run), /deleting the backups of stanza pgdb-shop-abc123 failed: Permission denied/);
    assert.equal(existsSync(join(root, IDENTITY.stanza, 'backup.info')), true, 'nothing is lost when the task fails');

    const filled = recorder();
    await assert.rejects(target.deleteStanza(IDENTITY, filled.run), /ENOTEMPTY/, 'a task that reports success but leaves files is not taken at its word');
    assert.deepEqual(filled.scripts, ['find /var/lib/pgdb-backups -mindepth 1 -delete']);
  });
});
