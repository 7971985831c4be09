import 'reflect-metadata';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { BODY_LIMIT_BYTES } from './contract/api.js';
import type { Logger } from './common/logger.js';

/** `https`: the API's key and certificate when it serves HTTPS (see TlsService). */
export function createAdapter(logger: Logger, https?: { key: string; cert: string }): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: BODY_LIMIT_BYTES,
    loggerInstance: logger.child({ module: 'http' }),
    ...(https ? { https } : {}),
  });
}

export function configureApp(app: NestFastifyApplication): NestFastifyApplication {
  app.enableShutdownHooks();
  return app;
}
