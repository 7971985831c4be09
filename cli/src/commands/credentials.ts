import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface RotateOptions extends GlobalOptions, ServerOptions {
  name: string;
  'keep-sessions': boolean;
}

export function credentialsCommand(context: Context): CommandModule<GlobalOptions, GlobalOptions> {
  return {
    command: 'credentials',
    describe: "manage a database's credentials",
    builder: (yargs: Argv<GlobalOptions>) =>
      yargs.command(rotateCommand(context)).demandCommand(1, 'choose a credentials command').strict(),
    handler: () => undefined,
  };
}

function rotateCommand(context: Context): CommandModule<GlobalOptions, RotateOptions> {
  return {
    command: 'rotate <name>',
    describe: 'give the database a new password and print the new URL; the old password stops working at once',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('keep-sessions', { type: 'boolean', default: false, describe: 'leave open connections alone (they are ended otherwise)' })
        .check((argv) => checkName(argv.name))
        .example('$0 credentials rotate shop', 'a new password; open connections are ended')
        .strict(),
    handler: (argv) => rotate(context, argv),
  };
}

async function rotate(context: Context, argv: ArgumentsCamelCase<RotateOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  const response = await client.rotate(argv.name, argv.keepSessions);
  if (argv.json) {
    context.stdout.write(formatJson(response));
    return;
  }
  const ended = argv.keepSessions ? 'open sessions were kept' : `${response.sessions_ended} open session(s) ended`;
  context.stderr.write(`rotated the credentials of ${response.name}; the old password no longer works; ${ended}\n`);
  context.stdout.write(`DATABASE_URL: ${response.database_url}\n`);
}
