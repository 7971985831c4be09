import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { cliVersion } from '../cli-version.js';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { connect, type GlobalOptions, type ServerOptions } from './options.js';

export { cliVersion } from '../cli-version.js';

interface VersionOptions extends GlobalOptions, Omit<ServerOptions, 'server'> {
  /** `--server` alone: the default server; `--server <alias|url>`: that one; absent: no request. */
  server?: string;
}

/** `pgdb version`, which `pgdb --version` also runs (deploy has its own --version, the Postgres major). */
export function versionCommand(context: Context): CommandModule<GlobalOptions, VersionOptions> {
  return {
    command: 'version',
    describe: "print the CLI's version; with --server, the daemon's too (pgdb --version works as well)",
    builder: (yargs: Argv<GlobalOptions>) =>
      yargs
        .option('server', { type: 'string', describe: "also ask this server (alias or URL; alone: the default server) for the daemon's version" })
        .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout' })
        .option('insecure', { type: 'boolean', default: false, describe: 'allow plain http:// to a host that is not loopback' })
        .example('$0 --version', 'the CLI')
        .example('$0 --version --server', 'the CLI and the default server')
        .strict() as Argv<VersionOptions>,
    handler: (argv) => version(context, argv),
  };
}

async function version(context: Context, argv: ArgumentsCamelCase<VersionOptions>): Promise<void> {
  const cli = cliVersion();
  if (argv.server === undefined) {
    context.stdout.write(argv.json ? formatJson({ cli }) : `pgdb ${cli}\n`);
    return;
  }
  const { server, client } = await connect(context, { ...argv, server: argv.server === '' ? undefined : argv.server });
  const health = await client.health();
  if (argv.json) {
    context.stdout.write(formatJson({ cli, server: { url: server.url, version: health.version } }));
    return;
  }
  context.stdout.write(`pgdb ${cli}\npgdbd ${health.version} at ${server.url}\n`);
}
