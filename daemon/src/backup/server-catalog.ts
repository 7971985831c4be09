import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryFile } from '../registry/registry.types.js';
import { BackupRepository } from './backup-repository.js';
import type { ServerRecordStore } from './server-record-store.js';
import {
  BackupKeyError,
  newBackupKey,
  openServerRecord,
  parseBackupKey,
  recoverable,
  sealServerRecord,
  ServerRecordError,
} from './server-record.js';

/**
 * The server's backup key, and the registry kept in the repository sealed
 * with it (see server-record.ts).
 *
 * At start it reads the repository's record before writing any: databases
 * there that this registry does not know (a server rebuilt after losing its
 * data directory) become destroyed entries, restorable by name. A record the
 * key does not open is never overwritten: it is a problem in health, and
 * listing restorable databases says why, until the right key is given.
 * After that, every registry change is written to the repository (writes
 * coalesce; a failed one is retried by the next change or tick).
 */
@Injectable()
export class ServerCatalog implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger: Logger;
  readonly keyFile: string;
  private keyText: string | undefined;
  private key: Buffer | undefined;
  private store: ServerRecordStore | undefined;
  /** Set once the repository's record was read (or found absent) and opened: only then is it written. */
  private opened = false;
  /** The repository's record cannot be opened with this key: never written over. */
  private mismatch: string | undefined;
  private readError: string | undefined;
  private writeError: string | undefined;
  private dirty = false;
  private writing: Promise<void> | undefined;
  private reading: Promise<void> | undefined;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    private readonly repository: BackupRepository,
    private readonly registry: RegistryService,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'backup', part: 'server-record' });
    this.keyFile = config.backup.keyFile ?? join(config.dataDir, 'backup.key');
  }

  /** Loads the key, or makes one when none is configured and the default file is absent. Bad keys stop the daemon. */
  async onModuleInit(): Promise<void> {
    if (!this.repository.enabled) return;
    let text = await readFile(this.keyFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' && this.config.backup.keyFile === undefined) return undefined;
      throw new Error(`PGDB_BACKUP_KEY_FILE ${this.keyFile} cannot be read (${error.code ?? error.message})`);
    });
    if (text === undefined) {
      text = newBackupKey();
      const handle = await open(this.keyFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await handle.writeFile(`${text}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      this.logger.warn({ keyFile: this.keyFile }, 'made the server\'s backup key; keep a copy off this server (`pgdb backup key`): the backups cannot be recovered without it');
    }
    try {
      this.key = parseBackupKey(text);
    } catch (error) {
      if (error instanceof BackupKeyError) throw new Error(`the backup key in ${this.keyFile} is not valid: ${error.message}`);
      throw error;
    }
    this.keyText = text.trim();
    this.store = this.repository.target.recordStore();
  }

  onApplicationBootstrap(): void {
    if (!this.store) return;
    this.registry.onChange(() => this.changed());
    void this.sync();
  }

  /** The key as `pgdb backup key` prints it. */
  printable(): { key: string; file: string; location: string } {
    if (!this.keyText || !this.store) throw new DomainError('NO_BACKUP', 'backups are off on this server (PGDB_BACKUP=off)');
    return { key: this.keyText, file: this.keyFile, location: this.store.location };
  }

  /** Throws when the repository belongs to another key: nothing restorable can be listed honestly then. */
  requireMatchingKey(): void {
    if (this.mismatch) throw new DomainError('BACKUP_KEY_MISMATCH', this.mismatch);
  }

  /** What makes health degraded. */
  problems(): string[] {
    return [this.mismatch, this.readError, this.writeError].filter((p): p is string => Boolean(p));
  }

  /** Retries what failed (a store that did not answer); called by the backup schedule's tick. */
  retry(): void {
    if (!this.store || this.mismatch) return;
    if (!this.opened) void this.sync();
    else if (this.writeError) this.changed();
  }

  /** Reads and opens the repository's record, adopts what this registry lacks, then writes ours. */
  private sync(): Promise<void> {
    this.reading ??= this.readRecord().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async readRecord(): Promise<void> {
    const store = this.store!;
    let sealed: Buffer | undefined;
    try {
      sealed = await store.read();
    } catch (error) {
      this.readError = `the server record in the backup repository cannot be read, so it is not updated either: ${(error as Error).message}`;
      this.logger.warn({ err: (error as Error).message }, 'could not read the server record; retrying');
      return;
    }
    this.readError = undefined;
    if (sealed) {
      try {
        const record = openServerRecord(sealed, this.key!);
        const adopted = await this.registry.adoptRecovered((known) => recoverable(record, known));
        if (adopted.length > 0) {
          this.logger.warn(
            { databases: adopted.map((d) => d.name), writtenAt: record.written_at, by: record.public_host },
            'the repository\'s server record lists databases this registry does not know: they are restorable by name (`pgdb backups --destroyed`)',
          );
        }
      } catch (error) {
        if (!(error instanceof ServerRecordError)) {
          this.readError = `the server record in the backup repository could not be merged into the registry: ${(error as Error).message}`;
          return;
        }
        this.mismatch = error.reason === 'key'
          ? `${error.message}; give the key \`pgdb backup key\` printed on the server that made them (PGDB_BACKUP_KEY_FILE, ${this.keyFile}) and restart pgdbd. ${store.location} is left as it is`
          : `${error.message} (${store.location}); it is left as it is, and this server's record is not written`;
        this.logger.error({ location: store.location, err: error.message }, 'the repository\'s server record cannot be opened; it is not overwritten');
        return;
      }
    }
    this.opened = true;
    this.changed();
  }

  private changed(): void {
    if (!this.opened) return;
    this.dirty = true;
    this.writing ??= this.writeLoop().finally(() => {
      this.writing = undefined;
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      try {
        await this.write(await this.registry.snapshot());
        this.writeError = undefined;
      } catch (error) {
        this.writeError = `the server record could not be written to the backup repository (a lost server could not list its databases): ${(error as Error).message}`;
        this.logger.warn({ err: (error as Error).message }, 'could not write the server record; retrying at the next change');
        return;
      }
    }
  }

  private async write(file: RegistryFile): Promise<void> {
    const sealed = sealServerRecord({ format: 1, written_at: new Date().toISOString(), public_host: this.config.publicHost, registry: file }, this.key!);
    await this.store!.write(sealed);
  }
}
