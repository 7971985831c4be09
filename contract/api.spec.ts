import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { databaseUrl, LOGS_TAIL_MAX, maskPassword, parseSince, parseTail, withSsl } from './api.js';

describe('database URLs', () => {
  const parts = { user: 'u_x', password: 'p@ss/word', host: '2001:db8::1', port: 15432, db: 'pg_x' };

  it('say sslmode=require by default, with every part percent-encoded and IPv6 in brackets', () => {
    assert.equal(databaseUrl(parts), 'postgres://u_x:p%40ss%2Fword@[2001:db8::1]:15432/pg_x?sslmode=require');
  });

  it('take verify-full with a root certificate path that libpq decodes (a space is %20, not +)', () => {
    const url = withSsl(databaseUrl(parts), { sslmode: 'verify-full', sslrootcert: '/home/a b/ca.pem' });
    assert.equal(url, 'postgres://u_x:p%40ss%2Fword@[2001:db8::1]:15432/pg_x?sslmode=verify-full&sslrootcert=%2Fhome%2Fa%20b%2Fca.pem');
    assert.equal(withSsl(url, { sslmode: 'require' }), databaseUrl(parts));
  });
});

describe('logs parameters', () => {
  const now = Date.UTC(2026, 0, 31, 12, 0, 0);

  it('since: durations back from now, RFC 3339 times and Unix seconds', () => {
    assert.deepEqual(parseSince('90s', now), { seconds: now / 1000 - 90 });
    assert.deepEqual(parseSince('10m', now), { seconds: now / 1000 - 600 });
    assert.deepEqual(parseSince('2h', now), { seconds: now / 1000 - 7200 });
    assert.deepEqual(parseSince('1d', now), { seconds: now / 1000 - 86400 });
    assert.deepEqual(parseSince('2026-01-31T11:00:00Z', now), { seconds: now / 1000 - 3600 });
    assert.deepEqual(parseSince('2026-01-31T12:00:00+01:00', now), { seconds: now / 1000 - 3600 });
    assert.deepEqual(parseSince('1769860800', now), { seconds: 1769860800 });
  });

  it('since: anything else is a problem that says what is accepted', () => {
    for (const bad of ['', 'yesterday', '10', 'm', '-5m', '10x', '1.5h', '2026-13-45', '2026-02-01T00:00:00Z']) {
      const parsed = parseSince(bad, now);
      if (bad === '10') {
        assert.deepEqual(parsed, { seconds: 10 }, 'bare digits are Unix seconds');
        continue;
      }
      assert.ok('problem' in parsed, `${JSON.stringify(bad)} gave ${JSON.stringify(parsed)}`);
    }
    assert.match((parseSince('2026-02-01T00:00:00Z', now) as { problem: string }).problem, /in the future/);
    assert.match((parseSince('soon', now) as { problem: string }).problem, /not a duration \(e\.g\. 90s, 10m, 2h, 1d\)/);
  });

  it('tail: 0 to LOGS_TAIL_MAX lines, or all', () => {
    assert.deepEqual(parseTail('0'), { lines: 0 });
    assert.deepEqual(parseTail(String(LOGS_TAIL_MAX)), { lines: LOGS_TAIL_MAX });
    assert.deepEqual(parseTail('all'), { lines: 'all' });
    for (const bad of ['-1', String(LOGS_TAIL_MAX + 1), '1.5', 'ten', '']) assert.ok('problem' in parseTail(bad), bad);
  });
});

describe('maskPassword', () => {
  it('replaces the password and nothing else', () => {
    assert.equal(maskPassword('postgres://u_x:s3cr%40t@h:5432/db?sslmode=require'), 'postgres://u_x:****@h:5432/db?sslmode=require');
    assert.equal(maskPassword('postgres://u_x@h:5432/db'), 'postgres://u_x@h:5432/db');
  });
});
