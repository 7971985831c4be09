/**
 * The HTTP contract between pgdbd and its clients.
 *
 * Both the daemon and the CLI import this module, so request and response
 * shapes, validation limits and error codes cannot drift apart. It must stay
 * free of runtime dependencies: the CLI loads it on every invocation.
 */

export const API_PREFIX = '/v1';

export const ROUTES = {
  deploy: `${API_PREFIX}/deploy`,
  status: `${API_PREFIX}/status`,
  database: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}`,
  health: `${API_PREFIX}/health`,
  /** The daemon's certificate authority (PEM), without a token: what clients pin. */
  ca: `${API_PREFIX}/ca`,
  /** The OpenAPI 3 document of this API, without a token. */
  openapi: `${API_PREFIX}/openapi.json`,
} as const;

/** Lowercase letters, digits and inner dashes; starts with a letter. */
export const NAME_PATTERN = /^[a-z](?:[a-z0-9-]*[a-z0-9])?$/;
export const NAME_MAX_LENGTH = 48;
export const SIZE_GB_MIN = 1;
export const SIZE_GB_MAX = 16384;
/** Recorded when a deploy names no size. */
export const DEFAULT_SIZE_GB = 10;
/** Container memory limit a deploy may ask for, in MiB. */
export const MEMORY_MB_MIN = 256;
export const MEMORY_MB_MAX = 1024 * 1024;
/** Largest request body the daemon accepts, in bytes. */
export const BODY_LIMIT_BYTES = 16 * 1024;
/** Deepest nesting of objects and arrays a JSON body may have; a deploy body needs 1. */
export const BODY_MAX_DEPTH = 8;

export function validateName(name: string): string | undefined {
  if (name.length === 0 || name.length > NAME_MAX_LENGTH) {
    return `name must be 1 to ${NAME_MAX_LENGTH} characters long`;
  }
  if (!NAME_PATTERN.test(name)) {
    return 'name may contain only lowercase letters, digits and dashes, must start with a letter and must not end with a dash';
  }
  return undefined;
}

export interface DeployRequest {
  name?: string;
  size_gb?: number;
  version?: number;
  /** The container's memory limit in MiB; the daemon's PGDB_DEFAULT_MEMORY_MB when left out. */
  memory_mb?: number;
  /**
   * A detached volume of this daemon (`detached_volumes`, e.g. kept by a
   * destroy) to use instead of a new one: its data is kept, the credentials
   * are new. Its major version is the volume's.
   */
  from_volume?: string;
}

export interface DeployResponse {
  name: string;
  host: string;
  port: number;
  db: string;
  user: string;
  password: string;
  database_url: string;
  created_at: string;
  postgres_version: number;
  /** The container's memory limit in MiB. */
  memory_mb: number;
}

/** What Docker says about a database's container right now. */
export type ContainerState =
  | 'running'
  | 'stopped'
  | 'restarting'
  | 'missing'
  | 'unknown'
  /** A deploy or destroy is in flight (or was interrupted and awaits the next start). */
  | 'creating'
  | 'destroying';
/** Docker health check result; `none` when the container has no health check. */
export type ContainerHealth = 'healthy' | 'unhealthy' | 'starting' | 'none';

export interface StatusItem {
  name: string;
  container_id: string;
  volume_name: string;
  host: string;
  host_port: number;
  db: string;
  user: string;
  created_at: string;
  postgres_version: number;
  size_gb: number;
  /** The container's memory limit in MiB; null for a record from before limits existed. */
  memory_mb: number | null;
  /** Bytes used by the data volume, or null when Docker could not say. */
  used_bytes: number | null;
  state: ContainerState;
  health: ContainerHealth;
  /** Present only with `?show_secrets=true`. */
  password?: string;
  database_url?: string;
  /** Why the daemon could not finish or repair this database; it retries with backoff. */
  problem?: string;
}

/**
 * A container labelled as one of this daemon's databases that no record
 * explains (for example after an older registry.json was restored). Never
 * removed by pgdb: adopt its volume (`deploy` with `from_volume`) or remove it.
 */
export interface UnknownContainer {
  container_id: string;
  /** Its `pgdb.name` label. */
  name: string;
  container_name: string;
  state: ContainerState;
}

/** A pgdb-labelled volume with no database record, e.g. kept by `destroy --keep-data`. */
export interface DetachedVolume {
  volume_name: string;
  name: string;
  created_at: string | null;
}

/** The warm pool of one Postgres major: standbys that make a deploy instant. */
export interface PoolSummary {
  postgres_version: number;
  /** How many standbys the daemon keeps (PGDB_POOL). */
  target: number;
  ready: number;
  filling: number;
}

export interface StatusResponse {
  items: StatusItem[];
  detached_volumes: DetachedVolume[];
  unknown_containers: UnknownContainer[];
  pool: PoolSummary[];
}

export interface DestroyResponse {
  ok: true;
}

export interface HealthResponse {
  status: 'ok' | 'degraded';
  docker: 'reachable' | 'unreachable';
  version: string;
  tls: TlsSummary;
}

/**
 * How the daemon's databases and API are protected. `own-ca`: certificates
 * from the daemon's own CA (served at ROUTES.ca); `operator`: a certificate
 * the operator gave (PGDB_TLS_CERT_FILE), trusted through the system roots.
 */
export interface TlsSummary {
  source: 'own-ca' | 'operator';
  /** Whether the API itself answers over HTTPS. */
  api: boolean;
  /** `sha256:` and the hex SHA-256 of the CA certificate's DER; what `pgdb` pins. */
  ca_fingerprint: string;
}

export const ERROR_CODES = [
  'INVALID_REQUEST',
  'UNAUTHORIZED',
  'NOT_FOUND',
  /** The route exists, but not for this method; the `Allow` header lists those it has. */
  'METHOD_NOT_ALLOWED',
  /** The client took too long to send its request. */
  'REQUEST_TIMEOUT',
  /** The body is larger than BODY_LIMIT_BYTES. */
  'PAYLOAD_TOO_LARGE',
  /** A path segment (a database name) is far longer than any valid one. */
  'URI_TOO_LONG',
  /** A body that is not `application/json`. */
  'UNSUPPORTED_MEDIA_TYPE',
  /** The request line and headers together exceed the server's limit (16 KiB). */
  'HEADERS_TOO_LARGE',
  'DB_NOT_FOUND',
  /** `from_volume` names no pgdb volume of this daemon. */
  'VOLUME_NOT_FOUND',
  'DB_ALREADY_EXISTS',
  /** Another operation on that database is in progress (its deploy, or a destroy). */
  'DB_BUSY',
  'DOCKER_UNAVAILABLE',
  'IMAGE_UNAVAILABLE',
  'NO_FREE_PORT',
  'POSTGRES_NOT_READY',
  'REGISTRY_LOCKED',
  'DISK_FULL',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
  };
}

/**
 * How a URL asks the client to use TLS. `require`: encrypted, the server's
 * certificate not checked (works with every libpq-based client and needs no
 * file). `verify-full`: the chain is checked against `sslrootcert` (a file,
 * or `system` for the system roots) and the host name against the certificate.
 */
export type SslParameters = { sslmode: 'require' } | { sslmode: 'verify-full'; sslrootcert: string } | { sslmode: 'disable' };

/** `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=require`, every part percent-encoded. */
export function databaseUrl(
  parts: {
    user: string;
    password: string;
    host: string;
    port: number;
    db: string;
  },
  ssl: SslParameters = { sslmode: 'require' },
): string {
  const host = parts.host.includes(':') && !parts.host.startsWith('[') ? `[${parts.host}]` : parts.host;
  const user = encodeURIComponent(parts.user);
  const password = encodeURIComponent(parts.password);
  const db = encodeURIComponent(parts.db);
  const query = Object.entries(ssl)
    .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
    .join('&');
  return `postgres://${user}:${password}@${host}:${parts.port}/${db}?${query}`;
}

/** The same URL with other TLS parameters, e.g. `verify-full` against a saved CA file. */
export function withSsl(url: string, ssl: SslParameters): string {
  const [base, query = ''] = url.split('?');
  // Percent-encoding, not URLSearchParams' form encoding: libpq reads %20 as a space but not '+'.
  const kept = query.split('&').filter((pair) => pair && !/^(sslmode|sslrootcert)=/.test(pair));
  const added = Object.entries(ssl).map(([key, value]) => `${key}=${encodeURIComponent(value)}`);
  return `${base}?${[...kept, ...added].join('&')}`;
}
