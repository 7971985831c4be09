/**
 * The engine's events as a short progress display on stderr: one line when a
 * resource starts changing and one when it is done, with the elapsed time.
 * Unchanged resources are not shown. Plain code (events are plain objects).
 */

export interface StepMetadata {
  op: string;
  urn: string;
  type: string;
}

/** The subset of an Automation API EngineEvent this display reads. */
export interface ProgressEvent {
  resourcePreEvent?: { metadata: StepMetadata; planning?: boolean };
  resOutputsEvent?: { metadata: StepMetadata; planning?: boolean };
  resOpFailedEvent?: { metadata: StepMetadata };
  diagnosticEvent?: { message: string; severity: string; urn?: string };
}

const VERBS: Record<string, [string, string]> = {
  create: ['creating', 'created'],
  update: ['updating', 'updated'],
  delete: ['deleting', 'deleted'],
  replace: ['replacing', 'replaced'],
  'create-replacement': ['creating a replacement for', 'created a replacement for'],
  'delete-replaced': ['deleting the replaced', 'deleted the replaced'],
  'discard-replaced': ['discarding the replaced', 'discarded the replaced'],
  refresh: ['refreshing', 'refreshed'],
  read: ['reading', 'read'],
  import: ['importing', 'imported'],
  discard: ['forgetting', 'forgot'],
};

const QUIET_OPS = new Set(['same', 'refresh', 'read']);

/** The stack itself and the providers are not worth a line. */
function shown(metadata: StepMetadata): boolean {
  return !QUIET_OPS.has(metadata.op) && metadata.type !== 'pulumi:pulumi:Stack' && !metadata.type.startsWith('pulumi:providers:');
}

/** "hcloud:index/server:Server" → "server"; "command:remote:Command" → "command". */
export function describeResource(metadata: StepMetadata): string {
  const name = metadata.urn.split('::').at(-1) ?? metadata.urn;
  const kind = metadata.type.split(':').at(-1) ?? metadata.type;
  return `${kind} ${name}`;
}

export class ProgressDisplay {
  private readonly started = new Map<string, number>();
  /** Error diagnostics, in order: the failure explanation reads them. */
  readonly errors: string[] = [];
  /** How long each failed step ran before it failed, in order (ms). */
  readonly failedAfterMs: number[] = [];

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  onEvent(event: ProgressEvent): void {
    if (event.resourcePreEvent && !event.resourcePreEvent.planning) {
      const { metadata } = event.resourcePreEvent;
      if (shown(metadata)) {
        this.started.set(`${metadata.urn} ${metadata.op}`, this.now());
        this.write(`${this.verb(metadata.op, 0)} ${describeResource(metadata)}...`);
      }
    }
    if (event.resOutputsEvent && !event.resOutputsEvent.planning) {
      const { metadata } = event.resOutputsEvent;
      if (shown(metadata)) {
        this.write(`${this.verb(metadata.op, 1)} ${describeResource(metadata)}${seconds(this.elapsedMs(metadata))}`);
      }
    }
    if (event.resOpFailedEvent) {
      const { metadata } = event.resOpFailedEvent;
      const ms = this.elapsedMs(metadata);
      if (ms !== undefined) this.failedAfterMs.push(ms);
      this.write(`failed ${this.verb(metadata.op, 0)} ${describeResource(metadata)}${seconds(ms)}`);
    }
    if (event.diagnosticEvent && event.diagnosticEvent.severity === 'error') {
      this.errors.push(event.diagnosticEvent.message);
    }
  }

  private verb(op: string, tense: 0 | 1): string {
    return VERBS[op]?.[tense] ?? op;
  }

  private elapsedMs(metadata: StepMetadata): number | undefined {
    const key = `${metadata.urn} ${metadata.op}`;
    const start = this.started.get(key);
    if (start === undefined) return undefined;
    this.started.delete(key);
    return this.now() - start;
  }
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '' : ` (${(ms / 1000).toFixed(1)} s)`;
}

/** "2 created, 1 updated, 5 unchanged" from a summary's resourceChanges. */
export function summarizeChanges(changes: Record<string, number> | undefined): string {
  const words: Record<string, string> = { create: 'created', update: 'updated', delete: 'deleted', replace: 'replaced', same: 'unchanged' };
  const parts = Object.entries(changes ?? {})
    .filter(([, count]) => count > 0)
    .map(([op, count]) => `${count} ${words[op] ?? op}`);
  return parts.length ? parts.join(', ') : 'no changes';
}
