import { Inject, Injectable } from '@nestjs/common';
import type { BackupItem, BackupsResponse, BackupTargetKind, DestroyedBackupsResponse } from '../../../contract/api.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { DOCKER_GATEWAY, type DockerGateway } from '../docker/docker.gateway.js';
import { RegistryService } from '../registry/registry.service.js';
import type { BackupIdentity, RegistryRecord } from '../registry/registry.types.js';
import { BackupRepository } from './backup-repository.js';
import { lastLines, parseInfo, pgbackrest } from './pgbackrest.js';
import { restoreWindow } from './schedule.js';
import { ServerCatalog } from './server-catalog.js';
import { Stanzas } from './stanzas.js';

/** A database whose backups are listed, drilled or restored from: running, stopped, or destroyed with its backups kept. */
export interface Source {
  kind: 'running' | 'stopped' | 'destroyed';
  name: string;
  record?: RegistryRecord;
  identity: BackupIdentity;
  version: number;
  memoryMb?: number;
  sizeGb: number;
  destroyedAt?: string;
}

/**
 * What backups there are: of a database (running, stopped, or destroyed
 * and kept), with the window a restore can reach; the destroyed databases
 * whose backups are kept; and an upgraded database's older clusters.
 */
@Injectable()
export class BackupListing {
  private readonly logger: Logger;

  constructor(
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly repository: BackupRepository,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly catalog: ServerCatalog,
    private readonly stanzas: Stanzas,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'backup' });
  }

  /** The backups of a database and the window a restore can reach. */
  async list(name: string): Promise<BackupsResponse> {
    this.repository.requireEnabled();
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
    this.repository.requireEnabled();
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

  repositoryInfo(): { kind: BackupTargetKind; location: string } {
    const { kind, location } = this.repository.describe();
    return { kind, location };
  }

  /** A running database's backups from its own container; the others' from a task container. */
  async backupsOf(source: Source): Promise<BackupItem[]> {
    if (source.kind === 'running') {
      return (await this.stanzas.refresh(source.record!).catch(async (error: Error) => {
        // A stanza not created yet has no backups.
        if (/does not exist|missing stanza/i.test(error.message)) return [];
        throw error;
      })).map((summary) => ({ ...summary }));
    }
    const result = await this.repository.task(source.identity, await this.runtime.taskContext(source.version), 'info', [
      ...pgbackrest(source.identity.stanza, 'info', '--output=json'),
    ]);
    if (result.exitCode !== 0) throw new DomainError('BACKUP_FAILED', `listing the backups of "${source.name}" failed: ${lastLines(result.stdout)}`);
    return parseInfo(result.stdout, source.identity.stanza).map((summary) => ({ ...summary }));
  }

  /** The database to restore or list from: a live record first, else the newest destroyed one of that name. */
  async source(name: string): Promise<Source> {
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

  /**
   * The kept backups of `name`'s other clusters (the old one an upgrade
   * keeps, then those retired by `upgrade --finish` or `--rollback` or left
   * by an earlier destroy, newest first), the first that `fits`.
   */
  async olderCluster(
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
}
