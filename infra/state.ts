/**
 * Where `pgdb infra` keeps Pulumi state and how it is encrypted. Plain code.
 *
 * - Backend: PULUMI_BACKEND_URL when set, else a file backend under the CLI's
 *   config directory (`<config>/infra/state`).
 * - Secrets: PULUMI_CONFIG_PASSPHRASE (or _FILE) when set, else a passphrase
 *   generated on first use and stored in `<config>/infra/passphrase` (0600).
 * - Stale locks: a file backend's lock left by a process of this machine that
 *   no longer runs (an interrupted run) is removed before the next run.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROJECT } from './options.js';

export interface StateSettings {
  backendUrl: string;
  /** The folder of a file backend, else undefined. */
  backendDir?: string;
  /** Where the workspace keeps Pulumi.yaml and Pulumi.<stack>.yaml (the stack config). */
  workDir: string;
  passphrase?: string;
  passphraseFile?: string;
  /** Where the generated passphrase is (when neither variable is set). */
  generatedPassphrasePath?: string;
}

export interface StateEnvironment {
  configDir: string;
  backendUrl?: string;
  passphrase?: string;
  passphraseFile?: string;
}

export async function stateSettings(env: StateEnvironment): Promise<StateSettings> {
  const infraDir = join(env.configDir, 'infra');
  await mkdir(infraDir, { recursive: true, mode: 0o700 });
  let backendUrl = env.backendUrl;
  if (!backendUrl) {
    const dir = join(infraDir, 'state');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    backendUrl = `file://${dir}`;
  }
  const workDir = join(infraDir, 'project');
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const settings: StateSettings = { backendUrl, backendDir: fileBackendDir(backendUrl), workDir };
  if (env.passphrase !== undefined) {
    settings.passphrase = env.passphrase;
  } else if (env.passphraseFile) {
    settings.passphraseFile = env.passphraseFile;
  } else {
    const path = join(infraDir, 'passphrase');
    settings.passphrase = await readOrCreatePassphrase(path);
    settings.generatedPassphrasePath = path;
  }
  return settings;
}

function fileBackendDir(url: string): string | undefined {
  if (!url.startsWith('file://')) return undefined;
  try {
    return fileURLToPath(url.replace(/\?.*$/, ''));
  } catch {
    return url.slice('file://'.length);
  }
}

async function readOrCreatePassphrase(path: string): Promise<string> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (text) return text;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const passphrase = randomBytes(32).toString('base64url');
  try {
    await writeFile(path, `${passphrase}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another run created it first: use that one.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim();
    throw error;
  }
  await chmod(path, 0o600);
  return passphrase;
}

export interface StackLock {
  path: string;
  pid?: number;
  hostname?: string;
  username?: string;
}

/** The lock files a file backend holds for `stack`. */
export async function stackLocks(backendDir: string, stack: string): Promise<StackLock[]> {
  const dirs = [join(backendDir, '.pulumi', 'locks', 'organization', PROJECT, stack), join(backendDir, '.pulumi', 'locks', stack)];
  const locks: StackLock[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const path = join(dir, name);
      try {
        const data = JSON.parse(await readFile(path, 'utf8')) as { pid?: number; hostname?: string; username?: string };
        locks.push({ path, pid: data.pid, hostname: data.hostname, username: data.username });
      } catch {
        locks.push({ path });
      }
    }
  }
  return locks;
}

/** A lock is stale when the process that took it, on this machine, is gone. */
export function isStale(lock: StackLock, isAlive: (pid: number) => boolean = processAlive): boolean {
  return lock.hostname === hostname() && typeof lock.pid === 'number' && !isAlive(lock.pid);
}

/** Removes the stale locks; returns them. Live locks are left alone. */
export async function removeStaleLocks(backendDir: string, stack: string): Promise<StackLock[]> {
  const stale = (await stackLocks(backendDir, stack)).filter((lock) => isStale(lock));
  for (const lock of stale) await unlink(lock.path).catch(() => undefined);
  return stale;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
