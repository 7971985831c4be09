import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backupDue, drillDue, gapSeconds, restoreWindow, schedules } from './schedule.js';

/** The default schedules: full on Sundays at 01:00, differential every day at 01:00, drills on Mondays at 03:00 (UTC). */
const { full, diff, drill } = schedules({ full: '0 1 * * 0', diff: '0 1 * * *', drill: '0 3 * * 1' });
const at = (iso: string) => new Date(iso);
const backup = (type: 'full' | 'diff', finished_at: string) => ({ type, finished_at });

// 2026-12-06 is a Sunday.
describe('backup schedule (fake clock)', () => {
  it('asks for a full backup when there is none', () => {
    assert.equal(backupDue([], at('2026-12-07T12:00:00Z'), { full, diff }), 'full');
    assert.equal(backupDue([backup('diff', '2026-12-06T01:05:00Z')], at('2026-12-06T01:06:00Z'), { full, diff }), 'full', 'a differential alone is no base');
  });

  it('asks for nothing between slots, a differential at the next daily slot, a full one at the next weekly slot', () => {
    const backups = [backup('full', '2026-12-06T01:05:00Z')];
    assert.equal(backupDue(backups, at('2026-12-06T23:59:59Z'), { full, diff }), undefined);
    assert.equal(backupDue(backups, at('2026-12-07T01:00:00Z'), { full, diff }), 'diff', 'Monday 01:00');
    const week = [...backups, backup('diff', '2026-12-12T01:03:00Z')];
    assert.equal(backupDue(week, at('2026-12-12T12:00:00Z'), { full, diff }), undefined, 'Saturday noon, after that day\'s differential');
    assert.equal(backupDue(week, at('2026-12-13T01:00:00Z'), { full, diff }), 'full', 'Sunday 01:00: the full slot wins over the differential one');
  });

  it('a differential counts from the newest backup, a full one from the newest full backup', () => {
    const backups = [backup('full', '2026-12-06T01:05:00Z'), backup('diff', '2026-12-07T01:04:00Z')];
    assert.equal(backupDue(backups, at('2026-12-07T12:00:00Z'), { full, diff }), undefined);
    assert.equal(backupDue(backups, at('2026-12-08T01:00:00Z'), { full, diff }), 'diff');
  });

  it('a drill is due at the first drill slot after the last drill, or after the first backup; never without backups or with drills off', () => {
    const backups = [backup('full', '2026-12-06T01:05:00Z')];
    assert.equal(drillDue(undefined, [], at('2026-12-14T12:00:00Z'), drill), false);
    assert.equal(drillDue(undefined, backups, at('2026-12-14T12:00:00Z'), null), false);
    assert.equal(drillDue(undefined, backups, at('2026-12-07T02:59:59Z'), drill), false);
    assert.equal(drillDue(undefined, backups, at('2026-12-07T03:00:00Z'), drill), true, 'Monday 03:00 after Sunday\'s first backup');
    assert.equal(drillDue('2026-12-07T03:00:10Z', backups, at('2026-12-10T00:00:00Z'), drill), false, 'drilled this week');
    assert.equal(drillDue('2026-12-07T03:00:10Z', backups, at('2026-12-14T03:00:00Z'), drill), true, 'next Monday');
  });

  it('a restore reaches from the oldest backup to now (running), to the destroy (destroyed), or to the newest backup (stopped)', () => {
    const backups = [backup('full', '2026-12-06T01:05:00Z'), backup('diff', '2026-12-07T01:04:00Z')];
    const now = at('2026-12-07T12:00:00Z');
    assert.equal(restoreWindow({ kind: 'running' }, [], now), null);
    assert.deepEqual(restoreWindow({ kind: 'running' }, backups, now), { earliest: '2026-12-06T01:05:00Z', latest: '2026-12-07T12:00:00.000Z' });
    assert.deepEqual(restoreWindow({ kind: 'destroyed', destroyedAt: '2026-12-07T06:00:00.000Z' }, backups, now), {
      earliest: '2026-12-06T01:05:00Z',
      latest: '2026-12-07T06:00:00.000Z',
    });
    assert.deepEqual(restoreWindow({ kind: 'stopped' }, backups, now), { earliest: '2026-12-06T01:05:00Z', latest: '2026-12-07T01:04:00Z' });
    // Never before the newest backup's end (a destroy recorded with a clock behind the repository's).
    assert.deepEqual(restoreWindow({ kind: 'destroyed', destroyedAt: '2026-12-07T00:00:00.000Z' }, backups, now), {
      earliest: '2026-12-06T01:05:00Z',
      latest: '2026-12-07T01:04:00Z',
    });
  });

  it('the longest gap between slots: a day for the default schedules, a week for weekly fulls alone', () => {
    const now = at('2026-12-07T12:00:00Z');
    assert.equal(gapSeconds([full, diff], now), 86_400);
    assert.equal(gapSeconds([full], now), 7 * 86_400);
    // PGDB_BACKUP_SCHEDULE's default: a backup every day, so a day (an earlier release counted the weekly
    // full slots beyond the daily ones' horizon and made it a week: "overdue" only after 10.5 days).
    const defaults = schedules({ full: '15 2 * * 0', diff: '15 2 * * 1-6', drill: null });
    assert.equal(gapSeconds([defaults.full, defaults.diff], now), 86_400);
    const irregular = schedules({ full: '0 1 * * 0', diff: '0 1 * * 1,3', drill: null });
    assert.equal(gapSeconds([irregular.full, irregular.diff], now), 4 * 86_400, 'Wednesday to Sunday');
  });
});
