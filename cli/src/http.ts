/**
 * A typed client for pgdbd's HTTP API (see contract/api.ts), on
 * node:http and node:https. Not fetch: on Node 20 its first request costs
 * 35-70 ms more, which every `pgdb` invocation would pay. node:https (with
 * tls and crypto) is loaded for the first https request only.
 *
 * Over https the server is verified against one CA (the one pinned for it)
 * or the system's roots, as its TlsTrust says. A handshake that fails over
 * the certificate sends nothing, not even the request line: node writes the
 * request only once the TLS session is established and verified.
 */
import type { X509Certificate } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import {
  EXPORT_COMPLETE,
  EXPORT_TRAILER,
  ROUTES,
  type BackupItem,
  type BackupsResponse,
  type VerifyResponse,
  type BackupType,
  type DeployRequest,
  type DeployResponse,
  type DestroyedBackupsResponse,
  type BackupKeyResponse,
  type RestoreRequest,
  type RestoreResponse,
  type DestroyResponse,
  type HealthResponse,
  type PublicHealthResponse,
  type ImportResponse,
  type InfoResponse,
  type LifecycleAction,
  type LifecycleResponse,
  type LogsQuery,
  type ResizeRequest,
  type ResizeResponse,
  type RotateResponse,
  type StatusResponse,
  type UpgradeFinishResponse,
  type UpgradeResponse,
  type UpgradeRollbackResponse,
  type UrlResponse,
} from '../../contract/api.js';
import { notPgdbd, requestFailed, responseFailed } from './daemon-errors.js';
import { CliError } from './errors.js';
import type { Target } from './servers.js';
import { certificateProblem } from './tls.js';

/** node:https (and with it tls and crypto), loaded for the first https request: plain HTTP needs none of them. */
function httpsRequest(): typeof import('node:https').request {
  return process.getBuiltinModule('node:https').request;
}

/** What node:tls calls once the chain verified: the host name and anything more; an Error refuses the server. */
export type IdentityCheck = (hostname: string, certificate: PeerCertificate) => Error | undefined;

/** How an https server is verified, and what to do when it fails to verify. */
export interface TlsTrust {
  /** The one CA the server must chain to (PEM), or undefined for the system's roots. */
  readonly ca: string | undefined;
  /** Checks the verified certificate further: its name, and that its key is the API's. */
  readonly checkServerIdentity: IdentityCheck;
  /**
   * The handshake failed over the server's certificate, and nothing was
   * sent. Resolves when the request may be retried with a new `ca`, or
   * throws the error to report.
   */
  recover(error: Error): Promise<void>;
}

/** A daemon, with the token when the command has one. */
export type Peer = Target & { token?: string; tokenSource?: string };

/** A deploy waits for Docker and for Postgres to accept connections. */
const DEPLOY_TIMEOUT_MS = 5 * 60_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** Stop and restart give Postgres 30 s to shut down, then wait for it to accept connections again. */
const LIFECYCLE_TIMEOUT_MS = 3 * 60_000;
/** A backup or restore of a large database takes long; the daemon's own limit is hours. */
const BACKUP_TIMEOUT_MS = 6 * 60 * 60_000;
/** After the last byte of an import, pg_restore may still build indexes and check constraints for a long time. */
const RESTORE_TIMEOUT_MS = 2 * 3600_000;

interface Request {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  timeoutMs: number;
  /** Health and the CA need no token, and are sent without one. */
  anonymous?: boolean;
}

interface Answer {
  status: number;
  text: string;
}

export class DaemonClient {
  constructor(
    private readonly server: Peer,
    private readonly trust: TlsTrust,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  deploy(request: DeployRequest): Promise<DeployResponse> {
    return this.send({ method: 'POST', path: ROUTES.deploy, body: request, timeoutMs: DEPLOY_TIMEOUT_MS });
  }

  status(): Promise<StatusResponse> {
    return this.send({ method: 'GET', path: ROUTES.status, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  destroy(name: string, keepData: boolean, deleteBackups = false): Promise<DestroyResponse> {
    const path = `${ROUTES.database(name)}?keep_data=${keepData}${deleteBackups ? '&delete_backups=true' : ''}`;
    return this.send({ method: 'DELETE', path, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  info(name: string, showSecrets: boolean): Promise<InfoResponse> {
    const path = `${ROUTES.info(name)}${showSecrets ? '?show_secrets=true' : ''}`;
    return this.send({ method: 'GET', path, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  url(name: string): Promise<UrlResponse> {
    return this.send({ method: 'GET', path: ROUTES.url(name), timeoutMs: REQUEST_TIMEOUT_MS });
  }

  lifecycle(name: string, action: LifecycleAction): Promise<LifecycleResponse> {
    return this.send({ method: 'POST', path: ROUTES[action](name), timeoutMs: LIFECYCLE_TIMEOUT_MS });
  }

  rotate(name: string, keepSessions: boolean): Promise<RotateResponse> {
    return this.send({ method: 'POST', path: ROUTES.rotate(name), body: { keep_sessions: keepSessions }, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  resize(name: string, change: ResizeRequest): Promise<ResizeResponse> {
    return this.send({ method: 'POST', path: ROUTES.resize(name), body: change, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  backup(name: string, type: BackupType): Promise<BackupItem> {
    return this.send({ method: 'POST', path: ROUTES.backups(name), body: { type }, timeoutMs: BACKUP_TIMEOUT_MS });
  }

  verifyBackups(name: string): Promise<VerifyResponse> {
    return this.send({ method: 'POST', path: ROUTES.verifyBackups(name), timeoutMs: BACKUP_TIMEOUT_MS });
  }

  backups(name: string): Promise<BackupsResponse> {
    return this.send({ method: 'GET', path: ROUTES.backups(name), timeoutMs: LIFECYCLE_TIMEOUT_MS });
  }

  backupKey(): Promise<BackupKeyResponse> {
    return this.send({ method: 'GET', path: ROUTES.backupKey, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  destroyedBackups(): Promise<DestroyedBackupsResponse> {
    return this.send({ method: 'GET', path: ROUTES.destroyedBackups, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  restore(name: string, request: RestoreRequest): Promise<RestoreResponse> {
    return this.send({ method: 'POST', path: ROUTES.restore(name), body: request, timeoutMs: BACKUP_TIMEOUT_MS });
  }

  /**
   * `GET ROUTES.logs(name)`: the log's bytes go to `sink` as they arrive.
   * Resolves when the daemon ends the stream or `stop` aborts (Ctrl-C); an
   * error answer before the first byte is thrown like any other.
   */
  async logs(name: string, query: LogsQuery, sink: NodeJS.WritableStream, stop: AbortSignal): Promise<void> {
    const params = Object.entries(query)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${encodeURIComponent(String(value))}`)
      .join('&');
    const request: Request = { method: 'GET', path: `${ROUTES.logs(name)}${params ? `?${params}` : ''}`, timeoutMs: REQUEST_TIMEOUT_MS };
    const url = `${this.server.url}${request.path}`;
    const label = `${request.method} ${url}`;
    let response: IncomingMessage;
    for (let attempt = 1; ; attempt += 1) {
      this.log(label);
      try {
        response = await openStream(url, this.headers(request), request.timeoutMs, this.trust);
        break;
      } catch (error) {
        if (url.startsWith('https:') && certificateProblem(error) && attempt < 3) {
          await this.trust.recover(error as Error);
          continue;
        }
        throw requestFailed(this.server, error, request.timeoutMs);
      }
    }
    const status = response.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      throw responseFailed(this.server, { status, body: parseJson(Buffer.concat(chunks).toString('utf8')), label });
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        response.destroy();
        resolve();
      };
      if (stop.aborted) return onAbort();
      stop.addEventListener('abort', onAbort, { once: true });
      response.pipe(sink, { end: false });
      response.on('end', resolve);
      const brokeOff = (cause?: Error) =>
        new CliError(`the log stream from ${this.server.url} broke off`, { hint: 'the daemon may have restarted; run the command again', cause });
      response.on('error', (error) => (stop.aborted ? resolve() : reject(brokeOff(error))));
      response.on('close', () => {
        stop.removeEventListener('abort', onAbort);
        if (!response.complete && !stop.aborted) reject(brokeOff());
        resolve();
      });
    });
  }

  /**
   * `GET ROUTES.export(name)`: the archive's bytes go to `sink` as they
   * arrive (with backpressure). Resolves with the byte count once the daemon
   * has marked the dump complete (EXPORT_TRAILER); a stream that ends
   * without that mark, or breaks off, is an error.
   */
  async exportDump(name: string, sink: NodeJS.WritableStream): Promise<number> {
    const request: Request = { method: 'GET', path: ROUTES.export(name), timeoutMs: LIFECYCLE_TIMEOUT_MS };
    const { response, label } = await this.openWithTrust(request, (outgoing) => outgoing.end());
    const status = response.statusCode ?? 0;
    if (status !== 200) throw responseFailed(this.server, { status, body: await jsonBody(response), label });
    let bytes = 0;
    response.on('data', (chunk: Buffer) => (bytes += chunk.length));
    const cut = (cause?: Error) =>
      new CliError(`the export of "${name}" failed after ${bytes} bytes: the daemon ended the stream without marking the dump complete`, {
        hint: "the output is not a usable dump: pg_dump's error is in the daemon log (journalctl -u pgdbd); run the export again",
        cause,
      });
    await new Promise<void>((resolve, reject) => {
      response.pipe(sink, { end: false });
      response.once('error', (error) => reject(cut(error)));
      response.once('close', () => {
        if (!response.complete || response.trailers[EXPORT_TRAILER] !== EXPORT_COMPLETE) reject(cut());
        else resolve();
      });
    });
    return bytes;
  }

  /**
   * `POST ROUTES.import(name)` with `source` as the body, streamed;
   * `progress` hears of every chunk sent. The daemon's answer wins over a
   * broken upload: it may refuse the archive before reading all of it.
   */
  async importDump(name: string, source: NodeJS.ReadableStream, clean: boolean, progress: (sent: number) => void): Promise<ImportResponse> {
    const path = `${ROUTES.import(name)}${clean ? '?clean=true' : ''}`;
    const request: Request = { method: 'POST', path, timeoutMs: RESTORE_TIMEOUT_MS };
    let sent = 0;
    const { response, label } = await this.openWithTrust(request, (outgoing) => {
      outgoing.setHeader('content-type', 'application/octet-stream');
      source.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        progress(sent);
      });
      source.pipe(outgoing);
    });
    const status = response.statusCode ?? 0;
    const body = await jsonBody(response);
    if (status !== 200) throw responseFailed(this.server, { status, body, label });
    if (body === undefined) throw notPgdbd(this.server, `${label} answered ${status} with a body that is not JSON`);
    return body as ImportResponse;
  }

  /** Opens a request whose body `write` sends (or none), retrying once a first-use certificate is accepted. */
  private async openWithTrust(request: Request, write: (outgoing: ClientRequest) => void): Promise<{ response: IncomingMessage; label: string }> {
    const url = `${this.server.url}${request.path}`;
    const label = `${request.method} ${url}`;
    for (let attempt = 1; ; attempt += 1) {
      this.log(label);
      try {
        return { response: await openRequest(url, request.method, this.headers(request), request.timeoutMs, this.trust, write), label };
      } catch (error) {
        if (url.startsWith('https:') && certificateProblem(error) && attempt < 3) {
          await this.trust.recover(error as Error);
          continue;
        }
        throw requestFailed(this.server, error, request.timeoutMs);
      }
    }
  }

  upgrade(name: string, version: number): Promise<UpgradeResponse> {
    return this.send({ method: 'POST', path: ROUTES.upgrade(name), body: { version }, timeoutMs: RESTORE_TIMEOUT_MS });
  }

  upgradeFinish(name: string, deleteBackups = false): Promise<UpgradeFinishResponse> {
    return this.send({ method: 'POST', path: `${ROUTES.upgradeFinish(name)}${deleteBackups ? '?delete_backups=true' : ''}`, timeoutMs: LIFECYCLE_TIMEOUT_MS });
  }

  upgradeRollback(name: string, deleteBackups = false): Promise<UpgradeRollbackResponse> {
    return this.send({ method: 'POST', path: `${ROUTES.upgradeRollback(name)}${deleteBackups ? '?delete_backups=true' : ''}`, timeoutMs: LIFECYCLE_TIMEOUT_MS });
  }

  /** `GET /v1/health` without a token: the verdict and how the server's certificates are verified. */
  publicHealth(): Promise<PublicHealthResponse> {
    return this.send({ method: 'GET', path: ROUTES.health, timeoutMs: REQUEST_TIMEOUT_MS, anonymous: true });
  }

  /** `GET /v1/health` with the token: its details (version, problems) are for the token's holder only. */
  async health(): Promise<HealthResponse> {
    const health = await this.send<HealthResponse | PublicHealthResponse>({ method: 'GET', path: ROUTES.health, timeoutMs: REQUEST_TIMEOUT_MS });
    if (!('version' in health)) {
      throw new CliError(`pgdbd at ${this.server.url} gives its details only to its token's holder`, {
        hint: 'set PGDB_TOKEN, or store it: pgdb config set server.<alias>.token <token>',
      });
    }
    return health;
  }

  /** `GET /v1/ca`, without a token: the PEM text, through the same verified channel as everything else. */
  async ca(): Promise<string> {
    const request: Request = { method: 'GET', path: ROUTES.ca, timeoutMs: REQUEST_TIMEOUT_MS, anonymous: true };
    const { status, text, label } = await this.exchange(request);
    if (status !== 200) {
      throw responseFailed(this.server, { status, body: parseJson(text), label });
    }
    return text;
  }

  private async send<T>(request: Request): Promise<T> {
    const { status, text, label } = await this.exchange(request);
    const data = parseJson(text);
    if (status < 200 || status > 299) {
      throw responseFailed(this.server, { status, body: data, label });
    }
    if (data === undefined) {
      throw notPgdbd(this.server, `${label} answered ${status} with a body that is not JSON`);
    }
    return data as T;
  }

  /** Sends the request; a certificate the trust can fix (first use) is retried once it has. */
  private async exchange(request: Request): Promise<Answer & { label: string }> {
    const url = `${this.server.url}${request.path}`;
    const label = `${request.method} ${url}`;
    for (let attempt = 1; ; attempt += 1) {
      // Date.now(), not performance.now(): the global performance object loads perf_hooks, which costs more at start than the log needs.
      const started = Date.now();
      this.log(label);
      try {
        const answer = await exchange(url, this.headers(request), request, this.trust);
        this.log(`${label} answered ${answer.status} in ${Date.now() - started} ms`);
        return { ...answer, label };
      } catch (error) {
        if (error instanceof CliError) throw error;
        if (url.startsWith('https:') && certificateProblem(error) && attempt < 3) {
          this.log(`${label}: the server's certificate did not verify (${(error as Error).message})`);
          await this.trust.recover(error as Error);
          continue;
        }
        throw requestFailed(this.server, error, request.timeoutMs);
      }
    }
  }

  private headers(request: Request): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (!request.anonymous && this.server.token !== undefined) {
      headers.authorization = `Bearer ${this.server.token}`;
    }
    if (request.body !== undefined) {
      headers['content-type'] = 'application/json';
    }
    return headers;
  }
}

/**
 * `GET /v1/ca` (or another public PEM route: ROUTES.apiCertificate) without
 * verifying the server, only to learn what it presents, and the certificate
 * it presented doing so. No token is sent. Nothing learnt here is trusted
 * until it was checked and accepted.
 */
export function learnCa(target: Target, path: string = ROUTES.ca): Promise<{ text: string; status: number; leaf: X509Certificate | undefined }> {
  const url = `${target.url}${path}`;
  const request: Request = { method: 'GET', path, timeoutMs: REQUEST_TIMEOUT_MS, anonymous: true };
  let leaf: X509Certificate | undefined;
  const onSocket = (socket: TLSSocket) => {
    const raw = socket.getPeerCertificate()?.raw;
    if (raw) leaf = new (process.getBuiltinModule('node:crypto').X509Certificate)(raw);
  };
  return exchange(url, { accept: 'application/x-pem-file' }, request, undefined, { unverified: onSocket }).then(
    (answer) => ({ ...answer, leaf }),
    (error: unknown) => {
      throw requestFailed(target, error, REQUEST_TIMEOUT_MS);
    },
  );
}

/**
 * `GET /v1/health` verified against `ca` only (undefined: the system's roots),
 * without a token: proves that the server's certificate chains to `ca` and
 * names the host (and passes `checkServerIdentity`, when given). Rejects with
 * the TLS error when it does not.
 */
export async function probeWithCa(target: Target, ca: string | undefined, checkServerIdentity?: IdentityCheck): Promise<void> {
  const url = `${target.url}${ROUTES.health}`;
  const request: Request = { method: 'GET', path: ROUTES.health, timeoutMs: REQUEST_TIMEOUT_MS, anonymous: true };
  try {
    // A handshake of its own (no kept-alive or resumed session, which would skip checkServerIdentity).
    await exchange(url, { accept: 'application/json' }, request, { ca, checkServerIdentity, fresh: true });
  } catch (error) {
    if (certificateProblem(error)) throw error;
    throw requestFailed(target, error, REQUEST_TIMEOUT_MS);
  }
}

/** How a request verifies an https server: the chain to `ca` (undefined: the system's roots), then `checkServerIdentity` (default: the host name). */
interface Verification {
  ca: string | undefined;
  checkServerIdentity?: IdentityCheck;
  /** A new connection and a full handshake, not the agent's. */
  fresh?: boolean;
}

function verified({ ca, checkServerIdentity, fresh }: Verification) {
  return { ca, rejectUnauthorized: true, ...(checkServerIdentity ? { checkServerIdentity } : {}), ...(fresh ? { agent: false } : {}) };
}

/**
 * One request and its whole response body; fails with a TimeoutError after
 * `timeoutMs`. Over https the server must chain to `ca` (or to the system's
 * roots when it is undefined) and pass the identity check, unless
 * `unverified` asks to skip that and receives the TLS socket instead.
 */
function exchange(
  url: string,
  headers: Record<string, string>,
  request: Request,
  verification: Verification | undefined,
  options: { unverified?: (socket: TLSSocket) => void } = {},
): Promise<Answer> {
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const https = url.startsWith('https:');
  const send = https ? httpsRequest() : httpRequest;
  const tls = !https ? {} : options.unverified || !verification ? { rejectUnauthorized: false, agent: false } : verified(verification);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => outgoing.destroy(timeoutError(request.timeoutMs)), request.timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    const outgoing = send(url, { method: request.method, headers, ...tls }, (response: IncomingMessage) => {
      if (options.unverified) options.unverified(response.socket as TLSSocket);
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', fail);
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    outgoing.on('error', fail);
    outgoing.end(body);
  });
}

/** A request whose response is handed over as soon as its headers arrive; `timeoutMs` bounds only that wait. */
function openStream(url: string, headers: Record<string, string>, timeoutMs: number, verification: Verification): Promise<IncomingMessage> {
  const https = url.startsWith('https:');
  const send = https ? httpsRequest() : httpRequest;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => outgoing.destroy(timeoutError(timeoutMs)), timeoutMs);
    const outgoing = send(url, { method: 'GET', headers, ...(https ? verified(verification) : {}) }, (response) => {
      clearTimeout(timer);
      resolve(response);
    });
    outgoing.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    outgoing.end();
  });
}

/**
 * A request whose response is handed over as soon as its headers arrive;
 * `timeoutMs` bounds only the wait for them once the body is sent. `write`
 * sends the body and ends the request (or leaves it empty).
 */
function openRequest(
  url: string,
  method: string,
  headers: Record<string, string>,
  timeoutMs: number,
  verification: Verification,
  write: (outgoing: ClientRequest) => void,
): Promise<IncomingMessage> {
  const https = url.startsWith('https:');
  const send = https ? httpsRequest() : httpRequest;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let answered = false;
    const outgoing = send(url, { method, headers, ...(https ? verified(verification) : {}) }, (response) => {
      answered = true;
      clearTimeout(timer);
      resolve(response);
    });
    outgoing.on('finish', () => {
      timer = setTimeout(() => outgoing.destroy(timeoutError(timeoutMs)), timeoutMs);
    });
    outgoing.on('error', (error) => {
      clearTimeout(timer);
      // An upload cut off by the daemon's answer (it refused the archive early) is not the error to report.
      if (!answered) reject(error);
    });
    write(outgoing);
  });
}

async function jsonBody(response: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return parseJson(Buffer.concat(chunks).toString('utf8'));
}

function timeoutError(ms: number): Error {
  const error = new Error(`no answer within ${ms} ms`);
  error.name = 'TimeoutError';
  return error;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
