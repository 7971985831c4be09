import type { ErrorCode } from '../contract/api.js';

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
      return 404;
    case 'DB_ALREADY_EXISTS':
    case 'DB_BUSY':
      return 409;
    case 'REGISTRY_LOCKED':
      return 423;
    case 'INTERNAL':
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
