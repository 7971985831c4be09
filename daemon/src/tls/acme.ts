/**
 * Certificates from an ACME CA (Let's Encrypt, or PGDB_ACME_DIRECTORY): two
 * certificates for the daemon's public host, one for the API (for the key
 * the API keeps, `tls/api.key`) and one for every database (a key of its
 * own: a database's container never holds the API's key), obtained with the kept
 * `acme-client` library over http-01 (a listener on port 80 that answers
 * only /.well-known/acme-challenge/), or over tls-alpn-01 when port 80
 * cannot be had (a listener on port 443, open only while a challenge is
 * validated, that answers only ALPN `acme-tls/1`), cached on the data volume
 * so restarts do not reissue, renewed when a third of its lifetime remains,
 * and given up (the own CA takes over) shortly before it expires when
 * renewal keeps failing. A PGDB_DOMAIN that does not resolve to this host
 * is refused before ordering, with the addresses it resolves to.
 *
 * Never in the way of starting: the daemon serves its own CA's certificates
 * until the first one is issued; every failure is kept for status and
 * health, and retried with backoff (Retry-After respected).
 */
import { createServer, type Server } from 'node:http';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import acme from 'acme-client';
import type { AcmeSummary } from '../../../contract/api.js';
import type { AcmeSettings } from '../common/config.js';
import type { Logger } from '../common/logger.js';

/** The ACME certificate and its key (PEM; the certificate with its chain). */
export interface AcmeCertificate {
  cert: string;
  key: string;
  notBefore: Date;
  notAfter: Date;
}

/** What one issuance gives: the API's certificate and the databases'; renewed together, timed by the earlier of the two. */
export interface AcmeCertificates {
  api: AcmeCertificate;
  databases: AcmeCertificate;
  notBefore: Date;
  notAfter: Date;
}

function pair(api: AcmeCertificate, databases: AcmeCertificate): AcmeCertificates {
  const earlier = api.notAfter <= databases.notAfter ? api : databases;
  return { api, databases, notBefore: earlier.notBefore, notAfter: earlier.notAfter };
}

const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** The ALPN protocol of tls-alpn-01 (RFC 8737). */
const ACME_TLS_PROTOCOL = 'acme-tls/1';

type ChallengeType = 'http-01' | 'tls-alpn-01';
const FIRST_RETRY_MS = 5_000;
const MAX_RETRY_MS = 60 * 60 * 1000;
/** Timers are re-armed at least this often (clock changes, setTimeout's 24.8-day limit). */
const MAX_WAIT_MS = 60 * 60 * 1000;

// acme-client retries failed requests itself (up to 5 times, 75 s) and then
// fails with a TypeError when there was no response at all; pgdbd retries on
// its own schedule instead and reads Retry-After from the last response.
(acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;

/** When to renew: a third of the lifetime before expiry. */
export function renewAt(cert: Pick<AcmeCertificate, 'notBefore' | 'notAfter'>): Date {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  return new Date(cert.notAfter.getTime() - lifetime / 3);
}

/**
 * When to stop serving it if renewal keeps failing: a tenth of the lifetime
 * before expiry (16 hours for Let's Encrypt's 160-hour certificates), so no
 * client ever sees it expired.
 */
export function fallbackAt(cert: Pick<AcmeCertificate, 'notBefore' | 'notAfter'>): Date {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  return new Date(cert.notAfter.getTime() - lifetime / 10);
}

/** Delay before retry number `failures` (1, 2, ...): 5 s doubling up to an hour, or the server's Retry-After when longer. */
export function retryDelay(failures: number, retryAfterMs: number | undefined): number {
  const backoff = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, failures - 1));
  return Math.max(backoff, Math.min(retryAfterMs ?? 0, 24 * MAX_RETRY_MS));
}

/** Retry-After as seconds or an HTTP date, in milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export class AcmeIssuer {
  private certificate: AcmeCertificates | undefined;
  /** Whether `certificate` is what the daemon serves (false before the first issuance and after a fallback). */
  private serving = false;
  private lastError: { message: string; at: Date } | undefined;
  private nextAttemptAt: Date | undefined;
  private failures = 0;
  private retryAfterMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private listener: Server | undefined;
  /** The tls-alpn-01 listener: open only during an attempt that could not have the http-01 port. */
  private alpnListener: TlsServer | undefined;
  private readonly challenges = new Map<string, string>();
  private interceptor: number | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  /** Called after every attempt, successful or not (health's problem set may have changed). */
  onAttempt: () => void = () => undefined;

  private constructor(
    private readonly settings: AcmeSettings,
    private readonly dir: string,
    /** The API's private key (PEM): the API's certificate is requested for it. */
    private readonly apiKey: string,
    private readonly logger: Logger,
    private readonly onChange: (certificate: AcmeCertificates | undefined) => void,
  ) {}

  /** Reads the cached certificate (when it is for these settings and still usable); starts nothing. */
  static async open(
    settings: AcmeSettings,
    tlsDir: string,
    apiKey: string,
    logger: Logger,
    onChange: (certificate: AcmeCertificates | undefined) => void,
  ): Promise<AcmeIssuer> {
    const dir = join(tlsDir, 'acme');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const issuer = new AcmeIssuer(settings, dir, apiKey, logger.child({ module: 'acme' }), onChange);
    issuer.certificate = await issuer.readCached();
    const now = new Date();
    if (issuer.certificate && now < fallbackAt(issuer.certificate)) {
      issuer.serving = true;
      issuer.logger.info({ notAfter: issuer.certificate.notAfter.toISOString(), identifier: settings.identifier }, 'using the cached ACME certificate');
    }
    return issuer;
  }

  /** The certificates to serve now, if any. */
  current(): AcmeCertificates | undefined {
    return this.serving ? this.certificate : undefined;
  }

  /** The ACME certificates held, served or not (a database may still carry one after a fallback). */
  held(): AcmeCertificates | undefined {
    return this.certificate;
  }

  summary(): AcmeSummary {
    const cert = this.certificate;
    return {
      directory: this.settings.directory,
      identifier: this.settings.identifier,
      profile: this.settings.profile ?? null,
      state: this.serving ? 'issued' : cert ? 'fallback' : 'pending',
      not_after: cert ? cert.notAfter.toISOString() : null,
      renew_at: cert ? renewAt(cert).toISOString() : null,
      last_error: this.lastError?.message ?? null,
      last_error_at: this.lastError?.at.toISOString() ?? null,
      next_attempt_at: this.nextAttemptAt?.toISOString() ?? null,
    };
  }

  /** Opens the http-01 listener and starts obtaining and renewing; returns at once. */
  start(): void {
    this.interceptor = acme.axios.interceptors.response.use((response) => {
      if (response.status === 429 || response.status === 503) {
        this.retryAfterMs = parseRetryAfter(response.headers['retry-after'] as string | undefined);
      }
      return response;
    });
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.interceptor !== undefined) acme.axios.interceptors.response.eject(this.interceptor);
    await this.running?.catch(() => undefined);
    await new Promise<void>((resolve) => (this.listener ? this.listener.close(() => resolve()) : resolve()));
    this.listener?.closeAllConnections();
    await this.closeAlpnListener();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.step().finally(() => (this.running = undefined));
    }, Math.max(0, Math.min(delayMs, MAX_WAIT_MS)));
    this.timer.unref();
  }

  /** One turn: fall back if due, (re)issue if due, then arm the timer for the next turn. */
  private async step(): Promise<void> {
    const now = new Date();
    const cert = this.certificate;
    if (cert && this.serving && now >= fallbackAt(cert)) {
      this.serving = false;
      this.logger.error(
        { notAfter: cert.notAfter.toISOString(), lastError: this.lastError?.message },
        "the ACME certificate could not be renewed and expires soon: serving pgdb's own CA's certificates until renewal succeeds",
      );
      this.onChange(undefined);
    }
    if (cert && now < renewAt(cert)) {
      this.nextAttemptAt = undefined;
      const next = Math.min(renewAt(cert).getTime(), this.serving ? fallbackAt(cert).getTime() : Infinity);
      return this.schedule(next - now.getTime());
    }
    try {
      if (!isIP(this.settings.identifier)) {
        const problem = await domainProblem(this.settings.identifier, this.settings.hostAddress);
        if (problem) throw new Error(problem);
      }
      const type = await this.openChallengeListener();
      const issued = await this.issue(type).finally(() => this.closeAlpnListener());
      if (this.stopped) return;
      this.certificate = issued;
      this.serving = true;
      this.failures = 0;
      this.lastError = undefined;
      this.nextAttemptAt = undefined;
      await this.writeCached(issued);
      this.logger.info(
        { identifier: this.settings.identifier, notAfter: issued.notAfter.toISOString(), renewAt: renewAt(issued).toISOString() },
        cert ? 'renewed the ACME certificate' : 'obtained an ACME certificate',
      );
      this.onChange(issued);
      this.onAttempt();
      const wait = Math.min(renewAt(issued).getTime(), fallbackAt(issued).getTime()) - Date.now();
      return this.schedule(wait);
    } catch (error) {
      if (this.stopped) return;
      this.failures++;
      const delay = retryDelay(this.failures, this.retryAfterMs);
      this.retryAfterMs = undefined;
      const message = (error as Error).message;
      this.lastError = { message, at: new Date() };
      const due = this.serving && cert ? Math.min(Date.now() + delay, fallbackAt(cert).getTime()) : Date.now() + delay;
      this.nextAttemptAt = new Date(due);
      this.logger.error(
        { err: message, failures: this.failures, nextAttemptAt: this.nextAttemptAt.toISOString(), serving: this.serving ? 'acme' : 'own-ca' },
        cert ? 'ACME renewal failed' : "ACME issuance failed; serving pgdb's own CA's certificates meanwhile",
      );
      this.onAttempt();
      return this.schedule(due - Date.now());
    }
  }

  /**
   * The listener that answers this attempt's challenges: http-01's (kept
   * open once had), or, when its port cannot be had, a tls-alpn-01 listener
   * for this attempt only. Neither: one error that names both ports.
   */
  private async openChallengeListener(): Promise<ChallengeType> {
    if (this.listener) return 'http-01';
    const { httpPort, tlsPort } = this.settings;
    const httpWhy = await this.openHttpListener();
    if (httpWhy === undefined) return 'http-01';
    const alpnWhy = await this.openAlpnListener();
    if (alpnWhy !== undefined) {
      throw new Error(
        `cannot listen on port ${httpPort} for ACME http-01 challenges: ${httpWhy}, nor on port ${tlsPort} for tls-alpn-01 challenges: ${alpnWhy}; ` +
          'pgdbd needs one of them open to the ACME server (or set PGDB_TLS=own-ca)',
      );
    }
    this.logger.warn({ httpPort, reason: httpWhy, tlsPort }, `port ${httpPort} is unavailable for http-01: answering ACME tls-alpn-01 challenges on port ${tlsPort} while validating`);
    return 'tls-alpn-01';
  }

  /** The http-01 listener: answers only /.well-known/acme-challenge/<token> for tokens of a running order. Undefined, or why it could not listen. */
  private async openHttpListener(): Promise<string | undefined> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '').split('?')[0];
      const token = path.startsWith(CHALLENGE_PREFIX) ? path.slice(CHALLENGE_PREFIX.length) : undefined;
      const answer = request.method === 'GET' && token !== undefined ? this.challenges.get(token) : undefined;
      if (answer === undefined) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      response.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
    });
    server.requestTimeout = 10_000;
    server.headersTimeout = 10_000;
    const why = await listen(server, this.settings.httpPort);
    if (why !== undefined) return why;
    server.on('error', (error) => this.logger.error({ err: error.message }, 'http-01 listener error'));
    // Shutting down does not wait for it.
    server.unref();
    this.listener = server;
    this.logger.info({ port: this.settings.httpPort }, 'answering ACME http-01 challenges');
    return undefined;
  }

  /**
   * The tls-alpn-01 listener: completes a handshake only for ALPN
   * `acme-tls/1`, presenting the challenge's certificate (set per
   * authorization); no certificate until then. Undefined, or why it could not listen.
   */
  private async openAlpnListener(): Promise<string | undefined> {
    const server = createTlsServer(
      { ALPNCallback: ({ protocols }) => (protocols.includes(ACME_TLS_PROTOCOL) ? ACME_TLS_PROTOCOL : undefined) },
      // The handshake is the whole answer.
      (socket) => socket.end(),
    );
    server.on('tlsClientError', () => undefined);
    const why = await listen(server, this.settings.tlsPort);
    if (why !== undefined) return why;
    server.on('error', (error) => this.logger.error({ err: error.message }, 'tls-alpn-01 listener error'));
    server.unref();
    this.alpnListener = server;
    this.logger.info({ port: this.settings.tlsPort }, 'answering ACME tls-alpn-01 challenges');
    return undefined;
  }

  private async closeAlpnListener(): Promise<void> {
    const server = this.alpnListener;
    if (!server) return;
    this.alpnListener = undefined;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The account, then two orders (the API's key first; the second reuses the authorization where the server allows). */
  private async issue(type: ChallengeType): Promise<AcmeCertificates> {
    const { directory, email } = this.settings;
    await checkDirectory(directory);
    const knownAccount = await this.accountUrl();
    const client = new acme.Client({
      directoryUrl: directory,
      accountKey: await this.accountKey(),
      ...(knownAccount ? { accountUrl: knownAccount } : {}),
      // Polling of challenges and orders: about a minute in all.
      backoffAttempts: 12,
      backoffMin: 1000,
      backoffMax: 10_000,
    });
    const step = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
      try {
        return await run();
      } catch (error) {
        throw new Error(`${what} failed: ${describe(error)}`);
      }
    };
    if (!knownAccount) {
      await step(`registering an account at ${directory}`, async () => {
        try {
          await client.createAccount({ termsOfServiceAgreed: true, ...(email ? { contact: [`mailto:${email}`] } : {}) });
        } catch (error) {
          // The key already had an account (its URL is known now); only the update acme-client
          // then sends was refused ("empty update"): the account is usable.
          if (!accountUrlOf(client)) throw error;
        }
      });
      await this.saveAccountUrl(accountUrlOf(client)!);
    }
    const api = await this.order(client, type, step, knownAccount, this.apiKey);
    const databases = await this.order(client, type, step, knownAccount, undefined);
    return pair(api, databases);
  }

  /** One complete order: order, http-01 or tls-alpn-01 challenges, finalize (for `key`, else a new one), download. */
  private async order(
    client: acme.Client,
    type: ChallengeType,
    step: <T>(what: string, run: () => Promise<T>) => Promise<T>,
    knownAccount: string | undefined,
    key: string | undefined,
  ): Promise<AcmeCertificate> {
    const { identifier, profile } = this.settings;
    const identifierType = isIP(identifier) ? 'ip' : 'dns';
    const order = await step(`ordering a certificate for ${identifier}${profile ? ` (profile ${profile})` : ''}`, async () => {
      try {
        return await client.createOrder({ identifiers: [{ type: identifierType, value: identifier }], ...(profile ? { profile } : {}) } as Parameters<
          typeof client.createOrder
        >[0]);
      } catch (error) {
        // The server may have forgotten the account (a test server restarted): register again next time.
        if (knownAccount) await this.saveAccountUrl(undefined);
        throw error;
      }
    });
    const authorizations = await step('reading the authorizations', () => client.getAuthorizations(order));
    for (const authorization of authorizations) {
      if (authorization.status === 'valid') continue;
      const challenge = authorization.challenges.find((c) => c.type === type);
      if (!challenge) throw new Error(`the ACME server offers no ${type} challenge for ${identifier}`);
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
      const port = type === 'http-01' ? this.settings.httpPort : this.settings.tlsPort;
      if (type === 'http-01') {
        this.challenges.set(challenge.token, keyAuthorization);
      } else {
        const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(authorization, keyAuthorization, await acme.crypto.createPrivateEcdsaKey('P-256'));
        this.alpnListener!.setSecureContext({ key: alpnKey, cert: alpnCert });
      }
      try {
        await step(`${type} validation of ${identifier} (the ACME server must reach port ${port} of this host)`, async () => {
          await client.completeChallenge(challenge);
          await client.waitForValidStatus(challenge);
        });
      } finally {
        this.challenges.delete(challenge.token);
      }
    }
    const [csrKey, csr] = await acme.crypto.createCsr({ altNames: [identifier] }, key ?? (await acme.crypto.createPrivateEcdsaKey('P-256')));
    const finalized = await step('finalizing the order', async () => {
      const pending = await client.finalizeOrder(order, csr);
      return pending.status === 'valid' ? pending : client.waitForValidStatus(pending);
    });
    const chain = await step('downloading the certificate', () => client.getCertificate(finalized));
    const leaf = new X509Certificate(chain);
    return { cert: chain, key: csrKey.toString(), notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) };
  }

  /** The account's URL at this directory, once registered (so renewals do not register again). */
  private async accountUrl(): Promise<string | undefined> {
    try {
      const saved = JSON.parse(await readFile(join(this.dir, 'account.json'), 'utf8')) as { directory?: string; url?: string };
      return saved.directory === this.settings.directory && typeof saved.url === 'string' ? saved.url : undefined;
    } catch {
      return undefined;
    }
  }

  private async saveAccountUrl(url: string | undefined): Promise<void> {
    await writeAtomic(join(this.dir, 'account.json'), `${JSON.stringify({ directory: this.settings.directory, url: url ?? null })}\n`, 0o644);
  }

  private async accountKey(): Promise<string> {
    const path = join(this.dir, 'account.key');
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const key = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
    await writePrivate(path, key);
    this.logger.info({ path }, 'created an ACME account key');
    return key;
  }

  /**
   * The cached certificates, if they are for these settings and the API's
   * key, and not expired. A cache of an earlier release (one certificate
   * for the API and the databases alike, `certificate.pem`) is not read: a
   * new pair is ordered.
   */
  private async readCached(): Promise<AcmeCertificates | undefined> {
    let apiCert: string;
    let databasesCert: string;
    let databasesKey: string;
    let meta: { directory?: string; identifier?: string; profile?: string | null };
    try {
      [apiCert, databasesCert, databasesKey, meta] = await Promise.all([
        readFile(join(this.dir, 'api.pem'), 'utf8'),
        readFile(join(this.dir, 'databases.pem'), 'utf8'),
        readFile(join(this.dir, 'databases.key'), 'utf8'),
        readFile(join(this.dir, 'certificate.json'), 'utf8').then((text) => JSON.parse(text) as typeof meta),
      ]);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.logger.warn({ err: (error as Error).message }, 'the cached ACME certificates cannot be read; new ones are ordered');
      return undefined;
    }
    const { directory, identifier } = this.settings;
    if (meta.directory !== directory || meta.identifier !== identifier || (meta.profile ?? null) !== (this.settings.profile ?? null)) {
      this.logger.info({ cached: meta }, 'the cached ACME certificates are for other settings; new ones are ordered');
      return undefined;
    }
    try {
      const api = certificateOf(apiCert, this.apiKey);
      if (!new X509Certificate(apiCert).checkPrivateKey(createPrivateKey(this.apiKey))) {
        this.logger.info('the cached ACME certificate of the API is for another key; new ones are ordered');
        return undefined;
      }
      const certificates = pair(api, certificateOf(databasesCert, databasesKey));
      return Date.now() < certificates.notAfter.getTime() ? certificates : undefined;
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'the cached ACME certificates do not parse; new ones are ordered');
      return undefined;
    }
  }

  private async writeCached(certificates: AcmeCertificates): Promise<void> {
    const { directory, identifier, profile } = this.settings;
    // Key first: a certificate on disk always has its key beside it (the API's is tls/api.key).
    await writePrivate(join(this.dir, 'databases.key'), certificates.databases.key);
    await writeAtomic(join(this.dir, 'databases.pem'), certificates.databases.cert, 0o644);
    await writeAtomic(join(this.dir, 'api.pem'), certificates.api.cert, 0o644);
    await writeAtomic(join(this.dir, 'certificate.json'), `${JSON.stringify({ directory, identifier, profile: profile ?? null })}\n`, 0o644);
    // An earlier release's single certificate, whose key databases held.
    await Promise.all(['certificate.pem', 'certificate.key'].map((name) => rm(join(this.dir, name), { force: true })));
  }
}

function certificateOf(cert: string, key: string): AcmeCertificate {
  const leaf = new X509Certificate(cert);
  return { cert, key, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) };
}

/** Listens on `port` (all addresses); undefined, or why not in a few words. */
async function listen(server: Server | TlsServer, port: number): Promise<string | undefined> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'EADDRINUSE' ? 'another program holds it (a web server?)' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
  }
}

/** The addresses of this host's interfaces, IPv4-mapped IPv6 unwrapped. */
function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((entry) => entry.address));
}

function bareAddress(address: string): string {
  return address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1').toLowerCase();
}

/**
 * The host's addresses for `name`, from getaddrinfo; a `.invalid` name fails
 * at once with ENOTFOUND, without a DNS query: RFC 6761 reserves that domain
 * so that it never resolves, and asks resolvers to answer so, but glibc asks
 * the DNS server anyway.
 */
export function resolveHost(name: string): Promise<Array<{ address: string }>> {
  if (/(?:^|\.)invalid\.?$/i.test(name)) {
    return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND', hostname: name }));
  }
  return lookup(name, { all: true });
}

/**
 * Why the ACME CA could not validate `domain` at this host: it does not
 * resolve, or none of its addresses is this host's (an interface's, or
 * `hostAddress`, the public IP PGDB_PUBLIC_HOST names behind NAT).
 * Undefined when it resolves here.
 */
export async function domainProblem(
  domain: string,
  hostAddress: string | undefined,
  resolve: (name: string) => Promise<Array<{ address: string }>> = resolveHost,
  addresses: () => string[] = interfaceAddresses,
): Promise<string | undefined> {
  let resolved: string[];
  try {
    resolved = (await resolve(domain)).map((entry) => bareAddress(entry.address));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return `PGDB_DOMAIN ${domain} does not resolve (${code}); point its DNS A or AAAA record at this host${hostAddress ? ` (${hostAddress})` : ''}`;
  }
  const mine = new Set([...addresses(), ...(hostAddress ? [hostAddress] : [])].map(bareAddress));
  if (resolved.some((address) => mine.has(address))) return undefined;
  return (
    `PGDB_DOMAIN ${domain} resolves to ${[...new Set(resolved)].join(', ')}, which is not this host${hostAddress ? ` (${hostAddress})` : ''}; ` +
    "point its DNS A or AAAA record at this host, or, behind NAT, set PGDB_PUBLIC_HOST to this host's public IP address"
  );
}

/**
 * Reads the directory first: an unreachable server or a URL that is not an
 * ACME directory gets a plain message (acme-client's would be obscure).
 */
async function checkDirectory(directory: string): Promise<void> {
  let response: Response;
  try {
    response = await fetch(directory, { signal: AbortSignal.timeout(15_000), redirect: 'follow' });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const code = cause?.code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS/.test(code)) {
      throw new Error(`the ACME directory ${directory} presents a certificate this host does not trust (${code})`);
    }
    throw new Error(`the ACME directory ${directory} is unreachable: ${code || cause?.message || (error as Error).message}`);
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) throw new Error(`the ACME directory ${directory} answered HTTP ${response.status}`);
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  if (!body || typeof body.newNonce !== 'string' || typeof body.newAccount !== 'string' || typeof body.newOrder !== 'string') {
    throw new Error(`${directory} is not an ACME directory (it does not list newNonce, newAccount and newOrder); check PGDB_ACME_DIRECTORY`);
  }
}

function accountUrlOf(client: acme.Client): string | undefined {
  try {
    return client.getAccountUrl();
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  const message = (error as Error).message ?? String(error);
  // acme-client's retry hook fails this way when a request got no response at all.
  if (error instanceof TypeError && message.includes("reading 'config'")) return 'the connection to the ACME server failed';
  return message;
}

async function writePrivate(path: string, text: string): Promise<void> {
  await writeAtomic(path, text, 0o600);
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, text, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
}
