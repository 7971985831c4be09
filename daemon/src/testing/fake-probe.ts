import type { ConnectionTarget, PostgresProbe } from '../deploy/postgres.probe.js';

/** Answers readiness at once; `ready = false` simulates a Postgres that never comes up. */
export class FakeProbe implements PostgresProbe {
  ready = true;
  readonly probed: ConnectionTarget[] = [];

  async waitUntilReady(target: ConnectionTarget): Promise<boolean> {
    this.probed.push(target);
    return this.ready;
  }
}
