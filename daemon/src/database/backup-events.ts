import { Injectable } from '@nestjs/common';
import type { BackupState, BackupTargetKind } from '../../../contract/api.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import type { ProblemEntry } from '../common/alerts.js';

/** What the backup service reports into status and health. */
export interface BackupReporter {
  stateFor(record: RegistryRecord): BackupState | undefined;
  problemEntries(): Promise<ProblemEntry[]>;
  location(): { kind: BackupTargetKind; location: string; note: string } | null;
}

/**
 * The seam between the deploy module and the backup service, which builds
 * on it: deploys say when a database became ready (deployed, claimed from
 * the pool, restored), and status and health ask for backup state, without
 * the deploy module depending on the backup service.
 */
@Injectable()
export class BackupEvents {
  private readonly listeners: Array<(record: RegistryRecord) => void> = [];
  private reporter: BackupReporter | undefined;
  private readonly changeListeners: Array<() => void> = [];

  onReady(listener: (record: RegistryRecord) => void): void {
    this.listeners.push(listener);
  }

  ready(record: RegistryRecord): void {
    for (const listener of this.listeners) listener(record);
  }

  report(reporter: BackupReporter): void {
    this.reporter = reporter;
  }

  stateFor(record: RegistryRecord): BackupState | undefined {
    return this.reporter?.stateFor(record);
  }

  /** The backup problems, each with the database it is about and its kind. */
  problemEntries(): Promise<ProblemEntry[]> {
    return this.reporter?.problemEntries() ?? Promise.resolve([]);
  }

  /** The backup service says a backup or drill ended, or its periodic check ran: health's problem set may have changed. */
  problemsChanged(): void {
    for (const listener of this.changeListeners) listener();
  }

  onProblemsChanged(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  location(): { kind: BackupTargetKind; location: string; note: string } | null {
    return this.reporter?.location() ?? null;
  }
}
