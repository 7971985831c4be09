#!/usr/bin/env node
/**
 * The `pgdb` executable. It runs the bundle that `npm run build` made
 * (pgdb.bundle.cjs next to this file, see cli/build/bundle.ts) with V8's code
 * cache, and tsc's output of ./entry.ts where there is no bundle, or where
 * tsc wrote that after the bundle (`npm run compile` after a build), which
 * works the same, only slower to start.
 *
 * This file is CommonJS, and so is the bundle: Node starts an ES module's
 * loader only for ES modules, and that alone costs about a quarter of
 * `node -e 0`.
 *
 * The code cache (pgdb.bundle.cjs.v8cache) holds V8's compiled code of the
 * bundle, so that a start deserialises the functions it runs instead of
 * parsing and compiling them. It is written at exit of a run that found none,
 * or none that fits: each cache names the bundle it was made from (its size
 * and modification time) and the Node version and architecture that made it,
 * and V8 refuses one from another V8 or with other flags. Where this
 * directory is not writable, pgdb runs without it. The build writes it once.
 */
import { accessSync, closeSync, constants, fstatSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

const BUNDLE = join(__dirname, 'pgdb.bundle.cjs');
/** tsc's output of ./entry.ts. */
const ENTRY = join(__dirname, 'entry.js');
const CODE_CACHE = `${BUNDLE}.v8cache`;

interface Bundle {
  source: string;
  /** What a code cache made from this bundle by this Node starts with. */
  stamp: string;
}

interface EntryModule {
  run(): Promise<void>;
}

function readBundle(): Bundle | undefined {
  let fd: number;
  try {
    fd = openSync(BUNDLE, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const { size, mtimeMs } = fstatSync(fd);
    // The build writes the bundle after tsc; a newer entry.js is a compile since, which the bundle does not hold.
    if ((statSync(ENTRY, { throwIfNoEntry: false })?.mtimeMs ?? 0) > mtimeMs) return undefined;
    return { source: readFileSync(fd, 'utf8'), stamp: `pgdb-code-cache 1 ${process.version} ${process.arch} ${size} ${mtimeMs}\n` };
  } finally {
    closeSync(fd);
  }
}

/** The cache's V8 data when it was made from this bundle by this Node; none otherwise. */
function readCodeCache(stamp: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(CODE_CACHE);
  } catch {
    return undefined;
  }
  const header = Buffer.from(stamp, 'latin1');
  return data.subarray(0, header.length).equals(header) ? data.subarray(header.length) : undefined;
}

/** At exit, when this process has compiled all it ran: replaced whole (rename), so a reader never sees half of it. */
function writeCodeCacheAtExit(script: Script, stamp: string): void {
  try {
    accessSync(dirname(CODE_CACHE), constants.W_OK);
  } catch {
    return;
  }
  process.once('exit', () => {
    const partial = `${CODE_CACHE}.${process.pid}.tmp`;
    try {
      writeFileSync(partial, Buffer.concat([Buffer.from(stamp, 'latin1'), script.createCachedData()]));
      renameSync(partial, CODE_CACHE);
    } catch {
      rmSync(partial, { force: true });
    }
  });
}

/**
 * Node's CommonJS wrapper with one more parameter: this module's import(). On
 * Node 20, code that node:vm compiled can import() only with an experimental
 * flag or a warning, and not at all from a code cache; the bundle imports
 * infra/ (`pgdb infra`) through this one (see cli/src/infra.ts).
 */
const WRAPPER = ['(function (exports, require, module, __filename, __dirname, __pgdb_import) { ', '\n})'];

function runBundle({ source, stamp }: Bundle): Promise<void> {
  const cachedData = readCodeCache(stamp);
  const script = new Script(WRAPPER[0] + source + WRAPPER[1], { filename: BUNDLE, cachedData });
  if (cachedData === undefined || script.cachedDataRejected) writeCodeCacheAtExit(script, stamp);
  const module = { exports: {} as EntryModule };
  const importModule = (specifier: string): Promise<unknown> => import(specifier);
  // This module's require(): the bundle's own directory, so it finds what the bundle would.
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, require, module, BUNDLE, __dirname, importModule);
  return module.exports.run();
}

const bundle = readBundle();
const started = bundle ? runBundle(bundle) : import('./entry.js').then((entry: EntryModule) => entry.run());
started.catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
