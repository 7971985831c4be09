import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { X509Certificate } from 'node:crypto';
import { API_CERTIFICATE_UNIT } from '../../../contract/api.js';
import { createCertificateAuthority, fingerprintOf, hostsOf, isIssuedBy, issueServerCertificate, publicKeyFingerprintOf } from './certificates.js';
import { TlsService } from './tls.service.js';

const DAY = 24 * 60 * 60 * 1000;
const logger = createLogger('silent');

function configFor(env: Record<string, string> = {}) {
  return loadConfig({
    PGDB_TOKEN: 'a-token-of-enough-length',
    PGDB_DATA_DIR: mkdtempSync(join(tmpdir(), 'pgdb-tls-')),
    PGDB_PUBLIC_HOST: 'db.example.com',
    PGDB_LISTEN: '0.0.0.0:8443',
    PGDB_TLS: 'own-ca',
    ...env,
  });
}

describe('TlsService', () => {
  it('creates the CA once, key 0600, and reuses it at the next start', async () => {
    const config = configFor();
    const first = await TlsService.open(config, logger);
    const keyPath = join(config.dataDir, 'tls', 'ca.key');
    assert.equal(statSync(keyPath).mode & 0o777, 0o600);
    assert.equal(statSync(join(config.dataDir, 'tls')).mode & 0o777, 0o700);
    const second = await TlsService.open(config, logger);
    assert.equal(second.caCertificate, first.caCertificate);
    assert.equal(second.summary().ca_fingerprint, fingerprintOf(readFileSync(join(config.dataDir, 'tls', 'ca.crt'), 'utf8')));
    assert.doesNotMatch(JSON.stringify(second.summary()), /PRIVATE KEY/);
  });

  it('tightens a CA key that others can read', async () => {
    const config = configFor();
    await TlsService.open(config, logger);
    const keyPath = join(config.dataDir, 'tls', 'ca.key');
    chmodSync(keyPath, 0o644);
    await TlsService.open(config, logger);
    assert.equal(statSync(keyPath).mode & 0o777, 0o600);
  });

  it("issues the API's certificate for the public host and loopback, and database certificates for the public host", async () => {
    const tls = await TlsService.open(configFor(), logger);
    const api = tls.apiCredentials();
    assert.ok(api);
    assert.deepEqual(hostsOf(api.cert), ['db.example.com', 'localhost', '127.0.0.1', '0:0:0:0:0:0:0:1']);
    assert.ok(isIssuedBy(api.cert, tls.caCertificate));
    const database = await tls.databaseCredentials();
    assert.deepEqual(hostsOf(database.cert), ['db.example.com']);
    assert.ok(isIssuedBy(database.cert, tls.caCertificate));
    assert.notEqual((await tls.databaseCredentials()).cert, database.cert, 'each database gets a certificate of its own');
  });

  it("keeps the API's key across starts and renewals, marks only the API's certificate, and gives no database that key", async () => {
    const config = configFor();
    const tls = await TlsService.open(config, logger);
    const api = tls.apiCredentials()!;
    const keyPath = join(config.dataDir, 'tls', 'api.key');
    assert.equal(statSync(keyPath).mode & 0o777, 0o600);
    assert.equal(api.key, readFileSync(keyPath, 'utf8'));
    assert.match(new X509Certificate(api.cert).subject, new RegExp(`OU=${API_CERTIFICATE_UNIT}`));
    assert.equal(tls.summary().api_key_fingerprint, publicKeyFingerprintOf(api.key));
    assert.equal(tls.apiEndorsement(), api.cert, 'in own-CA mode the endorsement is the certificate served');
    const database = await tls.databaseCredentials();
    assert.notEqual(publicKeyFingerprintOf(database.key), publicKeyFingerprintOf(api.key));
    assert.doesNotMatch(new X509Certificate(database.cert).subject, /OU=/, "a database's certificate does not carry the API's mark");

    const swapped: string[] = [];
    assert.equal(await tls.renew({ setSecureContext: (o) => swapped.push(o.cert) }, new Date(Date.now() + 380 * DAY)), true);
    assert.equal(publicKeyFingerprintOf(swapped[0]), publicKeyFingerprintOf(api.key), 'a renewal keeps the key');
    const again = await TlsService.open(config, logger);
    assert.equal(again.summary().api_key_fingerprint, publicKeyFingerprintOf(api.key), 'so does a restart');
  });

  it('has no API certificate when the API speaks plain HTTP', async () => {
    const tls = await TlsService.open(configFor({ PGDB_LISTEN: '127.0.0.1:8080' }), logger);
    assert.equal(tls.apiCredentials(), undefined);
    assert.equal(tls.summary().api, false);
  });

  it("renews the API's certificate in its last 30 days and swaps it into the live server", async () => {
    const tls = await TlsService.open(configFor(), logger);
    const swapped: string[] = [];
    const server = { setSecureContext: (options: { cert: string }) => swapped.push(options.cert) };
    assert.equal(await tls.renew(server, new Date()), false);
    assert.equal(await tls.renew(server, new Date(Date.now() + 380 * DAY)), true);
    assert.equal(swapped.length, 1);
    assert.equal(tls.apiCredentials()!.cert, swapped[0]);
  });

  it('says when a database certificate is due', async () => {
    const tls = await TlsService.open(configFor(), logger);
    const now = new Date('2026-06-01T00:00:00Z');
    assert.equal(tls.databaseNeedsNew(undefined, now), true);
    assert.equal(tls.databaseNeedsNew(new Date(now.getTime() + 31 * DAY).toISOString(), now), false);
    assert.equal(tls.databaseNeedsNew(new Date(now.getTime() + 29 * DAY).toISOString(), now), true);
  });

  it("uses the operator's certificate for the API only, gives databases the own CA's, and picks up a renewed one", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgdb-operator-'));
    const publicCa = await createCertificateAuthority('a public CA');
    const first = await issueServerCertificate(publicCa, ['db.example.com'], { validityDays: 90 });
    const certFile = join(dir, 'fullchain.pem');
    const keyFile = join(dir, 'privkey.pem');
    writeFileSync(certFile, first.cert);
    writeFileSync(keyFile, first.key);
    const tls = await TlsService.open(configFor({ PGDB_TLS_CERT_FILE: certFile, PGDB_TLS_KEY_FILE: keyFile }), logger);
    assert.equal(tls.summary().source, 'operator');
    assert.equal(tls.apiCredentials()!.cert, first.cert);
    assert.equal(tls.apiEndorsement(), undefined, "no CA of this daemon vouches for the operator's key");
    const database = await tls.databaseCredentials();
    assert.ok(isIssuedBy(database.cert, tls.caCertificate), "a database's certificate comes from the own CA: the operator's key stays with the API");
    assert.equal(tls.databaseNeedsNew(database.notAfter.toISOString()), false);
    const operatorNotAfter = new Date(new X509Certificate(first.cert).validTo).toISOString();
    assert.equal(tls.databaseNeedsNew(operatorNotAfter), true, "a database that an earlier release gave the operator's certificate gets its own");
    const trust = tls.databaseTrust();
    assert.ok(trust.mode === 'verify' && Array.isArray(trust.ca) && trust.ca.includes(tls.caCertificate));

    const renewed = await issueServerCertificate(publicCa, ['db.example.com'], { validityDays: 90, now: new Date(Date.now() + DAY) });
    writeFileSync(certFile, renewed.cert);
    writeFileSync(keyFile, renewed.key);
    const swapped: string[] = [];
    assert.equal(await tls.renew({ setSecureContext: (o) => swapped.push(o.cert) }), true);
    assert.deepEqual(swapped, [renewed.cert]);
    assert.equal(tls.databaseNeedsNew(database.notAfter.toISOString()), false, "databases keep their own CA's certificate");
  });

  it("refuses an operator key that is not the certificate's", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgdb-operator-'));
    const ca = await createCertificateAuthority('a public CA');
    const [one, two] = await Promise.all([issueServerCertificate(ca, ['a.example.com']), issueServerCertificate(ca, ['a.example.com'])]);
    writeFileSync(join(dir, 'cert.pem'), one.cert);
    writeFileSync(join(dir, 'key.pem'), two.key);
    const config = configFor({ PGDB_TLS_CERT_FILE: join(dir, 'cert.pem'), PGDB_TLS_KEY_FILE: join(dir, 'key.pem') });
    await assert.rejects(TlsService.open(config, logger), /is not the key of/);
  });
});
