import { Injectable } from '@nestjs/common';
import type { BackupState } from '../contract/api.js';
import type { RegistryRecord } from '../registry/registry.types.js';

/** What the backup service reports into status and health. */
export interface BackupReporter {
  stateFor(record: RegistryRecord): BackupState | undefined;
  problems(): Promise<string[]>;
  location(): { kind: 'local' | 's3'; location: string; note: string } | null;
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

  problems(): Promise<string[]> {
    return this.reporter?.problems() ?? Promise.resolve([]);
  }

  location(): { kind: 'local' | 's3'; location: string; note: string } | null {
    return this.reporter?.location() ?? null;
  }
}
