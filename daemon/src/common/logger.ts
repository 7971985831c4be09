import type { LoggerService } from '@nestjs/common';
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';
export const ROOT_LOGGER = Symbol('ROOT_LOGGER');

/** JSON lines on stdout (the journal under systemd); secrets are redacted by path as a last line of defence. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'pgdbd' },
    redact: {
      paths: ['req.headers.authorization', 'password', '*.password', 'database_url', '*.database_url', 'token'],
      censor: '[redacted]',
    },
  });
}

/** Routes Nest's own framework messages into the same pino logger. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string) {
    this.logger.info({ module: context }, String(message));
  }
  error(message: unknown, stack?: string, context?: string) {
    this.logger.error({ module: context, stack }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ module: context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.logger.debug({ module: context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ module: context }, String(message));
  }
}
