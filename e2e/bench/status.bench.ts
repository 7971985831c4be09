/**
 * `GET /v1/status` with many databases, from the real daemon on the real
 * engine. The databases are real registry records with real containers and
 * volumes, created but not started (running 200 Postgres servers would
 * measure the machine, not the daemon's status path, which lists containers
 * and volumes once per request whatever they run).
 *
 *   node dist/e2e/bench/status.bench.js [databases] [requests]   (default 200, 100)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { requireDockerAndImages, TEST_IMAGE_REPO, TestDaemon } from '../support/daemon.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 200);
  const requests = Number(process.argv[3] ?? 100);
  requireDockerAndImages([17]);
  const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-status-bench-'));
  const instance = randomBytes(6).toString('hex');
  const items = [];
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    const name = `db-${i}`;
    const volume = `pgdb-${name}-${instance}`;
    const labels = ['pgdb.managed=true', `pgdb.instance=${instance}`, `pgdb.name=${name}`, 'pgdb.postgres_version=17'].flatMap((l) => ['--label', l]);
    execFileSync('docker', ['volume', 'create', ...labels, volume], { stdio: 'ignore' });
    const id = execFileSync('docker', ['create', '--name', volume, ...labels, '-v', `${volume}:/var/lib/postgresql/data`, `${TEST_IMAGE_REPO}:17`], {
      encoding: 'utf8',
    }).trim();
    items.push({
      name, container_id: id, volume_name: volume, host_port: 30000 + i, db: `pg_${i}`, user: `u_${i}`,
      created_at: new Date().toISOString(), postgres_version: 17, host: '127.0.0.1', password: 'x', size_gb: 10,
      admin_password: 'y', memory_mb: 512, layout: 2, tls_not_after: new Date(Date.now() + 300 * 86_400_000).toISOString(),
    });
  }
  writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: instance, items }), { mode: 0o600 });
  console.log(`${count} databases (records, containers and volumes) set up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // Before and after in one run: the same daemon and records, listing from
  // Docker on every request (PGDB_STATUS_CACHE_MS=0, as before the cache) and
  // with its default, in alternating rounds.
  const daemon = new TestDaemon({ portRange: ports.range(50), dataDir });
  const modes: Array<{ label: string; env: Record<string, string>; times: number[] }> = [
    { label: 'lists from Docker every time (PGDB_STATUS_CACHE_MS=0)', env: { PGDB_STATUS_CACHE_MS: '0' }, times: [] },
    { label: 'kept lists (default)', env: {}, times: [] },
  ];
  const rounds = 4;
  let rss = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      for (const mode of modes) {
        await daemon.start(mode.env);
        await daemon.api('GET', '/v1/status'); // the first one measures volume usage, which is then cached
        // The kept lists need the engine's event stream open: wait for it, as a long-running daemon has it.
        if (!mode.env.PGDB_STATUS_CACHE_MS) await waitFor(() => /following the engine's events/.test(daemon.logs()));
        for (let i = 0; i < Math.ceil(requests / rounds); i++) {
          const t = performance.now();
          const res = await daemon.api('GET', '/v1/status');
          mode.times.push(performance.now() - t);
          if (res.body.items.length !== count) throw new Error(`status listed ${res.body.items.length} databases`);
        }
        rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))![1]) / 1024;
        await daemon.stop();
      }
    }
    const p50 = modes.map((m) => percentile(m.times, 50));
    for (const [i, mode] of modes.entries()) {
      console.log(
        `GET /v1/status with ${count} databases, ${mode.times.length} requests, ${mode.label}: ` +
          `p50 ${p50[i].toFixed(1)} ms, p95 ${percentile(mode.times, 95).toFixed(1)} ms`,
      );
    }
    console.log(`kept lists / lists every time (p50): ${(p50[1] / p50[0]).toFixed(3)}; target p50 <= 50 ms`);
    console.log(`pgdbd resident memory after (kept lists): ${rss.toFixed(1)} MiB`);
  } finally {
    await daemon.destroyAll();
  }
}

async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
