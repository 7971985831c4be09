/**
 * A typed client for pgdbd's HTTP API (see daemon/src/contract/api.ts), on
 * node:http and node:https. Not fetch: on Node 20 its first request costs
 * 35-70 ms more, which every `pgdb` invocation would pay.
 *
 * Over https the server is verified against one CA (the one pinned for it)
 * or the system's roots, as its TlsTrust says. A handshake that fails over
 * the certificate sends nothing, not even the request line: node writes the
 * request only once the TLS session is established and verified.
 */
import { X509Certificate } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import {
  ROUTES,
  type BackupItem,
  type BackupsResponse,
  type VerifyResponse,
  type BackupType,
  type DeployRequest,
  type DeployResponse,
  type DestroyedBackupsResponse,
  type RestoreRequest,
  type RestoreResponse,
  type DestroyResponse,
  type HealthResponse,
  type InfoResponse,
  type LifecycleAction,
  type LifecycleResponse,
  type LogsQuery,
  type ResizeResponse,
  type RotateResponse,
  type StatusResponse,
  type UrlResponse,
} from '../../daemon/src/contract/api.js';
import { notPgdbd, requestFailed, responseFailed } from './daemon-errors.js';
import { CliError } from './errors.js';
import type { Target } from './servers.js';
import { certificateProblem } from './tls.js';

/** How an https server is verified, and what to do when it fails to verify. */
export interface TlsTrust {
  /** The one CA the server must chain to (PEM), or undefined for the system's roots. */
  readonly ca: string | undefined;
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

  resize(name: string, memoryMb: number): Promise<ResizeResponse> {
    return this.send({ method: 'POST', path: ROUTES.resize(name), body: { memory_mb: memoryMb }, timeoutMs: REQUEST_TIMEOUT_MS });
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
        response = await openStream(url, this.headers(request), request.timeoutMs, this.trust.ca);
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

  /** `GET /v1/health`, without a token. */
  health(): Promise<HealthResponse> {
    return this.send({ method: 'GET', path: ROUTES.health, timeoutMs: REQUEST_TIMEOUT_MS, anonymous: true });
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
      const started = performance.now();
      this.log(label);
      try {
        const answer = await exchange(url, this.headers(request), request, this.trust.ca);
        this.log(`${label} answered ${answer.status} in ${Math.round(performance.now() - started)} ms`);
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
 * `GET /v1/ca` without verifying the server, only to learn which CA it
 * presents, and the certificate it presented doing so. No token is sent.
 * Nothing learnt here is trusted until it was checked and accepted.
 */
export function learnCa(target: Target): Promise<{ text: string; status: number; leaf: X509Certificate | undefined }> {
  const url = `${target.url}${ROUTES.ca}`;
  const request: Request = { method: 'GET', path: ROUTES.ca, timeoutMs: REQUEST_TIMEOUT_MS, anonymous: true };
  let leaf: X509Certificate | undefined;
  const onSocket = (socket: TLSSocket) => {
    const raw = socket.getPeerCertificate()?.raw;
    if (raw) leaf = new X509Certificate(raw);
  };
  return exchange(url, { accept: 'application/x-pem-file' }, request, undefined, { unverified: onSocket }).then(
    (answer) => ({ ...answer, leaf }),
    (error: unknown) => {
      throw requestFailed(target, error, REQUEST_TIMEOUT_MS);
    },
  );
}

/**
 * `GET /v1/health` verified against `ca` only, without a token: proves that the
 * server's certificate chains to `ca` and names the host. Rejects with the
 * TLS error when it does not.
 */
export async function probeWithCa(target: Target, ca: string): Promise<void> {
  const url = `${target.url}${ROUTES.health}`;
  const request: Request = { method: 'GET', path: ROUTES.health, timeoutMs: REQUEST_TIMEOUT_MS, anonymous: true };
  try {
    await exchange(url, { accept: 'application/json' }, request, ca);
  } catch (error) {
    if (certificateProblem(error)) throw error;
    throw requestFailed(target, error, REQUEST_TIMEOUT_MS);
  }
}

/**
 * One request and its whole response body; fails with a TimeoutError after
 * `timeoutMs`. Over https the server must chain to `ca` (or to the system's
 * roots when it is undefined), unless `unverified` asks to skip that and
 * receives the TLS socket instead.
 */
function exchange(
  url: string,
  headers: Record<string, string>,
  request: Request,
  ca: string | undefined,
  options: { unverified?: (socket: TLSSocket) => void } = {},
): Promise<Answer> {
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const https = url.startsWith('https:');
  const send = https ? httpsRequest : httpRequest;
  const tls = !https ? {} : options.unverified ? { rejectUnauthorized: false, agent: false } : { ca, rejectUnauthorized: true };
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
function openStream(url: string, headers: Record<string, string>, timeoutMs: number, ca: string | undefined): Promise<IncomingMessage> {
  const https = url.startsWith('https:');
  const send = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => outgoing.destroy(timeoutError(timeoutMs)), timeoutMs);
    const outgoing = send(url, { method: 'GET', headers, ...(https ? { ca, rejectUnauthorized: true } : {}) }, (response) => {
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
