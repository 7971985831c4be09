/**
 * What the commands print on stdout: short, aligned human text, or exactly
 * one JSON document with --json.
 */
import type { DeployResponse, StatusItem, StatusResponse } from '../../contract/api.js';

/** `pgdb deploy --json`: these keys, in this order, and nothing else. */
export type DeployOutput = Pick<DeployResponse, 'name' | 'host' | 'port' | 'db' | 'user' | 'password'> & {
  DATABASE_URL: string;
};

export function deployOutput(response: DeployResponse): DeployOutput {
  const { name, host, port, db, user, password } = response;
  return { name, host, port, db, user, password, DATABASE_URL: response.database_url };
}

/** One `key: value` line per field, the same keys as the JSON form. */
export function formatDeploy(response: DeployResponse): string {
  return lines(Object.entries(deployOutput(response)).map(([key, value]) => `${key}: ${value}`));
}

export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function formatStatus(response: StatusResponse, serverUrl: string): string {
  const acme = acmeProblem(response);
  const poolProblems = (response.pool ?? [])
    .filter((p) => p.target > 0 && p.problem)
    .map((p) => `warm pool for Postgres ${p.postgres_version} cannot fill: ${p.problem}`);
  if (response.items.length === 0 && response.detached_volumes.length === 0 && !response.unknown_containers?.length) {
    return lines([`no databases on ${serverUrl}; create one with \`pgdb deploy\``, ...poolProblems, ...(acme ? [acme] : [])]);
  }
  const sections: string[] = [];
  if (response.items.length > 0) {
    sections.push(
      formatTable(['NAME', 'VERSION', 'PORT', 'STATE', 'SIZE', 'CREATED'], response.items.map(statusRow)),
    );
  }
  if (response.detached_volumes.length > 0) {
    const rows = response.detached_volumes.map((volume) => [
      volume.name,
      volume.volume_name,
      volume.created_at ? formatCreated(volume.created_at) : '-',
    ]);
    sections.push(
      `kept data volumes (destroyed with --keep-data; reuse one with \`pgdb deploy --from-volume <volume>\`):\n${formatTable(['NAME', 'VOLUME', 'CREATED'], rows)}`,
    );
  }
  const unknown = response.unknown_containers ?? [];
  if (unknown.length > 0) {
    const rows = unknown.map((c) => [c.name, c.container_name, c.state]);
    sections.push(
      `pgdb containers with no record (an older registry.json restored?); left alone: adopt the volume with \`pgdb deploy --from-volume\`, or remove with docker rm:\n${formatTable(['NAME', 'CONTAINER', 'STATE'], rows)}`,
    );
  }
  const pool = (response.pool ?? []).filter((p) => p.target > 0);
  if (pool.length > 0 && response.items.length > 0) {
    sections.push(`warm pool: ${pool.map((p) => `Postgres ${p.postgres_version} ${p.ready}/${p.target} ready${p.filling ? `, ${p.filling} filling` : ''}`).join('; ')}`);
  }
  sections.push(...poolProblems);
  const problems = response.items.filter((item) => item.problem);
  for (const item of problems) sections.push(`${item.name}: ${item.problem}`);
  if (acme) sections.push(acme);
  // Tables end their own last line; a section of one line (the pool, a problem) does not.
  const text = sections.join('\n');
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** A line about the ACME certificate when it is not what is served, or its last attempt failed. */
function acmeProblem(response: StatusResponse): string | undefined {
  const acme = response.tls?.acme;
  if (!acme || (acme.state === 'issued' && !acme.last_error)) return undefined;
  const served = acme.state === 'issued' ? `ACME certificate served (expires ${acme.not_after})` : acme.state === 'fallback' ? "own CA served: the ACME certificate could not be renewed in time" : 'own CA served until the ACME certificate is issued';
  return `TLS: ${served}${acme.last_error ? `; last ACME error: ${acme.last_error}` : ''}`;
}

function statusRow(item: StatusItem): string[] {
  const state = item.health === 'none' || item.health === 'healthy' ? item.state : `${item.state} (${item.health})`;
  const used = item.used_bytes === null ? '?' : formatBytes(item.used_bytes);
  return [
    item.name,
    String(item.postgres_version),
    String(item.host_port),
    state,
    `${used} / ${item.size_gb} GB`,
    formatCreated(item.created_at),
  ];
}

/** Left-aligned columns separated by two spaces, no trailing spaces. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const render = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]))
      .join('  ')
      .trimEnd();
  return lines([header, ...rows].map(render));
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** 1024-based, one decimal below 10: `512 B`, `7.5 MB`, `42 MB`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit > 0 && value < 10 ? 1 : 0;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** `2025-11-29 02:29 UTC`; anything that is not a date is shown as it is. */
export function formatCreated(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function lines(values: string[]): string {
  return `${values.join('\n')}\n`;
}
