import { Module } from '@nestjs/common';
import { Archiving } from '../database/archiving.js';
import { DockerModule } from '../docker/docker.module.js';
import { BackupRepository } from './backup-repository.js';
import { S3Gateway } from './s3-gateway.js';

/** The backup module's side of the database core's Archiving port: pgBackRest into the configured target. */
@Module({
  imports: [DockerModule],
  providers: [BackupRepository, S3Gateway, { provide: Archiving, useExisting: BackupRepository }],
  exports: [BackupRepository, S3Gateway, Archiving],
})
export class BackupArchivingModule {}
