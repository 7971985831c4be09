import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { ClientTls } from '../postgres/postgres.client.js';
import { AcmeIssuer, type AcmeCertificates } from './acme.js';
import { API_CERTIFICATE_UNIT, type TlsSummary } from '../../../contract/api.js';
import { ConfigError, type DaemonConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import {
  createCertificateAuthority,
  fingerprintOf,
  issueServerCertificate,
  needsRenewal,
  newPrivateKey,
  notAfterOf,
  publicKeyFingerprintOf,
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
 * The API's private key never reaches a database: the API serves with a key
 * of its own (`tls/api.key`, kept across renewals, also in the ACME
 * certificate's request) or the operator's; every database gets a key of its
 * own from the own CA, or the ACME certificate ordered for databases. The
 * own CA marks the API's certificate (API_CERTIFICATE_UNIT) and no
 * database's, so a client pinned to that CA tells the two apart.
 *
 * Made before Nest starts (main.ts), because Fastify needs the API's
 * certificate when the server is created.
 */
export class TlsService {
  private api: ServerCredentials | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The ACME source (PGDB_TLS=acme); its certificate, while it has one, replaces the own CA's for the API and every database. */
  private acme: AcmeIssuer | undefined;
  private server: SecureContextTarget | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly attemptListeners = new Set<() => void>();
  private extraRoots: string[] = [];

  private constructor(
    private readonly config: DaemonConfig,
    private readonly logger: Logger,
    /** pgdb's own CA; present in both modes (the operator's certificate may be removed later). */
    private readonly ca: KeyPair,
    private operator: (ServerCredentials & { mtimes: string }) | undefined,
    /** The API's own private key (PEM), for the own CA's and the ACME certificates. */
    private readonly apiKey: string,
  ) {}

  static async open(config: DaemonConfig, rootLogger: Logger): Promise<TlsService> {
    const logger = rootLogger.child({ module: 'tls' });
    const dir = join(config.dataDir, 'tls');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const ca = await loadOrCreateCa(dir, logger);
    const apiKey = await loadOrCreateApiKey(dir, logger);
    const operator = config.operatorCertificate ? await readOperator(config.operatorCertificate) : undefined;
    const service = new TlsService(config, logger, ca, operator, apiKey);
    if (config.apiTls) service.api = await service.issueApi();
    if (config.acme) {
      service.acme = await AcmeIssuer.open(config.acme, dir, apiKey, logger, (cert) => service.acmeChanged(cert));
      service.acme.onAttempt = () => {
        for (const listener of service.attemptListeners) listener();
      };
    }
    service.extraRoots = await readExtraRoots(config.extraRootsFile);
    logger.info(
      { source: service.source, api: config.apiTls, caFingerprint: fingerprintOf(ca.cert) },
      service.source === 'operator' ? "using the operator's certificate" : service.source === 'acme' ? 'using the ACME certificate' : "using pgdb's own CA",
    );
    return service;
  }

  get source(): TlsSummary['source'] {
    if (this.operator) return 'operator';
    return this.acme?.current() ? 'acme' : 'own-ca';
  }

  /** The CA that signs this daemon's certificates (PEM); public. */
  get caCertificate(): string {
    return this.ca.cert;
  }

  summary(): TlsSummary {
    const api = this.apiCredentials();
    return {
      source: this.source,
      api: this.config.apiTls,
      ca_fingerprint: fingerprintOf(this.ca.cert),
      ...(api ? { api_key_fingerprint: publicKeyFingerprintOf(api.cert) } : {}),
      ...(this.acme ? { acme: this.acme.summary() } : {}),
    };
  }

  /** The API's certificate for Fastify's `https` option; undefined when the API speaks plain HTTP. */
  apiCredentials(): { key: string; cert: string } | undefined {
    if (!this.api) return undefined;
    const acme = this.acme?.current()?.api;
    return acme ? { key: acme.key, cert: acme.cert } : { key: this.api.key, cert: this.api.cert };
  }

  /**
   * The own CA's certificate for the key the API serves with (ROUTES.apiCertificate):
   * the one it serves, or beside the ACME certificate the one it would fall back to.
   * Undefined with the operator's certificate (no CA of this daemon vouches for that key).
   */
  apiEndorsement(): string | undefined {
    return this.api && !this.operator ? this.api.cert : undefined;
  }

  /** Called after every ACME attempt, successful or failed (its problem in health may have come or gone). */
  onAcmeAttempt(listener: () => void): () => void {
    this.attemptListeners.add(listener);
    return () => this.attemptListeners.delete(listener);
  }

  /** Why the ACME certificate could not be had or renewed, for health; undefined when nothing failed. */
  acmeProblem(): string | undefined {
    const acme = this.acme?.summary();
    if (!acme?.last_error) return undefined;
    const serving = acme.state === 'issued' ? 'the ACME certificate (renewal pending)' : "pgdb's own CA";
    return `ACME certificate for ${acme.identifier}: ${acme.last_error}; serving ${serving}`;
  }

  /** Called (without arguments) whenever the certificate every database should carry changes source. */
  onDatabaseCertificateChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * How the daemon checks its databases' certificates: against its own CA;
   * with ACME also against Node's roots (and NODE_EXTRA_CA_CERTS), with the
   * public host's name checked, since a database may carry either while the
   * source changes. With the operator's certificate the same: databases get
   * the own CA's, and one made by an earlier release may still carry the
   * operator's until it is replaced.
   */
  databaseTrust(): ClientTls {
    if (!this.acme && !this.operator) return { mode: 'verify', ca: this.ca.cert };
    return { mode: 'verify', ca: [this.ca.cert, ...rootCertificates, ...this.extraRoots], servername: this.config.publicHost.replace(/^\[(.*)\]$/, '$1') };
  }

  /**
   * A certificate for a database's server, covering the public host its
   * URLs name, with a key that is not the API's: the ACME certificate
   * ordered for databases, else one from the own CA with a new key (also
   * when the API serves the operator's certificate, whose key stays with it).
   */
  async databaseCredentials(): Promise<ServerCredentials> {
    const acme = this.acme?.current()?.databases;
    if (acme) return { cert: acme.cert, key: acme.key, notAfter: acme.notAfter };
    const pair = await issueServerCertificate(this.ca, [this.config.publicHost]);
    return { ...pair, notAfter: notAfterOf(pair.cert) };
  }

  /**
   * Whether a database whose certificate expires at `notAfter` should get a
   * new one now: inside the renewal window, or it carries a certificate of
   * another source (the ACME one after a fallback, an operator's given to
   * databases by an earlier release, not the ACME one now served).
   */
  databaseNeedsNew(notAfter: string | undefined, now = new Date()): boolean {
    if (!notAfter) return true;
    const carried = new Date(notAfter).getTime();
    // The operator's certificate (its key is the API's), copied into databases by an earlier release.
    if (this.operator && carried === this.operator.notAfter.getTime()) return true;
    const acme = this.acme?.current()?.databases;
    if (acme) return carried !== acme.notAfter.getTime();
    // Still the ACME certificate, after a fallback to the own CA.
    const held = this.acme?.held();
    if (held && (carried === held.databases.notAfter.getTime() || carried === held.api.notAfter.getTime())) return true;
    return carried - now.getTime() < RENEW_BEFORE_DAYS * 24 * 60 * 60 * 1000;
  }

  /** Picks up a renewed operator certificate and renews the API's; checked hourly. */
  startRenewal(server: SecureContextTarget | undefined): void {
    this.server = server;
    this.acme?.start();
    this.timer = setInterval(() => {
      this.renew(server).catch((error: Error) => this.logger.error({ err: error.message }, 'certificate renewal failed; retried in an hour'));
    }, RENEWAL_CHECK_MS);
    this.timer.unref();
  }

  async stopRenewal(): Promise<void> {
    clearInterval(this.timer);
    await this.acme?.stop();
  }

  /** The ACME source got a certificate, renewed it, or gave it up: the API and then every database follow. */
  private acmeChanged(certificate: AcmeCertificates | undefined): void {
    const credentials = this.apiCredentials();
    if (this.server && credentials) {
      this.server.setSecureContext(credentials);
      this.logger.info({ source: this.source, notAfter: certificate?.notAfter.toISOString() }, "switched the API's certificate");
    }
    for (const listener of this.listeners) listener();
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
    if (this.acme?.current()) return false;
    server.setSecureContext({ key: this.api.key, cert: this.api.cert });
    this.logger.info({ notAfter: this.api.notAfter.toISOString() }, "renewed the API's certificate");
    return true;
  }

  private async issueApi(): Promise<ServerCredentials> {
    if (this.operator) return this.operator;
    const hosts = [this.config.publicHost];
    if (!['0.0.0.0', '::', ''].includes(this.config.listenHost)) hosts.push(this.config.listenHost);
    hosts.push('localhost', '127.0.0.1', '::1');
    const pair = await issueServerCertificate(this.ca, hosts, { key: this.apiKey, unit: API_CERTIFICATE_UNIT });
    return { ...pair, notAfter: notAfterOf(pair.cert) };
  }
}

/**
 * The API's own private key, `tls/api.key` (0600), made on first start and
 * kept: its certificates change (renewals, ACME), the key clients pin does not.
 */
async function loadOrCreateApiKey(dir: string, logger: Logger): Promise<string> {
  const path = join(dir, 'api.key');
  try {
    const key = await readFile(path, 'utf8');
    await chmod(path, 0o600);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = await newPrivateKey();
  await writeFile(path, key, { mode: 0o600 });
  logger.info({ path, fingerprint: publicKeyFingerprintOf(key) }, "created the API's private key");
  return key;
}

/** The certificates in Node's NODE_EXTRA_CA_CERTS file (Node itself warns when it cannot read it). */
async function readExtraRoots(path: string | undefined): Promise<string[]> {
  if (!path) return [];
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
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
