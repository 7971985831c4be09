/**
 * The plumbing of engine calls: which connections a call opened (so that a
 * call past its deadline can be cut off), and how an engine error reads.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Agent, type ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';
import { DomainError } from '../common/errors.js';

/** Error codes of a socket that has no engine behind it. */
export const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);

export type DockerError = Error & { statusCode?: number; code?: string; json?: { message?: string } };

/** The connections opened by the engine call running in this async context (see `call`). */
export const callConnections = new AsyncLocalStorage<Set<Duplex>>();

/** An agent that files each new connection under the engine call that opened it. */
export class CallTrackingAgent extends Agent {
  constructor() {
    super({ keepAlive: false });
  }

  override createConnection(
    options: ClientRequestArgs,
    callback?: (error: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const connection = super.createConnection(options, callback);
    if (connection) callConnections.getStore()?.add(connection);
    return connection;
  }
}

export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

export function statusOf(error: unknown): number | undefined {
  return (error as DockerError)?.statusCode;
}

export function reason(error: unknown): string {
  const e = error as DockerError;
  return e?.json?.message ?? e?.message ?? String(error);
}

/**
 * Runs one engine call, turning a missing engine, or one that does not
 * answer within `timeoutMs`, into DOCKER_UNAVAILABLE (naming `socket`); the
 * connections the call opened are closed then.
 */
export async function callEngine<T>(socket: string, operation: () => Promise<T>, timeoutMs: number): Promise<T> {
  const connections = new Set<Duplex>();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new DomainError(
          'DOCKER_UNAVAILABLE',
          `Docker engine at ${socket} did not answer within ${formatSeconds(timeoutMs)}; ` +
            'check that Docker is healthy (systemctl status docker, docker info)',
        ),
      );
      for (const connection of connections) connection.destroy();
    }, timeoutMs);
  });
  try {
    return await Promise.race([callConnections.run(connections, operation), deadline]);
  } catch (error) {
    if (error instanceof DomainError) throw error;
    const code = (error as DockerError).code;
    if (code && UNREACHABLE.has(code)) {
      throw new DomainError(
        'DOCKER_UNAVAILABLE',
        `Docker engine unreachable at ${socket} (${code}); ` +
          'check that Docker is running (systemctl status docker) and that pgdbd may use its socket',
      );
    }
    const missing = /bind source path does not exist: (\S+)/.exec(reason(error));
    if (missing) {
      // The engine resolves bind paths in its own filesystem: Docker in a container, a VM, snap or rootless Docker.
      throw new DomainError(
        'DOCKER_UNAVAILABLE',
        `the Docker engine at ${socket} cannot see ${missing[1]}, which exists for pgdbd: ` +
          'the engine runs with another filesystem (Docker in a container or VM, snap or rootless Docker). ' +
          'Run pgdbd on the engine\'s host, or keep backups in S3 (PGDB_BACKUP_S3_*) so that no local repository is mounted',
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
