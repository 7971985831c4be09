import { Injectable } from '@nestjs/common';

/**
 * Backups and restore drills run one at a time: each is I/O-heavy, and the
 * machine serves databases meanwhile. A failed job does not stop the next.
 */
@Injectable()
export class BackupQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const run = this.tail.then(job);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
