import { Module } from '@nestjs/common';
import { DeployModule } from '../deploy/deploy.module.js';
import { Day2Controller } from './day2.controller.js';
import { Day2Service } from './day2.service.js';
import { TransferController } from './transfer.controller.js';
import { TransferService } from './transfer.service.js';
import { UpgradeService } from './upgrade.service.js';

/** Day-2 operations: info, url, logs, stop/start/restart, credentials rotation, resize, export and import, major upgrades. */
@Module({
  imports: [DeployModule],
  controllers: [Day2Controller, TransferController],
  providers: [Day2Service, TransferService, UpgradeService],
})
export class Day2Module {}
