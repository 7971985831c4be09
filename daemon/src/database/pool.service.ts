import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DEFAULT_SIZE_GB, type PoolSummary } from '../../../contract/api.js';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, LABELS, PortTakenError, type DockerGateway } from '../docker/docker.gateway.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord, StandbyRecord } from '../registry/registry.types.js';
import { generateDbName, generatePassword, randomId } from './identifiers.js';
import { PortPicker } from './ports.js';
import { PostgresRuntime } from './postgres-runtime.js';
import { exposesAdminPassword } from '../postgres/postgres-container.js';
import { ReconcileService } from './reconcile.service.js';

const RETRY_AFTER_FAILURE_MS = 30_000;

/**
 * The warm pool: per configured major, standbys that are initialised,
 * started and ready (volume, container, certificate, limits, port), with
 * only the daemon's own superuser in them. A deploy claims one in a single
 * registry write and then only creates its tenant role, which is what makes
 * it fast. The pool refills in the background, one standby at a time, so
 * that refilling never starves foreground deploys.
 *
 * A standby's container carries `pgdb.pool=<id>` and no `pgdb.name` (labels
 * cannot change after creation). When claimed, it is renamed to
 * `pgdb-<name>-<id>`; the registry maps the database to it by container id.
 */
@Injectable()
export class PoolService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private filling: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  /** Milliseconds each standby took to fill, newest last (for the benchmark and the log). */
  readonly fillTimes: number[] = [];
  /** Per major: why its last standby could not be made (an image that could not be pulled or built); gone once one is made. */
  private readonly problems = new Map<number, string>();

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly reconciliation: ReconcileService,
    private readonly ports: PortPicker,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'pool' });
  }

  onApplicationBootstrap(): void {
    void this.reconciliation.ensureReconciled().then(
      () => this.recover().then(() => this.refill()),
      () => undefined,
    );
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  /**
   * Claims a ready standby of `version` for the database `name`, turning it
   * into a pending record with fresh credentials; undefined on a miss.
   */
  async claim(name: string, version: number, memoryMb: number, sizeGb: number): Promise<RegistryRecord | undefined> {
    if (!this.config.pool.has(version)) return undefined;
    const record = await this.registry.claimStandby(
      name,
      // A file system has one size (growing it online needs a privilege the daemon may lack): the
      // standby's must be the one asked for. One made before sizes has none and fits any.
      (standby) => standby.postgres_version === version && standby.memory_mb === memoryMb && (standby.size_gb ?? sizeGb) === sizeGb,
      (standby) => ({
        name,
        container_id: standby.container_id,
        volume_name: standby.volume_name,
        host_port: standby.host_port,
        db: standby.db,
        user: `u_${randomId(10)}`,
        created_at: new Date().toISOString(),
        postgres_version: standby.postgres_version,
        host: this.config.publicHost,
        password: generatePassword(),
        admin_password: standby.admin_password,
        size_gb: sizeGb,
        memory_mb: standby.memory_mb,
        ...(standby.cpus ? { cpus: standby.cpus } : {}),
        layout: 2,
        tls_not_after: standby.tls_not_after,
        ...(standby.backup ? { backup: standby.backup } : {}),
      }),
    );
    if (record) void this.refill();
    return record;
  }

  /** Per configured major: how many standbys are wanted, ready and filling. */
  async summary(): Promise<PoolSummary[]> {
    const standbys = await this.registry.standbys();
    return [...this.config.pool.entries()].map(([version, target]) => ({
      postgres_version: version,
      target,
      ready: standbys.filter((s) => s.postgres_version === version && s.state === 'ready').length,
      filling: standbys.filter((s) => s.postgres_version === version && s.state === 'filling').length,
      ...(this.problems.has(version) ? { problem: this.problems.get(version) } : {}),
    }));
  }

  /** Fills the pool up to its targets, one standby at a time; concurrent calls share the run. */
  refill(): Promise<void> {
    if (this.filling) {
      this.again = true;
      return this.filling;
    }
    this.filling = this.fillUntilFull()
      .catch((error: Error) => {
        this.logger.error({ err: error.message }, 'filling the warm pool failed; retrying later');
        this.retry = setTimeout(() => void this.refill(), RETRY_AFTER_FAILURE_MS);
        this.retry.unref();
      })
      .finally(() => {
        this.filling = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.refill();
        }
      });
    return this.filling;
  }

  /**
   * After a crash or restart: a standby still filling is removed (it never
   * served anyone); a ready one whose container is gone or stopped too, and
   * one made by an earlier release with the admin's password in its
   * container's environment (exposesAdminPassword) or with a pg_hba.conf
   * that lets pgdb_admin in from any address.
   */
  async recover(): Promise<void> {
    for (const standby of await this.registry.standbys()) {
      const status = standby.container_id ? await this.docker.containerStatus(standby.container_id) : null;
      const exposed = exposesAdminPassword(status?.env, standby.admin_password);
      const usable = standby.state === 'ready' && status?.running && !exposed;
      const openRules = usable && !(await this.runtime.checkAccessRules(standby.container_id)).current;
      if (usable && !openRules) continue;
      this.logger.warn(
        { standby: standby.id, state: standby.state },
        exposed
          ? "removing a standby whose container's environment holds the admin's password"
          : openRules
            ? "removing a standby whose pg_hba.conf is not today's (an earlier release's lets pgdb_admin in from any address)"
            : 'removing a standby a restart interrupted',
      );
      await this.discard(standby);
    }
    // Configured majors may have shrunk: standbys beyond the target go.
    const standbys = await this.registry.standbys();
    for (const [version, list] of groupBy(standbys, (s) => s.postgres_version)) {
      const target = this.config.pool.get(version) ?? 0;
      for (const extra of list.slice(target)) await this.discard(extra);
    }
  }

  private async fillUntilFull(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const standbys = await this.registry.standbys();
      const short = [...this.config.pool.entries()].find(
        ([version, target]) => standbys.filter((s) => s.postgres_version === version).length < target,
      );
      if (!short) return;
      await this.fillOne(short[0]);
    }
  }

  private async fillOne(version: number): Promise<void> {
    const started = performance.now();
    const id = randomId(8);
    const standby = await this.registry.reserveStandby(async (taken) => ({
      id,
      container_id: '',
      volume_name: `pgdb-pool-${id}`,
      host_port: await this.ports.pick(taken),
      postgres_version: version,
      db: generateDbName(),
      admin_password: generatePassword(),
      memory_mb: this.config.defaultMemoryMb,
      ...(this.config.defaultCpus ? { cpus: this.config.defaultCpus } : {}),
      ...(this.config.sizeLimits ? { size_gb: DEFAULT_SIZE_GB } : {}),
      created_at: new Date().toISOString(),
      state: 'filling',
      ...(this.runtime.archiving.enabled ? { backup: this.runtime.archiving.newIdentity(`pgdb-pool-${id}`) } : {}),
    }));
    try {
      const image = await this.runtime.image(version);
      const labels = { ...(await this.runtime.instanceLabels()), [LABELS.pool]: id, [LABELS.version]: String(version) };
      await this.docker.createVolume(standby.volume_name, labels, { sizeGb: standby.size_gb });
      const record = asRecord(standby, this.config.publicHost);
      const { containerId, tlsNotAfter } = await this.runtime.run(record, image, labels);
      await this.registry.patchStandby(id, (s) => {
        s.container_id = containerId;
        s.tls_not_after = tlsNotAfter;
      });
      await this.runtime.waitUntilInitialised(record, containerId);
      await this.registry.patchStandby(id, (s) => {
        s.state = 'ready';
      });
      const ms = Math.round(performance.now() - started);
      this.fillTimes.push(ms);
      this.problems.delete(version);
      this.logger.info({ standby: id, version, container: containerId, port: standby.host_port, ms }, 'standby ready');
    } catch (error) {
      await this.discard({ ...standby, container_id: (await this.registry.standbys()).find((s) => s.id === id)?.container_id ?? '' }).catch(
        (cleanup: Error) => this.logger.error({ standby: id, err: cleanup.message }, 'could not remove a failed standby'),
      );
      if (error instanceof PortTakenError) {
        // The next standby is made at once on another port: the picks skip this one from now on.
        this.ports.refused(error.port);
        this.logger.warn({ standby: id, port: error.port }, 'host port taken outside pgdb; the next standby takes another');
        return;
      }
      this.problems.set(version, (error as Error).message);
      throw error;
    }
  }

  /** Removes a standby's container, volume and record. */
  private async discard(standby: StandbyRecord): Promise<void> {
    const containers = await this.docker.listContainers({ ...(await this.runtime.instanceLabels()), [LABELS.pool]: standby.id });
    const claimed = new Set((await this.registry.list()).map((r) => r.container_id));
    for (const id of new Set([standby.container_id, ...containers.map((c) => c.id)].filter(Boolean))) {
      // A container a database record points at was claimed: it is not the pool's any more.
      if (!claimed.has(id)) await this.docker.removeContainer(id);
    }
    if (!(await this.registry.list()).some((r) => r.volume_name === standby.volume_name)) {
      await this.docker.removeVolume(standby.volume_name);
      if (standby.backup) await this.runtime.deleteArchive(standby.backup, standby.postgres_version);
    }
    await this.registry.removeStandby(standby.id);
  }
}

/** What the container recipe needs of a standby; it has no tenant yet. */
export function asRecord(standby: StandbyRecord, host: string): RegistryRecord {
  return {
    name: `pool-${standby.id}`,
    container_id: standby.container_id,
    volume_name: standby.volume_name,
    host_port: standby.host_port,
    db: standby.db,
    user: '',
    created_at: standby.created_at,
    postgres_version: standby.postgres_version,
    host,
    password: '',
    admin_password: standby.admin_password,
    size_gb: standby.size_gb ?? DEFAULT_SIZE_GB,
    memory_mb: standby.memory_mb,
    ...(standby.cpus ? { cpus: standby.cpus } : {}),
    layout: 2,
    ...(standby.backup ? { backup: standby.backup } : {}),
  };
}

function groupBy<T, K>(values: T[], key: (value: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const value of values) groups.set(key(value), [...(groups.get(key(value)) ?? []), value]);
  return groups;
}
