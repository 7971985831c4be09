/**
 * The release `pgdb infra bootstrap` copies to a server: what
 * scripts/install.sh builds pgdbd from, taken from this pgdb's own folder
 * (no git repository needed), as a reproducible .tar.gz named by the hash of
 * its content. Plain code.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This package's root (dist/infra/release.js is two levels below it). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Where the release's files are: the checkout itself, or the server/ folder
 * of the CLI package (tools/release/pack.ts), which holds the same files.
 */
export function releaseRoot(packageRoot: string = PACKAGE_ROOT): string {
  const packaged = join(packageRoot, 'server');
  return existsSync(join(packaged, 'package.json')) ? packaged : packageRoot;
}

/** install.sh's BUILD_INPUTS, plus install.sh itself. */
export const RELEASE_INPUTS = ['package.json', 'package-lock.json', 'tsconfig.json', 'contract', 'daemon', 'systemd/pgdbd.service', 'scripts/install.sh'];

export interface Release {
  id: string;
  archive: string;
  files: string[];
}

export async function releaseFiles(root: string = PACKAGE_ROOT): Promise<string[]> {
  const files: string[] = [];
  const walk = async (path: string) => {
    const info = await stat(path);
    if (info.isDirectory()) {
      for (const name of (await readdir(path)).sort()) {
        if (name === 'node_modules' || name === 'dist') continue;
        await walk(join(path, name));
      }
    } else if (info.isFile() && !/\.spec\.ts$/.test(path)) {
      files.push(relative(root, path).split(sep).join('/'));
    }
  };
  for (const input of RELEASE_INPUTS) {
    const path = join(root, input);
    if (!existsSync(path)) {
      throw new Error(`${root} is not a complete pgdb folder: ${input} is missing`);
    }
    await walk(path);
  }
  if (existsSync(join(root, '.npmrc'))) files.push('.npmrc');
  return files.sort();
}

export async function releaseId(root: string, files: string[]): Promise<string> {
  const hash = createHash('sha256').update('pgdb-release-1\n');
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(await readFile(join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/** Builds (or reuses) `<cacheDir>/releases/<id>.tar.gz`. */
export async function buildRelease(cacheDir: string, root: string = releaseRoot()): Promise<Release> {
  const files = await releaseFiles(root);
  const id = await releaseId(root, files);
  const dir = join(cacheDir, 'releases');
  const archive = join(dir, `${id}.tar.gz`);
  if (!existsSync(archive)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = `${archive}.${process.pid}.tmp`;
    await new Promise<void>((done, fail) => {
      const child = execFile(
        'tar',
        ['--null', '-T', '-', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--sort=name', '-czf', temp],
        { cwd: root },
        (error) => (error ? fail(new Error(`cannot pack the release with tar: ${error.message}`)) : done()),
      );
      child.stdin!.end(files.join('\0'));
    });
    await rename(temp, archive);
  }
  return { id, archive, files };
}

