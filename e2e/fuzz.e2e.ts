/**
 * Property-based fuzzing of the real daemon on the real Docker engine:
 * schemathesis (installed by scripts/setup-schemathesis.sh) reads the
 * daemon's own OpenAPI document and sends generated valid and invalid
 * requests, with every check on: no 5xx, every status and body as
 * documented, invalid input refused, valid input accepted, 401 without the
 * token, 405 for undocumented methods. Bounded (e2e/fuzz/schemathesis.toml);
 * everything the accepted deploys created is removed afterwards.
 *
 * PGDB_FUZZ_SEED picks another seed, to explore beyond the fixed one.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const SEED = process.env.PGDB_FUZZ_SEED ?? '20261129';

/** Runs a command and resolves with its exit code and combined output. */
function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The one route the fuzzer leaves out (see e2e/fuzz/schemathesis.toml). */
const EXCLUDED_PATH = '/v1/db/{name}/import';

describe('schemathesis against a real pgdbd', () => {
  const daemon = new TestDaemon({ portRange: ports.range(100) });
  let st: string;

  before(async () => {
    requireDockerAndImages();
    st = execFileSync('bash', [join(ROOT, 'scripts/setup-schemathesis.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    await daemon.start();
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('finds no server error and no response outside the documented schema', async (t) => {
    const reports = mkdtempSync(join(tmpdir(), 'pgdb-fuzz-'));
    const { code, output } = await run(
      st,
      [
        '--config-file',
        join(ROOT, 'e2e/fuzz/schemathesis.toml'),
        'run',
        `${daemon.url}/v1/openapi.json`,
        '--header',
        `Authorization: Bearer ${daemon.token}`,
        '--checks',
        'all',
        // See schemathesis.toml: a binary upload no schema can describe.
        '--exclude-path',
        EXCLUDED_PATH,
        '--seed',
        SEED,
        '--report',
        'junit',
        '--report-dir',
        reports,
      ],
      reports,
    );
    const summary = output.slice(output.lastIndexOf('SUMMARY'));
    assert.equal(code, 0, `schemathesis failed (seed ${SEED}; reports in ${reports}):\n${output.slice(-12_000)}`);
    const doc = (await daemon.api('GET', '/v1/openapi.json', undefined, null)).body;
    const operations = Object.entries(doc.paths as Record<string, object>)
      .filter(([path]) => path !== EXCLUDED_PATH)
      .reduce((n, [, ops]) => n + Object.keys(ops).length, 0);
    assert.match(summary, new RegExp(`Tested: ${operations}\\b`), `all ${operations} documented operations were tested`);
    t.diagnostic(`schemathesis (seed ${SEED}): ${/(\d+ generated[^\n]*)/.exec(summary)?.[1] ?? summary}`);

    const health = await daemon.api('GET', '/v1/health', undefined, null);
    assert.equal(health.status, 200, 'the daemon is still healthy after the run');
  });
});
