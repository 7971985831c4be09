/**
 * What every request meets before a controller sees it: time limits and a
 * connection cap on the server, authentication before the body is read, a
 * strict JSON body parser, 405 for a known path with the wrong method, and
 * the `{ error: { code, message } }` shape for the errors Fastify and Node
 * raise themselves (a bad URL, headers too large, a client too slow).
 */
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BODY_LIMIT_BYTES, BODY_MAX_DEPTH, type ErrorCode } from '../../../contract/api.js';
import { bearerAuthenticator, isPublicRoute, markAuthenticated } from './auth.js';
import { DAEMON_CONFIG, type DaemonConfig } from './config.js';
import { codeForHttpStatus, DomainError, errorBody, httpStatusFor } from './errors.js';

export const HTTP_LIMITS = {
  /** The whole request, headers and body, must arrive within this (not the time to answer it). */
  requestTimeoutMs: 30_000,
  /** The request line and headers must arrive within this: a slowloris client is cut off. */
  headersTimeoutMs: 10_000,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** Connections beyond this are refused (closed at once) until others end. */
  maxConnections: 512,
  /**
   * Connections from one address beyond this are closed at once, so that one
   * client holding idle connections cannot use up maxConnections for all.
   */
  maxConnectionsPerAddress: 64,
  /** An HTTPS client must finish its TLS handshake within this (Node's default is 120 s). */
  tlsHandshakeTimeoutMs: 5_000,
  /** A path parameter longer than this answers 414; a database name is at most 48 characters. */
  maxParamLength: 100,
} as const;

/**
 * Fastify options for the adapter (see createAdapter). No `connectionTimeout`:
 * a deploy may keep its connection silent for as long as Postgres takes to
 * start, and the two limits on receiving the request already cut slow clients.
 */
export const HTTP_SERVER_OPTIONS = {
  requestTimeout: HTTP_LIMITS.requestTimeoutMs,
  keepAliveTimeout: HTTP_LIMITS.keepAliveTimeoutMs,
  routerOptions: { maxParamLength: HTTP_LIMITS.maxParamLength },
  // Node checks the two request timeouts on this interval (30 s by default,
  // which would let a slow client hold on for up to 40 s). An HTTPS server
  // takes the same option among its `https` options.
  http: { connectionsCheckingInterval: 1000 },
  // The router rejects a bad percent-encoding or an over-long parameter before
  // any hook runs, and would answer in Fastify's own shape.
  frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
    const code = codeForHttpStatus(error.statusCode ?? 400);
    const message =
      error.code === 'FST_ERR_BAD_URL'
        ? 'the URL is not validly percent-encoded'
        : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? `a path segment is longer than ${HTTP_LIMITS.maxParamLength} characters`
          : error.message;
    void reply.code(httpStatusFor(code)).send(errorBody(code, message));
  },
  clientErrorHandler,
};

/** Installs the hooks and the body parser; call before `app.init()` so that every route gets them. */
export function configureHttpEdge(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance() as FastifyInstance;
  const server = app.getHttpServer() as Server;
  server.headersTimeout = HTTP_LIMITS.headersTimeoutMs;
  server.maxConnections = HTTP_LIMITS.maxConnections;
  capConnectionsPerAddress(server, HTTP_LIMITS.maxConnectionsPerAddress);

  // Only JSON: Fastify's text/plain parser and Nest's urlencoded one (the app
  // is created with `bodyParser: false`) would let a form create a database.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT_BYTES }, jsonObjectParser(fastify));
  // A raw byte stream only where a route asks for one (`@RouteConfig(STREAMED_BODY)`): its handler reads it.
  fastify.addContentTypeParser('application/octet-stream', (request, _payload, done) => {
    if ((request.routeOptions.config as { streamedBody?: boolean } | undefined)?.streamedBody === true) return done(null, undefined);
    done(new DomainError('UNSUPPORTED_MEDIA_TYPE', 'a request body must be JSON, sent with Content-Type: application/json'));
  });

  const routes = new RouteTable();
  fastify.addHook('onRoute', (route) => routes.add(route.method, route.url));

  const authenticate = bearerAuthenticator(app.get<DaemonConfig>(DAEMON_CONFIG).token);
  // onRequest runs before the body is read: an unauthenticated request gets
  // 401 whatever it carries, and a body where none belongs is never parsed.
  fastify.addHook('onRequest', async (request, reply) => {
    // A public route answers anyone, and says more to the token (health's details); a wrong token is still 401.
    if (!isPublicRoute(request) || request.headers.authorization !== undefined) {
      authenticate(request);
      markAuthenticated(request);
    }
    if (request.is404) {
      const allowed = routes.methodsFor(pathOf(request.url));
      if (allowed.length > 0) {
        void reply.header('allow', allowed.join(', '));
        throw new DomainError('METHOD_NOT_ALLOWED', `${request.method} is not allowed here; allowed: ${allowed.join(', ')}`);
      }
      return; // Nest's not-found handler answers 404
    }
    if (request.method !== 'POST' && hasBody(request)) {
      throw new DomainError('INVALID_REQUEST', `${request.method} requests take no body; send the parameters in the query string`);
    }
  });
}

/**
 * Closes a new connection at once when its address already holds `cap`
 * (an HTTPS server counts TCP connections, before their handshake). The
 * limit is read from the server's `maxConnectionsPerAddress` property when a
 * test sets one.
 */
export function capConnectionsPerAddress(server: Server, cap: number): void {
  const open = new Map<string, number>();
  const holder = server as Server & { maxConnectionsPerAddress?: number };
  holder.maxConnectionsPerAddress = cap;
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress;
    if (!address) return;
    const count = open.get(address) ?? 0;
    if (count >= (holder.maxConnectionsPerAddress ?? cap)) {
      socket.destroy();
      return;
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}

/** Route config of a route whose handler reads an `application/octet-stream` body itself. */
export const STREAMED_BODY = { streamedBody: true };

/**
 * Takes an upload that may rightly last longer than HTTP_LIMITS.requestTimeoutMs
 * (an import of a large dump) out of Node's whole-request deadline, once it
 * is authenticated and routed; the handler then enforces an idle limit of
 * its own. Node offers no public way to do this per request: its connection
 * checker looks at the socket's HTTP parser, and `remove()` takes the parser
 * off the list it checks. Where that is unavailable the deadline stays.
 */
export function exemptFromRequestTimeout(request: { socket: Socket }): boolean {
  const parser = (request.socket as Socket & { parser?: { remove?: () => void } }).parser;
  if (typeof parser?.remove !== 'function') return false;
  parser.remove();
  return true;
}

/**
 * Parses `application/json` into a plain object, or fails with 400: empty,
 * not JSON, trailing garbage, nesting deeper than BODY_MAX_DEPTH (checked on
 * the text, before anything recursive runs), `__proto__`/`constructor` keys,
 * or a value that is not an object (`null`, an array, a scalar).
 */
function jsonObjectParser(fastify: FastifyInstance) {
  const parse = fastify.getDefaultJsonParser('error', 'error');
  return (request: FastifyRequest, body: string | Buffer, done: (error: Error | null, value?: unknown) => void) => {
    const text = body.toString();
    if (text.trim() === '') {
      done(new DomainError('INVALID_REQUEST', 'the body is empty; send a JSON object such as {}, or no body and no content-type'));
      return;
    }
    if (nestingExceeds(text, BODY_MAX_DEPTH)) {
      done(new DomainError('INVALID_REQUEST', `the body nests objects or arrays deeper than ${BODY_MAX_DEPTH} levels`));
      return;
    }
    parse(request, text, (error: Error | null, value?: unknown) => {
      if (error) {
        // Fastify's parser says "invalid" for both; plain JSON.parse tells them apart.
        const poisoned = isJson(text);
        done(new DomainError('INVALID_REQUEST', poisoned ? 'the body must not have a __proto__ or constructor.prototype key' : 'the body is not valid JSON'));
      } else if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        done(new DomainError('INVALID_REQUEST', `the body must be a JSON object, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`));
      } else {
        done(null, value);
      }
    });
  };
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Whether brackets outside strings nest deeper than `max`; a linear scan with no recursion. */
export function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The app's routes by pattern, to tell "no such path" (404) from "not with this method" (405). */
class RouteTable {
  private readonly routes: Array<{ pattern: RegExp; method: string }> = [];

  add(method: string | string[], url: string): void {
    const source = url
      .split('/')
      .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    for (const m of [method].flat()) this.routes.push({ pattern: new RegExp(`^${source}/?$`), method: m });
  }

  methodsFor(path: string): string[] {
    const methods = this.routes.filter((r) => r.pattern.test(path)).map((r) => r.method);
    return [...new Set(methods)].sort();
  }
}

/**
 * Node's parser rejected the request before Fastify saw it (headers over
 * 16 KiB, a client too slow, malformed HTTP): answer in the error shape,
 * unless a response has already begun, and close the connection.
 */
function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, message]: [ErrorCode, string] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? ['REQUEST_TIMEOUT', `the request did not arrive in time (headers within ${HTTP_LIMITS.headersTimeoutMs / 1000} s, all of it within ${HTTP_LIMITS.requestTimeoutMs / 1000} s)`]
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? ['HEADERS_TOO_LARGE', 'the request line and headers are larger than 16 KiB']
        : ['INVALID_REQUEST', 'malformed HTTP request'];
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const status = httpStatusFor(code);
    const body = JSON.stringify(errorBody(code, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
