import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Inject } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { BODY_LIMIT_BYTES, type ErrorBody, type ErrorCode } from '../../../contract/api.js';
import { codeForHttpStatus, DomainError, errorBody, httpStatusFor } from './errors.js';
import { ROOT_LOGGER, type Logger } from './logger.js';

/** Maps anything thrown while serving a request to `{ error: { code, message } }`. */
@Catch()
export class GlobalExceptionFilter implements ExceptionFilter {
  private readonly logger: Logger;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'http' });
  }

  catch(exception: unknown, host: ArgumentsHost): void {
    const { status, body } = toErrorResponse(exception);
    if (status >= 500) this.logger.error({ err: describe(exception), code: body.error.code }, 'request failed');
    const reply = host.switchToHttp().getResponse();
    this.adapterHost.httpAdapter.reply(reply, body, status);
  }
}

function toErrorResponse(exception: unknown): { status: number; body: ErrorBody } {
  if (exception instanceof DomainError) {
    return respond(exception.code, exception.message, httpStatusFor(exception.code));
  }
  if (exception instanceof HttpException) {
    // Nest also hands us Fastify's own 4xx errors (bad JSON, body too large,
    // wrong media type) as HttpExceptions; each status has its code.
    const code = codeForHttpStatus(exception.getStatus());
    return respond(code, FRAMEWORK_MESSAGES[code] ?? messageOf(exception.getResponse()), httpStatusFor(code));
  }
  return respond('INTERNAL', 'internal error; see the daemon log (journalctl -u pgdbd)', 500);
}

/** Clearer words than Fastify's for the errors a client can fix. */
const FRAMEWORK_MESSAGES: Partial<Record<ErrorCode, string>> = {
  UNSUPPORTED_MEDIA_TYPE: 'a request body must be JSON, sent with Content-Type: application/json',
  PAYLOAD_TOO_LARGE: `the body is larger than ${BODY_LIMIT_BYTES} bytes`,
};

function respond(code: ErrorCode, message: string, status: number) {
  return { status, body: errorBody(code, message) };
}

function messageOf(response: string | object): string {
  if (typeof response === 'string') return response;
  const message = (response as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : 'request failed';
}

/** What is safe to log about an unexpected error: never request data. */
function describe(exception: unknown): Record<string, unknown> {
  if (exception instanceof Error) return { type: exception.name, message: exception.message, stack: exception.stack };
  return { value: String(exception) };
}
