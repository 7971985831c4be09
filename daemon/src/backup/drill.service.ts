import { Inject, Injectable } from '@nestjs/common';
import type { DrillResult, VerifyResponse } from '../../../contract/api.js';
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
import { describePass, drillScript, parseDrillOutput } from './drill.js';
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
    let result: DrillResult;
    try {
      const context = await this.runtime.taskContext(version);
      await this.docker.createVolume(volume, { ...context.instanceLabels, [LABELS.version]: String(version), [RESTORING_LABEL]: `drill:${record.name}` }, { sizeGb: record.size_gb });
      const task = await this.repository.task(identity, context, 'drill', ['sh', '-c', drillScript(identity, version, label)], volume);
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
    if (await this.registry.find(record.name)) await this.states.drills.set(identity.stanza, result);
    if (result.ok) log.info({ ms: result.duration_ms, tables: result.tables.length, amcheck: result.amcheck }, 'restore drill passed');
    else log.error({ ms: result.duration_ms, detail: result.detail }, 'restore drill failed');
    return { name: record.name, ...result };
  }

}
