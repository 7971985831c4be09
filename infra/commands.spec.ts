import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bootstrapSettings, InfraError } from './commands.js';

const WHERE = { PGDB_BACKUP_S3_ENDPOINT: 's3.example', PGDB_BACKUP_S3_BUCKET: 'b', PGDB_BACKUP_S3_REGION: 'r' };
const ON_SERVER = { PGDB_BACKUP_S3_ACCESS_KEY_FILE: '/root/a', PGDB_BACKUP_S3_SECRET_KEY_FILE: '/root/s' };
const KEY = `pgdb-backup-key-1:${Buffer.alloc(32, 3).toString('base64url')}`;

describe('infra bootstrap settings (flags over what the stack stored)', () => {
  it('keeps the stored settings and secrets when no flag is given', () => {
    const stored = { daemonEnv: { ...WHERE }, secrets: { s3AccessKey: 'a', s3SecretKey: 's', backupKey: KEY } };
    assert.deepEqual(bootstrapSettings(stored, {}), { daemonEnv: WHERE, secrets: stored.secrets, dropped: [] });
  });

  it('copied key files replace key files named on the server before', () => {
    const stored = { daemonEnv: { ...WHERE, ...ON_SERVER }, secrets: {} };
    const settings = bootstrapSettings(stored, { secrets: { s3AccessKey: 'a', s3SecretKey: 's' } });
    assert.deepEqual(settings.daemonEnv, WHERE);
    assert.deepEqual(settings.secrets, { s3AccessKey: 'a', s3SecretKey: 's' });
  });

  it('key files named on the server now drop the S3 keys stored before; the backup key stays', () => {
    const stored = { daemonEnv: { ...WHERE }, secrets: { s3AccessKey: 'a', s3SecretKey: 's', backupKey: KEY } };
    const settings = bootstrapSettings(stored, { daemonEnv: { ...WHERE, ...ON_SERVER } });
    assert.deepEqual(settings.secrets, { backupKey: KEY });
    assert.deepEqual(settings.dropped, ['s3AccessKey', 's3SecretKey']);
  });

  it('refuses S3 keys without the endpoint, bucket and region, and S3 settings without keys, before changing anything', () => {
    assert.throws(
      () => bootstrapSettings({ daemonEnv: {}, secrets: {} }, { secrets: { s3AccessKey: 'a', s3SecretKey: 's' } }),
      (error: Error) => error instanceof InfraError && /missing: --daemon-env PGDB_BACKUP_S3_ENDPOINT, --daemon-env PGDB_BACKUP_S3_BUCKET, --daemon-env PGDB_BACKUP_S3_REGION$/.test(error.message),
    );
    assert.throws(() => bootstrapSettings({ daemonEnv: {}, secrets: {} }, { daemonEnv: WHERE }), /missing: --s3-access-key-file and --s3-secret-key-file$/);
    // The endpoint given now, the keys stored before: complete.
    assert.doesNotThrow(() => bootstrapSettings({ daemonEnv: {}, secrets: { s3AccessKey: 'a', s3SecretKey: 's' } }, { daemonEnv: WHERE }));
  });
});
