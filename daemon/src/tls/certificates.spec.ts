import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  createCertificateAuthority,
  fingerprintOf,
  hostsOf,
  isIssuedBy,
  issueServerCertificate,
  needsRenewal,
  notAfterOf,
  SERVER_VALIDITY_DAYS,
} from './certificates.js';

const DAY = 24 * 60 * 60 * 1000;

describe('certificates', () => {
  it('makes a CA that can sign and nothing else', async () => {
    const ca = await createCertificateAuthority('pgdb CA test');
    const cert = new X509Certificate(ca.cert);
    assert.equal(cert.ca, true);
    assert.match(cert.subject, /CN=pgdb CA test/);
    assert.match(ca.key, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(fingerprintOf(ca.cert), /^sha256:[0-9a-f]{64}$/);
  });

  it('issues a server certificate whose subjectAltName holds an IP address as an IP and a name as DNS', async () => {
    const ca = await createCertificateAuthority('pgdb CA test');
    const leaf = await issueServerCertificate(ca, ['203.0.113.10', 'db.example.com', '[2001:db8::1]']);
    const cert = new X509Certificate(leaf.cert);
    assert.equal(cert.ca, false);
    assert.equal(cert.subjectAltName, 'IP Address:203.0.113.10, DNS:db.example.com, IP Address:2001:DB8:0:0:0:0:0:1');
    assert.ok(cert.checkHost('db.example.com'));
    assert.ok(cert.checkIP('203.0.113.10'));
    assert.equal(cert.checkHost('other.example.com'), undefined);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']); // serverAuth
    assert.ok(isIssuedBy(leaf.cert, ca.cert));
    assert.deepEqual(hostsOf(leaf.cert), ['203.0.113.10', 'db.example.com', '2001:DB8:0:0:0:0:0:1']);
  });

  it('is not taken for a certificate of another CA', async () => {
    const [ours, theirs] = await Promise.all([createCertificateAuthority('ours'), createCertificateAuthority('theirs')]);
    const leaf = await issueServerCertificate(theirs, ['db.example.com']);
    assert.equal(isIssuedBy(leaf.cert, ours.cert), false);
  });

  it('expires after the validity asked for, and is due for renewal in its last 30 days', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const ca = await createCertificateAuthority('pgdb CA test', now);
    const leaf = await issueServerCertificate(ca, ['db.example.com'], { now });
    assert.equal(notAfterOf(leaf.cert).getTime(), Math.floor((now.getTime() + SERVER_VALIDITY_DAYS * DAY) / 1000) * 1000);
    assert.equal(needsRenewal(leaf.cert, now), false);
    assert.equal(needsRenewal(leaf.cert, new Date(now.getTime() + (SERVER_VALIDITY_DAYS - 31) * DAY)), false);
    assert.equal(needsRenewal(leaf.cert, new Date(now.getTime() + (SERVER_VALIDITY_DAYS - 29) * DAY)), true);
    assert.equal(needsRenewal(leaf.cert, new Date(now.getTime() + (SERVER_VALIDITY_DAYS + 1) * DAY)), true);
  });

  it('refuses to issue a certificate for no host', async () => {
    const ca = await createCertificateAuthority('pgdb CA test');
    await assert.rejects(issueServerCertificate(ca, []), /at least one host/);
  });
});
