import type { ConnectionTarget, PostgresClient, PostgresSession } from '../postgres/postgres.client.js';

/**
 * Answers readiness at once and records what the daemon runs;
 * `ready = false` simulates a Postgres that never comes up.
 */
export class FakeProbe implements PostgresClient {
  ready = true;
  readonly probed: ConnectionTarget[] = [];
  readonly executed: Array<{ target: ConnectionTarget; statements: string[] }> = [];
  readonly queried: Array<{ target: ConnectionTarget; sql: string }> = [];
  /** Rows `query` answers, by SQL text. */
  readonly rows = new Map<string, Array<Record<string, unknown>>>();

  async waitUntilReady(target: ConnectionTarget): Promise<boolean> {
    this.probed.push(target);
    return this.ready;
  }

  /** When it answers true, `execute` fails like a server that cannot be reached (once per true). */
  failExecute: ((target: ConnectionTarget, statements: string[]) => boolean) | undefined;

  /** An error `execute` throws instead, when it gives one (e.g. a Postgres error with its SQLSTATE). */
  executeError: ((target: ConnectionTarget, statements: string[]) => Error | undefined) | undefined;

  async execute(target: ConnectionTarget, statements: string[]): Promise<void> {
    if (this.failExecute?.(target, statements)) throw new Error(`connect ECONNREFUSED ${target.host}:${target.port}`);
    const error = this.executeError?.(target, statements);
    if (error) throw error;
    this.executed.push({ target, statements });
  }

  async query<T extends Record<string, unknown>>(target: ConnectionTarget, sql: string): Promise<T[]> {
    this.queried.push({ target, sql });
    return (this.rows.get(sql) ?? []) as T[];
  }

  /** Sessions opened with `connect`: each statement is answered by `session` (default: no rows) and recorded in `queried`. */
  session: ((target: ConnectionTarget, sql: string, params: unknown[]) => Array<Record<string, unknown>> | Promise<Array<Record<string, unknown>>>) | undefined;

  async connect(target: ConnectionTarget): Promise<PostgresSession> {
    return {
      query: async <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => {
        this.queried.push({ target, sql });
        return ((await this.session?.(target, sql, params)) ?? []) as T[];
      },
      end: async () => undefined,
    };
  }
}
