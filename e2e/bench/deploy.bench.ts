/**
 * Deploy latency of pgdbd against the bare engine, measured in one run.
 *
 * Baseline: what `docker run` does (create a volume, create and start a
 * container of the same image with that empty volume and a published port),
 * sent straight to the Engine API so no CLI start-up is counted, then a
 * SELECT 1 polled until it succeeds. Daemon: POST /v1/deploy until a
 * connection with the returned URL runs SELECT 1, once with the warm pool
 * off (cold) and once with a pool of one standby (warm; each warm run waits
 * for the refill first). Runs alternate so that machine noise hits all
 * alike. Prints p50/p95 of each, the ratios, the refill time per standby,
 * a standby's idle memory and the daemon's resident memory.
 *
 *   node dist/e2e/bench/deploy.bench.js [runs]     (default 7)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import pg from 'pg';
import { freePort, requireDockerAndImages, TEST_IMAGE_REPO, TestDaemon } from '../support/daemon.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

const MAJOR = 17;
/** How long the cold daemon idles after the runs before its resident memory is read as idle. */
const IDLE_MS = 90_000;
const IMAGE = `${TEST_IMAGE_REPO}:${MAJOR}`;
const docker = new Docker();

async function selectOneUntilReady(config: pg.ClientConfig): Promise<void> {
  for (;;) {
    const client = new pg.Client({ ...config, connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch {
      await sleep(20);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

async function baseline(run: number): Promise<number> {
  const port = await freePort();
  const name = `pgdb-bench-baseline-${process.pid}-${run}`;
  const started = performance.now();
  await docker.createVolume({ Name: name });
  const container = await docker.createContainer({
    name,
    Image: IMAGE,
    Env: ['POSTGRES_USER=bench', 'POSTGRES_PASSWORD=bench-password', 'POSTGRES_DB=bench'],
    HostConfig: {
      PortBindings: { '5432/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
      Mounts: [{ Type: 'volume', Source: name, Target: '/var/lib/postgresql/data' }],
    },
  });
  await container.start();
  await selectOneUntilReady({ host: '127.0.0.1', port, user: 'bench', password: 'bench-password', database: 'bench' });
  const elapsed = performance.now() - started;
  await container.remove({ force: true });
  await docker.getVolume(name).remove();
  return elapsed;
}

async function viaDaemon(daemon: TestDaemon, run: number): Promise<number> {
  const started = performance.now();
  const res = await daemon.api('POST', '/v1/deploy', { name: `bench-${run}`, version: MAJOR });
  if (res.status !== 201) throw new Error(`deploy failed: ${JSON.stringify(res.body)}`);
  // Verified against the daemon's CA, as a careful client would (node-postgres
  // would read sslmode=require as verify-full without a CA to check against).
  const url = new URL(res.body.database_url);
  url.searchParams.delete('sslmode');
  await selectOneUntilReady({ connectionString: url.toString(), ssl: { ca: daemon.caCertificate() } });
  const elapsed = performance.now() - started;
  await daemon.api('DELETE', `/v1/db/bench-${run}`);
  return elapsed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function memoryOf(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** Medians of the cumulative phase timings pgdbd logs with each 'database ready'. */
function daemonPhases(logs: string): string {
  const runs = logs
    .split('\n')
    .filter((line) => line.includes('"database ready"'))
    .map((line) => JSON.parse(line).timings as Record<string, number>);
  const names = [...new Set(runs.flatMap((t) => Object.keys(t)))].filter((name) => runs.every((t) => name in t));
  return names.map((name) => `${name} ${median(runs.map((t) => t[name])).toFixed(0)}`).join(', ');
}

/**
 * What the secure defaults add to a deploy, from the phase timings: creating
 * the tenant's role over an admin TLS connection (`roles` - `ready`) and
 * proving the tenant's credentials over TLS (`verified` - `roles`). The
 * certificate (issued, copied in) is part of `started`.
 */
function securityCost(logs: string): string {
  const runs = logs
    .split('\n')
    .filter((line) => line.includes('"database ready"'))
    .map((line) => JSON.parse(line).timings as Record<string, number>);
  if (runs.length === 0 || runs[0].roles === undefined) return 'n/a';
  const roles = median(runs.map((t) => t.roles - t.ready));
  const verify = median(runs.map((t) => t.verified - t.roles));
  return `role set-up ${roles.toFixed(0)}, tenant check over TLS ${verify.toFixed(0)}, together ${(roles + verify).toFixed(0)}`;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Waits until the daemon's pool has `ready` standbys and none filling. */
async function poolReady(daemon: TestDaemon, ready: number): Promise<void> {
  for (;;) {
    const [summary] = (await daemon.api('GET', '/v1/status')).body.pool;
    if (summary?.ready === ready && summary.filling === 0) return;
    await sleep(50);
  }
}

/** Resident memory of a container as Docker reports it (cgroup usage), in MiB. */
function containerMemoryMiB(id: string): number {
  const text = execFileSync('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', id], { encoding: 'utf8' });
  const [value, unit] = /([\d.]+)\s*([KMG]i?B)/.exec(text)!.slice(1);
  const factor: Record<string, number> = { KiB: 1 / 1024, MiB: 1, GiB: 1024, kB: 1 / 1024, MB: 1, GB: 1024 };
  return Number(value) * (factor[unit] ?? 1);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 7);
  requireDockerAndImages([MAJOR]);
  const cold = await new TestDaemon({ portRange: ports.range(50), env: { PGDB_POOL: '0' } }).start();
  const warm = await new TestDaemon({ portRange: ports.range(50), env: { PGDB_POOL: `${MAJOR}:1` } }).start();
  const started = memoryOf(cold.pid!);
  try {
    await poolReady(warm, 1);
    const standbyContainer = execFileSync(
      'docker',
      ['ps', '-q', '--filter', `label=pgdb.instance=${warm.instanceId()}`, '--filter', 'label=pgdb.pool'],
      { encoding: 'utf8' },
    ).trim();
    await sleep(3000);
    const standbyMemory = containerMemoryMiB(standbyContainer);

    await baseline(-1); // warm-up: page cache, image layers
    await viaDaemon(cold, -1);
    await poolReady(warm, 1);
    await viaDaemon(warm, -1);
    const bare: number[] = [];
    const pgdbCold: number[] = [];
    const pgdbWarm: number[] = [];
    for (let run = 0; run < runs; run++) {
      bare.push(await baseline(run));
      pgdbCold.push(await viaDaemon(cold, run));
      await poolReady(warm, 1);
      pgdbWarm.push(await viaDaemon(warm, run));
    }
    await poolReady(warm, 1);
    const memory = memoryOf(cold.pid!);
    const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
    const line = (label: string, values: number[]) =>
      console.log(`${label}: p50 ${fmt(median(values))}, p95 ${fmt(percentile(values, 95))}  [${values.map(fmt).join(', ')}]`);
    console.log(`runs: ${runs} each, alternating; image ${IMAGE}; each until SELECT 1 on the new database`);
    line('baseline (engine API: volume, container, start)', bare);
    line('pgdbd cold (pool off)                        ', pgdbCold);
    line('pgdbd warm (pool hit)                        ', pgdbWarm);
    const coldRatio = median(pgdbCold) / median(bare);
    const warmRatio = median(pgdbWarm) / median(bare);
    console.log(`cold / baseline: ${coldRatio.toFixed(3)} (target <= 1.10)`);
    console.log(`warm / baseline: ${warmRatio.toFixed(3)} (target <= 0.15); warm p50 ${fmt(median(pgdbWarm))} (target <= 300 ms, stretch 100 ms)`);
    const fills = warm
      .logs()
      .split('\n')
      .filter((l) => l.includes('"standby ready"'))
      .map((l) => JSON.parse(l).ms as number);
    console.log(`refill per standby: p50 ${fmt(median(fills))} over ${fills.length} fills`);
    console.log(`idle memory per standby (docker stats): ${standbyMemory.toFixed(1)} MiB`);
    console.log(`pgdbd cold phases, median ms since the request: ${daemonPhases(cold.logs())}`);
    console.log(`pgdbd warm phases, median ms since the request: ${daemonPhases(warm.logs().split('\n').filter((l) => l.includes('"pool":true')).join('\n'))}`);
    console.log(`TLS and roles (cold), median ms: ${securityCost(cold.logs())}`);
    // Idle: V8 shrinks the heap of a process that stopped allocating after some tens of seconds (measured: at 30 s still the start's figure, at 60 s lower).
    await sleep(IDLE_MS);
    const idle = memoryOf(cold.pid!);
    console.log(
      `pgdbd resident memory (pool off): ${started.rssMiB.toFixed(1)} MiB just started, ${memory.rssMiB.toFixed(1)} MiB after the runs, ` +
        `${idle.rssMiB.toFixed(1)} MiB idle ${IDLE_MS / 1000} s later (target <= 120 MiB), peak ${idle.peakMiB.toFixed(1)} MiB`,
    );
  } finally {
    await cold.destroyAll();
    await warm.destroyAll();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
