import { createServer } from 'node:net';
import { Inject, Injectable } from '@nestjs/common';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';

/** How long a port the engine refused is skipped by every pick. */
export const REFUSED_FOR_MS = 10 * 60_000;

/** True when nothing on this host listens on the port at that address. */
export function isPortFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The lowest port of the range that no database holds and nothing else
 * listens on. Called under the registry lock, so two deploys never get
 * the same one.
 */
export async function pickPort(
  range: { first: number; last: number },
  taken: Set<number>,
  host: string,
  isFree: (port: number, host: string) => Promise<boolean> = isPortFree,
): Promise<number> {
  for (let port = range.first; port <= range.last; port++) {
    if (!taken.has(port) && (await isFree(port, host))) return port;
  }
  throw new DomainError(
    'NO_FREE_PORT',
    `no free host port left in ${range.first}-${range.last}; destroy unused databases or widen PGDB_PORT_RANGE`,
  );
}

/**
 * Picks host ports for deploys and standbys (always under the registry lock,
 * with the ports the registry holds as `taken`), skipping the ports the
 * engine refused lately. The bind check cannot see every port Docker holds
 * (with its userland proxy off, a published port has no listener), so a
 * refusal is remembered for all callers: otherwise every deploy, and every
 * refill of the warm pool, would pick the same lowest port and fail on it
 * again.
 */
@Injectable()
export class PortPicker {
  private readonly refusedUntil = new Map<number, number>();

  constructor(@Inject(DAEMON_CONFIG) private readonly config: DaemonConfig) {}

  pick(taken: Set<number>): Promise<number> {
    const now = Date.now();
    for (const [port, until] of this.refusedUntil) if (until <= now) this.refusedUntil.delete(port);
    return pickPort(this.config.portRange, new Set([...taken, ...this.refusedUntil.keys()]), this.config.postgresBind);
  }

  /** The engine said this port is taken (PortTakenError). */
  refused(port: number): void {
    if (port > 0) this.refusedUntil.set(port, Date.now() + REFUSED_FOR_MS);
  }
}
