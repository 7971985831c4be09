/** `pgdb backup` (and `pgdb backup verify`), `pgdb backups` and `pgdb restore`: the backup commands. */
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { BACKUP_TYPES, parseRfc3339, type BackupItem, type BackupType, type BackupsResponse, type RestoreRequest, type VerifyResponse } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import { deployOutput, formatDeploy, formatJson, formatTable } from '../output.js';
import { whileWaiting } from '../progress.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface BackupOptions extends GlobalOptions, ServerOptions {
  name: string;
  /** With name `verify`: the database to drill. */
  target?: string;
  type: BackupType;
}

export function backupCommand(context: Context): CommandModule<GlobalOptions, BackupOptions> {
  return {
    command: 'backup <name> [target]',
    describe: "take a backup of a database now (they are also taken on a schedule); `backup verify <name>` runs a restore drill; `backup key` prints the server's backup key",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database, or verify, or key' })
        .positional('target', { type: 'string', describe: 'after verify: the database whose latest backup to drill' })
        .option('type', { choices: BACKUP_TYPES, default: 'full' as BackupType, describe: 'full, or diff/incr on top of the newest full one' })
        .check((argv) => {
          if (argv.target !== undefined && argv.name !== 'verify') throw new Error(`unexpected argument "${argv.target}": did you mean \`backup verify ${argv.target}\`?`);
          return checkName(argv.target ?? argv.name);
        })
        .example('$0 backup shop', 'a full backup of "shop" now')
        .example('$0 backup verify shop', 'restore the latest backup of "shop" into a throwaway container and check it (a restore drill)')
        .example('$0 backup key > pgdb-backup.key', "save the server's backup key off the server: with it and the repository, a lost server's databases can be restored")
        .strict(),
    handler: (argv) => backup(context, argv),
  };
}

async function backup(context: Context, argv: ArgumentsCamelCase<BackupOptions>): Promise<void> {
  if (argv.name === 'verify' && argv.target !== undefined) return verify(context, argv, argv.target);
  if (argv.name === 'key' && argv.target === undefined) return printKey(context, argv);
  const { server, client } = await connect(context, argv);
  const request = client.backup(argv.name, argv.type);
  const item = await (argv.verbose || argv.json ? request : whileWaiting(context.stderr, `backing up ${argv.name} on ${server.url}`, request));
  context.stdout.write(
    argv.json ? formatJson(item) : `${argv.name}: ${item.type} backup ${item.label}, ${formatBytes(item.repo_bytes)} in the repository (${formatBytes(item.size_bytes)} of data)\n`,
  );
}

/** The key alone on stdout (so `> file` saves it), the warning on stderr. */
async function printKey(context: Context, argv: ArgumentsCamelCase<BackupOptions>): Promise<void> {
  const { server, client } = await connect(context, argv);
  const key = await client.backupKey();
  if (argv.json) return void context.stdout.write(formatJson(key));
  context.stdout.write(`${key.key}\n`);
  context.stderr.write(
    `warning: keep this key somewhere other than ${server.url}'s disk. Without it, a lost server's backups (${key.location}) cannot be listed or restored by a new one;\n` +
      `on a rebuilt server, put it in ${key.file} (or PGDB_BACKUP_KEY_FILE) before pgdbd starts.\n`,
  );
}

async function verify(context: Context, argv: ArgumentsCamelCase<BackupOptions>, name: string): Promise<void> {
  const { server, client } = await connect(context, argv);
  const request = client.verifyBackups(name);
  const result = await (argv.verbose || argv.json ? request : whileWaiting(context.stderr, `restore drill of ${name} on ${server.url}`, request));
  if (argv.json) context.stdout.write(formatJson(result));
  else context.stdout.write(formatDrill(result));
  if (!result.ok) {
    throw new CliError(`the restore drill of ${name} failed`, {
      hint: '`pgdb status` shows it as a problem until a drill passes; take a new backup (`pgdb backup <name>`) and verify again',
    });
  }
}

export function formatDrill(result: VerifyResponse): string {
  const seconds = (result.duration_ms / 1000).toFixed(1);
  const comparison = formatComparison(result);
  if (!result.ok) {
    const differences = (result.comparison?.differences ?? []).map((d) => [d.database, d.table || '(the database)', rowsOrMissing(d.source_rows), rowsOrMissing(d.copy_rows)]);
    const table = differences.length > 0 ? `${formatTable(['DATABASE', 'TABLE', 'SOURCE', 'COPY'], differences)}\n` : '';
    return `${table}${result.name}: restore drill FAILED after ${seconds} s: ${result.detail}\n${comparison}`;
  }
  const compared = result.comparison?.status === 'match';
  const rows = result.tables.map((t) => [t.database, t.table, String(t.rows), ...(compared ? [rowsOrMissing(t.source_rows ?? null)] : [])]);
  const table = rows.length > 0 ? `${formatTable(['DATABASE', 'TABLE', 'ROWS', ...(compared ? ['SOURCE'] : [])], rows)}\n` : '';
  return `${table}${result.name}: restore drill passed in ${seconds} s: ${result.detail}\n${comparison}`;
}

/** The comparison with the source, on a line of its own (nothing for a drill from before comparisons). */
export function formatComparison(result: Pick<VerifyResponse, 'comparison'>): string {
  const comparison = result.comparison;
  if (!comparison) return '';
  const point = comparison.restore_point ? ` at restore point ${comparison.restore_point.name} (${comparison.restore_point.at})` : '';
  if (comparison.status === 'match') return `compared with the source${point}: ${comparison.tables_compared} table(s), all match\n`;
  if (comparison.status === 'differ') return `compared with the source${point}: DIFFERENT\n`;
  return `compared with the source: NOT COMPARED (${comparison.reason})\n`;
}

function rowsOrMissing(rows: number | null): string {
  return rows === null ? 'missing' : String(rows);
}

interface BackupsOptions extends GlobalOptions, ServerOptions {
  name?: string;
  destroyed: boolean;
}

export function backupsCommand(context: Context): CommandModule<GlobalOptions, BackupsOptions> {
  return {
    command: 'backups [name]',
    describe: "list a database's backups and the window a restore can reach, or (--destroyed) what destroyed databases can be restored",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', describe: 'the database (also a destroyed one)' })
        .option('destroyed', { type: 'boolean', default: false, describe: 'list destroyed databases whose backups are kept' })
        .check((argv) => {
          if (argv.destroyed === Boolean(argv.name)) throw new Error('give a database name, or --destroyed');
          return argv.name === undefined || checkName(argv.name);
        })
        .example('$0 backups shop', 'the backups of "shop" and its restorable window')
        .example('$0 backups --destroyed', 'destroyed databases that `pgdb restore` can bring back')
        .strict(),
    handler: (argv) => backups(context, argv),
  };
}

async function backups(context: Context, argv: ArgumentsCamelCase<BackupsOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  if (argv.destroyed) {
    const response = await client.destroyedBackups();
    if (argv.json) return void context.stdout.write(formatJson(response));
    if (response.items.length === 0) return void context.stdout.write('no destroyed database has backups kept\n');
    const rows = response.items.map((d) => [d.name, String(d.postgres_version), d.recovered ? `recovered (last seen ${d.destroyed_at})` : d.destroyed_at]);
    context.stdout.write(`${formatTable(['NAME', 'VERSION', 'DESTROYED'], rows)}\nbring one back with \`pgdb restore <name> --as <new name>\`\n`);
    return;
  }
  const response = await client.backups(argv.name!);
  context.stdout.write(argv.json ? formatJson(response) : formatBackups(response));
}

export function formatBackups(response: BackupsResponse): string {
  const where = `${response.repository.kind === 's3' ? 'S3' : 'local'} repository ${response.repository.location}`;
  if (response.backups.length === 0) return `${response.name} (${response.source}): no backup yet (${where})\n`;
  const rows = response.backups.map((b: BackupItem) => [b.label, b.type, b.started_at, b.finished_at, formatBytes(b.size_bytes), formatBytes(b.repo_bytes)]);
  const window = response.window ? `restorable from ${response.window.earliest} to ${response.window.latest}` : 'not restorable yet';
  return `${formatTable(['LABEL', 'TYPE', 'STARTED', 'FINISHED', 'DATA', 'STORED'], rows)}\n${response.name} (${response.source}): ${window}; ${where}\n`;
}

interface RestoreOptions extends GlobalOptions, ServerOptions {
  name: string;
  as: string;
  time?: string;
  backup?: string;
}

export function restoreCommand(context: Context): CommandModule<GlobalOptions, RestoreOptions> {
  return {
    command: 'restore <name>',
    describe: 'create a new database from the backups of <name> (running, stopped or destroyed): at a moment, a backup, or the latest',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database whose backups to use' })
        .option('as', { type: 'string', demandOption: true, requiresArg: true, describe: 'name of the new database (the source is never overwritten)' })
        .option('time', { type: 'string', requiresArg: true, describe: 'restore to this moment (RFC 3339, e.g. 2026-11-29T10:15:00Z)' })
        .option('backup', { type: 'string', requiresArg: true, describe: "restore to the end of this backup (a label from `pgdb backups`)" })
        .conflicts('time', 'backup')
        .check((argv) => checkName(argv.name) && checkName(argv.as) && checkTime(argv.time))
        .example('$0 restore shop --as shop-before --time 2026-11-29T10:15:00Z', 'shop as it was at 10:15 UTC, as a new database')
        .example('$0 restore shop --as shop-back', 'a destroyed "shop" back, with every commit archived before its destroy')
        .strict(),
    handler: (argv) => restore(context, argv),
  };
}

function checkTime(time: string | undefined): true {
  if (time !== undefined && !parseRfc3339(time)) {
    throw new Error(`--time must be an RFC 3339 time with a zone, e.g. 2026-11-29T10:15:00Z (got "${time}")`);
  }
  return true;
}

async function restore(context: Context, argv: ArgumentsCamelCase<RestoreOptions>): Promise<void> {
  const { server, client } = await connect(context, argv);
  const request: RestoreRequest = { as: argv.as, time: argv.time, backup: argv.backup };
  const what = argv.time ? ` at ${argv.time}` : argv.backup ? ` at backup ${argv.backup}` : '';
  const work = client.restore(argv.name, request);
  const response = await (argv.verbose || argv.json ? work : whileWaiting(context.stderr, `restoring ${argv.name}${what} as ${argv.as} on ${server.url}`, work));
  if (argv.json) {
    // deploy's shape, and what a restore adds.
    const { postgres_version, restored_from, target_time, target_backup } = response;
    return void context.stdout.write(formatJson({ ...deployOutput(response), postgres_version, restored_from, target_time, target_backup }));
  }
  context.stdout.write(formatDeploy(response));
}

function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
