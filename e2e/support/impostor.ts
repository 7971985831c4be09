/**
 * The attack on the CLI's trust, as a tenant that became superuser in its
 * database could mount it: read the database's TLS certificate and key in
 * its container, and serve them over HTTPS where the API should answer,
 * with the public parts of the real API (its CA, the own CA's certificate
 * for the API's key) copied, to collect the token of whoever connects.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CERT_PATH, KEY_PATH } from '../../daemon/src/postgres/postgres-container.js';
import { docker } from './daemon.js';

export interface SeenRequest {
  method: string;
  url: string;
  authorization: string | undefined;
}

export class Impostor {
  readonly seen: SeenRequest[] = [];
  private server: Server | undefined;

  /** `publicRoutes`: what it answers on routes that need no token (path -> body), copied from the real API. */
  constructor(
    private readonly containerId: string,
    private readonly publicRoutes: Record<string, string>,
  ) {}

  /** The database's certificate and key, as they are in its container (what a superuser there can read). */
  credentials(): { cert: string; key: string } {
    return { cert: docker('exec', this.containerId, 'cat', CERT_PATH), key: docker('exec', this.containerId, 'cat', KEY_PATH) };
  }

  async start(): Promise<this> {
    this.server = createServer(this.credentials(), (request, response) => {
      this.seen.push({ method: request.method ?? '', url: request.url ?? '', authorization: request.headers.authorization });
      const body = this.publicRoutes[request.url ?? ''];
      response.writeHead(200, { 'content-type': body === undefined ? 'application/json' : 'application/x-pem-file' });
      response.end(body ?? JSON.stringify({ items: [], detached_volumes: [], unknown_containers: [], pool: [] }));
    });
    this.server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  /** Requests that carried a token. */
  tokens(): SeenRequest[] {
    return this.seen.filter((request) => request.authorization !== undefined);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
