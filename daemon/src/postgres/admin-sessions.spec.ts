/**
 * Where the daemon's superuser works. A tenant owns its database and so its
 * settings (ALTER DATABASE ... SET search_path) and public schema: the
 * daemon's own sessions must not be steered by them. These tests follow
 * the connections the daemon makes through a deploy, info and a credential
 * rotation with the fake Postgres client and check each one's database
 * (certificate-renewal.spec does the same for renewals); the e2e attack
 * tests (hostile-tenant.e2e) run the real thing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeDocker } from '../testing/fake-docker.js';
import { createTestApp } from '../testing/test-app.js';
import { ADMIN_DATABASE, ADMIN_SESSION_OPTIONS, ADMIN_USER, dbnameArgument, RELOAD_CONFIGURATION, tenantSetup } from './postgres-container.js';
import { clientOptions } from './postgres.client.js';

describe("the daemon's superuser sessions", () => {
  it('start with search_path pg_catalog, pg_temp as a start-up option, for every target', () => {
    const options = clientOptions({ host: '127.0.0.1', port: 5432, user: ADMIN_USER, password: 'p', database: 'd', tls: { mode: 'plain' } }, 1000);
    assert.equal(options.options, '-c search_path=pg_catalog,pg_temp');
    assert.equal(ADMIN_SESSION_OPTIONS, options.options);
  });

  it("run in the maintenance database, except the set-up of a cluster no tenant has used yet", async () => {
    const docker = new FakeDocker();
    const t = await createTestApp({ docker });
    try {
      const deployed = await t.request('POST', '/v1/deploy', { body: { name: 'shop' } });
      assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
      assert.equal((await t.request('GET', '/v1/db/shop')).status, 200);
      assert.equal((await t.request('POST', '/v1/db/shop/credentials/rotate')).status, 200);

      const admin = [
        ...t.probe.executed.map((e) => ({ target: e.target, what: e.statements.join('; ') })),
        ...t.probe.queried.map((q) => ({ target: q.target, what: q.sql })),
      ].filter((c) => c.target.user === ADMIN_USER);
      assert.ok(admin.length >= 3, `expected the deploy's set-up, info and the rotation, got ${admin.length} sessions`);
      const setup = tenantSetup({ user: deployed.body.user, password: deployed.body.password, db: deployed.body.db }).join('; ');
      for (const session of admin) {
        const inTenantDb = session.target.database === deployed.body.db;
        if (inTenantDb) {
          // The set-up's password differs (SCRAM salt); its shape is what counts.
          assert.equal(session.what.replace(/PASSWORD '[^']*'/, "PASSWORD '…'"), setup.replace(/PASSWORD '[^']*'/, "PASSWORD '…'"), 'only the set-up runs in the tenant database');
        } else {
          assert.equal(session.target.database, ADMIN_DATABASE, session.what);
        }
      }
      assert.ok(admin.some((s) => /pg_catalog\.pg_stat_activity/.test(s.what) && s.target.database === ADMIN_DATABASE), 'info reads pg_stat_activity in the maintenance database');
    } finally {
      await t.close();
    }
  });
});

describe('database names given to client tools', () => {
  it('are dbname= values, so a name with = or a URI prefix is never read as a connection string', () => {
    assert.equal(dbnameArgument('pg_ab12'), "dbname='pg_ab12'");
    assert.equal(dbnameArgument('host=203.0.113.9 dbname=x'), "dbname='host=203.0.113.9 dbname=x'");
    assert.equal(dbnameArgument("it's"), "dbname='it\\'s'");
    assert.equal(dbnameArgument('back\\slash'), "dbname='back\\\\slash'");
    assert.equal(RELOAD_CONFIGURATION, 'SELECT pg_catalog.pg_reload_conf()');
  });
});
