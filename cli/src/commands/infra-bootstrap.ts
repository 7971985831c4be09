import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { checkStackName, DAEMON_ENV_ALLOWED, parseDaemonEnv } from '../../../infra/options.js';
import type { Context } from '../context.js';
import { withInfra } from '../infra.js';
import { formatJson } from '../output.js';
import { withStackOption } from './infra.js';
import type { GlobalOptions } from './options.js';

interface BootstrapOptions extends GlobalOptions {
  name: string;
  'daemon-env'?: string[];
  json: boolean;
}

export function infraBootstrapCommand(context: Context): CommandModule<GlobalOptions, BootstrapOptions> {
  return {
    command: 'bootstrap',
    describe: "install (or upgrade) pgdbd on the stack's server over SSH, and store it as a server alias",
    builder: (yargs: Argv<GlobalOptions>) =>
      withStackOption(yargs)
        .option('daemon-env', {
          type: 'string',
          array: true,
          requiresArg: true,
          describe: `extra pgdbd settings for install.sh, KEY=VALUE (${DAEMON_ENV_ALLOWED.join(', ')}) [default: as before]`,
        })
        .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout (includes the token)' })
        .check((argv) => {
          checkStackName(argv.name);
          parseDaemonEnv(argv['daemon-env'] ?? []);
          return true;
        })
        .example('$0 infra bootstrap', 'install pgdbd on the server of the stack "pgdb"; then `pgdb deploy --server pgdb`')
        .strict(),
    handler: (argv) => bootstrap(context, argv),
  };
}

async function bootstrap(context: Context, argv: ArgumentsCamelCase<BootstrapOptions>): Promise<void> {
  const daemonEnv = argv['daemon-env'] === undefined ? undefined : parseDaemonEnv(argv['daemon-env']);
  const result = await withInfra(context, argv.verbose, ({ infra, context: infraContext }) =>
    infra.bootstrap(infraContext, { stack: argv.name, daemonEnv }),
  );
  const path = context.environment.configPath;
  const entry = {
    url: result.url,
    token: result.token,
    ...(result.caCert ? { ca_cert: result.caCert, ca_fingerprint: result.caFingerprint } : {}),
  };
  const { readConfig, setServer, writeConfig } = await import('../config.js');
  await writeConfig(path, setServer(await readConfig(path), argv.name, entry));
  if (argv.json) {
    context.stdout.write(
      formatJson({ ...result.outputs, alias: argv.name, url: result.url, token: result.token, ca_fingerprint: result.caFingerprint ?? null, release: result.releaseId, changes: result.changes }),
    );
    return;
  }
  context.stdout.write(
    [
      `pgdbd answers on ${result.url} (release ${result.releaseId}; ${result.summary})`,
      ...(result.caFingerprint ? [`its CA: ${result.caFingerprint}`] : []),
      `saved as server "${argv.name}" (URL and token) in ${path}`,
      `next: pgdb deploy --server ${argv.name}`,
      '',
    ].join('\n'),
  );
}
