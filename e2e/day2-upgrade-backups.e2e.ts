/**
 * `pgdb upgrade` with backups on (issue 14 with issue 13): the real pgdbd,
 * real Docker, real pgBackRest in the real Postgres images, the local
 * repository under the daemon's data directory.
 *
 * 15 -> 17 with rows: the new cluster archives into its own stanza and gets
 * a first full backup; status shows it; a point-in-time restore after the
 * upgrade has exactly the rows committed before the moment; a restore to a
 * moment before the upgrade comes from the old cluster's stanza. Rollback
 * leaves the old cluster archiving and backing up into its stanza; finish
 * keeps the old stanza's backups (as a destroy does) and they still
 * restore. A SIGKILL of the daemon in the middle of the copy: the next start
 * gives the old cluster back, archiving.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pgdbCli } from './support/cli.js';
import { dockerObjectExists, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import type { Env } from './support/run.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(50);

describe('upgrade with backups on', { timeout: 1_800_000 }, () => {
  const daemon = new TestDaemon({ portRange: PORT_RANGE, env: { PGDB_BACKUP: 'on' } });
  let env: Env;
  const { pgdb, json } = pgdbCli(() => ({ ...env, PGDB_SERVER_URL: daemon.url }));
  const major = async (url: string) => Number((await query(url, "SELECT current_setting('server_version_num')::int / 10000 AS v"))[0].v);
  const count = async (url: string) => Number((await query<{ n: string }>(url, 'SELECT count(*) AS n FROM items'))[0].n);
  const insert = (url: string, from: number, to: number) => query(url, `INSERT INTO items SELECT g, md5(g::text) FROM generate_series(${from}, ${to}) g`);
  /** A moment between two writes, a second clear of each. */
  const moment = async () => {
    await sleep(1100);
    const t = new Date().toISOString();
    await sleep(1100);
    return t;
  };
  /** The newest backup of `name` once it is newer than `after` (ISO), as `pgdb backups` lists it. */
  const backupAfter = (name: string, after: string) =>
    eventually(`a backup of ${name} after ${after}`, 240_000, async () => {
      const listed = await daemon.api('GET', `/v1/db/${name}/backups`);
      const newest = listed.status === 200 ? listed.body.backups.at(-1) : undefined;
      return newest && newest.finished_at > after ? listed.body : undefined;
    });
  /** Status's archiving verdict for `name`, once pg_stat_archiver has seen a segment archived. */
  const archivingOk = (name: string) =>
    eventually(`archiving of ${name} is ok`, 180_000, async () => {
      const info = await daemon.api('GET', `/v1/db/${name}`);
      return info.status === 200 && info.body.backups?.archiving === 'ok' ? info.body.backups : undefined;
    });

  before(async () => {
    requireDockerAndImages([15, 17]);
    await daemon.start();
    env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-upgrade-backups-')), PGDB_TOKEN: daemon.token };
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('15 -> 17: the new cluster archives and backs up into its own stanza; PITR after the upgrade, and before it from the old stanza; rollback and finish keep the other stanza working', async () => {
    const started = new Date().toISOString();
    const deployed = await json(['deploy', '--name', 'ub', '--version', '15']);
    const url: string = deployed.DATABASE_URL;
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 1000);
    await backupAfter('ub', started);
    const beforeUpgrade = await moment();
    await insert(url, 1001, 1200);
    const old = daemon.record('ub');
    assert.ok(old.backup?.stanza, 'the database has a stanza');

    const upgradedAt = new Date().toISOString();
    const upgraded = await json(['upgrade', 'ub', '--version', '17']);
    assert.deepEqual([upgraded.from_version, upgraded.to_version, upgraded.rows, upgraded.database_url], [15, 17, 1200, url]);
    assert.equal(await major(url), 17);
    const record = daemon.record('ub');
    assert.equal(record.previous.backup.stanza, old.backup.stanza, 'the old cluster keeps its stanza');
    assert.notEqual(record.backup.stanza, old.backup.stanza, 'the new major has a stanza of its own');

    // The first full backup after the switch is taken by itself, and status shows it and the archiver.
    const first = await backupAfter('ub', upgradedAt);
    assert.equal(first.backups.length, 1, 'the new stanza holds the new cluster\'s backups only');
    assert.equal(first.backups[0].type, 'full');
    await insert(url, 1201, 1500);
    const archiver = await archivingOk('ub');
    assert.equal(archiver.last_backup.label, first.backups[0].label);
    const status = await json(['status']);
    const row = status.items.find((d: { name: string }) => d.name === 'ub');
    assert.equal(row?.backup?.last_backup?.label, first.backups[0].label, `status shows the new cluster's backup: ${JSON.stringify(row)}`);

    // Point in time after the upgrade, from the new stanza: exactly the rows committed before T.
    const t = await moment();
    await insert(url, 1501, 1700);
    const pitr = await json(['restore', 'ub', '--as', 'ub-pitr', '--time', t]);
    assert.equal(pitr.postgres_version, 17);
    assert.equal(await count(pitr.DATABASE_URL), 1500);
    // A moment before the upgrade: from the old cluster's stanza, on its major.
    const early = await json(['restore', 'ub', '--as', 'ub-early', '--time', beforeUpgrade]);
    assert.equal(early.postgres_version, 15);
    assert.equal(await count(early.DATABASE_URL), 1000);
    assert.equal(await count(url), 1700, 'the source is untouched');
    await json(['destroy', 'ub-pitr', '--yes', '--delete-backups']);
    await json(['destroy', 'ub-early', '--yes', '--delete-backups']);

    // Rollback: the old cluster archives into its stanza again, and backs up; the newer stanza's backups are kept.
    const rolledAt = new Date().toISOString();
    const back = await json(['upgrade', 'ub', '--rollback']);
    assert.deepEqual([back.postgres_version, back.backups_kept], [15, true]);
    assert.equal(daemon.record('ub').backup.stanza, old.backup.stanza);
    assert.ok(daemon.registry().destroyed.some((d: any) => d.name === 'ub' && d.backup.stanza === record.backup.stanza && d.postgres_version === 17));
    await insert(url, 5001, 5100);
    const again = await backupAfter('ub', rolledAt);
    assert.ok(again.backups.length >= 2, 'the old stanza has its earlier backups and the new one');
    await archivingOk('ub');
    const taken = await json(['backup', 'ub']);
    assert.match(taken.label, /^\d{8}-\d{6}F/, JSON.stringify(taken));
    assert.equal(await count(url), 1300, 'the old cluster as at the upgrade, and what was written since the rollback');
    // (Retention keeps two full backups: the deploy's first one has expired by now, so the moment to restore is a later one.)
    const afterRollback = await moment();
    await insert(url, 5101, 5200);

    // Upgrade again, then finish: the old stanza's backups are kept (as after a destroy) and still restore.
    await json(['upgrade', 'ub', '--version', '17']);
    const second = daemon.record('ub');
    const finished = await json(['upgrade', 'ub', '--finish']);
    assert.deepEqual([finished.postgres_version, finished.backups_kept], [17, true]);
    assert.ok(!dockerObjectExists('volume', old.volume_name));
    const kept = await json(['backups', '--destroyed']);
    assert.ok(kept.items.some((d: any) => d.name === 'ub' && d.postgres_version === 15), JSON.stringify(kept));
    const fromKept = await json(['restore', 'ub', '--as', 'ub-kept', '--time', afterRollback]);
    assert.equal(fromKept.postgres_version, 15);
    assert.equal(await count(fromKept.DATABASE_URL), 1300);
    await json(['destroy', 'ub-kept', '--yes', '--delete-backups']);
    assert.notEqual(second.backup.stanza, old.backup.stanza);

    // Bad input: --delete-backups goes with --finish or --rollback only; a bad flag value changes nothing.
    const usage = await pgdb(['upgrade', 'ub', '--version', '18', '--delete-backups']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--delete-backups goes with --finish or --rollback/);
    const bad = await daemon.api('POST', '/v1/db/ub/upgrade/finish?delete_backups=yes');
    assert.deepEqual([bad.status, bad.body.error.code], [400, 'INVALID_REQUEST']);
    assert.match(bad.body.error.message, /delete_backups must be exactly true or false/);

    // A destroy keeps the database's stanza beside the kept ones of its earlier clusters.
    await json(['destroy', 'ub', '--yes']);
    const afterDestroy = daemon.registry().destroyed.filter((d: any) => d.name === 'ub').map((d: any) => d.postgres_version);
    assert.ok(afterDestroy.includes(17) && afterDestroy.includes(15), `the destroyed database's stanzas are kept: ${afterDestroy}`);
  });

  it('rollback --delete-backups: the newer cluster goes with its stanza; the old one archives and backs up into its own again', async () => {
    const started = new Date().toISOString();
    const deployed = await json(['deploy', '--name', 'ud', '--version', '15']);
    const url: string = deployed.DATABASE_URL;
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    await insert(url, 1, 300);
    await backupAfter('ud', started);
    const old = daemon.record('ud');

    const upgradedAt = new Date().toISOString();
    await json(['upgrade', 'ud', '--version', '17']);
    const discarded = daemon.record('ud').backup.stanza;
    assert.notEqual(discarded, old.backup.stanza);
    await backupAfter('ud', upgradedAt);
    const discardedRepository = join(daemon.dataDir, 'backups', discarded);
    assert.ok(existsSync(discardedRepository), "the new stanza's repository directory exists before");

    const rolledAt = new Date().toISOString();
    const dropped = await json(['upgrade', 'ud', '--rollback', '--delete-backups']);
    assert.deepEqual([dropped.postgres_version, dropped.backups_kept], [15, false]);
    assert.equal(existsSync(discardedRepository), false, "the discarded stanza's repository directory is gone");
    assert.ok(!daemon.registry().destroyed.some((d: any) => d.backup?.stanza === discarded), 'no destroyed entry keeps the discarded stanza');
    const kept = await json(['backups', '--destroyed']);
    assert.ok(!kept.items.some((d: any) => d.name === 'ud'), JSON.stringify(kept));
    assert.equal(daemon.record('ud').backup.stanza, old.backup.stanza, 'the old cluster has its own stanza again');
    assert.equal(await major(url), 15);
    assert.equal(await count(url), 300);
    await insert(url, 301, 350);
    await backupAfter('ud', rolledAt);
    await archivingOk('ud');
    await json(['destroy', 'ud', '--yes', '--delete-backups']);
  });

  it('a SIGKILL of the daemon in the middle of the copy: the next start gives the old cluster back, archiving into its stanza', async () => {
    await daemon.stop();
    await daemon.start({ PGDB_FAILPOINTS: 'upgrade:copying' });
    const started = new Date().toISOString();
    const deployed = await json(['deploy', '--name', 'mid', '--version', '15']);
    const url: string = deployed.DATABASE_URL;
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY, note text)');
    // Enough rows that the copy is still streaming when the daemon dies.
    await insert(url, 1, 200_000);
    await backupAfter('mid', started);
    const killed = await pgdb(['upgrade', 'mid', '--version', '17']);
    assert.equal(killed.code, 1, 'the request died with the daemon');
    assert.equal((await daemon.exited()).signal, 'SIGKILL');
    const left = daemon.record('mid');
    assert.ok(left.upgrading, 'the registry says an upgrade was under way');
    // Down: the old cluster refuses the tenant (frozen for the copy) until the daemon is back.
    await assert.rejects(query(url, 'SELECT 1'));

    await daemon.start();
    await eventually('the old cluster serves the URL again', 120_000, async () =>
      daemon.record('mid').upgrading === undefined && (await major(url).catch(() => undefined)) === 15 ? true : undefined,
    );
    assert.equal(await count(url), 200_000);
    assert.ok(!dockerObjectExists('volume', left.upgrading.volume_name), 'the half-made volume is removed');
    const restartedAt = new Date().toISOString();
    await insert(url, 200_001, 200_100);
    const taken = await json(['backup', 'mid']);
    assert.match(taken.label, /^\d{8}-\d{6}F/, JSON.stringify(taken));
    await backupAfter('mid', restartedAt);
    await archivingOk('mid');
    // And the upgrade goes through next time.
    const retried = await json(['upgrade', 'mid', '--version', '17']);
    assert.equal(retried.rows, 200_100);
    await json(['upgrade', 'mid', '--finish', '--delete-backups']);
    assert.ok(!daemon.registry().destroyed?.some((d: any) => d.name === 'mid' && d.postgres_version === 15), 'with --delete-backups nothing of the old stanza is kept');
  });
});
