import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsInt, IsNumber, IsString, Max, MaxLength, Min, ValidateIf } from 'class-validator';
import { CPUS_MAX, CPUS_MIN, LOGS_TAIL_DEFAULT, LOGS_TAIL_MAX, MEMORY_MB_MAX, MEMORY_MB_MIN, SIZE_GB_MAX, SIZE_GB_MIN, type ResizeRequest, type RotateRequest, type UpgradeRequest } from '../../../contract/api.js';

/** May be left out, but not sent as null (class-validator's IsOptional would let null pass). */
const Optional = () => ValidateIf((_object, value) => value !== undefined);
const FLAG_VALUES = ['true', 'false'];

@ApiSchema({ name: 'RotateRequest' })
export class RotateDto implements RotateRequest {
  @ApiPropertyOptional({ type: 'boolean', default: false, description: "Leave the tenant's open sessions alone (they are ended otherwise)." })
  @IsBoolean({ message: 'keep_sessions must be true or false' })
  @Optional()
  keep_sessions?: boolean;
}

// Checks run bottom-up and the pipe stops at the first failure: the type check sits lowest.
@ApiSchema({ name: 'ResizeRequest' })
export class ResizeDto implements ResizeRequest {
  @ApiPropertyOptional({ type: 'integer', minimum: MEMORY_MB_MIN, maximum: MEMORY_MB_MAX, description: "The container's new memory limit in MiB; no more than the server has. At least one of memory_mb, cpus and size_gb." })
  @Max(MEMORY_MB_MAX, { message: `memory_mb must be at most ${MEMORY_MB_MAX} MiB` })
  @Min(MEMORY_MB_MIN, { message: `memory_mb must be at least ${MEMORY_MB_MIN} MiB` })
  @IsInt({ message: 'memory_mb must be a whole number of MiB' })
  @Optional()
  memory_mb?: number;

  @ApiPropertyOptional({ type: 'number', minimum: CPUS_MIN, maximum: CPUS_MAX, description: "CPUs the container may use (e.g. 0.5, 2); no more than the server has." })
  @Max(CPUS_MAX, { message: `cpus must be at most ${CPUS_MAX}` })
  @Min(CPUS_MIN, { message: `cpus must be at least ${CPUS_MIN}` })
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'cpus must be a number, e.g. 0.5 or 2' })
  @Optional()
  cpus?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: SIZE_GB_MIN, maximum: SIZE_GB_MAX, description: "The volume's new size in GiB; it grows (online where the kernel allows), never shrinks." })
  @Max(SIZE_GB_MAX, { message: `size_gb must be at most ${SIZE_GB_MAX} GiB` })
  @Min(SIZE_GB_MIN, { message: `size_gb must be at least ${SIZE_GB_MIN} GiB` })
  @IsInt({ message: 'size_gb must be a whole number of GiB' })
  @Optional()
  size_gb?: number;
}

/** `GET /v1/db/{name}` query: nothing but `show_secrets`, exactly `true` or `false`. */
export class InfoQueryDto {
  @ApiPropertyOptional({ enum: FLAG_VALUES, description: 'Show the password in database_url; only `true` does.' })
  @IsIn(FLAG_VALUES, { message: 'show_secrets must be exactly true or false' })
  @Optional()
  show_secrets?: 'true' | 'false';
}

/** `POST /v1/db/{name}/import` query. */
export class ImportQueryDto {
  @ApiPropertyOptional({ enum: FLAG_VALUES, description: "Drop the archive's objects first where they exist (pg_restore --clean --if-exists); only `true` does." })
  @IsIn(FLAG_VALUES, { message: 'clean must be exactly true or false' })
  @Optional()
  clean?: 'true' | 'false';
}

/** `GET /v1/db/{name}/logs` query; tail and since are parsed by the contract's parseTail and parseSince. */
export class LogsQueryDto {
  @ApiPropertyOptional({
    type: 'string',
    pattern: '^([0-9]{1,4}|10000|all)$',
    description: `Lines of backlog, 0 to ${LOGS_TAIL_MAX}, or \`all\`; default ${LOGS_TAIL_DEFAULT}.`,
  })
  @MaxLength(16)
  @IsString({ message: 'tail may be given once' })
  @Optional()
  tail?: string;

  @ApiPropertyOptional({
    type: 'string',
    // The pattern documents the two plain forms; an RFC 3339 time in the past is accepted as well.
    pattern: '^([0-9]{1,9}[smhd]|[0-9]{1,12})$',
    description: 'A duration back from now (90s, 10m, 2h, 1d), Unix seconds, or an RFC 3339 time in the past.',
  })
  @MaxLength(64)
  @IsString({ message: 'since may be given once' })
  @Optional()
  since?: string;

  @ApiPropertyOptional({ enum: FLAG_VALUES, description: 'Keep the response open and send new lines as they come; only `true` does.' })
  @IsIn(FLAG_VALUES, { message: 'follow must be exactly true or false' })
  @Optional()
  follow?: 'true' | 'false';
}

@ApiSchema({ name: 'UpgradeRequest' })
export class UpgradeDto implements UpgradeRequest {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: 999, description: "The newer major to move to; one of the daemon's PGDB_POSTGRES_VERSIONS." })
  @Max(999, { message: 'version must be a Postgres major version such as 17' })
  @Min(1, { message: 'version must be a Postgres major version such as 17' })
  @IsInt({ message: 'version must be a whole number, a Postgres major version such as 17' })
  version!: number;
}

/** `POST .../upgrade/finish` and `.../upgrade/rollback` query: nothing but `delete_backups`, exactly `true` or `false`. */
export class UpgradeStepQueryDto {
  @ApiPropertyOptional({
    enum: FLAG_VALUES,
    description: "Delete the backups of the cluster the step removes too (they are kept until they expire otherwise, as a destroyed database's); only `true` does.",
  })
  @IsIn(FLAG_VALUES, { message: 'delete_backups must be exactly true or false' })
  @Optional()
  delete_backups?: 'true' | 'false';
}
