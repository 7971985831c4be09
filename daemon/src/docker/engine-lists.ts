/** How the engine's lists and errors read: states, health, labels, published ports, port conflicts. */
import { isIP } from 'node:net';
import type Docker from 'dockerode';
import type { ContainerHealth, ContainerState } from '../../../contract/api.js';
import { reason } from './engine-calls.js';

/** Container events that change nothing a list shows (state, health, name, labels). */
export const QUIET_CONTAINER_ACTIONS = new Set([
  'exec_create', 'exec_start', 'exec_die', 'exec_detach', 'attach', 'detach', 'resize', 'top', 'copy', 'archive-path', 'extract-to-dir', 'export', 'commit',
]);

/** The port in "Bind for 127.0.0.1:15432 failed" or "listen tcp4 0.0.0.0:15432: bind: ..."; 0 when neither. */
export function portIn(message: string): number {
  const found = /Bind for \S*:(\d+) failed/.exec(message) ?? /:(\d+): bind/.exec(message);
  return found ? Number(found[1]) : 0;
}

export function isPortConflict(error: unknown): boolean {
  return /port is already allocated|address already in use/i.test(reason(error));
}

export function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([key, value]) => `${key}=${value}`);
}

export function stateOf(state: string): ContainerState {
  switch (state) {
    case 'running':
      return 'running';
    case 'restarting':
      return 'restarting';
    case 'created':
    case 'exited':
    case 'paused':
    case 'dead':
    case 'removing':
      return 'stopped';
    default:
      return 'unknown';
  }
}

/** Docker reports health in the status text: "Up 2 minutes (healthy)", "(health: starting)". */
export function healthOf(status: string): ContainerHealth {
  if (/\(healthy\)/.test(status)) return 'healthy';
  if (/\(unhealthy\)/.test(status)) return 'unhealthy';
  if (/\(health: starting\)/.test(status)) return 'starting';
  return 'none';
}

/** The host address Postgres' port (5432) is published on, from the engine's container list. */
export function publishedOf(ports: Docker.Port[] | undefined): { published?: string } {
  // Newer engines list an IPv6 binding (`::`) beside the IPv4 one: the IPv4 one is what pgdb asked for.
  const published = (ports ?? []).filter((p) => p.PrivatePort === 5432 && p.PublicPort);
  const port = published.find((p) => isIP(p.IP ?? '') === 4) ?? published[0];
  return port?.IP !== undefined ? { published: port.IP } : {};
}
