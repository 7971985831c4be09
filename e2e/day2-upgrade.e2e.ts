/**
 * `pgdb upgrade` (issue 14) through the built CLI and the API, against the
 * real pgdbd, the real Docker engine and the Postgres images of three
 * majors: 15 -> 17 -> 18, rollback, finish, refusals, and a SIGKILL of the
 * daemon at each step of an upgrade.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pgdbCli } from './support/cli.js';
import { docker, dockerObjectExists, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import type { Env } from './support/run.js';
import { testPorts } from './support/ports.js';
import { eventually } from './support/eventually.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(30);

describe('upgrade against a real pgdbd', () => {
  const daemon = new TestDaemon({ portRange: PORT_RANGE });
  let env: Env;
  const { pgdb, json } = pgdbCli(() => ({ ...env, PGDB_SERVER_URL: daemon.url }));
  const major = async (url: string) => Number((await query(url, "SELECT current_setting('server_version_num')::int / 10000 AS v"))[0].v);
  const rows = async (url: string) => (await query(url, 'SELECT count(*)::int AS n, sum(id)::int AS s FROM items'))[0];
  const state = (id: string) => docker('inspect', '--format', '{{.State.Running}}', id);

  before(async () => {
    requireDockerAndImages([15, 17, 18]);
    await daemon.start();
    env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-upgrade-')), PGDB_TOKEN: daemon.token };
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('15 -> 17 keeps the data, the URL and its port; the old cluster is kept stopped; rollback switches back; 17 -> 18 and finish removes the old', async () => {
    const deployed = await json(['deploy', '--name', 'up', '--version', '15']);
    const url: string = deployed.DATABASE_URL;
    await query(url, `CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL); CREATE INDEX items_note ON items (note);
      CREATE SEQUENCE counter START 41; SELECT nextval('counter');
      INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 3000) g`);
    const before15 = await rows(url);
    const old = daemon.record('up');

    const result = await pgdb(['upgrade', 'up', '--version', '17']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^upgrading up from Postgres 15 to 17: it refuses connections from the start of the copy \([\d.]+ \w?B of data\) until/);
    assert.match(result.stderr, /up: Postgres 15 -> 17, 1 table\(s\) and 3000 row\(s\) checked, [\d.]+s of downtime/);
    assert.equal(result.stdout, `DATABASE_URL: ${url}\n`, 'the same URL: name, port and credentials');
    assert.equal(await major(url), 17);
    assert.deepEqual(await rows(url), before15);
    assert.deepEqual(await query(url, "SELECT nextval('counter')::int AS v"), [{ v: 42 }]);
    assert.deepEqual(await query(url, "SELECT indexname FROM pg_indexes WHERE tablename = 'items' ORDER BY 1"), [{ indexname: 'items_note' }, { indexname: 'items_pkey' }]);
    // The tenant owns what was copied and can change it.
    await query(url, "INSERT INTO items VALUES (9001, 'after the upgrade'); ALTER TABLE items ADD COLUMN extra int");

    const upgraded = daemon.record('up');
    assert.deepEqual([upgraded.postgres_version, upgraded.host_port, upgraded.previous.postgres_version], [17, old.host_port, 15]);
    assert.equal(state(old.container_id), 'false', 'the old container is kept, stopped');
    assert.ok(dockerObjectExists('volume', old.volume_name));
    const info = await json(['info', 'up']);
    assert.deepEqual([info.postgres_version, info.previous_version, info.port], [17, 15, old.host_port]);

    // Refusals: the same major, an older one, one this daemon does not support, another upgrade while the old cluster is kept.
    for (const [version, message] of [
      ['17', /already runs Postgres 17/],
      ['15', /a downgrade to 15 is not possible/],
      ['16', /postgres version 16 is not supported here; supported versions: 15, 17, 18/],
      ['18', /still keeps its Postgres 15 cluster from the last upgrade; run `pgdb upgrade up --finish` \(or --rollback\) first/],
    ] as const) {
      const refused = await pgdb(['upgrade', 'up', '--version', version]);
      assert.equal(refused.code, 1, version);
      assert.match(refused.stderr, message, version);
    }
    assert.equal(daemon.record('up').postgres_version, 17);

    const back = await json(['upgrade', 'up', '--rollback']);
    assert.deepEqual([back.postgres_version, back.port], [15, old.host_port]);
    assert.equal(await major(url), 15);
    assert.deepEqual(await rows(url), before15, 'the old cluster, as it was at the upgrade');
    assert.equal(daemon.record('up').container_id, old.container_id);
    assert.ok(!dockerObjectExists('volume', upgraded.volume_name), 'the newer volume is removed');

    const to18 = await json(['upgrade', 'up', '--version', '18']);
    assert.deepEqual([to18.from_version, to18.to_version, to18.port, to18.database_url], [15, 18, old.host_port, url]);
    assert.equal(await major(url), 18);
    assert.deepEqual(await rows(url), before15);
    const finished = await json(['upgrade', 'up', '--finish']);
    assert.deepEqual([finished.postgres_version, finished.removed_volume], [18, old.volume_name]);
    assert.ok(!dockerObjectExists('container', old.container_id));
    assert.ok(!dockerObjectExists('volume', old.volume_name));
    assert.equal(daemon.record('up').previous, undefined);
    const again = await pgdb(['upgrade', 'up', '--finish']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /keeps no old cluster: no upgrade to finish/);
    // A restart of the daemon keeps the upgraded database as it is.
    await daemon.restart();
    assert.equal(await major(url), 18);
  });

  it('bad input: an unknown database, a stopped one, no mode or two modes', async () => {
    const unknown = await pgdb(['upgrade', 'nope', '--version', '17']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /error: no database named "nope"/);
    for (const args of [['upgrade', 'up'], ['upgrade', 'up', '--finish', '--rollback'], ['upgrade', 'up', '--version', 'x']]) {
      const usage = await pgdb(args);
      assert.equal(usage.code, 2, args.join(' '));
    }
    await json(['deploy', '--name', 'sleepy', '--version', '15']);
    await json(['stop', 'sleepy']);
    const stopped = await pgdb(['upgrade', 'sleepy', '--version', '17']);
    assert.equal(stopped.code, 1);
    assert.match(stopped.stderr, /error: database "sleepy" is stopped/);
    const api = await daemon.api('POST', '/v1/db/sleepy/upgrade', { version: 'latest' });
    assert.deepEqual([api.status, api.body.error.code], [400, 'INVALID_REQUEST']);
    assert.equal(daemon.record('sleepy').upgrading, undefined);
  });

  for (const step of ['upgrade:copying', 'upgrade:copied', 'upgrade:old-stopped', 'upgrade:new-started', 'upgrade:switched']) {
    it(`a SIGKILL of the daemon at ${step}: the next start leaves exactly one cluster serving the URL, with the data`, async () => {
      const name = `kill-${step.split(':')[1]}`;
      await daemon.stop();
      await daemon.start({ PGDB_FAILPOINTS: step });
      const deployed = await json(['deploy', '--name', name, '--version', '15']);
      const url: string = deployed.DATABASE_URL;
      await query(url, 'CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 500)');
      const killed = await pgdb(['upgrade', name, '--version', '17']);
      assert.equal(killed.code, 1, 'the request died with the daemon');
      assert.equal((await daemon.exited()).signal, 'SIGKILL');
      const left = daemon.record(name);
      assert.equal(left.upgrading !== undefined, step !== 'upgrade:switched', 'the registry says where the upgrade was');

      await daemon.start();
      const expected = step === 'upgrade:switched' ? 17 : 15;
      const seen = await eventually('the URL answering with the upgrade settled', 60_000, async () => {
        const served = await major(url);
        if (daemon.record(name).upgrading !== undefined) throw new Error(`Postgres ${served} answers; the registry still holds the upgrade`);
        return served;
      }, 250);
      assert.equal(seen, expected, `after the restart, Postgres ${expected} serves the URL`);
      assert.deepEqual(await rows(url), { n: 500, s: 125250 });
      const record = daemon.record(name);
      assert.equal(record.postgres_version, expected);
      assert.equal(record.upgrading, undefined);
      const containers = docker('ps', '-a', '--filter', `label=pgdb.name=${name}`, '--filter', `label=pgdb.instance=${daemon.instanceId()}`, '--format', '{{.ID}} {{.State}}')
        .split('\n')
        .filter(Boolean);
      if (expected === 15) {
        assert.deepEqual(containers.map((c) => c.split(' ')[1]), ['running'], 'only the old cluster is left');
        assert.ok(!dockerObjectExists('volume', left.upgrading.volume_name), 'the half-made volume is removed');
        // And the next upgrade goes through.
        const retried = await json(['upgrade', name, '--version', '17']);
        assert.equal(retried.to_version, 17);
        assert.deepEqual(await rows(url), { n: 500, s: 125250 });
      } else {
        assert.equal(containers.length, 2, 'the new cluster runs and the old one is kept');
        assert.equal(record.previous.postgres_version, 15);
        await json(['upgrade', name, '--finish']);
      }
      await json(['destroy', name, '--yes']);
    });
  }

  it('destroy of a database that keeps an old cluster removes both volumes', async () => {
    const deployed = await json(['deploy', '--name', 'gone', '--version', '15']);
    await json(['upgrade', 'gone', '--version', '17']);
    const record = daemon.record('gone');
    assert.ok(record.previous);
    await json(['destroy', 'gone', '--yes']);
    assert.ok(!dockerObjectExists('volume', record.volume_name));
    assert.ok(!dockerObjectExists('volume', record.previous.volume_name));
    assert.ok(!dockerObjectExists('container', record.previous.container_id));
    await assert.rejects(query(deployed.DATABASE_URL, 'SELECT 1'));
  });
});
