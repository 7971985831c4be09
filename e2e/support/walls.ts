import { spawnSync } from 'node:child_process';

/**
 * From inside `container`, as its postgres user (the account a superuser
 * tenant runs programs as): does a TCP connection to host:port open within 3 s?
 */
export function connects(container: string, host: string, port: number): boolean {
  const result = spawnSync('docker', ['exec', '-u', 'postgres', container, 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], { encoding: 'utf8' });
  return result.status === 0;
}
