/**
 * Which Pulumi CLI (engine) runs the stack: PGDB_PULUMI (a binary the user
 * chose), else `pulumi` on PATH, else the pinned version pgdb installed under
 * its cache directory, else install it there (once, with a progress line).
 */
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { PulumiCommand } from '@pulumi/pulumi/automation/index.js';
import { InfraError } from './failures.js';

/** The CLI version matching the @pulumi/pulumi SDK pgdb depends on. */
export const PULUMI_VERSION = '3.248.0';

export interface CliLookup {
  path?: string;
  pulumiBinary?: string;
  cacheDir: string;
  log: (line: string) => void;
}

export function findOnPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

export async function pulumiCommand(
  lookup: CliLookup,
  install: (options: { root: string }) => Promise<PulumiCommand> = (options) => PulumiCommand.install(options),
): Promise<PulumiCommand> {
  if (lookup.pulumiBinary) {
    if (!existsSync(lookup.pulumiBinary)) {
      throw new InfraError(`PGDB_PULUMI points at ${lookup.pulumiBinary}, which does not exist`, 'set PGDB_PULUMI to a pulumi binary, or unset it');
    }
    return PulumiCommand.get({ root: await rootFor(lookup.cacheDir, lookup.pulumiBinary) });
  }
  const onPath = findOnPath('pulumi', lookup.path);
  if (onPath) {
    return PulumiCommand.get({ root: await rootFor(lookup.cacheDir, onPath) });
  }
  const root = join(lookup.cacheDir, 'pulumi', `v${PULUMI_VERSION}`);
  if (existsSync(join(root, 'bin', 'pulumi'))) {
    return PulumiCommand.get({ root });
  }
  lookup.log(`installing the Pulumi CLI v${PULUMI_VERSION} under ${root} (once)`);
  await mkdir(root, { recursive: true });
  try {
    // The version defaults to the SDK's own (PULUMI_VERSION).
    return await install({ root });
  } catch (error) {
    throw new InfraError(
      `no Pulumi CLI: none on PATH, and installing v${PULUMI_VERSION} failed (${firstLine(error)})`,
      'install it (curl -fsSL https://get.pulumi.com | sh -s -- --version ' + PULUMI_VERSION + '), put `pulumi` on PATH, or set PGDB_PULUMI to a pulumi binary',
    );
  }
}

/**
 * PulumiCommand.get({ root }) runs `<root>/bin/pulumi`: give any binary that
 * layout with a symbolic link under the cache directory.
 */
async function rootFor(cacheDir: string, binary: string): Promise<string> {
  const target = resolve(binary);
  const root = join(cacheDir, 'pulumi', `at-${createHash('sha256').update(target).digest('hex').slice(0, 12)}`);
  const link = join(root, 'bin', 'pulumi');
  await mkdir(join(root, 'bin'), { recursive: true });
  await rm(link, { force: true });
  await symlink(target, link).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  return root;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}
