import { createHash, timingSafeEqual } from 'node:crypto';
import { CanActivate, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { DAEMON_CONFIG, type DaemonConfig } from './config.js';
import { DomainError } from './errors.js';

const PUBLIC_ROUTE = 'pgdb:public';
/** Marks a route that answers without a token (health checks). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Requires `Authorization: Bearer <PGDB_TOKEN>`, compared in constant time. */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  private readonly expected: Buffer;

  constructor(
    @Inject(DAEMON_CONFIG) config: DaemonConfig,
    private readonly reflector: Reflector,
  ) {
    this.expected = digest(config.token);
  }

  canActivate(context: ExecutionContext): boolean {
    const isPublic = this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [context.getHandler(), context.getClass()]);
    if (isPublic) return true;

    const header = context.switchToHttp().getRequest<FastifyRequest>().headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    // Hashing first makes the comparison independent of the presented length.
    if (match && timingSafeEqual(digest(match[1]), this.expected)) return true;
    throw new DomainError(
      'UNAUTHORIZED',
      match ? 'invalid token' : 'missing bearer token: send "Authorization: Bearer <PGDB_TOKEN>"',
    );
  }
}
