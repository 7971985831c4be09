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
 * Then, on a database filled with `megabytes` of rows (default 100; the
 * issue asks about 1 GB, which takes long on a small machine):
 *
 * - export and import throughput: `pgdb export > file` and `pgdb import
 *   --clean < file`, against `pg_dump -Fc` and `pg_restore --clean
 *   --if-exists --single-transaction` run directly in the same container
 *   with `docker exec` (the same work without the API), alternating, 3 runs;
 * - the downtime of `pgdb upgrade` 15 -> 17 of a database of that size, as
 *   the daemon reports it, and the whole command's time.
 *
 *   node dist/e2e/bench/day2.bench.js [runs] [megabytes]     (defaults 21, 100)
 *
 * Environment:
 * - PGDB_BENCH_UPGRADE_MB: the upgraded database's size in MB (default:
 *   `megabytes`), e.g. 1024 for the 1 GB;
 * - PGDB_BENCH_PARTS: which parts run, a comma list of `latency`,
 *   `transfer` and `upgrade` (default: all three);
 * - PGDB_BENCH_PORT_RANGE: the test daemon's ports (default: 10 of this file's block, e2e/support/ports.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, query, requireDockerAndImages, ROOT, TestDaemon } from '../support/daemon.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');
const NAME = 'bench-day2';

/** `output` is stdout and stderr together; `stdout` alone. */
function time(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; stdout: string; output: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (chunk) => ((stdout += chunk), (output += chunk)));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ ms: performance.now() - started, stdout, output }) : reject(new Error(`${file} ${args.join(' ')} exited with ${code}: ${output}`))));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const PARTS = new Set((process.env.PGDB_BENCH_PARTS ?? 'latency,transfer,upgrade').split(',').map((p) => p.trim()));
for (const part of PARTS) {
  if (!['latency', 'transfer', 'upgrade'].includes(part)) throw new Error(`PGDB_BENCH_PARTS: unknown part "${part}" (latency, transfer, upgrade)`);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 21);
  const megabytes = Number(process.argv[3] ?? 100);
  const upgradeMegabytes = Number(process.env.PGDB_BENCH_UPGRADE_MB ?? megabytes);
  if (!(upgradeMegabytes > 0)) throw new Error(`PGDB_BENCH_UPGRADE_MB must be a positive number of MB, not "${process.env.PGDB_BENCH_UPGRADE_MB}"`);
  requireDockerAndImages([17]);
  const daemon = await new TestDaemon({ portRange: process.env.PGDB_BENCH_PORT_RANGE ?? ports.range(10) }).start();
  try {
    const env = { PATH: process.env.PATH, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-bench-')), PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
    if (PARTS.has('latency')) await latency(daemon, env, runs);
    if (PARTS.has('transfer')) await transfers(daemon, env, megabytes);
    if (PARTS.has('upgrade')) await upgrade(daemon, env, upgradeMegabytes);
  } finally {
    await daemon.destroyAll();
  }
}

/** The day-2 read commands against `docker logs`, alternating, `runs` times each. */
async function latency(daemon: TestDaemon, env: NodeJS.ProcessEnv, runs: number): Promise<void> {
  {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: NAME });
    if (deployed.status !== 201) throw new Error(`deploy failed: ${JSON.stringify(deployed.body)}`);
    // A few thousand log lines: every failing statement logs an ERROR and a STATEMENT line.
    for (let i = 0; i < 1500; i++) await query(deployed.body.database_url, `SELECT * FROM missing_${i}`).catch(() => undefined);
    const container = docker('ps', '-q', '--filter', `label=pgdb.name=${NAME}`, '--filter', `label=pgdb.instance=${daemon.instanceId()}`);
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
  }
}

/** A table of `megabytes` of rows (about 300 bytes a row, in batches of 100k rows, ~30 MB) in a new database of `version`. */
async function fill(daemon: TestDaemon, name: string, version: number, megabytes: number) {
  const deployed = await daemon.api('POST', '/v1/deploy', { name, version, memory_mb: 1024 });
  if (deployed.status !== 201) throw new Error(`deploy failed: ${JSON.stringify(deployed.body)}`);
  const rows = Math.ceil((megabytes * 1024 * 1024) / 300);
  await query(deployed.body.database_url, 'CREATE TABLE filler (id bigint PRIMARY KEY, a text, b text, c text, d text, e text, f text, g text, h text)');
  for (let start = 1; start <= rows; start += 100_000) {
    const end = Math.min(rows, start + 99_999);
    await query(deployed.body.database_url, `INSERT INTO filler SELECT g, ${Array.from({ length: 8 }, () => 'md5(random()::text)').join(', ')} FROM generate_series(${start}, ${end}) g`);
  }
  const record = await daemon.api('GET', `/v1/db/${name}?show_secrets=true`);
  return { url: deployed.body.database_url as string, dataBytes: record.body.data_bytes as number, user: deployed.body.user as string, db: deployed.body.db as string };
}

/** Export/import throughput against pg_dump/pg_restore run directly, and the downtime of an upgrade, on `megabytes` of rows. */
async function transfers(daemon: TestDaemon, env: NodeJS.ProcessEnv, megabytes: number): Promise<void> {
  requireDockerAndImages([17]);
  const dir = mkdtempSync(join(tmpdir(), 'pgdb-bench-dump-'));
  const source = await fill(daemon, 'bench-src', 17, megabytes);
  const target = await daemon.api('POST', '/v1/deploy', { name: 'bench-dst', version: 17, memory_mb: 1024 });
  const containerOf = (name: string) => docker('ps', '-q', '--filter', `label=pgdb.name=${name}`, '--filter', `label=pgdb.instance=${daemon.instanceId()}`);
  const [src, dst] = [containerOf('bench-src'), containerOf('bench-dst')];
  const sh = (line: string) => time('/bin/sh', ['-c', line], { ...env, CLI: `${process.execPath} ${CLI}` });
  const dump = join(dir, 'pgdb.dump');
  const direct = join(dir, 'direct.dump');
  const socket = '-h /var/run/postgresql';
  // A first import so that both restores run --clean over existing tables alike.
  await sh(`$CLI export bench-src > ${dump} && $CLI import bench-dst < ${dump}`);
  const subjects = [
    { label: 'pgdb export', run: () => sh(`$CLI export bench-src > ${dump}`) },
    { label: 'pg_dump -Fc (docker exec)', run: () => sh(`docker exec ${src} pg_dump -Fc ${socket} -U ${source.user} -d ${source.db} > ${direct}`) },
    { label: 'pgdb import --clean', run: () => sh(`$CLI import bench-dst --clean < ${dump}`) },
    {
      label: 'pg_restore (docker exec)',
      run: () => sh(`docker exec -i ${dst} pg_restore --single-transaction --exit-on-error --no-owner --no-privileges --clean --if-exists ${socket} -U ${target.body.user} -d ${target.body.db} < ${direct}`),
    },
  ];
  const times = subjects.map((): number[] => []);
  for (let run = 0; run < 3; run++) {
    for (const [index, subject] of subjects.entries()) times[index].push((await subject.run()).ms);
  }
  const dumpMb = statSync(dump).size / 1024 / 1024;
  console.log(`\nexport/import of ${(source.dataBytes / 1024 / 1024).toFixed(0)} MB of data (cluster size; the archive is ${dumpMb.toFixed(1)} MB), medians of 3:`);
  for (const [pgdb, baseline] of [[0, 1], [2, 3]]) {
    for (const index of [pgdb, baseline]) {
      const m = median(times[index]);
      console.log(`  ${subjects[index].label.padEnd(28)} ${(m / 1000).toFixed(2).padStart(7)} s  ${(dumpMb / (m / 1000)).toFixed(1).padStart(6)} MB/s of archive  ${(m / median(times[baseline])).toFixed(2)}x`);
    }
  }

}

/** The downtime of `pgdb upgrade` 15 -> 17 of a database of `megabytes`, as the daemon reports it, and the whole command's time. */
async function upgrade(daemon: TestDaemon, env: NodeJS.ProcessEnv, megabytes: number): Promise<void> {
  requireDockerAndImages([15, 17]);
  const filling = performance.now();
  const source = await fill(daemon, 'bench-upgrade', 15, megabytes);
  console.log(`\nfilled ${megabytes} MB of rows in ${((performance.now() - filling) / 1000).toFixed(1)} s (cluster size ${(source.dataBytes / 1024 / 1024).toFixed(0)} MB)`);
  // The floor: the same copy without pgdb, pg_dump in the 15 container piped into pg_restore in a new 17 one.
  const target = await daemon.api('POST', '/v1/deploy', { name: 'bench-upgrade-direct', version: 17, memory_mb: 1024 });
  if (target.status !== 201) throw new Error(`deploy failed: ${JSON.stringify(target.body)}`);
  const containerOf = (name: string) => docker('ps', '-q', '--filter', `label=pgdb.name=${name}`, '--filter', `label=pgdb.instance=${daemon.instanceId()}`);
  const socket = '-h /var/run/postgresql';
  const direct = await time('bash', ['-c',
    `set -o pipefail; docker exec ${containerOf('bench-upgrade')} pg_dump -Fc ${socket} -U ${source.user} -d ${source.db} | ` +
      `docker exec -i ${containerOf('bench-upgrade-direct')} pg_restore --single-transaction --exit-on-error --no-owner ${socket} -U ${target.body.user} -d ${target.body.db}`,
  ], env);
  await daemon.api('DELETE', '/v1/db/bench-upgrade-direct?keep_data=false');
  // Through the CLI, whose request waits as long as an upgrade takes (fetch gives up on headers after 300 s).
  const { ms, stdout } = await time(process.execPath, [CLI, 'upgrade', 'bench-upgrade', '--version', '17', '--json'], env);
  const upgraded = JSON.parse(stdout);
  console.log(`upgrade 15 -> 17 of ${megabytes} MB of rows (${upgraded.rows} rows checked): downtime ${upgraded.downtime_seconds} s, whole command ${(ms / 1000).toFixed(1)} s`);
  console.log(`  pg_dump | pg_restore 15 -> 17 directly (docker exec): ${(direct.ms / 1000).toFixed(1)} s; downtime / direct copy ${(upgraded.downtime_seconds / (direct.ms / 1000)).toFixed(2)}x`);
}

await main();
