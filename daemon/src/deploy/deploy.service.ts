import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import {
  DEFAULT_SIZE_GB,
  databaseUrl,
  type DeployResponse,
  type DetachedVolume,
  type StatusItem,
  type StatusResponse,
} from '../contract/api.js';
import { totalmem } from 'node:os';
import { DAEMON_CONFIG, imageFor, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, LABELS, PortTakenError, type DockerGateway, type ManagedContainer } from '../docker/docker.gateway.js';
import { tenantSetup } from '../postgres/postgres-container.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import type { DeployDto } from './deploy.dto.js';
import { generateDbName, generateName, generatePassword, generateUser, randomId } from './identifiers.js';
import { LegacyUpgrade } from './legacy-upgrade.js';
import { pickPort } from './ports.js';
import { PostgresRuntime } from './postgres-runtime.js';
import { VolumeUsage } from './volume-usage.js';

const PORT_ATTEMPTS = 5;

/** Orchestrates the registry and Docker: the only place that knows both. */
@Injectable()
export class DeployService implements OnApplicationBootstrap {
  private readonly logger: Logger;
  private reconciled: Promise<void> | undefined;
  /** Names this process is deploying or destroying right now; reconciliation leaves them alone. */
  private readonly inFlight = new Set<string>();
  private readonly volumeUsage: VolumeUsage;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly legacy: LegacyUpgrade,
    private readonly registry: RegistryService,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'deploy' });
    this.volumeUsage = new VolumeUsage(() => docker.volumeUsage());
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.registry.init();
    // A missing engine must not keep the daemon from starting: the next request retries.
    await this.ensureReconciled().catch((error: Error) =>
      this.logger.warn({ err: error.message }, 'reconciliation postponed until Docker answers'),
    );
  }

  async deploy(request: DeployDto): Promise<DeployResponse> {
    const version = request.version ?? this.config.defaultVersion;
    if (!this.config.versions.includes(version)) {
      throw new DomainError(
        'INVALID_REQUEST',
        `postgres version ${version} is not supported; supported versions: ${this.config.versions.join(', ')}`,
      );
    }
    const memoryMb = request.memory_mb ?? this.config.defaultMemoryMb;
    checkMemory(memoryMb);
    await this.ensureReconciled();
    const image = imageFor(this.config, version);
    const started = performance.now();
    const timings: Record<string, number> = {};
    const lap = (phase: string) => (timings[phase] = Math.round(performance.now() - started));
    await Promise.all([this.docker.ensureImage(image), this.runtime.isolatedNetwork()]);
    lap('image');

    let record = await this.reserve(request.name ?? generateName(), version, request.size_gb ?? DEFAULT_SIZE_GB, memoryMb);
    lap('reserved');
    const log = this.logger.child({ database: record.name, volume: record.volume_name });
    this.inFlight.add(record.name);
    try {
      await this.docker.createVolume(record.volume_name, await this.runtime.labels(record));
      record = await this.startContainer(record, image);
      lap('started');
      log.info({ container: record.container_id, port: record.host_port }, 'container started');
      await this.runtime.waitUntilReady(record, record.container_id, 'admin');
      lap('ready');
      await this.runtime.client.execute(this.runtime.target(record, 'admin'), tenantSetup(record));
      lap('roles');
      // The caller gets exactly these credentials: prove they work, over TLS.
      await this.runtime.waitUntilReady(record, record.container_id, 'tenant');
      lap('verified');
      record = await this.settle(record);
      lap('recorded');
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'deploy failed; removing what it created');
      await this.teardown(record, false).catch((cleanupError: Error) => {
        log.error({ err: cleanupError.message }, 'cleanup after failed deploy failed; it is retried before the next operation');
        this.reconciled = undefined;
      });
      throw error;
    } finally {
      this.inFlight.delete(record.name);
    }
    log.info({ container: record.container_id, port: record.host_port, version, timings }, 'database ready');
    return toDeployResponse(record);
  }

  async status(showSecrets: boolean): Promise<StatusResponse> {
    await this.ensureReconciled();
    const labels = await this.runtime.instanceLabels();
    const records = await this.registry.list();
    const [containers, volumes, usage] = await Promise.all([
      this.docker.listContainers(labels),
      this.docker.listVolumes(labels),
      this.volumeUsage.sizes(records.map((r) => r.volume_name)).catch((error: Error) => {
        this.logger.warn({ err: error.message }, 'volume usage unavailable');
        return new Map<string, number>();
      }),
    ]);
    const items = records.map((record) =>
      toStatusItem(record, findContainer(containers, record), usage.get(record.volume_name) ?? null, showSecrets),
    );
    const recorded = new Set(records.map((r) => r.volume_name));
    const detached_volumes: DetachedVolume[] = volumes
      .filter((v) => !recorded.has(v.name))
      .map((v) => ({ volume_name: v.name, name: v.labels[LABELS.name] ?? '', created_at: v.createdAt }));
    return { items, detached_volumes };
  }

  async destroy(name: string, keepData: boolean): Promise<void> {
    await this.ensureReconciled();
    const record = await this.registry.update((items) => {
      const found = items.find((item) => item.name === name);
      if (!found) throw new DomainError('DB_NOT_FOUND', `no database named "${name}"`);
      if (found.pending === 'creating') {
        throw new DomainError('DB_ALREADY_EXISTS', `database "${name}" is still being created; try again when its deploy has finished`);
      }
      found.pending = 'destroying';
      found.keep_data = keepData;
      return { items, result: found };
    });
    this.inFlight.add(name);
    try {
      await this.teardown(record, keepData);
    } finally {
      this.inFlight.delete(name);
    }
    this.logger.info({ database: name, volume: record.volume_name, keepData }, 'database destroyed');
  }

  /** Docker reachable? Used by the health endpoint. */
  async dockerReachable(): Promise<boolean> {
    return this.docker.ping().then(
      () => true,
      () => false,
    );
  }

  /** Reserves the name and a port by writing a pending record. */
  private reserve(name: string, version: number, sizeGb: number, memoryMb: number): Promise<RegistryRecord> {
    return this.registry.update(async (items) => {
      if (items.some((item) => item.name === name)) {
        throw new DomainError('DB_ALREADY_EXISTS', `a database named "${name}" already exists; choose another name`);
      }
      const suffix = randomId(6);
      const record: RegistryRecord = {
        name,
        container_id: '',
        volume_name: `pgdb-${name}-${suffix}`,
        host_port: await pickPort(this.config.portRange, takenPorts(items), this.config.postgresBind),
        db: generateDbName(),
        user: generateUser(),
        created_at: new Date().toISOString(),
        postgres_version: version,
        host: this.config.publicHost,
        password: generatePassword(),
        admin_password: generatePassword(),
        size_gb: sizeGb,
        memory_mb: memoryMb,
        layout: 2,
        pending: 'creating',
      };
      return { items: [...items, record], result: record };
    });
  }

  /** Starts the container, moving to another port when something outside pgdb holds the reserved one. */
  private async startContainer(record: RegistryRecord, image: string): Promise<RegistryRecord> {
    const avoid = new Set<number>();
    for (let attempt = 1; ; attempt++) {
      try {
        const { containerId, tlsNotAfter } = await this.runtime.run(record, image);
        // The registry learns the id when the database is ready; until then
        // reconciliation finds the container by its labels.
        return { ...record, container_id: containerId, tls_not_after: tlsNotAfter };
      } catch (error) {
        if (!(error instanceof PortTakenError) || attempt >= PORT_ATTEMPTS) throw error;
        avoid.add(error.port);
        this.logger.warn({ database: record.name, port: error.port }, 'host port taken outside pgdb; trying another');
        const port = await this.registry.update(async (items) => {
          const taken = takenPorts(items.filter((item) => item.name !== record.name));
          const next = await pickPort(this.config.portRange, new Set([...taken, ...avoid]), this.config.postgresBind);
          return { items: items.map((item) => (item.name === record.name ? { ...item, host_port: next } : item)), result: next };
        });
        record = { ...record, host_port: port };
      }
    }
  }

  /** Records the container and clears `pending`: from here on the database exists. */
  private settle(ready: RegistryRecord): Promise<RegistryRecord> {
    return this.registry.update((items) => {
      const record = items.find((item) => item.name === ready.name);
      if (!record) throw new Error(`registry record ${ready.name} vanished during its deploy`);
      record.container_id = ready.container_id;
      record.tls_not_after = ready.tls_not_after;
      delete record.pending;
      return { items, result: record };
    });
  }

  /** Removes a database's containers, its volume unless kept, then its record. */
  private async teardown(record: RegistryRecord, keepData: boolean): Promise<void> {
    const containers = await this.docker.listContainers({ ...(await this.runtime.instanceLabels()), [LABELS.name]: record.name });
    const ids = new Set([record.container_id, ...containers.map((c) => c.id)].filter(Boolean));
    for (const id of ids) await this.docker.removeContainer(id);
    if (!keepData) await this.docker.removeVolume(record.volume_name);
    await this.registry.update((items) => ({ items: items.filter((item) => item.name !== record.name), result: undefined }));
  }

  /** Runs reconciliation once per process; a failed run is retried by the next caller. */
  private ensureReconciled(): Promise<void> {
    this.reconciled ??= this.reconcile().catch((error) => {
      this.reconciled = undefined;
      throw error;
    });
    return this.reconciled;
  }

  /**
   * Finishes what a crash interrupted. Pending deploys never answered their
   * caller, so they are removed; pending destroys are completed; containers
   * with no record are removed (their volumes stay, listed as detached).
   */
  private async reconcile(): Promise<void> {
    // Known from here on, so that the API can turn away connections from databases.
    await this.runtime.isolatedNetwork();
    const records = (await this.registry.list()).filter((r) => !this.inFlight.has(r.name));
    for (const record of records.filter((r) => r.pending)) {
      this.logger.warn({ database: record.name, pending: record.pending }, 'finishing an interrupted operation');
      await this.teardown(record, record.pending === 'destroying' && record.keep_data === true);
    }
    const settled = records.filter((r) => !r.pending);
    const containers = await this.docker.listContainers(await this.runtime.instanceLabels());
    for (const container of containers.filter((c) => !this.inFlight.has(c.labels[LABELS.name]))) {
      const owner = settled.find((r) => r.name === container.labels[LABELS.name]);
      if (!owner || (owner.container_id && owner.container_id !== container.id)) {
        this.logger.warn({ container: container.id, name: container.name }, 'removing a pgdb container with no record');
        await this.docker.removeContainer(container.id);
      }
    }
    // Databases made by a release before TLS and split roles: one at a time,
    // each on its own; a failure is logged and retried at the next start.
    for (const record of settled.filter((r) => r.layout === undefined)) {
      await this.legacy.upgrade(record).catch((error: Error) =>
        this.logger.error({ database: record.name, err: error.message }, 'upgrade to TLS and a non-superuser role failed; retried at the next start'),
      );
    }
  }

}

/** A limit the host cannot give would only fail later, as an out-of-memory kill. */
function checkMemory(memoryMb: number): void {
  const hostMb = Math.floor(totalmem() / (1024 * 1024));
  if (memoryMb > hostMb) {
    throw new DomainError('INVALID_REQUEST', `memory_mb ${memoryMb} is more than this server has (${hostMb} MiB)`);
  }
}

function takenPorts(items: RegistryRecord[]): Set<number> {
  return new Set(items.map((item) => item.host_port));
}

function findContainer(containers: ManagedContainer[], record: RegistryRecord): ManagedContainer | undefined {
  return containers.find((c) => c.id === record.container_id) ?? containers.find((c) => c.labels[LABELS.name] === record.name);
}

function toDeployResponse(record: RegistryRecord): DeployResponse {
  return {
    name: record.name,
    host: record.host,
    port: record.host_port,
    db: record.db,
    user: record.user,
    password: record.password,
    database_url: urlOf(record),
    created_at: record.created_at,
    postgres_version: record.postgres_version,
    memory_mb: record.memory_mb ?? 0,
  };
}

function toStatusItem(
  record: RegistryRecord,
  container: ManagedContainer | undefined,
  usedBytes: number | null,
  showSecrets: boolean,
): StatusItem {
  const item: StatusItem = {
    name: record.name,
    container_id: record.container_id,
    volume_name: record.volume_name,
    host: record.host,
    host_port: record.host_port,
    db: record.db,
    user: record.user,
    created_at: record.created_at,
    postgres_version: record.postgres_version,
    size_gb: record.size_gb,
    memory_mb: record.memory_mb ?? null,
    used_bytes: usedBytes,
    state: record.pending ?? container?.state ?? 'missing',
    health: container?.health ?? 'none',
  };
  if (showSecrets) {
    item.password = record.password;
    item.database_url = urlOf(record);
  }
  return item;
}

function urlOf(record: RegistryRecord): string {
  return databaseUrl({ user: record.user, password: record.password, host: record.host, port: record.host_port, db: record.db });
}
