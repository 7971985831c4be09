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
 *    volume and survive replacing the server.
 * 2. Writes the backup secrets given to bootstrap, as root with umask 077:
 *    the S3 keys to /etc/pgdb/s3-access-key and s3-secret-key (0600; install.sh
 *    gets PGDB_BACKUP_S3_ACCESS_KEY_FILE/_SECRET_KEY_FILE pointing there), and
 *    the backup key to /var/lib/pgdb/backup.key only when that file is absent.
 *    A different key already there stops the script before it changes
 *    anything: a server's key is never overwritten. Values travel in base64,
 *    inside the script (a Pulumi secret), so no quoting can break them.
 * 3. Unpacks the release and runs its scripts/install.sh: a first run
 *    installs, a later one upgrades in place.
 *
 * Values are passed inline (`VAR=value cmd`): sshd drops the environment a
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
  daemonToken: string;
  daemonEnv: Record<string, string>;
  /** Secrets to write on the server; none by default. */
  secrets?: BackupSecrets;
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
  const secrets = input.secrets ?? {};
  const carriesS3 = secrets.s3AccessKey !== undefined || secrets.s3SecretKey !== undefined;
  if (carriesS3 && (!secrets.s3AccessKey || !secrets.s3SecretKey)) throw new Error('the S3 access key and secret key go together');
  if (carriesS3 && ('PGDB_BACKUP_S3_ACCESS_KEY_FILE' in input.daemonEnv || 'PGDB_BACKUP_S3_SECRET_KEY_FILE' in input.daemonEnv)) {
    throw new Error('the S3 keys are either copied by bootstrap or named in the daemon settings, not both');
  }
  if (secrets.backupKey !== undefined && !BACKUP_KEY_PATTERN.test(secrets.backupKey)) throw new Error('the backup key is not one');
  const settings: Array<[string, string]> = [
    ['PGDB_TOKEN', input.daemonToken],
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
dev=${device}
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
${secretsPart(secrets)}rm -rf ${release}.tmp && mkdir -p ${release}.tmp
tar -xzf ${archive} -C ${release}.tmp --no-same-owner
rm -rf ${release} && mv ${release}.tmp ${release}
${inline} bash ${release}/scripts/install.sh
`;
}

const b64 = (value: string) => `'${Buffer.from(`${value}\n`, 'utf8').toString('base64')}'`;

/** The shell that writes the backup secrets (nothing without any). */
function secretsPart(secrets: BackupSecrets): string {
  const lines: string[] = [];
  if (secrets.backupKey !== undefined) {
    // Checked first: a different key already there stops the script before anything changes.
    lines.push(
      `key=${SERVER_BACKUP_KEY_FILE} want=${b64(secrets.backupKey)}`,
      `if [ -e "$key" ] && [ "$(tr -d '[:space:]' <"$key")" != "$(printf %s "$want" | base64 -d | tr -d '[:space:]')" ]; then`,
      `  echo "[pgdb-bootstrap] ERROR: $key on the server holds another backup key than --backup-key-file; a server's key is never overwritten, and nothing was changed" >&2`,
      '  exit 1',
      'fi',
    );
  }
  if (secrets.s3AccessKey !== undefined || secrets.backupKey !== undefined) {
    lines.push(
      '(',
      'umask 077',
      // <path> <base64>: the secret as root, 0600; an identical file is left as it is.
      'put() {',
      '  printf %s "$2" | base64 -d >"$1.new"',
      '  chown 0:0 "$1.new"',
      '  chmod 0600 "$1.new"',
      '  if cmp -s "$1.new" "$1"; then rm -f "$1.new"; chmod 0600 "$1"; else mv -f "$1.new" "$1"; fi',
      '}',
    );
    if (secrets.s3AccessKey !== undefined && secrets.s3SecretKey !== undefined) {
      lines.push(
        `mkdir -p ${dirname(SERVER_S3_ACCESS_KEY_FILE)}`,
        `put ${SERVER_S3_ACCESS_KEY_FILE} ${b64(secrets.s3AccessKey)}`,
        `put ${SERVER_S3_SECRET_KEY_FILE} ${b64(secrets.s3SecretKey)}`,
      );
    }
    if (secrets.backupKey !== undefined) lines.push('if [ ! -e "$key" ]; then put "$key" "$want"; fi');
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
