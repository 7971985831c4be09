import { Module, ValidationPipe, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { CommonModule } from './common/common.module.js';
import type { DaemonConfig } from './common/config.js';
import { GlobalExceptionFilter } from './common/exception.filter.js';
import type { Logger } from './common/logger.js';
import { DeployModule } from './deploy/deploy.module.js';
import { Day2Module } from './day2/day2.module.js';
import { BackupArchivingModule } from './backup/archiving.module.js';
import { BackupModule } from './backup/backup.module.js';
import { DatabaseModule } from './database/database.module.js';
import type { TlsService } from './tls/tls.service.js';

@Module({})
export class AppModule {
  static forRoot(config: DaemonConfig, logger: Logger, tls: TlsService): DynamicModule {
    return {
      module: AppModule,
      imports: [CommonModule.forRoot(config, logger, tls), DatabaseModule.forRoot(BackupArchivingModule), DeployModule, Day2Module, BackupModule],
      providers: [
        { provide: APP_FILTER, useClass: GlobalExceptionFilter },
        {
          provide: APP_PIPE,
          useValue: new ValidationPipe({
            whitelist: true,
            forbidNonWhitelisted: true,
            forbidUnknownValues: true,
            stopAtFirstError: true,
            transform: true,
          }),
        },
      ],
    };
  }
}
