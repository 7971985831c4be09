import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { Cron } from 'croner';
import { webhookProblem } from './alerts.js';

/** An S3-compatible store, from PGDB_BACKUP_S3_* (secrets already read from their files). */
export interface S3Repository {
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
  uriStyle: 'path' | 'host';
  /** PEM bundle the store's certificate is checked against; the image's roots when absent. */
  caFile?: string;
  /** Port, when the endpoint has one. */
  port?: number;
}

/** Backup settings, from PGDB_BACKUP* (see docs/backups.md). */
export interface BackupConfig {
  /** PGDB_BACKUP=off turns archiving and backups off (for benchmarks; not for servers holding data). */
  enabled: boolean;
  /** Cron patterns (UTC) of full and differential backups. */
  schedule: { full: string; diff: string };
  retentionFull: number;
  /** The target (backup/targets/): S3 when set, else the local repository under `<data dir>/backups`. */
  s3?: S3Repository;
  /** PGDB_BACKUP_S3_ADDRESS: where the daemon connects for the endpoint's host when DNS does not say. */
  s3Address?: string;
  /** PGDB_BACKUP_GATEWAY_PORT: where the backup gateway listens on the databases' bridge (S3 only; see s3-gateway.ts). */
  gatewayPort: number;
  /** PGDB_BACKUP_DRILL_SCHEDULE: cron pattern (UTC) of restore drills; null with "off". */
  drillSchedule: string | null;
  /** PGDB_ALERT_WEBHOOK: where problem and resolved events are POSTed. */
  alertWebhook?: string;
  /** PGDB_BACKUP_KEY_FILE: the server's backup key; absent: `<data dir>/backup.key`, made at first start. */
  keyFile?: string;
}

/** Sunday 02:15 UTC full, every other day at 02:15 a differential. */
export const DEFAULT_SCHEDULE = { full: '15 2 * * 0', diff: '15 2 * * 1-6' };
export const DEFAULT_RETENTION_FULL = 2;
/** The backup gateway's port on the databases' bridge address. */
export const DEFAULT_GATEWAY_PORT = 8433;
/** Sunday 04:30 UTC, after the weekly full backup. */
export const DEFAULT_DRILL_SCHEDULE = '30 4 * * 0';

type Env = Record<string, string | undefined>;

/**
 * PGDB_BACKUP_SCHEDULE: `full=<cron>;diff=<cron>` (either part may be left
 * out, keeping its default). Five-field cron patterns, in UTC.
 */
export function parseSchedule(value: string | undefined, fail: (message: string) => undefined): { full: string; diff: string } | undefined {
  const schedule = { ...DEFAULT_SCHEDULE };
  if (!value) return schedule;
  for (const part of value.split(';').map((p) => p.trim()).filter(Boolean)) {
    const match = /^(full|diff)\s*=\s*(.+)$/.exec(part);
    if (!match) return fail(`PGDB_BACKUP_SCHEDULE: "${part}" is not full=<cron> or diff=<cron> (example: "full=15 2 * * 0;diff=15 2 * * 1-6")`);
    const pattern = match[2].trim();
    if (pattern.split(/\s+/).length !== 5) return fail(`PGDB_BACKUP_SCHEDULE: ${match[1]} "${pattern}" must have five fields (minute hour day month weekday)`);
    try {
      new Cron(pattern, { paused: true, timezone: 'UTC' });
    } catch (error) {
      return fail(`PGDB_BACKUP_SCHEDULE: ${match[1]} "${pattern}" is not a cron pattern (${(error as Error).message})`);
    }
    schedule[match[1] as 'full' | 'diff'] = pattern;
  }
  return schedule;
}

export function loadBackupConfig(env: Env, fail: (message: string) => undefined): BackupConfig | undefined {
  const mode = env.PGDB_BACKUP || 'on';
  if (mode !== 'on' && mode !== 'off') return fail(`PGDB_BACKUP must be on or off, got "${mode}"`);
  const schedule = parseSchedule(env.PGDB_BACKUP_SCHEDULE, fail);
  const retentionText = env.PGDB_BACKUP_RETENTION_FULL ?? String(DEFAULT_RETENTION_FULL);
  const retentionFull = Number(retentionText);
  if (!/^\d+$/.test(retentionText) || retentionFull < 1 || retentionFull > 100) {
    fail(`PGDB_BACKUP_RETENTION_FULL must be a whole number from 1 to 100, got "${retentionText}"`);
  }
  const s3 = loadS3(env, fail);
  const drillSchedule = parseDrillSchedule(env.PGDB_BACKUP_DRILL_SCHEDULE, fail);
  const webhook = env.PGDB_ALERT_WEBHOOK || undefined;
  const webhookError = webhook === undefined ? undefined : webhookProblem(webhook);
  if (webhookError) fail(webhookError);
  const gatewayText = env.PGDB_BACKUP_GATEWAY_PORT || String(DEFAULT_GATEWAY_PORT);
  const gatewayPort = Number(gatewayText);
  if (!/^\d+$/.test(gatewayText) || gatewayPort < 1 || gatewayPort > 65535) {
    return fail(`PGDB_BACKUP_GATEWAY_PORT must be a port number from 1 to 65535, got "${gatewayText}"`);
  }
  if (!schedule || (s3 === null) || drillSchedule === undefined || webhookError) return undefined;
  const keyFile = env.PGDB_BACKUP_KEY_FILE || undefined;
  if (keyFile !== undefined && !isAbsolute(keyFile)) return fail(`PGDB_BACKUP_KEY_FILE must be an absolute path, got "${keyFile}"`);
  const address = env.PGDB_BACKUP_S3_ADDRESS;
  if (address && !/^(host-gateway|[0-9a-f.:]+)$/i.test(address)) {
    return fail(`PGDB_BACKUP_S3_ADDRESS must be an IP address or host-gateway, got "${address}"`);
  }
  return {
    enabled: mode === 'on',
    schedule,
    retentionFull,
    drillSchedule,
    gatewayPort,
    ...(webhook ? { alertWebhook: webhook } : {}),
    ...(keyFile ? { keyFile } : {}),
    ...(s3 ? { s3 } : {}),
    ...(s3 && address ? { s3Address: address } : {}),
  };
}

/** PGDB_BACKUP_DRILL_SCHEDULE: a five-field cron pattern (UTC), or off; undefined when bad. */
export function parseDrillSchedule(value: string | undefined, fail: (message: string) => undefined): string | null | undefined {
  const pattern = (value ?? '').trim() || DEFAULT_DRILL_SCHEDULE;
  if (pattern === 'off') return null;
  if (pattern.split(/\s+/).length !== 5) return fail(`PGDB_BACKUP_DRILL_SCHEDULE "${pattern}" must have five fields (minute hour day month weekday), or be off`);
  try {
    new Cron(pattern, { paused: true, timezone: 'UTC' });
  } catch (error) {
    return fail(`PGDB_BACKUP_DRILL_SCHEDULE "${pattern}" is not a cron pattern (${(error as Error).message})`);
  }
  return pattern;
}

const S3_KEYS = ['ENDPOINT', 'BUCKET', 'REGION', 'ACCESS_KEY_FILE', 'SECRET_KEY_FILE'] as const;

/** Undefined: no S3 configured. Null: configured badly (the problems went to `fail`). */
function loadS3(env: Env, fail: (message: string) => undefined): S3Repository | undefined | null {
  const given = S3_KEYS.filter((key) => env[`PGDB_BACKUP_S3_${key}`]);
  if (given.length === 0 && !env.PGDB_BACKUP_S3_URI_STYLE && !env.PGDB_BACKUP_S3_CA_FILE) return undefined;
  const missing = S3_KEYS.filter((key) => !env[`PGDB_BACKUP_S3_${key}`]);
  if (missing.length > 0) {
    fail(`S3 backups need every one of ${S3_KEYS.map((k) => `PGDB_BACKUP_S3_${k}`).join(', ')}; missing: ${missing.map((k) => `PGDB_BACKUP_S3_${k}`).join(', ')}`);
    return null;
  }
  const endpointText = env.PGDB_BACKUP_S3_ENDPOINT!.replace(/^https:\/\//, '').replace(/\/$/, '');
  const endpoint = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(endpointText);
  if (!endpoint) {
    fail(`PGDB_BACKUP_S3_ENDPOINT must be a host name with an optional port (https is implied), got "${env.PGDB_BACKUP_S3_ENDPOINT}"`);
    return null;
  }
  const uriStyle = env.PGDB_BACKUP_S3_URI_STYLE || 'path';
  if (uriStyle !== 'path' && uriStyle !== 'host') {
    fail(`PGDB_BACKUP_S3_URI_STYLE must be path or host, got "${uriStyle}"`);
    return null;
  }
  const accessKey = readSecret('PGDB_BACKUP_S3_ACCESS_KEY_FILE', env.PGDB_BACKUP_S3_ACCESS_KEY_FILE!, fail);
  const secretKey = readSecret('PGDB_BACKUP_S3_SECRET_KEY_FILE', env.PGDB_BACKUP_S3_SECRET_KEY_FILE!, fail);
  const caFile = env.PGDB_BACKUP_S3_CA_FILE;
  if (caFile !== undefined && caFile !== '') {
    if (!isAbsolute(caFile)) {
      fail(`PGDB_BACKUP_S3_CA_FILE must be an absolute path, got "${caFile}"`);
      return null;
    }
    try {
      if (!readFileSync(caFile, 'utf8').includes('-----BEGIN CERTIFICATE-----')) {
        fail(`PGDB_BACKUP_S3_CA_FILE ${caFile} holds no PEM certificate`);
        return null;
      }
    } catch (error) {
      fail(`PGDB_BACKUP_S3_CA_FILE ${caFile} cannot be read (${(error as NodeJS.ErrnoException).code})`);
      return null;
    }
  }
  if (accessKey === undefined || secretKey === undefined) return null;
  return {
    endpoint: endpoint[1],
    ...(endpoint[2] ? { port: Number(endpoint[2]) } : {}),
    bucket: env.PGDB_BACKUP_S3_BUCKET!,
    region: env.PGDB_BACKUP_S3_REGION!,
    accessKey,
    secretKey,
    uriStyle,
    ...(caFile ? { caFile } : {}),
  };
}

/** Secrets come from files (so that none sits in the environment): one line, no spaces. */
function readSecret(variable: string, path: string, fail: (message: string) => undefined): string | undefined {
  if (!isAbsolute(path)) return fail(`${variable} must be an absolute path, got "${path}"`);
  let value: string;
  try {
    value = readFileSync(path, 'utf8').trim();
  } catch (error) {
    return fail(`${variable} ${path} cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
  if (!value || /\s/.test(value)) return fail(`${variable} ${path} must hold one value on one line`);
  return value;
}
