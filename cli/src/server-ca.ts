/**
 * The CA a server's databases are verified with, saved to a file for
 * `sslmode=verify-full&sslrootcert=<file>`: what `pgdb ca` and
 * `pgdb deploy --verify` use.
 *
 * Over https the file holds the pinned CA, which the API connection was just
 * verified against. Over plain HTTP (loopback, or --insecure) it is fetched
 * from `GET /v1/ca` and must match the fingerprint the daemon reports (and
 * --trust-fingerprint, when given). pgdbd's ACME certificate needs no file:
 * clients use the system's roots (`sslrootcert=system`). With the operator's
 * certificate on the API, the databases carry the own CA's certificates
 * (the operator's key stays with the API), so the own CA is saved then too.
 */
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import type { TlsSummary } from '../../contract/api.js';
import type { Connection } from './commands/options.js';
import type { Context } from './context.js';
import { CliError } from './errors.js';
import type { Target } from './servers.js';
import { fingerprintOf, isLoopbackHost, parseCertificate } from './tls.js';

export type ServerCa =
  | { source: 'own-ca' | 'operator'; path: string; fingerprint: string; sslrootcert: string }
  | { source: 'acme'; path: null; fingerprint: null; sslrootcert: 'system' };

/** Where `pgdb ca` saves a server's CA by default: next to the config file, one file per alias or origin. */
export function defaultCaPath(configPath: string, target: Target): string {
  const slot = target.pinSlot;
  const name = 'alias' in slot ? slot.alias : new URL(slot.origin).host.replace(/[^A-Za-z0-9.-]+/g, '_');
  return join(dirname(configPath), 'ca', `${name}.pem`);
}

/** Learns how the server's databases are verified and, for its own CA, saves it to `out` (or the default path). */
export async function saveServerCa(context: Context, connection: Connection<Target>, out: string | undefined): Promise<ServerCa> {
  const { server, trust, client } = connection;
  const health = await client.publicHealth();
  const tls: TlsSummary | undefined = health.tls;
  if (!tls) {
    throw new CliError(`pgdbd at ${server.url} reports no TLS settings`, {
      hint: 'this daemon predates TLS; upgrade it (scripts/install.sh) to get verifiable database connections',
    });
  }
  if (tls.source === 'acme') {
    return { source: tls.source, path: null, fingerprint: null, sslrootcert: 'system' };
  }
  let pem = trust.ca;
  if (pem === undefined) {
    pem = await client.ca();
  }
  const parsed = parseCertificate(pem);
  if (!parsed) {
    throw new CliError(`${server.url} did not answer like pgdbd: GET /v1/ca gave no certificate`, {
      hint: `check that ${server.urlSource} points at pgdbd's API port`,
    });
  }
  const fingerprint = fingerprintOf(parsed.certificate);
  if (fingerprint !== tls.ca_fingerprint) {
    throw new CliError(`${server.url} reports the CA ${tls.ca_fingerprint}, but ${trust.ca ? 'its API certificate is issued by' : 'GET /v1/ca gave'} ${fingerprint}`, {
      hint: 'the daemon may have been given a new CA while running: restart it (systemctl restart pgdbd) and try again',
    });
  }
  const expected = trust.options.trustFingerprint;
  if (trust.ca === undefined && expected !== undefined && expected !== fingerprint) {
    throw new CliError(`${server.url} serves the CA ${fingerprint}, not the ${expected} given with --trust-fingerprint; nothing was saved`, {
      hint: 'someone may be intercepting the connection: plain HTTP cannot prove who answered',
    });
  }
  if (trust.ca === undefined && expected === undefined && !isLoopbackHost(new URL(server.url).hostname)) {
    context.stderr.write(
      `warning: the CA came over plain HTTP (--insecure) and is unverified; compare ${fingerprint} with the server's, or pass --trust-fingerprint\n`,
    );
  }
  const path = resolve(out ?? defaultCaPath(context.environment.configPath, server));
  await writePublicFile(path, parsed.pem);
  return { source: tls.source, path, fingerprint, sslrootcert: path };
}

/** A certificate is public: mode 0644, replaced atomically. */
async function writePublicFile(path: string, text: string): Promise<void> {
  const { mkdir, rename, unlink, writeFile } = process.getBuiltinModule('node:fs/promises');
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(temp, text, { mode: 0o644, flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new CliError(`cannot write ${path}: ${(error as Error).message}`, {
      hint: 'choose another file with --out, or check that its directory is writable',
      cause: error,
    });
  }
}
