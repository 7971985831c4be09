/**
 * Volumes with a size: each database's volume is an ext4 file system in a
 * file of its own (`<data dir>/disks/<volume>.img`, sparse), attached to a
 * loop device and mounted by Docker's local volume driver. A tenant that
 * fills it gets "No space left on device" in its own database; the server's
 * disk, the registry, the backups and the other tenants keep theirs.
 *
 * Docker's local driver mounts with mount(2), which takes block devices only
 * (mount(8)'s `-o loop` is user space), so pgdb attaches the loop device
 * itself. Loop numbers are not stable across reboots; the volume therefore
 * names a link under /run (`/run/pgdb/disks/<volume>`), which a reboot
 * clears: until the daemon has attached the file again (at start, before
 * reconciliation), Docker cannot mount the volume, rather than mounting
 * whatever file got the old number.
 *
 * Growing: the file is extended, the loop device told, and resize2fs grows
 * the file system, online while Postgres runs. A kernel that refuses an
 * online resize to this process (it lacks CAP_SYS_RESOURCE, as in some
 * containers and sandboxes) makes `grow` throw OnlineGrowRefusedError: the caller
 * stops the database and grows it offline.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, mkdir, open, readdir, readlink, rename, rm, stat, statfs, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { DomainError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { OnlineGrowRefusedError } from './docker.gateway.js';

const run = promisify(execFile);
const GIB = 1024 ** 3;
/** mkfs, fsck and resize of a sparse file take milliseconds to seconds; a hung tool must not hold an operation forever. */
const TOOL_TIMEOUT_MS = 120_000;
/** The postgres user of the official images owns the file system's root, as the entrypoint would make it. */
const POSTGRES_OWNER = '999:999';
/** Tools pgdb runs on the host, and the Debian package each comes from. */
const DISK_TOOLS: Array<[string, string]> = [
  ['mkfs.ext4', 'e2fsprogs'],
  ['e2fsck', 'e2fsprogs'],
  ['resize2fs', 'e2fsprogs'],
  ['debugfs', 'e2fsprogs'],
  ['losetup', 'util-linux'],
];

/** What Docker's local driver is given for a volume on a disk image. */
export interface DiskVolumeOptions {
  type: 'ext4';
  device: string;
  o: string;
}

export interface DiskPaths {
  /** Where the image files are (`<data dir>/disks`). */
  images: string;
  /** Where the links to their loop devices are (on a tmpfs that a reboot clears). */
  links: string;
}

export class VolumeDisks {
  private readonly logger: Logger;

  constructor(
    private readonly paths: DiskPaths,
    logger: Logger,
  ) {
    this.logger = logger.child({ module: 'disks' });
  }

  /**
   * Why this host cannot give volumes a size, or undefined when it can: the
   * loop control device and the tools must be there. Checked at start.
   */
  static async problem(path = process.env.PATH ?? ''): Promise<string | undefined> {
    try {
      // Opened, not only access()ed: a device cgroup (systemd's DeviceAllow, a container) refuses at open.
      await (await open('/dev/loop-control', constants.O_RDWR)).close();
    } catch (error) {
      return `/dev/loop-control is not usable (${(error as NodeJS.ErrnoException).code}): the daemon needs loop devices to give each volume its size`;
    }
    // Looked up on the PATH as execFile would find them, without starting them.
    const directories = path.split(':').filter(Boolean);
    const missing: string[] = [];
    for (const [tool, pkg] of DISK_TOOLS) {
      const found = await Promise.all(directories.map((dir) => access(join(dir, tool), constants.X_OK).then(() => true, () => false)));
      if (!found.includes(true)) missing.push(`${tool} (${pkg})`);
    }
    if (missing.length > 0) return `missing ${missing.join(', ')}: install them (apt-get install e2fsprogs util-linux)`;
    return undefined;
  }

  imagePath(volume: string): string {
    return join(this.paths.images, `${volume}.img`);
  }

  linkPath(volume: string): string {
    return join(this.paths.links, volume);
  }

  /**
   * A new file system of `sizeGb` GiB for `volume`, attached, and what
   * Docker's local driver needs to mount it. The file is sparse: it takes
   * what the database writes, up to its size.
   */
  async create(volume: string, sizeGb: number): Promise<DiskVolumeOptions> {
    const image = this.imagePath(volume);
    try {
      await this.ensureDirectories();
      const file = await open(image, 'wx', 0o600);
      try {
        await file.truncate(sizeGb * GIB);
      } finally {
        await file.close();
      }
      // lazy_*_init: the kernel zeroes inode tables in the background; mkfs takes milliseconds.
      await tool('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', `root_owner=${POSTGRES_OWNER},lazy_itable_init=1,lazy_journal_init=1,nodiscard`, image]);
      // initdb refuses a data directory holding lost+found (Postgres 15-17 use the volume's root as PGDATA).
      await tool('debugfs', ['-w', '-R', 'rmdir lost+found', image]);
      // A new file: no loop device can hold it yet.
      await this.attach(volume, []);
    } catch (error) {
      await rm(image, { force: true });
      if ((error as NodeJS.ErrnoException).code === 'EFBIG') throw tooLarge(sizeGb, this.paths.images);
      if (!isDiskFull(error)) throw error;
      throw new DomainError('DISK_FULL', `no space left on the server's disk for the file system of volume ${volume} (${this.paths.images}); free space there and retry`);
    }
    return this.volumeOptions(volume);
  }

  /** The driver options of an existing disk's volume. */
  volumeOptions(volume: string): DiskVolumeOptions {
    // nodev, nosuid: nothing on a tenant's disk is a device or runs with another's rights.
    // discard: space the database frees is given back to the server's disk.
    return { type: 'ext4', device: this.linkPath(volume), o: 'noatime,nodev,nosuid,discard' };
  }

  /** The size of `volume`'s file system in GiB, or undefined when it has none (a volume from before sizes, or sizes off). */
  async sizeOf(volume: string): Promise<number | undefined> {
    try {
      return Math.round((await stat(this.imagePath(volume))).size / GIB);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /**
   * Bytes `volume`'s data takes: what its file system counts as used while
   * Docker has it mounted at `mountpoint`, else what its image file takes on
   * the server's disk (the same, plus the file system's journal and
   * metadata). Undefined for a volume without a disk.
   */
  async usage(volume: string, mountpoint: string | undefined): Promise<number | undefined> {
    let image;
    try {
      image = await stat(this.imagePath(volume));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    if (mountpoint) {
      const [inside, parent] = await Promise.all([stat(mountpoint).catch(() => undefined), stat(dirname(mountpoint)).catch(() => undefined)]);
      if (inside && parent && inside.dev !== parent.dev) {
        const fs = await statfs(mountpoint);
        return (fs.blocks - fs.bfree) * fs.bsize;
      }
    }
    return image.blocks * 512;
  }

  /**
   * Grows `volume`'s file system to `sizeGb` GiB (never shrinks). Online when
   * Docker has it mounted; throws OnlineGrowRefusedError when the kernel refuses
   * that, leaving the file and device grown so that a later call, with the
   * volume unmounted, finishes offline.
   */
  async grow(volume: string, sizeGb: number): Promise<void> {
    const image = this.imagePath(volume);
    const file = await open(image, 'r+');
    try {
      const { size } = await file.stat();
      if (size < sizeGb * GIB) await file.truncate(sizeGb * GIB);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EFBIG') throw tooLarge(sizeGb, this.paths.images);
      throw error;
    } finally {
      await file.close();
    }
    const device = await this.deviceOf(volume);
    if (!device) throw new Error(`the disk of ${volume} is not attached`);
    await tool('losetup', ['--set-capacity', device]);
    const resized = await run('resize2fs', [device], { timeout: TOOL_TIMEOUT_MS }).then(
      () => undefined,
      (error: Error & { stderr?: string }) => error,
    );
    if (!resized) return;
    const stderr = resized.stderr ?? '';
    if (/Permission denied to resize/i.test(stderr)) throw new OnlineGrowRefusedError(`the kernel refused to grow ${volume} while it is mounted`);
    if (!/e2fsck -f/.test(stderr)) throw new Error(`resize2fs ${volume}: ${lastLine(stderr) || resized.message}`);
    // Not mounted: resize2fs wants a checked file system first.
    await fsck(device);
    await tool('resize2fs', [device]);
  }

  /** Detaches and deletes `volume`'s disk; Docker must have removed the volume (so nothing mounts it). */
  async release(volume: string): Promise<void> {
    await rm(this.linkPath(volume), { force: true });
    for (const device of await this.devicesBacking(this.imagePath(volume))) {
      await tool('losetup', ['--detach', device]).catch((error: Error) =>
        this.logger.warn({ volume, device, err: error.message }, 'could not detach the loop device of a removed volume'),
      );
    }
    await rm(this.imagePath(volume), { force: true });
  }

  /**
   * Attaches every disk that is not attached and points its link at its
   * device: after a reboot, or when the daemon's runtime directory was
   * cleared. One that cannot be attached is logged; its database cannot start
   * (reconciliation reports it).
   */
  async attachAll(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.paths.images)).filter((name) => name.endsWith('.img')).map((name) => name.slice(0, -'.img'.length));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    if (names.length === 0) return;
    await this.ensureDirectories();
    const loops = await listLoops();
    for (const volume of names) {
      try {
        const attached = await this.attach(volume, loops);
        if (attached) this.logger.info({ volume, device: attached }, 'attached the disk of a volume');
      } catch (error) {
        this.logger.error({ volume, err: (error as Error).message }, 'could not attach the disk of a volume; its database cannot start');
      }
    }
  }

  /**
   * Makes sure `volume`'s image has a loop device (`loops`: the attached
   * ones) and its link names that device; returns the device when it had to
   * attach it.
   */
  private async attach(volume: string, loops: LoopDevice[]): Promise<string | undefined> {
    const image = this.imagePath(volume);
    let [device] = await this.devicesBacking(image, loops);
    let attached: string | undefined;
    if (!device) {
      // direct-io: the image's pages are cached once (in the file system inside), not twice.
      device = (await tool('losetup', ['--find', '--show', '--direct-io=on', image])).trim();
      attached = device;
    }
    const link = this.linkPath(volume);
    const current = await readlink(link).catch(() => undefined);
    if (current !== device) {
      const temporary = `${link}.${process.pid}.tmp`;
      await unlink(temporary).catch(() => undefined);
      await symlink(device, temporary);
      await rename(temporary, link);
    }
    return attached;
  }

  /** The loop device `volume`'s image is attached to, if any. */
  async deviceOf(volume: string): Promise<string | undefined> {
    return (await this.devicesBacking(this.imagePath(volume)))[0];
  }

  /**
   * Loop devices whose backing file is `image` (same inode on the same
   * device: paths may read differently), among `loops` (listed now when not given).
   */
  private async devicesBacking(image: string, loops?: LoopDevice[]): Promise<string[]> {
    let file;
    try {
      file = await stat(image);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return (loops ?? (await listLoops()))
      .filter((loop) => loop.inode === file.ino && loop.device === `${major(file.dev)}:${minor(file.dev)}`)
      .map((loop) => loop.name);
  }

  private async ensureDirectories(): Promise<void> {
    await mkdir(this.paths.images, { recursive: true, mode: 0o700 });
    await chmod(this.paths.images, 0o700);
    await mkdir(this.paths.links, { recursive: true, mode: 0o755 });
  }
}

export interface LoopDevice {
  name: string;
  inode: number;
  /** `major:minor` of the device holding the backing file. */
  device: string;
}

/** The attached loop devices and their backing files. */
async function listLoops(): Promise<LoopDevice[]> {
  return parseLoopList(await tool('losetup', ['--list', '--json', '--output', 'NAME,BACK-INO,BACK-MAJ:MIN']));
}

/** `losetup --list --json --output NAME,BACK-INO,BACK-MAJ:MIN`; no loop devices print nothing at all. */
export function parseLoopList(stdout: string): LoopDevice[] {
  if (stdout.trim() === '') return [];
  const parsed = JSON.parse(stdout) as { loopdevices?: Array<Record<string, string | number | null>> };
  return (parsed.loopdevices ?? []).map((entry) => ({
    name: String(entry.name),
    inode: Number(entry['back-ino']),
    device: String(entry['back-maj:min']).trim(),
  }));
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor). */
function major(dev: number): number {
  return Number(((BigInt(dev) >> 8n) & 0xfffn) | ((BigInt(dev) >> 32n) & ~0xfffn));
}

function minor(dev: number): number {
  return Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & ~0xffn));
}

async function tool(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(command, args, { timeout: TOOL_TIMEOUT_MS });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`${command} ${args.join(' ')}: ${lastLine(stderr) || (error as Error).message}`);
  }
}

/** e2fsck -f -p; exit codes 1 and 2 mean it fixed something, which is fine here. */
async function fsck(device: string): Promise<void> {
  try {
    await run('e2fsck', ['-f', '-p', device], { timeout: TOOL_TIMEOUT_MS });
  } catch (error) {
    const code = (error as { code?: number }).code;
    if (code === 1 || code === 2) return;
    throw new Error(`e2fsck ${device}: ${lastLine((error as { stderr?: string }).stderr ?? '') || (error as Error).message}`);
  }
}

/** A size beyond the largest file the server's file system can hold (ext4 with 4 KiB blocks: just under 16 TiB). */
function tooLarge(sizeGb: number, directory: string): DomainError {
  return new DomainError('INVALID_REQUEST', `size_gb ${sizeGb} is more than the file system under ${directory} can hold in one file; choose a smaller size; nothing was changed`);
}

/** ENOSPC, or a tool saying so (mkfs: "Could not allocate block"). */
function isDiskFull(error: unknown): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return code === 'ENOSPC' || /No space left on device|Could not allocate block/i.test(message ?? '');
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).at(-1) ?? '';
}
