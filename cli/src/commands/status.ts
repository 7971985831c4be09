import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { formatJson, formatStatus } from '../output.js';
import { connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

type StatusOptions = GlobalOptions & ServerOptions;

export function statusCommand(context: Context): CommandModule<GlobalOptions, StatusOptions> {
  return {
    command: 'status',
    describe: 'list the databases on a server',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .example('$0 status', 'table of the databases on the default server')
        .example('$0 status --json --server prod', "the daemon's answer as JSON")
        .strict(),
    handler: (argv) => status(context, argv),
  };
}

async function status(context: Context, argv: ArgumentsCamelCase<StatusOptions>): Promise<void> {
  const { server, client } = await connect(context, argv);
  const response = await client.status();
  context.stdout.write(argv.json ? formatJson(response) : formatStatus(response, server.url));
}
