import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { createCertificateAuthority, issueServerCertificate, notAfterOf } from './certificates.js';
import { TlsService } from './tls.service.js';

const DAY = 24 * 60 * 60 * 1000;
const logger = createLogger('silent');
const DIRECTORY = 'https://acme.test.invalid/dir';

/** A data directory holding a cached ACME certificate for `identifier`, issued `ageDays` ago for `days`. */
async function withCached(identifier: string, ageDays: number, days: number) {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-tls-acme-'));
  const dir = join(dataDir, 'tls', 'acme');
  mkdirSync(dir, { recursive: true });
  const issuer = await createCertificateAuthority('test ACME CA');
  const pair = await issueServerCertificate(issuer, [identifier], { now: new Date(Date.now() - ageDays * DAY), validityDays: days });
  writeFileSync(join(dir, 'certificate.pem'), pair.cert);
  writeFileSync(join(dir, 'certificate.key'), pair.key, { mode: 0o600 });
  writeFileSync(join(dir, 'certificate.json'), JSON.stringify({ directory: DIRECTORY, identifier: '127.0.0.1', profile: 'shortlived' }));
  const config = loadConfig({
    PGDB_TOKEN: 'a-token-of-enough-length',
    PGDB_DATA_DIR: dataDir,
    PGDB_LISTEN: '0.0.0.0:8443',
    PGDB_TLS: 'acme',
    PGDB_ACME_DIRECTORY: DIRECTORY,
  });
  return { config, pair };
}

describe('TlsService with the ACME source', () => {
  it('serves a cached ACME certificate at once, for the API and every database', async () => {
    const { config, pair } = await withCached('127.0.0.1', 1, 6);
    const tls = await TlsService.open(config, logger);
    assert.equal(tls.source, 'acme');
    assert.equal(tls.summary().acme?.state, 'issued');
    assert.equal(tls.apiCredentials()?.cert, pair.cert);
    const database = await tls.databaseCredentials();
    assert.equal(database.cert, pair.cert);
    assert.equal(tls.databaseNeedsNew(database.notAfter.toISOString()), false);
    const ownCa = new Date(Date.now() + 300 * DAY).toISOString();
    assert.equal(tls.databaseNeedsNew(ownCa), true, 'a database still on the own CA gets the ACME certificate');
    const trust = tls.databaseTrust();
    assert.ok(trust.mode === 'verify' && Array.isArray(trust.ca) && trust.ca.includes(tls.caCertificate), 'the own CA stays trusted during the switch');
  });

  it('does not serve a cached certificate inside its last tenth (the fallback window), and takes it off the databases', async () => {
    const { config, pair } = await withCached('127.0.0.1', 5.5, 6);
    const tls = await TlsService.open(config, logger);
    assert.equal(tls.source, 'own-ca');
    assert.equal(tls.summary().acme?.state, 'fallback');
    assert.notEqual(tls.apiCredentials()?.cert, pair.cert);
    assert.equal(tls.databaseNeedsNew(notAfterOf(pair.cert).toISOString()), true);
    assert.notEqual((await tls.databaseCredentials()).cert, pair.cert);
  });

  it('ignores a cached certificate made for other settings', async () => {
    const { config } = await withCached('127.0.0.1', 1, 6);
    const other = { ...config, acme: { ...config.acme!, identifier: '127.0.0.2' } };
    const tls = await TlsService.open(other, logger);
    assert.equal(tls.source, 'own-ca');
    assert.equal(tls.summary().acme?.state, 'pending');
  });
});
