/**
 * Opens a connection to a daemon for a command (see connect() in
 * commands/options.ts, which loads this module only when a command connects).
 */
import type { Connection, GlobalOptions, ServerOptions } from './commands/options.js';
import type { Context } from './context.js';
import { checkFingerprintOption } from './fingerprint.js';
import { DaemonClient } from './http.js';
import { resolveServer, resolveTarget, type Server, type Target } from './servers.js';
import { ServerTrust } from './trust.js';

export async function openConnection(context: Context, argv: GlobalOptions & ServerOptions, token: 'with-token'): Promise<Connection<Server>>;
export async function openConnection(context: Context, argv: GlobalOptions & ServerOptions, token: 'without-token'): Promise<Connection<Target>>;
export async function openConnection(
  context: Context,
  argv: GlobalOptions & ServerOptions,
  token: 'with-token' | 'without-token',
): Promise<Connection<Target>> {
  const server = token === 'with-token'
    ? await resolveServer(context.environment, argv.server)
    : await resolveTarget(context.environment, argv.server);
  return open(context, argv, server);
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
