/**
 * Options and set-up shared by the commands that talk to a daemon.
 */
import type { Argv } from 'yargs';
import { validateName } from '../../../daemon/src/contract/api.js';
import type { Context } from '../context.js';
import { DaemonClient } from '../http.js';
import { resolveServer, type Server } from '../servers.js';

export interface GlobalOptions {
  verbose: boolean;
}

export interface ServerOptions {
  server?: string;
  json: boolean;
}

export function withServerOptions<T>(yargs: Argv<T>): Argv<T & ServerOptions> {
  return yargs
    .option('server', {
      type: 'string',
      requiresArg: true,
      describe: 'server alias from the config, or a daemon URL [default: PGDB_SERVER_URL, then server.default]',
    })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout' });
}

/** A yargs check: the name must be one the daemon accepts. */
export function checkName(name: string | undefined): true {
  const problem = name === undefined ? undefined : validateName(name);
  if (problem) {
    throw new Error(`invalid database name "${name}": ${problem}`);
  }
  return true;
}

/** Resolves the server for this invocation and a client for it; --verbose logs to stderr. */
export async function connect(
  context: Context,
  argv: GlobalOptions & ServerOptions,
): Promise<{ server: Server; client: DaemonClient }> {
  const server = await resolveServer(context.environment, argv.server);
  if (!argv.verbose) {
    return { server, client: new DaemonClient(server) };
  }
  const log = (line: string) => context.stderr.write(`pgdb: ${line}\n`);
  log(`server ${server.url} (from ${server.urlSource}), token from ${server.tokenSource}`);
  return { server, client: new DaemonClient(server, log) };
}
