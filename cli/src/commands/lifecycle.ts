/** `pgdb stop`, `pgdb start` and `pgdb restart`: one shape, three commands. */
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { LifecycleAction, LifecycleResponse } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { whileWaiting } from '../progress.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface LifecycleOptions extends GlobalOptions, ServerOptions {
  name: string;
}

const DESCRIPTIONS: Record<LifecycleAction, string> = {
  stop: 'stop a database; it keeps its data and port, and stays stopped (even across reboots) until `pgdb start`',
  start: 'start a stopped database on its port; starting a running one changes nothing',
  restart: 'restart a database (its clients reconnect); a stopped one is started',
};

const DOING: Record<LifecycleAction, string> = { stop: 'stopping', start: 'starting', restart: 'restarting' };

export function lifecycleCommand(context: Context, action: LifecycleAction): CommandModule<GlobalOptions, LifecycleOptions> {
  return {
    command: `${action} <name>`,
    describe: DESCRIPTIONS[action],
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .check((argv) => checkName(argv.name))
        .example(`$0 ${action} shop`, '')
        .strict(),
    handler: (argv) => run(context, argv, action),
  };
}

async function run(context: Context, argv: ArgumentsCamelCase<LifecycleOptions>, action: LifecycleAction): Promise<void> {
  const { server, client } = await connect(context, argv);
  const request = client.lifecycle(argv.name, action);
  const response = await (argv.verbose || argv.json ? request : whileWaiting(context.stderr, `${DOING[action]} ${argv.name} on ${server.url}`, request));
  context.stdout.write(argv.json ? formatJson(response) : summary(response));
}

function summary(response: LifecycleResponse): string {
  if (!response.changed) return `${response.name} was already ${response.state} (port ${response.port})\n`;
  const done = { stop: 'stopped', start: 'started', restart: 'restarted' }[response.action];
  return `${done} ${response.name} (port ${response.port})\n`;
}
