import { BlockList, isIP } from 'node:net';
import { Inject, Injectable } from '@nestjs/common';
import { DAEMON_CONFIG, imageFor, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, LABELS, type DockerGateway, type IsolatedNetwork, type ManagedContainer } from '../docker/docker.gateway.js';
import { POSTGRES_CLIENT, type ClientTls, type PostgresClient } from '../postgres/postgres.client.js';
import {
  adminInDatabaseTarget,
  adminSources,
  adminTarget,
  initialPassword,
  HBA_PATH,
  mountPathFor,
  pgHba,
  postgresContainer,
  RELOAD_CONFIGURATION,
  setAdminPassword,
  tenantTarget,
  tlsFiles,
  type PostgresInstance,
} from '../postgres/postgres-container.js';
import { RegistryService } from '../registry/registry.service.js';
import type { BackupIdentity, RegistryRecord } from '../registry/registry.types.js';
import { TLS_SERVICE, type TlsService } from '../tls/tls.service.js';
import { Archiving, type TaskContext } from './archiving.js';
import { DatabaseImages } from './images.js';

const LOG_LINES_ON_FAILURE = 30;
/** How long Postgres gets to shut down cleanly before a kept volume's container is removed. */
const CLEAN_STOP_SECONDS = 30;

/**
 * Runs a database's container from its record: certificate, network, labels,
 * the Postgres recipe, and proven readiness. Shared by deploys, upgrades and
 * renewals so that every container pgdb starts is made the same way.
 */
@Injectable()
export class PostgresRuntime {
  private readonly logger: Logger;
  private network: Promise<IsolatedNetwork> | undefined;
  /**
   * Where each container's port is published (its bind label, else what the
   * engine lists), so that a change of PGDB_POSTGRES_BIND does not cut the
   * daemon off from databases made before it: they keep their address.
   */
  private readonly published = new Map<string, string>();
  /** Addresses of this daemon's containers, once the network is known. */
  private containerAddresses: ((address: string, family: 'ipv4' | 'ipv6') => boolean) | undefined;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    @Inject(POSTGRES_CLIENT) readonly client: PostgresClient,
    @Inject(TLS_SERVICE) readonly tls: TlsService,
    private readonly registry: RegistryService,
    readonly archiving: Archiving,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'runtime' });
    this.images = new DatabaseImages(config, docker, () => archiving.imageNeeds());
    archiving.useNetwork(() => this.isolatedNetwork());
  }

  private readonly images: DatabaseImages;

  /** The image a database of `major` runs (see DatabaseImages); pulled or built if needed. */
  image(major: number): Promise<string> {
    return this.images.image(major);
  }

  /** What a task container for a database of `major` runs from. */
  async taskContext(major: number): Promise<TaskContext> {
    const [image, instanceLabels] = await Promise.all([this.image(major), this.instanceLabels()]);
    return { major, image, instanceLabels };
  }

  /** Deletes a stanza's archive for good (its backups with it). */
  async deleteArchive(identity: BackupIdentity, major: number): Promise<void> {
    await this.archiving.delete(identity, await this.taskContext(major));
  }

  /** This daemon's network: a bridge on which its databases cannot reach each other. */
  isolatedNetwork(): Promise<IsolatedNetwork> {
    this.network ??= (async () => {
      const instance = await this.registry.instanceId();
      // With S3 backups the backup gateway's port is the one thing on the host its containers may open.
      const network = await this.docker.ensureNetwork(`pgdb-${instance}`, await this.instanceLabels(), this.archiving.hostPorts());
      this.containerAddresses = addressesOf(network);
      return network;
    })().catch((error) => {
      this.network = undefined;
      throw error;
    });
    return this.network;
  }

  /** Whether a connection comes from one of this daemon's database containers. */
  isContainerAddress(address: string | undefined): boolean {
    if (!address || !this.containerAddresses) return false;
    const bare = address.replace(/^::ffff:(?=\d+\.)/, '');
    const family = isIP(bare);
    return family !== 0 && this.containerAddresses(bare, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * Creates and starts the container with a fresh certificate; returns its
   * id and when the certificate expires. Throws PortTakenError from Docker.
   */
  async run(
    record: RegistryRecord,
    image: string,
    labels?: Record<string, string>,
  ): Promise<{ containerId: string; tlsNotAfter: string }> {
    const [network, credentials, recordLabels] = await Promise.all([
      this.isolatedNetwork(),
      this.tls.databaseCredentials(),
      labels ?? this.labels(record),
    ]);
    labels = recordLabels;
    if (record.backup) await this.archiving.prepare(record.backup);
    const containerId = await this.docker.runContainer(
      postgresContainer(instanceOf(record, this.config.defaultMemoryMb), {
        image,
        bindAddress: this.config.postgresBind,
        network: network.name,
        gateways: network.gateways,
        labels,
        tls: credentials,
        ...(record.backup ? { archiving: await this.archiving.containerParts(record.backup, record.postgres_version) } : {}),
      }),
    );
    this.published.set(containerId, this.config.postgresBind);
    return { containerId, tlsNotAfter: credentials.notAfter.toISOString() };
  }

  /** The pg_hba.conf a container should have: pgdb_admin only from where this daemon's connections come from. */
  async accessRules(containerId: string): Promise<string> {
    const network = await this.isolatedNetwork();
    return pgHba(adminSources(network.gateways, this.published.get(containerId) ?? this.config.postgresBind));
  }

  /** The pg_hba.conf a container should have (accessRules), and whether the one it holds is that file. */
  async checkAccessRules(containerId: string): Promise<{ wanted: string; current: boolean }> {
    const [wanted, found] = await Promise.all([this.accessRules(containerId), this.docker.exec(containerId, ['cat', HBA_PATH])]);
    return { wanted, current: found.exitCode === 0 && found.stdout === wanted };
  }

  /** Learns where listed containers publish their port (see `published`). */
  notePublished(containers: ManagedContainer[]): void {
    for (const container of containers) {
      const address = publishedAddress(container);
      if (address !== undefined) this.published.set(container.id, address);
    }
  }

  /**
   * Gives a running database the certificate it should carry now, if it has
   * another (a warm standby made before the ACME certificate came): copied
   * in, then read by Postgres with pg_reload_conf(). Returns the new expiry.
   */
  async refreshCertificate(record: RegistryRecord): Promise<string | undefined> {
    if (!this.tls.databaseNeedsNew(record.tls_not_after)) return undefined;
    const credentials = await this.tls.databaseCredentials();
    await this.docker.copyFiles(record.container_id, tlsFiles(credentials));
    await this.client.execute(this.target(record, 'admin'), [RELOAD_CONFIGURATION]);
    return credentials.notAfter.toISOString();
  }

  /**
   * Waits for a new cluster (an empty volume the image initialised), whose
   * admin has only its initial password, and gives the admin its real one.
   */
  async waitUntilInitialised(record: RegistryRecord, containerId: string): Promise<void> {
    const initial = { ...record, admin_password: initialPassword(record.admin_password!) };
    await this.waitUntilReady(initial, containerId, 'admin');
    await this.client.execute(this.target(initial, 'admin'), [setAdminPassword(record.admin_password!)]);
  }

  /**
   * Waits until `who` can run `SELECT 1` with exactly the recorded
   * credentials over TLS. On failure the container's last log lines go to
   * the daemon log and a POSTGRES_NOT_READY error says where to look.
   */
  async waitUntilReady(record: RegistryRecord, containerId: string, who: 'admin' | 'tenant'): Promise<void> {
    const deadline = Date.now() + this.config.readyTimeoutMs;
    let exitCode: number | null = null;
    const ready = await this.client.waitUntilReady(this.target(record, who), deadline, async () => {
      const status = await this.docker.containerStatus(containerId);
      exitCode = status?.exitCode ?? null;
      return !status?.running;
    });
    if (ready) return;
    const logs = await this.docker.containerLogs(containerId, LOG_LINES_ON_FAILURE).catch(() => '');
    this.logger.error({ database: record.name, container: containerId, logs }, 'postgres did not become ready');
    const what = exitCode === null
      ? `did not accept connections within ${Math.round(this.config.readyTimeoutMs / 1000)} s`
      : `exited with code ${exitCode} before accepting connections`;
    throw new DomainError(
      'POSTGRES_NOT_READY',
      `postgres in container ${containerId.slice(0, 12)} ${what}; the container was removed and its last ` +
        'log lines were written to the daemon log (journalctl -u pgdbd)',
    );
  }

  /**
   * Removes a database: its containers, then its volume (or, with
   * `keepData`, Postgres is first stopped cleanly and the volume is left with
   * a holder container so that `docker volume prune` keeps it), then its
   * record. Safe to run again after a failure at any step.
   */
  async teardown(record: RegistryRecord, keepData: boolean): Promise<void> {
    // A destroy keeps the backups (undo) unless --delete-backups; a failed deploy made nothing worth keeping.
    const keepBackups = record.pending !== 'creating' && !record.delete_backups;
    if (record.backup && keepBackups && record.container_id) await this.archiveLastWal(record);
    const containers = await this.docker.listContainers({ ...(await this.instanceLabels()), [LABELS.name]: record.name });
    const ids = new Set([record.container_id, ...containers.filter((c) => !c.labels[LABELS.keeps]).map((c) => c.id)].filter(Boolean));
    for (const id of ids) {
      if (keepData) await this.docker.stopContainer(id, CLEAN_STOP_SECONDS);
      await this.docker.removeContainer(id);
    }
    failpoint('destroy:containers-removed');
    if (keepData) {
      await this.docker.createHolder({
        containerName: `${record.volume_name}-kept`,
        image: imageFor(this.config, record.postgres_version),
        volumeName: record.volume_name,
        mountPath: mountPathFor(record.postgres_version),
        labels: { ...(await this.instanceLabels()), [LABELS.keeps]: record.volume_name, [LABELS.keptFrom]: record.name },
      });
    } else {
      await this.removeHolders(record.volume_name);
      await this.docker.removeVolume(record.volume_name);
    }
    // A major upgrade's other cluster: the half-filled new one goes; the kept old one goes too unless the data is kept.
    if (record.upgrading) await this.docker.removeVolume(record.upgrading.volume_name);
    if (record.previous && !keepData) await this.docker.removeVolume(record.previous.volume_name);
    failpoint('destroy:volume-handled');
    if (record.backup && !keepBackups) {
      await this.deleteArchive(record.backup, record.postgres_version);
    }
    // An upgrade's old cluster has a stanza of its own, kept or deleted with the database's; a half-made new one has nothing worth keeping.
    if (record.previous?.backup && !keepBackups) {
      await this.deleteArchive(record.previous.backup, record.previous.postgres_version);
    }
    if (record.upgrading?.backup) {
      await this
        .deleteArchive(record.upgrading.backup, record.upgrading.postgres_version)
        .catch((error: Error) => this.logger.warn({ database: record.name, err: error.message }, 'could not delete what a half-made upgrade archived'));
    }
    await this.registry.remove(record.name, keepBackups);
  }

  /**
   * Before a destroy that keeps the backups (and an upgrade's copy, for the
   * old cluster's stanza): switch to a new WAL segment and wait until the
   * last one is in the repository, so that a restore of the destroyed
   * database has every commit. Best effort: a database that does
   * not run, or whose archiving fails, is destroyed all the same (its
   * backups reach as far as the archive does).
   */
  async archiveLastWal(record: RegistryRecord): Promise<void> {
    const status = await this.docker.containerStatus(record.container_id).catch(() => null);
    if (!status?.running) return;
    const result = await this.docker
      .exec(record.container_id, this.archiving.flushCommand(record.backup!), { user: '999', timeoutMs: 60_000 })
      .catch((error: Error) => ({ exitCode: -1, stdout: '', stderr: error.message }));
    if (result.exitCode !== 0) {
      this.logger.warn({ database: record.name, err: `${result.stderr}${result.stdout}`.trim().slice(-300) }, 'could not archive the last WAL before destroy');
    }
  }

  /** Removes the containers that hold a kept volume (see teardown). */
  async removeHolders(volumeName: string): Promise<void> {
    const holders = await this.docker.listContainers({ ...(await this.instanceLabels()), [LABELS.keeps]: volumeName });
    for (const holder of holders) await this.docker.removeContainer(holder.id);
  }

  /**
   * How the daemon connects to a database: as its superuser in the
   * maintenance database (`admin`), as its superuser in the tenant's own
   * database for the little that must run there (`admin-in-db`, see
   * adminInDatabaseTarget), or as the tenant.
   */
  target(record: RegistryRecord, who: 'admin' | 'admin-in-db' | 'tenant', tls: ClientTls = this.clientTls()) {
    const instance = instanceOf(record, this.config.defaultMemoryMb);
    const host = probeHost(this.published.get(record.container_id) ?? this.config.postgresBind);
    if (who === 'admin') return adminTarget(instance, host, tls);
    return who === 'admin-in-db' ? adminInDatabaseTarget(instance, host, tls) : tenantTarget(instance, host, tls);
  }

  /** How the daemon checks its databases' certificates (see TlsService.databaseTrust). */
  clientTls(): ClientTls {
    return this.tls.databaseTrust();
  }

  async instanceLabels(): Promise<Record<string, string>> {
    return { [LABELS.managed]: 'true', [LABELS.instance]: await this.registry.instanceId() };
  }

  async labels(record: RegistryRecord): Promise<Record<string, string>> {
    return {
      ...(await this.instanceLabels()),
      [LABELS.name]: record.name,
      [LABELS.version]: String(record.postgres_version),
    };
  }
}

/** The network's subnets, minus the host's own addresses on it (the host may call its own API). */
function addressesOf(network: IsolatedNetwork): (address: string, family: 'ipv4' | 'ipv6') => boolean {
  const containers = new BlockList();
  for (const subnet of network.subnets) {
    const [address, prefix] = subnet.split('/');
    const family = isIP(address);
    if (family === 0) continue;
    containers.addSubnet(address, Number(prefix), family === 4 ? 'ipv4' : 'ipv6');
  }
  const host = new BlockList();
  for (const gateway of network.gateways) host.addAddress(gateway, isIP(gateway) === 6 ? 'ipv6' : 'ipv4');
  return (address, family) => containers.check(address, family) && !host.check(address, family);
}

export function instanceOf(record: RegistryRecord, defaultMemoryMb: number): PostgresInstance {
  return {
    ...record,
    admin_password: record.admin_password ?? '',
    memory_mb: record.memory_mb ?? defaultMemoryMb,
  };
}

/** Where a container publishes Postgres: its bind label, else the address the engine lists for its port. */
export function publishedAddress(container: Pick<ManagedContainer, 'labels' | 'published'>): string | undefined {
  return container.labels[LABELS.bind] ?? container.published;
}

/** Where the daemon itself reaches a published port. */
export function probeHost(bind: string): string {
  if (bind === '0.0.0.0' || bind === '') return '127.0.0.1';
  if (bind === '::') return '::1';
  return bind;
}
