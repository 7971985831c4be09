/**
 * Builds what the `pgdb` executable (cli/bin/pgdb.cts) runs: cli/bin/entry.ts
 * and every module it imports, bundled and minified by esbuild into one
 * CommonJS file, dist/cli/bin/pgdb.bundle.cjs, with a source map back to the
 * TypeScript. At every start Node then reads one file instead of resolving
 * some seventy modules, and needs no ES module loader; and the executable
 * runs it with V8's code cache, which this build writes once by running it.
 *
 * What a command needs only when it runs (talking to a daemon: http, tls,
 * crypto, the config file; prompts; psql) is imported dynamically in cli/:
 * in the bundle its code is there, but evaluated only when that command runs
 * (esbuild turns such an import() into a call of the module's initialiser).
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
 *   from tsc's output) and built into the bundle, which prints it where
 *   yargs would print the same (cli/src/help-page.ts) without setting up yargs.
 * - yargs' translations are copied to where its bundled code looks for them.
 */
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
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
  return { root, entry: join(root, 'cli/bin/entry.ts'), outfile: join(root, 'dist/cli/bin/pgdb.bundle.cjs') };
}

/** The executable that runs the bundle: tsc's output of cli/bin/pgdb.cts. */
export function cliExecutable(root: string): string {
  return join(root, 'dist/cli/bin/pgdb.cjs');
}

/** What earlier builds wrote next to the bundle and no build writes any more: ES module chunks `pgdb.<name>.<hash>.js`, their maps, and the ES module bundle `pgdb.js`. */
const EARLIER_OUTPUT = /^pgdb(?:\.[\w-]+\.[A-Z0-9]{8})?\.js(?:\.map)?$/;

/** The bundle is CommonJS; yargs' ES modules ask for import.meta.url, which is then the bundle's own URL. */
const IMPORT_META_URL = '__pgdb_import_meta_url';

export function esbuildOptions({ root, entry, outfile, help }: BundleOptions): BuildOptions {
  return {
    // cli/bin/pgdb.ts prints it for a bare `pgdb --help`.
    define: { PGDB_HELP: help === undefined ? 'undefined' : JSON.stringify(help), 'import.meta.url': IMPORT_META_URL },
    banner: { js: `var ${IMPORT_META_URL} = require("node:url").pathToFileURL(__filename).href;` },
    entryPoints: [{ in: entry, out: basename(outfile, '.cjs') }],
    outdir: dirname(outfile),
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
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

/** A loopback URL where nothing listens: connections to it are refused at once. */
function refusingUrl(): Promise<string> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(`http://127.0.0.1:${port}`));
    });
    server.on('error', reject);
  });
}

/**
 * Runs `pgdb status --json` once against a server that refuses connections:
 * the executable writes the code cache at exit (none fits a new bundle), with
 * what a status call compiles: the parser, the command, the connection, the
 * HTTP request and the error report.
 */
export async function writeCodeCache(root: string): Promise<void> {
  const executable = cliExecutable(root);
  const url = await refusingUrl();
  const run = spawnSync(process.execPath, [executable, 'status', '--json'], {
    env: { PATH: process.env.PATH, PGDB_SERVER_URL: url, PGDB_TOKEN: 'build', XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-build-')), LC_ALL: 'en_US' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (run.status !== 1 || !run.stderr.includes(`cannot reach pgdbd at ${url}`)) {
    throw new Error(`the run that writes the code cache did not go as expected (exit ${run.status}): ${run.stderr || run.stdout}`);
  }
  if (!existsSync(`${join(root, 'dist/cli/bin/pgdb.bundle.cjs')}.v8cache`)) {
    throw new Error(`${relative(root, executable)} wrote no code cache`);
  }
}

export async function bundleCli(options: BundleOptions): Promise<void> {
  // What an earlier build wrote and nothing loads any more, and the code cache of the bundle this build replaces.
  const outdir = dirname(options.outfile);
  if (existsSync(outdir)) for (const file of readdirSync(outdir).filter((name) => EARLIER_OUTPUT.test(name))) rmSync(join(outdir, file));
  rmSync(`${options.outfile}.v8cache`, { force: true });
  await build(esbuildOptions({ ...options, help: options.help ?? renderHelp(options.root) }));
  copyYargsLocales(options);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await bundleCli(cliBundle(ROOT));
  await writeCodeCache(ROOT);
}
