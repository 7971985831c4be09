/**
 * Pebble, Let's Encrypt's test ACME server, on loopback for the e2e tier:
 * built by scripts/build-pebble.sh (PGDB_TEST_PEBBLE names the binary), with
 * a config file written here, free ports, and its own TLS certificate for
 * the directory. Its issuing root comes from the management port
 * (`/roots/0`); a test trusts it the way Let's Encrypt's is trusted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueServerCertificate, type KeyPair } from '../../daemon/src/tls/certificates.js';
import { freePort } from './daemon.js';
import { eventually, GaveUp } from './eventually.js';

export interface PebbleProfile {
  description: string;
  /** Seconds. */
  validityPeriod: number;
}

export interface PebbleOptions {
  /** The port Pebble validates http-01 on (the daemon's PGDB_ACME_HTTP_PORT). */
  httpPort: number;
  /** The port Pebble validates tls-alpn-01 on (the daemon's PGDB_ACME_TLS_PORT); a free one when not given. */
  tlsPort?: number;
  profiles?: Record<string, PebbleProfile>;
}

/** The binary from scripts/build-pebble.sh; tests that need it skip with this reason when it is missing. */
export function pebbleBinary(): string | undefined {
  return process.env.PGDB_TEST_PEBBLE || undefined;
}

export class Pebble {
  directory = '';
  /** Pebble's issuing root (PEM), from the management port. */
  root = '';
  private child: ChildProcess | undefined;
  private output = '';
  private listenPort = 0;
  private managementPort = 0;
  private readonly dir: string;
  /** The CA of the directory's own HTTPS certificate. */
  private listenerCa: KeyPair | undefined;

  constructor(
    private readonly binary: string,
    private readonly options: PebbleOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'pgdb-pebble-'));
  }

  /** PEM that makes a client trust both the directory's HTTPS and the certificates Pebble issues (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE). */
  get trustBundle(): string {
    return [this.listenerCa!.cert, this.root].map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)).join('');
  }

  get listenerCaCertificate(): string {
    return this.listenerCa!.cert;
  }

  get port(): number {
    return this.listenPort;
  }

  /** An https URL on the management port, which answers but is not an ACME directory. */
  get managementUrl(): string {
    return `https://127.0.0.1:${this.managementPort}`;
  }

  logs(): string {
    return this.output;
  }

  async start(): Promise<this> {
    this.listenerCa ??= await createCertificateAuthority('pgdb e2e Pebble listener CA');
    const listener = await issueServerCertificate(this.listenerCa, ['127.0.0.1', 'localhost']);
    writeFileSync(join(this.dir, 'cert.pem'), listener.cert);
    writeFileSync(join(this.dir, 'key.pem'), listener.key, { mode: 0o600 });
    this.listenPort = await freePort();
    this.managementPort = await freePort();
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${this.listenPort}`,
        managementListenAddress: `127.0.0.1:${this.managementPort}`,
        certificate: join(this.dir, 'cert.pem'),
        privateKey: join(this.dir, 'key.pem'),
        httpPort: this.options.httpPort,
        tlsPort: this.options.tlsPort ?? (await freePort()),
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        retryAfter: { authz: 1, order: 1 },
        keyAlgorithm: 'ecdsa',
        profiles: this.options.profiles ?? {
          default: { description: 'The default profile', validityPeriod: 7_776_000 },
          shortlived: { description: 'Short-lived, as Let\'s Encrypt issues for IP addresses', validityPeriod: 518_400 },
        },
      },
    };
    writeFileSync(join(this.dir, 'pebble-config.json'), JSON.stringify(config, null, 2));
    this.output = '';
    const child = spawn(this.binary, ['-config', join(this.dir, 'pebble-config.json')], {
      cwd: this.dir,
      // No random validation delay; no deliberately rejected nonces (acme-client copes, but they slow tests down).
      env: { PATH: process.env.PATH, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout!.on('data', (chunk) => (this.output += chunk));
    child.stderr!.on('data', (chunk) => (this.output += chunk));
    const root = await eventually('pebble answering', 20_000, async () => {
      if (child.exitCode !== null) throw new GaveUp(`pebble exited with ${child.exitCode}`);
      const answer = await this.get(this.managementPort, '/roots/0');
      if (answer.status !== 200) throw new Error(`/roots/0: HTTP ${answer.status}`);
      return answer.text;
    }, 100).catch((error: Error) => {
      throw new Error(`${error.message}:\n${this.output}`);
    });
    this.root = root.endsWith('\n') ? root : `${root}\n`;
    this.directory = `https://127.0.0.1:${this.listenPort}/dir`;
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private get(port: number, path: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const outgoing = request({ host: '127.0.0.1', port, path, ca: this.listenerCa!.cert, timeout: 5000 }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      });
      outgoing.on('timeout', () => outgoing.destroy(new Error('timeout')));
      outgoing.on('error', reject);
      outgoing.end();
    });
  }
}
