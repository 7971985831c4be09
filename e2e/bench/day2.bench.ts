/**
 * Latency of the day-2 read commands, measured in one run against a local
 * pgdbd and one database with a few thousand log lines:
 *
 * - `pgdb info <db> --json` and `pgdb logs <db> --tail 100`, each a fresh
 *   process timed from spawn to exit;
 * - `docker logs --tail 100 <container>`, the same lines without pgdb;
 * - `node -e 0`, the least any Node program pays, and `pgdb --version`, the
 *   CLI's own start-up without a request: what `logs` and `info` add to it is
 *   the request.
 *
 * They alternate within every run so machine noise hits them alike. Prints
 * the medians and each one's ratio to `docker logs`.
 *
 *   node dist/e2e/bench/day2.bench.js [runs]     (default 21)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, query, requireDockerAndImages, ROOT, TestDaemon } from '../support/daemon.js';

const CLI = join(ROOT, 'dist/cli/bin/pgdb.js');
const NAME = 'bench-day2';

function time(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ ms: performance.now() - started, stdout }) : reject(new Error(`${file} ${args.join(' ')} exited with ${code}: ${stdout}`))));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 21);
  requireDockerAndImages([17]);
  const daemon = await new TestDaemon({ portRange: '24550-24559' }).start();
  try {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: NAME });
    if (deployed.status !== 201) throw new Error(`deploy failed: ${JSON.stringify(deployed.body)}`);
    // A few thousand log lines: every failing statement logs an ERROR and a STATEMENT line.
    for (let i = 0; i < 1500; i++) await query(deployed.body.database_url, `SELECT * FROM missing_${i}`).catch(() => undefined);
    const container = docker('ps', '-q', '--filter', `label=pgdb.name=${NAME}`, '--filter', `label=pgdb.instance=${daemon.instanceId()}`);
    const env = { PATH: process.env.PATH, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-bench-')), PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
    const subjects = [
      { label: 'node -e 0', run: () => time(process.execPath, ['-e', '0'], env) },
      { label: 'pgdb --version', run: () => time(process.execPath, [CLI, '--version'], env) },
      { label: 'docker logs --tail 100', run: () => time('docker', ['logs', '--tail', '100', container], env) },
      { label: 'pgdb logs --tail 100', run: () => time(process.execPath, [CLI, 'logs', NAME, '--tail', '100'], env) },
      { label: 'pgdb info --json', run: () => time(process.execPath, [CLI, 'info', NAME, '--json'], env) },
    ];
    const times = subjects.map((): number[] => []);
    for (let run = -1; run < runs; run++) {
      for (let turn = 0; turn < subjects.length; turn++) {
        const index = (run + subjects.length + turn) % subjects.length;
        const { ms } = await subjects[index].run();
        if (run >= 0) times[index].push(ms);
      }
    }
    const baseline = median(times[2]);
    console.log(`${runs} runs each, medians (ratio to docker logs --tail 100):`);
    subjects.forEach((subject, index) => {
      const m = median(times[index]);
      console.log(`  ${subject.label.padEnd(24)} ${m.toFixed(1).padStart(7)} ms  ${(m / baseline).toFixed(2)}x`);
    });
  } finally {
    await daemon.destroyAll();
  }
}

await main();
