import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DrillResult } from '../../../contract/api.js';
import { DrillStore, drillScript, parseDrillOutput } from './drill.js';

const identity = { stanza: 'pgdb-shop-abc123', cipher_pass: 'secret' };

describe('restore drills', () => {
  it('the script restores the backup to its end with no TCP and no archiving, reads every table, runs pg_amcheck', () => {
    const script = drillScript(identity, 17, '20261129-101500F');
    assert.match(script, /pgbackrest --config=\S+ --stanza=pgdb-shop-abc123 restore --set=20261129-101500F --type=immediate --target-action=promote --pg1-path=\/var\/lib\/postgresql\/data/);
    assert.match(script, /listen_addresses=''/);
    assert.match(script, /archive_mode=off/);
    assert.match(script, /pg_amcheck -h \/tmp -U pgdb_admin --all/);
    assert.match(script, /SELECT pg_catalog\.count\(\*\) AS n FROM %I\.%I/);
    assert.ok(!script.includes('secret'), 'the passphrase stays in the configuration file');
    assert.match(drillScript(identity, 18, '20261129-101500F_20261130-020000I'), /--pg1-path=\/var\/lib\/postgresql\/18\/docker/);
  });

  it("the superuser's sessions in the tenant's copy take no settings from it, read no views, and name databases only as PGDATABASE", () => {
    const script = drillScript(identity, 17, '20261129-101500F');
    assert.match(script, /^export PGOPTIONS='-c search_path=pg_catalog,pg_temp'$/m, 'before any psql or pg_amcheck');
    assert.ok(script.indexOf('export PGOPTIONS') < script.indexOf('psql '));
    assert.match(script, /WHERE c\.relkind IN \('r', 'm'\)/, 'tables and materialized views only');
    assert.match(script, /ALTER EVENT TRIGGER %I DISABLE/);
    assert.ok(script.indexOf('ALTER EVENT TRIGGER') < script.indexOf('pg_amcheck -h'), 'event triggers are off before amcheck is installed');
    assert.match(script, /count\(\) \{ PGDATABASE="\$1" psql /);
    assert.ok(!/-d "\$db"/.test(script), 'no database name as a -d argument (psql reads one with = as a connection string)');
  });

  it('refuses anything but a pgBackRest label, so nothing else reaches the shell', () => {
    for (const label of ['x', '20261129-101500F; rm -rf /', "20261129-101500F' '", '$(id)']) {
      assert.throws(() => drillScript(identity, 17, label), /not a pgBackRest backup label/);
    }
  });

  it('reads counts and the verdict of a passing drill', () => {
    const output = ['ROWS\tshop\tpublic.items\t1234', 'ROWS\tshop\tpublic.empty\t0', 'AMCHECK ok', 'DRILL ok', ''].join('\n');
    const parsed = parseDrillOutput(output, 0);
    assert.equal(parsed.ok, true);
    assert.equal(parsed.amcheck, 'ok');
    assert.deepEqual(parsed.tables, [
      { database: 'shop', table: 'public.items', rows: 1234 },
      { database: 'shop', table: 'public.empty', rows: 0 },
    ]);
    assert.equal(parsed.reason, '');
  });

  it('a failed restore, corruption found by pg_amcheck, or output cut short is a failure with the reason', () => {
    const restore = parseDrillOutput('P00  ERROR: [029]: zst error: Data corruption detected\nERROR: pgbackrest restore of backup X failed\n', 1);
    assert.equal(restore.ok, false);
    assert.match(restore.reason, /Data corruption detected/);
    assert.equal(restore.amcheck, null);
    const amcheck = parseDrillOutput('ROWS\ts\tpublic.t\t1\nAMCHECK failed\nheap table "s.public.t", block 0: invalid\nERROR: pg_amcheck found corruption\n', 1);
    assert.equal(amcheck.ok, false);
    assert.equal(amcheck.amcheck, 'failed');
    assert.match(amcheck.reason, /pg_amcheck found corruption/);
    assert.equal(parseDrillOutput('ROWS\ts\tpublic.t\t1\nAMCHECK ok\n', 0).ok, false, 'no DRILL ok line: not a pass');
    assert.match(parseDrillOutput('', 137).reason, /code 137/);
  });

  it('keeps the last drill per stanza in a 0600 file that a new store reads back; ignores a damaged file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgdb-drills-'));
    const path = join(dir, 'drills.json');
    const result: DrillResult = { at: '2026-11-30T00:00:00.000Z', ok: false, duration_ms: 5, detail: 'bad', backup: 'L', tables: [], amcheck: null };
    await new DrillStore(path).set('s1', result);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(new DrillStore(path).get('s1'), result);
    writeFileSync(path, '{not json');
    assert.equal(new DrillStore(path).get('s1'), undefined);
  });
});
