import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { formatBytes, formatJson } from '../output.js';
import { whileWaiting } from '../progress.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface UpgradeOptions extends GlobalOptions, ServerOptions {
  name: string;
  version?: number;
  finish: boolean;
  rollback: boolean;
  'delete-backups': boolean;
}

export function upgradeCommand(context: Context): CommandModule<GlobalOptions, UpgradeOptions> {
  return {
    command: 'upgrade <name>',
    describe: 'move a database to a newer Postgres major (dump and restore into a new container); --finish removes the old one, --rollback switches back',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('version', { type: 'number', requiresArg: true, describe: 'the newer Postgres major, e.g. 18' })
        .option('finish', { type: 'boolean', default: false, describe: 'remove the old cluster the last upgrade kept' })
        .option('rollback', { type: 'boolean', default: false, describe: 'switch back to the old cluster (what was written since the upgrade is lost)' })
        .option('delete-backups', {
          type: 'boolean',
          default: false,
          describe: 'with --finish or --rollback: delete the removed cluster\'s backups now (kept until they expire otherwise)',
        })
        .check((argv) => checkName(argv.name) && checkMode(argv.version, argv.finish, argv.rollback) && checkDeleteBackups(argv['delete-backups'], argv.version))
        .example('$0 upgrade shop --version 18', 'the database refuses connections while it is copied')
        .example('$0 upgrade shop --finish', 'once the new major works for you')
        .strict(),
    handler: (argv) => upgrade(context, argv),
  };
}

function checkMode(version: number | undefined, finish: boolean, rollback: boolean): true {
  const modes = [version !== undefined, finish, rollback].filter(Boolean).length;
  if (modes !== 1) throw new Error('give exactly one of --version <major>, --finish and --rollback');
  if (version !== undefined && !(Number.isInteger(version) && version > 0)) throw new Error('--version must be a Postgres major version, e.g. 18');
  return true;
}

function checkDeleteBackups(deleteBackups: boolean, version: number | undefined): true {
  if (deleteBackups && version !== undefined) throw new Error('--delete-backups goes with --finish or --rollback, not with --version');
  return true;
}

function keptNote(kept: boolean): string {
  return kept ? `; its backups are kept until they expire (\`pgdb backups --destroyed\` lists them; a restore to a moment before the switch finds them)` : '';
}

async function upgrade(context: Context, argv: ArgumentsCamelCase<UpgradeOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  if (argv.finish) {
    const done = await client.upgradeFinish(argv.name, argv.deleteBackups);
    context.stdout.write(
      argv.json ? formatJson(done) : `${done.name}: removed the old cluster (volume ${done.removed_volume})${keptNote(done.backups_kept)}; it runs Postgres ${done.postgres_version}\n`,
    );
    return;
  }
  if (argv.rollback) {
    const back = await whileWaiting(context.stderr, `switching ${argv.name} back`, client.upgradeRollback(argv.name, argv.deleteBackups));
    context.stdout.write(
      argv.json ? formatJson(back) : `${back.name}: back on Postgres ${back.postgres_version} (port ${back.port}); the newer cluster was removed${keptNote(back.backups_kept)}\n`,
    );
    return;
  }
  const info = await client.info(argv.name, false);
  const size = info.data_bytes === null ? '' : ` (${formatBytes(info.data_bytes)} of data)`;
  // Said before it starts, on stderr (stdout stays for the result).
  context.stderr.write(
    `upgrading ${argv.name} from Postgres ${info.postgres_version} to ${argv.version}: it refuses connections from the start of the copy${size} ` +
      'until the new cluster has the same row counts and serves on the same port (about as long as pg_dump and pg_restore of it take)\n',
  );
  const result = await whileWaiting(context.stderr, `upgrading ${argv.name}`, client.upgrade(argv.name, argv.version!));
  if (argv.json) {
    context.stdout.write(formatJson(result));
    return;
  }
  context.stderr.write(
    `${result.name}: Postgres ${result.from_version} -> ${result.to_version}, ${result.tables} table(s) and ${result.rows} row(s) checked, ` +
      `${result.downtime_seconds}s of downtime; the old cluster is kept stopped: \`pgdb upgrade ${result.name} --finish\` removes it, --rollback switches back\n`,
  );
  context.stdout.write(`DATABASE_URL: ${result.database_url}\n`);
}
