import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { withSsl } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface UrlOptions extends GlobalOptions, ServerOptions {
  name: string;
  verify: boolean;
}

export function urlCommand(context: Context): CommandModule<GlobalOptions, UrlOptions> {
  return {
    command: 'url <name>',
    describe: "print a database's URL (with its password) and nothing else, for scripts",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('verify', {
          type: 'boolean',
          default: false,
          describe: "print a URL that verifies the server (sslmode=verify-full), saving the server's CA first",
        })
        .check((argv) => checkName(argv.name))
        .example('export DATABASE_URL="$($0 url shop)"', 'hand the URL to an application')
        .strict(),
    handler: (argv) => url(context, argv),
  };
}

async function url(context: Context, argv: ArgumentsCamelCase<UrlOptions>): Promise<void> {
  const connection = await connect(context, argv);
  let response = await connection.client.url(argv.name);
  if (argv.verify) {
    const { saveServerCa } = await import('../server-ca.js');
    const ca = await saveServerCa(context, connection, undefined);
    response = { ...response, database_url: withSsl(response.database_url, { sslmode: 'verify-full', sslrootcert: ca.sslrootcert }) };
  }
  context.stdout.write(argv.json ? formatJson(response) : `${response.database_url}\n`);
}
