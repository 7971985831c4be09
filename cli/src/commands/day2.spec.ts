import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InfoResponse } from '../../../contract/api.js';
import { runPgdb } from '../testing/memory-context.js';
import { formatDuration, formatInfo } from './info.js';
import { splitPassword } from './psql.js';
import { cliVersion } from './version.js';

describe('pgdb --version', () => {
  it('prints the version of package.json, and asks no server without --server', async () => {
    const run = await runPgdb(['--version']);
    assert.deepEqual([run.code, run.stdout, run.stderr], [0, `pgdb ${cliVersion()}\n`, '']);
    assert.match(cliVersion(), /^\d+\.\d+\.\d+/);
    const json = await runPgdb(['--version', '--json']);
    assert.deepEqual(JSON.parse(json.stdout), { cli: cliVersion() });
  });

  it('with --server and no server configured, fails like every command that needs one', async () => {
    const run = await runPgdb(['--version', '--server']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /error: no server configured/);
  });
});

describe('psql', () => {
  it('takes the password out of the URL for PGPASSWORD, decoded', () => {
    const { url, password } = splitPassword('postgres://u_x:p%40ss@db.example:5433/pg_x?sslmode=require');
    assert.equal(url, 'postgres://u_x@db.example:5433/pg_x?sslmode=require');
    assert.equal(password, 'p@ss');
  });
});

describe('info output', () => {
  const info: InfoResponse = {
    name: 'shop', state: 'running', postgres_version: 17, previous_version: null, server_version: '17.2', started_at: '2026-01-01T00:00:00Z',
    uptime_seconds: 93_784, data_bytes: 7_654_321, volume_free_bytes: 10 * 1024 ** 3, connections: 3, max_connections: 100,
    longest_query_seconds: 0, limits: { memory_mb: 512, cpus: null, size_gb: 10, size_enforced: true }, host: 'h', port: 5433, db: 'pg_x', user: 'u_x',
    database_url: 'postgres://u_x:****@h:5433/pg_x?sslmode=require', created_at: '2026-01-01T00:00:00Z', backups: null,
  };

  it('aligns the values and says what a stopped database cannot', () => {
    const text = formatInfo(info);
    assert.match(text, /^state: {10}running, up 1d 2h$/m);
    assert.match(text, /^connections: {4}3 of 100$/m);
    assert.match(text, /^longest query: {2}none running$/m);
    const stopped = formatInfo({ ...info, state: 'stopped', server_version: null, uptime_seconds: null, connections: null, data_bytes: null, volume_free_bytes: null, longest_query_seconds: null });
    assert.match(stopped, /^version: {8}17$/m);
    assert.match(stopped, /^state: {10}stopped$/m);
    assert.match(stopped, /^connections: {4}-$/m);
  });

  it('shows the newest backup, its age and any backup problem', () => {
    assert.match(formatInfo(info), /^backups: {8}off \(no backups for this database\)$/m);
    const item = { label: '20260101-000000F', type: 'full' as const, started_at: '', finished_at: '', size_bytes: 1, repo_bytes: 1 };
    const state = { last_backup: item, last_backup_age_seconds: 7200, archiving: 'ok' as const, archive_failed_count: 0, last_archive_failure: null, last_error: null, last_drill: null, problems: [] };
    assert.match(formatInfo({ ...info, backups: state }), /^backups: {8}full 20260101-000000F, 2h ago$/m);
    const failing = { ...state, archiving: 'failing' as const, problems: ['WAL archiving of "shop" fails'] };
    const text = formatInfo({ ...info, backups: failing });
    assert.match(text, /^backups: .*; WAL archiving of "shop" fails$/m);
    assert.match(text, /^archiving: {6}failing$/m);
    assert.match(text, /^restore drill: {2}none yet/m);
    const drilled = { ...state, last_drill: { at: '2026-11-30T04:30:00.000Z', ok: false, duration_ms: 9000, detail: 'zst error', backup: item.label, tables: [], amcheck: null, comparison: null } };
    assert.match(formatInfo({ ...info, backups: drilled }), /^restore drill: {2}FAILED at 2026-11-30T04:30:00\.000Z \(backup 20260101-000000F\)$/m);
  });

  it('durations', () => {
    assert.deepEqual([0.4, 59, 61, 3600, 3725, 90_000].map(formatDuration), ['0.4s', '59s', '1m 1s', '1h', '1h 2m', '1d 1h']);
  });
});
