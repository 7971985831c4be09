/**
 * The shell that `pgdb infra bootstrap` runs on the server as root, over
 * SSH, after the release archive was copied there. Plain code (no Pulumi), so
 * tests read exactly what runs.
 *
 * 1. Mounts the Hetzner volume (formatted ext4 when it was created) at
 *    /mnt/pgdb-data, through /etc/fstab so it comes back after a reboot, and
 *    bind-mounts its pgdb/ and docker/ folders on /var/lib/pgdb (pgdbd's data
 *    directory: registry, TLS files) and /var/lib/docker (the databases'
 *    Docker volumes), before Docker is installed. Databases then live on the
 *    volume and survive replacing the server. pgdbd and Docker require those
 *    mounts (systemd drop-ins, RequiresMountsFor): after a boot where the
 *    volume did not attach they stay stopped instead of starting on empty
 *    folders of the root disk (a new CA, no databases).
 * 2. Writes the backup secrets given to bootstrap, as root with umask 077:
 *    the S3 keys to /etc/pgdb/s3-access-key and s3-secret-key (0600; install.sh
 *    gets PGDB_BACKUP_S3_ACCESS_KEY_FILE/_SECRET_KEY_FILE pointing there), and
 *    the backup key to /var/lib/pgdb/backup.key only when that file is absent.
 *    A different key already there stops the script before it changes
 *    anything: a server's key is never overwritten.
 * 3. Unpacks the release and runs its scripts/install.sh: a first run
 *    installs, a later one upgrades in place.
 *
 * Secrets (the daemon's token, the backup secrets) never appear in the
 * script: it reads them from standard input (`bootstrapStdin`), one
 * `<name> <base64>` line each, so no quoting can break them. The command
 * provider quotes the whole script in its error when the script fails, and
 * Pulumi prints that error unmasked; standard input is never printed. Other
 * values are passed inline (`VAR=value cmd`): sshd drops the environment a
 * client sends unless told to accept it.
 */
import {
  API_PORT,
  BACKUP_KEY_PATTERN,
  SERVER_BACKUP_KEY_FILE,
  SERVER_S3_ACCESS_KEY_FILE,
  SERVER_S3_SECRET_KEY_FILE,
  type BackupSecrets,
} from './options.js';

export const VOLUME_MOUNT = '/mnt/pgdb-data';
export const DATA_DIR = '/var/lib/pgdb';
export const DOCKER_DIR = '/var/lib/docker';
export const CA_PATH = `${DATA_DIR}/tls/ca.crt`;
export const RELEASES_DIR = '/opt/pgdb-src';

export interface BootstrapScriptInput {
  /** The volume's device, e.g. /dev/disk/by-id/scsi-0HC_Volume_123. */
  device: string;
  /** Where the release archive was copied. */
  archivePath: string;
  releaseId: string;
  /** The server's public IPv4: database URLs use it. */
  publicHost: string;
  /** The address pgdbd and the databases listen on; "" for every address. */
  bindAddress: string;
  postgresPorts: string;
  daemonEnv: Record<string, string>;
  /** Which backup secrets standard input carries (their values never reach the script); none by default. */
  carries?: { s3?: boolean; backupKey?: boolean };
}

/** What standard input carries: the daemon's token, and the backup secrets to write on the server. */
export interface BootstrapSecrets {
  daemonToken: string;
  secrets?: BackupSecrets;
}

/** Which secrets `bootstrapStdin` will carry for these values. */
export function carried(secrets: BackupSecrets = {}): NonNullable<BootstrapScriptInput['carries']> {
  return { s3: secrets.s3AccessKey !== undefined || secrets.s3SecretKey !== undefined, backupKey: secrets.backupKey !== undefined };
}

const SAFE_WORD = /^[A-Za-z0-9_.,:/{}@+=-]*$/;

function word(name: string, value: string): string {
  if (!SAFE_WORD.test(value)) throw new Error(`${name} is not one plain word`);
  return value;
}

export function bootstrapScript(input: BootstrapScriptInput): string {
  const device = word('device', input.device);
  const archive = word('archive path', input.archivePath);
  const release = `${RELEASES_DIR}/${word('release id', input.releaseId)}`;
  const bind = word('bind address', input.bindAddress);
  const carries = { s3: input.carries?.s3 === true, backupKey: input.carries?.backupKey === true };
  const carriesS3 = carries.s3;
  if (carriesS3 && ('PGDB_BACKUP_S3_ACCESS_KEY_FILE' in input.daemonEnv || 'PGDB_BACKUP_S3_SECRET_KEY_FILE' in input.daemonEnv)) {
    throw new Error('the S3 keys are either copied by bootstrap or named in the daemon settings, not both');
  }
  const settings: Array<[string, string]> = [
    ['PGDB_LISTEN', bind ? `${bracket(bind)}:${API_PORT}` : `:${API_PORT}`],
    ['PGDB_PUBLIC_HOST', input.publicHost],
    ['PGDB_PORT_RANGE', input.postgresPorts],
    ...(bind ? ([['PGDB_POSTGRES_BIND', bind]] as Array<[string, string]>) : []),
    ...Object.entries({
      ...input.daemonEnv,
      ...(carriesS3 ? { PGDB_BACKUP_S3_ACCESS_KEY_FILE: SERVER_S3_ACCESS_KEY_FILE, PGDB_BACKUP_S3_SECRET_KEY_FILE: SERVER_S3_SECRET_KEY_FILE } : {}),
    }).sort(([a], [b]) => a.localeCompare(b)),
  ];
  const inline = settings.map(([key, value]) => `${key}=${word(key, value)}`).join(' ');
  return `set -euo pipefail
${readSecrets(carries)}dev=${device}
mnt=${VOLUME_MOUNT}
for _ in $(seq 1 60); do [ -e "$dev" ] && break; sleep 1; done
[ -e "$dev" ] || { echo "pgdb: the volume $dev is not attached to this server" >&2; exit 1; }
blkid "$dev" >/dev/null 2>&1 || mkfs.ext4 -q -L pgdb-data "$dev"
mkdir -p "$mnt"
grep -q "^$dev $mnt " /etc/fstab || echo "$dev $mnt ext4 discard,nofail,defaults 0 2" >>/etc/fstab
mountpoint -q "$mnt" || mount "$mnt"
for pair in pgdb:${DATA_DIR} docker:${DOCKER_DIR}; do
  src="$mnt/\${pair%%:*}" dst="\${pair#*:}"
  mkdir -p "$src" "$dst"
  grep -q "^$src $dst " /etc/fstab || echo "$src $dst none bind,nofail,x-systemd.requires-mounts-for=$mnt 0 0" >>/etc/fstab
  mountpoint -q "$dst" || mount "$dst"
done
chmod 0700 "$mnt/pgdb"
for unit in pgdbd docker; do
  mkdir -p "/etc/systemd/system/$unit.service.d"
  printf '[Unit]\\nRequiresMountsFor=%s\\n' "$([ "$unit" = pgdbd ] && echo '${DATA_DIR} ${DOCKER_DIR}' || echo '${DOCKER_DIR}')" >"/etc/systemd/system/$unit.service.d/pgdb-volume.conf"
done
systemctl daemon-reload
${secretsPart(carries)}rm -rf ${release}.tmp && mkdir -p ${release}.tmp
tar -xzf ${archive} -C ${release}.tmp --no-same-owner
rm -rf ${release} && mv ${release}.tmp ${release}
PGDB_TOKEN="$(unpack "$token")" ${inline} bash ${release}/scripts/install.sh
`;
}

/** The names of the lines of standard input, and the shell variables they fill. */
const STDIN_LINES = { token: 'token', 's3-access-key': 's3_access', 's3-secret-key': 's3_secret', 'backup-key': 'want' } as const;

/**
 * What the install command gets on standard input: the token and the backup
 * secrets, one `<name> <base64 of the value and a newline>` line each.
 */
export function bootstrapStdin(input: BootstrapSecrets): string {
  const secrets = input.secrets ?? {};
  word('the daemon token', input.daemonToken);
  if (carried(secrets).s3 && (!secrets.s3AccessKey || !secrets.s3SecretKey)) throw new Error('the S3 access key and secret key go together');
  if (secrets.backupKey !== undefined && !BACKUP_KEY_PATTERN.test(secrets.backupKey)) throw new Error('the backup key is not one');
  const values: Record<keyof typeof STDIN_LINES, string | undefined> = {
    token: input.daemonToken,
    's3-access-key': input.secrets?.s3AccessKey,
    's3-secret-key': input.secrets?.s3SecretKey,
    'backup-key': input.secrets?.backupKey,
  };
  return Object.entries(values)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name} ${Buffer.from(`${value}\n`, 'utf8').toString('base64')}\n`)
    .join('');
}

/** The shell that reads standard input into variables (base64 still), and checks that each expected one came. */
function readSecrets(carries: { s3: boolean; backupKey: boolean }): string {
  const names: Array<keyof typeof STDIN_LINES> = ['token', ...(carries.s3 ? (['s3-access-key', 's3-secret-key'] as const) : []), ...(carries.backupKey ? (['backup-key'] as const) : [])];
  const variables = names.map((name) => STDIN_LINES[name]);
  return [
    variables.map((variable) => `${variable}=`).join(' '),
    'while read -r name value; do',
    '  case "$name" in',
    ...names.map((name) => `    ${name}) ${STDIN_LINES[name]}=$value ;;`),
    '  esac',
    'done',
    `for value in ${variables.map((variable) => `"$${variable}"`).join(' ')}; do`,
    '  [ -n "$value" ] || { echo "[pgdb-bootstrap] ERROR: the secrets did not arrive on standard input" >&2; exit 1; }',
    'done',
    'unpack() { printf %s "$1" | base64 -d; }',
  ]
    .map((line) => `${line}\n`)
    .join('');
}

/** The shell that writes the backup secrets (nothing without any). */
function secretsPart(carries: { s3: boolean; backupKey: boolean }): string {
  const lines: string[] = [];
  if (carries.backupKey) {
    // Checked first: a different key already there stops the script before anything changes.
    lines.push(
      `key=${SERVER_BACKUP_KEY_FILE}`,
      `if [ -e "$key" ] && [ "$(tr -d '[:space:]' <"$key")" != "$(unpack "$want" | tr -d '[:space:]')" ]; then`,
      `  echo "[pgdb-bootstrap] ERROR: $key on the server holds another backup key than --backup-key-file; a server's key is never overwritten, and nothing was changed" >&2`,
      '  exit 1',
      'fi',
    );
  }
  if (carries.s3 || carries.backupKey) {
    lines.push(
      '(',
      'umask 077',
      // <path> <base64>: the secret as root, 0600; an identical file is left as it is.
      'put() {',
      '  unpack "$2" >"$1.new"',
      '  chown 0:0 "$1.new"',
      '  chmod 0600 "$1.new"',
      '  if cmp -s "$1.new" "$1"; then rm -f "$1.new"; chmod 0600 "$1"; else mv -f "$1.new" "$1"; fi',
      '}',
    );
    if (carries.s3) {
      lines.push(
        `mkdir -p ${dirname(SERVER_S3_ACCESS_KEY_FILE)}`,
        `put ${SERVER_S3_ACCESS_KEY_FILE} "$s3_access"`,
        `put ${SERVER_S3_SECRET_KEY_FILE} "$s3_secret"`,
      );
    }
    if (carries.backupKey) lines.push('if [ ! -e "$key" ]; then put "$key" "$want"; fi');
    lines.push(')');
  }
  return lines.map((line) => `${line}\n`).join('');
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

function bracket(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/** Prints the daemon's CA certificate when it has one ("secure by default"), else nothing. */
export const READ_CA_SCRIPT = `cat ${CA_PATH} 2>/dev/null || true`;
