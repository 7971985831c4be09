import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface UrlOptions extends GlobalOptions, ServerOptions {
  name: string;
}

export function urlCommand(context: Context): CommandModule<GlobalOptions, UrlOptions> {
  return {
    command: 'url <name>',
    describe: "print a database's URL (with its password) and nothing else, for scripts",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .check((argv) => checkName(argv.name))
        .example('export DATABASE_URL="$($0 url shop)"', 'hand the URL to an application')
        .strict(),
    handler: (argv) => url(context, argv),
  };
}

async function url(context: Context, argv: ArgumentsCamelCase<UrlOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  const response = await client.url(argv.name);
  context.stdout.write(argv.json ? formatJson(response) : `${response.database_url}\n`);
}
