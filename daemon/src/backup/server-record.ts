/**
 * The server record: the registry (every database's stanza and backup
 * passphrase among it) sealed with the server's backup key and kept in the
 * backup repository, so that a lost server is rebuilt from the repository
 * and the key alone.
 *
 * The key is 32 random bytes, written as `pgdb-backup-key-1:<base64url>`.
 * A record is sealed with AES-256-GCM under a key derived from it by HKDF
 * (SHA-256, a fresh salt per record), so a wrong key is told apart from a
 * damaged record: GCM's tag fails for both, and the format is checked first.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { DestroyedRecord, RegistryFile } from '../registry/registry.types.js';

const KEY_PREFIX = 'pgdb-backup-key-1:';
const MAGIC = Buffer.from('PGDBSRV1');
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HKDF_INFO = 'pgdb server record';

/** What is sealed: the whole registry file, and where it came from. */
export interface ServerRecord {
  format: 1;
  written_at: string;
  /** The server's public host when it was written (for the operator; never trusted). */
  public_host: string;
  registry: RegistryFile;
}

export class BackupKeyError extends Error {}

/** A new key, as the key file holds it. */
export function newBackupKey(): string {
  return `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The key's 32 bytes; throws a BackupKeyError naming the problem when `text` is no key. */
export function parseBackupKey(text: string): Buffer {
  const trimmed = text.trim();
  if (!trimmed.startsWith(KEY_PREFIX)) {
    throw new BackupKeyError(`it does not start with ${KEY_PREFIX} (a key is what \`pgdb backup key\` printed)`);
  }
  const bytes = Buffer.from(trimmed.slice(KEY_PREFIX.length), 'base64url');
  if (bytes.length !== 32 || bytes.toString('base64url') !== trimmed.slice(KEY_PREFIX.length)) {
    throw new BackupKeyError('it is not 32 bytes in base64url after the prefix (was it cut short when copied?)');
  }
  return bytes;
}

export function sealServerRecord(record: ServerRecord, key: Buffer): Buffer {
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', derive(key, salt), iv);
  cipher.setAAD(MAGIC);
  const body = Buffer.concat([cipher.update(JSON.stringify(record), 'utf8'), cipher.final()]);
  return Buffer.concat([MAGIC, salt, iv, cipher.getAuthTag(), body]);
}

/** Why a sealed record could not be opened: not one at all, or a key that does not open it. */
export class ServerRecordError extends Error {
  constructor(readonly reason: 'format' | 'key', message: string) {
    super(message);
  }
}

export function openServerRecord(sealed: Buffer, key: Buffer): ServerRecord {
  const header = MAGIC.length + SALT_BYTES + IV_BYTES + TAG_BYTES;
  if (sealed.length <= header || !sealed.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ServerRecordError('format', 'the repository\'s server record is not one pgdb wrote (bad header)');
  }
  let offset = MAGIC.length;
  const salt = sealed.subarray(offset, (offset += SALT_BYTES));
  const iv = sealed.subarray(offset, (offset += IV_BYTES));
  const tag = sealed.subarray(offset, (offset += TAG_BYTES));
  const decipher = createDecipheriv('aes-256-gcm', derive(key, salt), iv);
  decipher.setAAD(MAGIC);
  decipher.setAuthTag(tag);
  let text: string;
  try {
    text = Buffer.concat([decipher.update(sealed.subarray(offset)), decipher.final()]).toString('utf8');
  } catch {
    throw new ServerRecordError(
      'key',
      'the backup key does not open the repository\'s server record: this server\'s key is not the one the backups were made with (or the record is damaged)',
    );
  }
  let record: ServerRecord;
  try {
    record = JSON.parse(text) as ServerRecord;
  } catch {
    throw new ServerRecordError('format', 'the repository\'s server record opens but holds no JSON');
  }
  if (record.format !== 1 || !record.registry || !Array.isArray(record.registry.items)) {
    throw new ServerRecordError('format', `the repository's server record has an unknown format (${String(record.format)})`);
  }
  return record;
}

/**
 * What a server that lost its registry can restore from a record: every
 * database and destroyed database with backups whose stanza `known` does
 * not hold, as destroyed entries (restorable by name), marked recovered.
 */
export function recoverable(record: ServerRecord, known: Set<string>): DestroyedRecord[] {
  const found = new Map<string, DestroyedRecord>();
  for (const item of record.registry.items) {
    if (!item.backup || known.has(item.backup.stanza)) continue;
    found.set(item.backup.stanza, {
      name: item.name,
      postgres_version: item.postgres_version,
      backup: item.backup,
      // The last moment the record saw it alive: its backups reach at most that far.
      destroyed_at: record.written_at,
      size_gb: item.size_gb,
      ...(item.memory_mb ? { memory_mb: item.memory_mb } : {}),
      recovered: true,
    });
  }
  for (const entry of record.registry.destroyed ?? []) {
    if (known.has(entry.backup.stanza) || found.has(entry.backup.stanza)) continue;
    found.set(entry.backup.stanza, { ...entry, recovered: true });
  }
  return [...found.values()];
}

function derive(key: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, HKDF_INFO, 32));
}
