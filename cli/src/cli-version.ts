import { readFileSync } from 'node:fs';

/**
 * The version in pgdb's package.json: the nearest one named "pgdb" above
 * this file, whether it runs from the bundle (dist/cli/bin) or from tsc's
 * output (dist/cli/src).
 */
export function cliVersion(): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const found = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (found.name === 'pgdb' && typeof found.version === 'string') return found.version;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (dir.pathname === '/') return 'unknown';
  }
}
