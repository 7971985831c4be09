/**
 * A stand-in for pgdbd in fast tests: a node:http (or, given a certificate,
 * node:https) server on 127.0.0.1 that answers the contract's routes with its
 * status codes and error bodies. The real daemon is exercised by the e2e suite.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  API_PREFIX,
  databaseUrl,
  ROUTES,
  validateName,
  type DeployRequest,
  type DeployResponse,
  type RestoreRequest,
  type DetachedVolume,
  type ErrorCode,
  type HealthResponse,
  type StatusItem,
  type StatusResponse,
  type TlsSummary,
} from '../../../contract/api.js';
import type { KeyPair, TestCa } from './test-ca.js';

export interface FakeTls {
  /** The CA the fake serves at /v1/ca and reports in /v1/health. */
  ca: TestCa;
  /** The API's certificate; plain HTTP without one. */
  api?: KeyPair;
  source?: TlsSummary['source'];
  /** What it serves at /v1/api-certificate (the own CA's certificate for the API's key); 404 without. */
  endorsement?: string;
}

export interface RecordedRequest {
  method: string;
  url: string;
  authorization?: string;
  body: unknown;
}

export interface CannedError {
  status: number;
  code: ErrorCode;
  message: string;
}

const DB_PREFIX = `${API_PREFIX}/db/`;

interface Reply {
  status: number;
  body: unknown;
}

export class FakeDaemon {
  readonly requests: RecordedRequest[] = [];
  readonly items: StatusItem[] = [];
  readonly detached: DetachedVolume[] = [];
  /** Answers the next request with this error instead. */
  nextError?: CannedError;
  /** TCP connections accepted so far, whether or not a request followed. */
  connections = 0;
  private readonly server: Server;

  constructor(
    readonly token: string,
    private tls?: FakeTls,
  ) {
    const handler = (request: IncomingMessage, response: ServerResponse) => void this.handle(request, response);
    this.server = tls?.api ? createHttpsServer({ ...tls.api }, handler) : createServer(handler);
    this.server.on('connection', () => (this.connections += 1));
    // A client that rejects the certificate aborts the handshake: not the fake's problem.
    this.server.on('tlsClientError', () => undefined);
  }

  get url(): string {
    const scheme = this.tls?.api ? 'https' : 'http';
    return `${scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Serves another CA and certificate from now on, as a re-installed (or impersonated) server would. */
  replaceTls(tls: FakeTls & { api: KeyPair }): void {
    this.tls = tls;
    (this.server as unknown as { setSecureContext(options: KeyPair): void }).setSecureContext({ ...tls.api });
    // As after a restart: no kept-alive connection carries on with the old certificate.
    this.server.closeAllConnections();
  }

  start(): Promise<this> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(this)));
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request);
    const url = request.url ?? '';
    this.requests.push({ method: request.method ?? '', url, authorization: request.headers.authorization, body });
    const route = new URL(url, 'http://fake');
    if (request.method === 'GET' && route.pathname === ROUTES.ca && this.tls) {
      response.writeHead(200, { 'content-type': 'application/x-pem-file' });
      response.end(this.tls.ca.cert);
      return;
    }
    if (request.method === 'GET' && route.pathname === ROUTES.apiCertificate && this.tls) {
      const endorsement = this.tls.endorsement ?? (this.tls.source === 'operator' ? undefined : this.tls.api?.cert);
      response.writeHead(endorsement ? 200 : 404, { 'content-type': 'application/x-pem-file' });
      response.end(endorsement ?? '');
      return;
    }
    const reply = this.route(request.method ?? '', route, request.headers.authorization, body);
    response.writeHead(reply.status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(reply.body));
  }

  private route(method: string, url: URL, authorization: string | undefined, body: unknown): Reply {
    if (method === 'GET' && url.pathname === ROUTES.health) {
      // As pgdbd: the verdict for anyone, the details for the token, 401 for a wrong one.
      if (authorization === undefined) {
        const { status, tls } = this.health() as HealthResponse;
        return { status: 200, body: tls ? { status, tls } : { status } };
      }
      if (authorization !== `Bearer ${this.token}`) return failure(401, 'UNAUTHORIZED', 'invalid token');
      return { status: 200, body: this.health() };
    }
    if (authorization !== `Bearer ${this.token}`) {
      return failure(401, 'UNAUTHORIZED', 'missing or invalid bearer token');
    }
    const canned = this.nextError;
    if (canned) {
      this.nextError = undefined;
      return failure(canned.status, canned.code, canned.message);
    }
    if (method === 'POST' && url.pathname === ROUTES.deploy) {
      return this.deploy(body as DeployRequest);
    }
    if (method === 'GET' && url.pathname === ROUTES.status) {
      const status: StatusResponse = { items: this.items, detached_volumes: this.detached, unknown_containers: [], pool: [], backups: null };
      return { status: 200, body: status };
    }
    const restoring = method === 'POST' && url.pathname.startsWith(DB_PREFIX) && url.pathname.endsWith('/restore');
    if (restoring) {
      // As pgdbd: a new database (deploy's fields) and where it came from.
      const request = body as RestoreRequest;
      const made = this.deploy({ name: request.as });
      if (made.status !== 201) return made;
      const from = decodeURIComponent(url.pathname.slice(DB_PREFIX.length, -'/restore'.length));
      return { status: 201, body: { ...(made.body as DeployResponse), restored_from: from, target_time: request.time ?? null, target_backup: request.backup ?? null } };
    }
    const name = url.pathname.startsWith(DB_PREFIX) ? decodeURIComponent(url.pathname.slice(DB_PREFIX.length)) : '';
    if (method === 'DELETE' && name) {
      return this.destroy(name, url.searchParams.get('keep_data') === 'true');
    }
    return failure(404, 'NOT_FOUND', `no route ${method} ${url.pathname}`);
  }

  private health(): HealthResponse | Omit<HealthResponse, 'tls'> {
    const health = { status: 'ok' as const, docker: 'reachable' as const, version: '0.0.0-fake', problems: [] };
    if (!this.tls) return health;
    const tls: TlsSummary = { source: this.tls.source ?? 'own-ca', api: Boolean(this.tls.api), ca_fingerprint: this.tls.ca.fingerprint };
    return { ...health, tls };
  }

  private deploy(request: DeployRequest): Reply {
    const name = request.name ?? `db-${this.items.length + 1}`;
    const invalid = validateName(name);
    if (invalid) {
      return failure(400, 'INVALID_REQUEST', invalid);
    }
    if (this.items.some((item) => item.name === name)) {
      return failure(409, 'DB_ALREADY_EXISTS', `database "${name}" already exists`);
    }
    const item = fakeItem(name, this.items.length, request);
    this.items.push(item);
    const response: DeployResponse = {
      name,
      host: item.host,
      port: item.host_port,
      db: item.db,
      user: item.user,
      password: 'secret-password',
      database_url: databaseUrl({ ...item, port: item.host_port, password: 'secret-password' }),
      created_at: item.created_at,
      postgres_version: item.postgres_version,
      memory_mb: item.memory_mb ?? 512,
    };
    return { status: 201, body: response };
  }

  private destroy(name: string, keepData: boolean): Reply {
    const index = this.items.findIndex((item) => item.name === name);
    if (index < 0) {
      return failure(404, 'DB_NOT_FOUND', `database "${name}" does not exist`);
    }
    const [item] = this.items.splice(index, 1);
    if (keepData) {
      this.detached.push({ volume_name: item.volume_name, name, created_at: item.created_at });
    }
    return { status: 200, body: { ok: true, backups_kept: false } };
  }
}

export function fakeItem(name: string, index: number, request: DeployRequest = {}): StatusItem {
  return {
    name,
    container_id: `container-${index}`,
    volume_name: `pgdb-data-${name}`,
    host: '127.0.0.1',
    host_port: 40000 + index,
    db: `pg_${name.replaceAll('-', '_')}`,
    user: `u_${index}`,
    created_at: '2025-11-29T02:29:00.000Z',
    postgres_version: request.version ?? 17,
    size_gb: request.size_gb ?? 10,
    memory_mb: request.memory_mb ?? 512,
    used_bytes: 42 * 1024 * 1024,
    state: 'running',
    health: 'healthy',
  };
}

/** A URL on which nothing listens: connecting to it is refused. */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

function failure(status: number, code: ErrorCode, message: string): Reply {
  return { status, body: { error: { code, message } } };
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}
