import { Module } from '@nestjs/common';
import { DeployModule } from '../deploy/deploy.module.js';
import { LifecycleController } from './lifecycle.controller.js';
import { LifecycleService } from './lifecycle.service.js';

/** Day-2 operations: info, url, logs, stop/start/restart, credentials rotation, resize. */
@Module({
  imports: [DeployModule],
  controllers: [LifecycleController],
  providers: [LifecycleService],
})
export class LifecycleModule {}
