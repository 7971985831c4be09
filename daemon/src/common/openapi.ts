import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject, type SchemaObject } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { availableParallelism, totalmem } from 'node:os';
import { CPUS_MAX, MEMORY_MB_MAX, ROUTES } from '../../../contract/api.js';
import { DAEMON_CONFIG, type DaemonConfig } from './config.js';
import { DAEMON_VERSION } from './version.js';

/** The OpenAPI 3 document of the app's routes, generated from its controllers and DTOs. */
export function buildOpenApiDocument(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('pgdbd')
    .setDescription('One-command PostgreSQL databases on a server you own. Every error answers { "error": { "code", "message" } }.')
    .setVersion(DAEMON_VERSION)
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', bearerFormat: 'PGDB_TOKEN', description: 'The PGDB_TOKEN the daemon was started with' },
      'bearer',
    )
    .build();
  const document = SwaggerModule.createDocument(app, config);
  const { versions } = app.get<DaemonConfig>(DAEMON_CONFIG);
  for (const schema of Object.values(document.components?.schemas ?? {}) as SchemaObject[]) {
    // The ValidationPipe rejects unknown fields (forbidNonWhitelisted), and
    // responses carry exactly their contract type: every object is closed.
    if (schema.type === 'object') schema.additionalProperties = false;
  }
  // Which majors a deploy may ask for is this daemon's configuration, and
  // how much memory it may ask for is this machine's.
  const request = (document.components?.schemas?.DeployRequest as SchemaObject | undefined)?.properties;
  const version = request?.version as SchemaObject | undefined;
  if (version) version.enum = versions;
  const upgradeVersion = (document.components?.schemas?.UpgradeRequest as SchemaObject | undefined)?.properties?.version as SchemaObject | undefined;
  if (upgradeVersion) upgradeVersion.enum = versions;
  const hostMb = Math.min(MEMORY_MB_MAX, Math.floor(totalmem() / (1024 * 1024)));
  for (const name of ['DeployRequest', 'ResizeRequest']) {
    const properties = (document.components?.schemas?.[name] as SchemaObject | undefined)?.properties;
    const memory = properties?.memory_mb as SchemaObject | undefined;
    if (memory) memory.maximum = hostMb;
  }
  const resizeSchema = document.components?.schemas?.ResizeRequest as SchemaObject | undefined;
  // memory_mb, cpus or both.
  if (resizeSchema) resizeSchema.minProperties = 1;
  const cpus = resizeSchema?.properties?.cpus as SchemaObject | undefined;
  if (cpus) cpus.maximum = Math.min(CPUS_MAX, availableParallelism());
  return document;
}

/** Serves the document, built once at start, at ROUTES.openapi without a token. */
export function serveOpenApi(app: NestFastifyApplication): void {
  const document = buildOpenApiDocument(app);
  const fastify = app.getHttpAdapter().getInstance() as FastifyInstance;
  fastify.get(ROUTES.openapi, { config: { public: true } }, async () => document);
}
