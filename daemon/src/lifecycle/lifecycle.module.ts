import { Module } from '@nestjs/common';
import { DeployModule } from '../deploy/deploy.module.js';
import { LifecycleController } from './lifecycle.controller.js';
import { LifecycleService } from './lifecycle.service.js';
import { TransferController } from './transfer.controller.js';
import { TransferService } from './transfer.service.js';
import { UpgradeService } from './upgrade.service.js';

/** Day-2 operations: info, url, logs, stop/start/restart, credentials rotation, resize, export and import, major upgrades. */
@Module({
  imports: [DeployModule],
  controllers: [LifecycleController, TransferController],
  providers: [LifecycleService, TransferService, UpgradeService],
})
export class LifecycleModule {}
