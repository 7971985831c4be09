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
import { API_CERTIFICATE_UNIT } from '../../contract/api.js';
import { isFingerprint } from './fingerprint.js';

export { isFingerprint, normalizeFingerprint } from './fingerprint.js';

/** A CA certificate the CLI trusts for one server, as stored in the config file. */
export interface PinnedCa {
  /** PEM of the CA certificate. */
  ca_cert: string;
  /** `sha256:` and the lowercase hex SHA-256 of the certificate's DER. */
  ca_fingerprint: string;
}

/** What the CLI trusts for one server: the CA it chains to, the key the API serves with, or both. */
export interface ServerPin extends Partial<PinnedCa> {
  /** `sha256:` and the lowercase hex SHA-256 of the API's DER public key (SubjectPublicKeyInfo). */
  api_key?: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/;

/**
 * `sha256:<hex>` of a certificate's DER public key (SubjectPublicKeyInfo),
 * the way pgdbd's health route prints `api_key_fingerprint`. (Not from a
 * peer certificate's `pubkey`: for EC keys node gives the bare point there.)
 */
export function publicKeyFingerprint(certificate: X509Certificate): string {
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${process.getBuiltinModule('node:crypto').createHash('sha256').update(spki).digest('hex')}`;
}

/** Whether the own CA marked a certificate's subject as the API's (API_CERTIFICATE_UNIT); no database's carries it. */
export function isApiSubject(unit: string | string[] | undefined): boolean {
  return (Array.isArray(unit) ? unit : [unit]).includes(API_CERTIFICATE_UNIT);
}

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
export function pinProblem(pin: ServerPin): string | undefined {
  if (pin.ca_fingerprint !== undefined && !isFingerprint(pin.ca_fingerprint)) {
    return 'ca_fingerprint is not sha256:<64 lowercase hex digits>';
  }
  if (pin.api_key !== undefined && !isFingerprint(pin.api_key)) {
    return 'api_key is not sha256:<64 lowercase hex digits>';
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

export type CertificateProblem = 'untrusted' | 'hostname' | 'expired' | 'not-yet-valid' | 'key-mismatch' | 'not-api';

/** The codes of ServerTrust's own checks of a verified certificate (keyRefusal). */
const KEY_MISMATCH = 'PGDB_API_KEY_MISMATCH';
const NOT_API = 'PGDB_NOT_API_CERTIFICATE';

/** An error for TLS's checkServerIdentity: the handshake ends there and nothing is sent. */
export function keyRefusal(problem: 'key-mismatch' | 'not-api', message: string): Error {
  return Object.assign(new Error(message), { code: problem === 'key-mismatch' ? KEY_MISMATCH : NOT_API });
}

/** What is wrong with the server's certificate, if the error is about that at all. */
export function certificateProblem(error: unknown): CertificateProblem | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === KEY_MISMATCH) return 'key-mismatch';
  if (code === NOT_API) return 'not-api';
  if (UNTRUSTED_CODES.has(code)) return 'untrusted';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'hostname';
  if (code === 'CERT_HAS_EXPIRED') return 'expired';
  if (code === 'CERT_NOT_YET_VALID') return 'not-yet-valid';
  return undefined;
}

/**
 * Whether `leaf` was issued and signed by `ca`, names `hostname`, and is
 * marked as the API's: what the CLI pinned to `ca` accepts as the API (one
 * level: pgdbd's CA signs its certificates directly). Returns the problem,
 * or undefined when it is fine.
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
  if (!isApiSubject(leaf.subject.split('\n').filter((part) => part.startsWith('OU=')).map((part) => part.slice(3)))) {
    return "its certificate is one of the CA's but not the API's (a database's certificate, or a daemon older than this CLI)";
  }
  return undefined;
}
