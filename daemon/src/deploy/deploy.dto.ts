import { ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, MinLength, ValidateIf } from 'class-validator';
import {
  MEMORY_MB_MAX,
  MEMORY_MB_MIN,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  SIZE_GB_MAX,
  SIZE_GB_MIN,
  type DeployRequest,
} from '../../../contract/api.js';

const FROM_VOLUME_PATTERN = /^pgdb-[a-z0-9-]+$/;

/**
 * An optional field may be left out, but not sent as null: the contract's
 * `name?: string` has no null (class-validator's IsOptional would let it pass).
 */
const Optional = () => ValidateIf((_object, value) => value !== undefined);

// class-validator runs a property's checks bottom-up and the pipe stops at the
// first failure, so the type check sits lowest: "10" is reported as not a
// number, not as out of range. The @Api* decorators feed the OpenAPI document.
@ApiSchema({ name: 'DeployRequest' })
export class DeployDto implements DeployRequest {
  @ApiPropertyOptional({
    type: 'string',
    pattern: NAME_PATTERN.source,
    minLength: 1,
    maxLength: NAME_MAX_LENGTH,
    description: 'Lowercase letters, digits and inner dashes, starting with a letter; generated (db-xxxxxxxx) when absent.',
    example: 'mydb',
  })
  @Matches(NAME_PATTERN, {
    message: 'name may contain only lowercase letters, digits and dashes, must start with a letter and must not end with a dash',
  })
  @MaxLength(NAME_MAX_LENGTH)
  @MinLength(1)
  @IsString()
  @Optional()
  name?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: SIZE_GB_MIN, maximum: SIZE_GB_MAX, description: 'Recorded size in GB; default 10.' })
  @Max(SIZE_GB_MAX)
  @Min(SIZE_GB_MIN)
  @IsInt({ message: 'size_gb must be a whole number of gigabytes' })
  @Optional()
  size_gb?: number;

  @ApiPropertyOptional({ type: 'integer', description: "A Postgres major version among the daemon's PGDB_POSTGRES_VERSIONS." })
  @IsInt({ message: 'version must be a Postgres major version number, e.g. 17' })
  @Optional()
  version?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: MEMORY_MB_MIN,
    maximum: MEMORY_MB_MAX,
    description: "The container's memory limit in MiB; the daemon's PGDB_DEFAULT_MEMORY_MB when absent.",
  })
  @Max(MEMORY_MB_MAX)
  @Min(MEMORY_MB_MIN)
  @IsInt({ message: 'memory_mb must be a whole number of MiB' })
  @Optional()
  memory_mb?: number;

  @ApiPropertyOptional({
    type: 'string',
    pattern: FROM_VOLUME_PATTERN.source,
    maxLength: 128,
    description: 'A kept pgdb volume (status lists them as detached) to take over, with new credentials.',
  })
  @Matches(FROM_VOLUME_PATTERN, { message: 'from_volume must name a pgdb volume, e.g. pgdb-shop-x1y2z3' })
  @MaxLength(128)
  @IsString()
  @Optional()
  from_volume?: string;
}

const FLAG_VALUES = ['true', 'false'];

/** `GET /v1/status` query: nothing but `show_secrets`, exactly `true` or `false`. */
export class StatusQueryDto {
  @ApiPropertyOptional({ enum: FLAG_VALUES, description: 'Include password and database_url; only `true` does.' })
  @IsIn(FLAG_VALUES, { message: 'show_secrets must be exactly true or false' })
  @IsOptional()
  show_secrets?: 'true' | 'false';
}

/** `DELETE /v1/db/{name}` query: nothing but `keep_data`, exactly `true` or `false`. */
export class DestroyQueryDto {
  @ApiPropertyOptional({ enum: FLAG_VALUES, description: 'Keep the data volume; only `true` does.' })
  @IsIn(FLAG_VALUES, { message: 'keep_data must be exactly true or false' })
  @IsOptional()
  keep_data?: 'true' | 'false';

  @ApiPropertyOptional({ enum: FLAG_VALUES, description: "Delete the database's backups too (they are kept until they expire otherwise, so that restore can undo the destroy); only `true` does." })
  @IsIn(FLAG_VALUES, { message: 'delete_backups must be exactly true or false' })
  @IsOptional()
  delete_backups?: 'true' | 'false';
}
