import { Module } from '@nestjs/common';
import { DeployController } from './deploy.controller.js';
import { DeployService } from './deploy.service.js';
import { HealthService } from './health.service.js';

/** Deploy, status and destroy, and the server's health; on the database core (DatabaseModule, global). */
@Module({
  controllers: [DeployController],
  providers: [DeployService, HealthService],
  exports: [DeployService],
})
export class DeployModule {}
