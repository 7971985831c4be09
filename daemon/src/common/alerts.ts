/**
 * PGDB_ALERT_WEBHOOK: a JSON POST for every problem that appears in, or
 * clears from, the health problem set. Deliveries run in the background, one
 * after another in order, with retries and backoff; nothing waits for them.
 * The URL may carry a token in its path or query, so only its origin is logged.
 */
import type { Logger } from '../common/logger.js';

export interface ProblemEntry {
  /** The database the problem is about, or null for the server. */
  database: string | null;
  /** What kind of problem (drill, archiving, ...): a problem is the same while its kind and database are. */
  kind: string;
  problem: string;
}

export interface AlertBody {
  event: 'problem' | 'resolved';
  server: string;
  database: string | null;
  problem: string;
  at: string;
}

export interface AlertOptions {
  url: string | undefined;
  server: string;
  attempts?: number;
  /** The first retry's delay; each next one doubles it. */
  backoffMs?: number;
  timeoutMs?: number;
}

export class Alerts {
  private known = new Map<string, ProblemEntry>();
  private first = true;
  private delivery: Promise<void> = Promise.resolve();
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  /** Deliveries that gave up (for the log and tests). */
  failed = 0;

  constructor(private readonly options: AlertOptions, private readonly logger: Logger) {
    this.attempts = options.attempts ?? 5;
    this.backoffMs = options.backoffMs ?? 2_000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /**
   * Compares the current problem set with the last one seen and sends an
   * event for each difference. Problems are matched by database and kind,
   * so a problem whose wording changes (a growing failure count, another
   * failed drill) is not sent again; the first observation only reports problems.
   */
  observe(entries: ProblemEntry[]): void {
    const current = new Map(entries.map((e) => [`${e.database ?? ''}\u0000${e.kind}`, e]));
    const at = new Date().toISOString();
    const events: AlertBody[] = [];
    for (const [key, entry] of current) {
      if (!this.known.has(key)) events.push({ event: 'problem', server: this.options.server, database: entry.database, problem: entry.problem, at });
    }
    if (!this.first) {
      for (const [key, entry] of this.known) {
        if (!current.has(key)) events.push({ event: 'resolved', server: this.options.server, database: entry.database, problem: entry.problem, at });
      }
    }
    // A resolved event names the problem as it was last seen.
    this.known = current;
    this.first = false;
    if (!this.options.url) return;
    for (const event of events) {
      this.delivery = this.delivery.then(() => this.send(event));
    }
  }

  /** Resolves when every event queued so far was delivered or given up. */
  settled(): Promise<void> {
    return this.delivery;
  }

  private async send(body: AlertBody): Promise<void> {
    const url = this.options.url!;
    const origin = new URL(url).origin;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      let reason: string;
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'pgdb-alerts' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
          redirect: 'manual',
        });
        await response.body?.cancel().catch(() => undefined);
        if (response.ok) {
          this.logger.info({ webhook: origin, event: body.event, database: body.database, attempt }, 'alert delivered');
          return;
        }
        reason = `HTTP ${response.status}`;
      } catch (error) {
        reason = (error as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : ((error as Error & { cause?: Error }).cause?.message ?? (error as Error).message);
      }
      if (attempt === this.attempts) {
        this.failed++;
        this.logger.error({ webhook: origin, event: body.event, database: body.database, attempts: attempt, reason }, 'alert not delivered; giving up');
        return;
      }
      const delay = this.backoffMs * 2 ** (attempt - 1);
      this.logger.warn({ webhook: origin, event: body.event, database: body.database, attempt, reason, retryInMs: delay }, 'alert delivery failed; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
    }
  }
}

/** PGDB_ALERT_WEBHOOK's check: an http or https URL without credentials in it; the problem, or undefined when fine. */
export function webhookProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `PGDB_ALERT_WEBHOOK must be an http or https URL, got "${redact(value)}"`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `PGDB_ALERT_WEBHOOK must be an http or https URL, got a ${url.protocol} URL`;
  if (url.username || url.password) return 'PGDB_ALERT_WEBHOOK must not carry a user or password (put a token in its path or query instead)';
  return undefined;
}

/** A bad setting's text, cut short: it may hold a token. */
function redact(value: string): string {
  return value.length > 12 ? `${value.slice(0, 12)}...` : value;
}
