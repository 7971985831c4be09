import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_SCHEDULE, loadBackupConfig, parseSchedule } from './backup-config.js';

function load(env: Record<string, string>) {
  const problems: string[] = [];
  const config = loadBackupConfig(env, (message) => void problems.push(message));
  return { config, problems };
}

describe('backup configuration', () => {
  it('defaults: on, weekly full and daily differential, two full backups kept, local repository', () => {
    const { config, problems } = load({});
    assert.deepEqual(problems, []);
    assert.equal(config!.enabled, true);
    assert.deepEqual(config!.schedule, DEFAULT_SCHEDULE);
    assert.equal(config!.retentionFull, 2);
    assert.equal(config!.s3, undefined);
  });

  it('reads PGDB_BACKUP_SCHEDULE parts and refuses what is not a five-field cron pattern', () => {
    const fail = (problems: string[]) => (message: string) => void problems.push(message);
    assert.deepEqual(parseSchedule('diff=0 */6 * * *', fail([])), { full: DEFAULT_SCHEDULE.full, diff: '0 */6 * * *' });
    for (const bad of ['weekly', 'full=0 3 * *', 'full=61 3 * * *', 'hourly=0 * * * *']) {
      const problems: string[] = [];
      assert.equal(parseSchedule(bad, fail(problems)), undefined, bad);
      assert.match(problems[0], /PGDB_BACKUP_SCHEDULE/);
    }
  });

  it('drills weekly by default; PGDB_BACKUP_DRILL_SCHEDULE takes a cron pattern or off; a bad webhook is refused', () => {
    assert.equal(load({}).config!.drillSchedule, '30 4 * * 0');
    assert.equal(load({ PGDB_BACKUP_DRILL_SCHEDULE: 'off' }).config!.drillSchedule, null);
    assert.equal(load({ PGDB_BACKUP_DRILL_SCHEDULE: '0 3 * * *' }).config!.drillSchedule, '0 3 * * *');
    assert.match(load({ PGDB_BACKUP_DRILL_SCHEDULE: 'weekly' }).problems[0], /PGDB_BACKUP_DRILL_SCHEDULE/);
    assert.equal(load({ PGDB_ALERT_WEBHOOK: 'https://hooks.example/x' }).config!.alertWebhook, 'https://hooks.example/x');
    const bad = load({ PGDB_ALERT_WEBHOOK: 'gopher://x' });
    assert.equal(bad.config, undefined);
    assert.match(bad.problems[0], /PGDB_ALERT_WEBHOOK/);
  });

  it('refuses a bad PGDB_BACKUP and retention', () => {
    assert.match(load({ PGDB_BACKUP: 'yes' }).problems[0], /PGDB_BACKUP must be on or off/);
    assert.match(load({ PGDB_BACKUP_RETENTION_FULL: '0' }).problems[0], /RETENTION_FULL/);
  });

  it('takes S3 settings with secrets from files, and names every missing or bad one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgdb-s3-'));
    writeFileSync(join(dir, 'ak'), 'AKIA123\n');
    writeFileSync(join(dir, 'sk'), 'secret/key+1\n');
    const env = {
      PGDB_BACKUP_S3_ENDPOINT: 'https://fsn1.your-objectstorage.com',
      PGDB_BACKUP_S3_BUCKET: 'backups',
      PGDB_BACKUP_S3_REGION: 'fsn1',
      PGDB_BACKUP_S3_ACCESS_KEY_FILE: join(dir, 'ak'),
      PGDB_BACKUP_S3_SECRET_KEY_FILE: join(dir, 'sk'),
    };
    const { config, problems } = load(env);
    assert.deepEqual(problems, []);
    assert.deepEqual(config!.s3, {
      endpoint: 'fsn1.your-objectstorage.com',
      bucket: 'backups',
      region: 'fsn1',
      accessKey: 'AKIA123',
      secretKey: 'secret/key+1',
      uriStyle: 'path',
    });
    assert.match(load({ ...env, PGDB_BACKUP_S3_BUCKET: '' }).problems[0], /missing: PGDB_BACKUP_S3_BUCKET/);
    assert.match(load({ ...env, PGDB_BACKUP_S3_SECRET_KEY_FILE: join(dir, 'nope') }).problems[0], /cannot be read \(ENOENT\)/);
    assert.match(load({ ...env, PGDB_BACKUP_S3_URI_STYLE: 'virtual' }).problems[0], /path or host/);
    assert.match(load({ ...env, PGDB_BACKUP_S3_CA_FILE: join(dir, 'ak') }).problems[0], /no PEM certificate/);
    assert.equal(load({ ...env, PGDB_BACKUP_S3_ENDPOINT: 'localhost:9443' }).config!.s3!.port, 9443);
  });
});
