/**
 * Restore drills as pure parts: the shell a drill's task container runs, the
 * reading of its output, the counting shared with the source (drill-source.ts),
 * and the small state file that keeps each database's last drill across
 * restarts.
 */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { DrillResult } from '../../../contract/api.js';
import { ADMIN_DATABASE, ADMIN_SESSION_OPTIONS, ADMIN_USER, DISABLE_EVENT_TRIGGERS } from '../postgres/postgres-container.js';
import type { BackupIdentity } from '../registry/registry.types.js';
import { BACKUP_LABEL_PATTERN, dataDirFor, pgbackrest, restoreTarget, shellQuote } from './pgbackrest.js';

/** Tables a drill reports counts for (the rest are counted, not listed). */
export const DRILL_TABLES_LISTED = 50;

/**
 * Runs as postgres in a task container with a throwaway volume and the
 * repository: restore the backup (to its consistent end, or with the WAL up
 * to `restorePoint`, the marker the daemon made in the source), start it
 * with no archiving and no TCP (a socket in /tmp only), count the rows of
 * every table the drill compares (COUNTED_RELATIONS) in every database it
 * counts (COUNTED_DATABASES), run pg_amcheck where the image has it, stop.
 * Prints a `DB <json name>` line per database and a `ROWS <json [database,
 * schema, table, rows]>` line per table (as JSON any name, with tabs or
 * newlines too, stays on its line), `AMCHECK ...`, and `DRILL ok` at the
 * end; exits non-zero with the reason otherwise. A restore point the
 * archive does not reach makes recovery fail (`recovery ended before
 * configured recovery target was reached`), never a copy that stops short.
 *
 * The copy is the tenant's and the superuser reads it, in a container that
 * can reach the repository: every session starts with a fixed search_path
 * (PGOPTIONS), only base tables and materialized views are counted (never a
 * view, whose query would run with the reader's rights), event triggers in
 * the copy are disabled before pg_amcheck installs amcheck, and database
 * names reach psql only as PGDATABASE, never as a connection string or as
 * shell text.
 */
export function drillScript(identity: BackupIdentity, major: number, label: string, restorePoint?: string): string {
  if (!BACKUP_LABEL_PATTERN.test(label)) throw new Error(`not a pgBackRest backup label: ${JSON.stringify(label)}`);
  const pgdata = dataDirFor(major);
  const target = restorePoint === undefined ? { backup: label } : { backup: label, restorePoint };
  const restore = [...pgbackrest(identity.stanza, 'restore', ...restoreTarget(target)), `--pg1-path=${pgdata}`].map(shellQuote).join(' ');
  const options = "-c listen_addresses='' -c unix_socket_directories=/tmp -c archive_mode=off";
  const psql = `psql -X -q -At -v ON_ERROR_STOP=1 -h /tmp -U ${ADMIN_USER}`;
  return [
    'set -eu',
    `export PGOPTIONS=${shellQuote(ADMIN_SESSION_OPTIONS)}`,
    `mkdir -p ${pgdata}`,
    `chmod 700 ${pgdata}`,
    `${restore} || { echo "ERROR: pgbackrest restore of backup ${label} failed"; exit 1; }`,
    `pg_ctl -D ${pgdata} -l /tmp/drill.log -o "${options}" -w -t 3600 start || { echo "ERROR: the restored copy did not start:"; tail -n 20 /tmp/drill.log; exit 1; }`,
    'while :; do',
    `  state=$(${psql} -d ${ADMIN_DATABASE} -c 'SELECT pg_catalog.pg_is_in_recovery()' 2>/dev/null || true)`,
    '  [ "$state" = f ] && break',
    `  if ! pg_ctl -D ${pgdata} status >/dev/null 2>&1; then echo "ERROR: recovery stopped:"; tail -n 20 /tmp/drill.log; exit 1; fi`,
    '  sleep 0.2',
    'done',
    "cat > /tmp/count.sql <<'SQL'",
    // pg_amcheck's CREATE EXTENSION below would run them as the superuser.
    `${DISABLE_EVENT_TRIGGERS};`,
    `${COPY_DATABASE_LINE};`,
    `${COPY_ROW_LINES};`,
    'SQL',
    // One `count <name>` line per database, the name single-quoted by the server: any name (newlines too) stays one shell word.
    `count() { PGDATABASE="$1" ${psql} -f /tmp/count.sql 2>&1 || { echo "ERROR: a table of a database is not readable"; exit 1; }; }`,
    "cat > /tmp/databases.sql <<'SQL'",
    `SELECT 'count ' || ${SHELL_QUOTED_DATNAME} FROM pg_catalog.pg_database WHERE ${COUNTED_DATABASES} ORDER BY datname;`,
    'SQL',
    `${psql} -d ${ADMIN_DATABASE} -f /tmp/databases.sql > /tmp/count-each.sh`,
    '. /tmp/count-each.sh',
    'if command -v pg_amcheck >/dev/null 2>&1; then',
    `  if pg_amcheck -h /tmp -U ${ADMIN_USER} --all --install-missing > /tmp/amcheck.out 2>&1; then echo 'AMCHECK ok'; else`,
    "    echo 'AMCHECK failed'; head -n 20 /tmp/amcheck.out; echo 'ERROR: pg_amcheck found corruption'; exit 1",
    '  fi',
    'else',
    "  echo 'AMCHECK skipped'",
    'fi',
    `pg_ctl -D ${pgdata} -m immediate -w stop >/dev/null`,
    'echo DRILL ok',
  ].join('\n');
}

/**
 * SQL for `datname` as one single-quoted shell word: ' + name with each ' written '\'' + '.
 * (In SQL literals a quote is doubled: '''' is ', and '''\''''' is '\''.)
 */
const SHELL_QUOTED_DATNAME = String.raw`'''' || pg_catalog.replace(datname, '''', '''\''''') || ''''`;

/**
 * The databases a drill counts, in the copy and in the source (columns of
 * pg_database): those that take connections, templates aside (template1
 * holds no one's data, and a session in it would make a tenant's CREATE
 * DATABASE fail while the source is being counted).
 */
export const COUNTED_DATABASES = 'datallowconn AND NOT datistemplate';

/**
 * The relations a drill counts, in the copy and in the source: permanent
 * tables and populated materialized views outside the system schemas. A
 * view is never read (its query would run with the reader's rights);
 * unlogged tables are left out (every restored copy has them empty), and so
 * are materialized views never populated (they cannot be read).
 */
const COUNTED_RELATIONS = [
  'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace',
  "WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' AND c.relispopulated",
  "AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
  "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
].join(' ');

/** The rows of relation `c` in schema `n`, read by a query built with %I: only the catalog's count(*) runs. */
const ROW_COUNT =
  "(pg_catalog.xpath('/row/n/text()', pg_catalog.query_to_xml(pg_catalog.format('SELECT pg_catalog.count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text";

/** The copy's line for the database it counts (so that a database without tables is seen too). */
const COPY_DATABASE_LINE = "SELECT 'DB ' || pg_catalog.to_json(pg_catalog.current_database())::text";

/** The copy's lines, one per counted relation of the current database. */
const COPY_ROW_LINES = `SELECT 'ROWS ' || pg_catalog.json_build_array(pg_catalog.current_database(), n.nspname, c.relname, ${ROW_COUNT}::bigint)::text ${COUNTED_RELATIONS} ORDER BY n.nspname, c.relname`;

/** The same relations counted in the source: rows `schema`, `table` and `n` (as text). */
export const SOURCE_ROW_COUNTS = `SELECT n.nspname AS schema, c.relname AS "table", ${ROW_COUNT} AS n ${COUNTED_RELATIONS} ORDER BY n.nspname, c.relname`;

/** The rows of one table, in the copy or in the source. */
export interface CountedTable {
  database: string;
  schema: string;
  table: string;
  rows: number;
}

/** What a drill counted in a cluster: the databases and their tables. */
export interface CountedRows {
  databases: string[];
  tables: CountedTable[];
}

export interface DrillOutput {
  ok: boolean;
  /** Everything the copy counted (a result lists the first DRILL_TABLES_LISTED tables). */
  counted: CountedRows;
  amcheck: DrillResult['amcheck'];
  /** The error lines, when it failed. */
  reason: string;
}

/** Reads a drill task's output (and exit code): counts, pg_amcheck's verdict, the reason of a failure. */
export function parseDrillOutput(output: string, exitCode: number): DrillOutput {
  const lines = output.split('\n').map((l) => l.replace(/\r$/, ''));
  const counted: CountedRows = { databases: [], tables: [] };
  let amcheck: DrillResult['amcheck'] = null;
  let done = false;
  for (const line of lines) {
    const database = /^DB (".*")$/.exec(line);
    if (database) counted.databases.push(JSON.parse(database[1]) as string);
    const row = /^ROWS (\[.*\])$/.exec(line);
    if (row) {
      const [db, schema, table, rows] = JSON.parse(row[1]) as [string, string, string, number];
      counted.tables.push({ database: db, schema, table, rows: Number(rows) });
    }
    const check = /^AMCHECK (ok|failed|skipped)$/.exec(line.trim());
    if (check) amcheck = check[1] as DrillResult['amcheck'];
    if (line.trim() === 'DRILL ok') done = true;
  }
  const ok = exitCode === 0 && done && amcheck !== 'failed';
  const meaningful = lines.map((l) => l.trim()).filter((l) => l && !/^(ROWS|DB) /.test(l));
  const errors = meaningful.filter((l) => /ERROR|FATAL|error:|corrupt/i.test(l));
  const reason = ok ? '' : (errors.length > 0 ? errors : meaningful).slice(-6).join(' | ') || `the drill exited with code ${exitCode} and no output`;
  return { ok, counted, amcheck, reason };
}

/** One line on what a passing drill checked (the caller adds what the comparison with the source found). */
export function describePass(output: DrillOutput, label: string, restorePoint?: string): string {
  const rows = output.counted.tables.reduce((sum, t) => sum + t.rows, 0);
  const amcheck = output.amcheck === 'ok' ? 'pg_amcheck found no corruption' : 'pg_amcheck is not in the image (skipped)';
  const to = restorePoint === undefined ? '' : ` with its WAL up to restore point ${restorePoint}`;
  return `restored backup ${label}${to}, started it, read ${output.counted.tables.length} table(s) (${rows} rows); ${amcheck}`;
}

/**
 * `<data dir>/drills.json` (0600): the last drill per stanza, so that a
 * failed drill stays visible across restarts until a drill passes.
 */
export class DrillStore {
  private readonly results = new Map<string, DrillResult>();
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly path: string) {
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as Record<string, DrillResult>;
      for (const [stanza, result] of Object.entries(parsed)) {
        // A drill recorded before comparisons has none.
        if (result && typeof result.ok === 'boolean' && typeof result.at === 'string') this.results.set(stanza, { ...result, comparison: result.comparison ?? null });
      }
    } catch {
      // No file yet, or an unreadable one: drills start afresh.
    }
  }

  get(stanza: string): DrillResult | undefined {
    return this.results.get(stanza);
  }

  set(stanza: string, result: DrillResult): Promise<void> {
    this.results.set(stanza, result);
    return this.save();
  }

  forget(stanza: string): Promise<void> {
    if (!this.results.delete(stanza)) return Promise.resolve();
    return this.save();
  }

  private save(): Promise<void> {
    const content = `${JSON.stringify(Object.fromEntries(this.results), null, 2)}\n`;
    this.writing = this.writing.then(async () => {
      const temporary = `${this.path}.tmp`;
      await writeFile(temporary, content, { mode: 0o600 });
      await rename(temporary, this.path);
    });
    return this.writing;
  }
}
