/**
 * The source's side of a restore drill: what the database held at the very
 * point the drill restores to, and the comparison of the copy with it.
 *
 * The point is a named restore point (pg_create_restore_point) made in the
 * running source; the rows are counted in snapshots taken just before it.
 * A snapshot and a place in the WAL are the same state only if no
 * transaction ended between them, so the restore point is made between
 * snapshots of the whole cluster and kept only when the source was quiet
 * (see quietReason); else it is tried again a few times, and at last the
 * drill restores to the last restore point made but reports that it could
 * not compare. A comparison is never made on a point that may differ.
 *
 * The daemon's superuser reads the tenant's databases here, as in the
 * copy: with search_path fixed at start-up (ADMIN_SESSION_OPTIONS), every
 * name qualified, only base tables and materialized views read (never a
 * view), in READ ONLY transactions; see COUNTED_RELATIONS. Why the
 * superuser and not the tenant's role: the count must be the one the copy
 * gets (row security, which binds the owner with FORCE ROW LEVEL SECURITY,
 * and a grant the owner revoked from itself would make the tenant's count
 * differ from the copy's and fail a sound drill), and reading a base table
 * with pg_catalog.count(*) runs no code of the tenant's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DrillComparison } from '../../../contract/api.js';
import type { ConnectionTarget, PostgresClient, PostgresSession } from '../postgres/postgres.client.js';
import { COUNTED_DATABASES, SOURCE_ROW_COUNTS, type CountedRows, type CountedTable } from './drill.js';

/** Tries at a quiet restore point before the drill gives up comparing. */
export const MARKER_ATTEMPTS = 5;
/** Pauses between the tries (ms): about 4 s in all. */
export const MARKER_PAUSES_MS = [100, 300, 700, 1500];
/** A cluster with more databases is not compared (a session per database stays open while they are counted). */
export const MAX_COMPARED_DATABASES = 20;
/** Differences a result lists. */
export const DIFFERENCES_LISTED = 20;
/** How long the count waits for a table that someone holds locked (e.g. an open ALTER TABLE): then it gives up comparing. */
const LOCK_TIMEOUT = '10s';
/** A count may read big tables. */
const COUNT_STATEMENT_TIMEOUT_MS = 3_600_000;

/** A Postgres snapshot (pg_current_snapshot): xids below xmin ended, xmax and above had not, xip were running. */
export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  xip: bigint[];
}

/** Reads pg_snapshot's text form, `xmin:xmax:xip,xip`. */
export function parseSnapshot(text: string): Snapshot {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
  if (!match) throw new Error(`not a snapshot: ${JSON.stringify(text)}`);
  return { xmin: BigInt(match[1]), xmax: BigInt(match[2]), xip: match[3] ? match[3].split(',').map((x) => BigInt(x)) : [] };
}

/**
 * Why the snapshots taken before a restore point (`first`, then one per
 * database), the transactions that held an xid just after it (`running`),
 * and the snapshot taken after that (`after`) may not show the state the
 * restore point stands for; undefined when they do.
 *
 * A transaction's commit record is written (and flushed) before it stops
 * counting as running, and a snapshot's xmax is one past the newest xid
 * that ended. Take a transaction that ends in the WAL before the restore
 * point without being visible in the first snapshot. If it stopped running
 * before `after` was taken, it was running at the first snapshot with an
 * xid below its xmax (listed in its xip), or it raised xmax. If it was
 * still running after the restore point (between its commit record and the
 * end of its commit), it still held its xid then, which `running` counts
 * (pg_stat_activity's backend_xid, and prepared transactions). So an empty
 * xip list everywhere, xmax unchanged from the first snapshot to `after`
 * and no xid held just after the restore point mean that the snapshots see
 * exactly what recovery to the restore point replays. Transactions without
 * an xid change nothing that WAL replays. The test is conservative: a
 * long transaction holding an xid, or any commit in the window, makes the
 * point unusable, never wrongly usable.
 */
export function quietReason(first: Snapshot, perDatabase: Snapshot[], running: number, after: Snapshot): string | undefined {
  if (first.xip.length > 0) return `transactions were running (${first.xip.length}: ${first.xip.slice(0, 5).join(', ')})`;
  if (running > 0) return `${running} transaction(s) held an xid at the restore point`;
  const moved = [...perDatabase, after].find((s) => s.xmax !== first.xmax || s.xip.length > 0);
  if (moved) return `a transaction ended meanwhile (xmax ${first.xmax} then ${moved.xmax})`;
  return undefined;
}

/** The restore point a drill restores to. */
export interface RestorePoint {
  name: string;
  lsn: string;
  at: string;
}

/** What the source held at the drill's restore point. */
export interface SourceMark {
  /** The last restore point made (the drill restores to it); undefined when none was. */
  restorePoint?: RestorePoint;
  /** The rows at it, when a quiet one was found; else `reason`. */
  counted?: CountedRows;
  reason?: string;
  attempts: number;
}

/** In the maintenance database: a snapshot, and the databases to count as of it (JSON, so any name comes through). */
export const WINDOW_START = `SELECT pg_catalog.pg_current_snapshot()::text AS snapshot,
  (SELECT pg_catalog.json_agg(datname ORDER BY datname)::text FROM pg_catalog.pg_database WHERE ${COUNTED_DATABASES}) AS databases`;
/** Set in each database's session when it opens: the tenant may have set others for its database. */
export const SESSION_SETTINGS = [
  // A table someone holds locked (an open ALTER TABLE) stops the count, not the drill queue.
  `SET lock_timeout = '${LOCK_TIMEOUT}'`,
  'SET idle_in_transaction_session_timeout = 0',
  'SET standard_conforming_strings = on',
];
/** In each database: the transaction that keeps the snapshot the counts are read in. */
export const SNAPSHOT_BEGIN = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';
export const TAKE_SNAPSHOT = 'SELECT pg_catalog.pg_current_snapshot()::text AS snapshot';
/** Writes a restore point record into the WAL (no xid, no data). */
export const CREATE_RESTORE_POINT = 'SELECT pg_catalog.pg_create_restore_point($1)::text AS lsn';
/** Transactions holding an xid, but the daemon's own sessions (which hold none): every backend's, and prepared ones. */
export const RUNNING_XIDS = `SELECT ((SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid())
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_xacts))::int AS running`;

/**
 * Makes the drill's restore point in the running source and counts the
 * rows there as of it. `target(database)` says how to reach a database (or,
 * without one, the maintenance database) as the daemon's superuser;
 * `name(attempt)` names each try's restore point. A connection that fails
 * throws (the caller reports "not compared"); a count that fails (a table
 * locked for longer than LOCK_TIMEOUT) is reported as not compared, with
 * the restore point kept.
 */
export async function markSource(
  client: PostgresClient,
  target: (database?: string) => ConnectionTarget,
  name: (attempt: number) => string,
  pauses: number[] = MARKER_PAUSES_MS,
): Promise<SourceMark> {
  const admin = await client.connect(target());
  const sessions = new Map<string, PostgresSession>();
  const closeAll = async () => {
    await Promise.all([...sessions.values()].map((s) => s.end()));
    sessions.clear();
  };
  let restorePoint: RestorePoint | undefined;
  let reason = '';
  try {
    for (let attempt = 1; attempt <= MARKER_ATTEMPTS; attempt++) {
      if (attempt > 1) await sleep(pauses[Math.min(attempt - 2, pauses.length - 1)] ?? 0);
      // Sessions are opened before the window (a TLS handshake each); the window's start checks the list.
      const [listed] = await admin.query<{ databases: string | null }>(WINDOW_START);
      const databases = JSON.parse(listed.databases ?? '[]') as string[];
      if (databases.length > MAX_COMPARED_DATABASES) {
        return { restorePoint, reason: `the source has ${databases.length} databases (more than ${MAX_COMPARED_DATABASES} are not compared)`, attempts: attempt };
      }
      if (JSON.stringify([...sessions.keys()]) !== JSON.stringify(databases)) {
        await closeAll();
        for (const database of databases) {
          const session = await client.connect(target(database), { statementTimeoutMs: COUNT_STATEMENT_TIMEOUT_MS });
          sessions.set(database, session);
          for (const setting of SESSION_SETTINGS) await session.query(setting);
        }
      }

      // The window: snapshots, the restore point and who holds an xid, nothing else.
      const [start] = await admin.query<{ snapshot: string; databases: string | null }>(WINDOW_START);
      const snapshots: Snapshot[] = [];
      for (const session of sessions.values()) {
        await session.query(SNAPSHOT_BEGIN);
        const [taken] = await session.query<{ snapshot: string }>(TAKE_SNAPSHOT);
        snapshots.push(parseSnapshot(taken.snapshot));
      }
      const [made] = await admin.query<{ lsn: string }>(CREATE_RESTORE_POINT, [name(attempt)]);
      const [held] = await admin.query<{ running: number }>(RUNNING_XIDS);
      const [after] = await admin.query<{ snapshot: string }>(TAKE_SNAPSHOT);
      restorePoint = { name: name(attempt), lsn: made.lsn, at: new Date().toISOString() };

      const sameDatabases = (start.databases ?? '[]') === (listed.databases ?? '[]');
      reason = sameDatabases ? (quietReason(parseSnapshot(start.snapshot), snapshots, Number(held.running), parseSnapshot(after.snapshot)) ?? '') : 'a database was created or dropped meanwhile';
      if (reason) {
        for (const session of sessions.values()) await session.query('ROLLBACK');
        continue;
      }

      const counted: CountedRows = { databases, tables: [] };
      try {
        for (const [database, session] of sessions) {
          const rows = await session.query<{ schema: string; table: string; n: string }>(SOURCE_ROW_COUNTS);
          counted.tables.push(...rows.map((row) => ({ database, schema: row.schema, table: row.table, rows: Number(row.n) })));
          await session.query('COMMIT');
        }
      } catch (error) {
        return { restorePoint, reason: `the source could not be counted: ${(error as Error).message}`, attempts: attempt };
      }
      return { restorePoint, counted, attempts: attempt };
    }
    return { restorePoint, reason: `the source was never quiet at a restore point in ${MARKER_ATTEMPTS} tries (last: ${reason})`, attempts: MARKER_ATTEMPTS };
  } finally {
    await closeAll();
    await admin.end();
  }
}

/** A table's key in a comparison: any name, told apart exactly. */
function key(table: Pick<CountedTable, 'database' | 'schema' | 'table'>): string {
  return JSON.stringify([table.database, table.schema, table.table]);
}

/** `schema.table`, as the result lists tables. */
export function qualified(table: Pick<CountedTable, 'schema' | 'table'>): string {
  return `${table.schema}.${table.table}`;
}

export type Difference = DrillComparison['differences'][number];

/**
 * The tables whose rows differ between the source at the restore point and
 * the copy, every one (a result lists the first DIFFERENCES_LISTED): a
 * table on one side only has null rows on the other. A database on one
 * side only, with no tables, is listed with table '' and rows 0 on the side
 * that has it.
 */
export function compareCounts(source: CountedRows, copy: CountedRows): Difference[] {
  const copied = new Map(copy.tables.map((t) => [key(t), t]));
  const sourced = new Map(source.tables.map((t) => [key(t), t]));
  const differences: Difference[] = [];
  for (const table of source.tables) {
    const other = copied.get(key(table));
    if (other?.rows !== table.rows) differences.push({ database: table.database, table: qualified(table), source_rows: table.rows, copy_rows: other?.rows ?? null });
  }
  for (const table of copy.tables) {
    if (!sourced.has(key(table))) differences.push({ database: table.database, table: qualified(table), source_rows: null, copy_rows: table.rows });
  }
  const named = new Set(differences.map((d) => d.database));
  const inSource = new Set(source.databases);
  const inCopy = new Set(copy.databases);
  for (const database of source.databases) if (!inCopy.has(database) && !named.has(database)) differences.push({ database, table: '', source_rows: 0, copy_rows: null });
  for (const database of copy.databases) if (!inSource.has(database) && !named.has(database)) differences.push({ database, table: '', source_rows: null, copy_rows: 0 });
  return differences;
}

/** One line naming the differences (names as JSON strings, so that none breaks the line): for the drill's detail. */
export function describeDifferences(differences: Difference[], restorePoint: string): string {
  const shown = differences.slice(0, 5).map((d) => {
    if (!d.table) return `database ${JSON.stringify(d.database)} is ${d.copy_rows === null ? 'missing in the copy' : 'not in the source'}`;
    const source = d.source_rows === null ? 'missing in the source' : `${d.source_rows} rows in the source`;
    const copy = d.copy_rows === null ? 'missing in the copy' : `${d.copy_rows} in the copy`;
    return `${JSON.stringify(d.database)} ${JSON.stringify(d.table)}: ${source}, ${copy}`;
  });
  const more = differences.length > shown.length ? ` (and ${differences.length - shown.length} more)` : '';
  return `the copy differs from the source at restore point ${restorePoint}: ${shown.join('; ')}${more}`;
}
