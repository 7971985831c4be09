import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { checkStackName } from '../../../infra/options.js';
import type { Context } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { withInfra } from '../infra.js';
import { formatJson } from '../output.js';
import { withStackOption } from './infra.js';
import type { GlobalOptions } from './options.js';

interface DestroyOptions extends GlobalOptions {
  name: string;
  yes: boolean;
  'delete-volume': boolean;
  json: boolean;
}

export function infraDestroyCommand(context: Context): CommandModule<GlobalOptions, DestroyOptions> {
  return {
    command: 'destroy',
    describe: "remove the stack's server, firewall and SSH key; the volume and its data are kept unless --delete-volume",
    builder: (yargs: Argv<GlobalOptions>) =>
      withStackOption(yargs)
        .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask; required when stdin is not a terminal and with --json' })
        .option('delete-volume', { type: 'boolean', default: false, describe: 'also delete the volume and ALL the databases on it' })
        .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout' })
        .check((argv) => checkStackName(argv.name) !== undefined)
        .example('$0 infra destroy --name pgdb', 'asks you to type "pgdb", then removes the server; the volume stays')
        .strict(),
    handler: (argv) => destroy(context, argv),
  };
}

async function destroy(context: Context, argv: ArgumentsCamelCase<DestroyOptions>): Promise<void> {
  const mayAsk = !argv.json && context.stdin.isTTY === true;
  if (!argv.yes && !mayAsk) {
    throw new UsageError(`refusing to destroy the stack "${argv.name}" without --yes`, {
      hint: 'pgdb asks for confirmation only on a terminal and never with --json; pass --yes to go ahead',
    });
  }
  if (!argv.yes) {
    const what = argv.deleteVolume ? 'its server, firewall, SSH key AND THE VOLUME WITH ALL DATABASES' : 'its server, firewall and SSH key (the volume is kept)';
    const question = `This removes the stack "${argv.name}": ${what}.\nType the stack name to confirm: `;
    const { confirmByTyping } = await import('../prompt.js');
    if (!(await confirmByTyping(context.stdin, context.stderr, question, argv.name))) {
      throw new CliError('aborted: the name you typed does not match; nothing was removed');
    }
  }
  const result = await withInfra(context, argv.verbose, ({ infra, context: infraContext }) =>
    infra.destroy(infraContext, { stack: argv.name, deleteVolume: argv.deleteVolume }),
  );
  // The alias bootstrap stored now points at nothing.
  const path = context.environment.configPath;
  const { readConfig, removeServer, serverEntry, writeConfig } = await import('../config.js');
  const config = await readConfig(path);
  const alias = serverEntry(config, argv.name);
  const removedAlias = alias !== undefined && result.api_url !== undefined && new URL(alias.url).hostname === new URL(result.api_url).hostname;
  if (removedAlias) await writeConfig(path, removeServer(config, argv.name));
  if (argv.json) {
    context.stdout.write(formatJson({ stack: argv.name, volume_kept: result.volume_kept, alias_removed: removedAlias, changes: result.changes }));
    return;
  }
  context.stdout.write(
    [
      `destroyed the stack "${argv.name}" (${result.summary})`,
      result.volume_kept ? `the volume and its data were kept; \`pgdb infra init --name ${argv.name}\` attaches it to a new server` : 'the volume was deleted',
      ...(removedAlias ? [`removed the server alias "${argv.name}" from ${path}`] : []),
      '',
    ].join('\n'),
  );
}
