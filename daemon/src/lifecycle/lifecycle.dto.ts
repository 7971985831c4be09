import { IsBoolean, IsInt, IsOptional, Max, Min } from 'class-validator';
import { MEMORY_MB_MAX, MEMORY_MB_MIN, type ResizeRequest, type RotateRequest } from '../contract/api.js';

export class RotateDto implements RotateRequest {
  @IsBoolean({ message: 'keep_sessions must be true or false' })
  @IsOptional()
  keep_sessions?: boolean;
}

// Checks run bottom-up and the pipe stops at the first failure: the type check sits lowest.
export class ResizeDto implements ResizeRequest {
  @Max(MEMORY_MB_MAX, { message: `memory_mb must be at most ${MEMORY_MB_MAX} MiB` })
  @Min(MEMORY_MB_MIN, { message: `memory_mb must be at least ${MEMORY_MB_MIN} MiB` })
  @IsInt({ message: 'memory_mb must be a whole number of MiB' })
  memory_mb!: number;
}
