import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type {
  BackupItem,
  BackupsResponse,
  BackupState,
  BackupType,
  DestroyedBackupsResponse,
  DrillResult,
  RestoreRequest,
  RestoreResponse,
  VerifyResponse,
} from '../../../contract/api.js';
import { join } from 'node:path';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DeployService } from '../deploy/deploy.service.js';
import { randomId } from '../deploy/identifiers.js';
import { Operations } from '../deploy/operations.js';
import { PostgresRuntime } from '../deploy/postgres-runtime.js';
import { ReconcileService } from '../deploy/reconcile.service.js';
import { DOCKER_GATEWAY, LABELS, type DockerGateway } from '../docker/docker.gateway.js';
import { ADMIN_DATABASE, ADMIN_SESSION_OPTIONS, ADMIN_USER, POSTGRES_UID } from '../postgres/postgres-container.js';
import { RegistryService } from '../registry/registry.service.js';
import type { BackupIdentity, DestroyedRecord, RegistryRecord } from '../registry/registry.types.js';
import type { ProblemEntry } from './alerts.js';
import { BackupEvents } from './backup-events.js';
import { describePass, DrillStore, drillScript, parseDrillOutput } from './drill.js';
import { BackupRepository, TASK_LABEL } from './backup-repository.js';
import { ServerCatalog } from './server-catalog.js';
import { backupDue, drillDue, gapSeconds, restoreWindow, schedules, type Schedules } from './schedule.js';
import { dataDirFor, parseInfo, pgbackrest, restoreTarget, shellQuote, type BackupSummary } from './pgbackrest.js';

/** How often schedules, archiving and overdue backups are looked at. */
const TICK_MS = 30_000;
/** A backup of a large database takes long; the engine's usual timeout would cut it. */
const BACKUP_TIMEOUT_MS = 6 * 60 * 60 * 1000;
/** `pgbackrest check` waits this long (at most) for the switched WAL segment to arrive in the repository. */
const CHECK_TIMEOUT_MS = 120_000;
/** The label of a volume a restore fills; a crash's leftover is removed at the next start. */
export const RESTORING_LABEL = 'pgdb.restoring';

interface DatabaseBackupState {
  /** The repository's backups, oldest first; undefined until read. */
  backups?: BackupSummary[];
  lastError?: string;
  archiving?: { failing: boolean; failedCount: number; lastFailure: string | null };
  stanzaReady?: boolean;
}

/**
 * Continuous archiving's other half: stanzas, scheduled and on-demand
 * backups (one at a time), listings with the restorable window, restores
 * into a new database (point in time, a backup, or the latest), and the
 * state that status and health report.
 */
@Injectable()
export class BackupService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly states = new Map<string, DatabaseBackupState>();
  /** Backups run one at a time: each is I/O-heavy, and the machine serves databases. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly queued = new Map<string, { type: BackupType; promise: Promise<BackupItem> }>();
  /** Databases with a scheduled backup waiting in the queue. */
  private readonly scheduledRuns = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly schedules: Schedules;
  private readonly drills: DrillStore;
  private readonly drilling = new Map<string, Promise<VerifyResponse>>();

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly repository: BackupRepository,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly reconciliation: ReconcileService,
    private readonly operations: Operations,
    private readonly deployments: DeployService,
    private readonly catalog: ServerCatalog,
    private readonly events: BackupEvents,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'backup' });
    this.schedules = schedules({ ...config.backup.schedule, drill: config.backup.drillSchedule });
    this.drills = new DrillStore(join(config.dataDir, 'drills.json'));
    events.onReady((record) => this.afterDeploy(record));
    events.report({
      stateFor: (record) => this.stateFor(record),
      problemEntries: () => this.problemEntries(),
      location: () => (this.repository.enabled ? this.repository.describe() : null),
    });
  }

  onApplicationBootstrap(): void {
    if (!this.repository.enabled) return;
    void this.reconciliation.ensureReconciled().then(
      () => this.removeLeftovers().catch((error: Error) => this.logger.warn({ err: error.message }, 'could not remove what an interrupted restore left')),
      () => undefined,
    );
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
    const keepMs = this.config.backup.retentionFull * gapSeconds([this.schedules.full], new Date()) * 1000;
    for (const entry of await this.registry.destroyed()) {
      if (now.getTime() - Date.parse(entry.destroyed_at) < keepMs) continue;
      this.logger.info({ database: entry.name, stanza: entry.backup.stanza, destroyedAt: entry.destroyed_at }, 'the backups of a destroyed database expired');
      await this.repository.delete(entry.backup, entry.postgres_version, await this.runtime.instanceLabels());
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
    await Promise.all(records.map((record) => this.readArchiver(record).catch(() => undefined)));
    for (const record of records) {
      if (this.stopped) return;
      const state = this.stateOf(record);
      if (!state.backups) await this.refresh(record).catch(() => undefined);
      if (backupDue(state.backups ?? [], now, this.schedules) && !this.queued.has(record.name) && !this.scheduledRuns.has(record.name)) {
        this.scheduled(record.name);
      }
      if (drillDue(this.drills.get(record.backup!.stanza)?.at, state.backups ?? [], now, this.schedules.drill) && !this.drilling.has(record.name)) {
        void this.drill(record.name).catch((error: Error) => this.logger.error({ database: record.name, err: error.message }, 'scheduled restore drill could not run'));
      }
    }
    this.checkAlerts();
  }

  /** Health's problem set may have changed: its alerts compare it with the last one seen (HealthService). */
  checkAlerts(): void {
    this.events.problemsChanged();
  }

  /**
   * A restore drill now: the latest backup of `name` restored into a
   * throwaway volume by a task container (no network with a local
   * repository, never a published port), started on a socket only, every
   * user table counted, pg_amcheck run; the container and the volume are
   * removed whatever happens. Queued with backups (one at a time). The
   * result is recorded (a failure is a health problem until a drill passes).
   */
  drill(name: string): Promise<VerifyResponse> {
    const pending = this.drilling.get(name);
    if (pending) return pending;
    const run = this.prepareDrill(name).then((prepared) => {
      const queued = this.queue.then(() => this.runDrill(prepared.record, prepared.label));
      this.queue = queued.catch(() => undefined);
      return queued;
    });
    const tracked = run.finally(() => {
      this.drilling.delete(name);
      this.checkAlerts();
    });
    this.drilling.set(name, tracked);
    return tracked;
  }

  /** Bad input is refused before queueing: unknown or busy database, no backup yet. */
  private async prepareDrill(name: string): Promise<{ record: RegistryRecord; label: string }> {
    this.requireEnabled();
    const source = await this.source(name);
    if (source.kind === 'destroyed') throw new DomainError('DB_NOT_FOUND', `no database named "${name}" (a destroyed one's backups are drilled by restoring them: \`pgdb restore ${name} --as <new>\`)`);
    const backups = await this.backupsOf(source);
    const latest = backups.at(-1);
    if (!latest) throw new DomainError('NO_BACKUP', `"${name}" has no finished backup to drill yet; take one with \`pgdb backup ${name}\``);
    return { record: source.record!, label: latest.label };
  }

  private async runDrill(record: RegistryRecord, label: string): Promise<VerifyResponse> {
    const identity = record.backup!;
    const version = record.postgres_version;
    const log = this.logger.child({ database: record.name, stanza: identity.stanza, backup: label });
    const instanceLabels = await this.runtime.instanceLabels();
    const volume = `pgdb-drill-${randomId(8)}`;
    const started = performance.now();
    let result: DrillResult;
    try {
      await this.runtime.image(version);
      await this.docker.createVolume(volume, { ...instanceLabels, [LABELS.version]: String(version), [RESTORING_LABEL]: `drill:${record.name}` }, { sizeGb: record.size_gb });
      const task = await this.repository.task(identity, version, instanceLabels, 'drill', ['sh', '-c', drillScript(identity, version, label)], volume);
      const output = parseDrillOutput(task.stdout, task.exitCode);
      result = {
        at: new Date().toISOString(),
        ok: output.ok,
        duration_ms: Math.round(performance.now() - started),
        detail: output.ok ? describePass(output, label) : `backup ${label} did not pass: ${output.reason}`,
        backup: label,
        tables: output.tables,
        amcheck: output.amcheck,
      };
    } catch (error) {
      result = {
        at: new Date().toISOString(),
        ok: false,
        duration_ms: Math.round(performance.now() - started),
        detail: `the drill of backup ${label} could not run: ${(error as Error).message}`,
        backup: label,
        tables: [],
        amcheck: null,
      };
    } finally {
      await this.docker.removeVolume(volume).catch((error: Error) => log.error({ volume, err: error.message }, 'could not remove the volume of a restore drill'));
    }
    // A database destroyed meanwhile has nothing to report.
    if (await this.registry.find(record.name)) await this.drills.set(identity.stanza, result);
    if (result.ok) log.info({ ms: result.duration_ms, tables: result.tables.length, amcheck: result.amcheck }, 'restore drill passed');
    else log.error({ ms: result.duration_ms, detail: result.detail }, 'restore drill failed');
    return { name: record.name, ...result };
  }

  /** Takes a backup of a running database now; queued behind others. */
  /**
   * A scheduled backup: queued like any other, but what is due is decided
   * again when its turn comes, from the repository's list read then. The
   * list the tick saw may predate a backup that finished meanwhile (the first
   * one after a deploy), and a second full backup would follow at once.
   */
  private scheduled(name: string): void {
    const run = this.queue.then(async () => {
      const record = await this.registry.find(name);
      if (!record?.backup || record.pending || record.stopped || this.queued.has(name)) return;
      const type = backupDue(await this.refresh(record), new Date(), this.schedules);
      if (type) await this.runBackup(name, type);
    });
    this.queue = run.catch(() => undefined);
    this.scheduledRuns.add(name);
    void run
      .catch((error: Error) => this.logger.error({ database: name, err: error.message }, 'scheduled backup failed'))
      .finally(() => {
        this.scheduledRuns.delete(name);
        this.checkAlerts();
      });
  }

  backup(name: string, type: BackupType = 'full'): Promise<BackupItem> {
    // A request joins a pending backup of the same type; another type runs after it
    // (a differential asked for while the first full one finishes is a differential).
    const pending = this.queued.get(name);
    if (pending?.type === type) return pending.promise;
    const run = this.queue.then(() => this.runBackup(name, type));
    this.queue = run.catch(() => undefined);
    const entry = {
      type,
      promise: run.finally(() => {
        if (this.queued.get(name) === entry) this.queued.delete(name);
        this.checkAlerts();
      }),
    };
    this.queued.set(name, entry);
    return entry.promise;
  }

  private async runBackup(name: string, type: BackupType): Promise<BackupItem> {
    const record = await this.running(name);
    const identity = record.backup!;
    const state = this.stateOf(record);
    const log = this.logger.child({ database: name, stanza: identity.stanza });
    const started = performance.now();
    try {
      await this.ensureStanza(record);
      const result = await this.pgbackrestIn(record, ['backup', `--type=${type}`], BACKUP_TIMEOUT_MS);
      if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `backup of "${name}" failed: ${pgbackrestError(result)}`);
      const backups = await this.refresh(record);
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

  /**
   * Runs pgBackRest in the database's container as postgres. A command that
   * outlives `timeoutMs` is reported as pgBackRest's (a repository that does
   * not answer), not as the engine's.
   */
  private async pgbackrestIn(record: RegistryRecord, args: string[], timeoutMs = 60_000) {
    try {
      return await this.docker.exec(record.container_id, pgbackrest(record.backup!.stanza, ...args), { user: String(POSTGRES_UID), timeoutMs });
    } catch (error) {
      if (error instanceof DomainError && error.code === 'DOCKER_UNAVAILABLE' && /did not answer within/.test(error.message)) {
        throw new DomainError(
          'BACKUP_FAILED',
          `pgbackrest ${args[0]} for "${record.name}" did not finish within ${Math.round(timeoutMs / 1000)} s: is the backup repository reachable?`,
        );
      }
      throw error;
    }
  }

  /** Creates the stanza once per daemon run (pgBackRest accepts it again when it exists). */
  private async ensureStanza(record: RegistryRecord): Promise<void> {
    const state = this.stateOf(record);
    if (state.stanzaReady) return;
    const result = await this.pgbackrestIn(record, ['stanza-create'], CHECK_TIMEOUT_MS);
    if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `preparing the backups of "${record.name}" failed: ${pgbackrestError(result)}`);
    state.stanzaReady = true;
  }

  /** Re-reads the repository's list of a running database's backups. */
  private async refresh(record: RegistryRecord): Promise<BackupSummary[]> {
    const result = await this.pgbackrestIn(record, ['info', '--output=json']);
    if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `listing the backups of "${record.name}" failed: ${pgbackrestError(result)}`);
    const backups = parseInfo(result.stdout, record.backup!.stanza);
    this.stateOf(record).backups = backups;
    return backups;
  }

  /** pg_stat_archiver: failing when its last failure is newer than its last success. */
  private async readArchiver(record: RegistryRecord): Promise<void> {
    const rows = await this.runtime.client.query<{ failed_count: string; last_failed_time: Date | null; last_archived_time: Date | null }>(
      this.runtime.target(record, 'admin'),
      'SELECT failed_count, last_failed_time, last_archived_time FROM pg_catalog.pg_stat_archiver',
    );
    const row = rows[0];
    if (!row) return;
    const failed = row.last_failed_time ? new Date(row.last_failed_time).getTime() : 0;
    const archived = row.last_archived_time ? new Date(row.last_archived_time).getTime() : 0;
    this.stateOf(record).archiving = {
      failing: failed > archived,
      failedCount: Number(row.failed_count),
      lastFailure: row.last_failed_time ? new Date(row.last_failed_time).toISOString() : null,
    };
  }

  /** The backups of a database (running, stopped, or destroyed and kept) and the window a restore can reach. */
  async list(name: string): Promise<BackupsResponse> {
    this.requireEnabled();
    const source = await this.source(name);
    const backups = await this.backupsOf(source);
    return {
      name,
      source: source.kind,
      backups,
      window: restoreWindow(source, backups, new Date()),
      repository: this.repositoryInfo(),
    };
  }

  async destroyed(): Promise<DestroyedBackupsResponse> {
    this.requireEnabled();
    this.catalog.requireMatchingKey();
    return {
      items: (await this.registry.destroyed()).map((d) => ({
        name: d.name,
        postgres_version: d.postgres_version,
        destroyed_at: d.destroyed_at,
        recovered: d.recovered === true,
      })),
    };
  }

  /**
   * A new database `as` from the backups of `name`: a moment, a backup, or
   * the latest. Never touches the source. Restored in a task container into
   * a new volume, with recovery run to its end there (no archiving into the
   * source's stanza), then deployed on that volume with new credentials and
   * its own stanza.
   */
  async restore(name: string, request: RestoreRequest): Promise<RestoreResponse> {
    this.requireEnabled();
    await this.reconciliation.ensureReconciled();
    const as = request.as;
    if (await this.registry.find(as)) throw new DomainError('DB_ALREADY_EXISTS', `a database named "${as}" already exists; choose another name for the restore`);
    const time = request.time === undefined ? undefined : new Date(request.time);
    if (time && time.getTime() > Date.now()) {
      throw new DomainError('INVALID_REQUEST', `time ${request.time} is in the future; give a moment up to now`);
    }
    let source = await this.source(name);
    // "Now" is restorable only once the current WAL segment is in the repository.
    if (source.kind === 'running' && !request.backup) await this.switchWal(source.record!);
    let backups = await this.backupsOf(source);
    let window = restoreWindow(source, backups, new Date());
    // A moment (or a backup) from before a major upgrade is in the backups of the cluster the upgrade replaced.
    const missed = (time && (!window || time.toISOString() < window.earliest)) || (request.backup && !backups.some((b) => b.label === request.backup));
    if (missed) {
      const older = await this.olderCluster(name, source, (candidate, listed) => {
        const reach = restoreWindow(candidate, listed, new Date());
        if (request.backup) return listed.some((b) => b.label === request.backup);
        return reach !== null && time!.toISOString() >= reach.earliest && time!.toISOString() <= reach.latest;
      });
      if (older) {
        this.logger.info({ database: name, stanza: older.source.identity.stanza, version: older.source.version }, 'restoring from the backups of the cluster an upgrade replaced');
        ({ source, backups } = older);
        window = restoreWindow(source, backups, new Date());
      }
    }
    if (!window) throw new DomainError('NO_BACKUP', `"${name}" has no finished backup yet; take one with \`pgdb backup ${name}\``);
    if (request.backup && !backups.some((b) => b.label === request.backup)) {
      throw new DomainError('NO_BACKUP', `"${name}" has no backup labelled ${request.backup}; \`pgdb backups ${name}\` lists them`);
    }
    if (time && (time.toISOString() < window.earliest || time.toISOString() > window.latest)) {
      throw new DomainError(
        'NO_BACKUP',
        `time ${time.toISOString()} is outside the restorable window of "${name}": ${window.earliest} to ${window.latest}`,
      );
    }
    const identity = source.identity;
    const version = source.version;
    const volume = `pgdb-${as}-${randomId(6)}`;
    const instanceLabels = await this.runtime.instanceLabels();
    const log = this.logger.child({ database: as, from: name, volume });
    await this.runtime.image(version);
    await this.docker.createVolume(volume, { ...instanceLabels, [LABELS.name]: as, [LABELS.version]: String(version), [RESTORING_LABEL]: name }, { sizeGb: source.sizeGb });
    try {
      failpoint('restore:volume-created');
      const started = performance.now();
      const result = await this.repository.task(identity, version, instanceLabels, 'restore', ['sh', '-c', restoreScript(identity, version, { time, backup: request.backup })], volume);
      if (result.exitCode !== 0) {
        throw new DomainError('BACKUP_FAILED', `restore of "${name}" failed: ${lastLines(result.stdout)}`);
      }
      log.info({ ms: Math.round(performance.now() - started) }, 'restored and recovered into a new volume');
      failpoint('restore:recovered');
      const deployed = await this.deployments.deploy({
        name: as,
        from_volume: volume,
        memory_mb: source.memoryMb,
        size_gb: source.sizeGb,
        version,
      });
      return {
        ...deployed,
        restored_from: name,
        target_time: time ? time.toISOString() : null,
        target_backup: request.backup ?? null,
      };
    } catch (error) {
      // Nothing half-made stays: the new volume goes, unless a database now owns it.
      if (!(await this.registry.list()).some((r) => r.volume_name === volume)) {
        await this.runtime.removeHolders(volume).catch(() => undefined);
        await this.docker.removeVolume(volume).catch((cleanup: Error) => log.error({ err: cleanup.message }, 'could not remove the volume of a failed restore'));
      }
      throw error;
    }
  }

  /**
   * The kept backups of `name`'s other clusters (the old one an upgrade
   * keeps, then those retired by `upgrade --finish` or `--rollback` or left
   * by an earlier destroy, newest first), the first that `fits`.
   */
  private async olderCluster(
    name: string,
    current: Source,
    fits: (candidate: Source, backups: BackupItem[]) => boolean,
  ): Promise<{ source: Source; backups: BackupItem[] } | undefined> {
    const candidates: Source[] = [];
    const previous = current.record?.previous;
    if (previous?.backup) {
      // Kept stopped: its archive ends where the switch stopped it.
      candidates.push({ kind: 'destroyed', name, identity: previous.backup, version: previous.postgres_version, sizeGb: current.sizeGb, memoryMb: current.memoryMb, destroyedAt: new Date().toISOString() });
    }
    for (const entry of (await this.registry.destroyed()).filter((d) => d.name === name && d.backup.stanza !== current.identity.stanza).reverse()) {
      candidates.push({ kind: 'destroyed', name, identity: entry.backup, version: entry.postgres_version, sizeGb: entry.size_gb, memoryMb: entry.memory_mb, destroyedAt: entry.destroyed_at });
    }
    for (const candidate of candidates) {
      const backups = await this.backupsOf(candidate).catch((error: Error) => {
        this.logger.warn({ database: name, stanza: candidate.identity.stanza, err: error.message }, 'could not list the backups of an older cluster');
        return [];
      });
      if (fits(candidate, backups)) return { source: candidate, backups };
    }
    return undefined;
  }

  /** Per database, for status and info; undefined when it has no backups configured. */
  stateFor(record: RegistryRecord): BackupState | undefined {
    if (!record.backup || !this.repository.enabled) return undefined;
    const state = this.stateOf(record);
    const last = state.backups?.at(-1);
    const item = last ? toItem(last) : null;
    const age = last ? Math.round((Date.now() - Date.parse(last.finished_at)) / 1000) : null;
    const drill = this.drills.get(record.backup.stanza) ?? null;
    const problems = this.problemsOf(record).map((p) => p.problem);
    return {
      last_backup: item,
      last_backup_age_seconds: age,
      archiving: record.stopped || !state.archiving ? 'unknown' : state.archiving.failing ? 'failing' : 'ok',
      archive_failed_count: state.archiving?.failedCount ?? null,
      last_archive_failure: state.archiving?.lastFailure ?? null,
      last_error: state.lastError ?? null,
      last_drill: drill,
      problems,
    };
  }

  /** A database's problems, each with its kind (alerts tell a changed wording from a new problem by it). */
  private problemsOf(record: RegistryRecord): Array<{ kind: string; problem: string }> {
    const state = this.stateOf(record);
    const last = state.backups?.at(-1);
    const age = last ? Math.round((Date.now() - Date.parse(last.finished_at)) / 1000) : null;
    const problems: Array<{ kind: string; problem: string }> = [];
    const add = (kind: string, problem: string) => problems.push({ kind, problem });
    const drill = this.drills.get(record.backup!.stanza);
    if (drill && !drill.ok) add('drill', `the restore drill of "${record.name}" failed: ${drill.detail}`);
    if (state.archiving?.failing) add('archiving', `WAL archiving of "${record.name}" fails (${state.archiving.failedCount} failures; last at ${state.archiving.lastFailure})`);
    if (state.lastError) add('backup', `the last backup of "${record.name}" failed: ${state.lastError}`);
    const overdue = this.overdueSeconds();
    if (age !== null && age > overdue) add('overdue', `the newest backup of "${record.name}" is ${formatAge(age)} old (more than 1.5 times the schedule)`);
    if (!last && Date.now() - Date.parse(record.created_at) > overdue * 1000) add('overdue', `"${record.name}" has no backup`);
    return problems;
  }

  /** The backup problems that make health `degraded`, with the database each is about. */
  async problemEntries(): Promise<ProblemEntry[]> {
    if (!this.repository.enabled) return [];
    const records = (await this.registry.list()).filter((r) => !r.pending);
    return [
      ...this.catalog.problems().map((problem) => ({ database: null, kind: 'server-record', problem })),
      ...records.filter((r) => r.backup).flatMap((r) => this.problemsOf(r).map((p) => ({ database: r.name, ...p }))),
    ];
  }

  repositoryInfo(): { kind: 'local' | 's3'; location: string } {
    const { kind, location } = this.repository.describe();
    return { kind, location };
  }

  /** 1.5 times the longest gap between differential (or full) slots: older than that is overdue. */
  private overdueSeconds(): number {
    return 1.5 * gapSeconds([this.schedules.full, this.schedules.diff], new Date());
  }

  /** Forces a WAL switch and waits until the segment is archived, so that everything committed is restorable. */
  private async switchWal(record: RegistryRecord): Promise<void> {
    await this.ensureStanza(record);
    const result = await this.pgbackrestIn(record, ['check', '--archive-timeout=60'], CHECK_TIMEOUT_MS);
    if (result.exitCode !== 0) {
      throw new DomainError('BACKUP_FAILED', `WAL archiving of "${record.name}" does not work, so recent commits are not restorable: ${pgbackrestError(result)}`);
    }
  }

  private async backupsOf(source: Source): Promise<BackupItem[]> {
    if (source.kind === 'running') {
      const record = source.record!;
      return (await this.refresh(record).catch(async (error: Error) => {
        // A stanza not created yet has no backups.
        if (/does not exist|missing stanza/i.test(error.message)) return [];
        throw error;
      })).map(toItem);
    }
    const result = await this.repository.task(source.identity, source.version, await this.runtime.instanceLabels(), 'info', [
      ...pgbackrest(source.identity.stanza, 'info', '--output=json'),
    ]);
    if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `listing the backups of "${source.name}" failed: ${lastLines(result.stdout)}`);
    return parseInfo(result.stdout, source.identity.stanza).map(toItem);
  }

  /** The database to restore or list from: a live record first, else the newest destroyed one of that name. */
  private async source(name: string): Promise<Source> {
    const record = await this.registry.find(name);
    if (record) {
      if (!record.backup) throw new DomainError('NO_BACKUP', `"${name}" was made while backups were off and has none yet; the daemon turns its archiving on in the background (\`pgdb status\` shows a problem if that fails)`);
      if (record.pending) throw new DomainError('DB_BUSY', `"${name}" is being ${record.pending === 'creating' ? 'created' : 'destroyed'}`);
      const running = !record.stopped && (await this.docker.containerStatus(record.container_id))?.running === true;
      return {
        kind: running ? 'running' : 'stopped',
        name,
        record,
        identity: record.backup,
        version: record.postgres_version,
        memoryMb: record.memory_mb,
        sizeGb: record.size_gb,
      };
    }
    const destroyed = (await this.registry.destroyed()).filter((d) => d.name === name).at(-1);
    if (!destroyed) throw new DomainError('DB_NOT_FOUND', `no database named "${name}", and no destroyed one with backups kept; \`pgdb backups --destroyed\` lists those`);
    return {
      kind: 'destroyed',
      name,
      identity: destroyed.backup,
      version: destroyed.postgres_version,
      memoryMb: destroyed.memory_mb,
      sizeGb: destroyed.size_gb,
      destroyedAt: destroyed.destroyed_at,
    };
  }

  private async running(name: string): Promise<RegistryRecord> {
    this.requireEnabled();
    const record = await this.registry.find(name);
    if (!record) throw new DomainError('DB_NOT_FOUND', `no database named "${name}"`);
    if (!record.backup) throw new DomainError('NO_BACKUP', `"${name}" was made while backups were off and has no stanza yet; the daemon turns its archiving on in the background`);
    if (record.pending) throw new DomainError('DB_BUSY', `"${name}" is being ${record.pending === 'creating' ? 'created' : 'destroyed'}`);
    if (record.stopped) throw new DomainError('DB_STOPPED', `"${name}" is stopped; \`pgdb start ${name}\` first`);
    return record;
  }

  private requireEnabled(): void {
    if (!this.repository.enabled) throw new DomainError('NO_BACKUP', 'backups are off on this server (PGDB_BACKUP=off)');
  }

  private stateOf(record: Pick<RegistryRecord, 'backup'>): DatabaseBackupState {
    const stanza = record.backup!.stanza;
    let state = this.states.get(stanza);
    if (!state) this.states.set(stanza, (state = {}));
    return state;
  }

  /** Task containers and restore volumes that an interrupted restore left. */
  private async removeLeftovers(): Promise<void> {
    const labels = await this.runtime.instanceLabels();
    for (const task of (await this.docker.listContainers(labels)).filter((c) => c.labels[TASK_LABEL])) {
      this.logger.warn({ container: task.name }, 'removing a task container an interruption left');
      await this.docker.removeContainer(task.id);
    }
    const owned = new Set((await this.registry.list()).map((r) => r.volume_name));
    for (const volume of (await this.docker.listVolumes(labels)).filter((v) => v.labels[RESTORING_LABEL] && !owned.has(v.name))) {
      this.logger.warn({ volume: volume.name }, 'removing the volume of an interrupted restore');
      await this.runtime.removeHolders(volume.name);
      await this.docker.removeVolume(volume.name);
    }
  }
}

interface Source {
  kind: 'running' | 'stopped' | 'destroyed';
  name: string;
  record?: RegistryRecord;
  identity: BackupIdentity;
  version: number;
  memoryMb?: number;
  sizeGb: number;
  destroyedAt?: string;
}

function toItem(summary: BackupSummary): BackupItem {
  return { ...summary };
}

/** pgBackRest's own error line(s), without its progress noise. */
function pgbackrestError(result: { stdout: string; stderr: string }): string {
  return lastLines(`${result.stderr}\n${result.stdout}`);
}

function lastLines(text: string, count = 5): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /ERROR|FATAL|error:/i.test(l));
  return (errors.length > 0 ? errors : lines).slice(-count).join(' | ') || 'no output';
}

function formatAge(seconds: number): string {
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400 * 2) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/**
 * Runs in the task container as postgres, with the new volume and the
 * source's repository: restore the files, run recovery to its target with
 * archiving off (nothing may go into the source's stanza) on a socket only,
 * wait for promotion, drop the recovery settings pgBackRest wrote, stop
 * cleanly. Exits non-zero with the server's log when recovery fails.
 */
export function restoreScript(identity: BackupIdentity, major: number, target: { time?: Date; backup?: string }): string {
  const pgdata = dataDirFor(major);
  const restore = [...pgbackrest(identity.stanza, 'restore', ...restoreTarget(target)), `--pg1-path=${pgdata}`].map(shellQuote).join(' ');
  const options = "-c listen_addresses='' -c unix_socket_directories=/tmp -c archive_mode=off";
  const psql = `psql -X -q -At -h /tmp -U ${ADMIN_USER} -d ${ADMIN_DATABASE}`;
  return [
    'set -eu',
    // The restored cluster is the tenant's: the superuser's sessions in it take no settings from it.
    `export PGOPTIONS=${shellQuote(ADMIN_SESSION_OPTIONS)}`,
    `mkdir -p ${pgdata}`,
    `chmod 700 ${pgdata}`,
    `${restore}`,
    `pg_ctl -D ${pgdata} -l /tmp/recovery.log -o "${options}" -w -t 3600 start || { tail -n 20 /tmp/recovery.log; exit 1; }`,
    'while :; do',
    `  state=$(${psql} -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)`,
    '  [ "$state" = f ] && break',
    `  if ! pg_ctl -D ${pgdata} status >/dev/null 2>&1; then echo "ERROR: recovery stopped:"; tail -n 20 /tmp/recovery.log; exit 1; fi`,
    '  sleep 0.2',
    'done',
    `${psql} -c 'ALTER SYSTEM RESET ALL'`,
    `pg_ctl -D ${pgdata} -m fast -w -t 600 stop`,
    'echo restored',
  ].join('\n');
}


