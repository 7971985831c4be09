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
  /** GET: what `pgdb info` shows (the same path as DELETE, which destroys). */
  info: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}`,
  /** GET: the database's URL, with its password. */
  url: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/url`,
  /** GET, text/plain: the container's log, streamed (see LogsQuery). */
  logs: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/logs`,
  /** POST: stop, start or restart the database's container. */
  stop: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/stop`,
  start: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/start`,
  restart: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/restart`,
  /** POST: a new password for the tenant's role. */
  rotate: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/credentials/rotate`,
  /** POST: new container limits, applied to the running container. */
  resize: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/resize`,
  /** POST: take a backup now (BackupRequest); GET: the database's backups and restorable window. */
  backups: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/backups`,
  /** POST: a restore drill of the latest backup now (DrillResult). */
  verifyBackups: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/backups/verify`,
  /** POST: a new database from the backups of `name` (running, stopped or destroyed). */
  restore: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/restore`,
  /** GET: destroyed databases whose backups can still be restored. */
  destroyedBackups: `${API_PREFIX}/backups/destroyed`,
  backupKey: `${API_PREFIX}/backups/key`,
  /** GET, application/octet-stream: `pg_dump -Fc` of the database, streamed (see EXPORT_TRAILER). */
  export: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/export`,
  /** POST, an application/octet-stream body: a `pg_dump -Fc` archive restored into the database (see ImportQuery). */
  import: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/import`,
  /** POST: move the database to a newer Postgres major (UpgradeRequest); `/finish` removes the old cluster, `/rollback` switches back to it. */
  upgrade: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/upgrade`,
  upgradeFinish: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/upgrade/finish`,
  upgradeRollback: (name: string) => `${API_PREFIX}/db/${encodeURIComponent(name)}/upgrade/rollback`,
  health: `${API_PREFIX}/health`,
  /** The daemon's certificate authority (PEM), without a token: what clients pin. */
  ca: `${API_PREFIX}/ca`,
  /**
   * The own CA's certificate for the API's key (PEM), without a token: how a
   * client that pinned the CA recognises the API's key when the API serves
   * another certificate (ACME). 404 with the operator's certificate.
   */
  apiCertificate: `${API_PREFIX}/api-certificate`,
  /** The OpenAPI 3 document of this API, without a token. */
  openapi: `${API_PREFIX}/openapi.json`,
} as const;

/**
 * The organizational unit (OU) of the subject of the API's certificate from
 * the daemon's own CA, and of no database's: the same CA signs both, and a
 * client pinned to it accepts only a certificate with this mark as the API.
 */
export const API_CERTIFICATE_UNIT = 'pgdb API';

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

export type LifecycleAction = 'stop' | 'start' | 'restart';

/** `logs`: at most this many lines of backlog per request (`tail`). */
export const LOGS_TAIL_MAX = 10_000;
/** `logs` without `tail`: the last this many lines. */
export const LOGS_TAIL_DEFAULT = 100;
/**
 * The most one logs request reads, in bytes, backlog and follow together;
 * the stream then ends with a line saying so. Docker keeps at most 30 MB of
 * a database's log (3 files of 10 MB).
 */
export const LOGS_MAX_BYTES = 16 * 1024 * 1024;

/** Query of `GET ROUTES.logs(name)`; every field optional. */
export interface LogsQuery {
  /** Lines of backlog, 0 to LOGS_TAIL_MAX, or `all` (still capped by LOGS_MAX_BYTES). */
  tail?: string;
  /** A duration back from now (`90s`, `10m`, `2h`, `1d`), an RFC 3339 time, or Unix seconds. */
  since?: string;
  /** `true`: keep the response open and send new lines as they come. */
  follow?: string;
}

const SINCE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * `--since` / `since=`: Unix seconds of the earliest line, or a message
 * saying what is wrong. Shared by the CLI (checked before any request) and
 * the daemon (400 on a bad value).
 */
export function parseSince(value: string, nowMs: number = Date.now()): { seconds: number } | { problem: string } {
  const text = value.trim();
  const duration = /^(\d{1,9})([smhd])$/.exec(text);
  // A duration longer than the epoch is simply "everything".
  if (duration) return { seconds: Math.max(0, Math.floor(nowMs / 1000) - Number(duration[1]) * SINCE_UNITS[duration[2]]) };
  if (/^\d{1,12}$/.test(text)) return { seconds: Number(text) };
  if (/^\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?$/.test(text)) {
    const ms = Date.parse(text.replace(' ', 'T'));
    if (Number.isFinite(ms)) {
      if (ms > nowMs) return { problem: `since ${JSON.stringify(value)} is in the future` };
      return { seconds: Math.floor(ms / 1000) };
    }
  }
  return {
    problem: `since ${JSON.stringify(value)} is not a duration (e.g. 90s, 10m, 2h, 1d), an RFC 3339 time (2026-01-31T12:00:00Z) or Unix seconds`,
  };
}

/** `tail=`: a line count or `all`; a message when it is neither. */
export function parseTail(value: string): { lines: number | 'all' } | { problem: string } {
  if (value === 'all') return { lines: 'all' };
  if (/^\d{1,6}$/.test(value) && Number(value) <= LOGS_TAIL_MAX) return { lines: Number(value) };
  return { problem: `tail must be a whole number of lines from 0 to ${LOGS_TAIL_MAX}, or all` };
}

export interface UrlResponse {
  name: string;
  database_url: string;
}

/** `GET ROUTES.info(name)`; live figures are null when the database is not running. */
export interface InfoResponse {
  name: string;
  state: ContainerState;
  /** Major version the database was created with. */
  postgres_version: number;
  /** `SHOW server_version`, e.g. `17.2 (Debian 17.2-1)`. */
  server_version: string | null;
  /** When Postgres started (ISO 8601), and seconds since. */
  started_at: string | null;
  uptime_seconds: number | null;
  /** Bytes of all the cluster's databases (pg_database_size). */
  data_bytes: number | null;
  /** Free bytes on the file system that holds the data volume. */
  volume_free_bytes: number | null;
  /** Client connections (the daemon's own not counted) against max_connections. */
  connections: number | null;
  max_connections: number | null;
  /** Seconds the longest-running active query has run; 0 when none runs. */
  longest_query_seconds: number | null;
  /** After an upgrade: the old cluster's major, kept stopped until `upgrade --finish` or `--rollback`. */
  previous_version: number | null;
  limits: {
    memory_mb: number | null;
    /** CPUs the container may use; null: no limit. */
    cpus: number | null;
    size_gb: number;
    /** Whether the volume's file system holds the database to size_gb (false: a volume from before sizes, or PGDB_SIZE_LIMITS=off). */
    size_enforced: boolean;
  };
  host: string;
  port: number;
  db: string;
  user: string;
  /** The password is `****` unless `?show_secrets=true`. */
  database_url: string;
  created_at: string;
  /** The newest backup, archiving and drill state; null when backups are off or the database predates them. */
  backups: BackupState | null;
}

export interface LifecycleResponse {
  name: string;
  action: LifecycleAction;
  /** What Docker says now: `running` after start and restart, `stopped` after stop. */
  state: ContainerState;
  port: number;
  /** False when the database already was in the state asked for (start of a running one, stop of a stopped one). */
  changed: boolean;
}

export interface RotateRequest {
  /** Leave the tenant's open sessions alone (default: they are ended). */
  keep_sessions?: boolean;
}

export interface RotateResponse {
  name: string;
  password: string;
  database_url: string;
  /** How many of the tenant's sessions were ended. */
  sessions_ended: number;
}

export interface ResizeRequest {
  /** At least one of the three. */
  memory_mb?: number;
  /** CPUs the container may use (Docker's --cpus), e.g. 0.5 or 2; at most the server's count. */
  cpus?: number;
  /** The volume's new size in GiB: it grows, never shrinks. */
  size_gb?: number;
}

export interface ResizeResponse {
  name: string;
  memory_mb: number | null;
  previous_memory_mb: number | null;
  /** Null: no CPU limit. */
  cpus: number | null;
  previous_cpus: number | null;
  size_gb: number;
  previous_size_gb: number;
  /** Whether the volume's file system holds the database to size_gb (false: a volume from before sizes, or PGDB_SIZE_LIMITS=off). */
  size_enforced: boolean;
  /** Whether Postgres was restarted to grow its volume (the kernel refused to grow it while mounted). */
  restarted: boolean;
}

export interface UpgradeRequest {
  /** The major to move to; newer than the database's and one the daemon supports. */
  version: number;
}

export interface UpgradeResponse {
  name: string;
  from_version: number;
  to_version: number;
  port: number;
  database_url: string;
  /** Seconds during which the database refused its role's connections. */
  downtime_seconds: number;
  /** User tables whose row counts were checked equal in both clusters, and their rows. */
  tables: number;
  rows: number;
}

export interface UpgradeFinishResponse {
  name: string;
  postgres_version: number;
  /** The old cluster's container and volume, now removed. */
  removed_container: string;
  removed_volume: string;
  /** Whether the old cluster's backups are kept (until they expire, as a destroyed database's; not with `delete_backups=true`). */
  backups_kept: boolean;
}

export interface UpgradeRollbackResponse {
  name: string;
  postgres_version: number;
  port: number;
  /** The newer cluster's container and volume, removed (with what was written to it since the upgrade). */
  removed_volume: string;
  /** Whether the newer cluster's backups are kept (until they expire, as a destroyed database's; not with `delete_backups=true`). */
  backups_kept: boolean;
}

/** `cpus` of a resize: more than 0, in steps of 0.01. */
export const CPUS_MIN = 0.01;
export const CPUS_MAX = 1024;

/**
 * The trailer that ends a complete export: `complete`. A response without it
 * (the connection closed early, or the stream was cut) is not a whole dump:
 * when pg_dump fails after the first byte was sent, the daemon closes the
 * connection without the last chunk, so every HTTP client sees an error.
 */
export const EXPORT_TRAILER = 'pgdb-export';
export const EXPORT_COMPLETE = 'complete';
/** The first bytes of a `pg_dump -Fc` (custom format) archive. */
export const DUMP_MAGIC = 'PGDMP';

/** Query of `POST ROUTES.import(name)`. */
export interface ImportQuery {
  /** `true`: drop the archive's objects first where they exist (pg_restore --clean --if-exists). */
  clean?: string;
}

export interface ImportResponse {
  name: string;
  /** Bytes of the archive received. */
  bytes: number;
  seconds: number;
}

/** The URL with its password replaced by `****`. */
export function maskPassword(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]*:)[^@]*@/, '$1****@');
}

/** Where a server keeps its backups (daemon/src/backup/targets/ has one file per kind). */
export const BACKUP_TARGET_KINDS = ['local', 's3'] as const;
export type BackupTargetKind = (typeof BACKUP_TARGET_KINDS)[number];

export const BACKUP_TYPES = ['full', 'diff', 'incr'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

export interface BackupRequest {
  /** Default `full`; `diff` and `incr` need an earlier full backup. */
  type?: BackupType;
}

/** One backup in the repository. */
export interface BackupItem {
  /** pgBackRest's label, e.g. `20261129-101500F`; what `restore --backup` takes. */
  label: string;
  type: BackupType;
  started_at: string;
  finished_at: string;
  /** Bytes of the database the backup covers. */
  size_bytes: number;
  /** Bytes it takes in the repository (compressed and encrypted). */
  repo_bytes: number;
}

/** The moments a restore can go back to, inclusive. */
export interface RestoreWindow {
  earliest: string;
  latest: string;
}

export interface BackupsResponse {
  name: string;
  /** `running`, `stopped` or `destroyed`: a destroyed database's backups are kept until they expire. */
  source: 'running' | 'stopped' | 'destroyed';
  backups: BackupItem[];
  /** Null until the first backup has finished. */
  window: RestoreWindow | null;
  repository: { kind: BackupTargetKind; location: string };
}

export interface DestroyedBackupsResponse {
  /**
   * `recovered`: found in the repository's server record, not destroyed on
   * this server (a server rebuilt after losing its data directory);
   * `destroyed_at` is then when that record was last written.
   */
  items: Array<{ name: string; postgres_version: number; destroyed_at: string; recovered: boolean }>;
}

/** `GET /v1/backups/key`: the server's backup key, which opens the repository's server record. */
export interface BackupKeyResponse {
  key: string;
  /** Where the server keeps it (PGDB_BACKUP_KEY_FILE). */
  file: string;
  /** Where the sealed server record is. */
  location: string;
}

/** RFC 3339 with a zone, as `restore --time` takes it. */
export const RFC3339_PATTERN = /^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)$/;

/** The moment an RFC 3339 time names, or undefined when it is malformed or names no real date (2026-02-30). */
export function parseRfc3339(text: string): Date | undefined {
  const match = RFC3339_PATTERN.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = Date.parse(text.replace(' ', 'T'));
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

export interface RestoreRequest {
  /** Name of the new database; it must not exist. */
  as: string;
  /** RFC 3339 moment to restore to (recovery stops before any commit after it); the latest when neither is given. */
  time?: string;
  /** A backup's label, to restore to its end instead. */
  backup?: string;
}

export interface RestoreResponse extends DeployResponse {
  restored_from: string;
  /** The moment asked for, or null for `backup` or the latest. */
  target_time: string | null;
  target_backup: string | null;
}

/** Per database in status and info: what protects it. */
export interface BackupState {
  /** The newest finished backup, or null. */
  last_backup: BackupItem | null;
  /** Seconds since the newest backup finished. */
  last_backup_age_seconds: number | null;
  /** `ok`, `failing` (pg_stat_archiver's last failure is newer than its last success), or `unknown` (not running). */
  archiving: 'ok' | 'failing' | 'unknown';
  archive_failed_count: number | null;
  last_archive_failure: string | null;
  /** The last backup attempt's error, cleared by a good backup. */
  last_error: string | null;
  /** The newest restore drill, or null when none has run. */
  last_drill: DrillResult | null;
  /** Problems that make health `degraded`. */
  problems: string[];
}

/**
 * A restore drill: a named restore point made in the source and the rows of
 * its tables counted there at that very point, then the latest backup
 * restored with the WAL up to that point into a throwaway container (no
 * network, no published port), started, every table counted and compared,
 * pg_amcheck run, then removed.
 */
export interface DrillResult {
  /** When the drill finished. */
  at: string;
  ok: boolean;
  duration_ms: number;
  /** What was checked, or why it failed. */
  detail: string;
  /** The backup restored, or null when the drill failed before choosing one. */
  backup: string | null;
  /**
   * Rows per table in the restored copy (the first 50 by database and
   * name), and in the source at the restore point (`source_rows`; null when
   * the drill did not compare, or the source lacked the table).
   */
  tables: Array<{ database: string; table: string; rows: number; source_rows?: number | null }>;
  /** pg_amcheck (heap and B-tree) on every database: skipped when the image lacks it; null when not reached. */
  amcheck: 'ok' | 'failed' | 'skipped' | null;
  /** The comparison with the source; null for a drill recorded before drills compared. */
  comparison: DrillComparison | null;
}

/** How a drill's copy compared with its source at the restore point. */
export interface DrillComparison {
  /**
   * `match`: every compared table had as many rows in the copy as in the
   * source; `differ`: some did not, or a database is missing on one side
   * (the drill failed); `not_compared`: the drill could not compare, and
   * `reason` says why (no quiet moment in the source, the database not
   * running, the copy not counted); such a drill passes or fails on its
   * other checks.
   */
  status: DrillComparisonStatus;
  /** Why it was not compared; null otherwise. */
  reason: string | null;
  /** The restore point made in the source and restored to; null when none was made (the backup was restored to its own end). */
  restore_point: { name: string; lsn: string; at: string } | null;
  /** Tables compared (every permanent table and populated materialized view, in every database but the templates). */
  tables_compared: number;
  /** The tables whose rows differ (at most 20), as `schema.table`; null rows: the table is missing on that side. */
  differences: Array<{ database: string; table: string; source_rows: number | null; copy_rows: number | null }>;
}

export const DRILL_COMPARISON_STATUSES = ['match', 'differ', 'not_compared'] as const;
export type DrillComparisonStatus = (typeof DRILL_COMPARISON_STATUSES)[number];

export interface VerifyResponse extends DrillResult {
  name: string;
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
  /** Absent when backups are off (PGDB_BACKUP=off) or the database predates them. */
  backup?: BackupState;
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
  /** Why the last standby of this major could not be made (e.g. its image could not be pulled or built); absent while the pool fills. */
  problem?: string;
}

export interface StatusResponse {
  items: StatusItem[];
  detached_volumes: DetachedVolume[];
  unknown_containers: UnknownContainer[];
  pool: PoolSummary[];
  /** Where backups go, and what that location protects against; null when backups are off. */
  backups: { kind: BackupTargetKind; location: string; note: string } | null;
  /** The certificates served, as in GET /v1/health (absent from older daemons). */
  tls?: TlsSummary;
}

export interface DestroyResponse {
  ok: true;
  /** Whether its backups are kept (until they expire), so that `restore` can bring it back. */
  backups_kept: boolean;
}

/**
 * `GET /v1/health` without a token: the verdict (503 when Docker does not
 * answer) and how the server is verified, which its TLS handshake and
 * `GET /v1/ca` tell anyone anyway; no database names, error text or version.
 */
export interface PublicHealthResponse {
  status: 'ok' | 'degraded';
  tls: TlsSummary;
}

/** `GET /v1/health` with the token. */
export interface HealthResponse {
  status: 'ok' | 'degraded';
  docker: 'reachable' | 'unreachable';
  version: string;
  tls: TlsSummary;
  /** Why the status is `degraded` (empty when ok): Docker, failing archiving, overdue or failed backups, failed restore drills. */
  problems: string[];
}

/**
 * How the daemon's databases and API are protected. `own-ca`: certificates
 * from the daemon's own CA (served at ROUTES.ca); `operator`: a certificate
 * the operator gave (PGDB_TLS_CERT_FILE), trusted through the system roots;
 * `acme`: a certificate from an ACME CA (Let's Encrypt), also trusted through
 * the system roots. `source` is what is served now: with PGDB_TLS=acme it
 * stays `own-ca` until the first certificate is issued, and returns to it
 * when a certificate could not be renewed before its expiry.
 */
export interface TlsSummary {
  source: 'own-ca' | 'operator' | 'acme';
  /** Whether the API itself answers over HTTPS. */
  api: boolean;
  /** `sha256:` and the hex SHA-256 of the CA certificate's DER; what `pgdb` pins. */
  ca_fingerprint: string;
  /**
   * `sha256:` and the hex SHA-256 of the DER public key (SubjectPublicKeyInfo)
   * the API serves with, whatever its certificate: what `pgdb` pins besides
   * the CA. Absent when the API speaks plain HTTP.
   */
  api_key_fingerprint?: string;
  /** Present when PGDB_TLS=acme. */
  acme?: AcmeSummary;
}

export interface AcmeSummary {
  directory: string;
  /** The name or address the certificate is for. */
  identifier: string;
  profile: string | null;
  /** `issued`: the ACME certificate is served; `pending`: none yet (own CA meanwhile); `fallback`: it could not be renewed in time and the own CA is served. */
  state: 'issued' | 'pending' | 'fallback';
  /** Expiry of the ACME certificate held (served or not), ISO 8601. */
  not_after: string | null;
  /** When it will be renewed (a third of its lifetime before expiry). */
  renew_at: string | null;
  /** Why the last attempt (issuance, renewal or the http-01 listener) failed; null after a success. */
  last_error: string | null;
  last_error_at: string | null;
  /** When the next attempt is due while one is needed. */
  next_attempt_at: string | null;
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
  /** The database is stopped and the operation needs it running (`pgdb start` it first). */
  'DB_STOPPED',
  /** The database's own host port is held by a program outside pgdb (seen when starting it). */
  'PORT_TAKEN',
  /** The database's state allows no such upgrade step: already at that major, a downgrade, or no old cluster to finish or roll back to. */
  'NO_UPGRADE',
  /** No finished backup to restore from yet, or the moment asked for is outside the restorable window. */
  'NO_BACKUP',
  /** A backup or restore ran and failed (pgBackRest's reason in the message). */
  'BACKUP_FAILED',
  /** The repository's server record was sealed with another backup key than this server's. */
  'BACKUP_KEY_MISMATCH',
  'DOCKER_UNAVAILABLE',
  'IMAGE_UNAVAILABLE',
  'NO_FREE_PORT',
  'POSTGRES_NOT_READY',
  /** pg_dump failed before sending anything (an export that fails later ends without EXPORT_TRAILER). */
  'DUMP_FAILED',
  /** pg_restore refused the archive or failed on an object; the database is unchanged (one transaction). */
  'RESTORE_FAILED',
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
