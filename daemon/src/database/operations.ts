import { Injectable } from '@nestjs/common';
import { DomainError } from '../common/errors.js';

/**
 * Names of the databases this process is working on right now (a deploy, a
 * destroy, a repair). Reconciliation leaves them alone, and checks this set
 * under the registry lock, so that an operation finishing while it runs is
 * never mistaken for what a crash left behind.
 */
@Injectable()
export class Operations {
  private readonly active = new Set<string>();

  has(name: string): boolean {
    return this.active.has(name);
  }

  /** Runs `work` with `name` marked busy; fails at once (DB_BUSY, 409) when it already is. */
  async run<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (this.active.has(name)) {
      throw new DomainError('DB_BUSY', `another operation on "${name}" is in progress (an operation on it is already running in this process)`);
    }
    this.active.add(name);
    try {
      return await work();
    } finally {
      this.active.delete(name);
    }
  }
}
