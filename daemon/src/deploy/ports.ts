import { createServer } from 'node:net';
import { DomainError } from '../common/errors.js';

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
