/**
 * Options and set-up shared by the commands that talk to a daemon. What
 * opens a connection (http, tls, crypto, the config file) is imported when
 * a command connects, never when arguments are only parsed or help printed.
 */
import type { Argv } from 'yargs';
import { validateName } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { checkFingerprintOption } from '../fingerprint.js';
import type { DaemonClient } from '../http.js';
import type { Server, Target } from '../servers.js';
import type { ServerTrust } from '../trust.js';

export interface GlobalOptions {
  verbose: boolean;
}

export interface ServerOptions {
  server?: string;
  json: boolean;
  insecure: boolean;
  'trust-fingerprint'?: string;
  'ca-file'?: string;
}

export function withServerOptions<T>(yargs: Argv<T>): Argv<T & ServerOptions> {
  return yargs
    .option('server', {
      type: 'string',
      requiresArg: true,
      describe: 'server alias from the config, or a daemon URL [default: PGDB_SERVER_URL, then server.default]',
    })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout' })
    .option('trust-fingerprint', {
      type: 'string',
      requiresArg: true,
      describe: "pin the server's CA without asking if it has this fingerprint (sha256:..., as install.sh prints it)",
    })
    .option('ca-file', {
      type: 'string',
      requiresArg: true,
      describe: "pin the CA in this PEM file (a copy of the server's /var/lib/pgdb/tls/ca.crt)",
    })
    .option('insecure', {
      type: 'boolean',
      default: false,
      describe: 'allow plain http:// to a host that is not loopback: the token crosses the network unencrypted',
    })
    .check((argv) => {
      checkFingerprintOption(argv['trust-fingerprint']);
      return true;
    });
}

/** A yargs check: the name must be one the daemon accepts. */
export function checkName(name: string | undefined): true {
  const problem = name === undefined ? undefined : validateName(name);
  if (problem) {
    throw new Error(`invalid database name "${name}": ${problem}`);
  }
  return true;
}

export interface Connection<T extends Target = Server> {
  server: T;
  trust: ServerTrust;
  client: DaemonClient;
}

/**
 * Resolves the server for this invocation, decides how far to trust it (no
 * connection is opened when it must not be reached) and returns a client;
 * --verbose logs to stderr.
 */
export async function connect(context: Context, argv: GlobalOptions & ServerOptions): Promise<Connection> {
  const { openConnection } = await import('../connection.js');
  return openConnection(context, argv, 'with-token');
}

/** The same for commands that send no token (`pgdb ca`). */
export async function connectWithoutToken(context: Context, argv: GlobalOptions & ServerOptions): Promise<Connection<Target>> {
  const { openConnection } = await import('../connection.js');
  return openConnection(context, argv, 'without-token');
}
