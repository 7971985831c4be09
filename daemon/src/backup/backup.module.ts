import { Module } from '@nestjs/common';
import { DeployModule } from '../deploy/deploy.module.js';
import { BackupArchivingModule } from './archiving.module.js';
import { BackupController } from './backup.controller.js';
import { BackupQueue } from './backup-queue.js';
import { BackupService } from './backup.service.js';
import { BackupStates } from './backup-states.js';
import { DrillService } from './drill.service.js';
import { BackupListing } from './listing.js';
import { RestoreService } from './restore.service.js';
import { ServerCatalog } from './server-catalog.js';
import { Stanzas } from './stanzas.js';

/**
 * Backups: the schedule and backups on demand (backup.service.ts), restore
 * drills (drill.service.ts), listings (listing.ts), restores into a new
 * database (restore.service.ts), the state status and health report
 * (backup-states.ts), and the server record (server-catalog.ts). Archiving
 * itself is the database core's port, implemented in archiving.module.ts.
 */
@Module({
  imports: [DeployModule, BackupArchivingModule],
  controllers: [BackupController],
  providers: [BackupService, DrillService, BackupListing, RestoreService, BackupStates, Stanzas, BackupQueue, ServerCatalog],
})
export class BackupModule {}
