/**
 * Restore drills as pure parts: the shell a drill's task container runs, the
 * reading of its output, and the small state file that keeps each database's
 * last drill across restarts.
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
 * repository: restore the backup to its consistent end (no archiving, no
 * TCP: socket in /tmp only), start it, count the rows of every user table of
 * every database that takes connections, run pg_amcheck where the image has
 * it, stop. Prints `ROWS<TAB>db<TAB>schema.table<TAB>n` lines, `AMCHECK ...`,
 * and `DRILL ok` at the end; exits non-zero with the reason otherwise.
 *
 * The copy is the tenant's and the superuser reads it, in a container that
 * can reach the repository: every session starts with a fixed search_path
 * (PGOPTIONS), only base tables and materialized views are counted (never a
 * view, whose query would run with the reader's rights), event triggers in
 * the copy are disabled before pg_amcheck installs amcheck, and database
 * names reach psql only as PGDATABASE, never as a connection string or as
 * shell text.
 */
export function drillScript(identity: BackupIdentity, major: number, label: string): string {
  if (!BACKUP_LABEL_PATTERN.test(label)) throw new Error(`not a pgBackRest backup label: ${JSON.stringify(label)}`);
  const pgdata = dataDirFor(major);
  const restore = [...pgbackrest(identity.stanza, 'restore', ...restoreTarget({ backup: label })), `--pg1-path=${pgdata}`].map(shellQuote).join(' ');
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
    `${COUNT_ROWS};`,
    'SQL',
    // One `count <name>` line per database, the name single-quoted by the server: any name (newlines too) stays one shell word.
    `count() { PGDATABASE="$1" ${psql} -F "$(printf '\\t')" -f /tmp/count.sql 2>&1 || { echo "ERROR: a table of a database is not readable"; exit 1; }; }`,
    "cat > /tmp/databases.sql <<'SQL'",
    `SELECT 'count ' || ${SHELL_QUOTED_DATNAME} FROM pg_catalog.pg_database WHERE datallowconn ORDER BY datname;`,
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

/** Rows of every table and materialized view of the current database (a drill's copy), as ROWS lines. */
const COUNT_ROWS = [
  "SELECT 'ROWS', pg_catalog.current_database(), n.nspname || '.' || c.relname,",
  "(pg_catalog.xpath('/row/n/text()', pg_catalog.query_to_xml(pg_catalog.format('SELECT pg_catalog.count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text",
  'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace',
  "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
  "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY 3",
].join(' ');

export interface DrillOutput {
  ok: boolean;
  tables: DrillResult['tables'];
  /** Tables counted in all (may be more than listed). */
  tableCount: number;
  amcheck: DrillResult['amcheck'];
  /** The error lines, when it failed. */
  reason: string;
}

/** Reads a drill task's output (and exit code): counts, pg_amcheck's verdict, the reason of a failure. */
export function parseDrillOutput(output: string, exitCode: number): DrillOutput {
  const lines = output.split('\n').map((l) => l.replace(/\r$/, ''));
  const tables: DrillResult['tables'] = [];
  let amcheck: DrillResult['amcheck'] = null;
  let done = false;
  for (const line of lines) {
    const row = /^ROWS\t([^\t]*)\t([^\t]*)\t(\d+)$/.exec(line);
    if (row) tables.push({ database: row[1], table: row[2], rows: Number(row[3]) });
    const check = /^AMCHECK (ok|failed|skipped)$/.exec(line.trim());
    if (check) amcheck = check[1] as DrillResult['amcheck'];
    if (line.trim() === 'DRILL ok') done = true;
  }
  const ok = exitCode === 0 && done && amcheck !== 'failed';
  const meaningful = lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('ROWS\t'));
  const errors = meaningful.filter((l) => /ERROR|FATAL|error:|corrupt/i.test(l));
  const reason = ok ? '' : (errors.length > 0 ? errors : meaningful).slice(-6).join(' | ') || `the drill exited with code ${exitCode} and no output`;
  return { ok, tables: tables.slice(0, DRILL_TABLES_LISTED), tableCount: tables.length, amcheck, reason };
}

/** One line on what a passing drill checked. */
export function describePass(output: DrillOutput, label: string): string {
  const rows = output.tables.reduce((sum, t) => sum + t.rows, 0);
  const amcheck = output.amcheck === 'ok' ? 'pg_amcheck found no corruption' : 'pg_amcheck is not in the image (skipped)';
  return `restored backup ${label}, started it, read ${output.tableCount} user table(s) (${rows} rows in those listed); ${amcheck}`;
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
        if (result && typeof result.ok === 'boolean' && typeof result.at === 'string') this.results.set(stanza, result);
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
