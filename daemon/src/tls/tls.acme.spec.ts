import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { createCertificateAuthority, isIssuedBy, issueServerCertificate, newPrivateKey, notAfterOf, publicKeyFingerprintOf } from './certificates.js';
import { TlsService } from './tls.service.js';

const DAY = 24 * 60 * 60 * 1000;
const logger = createLogger('silent');
const DIRECTORY = 'https://acme.test.invalid/dir';

/**
 * A data directory holding cached ACME certificates for `identifier`, issued
 * `ageDays` ago for `days`: the API's for the API's key (tls/api.key), the
 * databases' for a key of their own.
 */
async function withCached(identifier: string, ageDays: number, days: number) {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-tls-acme-'));
  const dir = join(dataDir, 'tls', 'acme');
  mkdirSync(dir, { recursive: true });
  const apiKey = await newPrivateKey();
  writeFileSync(join(dataDir, 'tls', 'api.key'), apiKey, { mode: 0o600 });
  const issuer = await createCertificateAuthority('test ACME CA');
  const now = new Date(Date.now() - ageDays * DAY);
  const api = await issueServerCertificate(issuer, [identifier], { now, validityDays: days, key: apiKey });
  const databases = await issueServerCertificate(issuer, [identifier], { now, validityDays: days });
  writeFileSync(join(dir, 'api.pem'), api.cert);
  writeFileSync(join(dir, 'databases.pem'), databases.cert);
  writeFileSync(join(dir, 'databases.key'), databases.key, { mode: 0o600 });
  writeFileSync(join(dir, 'certificate.json'), JSON.stringify({ directory: DIRECTORY, identifier: '127.0.0.1', profile: 'shortlived' }));
  const config = loadConfig({
    PGDB_TOKEN: 'a-token-of-enough-length',
    PGDB_DATA_DIR: dataDir,
    PGDB_LISTEN: '0.0.0.0:8443',
    PGDB_TLS: 'acme',
    PGDB_ACME_DIRECTORY: DIRECTORY,
  });
  return { config, api, databases, dir, issuer };
}

describe('TlsService with the ACME source', () => {
  it("serves the cached ACME certificates at once: the API's with the API's key, the databases' with another", async () => {
    const { config, api, databases } = await withCached('127.0.0.1', 1, 6);
    const tls = await TlsService.open(config, logger);
    assert.equal(tls.source, 'acme');
    assert.equal(tls.summary().acme?.state, 'issued');
    assert.equal(tls.apiCredentials()?.cert, api.cert);
    const database = await tls.databaseCredentials();
    assert.equal(database.cert, databases.cert);
    assert.notEqual(publicKeyFingerprintOf(database.key), tls.summary().api_key_fingerprint, "no database gets the API's key");
    assert.equal(tls.databaseNeedsNew(database.notAfter.toISOString()), false);
    const ownCa = new Date(Date.now() + 300 * DAY).toISOString();
    assert.equal(tls.databaseNeedsNew(ownCa), true, 'a database still on the own CA gets the ACME certificate');
    const trust = tls.databaseTrust();
    assert.ok(trust.mode === 'verify' && Array.isArray(trust.ca) && trust.ca.includes(tls.caCertificate), 'the own CA stays trusted during the switch');
    const endorsement = tls.apiEndorsement()!;
    assert.ok(isIssuedBy(endorsement, tls.caCertificate));
    assert.equal(publicKeyFingerprintOf(endorsement), publicKeyFingerprintOf(api.cert), "the own CA vouches for the key behind the ACME certificate");
  });

  it('does not serve cached certificates inside their last tenth (the fallback window), and takes them off the databases', async () => {
    const { config, api, databases } = await withCached('127.0.0.1', 5.5, 6);
    const tls = await TlsService.open(config, logger);
    assert.equal(tls.source, 'own-ca');
    assert.equal(tls.summary().acme?.state, 'fallback');
    assert.notEqual(tls.apiCredentials()?.cert, api.cert);
    assert.equal(tls.databaseNeedsNew(notAfterOf(databases.cert).toISOString()), true);
    assert.notEqual((await tls.databaseCredentials()).cert, databases.cert);
  });

  it("orders anew when the cached API certificate is not for the API's key, or the cache is an earlier release's single certificate", async () => {
    const { config, dir, issuer } = await withCached('127.0.0.1', 1, 6);
    const other = await issueServerCertificate(issuer, ['127.0.0.1'], { validityDays: 6 });
    writeFileSync(join(dir, 'api.pem'), other.cert);
    assert.equal((await TlsService.open(config, logger)).summary().acme?.state, 'pending');
    for (const name of ['api.pem', 'databases.pem', 'databases.key']) rmSync(join(dir, name));
    writeFileSync(join(dir, 'certificate.pem'), other.cert);
    writeFileSync(join(dir, 'certificate.key'), other.key);
    assert.equal((await TlsService.open(config, logger)).summary().acme?.state, 'pending');
  });

  it('ignores a cached certificate made for other settings', async () => {
    const { config } = await withCached('127.0.0.1', 1, 6);
    const other = { ...config, acme: { ...config.acme!, identifier: '127.0.0.2' } };
    const tls = await TlsService.open(other, logger);
    assert.equal(tls.source, 'own-ca');
    assert.equal(tls.summary().acme?.state, 'pending');
  });
});
