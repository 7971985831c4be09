import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConnectionTarget, PostgresClient, PostgresSession } from '../postgres/postgres.client.js';
import { parseDrillOutput, SOURCE_ROW_COUNTS } from './drill.js';
import { comparisonOf } from './drill.service.js';
import {
  compareCounts,
  CREATE_RESTORE_POINT,
  describeDifferences,
  markSource,
  MARKER_ATTEMPTS,
  MAX_COMPARED_DATABASES,
  parseSnapshot,
  quietReason,
  RUNNING_XIDS,
  SESSION_SETTINGS,
  SNAPSHOT_BEGIN,
  TAKE_SNAPSHOT,
  WINDOW_START,
} from './drill-source.js';

const admin: ConnectionTarget = { host: '127.0.0.1', port: 5432, user: 'pgdb_admin', password: 'p', database: 'postgres', tls: { mode: 'plain' } };
const target = (database?: string) => (database === undefined ? admin : { ...admin, database });
const name = (attempt: number) => `pgdb-drill-test-${attempt}`;

/**
 * A cluster as the daemon's sessions see it: `snapshot()` answers every
 * snapshot (a script may change it between calls), a restore point gets the
 * next LSN, and the counts come from `tables`.
 */
class FakeCluster implements PostgresClient {
  databases: string[] = ['postgres', 'shop'];
  tables = new Map<string, Array<{ schema: string; table: string; n: string }>>([['shop', [{ schema: 'public', table: 'items', n: '1234' }]]]);
  snapshot: () => string = () => '100:100:';
  running: () => number = () => 0;
  /** Called before each restore point is made and after it: a script of what other sessions do. */
  aroundRestorePoint: (when: 'before' | 'after', attempt: number) => void = () => undefined;
  countError: Error | undefined;
  listed: (call: number) => string[] = () => this.databases;
  readonly log: Array<{ database: string | undefined; sql: string; params?: unknown[] }> = [];
  open = 0;
  private lsn = 0x3000000;
  private restorePoints = 0;
  private listings = 0;

  async waitUntilReady(): Promise<boolean> {
    return true;
  }
  async execute(): Promise<void> {}
  async query<T>(): Promise<T[]> {
    return [];
  }

  async connect(at: ConnectionTarget): Promise<PostgresSession> {
    const database = at.database === 'postgres' && at === admin ? undefined : at.database;
    this.open++;
    return {
      query: async <T>(sql: string, params?: unknown[]) => {
        this.log.push({ database, sql, params });
        return this.answer(database, sql, params) as T[];
      },
      end: async () => {
        this.open--;
      },
    };
  }

  private answer(database: string | undefined, sql: string, params?: unknown[]): Array<Record<string, unknown>> {
    if (sql === WINDOW_START) return [{ snapshot: this.snapshot(), databases: JSON.stringify(this.listed(this.listings++)) }];
    if (sql === TAKE_SNAPSHOT) return [{ snapshot: this.snapshot() }];
    if (sql === RUNNING_XIDS) return [{ running: this.running() }];
    if (sql === CREATE_RESTORE_POINT) {
      this.restorePoints++;
      this.aroundRestorePoint('before', this.restorePoints);
      const lsn = `0/${(this.lsn += 0x100).toString(16).toUpperCase()}`;
      assert.deepEqual(params, [name(this.restorePoints)]);
      this.aroundRestorePoint('after', this.restorePoints);
      return [{ lsn }];
    }
    if (sql === SOURCE_ROW_COUNTS) {
      if (this.countError) throw this.countError;
      return this.tables.get(database!) ?? [];
    }
    return [];
  }
}

describe("a drill's restore point in the source", () => {
  it('reads snapshots', () => {
    assert.deepEqual(parseSnapshot('100:105:100,103'), { xmin: 100n, xmax: 105n, xip: [100n, 103n] });
    assert.deepEqual(parseSnapshot('7:7:'), { xmin: 7n, xmax: 7n, xip: [] });
    assert.throws(() => parseSnapshot('x'), /not a snapshot/);
  });

  it('is quiet only with no transaction running at the first snapshot, none holding an xid at the restore point, and none ending until the last', () => {
    const quiet = parseSnapshot('100:100:');
    assert.equal(quietReason(quiet, [quiet, quiet], 0, quiet), undefined);
    assert.match(quietReason(parseSnapshot('98:100:98'), [quiet], 0, quiet)!, /transactions were running \(1: 98\)/);
    assert.match(quietReason(quiet, [parseSnapshot('100:101:')], 0, parseSnapshot('100:101:'))!, /a transaction ended meanwhile \(xmax 100 then 101\)/);
    assert.match(quietReason(quiet, [quiet], 0, parseSnapshot('100:102:'))!, /ended meanwhile/, 'a commit just before the restore point');
    assert.match(quietReason(quiet, [quiet], 0, parseSnapshot('100:100:99'))!, /ended meanwhile/);
    // xid 100, the newest, between its commit record (before the restore point) and the end of its commit: in no xip, xmax unmoved.
    assert.match(quietReason(quiet, [quiet], 1, quiet)!, /1 transaction\(s\) held an xid at the restore point/);
  });

  it('on a quiet source: one restore point, counts in every database taken in snapshots opened before it, everything closed', async () => {
    const cluster = new FakeCluster();
    const mark = await markSource(cluster, target, name, [0]);
    assert.equal(mark.attempts, 1);
    assert.equal(mark.reason, undefined);
    assert.equal(mark.restorePoint?.name, 'pgdb-drill-test-1');
    assert.equal(mark.restorePoint?.lsn, '0/3000100');
    assert.deepEqual(mark.counted, { databases: ['postgres', 'shop'], tables: [{ database: 'shop', schema: 'public', table: 'items', rows: 1234 }] });
    assert.equal(cluster.open, 0, 'every session was closed');
    // The order that makes the counts the restore point's: snapshots, the restore point, a snapshot after it, then the counts.
    const steps = cluster.log.map((q) => `${q.database ?? '(admin)'}: ${q.sql === SOURCE_ROW_COUNTS ? 'count' : q.sql === WINDOW_START ? 'window' : q.sql}`);
    const point = steps.indexOf(`(admin): ${CREATE_RESTORE_POINT}`);
    for (const database of ['postgres', 'shop']) {
      const begin = steps.indexOf(`${database}: ${SNAPSHOT_BEGIN}`);
      assert.ok(begin > steps.indexOf('(admin): window') && begin < point, `${database}: its snapshot before the restore point`);
      assert.ok(steps.indexOf(`${database}: count`) > point, `${database}: counted after the restore point was found quiet`);
      for (const setting of SESSION_SETTINGS) assert.ok(steps.indexOf(`${database}: ${setting}`) < begin, `${database}: ${setting} first`);
    }
    assert.equal(steps.filter((step) => step === '(admin): window').length, 2, 'a listing, then the window');
    assert.ok(steps.indexOf(`(admin): ${RUNNING_XIDS}`) > point);
    assert.ok(steps.indexOf(`(admin): ${TAKE_SNAPSHOT}`) > steps.indexOf(`(admin): ${RUNNING_XIDS}`));
  });

  it('a busy source: tries again, rolls the snapshots back, and counts at the first quiet restore point', async () => {
    const cluster = new FakeCluster();
    let xmax = 100;
    cluster.snapshot = () => `${xmax}:${xmax}:`;
    // Something commits around the first two restore points.
    cluster.aroundRestorePoint = (when, attempt) => {
      if (when === 'after' && attempt <= 2) xmax++;
    };
    const mark = await markSource(cluster, target, name, [0]);
    assert.equal(mark.attempts, 3);
    assert.equal(mark.restorePoint?.name, 'pgdb-drill-test-3');
    assert.ok(mark.counted);
    assert.equal(cluster.log.filter((q) => q.sql === 'ROLLBACK').length, 4, 'two databases, two busy tries');
    assert.equal(cluster.open, 0);
  });

  it('a writer between its commit record and the end of its commit at the restore point: tried again', async () => {
    const cluster = new FakeCluster();
    let calls = 0;
    cluster.running = () => (++calls === 1 ? 1 : 0);
    const mark = await markSource(cluster, target, name, [0]);
    assert.equal(mark.attempts, 2);
    assert.ok(mark.counted);
  });

  it('a source never quiet: the last restore point, no counts, the reason', async () => {
    const cluster = new FakeCluster();
    cluster.snapshot = () => '100:105:101';
    const mark = await markSource(cluster, target, name, [0]);
    assert.equal(mark.counted, undefined);
    assert.equal(mark.attempts, MARKER_ATTEMPTS);
    assert.equal(mark.restorePoint?.name, `pgdb-drill-test-${MARKER_ATTEMPTS}`, 'the drill still restores to a recent point');
    assert.match(mark.reason!, /never quiet at a restore point in 5 tries \(last: transactions were running \(1: 101\)\)/);
    assert.ok(!cluster.log.some((q) => q.sql === SOURCE_ROW_COUNTS), 'nothing counted');
    assert.equal(cluster.open, 0);
  });

  it('a database created meanwhile: tried again with a session in it too', async () => {
    const cluster = new FakeCluster();
    cluster.listed = (call) => (call === 0 ? ['postgres', 'shop'] : ['postgres', 'shop', 'new']);
    cluster.tables.set('new', [{ schema: 'public', table: 't', n: '1' }]);
    const mark = await markSource(cluster, target, name, [0]);
    assert.equal(mark.attempts, 2);
    assert.deepEqual(mark.counted?.databases, ['postgres', 'shop', 'new']);
    assert.equal(mark.counted?.tables.length, 2);
  });

  it('too many databases, or a table locked too long: not compared, with the reason', async () => {
    const many = new FakeCluster();
    many.databases = Array.from({ length: MAX_COMPARED_DATABASES + 1 }, (_, i) => `db${i}`);
    const crowded = await markSource(many, target, name, [0]);
    assert.match(crowded.reason!, /has 21 databases \(more than 20 are not compared\)/);
    assert.equal(many.open, 0);
    const locked = new FakeCluster();
    locked.countError = new Error('canceling statement due to lock timeout');
    const mark = await markSource(locked, target, name, [0]);
    assert.equal(mark.counted, undefined);
    assert.match(mark.reason!, /could not be counted: canceling statement due to lock timeout/);
    assert.equal(mark.restorePoint?.name, 'pgdb-drill-test-1');
    assert.equal(locked.open, 0);
  });

  it("the daemon's SQL there names only pg_catalog's functions and reads only catalogs and base tables", () => {
    for (const sql of [WINDOW_START, TAKE_SNAPSHOT, CREATE_RESTORE_POINT, RUNNING_XIDS, SOURCE_ROW_COUNTS]) {
      // String literals are left out (the XPath's text()), but the query format() builds is checked as SQL too.
      const code = `${sql.replaceAll(/'[^']*'/g, "''")} ${[...sql.matchAll(/'(SELECT [^']*)'/g)].map((m) => m[1]).join(' ')}`;
      const calls = [...code.matchAll(/(?<![.\w])([a-z_]+)\s*\(/g)].map((m) => m[1]);
      assert.deepEqual(calls, [], `unqualified calls in ${sql}`);
      const relations = [...sql.matchAll(/\b(?:FROM|JOIN)\s+([\w.%]+)/g)].map((m) => m[1]);
      for (const relation of relations) assert.match(relation, /^(pg_catalog\.pg_(class|namespace|database|stat_activity|prepared_xacts)|%I\.%I)$/, sql);
    }
  });
});

describe('the comparison of the copy with the source', () => {
  const source = {
    databases: ['postgres', 'shop'],
    tables: [
      { database: 'shop', schema: 'public', table: 'items', rows: 1300 },
      { database: 'shop', schema: 'public', table: 'same', rows: 5 },
      { database: 'shop', schema: 'we"ird', table: 'new\nline', rows: 2 },
    ],
  };

  it('the same rows everywhere: no difference', () => {
    assert.deepEqual(compareCounts(source, structuredClone(source)), []);
  });

  it('names each table whose rows differ or that one side lacks, with both figures; any name is told apart exactly', () => {
    const copy = {
      databases: ['postgres', 'shop', 'extra'],
      tables: [
        { database: 'shop', schema: 'public', table: 'items', rows: 1234 },
        { database: 'shop', schema: 'public', table: 'same', rows: 5 },
        // Same text as "we"ird"."new\nline" joined with a dot, but another table.
        { database: 'shop', schema: 'we"ird.new', table: 'line', rows: 2 },
      ],
    };
    const differences = compareCounts(source, copy);
    assert.deepEqual(differences, [
      { database: 'shop', table: 'public.items', source_rows: 1300, copy_rows: 1234 },
      { database: 'shop', table: 'we"ird.new\nline', source_rows: 2, copy_rows: null },
      { database: 'shop', table: 'we"ird.new.line', source_rows: null, copy_rows: 2 },
      { database: 'extra', table: '', source_rows: null, copy_rows: 0 },
    ]);
    const detail = describeDifferences(differences, 'pgdb-drill-x-1');
    assert.match(detail, /^the copy differs from the source at restore point pgdb-drill-x-1: "shop" "public\.items": 1300 rows in the source, 1234 in the copy; /);
    assert.match(detail, /"shop" "we\\"ird\.new\\nline": 2 rows in the source, missing in the copy/);
    assert.match(detail, /database "extra" is not in the source/);
    assert.ok(!detail.includes('\n'), 'one line, whatever the names');
  });

  it('a database missing from the copy', () => {
    const differences = compareCounts({ databases: ['postgres', 'gone'], tables: [] }, { databases: ['postgres'], tables: [] });
    assert.deepEqual(differences, [{ database: 'gone', table: '', source_rows: 0, copy_rows: null }]);
    assert.match(describeDifferences(differences, 'p'), /database "gone" is missing in the copy/);
  });
});

describe("a drill's verdict on the comparison", () => {
  const restorePoint = { name: 'pgdb-drill-x-1', lsn: '0/3000100', at: '2026-12-08T00:00:00.000Z' };
  const counted = { databases: ['shop'], tables: [{ database: 'shop', schema: 'public', table: 'items', rows: 3 }] };
  const copy = (rows: number) => parseDrillOutput(`DB "shop"\nROWS ["shop","public","items",${rows}]\nAMCHECK ok\nDRILL ok\n`, 0);

  it('match, differ, or not compared: never a comparison without both counts', () => {
    assert.deepEqual(comparisonOf({ restorePoint, counted, attempts: 1 }, copy(3)), { status: 'match', reason: null, restore_point: restorePoint, tables_compared: 1, differences: [] });
    const differ = comparisonOf({ restorePoint, counted, attempts: 1 }, copy(2));
    assert.equal(differ.status, 'differ');
    assert.deepEqual(differ.differences, [{ database: 'shop', table: 'public.items', source_rows: 3, copy_rows: 2 }]);
    const busy = comparisonOf({ restorePoint, reason: 'the source was never quiet', attempts: 5 }, copy(2));
    assert.deepEqual([busy.status, busy.reason, busy.restore_point], ['not_compared', 'the source was never quiet', restorePoint], 'a busy source is no difference');
    const failed = comparisonOf({ restorePoint, counted, attempts: 1 }, parseDrillOutput('ERROR: the restored copy did not start:\n', 1));
    assert.equal(failed.status, 'not_compared', 'a copy that was not counted is no difference either');
    assert.match(failed.reason!, /the copy was not counted/);
  });
});
