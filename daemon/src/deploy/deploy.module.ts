import { Module } from '@nestjs/common';
import { DockerModule } from '../docker/docker.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { DeployController } from './deploy.controller.js';
import { DeployService } from './deploy.service.js';
import { PgProbe, POSTGRES_PROBE } from './postgres.probe.js';

@Module({
  imports: [RegistryModule, DockerModule],
  controllers: [DeployController],
  providers: [DeployService, { provide: POSTGRES_PROBE, useClass: PgProbe }],
})
export class DeployModule {}
