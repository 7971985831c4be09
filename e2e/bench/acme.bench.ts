/**
 * ACME on the real daemon against Pebble (PGDB_TEST_PEBBLE, from
 * scripts/build-pebble.sh): the time from the daemon's start to the first
 * ACME certificate, and the effect of a renewal on query latency. A client
 * holds one connection and runs `SELECT 1` in a loop while the certificate
 * (90 s lifetime, renewed after 60 s) is renewed and copied into the
 * database; p50/p99 of the queries around the renewal are printed against
 * those before it, as a ratio (the machine is shared: compare ratios).
 *
 *   PGDB_TEST_PEBBLE=... node dist/e2e/bench/acme.bench.js
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort, requireDockerAndImages, TestDaemon } from '../support/daemon.js';
import { Pebble, pebbleBinary } from '../support/pebble.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function main(): Promise<void> {
  const binary = pebbleBinary();
  if (!binary) throw new Error('PGDB_TEST_PEBBLE is not set: PGDB_TEST_PEBBLE="$(bash scripts/build-pebble.sh)"');
  requireDockerAndImages([17]);
  const work = mkdtempSync(join(tmpdir(), 'pgdb-acme-bench-'));
  const httpPort = await freePort();
  const pebble = await new Pebble(binary, {
    httpPort,
    profiles: { default: { description: 'default', validityPeriod: 7_776_000 }, bench: { description: '90 s', validityPeriod: 90 } },
  }).start();
  writeFileSync(join(work, 'trust.pem'), pebble.trustBundle);
  const daemon = new TestDaemon({
    portRange: ports.range(20),
    env: {
      PGDB_TLS: 'acme',
      PGDB_ACME_DIRECTORY: pebble.directory,
      PGDB_ACME_HTTP_PORT: String(httpPort),
      PGDB_ACME_PROFILE: 'bench',
      NODE_EXTRA_CA_CERTS: join(work, 'trust.pem'),
    },
  });
  const health = async () => (await daemon.api('GET', '/v1/health', undefined, null)).body.tls;
  let client: pg.Client | undefined;
  try {
    const started = performance.now();
    await daemon.start();
    const answered = performance.now() - started;
    let first;
    for (;;) {
      first = await health();
      if (first.source === 'acme') break;
      await sleep(25);
    }
    const issued = performance.now() - started;
    console.log(`start to first answer: ${answered.toFixed(0)} ms; start to ACME certificate served: ${issued.toFixed(0)} ms`);

    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'bench', size_gb: 1 });
    if (deployed.status !== 201) throw new Error(`deploy failed: ${JSON.stringify(deployed.body)}`);
    const url = new URL(deployed.body.database_url);
    url.searchParams.delete('sslmode');
    client = new pg.Client({ connectionString: url.toString(), ssl: { ca: pebble.root } });
    await client.connect();
    const samples: Array<{ at: number; ms: number }> = [];
    let renewedAt: number | undefined;
    const watcher = (async () => {
      while (renewedAt === undefined) {
        const tls = await health();
        if (tls.acme.not_after !== first.acme.not_after) renewedAt = performance.now();
        else await sleep(100);
      }
    })();
    const deadline = performance.now() + 150_000;
    while (performance.now() < deadline && (renewedAt === undefined || performance.now() < renewedAt + 10_000)) {
      const t = performance.now();
      await client.query('SELECT 1');
      samples.push({ at: t, ms: performance.now() - t });
    }
    if (renewedAt === undefined) throw new Error('the certificate was not renewed within 150 s');
    await watcher;
    const before = samples.filter((s) => s.at < renewedAt! - 10_000).map((s) => s.ms);
    const during = samples.filter((s) => s.at >= renewedAt! - 5_000 && s.at <= renewedAt! + 10_000).map((s) => s.ms);
    const line = (label: string, values: number[]) =>
      `${label}: ${values.length} queries, p50 ${percentile(values, 50).toFixed(2)} ms, p99 ${percentile(values, 99).toFixed(2)} ms, max ${Math.max(...values).toFixed(2)} ms`;
    console.log(line('before the renewal', before));
    console.log(line('around the renewal (-5 s .. +10 s)', during));
    console.log(`p99 ratio around/before: ${(percentile(during, 99) / percentile(before, 99)).toFixed(2)}`);
  } finally {
    await client?.end().catch(() => undefined);
    await daemon.destroyAll();
    await pebble.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
