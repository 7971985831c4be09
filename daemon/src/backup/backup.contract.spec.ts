import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeDocker } from '../testing/fake-docker.js';
import { createTestApp } from '../testing/test-app.js';

describe('backups (real Nest/Fastify app, fake Docker)', () => {
  it('runs the configured image as is when it has pgBackRest (labelled), and archives into a stanza of its own', async () => {
    const t = await createTestApp();
    try {
      const res = await t.request('POST', '/v1/deploy', { body: { name: 'shop' } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const [container] = [...t.docker.containers.values()];
      assert.equal(container.spec.image, 'postgres:17');
      assert.deepEqual(t.docker.builtImages, []);
      const command = container.spec.command!.join(' ');
      assert.match(command, /archive_mode=on/);
      assert.match(command, new RegExp(`--stanza=${container.spec.volumeName} archive-push --io-timeout=5 %p`));
      assert.equal(container.spec.env.POSTGRES_INITDB_ARGS, '--data-checksums');
      const conf = container.spec.files.find((f) => f.path === '/etc/pgdb/pgbackrest.conf')!;
      assert.equal(conf.mode, 0o600);
      assert.equal(conf.uid, 999);
      assert.match(conf.content, /^repo1-cipher-type=aes-256-cbc$/m);
      assert.deepEqual(container.spec.binds, [{ source: `${t.config.dataDir}/backups/${container.spec.volumeName}`, target: '/var/lib/pgdb-backups' }]);
    } finally {
      await t.close();
    }
  });

  it('derives an image with pgBackRest from an official image that lacks it, once', async () => {
    const docker = new FakeDocker();
    docker.imageLabelsOf.set('postgres:17', {});
    const t = await createTestApp({ docker });
    try {
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'one' } })).status, 201);
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'two' } })).status, 201);
      assert.equal(docker.builtImages.length, 1);
      assert.equal(docker.builtImages[0].tag, 'pgdb-local/postgres:17');
      assert.match(docker.builtImages[0].dockerfile, /^FROM postgres:17$/m);
      assert.match(docker.builtImages[0].dockerfile, /apt-get install -y --no-install-recommends pgbackrest/);
      assert.deepEqual([...docker.containers.values()].map((c) => c.spec.image), ['pgdb-local/postgres:17', 'pgdb-local/postgres:17']);
    } finally {
      await t.close();
    }
  });

  it('with PGDB_BACKUP=off: the image as is, no archiving, no stanza, no backup routes', async () => {
    const docker = new FakeDocker();
    docker.imageLabelsOf.set('postgres:17', {});
    const t = await createTestApp({ docker, env: { PGDB_BACKUP: 'off' } });
    try {
      assert.equal((await t.request('POST', '/v1/deploy', { body: { name: 'plain' } })).status, 201);
      const [container] = [...docker.containers.values()];
      assert.equal(container.spec.image, 'postgres:17');
      assert.doesNotMatch(container.spec.command!.join(' '), /archive/);
      assert.deepEqual(container.spec.binds, []);
      const listed = await t.request('GET', '/v1/db/plain/backups');
      assert.equal(listed.status, 409);
      assert.match(listed.body.error.message, /backups are off/);
      assert.equal((await t.request('GET', '/v1/status')).body.backups, null);
      const destroyed = await t.request('DELETE', '/v1/db/plain');
      assert.deepEqual(destroyed.body, { ok: true, backups_kept: false });
    } finally {
      await t.close();
    }
  });

  it('refuses bad restore requests before doing anything', async () => {
    const t = await createTestApp();
    try {
      await t.request('POST', '/v1/deploy', { body: { name: 'src' } });
      const cases: Array<[unknown, RegExp]> = [
        [{}, /as must be/],
        [{ as: 'Bad' }, /as may contain only/],
        [{ as: 'x', time: 'yesterday' }, /RFC 3339/],
        [{ as: 'x', time: '2026-02-30T10:00:00Z' }, /names no real moment/],
        [{ as: 'x', time: '2026-01-30T10:00:00Z', backup: '20260101-000000F' }, /not both/],
        [{ as: 'x', backup: 'latest' }, /backup label/],
        [{ as: 'x', extra: 1 }, /extra/],
      ];
      for (const [body, message] of cases) {
        const res = await t.request('POST', '/v1/db/src/restore', { body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.match(res.body.error.message, message, JSON.stringify(body));
      }
      assert.equal(t.docker.tasks.length, 0, 'no restore task ran');
      const future = await t.request('POST', '/v1/db/src/restore', { body: { as: 'x', time: new Date(Date.now() + 60_000).toISOString() } });
      assert.equal(future.status, 400);
      assert.match(future.body.error.message, /in the future/);
      const missing = await t.request('POST', '/v1/db/nosuch/restore', { body: { as: 'x' } });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'DB_NOT_FOUND');
    } finally {
      await t.close();
    }
  });
});
