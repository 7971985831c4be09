/** The built `pgdb` CLI, as the e2e tests run it. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import { run, type Env, type Run } from './run.js';

/** The executable `npm run build` makes. */
export const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');

export interface PgdbCli {
  /** Runs `pgdb args` with only PATH, `env()` as it is at the call, and `overrides`. */
  pgdb(args: string[], overrides?: Env): Promise<Run>;
  /** `pgdb args --json`, which must exit 0: its parsed output. */
  json(args: string[]): Promise<any>;
}

export function pgdbCli(env: () => Env): PgdbCli {
  const pgdb = (args: string[], overrides: Env = {}) => run(process.execPath, [CLI, ...args], { ...env(), ...overrides });
  const json = async (args: string[]) => {
    const result = await pgdb([...args, '--json']);
    assert.equal(result.code, 0, `pgdb ${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  };
  return { pgdb, json };
}
