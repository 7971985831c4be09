/**
 * What the backup schedule decides, as plain functions of the backups in the
 * repository, the schedules and the time (`now` is always passed in, so that
 * the specs run them against a fake clock). BackupService acts on them.
 */
import { Cron } from 'croner';
import type { BackupItem, BackupType, RestoreWindow } from '../../../contract/api.js';

/** The cron schedules of one server, all read as UTC. */
export interface Schedules {
  full: Cron;
  diff: Cron;
  /** Restore drills; null when they are off. */
  drill: Cron | null;
}

export function schedules(config: { full: string; diff: string; drill: string | null }): Schedules {
  const cron = (pattern: string) => new Cron(pattern, { paused: true, timezone: 'UTC' });
  return { full: cron(config.full), diff: cron(config.diff), drill: config.drill ? cron(config.drill) : null };
}

/**
 * What the schedule asks for at `now`: a full backup when there is none, or
 * when the last full one's next full slot has come; else a differential
 * when the last backup's next differential slot has come; else nothing.
 * `backups` are oldest first, as pgBackRest lists them.
 */
export function backupDue(backups: Array<Pick<BackupItem, 'type' | 'finished_at'>>, now: Date, { full, diff }: Pick<Schedules, 'full' | 'diff'>): BackupType | undefined {
  const lastFull = backups.filter((b) => b.type === 'full').at(-1);
  if (!lastFull) return 'full';
  const nextFull = full.nextRun(new Date(lastFull.finished_at));
  if (nextFull && nextFull <= now) return 'full';
  const nextDiff = diff.nextRun(new Date(backups.at(-1)!.finished_at));
  if (nextDiff && nextDiff <= now) return 'diff';
  return undefined;
}

/**
 * A restore drill is due when the drill schedule had a slot since the last
 * drill (`lastDrillAt`), or, before any drill, since the first backup
 * finished. Never without backups or with drills off.
 */
export function drillDue(lastDrillAt: string | undefined, backups: Array<Pick<BackupItem, 'finished_at'>>, now: Date, drill: Cron | null): boolean {
  if (!drill || backups.length === 0) return false;
  const next = drill.nextRun(new Date(lastDrillAt ?? backups[0].finished_at));
  return next !== null && next <= now;
}

/**
 * The moments a restore can reach: from the end of the oldest backup to now
 * for a running database, to its destroy for a destroyed one, and to the end
 * of the newest backup otherwise (a stopped one archives nothing more).
 * Never before the newest backup's end. Null without backups.
 */
export function restoreWindow(
  source: { kind: 'running' | 'stopped' | 'destroyed'; destroyedAt?: string },
  backups: Array<Pick<BackupItem, 'finished_at'>>,
  now: Date,
): RestoreWindow | null {
  const first = backups[0];
  if (!first) return null;
  const last = backups.at(-1)!;
  const latest = source.kind === 'running' ? now.toISOString() : source.kind === 'destroyed' ? source.destroyedAt! : last.finished_at;
  return { earliest: first.finished_at, latest: latest < last.finished_at ? last.finished_at : latest };
}

/**
 * The longest gap, in seconds, between two slots of the schedules together
 * (a week when they have none): over the next ten slots of each, up to where
 * every schedule's ten reach, so that a weekly schedule's later slots, with
 * no daily one listed beside them any more, do not count as gaps.
 */
export function gapSeconds(crons: Cron[], now: Date): number {
  const lists = crons.map((cron) => cron.nextRuns(10, now));
  const horizon = Math.min(...lists.map((runs) => runs.at(-1)?.getTime() ?? Infinity));
  const runs = lists
    .flat()
    .filter((run) => run.getTime() <= horizon)
    .sort((a, b) => a.getTime() - b.getTime());
  let gap = 0;
  for (let i = 1; i < runs.length; i++) gap = Math.max(gap, (runs[i].getTime() - runs[i - 1].getTime()) / 1000);
  return gap || 7 * 86400;
}
