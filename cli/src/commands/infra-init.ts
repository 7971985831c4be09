import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import {
  checkLocation,
  checkSlug,
  checkStackName,
  checkVolumeSize,
  DEFAULTS,
  normalizeCidrs,
  RESIZE_DOWNTIME,
} from '../../../infra/options.js';
import type { Context } from '../context.js';
import { withInfra } from '../infra.js';
import { formatJson } from '../output.js';
import { withStackOption } from './infra.js';
import type { GlobalOptions } from './options.js';

interface InitOptions extends GlobalOptions {
  name: string;
  location?: string;
  type?: string;
  image?: string;
  'volume-size'?: number;
  'ssh-key'?: string;
  'allow-ssh'?: string[];
  'allow-api'?: string[];
  'allow-postgres'?: string[];
  yes: boolean;
  json: boolean;
}

const list = (values: readonly string[]) => (values.length ? values.join(' ') : 'none');

export function infraInitCommand(context: Context): CommandModule<GlobalOptions, InitOptions> {
  return {
    command: 'init',
    describe: 'create or update the server, its volume, firewall and SSH key on Hetzner Cloud',
    builder: (yargs: Argv<GlobalOptions>) =>
      withStackOption(yargs)
        // No yargs defaults: a flag left out keeps the stack's current value (the default the first time).
        .option('location', { type: 'string', requiresArg: true, describe: `Hetzner location [default: ${DEFAULTS.location}]` })
        .option('type', { type: 'string', requiresArg: true, describe: `server type [default: ${DEFAULTS.serverType}]` })
        .option('image', { type: 'string', requiresArg: true, describe: `server image [default: ${DEFAULTS.image}]` })
        .option('volume-size', { type: 'number', requiresArg: true, describe: `data volume size in GB [default: ${DEFAULTS.volumeSizeGb}]` })
        .option('ssh-key', {
          type: 'string',
          requiresArg: true,
          describe: 'OpenSSH public key file for root; its private half must sit beside it [default: a key pgdb generates for the stack]',
        })
        .option('allow-ssh', { type: 'string', array: true, requiresArg: true, describe: `CIDRs allowed to SSH (port 22) [default: ${list(DEFAULTS.allowSsh)}]` })
        .option('allow-api', { type: 'string', array: true, requiresArg: true, describe: `CIDRs allowed to the pgdbd API (port 8080) [default: ${list(DEFAULTS.allowApi)}]` })
        .option('allow-postgres', {
          type: 'string',
          array: true,
          requiresArg: true,
          describe: `CIDRs allowed to the databases (ports ${DEFAULTS.postgresPorts}) [default: ${list(DEFAULTS.allowPostgres)}]`,
        })
        .option('yes', {
          type: 'boolean',
          default: false,
          describe: `agree to resize an existing server when --type changes: it is shut down and started again (${RESIZE_DOWNTIME} down)`,
        })
        .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout' })
        .check((argv) => {
          checkStackName(argv.name);
          if (argv.location !== undefined) checkLocation(argv.location);
          if (argv.type !== undefined) checkSlug('--type', argv.type);
          if (argv.image !== undefined) checkSlug('--image', argv.image);
          if (argv['volume-size'] !== undefined) checkVolumeSize(argv['volume-size']);
          for (const flag of ['allow-ssh', 'allow-api', 'allow-postgres'] as const) normalizeCidrs(`--${flag}`, argv[flag] ?? []);
          return true;
        })
        .example('$0 infra init --allow-ssh 203.0.113.7/32 --allow-api 203.0.113.7/32', 'a server named pgdb reachable from one address')
        .example('$0 infra init --name prod --type cpx31 --volume-size 100 --json', 'another stack, as JSON')
        .example('$0 infra init --name prod --type cx32 --yes', 'resize the server of stack prod in place (downtime)')
        .strict(),
    handler: (argv) => init(context, argv),
  };
}

async function init(context: Context, argv: ArgumentsCamelCase<InitOptions>): Promise<void> {
  const cidrs = (flag: 'allow-ssh' | 'allow-api' | 'allow-postgres') =>
    argv[flag] === undefined ? undefined : normalizeCidrs(`--${flag}`, argv[flag]);
  const result = await withInfra(context, argv.verbose, ({ infra, context: infraContext }) =>
    infra.init(infraContext, {
      stack: argv.name,
      location: argv.location,
      serverType: argv.type,
      image: argv.image,
      volumeSizeGb: argv['volume-size'],
      sshKeyPath: argv['ssh-key'],
      allowSsh: cidrs('allow-ssh'),
      allowApi: cidrs('allow-api'),
      allowPostgres: cidrs('allow-postgres'),
      resize: argv.yes,
    }),
  );
  if (argv.json) {
    context.stdout.write(formatJson({ ...result.outputs, changes: result.changes, ...(result.resize ? { resize: result.resize } : {}) }));
    return;
  }
  const o = result.outputs;
  const r = result.resize;
  context.stdout.write(
    [
      ...(r
        ? [
            `resized:   ${r.from} -> ${r.to}, down ${(r.downtime_ms / 1000).toFixed(0)} s${r.databases === null ? '' : ` (pgdbd and ${r.databases} database${r.databases === 1 ? '' : 's'} back)`}${r.clean_shutdown ? '' : '; the power was cut after 2 minutes'}`,
          ]
        : []),
      `stack:     ${o.stack} (${result.summary})`,
      `server:    ${o.server_name} (id ${o.server_id}, ${o.server_type} in ${o.location})`,
      `ipv4:      ${o.ipv4}`,
      `ipv6:      ${o.ipv6}`,
      `volume:    id ${o.volume_id} at ${o.volume_device}`,
      `firewall:  id ${o.firewall_id}`,
      o.bootstrapped ? `pgdbd:     installed; \`pgdb status --server ${o.stack}\`` : `next:      pgdb infra bootstrap --name ${o.stack}`,
      '',
    ].join('\n'),
  );
}
