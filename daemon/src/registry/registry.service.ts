import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import lockfile from 'proper-lockfile';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import type { RegistryFile, RegistryRecord } from './registry.types.js';

const LOCK_STALE_MS = 10_000;

/**
 * The daemon's record of every database, in `<data dir>/registry.json`.
 *
 * Every change is a read-modify-write under two locks: a promise chain that
 * serializes this process, and `registry.lock` (proper-lockfile) that keeps
 * any other process off the file. Writes go to a temporary file that is
 * fsynced and renamed over the old one, so a crash leaves either the old or
 * the new registry, never a torn one.
 */
@Injectable()
export class RegistryService {
  readonly path: string;
  private readonly lockPath: string;
  private queue: Promise<unknown> = Promise.resolve();
  private instance: string | undefined;

  private readonly logger: Logger;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'registry' });
    this.path = join(config.dataDir, 'registry.json');
    this.lockPath = join(config.dataDir, 'registry.lock');
  }

  /** Creates the data directory and an empty registry if absent; fails on a corrupt one. */
  async init(): Promise<void> {
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 });
    await chmod(this.config.dataDir, 0o700);
    this.instance = await this.transaction((file) => ({ file, result: file.instance_id }));
  }

  async list(): Promise<RegistryRecord[]> {
    return (await this.read()).items;
  }

  async find(name: string): Promise<RegistryRecord | undefined> {
    return (await this.list()).find((item) => item.name === name);
  }

  /** Never changes once the registry exists. */
  async instanceId(): Promise<string> {
    this.instance ??= (await this.read()).instance_id;
    return this.instance;
  }

  /**
   * Runs `change` on the current items under both locks and saves what it
   * returns. A `change` that throws leaves the registry untouched.
   */
  async update<T>(
    change: (items: RegistryRecord[]) => Promise<{ items: RegistryRecord[]; result: T }> | { items: RegistryRecord[]; result: T },
  ): Promise<T> {
    return this.transaction(async (file) => {
      const { items, result } = await change(file.items.map((item) => ({ ...item })));
      return { file: { ...file, items }, result };
    });
  }

  private transaction<T>(
    change: (file: RegistryFile) => Promise<{ file: RegistryFile; result: T }> | { file: RegistryFile; result: T },
  ): Promise<T> {
    const run = this.queue.then(() => this.withFileLock(async () => {
      const current = await this.read();
      const { file, result } = await change(current);
      if (file !== current || !(await exists(this.path))) await this.write(file);
      return result;
    }));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async withFileLock<T>(work: () => Promise<T>): Promise<T> {
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.config.dataDir, {
        lockfilePath: this.lockPath,
        stale: LOCK_STALE_MS,
        retries: { retries: 50, minTimeout: 20, maxTimeout: 200 },
        realpath: false,
        // proper-lockfile throws from a timer by default, which would end the daemon.
        onCompromised: (error) => this.logger.error({ err: error.message }, 'registry lock compromised'),
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw this.storageError(error, this.lockPath);
      throw new DomainError(
        'REGISTRY_LOCKED',
        `registry is locked by another process (${this.lockPath}); retry in a moment`,
      );
    }
    try {
      return await work();
    } finally {
      await release().catch(() => undefined);
    }
  }

  private storageError(error: unknown, path: string): unknown {
    if (!isDiskFull(error)) return error;
    return new DomainError(
      'DISK_FULL',
      `no space left on the server's disk to write ${path}; free space there and retry (the registry is unchanged)`,
    );
  }

  private async read(): Promise<RegistryFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return { version: 1, instance_id: randomBytes(6).toString('hex'), items: [] };
      }
      throw error;
    }
    return parseRegistry(text, this.path);
  }

  private async write(file: RegistryFile): Promise<void> {
    const temporary = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(file, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, this.path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw this.storageError(error, this.path);
    }
    const dir = await open(this.config.dataDir, constants.O_RDONLY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** A full disk is the operator's to fix, and says so; anything else stays unexpected. */
function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Parses and checks the registry file; a damaged file stops the daemon instead of being overwritten. */
export function parseRegistry(text: string, path: string): RegistryFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`registry ${path} is not valid JSON (${(error as Error).message}); restore it from a backup`);
  }
  const file = parsed as Partial<RegistryFile>;
  if (
    typeof file !== 'object' || file === null || file.version !== 1 ||
    typeof file.instance_id !== 'string' || !Array.isArray(file.items)
  ) {
    throw new Error(`registry ${path} has an unexpected shape; restore it from a backup`);
  }
  return file as RegistryFile;
}
