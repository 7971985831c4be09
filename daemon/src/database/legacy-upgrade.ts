import { Inject, Injectable } from '@nestjs/common';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, type DockerGateway } from '../docker/docker.gateway.js';
import { legacyAdminSetup, legacyTenantDemotion } from '../postgres/postgres-container.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { generatePassword } from './identifiers.js';
import { PostgresRuntime } from './postgres-runtime.js';
import { BackupEvents } from './backup-events.js';
import { Archiving } from './archiving.js';

/**
 * Brings a database created by a release before TLS and split roles (no
 * `layout` in its record) to today's layout, in place: same volume, port,
 * name, user and password; its rows untouched.
 *
 * 1. The registry gets the daemon's admin password first, so it is never in
 *    a state where a role exists whose password nobody knows.
 * 2. The container is re-created with today's recipe (TLS only, limits,
 *    isolated network) and recorded at once.
 * 3. Over TLS, as the tenant (still the bootstrap superuser): the daemon's
 *    own superuser is created; then, as that superuser and in one
 *    transaction, the tenant's role is demoted (see legacyTenantDemotion).
 *
 * Every step can run again: a crash anywhere leaves a state from which the
 * next start finishes the job. The tenant's credentials work at every step.
 */
@Injectable()
export class LegacyUpgrade {
  private readonly logger: Logger;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly archiving: Archiving,
    private readonly events: BackupEvents,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'upgrade' });
  }

  async upgrade(original: RegistryRecord): Promise<void> {
    const log = this.logger.child({ database: original.name });
    log.warn('upgrading a database from an earlier release: TLS only, its role no longer a superuser');
    let record = await this.save(original.name, (r) => {
      r.admin_password ??= generatePassword();
      r.memory_mb ??= this.config.defaultMemoryMb;
    });

    record = await this.recreate(record);
    const containerId = record.container_id;
    log.info({ container: containerId }, 're-created the container with TLS and limits');
    await this.runtime.waitUntilReady(record, containerId, 'tenant');

    const [role] = await this.runtime.client.query<{ rolsuper: boolean }>(
      this.runtime.target(record, 'tenant'),
      'SELECT rolsuper FROM pg_roles WHERE rolname = current_user',
    );
    if (role?.rolsuper) {
      await this.runtime.client.execute(this.runtime.target(record, 'tenant'), legacyAdminSetup(record.admin_password!));
      await this.runtime.client.execute(this.runtime.target(record, 'admin-in-db'), legacyTenantDemotion(record));
    }
    await this.runtime.waitUntilReady(record, containerId, 'tenant');
    await this.save(record.name, (r) => {
      r.layout = 2;
    });
    log.info('upgrade finished');
  }

  /** A database made before backups (or while they were off), now that they are on. */
  needsArchiving(record: RegistryRecord): boolean {
    if (!this.archiving.enabled || record.pending || record.stopped || record.upgrading || record.previous) return false;
    return !record.backup || record.archiving_pending === true;
  }

  /**
   * Gives a database made before backups its stanza and continuous
   * archiving, in place (same volume, port and credentials; the container is
   * re-created, since archive_mode needs a restart): the identity is
   * recorded first with `archiving_pending`, cleared once the new container
   * answers, so a crash in between is finished at the next start. Then its
   * first full backup is taken, as after a deploy. Clusters made without
   * data checksums keep running without them.
   */
  async addArchiving(original: RegistryRecord): Promise<void> {
    const log = this.logger.child({ database: original.name });
    let record = await this.save(original.name, (r) => {
      r.backup ??= this.archiving.newIdentity(r.volume_name);
      r.archiving_pending = true;
    });
    log.warn({ stanza: record.backup!.stanza }, 'turning on WAL archiving and backups for a database made without them; its container is re-created');
    record = await this.recreate(record);
    const containerId = record.container_id;
    await this.runtime.waitUntilReady(record, containerId, 'tenant');
    record = await this.save(record.name, (r) => {
      delete r.archiving_pending;
    });
    log.info({ container: containerId }, 'archiving on; taking its first full backup');
    this.events.ready(record);
  }

  /** Replaces the container with one made by today's recipe from the record, and records it at once. */
  private async recreate(record: RegistryRecord): Promise<RegistryRecord> {
    const image = await this.runtime.image(record.postgres_version);
    if (record.container_id) await this.docker.removeContainer(record.container_id);
    const { containerId, tlsNotAfter } = await this.runtime.run(record, image);
    return this.save(record.name, (r) => {
      r.container_id = containerId;
      r.tls_not_after = tlsNotAfter;
    });
  }

  private save(name: string, change: (record: RegistryRecord) => void): Promise<RegistryRecord> {
    return this.registry.update((items) => {
      const record = items.find((item) => item.name === name);
      if (!record) throw new Error(`registry record ${name} vanished during its upgrade`);
      change(record);
      return { items, result: { ...record } };
    });
  }
}
