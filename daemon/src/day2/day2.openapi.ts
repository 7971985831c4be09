/**
 * The lifecycle routes' response shapes as classes @nestjs/swagger can
 * read (each implements its contract type, so a changed field fails to
 * compile), and the documentation of each route.
 */
import { applyDecorators } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiDefaultResponse, ApiOperation, ApiParam, ApiProperty, ApiResponse, ApiSchema } from '@nestjs/swagger';
import {
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  type ContainerState,
  type InfoResponse,
  type LifecycleAction,
  type LifecycleResponse,
  type ImportResponse,
  type UpgradeFinishResponse,
  type UpgradeResponse,
  type UpgradeRollbackResponse,
  type ResizeResponse,
  type RotateResponse,
  type UrlResponse,
} from '../../../contract/api.js';
import { ErrorBodyDto } from '../deploy/deploy.openapi.js';
import { BackupStateDto } from '../deploy/backup-state.openapi.js';
import { EXPORT_TRAILER } from '../../../contract/api.js';
import { ResizeDto, RotateDto, UpgradeDto } from './day2.dto.js';

const CONTAINER_STATES: ContainerState[] = ['running', 'stopped', 'restarting', 'missing', 'unknown', 'creating', 'destroying'];
const nullableInteger = (description: string) => ApiProperty({ type: 'integer', nullable: true, description });

@ApiSchema({ name: 'InfoLimits' })
class InfoLimitsDto {
  @ApiProperty({ type: 'integer', nullable: true }) memory_mb: number | null;
  @ApiProperty({ type: 'number', nullable: true, description: 'null: no CPU limit' }) cpus: number | null;
  @ApiProperty({ type: 'integer' }) size_gb: number;
  @ApiProperty({ type: 'boolean', description: "Whether the volume's file system holds the database to size_gb (false: a volume from before sizes, or PGDB_SIZE_LIMITS=off)" }) size_enforced: boolean;
}

@ApiSchema({ name: 'InfoResponse' })
export class InfoResponseDto implements InfoResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ enum: CONTAINER_STATES }) state: ContainerState;
  @ApiProperty({ type: 'integer' }) postgres_version: number;
  @ApiProperty({ type: 'integer', nullable: true, description: "After an upgrade, the old cluster's major until upgrade/finish or rollback" }) previous_version: number | null;
  @ApiProperty({ type: 'string', nullable: true, description: 'SHOW server_version; null unless running' }) server_version: string | null;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) started_at: string | null;
  @nullableInteger('Seconds since Postgres started') uptime_seconds: number | null;
  @nullableInteger('Bytes of all the cluster\'s databases') data_bytes: number | null;
  @nullableInteger('Free bytes of the file system under the data volume') volume_free_bytes: number | null;
  @nullableInteger("Client connections, the daemon's own not counted") connections: number | null;
  @nullableInteger('max_connections') max_connections: number | null;
  @ApiProperty({ type: 'number', nullable: true, description: 'Age of the longest-running active query; 0 when none runs' }) longest_query_seconds: number | null;
  @ApiProperty({ type: InfoLimitsDto }) limits: InfoLimitsDto;
  @ApiProperty({ type: 'string' }) host: string;
  @ApiProperty({ type: 'integer' }) port: number;
  @ApiProperty({ type: 'string' }) db: string;
  @ApiProperty({ type: 'string' }) user: string;
  @ApiProperty({ type: 'string', description: 'The password is **** unless show_secrets=true' }) database_url: string;
  @ApiProperty({ type: 'string', format: 'date-time' }) created_at: string;
  @ApiProperty({ type: () => BackupStateDto, nullable: true, description: 'null when backups are off or the database predates them' }) backups: BackupStateDto | null;
}

@ApiSchema({ name: 'UrlResponse' })
export class UrlResponseDto implements UrlResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'string' }) database_url: string;
}

@ApiSchema({ name: 'LifecycleResponse' })
export class LifecycleResponseDto implements LifecycleResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ enum: ['stop', 'start', 'restart'] }) action: LifecycleAction;
  @ApiProperty({ enum: CONTAINER_STATES }) state: ContainerState;
  @ApiProperty({ type: 'integer' }) port: number;
  @ApiProperty({ type: 'boolean', description: 'False when it already was in that state' }) changed: boolean;
}

@ApiSchema({ name: 'RotateResponse' })
export class RotateResponseDto implements RotateResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'string' }) password: string;
  @ApiProperty({ type: 'string' }) database_url: string;
  @ApiProperty({ type: 'integer' }) sessions_ended: number;
}

@ApiSchema({ name: 'ResizeResponse' })
export class ResizeResponseDto implements ResizeResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'integer', nullable: true }) memory_mb: number | null;
  @ApiProperty({ type: 'integer', nullable: true }) previous_memory_mb: number | null;
  @ApiProperty({ type: 'number', nullable: true, description: 'null: no CPU limit' }) cpus: number | null;
  @ApiProperty({ type: 'number', nullable: true }) previous_cpus: number | null;
  @ApiProperty({ type: 'integer' }) size_gb: number;
  @ApiProperty({ type: 'integer' }) previous_size_gb: number;
  @ApiProperty({ type: 'boolean', description: "Whether the volume's file system holds the database to size_gb" }) size_enforced: boolean;
  @ApiProperty({ type: 'boolean', description: 'Whether Postgres restarted to grow its volume (the kernel refused to grow it while mounted)' }) restarted: boolean;
}

@ApiSchema({ name: 'ImportResponse' })
export class ImportResponseDto implements ImportResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'integer', description: 'Bytes of the archive received' }) bytes: number;
  @ApiProperty({ type: 'number' }) seconds: number;
}

@ApiSchema({ name: 'UpgradeResponse' })
export class UpgradeResponseDto implements UpgradeResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'integer' }) from_version: number;
  @ApiProperty({ type: 'integer' }) to_version: number;
  @ApiProperty({ type: 'integer' }) port: number;
  @ApiProperty({ type: 'string' }) database_url: string;
  @ApiProperty({ type: 'number', description: "Seconds the database refused its role's connections" }) downtime_seconds: number;
  @ApiProperty({ type: 'integer', description: 'User tables whose row counts were checked' }) tables: number;
  @ApiProperty({ type: 'integer' }) rows: number;
}

@ApiSchema({ name: 'UpgradeFinishResponse' })
export class UpgradeFinishResponseDto implements UpgradeFinishResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'integer' }) postgres_version: number;
  @ApiProperty({ type: 'string' }) removed_container: string;
  @ApiProperty({ type: 'string' }) removed_volume: string;
  @ApiProperty({ type: 'boolean', description: "Whether the old cluster's backups are kept until they expire (not with delete_backups=true)" }) backups_kept: boolean;
}

@ApiSchema({ name: 'UpgradeRollbackResponse' })
export class UpgradeRollbackResponseDto implements UpgradeRollbackResponse {
  @ApiProperty({ type: 'string' }) name: string;
  @ApiProperty({ type: 'integer' }) postgres_version: number;
  @ApiProperty({ type: 'integer' }) port: number;
  @ApiProperty({ type: 'string' }) removed_volume: string;
  @ApiProperty({ type: 'boolean', description: "Whether the newer cluster's backups are kept until they expire (not with delete_backups=true)" }) backups_kept: boolean;
}

function ApiErrors(...statuses: Array<[number, string]>) {
  return applyDecorators(
    ...statuses.map(([status, description]) => ApiResponse({ status, description, type: ErrorBodyDto })),
    ApiDefaultResponse({ description: 'Any other error, e.g. INTERNAL (500)', type: ErrorBodyDto }),
  );
}

const NAME = () => ApiParam({ name: 'name', schema: { type: 'string', pattern: NAME_PATTERN.source, minLength: 1, maxLength: NAME_MAX_LENGTH } });
const COMMON: Array<[number, string]> = [
  [400, 'INVALID_REQUEST: a bad name, parameter or body'],
  [401, 'UNAUTHORIZED: missing or wrong bearer token'],
  [404, 'DB_NOT_FOUND'],
];
const BUSY: [number, string] = [409, 'DB_BUSY: being created or destroyed, or another operation on it runs'];
const DOCKER: [number, string] = [503, 'DOCKER_UNAVAILABLE'];

const route = (summary: string, response: ApiResponseType, ...errors: Array<[number, string]>) =>
  applyDecorators(ApiOperation({ summary }), ApiBearerAuth(), NAME(), ApiResponse({ status: 200, ...response }), ApiErrors(...COMMON, ...errors));
type ApiResponseType = Parameters<typeof ApiResponse>[0];

export const InfoDocs = () => route('What pgdb info shows: version, uptime, sizes, connections, limits', { type: InfoResponseDto }, BUSY, DOCKER);
export const UrlDocs = () => route("The database's URL, with its password", { type: UrlResponseDto }, BUSY);
export const LogsDocs = () =>
  route(
    "The container's log, streamed (at most 16 MiB per request)",
    { description: 'The log as it comes', content: { 'text/plain': { schema: { type: 'string' } } } },
    BUSY,
    [409, 'DB_STOPPED: stopped and its container is gone'],
    DOCKER,
  );
export const Day2Docs = (action: LifecycleAction) =>
  route(
    { stop: 'Stop the database; it stays stopped until start', start: 'Start a stopped database on its port', restart: 'Restart the database' }[action],
    { type: LifecycleResponseDto },
    BUSY,
    [409, 'PORT_TAKEN: another program holds its port (start, restart)'],
    DOCKER,
    [504, 'POSTGRES_NOT_READY'],
  );
export const RotateDocs = () =>
  applyDecorators(
    route('A new password for the tenant; the old one stops working at once', { type: RotateResponseDto }, BUSY, [409, 'DB_STOPPED'], DOCKER),
    ApiBody({ type: RotateDto, required: false }),
  );
export const ResizeDocs = () =>
  applyDecorators(route("Change the running container's memory and CPU limits", { type: ResizeResponseDto }, BUSY, DOCKER), ApiBody({ type: ResizeDto }));
export const ExportDocs = () =>
  route(
    'A pg_dump -Fc archive of the database, streamed',
    {
      description:
        `The archive as pg_dump writes it. A complete one ends with the HTTP trailer ${EXPORT_TRAILER}: complete; ` +
        'when pg_dump fails after the first byte, the connection is closed without the final chunk.',
      content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
    },
    BUSY,
    [409, 'DB_STOPPED'],
    [502, 'DUMP_FAILED: pg_dump failed before sending anything'],
    DOCKER,
  );
export const ImportDocs = () =>
  applyDecorators(
    route(
      'Restore a pg_dump -Fc archive into the database, in one transaction',
      { type: ImportResponseDto },
      [409, 'DB_BUSY or DB_STOPPED'],
      [415, 'UNSUPPORTED_MEDIA_TYPE: the body must be application/octet-stream'],
      [422, 'RESTORE_FAILED: pg_restore failed on an object, or the archive was cut short; nothing was changed'],
      DOCKER,
    ),
    ApiConsumes('application/octet-stream'),
    ApiBody({
      required: true,
      description: 'A pg_dump custom-format archive (it starts with PGDMP); anything else is refused with 400.',
      schema: { type: 'string', format: 'binary' },
    }),
  );
export const UpgradeDocs = () =>
  applyDecorators(
    route(
      'Move the database to a newer Postgres major (dump and restore into a new container and volume, then switch)',
      { type: UpgradeResponseDto },
      [409, 'DB_BUSY, DB_STOPPED, or NO_UPGRADE: already at that major, a downgrade, or an old cluster still kept'],
      [422, 'RESTORE_FAILED: the copy failed or row counts differ; rolled back'],
      [502, 'DUMP_FAILED or IMAGE_UNAVAILABLE; rolled back'],
      DOCKER,
      [504, 'POSTGRES_NOT_READY'],
    ),
    ApiBody({ type: UpgradeDto }),
  );
export const UpgradeFinishDocs = () =>
  route("Remove the old cluster an upgrade kept", { type: UpgradeFinishResponseDto }, [409, 'DB_BUSY, or NO_UPGRADE: no old cluster is kept'], DOCKER);
export const UpgradeRollbackDocs = () =>
  route('Switch back to the cluster an upgrade kept; the newer one is removed', { type: UpgradeRollbackResponseDto }, [409, 'DB_BUSY, or NO_UPGRADE: no old cluster is kept'], DOCKER, [504, 'POSTGRES_NOT_READY']);
