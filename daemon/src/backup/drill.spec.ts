import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DrillResult } from '../../../contract/api.js';
import { DrillStore, drillScript, parseDrillOutput, SOURCE_ROW_COUNTS } from './drill.js';

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

  it('reads counts and the verdict of a passing drill, any name (quotes, tabs, newlines) as it is', () => {
    const output = [
      'DB "shop"',
      'ROWS ["shop","public","items",1234]',
      'ROWS ["shop","public","empty",0]',
      String.raw`DB "it's\tnew\nline"`,
      String.raw`ROWS ["it's\tnew\nline","we\"ird","a b\nc",3]`,
      'AMCHECK ok',
      'DRILL ok',
      '',
    ].join('\n');
    const parsed = parseDrillOutput(output, 0);
    assert.equal(parsed.ok, true);
    assert.equal(parsed.amcheck, 'ok');
    assert.deepEqual(parsed.counted, {
      databases: ['shop', "it's\tnew\nline"],
      tables: [
        { database: 'shop', schema: 'public', table: 'items', rows: 1234 },
        { database: 'shop', schema: 'public', table: 'empty', rows: 0 },
        { database: "it's\tnew\nline", schema: 'we"ird', table: 'a b\nc', rows: 3 },
      ],
    });
    assert.equal(parsed.reason, '');
  });

  it('restores to the restore point made in the source when given one, and only to a name pgdb makes', () => {
    const script = drillScript(identity, 17, '20261129-101500F', 'pgdb-drill-abc12345-1');
    assert.match(script, /restore --set=20261129-101500F --type=name --target=pgdb-drill-abc12345-1 --target-action=promote --pg1-path=/);
    for (const name of ['x', "pgdb-drill-a'b", 'pgdb-drill-$(id)', 'pgdb-drill-a b']) {
      assert.throws(() => drillScript(identity, 17, '20261129-101500F', name), /not a restore point pgdb makes/);
    }
  });

  it('counts the same relations in the copy and the source: permanent tables and populated materialized views, templates aside', () => {
    const script = drillScript(identity, 17, '20261129-101500F');
    for (const sql of [script, SOURCE_ROW_COUNTS]) {
      assert.match(sql, /c\.relkind IN \('r', 'm'\) AND c\.relpersistence = 'p' AND c\.relispopulated/);
      assert.match(sql, /pg_catalog\.format\('SELECT pg_catalog\.count\(\*\) AS n FROM %I\.%I', n\.nspname, c\.relname\)/);
    }
    assert.match(script, /FROM pg_catalog\.pg_database WHERE datallowconn AND NOT datistemplate/);
  });

  it('a failed restore, corruption found by pg_amcheck, or output cut short is a failure with the reason', () => {
    const restore = parseDrillOutput('P00  ERROR: [029]: zst error: Data corruption detected\nERROR: pgbackrest restore of backup X failed\n', 1);
    assert.equal(restore.ok, false);
    assert.match(restore.reason, /Data corruption detected/);
    assert.equal(restore.amcheck, null);
    const amcheck = parseDrillOutput('ROWS ["s","public","t",1]\nAMCHECK failed\nheap table "s.public.t", block 0: invalid\nERROR: pg_amcheck found corruption\n', 1);
    assert.equal(amcheck.ok, false);
    assert.equal(amcheck.amcheck, 'failed');
    assert.match(amcheck.reason, /pg_amcheck found corruption/);
    assert.equal(parseDrillOutput('ROWS ["s","public","t",1]\nAMCHECK ok\n', 0).ok, false, 'no DRILL ok line: not a pass');
    assert.match(parseDrillOutput('', 137).reason, /code 137/);
  });

  it('keeps the last drill per stanza in a 0600 file that a new store reads back; ignores a damaged file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgdb-drills-'));
    const path = join(dir, 'drills.json');
    const result: DrillResult = { at: '2026-11-30T00:00:00.000Z', ok: false, duration_ms: 5, detail: 'bad', backup: 'L', tables: [], amcheck: null, comparison: null };
    await new DrillStore(path).set('s1', result);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(new DrillStore(path).get('s1'), result);
    // A drill recorded before drills compared reads back with comparison null.
    const { comparison: _, ...older } = result;
    writeFileSync(path, JSON.stringify({ s2: older }));
    assert.deepEqual(new DrillStore(path).get('s2'), { ...older, comparison: null });
    writeFileSync(path, '{not json');
    assert.equal(new DrillStore(path).get('s1'), undefined);
  });
});
