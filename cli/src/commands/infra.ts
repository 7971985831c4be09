import type { Argv, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { infraBootstrapCommand } from './infra-bootstrap.js';
import { infraDestroyCommand } from './infra-destroy.js';
import { infraInitCommand } from './infra-init.js';
import { infraStatusCommand } from './infra-status.js';
import type { GlobalOptions } from './options.js';

export function infraCommand(context: Context): CommandModule<GlobalOptions, GlobalOptions> {
  return {
    command: 'infra',
    describe: 'create a Hetzner Cloud server for pgdbd and install it there (Pulumi)',
    builder: (yargs: Argv<GlobalOptions>) =>
      yargs
        .command(infraInitCommand(context))
        .command(infraBootstrapCommand(context))
        .command(infraStatusCommand(context))
        .command(infraDestroyCommand(context))
        .demandCommand(1, 'choose an infra command')
        .epilogue(
          [
            'Hetzner token: HCLOUD_TOKEN, else `pgdb config set hcloud.token -` (reads standard input).',
            'State: a Pulumi file backend under the config directory, or PULUMI_BACKEND_URL;',
            'secrets encrypted with PULUMI_CONFIG_PASSPHRASE, else a passphrase pgdb generates (0600).',
          ].join('\n'),
        )
        .strict(),
    handler: () => undefined,
  };
}

/** --name: the stack, also the server alias in the CLI config. */
export function withStackOption<T>(yargs: Argv<T>): Argv<T & { name: string }> {
  return yargs.option('name', {
    type: 'string',
    requiresArg: true,
    default: 'pgdb',
    describe: 'the stack: one server, its volume and firewall; also the server alias `bootstrap` stores',
  }) as Argv<T & { name: string }>;
}
