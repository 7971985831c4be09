import { Inject, Injectable } from '@nestjs/common';
import { DomainError } from '../common/errors.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { DOCKER_GATEWAY, type DockerGateway, type ExecResult } from '../docker/docker.gateway.js';
import { POSTGRES_UID } from '../postgres/postgres-container.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { BackupStates } from './backup-states.js';
import { parseInfo, pgbackrest, pgbackrestError, type BackupSummary } from './pgbackrest.js';

/** `pgbackrest check` waits this long (at most) for the switched WAL segment to arrive in the repository. */
const CHECK_TIMEOUT_MS = 120_000;

/**
 * pgBackRest in a running database's container, on its stanza: creating
 * it, listing its backups, forcing its WAL out, and reading its archiver.
 * What it reads goes into the database's BackupStates entry.
 */
@Injectable()
export class Stanzas {
  constructor(
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly states: BackupStates,
  ) {}

  /**
   * Runs pgBackRest in the database's container as postgres. A command that
   * outlives `timeoutMs` is reported as pgBackRest's (a repository that does
   * not answer), not as the engine's.
   */
  async run(record: RegistryRecord, args: string[], timeoutMs = 60_000): Promise<ExecResult> {
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
  async ensure(record: RegistryRecord): Promise<void> {
    const state = this.states.of(record);
    if (state.stanzaReady) return;
    const result = await this.run(record, ['stanza-create'], CHECK_TIMEOUT_MS);
    if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `preparing the backups of "${record.name}" failed: ${pgbackrestError(result)}`);
    state.stanzaReady = true;
  }

  /** Re-reads the repository's list of a running database's backups. */
  async refresh(record: RegistryRecord): Promise<BackupSummary[]> {
    const result = await this.run(record, ['info', '--output=json']);
    if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `listing the backups of "${record.name}" failed: ${pgbackrestError(result)}`);
    const backups = parseInfo(result.stdout, record.backup!.stanza);
    this.states.of(record).backups = backups;
    return backups;
  }

  /** Forces a WAL switch and waits until the segment is archived, so that everything committed is restorable. */
  async switchWal(record: RegistryRecord): Promise<void> {
    await this.ensure(record);
    const result = await this.run(record, ['check', '--archive-timeout=60'], CHECK_TIMEOUT_MS);
    if (result.exitCode !== 0) {
      throw new DomainError('BACKUP_FAILED', `WAL archiving of "${record.name}" does not work, so recent commits are not restorable: ${pgbackrestError(result)}`);
    }
  }

  /** pg_stat_archiver: failing when its last failure is newer than its last success. */
  async readArchiver(record: RegistryRecord): Promise<void> {
    const rows = await this.runtime.client.query<{ failed_count: string; last_failed_time: Date | null; last_archived_time: Date | null }>(
      this.runtime.target(record, 'admin'),
      'SELECT failed_count, last_failed_time, last_archived_time FROM pg_catalog.pg_stat_archiver',
    );
    const row = rows[0];
    if (!row) return;
    const failed = row.last_failed_time ? new Date(row.last_failed_time).getTime() : 0;
    const archived = row.last_archived_time ? new Date(row.last_archived_time).getTime() : 0;
    this.states.of(record).archiving = {
      failing: failed > archived,
      failedCount: Number(row.failed_count),
      lastFailure: row.last_failed_time ? new Date(row.last_failed_time).toISOString() : null,
    };
  }
}
