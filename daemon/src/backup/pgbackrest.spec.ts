import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { archiveSettings, configFile, parseInfo, restoreTarget, targetTime } from './pgbackrest.js';
import { LocalTarget } from './targets/local.js';
import { s3RepositoryLines } from './targets/s3.js';

const IDENTITY = { stanza: 'pgdb-shop-abc123', cipher_pass: 'x'.repeat(43) };

describe('pgbackrest', () => {
  it('writes a local repository configuration: encrypted, the stanza\'s data directory per major, the admin over the socket', async () => {
    const local = { retentionFull: 2, repository: (await new LocalTarget('/srv/pgdb/backups').access()).lines };
    const conf = configFile(IDENTITY, 17, local);
    assert.match(conf, /^repo1-path=\/var\/lib\/pgdb-backups$/m);
    assert.match(conf, /^repo1-cipher-type=aes-256-cbc$/m);
    assert.match(conf, new RegExp(`^repo1-cipher-pass=${IDENTITY.cipher_pass}$`, 'm'));
    assert.match(conf, /^repo1-retention-full=2$/m);
    assert.match(conf, /^start-fast=y$/m);
    // zstd level 1 everywhere (backups, WAL); two processes for backups and restores only, not for archive-push.
    const sections = Object.fromEntries(conf.split(/^(?=\[)/m).map((part) => [/^\[([^\]]+)\]/.exec(part)?.[1] ?? '', part]));
    assert.match(sections.global, /^compress-type=zst\ncompress-level=1$/m);
    assert.doesNotMatch(sections.global, /process-max/);
    assert.match(sections['global:backup'], /^process-max=2$/m);
    assert.match(sections['global:restore'], /^process-max=2$/m);
    assert.match(conf, /^\[pgdb-shop-abc123\]$/m);
    assert.match(conf, /^pg1-path=\/var\/lib\/postgresql\/data$/m);
    assert.match(conf, /^pg1-user=pgdb_admin$/m);
    assert.doesNotMatch(conf, /repo1-type=s3/);
    assert.doesNotMatch(conf, /repo1-bundle/);
    assert.match(configFile(IDENTITY, 18, local), /^pg1-path=\/var\/lib\/postgresql\/18\/docker$/m);
  });

  it('writes an S3 repository configuration: one path per stanza, the CA file when given', () => {
    const s3 = { endpoint: 'fsn1.your-objectstorage.com', bucket: 'b', region: 'fsn1', accessKey: 'AK', secretKey: 'SK', uriStyle: 'path' as const };
    const conf = configFile(IDENTITY, 15, { retentionFull: 3, repository: s3RepositoryLines(IDENTITY.stanza, { ...s3, port: 9443, caFile: '/etc/ca.pem' }) });
    assert.match(conf, /^repo1-type=s3$/m);
    assert.match(conf, /^repo1-path=\/pgdb\/pgdb-shop-abc123$/m);
    assert.match(conf, /^repo1-s3-uri-style=path$/m);
    assert.match(conf, /^repo1-storage-port=9443$/m);
    assert.match(conf, /^repo1-storage-ca-file=\/etc\/pgdb\/s3-ca.pem$/m);
    assert.match(conf, /^repo1-bundle=y$/m);
    assert.doesNotMatch(configFile(IDENTITY, 15, { retentionFull: 3, repository: s3RepositoryLines(IDENTITY.stanza, s3) }), /storage-ca-file|storage-port/);
  });

  it('archives with pgbackrest archive-push into the stanza, at most 60 s behind', () => {
    const settings = archiveSettings('st');
    assert.deepEqual(settings.filter((_, i) => i % 2 === 1), [
      'archive_mode=on',
      'archive_command=pgbackrest --config=/etc/pgdb/pgbackrest.conf --stanza=st archive-push --io-timeout=5 %p',
      'archive_timeout=60',
    ]);
  });

  it("reads pgbackrest info's JSON: the stanza's good backups, oldest first", () => {
    const info = JSON.stringify([
      { name: 'other', backup: [{ label: 'X', type: 'full', timestamp: { start: 1, stop: 2 } }] },
      {
        name: 'st',
        backup: [
          { label: '20261129-101700F_20261129-111700D', type: 'diff', timestamp: { start: 1795000600, stop: 1795000610 }, info: { size: 10, repository: { delta: 3 } } },
          { label: '20261129-101700F', type: 'full', timestamp: { start: 1795000000, stop: 1795000020 }, info: { size: 100, repository: { delta: 30 } } },
          { label: 'broken', type: 'full', timestamp: { start: 1795000700, stop: 1795000710 }, error: true },
        ],
      },
    ]);
    const backups = parseInfo(info, 'st');
    assert.deepEqual(backups.map((b) => b.label), ['20261129-101700F', '20261129-101700F_20261129-111700D']);
    assert.equal(backups[0].finished_at, new Date(1795000020 * 1000).toISOString());
    assert.equal(backups[0].repo_bytes, 30);
    assert.deepEqual(parseInfo('[]', 'st'), []);
    assert.throws(() => parseInfo('ERROR: [055]: unable to load info file', 'st'), /printed no JSON/);
  });

  it('turns a restore target into pgbackrest options', () => {
    const at = new Date('2026-11-29T10:15:00.123Z');
    assert.equal(targetTime(at), '2026-11-29 10:15:00.123+00');
    assert.deepEqual(restoreTarget({ time: at }), ['--type=time', '--target=2026-11-29 10:15:00.123+00', '--target-exclusive', '--target-action=promote']);
    assert.deepEqual(restoreTarget({ backup: '20261129-101700F' }), ['--set=20261129-101700F', '--type=immediate', '--target-action=promote']);
    assert.deepEqual(restoreTarget({}), []);
    assert.deepEqual(restoreTarget({ backup: '20261129-101700F', restorePoint: 'pgdb-drill-ab12cd34-2' }), ['--set=20261129-101700F', '--type=name', '--target=pgdb-drill-ab12cd34-2', '--target-action=promote']);
    assert.throws(() => restoreTarget({ restorePoint: 'pgBackRest Archive Check' }), /not a restore point pgdb makes/);
  });
});
