import { Inject, Injectable } from '@nestjs/common';
import type { DrillComparison, DrillResult, VerifyResponse } from '../../../contract/api.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { BackupEvents } from '../database/backup-events.js';
import { randomId } from '../database/identifiers.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { DOCKER_GATEWAY, LABELS, type DockerGateway } from '../docker/docker.gateway.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { BackupQueue } from './backup-queue.js';
import { BackupRepository, RESTORING_LABEL } from './backup-repository.js';
import { BackupStates } from './backup-states.js';
import { describePass, DRILL_TABLES_LISTED, drillScript, parseDrillOutput, type DrillOutput } from './drill.js';
import { compareCounts, describeDifferences, DIFFERENCES_LISTED, markSource, qualified, type SourceMark } from './drill-source.js';
import { pgbackrestError } from './pgbackrest.js';
import { BackupListing } from './listing.js';

/** Restore drills, on demand (`pgdb backup verify`) and on PGDB_BACKUP_DRILL_SCHEDULE; the last result of each is kept (BackupStates.drills). */
@Injectable()
export class DrillService {
  private readonly logger: Logger;
  private readonly drilling = new Map<string, Promise<VerifyResponse>>();

  constructor(
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly repository: BackupRepository,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly listing: BackupListing,
    private readonly states: BackupStates,
    private readonly queue: BackupQueue,
    private readonly events: BackupEvents,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'backup' });
  }

  /** Whether a drill of `name` is pending or running. */
  running(name: string): boolean {
    return this.drilling.has(name);
  }

  /**
   * A restore drill now: a named restore point made in the running source
   * and the rows of every table counted there as of it (drill-source.ts),
   * its WAL archived; then the latest backup of `name` restored with the
   * WAL up to that point into a throwaway volume by a task container (no
   * network with a local repository, never a published port), started on a
   * socket only, every table counted and compared with the source,
   * pg_amcheck run; the container and the volume are removed whatever
   * happens. Queued with backups (one at a time). The result is recorded (a
   * failure, a difference included, is a health problem until a drill passes).
   */
  drill(name: string): Promise<VerifyResponse> {
    const pending = this.drilling.get(name);
    if (pending) return pending;
    const run = this.prepareDrill(name).then((prepared) => {
      return this.queue.run(() => this.runDrill(prepared.record, prepared.label));
    });
    const tracked = run.finally(() => {
      this.drilling.delete(name);
      this.events.problemsChanged();
    });
    this.drilling.set(name, tracked);
    return tracked;
  }

  /** Bad input is refused before queueing: unknown or busy database, no backup yet. */
  private async prepareDrill(name: string): Promise<{ record: RegistryRecord; label: string }> {
    this.repository.requireEnabled();
    const source = await this.listing.source(name);
    if (source.kind === 'destroyed') throw new DomainError('DB_NOT_FOUND', `no database named "${name}" (a destroyed one's backups are drilled by restoring them: \`pgdb restore ${name} --as <new>\`)`);
    const backups = await this.listing.backupsOf(source);
    const latest = backups.at(-1);
    if (!latest) throw new DomainError('NO_BACKUP', `"${name}" has no finished backup to drill yet; take one with \`pgdb backup ${name}\``);
    return { record: source.record!, label: latest.label };
  }

  private async runDrill(record: RegistryRecord, label: string): Promise<VerifyResponse> {
    const identity = record.backup!;
    const version = record.postgres_version;
    const log = this.logger.child({ database: record.name, stanza: identity.stanza, backup: label });
    const volume = `pgdb-drill-${randomId(8)}`;
    const started = performance.now();
    let mark: SourceMark = { reason: 'the drill stopped before the source was read', attempts: 0 };
    let result: DrillResult;
    try {
      const context = await this.runtime.taskContext(version);
      mark = await this.markSource(record);
      const restorePoint = mark.restorePoint?.name;
      await this.docker.createVolume(volume, { ...context.instanceLabels, [LABELS.version]: String(version), [RESTORING_LABEL]: `drill:${record.name}` }, { sizeGb: record.size_gb });
      const task = await this.repository.task(identity, context, 'drill', ['sh', '-c', drillScript(identity, version, label, restorePoint)], volume);
      const output = parseDrillOutput(task.stdout, task.exitCode);
      const comparison = comparisonOf(mark, output);
      const ok = output.ok && comparison.status !== 'differ';
      result = {
        at: new Date().toISOString(),
        ok,
        duration_ms: Math.round(performance.now() - started),
        detail: ok ? `${describePass(output, label, restorePoint)}; ${describeComparison(comparison)}` : `backup ${label} did not pass: ${failure(output, comparison, restorePoint)}`,
        backup: label,
        tables: listedTables(output, mark),
        amcheck: output.amcheck,
        comparison,
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
        comparison: { status: 'not_compared', reason: 'the drill could not run', restore_point: mark.restorePoint ?? null, tables_compared: 0, differences: [] },
      };
    } finally {
      await this.docker.removeVolume(volume).catch((error: Error) => log.error({ volume, err: error.message }, 'could not remove the volume of a restore drill'));
    }
    // A database destroyed meanwhile has nothing to report.
    if (await this.registry.find(record.name)) await this.states.drills.set(identity.stanza, result);
    const comparison = { comparison: result.comparison?.status, restorePoint: result.comparison?.restore_point?.name, attempts: mark.attempts };
    if (result.ok) log.info({ ms: result.duration_ms, tables: result.tables.length, amcheck: result.amcheck, ...comparison }, 'restore drill passed');
    else log.error({ ms: result.duration_ms, detail: result.detail, ...comparison }, 'restore drill failed');
    return { name: record.name, ...result };
  }

  /**
   * The source's side (see drill-source.ts): its restore point and its rows
   * as of it, then the WAL up to it archived. Never throws: what went wrong
   * is the reason the drill does not compare, and without a restore point
   * in the repository the backup is restored to its own end.
   */
  private async markSource(queued: RegistryRecord): Promise<SourceMark> {
    // As it is now: the drill may have waited behind backups while the database was stopped or restarted.
    const record = await this.registry.find(queued.name);
    if (!record || record.backup?.stanza !== queued.backup?.stanza) return { reason: 'the database changed while the drill waited', attempts: 0 };
    if (record.stopped) return { reason: 'the database is stopped', attempts: 0 };
    const status = await this.docker.containerStatus(record.container_id).catch(() => null);
    if (!status?.running) return { reason: 'the database is not running', attempts: 0 };
    const admin = this.runtime.target(record, 'admin');
    const id = randomId(8);
    let mark: SourceMark;
    try {
      mark = await markSource(this.runtime.client, (database) => (database === undefined ? admin : { ...admin, database }), (attempt) => `pgdb-drill-${id}-${attempt}`);
    } catch (error) {
      return { reason: `the source could not be read: ${(error as Error).message}`, attempts: 0 };
    }
    if (!mark.restorePoint) return mark;
    const flushed = await this.docker
      .exec(record.container_id, this.repository.flushCommand(record.backup!), { user: '999', timeoutMs: 60_000 })
      .catch((error: Error) => ({ exitCode: -1, stdout: '', stderr: error.message }));
    if (flushed.exitCode !== 0) return { reason: `the WAL up to the restore point could not be archived: ${pgbackrestError(flushed)}`, attempts: mark.attempts };
    return mark;
  }
}

/** How the copy compared with the source: only a copy counted to the end (pg_amcheck reached) is compared. */
export function comparisonOf(mark: SourceMark, output: DrillOutput): DrillComparison {
  const restore_point = mark.restorePoint ?? null;
  if (!mark.counted) return { status: 'not_compared', reason: mark.reason ?? 'the source was not counted', restore_point, tables_compared: 0, differences: [] };
  if (output.amcheck === null) return { status: 'not_compared', reason: 'the copy was not counted (the drill failed before)', restore_point, tables_compared: 0, differences: [] };
  const differences = compareCounts(mark.counted, output.counted);
  return {
    status: differences.length === 0 ? 'match' : 'differ',
    reason: null,
    restore_point,
    tables_compared: new Set([...mark.counted.tables, ...output.counted.tables].map((t) => JSON.stringify([t.database, t.schema, t.table]))).size,
    differences: differences.slice(0, DIFFERENCES_LISTED),
  };
}

/** The second half of a passing drill's detail. */
function describeComparison(comparison: DrillComparison): string {
  if (comparison.status === 'match') return `every table had the rows the source had at restore point ${comparison.restore_point!.name} (${comparison.tables_compared} compared)`;
  return `NOT compared with the source: ${comparison.reason}`;
}

/** Why a drill failed: the differences, a restore point the archive does not reach, or what the task said. */
function failure(output: DrillOutput, comparison: DrillComparison, restorePoint: string | undefined): string {
  if (comparison.status === 'differ') {
    return `${describeDifferences(comparison.differences, restorePoint!)}${comparison.differences.length === DIFFERENCES_LISTED ? ' (the first 20 listed)' : ''}${output.ok ? '' : `; and: ${output.reason}`}`;
  }
  if (restorePoint && /recovery ended before configured recovery target was reached/.test(output.reason)) {
    return `the copy did not reach restore point ${restorePoint}, made in the source just before the drill: the repository lacks WAL the source wrote before it (${output.reason})`;
  }
  return output.reason;
}

/** The first tables of the copy, each with its rows in the source when the drill compared. */
function listedTables(output: DrillOutput, mark: SourceMark): DrillResult['tables'] {
  const source = new Map((mark.counted?.tables ?? []).map((t) => [JSON.stringify([t.database, t.schema, t.table]), t.rows]));
  return output.counted.tables.slice(0, DRILL_TABLES_LISTED).map((t) => ({
    database: t.database,
    table: qualified(t),
    rows: t.rows,
    source_rows: mark.counted ? (source.get(JSON.stringify([t.database, t.schema, t.table])) ?? null) : null,
  }));
}
