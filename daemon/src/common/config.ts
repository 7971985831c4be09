import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';

/** Every setting pgdbd reads from its environment, validated once at start. */
export interface DaemonConfig {
  token: string;
  listenHost: string;
  listenPort: number;
  dataDir: string;
  publicHost: string;
  /** Address on the server that published Postgres ports bind to. */
  postgresBind: string;
  /** Image reference with `{major}` standing for the Postgres major version. */
  imageTemplate: string;
  versions: number[];
  defaultVersion: number;
  portRange: { first: number; last: number };
  dockerSocket: string;
  readyTimeoutMs: number;
  logLevel: string;
}

export const DAEMON_CONFIG = Symbol('DAEMON_CONFIG');

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MIN_TOKEN_LENGTH = 16;

type Env = Record<string, string | undefined>;

/**
 * Reads and validates the whole environment, collecting every problem so
 * that one failed start names all bad variables at once.
 */
export function loadConfig(env: Env): DaemonConfig {
  const problems: string[] = [];
  const fail = (message: string) => {
    problems.push(message);
    return undefined;
  };

  const token = readToken(env, fail);
  const listen = parseListen(env.PGDB_LISTEN ?? ':8080', fail);
  const dataDir = env.PGDB_DATA_DIR ?? '/var/lib/pgdb';
  if (!isAbsolute(dataDir)) fail(`PGDB_DATA_DIR must be an absolute path, got "${dataDir}"`);

  const imageTemplate = env.PGDB_IMAGE_TEMPLATE ?? 'postgres:{major}';
  if (!imageTemplate.includes('{major}')) {
    fail(`PGDB_IMAGE_TEMPLATE must contain "{major}", got "${imageTemplate}"`);
  }

  const versions = parseVersions(env.PGDB_POSTGRES_VERSIONS ?? '14,15,16,17,18', fail);
  const defaultVersion = parseInteger('PGDB_DEFAULT_VERSION', env.PGDB_DEFAULT_VERSION ?? '17', 1, 999, fail);
  if (versions && defaultVersion !== undefined && !versions.includes(defaultVersion)) {
    fail(`PGDB_DEFAULT_VERSION ${defaultVersion} is not in PGDB_POSTGRES_VERSIONS (${versions.join(', ')})`);
  }

  const portRange = parsePortRange(env.PGDB_PORT_RANGE ?? '15432-16431', fail);
  const readyTimeoutMs = parseInteger('PGDB_READY_TIMEOUT_MS', env.PGDB_READY_TIMEOUT_MS ?? '60000', 1000, 3_600_000, fail);
  const logLevel = env.PGDB_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) fail(`PGDB_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);

  const dockerSocket = env.PGDB_DOCKER_SOCKET ?? '/var/run/docker.sock';
  if (!isAbsolute(dockerSocket)) fail(`PGDB_DOCKER_SOCKET must be an absolute path, got "${dockerSocket}"`);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    token: token!,
    listenHost: listen!.host,
    listenPort: listen!.port,
    dataDir,
    publicHost: env.PGDB_PUBLIC_HOST || '127.0.0.1',
    postgresBind: env.PGDB_POSTGRES_BIND || '0.0.0.0',
    imageTemplate,
    versions: versions!,
    defaultVersion: defaultVersion!,
    portRange: portRange!,
    dockerSocket,
    readyTimeoutMs: readyTimeoutMs!,
    logLevel,
  };
}

type Fail = (message: string) => undefined;

function readToken(env: Env, fail: Fail): string | undefined {
  let token = env.PGDB_TOKEN;
  if (!token && env.PGDB_TOKEN_FILE) {
    try {
      token = readFileSync(env.PGDB_TOKEN_FILE, 'utf8').trim();
    } catch (error) {
      return fail(`PGDB_TOKEN_FILE ${env.PGDB_TOKEN_FILE} cannot be read: ${(error as Error).message}`);
    }
  }
  if (!token) return fail('PGDB_TOKEN (or PGDB_TOKEN_FILE) is required');
  if (token.length < MIN_TOKEN_LENGTH) {
    return fail(`PGDB_TOKEN must be at least ${MIN_TOKEN_LENGTH} characters (try: openssl rand -hex 32)`);
  }
  if (/\s/.test(token)) return fail('PGDB_TOKEN must not contain whitespace');
  return token;
}

/** Accepts `:8080`, `8080`, `127.0.0.1:8080` and `[::1]:8080`. */
export function parseListen(value: string, fail: Fail): { host: string; port: number } | undefined {
  const match = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):)?(\d+)$/.exec(value.trim());
  if (!match) return fail(`PGDB_LISTEN must look like ":8080" or "127.0.0.1:8080", got "${value}"`);
  const host = match[1] ?? (match[2] || '0.0.0.0');
  const port = parseInteger('PGDB_LISTEN port', match[3], 0, 65535, fail);
  return port === undefined ? undefined : { host, port };
}

function parseVersions(value: string, fail: Fail): number[] | undefined {
  const versions = value.split(',').map((v) => v.trim()).filter(Boolean);
  const parsed = versions.map((v) => parseInteger('PGDB_POSTGRES_VERSIONS entry', v, 1, 999, fail));
  if (versions.length === 0) return fail('PGDB_POSTGRES_VERSIONS must list at least one major version');
  if (parsed.some((v) => v === undefined)) return undefined;
  return [...new Set(parsed as number[])].sort((a, b) => a - b);
}

function parsePortRange(value: string, fail: Fail): { first: number; last: number } | undefined {
  const match = /^(\d+)-(\d+)$/.exec(value.trim());
  if (!match) return fail(`PGDB_PORT_RANGE must look like "15432-16431", got "${value}"`);
  const first = parseInteger('PGDB_PORT_RANGE start', match[1], 1, 65535, fail);
  const last = parseInteger('PGDB_PORT_RANGE end', match[2], 1, 65535, fail);
  if (first === undefined || last === undefined) return undefined;
  if (first > last) return fail(`PGDB_PORT_RANGE start ${first} is above its end ${last}`);
  return { first, last };
}

function parseInteger(name: string, value: string, min: number, max: number, fail: Fail): number | undefined {
  if (!/^\d+$/.test(value.trim())) return fail(`${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) return fail(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function imageFor(config: Pick<DaemonConfig, 'imageTemplate'>, major: number): string {
  return config.imageTemplate.replaceAll('{major}', String(major));
}
