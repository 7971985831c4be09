import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { RestoreRequest, RestoreResponse } from '../../../contract/api.js';
import { DomainError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { randomId } from '../database/identifiers.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { ReconcileService } from '../database/reconcile.service.js';
import { DeployService } from '../deploy/deploy.service.js';
import { DOCKER_GATEWAY, LABELS, type DockerGateway } from '../docker/docker.gateway.js';
import { ADMIN_DATABASE, ADMIN_SESSION_OPTIONS, ADMIN_USER } from '../postgres/postgres-container.js';
import { RegistryService } from '../registry/registry.service.js';
import type { BackupIdentity } from '../registry/registry.types.js';
import { BackupRepository, RESTORING_LABEL, TASK_LABEL } from './backup-repository.js';
import { BackupListing } from './listing.js';
import { dataDirFor, lastLines, pgbackrest, restoreTarget, shellQuote } from './pgbackrest.js';
import { restoreWindow } from './schedule.js';
import { Stanzas } from './stanzas.js';

/**
 * Restores into a new database (point in time, a backup, or the latest),
 * from a running, stopped or destroyed database's backups, or from the
 * cluster an upgrade replaced; and, at start, removes what an interrupted
 * restore or drill left.
 */
@Injectable()
export class RestoreService implements OnApplicationBootstrap {
  private readonly logger: Logger;

  constructor(
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly repository: BackupRepository,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly reconciliation: ReconcileService,
    private readonly deployments: DeployService,
    private readonly listing: BackupListing,
    private readonly stanzas: Stanzas,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'backup' });
  }

  onApplicationBootstrap(): void {
    if (!this.repository.enabled) return;
    void this.reconciliation.ensureReconciled().then(
      () => this.removeLeftovers().catch((error: Error) => this.logger.warn({ err: error.message }, 'could not remove what an interrupted restore left')),
      () => undefined,
    );
  }

  /**
   * A new database `as` from the backups of `name`: a moment, a backup, or
   * the latest. Never touches the source. Restored in a task container into
   * a new volume, with recovery run to its end there (no archiving into the
   * source's stanza), then deployed on that volume with new credentials and
   * its own stanza.
   */
  async restore(name: string, request: RestoreRequest): Promise<RestoreResponse> {
    this.repository.requireEnabled();
    await this.reconciliation.ensureReconciled();
    const as = request.as;
    if (await this.registry.find(as)) throw new DomainError('DB_ALREADY_EXISTS', `a database named "${as}" already exists; choose another name for the restore`);
    const time = request.time === undefined ? undefined : new Date(request.time);
    if (time && time.getTime() > Date.now()) {
      throw new DomainError('INVALID_REQUEST', `time ${request.time} is in the future; give a moment up to now`);
    }
    let source = await this.listing.source(name);
    // "Now" is restorable only once the current WAL segment is in the repository.
    if (source.kind === 'running' && !request.backup) await this.stanzas.switchWal(source.record!);
    let backups = await this.listing.backupsOf(source);
    let window = restoreWindow(source, backups, new Date());
    // A moment (or a backup) from before a major upgrade is in the backups of the cluster the upgrade replaced.
    const missed = (time && (!window || time.toISOString() < window.earliest)) || (request.backup && !backups.some((b) => b.label === request.backup));
    if (missed) {
      const older = await this.listing.olderCluster(name, source, (candidate, listed) => {
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
    const log = this.logger.child({ database: as, from: name, volume });
    const context = await this.runtime.taskContext(version);
    await this.docker.createVolume(volume, { ...context.instanceLabels, [LABELS.name]: as, [LABELS.version]: String(version), [RESTORING_LABEL]: name }, { sizeGb: source.sizeGb });
    try {
      failpoint('restore:volume-created');
      const started = performance.now();
      const result = await this.repository.task(identity, context, 'restore', ['sh', '-c', restoreScript(identity, version, { time, backup: request.backup })], volume);
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

  /** Task containers and restore (or drill) volumes that an interruption left. */
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


