import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DAEMON_CONFIG, imageFor, type DaemonConfig } from '../common/config.js';
import { DOCKER_GATEWAY, LABELS, type BindMount, type ContainerFile, type DockerGateway, type ExecResult } from '../docker/docker.gateway.js';
import { POSTGRES_UID, type ArchivingParts } from '../postgres/postgres-container.js';
import type { BackupIdentity } from '../registry/registry.types.js';
import { archiveSettings, configFile, CONFIG_PATH, dataDirFor, REPO_MOUNT, S3_CA_PATH, type RepositorySettings } from './pgbackrest.js';
import { S3_PREFIX, S3Gateway } from './s3-gateway.js';

/** Long enough for a restore of a large database; a task that takes longer is killed. */
const TASK_TIMEOUT_MS = 6 * 60 * 60 * 1000;
const TASK_MEMORY_BYTES = 512 * 1024 * 1024;
/** On an image that has pgBackRest: its origin (e.g. `debian`, `pgdg`). */
export const PGBACKREST_LABEL = 'org.pgdb.pgbackrest';

/** Label of task containers (restores, listings), so that a crash's leftovers are found and removed. */
export const TASK_LABEL = 'pgdb.task';

/**
 * Where each database's backups live and what its container needs to reach
 * them: a pgbackrest.conf with its stanza's passphrase, and (for the local
 * repository) its own directory `<data dir>/backups/<stanza>` mounted in.
 * A container sees its own repository only.
 *
 * The daemon runs without capabilities (it cannot chown), so a local
 * repository directory is made writable for the container's postgres user
 * by mode (inside the data directory, which is 0700 and root's), and
 * everything inside it, written by that user, is read and removed by
 * pgBackRest or a task container, never by the daemon itself.
 */
@Injectable()
export class BackupRepository {
  readonly root: string;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    readonly gateway: S3Gateway,
  ) {
    this.root = join(config.dataDir, 'backups');
  }

  private readonly images = new Map<number, Promise<string>>();

  /**
   * The image a database of `major` runs: the configured one when it has
   * pgBackRest (labelled PGBACKREST_LABEL, as pgdb's own images are) or
   * backups are off; else an image derived from it on first use, with
   * pgBackRest from the PGDG apt repository that the official images
   * configure (`pgdb-local/postgres:<major>`). Pulled or built once per run.
   */
  image(major: number): Promise<string> {
    let resolved = this.images.get(major);
    if (!resolved) {
      resolved = this.resolveImage(major).catch((error) => {
        this.images.delete(major);
        throw error;
      });
      this.images.set(major, resolved);
    }
    return resolved;
  }

  private async resolveImage(major: number): Promise<string> {
    const base = imageFor(this.config, major);
    await this.docker.ensureImage(base);
    if (!this.enabled) return base;
    const labels = await this.docker.imageLabels(base);
    if (labels && labels[PGBACKREST_LABEL]) return base;
    const derived = derivedImage(major);
    const existing = await this.docker.imageLabels(derived);
    if (existing && existing['org.pgdb.base'] === base) return derived;
    await this.docker.buildImage(derived, derivedDockerfile(base));
    return derived;
  }

  get enabled(): boolean {
    return this.config.backup.enabled;
  }

  /** Where the backups are, for status: a local directory or an S3 bucket. */
  describe(): { kind: 'local' | 's3'; location: string; note: string } {
    const s3 = this.config.backup.s3;
    if (s3) {
      return { kind: 's3', location: `s3://${s3.bucket} at ${s3.endpoint}`, note: 'backups are off this server: they survive the loss of its disk' };
    }
    return {
      kind: 'local',
      location: this.root,
      note: 'backups are on this server\'s data volume: they protect against mistakes, not against losing that volume; set PGDB_BACKUP_S3_* to keep them elsewhere',
    };
  }

  /** A new database's stanza (its volume's name) and a fresh passphrase. */
  newIdentity(volumeName: string): BackupIdentity | undefined {
    if (!this.enabled) return undefined;
    return { stanza: volumeName, cipher_pass: randomBytes(32).toString('base64url') };
  }

  hostDir(stanza: string): string {
    return join(this.root, stanza);
  }

  /** Creates the local repository directory of a stanza (nothing for S3). */
  async prepare(identity: BackupIdentity): Promise<void> {
    if (this.config.backup.s3) return;
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    const dir = this.hostDir(identity.stanza);
    await mkdir(dir, { recursive: true });
    // Written by the container's postgres user (uid 999); only reachable through the 0700 parents.
    await chmod(dir, 0o777);
  }

  /** What a database container needs for archiving into its stanza. */
  async containerParts(identity: BackupIdentity, major: number): Promise<ArchivingParts> {
    return {
      command: archiveSettings(identity.stanza),
      files: await this.files(identity, major),
      binds: this.binds(identity),
      // New clusters get page checksums (18 has them on by default).
      env: { POSTGRES_INITDB_ARGS: '--data-checksums' },
    };
  }

  /**
   * The stanza's pgbackrest.conf and, with S3, the backup gateway's CA: the
   * container's S3 credential is its stanza's own, for the gateway, never
   * the server's keys.
   */
  async files(identity: BackupIdentity, major: number): Promise<ContainerFile[]> {
    const settings: RepositorySettings = { retentionFull: this.config.backup.retentionFull };
    const s3 = this.config.backup.s3;
    let gatewayCa: string | undefined;
    if (s3) {
      const gateway = await this.gateway.endpoint();
      const credentials = this.gateway.credentials(identity.stanza);
      gatewayCa = gateway.caPem;
      settings.s3Prefix = S3_PREFIX;
      settings.s3 = {
        endpoint: gateway.host,
        port: gateway.port,
        bucket: s3.bucket,
        region: s3.region,
        accessKey: credentials.accessKey,
        secretKey: credentials.secretKey,
        uriStyle: 'path',
        caFile: S3_CA_PATH,
      };
    }
    const files: ContainerFile[] = [
      { path: CONFIG_PATH, content: configFile(identity, major, settings), mode: 0o600, uid: POSTGRES_UID, gid: POSTGRES_UID },
    ];
    if (gatewayCa) files.push({ path: S3_CA_PATH, content: gatewayCa, mode: 0o644, uid: 0, gid: 0 });
    return files;
  }

  binds(identity: BackupIdentity): BindMount[] {
    return this.config.backup.s3 ? [] : [{ source: this.hostDir(identity.stanza), target: REPO_MOUNT }];
  }

  /**
   * Runs pgBackRest (or a shell script using it) in a task container from
   * the stanza's image, as the postgres user, with the repository and, when
   * given, a data volume mounted. For databases that do not run, and for
   * restores into a new volume.
   */
  async task(
    identity: BackupIdentity,
    major: number,
    instanceLabels: Record<string, string>,
    kind: string,
    command: string[],
    volume?: string,
  ): Promise<ExecResult> {
    await this.prepare(identity);
    return this.docker.runTask({
      containerName: `pgdb-task-${kind}-${randomBytes(4).toString('hex')}`,
      image: await this.image(major),
      command,
      user: `${POSTGRES_UID}:${POSTGRES_UID}`,
      labels: { ...instanceLabels, [TASK_LABEL]: kind, [LABELS.version]: String(major) },
      volumes: volume ? [{ name: volume, target: major >= 18 ? '/var/lib/postgresql' : '/var/lib/postgresql/data' }] : [],
      binds: this.binds(identity),
      files: await this.files(identity, major),
      // Only the backup gateway, on the databases' bridge, is reachable with S3.
      network: this.config.backup.s3 ? (await this.gateway.endpoint()).network : 'none',
      memoryBytes: TASK_MEMORY_BYTES,
      timeoutMs: TASK_TIMEOUT_MS,
    });
  }

  /**
   * Deletes a stanza's backups for good: the files (owned by the
   * container's user) by a task container, then the emptied directory.
   */
  async delete(identity: BackupIdentity, major: number, instanceLabels: Record<string, string>): Promise<void> {
    if (this.config.backup.s3) {
      const result = await this.task(identity, major, instanceLabels, 'delete', [
        'sh', '-c', `pgbackrest --config=${CONFIG_PATH} --stanza=${identity.stanza} stop --force >/dev/null 2>&1; ` +
          `pgbackrest --config=${CONFIG_PATH} --stanza=${identity.stanza} stanza-delete --force`,
      ]);
      if (result.exitCode !== 0) throw new Error(`deleting the backups of stanza ${identity.stanza} failed: ${result.stdout.trim()}`);
      return;
    }
    // An empty directory (a deploy that failed before archiving anything) needs no task.
    const empty = await rmdir(this.hostDir(identity.stanza)).then(
      () => true,
      (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
    );
    if (empty) return;
    const result = await this.task(identity, major, instanceLabels, 'delete', ['sh', '-c', `find ${REPO_MOUNT} -mindepth 1 -delete`]);
    if (result.exitCode !== 0) throw new Error(`deleting the backups of stanza ${identity.stanza} failed: ${result.stdout.trim()}`);
    await rmdir(this.hostDir(identity.stanza)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

}

export { dataDirFor };

export function derivedImage(major: number): string {
  return `pgdb-local/postgres:${major}`;
}

/** The official image plus pgBackRest from its PGDG apt repository; checked to run. */
export function derivedDockerfile(base: string): string {
  return [
    `FROM ${base}`,
    'RUN set -eu; apt-get update; apt-get install -y --no-install-recommends pgbackrest; rm -rf /var/lib/apt/lists/*; pgbackrest version',
    `LABEL ${PGBACKREST_LABEL}="pgdg" org.pgdb.base="${base}"`,
    '',
  ].join('\n');
}
