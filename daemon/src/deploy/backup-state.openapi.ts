/** The backup shapes that status reports, apart from the backup routes (deploy.openapi.ts imports them). */
import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { BACKUP_TYPES, DRILL_COMPARISON_STATUSES, type BackupItem, type BackupState, type BackupType, type DrillComparison, type DrillComparisonStatus, type DrillResult } from '../../../contract/api.js';

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
  @ApiProperty({ type: 'integer', description: 'Rows in the restored copy' }) rows: number;
  @ApiProperty({ type: 'integer', nullable: true, required: false, description: 'Rows in the source at the restore point; null when not compared' }) source_rows?: number | null;
}

@ApiSchema({ name: 'DrillRestorePoint' })
class DrillRestorePointDto {
  @ApiProperty({ type: 'string', description: 'The restore point made in the source (pg_create_restore_point)' }) name: string;
  @ApiProperty({ type: 'string', description: 'Its place in the WAL' }) lsn: string;
  @ApiProperty({ type: 'string', format: 'date-time' }) at: string;
}

@ApiSchema({ name: 'DrillDifference' })
class DrillDifferenceDto {
  @ApiProperty({ type: 'string' }) database: string;
  @ApiProperty({ type: 'string', description: "schema.table; '' for a database on one side only" }) table: string;
  @ApiProperty({ type: 'integer', nullable: true, description: 'Rows in the source at the restore point; null when the source lacks the table' }) source_rows: number | null;
  @ApiProperty({ type: 'integer', nullable: true, description: 'Rows in the copy; null when the copy lacks the table' }) copy_rows: number | null;
}

@ApiSchema({ name: 'DrillComparison' })
class DrillComparisonDto implements DrillComparison {
  @ApiProperty({ enum: DRILL_COMPARISON_STATUSES, description: 'match; differ (the drill failed); not_compared (reason says why; the drill passes or fails on its other checks)' }) status: DrillComparisonStatus;
  @ApiProperty({ type: 'string', nullable: true, description: 'Why the drill could not compare' }) reason: string | null;
  @ApiProperty({ type: DrillRestorePointDto, nullable: true, description: 'The restore point made in the source and restored to; null when none was made' }) restore_point: DrillRestorePointDto | null;
  @ApiProperty({ type: 'integer', description: 'Tables compared' }) tables_compared: number;
  @ApiProperty({ type: [DrillDifferenceDto], description: 'Tables whose rows differ (at most 20)' }) differences: DrillDifferenceDto[];
}

@ApiSchema({ name: 'DrillResult' })
export class DrillResultDto implements DrillResult {
  @ApiProperty({ type: 'string', format: 'date-time' }) at: string;
  @ApiProperty({ type: 'boolean' }) ok: boolean;
  @ApiProperty({ type: 'integer' }) duration_ms: number;
  @ApiProperty({ type: 'string', description: 'What was checked, or why it failed' }) detail: string;
  @ApiProperty({ type: 'string', nullable: true, description: 'The backup restored' }) backup: string | null;
  @ApiProperty({ type: [DrillTableDto], description: 'Rows per table in the restored copy and in the source (at most 50 listed)' }) tables: DrillTableDto[];
  @ApiProperty({ enum: ['ok', 'failed', 'skipped'], nullable: true }) amcheck: 'ok' | 'failed' | 'skipped' | null;
  @ApiProperty({ type: DrillComparisonDto, nullable: true, description: 'The comparison with the source at the restore point; null for a drill recorded before drills compared' }) comparison: DrillComparisonDto | null;
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

