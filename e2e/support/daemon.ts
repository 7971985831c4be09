/**
 * Starts the real pgdbd as a separate process against the real Docker engine,
 * for the e2e tier. Nothing here is faked: the daemon is the built
 * `dist/daemon/src/main.js`, the engine is the machine's, and the Postgres
 * images are the locally built test images (scripts/build-test-images.sh).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { bridgeAddress, type BridgeInspect } from '../../daemon/src/docker/bridge-address.js';
import { chainNames } from '../../daemon/src/docker/network-walls.js';
import { eventually, GaveUp } from './eventually.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DAEMON_MAIN = join(ROOT, 'dist/daemon/src/main.js');
export const TEST_IMAGE_REPO = process.env.PGDB_TEST_IMAGE_REPO ?? 'pgdb-test/postgres';
export const TEST_VERSIONS = [15, 17, 18];

export interface DaemonOptions {
  dataDir?: string;
  token?: string;
  /** Host ports for published Postgres ports; give each test file its own. */
  portRange: string;
  env?: Record<string, string>;
  /** Variables the daemon should not get, so it applies its own defaults (e.g. PGDB_POSTGRES_BIND). */
  unset?: string[];
  /** Listen on every address: the API then serves HTTPS, checked against the daemon's CA. */
  public?: boolean;
  /** More roots the test trusts for the API's HTTPS (an ACME server's root). */
  apiRoots?: () => string[];
}

export interface ApiResponse {
  status: number;
  body: any;
}

export class TestDaemon {
  readonly token: string;
  readonly dataDir: string;
  url = '';
  private child: ChildProcess | undefined;
  private output = '';

  constructor(private readonly options: DaemonOptions) {
    this.token = options.token ?? randomBytes(24).toString('hex');
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'pgdb-e2e-'));
  }

  /** Spawns the daemon and resolves when it answers on its health route; `extraEnv` applies to this start only. */
  async start(extraEnv: Record<string, string> = {}): Promise<this> {
    const port = await freePort();
    this.url = `${this.options.public ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.output = '';
    const env: Record<string, string | undefined> = {
        PATH: process.env.PATH,
        PGDB_TOKEN: this.token,
        PGDB_LISTEN: this.options.public ? `0.0.0.0:${port}` : `127.0.0.1:${port}`,
        PGDB_DATA_DIR: this.dataDir,
        PGDB_PUBLIC_HOST: '127.0.0.1',
        PGDB_POSTGRES_BIND: '127.0.0.1',
        PGDB_IMAGE_TEMPLATE: `${TEST_IMAGE_REPO}:{major}`,
        PGDB_POSTGRES_VERSIONS: TEST_VERSIONS.join(','),
        PGDB_DEFAULT_VERSION: '17',
        PGDB_PORT_RANGE: this.options.portRange,
        PGDB_READY_TIMEOUT_MS: '60000',
        // Tests that want a warm pool ask for one (e2e/pool.e2e.ts).
        PGDB_POOL: '0',
        // Tests that want backups ask for them (e2e/backup.e2e.ts); the quick start runs the real default.
        PGDB_BACKUP: 'off',
        ...this.options.env,
        ...extraEnv,
    };
    for (const name of this.options.unset ?? []) delete env[name];
    const child = spawn(process.execPath, [DAEMON_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (chunk) => (this.output += chunk));
    child.stderr!.on('data', (chunk) => (this.output += chunk));
    // Generous: a loaded machine can take long to start Node.
    await eventually('pgdbd answering', 60_000, async () => {
      if (child.exitCode !== null) throw new GaveUp(`pgdbd exited with ${child.exitCode}`);
      return this.api('GET', '/v1/health', undefined, null).then(() => true, () => undefined);
    }, 50).catch((error: Error) => {
      throw new Error(`${error.message}:\n${this.output}`);
    });
    return this;
  }

  /** Stops the daemon; `SIGKILL` simulates a crash. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
    child.kill(signal);
    await exited;
  }

  /** `extraEnv` applies to this start only. */
  async restart(extraEnv: Record<string, string> = {}): Promise<void> {
    await this.stop();
    await this.start(extraEnv);
  }

  /** Resolves when the daemon process has ended, with how it ended. */
  async exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child) return { code: null, signal: null };
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
    return { code: child.exitCode, signal: child.signalCode };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  logs(): string {
    return this.output;
  }

  async api(method: string, path: string, body?: unknown, token: string | null = this.token): Promise<ApiResponse> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.url.startsWith('https:')) {
      const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const { status, text } = await httpsExchange(`${this.url}${path}`, method, headers, payload, [this.caCertificate(), ...(this.options.apiRoots?.() ?? [])]);
      return { status, body: text && text.startsWith('{') ? JSON.parse(text) : text || undefined };
    }
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  /** The daemon's CA certificate (PEM), created in its data directory on first start. */
  caCertificate(): string {
    return readFileSync(join(this.dataDir, 'tls', 'ca.crt'), 'utf8');
  }

  /** What the daemon serves at /v1/api-certificate (no token): the own CA's certificate for the API's key. */
  async apiCertificate(): Promise<string> {
    const { status, body } = await this.api('GET', '/v1/api-certificate', undefined, null);
    if (status !== 200 || typeof body !== 'string') throw new Error(`GET /v1/api-certificate answered ${status}`);
    return body;
  }

  /** registry.json as the daemon last wrote it. */
  registry(): { instance_id: string; items: any[]; destroyed: any[] } {
    return JSON.parse(readFileSync(join(this.dataDir, 'registry.json'), 'utf8'));
  }

  /** The registry's record of the database `name`, if it has one. */
  record(name: string): any {
    return this.registry().items.find((item) => item.name === name);
  }

  instanceId(): string {
    return this.registry().instance_id;
  }

  /** Stops the daemon and removes every Docker object it created. */
  async destroyAll(): Promise<void> {
    await this.stop();
    let instance: string;
    try {
      instance = this.instanceId();
    } catch {
      return;
    }
    removeInstanceObjects(instance);
    if (!this.options.dataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Removes every container, volume and network labelled with a daemon's instance id. */
export function removeInstanceObjects(instance: string): void {
  const filter = `label=pgdb.instance=${instance}`;
  const containers = docker('ps', '-aq', '--filter', filter).split('\n').filter(Boolean);
  if (containers.length > 0) docker('rm', '-f', ...containers);
  const volumes = docker('volume', 'ls', '-q', '--filter', filter).split('\n').filter(Boolean);
  if (volumes.length > 0) docker('volume', 'rm', '-f', ...volumes);
  releaseDisks(volumes);
  const networks = docker('network', 'ls', '-q', '--filter', filter).split('\n').filter(Boolean);
  if (networks.length > 0) docker('network', 'rm', ...networks);
  removeWalls(instance);
}

/** Takes down a daemon's network walls (its two chains and the jumps to them), as `install.sh --uninstall` does. */
export function removeWalls(instance: string): void {
  const { input, forward } = chainNames(instance);
  const iptables = (...args: string[]) => execFileSync('iptables', ['-w', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  for (const chain of ['INPUT', 'DOCKER-USER', 'FORWARD']) {
    let rules: string[];
    try {
      rules = iptables('-S', chain).split('\n');
    } catch {
      continue;
    }
    for (const rule of rules.filter((line) => line.endsWith(`-j ${input}`) || line.endsWith(`-j ${forward}`))) {
      iptables(...rule.replace(/^-A /, '-D ').split(' '));
    }
  }
  for (const chain of [input, forward]) {
    try {
      iptables('-F', chain);
      iptables('-X', chain);
    } catch {
      // Never made (walls off, or no iptables).
    }
  }
}

/** Where the daemon links sized volumes to their loop devices (PGDB_RUN_DIR's default). */
export const DISK_LINKS = '/run/pgdb/disks';

/**
 * Detaches the loop devices of removed sized volumes (VolumeDisks), as the
 * daemon would have; their image files go with the data directory.
 */
export function releaseDisks(volumes: string[]): void {
  for (const volume of volumes) {
    const link = join(DISK_LINKS, volume);
    let device: string;
    try {
      device = readlinkSync(link);
    } catch {
      continue;
    }
    try {
      execFileSync('losetup', ['--detach', device], { stdio: 'ignore' });
    } catch {
      // Already detached.
    }
    rmSync(link, { force: true });
  }
}

/** One HTTPS request, verified against `ca` (the daemon's own CA). */
function httpsExchange(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  ca: string | string[],
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest(url, { method, headers, ca, timeout: 120_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${url}: no answer`)));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** Whether Docker knows a container or volume of that id or name. */
export function dockerObjectExists(kind: 'container' | 'volume', id: string): boolean {
  try {
    docker(kind, 'inspect', id);
    return true;
  } catch {
    return false;
  }
}

/** Runs the docker CLI and returns its trimmed stdout. */
export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/**
 * This host's address on a Docker network's bridge; for `bridge`, the address
 * that `host-gateway` stands for in containers. The daemon's own rule: the
 * IPAM gateway, else the bridge interface's address (Docker 20.10 leaves the
 * default bridge's gateway out); throws rather than giving an empty string.
 */
export function bridgeAddressOf(network = 'bridge'): string {
  return bridgeAddress(network, JSON.parse(docker('network', 'inspect', network))[0] as BridgeInspect);
}

/** Fails (never skips) when the engine or the test images are missing. */
export function requireDockerAndImages(versions: number[] = TEST_VERSIONS): void {
  try {
    docker('info', '--format', '{{.ServerVersion}}');
  } catch (error) {
    throw new Error(`the e2e tests need a running Docker engine (run scripts/setup-docker.sh): ${(error as Error).message}`);
  }
  for (const major of versions) {
    try {
      docker('image', 'inspect', '--format', '{{.Id}}', `${TEST_IMAGE_REPO}:${major}`);
    } catch {
      throw new Error(`test image ${TEST_IMAGE_REPO}:${major} is missing (run scripts/build-test-images.sh)`);
    }
  }
}

/**
 * Connects with a connection string and runs one query. `sslmode` means what
 * libpq says it means (node-postgres would treat `require` as `verify-full`):
 * `require` encrypts without checking the certificate, `verify-full` checks
 * it against `sslrootcert`, `disable` sends everything in clear.
 * `session.options`: start-up options, as libpq's `options`.
 */
export async function query<T extends pg.QueryResultRow = any>(
  url: string,
  sql: string,
  params: unknown[] = [],
  session: { options?: string } = {},
): Promise<T[]> {
  const parsed = new URL(url);
  const mode = parsed.searchParams.get('sslmode') ?? 'prefer';
  const rootCert = parsed.searchParams.get('sslrootcert');
  parsed.searchParams.delete('sslmode');
  parsed.searchParams.delete('sslrootcert');
  const ssl = mode === 'disable'
    ? false
    : mode === 'verify-full'
      ? { ca: readFileSync(rootCert!, 'utf8') }
      : { rejectUnauthorized: false };
  const client = new pg.Client({ connectionString: parsed.toString(), ssl, connectionTimeoutMillis: 5000, ...session });
  // A server that goes away mid-query (a test that restarts it, a rollback) rejects the query;
  // node-postgres also emits the error on the client, which without a listener kills the test process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}
