import { readFileSync } from 'node:fs';

/**
 * What `pgdb infra` accepts, checked in plain code: no Pulumi import, so the
 * CLI validates its flags (and exits 2 on a bad one) before it loads the
 * engine. The program reads the same settings back from `pulumi config`
 * under the keys in CONFIG_KEYS, whichever driver wrote them.
 */

/** The project name in Pulumi.yaml and of the Automation API workspace. */
export const PROJECT = 'pgdb';

/** pgdbd's API port on the server (install.sh's default PGDB_LISTEN). */
export const API_PORT = 8080;

export const DEFAULTS = {
  location: 'fsn1',
  serverType: 'cx22',
  image: 'debian-12',
  volumeSizeGb: 20,
  /** SSH and the API are open to everyone by default, protected by the key and the token. */
  allowSsh: ['0.0.0.0/0', '::/0'],
  allowApi: ['0.0.0.0/0', '::/0'],
  /** Postgres ports are closed by default: open them with --allow-postgres <cidr>. */
  allowPostgres: [] as string[],
  /** pgdbd's default PGDB_PORT_RANGE; the firewall opens the same range. */
  postgresPorts: '15432-16431',
} as const;

/** Hetzner Cloud locations (GET /locations), for a quick, clear error. */
export const LOCATIONS = ['fsn1', 'nbg1', 'hel1', 'ash', 'hil', 'sin'] as const;

export const VOLUME_SIZE_MIN = 10;
export const VOLUME_SIZE_MAX = 10240;

/** Stack config keys, as `pulumi config set` writes them (namespace "pgdb"). */
export const CONFIG_KEYS = {
  location: 'pgdb:location',
  serverType: 'pgdb:serverType',
  image: 'pgdb:image',
  volumeSizeGb: 'pgdb:volumeSizeGb',
  sshPublicKey: 'pgdb:sshPublicKey',
  allowSsh: 'pgdb:allowSsh',
  allowApi: 'pgdb:allowApi',
  allowPostgres: 'pgdb:allowPostgres',
  postgresPorts: 'pgdb:postgresPorts',
  deleteVolume: 'pgdb:deleteVolume',
  bootstrap: 'pgdb:bootstrap',
  sshPrivateKey: 'pgdb:sshPrivateKey',
  /** Only the CLI reads this one: where the private key of sshPublicKey is. */
  sshPrivateKeyPath: 'pgdb:sshPrivateKeyPath',
  daemonToken: 'pgdb:daemonToken',
  releaseArchive: 'pgdb:releaseArchive',
  releaseId: 'pgdb:releaseId',
  daemonEnv: 'pgdb:daemonEnv',
  bindAddress: 'pgdb:bindAddress',
  /** Secrets bootstrap writes on the server (set through standard input, never on a command line). */
  s3AccessKey: 'pgdb:s3AccessKey',
  s3SecretKey: 'pgdb:s3SecretKey',
  backupKey: 'pgdb:backupKey',
  hcloudToken: 'hcloud:token',
} as const;

/** The settings of the servers' part of the stack (`pgdb infra init`). */
export interface InfraSettings {
  location: string;
  serverType: string;
  image: string;
  volumeSizeGb: number;
  sshPublicKey: string;
  allowSsh: string[];
  allowApi: string[];
  allowPostgres: string[];
  postgresPorts: string;
}

/** pgdbd settings install.sh takes that bootstrap may pass on (--daemon-env). */
export const DAEMON_ENV_ALLOWED = [
  'PGDB_IMAGE_TEMPLATE',
  'PGDB_POSTGRES_VERSIONS',
  'PGDB_DEFAULT_VERSION',
  'PGDB_READY_TIMEOUT_MS',
  'PGDB_LOG_LEVEL',
  'PGDB_NPM_REGISTRY',
  'PGDB_INSTALL_HEALTH_TIMEOUT',
  /** auto (the default: HTTPS unless the API listens on loopback only), on or off. */
  'PGDB_API_TLS',
  'PGDB_DEFAULT_MEMORY_MB',
  'PGDB_POOL',
  /** on (the default: each database's volume is a file system of its size) or off. */
  'PGDB_SIZE_LIMITS',
  /** on (the default: the firewall keeps database containers from the host's services and each other) or off. */
  'PGDB_NETWORK_WALLS',
  /** closed (the default) or open: whether database containers may open connections beyond the server. */
  'PGDB_EGRESS',
  'PGDB_BACKUP_GATEWAY_PORT',
  'PGDB_BACKUP',
  'PGDB_BACKUP_SCHEDULE',
  'PGDB_BACKUP_RETENTION_FULL',
  'PGDB_BACKUP_S3_ENDPOINT',
  'PGDB_BACKUP_S3_BUCKET',
  'PGDB_BACKUP_S3_REGION',
  'PGDB_BACKUP_S3_URI_STYLE',
  // Key files already on the server; --s3-access-key-file and --s3-secret-key-file copy them there instead.
  'PGDB_BACKUP_S3_ACCESS_KEY_FILE',
  'PGDB_BACKUP_S3_SECRET_KEY_FILE',
] as const;

/** Where bootstrap writes the S3 keys on the server (root, 0600). */
export const SERVER_S3_ACCESS_KEY_FILE = '/etc/pgdb/s3-access-key';
export const SERVER_S3_SECRET_KEY_FILE = '/etc/pgdb/s3-secret-key';
/** The daemon's default backup key file (`<PGDB_DATA_DIR>/backup.key`). */
export const SERVER_BACKUP_KEY_FILE = '/var/lib/pgdb/backup.key';

/** What `pgdb backup key` prints: 32 bytes in base64url after the prefix. */
export const BACKUP_KEY_PATTERN = /^pgdb-backup-key-1:[A-Za-z0-9_-]{43}$/;

/** The backup secrets bootstrap carries to the server (Pulumi secret config). */
export interface BackupSecrets {
  s3AccessKey?: string;
  s3SecretKey?: string;
  backupKey?: string;
}

/** The local files the secrets are read from (`pgdb infra bootstrap` flags). */
export interface BackupSecretFiles {
  s3AccessKeyFile?: string;
  s3SecretKeyFile?: string;
  backupKeyFile?: string;
}

export class InvalidOption extends Error {}

const STACK_PATTERN = /^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$|^[a-z0-9]$/;

/** A stack name is also the CLI alias and part of Hetzner resource names. */
export function checkStackName(name: string): string {
  if (!STACK_PATTERN.test(name)) {
    throw new InvalidOption(
      `invalid stack name "${name}": use 1 to 40 lowercase letters, digits and "-", starting and ending with a letter or digit`,
    );
  }
  return name;
}

export function checkLocation(location: string): string {
  if (!(LOCATIONS as readonly string[]).includes(location)) {
    throw new InvalidOption(`unknown location "${location}": Hetzner Cloud locations are ${LOCATIONS.join(', ')}`);
  }
  return location;
}

/** Server types and images are checked by Hetzner itself; here only their shape. */
export function checkSlug(flag: string, value: string): string {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(value)) {
    throw new InvalidOption(`${flag} "${value}" is not a Hetzner name (lowercase letters, digits, "." and "-")`);
  }
  return value;
}

export function checkVolumeSize(size: number): number {
  if (!Number.isInteger(size) || size < VOLUME_SIZE_MIN || size > VOLUME_SIZE_MAX) {
    throw new InvalidOption(`--volume-size must be a whole number of GB from ${VOLUME_SIZE_MIN} to ${VOLUME_SIZE_MAX}`);
  }
  return size;
}

/** An OpenSSH public key line: type, base64 body, optional comment. */
export function checkSshPublicKey(source: string, text: string): string {
  const line = text.trim();
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+={0,3}( \S.*)?$/.test(line) || line.includes('\n')) {
    throw new InvalidOption(`${source} is not an OpenSSH public key (expected one line like "ssh-ed25519 AAAA... comment")`);
  }
  return line;
}

/** Normalises an IPv4 or IPv6 CIDR (a bare address gets /32 or /128); throws on anything else. */
export function normalizeCidr(flag: string, raw: string): string {
  const value = raw.trim();
  const [address, prefixText, extra] = value.split('/');
  const bad = () => new InvalidOption(`${flag} "${raw}" is not a CIDR like 203.0.113.0/24 or 2001:db8::/32`);
  if (extra !== undefined || !address) throw bad();
  const v4 = parseIpv4(address);
  const v6 = v4 ? undefined : parseIpv6(address);
  if (!v4 && !v6) throw bad();
  const max = v4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw bad();
    prefix = Number(prefixText);
  }
  // Hetzner rejects a CIDR with host bits set: clear them.
  if (v4) {
    return `${maskBytes(v4, prefix).join('.')}/${prefix}`;
  }
  return `${formatIpv6(maskBytes(v6!, prefix))}/${prefix}`;
}

export function normalizeCidrs(flag: string, values: readonly string[]): string[] {
  return [...new Set(values.map((value) => normalizeCidr(flag, value)))];
}

function parseIpv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255)) return undefined;
  return parts.map(Number);
}

function parseIpv6(text: string): number[] | undefined {
  if (!/^[0-9A-Fa-f:]+$/.test(text) || text.split('::').length > 2) return undefined;
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const missing = 8 - left.length - right.length;
  if ((tail === undefined && missing !== 0) || (tail !== undefined && missing < 1)) return undefined;
  const all = [...left, ...Array(tail === undefined ? 0 : missing).fill('0'), ...right];
  if (!all.every((group) => /^[0-9A-Fa-f]{1,4}$/.test(group))) return undefined;
  return all.flatMap((group) => {
    const value = parseInt(group, 16);
    return [value >> 8, value & 0xff];
  });
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((byte, index) => {
    const bits = Math.max(0, Math.min(8, prefix - index * 8));
    return byte & ((0xff << (8 - bits)) & 0xff);
  });
}

function formatIpv6(bytes: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of zero groups (at least two) becomes "::".
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (best.length < 2) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}

export function checkPortRange(value: string): string {
  const match = /^(\d{1,5})-(\d{1,5})$/.exec(value);
  if (!match || Number(match[1]) < 1 || Number(match[2]) > 65535 || Number(match[1]) > Number(match[2])) {
    throw new InvalidOption(`port range "${value}" must look like 15432-16431`);
  }
  if (Number(match[1]) <= API_PORT && API_PORT <= Number(match[2])) {
    throw new InvalidOption(`port range "${value}" must not include the API port ${API_PORT}`);
  }
  return value;
}

/** `KEY=VALUE` pairs for install.sh; only the allowed keys, one plain word each. */
export function parseDaemonEnv(values: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of values) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (!match) throw new InvalidOption(`--daemon-env "${pair}" must look like KEY=VALUE`);
    const [, key, value] = match;
    if (!(DAEMON_ENV_ALLOWED as readonly string[]).includes(key)) {
      throw new InvalidOption(`--daemon-env ${key} is not accepted; allowed: ${DAEMON_ENV_ALLOWED.join(', ')}`);
    }
    if (!/^[A-Za-z0-9_.,:/{}@+-]+$/.test(value)) {
      throw new InvalidOption(`--daemon-env ${key} must be one word of letters, digits and _.,:/{}@+-`);
    }
    env[key] = value;
  }
  return env;
}

/**
 * One secret value from a local file: one line (a final newline is fine), no
 * spaces. Messages name the flag and the path, never the content.
 */
export function readSecretFile(flag: string, path: string, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): string {
  let text: string;
  try {
    text = read(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InvalidOption(`${flag} ${path}: no such file`);
    if (code === 'EISDIR') throw new InvalidOption(`${flag} ${path} is a directory, not a file`);
    throw new InvalidOption(`${flag} ${path} cannot be read (${code ?? (error as Error).message})`);
  }
  const value = text.replace(/\r?\n$/, '');
  if (value.trim() === '') throw new InvalidOption(`${flag} ${path} is empty`);
  if (/[\r\n]/.test(value)) throw new InvalidOption(`${flag} ${path} has more than one line: it must hold one value on one line`);
  if (/\s/.test(value)) throw new InvalidOption(`${flag} ${path} holds spaces: it must hold one value, with no spaces`);
  return value;
}

/** A backup key as `pgdb backup key` prints it; the message never shows the value. */
export function checkBackupKey(source: string, value: string): string {
  const body = value.slice(value.indexOf(':') + 1);
  if (!BACKUP_KEY_PATTERN.test(value) || Buffer.from(body, 'base64url').toString('base64url') !== body) {
    throw new InvalidOption(`${source} holds no backup key: expected one line like pgdb-backup-key-1:<43 characters of base64url>, as \`pgdb backup key\` prints it`);
  }
  return value;
}

const S3_KEY_FILE_SETTINGS = ['PGDB_BACKUP_S3_ACCESS_KEY_FILE', 'PGDB_BACKUP_S3_SECRET_KEY_FILE'] as const;

/**
 * Reads and checks the secret files given to bootstrap: the two S3 key files
 * go together and exclude the --daemon-env settings naming files already on
 * the server.
 */
export function readBackupSecrets(
  files: BackupSecretFiles,
  daemonEnv: Record<string, string> = {},
  read?: (path: string) => string,
): BackupSecrets {
  const secrets: BackupSecrets = {};
  const access = files.s3AccessKeyFile;
  const secret = files.s3SecretKeyFile;
  if ((access === undefined) !== (secret === undefined)) {
    throw new InvalidOption(
      `--s3-access-key-file and --s3-secret-key-file go together: ${access === undefined ? '--s3-access-key-file' : '--s3-secret-key-file'} is missing`,
    );
  }
  if (access !== undefined && secret !== undefined) {
    const onServer = S3_KEY_FILE_SETTINGS.filter((key) => key in daemonEnv);
    if (onServer.length > 0) {
      throw new InvalidOption(
        `--daemon-env ${onServer.join(' and ')} names key files already on the server, and --s3-access-key-file/--s3-secret-key-file copy them there: give one or the other`,
      );
    }
    secrets.s3AccessKey = readSecretFile('--s3-access-key-file', access, read);
    secrets.s3SecretKey = readSecretFile('--s3-secret-key-file', secret, read);
  }
  if (files.backupKeyFile !== undefined) {
    secrets.backupKey = checkBackupKey(`--backup-key-file ${files.backupKeyFile}`, readSecretFile('--backup-key-file', files.backupKeyFile, read));
  }
  return secrets;
}

const S3_SETTINGS = ['PGDB_BACKUP_S3_ENDPOINT', 'PGDB_BACKUP_S3_BUCKET', 'PGDB_BACKUP_S3_REGION'] as const;

/**
 * S3 backups need the endpoint, bucket and region and both keys (as files
 * bootstrap copies, or files already on the server): with any of them, all.
 * Returns a message naming what is missing, or undefined.
 */
export function missingS3Settings(daemonEnv: Record<string, string>, carriesKeys: boolean): string | undefined {
  const keysOnServer = S3_KEY_FILE_SETTINGS.filter((key) => daemonEnv[key]);
  const given = S3_SETTINGS.filter((key) => daemonEnv[key]);
  if (!carriesKeys && keysOnServer.length === 0 && given.length === 0) return undefined;
  const missing: string[] = S3_SETTINGS.filter((key) => !daemonEnv[key]).map((key) => `--daemon-env ${key}`);
  if (!carriesKeys && keysOnServer.length < 2) {
    missing.push(
      keysOnServer.length === 0
        ? '--s3-access-key-file and --s3-secret-key-file'
        : `--daemon-env ${S3_KEY_FILE_SETTINGS.find((key) => !daemonEnv[key])}`,
    );
  }
  return missing.length > 0 ? `S3 backups need the endpoint, bucket, region and both keys; missing: ${missing.join(', ')}` : undefined;
}

/** The settings as `pulumi config` values (strings; lists as JSON). */
export function settingsToConfig(settings: InfraSettings): Record<string, string> {
  return {
    [CONFIG_KEYS.location]: settings.location,
    [CONFIG_KEYS.serverType]: settings.serverType,
    [CONFIG_KEYS.image]: settings.image,
    [CONFIG_KEYS.volumeSizeGb]: String(settings.volumeSizeGb),
    [CONFIG_KEYS.sshPublicKey]: settings.sshPublicKey,
    [CONFIG_KEYS.allowSsh]: JSON.stringify(settings.allowSsh),
    [CONFIG_KEYS.allowApi]: JSON.stringify(settings.allowApi),
    [CONFIG_KEYS.allowPostgres]: JSON.stringify(settings.allowPostgres),
    [CONFIG_KEYS.postgresPorts]: settings.postgresPorts,
  };
}

/** Hetzner firewall rules: one inbound TCP rule per opened port (range) with its CIDRs. */
export interface FirewallRule {
  direction: 'in';
  protocol: 'tcp';
  port: string;
  sourceIps: string[];
  description: string;
}

/**
 * How long a resize (`pgdb infra init --type` on an existing server) keeps the
 * server down, as the CLI announces it: an estimate (a clean shutdown, the
 * type change, a boot, pgdbd and the databases starting), not measured on
 * Hetzner Cloud; the CLI prints what it measured after each resize.
 */
export const RESIZE_DOWNTIME = 'typically 1 to 3 minutes';

export function firewallRules(settings: Pick<InfraSettings, 'allowSsh' | 'allowApi' | 'allowPostgres' | 'postgresPorts'>): FirewallRule[] {
  const rules: FirewallRule[] = [];
  const add = (port: string, sourceIps: string[], description: string) => {
    if (sourceIps.length > 0) rules.push({ direction: 'in', protocol: 'tcp', port, sourceIps, description });
  };
  add('22', settings.allowSsh, 'SSH');
  add(String(API_PORT), settings.allowApi, 'pgdbd API');
  add(settings.postgresPorts, settings.allowPostgres, 'Postgres databases');
  // pgdbd gets its certificate over ACME http-01 (PGDB_TLS=acme, the default for the server's
  // public IPv4): the CA validates from anywhere on port 80, where only the challenge path answers;
  // or over tls-alpn-01 on port 443 when another program holds port 80 (a listener open only
  // while a challenge is validated, answering only ALPN acme-tls/1).
  add('80', ['0.0.0.0/0', '::/0'], 'ACME http-01 (pgdbd certificates)');
  add('443', ['0.0.0.0/0', '::/0'], 'ACME tls-alpn-01 (pgdbd certificates, when port 80 is held)');
  return rules;
}
