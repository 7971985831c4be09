import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { checkStackName } from '../../../infra/options.js';
import type { Context } from '../context.js';
import { withInfra } from '../infra.js';
import { formatJson } from '../output.js';
import { withStackOption } from './infra.js';
import type { GlobalOptions } from './options.js';

interface StatusOptions extends GlobalOptions {
  name: string;
  refresh: boolean;
  json: boolean;
}

export function infraStatusCommand(context: Context): CommandModule<GlobalOptions, StatusOptions> {
  return {
    command: 'status',
    describe: "the stack's outputs, and whether pgdbd answers",
    builder: (yargs: Argv<GlobalOptions>) =>
      withStackOption(yargs)
        .option('refresh', { type: 'boolean', default: false, describe: 'first compare the state with Hetzner Cloud and report drift' })
        .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout' })
        .check((argv) => checkStackName(argv.name) !== undefined)
        .strict(),
    handler: (argv) => status(context, argv),
  };
}

async function status(context: Context, argv: ArgumentsCamelCase<StatusOptions>): Promise<void> {
  const result = await withInfra(context, argv.verbose, ({ infra, context: infraContext }) =>
    infra.status(infraContext, { stack: argv.name, refresh: argv.refresh }),
  );
  if (argv.json) {
    context.stdout.write(formatJson({ ...result.outputs, daemon: result.daemon, ...(result.drift ? { drift: result.drift.changes } : {}) }));
    return;
  }
  const o = result.outputs;
  context.stdout.write(
    [
      `stack:     ${o.stack}`,
      `server:    ${o.server_name ?? '-'} (id ${o.server_id ?? '-'}, ${o.server_type} in ${o.location})`,
      `ipv4:      ${o.ipv4 ?? '-'}`,
      `ipv6:      ${o.ipv6 ?? '-'}`,
      `volume:    id ${o.volume_id} at ${o.volume_device}`,
      `pgdbd:     ${result.daemon.answers ? 'answers' : 'does not answer'} at ${result.daemon.url} (${result.daemon.detail})`,
      ...(result.drift ? [`drift:     ${result.drift.summary}`] : []),
      '',
    ].join('\n'),
  );
}
