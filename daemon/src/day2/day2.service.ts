import { availableParallelism, totalmem } from 'node:os';
import { finished, Transform, type Readable } from 'node:stream';
import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import {
  databaseUrl,
  LOGS_MAX_BYTES,
  maskPassword,
  type ContainerState,
  type InfoResponse,
  type LifecycleAction,
  type LifecycleResponse,
  type ResizeResponse,
  type RotateResponse,
  type UrlResponse,
} from '../../../contract/api.js';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { ContainerGoneError, DOCKER_GATEWAY, OnlineGrowRefusedError, PortTakenError, type DockerGateway } from '../docker/docker.gateway.js';
import { generatePassword } from '../database/identifiers.js';
import { Operations } from '../database/operations.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { ReconcileService } from '../database/reconcile.service.js';
import { mountPathFor, tlsFiles } from '../postgres/postgres-container.js';
import { isPostgresError } from '../postgres/postgres.client.js';
import { RegistryService } from '../registry/registry.service.js';
import { BackupEvents } from '../database/backup-events.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { INFO_QUERY, passwordChange, terminateSessions, type InfoRow } from './day2.sql.js';

/** How long Postgres gets to shut down cleanly (a fast shutdown) before Docker kills it. */
const CLEAN_STOP_SECONDS = 30;
const MIB = 1024 * 1024;

/**
 * Day-2 operations on an existing database: stop, start and restart (kept
 * in the registry, so a stopped database stays stopped), credentials
 * rotation, resize, logs, info and its URL. Every operation that changes
 * something runs in the database's in-flight slot (Operations), which a
 * deploy, a destroy and a repair of the same name also take: a second one
 * gets DB_BUSY (409), never a mix.
 */
@Injectable()
export class Day2Service implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: Logger;
  /** Open log streams, ended when the daemon shuts down so that a --follow cannot hold it up. */
  private readonly streams = new Set<Readable>();

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly reconciliation: ReconcileService,
    private readonly operations: Operations,
    private readonly registry: RegistryService,
    private readonly backupEvents: BackupEvents,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'lifecycle' });
  }

  onApplicationBootstrap(): void {
    // After reconciliation: a rotation a crash interrupted is finished.
    void this.reconciliation.ensureReconciled().then(
      () => this.finishRotations(),
      () => undefined,
    );
  }

  beforeApplicationShutdown(): void {
    for (const stream of this.streams) stream.destroy();
  }

  /** How many log streams are open (for tests and the shutdown hook). */
  openStreams(): number {
    return this.streams.size;
  }

  async url(name: string): Promise<UrlResponse> {
    const record = await this.settled(name);
    return { name, database_url: urlOf(record) };
  }

  async info(name: string, showSecrets: boolean): Promise<InfoResponse> {
    await this.reconciliation.ensureReconciled();
    const record = await this.settled(name);
    const status = record.container_id ? await this.docker.containerStatus(record.container_id) : null;
    const state: ContainerState = !status ? 'missing' : status.running ? 'running' : 'stopped';
    const live = state === 'running' ? await this.liveFigures(record) : undefined;
    const url = urlOf(record);
    return {
      name,
      state,
      postgres_version: record.postgres_version,
      previous_version: record.previous?.postgres_version ?? null,
      server_version: live?.row.server_version ?? null,
      started_at: live ? new Date(live.row.started_at).toISOString() : null,
      uptime_seconds: live ? Math.max(0, Math.round((Date.now() - new Date(live.row.started_at).getTime()) / 1000)) : null,
      data_bytes: live ? Number(live.row.data_bytes) : null,
      volume_free_bytes: live?.freeBytes ?? null,
      connections: live ? Number(live.row.connections) : null,
      max_connections: live ? Number(live.row.max_connections) : null,
      longest_query_seconds: live ? Math.round(Number(live.row.longest_query_seconds) * 10) / 10 : null,
      limits: { memory_mb: record.memory_mb ?? null, cpus: record.cpus ?? null, size_gb: record.size_gb, size_enforced: (await this.docker.volumeSize(record.volume_name)) !== undefined },
      host: record.host,
      port: record.host_port,
      db: record.db,
      user: record.user,
      database_url: showSecrets ? url : maskPassword(url),
      created_at: record.created_at,
      backups: this.backupEvents.stateFor(record) ?? null,
    };
  }

  /**
   * The container's log as a stream, at most LOGS_MAX_BYTES of it; with
   * `follow` it ends when the container stops or is removed (a destroy), or
   * when the client goes away.
   */
  async logs(name: string, options: { tail: number | 'all'; since?: number; follow: boolean }): Promise<Readable> {
    const record = await this.settled(name);
    let source: Readable;
    try {
      source = await this.docker.logStream(record.container_id, {
        tail: options.tail === 'all' ? undefined : options.tail,
        since: options.since,
        follow: options.follow,
      });
    } catch (error) {
      if (error instanceof ContainerGoneError) {
        throw new DomainError('DB_STOPPED', `database "${name}" has no container (it was stopped and its container removed); \`pgdb start ${name}\` re-creates it`);
      }
      throw error;
    }
    const stream = capped(source, LOGS_MAX_BYTES);
    this.streams.add(stream);
    finished(stream, () => this.streams.delete(stream));
    return stream;
  }

  async lifecycle(name: string, action: LifecycleAction): Promise<LifecycleResponse> {
    return this.exclusive(name, async (record) => {
      const status = await this.docker.containerStatus(record.container_id);
      let changed: boolean;
      let current = record;
      if (action === 'stop') {
        changed = status?.running === true || !record.stopped;
        // Recorded first: from here on reconciliation neither starts nor re-creates it.
        if (!record.stopped) current = await this.registry.patch(name, (r) => (r.stopped = true));
        if (status?.running) await this.docker.stopContainer(record.container_id, CLEAN_STOP_SECONDS);
        this.logger.info({ database: name, container: record.container_id, changed }, 'stopped');
        return { name, action, state: 'stopped', port: current.host_port, changed };
      }
      if (action === 'start' && status?.running && !record.stopped) {
        return { name, action, state: 'running', port: record.host_port, changed: false };
      }
      if (action === 'restart' && status?.running) await this.docker.stopContainer(record.container_id, CLEAN_STOP_SECONDS);
      current = await this.bringUp(record, status !== null);
      changed = true;
      this.logger.info({ database: name, container: current.container_id, action }, action === 'restart' ? 'restarted' : 'started');
      return { name, action, state: 'running', port: current.host_port, changed };
    });
  }

  /**
   * A new password for the tenant's role. The registry never holds a state
   * where neither password is known: the new one is recorded as
   * `next_password` before the role changes, and promoted after.
   */
  async rotate(name: string, keepSessions: boolean): Promise<RotateResponse> {
    return this.exclusive(name, async (record) => {
      await this.requireRunning(record);
      // A running container whose Postgres does not answer: a clear error, and nothing recorded.
      await this.ready(record, 'admin');
      const next = generatePassword();
      await this.registry.patch(name, (r) => (r.next_password = next));
      failpoint('rotate:recorded');
      const admin = this.runtime.target(record, 'admin');
      try {
        await this.runtime.client.execute(admin, [passwordChange(record.user, next)]);
      } catch (error) {
        if (isPostgresError(error)) throw error;
        // Lost on the way: the change may or may not have been made. The recorded password is made
        // to work at the next start (finishRotations), or by the next rotation.
        throw new DomainError(
          'POSTGRES_NOT_READY',
          `postgres of "${name}" could not be reached to change the password (${(error as Error).message}); ` +
            `run \`pgdb credentials rotate ${name}\` again once it answers (the daemon also finishes the change at its next start)`,
        );
      }
      failpoint('rotate:role-changed');
      let sessionsEnded = 0;
      if (!keepSessions) {
        const [row] = await this.runtime.client.query<{ ended: number }>(admin, terminateSessions(record.user));
        sessionsEnded = Number(row?.ended ?? 0);
      }
      const saved = await this.promote(name);
      this.logger.info({ database: name, sessionsEnded }, 'credentials rotated');
      return { name, password: saved.password, database_url: urlOf(saved), sessions_ended: sessionsEnded };
    });
  }

  /**
   * New memory and CPU limits on the container as it runs, checked against
   * the host before anything changes; a bigger volume, grown online where the
   * kernel lets the daemon (else Postgres restarts once, for seconds).
   */
  async resize(name: string, change: { memoryMb?: number; cpus?: number; sizeGb?: number }): Promise<ResizeResponse> {
    const { memoryMb, cpus, sizeGb } = change;
    if (memoryMb === undefined && cpus === undefined && sizeGb === undefined) {
      throw new DomainError('INVALID_REQUEST', 'give memory_mb, cpus, size_gb or several of them');
    }
    const hostMb = Math.floor(totalmem() / MIB);
    if (memoryMb !== undefined && memoryMb > hostMb) {
      throw new DomainError('INVALID_REQUEST', `memory_mb ${memoryMb} is more than this server has (${hostMb} MiB); nothing was changed`);
    }
    const hostCpus = availableParallelism();
    if (cpus !== undefined && cpus > hostCpus) {
      throw new DomainError('INVALID_REQUEST', `cpus ${cpus} is more than this server has (${hostCpus}); nothing was changed`);
    }
    return this.exclusive(name, async (record) => {
      if (sizeGb !== undefined && sizeGb < record.size_gb) {
        throw new DomainError('INVALID_REQUEST', `size_gb ${sizeGb} is less than "${name}" has (${record.size_gb} GiB): a volume grows, never shrinks; nothing was changed`);
      }
      const enforced = (await this.docker.volumeSize(record.volume_name)) !== undefined;
      const restarted = sizeGb !== undefined && sizeGb > record.size_gb && enforced ? await this.growVolume(record, sizeGb) : false;
      try {
        if (memoryMb !== undefined) await this.docker.updateMemory(record.container_id, memoryMb * MIB);
        if (cpus !== undefined) await this.docker.updateCpus(record.container_id, Math.round(cpus * 1e9));
      } catch (error) {
        // A missing container is re-created from the record (by start, or by a repair): the record is enough.
        if (!(error instanceof ContainerGoneError)) throw error;
      }
      const saved = await this.registry.patch(name, (r) => {
        if (memoryMb !== undefined) r.memory_mb = memoryMb;
        if (cpus !== undefined) r.cpus = cpus;
        if (sizeGb !== undefined) r.size_gb = sizeGb;
      });
      this.logger.info(
        { database: name, memoryMb, cpus, sizeGb, restarted, previous: { memoryMb: record.memory_mb, cpus: record.cpus, sizeGb: record.size_gb } },
        'resized',
      );
      return {
        name,
        memory_mb: saved.memory_mb ?? null,
        previous_memory_mb: record.memory_mb ?? null,
        cpus: saved.cpus ?? null,
        previous_cpus: record.cpus ?? null,
        size_gb: saved.size_gb,
        previous_size_gb: record.size_gb,
        size_enforced: enforced,
        restarted,
      };
    });
  }

  /**
   * Grows the database's volume; returns whether Postgres had to restart for
   * it (the kernel refused an online resize to this daemon).
   */
  private async growVolume(record: RegistryRecord, sizeGb: number): Promise<boolean> {
    try {
      await this.docker.growVolume(record.volume_name, sizeGb);
      return false;
    } catch (error) {
      if (!(error instanceof OnlineGrowRefusedError)) throw error;
    }
    this.logger.warn({ database: record.name, sizeGb }, 'the kernel refused to grow the volume while mounted; restarting Postgres to grow it');
    await this.docker.stopContainer(record.container_id, CLEAN_STOP_SECONDS);
    try {
      await this.docker.growVolume(record.volume_name, sizeGb);
    } finally {
      // Back up whatever happened: a failed grow leaves the old size, and the database must run.
      if (!record.stopped) {
        await this.docker.startContainer(record.container_id);
        await this.ready(record, 'tenant');
      }
    }
    return true;
  }

  /** At start: rotations a crash interrupted get the password that was recorded, then it is promoted. */
  async finishRotations(): Promise<void> {
    for (const record of await this.registry.list()) {
      if (!record.next_password || record.pending || record.stopped || this.operations.has(record.name)) continue;
      await this.operations
        .run(record.name, async () => {
          await this.completeRotation(record);
          this.logger.warn({ database: record.name }, 'finished a credentials rotation that a crash interrupted');
        })
        .catch((error: Error) =>
          this.logger.error({ database: record.name, err: error.message }, 'could not finish an interrupted credentials rotation; retried at the next start or rotate'),
        );
    }
  }

  /** Starts the container (re-created from the record when it is gone), and proves the tenant can log in. */
  private async bringUp(record: RegistryRecord, exists: boolean): Promise<RegistryRecord> {
    try {
      return await this.startOrCreate(record, exists);
    } catch (error) {
      if (!(error instanceof PortTakenError)) throw error;
      throw new DomainError(
        'PORT_TAKEN',
        `port ${record.host_port} of "${record.name}" is held by another program on the server; free it and run \`pgdb start ${record.name}\` again (the database stays stopped)`,
      );
    }
  }

  private async startOrCreate(record: RegistryRecord, exists: boolean): Promise<RegistryRecord> {
    let current = record;
    if (!exists) {
      const image = await this.runtime.image(record.postgres_version);
      await this.runtime.removeHolders(record.volume_name);
      const { containerId, tlsNotAfter } = await this.runtime.run(record, image);
      current = await this.registry.patch(record.name, (r) => {
        r.container_id = containerId;
        r.tls_not_after = tlsNotAfter;
        delete r.stopped;
      });
    } else {
      // A certificate that fell due while stopped is replaced before Postgres reads it.
      const renew = this.runtime.tls.databaseNeedsNew(record.tls_not_after, new Date());
      const credentials = renew ? await this.runtime.tls.databaseCredentials() : undefined;
      if (credentials) await this.docker.copyFiles(record.container_id, tlsFiles(credentials));
      await this.docker.startContainer(record.container_id);
      current = await this.registry.patch(record.name, (r) => {
        delete r.stopped;
        if (credentials) r.tls_not_after = credentials.notAfter.toISOString();
      });
    }
    await this.ready(current, 'admin');
    if (current.next_password) current = await this.completeRotation(current);
    await this.ready(current, 'tenant');
    return current;
  }

  private async completeRotation(record: RegistryRecord): Promise<RegistryRecord> {
    await this.runtime.client.execute(this.runtime.target(record, 'admin'), [passwordChange(record.user, record.next_password!)]);
    return this.promote(record.name);
  }

  private promote(name: string): Promise<RegistryRecord> {
    return this.registry.patch(name, (r) => {
      if (!r.next_password) return;
      r.password = r.next_password;
      delete r.next_password;
    });
  }

  private async ready(record: RegistryRecord, who: 'admin' | 'tenant'): Promise<void> {
    const deadline = Date.now() + this.config.readyTimeoutMs;
    const ok = await this.runtime.client.waitUntilReady(this.runtime.target(record, who), deadline, async () => {
      const status = await this.docker.containerStatus(record.container_id);
      return !status?.running;
    });
    if (!ok) {
      const logs = await this.docker.containerLogs(record.container_id, 30).catch(() => '');
      this.logger.error({ database: record.name, container: record.container_id, logs }, 'postgres did not become ready');
      throw new DomainError(
        'POSTGRES_NOT_READY',
        `postgres of "${record.name}" did not accept connections within ${Math.round(this.config.readyTimeoutMs / 1000)} s; ` +
          `its last log lines are in the daemon log (journalctl -u pgdbd) and \`pgdb logs ${record.name}\``,
      );
    }
  }

  async requireRunning(record: RegistryRecord): Promise<void> {
    const status = await this.docker.containerStatus(record.container_id);
    if (record.stopped || !status?.running) {
      throw new DomainError('DB_STOPPED', `database "${record.name}" is stopped; start it with \`pgdb start ${record.name}\` first`);
    }
  }

  private async liveFigures(record: RegistryRecord): Promise<{ row: InfoRow; freeBytes: number | null } | undefined> {
    try {
      const [[row], freeBytes] = await Promise.all([
        this.runtime.client.query<InfoRow>(this.runtime.target(record, 'admin'), INFO_QUERY),
        this.freeBytes(record),
      ]);
      return row ? { row, freeBytes } : undefined;
    } catch (error) {
      this.logger.warn({ database: record.name, err: (error as Error).message }, 'info: live figures unavailable');
      return undefined;
    }
  }

  /** Free space of the file system under the data volume, as `df` in the container sees it. */
  private async freeBytes(record: RegistryRecord): Promise<number | null> {
    const result = await this.docker.exec(record.container_id, ['df', '-Pk', mountPathFor(record.postgres_version)]);
    const fields = result.stdout.trim().split('\n')[1]?.trim().split(/\s+/);
    const available = Number(fields?.[3]);
    return result.exitCode === 0 && Number.isFinite(available) ? available * 1024 : null;
  }

  /** The record of a database that exists and is not being created or destroyed. */
  private async settled(name: string): Promise<RegistryRecord> {
    const record = await this.registry.find(name);
    if (!record) throw new DomainError('DB_NOT_FOUND', `no database named "${name}"`);
    if (record.pending === 'creating') {
      throw new DomainError('DB_BUSY', `database "${name}" is still being created; try again when its deploy has finished`);
    }
    if (record.pending === 'destroying') throw new DomainError('DB_BUSY', `database "${name}" is being destroyed`);
    return record;
  }

  /** Runs `work` in the database's in-flight slot, on its record read inside it. */
  async exclusive<T>(name: string, work: (record: RegistryRecord) => Promise<T>): Promise<T> {
    await this.reconciliation.ensureReconciled();
    return this.operations.run(name, async () => work(await this.settled(name)));
  }
}

/**
 * Passes `source` on up to `limit` bytes, then a line saying so, and ends.
 * Destroying the result (the client went away, the daemon stops) destroys
 * `source` at once, which closes Docker's stream: a follow waiting for its
 * next line holds nothing afterwards.
 */
export function capped(source: Readable, limit: number): Readable {
  let seen = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (seen >= limit) return done();
      const room = limit - seen;
      seen += chunk.length;
      if (chunk.length <= room) return done(null, chunk);
      this.push(chunk.subarray(0, room));
      this.push(Buffer.from(`\n[pgdb: this request read its limit of ${limit} bytes; ask for less with --tail or --since]\n`));
      done();
      source.unpipe(cap);
      source.destroy();
      cap.end();
    },
  });
  source.on('error', (error) => cap.destroy(error));
  cap.on('close', () => source.destroy());
  return source.pipe(cap);
}

function urlOf(record: RegistryRecord): string {
  return databaseUrl({ user: record.user, password: record.password, host: record.host, port: record.host_port, db: record.db });
}
