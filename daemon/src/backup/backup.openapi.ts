/**
 * The backup routes' response shapes as classes @nestjs/swagger can read
 * (each implements its contract type), and the documentation of each route.
 */
import { applyDecorators } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiDefaultResponse, ApiExtraModels, ApiOperation, ApiParam, ApiProperty, ApiResponse, ApiSchema, getSchemaPath } from '@nestjs/swagger';
import {
  BACKUP_TARGET_KINDS,
  BACKUP_TYPES,
  type BackupTargetKind,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  type BackupItem,
  type BackupKeyResponse,
  type BackupsResponse,
  type BackupState,
  type BackupType,
  type DestroyedBackupsResponse,
  type RestoreResponse,
  type RestoreWindow,
  type VerifyResponse,
} from '../../../contract/api.js';
import { DeployResponseDto, ErrorBodyDto } from '../deploy/deploy.openapi.js';
import { BackupDto, RestoreDto } from './backup.dto.js';
import { BackupItemDto, DrillResultDto } from '../deploy/backup-state.openapi.js';

@ApiSchema({ name: 'VerifyResponse' })
export class VerifyResponseDto extends DrillResultDto implements VerifyResponse {
  @ApiProperty({ type: 'string' }) name: string;
}

@ApiSchema({ name: 'RestoreWindow' })
export class RestoreWindowDto implements RestoreWindow {
  @ApiProperty({ type: 'string', format: 'date-time' }) earliest: string;
  @ApiProperty({ type: 'string', format: 'date-time' }) latest: string;
}

@ApiSchema({ name: 'BackupRepositoryInfo' })
class RepositoryDto {
  @ApiProperty({ enum: BACKUP_TARGET_KINDS }) kind: BackupTargetKind;
  @ApiProperty({ type: 'string' }) location: string;
}

@ApiSchema({ name: 'BackupsResponse' })
export class BackupsResponseDto implements BackupsResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ enum: ['running', 'stopped', 'destroyed'] }) source: 'running' | 'stopped' | 'destroyed';
  @ApiProperty({ type: [BackupItemDto] }) backups: BackupItemDto[];
  @ApiProperty({ type: RestoreWindowDto, nullable: true, description: 'null until the first backup has finished' }) window: RestoreWindowDto | null;
  @ApiProperty({ type: RepositoryDto }) repository: RepositoryDto;
}

@ApiSchema({ name: 'DestroyedBackup' })
class DestroyedBackupDto {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'integer' }) postgres_version: number;
  @ApiProperty({ type: 'string', format: 'date-time' }) destroyed_at: string;
  @ApiProperty({ type: 'boolean', description: "found in the repository's server record, not destroyed here (a rebuilt server)" }) recovered: boolean;
}

@ApiSchema({ name: 'BackupKeyResponse' })
export class BackupKeyResponseDto implements BackupKeyResponse {
  @ApiProperty({ type: 'string', example: 'pgdb-backup-key-1:…' }) key: string;
  @ApiProperty({ type: 'string' }) file: string;
  @ApiProperty({ type: 'string' }) location: string;
}

@ApiSchema({ name: 'DestroyedBackupsResponse' })
export class DestroyedBackupsResponseDto implements DestroyedBackupsResponse {
  @ApiProperty({ type: [DestroyedBackupDto] }) items: DestroyedBackupDto[];
}

@ApiSchema({ name: 'RestoreResponse' })
export class RestoreResponseDto extends DeployResponseDto implements RestoreResponse {
  @ApiProperty({ type: 'string' }) restored_from: string;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) target_time: string | null;
  @ApiProperty({ type: 'string', nullable: true }) target_backup: string | null;
}

function ApiErrors(...statuses: Array<[number, string]>) {
  return applyDecorators(
    ...statuses.map(([status, description]) => ApiResponse({ status, description, type: ErrorBodyDto })),
    ApiDefaultResponse({ description: 'Any other error, e.g. BACKUP_FAILED or INTERNAL (500)', type: ErrorBodyDto }),
  );
}

const NAME = () => ApiParam({ name: 'name', schema: { type: 'string', pattern: NAME_PATTERN.source, minLength: 1, maxLength: NAME_MAX_LENGTH } });
const COMMON: Array<[number, string]> = [
  [400, 'INVALID_REQUEST: a bad name, parameter or body'],
  [401, 'UNAUTHORIZED: missing or wrong bearer token'],
  [404, 'DB_NOT_FOUND'],
];

export const BackupDocs = () =>
  applyDecorators(
    ApiOperation({ summary: 'Take a backup now (queued behind running ones)' }),
    ApiBearerAuth(),
    NAME(),
    ApiBody({ type: BackupDto, required: false }),
    ApiResponse({ status: 201, type: BackupItemDto }),
    ApiErrors(...COMMON, [409, 'DB_BUSY, DB_STOPPED, or NO_BACKUP: backups are off'], [503, 'DOCKER_UNAVAILABLE']),
  );

export const BackupsDocs = () =>
  applyDecorators(
    ApiOperation({ summary: 'The backups of a database (running, stopped or destroyed) and the window a restore reaches' }),
    ApiBearerAuth(),
    NAME(),
    ApiResponse({ status: 200, type: BackupsResponseDto }),
    ApiErrors(...COMMON, [409, 'DB_BUSY, or NO_BACKUP: backups are off'], [503, 'DOCKER_UNAVAILABLE']),
  );

export const DestroyedDocs = () =>
  applyDecorators(
    ApiOperation({ summary: 'Destroyed databases whose backups are kept, restorable by name' }),
    ApiBearerAuth(),
    ApiResponse({ status: 200, type: DestroyedBackupsResponseDto }),
    ApiErrors(
      [401, 'UNAUTHORIZED: missing or wrong bearer token'],
      [409, "NO_BACKUP: backups are off; BACKUP_KEY_MISMATCH: the repository's server record was sealed with another key"],
    ),
  );

export const KeyDocs = () =>
  applyDecorators(
    ApiOperation({ summary: "The server's backup key: with the repository alone it rebuilds a lost server's list of databases" }),
    ApiBearerAuth(),
    ApiResponse({ status: 200, type: BackupKeyResponseDto }),
    ApiErrors([401, 'UNAUTHORIZED: missing or wrong bearer token'], [409, 'NO_BACKUP: backups are off']),
  );

export const RestoreDocs = () =>
  applyDecorators(
    ApiOperation({ summary: 'A new database from the backups of this one: to a moment, a backup, or the latest' }),
    ApiBearerAuth(),
    NAME(),
    ApiExtraModels(RestoreDto),
    // time and backup exclude each other.
    ApiBody({ schema: { allOf: [{ $ref: getSchemaPath(RestoreDto) }], not: { required: ['time', 'backup'] } } }),
    ApiResponse({ status: 201, type: RestoreResponseDto }),
    ApiErrors(
      ...COMMON,
      [409, 'DB_ALREADY_EXISTS (the new name), DB_BUSY, or NO_BACKUP: no backup yet, or the time is outside the window'],
      [503, 'DOCKER_UNAVAILABLE'],
      [504, 'POSTGRES_NOT_READY'],
    ),
  );

export const VerifyDocs = () =>
  applyDecorators(
    ApiOperation({
      summary: 'A restore drill now: a restore point made in the source and its tables counted there, the latest backup restored with the WAL up to it into a throwaway container (no published port), started, every table counted and compared, pg_amcheck run',
      description:
        'Answers 200 with ok false when the drill ran and the backup did not pass (a copy whose rows differ from the source at the restore point included: comparison.status differ); ' +
        'comparison.status not_compared when the source was never quiet at a restore point (or not running): such a drill passes or fails on its other checks. The result is also in status (backup.last_drill).',
    }),
    ApiBearerAuth(),
    NAME(),
    ApiResponse({ status: 200, type: VerifyResponseDto }),
    ApiErrors(...COMMON, [409, 'DB_BUSY, or NO_BACKUP: no finished backup yet, or backups are off'], [503, 'DOCKER_UNAVAILABLE']),
  );
