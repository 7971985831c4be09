import { Module } from '@nestjs/common';
import { DeployModule } from '../deploy/deploy.module.js';
import { BackupController } from './backup.controller.js';
import { BackupService } from './backup.service.js';
import { ServerCatalog } from './server-catalog.js';

/** Backups: scheduled and on-demand, listings, restores into a new database. */
@Module({
  imports: [DeployModule],
  controllers: [BackupController],
  providers: [BackupService, ServerCatalog],
  exports: [BackupService],
})
export class BackupModule {}
