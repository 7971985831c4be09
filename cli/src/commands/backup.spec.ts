import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VerifyResponse } from '../../../contract/api.js';
import { formatDrill } from './backup.js';

const passed: VerifyResponse = {
  name: 'shop',
  at: '2026-12-08T02:00:00.000Z',
  ok: true,
  duration_ms: 8200,
  detail: 'restored backup 20261208-010000F with its WAL up to restore point pgdb-drill-ab12cd34-1, …',
  backup: '20261208-010000F',
  tables: [{ database: 'shop', table: 'public.items', rows: 1300, source_rows: 1300 }],
  amcheck: 'ok',
  comparison: {
    status: 'match',
    reason: null,
    restore_point: { name: 'pgdb-drill-ab12cd34-1', lsn: '0/3000148', at: '2026-12-08T01:59:52.000Z' },
    tables_compared: 1,
    differences: [],
  },
};

describe('pgdb backup verify output', () => {
  it('a drill that compared: rows in the copy and in the source, and the restore point', () => {
    const text = formatDrill(passed);
    assert.match(text, /^DATABASE +TABLE +ROWS +SOURCE$/m);
    assert.match(text, /^shop +public\.items +1300 +1300$/m);
    assert.match(text, /^shop: restore drill passed in 8\.2 s: /m);
    assert.match(text, /^compared with the source at restore point pgdb-drill-ab12cd34-1 \(2026-12-08T01:59:52\.000Z\): 1 table\(s\), all match$/m);
  });

  it('a drill that could not compare says so, and why', () => {
    const text = formatDrill({
      ...passed,
      tables: [{ database: 'shop', table: 'public.items', rows: 1300, source_rows: null }],
      comparison: { ...passed.comparison!, status: 'not_compared', reason: 'the source was never quiet at a restore point in 5 tries', tables_compared: 0 },
    });
    assert.match(text, /^DATABASE +TABLE +ROWS$/m, 'no source column');
    assert.match(text, /^compared with the source: NOT COMPARED \(the source was never quiet at a restore point in 5 tries\)$/m);
  });

  it('a copy that differs: the tables with both figures', () => {
    const text = formatDrill({
      ...passed,
      ok: false,
      detail: 'backup 20261208-010000F did not pass: the copy differs from the source at restore point pgdb-drill-ab12cd34-1: …',
      comparison: { ...passed.comparison!, status: 'differ', differences: [{ database: 'shop', table: 'public.items', source_rows: 1300, copy_rows: 1234 }, { database: 'shop', table: 'public.gone', source_rows: 2, copy_rows: null }] },
    });
    assert.match(text, /^DATABASE +TABLE +SOURCE +COPY$/m);
    assert.match(text, /^shop +public\.items +1300 +1234$/m);
    assert.match(text, /^shop +public\.gone +2 +missing$/m);
    assert.match(text, /^shop: restore drill FAILED after 8\.2 s: /m);
    assert.match(text, /: DIFFERENT$/m);
  });

  it('a drill recorded before drills compared prints as before', () => {
    const text = formatDrill({ ...passed, comparison: null, tables: [{ database: 'shop', table: 'public.items', rows: 1300 }] });
    assert.doesNotMatch(text, /compared with the source/);
    assert.match(text, /^DATABASE +TABLE +ROWS$/m);
  });
});
