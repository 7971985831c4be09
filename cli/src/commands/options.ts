/**
 * Options and set-up shared by the commands that talk to a daemon.
 */
import type { Argv } from 'yargs';
import { validateName } from '../../../daemon/src/contract/api.js';
import type { Context } from '../context.js';
import { DaemonClient } from '../http.js';
import { resolveServer, resolveTarget, type Server, type Target } from '../servers.js';
import { checkFingerprintOption, ServerTrust } from '../trust.js';

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
  return open(context, argv, await resolveServer(context.environment, argv.server));
}

/** The same for commands that send no token (`pgdb ca`). */
export async function connectWithoutToken(context: Context, argv: GlobalOptions & ServerOptions): Promise<Connection<Target>> {
  return open(context, argv, await resolveTarget(context.environment, argv.server));
}

async function open<T extends Target>(context: Context, argv: GlobalOptions & ServerOptions, server: T): Promise<Connection<T>> {
  const log = argv.verbose ? (line: string) => void context.stderr.write(`pgdb: ${line}\n`) : () => undefined;
  const token = 'tokenSource' in server ? `, token from ${String(server.tokenSource)}` : '';
  log(`server ${server.url} (from ${server.urlSource})${token}`);
  const trust = await ServerTrust.establish(
    context,
    server,
    {
      insecure: argv.insecure,
      trustFingerprint: checkFingerprintOption(argv['trust-fingerprint']),
      caFile: argv['ca-file'],
      mayAsk: !argv.json,
    },
    log,
  );
  return { server, trust, client: new DaemonClient(server, trust, log) };
}
