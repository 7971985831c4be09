import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import lockfile from 'proper-lockfile';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { writeFileAtomically } from '../common/atomic-file.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { NAME_PATTERN } from '../../../contract/api.js';
import type { BackupIdentity, ClusterRecord, DestroyedRecord, RegistryFile, RegistryRecord, StandbyRecord } from './registry.types.js';

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
export class RegistryService implements OnModuleInit {
  readonly path: string;
  private readonly lockPath: string;
  private queue: Promise<unknown> = Promise.resolve();
  private instance: string | undefined;
  private readonly changeListeners: Array<(file: RegistryFile) => void> = [];

  private readonly logger: Logger;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'registry' });
    this.path = join(config.dataDir, 'registry.json');
    this.lockPath = join(config.dataDir, 'registry.lock');
  }

  /** Nest runs every module's init before any bootstrap hook: nothing reads the registry before this. */
  async onModuleInit(): Promise<void> {
    await this.init();
  }

  /**
   * Creates the data directory and an empty registry if absent; fails with a
   * RegistryFileError on a damaged one. Removes temporary files a crash left
   * (they hold passwords).
   */
  async init(): Promise<void> {
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 });
    const mode = (await stat(this.config.dataDir)).mode & 0o777;
    if (mode & 0o077) {
      this.logger.warn({ dataDir: this.config.dataDir, mode: mode.toString(8) }, 'the data directory was open to others; its mode is now 700');
    }
    await chmod(this.config.dataDir, 0o700);
    for (const entry of await readdir(this.config.dataDir)) {
      if (/^registry\.json\..+\.tmp$/.test(entry)) {
        await rm(join(this.config.dataDir, entry), { force: true });
        this.logger.warn({ file: entry }, 'removed a temporary registry file an interrupted write left');
      }
    }
    this.instance = await this.transaction((file) => ({ file, result: file.instance_id }));
  }

  /** Reads the records under both locks, so no change of this or another process interleaves; writes nothing. */
  inspect<T>(look: (items: readonly RegistryRecord[], standbys: readonly StandbyRecord[]) => T): Promise<T> {
    return this.transaction((file) => ({ file, result: look(file.items, file.standbys ?? []) }));
  }

  /**
   * Adds a pending record made by `make`; the name must be free. `taken`
   * holds every host port a database or a standby holds.
   */
  reserve(name: string, make: (items: RegistryRecord[], taken: Set<number>) => Promise<RegistryRecord>): Promise<RegistryRecord> {
    return this.transaction(async (file) => {
      if (file.items.some((item) => item.name === name)) {
        throw new DomainError('DB_ALREADY_EXISTS', `a database named "${name}" already exists; choose another name`);
      }
      const record = { ...(await make(file.items.map((i) => ({ ...i })), takenPorts(file))), pending: 'creating' as const };
      return { file: { ...file, items: [...file.items, record] }, result: { ...record } };
    });
  }

  /** Moves a pending record to another port, chosen by `pick` from what is free. */
  movePort(name: string, pick: (taken: Set<number>) => Promise<number>): Promise<number> {
    return this.transaction(async (file) => {
      const taken = takenPorts({ ...file, items: file.items.filter((item) => item.name !== name) });
      const port = await pick(taken);
      return { file: { ...file, items: file.items.map((item) => (item.name === name ? { ...item, host_port: port } : item)) }, result: port };
    });
  }

  async standbys(): Promise<StandbyRecord[]> {
    return (await this.read()).standbys ?? [];
  }

  /** Adds a standby in state `filling`, made by `make` with the ports already taken. */
  reserveStandby(make: (taken: Set<number>) => Promise<StandbyRecord>): Promise<StandbyRecord> {
    return this.transaction(async (file) => {
      const standby = await make(takenPorts(file));
      return { file: { ...file, standbys: [...(file.standbys ?? []), standby] }, result: { ...standby } };
    });
  }

  patchStandby(id: string, change: (standby: StandbyRecord) => void): Promise<StandbyRecord> {
    return this.transaction((file) => {
      const standbys = (file.standbys ?? []).map((s) => ({ ...s }));
      const standby = standbys.find((s) => s.id === id);
      if (!standby) throw new Error(`standby ${id} is not in the registry`);
      change(standby);
      return { file: { ...file, standbys }, result: { ...standby } };
    });
  }

  removeStandby(id: string): Promise<void> {
    return this.transaction((file) => ({
      file: { ...file, standbys: (file.standbys ?? []).filter((s) => s.id !== id) },
      result: undefined,
    }));
  }

  /**
   * Turns a ready standby of `version` that `fits` into the pending record
   * `make` returns, in one write: no standby is ever handed out twice, and a
   * crash leaves either the standby or a pending record (which
   * reconciliation removes, since nobody received its credentials).
   * Undefined when no standby fits (a miss).
   */
  claimStandby(
    name: string,
    fits: (standby: StandbyRecord) => boolean,
    make: (standby: StandbyRecord) => RegistryRecord,
  ): Promise<RegistryRecord | undefined> {
    return this.transaction((file) => {
      if (file.items.some((item) => item.name === name)) {
        throw new DomainError('DB_ALREADY_EXISTS', `a database named "${name}" already exists; choose another name`);
      }
      const standby = (file.standbys ?? []).find((s) => s.state === 'ready' && fits(s));
      if (!standby) return { file, result: undefined };
      const record = { ...make({ ...standby }), pending: 'creating' as const };
      return {
        file: { ...file, items: [...file.items, record], standbys: (file.standbys ?? []).filter((s) => s.id !== standby.id) },
        result: { ...record },
      };
    });
  }

  /** Records what a finished deploy made and clears `pending`: from here on the database exists. */
  settle(name: string, fields: Partial<RegistryRecord>): Promise<RegistryRecord> {
    return this.patch(name, (record) => {
      Object.assign(record, fields);
      delete record.pending;
    });
  }

  /** Changes one record in place; fails when it is gone. */
  patch(name: string, change: (record: RegistryRecord) => void): Promise<RegistryRecord> {
    return this.update((items) => {
      const record = items.find((item) => item.name === name);
      if (!record) throw new DomainError('DB_NOT_FOUND', `no database named "${name}"`);
      change(record);
      return { items, result: { ...record } };
    });
  }

  /**
   * Like `patch`, and in the same write, the backups of a cluster the change
   * leaves behind (an upgrade's old cluster at `--finish`, its newer one at
   * `--rollback`) join the destroyed list: kept until they expire, as a
   * destroyed database's are, and restorable by the database's name.
   */
  patchRetiring(name: string, change: (record: RegistryRecord) => ClusterRecord | undefined): Promise<RegistryRecord> {
    return this.transaction((file) => {
      const items = file.items.map((item) => ({ ...item }));
      const record = items.find((item) => item.name === name);
      if (!record) throw new DomainError('DB_NOT_FOUND', `no database named "${name}"`);
      const retired = change(record);
      const destroyed = retired?.backup ? keptEntry(file.destroyed ?? [], record, retired.postgres_version, retired.backup) : file.destroyed;
      return { file: { ...file, items, ...(destroyed ? { destroyed } : {}) }, result: { ...record } };
    });
  }

  /**
   * Marks a database as being destroyed; only one destroy per name at a
   * time, and never one of a database still being created.
   */
  markDestroying(name: string, keepData: boolean, deleteBackups = false): Promise<RegistryRecord> {
    return this.patch(name, (record) => {
      if (record.pending === 'creating') {
        throw new DomainError('DB_BUSY', `database "${name}" is still being created; try again when its deploy has finished`);
      }
      if (record.pending === 'destroying') {
        throw new DomainError('DB_BUSY', `database "${name}" is already being destroyed`);
      }
      record.pending = 'destroying';
      record.keep_data = keepData;
      if (deleteBackups) record.delete_backups = true;
    });
  }

  /**
   * Starts an upgrade: records the new cluster, with a temporary port
   * chosen by `pick` from the free ones. Refused while another upgrade is in
   * flight or an old cluster is still kept.
   */
  beginUpgrade(name: string, make: (record: RegistryRecord, taken: Set<number>) => Promise<ClusterRecord>): Promise<RegistryRecord> {
    return this.transaction(async (file) => {
      const items = file.items.map((item) => ({ ...item }));
      const record = items.find((item) => item.name === name);
      if (!record) throw new DomainError('DB_NOT_FOUND', `no database named "${name}"`);
      if (record.upgrading) throw new DomainError('DB_BUSY', `an upgrade of "${name}" is in progress`);
      if (record.previous) {
        throw new DomainError(
          'NO_UPGRADE',
          `"${name}" still keeps its Postgres ${record.previous.postgres_version} cluster from the last upgrade; run \`pgdb upgrade ${name} --finish\` (or --rollback) first`,
        );
      }
      record.upgrading = await make({ ...record }, takenPorts({ ...file, items }));
      return { file: { ...file, items }, result: { ...record } };
    });
  }

  /**
   * Removes a record; removing one that is gone is no error. With
   * `keepBackups`, a record with backups moves to the destroyed list in the
   * same write, so its backups stay restorable by name.
   */
  remove(name: string, keepBackups = false): Promise<void> {
    return this.transaction((file) => {
      const record = file.items.find((item) => item.name === name);
      const items = file.items.filter((item) => item.name !== name);
      let destroyed = file.destroyed ?? [];
      // The old cluster an upgrade kept has backups of its own, kept alike (older first: a name's newest entry is its last cluster).
      if (record?.previous?.backup && keepBackups) destroyed = keptEntry(destroyed, record, record.previous.postgres_version, record.previous.backup);
      if (record?.backup && keepBackups) destroyed = keptEntry(destroyed, record, record.postgres_version, record.backup);
      return { file: { ...file, items, destroyed }, result: undefined };
    });
  }

  async destroyed(): Promise<DestroyedRecord[]> {
    return (await this.read()).destroyed ?? [];
  }

  /** Forgets a destroyed database's backups (they were deleted, or expired). */
  forgetDestroyed(stanza: string): Promise<void> {
    return this.transaction((file) => ({
      file: { ...file, destroyed: (file.destroyed ?? []).filter((d) => d.backup.stanza !== stanza) },
      result: undefined,
    }));
  }

  /**
   * Adds the destroyed entries `find` returns, given every stanza the
   * registry knows (its databases', their other clusters', destroyed ones');
   * returns what was added.
   */
  adoptRecovered(find: (known: Set<string>) => DestroyedRecord[]): Promise<DestroyedRecord[]> {
    return this.transaction((file) => {
      const known = new Set<string>();
      for (const item of file.items) {
        for (const cluster of [item, item.previous, item.upgrading]) if (cluster?.backup) known.add(cluster.backup.stanza);
      }
      for (const standby of file.standbys ?? []) if (standby.backup) known.add(standby.backup.stanza);
      for (const entry of file.destroyed ?? []) known.add(entry.backup.stanza);
      const found = find(known).filter((entry) => !known.has(entry.backup.stanza));
      if (found.length === 0) return { file, result: [] };
      return { file: { ...file, destroyed: [...(file.destroyed ?? []), ...found] }, result: found };
    });
  }

  /** `listener` hears of every write, after it reached the disk (the backup module copies the registry into the repository). */
  onChange(listener: (file: RegistryFile) => void): void {
    this.changeListeners.push(listener);
  }

  /** The whole file as it is on disk. */
  snapshot(): Promise<RegistryFile> {
    return this.read();
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
      if (file !== current || !(await exists(this.path))) {
        await this.write(file);
        for (const listener of this.changeListeners) listener(file);
      }
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
    await writeFileAtomically(this.path, `${JSON.stringify(file, null, 2)}\n`).catch((error) => {
      throw this.storageError(error, this.path);
    });
  }
}

/** Host ports held by databases and by standbys. */
function takenPorts(file: RegistryFile): Set<number> {
  return new Set([
    ...file.items.map((item) => item.host_port),
    // The new cluster of an upgrade in flight listens on a port of its own until the switch.
    ...file.items.flatMap((item) => (item.upgrading?.host_port ? [item.upgrading.host_port] : [])),
    ...(file.standbys ?? []).map((s) => s.host_port),
  ]);
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

/** The registry file cannot be used as it is; the daemon stops (exit 78) rather than overwrite it. */
export class RegistryFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryFileError';
  }
}

/** Parses and checks the registry file, every record included; a damaged file stops the daemon instead of being overwritten. */
export function parseRegistry(text: string, path: string): RegistryFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RegistryFileError(`registry ${path} is not valid JSON (${(error as Error).message}); restore it from a backup`);
  }
  const file = parsed as Partial<RegistryFile>;
  if (
    typeof file !== 'object' || file === null || file.version !== 1 ||
    typeof file.instance_id !== 'string' || !/^[0-9a-f]{6,64}$/.test(file.instance_id) || !Array.isArray(file.items)
  ) {
    throw new RegistryFileError(`registry ${path} has an unexpected shape; restore it from a backup`);
  }
  if (file.standbys !== undefined && !Array.isArray(file.standbys)) {
    throw new RegistryFileError(`registry ${path}: "standbys" is not a list; fix or restore the file`);
  }
  (file.standbys ?? []).forEach((standby, index) => {
    const problem = standbyProblem(standby);
    if (problem) throw new RegistryFileError(`registry ${path}: standby ${index} ${problem}; fix or restore the file`);
  });
  if (file.destroyed !== undefined && !Array.isArray(file.destroyed)) {
    throw new RegistryFileError(`registry ${path}: "destroyed" is not a list; fix or restore the file`);
  }
  (file.destroyed ?? []).forEach((entry, index) => {
    const problem = destroyedProblem(entry);
    if (problem) throw new RegistryFileError(`registry ${path}: destroyed ${index} ${problem}; fix or restore the file`);
  });
  const names = new Set<string>();
  file.items.forEach((item, index) => {
    const problem = recordProblem(item);
    const label = `item ${index}${typeof item?.name === 'string' ? ` ("${item.name}")` : ''}`;
    if (problem) throw new RegistryFileError(`registry ${path}: ${label} ${problem}; fix or restore the file`);
    if (names.has(item.name)) throw new RegistryFileError(`registry ${path}: ${label} repeats the name "${item.name}"; fix or restore the file`);
    names.add(item.name);
  });
  return file as RegistryFile;
}

function clusterProblem(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'not an object';
  const c = item as Record<string, unknown>;
  for (const key of ['container_id', 'volume_name', 'admin_password']) if (typeof c[key] !== 'string') return `no string "${key}"`;
  if (!Number.isInteger(c.postgres_version)) return 'no "postgres_version"';
  if (c.host_port !== undefined && !Number.isInteger(c.host_port)) return 'an invalid "host_port"';
  return undefined;
}

function standbyProblem(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'is not an object';
  const s = item as Record<string, unknown>;
  for (const key of ['id', 'container_id', 'volume_name', 'db', 'admin_password', 'created_at']) {
    if (typeof s[key] !== 'string') return `has no string "${key}"`;
  }
  for (const key of ['host_port', 'postgres_version', 'memory_mb']) if (!Number.isInteger(s[key])) return `has an invalid "${key}"`;
  if (s.state !== 'filling' && s.state !== 'ready') return 'has an invalid "state"';
  return backupProblem(s.backup);
}

/** The destroyed list with the backups of `record`'s cluster of `major` (stanza `backup`) kept, newest last. */
function keptEntry(destroyed: DestroyedRecord[], record: RegistryRecord, major: number, backup: BackupIdentity): DestroyedRecord[] {
  return [
    ...destroyed.filter((d) => d.backup.stanza !== backup.stanza),
    {
      name: record.name,
      postgres_version: major,
      backup,
      destroyed_at: new Date().toISOString(),
      size_gb: record.size_gb,
      ...(record.memory_mb ? { memory_mb: record.memory_mb } : {}),
    },
  ];
}

function destroyedProblem(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'is not an object';
  const d = item as Record<string, unknown>;
  if (typeof d.name !== 'string' || !NAME_PATTERN.test(d.name)) return 'has an invalid name';
  if (typeof d.destroyed_at !== 'string') return 'has no string "destroyed_at"';
  for (const key of ['postgres_version', 'size_gb']) if (!Number.isInteger(d[key])) return `has an invalid "${key}"`;
  if (d.backup === undefined) return 'has no "backup"';
  return backupProblem(d.backup);
}

function backupProblem(backup: unknown): string | undefined {
  if (backup === undefined) return undefined;
  const b = backup as Record<string, unknown>;
  if (typeof b !== 'object' || b === null || typeof b.stanza !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(b.stanza)) {
    return 'has an invalid "backup.stanza"';
  }
  if (typeof b.cipher_pass !== 'string' || b.cipher_pass.length < 32) return 'has an invalid "backup.cipher_pass"';
  return undefined;
}

function recordProblem(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'is not an object';
  const r = item as Record<string, unknown>;
  const strings = ['name', 'container_id', 'volume_name', 'db', 'user', 'created_at', 'host', 'password'];
  for (const key of strings) if (typeof r[key] !== 'string') return `has no string "${key}"`;
  if (!NAME_PATTERN.test(r.name as string)) return 'has an invalid name';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(r.volume_name as string)) return 'has an invalid volume_name';
  const integers: Array<[string, number, number]> = [['host_port', 1, 65535], ['postgres_version', 1, 999], ['size_gb', 1, 16384]];
  for (const [key, min, max] of integers) {
    if (!Number.isInteger(r[key]) || (r[key] as number) < min || (r[key] as number) > max) return `has an invalid "${key}"`;
  }
  if (r.memory_mb !== undefined && !Number.isInteger(r.memory_mb)) return 'has an invalid "memory_mb"';
  if (r.cpus !== undefined && !(typeof r.cpus === 'number' && r.cpus > 0)) return 'has an invalid "cpus"';
  if (r.admin_password !== undefined && typeof r.admin_password !== 'string') return 'has an invalid "admin_password"';
  if (r.layout !== undefined && r.layout !== 2) return `has an unknown layout ${JSON.stringify(r.layout)} (written by a newer pgdb?)`;
  if (r.layout === 2 && typeof r.admin_password !== 'string') return 'has layout 2 but no "admin_password"';
  if (r.pending !== undefined && r.pending !== 'creating' && r.pending !== 'destroying') return 'has an invalid "pending"';
  if (r.keep_data !== undefined && typeof r.keep_data !== 'boolean') return 'has an invalid "keep_data"';
  if (r.delete_backups !== undefined && r.delete_backups !== true) return 'has an invalid "delete_backups"';
  if (r.stopped !== undefined && r.stopped !== true) return 'has an invalid "stopped"';
  if (r.archiving_pending !== undefined && (r.archiving_pending !== true || r.backup === undefined)) return 'has an invalid "archiving_pending"';
  if (r.next_password !== undefined && typeof r.next_password !== 'string') return 'has an invalid "next_password"';
  for (const key of ['upgrading', 'previous']) {
    if (r[key] !== undefined && clusterProblem(r[key])) return `has an invalid "${key}" (${clusterProblem(r[key])})`;
  }
  return backupProblem(r.backup);
}
