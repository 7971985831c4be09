/**
 * The backup gateway: with S3 backups, the only S3 endpoint a database's
 * container knows. It listens on this host's address on the databases'
 * bridge (so only containers and the host reach it), over TLS with a
 * certificate from a CA of its own, and takes requests signed with a
 * stanza's credential (see s3-access.ts). What the stanza may do is sent on
 * to the real store, rebuilt from the checked parts and signed with the
 * server's keys; the rest gets S3's AccessDenied. The keys stay in this
 * process: no container holds a credential that reaches another stanza or
 * the server record.
 *
 * The daemon is on the archiving path from here on: while it restarts, a
 * WAL push fails and Postgres retries it (archive_command's usual retries),
 * so a restart delays archiving by up to a minute and loses nothing.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Agent, createServer, request, type Server } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import aws4 from 'aws4';
import { writeFileAtomically } from '../common/atomic-file.js';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { capConnectionsPerAddress } from '../common/http-edge.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { LogBudget } from '../common/log-budget.js';
import { DOCKER_GATEWAY, type DockerGateway, type IsolatedNetwork } from '../docker/docker.gateway.js';
import { createCertificateAuthority, issueServerCertificate, type KeyPair } from '../tls/certificates.js';
import {
  authenticate,
  authorise,
  checkDeleteKeys,
  encodeKey,
  isDenial,
  MAX_DELETE_BODY_BYTES,
  stanzaCredentials,
  type Allowed,
  type Denial,
  type StanzaCredentials,
} from './s3-access.js';

/** The bucket prefix under which every stanza has its repository (`pgdb/<stanza>/`). */
export const S3_PREFIX = 'pgdb';
/** Requests to the store give up when it is silent this long. */
const UPSTREAM_TIMEOUT_MS = 60_000;
/** A client that has not finished its TLS handshake by then is dropped. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Connections one container may hold (pgBackRest uses one per process; process-max is 1), and all of them. */
const MAX_CONNECTIONS_PER_ADDRESS = 16;
const MAX_CONNECTIONS = 1024;
/** The request's headers must arrive within this (a container cannot hold the gateway with slow headers). */
const HEADERS_TIMEOUT_MS = 10_000;
/**
 * Request headers the store gets from a client (the rest are dropped); the signature is the gateway's.
 * `range`: a restore reads each file of a bundle as a byte range of its object.
 */
const FORWARDED_HEADERS = ['content-length', 'content-md5', 'content-type', 'x-amz-content-sha256', 'range'];
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer']);

/** Where containers reach the gateway, and the CA its certificate comes from. */
export interface GatewayEndpoint {
  host: string;
  port: number;
  caPem: string;
  /** The network containers must be on to reach it. */
  network: string;
}

@Injectable()
export class S3Gateway implements OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly dir: string;
  private network: (() => Promise<IsolatedNetwork>) | undefined;
  private listening: Promise<GatewayEndpoint> | undefined;
  private server: Server | undefined;
  private secret: Buffer | undefined;
  private agent: Agent | undefined;
  private upstreamAddress: string | undefined;
  private readonly denials = new LogBudget();

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'backup', part: 's3-gateway' });
    this.dir = join(config.dataDir, 'backup-gateway');
  }

  /** Whether databases reach an S3 store through the gateway (S3 backups on). */
  get enabled(): boolean {
    return this.config.backup.enabled && this.config.backup.s3 !== undefined;
  }

  /** Where the databases' network comes from (the runtime owns it). */
  useNetwork(network: () => Promise<IsolatedNetwork>): void {
    this.network = network;
  }

  /** Listening, once: the address and CA that containers are given. */
  endpoint(): Promise<GatewayEndpoint> {
    this.listening ??= this.listen().catch((error) => {
      this.listening = undefined;
      throw error;
    });
    return this.listening;
  }

  /** A stanza's credential for the gateway (needs endpoint() first). */
  credentials(stanza: string): StanzaCredentials {
    if (!this.secret) throw new Error('the backup gateway has not started');
    return stanzaCredentials(this.secret, stanza);
  }

  async onApplicationShutdown(): Promise<void> {
    this.agent?.destroy();
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async listen(): Promise<GatewayEndpoint> {
    const s3 = this.config.backup.s3;
    if (!this.enabled || !s3) throw new Error('the backup gateway serves S3 backups only');
    if (!this.network) throw new Error('the backup gateway has no network to listen on');
    const network = await this.network();
    const host = network.gateways.find((address) => isIP(address) === 4) ?? network.gateways[0];
    if (!host) throw new Error(`the backup gateway cannot listen: this host has no address on network ${network.name}`);
    const { ca, secret } = await this.loadOrCreateSecrets();
    this.secret = secret;
    // pgBackRest 2.45 matches an IP address endpoint against DNS-type names only; later versions read IP names.
    const serving = await issueServerCertificate(ca, [host], { literalDnsNames: [host] });
    this.agent = new Agent({ keepAlive: true, maxSockets: 64, ...(s3.caFile ? { ca: await readFile(s3.caFile, 'utf8') } : {}) });
    this.upstreamAddress = await s3ConnectAddress(this.config, this.docker);
    const port = this.config.backup.gatewayPort;
    const server = createServer({ key: serving.key, cert: serving.cert, handshakeTimeout: HANDSHAKE_TIMEOUT_MS }, (req, res) => this.handle(req, res));
    // One container (a tenant that became a superuser, say) cannot hold the gateway for the others.
    server.maxConnections = MAX_CONNECTIONS;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    capConnectionsPerAddress(server, MAX_CONNECTIONS_PER_ADDRESS);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new Error(`the backup gateway cannot listen on ${host}:${port} (${error.code ?? error.message}); set PGDB_BACKUP_GATEWAY_PORT to a free port`)),
      );
      server.listen(port, host, () => resolve());
    });
    server.on('error', (error) => this.logger.error({ err: error.message }, 'backup gateway error'));
    this.server = server;
    this.logger.info({ address: `${host}:${port}`, store: s3.endpoint }, 'backup gateway listening');
    return { host, port, caPem: ca.cert, network: network.name };
  }

  /** The gateway's CA and secret, made at first start (`<data dir>/backup-gateway`, root's alone). */
  private async loadOrCreateSecrets(): Promise<{ ca: KeyPair; secret: Buffer }> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const read = (name: string) => readFile(join(this.dir, name), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    let [cert, key, secret] = await Promise.all([read('ca.pem'), read('ca.key'), read('secret')]);
    if (!cert || !key) {
      ({ cert, key } = await createCertificateAuthority('pgdb backup gateway'));
      await writeFileAtomically(join(this.dir, 'ca.key'), Buffer.from(key));
      await writeFileAtomically(join(this.dir, 'ca.pem'), Buffer.from(cert));
    }
    if (!secret) {
      secret = randomBytes(32).toString('hex');
      await writeFileAtomically(join(this.dir, 'secret'), Buffer.from(`${secret}\n`));
    }
    return { ca: { cert, key }, secret: Buffer.from(secret.trim(), 'hex') };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const s3 = this.config.backup.s3!;
    const incoming = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    const stanza = authenticate(incoming, (name) => (this.secret ? stanzaCredentials(this.secret, name).secretKey : undefined), new Date());
    if (isDenial(stanza)) return this.deny(req, res, stanza);
    const scope = { bucket: s3.bucket, prefix: `${S3_PREFIX}/${stanza}/` };
    const allowed = authorise(incoming, scope);
    if (isDenial(allowed)) return this.deny(req, res, allowed, stanza);
    if (!allowed.bulkDelete) return this.forward(req, res, allowed, req);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_DELETE_BODY_BYTES) {
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const keys = checkDeleteKeys(body.toString('utf8'), scope);
      if (isDenial(keys)) return this.deny(req, res, keys, stanza);
      this.forward(req, res, allowed, body);
    });
  }

  /** Sends the allowed request to the store, signed with the server's keys, and its answer back. */
  private forward(req: IncomingMessage, res: ServerResponse, allowed: Allowed, body: IncomingMessage | Buffer): void {
    const s3 = this.config.backup.s3!;
    const host = s3.uriStyle === 'host' ? `${s3.bucket}.${s3.endpoint}` : s3.endpoint;
    const keyPath = allowed.key === undefined ? '' : `/${encodeKey(allowed.key)}`;
    const query = allowed.query.map(([name, value]) => `${encodeKey(name)}=${encodeKey(value).replaceAll('/', '%2F')}`).join('&');
    const path = (s3.uriStyle === 'host' ? keyPath || '/' : `/${s3.bucket}${keyPath}`) + (query ? `?${query}` : '');
    const headers: Record<string, string> = {};
    for (const name of FORWARDED_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const signed = aws4.sign(
      { host, ...(s3.port ? { port: s3.port } : {}), method: allowed.method, path, headers, service: 's3', region: s3.region },
      { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
    );
    const started = performance.now();
    const upstream = request(
      {
        host: this.upstreamAddress ?? host,
        servername: isIP(host) ? undefined : host,
        port: s3.port ?? 443,
        method: allowed.method,
        path: signed.path,
        headers: signed.headers as Record<string, string>,
        agent: this.agent,
        timeout: UPSTREAM_TIMEOUT_MS,
      },
      (answer) => {
        this.logger.debug({ method: allowed.method, key: allowed.key, status: answer.statusCode, reused: upstream.reusedSocket, ms: Math.round(performance.now() - started) }, 'gateway request answered');
        res.writeHead(answer.statusCode ?? 502, withoutHopByHop(answer.headers));
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error(`${s3.endpoint} did not answer within ${UPSTREAM_TIMEOUT_MS / 1000} s`)));
    upstream.on('error', (error) => {
      this.logger.warn({ err: error.message, method: allowed.method, key: allowed.key }, 'the S3 store failed a gateway request');
      if (res.headersSent) return void res.destroy();
      this.reply(res, req.method === 'HEAD', { status: 502, code: 'BadGateway', message: `the S3 store failed: ${error.message}` });
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    if (Buffer.isBuffer(body)) upstream.end(body);
    else body.pipe(upstream);
  }

  private deny(req: IncomingMessage, res: ServerResponse, denial: Denial, stanza?: string): void {
    // A container that repeats refused requests gets ten lines a minute in the log, not one per request.
    const { log, held } = this.denials.take(stanza ?? req.socket.remoteAddress ?? 'unknown');
    if (log) {
      this.logger.warn(
        { stanza, method: req.method, target: (req.url ?? '').slice(0, 300), code: denial.code, reason: denial.message, ...(held ? { heldBack: held } : {}) },
        held ? `backup gateway refused a request (and ${held} more in the minute before, not logged)` : 'backup gateway refused a request',
      );
    }
    // The client may still be sending a body it will not need: close once answered.
    res.setHeader('Connection', 'close');
    this.reply(res, req.method === 'HEAD', denial);
    req.resume();
  }

  private reply(res: ServerResponse, head: boolean, error: { status: number; code: string; message: string }): void {
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${error.code}</Code><Message>${escapeXml(error.message)}</Message></Error>\n`;
    res.writeHead(error.status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
    res.end(head ? undefined : body);
  }
}

/** Where the daemon connects for the store's host: PGDB_BACKUP_S3_ADDRESS when set (host-gateway is the default bridge's address). */
export async function s3ConnectAddress(config: DaemonConfig, docker: DockerGateway): Promise<string | undefined> {
  const address = config.backup.s3Address;
  if (!address) return undefined;
  if (isIP(address)) return address;
  return docker.bridgeGateway();
}

function withoutHopByHop(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) kept[name] = value;
  }
  return kept;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
