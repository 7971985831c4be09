import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { formatJson } from '../output.js';
import type { Server } from '../servers.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface DestroyOptions extends GlobalOptions, ServerOptions {
  name: string;
  'keep-data': boolean;
  'delete-backups': boolean;
  yes: boolean;
}

type Parsed = ArgumentsCamelCase<DestroyOptions>;

export function destroyCommand(context: Context): CommandModule<GlobalOptions, DestroyOptions> {
  return {
    command: 'destroy <name>',
    describe: 'remove a database: its container, and its data unless --keep-data',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database to remove' })
        .option('keep-data', { type: 'boolean', default: false, describe: 'keep the data volume on the server' })
        .option('delete-backups', {
          type: 'boolean',
          default: false,
          describe: 'delete its backups too (kept until they expire otherwise, so that `pgdb restore` can undo the destroy)',
        })
        .option('yes', {
          alias: 'y',
          type: 'boolean',
          default: false,
          describe: 'do not ask; required when stdin is not a terminal and with --json',
        })
        .check((argv) => checkName(argv.name))
        .example('$0 destroy shop', 'asks you to type "shop", then removes it and its data')
        .example('$0 destroy shop --keep-data --yes', 'removes it without asking and keeps its data volume')
        .strict(),
    handler: (argv) => destroy(context, argv),
  };
}

async function destroy(context: Context, argv: Parsed): Promise<void> {
  const mayAsk = !argv.json && context.stdin.isTTY === true;
  if (!argv.yes && !mayAsk) {
    throw new UsageError(`refusing to destroy "${argv.name}" without --yes`, {
      hint: 'pgdb asks for confirmation only on a terminal and never with --json; pass --yes to go ahead',
    });
  }
  const { server, client } = await connect(context, argv);
  if (!argv.yes) {
    await confirm(context, argv, server);
  }
  const response = await client.destroy(argv.name, argv.keepData, argv.deleteBackups);
  const backupsKept = response.backups_kept === true;
  context.stdout.write(
    argv.json ? formatJson({ ok: true, name: argv.name, keep_data: argv.keepData, backups_kept: backupsKept }) : summary(argv, backupsKept),
  );
}

async function confirm(context: Context, argv: Parsed, server: Server): Promise<void> {
  const data = argv.keepData ? 'its container (the data volume is kept)' : 'its container and ALL ITS DATA';
  const what = argv.deleteBackups ? `${data}, AND ALL ITS BACKUPS` : data;
  const question = `This removes database "${argv.name}" on ${server.url}: ${what}.\nType the name to confirm: `;
  const { confirmByTyping } = await import('../prompt.js');
  if (!(await confirmByTyping(context.stdin, context.stderr, question, argv.name))) {
    throw new CliError('aborted: the name you typed does not match; nothing was removed');
  }
}

function summary(argv: Parsed, backupsKept: boolean): string {
  const kept = argv.keepData ? `; its data volume was kept (listed by \`pgdb status\`)` : '';
  const backups = backupsKept
    ? `; its backups are kept until they expire (undo with \`pgdb restore ${argv.name} --as <new name>\`)`
    : argv.deleteBackups
      ? '; its backups were deleted'
      : '';
  return `destroyed ${argv.name}${kept}${backups}\n`;
}
