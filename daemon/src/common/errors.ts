import type { ErrorBody, ErrorCode } from '../../../contract/api.js';

/** An error a service raises on purpose; its code decides the HTTP status. */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** Exhaustive: adding an error code without a status fails to compile. */
export function httpStatusFor(code: ErrorCode): number {
  switch (code) {
    case 'INVALID_REQUEST':
      return 400;
    case 'UNAUTHORIZED':
      return 401;
    case 'NOT_FOUND':
    case 'DB_NOT_FOUND':
    case 'VOLUME_NOT_FOUND':
      return 404;
    case 'METHOD_NOT_ALLOWED':
      return 405;
    case 'REQUEST_TIMEOUT':
      return 408;
    case 'PAYLOAD_TOO_LARGE':
      return 413;
    case 'URI_TOO_LONG':
      return 414;
    case 'UNSUPPORTED_MEDIA_TYPE':
      return 415;
    case 'HEADERS_TOO_LARGE':
      return 431;
    case 'DB_ALREADY_EXISTS':
    case 'DB_BUSY':
    case 'DB_STOPPED':
    case 'PORT_TAKEN':
    case 'NO_BACKUP':
    case 'NO_UPGRADE':
    case 'BACKUP_KEY_MISMATCH':
      return 409;
    case 'REGISTRY_LOCKED':
      return 423;
    case 'RESTORE_FAILED':
      return 422;
    case 'DUMP_FAILED':
      return 502;
    case 'INTERNAL':
    case 'BACKUP_FAILED':
      return 500;
    case 'DISK_FULL':
      return 507;
    case 'IMAGE_UNAVAILABLE':
      return 502;
    case 'DOCKER_UNAVAILABLE':
    case 'NO_FREE_PORT':
      return 503;
    case 'POSTGRES_NOT_READY':
      return 504;
    default: {
      const unhandled: never = code;
      throw new Error(`no HTTP status for error code ${String(unhandled)}`);
    }
  }
}

/**
 * The code for an error the HTTP stack raised itself (Fastify's router, body
 * parsers and limits, Nest's built-in exceptions), from its status alone.
 */
export function codeForHttpStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'UNAUTHORIZED';
    case 404:
      return 'NOT_FOUND';
    case 405:
      return 'METHOD_NOT_ALLOWED';
    case 408:
      return 'REQUEST_TIMEOUT';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 414:
      return 'URI_TOO_LONG';
    case 415:
      return 'UNSUPPORTED_MEDIA_TYPE';
    case 431:
      return 'HEADERS_TOO_LARGE';
    default:
      return status >= 400 && status < 500 ? 'INVALID_REQUEST' : 'INTERNAL';
  }
}

/** The one error body every failed request gets. */
export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}
