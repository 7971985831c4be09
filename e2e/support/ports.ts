/**
 * Host ports for the databases of test daemons. Every e2e file and benchmark
 * gets a block of its own, from its place among all of them (sorted by
 * path), so that no two files share a port, even when they run at once, and
 * nobody picks numbers by hand. Within a file, `range(n)` hands out the next
 * n ports of its block as a PGDB_PORT_RANGE (`first-last`).
 *
 *   const ports = testPorts(import.meta.url);
 *   const daemon = new TestDaemon({ portRange: ports.range(20) });
 */
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Below Linux's ephemeral ports (32768 and up), above the well-known services' usual ones. */
export const FIRST_PORT = 21000;
export const BLOCK_SIZE = 300;

/** dist/e2e: this module runs as dist/e2e/support/ports.js. */
const E2E_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Every e2e file and benchmark, relative to dist/e2e, sorted: the order blocks are handed out in. */
export function testFiles(dir = E2E_DIR): string[] {
  const list = (sub: string, suffix: RegExp) =>
    readdirSync(join(dir, sub))
      .filter((name) => suffix.test(name))
      .map((name) => (sub ? `${sub}/${name}` : name));
  return [...list('', /\.e2e\.js$/), ...list('bench', /\.bench\.js$/)].sort();
}

export interface TestPorts {
  /** The next `size` ports of this file's block, as `first-last`. */
  range(size: number): string;
}

/** The first and last port of a `first-last` range. */
export function bounds(range: string): [number, number] {
  const [first, last] = range.split('-').map(Number);
  return [first, last];
}

export function testPorts(moduleUrl: string, files: string[] = testFiles()): TestPorts {
  const file = relative(E2E_DIR, fileURLToPath(moduleUrl)).split('\\').join('/');
  const index = files.indexOf(file);
  if (index < 0) throw new Error(`testPorts: ${file} is not an e2e file or benchmark under ${E2E_DIR}`);
  const start = FIRST_PORT + index * BLOCK_SIZE;
  const end = start + BLOCK_SIZE;
  if (end > 32768) throw new Error(`testPorts: ${files.length} files need ports beyond 32767; make BLOCK_SIZE smaller`);
  let next = start;
  return {
    range(size: number): string {
      if (!Number.isInteger(size) || size < 1 || next + size > end) {
        throw new Error(`testPorts: ${file} asks for ${size} more ports; its block ${start}-${end - 1} has ${end - next} left`);
      }
      const first = next;
      next += size;
      return `${first}-${next - 1}`;
    },
  };
}
