import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../testing/test-app.js';

describe('HTTP contract (real Nest/Fastify app, fake Docker)', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp();
  });
  afterEach(async () => {
    await t.close();
  });

  describe('authentication', () => {
    it('rejects a request without a token with 401 and the error shape', async () => {
      const res = await t.request('GET', '/v1/status', { token: null });
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'UNAUTHORIZED');
      assert.match(res.body.error.message, /Bearer/);
    });

    it('rejects a wrong token with 401 on every route', async () => {
      for (const [method, url] of [['GET', '/v1/status'], ['POST', '/v1/deploy'], ['DELETE', '/v1/db/x']] as const) {
        const res = await t.request(method, url, { token: 'not-the-token-at-all', body: method === 'POST' ? {} : undefined });
        assert.equal(res.status, 401, `${method} ${url}`);
        assert.equal(res.body.error.code, 'UNAUTHORIZED');
      }
    });

    it('serves health without a token: the verdict and the TLS summary only; the details to the token; 401 to a wrong one', async () => {
      const anonymous = await t.request('GET', '/v1/health', { token: null });
      assert.equal(anonymous.status, 200);
      assert.deepEqual(Object.keys(anonymous.body).sort(), ['status', 'tls']);
      assert.equal(anonymous.body.status, 'ok');
      const full = await t.request('GET', '/v1/health');
      assert.deepEqual({ status: full.body.status, docker: full.body.docker, problems: full.body.problems }, { status: 'ok', docker: 'reachable', problems: [] });
      assert.match(full.body.version, /^\d+\.\d+\.\d+/);
      assert.deepEqual(full.body.tls, anonymous.body.tls);
      const wrong = await t.request('GET', '/v1/health', { token: 'not-the-token-at-all' });
      assert.deepEqual([wrong.status, wrong.body.error.code], [401, 'UNAUTHORIZED']);
      // Degraded: anyone learns that, only the token's holder learns why.
      t.docker.reachable = false;
      try {
        const down = await t.request('GET', '/v1/health', { token: null });
        assert.deepEqual([down.status, Object.keys(down.body).sort(), down.body.status], [503, ['status', 'tls'], 'degraded']);
        const why = await t.request('GET', '/v1/health');
        assert.equal(why.status, 503);
        assert.ok(why.body.problems.length > 0, JSON.stringify(why.body));
      } finally {
        t.docker.reachable = true;
      }
    });
  });

  describe('the default CPU limit', () => {
    it('gives a new database PGDB_DEFAULT_CPUS as its container limit and in info', async () => {
      const limited = await createTestApp({ env: { PGDB_DEFAULT_CPUS: '0.5' } });
      try {
        const res = await limited.request('POST', '/v1/deploy', { body: { name: 'capped' } });
        assert.equal(res.status, 201, JSON.stringify(res.body));
        const [container] = [...limited.docker.containers.values()];
        assert.equal(container.spec.limits.nanoCpus, 0.5e9);
        const info = await limited.request('GET', '/v1/db/capped');
        assert.equal(info.body.limits.cpus, 0.5);
      } finally {
        await limited.close();
      }
    });
  });

  describe('deploy', () => {
    it('returns 201 with credentials and a percent-safe URL built from them', async () => {
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'mydb', size_gb: 5, version: 15 } });
      assert.equal(res.status, 201);
      const d = res.body;
      assert.equal(d.name, 'mydb');
      assert.equal(d.host, 'db.example.test');
      assert.equal(d.postgres_version, 15);
      assert.match(d.db, /^pg_[a-z0-9]{10}$/);
      assert.match(d.user, /^u_[a-z0-9]{10}$/);
      assert.ok(d.password.length >= 32);
      assert.equal(d.database_url, `postgres://${d.user}:${d.password}@db.example.test:${d.port}/${d.db}?sslmode=require`);
      assert.ok(d.port >= 40000 && d.port <= 40099);
      assert.equal(t.probe.probed.at(-1)?.password, d.password, 'readiness is proven with the returned credentials');
    });

    it('generates a name, uses the default version and records size_gb', async () => {
      const res = await t.request('POST', '/v1/deploy', { body: {} });
      assert.equal(res.status, 201);
      assert.match(res.body.name, /^db-[a-z0-9]{8}$/);
      assert.equal(res.body.postgres_version, 17);
      const status = await t.request('GET', '/v1/status');
      assert.equal(status.body.items[0].size_gb, 10);
    });

    it('accepts a request without a body', async () => {
      const res = await t.request('POST', '/v1/deploy');
      assert.equal(res.status, 201);
    });

    it('labels the container and volume and mounts the volume where the major expects it', async () => {
      await t.request('POST', '/v1/deploy', { body: { name: 'labelled', version: 17 } });
      const [container] = t.docker.containers.values();
      assert.equal(container.spec.labels['pgdb.managed'], 'true');
      assert.equal(container.spec.labels['pgdb.name'], 'labelled');
      assert.equal(container.spec.mountPath, '/var/lib/postgresql/data');
      assert.equal(t.docker.volumes.get(container.spec.volumeName)?.['pgdb.name'], 'labelled');
    });

    it("keeps the admin's password out of the container's environment: the image initialises with a derived one, which the daemon replaces at once", async () => {
      await t.request('POST', '/v1/deploy', { body: { name: 'secretive' } });
      const [container] = t.docker.containers.values();
      const record = JSON.parse(readFileSync(join(t.config.dataDir, 'registry.json'), 'utf8')).items[0];
      const initial = container.spec.env.POSTGRES_PASSWORD;
      assert.ok(initial && initial !== record.admin_password);
      assert.ok(!Object.values(container.spec.env).some((value) => value.includes(record.admin_password)), 'no variable holds it');
      const [first] = t.probe.executed;
      assert.deepEqual([first.target.user, first.target.password, first.target.database], ['pgdb_admin', initial, 'postgres']);
      assert.match(first.statements[0], /^ALTER ROLE pgdb_admin PASSWORD 'SCRAM-SHA-256\$/);
      assert.ok(!first.statements[0].includes(record.admin_password));
      // Everything after that connects with the real password.
      assert.ok(t.probe.executed.slice(1).every((e) => e.target.user !== 'pgdb_admin' || e.target.password === record.admin_password));
    });

    it('answers 409 for a name that exists, and changes nothing', async () => {
      await t.request('POST', '/v1/deploy', { body: { name: 'dup' } });
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'dup' } });
      assert.equal(res.status, 409);
      assert.equal(res.body.error.code, 'DB_ALREADY_EXISTS');
      assert.equal(t.docker.containers.size, 1);
      assert.equal(t.docker.volumes.size, 1);
    });

    const badBodies: Array<[string, unknown]> = [
      ['an unknown field', { name: 'ok', replicas: 3 }],
      ['an upper-case name', { name: 'MyDb' }],
      ['a name with a path', { name: '../etc' }],
      ['a name with shell characters', { name: 'a;rm -rf' }],
      ['a name ending with a dash', { name: 'abc-' }],
      ['a name starting with a digit', { name: '1abc' }],
      ['an overlong name', { name: 'a'.repeat(49) }],
      ['a name that is not a string', { name: 42 }],
      ['a size given as a string', { size_gb: '10' }],
      ['a fractional size', { size_gb: 1.5 }],
      ['a zero size', { size_gb: 0 }],
      ['a version given as a string', { version: '17' }],
      ['an array body', [1, 2]],
    ];
    for (const [what, body] of badBodies) {
      it(`answers 400 for ${what}`, async () => {
        const res = await t.request('POST', '/v1/deploy', { body });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'INVALID_REQUEST');
        assert.equal(t.docker.containers.size, 0);
      });
    }

    it('reports the first problem of a field: a size given as a string is not a number', async () => {
      const res = await t.request('POST', '/v1/deploy', { body: { size_gb: '10', name: 'Bad' } });
      assert.equal(res.status, 400);
      assert.equal(
        res.body.error.message,
        'name may contain only lowercase letters, digits and dashes, must start with a letter and must not end with a dash; ' +
          'size_gb must be a whole number of gigabytes',
      );
    });

    it('answers 400 listing the supported versions for an unsupported one', async () => {
      const res = await t.request('POST', '/v1/deploy', { body: { version: 12 } });
      assert.equal(res.status, 400);
      assert.match(res.body.error.message, /supported versions: 15, 17/);
    });

    it('moves to another port when something outside pgdb holds the chosen one', async () => {
      t.docker.foreignPorts.add(40000);
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'moved' } });
      assert.equal(res.status, 201);
      assert.equal(res.body.port, 40001);
      const status = await t.request('GET', '/v1/status');
      assert.equal(status.body.items[0].host_port, 40001);
    });

    it('gives concurrent deploys distinct ports', async () => {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => t.request('POST', '/v1/deploy', { body: { name: `c${i}` } })),
      );
      assert.deepEqual(results.map((r) => r.status), Array(10).fill(201));
      assert.equal(new Set(results.map((r) => r.body.port)).size, 10);
    });

    it('answers 504 when Postgres never becomes ready and removes container, volume and record', async () => {
      t.probe.ready = false;
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'slow' } });
      assert.equal(res.status, 504);
      assert.equal(res.body.error.code, 'POSTGRES_NOT_READY');
      assert.match(res.body.error.message, /journalctl -u pgdbd/);
      assert.equal(t.docker.containers.size, 0);
      assert.equal(t.docker.volumes.size, 0);
      assert.deepEqual((await t.request('GET', '/v1/status')).body.items, []);
    });

    it('answers 502 when the image cannot be had, reserving nothing', async () => {
      t.docker.images.clear();
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'noimage' } });
      assert.equal(res.status, 502);
      assert.equal(res.body.error.code, 'IMAGE_UNAVAILABLE');
      assert.deepEqual((await t.request('GET', '/v1/status')).body.items, []);
    });

    it('answers 500 without details when Docker fails unexpectedly, and cleans up', async () => {
      t.docker.failRun = new Error('boom with a secret inside');
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'boom' } });
      assert.equal(res.status, 500);
      assert.equal(res.body.error.code, 'INTERNAL');
      assert.doesNotMatch(JSON.stringify(res.body), /secret|stack|at /);
      assert.equal(t.docker.volumes.size, 0);
    });
  });

  describe('Docker engine unreachable', () => {
    it('answers 503 for deploy and status, and health says degraded', async () => {
      t.docker.reachable = false;
      const deploy = await t.request('POST', '/v1/deploy', { body: {} });
      assert.equal(deploy.status, 503);
      assert.equal(deploy.body.error.code, 'DOCKER_UNAVAILABLE');
      const status = await t.request('GET', '/v1/status');
      assert.equal(status.status, 503);
      const health = await t.request('GET', '/v1/health');
      assert.equal(health.status, 503);
      assert.equal(health.body.docker, 'unreachable');
      t.docker.reachable = true;
      assert.equal((await t.request('POST', '/v1/deploy', { body: {} })).status, 201);
    });
  });

  describe('status', () => {
    it('lists records with live state and hides secrets unless asked', async () => {
      const deployed = (await t.request('POST', '/v1/deploy', { body: { name: 'listed' } })).body;
      const res = await t.request('GET', '/v1/status');
      assert.equal(res.status, 200);
      const [item] = res.body.items;
      assert.equal(item.name, 'listed');
      assert.equal(item.state, 'running');
      assert.equal(item.health, 'healthy');
      assert.equal(item.used_bytes, 1024);
      assert.equal(item.password, undefined);
      assert.equal(item.database_url, undefined);
      assert.doesNotMatch(JSON.stringify(res.body), new RegExp(deployed.password));

      const secret = await t.request('GET', '/v1/status?show_secrets=true');
      assert.equal(secret.body.items[0].password, deployed.password);
      assert.equal(secret.body.items[0].database_url, deployed.database_url);
    });

    it('says missing when the container is gone', async () => {
      await t.request('POST', '/v1/deploy', { body: { name: 'gone' } });
      t.docker.containers.clear();
      const res = await t.request('GET', '/v1/status');
      assert.equal(res.body.items[0].state, 'missing');
    });

    it('rejects a show_secrets value that is not a boolean', async () => {
      const res = await t.request('GET', '/v1/status?show_secrets=maybe');
      assert.equal(res.status, 400);
    });
  });

  describe('destroy', () => {
    it('removes container, volume and record by default', async () => {
      await t.request('POST', '/v1/deploy', { body: { name: 'bye' } });
      const res = await t.request('DELETE', '/v1/db/bye');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { ok: true, backups_kept: true });
      assert.equal(t.docker.containers.size, 0);
      assert.equal(t.docker.volumes.size, 0);
      const { backups, tls, ...rest } = (await t.request('GET', '/v1/status')).body;
      assert.deepEqual(rest, { items: [], detached_volumes: [], unknown_containers: [], pool: [] });
      assert.equal(backups.kind, 'local', 'the backups (kept) are in the local repository');
      assert.equal(tls.source, 'own-ca');
    });

    it('two destroys at once, one keeping the data and one not: the first wins, the other gets 409, and the winner decides the volume', async () => {
      await t.request('POST', '/v1/deploy', { body: { name: 'raced' } });
      const volume = [...t.docker.containers.values()][0].spec.volumeName;
      // Hold the first destroy in the engine, so that the second arrives while it runs.
      const remove = t.docker.removeContainer.bind(t.docker);
      t.docker.removeContainer = async (id: string) => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        return remove(id);
      };
      try {
        const first = t.request('DELETE', '/v1/db/raced?keep_data=true');
        await new Promise((resolve) => setTimeout(resolve, 50));
        const second = await t.request('DELETE', '/v1/db/raced');
        assert.equal(second.status, 409);
        assert.equal(second.body.error.code, 'DB_BUSY');
        assert.equal((await first).status, 200);
      } finally {
        t.docker.removeContainer = remove;
      }
      assert.equal(t.docker.volumes.has(volume), true, 'the data the winner kept');
      assert.deepEqual((await t.request('GET', '/v1/status')).body.detached_volumes.map((v: { name: string }) => v.name), ['raced']);
    });

    it('keeps the volume with keep_data=true and lists it as detached', async () => {
      await t.request('POST', '/v1/deploy', { body: { name: 'keep' } });
      const container = [...t.docker.containers.values()][0];
      const res = await t.request('DELETE', '/v1/db/keep?keep_data=true');
      assert.equal(res.status, 200);
      assert.equal(t.docker.containers.has(container.id), false);
      assert.equal(t.docker.volumes.size, 1);
      // What remains is a holder that never runs, so that `docker volume prune` keeps the volume.
      const [holder] = [...t.docker.containers.values()];
      assert.equal(holder.running, false);
      assert.equal(holder.spec.volumeName, container.spec.volumeName);
      assert.equal(holder.spec.labels['pgdb.keeps_volume'], container.spec.volumeName);
      const status = (await t.request('GET', '/v1/status')).body;
      assert.deepEqual(status.items, []);
      assert.equal(status.detached_volumes[0].name, 'keep');
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'keep' } })).status, 201, 'the name is free again');
    });

    it('answers 404 for an unknown database and 400 for an invalid name', async () => {
      const unknown = await t.request('DELETE', '/v1/db/nothing-here');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'DB_NOT_FOUND');
      const invalid = await t.request('DELETE', '/v1/db/NOT_VALID');
      assert.equal(invalid.status, 400);
      const badFlag = await t.request('DELETE', '/v1/db/nothing-here?keep_data=yes-please');
      assert.equal(badFlag.status, 400);
    });
  });

  it('keeps registry.json private: file 0600, directory 0700', async () => {
    await t.request('POST', '/v1/deploy', { body: { name: 'private' } });
    const file = join(t.config.dataDir, 'registry.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(t.config.dataDir).mode & 0o777, 0o700);
    const record = JSON.parse(readFileSync(file, 'utf8')).items[0];
    assert.deepEqual(
      Object.keys(record).sort(),
      [
        'admin_password', 'backup', 'container_id', 'created_at', 'db', 'host', 'host_port', 'layout', 'memory_mb', 'name', 'password',
        'postgres_version', 'size_gb', 'tls_not_after', 'user', 'volume_name',
      ],
    );
  });
});

describe('unknown routes', () => {
  let t: TestApp;
  after(async () => t?.close());
  it('answer 404 in the error shape', async () => {
    t = await createTestApp();
    const res = await t.request('GET', '/v1/nothing');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'NOT_FOUND');
  });
});
