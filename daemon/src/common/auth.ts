import { createHash, timingSafeEqual } from 'node:crypto';
import { applyDecorators } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { ApiSecurity } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { DomainError } from './errors.js';

/**
 * Marks a route that answers without a token (health, the CA, the OpenAPI
 * document). It lands in the Fastify route's `config`, where the
 * authentication hook (see http-edge.ts) reads it before the body is parsed,
 * and in the OpenAPI document as "no credentials needed".
 */
export const Public = () => applyDecorators(RouteConfig({ public: true }), ApiSecurity({}));

/** Whether the matched route is public; false for an unmatched URL. */
export function isPublicRoute(request: FastifyRequest): boolean {
  return (request.routeOptions.config as { public?: boolean } | undefined)?.public === true;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Checks `Authorization: Bearer <PGDB_TOKEN>` in constant time, throwing
 * UNAUTHORIZED otherwise. Hashing first makes the comparison independent of
 * the presented length.
 */
export function bearerAuthenticator(token: string): (request: FastifyRequest) => void {
  const expected = digest(token);
  return (request) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match && timingSafeEqual(digest(match[1]), expected)) return;
    throw new DomainError(
      'UNAUTHORIZED',
      match ? 'invalid token' : 'missing bearer token: send "Authorization: Bearer <PGDB_TOKEN>"',
    );
  };
}

const authenticated = new WeakSet<object>();

/** Records that the request carried the right token (see configureHttpEdge), for public routes that say more to it. */
export function markAuthenticated(request: FastifyRequest): void {
  authenticated.add(request.raw);
}

/** Whether the request carried the right token: always so on a route that is not public. */
export function isAuthenticated(request: FastifyRequest): boolean {
  return authenticated.has(request.raw);
}
