/**
 * Named places where a test can make the daemon die as if the machine lost
 * power (SIGKILL to itself), to prove that every interrupted operation is
 * finished or undone at the next start. Off unless PGDB_FAILPOINTS names
 * one or more of them; never set on a real server.
 */
export const FAILPOINTS = [
  'deploy:reserved',
  'deploy:volume-created',
  'deploy:container-created',
  'deploy:container-started',
  'deploy:ready',
  'deploy:recorded',
  'destroy:marked',
  'destroy:containers-removed',
  'destroy:volume-handled',
  'rotate:recorded',
  'rotate:role-changed',
  'restore:volume-created',
  'restore:recovered',
  'upgrade:recorded',
  'upgrade:copying',
  'upgrade:copied',
  'upgrade:old-stopped',
  'upgrade:new-started',
  'upgrade:switched',
] as const;

export type Failpoint = (typeof FAILPOINTS)[number];

let armed = new Set<string>();

export function armFailpoints(names: readonly string[]): void {
  armed = new Set(names);
}

/** Dies on the spot when `name` is armed. */
export function failpoint(name: Failpoint): void {
  if (armed.has(name)) process.kill(process.pid, 'SIGKILL');
}

/** Whether `name` is armed: for a failpoint that has to wait for an event (such as the first bytes of a copy). */
export function failpointArmed(name: Failpoint): boolean {
  return armed.has(name);
}
