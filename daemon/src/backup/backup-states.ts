import { join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import type { BackupState } from '../../../contract/api.js';
import type { ProblemEntry } from '../common/alerts.js';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { BackupEvents } from '../database/backup-events.js';
import { RegistryService } from '../registry/registry.service.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { BackupRepository } from './backup-repository.js';
import { DrillStore } from './drill.js';
import type { BackupSummary } from './pgbackrest.js';
import { gapSeconds, schedules, type Schedules } from './schedule.js';
import { ServerCatalog } from './server-catalog.js';

/** What this daemon knows of one database's backups, by stanza. */
export interface DatabaseBackupState {
  /** The repository's backups, oldest first; undefined until read. */
  backups?: BackupSummary[];
  lastError?: string;
  archiving?: { failing: boolean; failedCount: number; lastFailure: string | null };
  stanzaReady?: boolean;
}

/**
 * The backup state that status, info and health report: each database's
 * backups as last read, its archiver, its last backup error and drill, and
 * the problems they make (with the kind that alerts tell problems apart by).
 */
@Injectable()
export class BackupStates {
  private readonly states = new Map<string, DatabaseBackupState>();
  readonly schedules: Schedules;
  /** The last restore drill of each stanza, kept across restarts. */
  readonly drills: DrillStore;

  constructor(
    @Inject(DAEMON_CONFIG) config: DaemonConfig,
    private readonly repository: BackupRepository,
    private readonly registry: RegistryService,
    private readonly catalog: ServerCatalog,
    events: BackupEvents,
  ) {
    this.schedules = schedules({ ...config.backup.schedule, drill: config.backup.drillSchedule });
    this.drills = new DrillStore(join(config.dataDir, 'drills.json'));
    events.report({
      stateFor: (record) => this.stateFor(record),
      problemEntries: () => this.problemEntries(),
      location: () => (repository.enabled ? repository.describe() : null),
    });
  }

  of(record: Pick<RegistryRecord, 'backup'>): DatabaseBackupState {
    const stanza = record.backup!.stanza;
    let state = this.states.get(stanza);
    if (!state) this.states.set(stanza, (state = {}));
    return state;
  }

  /** Per database, for status and info; undefined when it has no backups configured. */
  stateFor(record: RegistryRecord): BackupState | undefined {
    if (!record.backup || !this.repository.enabled) return undefined;
    const state = this.of(record);
    const last = state.backups?.at(-1);
    const age = last ? Math.round((Date.now() - Date.parse(last.finished_at)) / 1000) : null;
    return {
      last_backup: last ? { ...last } : null,
      last_backup_age_seconds: age,
      archiving: record.stopped || !state.archiving ? 'unknown' : state.archiving.failing ? 'failing' : 'ok',
      archive_failed_count: state.archiving?.failedCount ?? null,
      last_archive_failure: state.archiving?.lastFailure ?? null,
      last_error: state.lastError ?? null,
      last_drill: this.drills.get(record.backup.stanza) ?? null,
      problems: this.problemsOf(record).map((p) => p.problem),
    };
  }

  /** A database's problems, each with its kind (alerts tell a changed wording from a new problem by it). */
  private problemsOf(record: RegistryRecord): Array<{ kind: string; problem: string }> {
    const state = this.of(record);
    const last = state.backups?.at(-1);
    const age = last ? Math.round((Date.now() - Date.parse(last.finished_at)) / 1000) : null;
    const problems: Array<{ kind: string; problem: string }> = [];
    const add = (kind: string, problem: string) => problems.push({ kind, problem });
    const drill = this.drills.get(record.backup!.stanza);
    if (drill && !drill.ok) add('drill', `the restore drill of "${record.name}" failed: ${drill.detail}`);
    if (state.archiving?.failing) add('archiving', `WAL archiving of "${record.name}" fails (${state.archiving.failedCount} failures; last at ${state.archiving.lastFailure})`);
    if (state.lastError) add('backup', `the last backup of "${record.name}" failed: ${state.lastError}`);
    const overdue = this.overdueSeconds();
    if (age !== null && age > overdue) add('overdue', `the newest backup of "${record.name}" is ${formatAge(age)} old (more than 1.5 times the schedule)`);
    if (!last && Date.now() - Date.parse(record.created_at) > overdue * 1000) add('overdue', `"${record.name}" has no backup`);
    return problems;
  }

  /** The backup problems that make health `degraded`, with the database each is about. */
  async problemEntries(): Promise<ProblemEntry[]> {
    if (!this.repository.enabled) return [];
    const records = (await this.registry.list()).filter((r) => !r.pending);
    return [
      ...this.catalog.problems().map((problem) => ({ database: null, kind: 'server-record', problem })),
      ...records.filter((r) => r.backup).flatMap((r) => this.problemsOf(r).map((p) => ({ database: r.name, ...p }))),
    ];
  }

  /** 1.5 times the longest gap between differential (or full) slots: older than that is overdue. */
  private overdueSeconds(): number {
    return 1.5 * gapSeconds([this.schedules.full, this.schedules.diff], new Date());
  }
}

function formatAge(seconds: number): string {
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400 * 2) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}
