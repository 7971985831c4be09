/**
 * The response shapes of the contract (contract/api.ts) as classes that
 * @nestjs/swagger can read, and the documentation of each route. Each class
 * implements its contract type, so a field the contract gains or changes
 * fails to compile here; deploy.openapi.spec.ts checks the generated
 * document lists exactly the contract's fields.
 */
import { applyDecorators } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiDefaultResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiParam,
  ApiBody,
  ApiResponse,
  ApiSchema,
} from '@nestjs/swagger';
import {
  BACKUP_TARGET_KINDS,
  ERROR_CODES,
  type BackupTargetKind,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  type ContainerHealth,
  type ContainerState,
  type DeployResponse,
  type DestroyResponse,
  type DetachedVolume,
  type ErrorBody,
  type ErrorCode,
  type HealthResponse,
  type PoolSummary,
  type StatusItem,
  type StatusResponse,
  type TlsSummary,
  type AcmeSummary,
  type UnknownContainer,
} from '../../../contract/api.js';
import { DeployDto } from './deploy.dto.js';
import { BackupStateDto } from './backup-state.openapi.js';

const CONTAINER_STATES: ContainerState[] = ['running', 'stopped', 'restarting', 'missing', 'unknown', 'creating', 'destroying'];
const CONTAINER_HEALTH: ContainerHealth[] = ['healthy', 'unhealthy', 'starting', 'none'];

@ApiSchema({ name: 'DeployResponse' })
export class DeployResponseDto implements DeployResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'string', description: 'PGDB_PUBLIC_HOST' }) host: string;
  @ApiProperty({ type: 'integer' }) port: number;
  @ApiProperty({ type: 'string' }) db: string;
  @ApiProperty({ type: 'string' }) user: string;
  @ApiProperty({ type: 'string' }) password: string;
  @ApiProperty({ type: 'string', description: 'postgres://user:password@host:port/db?sslmode=...' }) database_url: string;
  @ApiProperty({ type: 'string', format: 'date-time' }) created_at: string;
  @ApiProperty({ type: 'integer' }) postgres_version: number;
  @ApiProperty({ type: 'integer', description: "The container's memory limit in MiB." }) memory_mb: number;
}

@ApiSchema({ name: 'StatusItem' })
export class StatusItemDto implements StatusItem {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'string' }) container_id: string;
  @ApiProperty({ type: 'string' }) volume_name: string;
  @ApiProperty({ type: 'string' }) host: string;
  @ApiProperty({ type: 'integer' }) host_port: number;
  @ApiProperty({ type: 'string' }) db: string;
  @ApiProperty({ type: 'string' }) user: string;
  @ApiProperty({ type: 'string', format: 'date-time' }) created_at: string;
  @ApiProperty({ type: 'integer' }) postgres_version: number;
  @ApiProperty({ type: 'integer' }) size_gb: number;
  @ApiProperty({ type: 'integer', nullable: true, description: 'null for a record from before memory limits' }) memory_mb: number | null;
  @ApiProperty({ type: 'integer', nullable: true, description: 'null when Docker could not say' }) used_bytes: number | null;
  @ApiProperty({ enum: CONTAINER_STATES }) state: ContainerState;
  @ApiProperty({ enum: CONTAINER_HEALTH }) health: ContainerHealth;
  @ApiPropertyOptional({ type: 'string', description: 'Only with show_secrets=true.' }) password?: string;
  @ApiPropertyOptional({ type: 'string', description: 'Only with show_secrets=true.' }) database_url?: string;
  @ApiPropertyOptional({ type: 'string', description: 'Why the daemon could not finish or repair this database; it retries with backoff.' })
  problem?: string;
  @ApiPropertyOptional({ type: () => BackupStateDto, description: 'Absent when backups are off or the database predates them.' })
  backup?: BackupStateDto;
}

@ApiSchema({ name: 'UnknownContainer' })
export class UnknownContainerDto implements UnknownContainer {
  @ApiProperty({ type: 'string' }) container_id: string;
  @ApiProperty({ type: 'string', description: 'Its pgdb.name label.' }) name: string;
  @ApiProperty({ type: 'string' }) container_name: string;
  @ApiProperty({ enum: CONTAINER_STATES }) state: ContainerState;
}

@ApiSchema({ name: 'DetachedVolume' })
export class DetachedVolumeDto implements DetachedVolume {
  @ApiProperty({ type: 'string' }) volume_name: string;
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'string', nullable: true }) created_at: string | null;
}

@ApiSchema({ name: 'PoolSummary' })
export class PoolSummaryDto implements PoolSummary {
  @ApiProperty({ type: 'integer' }) postgres_version: number;
  @ApiProperty({ type: 'integer', description: 'How many standbys the daemon keeps (PGDB_POOL).' }) target: number;
  @ApiProperty({ type: 'integer' }) ready: number;
  @ApiProperty({ type: 'integer' }) filling: number;
  @ApiPropertyOptional({ type: 'string', description: 'Why the last standby of this major could not be made (its image could not be pulled or built); absent while the pool fills.' }) problem?: string;
}

@ApiSchema({ name: 'BackupLocation' })
export class BackupLocationDto {
  @ApiProperty({ enum: BACKUP_TARGET_KINDS }) kind: BackupTargetKind;
  @ApiProperty({ type: 'string' }) location: string;
  @ApiProperty({ type: 'string', description: 'What this location protects against' }) note: string;
}

@ApiSchema({ name: 'AcmeSummary' })
export class AcmeSummaryDto implements AcmeSummary {
  @ApiProperty({ type: 'string' }) directory: string;
  @ApiProperty({ type: 'string' }) identifier: string;
  @ApiProperty({ type: 'string', nullable: true }) profile: string | null;
  @ApiProperty({ enum: ['issued', 'pending', 'fallback'] }) state: 'issued' | 'pending' | 'fallback';
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) not_after: string | null;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) renew_at: string | null;
  @ApiProperty({ type: 'string', nullable: true, description: 'Why the last ACME attempt failed; null after a success.' }) last_error: string | null;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) last_error_at: string | null;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) next_attempt_at: string | null;
}

@ApiSchema({ name: 'TlsSummary' })
export class TlsSummaryDto implements TlsSummary {
  @ApiProperty({ enum: ['own-ca', 'operator', 'acme'] }) source: 'own-ca' | 'operator' | 'acme';
  @ApiProperty({ type: 'boolean' }) api: boolean;
  @ApiProperty({ type: 'string' }) ca_fingerprint: string;
  @ApiProperty({ type: 'string', required: false, description: 'SHA-256 of the DER public key the API serves with (what pgdb pins); absent over plain HTTP.' })
  api_key_fingerprint?: string;
  @ApiProperty({ type: AcmeSummaryDto, required: false, description: 'Present when PGDB_TLS=acme.' }) acme?: AcmeSummaryDto;
}

@ApiSchema({ name: 'StatusResponse' })
export class StatusResponseDto implements StatusResponse {
  @ApiProperty({ type: [StatusItemDto] }) items: StatusItemDto[];
  @ApiProperty({ type: [DetachedVolumeDto] }) detached_volumes: DetachedVolumeDto[];
  @ApiProperty({ type: [UnknownContainerDto], description: 'Containers labelled as this daemon\'s that no record explains; never removed by pgdb.' })
  unknown_containers: UnknownContainerDto[];
  @ApiProperty({ type: [PoolSummaryDto], description: 'The warm pool of each Postgres major.' }) pool: PoolSummaryDto[];
  @ApiProperty({ type: BackupLocationDto, nullable: true, description: 'Where backups go; null when backups are off.' }) backups: BackupLocationDto | null;
  @ApiProperty({ type: TlsSummaryDto, required: false, description: 'The certificates served, as in GET /v1/health.' }) tls?: TlsSummaryDto;
}

@ApiSchema({ name: 'DestroyResponse' })
export class DestroyResponseDto implements DestroyResponse {
  @ApiProperty({ type: 'boolean', enum: [true] }) ok: true;
  @ApiProperty({ type: 'boolean', description: 'Whether its backups are kept until they expire (restore can bring it back)' }) backups_kept: boolean;
}

@ApiSchema({ name: 'HealthResponse' })
export class HealthResponseDto implements HealthResponse {
  @ApiProperty({ enum: ['ok', 'degraded'] }) status: 'ok' | 'degraded';
  @ApiProperty({ enum: ['reachable', 'unreachable'] }) docker: 'reachable' | 'unreachable';
  @ApiProperty({ type: 'string' }) version: string;
  @ApiProperty({ type: TlsSummaryDto }) tls: TlsSummaryDto;
  @ApiProperty({ type: [String], description: 'Why the status is degraded; empty when ok' }) problems: string[];
}

@ApiSchema({ name: 'ErrorDetail' })
export class ErrorDetailDto {
  @ApiProperty({ enum: ERROR_CODES }) code: ErrorCode;
  @ApiProperty({ type: 'string' }) message: string;
}

@ApiSchema({ name: 'ErrorBody' })
export class ErrorBodyDto implements ErrorBody {
  @ApiProperty({ type: ErrorDetailDto }) error: ErrorDetailDto;
}

export const CaDocs = () =>
  applyDecorators(
    ApiOperation({ summary: "The daemon's certificate authority, PEM, for clients to pin (no token)" }),
    ApiResponse({ status: 200, description: 'PEM certificate', content: { 'application/x-pem-file': { schema: { type: 'string' } } } }),
    ApiErrors(),
  );

export const ApiCertificateDocs = () =>
  applyDecorators(
    ApiOperation({ summary: "The own CA's certificate for the API's key, PEM (no token): how a client pinned to the CA recognises the API's key behind an ACME certificate" }),
    ApiResponse({ status: 200, description: 'PEM certificate', content: { 'application/x-pem-file': { schema: { type: 'string' } } } }),
    ApiErrors([404, "NOT_FOUND: the API speaks plain HTTP, or serves the operator's certificate, which no CA of this daemon vouches for"]),
  );

/** The documented errors of a route, each in the one error shape; `default` covers any other. */
function ApiErrors(...statuses: Array<[number, string]>) {
  return applyDecorators(
    ...statuses.map(([status, description]) => ApiResponse({ status, description, type: ErrorBodyDto })),
    ApiDefaultResponse({ description: 'Any other error, e.g. INTERNAL (500)', type: ErrorBodyDto }),
  );
}

const BAD_REQUEST: [number, string] = [400, 'INVALID_REQUEST: a bad parameter, an unknown query parameter, or a body where none belongs'];
const UNAUTHORIZED: [number, string] = [401, 'UNAUTHORIZED: missing or wrong bearer token'];
const REGISTRY_LOCKED: [number, string] = [423, 'REGISTRY_LOCKED'];
const DOCKER_UNAVAILABLE: [number, string] = [503, 'DOCKER_UNAVAILABLE: the engine is unreachable or did not answer in time'];

export const DeployDocs = () =>
  applyDecorators(
    ApiOperation({ summary: 'Create a database and return its credentials' }),
    ApiBearerAuth(),
    ApiBody({ type: DeployDto, required: false, description: 'All fields optional; no body at all is the same as {}.' }),
    ApiResponse({ status: 201, description: 'Postgres accepts the returned credentials', type: DeployResponseDto }),
    ApiErrors(
      [400, 'INVALID_REQUEST: bad field, unknown field, malformed JSON, not a JSON object, nested too deep'],
      UNAUTHORIZED,
      [404, 'VOLUME_NOT_FOUND: from_volume names no pgdb volume of this server'],
      [409, 'DB_ALREADY_EXISTS'],
      [413, 'PAYLOAD_TOO_LARGE: body over 16 KiB'],
      [415, 'UNSUPPORTED_MEDIA_TYPE: a body that is not application/json'],
      REGISTRY_LOCKED,
      [502, 'IMAGE_UNAVAILABLE'],
      DOCKER_UNAVAILABLE,
      [504, 'POSTGRES_NOT_READY'],
      [507, 'DISK_FULL'],
    ),
  );

export const StatusDocs = () =>
  applyDecorators(
    ApiOperation({ summary: 'List databases with live state' }),
    ApiBearerAuth(),
    ApiResponse({ status: 200, type: StatusResponseDto }),
    ApiErrors(BAD_REQUEST, UNAUTHORIZED, REGISTRY_LOCKED, DOCKER_UNAVAILABLE),
  );

export const DestroyDocs = () =>
  applyDecorators(
    ApiOperation({ summary: 'Remove a database (its volume too, unless keep_data=true)' }),
    ApiBearerAuth(),
    ApiParam({ name: 'name', schema: { type: 'string', pattern: NAME_PATTERN.source, minLength: 1, maxLength: NAME_MAX_LENGTH } }),
    ApiResponse({ status: 200, type: DestroyResponseDto }),
    ApiErrors(
      BAD_REQUEST,
      UNAUTHORIZED,
      [404, 'DB_NOT_FOUND'],
      [409, 'DB_ALREADY_EXISTS: the database is still being created'],
      [414, 'URI_TOO_LONG: a name far longer than any valid one'],
      REGISTRY_LOCKED,
      DOCKER_UNAVAILABLE,
    ),
  );

export const HealthDocs = () =>
  applyDecorators(
    ApiOperation({
      summary: 'Whether the daemon and its Docker engine answer',
      description: 'Without a token the answer has `status` and `tls` only; with the token (a wrong one is 401), all of the fields below.',
    }),
    ApiResponse({ status: 200, type: HealthResponseDto }),
    ApiResponse({ status: 503, description: 'Docker did not answer within 3 s', type: HealthResponseDto }),
    ApiErrors(),
  );
