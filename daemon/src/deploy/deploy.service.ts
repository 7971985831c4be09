import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import {
  DEFAULT_SIZE_GB,
  databaseUrl,
  type DeployResponse,
  type DetachedVolume,
  type StatusItem,
  type StatusResponse,
} from '../../../contract/api.js';
import { totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, LABELS, PortTakenError, type DockerGateway, type ManagedContainer } from '../docker/docker.gateway.js';
import { ADMIN_CLIENT_ENV, ADMIN_DATABASE, ADMIN_USER, containTenantRoles, dbnameArgument, ident, literal, NEUTRALISE_SUPERUSER_OBJECTS, setAdminPassword, SOCKET_DIR, tenantSetup } from '../postgres/postgres-container.js';
import { scramVerifier } from '../postgres/scram.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import type { DeployDto } from './deploy.dto.js';
import { generateDbName, generateName, generatePassword, generateUser, randomId } from '../database/identifiers.js';
import { Operations } from '../database/operations.js';
import { PoolService } from '../database/pool.service.js';
import { PortPicker } from '../database/ports.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { ReconcileService } from '../database/reconcile.service.js';
import { VolumeUsage } from '../database/volume-usage.js';
import { BackupEvents } from '../database/backup-events.js';

const PORT_ATTEMPTS = 5;

/** Orchestrates the registry and Docker for deploy, status and destroy. */
@Injectable()
export class DeployService implements OnApplicationBootstrap {
  private readonly logger: Logger;
  private readonly volumeUsage: VolumeUsage;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly reconciliation: ReconcileService,
    private readonly operations: Operations,
    private readonly pool: PoolService,
    private readonly registry: RegistryService,
    private readonly backupEvents: BackupEvents,
    private readonly ports: PortPicker,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'deploy' });
    this.volumeUsage = new VolumeUsage(() => docker.volumeUsage());
  }

  async onApplicationBootstrap(): Promise<void> {
    // A missing engine must not keep the daemon from starting: the next request retries.
    await this.reconciliation.ensureReconciled().catch((error: Error) =>
      this.logger.warn({ err: error.message }, 'reconciliation postponed until Docker answers'),
    );
  }

  async deploy(request: DeployDto): Promise<DeployResponse> {
    const memoryMb = request.memory_mb ?? this.config.defaultMemoryMb;
    checkMemory(memoryMb);
    await this.reconciliation.ensureReconciled();
    const adopted = request.from_volume ? await this.adoptableVolume(request.from_volume) : undefined;
    const version = adopted?.version ?? request.version ?? this.config.defaultVersion;
    if (adopted && request.version !== undefined && request.version !== adopted.version) {
      throw new DomainError('INVALID_REQUEST', `volume ${request.from_volume} holds a Postgres ${adopted.version} cluster, not ${request.version}`);
    }
    if (!this.config.versions.includes(version)) {
      throw new DomainError(
        'INVALID_REQUEST',
        `postgres version ${version} is not supported; supported versions: ${this.config.versions.join(', ')}`,
      );
    }
    const started = performance.now();
    const timings: Record<string, number> = {};
    const lap = (phase: string) => (timings[phase] = Math.round(performance.now() - started));
    const [image] = await Promise.all([this.runtime.image(version), this.runtime.isolatedNetwork()]);
    lap('image');

    const name = request.name ?? generateName();
    return this.operations.run(name, async () => {
      const claimed = adopted ? undefined : await this.pool.claim(name, version, memoryMb, request.size_gb ?? DEFAULT_SIZE_GB);
      if (claimed) {
        try {
          return await this.finishClaimed(claimed, timings, lap);
        } catch (error) {
          if (!(error instanceof StandbyFailed)) throw error;
          // The standby is gone (and the pool refills); the caller gets a database all the same, the slow way.
          this.logger.warn({ database: name, err: error.cause.message }, 'the claimed standby failed; deploying cold instead');
          lap('standby-failed');
        }
      }
      let record = await this.reserve(name, version, request.size_gb ?? DEFAULT_SIZE_GB, memoryMb, adopted?.volume);
      lap('reserved');
      failpoint('deploy:reserved');
      const log = this.logger.child({ database: record.name, volume: record.volume_name });
      try {
        if (adopted) {
          await this.clearVolume(adopted.volume);
        } else {
          await this.docker.createVolume(record.volume_name, await this.runtime.labels(record), { sizeGb: record.size_gb });
        }
        failpoint('deploy:volume-created');
        record = await this.startContainer(record, image);
        lap('started');
        failpoint('deploy:container-started');
        log.info({ container: record.container_id, port: record.host_port }, 'container started');
        if (adopted) {
          record = await this.takeOver(record);
        } else {
          await this.runtime.waitUntilInitialised(record, record.container_id);
          lap('ready');
          await this.runtime.client.execute(this.runtime.target(record, 'admin-in-db'), tenantSetup(record));
          lap('roles');
        }
        // The caller gets exactly these credentials: prove they work, over TLS.
        await this.runtime.waitUntilReady(record, record.container_id, 'tenant');
        lap('verified');
        failpoint('deploy:ready');
        record = await this.registry.settle(record.name, {
          container_id: record.container_id,
          tls_not_after: record.tls_not_after,
          db: record.db,
          user: record.user,
          keep_data: undefined,
        });
        lap('recorded');
        failpoint('deploy:recorded');
      } catch (error) {
        log.warn({ err: (error as Error).message }, adopted ? 'deploy failed; the adopted volume is kept' : 'deploy failed; removing what it created');
        await this.runtime.teardown(record, Boolean(adopted)).catch((cleanupError: Error) => {
          log.error({ err: cleanupError.message }, 'cleanup after failed deploy failed; reconciliation retries it');
        });
        throw error;
      }
      log.info({ container: record.container_id, port: record.host_port, version, timings }, 'database ready');
      this.backupEvents.ready(record);
      return toDeployResponse(record);
    }).catch((error) => {
      if (error instanceof DomainError) throw error;
      if (/already running in this process/.test((error as Error).message)) {
        throw new DomainError('DB_BUSY', `another operation on "${name}" is in progress`);
      }
      throw error;
    });
  }

  async status(showSecrets: boolean): Promise<StatusResponse> {
    await this.reconciliation.ensureReconciled();
    const labels = await this.runtime.instanceLabels();
    const records = await this.registry.list();
    const [containers, volumes, usage] = await Promise.all([
      // Kept lists, as long as Docker's event stream reports no change to them (a container removed by hand shows at once).
      this.docker.listContainers(labels, { cached: true }),
      this.docker.listVolumes(labels, { cached: true }),
      this.volumeUsage.sizes(records.map((r) => r.volume_name)).catch((error: Error) => {
        this.logger.warn({ err: error.message }, 'volume usage unavailable');
        return new Map<string, number>();
      }),
    ]);
    const items = records.map((record) => {
      const item = toStatusItem(record, findContainer(containers, record), usage.get(record.volume_name) ?? null, showSecrets);
      const problem = this.reconciliation.problemOf(record.name);
      if (problem) item.problem = `${problem.step} failed ${problem.attempts}x: ${problem.reason}`;
      const backup = record.pending ? undefined : this.backupEvents.stateFor(record);
      if (backup) item.backup = backup;
      return item;
    });
    // Standbys' volumes belong to the pool, not to "detached" data.
    const recorded = new Set([...records.map((r) => r.volume_name), ...(await this.registry.standbys()).map((s) => s.volume_name)]);
    // Whose data a kept volume holds: its holder says so, for a claimed standby's volume too (which has no name label).
    const keptFrom = new Map(containers.filter((c) => c.labels[LABELS.keptFrom]).map((c) => [c.labels[LABELS.keeps], c.labels[LABELS.keptFrom]]));
    const detached_volumes: DetachedVolume[] = volumes
      .filter((v) => !recorded.has(v.name))
      .map((v) => ({ volume_name: v.name, name: keptFrom.get(v.name) ?? v.labels[LABELS.name] ?? '', created_at: v.createdAt }));
    return {
      items,
      detached_volumes,
      unknown_containers: this.reconciliation.unknownContainers(),
      pool: await this.pool.summary(),
      backups: this.backupEvents.location(),
    };
  }

  /** Resolves with whether the database's backups are kept. */
  async destroy(name: string, keepData: boolean, deleteBackups = false): Promise<boolean> {
    await this.reconciliation.ensureReconciled();
    // Marked and torn down inside one in-flight slot: a day-2 operation
    // (stop, rotate, resize...) on the same name gets DB_BUSY, never a mix.
    return this.operations.run(name, async () => {
      // The registry refuses a second destroy (and the destroy of a database
      // being created), so keep_data, once recorded, cannot be overridden.
      const record = await this.registry.markDestroying(name, keepData, deleteBackups);
      failpoint('destroy:marked');
      await this.runtime.teardown(record, keepData);
      this.logger.info({ database: name, volume: record.volume_name, keepData, deleteBackups }, 'database destroyed');
      return Boolean(record.backup) && !deleteBackups;
    });
  }

  /**
   * A standby claimed for this deploy: it runs already, so only the tenant's
   * role is left to make, then the same proof as a cold deploy.
   */
  private async finishClaimed(
    claimed: RegistryRecord,
    timings: Record<string, number>,
    lap: (phase: string) => number,
  ): Promise<DeployResponse> {
    let record = claimed;
    lap('claimed');
    const log = this.logger.child({ database: record.name, volume: record.volume_name });
    try {
      // A standby made before the current certificate (an ACME one issued since) gets it first.
      const tlsNotAfter = await this.runtime.refreshCertificate(record);
      if (tlsNotAfter) {
        record = { ...record, tls_not_after: tlsNotAfter };
        log.info({ container: record.container_id, notAfter: tlsNotAfter }, 'gave the claimed standby the current certificate');
      }
      await this.runtime.client.execute(this.runtime.target(record, 'admin-in-db'), tenantSetup(record));
      lap('roles');
      // Readable in `docker ps`: the standby's container takes the database's
      // name, while the tenant's credentials are being proven.
      const newName = `pgdb-${record.name}-${record.volume_name.replace(/^pgdb-pool-/, '')}`;
      await Promise.all([
        this.runtime.waitUntilReady(record, record.container_id, 'tenant'),
        this.docker.renameContainer(record.container_id, newName),
      ]);
      lap('verified');
      failpoint('deploy:ready');
      record = await this.registry.settle(record.name, tlsNotAfter ? { tls_not_after: tlsNotAfter } : {});
      lap('recorded');
      failpoint('deploy:recorded');
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'deploy from the pool failed; removing the claimed standby');
      const removed = await this.runtime.teardown(record, false).then(
        () => true,
        (cleanupError: Error) => {
          log.error({ err: cleanupError.message }, 'cleanup after failed deploy failed; reconciliation retries it');
          return false;
        },
      );
      // Once the standby and its record are gone the name is free for a cold deploy.
      throw removed ? new StandbyFailed(error as Error) : error;
    }
    log.info(
      { container: record.container_id, port: record.host_port, version: record.postgres_version, timings, pool: true },
      'database ready',
    );
    this.backupEvents.ready(record);
    return toDeployResponse(record);
  }

  /** Docker reachable? Used by the health endpoint. */
  async dockerReachable(): Promise<boolean> {
    return this.docker.ping().then(
      () => true,
      () => false,
    );
  }

  /** Reserves the name and a port by writing a pending record. */
  private reserve(name: string, version: number, sizeGb: number, memoryMb: number, volume?: string): Promise<RegistryRecord> {
    return this.registry.reserve(name, async (items, taken) => {
      if (volume && items.some((item) => item.volume_name === volume)) {
        throw new DomainError('DB_BUSY', `volume ${volume} belongs to database "${items.find((i) => i.volume_name === volume)!.name}"`);
      }
      const volumeName = volume ?? `pgdb-${name}-${randomId(6)}`;
      // An adopted volume may have had a stanza of its own name (kept after its destroy): start a new one.
      const backup = this.runtime.archiving.newIdentity(volume ? `${volume}-${randomId(4)}` : volumeName);
      return {
        name,
        container_id: '',
        volume_name: volumeName,
        host_port: await this.ports.pick(taken),
        db: generateDbName(),
        user: generateUser(),
        created_at: new Date().toISOString(),
        postgres_version: version,
        host: this.config.publicHost,
        password: generatePassword(),
        admin_password: generatePassword(),
        size_gb: sizeGb,
        memory_mb: memoryMb,
        ...(this.config.defaultCpus ? { cpus: this.config.defaultCpus } : {}),
        layout: 2,
        ...(backup ? { backup } : {}),
        // A volume someone else's data lives in is never removed by a failed or interrupted deploy.
        ...(volume ? { keep_data: true } : {}),
      };
    });
  }

  /** A detached volume of this daemon that a deploy may take over, with its major version. */
  private async adoptableVolume(volume: string): Promise<{ volume: string; version: number }> {
    const found = (await this.docker.listVolumes(await this.runtime.instanceLabels())).find((v) => v.name === volume);
    if (!found) {
      throw new DomainError('VOLUME_NOT_FOUND', `no pgdb volume named ${volume} on this server; \`pgdb status\` lists detached volumes`);
    }
    const version = Number(found.labels[LABELS.version]);
    if (!Number.isInteger(version)) throw new DomainError('INVALID_REQUEST', `volume ${volume} has no pgdb.postgres_version label`);
    return { volume, version };
  }

  /** Removes what holds a detached volume: its holder, and a leftover container named after it that no record claims. */
  private async clearVolume(volume: string): Promise<void> {
    await this.runtime.removeHolders(volume);
    const containers = await this.docker.listContainers(await this.runtime.instanceLabels());
    const recorded = new Set((await this.registry.list()).map((r) => r.container_id));
    for (const container of containers.filter((c) => c.name === volume && !recorded.has(c.id))) {
      await this.docker.removeContainer(container.id);
    }
  }

  /**
   * For an adopted volume: its cluster has the daemon's superuser and the
   * tenant's role, with passwords nobody knows any more. Over the container's
   * unix socket (which trusts local connections) they get new ones; the
   * database and its owner are found in the catalog.
   */
  private async takeOver(record: RegistryRecord): Promise<RegistryRecord> {
    const id = record.container_id;
    const deadline = Date.now() + this.config.readyTimeoutMs;
    for (;;) {
      const ready = await this.docker.exec(id, ['pg_isready', '-q', '-h', SOCKET_DIR]);
      if (ready.exitCode === 0) break;
      if (Date.now() > deadline) throw new DomainError('POSTGRES_NOT_READY', `postgres on volume ${record.volume_name} did not start`);
      await sleep(100);
    }
    const psqlIn = (database: string) => ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', SOCKET_DIR, '-U', ADMIN_USER, '-d', database];
    const psql = psqlIn(ADMIN_DATABASE);
    const env = ADMIN_CLIENT_ENV;
    // The names as JSON: a database or role name may hold any character but NUL.
    const found = await this.docker.exec(id, psql, {
      env,
      stdin:
        "SELECT pg_catalog.json_build_array(datname, pg_catalog.pg_get_userbyid(datdba)) FROM pg_catalog.pg_database " +
        "WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY oid LIMIT 1;\n",
    });
    if (found.exitCode !== 0) {
      throw new DomainError(
        'INVALID_REQUEST',
        `volume ${record.volume_name} has no ${ADMIN_USER} role (made by a release before 0.2?) or cannot be read: ${found.stderr.trim()}`,
      );
    }
    const [db, owner] = (found.stdout.trim() ? JSON.parse(found.stdout) : []) as [string?, string?];
    if (!db || !owner || owner === ADMIN_USER) {
      throw new DomainError('INVALID_REQUEST', `volume ${record.volume_name} holds no database of a tenant role`);
    }
    // Whatever the owner (or any other role) became on that volume, it is a tenant again: no superuser, no server roles.
    const changed = await this.docker.exec(id, psql, { env, stdin: [...containTenantRoles(), ...passwordChanges(record, owner)].map((s) => `${s};\n`).join('') });
    if (changed.exitCode !== 0) throw new Error(`could not contain the volume's roles and set new passwords: ${changed.stderr.trim()}`);
    // And in every database (the tenant's others, postgres, template1): what a superuser left behind acts for none.
    const listed = await this.docker.exec(id, psql, { env, stdin: 'SELECT pg_catalog.json_agg(datname ORDER BY oid) FROM pg_catalog.pg_database WHERE datallowconn;\n' });
    if (listed.exitCode !== 0) throw new Error(`could not list the volume's databases: ${listed.stderr.trim()}`);
    for (const database of JSON.parse(listed.stdout.trim() || '[]') as string[]) {
      const neutralised = await this.docker.exec(id, psqlIn(dbnameArgument(database)), { env, stdin: `${NEUTRALISE_SUPERUSER_OBJECTS};\n` });
      if (neutralised.exitCode !== 0) throw new Error(`could not neutralise what a superuser left in database ${JSON.stringify(database)}: ${neutralised.stderr.trim()}`);
    }
    return this.registry.patch(record.name, (r) => {
      r.db = db;
      r.user = owner;
    }).then((saved) => ({ ...saved, container_id: id, tls_not_after: record.tls_not_after }));
  }

  /** Starts the container, moving to another port when something outside pgdb holds the reserved one. */
  private async startContainer(record: RegistryRecord, image: string): Promise<RegistryRecord> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { containerId, tlsNotAfter } = await this.runtime.run(record, image);
        // The registry learns the id when the database is ready; until then
        // reconciliation finds the container by its labels.
        return { ...record, container_id: containerId, tls_not_after: tlsNotAfter };
      } catch (error) {
        if (!(error instanceof PortTakenError)) throw error;
        this.ports.refused(error.port);
        if (attempt >= PORT_ATTEMPTS) {
          throw new DomainError(
            'NO_FREE_PORT',
            `host ports ${this.config.portRange.first}-${this.config.portRange.last}: the engine refused ${attempt} in a row as taken outside pgdb (the last: ${error.port}); free some, or widen PGDB_PORT_RANGE`,
          );
        }
        this.logger.warn({ database: record.name, port: error.port }, 'host port taken outside pgdb; trying another');
        const port = await this.registry.movePort(record.name, (taken) => this.ports.pick(taken));
        record = { ...record, host_port: port };
      }
    }
  }
}

/** SQL, sent on stdin (never on a command line), that gives both roles new passwords. */
function passwordChanges(record: RegistryRecord, owner: string): string[] {
  return [
    setAdminPassword(record.admin_password!),
    `ALTER ROLE ${ident(owner)} PASSWORD ${literal(scramVerifier(record.password))}`,
  ];
}

/** A claimed standby could not be made the tenant's database, and was removed with its record. */
class StandbyFailed extends Error {
  constructor(override readonly cause: Error) {
    super(`the claimed standby failed: ${cause.message}`);
  }
}

/** A limit the host cannot give would only fail later, as an out-of-memory kill. */
function checkMemory(memoryMb: number): void {
  const hostMb = Math.floor(totalmem() / (1024 * 1024));
  if (memoryMb > hostMb) {
    throw new DomainError('INVALID_REQUEST', `memory_mb ${memoryMb} is more than this server has (${hostMb} MiB)`);
  }
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
    // A stopped database whose container is gone is still stopped: `pgdb start` re-creates it.
    state: record.pending ?? container?.state ?? (record.stopped ? 'stopped' : 'missing'),
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
