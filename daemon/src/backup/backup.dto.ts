import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsIn, IsString, Matches, MaxLength, ValidateIf } from 'class-validator';
import { BACKUP_LABEL_PATTERN } from './pgbackrest.js';
import { BACKUP_TYPES, NAME_MAX_LENGTH, NAME_PATTERN, RFC3339_PATTERN, type BackupRequest, type BackupType, type RestoreRequest } from '../../../contract/api.js';

/** May be left out, but not sent as null (class-validator's IsOptional would let null pass). */
const Optional = () => ValidateIf((_object, value) => value !== undefined);


@ApiSchema({ name: 'BackupRequest' })
export class BackupDto implements BackupRequest {
  @ApiPropertyOptional({ enum: BACKUP_TYPES, default: 'full', description: 'diff and incr build on the newest full backup.' })
  @IsIn(BACKUP_TYPES, { message: `type must be one of ${BACKUP_TYPES.join(', ')}` })
  @Optional()
  type?: BackupType;
}

// Checks run bottom-up and the pipe stops at the first failure: the type check sits lowest.
@ApiSchema({ name: 'RestoreRequest' })
export class RestoreDto implements RestoreRequest {
  @ApiProperty({ type: 'string', pattern: NAME_PATTERN.source, minLength: 1, maxLength: NAME_MAX_LENGTH, description: 'Name of the new database; it must not exist.' })
  @Matches(NAME_PATTERN, { message: 'as may contain only lowercase letters, digits and dashes, must start with a letter and must not end with a dash' })
  @MaxLength(NAME_MAX_LENGTH, { message: `as must be at most ${NAME_MAX_LENGTH} characters long` })
  @IsString({ message: 'as must be the name of the new database' })
  as!: string;

  @ApiPropertyOptional({
    type: 'string',
    format: 'date-time',
    pattern: RFC3339_PATTERN.source,
    description: 'Restore to this moment (RFC 3339, with a zone): commits after it are not restored. Not with backup.',
  })
  @Matches(RFC3339_PATTERN, { message: 'time must be an RFC 3339 time with a zone, e.g. 2026-11-29T10:15:00Z' })
  @IsString({ message: 'time must be an RFC 3339 time' })
  @Optional()
  time?: string;

  @ApiPropertyOptional({ type: 'string', pattern: BACKUP_LABEL_PATTERN.source, description: "A backup's label (see the backups list): restore to its end. Not with time." })
  @Matches(BACKUP_LABEL_PATTERN, { message: 'backup must be a backup label, e.g. 20261129-101500F' })
  @IsString({ message: 'backup must be a backup label' })
  @Optional()
  backup?: string;
}
