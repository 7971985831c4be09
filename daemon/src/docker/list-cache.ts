/** What a kept list holds: containers or volumes with these labels. */
export type ListKind = 'containers' | 'volumes';

interface Kept {
  generation: number;
  at: number;
  value: readonly unknown[];
}

/**
 * Lists of Docker objects kept between calls while nothing says they
 * changed, so that `status` does not ask the engine for every container on
 * every request. A kept list is served only when all of these hold:
 *
 * - the engine's event stream is live (`setLive(true)`): whatever changes a
 *   container or a volume outside this process (`docker rm -f`, a crash, a
 *   restart policy) is reported there, and drops the lists it touches;
 * - no change was seen since the list was asked for: this process's own
 *   changes drop every list when the engine has answered them (`changed()`),
 *   before their events arrive, and a list that was in flight when a change
 *   was seen is not kept;
 * - it is at most `maxAgeMs` old (0 keeps nothing), in case the engine
 *   dropped an event.
 */
export class ListCache {
  private generation = 0;
  private live = false;
  private readonly kept = new Map<string, Kept>();
  /** Label sets asked for, to tell which container events matter. */
  private readonly watched = new Map<string, Record<string, string>>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.maxAgeMs > 0;
  }

  /** Whether the event stream is live; either way, what was kept before is dropped. */
  setLive(live: boolean): void {
    this.live = live;
    this.changed();
  }

  /** Something changed (this process's own call, or an event about volumes): drop every list. */
  changed(): void {
    this.generation++;
    this.kept.clear();
  }

  /** A container event: drops the lists when the container carries every label of a list asked for. */
  containerChanged(attributes: Record<string, string>): void {
    const matters = [...this.watched.values()].some((labels) => Object.entries(labels).every(([key, value]) => attributes[key] === value));
    if (matters) this.changed();
  }

  /** The kept list of `kind` with `labels`, or a new one from `list` (kept when nothing changed meanwhile). */
  async get<T>(kind: ListKind, labels: Record<string, string>, list: () => Promise<T[]>): Promise<T[]> {
    if (!this.enabled) return list();
    const key = `${kind}\n${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join('\n')}`;
    if (kind === 'containers') this.watched.set(key, { ...labels });
    const kept = this.kept.get(key);
    if (this.live && kept && kept.generation === this.generation && this.now() - kept.at <= this.maxAgeMs) {
      return [...kept.value] as T[];
    }
    const generation = this.generation;
    const at = this.now();
    const value = await list();
    if (this.live && generation === this.generation) this.kept.set(key, { generation, at, value: [...value] });
    return value;
  }
}
