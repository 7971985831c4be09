import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import {
  databaseUrl,
  type UpgradeFinishResponse,
  type UpgradeResponse,
  type UpgradeRollbackResponse,
} from '../../../contract/api.js';
import { DAEMON_CONFIG, imageFor, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { failpoint, failpointArmed } from '../common/failpoints.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, LABELS, type DockerGateway } from '../docker/docker.gateway.js';
import { generatePassword, randomId } from '../database/identifiers.js';
import { Operations } from '../database/operations.js';
import { pickPort } from '../database/ports.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { ReconcileService } from '../database/reconcile.service.js';
import { BackupEvents } from '../database/backup-events.js';
import { ADMIN_CLIENT_ENV, ADMIN_USER, containTenantRoles, dbnameArgument, ident, SOCKET_DIR, tenantSetup } from '../postgres/postgres-container.js';
import { RegistryService } from '../registry/registry.service.js';
import type { ClusterRecord, RegistryRecord } from '../registry/registry.types.js';
import { Day2Service } from './day2.service.js';
import { passwordChange, terminateSessions } from './day2.sql.js';

const CLEAN_STOP_SECONDS = 30;
/** How soon an interrupted upgrade that could not be rolled back at start is tried again. */
const RETRY_MS = 30_000;

/** Rows of every user table, as the admin sees them: one row per table, `t` and `n`. */
/**
 * The rows of every base table (plain and partitioned), run by the daemon's
 * superuser in the tenant's database: only tables are read (a view's query
 * would run the tenant's functions with the reader's rights; a table's row
 * security does not apply to a superuser), and every name is qualified.
 */
export const ROW_COUNTS = `SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS t,
  (pg_catalog.xpath('/row/n/text()', pg_catalog.query_to_xml(
    pg_catalog.format('SELECT pg_catalog.count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS n
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  ORDER BY 1`;

/**
 * `pgdb upgrade`: a database moves to a newer Postgres major by dump and
 * restore into a new container and volume. The old cluster stops taking its
 * role's connections (NOLOGIN, sessions ended) for the copy, row counts are
 * compared, then the new cluster takes over the port, the name and the
 * credentials; the old one is kept stopped until `--finish` or `--rollback`.
 *
 * The registry carries the state: `upgrading` (the new cluster, while it is
 * filled: the old one still serves, and a crash is rolled back at the next
 * start) and, after the switch, `previous` (the old one). The switch itself
 * is one registry write.
 */
@Injectable()
export class UpgradeService implements OnApplicationBootstrap {
  private readonly logger: Logger;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly reconciliation: ReconcileService,
    private readonly operations: Operations,
    private readonly registry: RegistryService,
    private readonly lifecycle: Day2Service,
    private readonly backupEvents: BackupEvents,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'upgrade' });
  }

  onApplicationBootstrap(): void {
    // After reconciliation, or without it when it failed: the old cluster must not stay frozen (a failed roll-back is retried).
    const settle = () => this.rollBackInterrupted().catch((error: Error) => this.logger.error({ err: error.message }, 'could not look for interrupted upgrades'));
    void this.reconciliation.ensureReconciled().then(settle, settle);
  }

  /**
   * At start: an upgrade a crash interrupted before its switch is rolled
   * back, so that the old cluster (frozen for the copy) serves again. One
   * that cannot be rolled back now (the engine busy, say) is tried again
   * every RETRY_MS, and by the next upgrade command on that database.
   */
  async rollBackInterrupted(): Promise<void> {
    let failed = false;
    for (const record of await this.registry.list()) {
      if (!record.upgrading || record.pending || this.operations.has(record.name)) continue;
      await this.operations
        .run(record.name, async () => {
          const current = await this.registry.find(record.name);
          if (current?.upgrading && !current.pending) await this.undoCopy(current);
        })
        .then(
          () => this.logger.warn({ database: record.name }, 'rolled back an upgrade that a crash interrupted; the old cluster serves'),
          (error: Error) => {
            failed = true;
            this.logger.error({ database: record.name, err: error.message }, `could not roll back an interrupted upgrade; retried in ${RETRY_MS / 1000} s`);
          },
        );
    }
    if (failed) setTimeout(() => void this.rollBackInterrupted().catch(() => undefined), RETRY_MS).unref();
  }

  async upgrade(name: string, version: number): Promise<UpgradeResponse> {
    return this.lifecycle.exclusive(name, async (found) => {
      const record = await this.settleInterrupted(found);
      this.check(record, version);
      await this.lifecycle.requireRunning(record);
      const image = imageFor(this.config, version);
      await this.docker.ensureImage(image);
      const log = this.logger.child({ database: name, from: record.postgres_version, to: version });

      const saved = await this.registry.beginUpgrade(name, async (_current, taken) => ({
        container_id: '',
        volume_name: `pgdb-${name}-${randomId(6)}`,
        postgres_version: version,
        admin_password: generatePassword(),
        host_port: await pickPort(this.config.portRange, taken, this.config.postgresBind),
        // Its own stanza; also for a database made while backups were off, which gets backups with its new major.
        ...(this.runtime.archiving.enabled ? { backup: this.runtime.archiving.newIdentity(`pgdb-${name}-${randomId(6)}`) } : {}),
      }));
      failpoint('upgrade:recorded');
      let downtimeStarted = 0;
      let counts: Map<string, number>;
      let next: RegistryRecord;
      try {
        // The new cluster, on a temporary port, with the tenant's role and password;
        // no WAL archiving until it is the database (the first backup after the switch covers the copy).
        let fresh = asRecord(saved, saved.upgrading!);
        const archived = fresh.backup;
        delete fresh.backup;
        await this.docker.createVolume(fresh.volume_name, await this.runtime.labels(fresh), { sizeGb: fresh.size_gb });
        const started = await this.runtime.run(fresh, image);
        fresh = { ...fresh, container_id: started.containerId, tls_not_after: started.tlsNotAfter };
        await this.registry.patch(name, (r) => {
          r.upgrading!.container_id = started.containerId;
          r.upgrading!.tls_not_after = started.tlsNotAfter;
        });
        await this.runtime.waitUntilInitialised(fresh, fresh.container_id);
        await this.runtime.client.execute(this.runtime.target(fresh, 'admin-in-db'), tenantSetup(record));

        // Downtime: the tenant can no longer log in to the old cluster, and its sessions end.
        downtimeStarted = Date.now();
        log.info('upgrade: the old cluster stops taking connections; copying');
        await this.freeze(record);
        // The old cluster's stanza gets its last WAL while the copy runs: its backups reach the moment of the freeze.
        const lastWal = record.backup ? this.runtime.archiveLastWal(record) : Promise.resolve();
        await Promise.all([this.copy(record, fresh), lastWal]);
        counts = await this.compareRows(record, fresh);
        // The copy ran as the tenant in the new cluster; its roles are said again to be a tenant's.
        await this.runtime.client.execute(this.runtime.target(fresh, 'admin'), containTenantRoles());
        failpoint('upgrade:copied');

        // The port changes hands: the temporary container goes, the old one stops, the new cluster starts on the port.
        await this.docker.removeContainer(fresh.container_id);
        await this.docker.stopContainer(record.container_id, CLEAN_STOP_SECONDS);
        failpoint('upgrade:old-stopped');
        const final = await this.runtime.run({ ...fresh, host_port: record.host_port, ...(archived ? { backup: archived } : {}) }, image);
        next = { ...fresh, host_port: record.host_port, container_id: final.containerId, tls_not_after: final.tlsNotAfter, ...(archived ? { backup: archived } : {}) };
        await this.registry.patch(name, (r) => (r.upgrading!.container_id = final.containerId));
        failpoint('upgrade:new-started');
        await this.runtime.waitUntilReady(next, next.container_id, 'tenant');
      } catch (error) {
        log.warn({ err: (error as Error).message }, 'upgrade failed; rolling back to the old cluster');
        const current = await this.registry.find(name);
        if (current) await this.undoCopy(current).catch((undoError: Error) => log.error({ err: undoError.message }, 'roll-back after a failed upgrade failed; retried at the next start'));
        throw error instanceof DomainError ? error : new DomainError('INTERNAL', `the upgrade of "${name}" failed (${(error as Error).message}); the database was rolled back to Postgres ${record.postgres_version}`);
      }

      // The switch, in one write: from here on the new cluster is the database.
      const switched = await this.registry.patch(name, (r) => {
        r.previous = {
          container_id: r.container_id,
          volume_name: r.volume_name,
          postgres_version: r.postgres_version,
          admin_password: r.admin_password ?? '',
          tls_not_after: r.tls_not_after,
          ...(r.backup ? { backup: r.backup } : {}),
        };
        r.container_id = next.container_id;
        r.volume_name = next.volume_name;
        r.postgres_version = version;
        r.admin_password = next.admin_password;
        r.tls_not_after = next.tls_not_after;
        if (next.backup) r.backup = next.backup;
        delete r.upgrading;
      });
      failpoint('upgrade:switched');
      // Backups start over in the new cluster's stanza (stanza, then a first full backup), as after a deploy.
      this.backupEvents.ready(switched);
      const downtime = Math.round((Date.now() - downtimeStarted) / 100) / 10;
      const rows = [...counts.values()].reduce((sum, n) => sum + n, 0);
      log.info({ downtimeSeconds: downtime, tables: counts.size, rows }, 'upgraded');
      return {
        name,
        from_version: record.postgres_version,
        to_version: version,
        port: switched.host_port,
        database_url: urlOf(switched),
        downtime_seconds: downtime,
        tables: counts.size,
        rows,
      };
    });
  }

  /**
   * Removes the old cluster kept since the upgrade. Its backups (its own
   * stanza) are kept until they expire, as a destroyed database's are, and
   * a restore of the database's name to a moment before the upgrade finds
   * them; `deleteBackups` deletes them now.
   */
  async finish(name: string, deleteBackups = false): Promise<UpgradeFinishResponse> {
    return this.lifecycle.exclusive(name, async (found) => {
      const record = await this.settleInterrupted(found);
      const previous = record.previous;
      if (!previous) throw new DomainError('NO_UPGRADE', `"${name}" keeps no old cluster: no upgrade to finish`);
      await this.docker.removeContainer(previous.container_id);
      await this.docker.removeVolume(previous.volume_name);
      if (previous.backup && deleteBackups) await this.runtime.deleteArchive(previous.backup, previous.postgres_version);
      await this.registry.patchRetiring(name, (r) => {
        const old = r.previous;
        delete r.previous;
        return deleteBackups ? undefined : old;
      });
      const backupsKept = Boolean(previous.backup) && !deleteBackups;
      this.logger.info({ database: name, volume: previous.volume_name, backupsKept }, 'upgrade finished; the old cluster is removed');
      return {
        name,
        postgres_version: record.postgres_version,
        removed_container: previous.container_id,
        removed_volume: previous.volume_name,
        backups_kept: backupsKept,
      };
    });
  }

  /**
   * Switches back to the old cluster: the new one stops, the old one starts
   * on the port with the current password (archiving into its own stanza
   * again), and the new one is removed. The newer cluster's backups are
   * kept until they expire, as a destroyed database's are, unless
   * `deleteBackups`.
   */
  async rollback(name: string, deleteBackups = false): Promise<UpgradeRollbackResponse> {
    return this.lifecycle.exclusive(name, async (found) => {
      const record = await this.settleInterrupted(found);
      const previous = record.previous;
      if (!previous) throw new DomainError('NO_UPGRADE', `"${name}" keeps no old cluster: nothing to roll back to`);
      await this.docker.stopContainer(record.container_id, CLEAN_STOP_SECONDS);
      const old: RegistryRecord = { ...record, ...previous, host_port: record.host_port };
      await this.startCluster(old);
      await this.thaw(old);
      const newer: ClusterRecord = {
        container_id: record.container_id,
        volume_name: record.volume_name,
        postgres_version: record.postgres_version,
        admin_password: record.admin_password ?? '',
        ...(record.backup && record.backup.stanza !== previous.backup?.stanza ? { backup: record.backup } : {}),
      };
      const restored = await this.registry.patchRetiring(name, (r) => {
        r.container_id = previous.container_id;
        r.volume_name = previous.volume_name;
        r.postgres_version = previous.postgres_version;
        r.admin_password = previous.admin_password;
        if (previous.tls_not_after) r.tls_not_after = previous.tls_not_after;
        if (previous.backup) r.backup = previous.backup;
        else delete r.backup;
        delete r.previous;
        return deleteBackups ? undefined : newer;
      });
      await this.runtime.waitUntilReady(restored, restored.container_id, 'tenant');
      await this.docker.removeContainer(newer.container_id);
      await this.docker.removeVolume(newer.volume_name);
      if (newer.backup && deleteBackups) await this.runtime.deleteArchive(newer.backup, newer.postgres_version);
      this.backupEvents.ready(restored);
      const backupsKept = Boolean(newer.backup) && !deleteBackups;
      this.logger.warn({ database: name, version: restored.postgres_version, backupsKept }, 'upgrade rolled back');
      return { name, postgres_version: restored.postgres_version, port: restored.host_port, removed_volume: newer.volume_name, backups_kept: backupsKept };
    });
  }

  /**
   * Inside the database's lifecycle slot, an `upgrading` record belongs to
   * an upgrade a crash interrupted (a running one holds the slot): it is
   * rolled back first, so that the command works on the old cluster,
   * serving again. The record as it is then.
   */
  private async settleInterrupted(record: RegistryRecord): Promise<RegistryRecord> {
    if (!record.upgrading || record.pending) return record;
    await this.undoCopy(record);
    this.logger.warn({ database: record.name }, 'rolled back an upgrade that a crash interrupted before going on');
    return (await this.registry.find(record.name)) ?? record;
  }

  private check(record: RegistryRecord, version: number): void {
    if (!this.config.versions.includes(version)) {
      throw new DomainError('INVALID_REQUEST', `postgres version ${version} is not supported here; supported versions: ${this.config.versions.join(', ')}`);
    }
    if (version === record.postgres_version) {
      throw new DomainError('NO_UPGRADE', `"${record.name}" already runs Postgres ${version}; nothing to upgrade`);
    }
    if (version < record.postgres_version) {
      throw new DomainError('NO_UPGRADE', `"${record.name}" runs Postgres ${record.postgres_version}: a downgrade to ${version} is not possible (restore an export into a new database instead)`);
    }
  }

  /** The tenant's role can no longer log in to the old cluster, and its sessions end: nothing is written during the copy. */
  private async freeze(record: RegistryRecord): Promise<void> {
    const admin = this.runtime.target(record, 'admin');
    await this.runtime.client.execute(admin, [`ALTER ROLE ${ident(record.user)} NOLOGIN`]);
    await this.runtime.client.query(admin, terminateSessions(record.user));
  }

  private async thaw(record: RegistryRecord): Promise<void> {
    await this.runtime.client.execute(this.runtime.target(record, 'admin'), [`ALTER ROLE ${ident(record.user)} LOGIN`, passwordChange(record.user, record.password)]);
  }

  /** pg_dump in the old container (as the admin: the tenant may not log in now) piped into pg_restore in the new one (as the tenant). */
  private async copy(from: RegistryRecord, to: RegistryRecord): Promise<void> {
    const dump = await this.docker.execStream(
      from.container_id,
      ['pg_dump', '--format=custom', '--no-owner', '--no-password', '-h', SOCKET_DIR, '-U', ADMIN_USER, '-d', dbnameArgument(from.db)],
      { env: ADMIN_CLIENT_ENV },
    );
    const restore = await this.docker.execStream(
      to.container_id,
      ['pg_restore', '--single-transaction', '--exit-on-error', '--no-owner', '--no-password', '-h', SOCKET_DIR, '-U', to.user, '-d', dbnameArgument(to.db)],
      { stdin: dump.stdout },
    );
    restore.stdout.resume();
    // A test's crash in the middle of the copy, once its first bytes have gone through.
    if (failpointArmed('upgrade:copying')) dump.stdout.once('data', () => failpoint('upgrade:copying'));
    const [dumped, restored] = await Promise.all([dump.done, restore.done]);
    if (dumped.exitCode !== 0) throw new DomainError('DUMP_FAILED', `pg_dump of "${from.name}" failed: ${dumped.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    if (restored.exitCode !== 0) throw new DomainError('RESTORE_FAILED', `restoring "${from.name}" into Postgres ${to.postgres_version} failed: ${restored.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }

  /** Every user table has as many rows in the new cluster as in the old; the counts by table. */
  private async compareRows(from: RegistryRecord, to: RegistryRecord): Promise<Map<string, number>> {
    const count = async (record: RegistryRecord) =>
      new Map((await this.runtime.client.query<{ t: string; n: string }>(this.runtime.target(record, 'admin-in-db'), ROW_COUNTS)).map((row) => [row.t, Number(row.n)]));
    const [before, after] = await Promise.all([count(from), count(to)]);
    const differ = [...new Set([...before.keys(), ...after.keys()])].filter((table) => before.get(table) !== after.get(table));
    if (differ.length > 0) {
      const detail = differ.slice(0, 5).map((t) => `${t}: ${before.get(t) ?? 'missing'} before, ${after.get(t) ?? 'missing'} after`).join('; ');
      throw new DomainError('RESTORE_FAILED', `row counts differ after the copy (${detail})`);
    }
    return before;
  }

  /**
   * Undoes an upgrade that did not switch: removes the new cluster (its
   * containers and volume), starts the old one and lets the tenant log in
   * again. Safe to run again after a failure at any step.
   */
  private async undoCopy(record: RegistryRecord): Promise<void> {
    const upgrading = record.upgrading;
    if (!upgrading) return;
    const containers = await this.docker.listContainers({ ...(await this.runtime.instanceLabels()), [LABELS.name]: record.name });
    for (const container of containers) {
      if (container.id !== record.container_id && container.id !== record.previous?.container_id && !container.labels[LABELS.keeps]) {
        await this.docker.removeContainer(container.id);
      }
    }
    await this.docker.removeVolume(upgrading.volume_name);
    // The new cluster archives only once it runs on the port (upgrade:old-stopped and after): what it pushed goes with it.
    if (upgrading.backup) {
      await this.runtime
        .deleteArchive(upgrading.backup, upgrading.postgres_version)
        .catch((error: Error) => this.logger.warn({ database: record.name, stanza: upgrading.backup!.stanza, err: error.message }, 'could not delete what the half-made cluster archived'));
    }
    if (!record.stopped) {
      await this.startCluster(record);
      await this.thaw(record);
      await this.runtime.waitUntilReady(record, record.container_id, 'tenant');
    }
    await this.registry.patch(record.name, (r) => delete r.upgrading);
  }

  private async startCluster(record: RegistryRecord): Promise<void> {
    await this.docker.startContainer(record.container_id);
    await this.runtime.waitUntilReady(record, record.container_id, 'admin');
  }
}

/** A record for the new cluster: the database's own fields, with the new cluster's container, volume, major, admin and port. */
function asRecord(record: RegistryRecord, cluster: ClusterRecord): RegistryRecord {
  return {
    ...record,
    container_id: cluster.container_id,
    volume_name: cluster.volume_name,
    postgres_version: cluster.postgres_version,
    admin_password: cluster.admin_password,
    host_port: cluster.host_port ?? record.host_port,
    tls_not_after: cluster.tls_not_after,
    backup: cluster.backup,
  };
}

function urlOf(record: RegistryRecord): string {
  return databaseUrl({ user: record.user, password: record.password, host: record.host, port: record.host_port, db: record.db });
}
