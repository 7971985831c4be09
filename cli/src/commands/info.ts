import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { InfoResponse } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { formatBytes, formatCreated, formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface InfoOptions extends GlobalOptions, ServerOptions {
  name: string;
  'show-secrets': boolean;
}

export function infoCommand(context: Context): CommandModule<GlobalOptions, InfoOptions> {
  return {
    command: 'info <name>',
    describe: 'show a database: version, state and uptime, size and free space, connections, limits, URL',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('show-secrets', { type: 'boolean', default: false, describe: 'show the password in the URL (masked otherwise)' })
        .check((argv) => checkName(argv.name))
        .example('$0 info shop', 'what is going on in "shop"')
        .strict(),
    handler: (argv) => info(context, argv),
  };
}

async function info(context: Context, argv: ArgumentsCamelCase<InfoOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  const response = await client.info(argv.name, argv.showSecrets);
  context.stdout.write(argv.json ? formatJson(response) : formatInfo(response));
}

/** Aligned `key  value` lines; `-` where the database is not running. */
export function formatInfo(info: InfoResponse): string {
  const unknown = '-';
  const rows: Array<[string, string]> = [
    ['name', info.name],
    ['version', (info.server_version ?? `${info.postgres_version}`) + (info.previous_version === null ? '' : ` (Postgres ${info.previous_version} kept: upgrade --finish or --rollback)`)],
    ['state', info.uptime_seconds === null ? info.state : `${info.state}, up ${formatDuration(info.uptime_seconds)}`],
    ['data', info.data_bytes === null ? unknown : formatBytes(info.data_bytes)],
    ['free space', info.volume_free_bytes === null ? unknown : formatBytes(info.volume_free_bytes)],
    ['connections', info.connections === null ? unknown : `${info.connections} of ${info.max_connections}`],
    ['longest query', info.longest_query_seconds === null ? unknown : info.longest_query_seconds === 0 ? 'none running' : formatDuration(info.longest_query_seconds)],
    ['memory limit', info.limits.memory_mb === null ? unknown : `${info.limits.memory_mb} MiB`],
    ['cpu limit', info.limits.cpus === null ? 'none' : `${info.limits.cpus} CPU${info.limits.cpus === 1 ? '' : 's'}`],
    ['size', `${info.limits.size_gb} GiB${info.limits.size_enforced ? '' : ' (not enforced: a volume from before size limits, or PGDB_SIZE_LIMITS=off)'}`],
    ['port', String(info.port)],
    ['created', formatCreated(info.created_at)],
    ['backups', formatBackupState(info.backups)],
    ['archiving', info.backups ? info.backups.archiving : unknown],
    ['restore drill', formatLastDrill(info.backups)],
    ['url', info.database_url],
  ];
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${`${key}:`.padEnd(width + 1)}  ${value}\n`).join('');
}

/** The last restore drill: passed or failed, and when. */
export function formatLastDrill(state: InfoResponse['backups']): string {
  if (!state) return '-';
  const drill = state.last_drill;
  if (!drill) return 'none yet (`pgdb backup verify <name>` runs one)';
  const compared = drill.comparison ? `; ${drill.comparison.status === 'not_compared' ? 'not compared with the source' : drill.comparison.status === 'match' ? 'matched the source' : 'DIFFERED from the source'}` : '';
  return `${drill.ok ? 'passed' : 'FAILED'} at ${drill.at} (backup ${drill.backup ?? '-'}${compared})`;
}

/** The newest backup and its age, or why there is none. */
export function formatBackupState(state: InfoResponse['backups']): string {
  if (!state) return 'off (no backups for this database)';
  const problems = state.problems.length > 0 ? `; ${state.problems.join('; ')}` : '';
  if (!state.last_backup) return `none yet${problems}`;
  const age = state.last_backup_age_seconds === null ? '' : `, ${formatDuration(state.last_backup_age_seconds)} ago`;
  return `${state.last_backup.type} ${state.last_backup.label}${age}${problems}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds * 10) / 10}s`;
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const;
  const whole = Math.floor(seconds);
  const first = units.findIndex(([, size]) => whole >= size);
  const [unit, size] = units[first];
  const [nextUnit, nextSize] = units[first + 1];
  const next = Math.floor((whole % size) / nextSize);
  return `${Math.floor(whole / size)}${unit}${next > 0 ? ` ${next}${nextUnit}` : ''}`;
}
