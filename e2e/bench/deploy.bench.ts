/**
 * Deploy latency of pgdbd against the bare engine, measured in one run.
 *
 * Baseline: what `docker run` does (create a volume, create and start a
 * container of the same image with that empty volume and a published port),
 * sent straight to the Engine API so no CLI start-up is counted, then a
 * SELECT 1 polled until it succeeds. Daemon: POST /v1/deploy until a
 * connection with the returned URL runs SELECT 1. Runs alternate so that
 * machine noise hits both alike. Prints medians, their ratio and the
 * daemon's resident memory.
 *
 *   node dist/e2e/bench/deploy.bench.js [runs]     (default 7)
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import pg from 'pg';
import { freePort, requireDockerAndImages, TEST_IMAGE_REPO, TestDaemon } from '../support/daemon.js';

const MAJOR = 17;
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
  const names = Object.keys(runs[0] ?? {});
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

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 7);
  requireDockerAndImages([MAJOR]);
  const daemon = await new TestDaemon({ portRange: '22000-22099' }).start();
  const idle = memoryOf(daemon.pid!);
  try {
    await baseline(-1); // warm-up: page cache, image layers
    await viaDaemon(daemon, -1);
    const bare: number[] = [];
    const pgdb: number[] = [];
    for (let run = 0; run < runs; run++) {
      bare.push(await baseline(run));
      pgdb.push(await viaDaemon(daemon, run));
    }
    const memory = memoryOf(daemon.pid!);
    const ratio = median(pgdb) / median(bare);
    const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
    console.log(`runs: ${runs} each, image ${IMAGE}`);
    console.log(`baseline (engine API, empty volume, until SELECT 1): median ${fmt(median(bare))}  [${bare.map(fmt).join(', ')}]`);
    console.log(`pgdbd (POST /v1/deploy until SELECT 1 on the URL):  median ${fmt(median(pgdb))}  [${pgdb.map(fmt).join(', ')}]`);
    console.log(`ratio pgdbd / baseline: ${ratio.toFixed(3)} (${((ratio - 1) * 100).toFixed(1)}% overhead; target <= 10%)`);
    const phases = daemonPhases(daemon.logs());
    console.log(`pgdbd phases, median ms since the request (from its log): ${phases}`);
    const security = securityCost(daemon.logs());
    console.log(`TLS and roles, median ms: ${security}`);
    console.log(`pgdbd resident memory: ${idle.rssMiB.toFixed(1)} MiB idle, ${memory.rssMiB.toFixed(1)} MiB after the runs, peak ${memory.peakMiB.toFixed(1)} MiB`);
  } finally {
    await daemon.destroyAll();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
