import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { domainProblem, fallbackAt, parseRetryAfter, renewAt, resolveHost, retryDelay } from './acme.js';

const HOUR = 60 * 60 * 1000;

describe('ACME timing', () => {
  const cert = { notBefore: new Date(0), notAfter: new Date(160 * HOUR) };

  it('renews a 160-hour certificate when a third of its lifetime remains, and gives it up when a tenth remains', () => {
    assert.equal(Math.round(renewAt(cert).getTime()), Math.round((160 - 160 / 3) * HOUR));
    assert.equal(fallbackAt(cert).getTime(), 144 * HOUR);
    assert.ok(renewAt(cert) < fallbackAt(cert), 'renewal is tried long before the fallback');
  });

  it('backs off from 5 s, doubling to an hour, and waits longer when the server says so', () => {
    assert.deepEqual([1, 2, 3, 4].map((n) => retryDelay(n, undefined)), [5000, 10_000, 20_000, 40_000]);
    assert.equal(retryDelay(30, undefined), HOUR);
    assert.equal(retryDelay(1, 120_000), 120_000, 'Retry-After longer than the backoff wins');
    assert.equal(retryDelay(3, 1000), 20_000, 'a shorter Retry-After does not hurry the backoff');
  });

  it('reads Retry-After in seconds or as an HTTP date', () => {
    assert.equal(parseRetryAfter('120'), 120_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.parse('Wed, 21 Oct 2026 07:27:00 GMT')), 60_000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });
});

describe('PGDB_DOMAIN resolves to this host', () => {
  const resolvesTo = (...addresses: string[]) => async () => addresses.map((address) => ({ address }));
  const here = () => ['127.0.0.1', '::1', '10.0.0.5'];

  it('accepts a domain with one address on an interface, or on PGDB_PUBLIC_HOST (NAT)', async () => {
    assert.equal(await domainProblem('db.example.com', undefined, resolvesTo('10.0.0.5'), here), undefined);
    assert.equal(await domainProblem('db.example.com', undefined, resolvesTo('198.51.99.7', '::ffff:10.0.0.5'), here), undefined);
    assert.equal(await domainProblem('db.example.com', '198.51.99.7', resolvesTo('198.51.99.7'), here), undefined);
  });

  it('names the addresses of a domain that resolves elsewhere', async () => {
    const problem = await domainProblem('db.example.com', '198.51.99.7', resolvesTo('203.0.113.9', '203.0.113.9'), here);
    assert.equal(
      problem,
      'PGDB_DOMAIN db.example.com resolves to 203.0.113.9, which is not this host (198.51.99.7); ' +
        "point its DNS A or AAAA record at this host, or, behind NAT, set PGDB_PUBLIC_HOST to this host's public IP address",
    );
  });

  it('says so when the domain does not resolve', async () => {
    const fails = async () => {
      throw Object.assign(new Error('getaddrinfo EAI_AGAIN db.example.com'), { code: 'EAI_AGAIN' });
    };
    assert.equal(
      await domainProblem('db.example.com', '198.51.99.7', fails, here),
      'PGDB_DOMAIN db.example.com does not resolve (EAI_AGAIN); point its DNS A or AAAA record at this host (198.51.99.7)',
    );
    const problem = await domainProblem('pgdb-e2e-nowhere.invalid', undefined);
    assert.equal(problem, 'PGDB_DOMAIN pgdb-e2e-nowhere.invalid does not resolve (ENOTFOUND); point its DNS A or AAAA record at this host');
  });

  it('answers a .invalid name (RFC 6761) without asking DNS, and any other name with getaddrinfo', async () => {
    for (const name of ['x.invalid', 'X.INVALID.', 'invalid']) {
      await assert.rejects(resolveHost(name), { code: 'ENOTFOUND' });
    }
    // Any other name goes to getaddrinfo (localhost: from /etc/hosts, no DNS query).
    assert.ok((await resolveHost('localhost')).length > 0);
  });

  it('accepts localhost with the real resolver and interfaces', async () => {
    assert.equal(await domainProblem('localhost', undefined), undefined);
  });
});
