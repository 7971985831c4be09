import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TlsSummary } from '../contract/api.js';
import { ConfigError, type DaemonConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import {
  createCertificateAuthority,
  fingerprintOf,
  issueServerCertificate,
  needsRenewal,
  notAfterOf,
  RENEW_BEFORE_DAYS,
  type KeyPair,
} from './certificates.js';

export const TLS_SERVICE = Symbol('TLS_SERVICE');

/** A certificate for a server (API or database), with its key and expiry. */
export interface ServerCredentials extends KeyPair {
  notAfter: Date;
}

/** Where the API's TLS context can be replaced without a restart (node's tls.Server). */
export interface SecureContextTarget {
  setSecureContext(options: { key: string; cert: string }): void;
}

const RENEWAL_CHECK_MS = 60 * 60 * 1000;

/**
 * The daemon's certificates: its own CA in `<data dir>/tls/` (created on
 * first start; the key is 0600 and never leaves this class), or the
 * operator's certificate (PGDB_TLS_CERT_FILE / PGDB_TLS_KEY_FILE). It issues
 * the API's certificate and one per database, and keeps the API's fresh.
 *
 * Made before Nest starts (main.ts), because Fastify needs the API's
 * certificate when the server is created.
 */
export class TlsService {
  private api: ServerCredentials | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly config: DaemonConfig,
    private readonly logger: Logger,
    /** pgdb's own CA; present in both modes (the operator's certificate may be removed later). */
    private readonly ca: KeyPair,
    private operator: (ServerCredentials & { mtimes: string }) | undefined,
  ) {}

  static async open(config: DaemonConfig, rootLogger: Logger): Promise<TlsService> {
    const logger = rootLogger.child({ module: 'tls' });
    const dir = join(config.dataDir, 'tls');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const ca = await loadOrCreateCa(dir, logger);
    const operator = config.operatorCertificate ? await readOperator(config.operatorCertificate) : undefined;
    const service = new TlsService(config, logger, ca, operator);
    if (config.apiTls) service.api = await service.issueApi();
    logger.info(
      { source: service.source, api: config.apiTls, caFingerprint: fingerprintOf(ca.cert) },
      operator ? "using the operator's certificate" : "using pgdb's own CA",
    );
    return service;
  }

  get source(): TlsSummary['source'] {
    return this.operator ? 'operator' : 'own-ca';
  }

  /** The CA that signs this daemon's certificates (PEM); public. */
  get caCertificate(): string {
    return this.ca.cert;
  }

  summary(): TlsSummary {
    return { source: this.source, api: this.config.apiTls, ca_fingerprint: fingerprintOf(this.ca.cert) };
  }

  /** The API's certificate for Fastify's `https` option; undefined when the API speaks plain HTTP. */
  apiCredentials(): { key: string; cert: string } | undefined {
    return this.api && { key: this.api.key, cert: this.api.cert };
  }

  /** A certificate for a database's server, covering the public host its URLs name. */
  async databaseCredentials(): Promise<ServerCredentials> {
    if (this.operator) return this.operator;
    const pair = await issueServerCertificate(this.ca, [this.config.publicHost]);
    return { ...pair, notAfter: notAfterOf(pair.cert) };
  }

  /**
   * Whether a database whose certificate expires at `notAfter` should get a
   * new one now: inside the renewal window, or (operator certificates) the
   * operator has installed a different one since.
   */
  databaseNeedsNew(notAfter: string | undefined, now = new Date()): boolean {
    if (!notAfter) return true;
    if (this.operator) return new Date(notAfter).getTime() !== this.operator.notAfter.getTime();
    return new Date(notAfter).getTime() - now.getTime() < RENEW_BEFORE_DAYS * 24 * 60 * 60 * 1000;
  }

  /** Picks up a renewed operator certificate and renews the API's; checked hourly. */
  startRenewal(server: SecureContextTarget | undefined): void {
    this.timer = setInterval(() => {
      this.renew(server).catch((error: Error) => this.logger.error({ err: error.message }, 'certificate renewal failed; retried in an hour'));
    }, RENEWAL_CHECK_MS);
    this.timer.unref();
  }

  stopRenewal(): void {
    clearInterval(this.timer);
  }

  /** One renewal pass; returns whether the API's certificate changed. */
  async renew(server: SecureContextTarget | undefined, now = new Date()): Promise<boolean> {
    if (this.config.operatorCertificate) {
      const current = await readOperator(this.config.operatorCertificate);
      if (current.mtimes !== this.operator?.mtimes) {
        this.operator = current;
        this.logger.info({ notAfter: current.notAfter.toISOString() }, "read the operator's renewed certificate");
      }
    }
    if (!this.api || !server) return false;
    const fresh = this.operator ? this.operator.cert !== this.api.cert : needsRenewal(this.api.cert, now);
    if (!fresh) return false;
    this.api = await this.issueApi();
    server.setSecureContext({ key: this.api.key, cert: this.api.cert });
    this.logger.info({ notAfter: this.api.notAfter.toISOString() }, "renewed the API's certificate");
    return true;
  }

  private async issueApi(): Promise<ServerCredentials> {
    if (this.operator) return this.operator;
    const hosts = [this.config.publicHost];
    if (!['0.0.0.0', '::', ''].includes(this.config.listenHost)) hosts.push(this.config.listenHost);
    hosts.push('localhost', '127.0.0.1', '::1');
    const pair = await issueServerCertificate(this.ca, hosts);
    return { ...pair, notAfter: notAfterOf(pair.cert) };
  }
}

async function loadOrCreateCa(dir: string, logger: Logger): Promise<KeyPair> {
  const certPath = join(dir, 'ca.crt');
  const keyPath = join(dir, 'ca.key');
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const created = await createCertificateAuthority(`pgdb CA ${new Date().toISOString().slice(0, 10)}`);
    // Key first: a certificate on disk always has its key beside it.
    await writeFile(keyPath, created.key, { mode: 0o600 });
    await writeFile(certPath, created.cert, { mode: 0o644 });
    // Public: readable by all (the process umask may have narrowed the mode above).
    await chmod(certPath, 0o644);
    logger.info({ path: certPath, fingerprint: fingerprintOf(created.cert) }, 'created a certificate authority');
    return created;
  }
  const mode = (await stat(keyPath)).mode & 0o777;
  if (mode & 0o077) {
    await chmod(keyPath, 0o600);
    logger.warn({ path: keyPath, mode: mode.toString(8) }, 'the CA key was readable by others; its mode is now 600');
  }
  return { cert, key };
}

async function readOperator(files: { certFile: string; keyFile: string }): Promise<ServerCredentials & { mtimes: string }> {
  const [cert, key, certStat, keyStat] = await Promise.all([
    readFile(files.certFile, 'utf8'),
    readFile(files.keyFile, 'utf8'),
    stat(files.certFile),
    stat(files.keyFile),
  ]);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (error) {
    throw new ConfigError([`PGDB_TLS_CERT_FILE ${files.certFile} holds no PEM certificate: ${(error as Error).message}`]);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new ConfigError([`PGDB_TLS_KEY_FILE ${files.keyFile} holds no PEM private key: ${(error as Error).message}`]);
  }
  if (!matches) throw new ConfigError([`PGDB_TLS_KEY_FILE ${files.keyFile} is not the key of ${files.certFile}`]);
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= Date.now()) {
    throw new ConfigError([`PGDB_TLS_CERT_FILE ${files.certFile} expired on ${notAfter.toISOString()}`]);
  }
  return { cert, key, notAfter, mtimes: `${certStat.mtimeMs}:${keyStat.mtimeMs}` };
}
