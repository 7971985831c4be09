import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import type { BackupTargetKind } from '../../../contract/api.js';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { DOCKER_GATEWAY, LABELS, type BindMount, type ContainerFile, type DockerGateway, type ExecResult, type IsolatedNetwork } from '../docker/docker.gateway.js';
import { Archiving, type ImageNeeds, type TaskContext } from '../database/archiving.js';
import { POSTGRES_UID, type ArchivingParts } from '../postgres/postgres-container.js';
import type { BackupIdentity } from '../registry/registry.types.js';
import { archiveSettings, configFile, CONFIG_PATH, pgbackrest } from './pgbackrest.js';
import { S3Gateway } from './s3-gateway.js';
import type { BackupTarget, RepositoryAccess } from './targets/backup-target.js';
import { LocalTarget } from './targets/local.js';
import { S3Target } from './targets/s3.js';

/** Long enough for a restore of a large database; a task that takes longer is killed. */
const TASK_TIMEOUT_MS = 6 * 60 * 60 * 1000;
const TASK_MEMORY_BYTES = 512 * 1024 * 1024;
/** On an image that has pgBackRest: its origin (e.g. `debian`, `pgdg`). */
export const PGBACKREST_LABEL = 'org.pgdb.pgbackrest';

/** Label of task containers (restores, listings), so that a crash's leftovers are found and removed. */
export const TASK_LABEL = 'pgdb.task';
/** The label of a volume a restore or a drill fills; a crash's leftover is removed at the next start. */
export const RESTORING_LABEL = 'pgdb.restoring';

/** The configured target: S3 when PGDB_BACKUP_S3_* is set, else the local repository. */
export function backupTarget(config: DaemonConfig, gateway: S3Gateway, docker: DockerGateway): BackupTarget {
  if (config.backup.s3) return new S3Target(config, config.backup.s3, gateway, docker);
  return new LocalTarget(join(config.dataDir, 'backups'));
}

/**
 * Each database's archive with pgBackRest, in the configured target
 * (targets/): what its container needs (a pgbackrest.conf with its stanza's
 * passphrase, and the target's files and binds), and task containers for
 * what runs beside it. A container sees its own stanza only. This is the
 * database core's Archiving port.
 */
@Injectable()
export class BackupRepository extends Archiving {
  readonly target: BackupTarget;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    gateway: S3Gateway,
  ) {
    super();
    this.target = backupTarget(config, gateway, docker);
  }

  get enabled(): boolean {
    return this.config.backup.enabled;
  }

  /** Refuses a backup request on a server with PGDB_BACKUP=off. */
  requireEnabled(): void {
    if (!this.enabled) throw new DomainError('NO_BACKUP', 'backups are off on this server (PGDB_BACKUP=off)');
  }

  /** pgBackRest, from the PGDG apt repository that the official images configure; checked to run. */
  imageNeeds(): ImageNeeds | undefined {
    if (!this.enabled) return undefined;
    return {
      label: PGBACKREST_LABEL,
      labelValue: 'pgdg',
      install: 'set -eu; apt-get update; apt-get install -y --no-install-recommends pgbackrest; rm -rf /var/lib/apt/lists/*; pgbackrest version',
    };
  }

  useNetwork(network: () => Promise<IsolatedNetwork>): void {
    this.target.useNetwork(network);
  }

  hostPorts(): number[] {
    return this.enabled ? this.target.hostPorts() : [];
  }

  /** Where the backups are, for status. */
  describe(): { kind: BackupTargetKind; location: string; note: string } {
    return { kind: this.target.kind, ...this.target.describe() };
  }

  /** A new database's stanza (its volume's name) and a fresh passphrase. */
  newIdentity(volumeName: string): BackupIdentity | undefined {
    if (!this.enabled) return undefined;
    return { stanza: volumeName, cipher_pass: randomBytes(32).toString('base64url') };
  }

  prepare(identity: BackupIdentity): Promise<void> {
    return this.target.prepare(identity);
  }

  async containerParts(identity: BackupIdentity, major: number): Promise<ArchivingParts> {
    return {
      command: archiveSettings(identity.stanza),
      files: await this.files(identity, major),
      binds: this.binds(identity),
      // New clusters get page checksums (18 has them on by default).
      env: { POSTGRES_INITDB_ARGS: '--data-checksums' },
    };
  }

  /** The stanza's pgbackrest.conf and what its target adds (with S3, the backup gateway's CA). */
  async files(identity: BackupIdentity, major: number): Promise<ContainerFile[]> {
    return this.filesFor(identity, major, await this.target.access(identity));
  }

  private filesFor(identity: BackupIdentity, major: number, access: RepositoryAccess): ContainerFile[] {
    return [
      {
        path: CONFIG_PATH,
        content: configFile(identity, major, { retentionFull: this.config.backup.retentionFull, repository: access.lines }),
        mode: 0o600,
        uid: POSTGRES_UID,
        gid: POSTGRES_UID,
      },
      ...access.files,
    ];
  }

  binds(identity: BackupIdentity): BindMount[] {
    return this.target.binds(identity);
  }

  flushCommand(identity: BackupIdentity): string[] {
    return pgbackrest(identity.stanza, 'check', '--archive-timeout=30');
  }

  /**
   * Runs pgBackRest (or a shell script using it) in a task container from
   * the database's image, as the postgres user, with the repository and,
   * when given, a data volume mounted. For databases that do not run, and
   * for restores into a new volume.
   */
  async task(identity: BackupIdentity, context: TaskContext, kind: string, command: string[], volume?: string): Promise<ExecResult> {
    await this.prepare(identity);
    const access = await this.target.access(identity);
    return this.docker.runTask({
      containerName: `pgdb-task-${kind}-${randomBytes(4).toString('hex')}`,
      image: context.image,
      command,
      user: `${POSTGRES_UID}:${POSTGRES_UID}`,
      labels: { ...context.instanceLabels, [TASK_LABEL]: kind, [LABELS.version]: String(context.major) },
      volumes: volume ? [{ name: volume, target: context.major >= 18 ? '/var/lib/postgresql' : '/var/lib/postgresql/data' }] : [],
      binds: this.binds(identity),
      files: this.filesFor(identity, context.major, access),
      network: access.taskNetwork,
      memoryBytes: TASK_MEMORY_BYTES,
      timeoutMs: TASK_TIMEOUT_MS,
    });
  }

  /** Deletes a stanza's backups for good. */
  delete(identity: BackupIdentity, context: TaskContext): Promise<void> {
    return this.target.deleteStanza(identity, (script) => this.task(identity, context, 'delete', ['sh', '-c', script]));
  }
}

