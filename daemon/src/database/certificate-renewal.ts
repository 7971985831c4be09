import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, type DockerGateway } from '../docker/docker.gateway.js';
import { RELOAD_CONFIGURATION, tlsFiles } from '../postgres/postgres-container.js';
import { RegistryService } from '../registry/registry.service.js';
import { PostgresRuntime } from './postgres-runtime.js';
import { ReconcileService } from './reconcile.service.js';

const CHECK_EVERY_MS = 60 * 60 * 1000;

/**
 * Keeps every database's certificate fresh: inside the renewal window (or
 * when the operator installed a new certificate), a new one is copied into
 * the running container and Postgres re-reads it with pg_reload_conf(). No
 * restart, no dropped connection; new connections see the new certificate.
 */
@Injectable()
export class CertificateRenewal implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  /** A change of certificate arrived during a pass: one more pass follows it. */
  private again = false;
  private unsubscribe: (() => void) | undefined;

  constructor(
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly registry: RegistryService,
    private readonly reconciliation: ReconcileService,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'renewal' });
  }

  onApplicationBootstrap(): void {
    // A daemon that was off for a while may find certificates due at once;
    // after reconciliation, which may re-create containers.
    void this.reconciliation.ensureReconciled().then(
      () => this.renewDue(),
      () => undefined,
    );
    this.timer = setInterval(() => void this.renewDue(), CHECK_EVERY_MS);
    this.timer.unref();
    // A new ACME certificate (or a fallback to the own CA) reaches every database at once.
    this.unsubscribe = this.runtime.tls.onDatabaseCertificateChange(() => {
      if (this.running) this.again = true;
      else void this.renewDue();
    });
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.unsubscribe?.();
  }

  /** One pass over the registry; returns how many databases got a new certificate. Failures are logged and retried next pass. */
  renewDue(now = new Date()): Promise<number> {
    this.running ??= this.pass(now)
      .catch((error: Error) => {
        this.logger.error({ err: error.message }, 'certificate renewal pass failed; retried in an hour');
        return 0;
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          void this.renewDue();
        }
      });
    return this.running;
  }

  private async pass(now: Date): Promise<number> {
    let renewed = 0;
    const due = (await this.registry.list()).filter(
      (r) => !r.pending && r.layout === 2 && r.container_id && this.runtime.tls.databaseNeedsNew(r.tls_not_after, now),
    );
    for (const record of due) {
      try {
        const status = await this.docker.containerStatus(record.container_id);
        // A stopped container gets its certificate when it is next re-created.
        if (!status?.running) continue;
        const credentials = await this.runtime.tls.databaseCredentials();
        await this.docker.copyFiles(record.container_id, tlsFiles(credentials));
        await this.runtime.client.execute(this.runtime.target(record, 'admin'), [RELOAD_CONFIGURATION]);
        const notAfter = credentials.notAfter.toISOString();
        await this.registry.update((items) => ({
          items: items.map((item) => (item.name === record.name ? { ...item, tls_not_after: notAfter } : item)),
          result: undefined,
        }));
        this.logger.info({ database: record.name, notAfter }, 'renewed the certificate (configuration reloaded, no restart)');
        renewed++;
      } catch (error) {
        this.logger.error({ database: record.name, err: (error as Error).message }, 'certificate renewal failed; retried in an hour');
      }
    }
    return renewed;
  }
}
