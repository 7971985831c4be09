import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { DockerModule } from '../docker/docker.module.js';
import { PgClient, POSTGRES_CLIENT } from '../postgres/postgres.client.js';
import { RegistryModule } from '../registry/registry.module.js';
import { BackupEvents } from './backup-events.js';
import { CertificateRenewal } from './certificate-renewal.js';
import { LegacyUpgrade } from './legacy-upgrade.js';
import { Operations } from './operations.js';
import { PoolService } from './pool.service.js';
import { PortPicker } from './ports.js';
import { PostgresRuntime } from './postgres-runtime.js';
import { ReconcileService } from './reconcile.service.js';

/**
 * The database core: a database's runtime (container assembly, image,
 * ports, readiness), the reconciliation with the engine, the warm pool and
 * certificate renewal. Every feature (deploy, day-2 operations, backups)
 * builds on it; it depends on none of them. Archiving reaches it through
 * the Archiving port, which `archiving` (a module) provides.
 */
@Module({})
export class DatabaseModule {
  static forRoot(archiving: Type<unknown>): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      imports: [RegistryModule, DockerModule, archiving],
      providers: [
        PostgresRuntime,
        ReconcileService,
        Operations,
        PoolService,
        PortPicker,
        LegacyUpgrade,
        CertificateRenewal,
        BackupEvents,
        { provide: POSTGRES_CLIENT, useClass: PgClient },
      ],
      exports: [PostgresRuntime, ReconcileService, Operations, PoolService, PortPicker, BackupEvents, POSTGRES_CLIENT, RegistryModule, DockerModule],
    };
  }
}
