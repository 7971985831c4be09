/**
 * Crash soak: many cycles of concurrent deploys and destroys, each cut short
 * by a SIGKILL of the daemon at a random moment, then a restart. After every
 * restart it checks what users rely on and counts the failures:
 *
 * - records lost: databases that answered 201 (and were not destroyed) but
 *   are missing from status;
 * - orphaned containers: pgdb containers of this daemon that no record or
 *   kept volume explains;
 * - orphaned volumes: volumes of this daemon with no record that no
 *   `destroy --keep-data` asked to keep;
 * - stopped connecting: databases that answered 201 whose URL fails.
 *
 * The target for all four is 0. Prints the counts; fails (exit 1) otherwise.
 *
 *   node dist/e2e/bench/soak.bench.js [cycles]     (default 200)
 */
import { query, requireDockerAndImages, TestDaemon } from '../support/daemon.js';
import { testPorts } from '../support/ports.js';

const ports = testPorts(import.meta.url);

interface Live {
  name: string;
  url: string;
}

const random = (max: number) => Math.floor(Math.random() * max);
/** Kills land anywhere in this window after the operations start (PGDB_SOAK_WINDOW_MS). */
const KILL_WINDOW_MS = Number(process.env.PGDB_SOAK_WINDOW_MS ?? 8000);

async function main(): Promise<void> {
  const cycles = Number(process.argv[2] ?? 200);
  requireDockerAndImages([17]);
  // PGDB_SOAK_POOL=17:1 adds warm-pool claims and refills to what gets killed.
  const daemon = new TestDaemon({ portRange: ports.range(200), env: { PGDB_POOL: process.env.PGDB_SOAK_POOL ?? '0' } });
  await daemon.start();
  const live = new Map<string, Live>();
  const keptVolumes = new Set<string>();
  const counts = { kills: 0, deploysAnswered: 0, destroysAnswered: 0, recordsLost: 0, orphanContainers: 0, orphanVolumes: 0, stoppedConnecting: 0 };
  let serial = 0;
  const started = Date.now();
  try {
    for (let cycle = 1; cycle <= cycles; cycle++) {
      const operations: Array<Promise<void>> = [];
      for (let i = 0; i < 2; i++) {
        const name = `soak-${++serial}`;
        operations.push(
          daemon.api('POST', '/v1/deploy', { name }).then(
            (res) => {
              if (res.status === 201) {
                counts.deploysAnswered++;
                live.set(name, { name, url: res.body.database_url });
              }
            },
            () => undefined,
          ),
        );
      }
      const victims = [...live.keys()];
      if (victims.length > 1) {
        const name = victims[random(victims.length)];
        const keep = Math.random() < 0.5;
        operations.push(
          daemon.api('GET', '/v1/status').then(async (status) => {
            const volume = status.body.items?.find((i: { name: string }) => i.name === name)?.volume_name;
            // Once asked, the destroy may finish at the next start even if the daemon dies first.
            live.delete(name);
            if (keep && volume) keptVolumes.add(volume);
            const res = await daemon.api('DELETE', `/v1/db/${name}?keep_data=${keep}`);
            if (res.status === 200) counts.destroysAnswered++;
          }).catch(() => undefined),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, random(KILL_WINDOW_MS)));
      await daemon.stop('SIGKILL');
      counts.kills++;
      await Promise.allSettled(operations);
      await daemon.start();

      const status = (await daemon.api('GET', '/v1/status')).body;
      const names = new Set(status.items.map((i: { name: string }) => i.name));
      for (const db of live.values()) {
        if (!names.has(db.name)) {
          counts.recordsLost++;
          live.delete(db.name);
        }
      }
      counts.orphanContainers += status.unknown_containers.length;
      // Volumes no database and no standby holds are listed as detached; only
      // those a `destroy --keep-data` asked to keep may be there.
      counts.orphanVolumes += status.detached_volumes.filter((v: { volume_name: string }) => !keptVolumes.has(v.volume_name)).length;
      for (const db of live.values()) {
        const ok = await query(db.url, 'SELECT 1').then(() => true, () => false);
        if (!ok) counts.stoppedConnecting++;
      }
      if (cycle % 10 === 0 || cycle === cycles) {
        console.log(`cycle ${cycle}/${cycles} (${Math.round((Date.now() - started) / 1000)} s): ${JSON.stringify(counts)}, live ${live.size}`);
      }
    }
  } finally {
    await daemon.destroyAll();
  }
  console.log(`kill cycles: ${counts.kills}; deploys answered 201: ${counts.deploysAnswered}; destroys answered 200: ${counts.destroysAnswered}`);
  console.log(
    `records lost: ${counts.recordsLost}; orphaned containers: ${counts.orphanContainers}; orphaned volumes: ${counts.orphanVolumes}; ` +
      `databases that stopped connecting: ${counts.stoppedConnecting} (target: all 0)`,
  );
  if (counts.recordsLost + counts.orphanContainers + counts.orphanVolumes + counts.stoppedConnecting > 0) process.exit(1);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
