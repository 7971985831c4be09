/**
 * What the backup gateway costs, measured in one run against a baseline from
 * the same run, on the same database and the same S3 store (SeaweedFS, as in
 * e2e/backup-s3.e2e.ts):
 *
 * - backup: a full backup through the gateway (the stanza's own credential,
 *   pgdbd re-signing every request) against the same full backup by the same
 *   pgBackRest in the same container straight to the store with the server's
 *   keys (what pgdb did before the gateway), alternating, each into a
 *   repository of its own; and once `pgdb backup` through the API;
 * - archive-push: one WAL segment pushed through the gateway against one
 *   pushed straight to the store, alternating (the latency a commit's segment
 *   adds to RPO).
 *
 *   node dist/e2e/bench/gateway.bench.js [backup runs]     (default 3)
 *
 * PGDB_BENCH_GATEWAY_MB sizes the database (default 512).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bridgeAddressOf, docker, query, requireDockerAndImages, TestDaemon } from '../support/daemon.js';
import { S3Store } from '../support/s3-store.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

const SIZE_MB = Number(process.env.PGDB_BENCH_GATEWAY_MB ?? 512);
const PUSH_SAMPLES = 10;

const run = promisify(execFile);
/** `docker exec` without blocking this process (a blocked event loop would hand the API client a socket the daemon has closed). */
async function exec(container: string, ...args: string[]): Promise<void> {
  await run('docker', ['exec', '-u', 'postgres', container, ...args], { maxBuffer: 16 * 1024 * 1024 });
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function psql(container: string, sql: string): string {
  return docker('exec', '-u', 'postgres', container, 'psql', '-X', '-q', '-At', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres', '-c', sql);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  requireDockerAndImages([17]);
  const store = await new S3Store({ bindAddress: bridgeAddressOf(), dnsNames: ['s3.test'] }).start();
  const secrets = mkdtempSync(join(tmpdir(), 'pgdb-bench-s3keys-'));
  writeFileSync(join(secrets, 'access'), `${store.accessKey}\n`, { mode: 0o600 });
  writeFileSync(join(secrets, 'secret'), `${store.secretKey}\n`, { mode: 0o600 });
  const daemon = await new TestDaemon({
    portRange: ports.range(30),
    env: {
      ...store.daemonEnv(secrets),
      // The baseline connects from the database's container straight to the store, which the walls would refuse.
      PGDB_NETWORK_WALLS: 'off',
      ...(process.env.PGDB_BENCH_LOG ? { PGDB_LOG_LEVEL: 'debug' } : {}),
    },
  }).start();
  try {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'big' });
    if (deployed.status !== 201) throw new Error(`deploy: ${JSON.stringify(deployed.body)}`);
    const url = deployed.body.database_url;
    // The first full backup starts with the deploy: let it finish (one pgBackRest backup per stanza at a time).
    while ((await daemon.api('GET', '/v1/db/big/backups')).body.backups?.length === 0) await sleep(500);
    const rows = Math.round((SIZE_MB * 1024 * 1024) / 300);
    await query(url, 'CREATE TABLE filler (id bigint PRIMARY KEY, payload text)');
    for (let from = 1; from <= rows; from += 500_000) {
      await query(url, `INSERT INTO filler SELECT g, repeat(md5(g::text), 6) FROM generate_series(${from}, ${Math.min(rows, from + 499_999)}) g`);
    }
    const size = Number((await query<{ bytes: string }>(url, 'SELECT pg_database_size(current_database()) AS bytes'))[0].bytes);
    const record = daemon.record('big');
    const container = record.container_id as string;

    // The baselines' configurations: the container's own, but straight to the store with the server's keys, in repositories of
    // their own: as pgdb did before the gateway (no bundles), and with bundles as the gateway's configuration has them.
    const directConf = (bundle: boolean) => docker('exec', container, 'cat', '/etc/pgdb/pgbackrest.conf')
      .replace(/^repo1-path=.*$/m, `repo1-path=/bench-direct${bundle ? '-bundled' : ''}`)
      .replace(/^repo1-s3-endpoint=.*$/m, `repo1-s3-endpoint=${store.host}\nrepo1-storage-host=${bridgeAddressOf()}`)
      .replace(/^repo1-storage-port=.*$/m, `repo1-storage-port=${store.port}`)
      .replace(/^repo1-s3-key=.*$/m, `repo1-s3-key=${store.accessKey}`)
      .replace(/^repo1-s3-key-secret=.*$/m, `repo1-s3-key-secret=${store.secretKey}`)
      .replace(/^repo1-storage-ca-file=.*$/m, 'repo1-storage-ca-file=/tmp/bench-store-ca.pem')
      .replace(/^repo1-bundle=y$/m, bundle ? 'repo1-bundle=y' : 'repo1-bundle=n');
    const conf = directConf(false);
    execFileSync('docker', ['exec', '-i', '-u', 'postgres', container, 'sh', '-c', 'umask 077; cat > /tmp/bench-direct-bundled.conf'], { input: directConf(true) });
    execFileSync('docker', ['exec', '-i', '-u', 'postgres', container, 'sh', '-c', 'umask 077; cat > /tmp/bench-direct.conf'], { input: conf });
    execFileSync('docker', ['exec', '-i', '-u', 'postgres', container, 'sh', '-c', 'cat > /tmp/bench-store-ca.pem'], { input: store.caPem() });
    const direct = (...args: string[]) => exec(container, 'pgbackrest', '--config=/tmp/bench-direct.conf', `--stanza=${record.backup.stanza}`, ...args);
    await direct('stanza-create');
    const bundled = (...args: string[]) => exec(container, 'pgbackrest', '--config=/tmp/bench-direct-bundled.conf', `--stanza=${record.backup.stanza}`, ...args);
    await bundled('stanza-create');

    // The same configuration through the gateway, in a repository of its own under the stanza's prefix.
    const ownConf = docker('exec', container, 'cat', '/etc/pgdb/pgbackrest.conf')
      .replace(/^repo1-path=(.*)$/m, (_, path: string) => `repo1-path=${path}/bench-gateway`);
    execFileSync('docker', ['exec', '-i', '-u', 'postgres', container, 'sh', '-c', 'umask 077; cat > /tmp/bench-gateway.conf'], { input: ownConf });
    const gateway = (...args: string[]) => exec(container, 'pgbackrest', '--config=/tmp/bench-gateway.conf', `--stanza=${record.backup.stanza}`, ...args);
    await gateway('stanza-create');
    const viaGateway: number[] = [];
    const straight: number[] = [];
    const straightBundled: number[] = [];
    for (let i = 0; i < runs; i++) {
      let started = performance.now();
      await direct('backup', '--type=full', '--archive-check=n');
      straight.push(performance.now() - started);
      started = performance.now();
      await bundled('backup', '--type=full', '--archive-check=n');
      straightBundled.push(performance.now() - started);
      started = performance.now();
      await gateway('backup', '--type=full', '--archive-check=n');
      viaGateway.push(performance.now() - started);
    }
    // And once as users run it: `pgdb backup`, through the API (listing and expiry included).
    let started = performance.now();
    const backup = await daemon.api('POST', '/v1/db/big/backups', { type: 'full' });
    if (backup.status !== 201) throw new Error(`backup: ${JSON.stringify(backup.body)}`);
    const apiMs = performance.now() - started;

    // Pushes of one WAL segment each way, into the two repositories above (the database's real archive is left alone).

    const dataDir = record.postgres_version >= 18 ? `/var/lib/postgresql/${record.postgres_version}/docker` : '/var/lib/postgresql/data';
    const pushGateway: number[] = [];
    const pushDirect: number[] = [];
    for (let i = 0; i < PUSH_SAMPLES; i++) {
      psql(container, 'SELECT pg_catalog.txid_current()');
      // The segment the switch completed (the running archiver pushes it into the database's own repository as well).
      const segment = psql(container, 'SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_switch_wal())').trim();
      const file = `${dataDir}/pg_wal/${segment}`;
      started = performance.now();
      await direct('archive-push', file);
      pushDirect.push(performance.now() - started);
      started = performance.now();
      await gateway('archive-push', file);
      pushGateway.push(performance.now() - started);
    }

    console.log(`database: ${(size / 1024 / 1024).toFixed(0)} MiB`);
    console.log(`full backup straight to the store, no bundles (before the gateway), ${runs} runs: median ${seconds(median(straight))} [${straight.map(seconds).join(', ')}]`);
    console.log(`full backup straight to the store, bundles,                        ${runs} runs: median ${seconds(median(straightBundled))} [${straightBundled.map(seconds).join(', ')}]`);
    console.log(`full backup through the gateway, bundles (pgdb now),               ${runs} runs: median ${seconds(median(viaGateway))} [${viaGateway.map(seconds).join(', ')}]`);
    console.log(`pgdb backup (full) through the API: ${seconds(apiMs)}`);
    console.log(`pgdb now / before the gateway (median): ${(median(viaGateway) / median(straight)).toFixed(2)} (target ≤ 1.10)`);
    console.log(`the gateway's own cost, bundles both (median): ${(median(viaGateway) / median(straightBundled)).toFixed(2)}`);
    console.log(`archive-push of one segment, ${PUSH_SAMPLES} samples: straight median ${median(pushDirect).toFixed(0)} ms, through the gateway median ${median(pushGateway).toFixed(0)} ms`);
    if (process.env.PGDB_BENCH_LOG) writeFileSync(process.env.PGDB_BENCH_LOG, daemon.logs());
    console.log(`load average at the end: ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim()}`);
  } catch (error) {
    console.error(daemon.logs().slice(-4000));
    throw error;
  } finally {
    await daemon.destroyAll();
    await store.destroy();
    rmSync(secrets, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
