/**
 * The plumbing of engine calls: which connections a call opened (so that a
 * call past its deadline can be cut off), and how an engine error reads.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Agent, type ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';

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
