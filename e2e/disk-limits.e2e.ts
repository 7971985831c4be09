/**
 * A database's size is a wall (issue 22, resource walls): each volume is an
 * ext4 file system of its own size on a loop device (VolumeDisks). A tenant
 * that fills its database gets "No space left on device" there, while its
 * neighbour, the daemon and the server's disk keep working; `resize --size`
 * grows it with the data intact; after a reboot (loop devices and /run gone)
 * the daemon attaches the disk again and starts the database; a destroy
 * removes the file and detaches the device.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DomainError } from '../daemon/src/common/errors.js';
import type { Logger } from '../daemon/src/common/logger.js';
import { VolumeDisks } from '../daemon/src/docker/volume-disks.js';
import { DISK_LINKS, docker, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(20);
const GIB = 1024 ** 3;

/** The SQLSTATE Postgres gives for ENOSPC (disk_full). */
const DISK_FULL = '53100';

/** Inserts 16 MiB rows that cannot be compressed away until Postgres says the disk is full; returns its error. */
async function fill(url: string): Promise<{ code?: string; message: string }> {
  await query(url, 'CREATE TABLE junk (id serial, b text); ALTER TABLE junk ALTER COLUMN b SET STORAGE EXTERNAL');
  for (let batch = 0; batch < 200; batch++) {
    try {
      // EXTERNAL: out of line, uncompressed. 4 rows of 16 MiB per statement.
      await query(url, "INSERT INTO junk (b) SELECT repeat('x', 16 * 1024 * 1024) FROM generate_series(1, 4)");
    } catch (error) {
      return error as { code?: string; message: string };
    }
  }
  throw new Error('3 GiB went into a 1 GiB database');
}

function loopOf(volume: string): string | undefined {
  try {
    return readlinkSync(join(DISK_LINKS, volume));
  } catch {
    return undefined;
  }
}

function backingFileOf(device: string): string {
  return execFileSync('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE', device], { encoding: 'utf8' }).trim();
}

const CAP_SYS_RESOURCE = 24;

/** Whether this process (and so the daemon it starts) holds a capability in its effective set. */
function hasCapability(bit: number): boolean {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1];
  return ((BigInt(`0x${effective}`) >> BigInt(bit)) & 1n) === 1n;
}

describe('database sizes are enforced (real pgdbd, Docker, loop devices, ext4, Postgres)', () => {
  const daemon = new TestDaemon({ portRange: PORT_RANGE });
  let tiny: { name: string; url: string; volume: string };
  let neighbour: { url: string };

  before(async () => {
    requireDockerAndImages([15, 18]);
    await daemon.start();
    const small = await daemon.api('POST', '/v1/deploy', { name: 'tiny', size_gb: 1, version: 15 });
    assert.equal(small.status, 201, JSON.stringify(small.body));
    tiny = { name: 'tiny', url: small.body.database_url, volume: daemon.record('tiny').volume_name };
    const other = await daemon.api('POST', '/v1/deploy', { name: 'neighbour', size_gb: 2, version: 18 });
    assert.equal(other.status, 201, JSON.stringify(other.body));
    neighbour = { url: other.body.database_url };
  });
  after(async () => {
    await daemon.destroyAll();
  });

  it('gives each volume a file system of its size on a loop device (Postgres 15 uses its root as PGDATA, 18 a directory in it)', async () => {
    const device = loopOf(tiny.volume) ?? '';
    assert.ok(device.startsWith('/dev/loop'), `a link to a loop device, got ${device}`);
    assert.equal(backingFileOf(device), join(daemon.dataDir, 'disks', `${tiny.volume}.img`));
    const info = (await daemon.api('GET', '/v1/db/tiny')).body;
    assert.deepEqual([info.limits.size_gb, info.limits.size_enforced], [1, true]);
    assert.ok(info.volume_free_bytes > 0.8 * GIB && info.volume_free_bytes < GIB, `free space within 1 GiB: ${info.volume_free_bytes}`);
    const mounted = docker('exec', daemon.record('tiny').container_id, 'df', '-P', '-k', '/var/lib/postgresql/data').split('\n')[1].split(/\s+/);
    assert.ok(Number(mounted[1]) < 1024 * 1024, `a file system under 1 GiB, got ${mounted[1]} KiB`);
    assert.equal((await daemon.api('GET', '/v1/db/neighbour')).body.limits.size_enforced, true);
    // Docker does not measure a volume mounted from a device; status asks its file system.
    const item = (await daemon.api('GET', '/v1/status')).body.items.find((i: { name: string }) => i.name === 'tiny');
    assert.ok(item.used_bytes > 10 * 1024 * 1024 && item.used_bytes < 200 * 1024 * 1024, `a new database's usage: ${item.used_bytes}`);
  });

  it('a tenant that fills its database gets disk_full there; its neighbour, the daemon and the server keep working', async () => {
    const serverFreeBefore = statfsSync(daemon.dataDir).bavail * statfsSync(daemon.dataDir).bsize;
    const error = await fill(tiny.url);
    assert.equal(error.code, DISK_FULL, `disk_full, got ${error.code}: ${error.message}`);
    assert.match(error.message, /No space left on device/);
    // The tenant's database still answers, and freeing space is its own business.
    const [{ rows }] = await query(tiny.url, 'SELECT count(*)::int AS rows FROM junk');
    // Its WAL shares the volume: about half of the GiB is the rows, the rest their WAL and the catalog.
    assert.ok(rows >= 20 && rows < 64, `about 1 GiB was written (${rows} rows of 16 MiB, and as much WAL)`);
    // The neighbour writes; the daemon deploys.
    await query(neighbour.url, "CREATE TABLE t AS SELECT g, repeat('y', 1000) AS pad FROM generate_series(1, 20000) g");
    const third = await daemon.api('POST', '/v1/deploy', { name: 'third', size_gb: 1 });
    assert.equal(third.status, 201, JSON.stringify(third.body));
    await query(third.body.database_url, 'SELECT 1');
    assert.equal((await daemon.api('DELETE', '/v1/db/third')).status, 200);
    // The server's disk lost at most the tenant's 1 GiB (and some slack for the others).
    const serverFreeAfter = statfsSync(daemon.dataDir).bavail * statfsSync(daemon.dataDir).bsize;
    assert.ok(serverFreeBefore - serverFreeAfter < 1.5 * GIB, `server disk used ${(serverFreeBefore - serverFreeAfter) / GIB} GiB`);
  });

  it('resize --size grows the volume with the data intact, and the tenant can write again', async () => {
    const [{ before }] = await query(tiny.url, 'SELECT count(*)::int AS before FROM junk');
    const shrink = await daemon.api('POST', '/v1/db/tiny/resize', { size_gb: 0 });
    assert.equal(shrink.status, 400);
    const res = await daemon.api('POST', '/v1/db/tiny/resize', { size_gb: 2 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.size_gb, res.body.previous_size_gb, res.body.size_enforced], [2, 1, true]);
    // Online where the kernel allows the daemon (CAP_SYS_RESOURCE, which this process passes on to it); a restart of Postgres otherwise.
    assert.equal(res.body.restarted, !hasCapability(CAP_SYS_RESOURCE), 'online exactly when the daemon may grow a mounted file system');
    const [{ after }] = await query(tiny.url, 'SELECT count(*)::int AS after FROM junk');
    assert.equal(after, before);
    await query(tiny.url, "INSERT INTO junk (b) SELECT repeat('z', 16 * 1024 * 1024) FROM generate_series(1, 8)");
    const info = (await daemon.api('GET', '/v1/db/tiny')).body;
    assert.equal(info.limits.size_gb, 2);
    assert.ok(info.volume_free_bytes > 0.5 * GIB, `room again after the resize: ${info.volume_free_bytes}`);
  });

  it('after a reboot (loop devices detached, /run cleared) the daemon attaches the disk again and starts the database', async () => {
    await daemon.stop();
    const record = daemon.record('tiny');
    // What a reboot leaves: the container down (Docker could not mount the volume), no loop device, no link.
    docker('stop', '-t', '10', record.container_id);
    execFileSync('losetup', ['--detach', loopOf(tiny.volume)!]);
    rmSync(join(DISK_LINKS, tiny.volume));
    assert.throws(() => docker('start', record.container_id), /no such file|not found|failed/i, 'Docker cannot mount the volume without its device');
    await daemon.start();
    const status = (await daemon.api('GET', '/v1/status')).body;
    assert.equal(status.items.find((i: { name: string }) => i.name === 'tiny').state, 'running');
    const [{ rows }] = await query(tiny.url, 'SELECT count(*)::int AS rows FROM junk');
    assert.ok(rows >= 28, `the rows written before and after the resize: ${rows}`);
    assert.ok(loopOf(tiny.volume)?.startsWith('/dev/loop'));
  });

  it('a size beyond the largest file this server can hold is refused with 400, leaving nothing behind', async () => {
    const res = await daemon.api('POST', '/v1/deploy', { name: 'huge', size_gb: 16384 });
    assert.deepEqual([res.status, res.body.error?.code], [400, 'INVALID_REQUEST'], JSON.stringify(res.body));
    assert.match(res.body.error.message, /size_gb 16384 is more than the file system under .* can hold in one file/);
    assert.equal((await daemon.api('GET', '/v1/db/huge')).status, 404);
    assert.deepEqual(readdirSync(join(daemon.dataDir, 'disks')).filter((f) => f.startsWith('pgdb-huge-')), []);
  });

  it("a server disk too full for a new database's file system: DISK_FULL, and no file or device is left", async () => {
    const full = mkdtempSync(join(tmpdir(), 'pgdb-disks-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', full]);
    try {
      const logger = { child: () => logger, info() {}, warn() {}, error() {} } as unknown as Logger;
      const disks = new VolumeDisks({ images: join(full, 'disks'), links: join(full, 'links') }, logger);
      await assert.rejects(disks.create('pgdb-too-big-x1', 10), (error: DomainError) => {
        assert.equal(error.code, 'DISK_FULL');
        assert.match(error.message, /no space left on the server's disk for the file system of volume pgdb-too-big-x1/);
        return true;
      });
      assert.deepEqual(readdirSync(join(full, 'disks')), []);
      assert.equal(existsSync(join(full, 'links', 'pgdb-too-big-x1')), false);
    } finally {
      execFileSync('umount', [full]);
      rmSync(full, { recursive: true, force: true });
    }
  });

  it('destroy removes the disk image and detaches its loop device', async () => {
    const device = loopOf(tiny.volume)!;
    const image = join(daemon.dataDir, 'disks', `${tiny.volume}.img`);
    assert.ok(existsSync(image));
    assert.equal((await daemon.api('DELETE', '/v1/db/tiny')).status, 200);
    assert.equal(existsSync(image), false);
    assert.equal(loopOf(tiny.volume), undefined);
    assert.notEqual(backingFileOf(device), image, 'the device no longer holds the image');
  });
});
