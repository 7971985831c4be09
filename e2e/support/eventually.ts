import { setTimeout as sleep } from 'node:timers/promises';

/** Thrown by a check that knows waiting longer cannot help (the process it waits for exited): eventually() passes it on at once. */
export class GaveUp extends Error {}

/**
 * Polls `check` until it returns a value (not undefined), or fails after `ms`
 * with the last error it threw. A check that throws GaveUp ends the wait at once.
 */
export async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>, everyMs = 500): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof GaveUp) throw error;
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}
