/**
 * The rooms of the tree and which may import which: the contract is shared
 * by the daemon and the CLI and imports neither; the CLI never reaches into
 * the daemon; infra/ imports neither; the daemon imports no CLI, infra or
 * e2e code. e2e/ may import anything (it drives the real parts), and so may
 * tools/ (the docs generator runs the CLI and the daemon's app). Inside the
 * daemon, the features build on the database core and never the other way:
 * see DAEMON_FEATURES. Every relative import of every source file is
 * checked, static, dynamic and type-only alike.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The checkout: this file runs as dist/contract/import-boundaries.spec.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

type Room = 'contract' | 'daemon' | 'cli' | 'infra' | 'e2e' | 'tools';

/** What each room may import besides itself. */
const ALLOWED: Record<Room, Room[]> = {
  contract: [],
  daemon: ['contract'],
  cli: ['contract', 'infra'],
  infra: ['contract'],
  e2e: ['contract', 'daemon', 'cli', 'infra'],
  tools: ['contract', 'daemon', 'cli', 'infra', 'e2e'],
};

/**
 * The daemon's feature rooms (daemon/src/<room>/) and which of them each may
 * import. The foundations (common, docker, postgres, registry, tls, testing)
 * import no feature; the database core (a database's runtime, the
 * reconciliation, the warm pool) none of the use cases built on it; the
 * composition root (daemon/src/*.ts) everything.
 */
const DAEMON_FEATURES: Record<string, string[]> = {
  database: [],
  deploy: ['database'],
  day2: ['database', 'deploy'],
  backup: ['database', 'deploy'],
};
const DAEMON_FOUNDATIONS = ['common', 'docker', 'postgres', 'registry', 'tls', 'testing'];

const ROOMS = Object.keys(ALLOWED) as Room[];
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]*)\1/g;

function roomOf(path: string): Room | undefined {
  const first = path.split('/')[0];
  return (ROOMS as string[]).includes(first) ? (first as Room) : undefined;
}

/** Every import of `source` (the file's text, at `path` relative to the checkout) that leaves its room for one it may not use. */
export function forbiddenImports(path: string, source: string): string[] {
  const from = roomOf(path);
  if (!from) return [];
  const found: string[] = [];
  for (const match of source.matchAll(IMPORT)) {
    const target = join(dirname(path), match[2]).split(sep).join('/');
    const to = roomOf(target);
    if (to === from) {
      if (from === 'daemon') found.push(...daemonCrossing(path, target, match[2]));
      continue;
    }
    if (to === undefined || !ALLOWED[from].includes(to)) found.push(`${path} imports ${match[2]} (${to ?? 'outside the rooms'})`);
  }
  return found;
}

/** The daemon room of a path under daemon/src/ (undefined: the composition root, or outside daemon/src). */
function daemonRoomOf(path: string): string | undefined {
  const parts = path.split('/');
  return parts[0] === 'daemon' && parts[1] === 'src' && parts.length > 3 ? parts[2] : undefined;
}

function daemonCrossing(path: string, target: string, written: string): string[] {
  const from = daemonRoomOf(path);
  const to = daemonRoomOf(target);
  if (from === undefined || to === undefined || from === to || DAEMON_FOUNDATIONS.includes(to)) return [];
  const allowed = DAEMON_FEATURES[from] ?? [];
  return allowed.includes(to) ? [] : [`${path} imports ${written} (daemon/src/${to})`];
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sources(path);
    return /\.c?ts$/.test(entry.name) ? [path] : [];
  });
}

describe('import boundaries', () => {
  it('hold across the whole tree: the contract imports no room, the CLI never the daemon, infra neither, the daemon no CLI, infra or e2e, and the database core no feature built on it', () => {
    // This file's own examples of crossings are strings, not imports.
    const files = ROOMS.flatMap((room) => sources(room)).filter((path) => path !== 'contract/import-boundaries.spec.ts');
    assert.ok(files.length > 100, `the tree was read (${files.length} files)`);
    const found = files.flatMap((path) => forbiddenImports(path, readFileSync(join(ROOT, path), 'utf8')));
    assert.deepEqual(found, []);
  });

  it('find each kind of crossing (the check can fail)', () => {
    assert.deepEqual(forbiddenImports('cli/src/x.ts', "import { a } from '../../daemon/src/deploy/ports.js';"), [
      'cli/src/x.ts imports ../../daemon/src/deploy/ports.js (daemon)',
    ]);
    assert.equal(forbiddenImports('cli/src/x.ts', "const m = await import('../../daemon/src/app.js');").length, 1, 'dynamic');
    assert.equal(forbiddenImports('cli/src/x.ts', "import type { T } from '../../daemon/src/app.js';").length, 1, 'type-only');
    assert.equal(forbiddenImports('infra/x.ts', "import { b } from '../cli/src/config.js';").length, 1);
    assert.equal(forbiddenImports('daemon/src/x.ts', "import '../../e2e/support/daemon.js';").length, 1, 'side effect only');
    assert.equal(forbiddenImports('contract/api.ts', "import { c } from '../daemon/src/common/errors.js';").length, 1);
    assert.equal(forbiddenImports('daemon/src/x.ts', "import { g } from '../../tools/docs/generate.js';").length, 1, 'nothing imports tools/');
    assert.deepEqual(forbiddenImports('tools/docs/x.ts', "import { t } from '../../daemon/src/testing/test-app.js';"), [], 'tools/ imports anything');
    assert.equal(forbiddenImports('daemon/src/a/x.ts', "import { c } from '../../../package.json';").length, 1, 'outside the rooms');
    // Inside the daemon: the core imports no feature, deploy no backup, a foundation no feature; the composition root anything.
    assert.deepEqual(forbiddenImports('daemon/src/database/x.ts', "import { B } from '../backup/backup-repository.js';"), [
      'daemon/src/database/x.ts imports ../backup/backup-repository.js (daemon/src/backup)',
    ]);
    assert.equal(forbiddenImports('daemon/src/deploy/x.ts', "import { B } from '../backup/backup-events.js';").length, 1);
    assert.equal(forbiddenImports('daemon/src/common/x.ts', "import { D } from '../deploy/deploy.service.js';").length, 1);
    assert.deepEqual(forbiddenImports('daemon/src/backup/x.ts', "import { D } from '../deploy/deploy.service.js';\nimport { R } from '../database/postgres-runtime.js';\nimport { C } from '../common/config.js';"), []);
    assert.deepEqual(forbiddenImports('daemon/src/app.module.ts', "import { B } from './backup/backup.module.js';"), []);
    // Allowed: within a room, to the contract, packages and node builtins.
    assert.deepEqual(
      forbiddenImports('cli/src/x.ts', "import { d } from '../../contract/api.js';\nimport { e } from './y.js';\nimport yargs from 'yargs';\nimport { readFile } from 'node:fs';"),
      [],
    );
  });
});
