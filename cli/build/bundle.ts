/**
 * Builds the `pgdb` executable that users run: cli/bin/pgdb.ts and every
 * module it imports statically, bundled and minified by esbuild into one
 * file, dist/cli/bin/pgdb.js (replacing tsc's copy of that file), with a
 * source map back to the TypeScript. At every start Node then reads and
 * compiles one file instead of resolving some seventy modules.
 *
 * What a command needs only when it runs (talking to a daemon: http, tls,
 * crypto, the config file; prompts; psql) is imported dynamically in cli/:
 * esbuild puts it in chunks next to the bundle (pgdb.<name>.<hash>.js),
 * loaded when that command runs, so that `pgdb --help` and `--version`
 * compile and load only the bundle itself.
 *
 *   node dist/cli/build/bundle.js      (the last step of `npm run build`)
 *
 * - A dynamic import() of code outside cli/ (`pgdb infra` reaching infra/,
 *   and through it Pulumi) stays a dynamic import and is not bundled: it
 *   loads tsc's output in dist/ when that command runs, never at start.
 * - yargs' `assert` (two equality checks) is replaced by
 *   cli/build/assert.js: Node's assert module costs a few milliseconds at
 *   every start.
 * - yargs' `escalade/sync` (finding a package.json upwards, to guess a version
 *   pgdb turns off) is replaced by cli/build/find-up.js, which finds nothing:
 *   yargs would otherwise read every directory from the current one up.
 * - `string-width` is replaced by cli/build/string-width.js, which answers
 *   printable ASCII itself and loads the real package only for other text.
 * - `pgdb --help` is rendered by yargs at build time (in English, 80 columns,
 *   from tsc's output) and built into the executable, which prints it where
 *   yargs would print the same (cli/src/help-page.ts) without loading yargs.
 * - yargs' translations are copied to where its bundled code looks for them.
 */
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The checkout: this file runs as dist/cli/build/bundle.js. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export interface BundleOptions {
  root: string;
  entry: string;
  outfile: string;
  /** The text of `pgdb --help` to build in (see cli/src/help-page.ts); none: the executable always asks yargs. */
  help?: string;
}

export function cliBundle(root: string): BundleOptions {
  return { root, entry: join(root, 'cli/bin/pgdb.ts'), outfile: join(root, 'dist/cli/bin/pgdb.js') };
}

/** The chunks a build writes next to the bundle: `pgdb.<name>.<hash>.js` and their maps. */
export const CHUNK = /^pgdb\.[\w-]+\.[A-Z0-9]{8}\.js(?:\.map)?$/;

export function esbuildOptions({ root, entry, outfile, help }: BundleOptions): BuildOptions {
  return {
    // cli/bin/pgdb.ts prints it for a bare `pgdb --help`.
    define: { PGDB_HELP: help === undefined ? 'undefined' : JSON.stringify(help) },
    entryPoints: [{ in: entry, out: basename(outfile, '.js') }],
    outdir: dirname(outfile),
    // Chunks sit next to the bundle, so that relative imports beyond cli/ mean the same from both.
    chunkNames: 'pgdb.[name].[hash]',
    splitting: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    // package.json engines: the oldest Node the CLI supports.
    target: 'node20.19',
    minify: true,
    // Stack traces map back to the sources with --enable-source-maps.
    sourcemap: 'linked',
    sourcesContent: false,
    plugins: [dynamicImportsBeyondCli(root, dirname(outfile)), stringWidthStandIn(root), assertStandIn(root), findUpStandIn(root)],
    logLevel: 'warning',
  };
}

/**
 * Keeps every dynamic import() of code outside cli/ (and of any package) out
 * of the bundle, as a dynamic import of tsc's output of that module in dist/,
 * written relative to the bundle.
 */
export function dynamicImportsBeyondCli(root: string, outdir: string): Plugin {
  const cli = join(root, 'cli') + sep;
  return {
    name: 'dynamic-imports-beyond-cli',
    setup(esbuild) {
      esbuild.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind !== 'dynamic-import') return undefined;
        if (!args.path.startsWith('.')) return { path: args.path, external: true };
        const source = resolve(args.resolveDir, args.path);
        if (source.startsWith(cli)) return undefined;
        const compiled = join(root, 'dist', relative(root, source));
        if (!existsSync(compiled)) {
          return { errors: [{ text: `${args.path} is imported dynamically but tsc produced no ${relative(root, compiled)}` }] };
        }
        const path = relative(outdir, compiled).split(sep).join('/');
        return { path: path.startsWith('.') ? path : `./${path}`, external: true };
      });
    },
  };
}

/**
 * Every `import ... from 'string-width'` gets cli/build/string-width.js
 * instead, one instance per copy of the package, so that its require() finds
 * the copy the importer would have had.
 */
export function stringWidthStandIn(root: string): Plugin {
  const standIn = join(root, 'cli/build/string-width.js');
  const namespace = 'string-width-stand-in';
  return {
    name: namespace,
    setup(esbuild) {
      esbuild.onResolve({ filter: /^string-width$/ }, async (args) => {
        if (args.namespace === namespace || args.pluginData === namespace) return undefined;
        const real = await esbuild.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: namespace });
        if (real.errors.length > 0) return { errors: real.errors };
        // Named after the copy it stands in for, relative to the checkout (as the source map shows it).
        return { path: relative(root, real.path).split(sep).join('/'), namespace };
      });
      esbuild.onLoad({ filter: /.*/, namespace }, (args) => ({
        contents: readFileSync(standIn, 'utf8'),
        resolveDir: dirname(join(root, args.path)),
        loader: 'js',
      }));
    },
  };
}

/** yargs' `import { notStrictEqual, strictEqual } from 'assert'` gets cli/build/assert.js instead. */
export function assertStandIn(root: string): Plugin {
  const standIn = join(root, 'cli/build/assert.js');
  const yargs = join(root, 'node_modules/yargs') + sep;
  return {
    name: 'assert-stand-in',
    setup(esbuild) {
      esbuild.onResolve({ filter: /^(?:node:)?assert$/ }, (args) => (args.importer.startsWith(yargs) ? { path: standIn } : undefined));
    },
  };
}

/** yargs' `import escalade from 'escalade/sync'` gets cli/build/find-up.js instead. */
export function findUpStandIn(root: string): Plugin {
  const standIn = join(root, 'cli/build/find-up.js');
  const yargs = join(root, 'node_modules/yargs') + sep;
  return {
    name: 'find-up-stand-in',
    setup(esbuild) {
      esbuild.onResolve({ filter: /^escalade\/sync$/ }, (args) => (args.importer.startsWith(yargs) ? { path: standIn } : undefined));
    },
  };
}

/** yargs reads its translations from `locales` three levels above its own module, here the bundle. */
function copyYargsLocales({ root, outfile }: BundleOptions): void {
  cpSync(join(root, 'node_modules/yargs/locales'), resolve(outfile, '../../../locales'), { recursive: true });
}

/**
 * `pgdb --help` as yargs prints it in English when stdout is not a terminal,
 * from tsc's output of the CLI (dist/cli/src/main.js), in a process of its own.
 */
export function renderHelp(root: string): string {
  const load = (path: string) => `await import(${JSON.stringify(pathToFileURL(join(root, 'dist/cli/src', path)).href)})`;
  const script = `const { runCli } = ${load('main.js')}; const { processContext } = ${load('context.js')};
process.exitCode = await runCli(['--help'], processContext());`;
  const run = spawnSync(process.execPath, ['--input-type=module', '--eval', script], {
    env: { PATH: process.env.PATH, LC_ALL: 'en_US' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (run.status !== 0 || !run.stdout.startsWith('pgdb <command>')) {
    throw new Error(`rendering pgdb --help failed (exit ${run.status}): ${run.stderr || run.stdout}`);
  }
  return run.stdout;
}

export async function bundleCli(options: BundleOptions): Promise<void> {
  // Chunks of an earlier build are never loaded again: remove them.
  const outdir = dirname(options.outfile);
  if (existsSync(outdir)) for (const file of readdirSync(outdir).filter((name) => CHUNK.test(name))) rmSync(join(outdir, file));
  await build(esbuildOptions({ ...options, help: options.help ?? renderHelp(options.root) }));
  copyYargsLocales(options);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await bundleCli(cliBundle(ROOT));
}
