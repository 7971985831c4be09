/** The backup shapes that status reports, apart from the backup routes (deploy.openapi.ts imports them). */
import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { BACKUP_TYPES, type BackupItem, type BackupState, type BackupType, type DrillResult } from '../../../contract/api.js';

@ApiSchema({ name: 'BackupItem' })
export class BackupItemDto implements BackupItem {
  @ApiProperty({ type: 'string', description: 'What restore --backup takes' }) label: string;
  @ApiProperty({ enum: BACKUP_TYPES }) type: BackupType;
  @ApiProperty({ type: 'string', format: 'date-time' }) started_at: string;
  @ApiProperty({ type: 'string', format: 'date-time' }) finished_at: string;
  @ApiProperty({ type: 'integer', description: 'Bytes of the database the backup covers' }) size_bytes: number;
  @ApiProperty({ type: 'integer', description: 'Bytes in the repository (compressed, encrypted)' }) repo_bytes: number;
}

@ApiSchema({ name: 'DrillTable' })
class DrillTableDto {
  @ApiProperty({ type: 'string' }) database: string;
  @ApiProperty({ type: 'string', description: 'schema.table' }) table: string;
  @ApiProperty({ type: 'integer' }) rows: number;
}

@ApiSchema({ name: 'DrillResult' })
export class DrillResultDto implements DrillResult {
  @ApiProperty({ type: 'string', format: 'date-time' }) at: string;
  @ApiProperty({ type: 'boolean' }) ok: boolean;
  @ApiProperty({ type: 'integer' }) duration_ms: number;
  @ApiProperty({ type: 'string', description: 'What was checked, or why it failed' }) detail: string;
  @ApiProperty({ type: 'string', nullable: true, description: 'The backup restored' }) backup: string | null;
  @ApiProperty({ type: [DrillTableDto], description: 'Rows per user table in the restored copy (at most 50 listed)' }) tables: DrillTableDto[];
  @ApiProperty({ enum: ['ok', 'failed', 'skipped'], nullable: true }) amcheck: 'ok' | 'failed' | 'skipped' | null;
}

@ApiSchema({ name: 'BackupState' })
export class BackupStateDto implements BackupState {
  @ApiProperty({ type: BackupItemDto, nullable: true }) last_backup: BackupItemDto | null;
  @ApiProperty({ type: 'integer', nullable: true }) last_backup_age_seconds: number | null;
  @ApiProperty({ enum: ['ok', 'failing', 'unknown'] }) archiving: 'ok' | 'failing' | 'unknown';
  @ApiProperty({ type: 'integer', nullable: true }) archive_failed_count: number | null;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) last_archive_failure: string | null;
  @ApiProperty({ type: 'string', nullable: true }) last_error: string | null;
  @ApiProperty({ type: DrillResultDto, nullable: true, description: 'The newest restore drill' }) last_drill: DrillResultDto | null;
  @ApiProperty({ type: [String] }) problems: string[];
}

