/**
 * The SQL of the day-2 operations, run by the daemon as its superuser in
 * the maintenance database (ADMIN_DATABASE) with a fixed search_path; names
 * are qualified all the same.
 */
import { ident, literal } from '../postgres/postgres-container.js';
import { scramVerifier } from '../postgres/scram.js';

/** One row of what `pgdb info` shows live; the daemon's own connection is not counted. */
export const INFO_QUERY = `SELECT
  pg_catalog.current_setting('server_version') AS server_version,
  pg_catalog.pg_postmaster_start_time() AS started_at,
  pg_catalog.current_setting('max_connections')::int AS max_connections,
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid())::int AS connections,
  COALESCE((SELECT extract(epoch FROM pg_catalog.max(pg_catalog.clock_timestamp() - query_start)) FROM pg_catalog.pg_stat_activity
    WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()), 0)::float8 AS longest_query_seconds,
  (SELECT pg_catalog.sum(pg_catalog.pg_database_size(oid)) FROM pg_catalog.pg_database)::float8 AS data_bytes`;

export interface InfoRow extends Record<string, unknown> {
  server_version: string;
  started_at: Date | string;
  max_connections: number;
  connections: number;
  longest_query_seconds: number;
  data_bytes: number;
}

/** The tenant's new password, sent as a SCRAM verifier: the clear text never reaches the server or its log. */
export function passwordChange(user: string, password: string): string {
  return `ALTER ROLE ${ident(user)} PASSWORD ${literal(scramVerifier(password))}`;
}

/** Ends every session of the tenant's role; one row, `ended`. */
export function terminateSessions(user: string): string {
  return `SELECT pg_catalog.count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid))::int AS ended FROM pg_catalog.pg_stat_activity
    WHERE usename = ${literal(user)} AND pid <> pg_catalog.pg_backend_pid()`;
}
