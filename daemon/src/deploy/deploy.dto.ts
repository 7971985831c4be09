import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, MinLength } from 'class-validator';
import {
  MEMORY_MB_MAX,
  MEMORY_MB_MIN,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  SIZE_GB_MAX,
  SIZE_GB_MIN,
  type DeployRequest,
} from '../contract/api.js';

// class-validator runs a property's checks bottom-up and the pipe stops at the
// first failure, so the type check sits lowest: "10" is reported as not a
// number, not as out of range.
export class DeployDto implements DeployRequest {
  @Matches(NAME_PATTERN, {
    message: 'name may contain only lowercase letters, digits and dashes, must start with a letter and must not end with a dash',
  })
  @MaxLength(NAME_MAX_LENGTH)
  @MinLength(1)
  @IsString()
  @IsOptional()
  name?: string;

  @Max(SIZE_GB_MAX)
  @Min(SIZE_GB_MIN)
  @IsInt({ message: 'size_gb must be a whole number of gigabytes' })
  @IsOptional()
  size_gb?: number;

  @IsInt({ message: 'version must be a Postgres major version number, e.g. 17' })
  @IsOptional()
  version?: number;

  @Max(MEMORY_MB_MAX)
  @Min(MEMORY_MB_MIN)
  @IsInt({ message: 'memory_mb must be a whole number of MiB' })
  @IsOptional()
  memory_mb?: number;

  @Matches(/^pgdb-[a-z0-9-]+$/, { message: 'from_volume must name a pgdb volume, e.g. pgdb-shop-x1y2z3' })
  @MaxLength(128)
  @IsString()
  @IsOptional()
  from_volume?: string;
}
