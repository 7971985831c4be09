import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { UnknownContainer } from '../../../contract/api.js';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, LABELS, type DockerGateway, type ManagedContainer } from '../docker/docker.gateway.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { LegacyUpgrade } from './legacy-upgrade.js';
import { Operations } from './operations.js';
import { PostgresRuntime } from './postgres-runtime.js';
import { ADMIN_CLIENT_ENV, ADMIN_DATABASE, ADMIN_USER, exposesAdminPassword, HBA_PATH, pgHba, RELOAD_CONFIGURATION, setAdminPassword, SOCKET_DIR } from '../postgres/postgres-container.js';
import { generatePassword } from './identifiers.js';

const FIRST_RETRY_MS = 5_000;
const MAX_RETRY_MS = 10 * 60_000;

/** A record whose repair step failed: shown in status, retried with backoff. */
export interface Problem {
  step: 'finish-deploy' | 'finish-destroy' | 'repair' | 'start' | 'upgrade' | 'archiving' | 'admin-password' | 'access-rules';
  reason: string;
  attempts: number;
}

/**
 * Brings Docker and the registry back in line after a crash, a restart, an
 * engine restart or a restored registry. Rules, in order of importance:
 *
 * - Never delete data a client may have written. A volume is removed only
 *   for a record that says so (a destroy without keep_data, or a deploy that
 *   never answered its caller). A pgdb container with no record (e.g. after an
 *   older registry.json was restored) is reported, never removed.
 * - Each record on its own: one that cannot be fixed becomes a Problem (in
 *   status, retried with backoff); the others and new requests go on.
 * - Never race an operation of this process: the decision about a container
 *   is made under the registry lock, with the in-flight set read there.
 *
 * Settled records whose container is missing are repaired automatically:
 * a container is made from the record and its volume, same port and
 * credentials; except a stopped one (`stopped`), which stays as it is.
 */
@Injectable()
export class ReconcileService implements OnApplicationShutdown {
  private readonly logger: Logger;
  private reconciled: Promise<void> | undefined;
  /** Whether every container's pgbackrest.conf has been rewritten by this process (once, at the first pass). */
  private archivingRefreshed = false;
  /** Whether the containers' environments have been checked for the admin's password (once, at the first pass). */
  private passwordsChecked = false;
  private readonly problems = new Map<string, Problem>();
  private unknown: UnknownContainer[] = [];
  private retry: NodeJS.Timeout | undefined;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly legacy: LegacyUpgrade,
    private readonly registry: RegistryService,
    private readonly operations: Operations,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'reconcile' });
  }

  onApplicationShutdown(): void {
    clearTimeout(this.retry);
  }

  /**
   * Reconciles once per process before the first operation; only an engine
   * that cannot be listed makes this fail (the next caller tries again).
   */
  ensureReconciled(): Promise<void> {
    this.reconciled ??= this.reconcile().catch((error) => {
      this.reconciled = undefined;
      throw error;
    });
    return this.reconciled;
  }

  problemOf(name: string): Problem | undefined {
    return this.problems.get(name);
  }

  /** pgdb containers of this daemon that no record explains. */
  unknownContainers(): UnknownContainer[] {
    return this.unknown;
  }

  /** One full pass; also what the backoff timer runs. */
  async reconcile(): Promise<void> {
    // Known from here on, so that the API can turn away connections from databases.
    await this.runtime.isolatedNetwork();
    const records = await this.registry.list();
    for (const record of records.filter((r) => r.pending)) {
      if (record.pending === 'creating') {
        // The deploy never answered its caller, so nobody has the credentials:
        // remove it all, but an adopted volume (keep_data) is only released.
        await this.attempt(record, 'finish-deploy', () => this.runtime.teardown(record, record.keep_data === true));
      } else {
        await this.attempt(record, 'finish-destroy', () => this.runtime.teardown(record, record.keep_data === true));
      }
    }

    const containers = await this.docker.listContainers(await this.runtime.instanceLabels());
    this.runtime.notePublished(containers);
    const unknown: UnknownContainer[] = [];
    for (const container of containers.filter((c) => !c.labels[LABELS.keeps])) {
      const verdict = await this.judge(container);
      if (verdict === 'duplicate') {
        this.logger.warn({ container: container.id, name: container.name }, "removing a stale container of a database that has another (its volume stays)");
        await this.docker.removeContainer(container.id);
      } else if (verdict === 'unknown') {
        unknown.push({ container_id: container.id, name: container.labels[LABELS.name] ?? '', container_name: container.name, state: container.state });
      }
    }
    for (const entry of unknown) {
      if (!this.unknown.some((u) => u.container_id === entry.container_id)) {
        this.logger.warn(
          { container: entry.container_id, name: entry.name },
          'a pgdb container has no record (restored an older registry.json?); left alone: adopt its volume with deploy --from-volume, or remove it with docker rm',
        );
      }
    }
    this.unknown = unknown;

    if (!this.archivingRefreshed) {
      await this.refreshArchiving(containers);
      this.archivingRefreshed = true;
    }

    const settled = (await this.registry.list()).filter((r) => !r.pending && !this.operations.has(r.name));
    const present = new Set(containers.flatMap((c) => [c.id, c.labels[LABELS.name]]));
    for (const record of settled) {
      if (record.layout === undefined) {
        await this.attempt(record, 'upgrade', () => this.legacy.upgrade(record));
      } else if (this.legacy.needsArchiving(record) && (present.has(record.container_id) || present.has(record.name))) {
        await this.attempt(record, 'archiving', () => this.operations.run(record.name, () => this.legacy.addArchiving(record)));
      } else if (!present.has(record.container_id) && !present.has(record.name) && !record.stopped) {
        // A database stopped on purpose (`pgdb stop`) stays down; `pgdb start` re-creates a lost container.
        await this.attempt(record, 'repair', () => this.repair(record));
      } else if (!record.stopped && !record.upgrading && isDown(containers.find((c) => c.id === record.container_id))) {
        // Not stopped on purpose, yet down: after a reboot the engine could not mount a sized volume
        // before this daemon attached its disk (VolumeDisks), and Docker does not try again.
        await this.attempt(record, 'start', () => this.start(record));
      } else if (['repair', 'start'].includes(this.problems.get(record.name)?.step ?? '')) {
        this.problems.delete(record.name);
      }
    }
    // Every environment once per process; a change a crash or failure left half-done at every pass.
    // A record with another step's problem keeps it: its container is not in a state to check.
    for (const record of settled.filter((r) => (!this.passwordsChecked || r.admin_password_previous !== undefined) && !this.problems.has(r.name))) {
      await this.attempt(record, 'admin-password', () => this.retireExposedPassword(record));
      if (!this.passwordsChecked && !this.problems.has(record.name)) await this.attempt(record, 'access-rules', () => this.refreshAccessRules(record));
    }
    this.passwordsChecked = true;
  }

  /**
   * A container made by an earlier release lets pgdb_admin log in from any
   * address (with its password). Its pg_hba.conf is replaced by today's,
   * read by Postgres (pg_reload_conf() over the socket, which the file always
   * admits), and checked with a connection of the daemon's own: should the
   * daemon's connections come from an address pgdb did not foresee, the
   * open file is put back rather than the daemon locked out, and the log says so.
   */
  private async refreshAccessRules(record: RegistryRecord): Promise<void> {
    if (!record.container_id || record.stopped) return;
    const status = await this.docker.containerStatus(record.container_id);
    if (!status?.running) return;
    const { wanted, current } = await this.runtime.checkAccessRules(record.container_id);
    if (current) return;
    await this.operations.run(record.name, async () => {
      const write = async (content: string) => {
        await this.docker.copyFiles(record.container_id, [{ path: HBA_PATH, content, mode: 0o644, uid: 0, gid: 0 }]);
        const reloaded = await this.docker.exec(
          record.container_id,
          ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', SOCKET_DIR, '-U', ADMIN_USER, '-d', ADMIN_DATABASE, '-c', RELOAD_CONFIGURATION],
          { env: ADMIN_CLIENT_ENV },
        );
        if (reloaded.exitCode !== 0) throw new Error(`could not reload pg_hba.conf: ${reloaded.stderr.trim()}`);
      };
      await write(wanted);
      try {
        await this.runtime.client.execute(this.runtime.target(record, 'admin'), ['SELECT 1']);
      } catch (error) {
        if ((error as { code?: string }).code !== '28000') throw error;
        await write(pgHba(undefined));
        this.logger.error(
          { database: record.name, err: (error as Error).message },
          "the daemon's own connections come from an address pgdb did not foresee; pgdb_admin stays open from every address (with its password) on this database",
        );
        return;
      }
      this.logger.info({ database: record.name }, 'pg_hba.conf replaced: pgdb_admin logs in only from where the daemon connects');
    });
  }

  /**
   * A container made by a release before initialPassword() carries the
   * admin's real password in its environment, which a tenant that becomes a
   * superuser reads in /proc/1/environ. The environment cannot change without
   * re-creating the container (a restart), so the password changes instead:
   * the new one is recorded first with the old kept beside it, then set in
   * Postgres, then the old one is forgotten. A start that finds the old one
   * still recorded (a crash in between) finishes the change.
   */
  private async retireExposedPassword(record: RegistryRecord): Promise<void> {
    if (!record.admin_password || !record.container_id) return;
    if (record.admin_password_previous === undefined) {
      const status = await this.docker.containerStatus(record.container_id);
      if (!status?.running || !exposesAdminPassword(status.env, record.admin_password)) return;
    }
    await this.operations.run(record.name, async () => {
      let current = (await this.registry.find(record.name)) ?? record;
      if (current.admin_password_previous === undefined) {
        this.logger.warn({ database: record.name }, "its container's environment holds the admin's password (made by an earlier release); changing the password");
        current = await this.registry.patch(record.name, (r) => {
          r.admin_password_previous = r.admin_password;
          r.admin_password = generatePassword();
        });
      }
      const previous = { ...current, admin_password: current.admin_password_previous! };
      try {
        await this.runtime.client.execute(this.runtime.target(previous, 'admin'), [setAdminPassword(current.admin_password!)]);
      } catch (error) {
        // Changed already, before a crash: the new password must work then.
        if ((error as { code?: string }).code !== '28P01') throw error;
        await this.runtime.client.execute(this.runtime.target(current, 'admin'), ['SELECT 1']);
      }
      await this.registry.patch(record.name, (r) => {
        delete r.admin_password_previous;
      });
      this.logger.info({ database: record.name }, "the admin's password changed; the one in the container's environment opens nothing");
    });
  }

  /**
   * Gives every container this daemon runs (stopped ones too) the
   * pgbackrest.conf of today's recipe: a container made before the backup
   * gateway carries the server's S3 keys, which this replaces with its
   * stanza's own credential; a gateway on a new address is found again.
   * pgBackRest reads the file at every archive-push, so no restart is needed.
   */
  private async refreshArchiving(containers: ManagedContainer[]): Promise<void> {
    if (!this.runtime.archiving.enabled) return;
    const clusters = await this.registry.inspect((items, standbys) => [
      ...items.flatMap((item) => [item, ...(item.upgrading ? [item.upgrading] : []), ...(item.previous ? [item.previous] : [])]),
      ...standbys,
    ]);
    const present = new Set(containers.map((c) => c.id));
    for (const cluster of clusters) {
      if (!cluster.backup || !present.has(cluster.container_id)) continue;
      try {
        await this.docker.copyFiles(cluster.container_id, await this.runtime.archiving.files(cluster.backup, cluster.postgres_version));
      } catch (error) {
        this.logger.warn({ container: cluster.container_id, stanza: cluster.backup.stanza, err: (error as Error).message }, 'could not rewrite a container\'s backup configuration');
      }
    }
  }

  /**
   * What to do with a container, decided under the registry lock with the
   * in-flight set read there: a deploy that settles while reconciliation
   * runs is either already in the registry or still in flight, never neither.
   */
  private judge(container: ManagedContainer): Promise<'keep' | 'duplicate' | 'unknown'> {
    const name = container.labels[LABELS.name];
    const standbyId = container.labels[LABELS.pool];
    return this.registry.inspect((items, standbys) => {
      if (standbyId !== undefined) {
        // A warm-pool container: the pool's own, or a database's since a deploy claimed it.
        if (standbys.some((s) => s.id === standbyId) || items.some((item) => item.container_id === container.id)) return 'keep';
        return 'unknown';
      }
      if (this.operations.has(name)) return 'keep';
      const record = items.find((item) => item.name === name);
      if (!record) return 'unknown';
      if (record.pending) return 'keep';
      // The two clusters of a major upgrade: the one being filled, and the old one kept after the switch.
      if (container.id === record.upgrading?.container_id || container.id === record.previous?.container_id) return 'keep';
      if (record.upgrading && container.labels[LABELS.version] === String(record.upgrading.postgres_version)) return 'keep';
      return record.container_id && record.container_id !== container.id ? 'duplicate' : 'keep';
    });
  }

  /** Starts the container of a database that should run and does not. */
  private async start(record: RegistryRecord): Promise<void> {
    await this.operations.run(record.name, async () => {
      this.logger.warn({ database: record.name, container: record.container_id }, 'its container is down though the database was not stopped; starting it');
      await this.docker.startContainer(record.container_id);
      await this.runtime.waitUntilReady(record, record.container_id, 'tenant');
      this.logger.info({ database: record.name }, 'started');
    });
  }

  /** Re-creates a lost container from the record and its volume: same port and credentials. */
  private async repair(record: RegistryRecord): Promise<void> {
    await this.operations.run(record.name, async () => {
      const volumes = await this.docker.listVolumes(await this.runtime.instanceLabels());
      if (!volumes.some((v) => v.name === record.volume_name)) {
        throw new Error(`its volume ${record.volume_name} is missing; restore it, or destroy the database`);
      }
      this.logger.warn({ database: record.name }, 'its container is missing; re-creating it from the record and the volume');
      const image = await this.runtime.image(record.postgres_version);
      await this.runtime.removeHolders(record.volume_name);
      const { containerId, tlsNotAfter } = await this.runtime.run(record, image);
      await this.registry.patch(record.name, (r) => {
        r.container_id = containerId;
        r.tls_not_after = tlsNotAfter;
      });
      await this.runtime.waitUntilReady({ ...record, container_id: containerId }, containerId, 'tenant');
      this.logger.info({ database: record.name, container: containerId }, 'repaired');
    });
  }

  /** Runs one record's step; a failure becomes a Problem and a retry with backoff, never an error for everyone. */
  private async attempt(record: RegistryRecord, step: Problem['step'], work: () => Promise<void>): Promise<void> {
    if (this.operations.has(record.name)) return;
    try {
      await work();
      this.problems.delete(record.name);
    } catch (error) {
      const attempts = (this.problems.get(record.name)?.attempts ?? 0) + 1;
      const reason = (error as Error).message;
      this.problems.set(record.name, { step, reason, attempts });
      const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempts - 1));
      this.logger.error({ database: record.name, step, err: reason, attempts, retryInMs: delay }, 'could not reconcile a database; retrying later');
      this.scheduleRetry(delay);
    }
  }

  private scheduleRetry(delay: number): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.reconcile().catch((error: Error) => {
        this.logger.warn({ err: error.message }, 'reconciliation retry failed');
        this.scheduleRetry(MAX_RETRY_MS);
      });
    }, delay);
    this.retry.unref();
  }
}

/** A container that exists and is not running (nor restarting). */
function isDown(container: ManagedContainer | undefined): boolean {
  return container?.state === 'stopped';
}
