/**
 * X.509 for pgdb's own certificate authority: creating the CA, issuing server
 * certificates from it, and reading what matters back (fingerprint, expiry).
 * ECDSA P-256 throughout: keys are made in well under a millisecond, and every
 * TLS stack pgdb's clients use (OpenSSL, Go, Java, Node.js) accepts them.
 *
 * Pure functions over PEM strings; storing and renewing is TlsService's job.
 */
// @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata';
import { createHash, createPublicKey, webcrypto, X509Certificate as NodeCertificate } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates are valid from a little before they are made, so a skewed client clock still accepts them. */
const BACKDATE_MS = 60 * 60 * 1000;

export const CA_VALIDITY_DAYS = 3650;
export const SERVER_VALIDITY_DAYS = 397;
/** A server certificate is renewed when fewer than this many days remain. */
export const RENEW_BEFORE_DAYS = 30;

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

export async function createCertificateAuthority(commonName: string, now = new Date()): Promise<KeyPair> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }, { O: ['pgdb'] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys: keys as CryptoKeyPair,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey as CryptoKey) };
}

/**
 * A server certificate for `hosts` (DNS names and IP addresses, all in the
 * subjectAltName; the first is also the common name), signed by the CA.
 */
export async function issueServerCertificate(
  ca: KeyPair,
  hosts: string[],
  options: {
    now?: Date;
    validityDays?: number;
    /** Also as DNS-type names, taken literally: for clients that match only DNS names even against an IP address (pgBackRest 2.45). */
    literalDnsNames?: string[];
    /** The private key (PKCS#8 PEM) to certify; a new one by default. */
    key?: string;
    /** The subject's organizational unit: API_CERTIFICATE_UNIT marks the API's certificate (contract/api.ts). */
    unit?: string;
  } = {},
): Promise<KeyPair> {
  if (hosts.length === 0) throw new Error('a server certificate needs at least one host name');
  const now = options.now ?? new Date();
  const issuer = new x509.X509Certificate(ca.cert);
  const signingKey = await importKey(ca.key);
  const keys = options.key === undefined ? await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']) : await importKeyPair(options.key);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [hosts[0]] }, { O: ['pgdb'] }, ...(options.unit === undefined ? [] : [{ OU: [options.unit] }])],
    issuer: issuer.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + (options.validityDays ?? SERVER_VALIDITY_DAYS) * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey as CryptoKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        [...subjectAltNames(hosts), ...(options.literalDnsNames ?? []).map((value) => ({ type: 'dns' as const, value }))],
        false,
      ),
      await x509.AuthorityKeyIdentifierExtension.create(await issuer.publicKey.export(), false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
    ],
  });
  return { cert: cert.toString('pem'), key: options.key ?? (await exportKey(keys.privateKey as CryptoKey)) };
}

/** `sha256:` and the lowercase hex SHA-256 of the certificate's DER: what clients pin. */
export function fingerprintOf(certPem: string): string {
  return `sha256:${new NodeCertificate(certPem).fingerprint256.replaceAll(':', '').toLowerCase()}`;
}

export function notAfterOf(certPem: string): Date {
  return new Date(new NodeCertificate(certPem).validTo);
}

/** Whether a certificate is inside its renewal window (or past it) at `now`. */
export function needsRenewal(certPem: string, now = new Date(), renewBeforeDays = RENEW_BEFORE_DAYS): boolean {
  return notAfterOf(certPem).getTime() - now.getTime() < renewBeforeDays * DAY_MS;
}

/** Hosts a certificate covers: the DNS names and IP addresses in its subjectAltName. */
export function hostsOf(certPem: string): string[] {
  const names = new NodeCertificate(certPem).subjectAltName ?? '';
  return names
    .split(', ')
    .filter(Boolean)
    .map((entry) => entry.replace(/^(DNS|IP Address):/, ''));
}

/** Whether `certPem` was signed by `caPem` (its signature checks out against the CA's key). */
export function isIssuedBy(certPem: string, caPem: string): boolean {
  const cert = new NodeCertificate(certPem);
  const ca = new NodeCertificate(caPem);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

function subjectAltNames(hosts: string[]): Array<{ type: 'dns' | 'ip'; value: string }> {
  const unique = [...new Set(hosts.map((host) => host.replace(/^\[(.*)\]$/, '$1')))];
  return unique.map((host) => (isIP(host) ? { type: 'ip', value: host } : { type: 'dns', value: host }));
}

async function exportKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** A new private key (PKCS#8 PEM) of the kind this CA certifies. */
export async function newPrivateKey(): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  return exportKey(keys.privateKey as CryptoKey);
}

/** `sha256:` and the lowercase hex SHA-256 of the DER SubjectPublicKeyInfo of a key or certificate (PEM): what clients pin for the API. */
export function publicKeyFingerprintOf(pem: string): string {
  const publicKey = pem.includes('CERTIFICATE') ? new NodeCertificate(pem).publicKey : createPublicKey(pem);
  return `sha256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

/** The key pair of a private key in PEM (the public half derived from it), for certifying. */
async function importKeyPair(pem: string): Promise<CryptoKeyPair> {
  const spki = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  const [privateKey, publicKey] = await Promise.all([
    importKey(pem),
    webcrypto.subtle.importKey('spki', spki, ALGORITHM, true, ['verify']) as Promise<CryptoKey>,
  ]);
  return { privateKey, publicKey };
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']) as Promise<CryptoKey>;
}

/** A positive 128-bit serial (the leading byte's top bit clear keeps it positive in DER). */
function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  return Buffer.from(bytes).toString('hex');
}
