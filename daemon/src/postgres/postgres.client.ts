import { checkServerIdentity } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable } from '@nestjs/common';
import pg from 'pg';
import { ADMIN_SESSION_OPTIONS } from './postgres-container.js';

export const POSTGRES_CLIENT = Symbol('POSTGRES_CLIENT');

/**
 * How the daemon's own connections use TLS: `verify` checks the chain
 * against `ca` (the host name is not checked: the daemon connects to the
 * published port on its own address, while the certificate names the
 * public host); `plain` is only for databases from before TLS, while they
 * are upgraded.
 */
/** `ca`: the roots to trust (default: Node's); `servername`: the name the certificate must carry (default: not checked). */
export type ClientTls = { mode: 'verify'; ca?: string | string[]; servername?: string } | { mode: 'plain' };

export interface ConnectionTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  tls: ClientTls;
}

/** The daemon's connections to the databases it runs. */
export interface PostgresClient {
  /**
   * Resolves once a connection with exactly these credentials runs
   * `SELECT 1`; resolves false when the deadline passes or `abandon`
   * says to stop trying (e.g. the container exited).
   */
  waitUntilReady(target: ConnectionTarget, deadline: number, abandon: () => Promise<boolean>): Promise<boolean>;
  /** Runs the statements in order on one connection; the first error is thrown. */
  execute(target: ConnectionTarget, statements: string[]): Promise<void>;
  /** Runs one query and returns its rows. */
  query<T extends Record<string, unknown>>(target: ConnectionTarget, sql: string): Promise<T[]>;
  /**
   * One connection kept open for several statements (a transaction that
   * spans them, several sessions open at once); the caller ends it.
   */
  connect(target: ConnectionTarget, options?: SessionOptions): Promise<PostgresSession>;
}

export interface SessionOptions {
  /** The session's statement_timeout (default 60 s); 0 for none. */
  statementTimeoutMs?: number;
}

/** A connection opened by PostgresClient.connect. */
export interface PostgresSession {
  /** Runs one statement (parameters as $1, $2, ...) and returns its rows; the first error is thrown. */
  query<T extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Closes the connection (an open transaction is rolled back); never throws. */
  end(): Promise<void>;
}

const RETRY_DELAY_MS = 25;
const LIVENESS_CHECK_EVERY_MS = 500;
const STATEMENT_TIMEOUT_MS = 60_000;

@Injectable()
export class PgClient implements PostgresClient {
  async waitUntilReady(target: ConnectionTarget, deadline: number, abandon: () => Promise<boolean>): Promise<boolean> {
    let nextLivenessCheck = Date.now() + LIVENESS_CHECK_EVERY_MS;
    while (Date.now() < deadline) {
      if (await selectOne(target, deadline)) return true;
      if (Date.now() >= nextLivenessCheck) {
        if (await abandon()) return false;
        nextLivenessCheck = Date.now() + LIVENESS_CHECK_EVERY_MS;
      }
      await sleep(RETRY_DELAY_MS);
    }
    return false;
  }

  async execute(target: ConnectionTarget, statements: string[]): Promise<void> {
    await withClient(target, async (client) => {
      for (const statement of statements) await client.query(statement);
    });
  }

  async query<T extends Record<string, unknown>>(target: ConnectionTarget, sql: string): Promise<T[]> {
    return withClient(target, async (client) => (await client.query<T>(sql)).rows);
  }

  async connect(target: ConnectionTarget, options: SessionOptions = {}): Promise<PostgresSession> {
    const client = new pg.Client({ ...clientOptions(target, 10_000), statement_timeout: options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    return {
      query: async <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => (await client.query<T>(sql, params)).rows,
      end: () => client.end().catch(() => undefined),
    };
  }
}

async function withClient<T>(target: ConnectionTarget, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...clientOptions(target, 10_000), statement_timeout: STATEMENT_TIMEOUT_MS });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function selectOne(target: ConnectionTarget, deadline: number): Promise<boolean> {
  const client = new pg.Client(clientOptions(target, Math.max(100, Math.min(2000, deadline - Date.now()))));
  // A connection the server resets is reported here as well as by connect().
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function clientOptions(target: ConnectionTarget, connectionTimeoutMillis: number): pg.ClientConfig {
  const { tls, ...connection } = target;
  return {
    ...connection,
    // At start-up, before the database's own settings can matter (see ADMIN_SESSION_OPTIONS).
    options: ADMIN_SESSION_OPTIONS,
    connectionTimeoutMillis,
    ssl:
      tls.mode === 'plain'
        ? false
        : {
            ca: tls.ca,
            rejectUnauthorized: true,
            checkServerIdentity: (_host, cert) => (tls.servername === undefined ? undefined : checkServerIdentity(tls.servername, cert)),
          },
  };
}

/**
 * Whether an error came from Postgres itself (it carries a five-character
 * SQLSTATE), as opposed to the connection (refused, reset, timed out).
 */
export function isPostgresError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}
