/**
 * Start-up cost of the pgdb CLI, measured in one run.
 *
 * Baseline: `node -e 0`, the least any Node program pays. Against it:
 * `pgdb --version`, `pgdb --help`, and `pgdb status --json` against a local
 * pgdbd holding 20 databases; and, as floors for the last: a bare Node
 * script that GETs /v1/status with node:http and prints the JSON (no CLI),
 * and the same GET as the handler of a plain yargs CLI (yargs-floor.ts,
 * bundled and run as pgdb is). With PGDB_BENCH_CLI_BEFORE=<another build's
 * dist/cli/bin/pgdb.cjs> the same three of that build are timed too, in the
 * same rotation, for a before/after from one run. Each is a fresh process timed from spawn to exit. The daemon's
 * own share of a status call is timed too, as a GET /v1/status from this
 * process. All alternate within every run so machine noise hits them alike.
 * Prints the medians and their ratios to the baseline.
 *
 *   node dist/e2e/bench/cli.bench.js [runs]     (default 21)
 *
 * PGDB_BENCH_CLI_PORTS=<from>-<to> moves the daemon's port range (default: 50 ports of this file's block, e2e/support/ports.ts).
 */
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cliExecutable, esbuildOptions } from '../../cli/build/bundle.js';
import { requireDockerAndImages, ROOT, TestDaemon } from '../support/daemon.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');
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

/** The least a status command can do: GET /v1/status with node:http and print it. */
const BARE_STATUS = `require('node:http').get(process.env.PGDB_SERVER_URL + '/v1/status', { headers: { authorization: 'Bearer ' + process.env.PGDB_TOKEN } }, (response) => {
  let text = '';
  response.setEncoding('utf8');
  response.on('data', (chunk) => (text += chunk));
  response.on('end', () => process.stdout.write(JSON.stringify(JSON.parse(text), null, 2) + '\\n'));
});`;

/**
 * yargs-floor.ts bundled as the build bundles the CLI, next to a copy of
 * pgdb's executable, which runs it with a code cache (written by the
 * measurement's first, unrecorded run): returns that executable.
 */
async function buildYargsFloor(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'pgdb-bench-yargs-'));
  await build(esbuildOptions({ root: ROOT, entry: join(ROOT, 'e2e/bench/yargs-floor.ts'), outfile: join(dir, 'pgdb.bundle.cjs') }));
  const executable = join(dir, 'pgdb.cjs');
  copyFileSync(cliExecutable(ROOT), executable);
  return executable;
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
  const daemon = await new TestDaemon({ portRange: process.env.PGDB_BENCH_CLI_PORTS ?? ports.range(50) }).start();
  let yargsFloor: string | undefined;
  try {
    await deployDatabases(daemon);
    yargsFloor = await buildYargsFloor();
    const floor = yargsFloor;
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
    const cliSubjects = (cli: string, tag: string): Subject[] => [
      {
        label: `${tag}pgdb --version`,
        run: () => timeProcess([cli, '--version'], env),
        check: (stdout) => {
          if (!/^pgdb \d+\.\d+\.\d+/.test(stdout)) throw new Error(`pgdb --version printed ${JSON.stringify(stdout)}`);
        },
      },
      {
        label: `${tag}pgdb --help`,
        run: () => timeProcess([cli, '--help'], env),
        check: (stdout) => {
          if (!stdout.includes('pgdb deploy')) throw new Error('pgdb --help printed no help');
        },
      },
      {
        label: `${tag}pgdb status --json (${DATABASES} databases)`,
        run: () => timeProcess([cli, 'status', '--json'], env),
        check: listsAll('pgdb status --json'),
      },
    ];
    const before = process.env.PGDB_BENCH_CLI_BEFORE;
    const subjects: Subject[] = [
      { label: 'node -e 0', run: () => timeProcess(['-e', '0'], env), check: () => undefined },
      { label: 'GET /v1/status (in-process fetch)', run: () => timeRequest(daemon), check: listsAll('GET /v1/status') },
      { label: 'node -e <GET /v1/status, print it>', run: () => timeProcess(['-e', BARE_STATUS], env), check: listsAll('the bare GET') },
      { label: 'the same GET in a plain yargs CLI', run: () => timeProcess([floor, 'status', '--json'], env), check: listsAll('the yargs floor') },
      ...cliSubjects(CLI, ''),
      ...(before ? cliSubjects(before, 'before: ') : []),
    ];
    const medians = (await measure(subjects, runs)).map(median);
    const [baseline, api, bare, plainYargs] = medians;
    /** Where pgdb's own rows start: --version, --help, status (then the same of the "before" build). */
    const own = 4;
    const ms = (value: number) => `${value.toFixed(1).padStart(6)} ms`;
    const ratio = (value: number) => `${(value / baseline).toFixed(2)}x node -e 0 (+${(value - baseline).toFixed(0)} ms)`;
    console.log(`runs: ${runs} each, alternating; processes timed from spawn to exit; node ${process.version}`);
    console.log(`${subjects[0].label.padEnd(46)} median ${ms(baseline)}`);
    console.log(`${subjects[1].label.padEnd(46)} median ${ms(api)}  (the daemon's share of status)`);
    console.log(`${subjects[2].label.padEnd(46)} median ${ms(bare)}  ${ratio(bare)}  (the floor for status)`);
    console.log(`${subjects[3].label.padEnd(46)} median ${ms(plainYargs)}  ${ratio(plainYargs)}  (the floor for status with yargs)`);
    for (let i = own; i < subjects.length; i++) {
      console.log(`${subjects[i].label.padEnd(46)} median ${ms(medians[i])}  ${ratio(medians[i])}`);
    }
    const status = medians[own + 2];
    const signed = (value: number) => `${value < 0 ? '-' : '+'}${Math.abs(value).toFixed(1)} ms`;
    console.log(`pgdb status --json against the bare GET: ${signed(status - bare)}; against the plain yargs CLI: ${signed(status - plainYargs)}`);
    if (before) {
      for (let i = own; i < own + 3; i++) {
        const label = subjects[i].label;
        console.log(`${label}: before / now ${(medians[i + 3] / medians[i]).toFixed(2)}x; overhead over node -e 0 before / now ${((medians[i + 3] - baseline) / (medians[i] - baseline)).toFixed(2)}x`);
      }
    }
  } finally {
    await daemon.destroyAll();
    if (yargsFloor) rmSync(dirname(yargsFloor), { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
