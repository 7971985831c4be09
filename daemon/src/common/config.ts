import { readFileSync, statSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { availableParallelism, networkInterfaces } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { CPUS_MIN, MEMORY_MB_MAX, MEMORY_MB_MIN } from '../../../contract/api.js';
import { loadBackupConfig, type BackupConfig } from './backup-config.js';
import { FAILPOINTS } from './failpoints.js';
import type { DiskPaths } from '../docker/volume-disks.js';

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
  /** How long one call to the Docker engine may take before it counts as unavailable. */
  dockerTimeoutMs: number;
  /** How long status may reuse Docker's lists of containers and volumes while its event stream reports no change; 0: never. */
  statusCacheMs: number;
  readyTimeoutMs: number;
  logLevel: string;
  /** Whether the API answers over HTTPS. */
  apiTls: boolean;
  /** The operator's own certificate chain and key (PEM files), used instead of pgdb's CA. */
  operatorCertificate: { certFile: string; keyFile: string } | undefined;
  /** Certificates from an ACME CA (PGDB_TLS=acme); undefined: pgdb's own CA (or the operator's certificate). */
  acme: AcmeSettings | undefined;
  /**
   * Node's NODE_EXTRA_CA_CERTS file: roots trusted beside Node's own, also by
   * the daemon's connections to its databases (a private ACME server's root).
   */
  extraRootsFile: string | undefined;
  /** Memory limit of a database container when its deploy names none, in MiB. */
  defaultMemoryMb: number;
  /** CPU limit of a new database container (Docker's --cpus); undefined: none (PGDB_DEFAULT_CPUS=none). */
  defaultCpus: number | undefined;
  /** Warm-pool standbys to keep ready, per Postgres major (PGDB_POOL). */
  pool: Map<number, number>;
  /** Crash-test failpoints (see failpoints.ts); empty on real servers. */
  failpoints: string[];
  /** Continuous archiving, scheduled backups and where they go (PGDB_BACKUP*). */
  backup: BackupConfig;
  /**
   * Where sized volumes keep their disk images and device links
   * (PGDB_SIZE_LIMITS=on, the default); undefined: sizes are recorded, not enforced.
   */
  sizeLimits: DiskPaths | undefined;
  /** PGDB_NETWORK_WALLS=on (the default): the firewall keeps database containers from the host and each other (network-walls.ts). */
  networkWalls: boolean;
  /** PGDB_EGRESS: whether database containers may open connections beyond this host (`closed` by default). */
  egress: 'closed' | 'open';
}

export const DAEMON_CONFIG = Symbol('DAEMON_CONFIG');

/** Let's Encrypt's production directory: the default ACME server. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

export interface AcmeSettings {
  directory: string;
  /** The one name on the certificate: PGDB_DOMAIN, or else PGDB_PUBLIC_HOST (an IP address). */
  identifier: string;
  /** ACME profile to order: `shortlived` for an IP address (Let's Encrypt's only profile for IPs), the CA's default for a name. */
  profile: string | undefined;
  email: string | undefined;
  /** Port of the http-01 listener: 80, where ACME servers validate (PGDB_ACME_HTTP_PORT, for tests). */
  httpPort: number;
  /** Port of the tls-alpn-01 listener, used when the http-01 port cannot be had: 443, where ACME servers validate (PGDB_ACME_TLS_PORT). */
  tlsPort: number;
  /** PGDB_PUBLIC_HOST when it is an IP address and the identifier is PGDB_DOMAIN: an address the domain may resolve to besides this host's interfaces' (NAT). */
  hostAddress: string | undefined;
}

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
  const dockerTimeoutMs = parseInteger('PGDB_DOCKER_TIMEOUT_MS', env.PGDB_DOCKER_TIMEOUT_MS ?? '30000', 1000, 600_000, fail);
  const statusCacheMs = parseInteger('PGDB_STATUS_CACHE_MS', env.PGDB_STATUS_CACHE_MS ?? '30000', 0, 3_600_000, fail);

  const apiTlsMode = env.PGDB_API_TLS || 'auto';
  if (!['auto', 'on', 'off'].includes(apiTlsMode)) fail(`PGDB_API_TLS must be auto, on or off, got "${apiTlsMode}"`);
  const operatorCertificate = readOperatorCertificate(env, fail);
  const defaultMemoryMb = parseInteger(
    'PGDB_DEFAULT_MEMORY_MB',
    env.PGDB_DEFAULT_MEMORY_MB ?? String(DEFAULT_MEMORY_MB),
    MEMORY_MB_MIN,
    MEMORY_MB_MAX,
    fail,
  );

  const defaultCpus = parseCpus(env.PGDB_DEFAULT_CPUS ?? String(DEFAULT_CPUS), fail);

  const failpoints = (env.PGDB_FAILPOINTS ?? '').split(',').map((f) => f.trim()).filter(Boolean);
  for (const name of failpoints) {
    if (!(FAILPOINTS as readonly string[]).includes(name)) fail(`PGDB_FAILPOINTS: unknown failpoint "${name}"`);
  }
  const pool = parsePool(env.PGDB_POOL ?? (defaultVersion !== undefined ? `${defaultVersion}:1` : '0'), versions, fail);
  const publicHost = env.PGDB_PUBLIC_HOST || '127.0.0.1';
  if (!isIP(publicHost.replace(/^\[(.*)\]$/, '$1')) && !isDnsName(publicHost)) {
    fail(`PGDB_PUBLIC_HOST must be an IP address or a DNS name (no scheme, port or path), got "${publicHost}"`);
  }
  const domain = env.PGDB_DOMAIN || undefined;
  if (domain !== undefined && (isIP(domain) || !isDnsName(domain))) fail(`PGDB_DOMAIN must be a DNS name (no scheme, port or path), got "${domain}"`);
  const acme = readAcme(env, domain ?? publicHost, operatorCertificate !== undefined, fail);
  if (acme && domain !== undefined && isIP(publicHost.replace(/^\[(.*)\]$/, '$1'))) acme.hostAddress = publicHost.replace(/^\[(.*)\]$/, '$1');
  const postgresBind = env.PGDB_POSTGRES_BIND || '0.0.0.0';
  const bindProblem = bindAddressProblem(postgresBind);
  if (bindProblem) fail(bindProblem);

  const backup = loadBackupConfig(env, fail);

  const sizeLimits = env.PGDB_SIZE_LIMITS || 'on';
  if (!['on', 'off'].includes(sizeLimits)) fail(`PGDB_SIZE_LIMITS must be on or off, got "${sizeLimits}"`);
  const walls = env.PGDB_NETWORK_WALLS || 'on';
  if (!['on', 'off'].includes(walls)) fail(`PGDB_NETWORK_WALLS must be on or off, got "${walls}"`);
  const egress = env.PGDB_EGRESS || 'closed';
  if (!['closed', 'open'].includes(egress)) fail(`PGDB_EGRESS must be closed or open, got "${egress}"`);
  const runDir = env.PGDB_RUN_DIR || '/run/pgdb';
  if (!isAbsolute(runDir)) fail(`PGDB_RUN_DIR must be an absolute path, got "${runDir}"`);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    token: token!,
    listenHost: listen!.host,
    listenPort: listen!.port,
    dataDir,
    // A DNS name for the certificate is also the name URLs use.
    publicHost: domain ?? publicHost,
    postgresBind,
    imageTemplate,
    versions: versions!,
    defaultVersion: defaultVersion!,
    portRange: portRange!,
    dockerSocket,
    dockerTimeoutMs: dockerTimeoutMs!,
    statusCacheMs: statusCacheMs!,
    readyTimeoutMs: readyTimeoutMs!,
    logLevel,
    apiTls: apiTlsMode === 'on' || (apiTlsMode === 'auto' && !isLoopback(listen!.host)),
    operatorCertificate,
    acme,
    extraRootsFile: env.NODE_EXTRA_CA_CERTS || undefined,
    defaultMemoryMb: defaultMemoryMb!,
    defaultCpus,
    failpoints,
    pool: pool!,
    backup: backup!,
    sizeLimits: sizeLimits === 'on' ? { images: join(dataDir, 'disks'), links: join(runDir, 'disks') } : undefined,
    networkWalls: walls === 'on',
    egress: egress as 'closed' | 'open',
  };
}

function isDnsName(value: string): boolean {
  return value.length <= 253 && /^(?=.*[a-z])([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i.test(value);
}

/**
 * Published ports can only bind to an address the host has: say so at
 * start, instead of every deploy failing later with a misleading error.
 */
function bindAddressProblem(bind: string): string | undefined {
  const family = isIP(bind);
  if (family === 0) return `PGDB_POSTGRES_BIND must be an IP address, got "${bind}"`;
  // Linux answers on all of 127.0.0.0/8, whatever lo lists.
  if (bind === '0.0.0.0' || bind === '::' || (family === 4 && bind.startsWith('127.'))) return undefined;
  const local = Object.values(networkInterfaces()).flatMap((addresses) => addresses ?? []).map((a) => a.address);
  if (!local.includes(bind)) {
    return `PGDB_POSTGRES_BIND ${bind} is not an address of this host (it has ${local.join(', ')}); use one of them or 0.0.0.0`;
  }
  return undefined;
}

/** 512 MiB: Postgres's defaults (128 MB shared_buffers, 100 connections) run well in it. */
export const DEFAULT_MEMORY_MB = 512;

/** 127.0.0.0/8, ::1 and `localhost`: addresses no other machine can reach. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1' || bare.startsWith('::ffff:127.');
}

type Fail = (message: string) => undefined;

function readToken(env: Env, fail: Fail): string | undefined {
  let token = env.PGDB_TOKEN;
  if (!token && env.PGDB_TOKEN_FILE) {
    checkTokenFileMode(env.PGDB_TOKEN_FILE, fail);
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
  if (!/^[\x21-\x7e]+$/.test(token)) {
    return fail('PGDB_TOKEN must consist of printable ASCII characters only (try: openssl rand -hex 32)');
  }
  if (new Set(token).size === 1) return fail('PGDB_TOKEN is one character repeated; use a random one (try: openssl rand -hex 32)');
  return token;
}

/** A token file others can read is a leaked token: refused, not just reported. */
function checkTokenFileMode(path: string, fail: Fail): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    return; // reported by the read that follows
  }
  if ((mode & 0o077) !== 0) {
    fail(`PGDB_TOKEN_FILE ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
  }
}

function readOperatorCertificate(env: Env, fail: Fail): DaemonConfig['operatorCertificate'] {
  const certFile = env.PGDB_TLS_CERT_FILE;
  const keyFile = env.PGDB_TLS_KEY_FILE;
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) return fail('PGDB_TLS_CERT_FILE and PGDB_TLS_KEY_FILE must be set together');
  for (const [name, path] of [['PGDB_TLS_CERT_FILE', certFile], ['PGDB_TLS_KEY_FILE', keyFile]]) {
    if (!isAbsolute(path)) return fail(`${name} must be an absolute path, got "${path}"`);
    try {
      readFileSync(path);
    } catch (error) {
      return fail(`${name} ${path} cannot be read: ${(error as Error).message}`);
    }
  }
  return { certFile, keyFile };
}

const ACME_MODES = ['auto', 'acme', 'own-ca'];

/**
 * PGDB_TLS: `acme` where an ACME CA can validate the host (a public IP
 * address or a DNS name), `own-ca` otherwise; `auto` (the default) picks.
 * A private or loopback host can use ACME only with PGDB_ACME_DIRECTORY
 * naming an ACME server that can reach it (tests, a private ACME CA).
 */
function readAcme(env: Env, host: string, operator: boolean, fail: Fail): AcmeSettings | undefined {
  const mode = env.PGDB_TLS || 'auto';
  if (!ACME_MODES.includes(mode)) return fail(`PGDB_TLS must be auto, acme or own-ca, got "${mode}"`);
  const identifier = host.replace(/^\[(.*)\]$/, '$1');
  if (mode === 'own-ca') return undefined;
  if (operator) {
    return mode === 'acme' ? fail('PGDB_TLS=acme cannot be combined with PGDB_TLS_CERT_FILE (the operator\'s certificate); unset one of them') : undefined;
  }
  const directory = env.PGDB_ACME_DIRECTORY || undefined;
  if (mode === 'auto' && !isPublicHost(identifier)) return undefined;
  if (!isPublicHost(identifier) && directory === undefined) {
    return fail(
      `PGDB_TLS=acme: ${identifier} is a private or loopback address, which a public ACME CA (Let's Encrypt) cannot validate; ` +
        'use PGDB_TLS=own-ca, or set PGDB_ACME_DIRECTORY to an ACME server that can reach this host',
    );
  }
  let problem = false;
  if (directory !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(directory);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'https:') problem = !fail(`PGDB_ACME_DIRECTORY must be an https:// URL of an ACME directory, got "${directory}"`);
  }
  const email = env.PGDB_ACME_EMAIL || undefined;
  if (email !== undefined && !/^[^@\s:,]+@[^@\s:,]+\.[^@\s:,]+$/.test(email)) problem = !fail(`PGDB_ACME_EMAIL must be an email address, got "${email}"`);
  const profile = env.PGDB_ACME_PROFILE || (isIP(identifier) ? 'shortlived' : undefined);
  if (profile !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(profile)) problem = !fail(`PGDB_ACME_PROFILE must be a profile name such as shortlived, got "${profile}"`);
  const httpPort = parseInteger('PGDB_ACME_HTTP_PORT', env.PGDB_ACME_HTTP_PORT ?? '80', 1, 65535, fail);
  const tlsPort = parseInteger('PGDB_ACME_TLS_PORT', env.PGDB_ACME_TLS_PORT ?? '443', 1, 65535, fail);
  if (httpPort !== undefined && httpPort === tlsPort) problem = !fail(`PGDB_ACME_HTTP_PORT and PGDB_ACME_TLS_PORT must differ, both are ${httpPort}`);
  if (problem || httpPort === undefined || tlsPort === undefined) return undefined;
  return { directory: directory ?? LETS_ENCRYPT_DIRECTORY, identifier, profile, email, httpPort, tlsPort, hostAddress: undefined };
}

const NON_PUBLIC = (() => {
  const list = new BlockList();
  for (const [net, prefix] of [
    ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
    ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 3],
  ] as const) list.addSubnet(net, prefix, 'ipv4');
  // (IPv4-mapped IPv6 is left out: BlockList would then match every IPv4 address.)
  for (const [net, prefix] of [['::', 127], ['fc00::', 7], ['fe80::', 10], ['2001:db8::', 32], ['ff00::', 8]] as const) {
    list.addSubnet(net, prefix, 'ipv6');
  }
  return list;
})();
const PRIVATE_SUFFIXES = ['.local', '.localhost', '.internal', '.lan', '.home.arpa', '.test', '.example', '.invalid'];

/** Whether a public ACME CA could validate `host`: a globally routed IP address, or a DNS name under a public suffix. */
export function isPublicHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
  const family = isIP(bare);
  if (family !== 0) return !NON_PUBLIC.check(bare, family === 4 ? 'ipv4' : 'ipv6');
  if (!bare.includes('.') || bare === 'localhost') return false;
  return !PRIVATE_SUFFIXES.some((suffix) => bare.endsWith(suffix));
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

/** `17:2,15:1`: standbys per major; `0` or empty turns the pool off. */
function parsePool(value: string, versions: number[] | undefined, fail: Fail): Map<number, number> | undefined {
  const pool = new Map<number, number>();
  const trimmed = value.trim();
  if (trimmed === '' || trimmed === '0') return pool;
  for (const entry of trimmed.split(',').map((e) => e.trim()).filter(Boolean)) {
    const match = /^(\d+):(\d+)$/.exec(entry);
    if (!match) return fail(`PGDB_POOL must look like "17:2,15:1" (major:standbys) or "0", got "${value}"`);
    const [major, count] = [Number(match[1]), Number(match[2])];
    if (versions && !versions.includes(major)) return fail(`PGDB_POOL names major ${major}, which is not in PGDB_POSTGRES_VERSIONS`);
    if (count > 20) return fail(`PGDB_POOL: at most 20 standbys per major, got ${count} for ${major}`);
    if (count > 0) pool.set(major, count);
  }
  return pool;
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

/** One CPU per database unless told otherwise: a busy database cannot starve the others and the daemon. */
const DEFAULT_CPUS = 1;

/** PGDB_DEFAULT_CPUS: `none`, or CPUs from 0.01 up to this host's count, in steps of 0.01. */
function parseCpus(value: string, fail: Fail): number | undefined {
  const text = value.trim();
  if (text === 'none') return undefined;
  const host = availableParallelism();
  if (!/^\d+(\.\d{1,2})?$/.test(text) || Number(text) < CPUS_MIN) {
    return fail(`PGDB_DEFAULT_CPUS must be none or a number of CPUs from ${CPUS_MIN} (steps of 0.01), got "${value}"`);
  }
  // Docker refuses more than the host has; a host with fewer CPUs than the default gets them all.
  return Math.min(Number(text), host);
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
