/**
 * A typed client for pgdbd's HTTP API (see daemon/src/contract/api.ts), on
 * node:http. Not fetch: on Node 20 its first request costs 35-70 ms more,
 * which every `pgdb` invocation would pay.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  ROUTES,
  type DeployRequest,
  type DeployResponse,
  type DestroyResponse,
  type StatusResponse,
} from '../../daemon/src/contract/api.js';
import { notPgdbd, requestFailed, responseFailed } from './daemon-errors.js';
import type { Server } from './servers.js';

/** A deploy waits for Docker and for Postgres to accept connections. */
const DEPLOY_TIMEOUT_MS = 5 * 60_000;
const REQUEST_TIMEOUT_MS = 60_000;

interface Request {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  timeoutMs: number;
}

export class DaemonClient {
  constructor(
    private readonly server: Server,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  deploy(request: DeployRequest): Promise<DeployResponse> {
    return this.send({ method: 'POST', path: ROUTES.deploy, body: request, timeoutMs: DEPLOY_TIMEOUT_MS });
  }

  status(): Promise<StatusResponse> {
    return this.send({ method: 'GET', path: ROUTES.status, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  destroy(name: string, keepData: boolean): Promise<DestroyResponse> {
    const path = `${ROUTES.database(name)}?keep_data=${keepData}`;
    return this.send({ method: 'DELETE', path, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  private async send<T>(request: Request): Promise<T> {
    const url = `${this.server.url}${request.path}`;
    const label = `${request.method} ${url}`;
    const started = performance.now();
    this.log(label);
    let status: number;
    let text: string;
    try {
      ({ status, text } = await exchange(url, this.headers(request.body !== undefined), request));
    } catch (error) {
      throw requestFailed(this.server, error, request.timeoutMs);
    }
    this.log(`${label} answered ${status} in ${Math.round(performance.now() - started)} ms`);
    const data = parseJson(text);
    if (status < 200 || status > 299) {
      throw responseFailed(this.server, { status, body: data, label });
    }
    if (data === undefined) {
      throw notPgdbd(this.server, `${label} answered ${status} with a body that is not JSON`);
    }
    return data as T;
  }

  private headers(hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.server.token}`, accept: 'application/json' };
    if (hasBody) {
      headers['content-type'] = 'application/json';
    }
    return headers;
  }
}

/** One request and its whole response body; fails with a TimeoutError after `timeoutMs`. */
function exchange(url: string, headers: Record<string, string>, request: Request): Promise<{ status: number; text: string }> {
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => outgoing.destroy(timeoutError(request.timeoutMs)), request.timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    const outgoing = send(url, { method: request.method, headers }, (response: IncomingMessage) => {
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
