import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import {
  MEMORY_MB_MAX,
  MEMORY_MB_MIN,
  SIZE_GB_MAX,
  SIZE_GB_MIN,
  withSsl,
  type DeployRequest,
} from '../../../contract/api.js';
import type { Context } from '../context.js';
import { deployOutput, formatDeploy, formatJson } from '../output.js';
import { whileWaiting } from '../progress.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface DeployOptions extends GlobalOptions, ServerOptions {
  /** The name as the argument (`pgdb deploy shop`). */
  database?: string;
  name?: string;
  size?: number;
  version?: number;
  fromVolume?: string;
  memory?: number;
  verify: boolean;
}

export function deployCommand(context: Context): CommandModule<GlobalOptions, DeployOptions> {
  return {
    command: 'deploy [database]',
    describe: 'create a Postgres database and print how to connect to it',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('database', { type: 'string', describe: 'database name [default: chosen by the server]; --name <name> works too' })
        .option('name', { type: 'string', requiresArg: true, describe: 'database name, as the argument' })
        .option('size', { type: 'number', requiresArg: true, describe: 'size of its data volume in GiB (default 10): the database cannot outgrow it; resize --size grows it' })
        .option('version', { type: 'number', requiresArg: true, describe: 'Postgres major version, e.g. 17' })
        .option('from-volume', {
          type: 'string',
          requiresArg: true,
          describe: 'reuse a kept data volume (see `pgdb status`): its data, new credentials',
        })
        .option('memory', {
          type: 'number',
          requiresArg: true,
          describe: "the container's memory limit, in MiB [default: the server's PGDB_DEFAULT_MEMORY_MB]",
        })
        .option('verify', {
          type: 'boolean',
          default: false,
          describe: "print a DATABASE_URL that verifies the server (sslmode=verify-full), saving the server's CA first",
        })
        .check(
          (argv) => checkOnce(argv.database, argv.name) && checkName(argv.database ?? argv.name) && checkSize(argv.size) && checkVersion(argv.version) && checkMemory(argv.memory),
        )
        .example('$0 deploy shop', 'create the database "shop" on the default server (also: --name shop)')
        .example('$0 deploy --json --server prod', 'create one on "prod", print JSON')
        .example('$0 deploy --memory 2048 --verify', 'a 2 GiB limit, and a URL that checks the certificate')
        .strict(),
    handler: (argv) => deploy(context, argv),
  };
}

async function deploy(context: Context, argv: ArgumentsCamelCase<DeployOptions>): Promise<void> {
  const connection = await connect(context, argv);
  const { server, client } = connection;
  // The CA is saved before the database exists, so that a failure here leaves nothing behind.
  const ca = argv.verify ? await (await import('../server-ca.js')).saveServerCa(context, connection, undefined) : undefined;
  const request = client.deploy(deployRequest(argv));
  const label = `deploying ${argv.database ?? argv.name ?? 'a new database'} on ${server.url}`;
  let response = await (argv.verbose ? request : whileWaiting(context.stderr, label, request));
  if (ca) {
    const database_url = withSsl(response.database_url, { sslmode: 'verify-full', sslrootcert: ca.sslrootcert });
    response = { ...response, database_url };
  }
  context.stdout.write(argv.json ? formatJson(deployOutput(response)) : formatDeploy(response));
}

/** Options left out stay undefined, which JSON leaves out: the daemon picks its defaults. */
function deployRequest(argv: DeployOptions): DeployRequest {
  return { name: argv.database ?? argv.name, size_gb: argv.size, version: argv.version, memory_mb: argv.memory, from_volume: argv.fromVolume };
}

function checkMemory(memory: number | undefined): true {
  if (memory !== undefined && !(Number.isInteger(memory) && memory >= MEMORY_MB_MIN && memory <= MEMORY_MB_MAX)) {
    throw new Error(`--memory must be a whole number of MiB from ${MEMORY_MB_MIN} to ${MEMORY_MB_MAX}`);
  }
  return true;
}

function checkSize(size: number | undefined): true {
  if (size !== undefined && !(Number.isInteger(size) && size >= SIZE_GB_MIN && size <= SIZE_GB_MAX)) {
    throw new Error(`--size must be a whole number of GB from ${SIZE_GB_MIN} to ${SIZE_GB_MAX}`);
  }
  return true;
}

function checkVersion(version: number | undefined): true {
  if (version !== undefined && !(Number.isInteger(version) && version > 0)) {
    throw new Error('--version must be a Postgres major version, e.g. 17');
  }
  return true;
}

/** `pgdb deploy shop --name other`: which one was meant? */
function checkOnce(argument: string | undefined, option: string | undefined): true {
  if (argument !== undefined && option !== undefined && argument !== option) {
    throw new Error(`the name is given twice (${argument} and ${option}): give it as the argument or with --name, once`);
  }
  return true;
}
