/**
 * Backups, measured in one run against baselines from the same run:
 *
 * - backup: a full backup (`pgdb backup`: pgBackRest, zstd, encrypted, into
 *   the local repository) of a database of PGDB_BENCH_BACKUP_MB (default
 *   1024) against `pg_basebackup -Ft` of the same database to a local file
 *   (uncompressed, in the container), as a ratio;
 * - restore: that database restored into a new one (latest state), until
 *   the returned URL answers SELECT 1;
 * - deploy: deploy time with archiving on (PGDB_BACKUP=on) against off,
 *   alternating (target: within 10 %);
 * - RPO: from a commit to the WAL segment holding it being in the repository,
 *   on an otherwise idle database (archive_timeout is 60 s), p50 and max.
 *
 *   node dist/e2e/bench/backup.bench.js [deploy runs]     (default 7)
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { docker, query, requireDockerAndImages, TestDaemon } from '../support/daemon.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

const SIZE_MB = Number(process.env.PGDB_BENCH_BACKUP_MB ?? 1024);
const RPO_SAMPLES = Number(process.env.PGDB_BENCH_RPO_SAMPLES ?? 3);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function timedDeploy(daemon: TestDaemon, name: string): Promise<{ ms: number; url: string }> {
  const started = performance.now();
  const response = await daemon.api('POST', '/v1/deploy', { name });
  if (response.status !== 201) throw new Error(`deploy ${name}: ${JSON.stringify(response.body)}`);
  await query(response.body.database_url, 'SELECT 1');
  return { ms: performance.now() - started, url: response.body.database_url };
}

async function waitForBackup(daemon: TestDaemon, name: string): Promise<void> {
  for (;;) {
    const listed = await daemon.api('GET', `/v1/db/${name}/backups`);
    if (listed.status === 200 && listed.body.backups.length > 0) return;
    await sleep(500);
  }
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 7);
  requireDockerAndImages([17]);
  const on = await new TestDaemon({ portRange: ports.range(50), env: { PGDB_BACKUP: 'on' } }).start();
  const off = await new TestDaemon({ portRange: ports.range(50), env: { PGDB_BACKUP: 'off' } }).start();
  try {
    // Deploy with archiving on and off, alternating so that noise hits both alike.
    const deployOn: number[] = [];
    const deployOff: number[] = [];
    for (let i = 0; i < runs; i++) {
      deployOff.push((await timedDeploy(off, `off-${i}`)).ms);
      deployOn.push((await timedDeploy(on, `on-${i}`)).ms);
      // Each "on" deploy starts its first backup: let it finish before the next pair.
      await waitForBackup(on, `on-${i}`);
    }

    // A database of SIZE_MB.
    const big = await timedDeploy(on, 'big');
    await waitForBackup(on, 'big');
    const rows = Math.round((SIZE_MB * 1024 * 1024) / 300);
    const filled = performance.now();
    await query(big.url, 'CREATE TABLE filler (id bigint PRIMARY KEY, payload text)');
    for (let from = 1; from <= rows; from += 500_000) {
      const to = Math.min(rows, from + 499_999);
      await query(big.url, `INSERT INTO filler SELECT g, repeat(md5(g::text), 6) FROM generate_series(${from}, ${to}) g`);
    }
    const size = Number((await query<{ bytes: string }>(big.url, 'SELECT pg_database_size(current_database()) AS bytes'))[0].bytes);
    const fillMs = performance.now() - filled;

    const status = await on.api('GET', '/v1/status');
    const item = status.body.items.find((i: { name: string }) => i.name === 'big');
    const container = item.container_id as string;
    docker('exec', '-u', 'postgres', container, 'psql', '-X', '-q', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres', '-c', 'CHECKPOINT');
    const baseStarted = performance.now();
    docker('exec', '-u', 'postgres', container, 'pg_basebackup', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-D', '/tmp/bench-base', '-Ft', '-X', 'fetch', '-c', 'fast');
    const baseMs = performance.now() - baseStarted;
    docker('exec', '-u', 'postgres', container, 'rm', '-rf', '/tmp/bench-base');

    const backupStarted = performance.now();
    const backup = await on.api('POST', '/v1/db/big/backups', { type: 'full' });
    const backupMs = performance.now() - backupStarted;
    if (backup.status !== 201) throw new Error(`backup: ${JSON.stringify(backup.body)}`);

    const restoreStarted = performance.now();
    const restored = await on.api('POST', '/v1/db/big/restore', { as: 'big-copy' });
    if (restored.status !== 201) throw new Error(`restore: ${JSON.stringify(restored.body)}`);
    const restoreMs = performance.now() - restoreStarted;
    await query(restored.body.database_url, 'SELECT 1');
    const firstSelectMs = performance.now() - restoreStarted;

    // RPO: a commit on an idle database, until its WAL segment is in the repository.
    const rpo: number[] = [];
    const rpoDb = await timedDeploy(on, 'rpo');
    await waitForBackup(on, 'rpo');
    const rpoItem = (await on.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'rpo');
    const archiveDir = join(on.dataDir, 'backups', rpoItem.volume_name, 'archive', rpoItem.volume_name);
    await query(rpoDb.url, 'CREATE TABLE marks (at timestamptz)');
    for (let i = 0; i < RPO_SAMPLES; i++) {
      await sleep(Math.random() * 20_000);
      const committed = performance.now();
      const [{ lsn }] = await query<{ lsn: string }>(rpoDb.url, 'INSERT INTO marks VALUES (now()) RETURNING pg_current_wal_insert_lsn()::text AS lsn');
      const [{ segment }] = await query<{ segment: string }>(
        rpoDb.url,
        `SELECT pg_walfile_name('${lsn}'::pg_lsn) AS segment`,
      ).catch(() => [{ segment: '' }]);
      if (!segment) throw new Error('pg_walfile_name is not allowed for the tenant; cannot measure RPO');
      for (;;) {
        if (archived(archiveDir, segment)) break;
        await sleep(200);
      }
      rpo.push(performance.now() - committed);
    }

    const p50 = (values: number[]) => percentile(values, 50);
    console.log(`deploy, archiving off (PGDB_BACKUP=off), ${runs} runs: p50 ${p50(deployOff).toFixed(0)} ms, p95 ${percentile(deployOff, 95).toFixed(0)} ms`);
    console.log(`deploy, archiving on,                  ${runs} runs: p50 ${p50(deployOn).toFixed(0)} ms, p95 ${percentile(deployOn, 95).toFixed(0)} ms`);
    console.log(`deploy on / off (p50): ${(p50(deployOn) / p50(deployOff)).toFixed(2)} (target ≤ 1.10)`);
    console.log(`database: ${(size / 1024 / 1024).toFixed(0)} MiB (${rows} rows, filled in ${seconds(fillMs)})`);
    console.log(`pg_basebackup -Ft to a local file (baseline): ${seconds(baseMs)}`);
    console.log(`pgdb backup (full, zstd, aes-256-cbc): ${seconds(backupMs)}, ${(backup.body.repo_bytes / 1024 / 1024).toFixed(0)} MiB stored; ratio to baseline ${(backupMs / baseMs).toFixed(2)}`);
    console.log(`pgdb restore (latest) until the URL answers: ${seconds(restoreMs)}; first SELECT 1 at ${seconds(firstSelectMs)}`);
    console.log(`RPO, commit to WAL in the repository, ${rpo.length} samples: p50 ${seconds(p50(rpo))}, max ${seconds(Math.max(...rpo))} (target ≤ 60 s)`);
    const load = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim();
    console.log(`load average at the end: ${load}`);
  } finally {
    await on.destroyAll();
    await off.destroyAll();
  }
}

/** Whether pgBackRest has pushed `segment` (stored as <segment>-<sha1>.zst under its 16-character directory). */
function archived(archiveDir: string, segment: string): boolean {
  try {
    for (const version of readdirSync(archiveDir)) {
      const dir = join(archiveDir, version, segment.slice(0, 16));
      try {
        if (readdirSync(dir).some((file) => file.startsWith(segment))) return true;
      } catch {
        // Not there yet.
      }
    }
  } catch {
    // No archive yet.
  }
  return false;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
