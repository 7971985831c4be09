/**
 * Certificate authorities for tests, made with the openssl binary (node:crypto
 * cannot issue certificates): a CA like the one pgdbd creates, and server
 * certificates it signs for the names a test asks for.
 */
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_CERTIFICATE_UNIT } from '../../../contract/api.js';

export interface KeyPair {
  cert: string;
  key: string;
}

export class TestCa {
  readonly cert: string;
  private readonly dir = mkdtempSync(join(tmpdir(), 'pgdb-test-ca-'));
  private serial = 0;

  constructor(readonly name = 'pgdb test CA') {
    process.once('exit', () => rmSync(this.dir, { recursive: true, force: true }));
    openssl(
      ['req', '-x509', ...newKey(), '-keyout', this.path('ca.key'), '-out', this.path('ca.crt'), '-days', '2'],
      ['-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    );
    this.cert = readFileSync(this.path('ca.crt'), 'utf8');
  }

  /** `sha256:<hex>` of the CA certificate, as pgdbd reports it. */
  get fingerprint(): string {
    return `sha256:${new X509Certificate(this.cert).fingerprint256.replaceAll(':', '').toLowerCase()}`;
  }

  /** Where the CA certificate is, as a file (what --ca-file takes). */
  get certPath(): string {
    return this.path('ca.crt');
  }

  /**
   * A server certificate for `names` (IP addresses or DNS names), signed by
   * this CA: by default as pgdbd's CA issues the API's (marked with
   * API_CERTIFICATE_UNIT); `database: true` as it issues a database's.
   * `key`: certify this key (PEM) instead of a new one.
   */
  issue(names: string[] = ['127.0.0.1', 'localhost'], options: { database?: boolean; key?: string } = {}): KeyPair {
    const id = (this.serial += 1);
    const [key, csr, cert, ext] = ['key', 'csr', 'crt', 'ext'].map((suffix) => this.path(`server-${id}.${suffix}`));
    const san = names.map((name) => (/^[\d.]+$|:/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
    writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    const subject = options.database ? '/CN=pgdbd/O=pgdb' : `/CN=pgdbd/O=pgdb/OU=${API_CERTIFICATE_UNIT}`;
    if (options.key !== undefined) writeFileSync(key, options.key, { mode: 0o600 });
    openssl(['req', '-new', ...(options.key === undefined ? [...newKey(), '-keyout', key] : ['-key', key]), '-out', csr, '-subj', subject], []);
    openssl(['x509', '-req', '-in', csr, '-CA', this.path('ca.crt'), '-CAkey', this.path('ca.key')], [
      '-set_serial', String(id), '-days', '1', '-extfile', ext, '-out', cert,
    ]);
    return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
  }

  private path(name: string): string {
    return join(this.dir, name);
  }
}

function newKey(): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
}

function openssl(args: string[], more: string[]): void {
  execFileSync('openssl', [...args, ...more], { stdio: ['ignore', 'ignore', 'pipe'] });
}
