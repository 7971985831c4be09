/**
 * The CLI's release artifact: `npm run pack:cli` builds, then writes
 * dist/release/pgdb-<version>.tgz with `npm pack`, which a user installs
 * with one command, without a checkout:
 *
 *   npm install -g ./pgdb-<version>.tgz
 *
 * (`node dist/tools/release/pack.js <dir>` writes it into another folder.)
 *
 * What the package holds (nothing else: no dependencies, no dev tools):
 * - dist/cli/bin/pgdb.cjs and pgdb.bundle.cjs: the executable and its bundle,
 *   which carries every module the CLI runs (yargs included), and
 *   dist/locales (yargs' translations, where the bundle looks for them);
 * - dist/infra/*.js: `pgdb infra`, loaded only when an infra command runs,
 *   with the Pulumi packages as optional dependencies (as in the checkout:
 *   `--omit=optional` installs a CLI without `pgdb infra`);
 * - server/: what `pgdb infra bootstrap` copies to a server and builds pgdbd
 *   from there (infra/release.ts RELEASE_INPUTS).
 * The code cache is left out: its stamp names the bundle's modification
 * time, which npm pack rewrites; the first run writes one where it may.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RELEASE_INPUTS, releaseFiles } from '../../infra/release.js';

/** The checkout: this file runs as dist/tools/release/pack.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

interface PackageJson {
  name: string;
  version: string;
  description: string;
  license: string;
  engines: Record<string, string>;
  optionalDependencies: Record<string, string>;
}

/** The package.json of the CLI package: the checkout's name, version and Pulumi packages (optional), and the `pgdb` executable alone. */
export function cliPackageJson(source: PackageJson): Record<string, unknown> {
  return {
    name: source.name,
    version: source.version,
    description: 'The pgdb CLI: PostgreSQL databases on a server you own (pgdb deploy, status, destroy, backups) and the Hetzner server itself (pgdb infra).',
    license: source.license,
    type: 'module',
    engines: source.engines,
    bin: { pgdb: 'dist/cli/bin/pgdb.cjs' },
    optionalDependencies: source.optionalDependencies,
  };
}

/** Copies what the package holds into `stage` (emptied first). */
export async function stagePackage(root: string, stage: string): Promise<void> {
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'dist/cli/bin'), { recursive: true });
  for (const file of ['pgdb.cjs', 'pgdb.bundle.cjs']) {
    const path = join(root, 'dist/cli/bin', file);
    if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` first`);
    cpSync(path, join(stage, 'dist/cli/bin', file));
  }
  cpSync(join(root, 'dist/locales'), join(stage, 'dist/locales'), { recursive: true });
  mkdirSync(join(stage, 'dist/infra'), { recursive: true });
  for (const name of readdirSync(join(root, 'dist/infra'))) {
    if (name.endsWith('.js') && !name.endsWith('.spec.js')) cpSync(join(root, 'dist/infra', name), join(stage, 'dist/infra', name));
  }
  for (const file of await releaseFiles(root)) {
    mkdirSync(dirname(join(stage, 'server', file)), { recursive: true });
    cpSync(join(root, file), join(stage, 'server', file));
  }
  const source = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(cliPackageJson(source), null, 2)}\n`);
  writeFileSync(
    join(stage, 'README.md'),
    [
      '# pgdb CLI',
      '',
      '`pgdb deploy` gives you a PostgreSQL database on a server you own; `pgdb infra` creates that server on Hetzner Cloud.',
      'Documentation: the docs/ folder of the pgdb repository (docs/cli.md, docs/infra.md).',
      '',
      `The server/ folder holds what \`pgdb infra bootstrap\` installs on a server (${RELEASE_INPUTS.join(', ')}).`,
      '',
    ].join('\n'),
  );
}

/** Stages the package and runs `npm pack`; returns the tarball's path. */
export async function packCli(root: string = ROOT, outDir: string = join(root, 'dist/release')): Promise<string> {
  const stage = join(outDir, 'stage');
  await stagePackage(root, stage);
  const output = execFileSync('npm', ['pack', '--json', '--pack-destination', outDir], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const [{ filename }] = JSON.parse(output) as Array<{ filename: string }>;
  return join(outDir, filename);
}

// node dist/tools/release/pack.js [<out dir>]: prints the tarball's path.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${await packCli(ROOT, process.argv[2] ? resolve(process.argv[2]) : undefined)}\n`);
}
