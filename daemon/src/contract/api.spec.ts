import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { databaseUrl, withSsl } from './api.js';

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
