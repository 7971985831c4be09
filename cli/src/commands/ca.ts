import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { connectWithoutToken, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface CaOptions extends GlobalOptions, ServerOptions {
  out?: string;
}

export function caCommand(context: Context): CommandModule<GlobalOptions, CaOptions> {
  return {
    command: 'ca',
    describe: "save the server's CA certificate, for clients that verify its databases (sslmode=verify-full)",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .option('out', {
          type: 'string',
          requiresArg: true,
          describe: 'file to write [default: ca/<alias>.pem next to the config file]',
        })
        .example('$0 ca --server prod', 'saves the CA pinned for "prod" and prints its path and fingerprint')
        .example('psql "$URL&sslmode=verify-full&sslrootcert=$(pgdb ca --json | jq -r .path)"', 'verify the server with it')
        .strict(),
    handler: (argv) => ca(context, argv),
  };
}

async function ca(context: Context, argv: ArgumentsCamelCase<CaOptions>): Promise<void> {
  const connection = await connectWithoutToken(context, argv);
  const { saveServerCa } = await import('../server-ca.js');
  const saved = await saveServerCa(context, connection, argv.out);
  if (argv.json) {
    context.stdout.write(formatJson({ server: connection.server.url, ...saved }));
    return;
  }
  if (saved.source === 'acme') {
    context.stdout.write('sslrootcert: system\n');
    context.stderr.write("note: this server uses a certificate from a public CA: clients verify it with the system's roots\n");
    return;
  }
  context.stdout.write(`path: ${saved.path}\nfingerprint: ${saved.fingerprint}\n`);
}
