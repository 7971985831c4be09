import { Module } from '@nestjs/common';
import { DockerModule } from '../docker/docker.module.js';
import { PgClient, POSTGRES_CLIENT } from '../postgres/postgres.client.js';
import { RegistryModule } from '../registry/registry.module.js';
import { CertificateRenewal } from './certificate-renewal.js';
import { DeployController } from './deploy.controller.js';
import { DeployService } from './deploy.service.js';
import { HealthService } from './health.service.js';
import { LegacyUpgrade } from './legacy-upgrade.js';
import { Operations } from './operations.js';
import { PoolService } from './pool.service.js';
import { ReconcileService } from './reconcile.service.js';
import { PortPicker } from './ports.js';
import { PostgresRuntime } from './postgres-runtime.js';
import { BackupEvents } from '../backup/backup-events.js';
import { BackupRepository } from '../backup/backup-repository.js';
import { S3Gateway } from '../backup/s3-gateway.js';

@Module({
  imports: [RegistryModule, DockerModule],
  controllers: [DeployController],
  providers: [
    DeployService,
    HealthService,
    ReconcileService,
    Operations,
    PoolService,
    PortPicker,
    PostgresRuntime,
    LegacyUpgrade,
    CertificateRenewal,
    BackupRepository,
    S3Gateway,
    BackupEvents,
    { provide: POSTGRES_CLIENT, useClass: PgClient },
  ],
  // The day-2 module (stop/start, rotate, resize, logs, info, export/import, upgrade) shares the in-flight set and the runtime.
  exports: [Operations, PostgresRuntime, ReconcileService, RegistryModule, DockerModule, DeployService, BackupRepository, BackupEvents],
})
export class DeployModule {}
