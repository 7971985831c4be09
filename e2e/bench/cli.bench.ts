/**
 * Start-up cost of the pgdb CLI, measured in one run.
 *
 * Baseline: `node -e 0`, the least any Node program pays. Against it:
 * `pgdb --help`, and `pgdb status --json` against a local pgdbd holding 20
 * databases. Each is a fresh process timed from spawn to exit. The daemon's
 * own share of a status call is timed too, as a GET /v1/status from this
 * process. All alternate within every run so machine noise hits them alike.
 * Prints the medians and their ratios to the baseline.
 *
 *   node dist/e2e/bench/cli.bench.js [runs]     (default 21)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireDockerAndImages, ROOT, TestDaemon } from '../support/daemon.js';

const CLI = join(ROOT, 'dist/cli/bin/pgdb.js');
const DATABASES = 20;
const DEPLOYS_AT_ONCE = 5;

interface Subject {
  label: string;
  run: () => Promise<Timed>;
  /** Throws if the output shows the command did not do its job. */
  check: (stdout: string) => void;
}

interface Timed {
  ms: number;
  stdout: string;
}

async function timeRequest(daemon: TestDaemon): Promise<Timed> {
  const started = performance.now();
  const response = await fetch(`${daemon.url}/v1/status`, { headers: { authorization: `Bearer ${daemon.token}` } });
  const stdout = await response.text();
  return { ms: performance.now() - started, stdout };
}

function timeProcess(args: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`node ${args.join(' ')} exited with ${code}`));
    });
  });
}

async function deployDatabases(daemon: TestDaemon): Promise<void> {
  for (let first = 0; first < DATABASES; first += DEPLOYS_AT_ONCE) {
    const batch = Array.from({ length: DEPLOYS_AT_ONCE }, (_, offset) => `bench-cli-${first + offset}`);
    const results = await Promise.all(batch.map((name) => daemon.api('POST', '/v1/deploy', { name })));
    const failed = results.find((result) => result.status !== 201);
    if (failed) throw new Error(`deploy failed: ${JSON.stringify(failed.body)}`);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function measure(subjects: Subject[], runs: number): Promise<number[][]> {
  const times = subjects.map((): number[] => []);
  for (let run = -1; run < runs; run++) {
    for (let turn = 0; turn < subjects.length; turn++) {
      const index = (run + subjects.length + turn) % subjects.length; // rotate the order every run
      const { ms, stdout } = await subjects[index].run();
      subjects[index].check(stdout);
      if (run >= 0) times[index].push(ms); // run -1 warms the page cache
    }
  }
  return times;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 21);
  requireDockerAndImages([17]);
  const daemon = await new TestDaemon({ portRange: '22100-22199' }).start();
  try {
    await deployDatabases(daemon);
    const env = {
      PATH: process.env.PATH,
      XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-bench-')),
      PGDB_SERVER_URL: daemon.url,
      PGDB_TOKEN: daemon.token,
    };
    const listsAll = (what: string) => (stdout: string) => {
      const count = JSON.parse(stdout).items.length;
      if (count !== DATABASES) throw new Error(`${what} listed ${count} databases`);
    };
    const subjects: Subject[] = [
      { label: 'node -e 0', run: () => timeProcess(['-e', '0'], env), check: () => undefined },
      {
        label: 'pgdb --help',
        run: () => timeProcess([CLI, '--help'], env),
        check: (stdout) => {
          if (!stdout.includes('pgdb deploy')) throw new Error('pgdb --help printed no help');
        },
      },
      {
        label: `pgdb status --json (${DATABASES} databases)`,
        run: () => timeProcess([CLI, 'status', '--json'], env),
        check: listsAll('pgdb status --json'),
      },
      { label: 'GET /v1/status (in-process fetch)', run: () => timeRequest(daemon), check: listsAll('GET /v1/status') },
    ];
    const medians = (await measure(subjects, runs)).map(median);
    const [baseline, help, status, api] = medians;
    const ms = (value: number) => `${value.toFixed(1).padStart(6)} ms`;
    const ratio = (value: number) => `${(value / baseline).toFixed(2)}x node -e 0 (+${(value - baseline).toFixed(0)} ms)`;
    console.log(`runs: ${runs} each, alternating; processes timed from spawn to exit; node ${process.version}`);
    console.log(`${subjects[0].label.padEnd(36)} median ${ms(baseline)}`);
    console.log(`${subjects[1].label.padEnd(36)} median ${ms(help)}  ${ratio(help)}`);
    console.log(`${subjects[2].label.padEnd(36)} median ${ms(status)}  ${ratio(status)}`);
    console.log(`${subjects[3].label.padEnd(36)} median ${ms(api)}  (the daemon's share of status)`);
    console.log(`pgdb status --json minus the daemon's share: ${ms(status - api)}  ${ratio(status - api)}`);
  } finally {
    await daemon.destroyAll();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
