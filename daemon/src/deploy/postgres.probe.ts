import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable } from '@nestjs/common';
import pg from 'pg';

export const POSTGRES_PROBE = Symbol('POSTGRES_PROBE');

export interface ConnectionTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface PostgresProbe {
  /**
   * Resolves once a connection with exactly these credentials runs
   * `SELECT 1`; resolves false when the deadline passes or `abandon`
   * says to stop trying (e.g. the container exited).
   */
  waitUntilReady(target: ConnectionTarget, deadline: number, abandon: () => Promise<boolean>): Promise<boolean>;
}

const RETRY_DELAY_MS = 25;
const LIVENESS_CHECK_EVERY_MS = 500;

@Injectable()
export class PgProbe implements PostgresProbe {
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
}

async function selectOne(target: ConnectionTarget, deadline: number): Promise<boolean> {
  const client = new pg.Client({
    ...target,
    connectionTimeoutMillis: Math.max(100, Math.min(2000, deadline - Date.now())),
    ssl: false,
  });
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
