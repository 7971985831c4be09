import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adminSources, pgHba } from './postgres-container.js';

describe('pg_hba of a database', () => {
  it("lets the daemon's superuser in only from where the daemon's connections arrive, over TLS", () => {
    const sources = adminSources(['172.20.0.1'], '0.0.0.0')!;
    assert.deepEqual(sources, ['127.0.0.1', '::1', '172.20.0.1'], 'published on all addresses: reached on loopback, through the gateway');
    const lines = pgHba(sources).split('\n');
    const admin = lines.findIndex((line) => line === 'host all pgdb_admin all reject');
    const everyone = lines.indexOf('hostssl all all all scram-sha-256');
    assert.ok(lines.includes('hostssl all pgdb_admin 172.20.0.1/32 scram-sha-256'));
    assert.ok(lines.includes('hostssl all pgdb_admin ::1/128 scram-sha-256'));
    assert.ok(admin > lines.indexOf('hostssl all pgdb_admin 172.20.0.1/32 scram-sha-256') && admin < everyone, 'first match wins: the reject sits between');
    assert.ok(lines.includes('local all all trust') && lines.at(-2) === 'hostnossl all all all reject');
  });

  it('adds the one host address the port is published on, but not a loopback one', () => {
    assert.deepEqual(adminSources(['172.20.0.1'], '203.0.113.10'), ['127.0.0.1', '::1', '172.20.0.1', '203.0.113.10']);
    assert.deepEqual(adminSources(['172.20.0.1'], '127.0.0.2'), ['127.0.0.1', '::1', '172.20.0.1']);
    assert.deepEqual(adminSources(['172.20.0.1'], '[2001:db8::5]'), ['127.0.0.1', '::1', '172.20.0.1', '2001:db8::5']);
  });

  it('restricts nothing when the network names no gateway: better open than locked out', () => {
    assert.equal(adminSources([], '0.0.0.0'), undefined);
    assert.doesNotMatch(pgHba(undefined), /pgdb_admin/);
  });
});
