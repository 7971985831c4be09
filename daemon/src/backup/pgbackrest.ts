/**
 * What pgdb asks of pgBackRest, as pure functions: the configuration file a
 * database's container carries, the command lines, and how their JSON output
 * is read. pgBackRest runs inside the database's container (archive_command
 * needs it there), or in a short-lived task container from the same image
 * when the database does not run.
 */
import { ADMIN_USER, SOCKET_DIR } from '../postgres/postgres-container.js';
import type { BackupIdentity } from '../registry/registry.types.js';
import type { BackupItem, BackupType } from '../../../contract/api.js';

/** Where the repository is, inside every container that uses it. */
export const REPO_MOUNT = '/var/lib/pgdb-backups';
/** Root-owned 0600 copy in each container; it holds the stanza's passphrase. */
export const CONFIG_PATH = '/etc/pgdb/pgbackrest.conf';
/** At most this long between a commit and its WAL segment being archived. */
export const ARCHIVE_TIMEOUT_SECONDS = 60;
/** pgBackRest's per-operation I/O timeout for a WAL push (its default of 60 s retries for minutes). */
export const ARCHIVE_IO_TIMEOUT_SECONDS = 5;

export interface RepositorySettings {
  /** Full backups kept; the WAL to restore any moment since the oldest is kept with them. */
  retentionFull: number;
  /** Where the repository is: the `repo1-*` lines of its target (backup/targets/). */
  repository: string[];
}

/** Where the container finds the CA bundle for S3 (copied in with the configuration). */
export const S3_CA_PATH = '/etc/pgdb/s3-ca.pem';

/** The data directory in the official image's layout, per major. */
export function dataDirFor(major: number): string {
  return major >= 18 ? `/var/lib/postgresql/${major}/docker` : '/var/lib/postgresql/data';
}

/** The whole pgbackrest.conf of one database. */
export function configFile(identity: BackupIdentity, major: number, settings: RepositorySettings): string {
  const lines = ['# Written by pgdb; holds the stanza\'s encryption passphrase.', '[global]'];
  lines.push(...settings.repository);
  lines.push(
    'repo1-cipher-type=aes-256-cbc',
    `repo1-cipher-pass=${identity.cipher_pass}`,
    `repo1-retention-full=${settings.retentionFull}`,
    // Without it a backup waits for the next scheduled checkpoint (minutes).
    'start-fast=y',
    // zstd at level 1: measured against the default (3) on a 907 MiB database, a full
    // backup 21 % faster, a WAL segment pushed in about 40 % less time, and neither
    // larger; lz4 was no faster and 1.85 times the size (see docs/backups.md).
    'compress-type=zst',
    'compress-level=1',
    'log-level-console=warn',
    'log-level-stderr=warn',
    'log-level-file=off',
    // Backups (one at a time on a server) and restores use both cores: about 25 % faster
    // backups and twice as fast restores; archive-push stays one process.
    '[global:backup]',
    'process-max=2',
    '[global:restore]',
    'process-max=2',
    `[${identity.stanza}]`,
    `pg1-path=${dataDirFor(major)}`,
    `pg1-socket-path=${SOCKET_DIR}`,
    `pg1-user=${ADMIN_USER}`,
    '',
  );
  return lines.join('\n');
}

/** `pgbackrest` with pgdb's configuration and the stanza, then `args`. */
/** pgBackRest's backup labels: 20261129-101500F, with _20261130-020000D for a differential or incremental. */
export const BACKUP_LABEL_PATTERN = /^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/;

/** One word for `sh`: as it is when it holds nothing the shell reads, else single-quoted. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./=:+-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

export function pgbackrest(stanza: string, ...args: string[]): string[] {
  return ['pgbackrest', `--config=${CONFIG_PATH}`, `--stanza=${stanza}`, ...args];
}

/** Postgres settings for continuous archiving into the stanza (given on the command line). */
export function archiveSettings(stanza: string): string[] {
  return [
    '-c', 'archive_mode=on',
    // A repository that does not answer fails a push within about 50 s instead of
    // pgBackRest's 9 minutes of retries, so pg_stat_archiver says so soon; the
    // archiver retries the segment anyway.
    '-c', `archive_command=${pgbackrest(stanza, 'archive-push', `--io-timeout=${ARCHIVE_IO_TIMEOUT_SECONDS}`, '%p').join(' ')}`,
    '-c', `archive_timeout=${ARCHIVE_TIMEOUT_SECONDS}`,
  ];
}

export type { BackupType };

/** One backup, as parseInfo reads it from `pgbackrest info`: the API's item. */
export type BackupSummary = BackupItem;

/** The parts of `pgbackrest info --output=json` pgdb reads. */
interface InfoStanza {
  name: string;
  status?: { code: number; message: string };
  backup?: Array<{
    label: string;
    type: BackupType;
    timestamp: { start: number; stop: number };
    info?: { size?: number; repository?: { delta?: number; size?: number } };
    error?: boolean;
  }>;
  archive?: Array<{ min?: string | null; max?: string | null }>;
}

/**
 * The stanza's backups, oldest first. An unknown stanza, or one with no
 * backup yet, has none. Throws on output that is not pgBackRest's JSON.
 */
export function parseInfo(stdout: string, stanza: string): BackupSummary[] {
  let parsed: InfoStanza[];
  try {
    parsed = JSON.parse(stdout) as InfoStanza[];
  } catch {
    throw new Error(`pgbackrest info printed no JSON: ${stdout.slice(0, 200)}`);
  }
  if (!Array.isArray(parsed)) throw new Error('pgbackrest info printed an unexpected shape');
  const entry = parsed.find((s) => s.name === stanza);
  return (entry?.backup ?? [])
    .filter((b) => !b.error)
    .map((b) => ({
      label: b.label,
      type: b.type,
      started_at: new Date(b.timestamp.start * 1000).toISOString(),
      finished_at: new Date(b.timestamp.stop * 1000).toISOString(),
      size_bytes: b.info?.size ?? 0,
      repo_bytes: b.info?.repository?.delta ?? b.info?.repository?.size ?? 0,
    }))
    .sort((a, b) => a.started_at.localeCompare(b.started_at));
}

/** pgBackRest's `--target` form of a moment: `YYYY-MM-DD HH:MM:SS.mmm+00`. */
export function targetTime(moment: Date): string {
  return `${moment.toISOString().replace('T', ' ').replace('Z', '')}+00`;
}

/** The names pgdb gives the restore points it makes (a drill's marker): nothing a shell or pgBackRest reads specially. */
export const RESTORE_POINT_PATTERN = /^pgdb-[a-z0-9-]{1,50}$/;

/**
 * The restore options for a target: a moment (recovery stops just before
 * the first commit after it), a backup (its consistent end), a backup and
 * then the WAL up to a named restore point (recovery stops at it, and fails
 * when the archive ends before it), or the latest (all archived WAL).
 */
export function restoreTarget(target: { time?: Date; backup?: string; restorePoint?: string }): string[] {
  if (target.time) {
    return ['--type=time', `--target=${targetTime(target.time)}`, '--target-exclusive', '--target-action=promote'];
  }
  if (target.restorePoint !== undefined) {
    if (!RESTORE_POINT_PATTERN.test(target.restorePoint)) throw new Error(`not a restore point pgdb makes: ${JSON.stringify(target.restorePoint)}`);
    return [...(target.backup ? [`--set=${target.backup}`] : []), '--type=name', `--target=${target.restorePoint}`, '--target-action=promote'];
  }
  if (target.backup) return [`--set=${target.backup}`, '--type=immediate', '--target-action=promote'];
  return [];
}

/** pgBackRest's own error line(s), without its progress noise. */
export function pgbackrestError(result: { stdout: string; stderr: string }): string {
  return lastLines(`${result.stderr}\n${result.stdout}`);
}

/** The last error lines of a command's output (else its last lines), joined on one line. */
export function lastLines(text: string, count = 5): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /ERROR|FATAL|error:/i.test(l));
  return (errors.length > 0 ? errors : lines).slice(-count).join(' | ') || 'no output';
}
