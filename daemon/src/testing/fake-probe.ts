import type { ConnectionTarget, PostgresClient } from '../postgres/postgres.client.js';

/**
 * Answers readiness at once and records what the daemon runs;
 * `ready = false` simulates a Postgres that never comes up.
 */
export class FakeProbe implements PostgresClient {
  ready = true;
  readonly probed: ConnectionTarget[] = [];
  readonly executed: Array<{ target: ConnectionTarget; statements: string[] }> = [];
  /** Rows `query` answers, by SQL text. */
  readonly rows = new Map<string, Array<Record<string, unknown>>>();

  async waitUntilReady(target: ConnectionTarget): Promise<boolean> {
    this.probed.push(target);
    return this.ready;
  }

  async execute(target: ConnectionTarget, statements: string[]): Promise<void> {
    this.executed.push({ target, statements });
  }

  async query<T extends Record<string, unknown>>(_target: ConnectionTarget, sql: string): Promise<T[]> {
    return (this.rows.get(sql) ?? []) as T[];
  }
}
