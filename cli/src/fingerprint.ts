/**
 * CA fingerprints as pgdb prints and accepts them: plain string work, no
 * crypto, so that checking `--trust-fingerprint` loads nothing heavy.
 */

/** Where to read the API key's fingerprint, for hints. */
export const KEY_ON_SERVER =
  "api_key_fingerprint in install.sh's output or in GET /v1/health with the token; by hand: sudo openssl pkey -in <the key: /var/lib/pgdb/tls/api.key, or PGDB_TLS_KEY_FILE's> -pubout -outform DER | sha256sum";

const FINGERPRINT = /^sha256:[0-9a-f]{64}$/;

export function isFingerprint(value: string): boolean {
  return FINGERPRINT.test(value);
}

/**
 * Accepts `sha256:<hex>` as pgdb prints it, and also what
 * `openssl x509 -fingerprint -sha256` prints (`AB:CD:...`, with or without
 * the `sha256 Fingerprint=` prefix). Undefined when it is neither.
 */
export function normalizeFingerprint(raw: string): string | undefined {
  const hex = raw
    .trim()
    .replace(/^sha256(?::|\s+fingerprint=)/i, '')
    .replaceAll(':', '')
    .toLowerCase();
  const fingerprint = `sha256:${hex}`;
  return isFingerprint(fingerprint) ? fingerprint : undefined;
}

/** For yargs checks: `--trust-fingerprint` in a form pgdb understands. */
export function checkFingerprintOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const fingerprint = normalizeFingerprint(value);
  if (!fingerprint) {
    throw new Error(`--trust-fingerprint must be sha256:<64 hex digits> (as install.sh and pgdb print it), got "${value}"`);
  }
  return fingerprint;
}
