/**
 * Plain helpers about certificates and addresses, with no I/O: fingerprints
 * in the form pgdbd reports them, what counts as loopback, and which TLS
 * errors mean "this certificate is not the one we trust".
 *
 * node:crypto and node:tls are loaded when a certificate is first handled
 * (process.getBuiltinModule): `pgdb status` over plain HTTP to loopback needs
 * neither, and loading them costs milliseconds at every start.
 */
import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { isFingerprint } from './fingerprint.js';

export { isFingerprint, normalizeFingerprint } from './fingerprint.js';

/** A CA certificate the CLI trusts for one server, as stored in the config file. */
export interface PinnedCa {
  /** PEM of the CA certificate. */
  ca_cert: string;
  /** `sha256:` and the lowercase hex SHA-256 of the certificate's DER. */
  ca_fingerprint: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/;

/** `sha256:<hex>` of a certificate, the way pgdbd's health route and install.sh print it. */
export function fingerprintOf(certificate: X509Certificate): string {
  return `sha256:${certificate.fingerprint256.replaceAll(':', '').toLowerCase()}`;
}

/** The first PEM certificate in `text`, parsed; undefined when there is none or it does not parse. */
export function parseCertificate(text: string): { pem: string; certificate: X509Certificate } | undefined {
  const match = PEM_CERTIFICATE.exec(text);
  if (!match) return undefined;
  try {
    const pem = `${match[0]}\n`;
    return { pem, certificate: new (process.getBuiltinModule('node:crypto').X509Certificate)(pem) };
  } catch {
    return undefined;
  }
}

/** A pin read back from the config: the PEM must parse and hash to the stored fingerprint. */
export function pinProblem(pin: Partial<PinnedCa>): string | undefined {
  if (pin.ca_fingerprint !== undefined && !isFingerprint(pin.ca_fingerprint)) {
    return 'ca_fingerprint is not sha256:<64 lowercase hex digits>';
  }
  if (pin.ca_cert === undefined) return undefined;
  const parsed = parseCertificate(pin.ca_cert);
  if (!parsed) return 'ca_cert is not a PEM certificate';
  if (pin.ca_fingerprint !== undefined && fingerprintOf(parsed.certificate) !== pin.ca_fingerprint) {
    return 'ca_cert does not match ca_fingerprint';
  }
  return undefined;
}

/**
 * Literal loopback only: 127.0.0.0/8, ::1 and `localhost`. A name that merely
 * resolves to a loopback address does not count: resolution can change, and
 * the check must be made before any connection.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (host === 'localhost' || host === '::1') return true;
  const octets = host.split('.');
  return octets.length === 4 && octets[0] === '127' && octets.every((octet) => /^\d{1,3}$/.test(octet) && Number(octet) <= 255);
}

/** OpenSSL's codes for "the chain does not lead to a CA we trust" (as opposed to network errors). */
const UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

export type CertificateProblem = 'untrusted' | 'hostname' | 'expired' | 'not-yet-valid';

/** What is wrong with the server's certificate, if the error is about that at all. */
export function certificateProblem(error: unknown): CertificateProblem | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  if (UNTRUSTED_CODES.has(code)) return 'untrusted';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'hostname';
  if (code === 'CERT_HAS_EXPIRED') return 'expired';
  if (code === 'CERT_NOT_YET_VALID') return 'not-yet-valid';
  return undefined;
}

/**
 * Whether `leaf` was issued and signed by `ca`, and names `hostname`: what a
 * TLS client pinned to `ca` would accept (one level: pgdbd's CA signs its
 * certificates directly). Returns the problem, or undefined when it is fine.
 */
export function leafProblem(leaf: X509Certificate, ca: X509Certificate, hostname: string): string | undefined {
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) {
    return 'its certificate is not issued by the CA it serves at /v1/ca';
  }
  const now = Date.now();
  if (Date.parse(leaf.validFrom) > now || Date.parse(leaf.validTo) < now) {
    return `its certificate is not valid now (valid from ${leaf.validFrom} to ${leaf.validTo})`;
  }
  const subjectaltname = leaf.subjectAltName ?? '';
  const identity = process.getBuiltinModule('node:tls').checkServerIdentity(hostname.replace(/^\[(.*)\]$/, '$1'), {
    subject: {},
    subjectaltname,
  } as PeerCertificate);
  if (identity) {
    return `its certificate is not valid for ${hostname} (it names ${subjectaltname || 'no host'})`;
  }
  return undefined;
}
