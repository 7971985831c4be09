/**
 * What the CLI tells the user when a request to pgdbd fails: the daemon's
 * own message (or what went wrong on the way) plus what to do about it.
 */
import { ERROR_CODES, type ErrorCode } from '../../contract/api.js';
import { CliError } from './errors.js';
import type { Peer } from './http.js';

const UNAUTHORIZED_MESSAGE = "unauthorized: PGDB_TOKEN does not match the server's";

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed by the server',
};

export interface FailedResponse {
  status: number;
  /** The parsed JSON body, if it was JSON. */
  body: unknown;
  /** `METHOD URL`, for --verbose. */
  label: string;
}

/** The request itself failed: the daemon is down, unreachable, or too slow. */
export function requestFailed(server: Peer, error: unknown, timeoutMs: number): CliError {
  if (error instanceof Error && error.name === 'TimeoutError') {
    return new CliError(`pgdbd at ${server.url} did not answer within ${timeoutMs / 1000} s`, {
      hint: 'the server may be overloaded or a firewall may be dropping packets; check `pgdb status` and the daemon log (journalctl -u pgdbd)',
      cause: error,
    });
  }
  const reason = networkReason(error);
  if (server.url.startsWith('https:') && isNotTls(error)) {
    return new CliError(`${server.url} does not answer over TLS (https)`, {
      hint: `pgdbd serves plain HTTP when it listens on loopback only (or with PGDB_API_TLS=off): use http:// for a loopback address; the URL comes from ${server.urlSource}`,
      cause: error,
    });
  }
  const tlsHint = server.url.startsWith('http:') && reason === 'connection reset' ? '; if the daemon serves HTTPS, use https://' : '';
  return new CliError(`cannot reach pgdbd at ${server.url}: ${reason}`, {
    hint: `check that the daemon runs on the server (systemctl status pgdbd) and that no firewall blocks the port; the URL comes from ${server.urlSource}${tlsHint}`,
    cause: error,
  });
}

/** The daemon (or something in front of it) answered with a non-2xx status. */
export function responseFailed(server: Peer, response: FailedResponse): CliError {
  const error = contractError(response.body);
  const detail = `${response.label} answered HTTP ${response.status}${error ? ` (${error.code})` : ''}`;
  if (response.status === 401 || error?.code === 'UNAUTHORIZED') {
    return new CliError(UNAUTHORIZED_MESSAGE, { hint: hintFor('UNAUTHORIZED', server), detail });
  }
  if (!error) {
    return notPgdbd(server, detail);
  }
  const hint = isErrorCode(error.code)
    ? hintFor(error.code, server)
    : 'this daemon is newer than the CLI; read its log on the server (`journalctl -u pgdbd`)';
  return new CliError(error.message, { hint, detail });
}

export function notPgdbd(server: Peer, detail: string): CliError {
  return new CliError(`${server.url} did not answer like pgdbd`, {
    hint: `check that ${server.urlSource} points at pgdbd's API port, and that any proxy in front of it works`,
    detail,
  });
}

function hintFor(code: ErrorCode, server: Peer): string {
  switch (code) {
    case 'UNAUTHORIZED':
      return `the token came from ${server.tokenSource ?? 'nowhere (none was sent)'}; use the token pgdbd was started with (export PGDB_TOKEN=..., or \`pgdb config set server.${server.alias}.token <token>\`)`;
    case 'INVALID_REQUEST':
      return 'check the values you passed (see `pgdb <command> --help`)';
    case 'NOT_FOUND':
      return `${server.url} has no such API route: check that it is pgdbd and that the CLI and the daemon are the same version`;
    case 'METHOD_NOT_ALLOWED':
    case 'UNSUPPORTED_MEDIA_TYPE':
    case 'PAYLOAD_TOO_LARGE':
      return `the request did not have the shape ${server.url} expects: check that the CLI and the daemon are the same version`;
    case 'URI_TOO_LONG':
    case 'HEADERS_TOO_LARGE':
      return 'shorten the name (at most 48 characters) and check that no proxy adds large headers';
    case 'REQUEST_TIMEOUT':
      return 'the request reached the daemon too slowly: check the network between you and the server, then retry';
    case 'VOLUME_NOT_FOUND':
      return '`pgdb status` lists the kept (detached) volumes this server has';
    case 'DB_NOT_FOUND':
      return 'run `pgdb status` to list the databases on this server';
    case 'DB_ALREADY_EXISTS':
      return 'choose another --name, or remove the existing database with `pgdb destroy <name>`';
    case 'DB_BUSY':
      return 'another operation on that database is in progress: wait for it (`pgdb status` shows its state) and retry';
    case 'DB_STOPPED':
      return 'the database is stopped: start it with `pgdb start <name>`, then retry';
    case 'PORT_TAKEN':
      return 'on the server, find what listens on that port (`ss -ltnp`), stop it, and run the command again; the database keeps its port so that its URL stays valid';
    case 'DOCKER_UNAVAILABLE':
      return 'on the server, check that Docker runs (`docker ps`) and read the daemon log (`journalctl -u pgdbd`)';
    case 'IMAGE_UNAVAILABLE':
      return "the server has no Postgres image for that version and cannot pull one: choose another --version, or check the server's registry access and PGDB_IMAGE_TEMPLATE";
    case 'NO_FREE_PORT':
      return "every port of the server's PGDB_PORT_RANGE is taken: destroy unused databases (`pgdb status`, `pgdb destroy <name>`) or widen the range";
    case 'POSTGRES_NOT_READY':
      return "the daemon removed the half-made database and logged Postgres's last lines (journalctl -u pgdbd): retry, and check the server's load and disk space";
    case 'DUMP_FAILED':
      return 'pg_dump failed in the database\'s container before sending anything; `pgdb logs <name>` and the daemon log (journalctl -u pgdbd) have its error';
    case 'RESTORE_FAILED':
      return 'nothing was changed: the restore ran in one transaction and was rolled back; fix what the error names (a file cut short: export it again; objects that exist already: import into an empty database, or use --clean) and retry';
    case 'REGISTRY_LOCKED':
      return 'another deploy or destroy is running on this server: retry in a moment; if it persists, look for a stuck pgdbd process';
    case 'DISK_FULL':
      return 'free disk space on the server (`df -h /var/lib/pgdb /var/lib/docker`); nothing was changed';
    case 'INTERNAL':
      return 'the daemon failed unexpectedly: read its log on the server (`journalctl -u pgdbd`)';
    case 'NO_UPGRADE':
      return '`pgdb info <name>` shows its major version and whether an old cluster is kept (`previous_version`)';
    case 'NO_BACKUP':
      return '`pgdb backups <name>` lists the backups and the window a restore can reach; `pgdb backup <name>` takes one now';
    case 'BACKUP_FAILED':
      return "pgBackRest's reason is in the message; the daemon log (`journalctl -u pgdbd`) has the rest, and `pgdb status` shows each database's backup state";
    case 'BACKUP_KEY_MISMATCH':
      return "put the key printed by `pgdb backup key` on the server that made the backups into the server's PGDB_BACKUP_KEY_FILE (default /var/lib/pgdb/backup.key) and restart pgdbd; the repository is left untouched until then";
    default:
      return unreachable(code);
  }
}

function unreachable(code: never): never {
  throw new Error(`unhandled error code ${String(code)}`);
}

/** The `{ error: { code, message } }` body every daemon error carries. */
function contractError(body: unknown): { code: string; message: string } | undefined {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (typeof error?.code === 'string' && typeof error.message === 'string') {
    return { code: error.code, message: error.message };
  }
  return undefined;
}

function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

/** What OpenSSL says when the other end answers a ClientHello with plain HTTP. */
function isNotTls(error: unknown): boolean {
  const failure = error as { code?: string; message?: string };
  return failure.code === 'EPROTO' || /wrong version number|packet length too long/i.test(failure.message ?? '');
}

/** A socket error, or an AggregateError of one per address tried (a name with IPv4 and IPv6 addresses). */
function networkReason(error: unknown): string {
  const failure = error as { code?: string; message?: string; errors?: Array<{ code?: string }> };
  const code = failure.code ?? failure.errors?.[0]?.code;
  return (code && NETWORK_REASONS[code]) || failure.message || String(error);
}
