import type { Readable } from 'node:stream';
import type { Logger } from '../common/logger.js';
import { QUIET_CONTAINER_ACTIONS } from './engine-lists.js';
import type { ListCache } from './list-cache.js';

/** After the event stream ends, it is opened again at most this often (on the next cached list). */
const OPEN_RETRY_MS = 1000;

/**
 * The engine's event stream, followed so that the kept lists of containers
 * and volumes (ListCache) are dropped when something changes, also outside
 * this process. `open` asks the engine for the stream from a second back:
 * the engine replays what happened since, so nothing falls between its
 * answer and the subscription.
 */
export class EngineEvents {
  /** The stream while it is open (or being opened). */
  private stream: Readable | 'opening' | undefined;
  private openAgainAt = 0;

  constructor(
    private readonly open: () => Promise<Readable>,
    private readonly lists: ListCache,
    private readonly logger: Logger,
  ) {}

  close(): void {
    const stream = this.stream;
    this.stream = undefined;
    if (stream && stream !== 'opening') stream.destroy();
  }

  /**
   * Opens the engine's event stream, unless it is open or was tried less
   * than OPEN_RETRY_MS ago. Kept lists are served only while it is open:
   * it is what tells this process about changes made outside it.
   */
  follow(): void {
    if (!this.lists.enabled || this.stream || Date.now() < this.openAgainAt) return;
    this.stream = 'opening';
    this.openAgainAt = Date.now() + OPEN_RETRY_MS;
    this.open()
      .then((opened) => {
        const stream = opened as Readable & { socket?: { unref(): void } };
        if (this.stream !== 'opening') {
          stream.destroy(); // shut down meanwhile
          return;
        }
        this.stream = stream;
        // The stream alone never keeps the daemon running.
        stream.socket?.unref();
        let pending = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          pending += chunk;
          for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
            this.onEvent(pending.slice(0, end));
            pending = pending.slice(end + 1);
          }
        });
        const ended = (error?: Error) => {
          if (this.stream !== stream) return;
          this.stream = undefined;
          this.lists.setLive(false);
          this.logger.warn({ err: error?.message }, 'the engine\'s event stream ended; status lists from Docker again until it is back');
        };
        stream.on('error', ended);
        stream.on('end', () => ended());
        stream.on('close', () => ended());
        this.lists.setLive(true);
        this.logger.info('following the engine\'s events: status reuses its lists of containers and volumes until they change');
      })
      .catch((error: Error) => {
        if (this.stream === 'opening') this.stream = undefined;
        this.logger.debug({ err: error.message }, 'could not open the engine\'s event stream');
      });
  }

  /** One line of the event stream: a change to a container of a kept list, or to any volume, drops the kept lists. */
  private onEvent(line: string): void {
    if (line.trim() === '') return;
    let event: { Type?: string; Action?: string; Actor?: { Attributes?: Record<string, string> } };
    try {
      event = JSON.parse(line);
    } catch {
      this.lists.changed();
      return;
    }
    // "exec_start: pg_isready ...", "health_status: healthy": the action is before the colon.
    const action = (event.Action ?? '').split(':')[0];
    if (event.Type === 'container') {
      if (!QUIET_CONTAINER_ACTIONS.has(action)) this.lists.containerChanged(event.Actor?.Attributes ?? {});
    } else if (event.Type === 'volume') {
      // Volume events carry no labels, so any volume created or removed counts.
      if (action !== 'mount' && action !== 'unmount') this.lists.changed();
    }
  }
}
