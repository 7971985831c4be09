import { Body, Controller, Get, Header, HttpCode, Param, Post } from '@nestjs/common';
import { parseRfc3339, validateName, type BackupItem, type BackupKeyResponse, type BackupsResponse, type DestroyedBackupsResponse, type RestoreResponse, type VerifyResponse } from '../../../contract/api.js';
import { DomainError } from '../common/errors.js';
import { BackupDto, RestoreDto } from './backup.dto.js';
import { BackupDocs, BackupsDocs, DestroyedDocs, KeyDocs, RestoreDocs, VerifyDocs } from './backup.openapi.js';
import { BackupService } from './backup.service.js';
import { DrillService } from './drill.service.js';
import { BackupListing } from './listing.js';
import { RestoreService } from './restore.service.js';
import { ServerCatalog } from './server-catalog.js';

@Controller('v1')
export class BackupController {
  constructor(
    private readonly backups: BackupService,
    private readonly drills: DrillService,
    private readonly listing: BackupListing,
    private readonly restores: RestoreService,
    private readonly catalog: ServerCatalog,
  ) {}

  @Post('db/:name/backups')
  @HttpCode(201)
  @BackupDocs()
  backup(@Param('name') name: string, @Body() body: BackupDto = {}): Promise<BackupItem> {
    return this.backups.backup(checkName(name), body?.type ?? 'full');
  }

  @Post('db/:name/backups/verify')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @VerifyDocs()
  verify(@Param('name') name: string): Promise<VerifyResponse> {
    return this.drills.drill(checkName(name));
  }

  @Get('db/:name/backups')
  @Header('Cache-Control', 'no-store')
  @BackupsDocs()
  list(@Param('name') name: string): Promise<BackupsResponse> {
    return this.listing.list(checkName(name));
  }

  @Get('backups/destroyed')
  @Header('Cache-Control', 'no-store')
  @DestroyedDocs()
  destroyed(): Promise<DestroyedBackupsResponse> {
    return this.listing.destroyed();
  }

  @Get('backups/key')
  @Header('Cache-Control', 'no-store')
  @KeyDocs()
  key(): BackupKeyResponse {
    return this.catalog.printable();
  }

  @Post('db/:name/restore')
  @HttpCode(201)
  @Header('Cache-Control', 'no-store')
  @RestoreDocs()
  restore(@Param('name') name: string, @Body() body: RestoreDto): Promise<RestoreResponse> {
    checkName(name);
    if (body.time !== undefined && body.backup !== undefined) {
      throw new DomainError('INVALID_REQUEST', 'give time or backup, not both');
    }
    if (body.time !== undefined && !parseRfc3339(body.time)) {
      throw new DomainError('INVALID_REQUEST', `time ${JSON.stringify(body.time)} names no real moment`);
    }
    return this.restores.restore(name, body);
  }
}

function checkName(name: string): string {
  const problem = validateName(name);
  if (problem) throw new DomainError('INVALID_REQUEST', problem);
  return name;
}
