import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { BackupItem, BackupType } from '../../../contract/api.js';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { BackupEvents } from '../database/backup-events.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { BackupQueue } from './backup-queue.js';
import { BackupRepository } from './backup-repository.js';
import { BackupStates } from './backup-states.js';
import { DrillService } from './drill.service.js';
import { pgbackrestError } from './pgbackrest.js';
import { backupDue, drillDue, gapSeconds } from './schedule.js';
import { ServerCatalog } from './server-catalog.js';
import { Stanzas } from './stanzas.js';

/** How often schedules, archiving and overdue backups are looked at. */
const TICK_MS = 30_000;
/** A backup of a large database takes long; the engine's usual timeout would cut it. */
const BACKUP_TIMEOUT_MS = 6 * 60 * 60 * 1000;

/**
 * Continuous archiving's other half: the schedule (backups and drills that
 * are due, the archivers' state, the expiry of destroyed databases'
 * backups), a first full backup of every new database, and backups on
 * demand, queued one at a time with drills (BackupQueue).
 */
@Injectable()
export class BackupService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly queued = new Map<string, { type: BackupType; promise: Promise<BackupItem> }>();
  /** Databases with a scheduled backup waiting in the queue. */
  private readonly scheduledRuns = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    private readonly repository: BackupRepository,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly catalog: ServerCatalog,
    private readonly states: BackupStates,
    private readonly stanzas: Stanzas,
    private readonly drills: DrillService,
    private readonly queue: BackupQueue,
    private readonly events: BackupEvents,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'backup' });
    events.onReady((record) => this.afterDeploy(record));
  }

  onApplicationBootstrap(): void {
    if (!this.repository.enabled) return;
    this.schedule(5_000);
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick()
        .catch((error: Error) => this.logger.warn({ err: error.message }, 'backup schedule check failed'))
        .finally(() => this.schedule(TICK_MS));
    }, delayMs);
    this.timer.unref();
  }

  /** A new database (deploy, claim, restore): its stanza, then a first full backup, so that it is restorable from now on. */
  private afterDeploy(record: RegistryRecord): void {
    if (!record.backup) return;
    void this.backup(record.name, 'full').catch((error: Error) =>
      this.logger.warn({ database: record.name, err: error.message }, 'first backup failed; the schedule retries it'),
    );
  }

  /**
   * A destroyed database's backups live as long as its last full backups
   * would have: PGDB_BACKUP_RETENTION_FULL times the full schedule's gap.
   */
  private async expireDestroyed(now: Date): Promise<void> {
    const keepMs = this.config.backup.retentionFull * gapSeconds([this.states.schedules.full], new Date()) * 1000;
    for (const entry of await this.registry.destroyed()) {
      if (now.getTime() - Date.parse(entry.destroyed_at) < keepMs) continue;
      this.logger.info({ database: entry.name, stanza: entry.backup.stanza, destroyedAt: entry.destroyed_at }, 'the backups of a destroyed database expired');
      await this.runtime.deleteArchive(entry.backup, entry.postgres_version);
      await this.registry.forgetDestroyed(entry.backup.stanza);
    }
  }

  /** Due backups, and the archiver's state of every running database. */
  async tick(): Promise<void> {
    this.catalog.retry();
    await this.expireDestroyed(new Date()).catch((error: Error) => this.logger.warn({ err: error.message }, 'expiring the backups of destroyed databases failed'));
    const records = (await this.registry.list()).filter((r) => r.backup && !r.pending && !r.stopped);
    const now = new Date();
    // The archivers first: they are cheap, and what makes a failure loud quickly.
    await Promise.all(records.map((record) => this.stanzas.readArchiver(record).catch(() => undefined)));
    for (const record of records) {
      if (this.stopped) return;
      const state = this.states.of(record);
      if (!state.backups) await this.stanzas.refresh(record).catch(() => undefined);
      if (backupDue(state.backups ?? [], now, this.states.schedules) && !this.queued.has(record.name) && !this.scheduledRuns.has(record.name)) {
        this.scheduled(record.name);
      }
      if (drillDue(this.states.drills.get(record.backup!.stanza)?.at, state.backups ?? [], now, this.states.schedules.drill) && !this.drills.running(record.name)) {
        void this.drills.drill(record.name).catch((error: Error) => this.logger.error({ database: record.name, err: error.message }, 'scheduled restore drill could not run'));
      }
    }
    this.events.problemsChanged();
  }

  /**
   * A scheduled backup: queued like any other, but what is due is decided
   * again when its turn comes, from the repository's list read then. The
   * list the tick saw may predate a backup that finished meanwhile (the first
   * one after a deploy), and a second full backup would follow at once.
   */
  private scheduled(name: string): void {
    const run = this.queue.run(async () => {
      const record = await this.registry.find(name);
      if (!record?.backup || record.pending || record.stopped || this.queued.has(name)) return;
      const type = backupDue(await this.stanzas.refresh(record), new Date(), this.states.schedules);
      if (type) await this.runBackup(name, type);
    });
    this.scheduledRuns.add(name);
    void run
      .catch((error: Error) => this.logger.error({ database: name, err: error.message }, 'scheduled backup failed'))
      .finally(() => {
        this.scheduledRuns.delete(name);
        this.events.problemsChanged();
      });
  }

  backup(name: string, type: BackupType = 'full'): Promise<BackupItem> {
    // A request joins a pending backup of the same type; another type runs after it
    // (a differential asked for while the first full one finishes is a differential).
    const pending = this.queued.get(name);
    if (pending?.type === type) return pending.promise;
    const run = this.queue.run(() => this.runBackup(name, type));
    const entry = {
      type,
      promise: run.finally(() => {
        if (this.queued.get(name) === entry) this.queued.delete(name);
        this.events.problemsChanged();
      }),
    };
    this.queued.set(name, entry);
    return entry.promise;
  }

  private async runBackup(name: string, type: BackupType): Promise<BackupItem> {
    const record = await this.running(name);
    const identity = record.backup!;
    const state = this.states.of(record);
    const log = this.logger.child({ database: name, stanza: identity.stanza });
    const started = performance.now();
    try {
      await this.stanzas.ensure(record);
      const result = await this.stanzas.run(record, ['backup', `--type=${type}`], BACKUP_TIMEOUT_MS);
      if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `backup of "${name}" failed: ${pgbackrestError(result)}`);
      const backups = await this.stanzas.refresh(record);
      const newest = backups.at(-1);
      if (!newest) throw new DomainError('BACKUP_FAILED', `backup of "${name}" finished but the repository lists none`);
      delete state.lastError;
      log.info({ label: newest.label, type: newest.type, ms: Math.round(performance.now() - started), bytes: newest.repo_bytes }, 'backup finished');
      return newest;
    } catch (error) {
      // A database destroyed or stopped meanwhile is no backup failure.
      const current = await this.registry.find(name);
      if (current && !current.stopped && current.pending !== 'destroying') state.lastError = (error as Error).message;
      throw error;
    }
  }

  private async running(name: string): Promise<RegistryRecord> {
    this.repository.requireEnabled();
    const record = await this.registry.find(name);
    if (!record) throw new DomainError('DB_NOT_FOUND', `no database named "${name}"`);
    if (!record.backup) throw new DomainError('NO_BACKUP', `"${name}" was made while backups were off and has no stanza yet; the daemon turns its archiving on in the background`);
    if (record.pending) throw new DomainError('DB_BUSY', `"${name}" is being ${record.pending === 'creating' ? 'created' : 'destroyed'}`);
    if (record.stopped) throw new DomainError('DB_STOPPED', `"${name}" is stopped; \`pgdb start ${name}\` first`);
    return record;
  }

}
