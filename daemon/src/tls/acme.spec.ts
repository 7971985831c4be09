import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fallbackAt, parseRetryAfter, renewAt, retryDelay } from './acme.js';

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
