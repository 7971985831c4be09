import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, MinLength } from 'class-validator';
import { NAME_MAX_LENGTH, NAME_PATTERN, SIZE_GB_MAX, SIZE_GB_MIN, type DeployRequest } from '../contract/api.js';

export class DeployDto implements DeployRequest {
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(NAME_MAX_LENGTH)
  @Matches(NAME_PATTERN, {
    message: 'name may contain only lowercase letters, digits and dashes, must start with a letter and must not end with a dash',
  })
  name?: string;

  @IsOptional()
  @IsInt({ message: 'size_gb must be a whole number of gigabytes' })
  @Min(SIZE_GB_MIN)
  @Max(SIZE_GB_MAX)
  size_gb?: number;

  @IsOptional()
  @IsInt({ message: 'version must be a Postgres major version number, e.g. 17' })
  version?: number;
}
