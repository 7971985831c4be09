/**
 * At most so many log lines per key (a stanza, an address) and window, so
 * that a client that repeats what is refused cannot flood the journal. The
 * first line of the next window says how many were held back before it.
 */
export class LogBudget {
  private readonly windows = new Map<string, { start: number; logged: number; held: number }>();

  constructor(
    private readonly perWindow = 10,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether to log this one, and how many were held back in the key's last window (to say so once). */
  take(key: string): { log: boolean; held: number } {
    const now = this.now();
    let window = this.windows.get(key);
    let held = 0;
    if (!window || now - window.start >= this.windowMs) {
      held = window?.held ?? 0;
      if (!window && this.windows.size >= 1024) this.forgetOld(now);
      window = { start: now, logged: 0, held: 0 };
      this.windows.set(key, window);
    }
    if (window.logged < this.perWindow) {
      window.logged++;
      return { log: true, held };
    }
    window.held++;
    return { log: false, held: 0 };
  }

  private forgetOld(now: number): void {
    for (const [key, window] of this.windows) if (now - window.start >= this.windowMs && window.held === 0) this.windows.delete(key);
  }
}
