import 'reflect-metadata';
import type { NestApplicationOptions } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { BODY_LIMIT_BYTES } from '../../contract/api.js';
import { configureHttpEdge, HTTP_LIMITS, HTTP_SERVER_OPTIONS } from './common/http-edge.js';
import type { Logger } from './common/logger.js';
import { serveOpenApi } from './common/openapi.js';

/** `https`: the API's key and certificate when it serves HTTPS (see TlsService). */
export function createAdapter(logger: Logger, https?: { key: string; cert: string }): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: BODY_LIMIT_BYTES,
    loggerInstance: logger.child({ module: 'http' }),
    ...HTTP_SERVER_OPTIONS,
    // Node's https.Server takes its server options (the timeout check interval) with the TLS ones.
    // A client that opens a connection and never finishes the handshake is dropped after a few seconds.
    ...(https ? { https: { ...https, ...HTTP_SERVER_OPTIONS.http, handshakeTimeout: HTTP_LIMITS.tlsHandshakeTimeoutMs } } : {}),
  });
}

/** Options for NestFactory.create: the HTTP edge installs the only body parser (JSON). */
export const APP_OPTIONS: NestApplicationOptions = { bodyParser: false };

export function configureApp(app: NestFastifyApplication): NestFastifyApplication {
  app.enableShutdownHooks();
  configureHttpEdge(app);
  serveOpenApi(app);
  return app;
}
