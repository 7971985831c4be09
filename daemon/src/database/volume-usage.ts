/**
 * Docker measures a volume's usage by walking every file in it, which takes
 * long on large databases. Status answers from a measurement up to
 * `maxAgeMs` old and refreshes it in the background; it waits for a fresh
 * one only when a volume is missing from the last (a new database).
 * Concurrent callers share one measurement.
 */
export class VolumeUsage {
  private latest: { at: number; sizes: Map<string, number> } | undefined;
  private refreshing: Promise<Map<string, number>> | undefined;

  constructor(
    private readonly measure: () => Promise<Map<string, number>>,
    private readonly maxAgeMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  async sizes(volumes: string[]): Promise<Map<string, number>> {
    const latest = this.latest;
    if (!latest || volumes.some((volume) => !latest.sizes.has(volume))) return this.refresh();
    if (this.now() - latest.at > this.maxAgeMs) this.refresh().catch(() => undefined);
    return latest.sizes;
  }

  private refresh(): Promise<Map<string, number>> {
    this.refreshing ??= this.measure()
      .then((sizes) => {
        this.latest = { at: this.now(), sizes };
        return sizes;
      })
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }
}
