/**
 * The built `pgdb` executable (pgdb.cjs, running pgdb.bundle.cjs): what it is
 * made of and loads at start, its code cache, and how it exits.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { closedPortUrl, fakeItem, FakeDaemon } from '../src/testing/fake-daemon.js';
import { TestCa } from '../src/testing/test-ca.js';
import { publicKeyFingerprint } from '../src/tls.js';

const BIN = fileURLToPath(new URL('./pgdb.cjs', import.meta.url));
const BUNDLE = fileURLToPath(new URL('./pgdb.bundle.cjs', import.meta.url));
const CODE_CACHE = `${BUNDLE}.v8cache`;
const ROOT = resolve(dirname(BIN), '../../..');
const CONTRACT = 'contract/api.ts';
/** `pgdb infra`'s flag checks: plain code, no Pulumi; the rest of infra/ is imported dynamically. */
const INFRA_OPTIONS = 'infra/options.ts';
/** The one package the CLI depends on; its own dependencies come with it. */
const CLI_PACKAGE = 'yargs';
/** require() calls, minified or not: `require("node:fs")`. */
const REQUIRE = /\brequire\(\s*["']([^"']+)["']\s*\)/g;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;
const PACKAGE = /^(?:.*\/)?node_modules\/((?:@[^/]+\/)?[^/]+)\//;

/** The files esbuild put into the bundle, relative to the checkout, as its source map lists them. */
function bundledSources(): string[] {
  const map = JSON.parse(readFileSync(`${BUNDLE}.map`, 'utf8')) as { sources: string[] };
  return map.sources.map((source) => {
    // cli/build/string-width.js stands in for a copy of string-width: "string-width-stand-in:node_modules/...".
    const standIn = /^[\w-]+:(node_modules\/.*)$/.exec(source);
    return standIn ? standIn[1] : relative(ROOT, resolve(dirname(BUNDLE), source));
  });
}

/** `name` and the packages it depends on, transitively, found the way Node finds them. */
function dependencyClosure(name: string): Set<string> {
  const found = new Set<string>();
  const visit = (pkg: string, from: string) => {
    for (let dir = from; ; dir = dirname(dir)) {
      const manifest = join(dir, 'node_modules', pkg, 'package.json');
      if (existsSync(manifest)) {
        const key = `${pkg}@${dirname(manifest)}`;
        if (found.has(key)) return;
        found.add(key);
        const { dependencies = {} } = JSON.parse(readFileSync(manifest, 'utf8')) as { dependencies?: Record<string, string> };
        for (const dependency of Object.keys(dependencies)) visit(dependency, dirname(manifest));
        return;
      }
      if (dir === dirname(dir)) throw new Error(`${pkg} is not installed (needed from ${from})`);
    }
  };
  visit(name, ROOT);
  return new Set([...found].map((key) => key.slice(0, key.indexOf('@', 1))));
}

async function node(args: string[], env: Record<string, string | undefined> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, args, {
      env: { PATH: process.env.PATH, XDG_CONFIG_HOME: '/nonexistent', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function pgdb(args: string[], env: Record<string, string | undefined> = {}) {
  return node([BIN, ...args], env);
}

/** Runs pgdb and lists every module it loaded besides Node's own (see testing/loaded-modules.ts). */
async function loadedModules(args: string[], env: Record<string, string | undefined> = {}) {
  const out = join(mkdtempSync(join(tmpdir(), 'pgdb-loaded-')), 'modules');
  writeFileSync(out, '');
  const probe = new URL('../src/testing/loaded-modules.js', import.meta.url);
  probe.searchParams.set('out', out);
  const run = await node(['--import', probe.href, BIN, ...args], env);
  assert.equal(run.code, 0, run.stderr);
  return [...new Set(readFileSync(out, 'utf8').split('\n').filter(Boolean))];
}

/** Which of `names` (Node's own modules) a run of pgdb loaded, read from process.moduleLoadList at exit. */
async function builtinsLoaded(args: string[], names: string[], env: Record<string, string | undefined> = {}): Promise<string[]> {
  const out = join(mkdtempSync(join(tmpdir(), 'pgdb-builtins-')), 'list');
  // A CommonJS probe: --import would start the ES module loader, which itself loads fs/promises.
  const probe = join(dirname(out), 'probe.cjs');
  writeFileSync(probe, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, process.moduleLoadList.join('\\n')));`);
  const run = await node(['--require', probe, BIN, ...args], env);
  assert.equal(run.code, 0, run.stderr);
  const loaded = new Set(readFileSync(out, 'utf8').split('\n'));
  return names.filter((name) => loaded.has(`NativeModule ${name}`));
}

/** Runs pgdb and tells whether it made process.stderr's stream (a probe wraps Node's getter for it). */
async function madeStderr(args: string[], env: Record<string, string | undefined> = {}) {
  const out = join(mkdtempSync(join(tmpdir(), 'pgdb-stderr-')), 'made');
  const probe = join(dirname(out), 'probe.cjs');
  writeFileSync(
    probe,
    `const node = Object.getOwnPropertyDescriptor(process, 'stderr');
let made = false;
Object.defineProperty(process, 'stderr', { configurable: true, enumerable: true, get() { made = true; return node.get.call(process); } });
process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, String(made)));`,
  );
  const run = await node(['--require', probe, BIN, ...args], env);
  return { ...run, madeStderr: readFileSync(out, 'utf8') === 'true' };
}

/** yargs loads node:module as it is set up, and nothing else in pgdb does: whether a run set up the parser. */
const PARSER_SIGN = 'module';

describe('pgdb executable', () => {
  it('is one bundle holding its own code, the contract, the infra flag checks and yargs (no daemon, Nest or Pulumi code)', () => {
    const sources = bundledSources();
    const packages = new Set(sources.flatMap((source) => PACKAGE.exec(source)?.[1] ?? []));
    const allowed = dependencyClosure(CLI_PACKAGE);
    assert.deepEqual([...packages].filter((name) => !allowed.has(name)), []);
    assert.ok(packages.has(CLI_PACKAGE));
    const own = sources.filter((source) => !PACKAGE.test(source));
    assert.deepEqual(own.filter((file) => !file.startsWith('cli/') && file !== CONTRACT && file !== INFRA_OPTIONS), []);
    assert.ok(own.includes(INFRA_OPTIONS));
    assert.ok(own.includes(CONTRACT) && own.includes('cli/src/main.ts') && own.includes('cli/bin/entry.ts'));

    // It requires nothing but Node's modules; it imports, dynamically, only infra/ (and Pulumi through it) for `pgdb infra`.
    const code = readFileSync(BUNDLE, 'utf8');
    const required = [...code.matchAll(REQUIRE)].map(([, specifier]) => specifier);
    assert.ok(required.includes('node:http'), "the scan sees the bundle's require() calls");
    assert.deepEqual(required.filter((specifier) => !isBuiltin(specifier)), []);
    const dynamic = [...code.matchAll(DYNAMIC_IMPORT)].map(([, specifier]) => specifier);
    assert.deepEqual([...new Set(dynamic.filter((specifier) => !isBuiltin(specifier)))], ['../../infra/commands.js']);
  });

  it('loads no module but its own executable for --help, --version, status and status --json', async () => {
    const own = pathToFileURL(BIN).href;
    const foreign = (loaded: string[]) => loaded.filter((url) => url !== own);
    const version = await loadedModules(['--version']);
    assert.deepEqual(version, [own]);
    assert.deepEqual(foreign(await loadedModules(['--help'])), []);
    assert.deepEqual(foreign(await loadedModules(['--verbose', '--help'])), []);
    assert.deepEqual(foreign(await loadedModules(['deploy', '--help'])), []);
    assert.deepEqual(foreign(await loadedModules(['infra', '--help'])), []);
    assert.deepEqual(foreign(await loadedModules(['infra', 'init', '--help'])), []);
    const daemon = await new FakeDaemon('token').start();
    try {
      daemon.items.push(fakeItem('db-0', 0));
      const env = { PGDB_SERVER_URL: daemon.url, PGDB_TOKEN: 'token' };
      assert.deepEqual(foreign(await loadedModules(['status'], env)), []);
      assert.deepEqual(foreign(await loadedModules(['status', '--json'], env)), []);
    } finally {
      await daemon.stop();
    }
  });

  it('sets up no parser for a bare --version', async () => {
    assert.deepEqual(await builtinsLoaded(['--version'], [PARSER_SIGN]), []);
    assert.deepEqual(await builtinsLoaded(['version'], [PARSER_SIGN]), [PARSER_SIGN], 'the control: `pgdb version` goes through yargs');
  });

  it('loads none of http, https, tls, crypto, child_process, readline, assert, fs/promises or perf_hooks for --help and --version; status what it needs', async () => {
    const heavy = ['http', 'https', 'tls', 'crypto', 'child_process', 'readline', 'readline/promises', 'assert', 'fs/promises', 'perf_hooks'];
    assert.deepEqual(await builtinsLoaded(['--help'], heavy), []);
    assert.deepEqual(await builtinsLoaded(['--verbose', '--help'], heavy), []);
    assert.deepEqual(await builtinsLoaded(['--version'], heavy), []);
    assert.deepEqual(await builtinsLoaded(['deploy', '--help'], heavy), []);
    assert.deepEqual(await builtinsLoaded(['version', '--json'], heavy), []);
    const daemon = await new FakeDaemon('token').start();
    try {
      // Plain HTTP to loopback: http only; the positive control, the probe sees what a command needs.
      assert.deepEqual(await builtinsLoaded(['status', '--json'], heavy, { PGDB_SERVER_URL: daemon.url, PGDB_TOKEN: 'token' }), ['http']);
    } finally {
      await daemon.stop();
    }
    const ca = new TestCa('pgdb test public CA');
    const secure = await new FakeDaemon('token', { ca, api: ca.issue(), source: 'operator' }).start();
    try {
      const env = { PGDB_SERVER_URL: secure.url, PGDB_TOKEN: 'token', NODE_EXTRA_CA_CERTS: ca.certPath, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-builtins-')) };
      // The first contact pins the API's key (a write); every later run only reads the pin.
      assert.deepEqual(await builtinsLoaded(['status', '--json'], heavy, env), ['http', 'https', 'tls', 'crypto', 'fs/promises']);
      assert.deepEqual(await builtinsLoaded(['status', '--json'], heavy, env), ['http', 'https', 'tls', 'crypto']);
    } finally {
      await secure.stop();
    }
  });

  it('makes no stderr stream for a command that writes nothing there, and reports a failure there', async () => {
    const daemon = await new FakeDaemon('token').start();
    try {
      daemon.items.push(fakeItem('db-0', 0));
      const ok = await madeStderr(['status', '--json'], { PGDB_SERVER_URL: daemon.url, PGDB_TOKEN: 'token' });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(JSON.parse(ok.stdout).items[0].name, 'db-0');
      assert.equal(ok.madeStderr, false);
    } finally {
      await daemon.stop();
    }
    // The control: a failure is reported on stderr, through the same probe.
    const failed = await madeStderr(['status', '--json'], { PGDB_SERVER_URL: 'http://127.0.0.1:1', PGDB_TOKEN: 'token' });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^error: cannot reach pgdbd at http:\/\/127\.0\.0\.1:1/);
    assert.equal(failed.madeStderr, true);
  });

  it('prints the prerendered `pgdb --help` without loading the parser, exactly as yargs prints it', async () => {
    const throughYargs = (env: Record<string, string | undefined>) => pgdb(['--verbose', '--help'], env);
    for (const env of [{}, { LANG: 'en_US.UTF-8' }, { LC_ALL: 'C' }, { LANG: 'POSIX' }, { LC_MESSAGES: 'en_GB.UTF-8', LANG: 'de_DE.UTF-8' }]) {
      const expected = await throughYargs(env);
      assert.equal(expected.code, 0, expected.stderr);
      assert.match(expected.stdout, /^Commands:$/m);
      for (const flag of ['--help', '-h']) {
        const run = await pgdb([flag], env);
        assert.deepEqual(run, expected, `pgdb ${flag} with ${JSON.stringify(env)}`);
      }
    }
    const parser = async (args: string[], env: Record<string, string | undefined> = {}) => (await builtinsLoaded(args, [PARSER_SIGN], env)).length > 0;
    assert.equal(await parser(['--help']), false, 'pgdb --help sets up no parser');
    assert.equal(await parser(['--verbose', '--help']), true, 'the control: with another flag, yargs prints it');

    // A language yargs has a translation for: yargs prints it.
    const german = { LANG: 'de_DE.UTF-8' };
    assert.equal(await parser(['--help'], german), true);
    const translated = await pgdb(['--help'], german);
    assert.deepEqual(translated, await throughYargs(german));
    assert.match(translated.stdout, /^Kommandos:$/m);
  });

  it('is a node script', () => {
    assert.ok(readFileSync(BIN, 'utf8').startsWith('#!/usr/bin/env node\n'));
  });

  it('imports infra/ through the executable: node:vm gives the bundle no import() of its own', async () => {
    // infra/commands.js loads (Pulumi's automation API and all), then pgdb looks for the Pulumi CLI it was given.
    const run = await pgdb(['infra', 'status'], { PGDB_PULUMI: '/nonexistent/pulumi', XDG_CACHE_HOME: mkdtempSync(join(tmpdir(), 'pgdb-cache-')) });
    assert.equal(run.code, 1);
    assert.doesNotMatch(run.stderr, /dynamic import|bug in pgdb/i);
    assert.match(run.stderr, /\/nonexistent\/pulumi/);
  });

  describe('code cache', () => {
    /** A copy of the executable and the bundle in a folder of its own, with or without the build's code cache. */
    const copy = (withCache: boolean, parent = tmpdir()) => {
      const dir = mkdtempSync(join(parent, 'pgdb-code-cache-'));
      copyFileSync(BIN, join(dir, 'pgdb.cjs'));
      copyFileSync(BUNDLE, join(dir, 'pgdb.bundle.cjs'));
      if (withCache) copyFileSync(CODE_CACHE, join(dir, 'pgdb.bundle.cjs.v8cache'));
      chmodSync(dir, 0o755);
      return { dir, bin: join(dir, 'pgdb.cjs'), cache: join(dir, 'pgdb.bundle.cjs.v8cache'), bundle: join(dir, 'pgdb.bundle.cjs') };
    };

    it('is written by the build, names the bundle and the Node that made it, and is kept while it fits', async () => {
      const header = readFileSync(CODE_CACHE).subarray(0, 100).toString('latin1').split('\n')[0];
      const { size, mtimeMs } = statSync(BUNDLE);
      assert.equal(header, `pgdb-code-cache 1 ${process.version} ${process.arch} ${size} ${mtimeMs}`);
      const { bin, cache } = copy(true);
      const { mtimeMs: copied } = statSync(cache);
      // The copy's bundle has another modification time: the build's cache does not fit it, and the first run replaces it.
      assert.equal((await node([bin, '--version'])).code, 0);
      const written = statSync(cache).mtimeMs;
      assert.notEqual(written, copied);
      assert.equal((await node([bin, 'deploy', '--help'])).code, 0);
      assert.equal(statSync(cache).mtimeMs, written, 'a cache that fits is not written again');
    });

    it('is written where there is none, replaced when the bundle changes, and pgdb runs the same without one', async () => {
      const { bin, cache, bundle } = copy(false);
      const first = await node([bin, 'deploy', '--bogus']);
      assert.equal(first.code, 2);
      assert.ok(existsSync(cache), 'written at exit');
      const stamp = () => readFileSync(cache).subarray(0, 100).toString('latin1').split('\n')[0];
      const before = stamp();
      const later = new Date(Date.now() + 60_000);
      utimesSync(bundle, later, later);
      assert.deepEqual(await node([bin, 'deploy', '--bogus']), first);
      assert.notEqual(stamp(), before, 'a changed bundle gets a new cache');
      // A cache that is garbage (or from another V8) is not used, and is replaced.
      writeFileSync(cache, `${stamp()}\nnot V8 data`);
      assert.deepEqual(await node([bin, 'deploy', '--bogus']), first);
      assert.ok(readFileSync(cache).length > 1000, 'replaced by a real cache');
    });

    it('is not used, nor the bundle, when tsc wrote the entry after the bundle was built', async () => {
      const { dir, bin, cache, bundle } = copy(true);
      // Stands in for tsc's output of cli/bin/entry.ts.
      writeFileSync(join(dir, 'entry.js'), "exports.run = async () => process.stdout.write('unbundled\\n');\n");
      const older = new Date(Date.now() - 60_000);
      utimesSync(join(dir, 'entry.js'), older, older);
      // (Its version is "unknown" here: the bundle reads it from the checkout's package.json, three folders up.)
      assert.match((await node([bin, '--version'])).stdout, /^pgdb \S+\n$/, 'the bundle, newer than the entry');
      const newer = new Date(statSync(bundle).mtimeMs + 1000);
      utimesSync(join(dir, 'entry.js'), newer, newer);
      const written = statSync(cache).mtimeMs;
      assert.equal((await node([bin, '--version'])).stdout, 'unbundled\n');
      assert.equal(statSync(cache).mtimeMs, written, 'no cache written for a bundle not run');
    });

    it('is not written where the folder is read-only, and pgdb runs the same', async () => {
      // root writes anywhere: run it as nobody, in a folder nobody can reach (the test run's TMPDIR is root's alone).
      const asNobody = process.getuid?.() === 0;
      const parent = asNobody ? mkdtempSync('/tmp/pgdb-read-only-') : tmpdir();
      try {
        if (asNobody) chmodSync(parent, 0o755);
        const readOnly = copy(false, parent);
        chmodSync(readOnly.dir, 0o555);
        const asUser = asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath];
        const run = (bin: string) =>
          promisify(execFile)(asUser[0], [...asUser.slice(1), bin, 'deploy', '--help'], { env: { PATH: process.env.PATH, XDG_CONFIG_HOME: '/nonexistent' } });
        const expected = await run(copy(true, parent).bin);
        assert.deepEqual(await run(readOnly.bin), expected);
        assert.equal(existsSync(readOnly.cache), false);
        assert.deepEqual(readdirSync(readOnly.dir).sort(), ['pgdb.bundle.cjs', 'pgdb.cjs']);
      } finally {
        if (asNobody) rmSync(parent, { recursive: true, force: true });
      }
    });
  });

  it('exits 0 for --help, 2 for a usage error, 1 when the daemon is down', async () => {
    const help = await pgdb(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /pgdb deploy/);
    assert.equal((await pgdb(['deploy', '--nope'])).code, 2);
    const url = await closedPortUrl();
    const down = await pgdb(['status'], { PGDB_SERVER_URL: url, PGDB_TOKEN: 't' });
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`^error: cannot reach pgdbd at ${url}: connection refused$`, 'm'));
  });

  it('prints the whole JSON document when stdout is a pipe', async () => {
    const daemon = await new FakeDaemon('token').start();
    try {
      for (let index = 0; index < 300; index += 1) {
        daemon.items.push(fakeItem(`db-${index}`, index));
      }
      const run = await pgdb(['status', '--json'], { PGDB_SERVER_URL: daemon.url, PGDB_TOKEN: 'token' });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(JSON.parse(run.stdout).items.length, 300);
    } finally {
      await daemon.stop();
    }
  });

  it("an ACME certificate where the own CA is pinned: accepted for the API's key only, never on the system's roots alone", async () => {
    // NODE_EXTRA_CA_CERTS adds the test CA to the roots node trusts: a stand-in for Let's Encrypt.
    const ownCa = new TestCa('pgdb test own CA');
    const publicCa = new TestCa('pgdb test public CA');
    const api = ownCa.issue();
    const daemon = await new FakeDaemon('token', { ca: ownCa, api }).start();
    const configHome = mkdtempSync(join(tmpdir(), 'pgdb-acme-'));
    const env = { PGDB_SERVER_URL: daemon.url, PGDB_TOKEN: 'token', XDG_CONFIG_HOME: configHome, NODE_EXTRA_CA_CERTS: publicCa.certPath };
    const keyOf = (cert: string) => publicKeyFingerprint(new X509Certificate(cert));
    const pins = () => JSON.parse(readFileSync(join(configHome, 'pgdb/config.json'), 'utf8')).pins[daemon.url];
    const tokens = () => daemon.requests.filter((r) => r.authorization !== undefined).length;
    try {
      const first = await pgdb(['status', '--json', '--trust-fingerprint', ownCa.fingerprint], env);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(pins().api_key, keyOf(api.cert));

      // The API's key behind a certificate of the public CA (pgdbd's ACME source): accepted, quietly.
      daemon.replaceTls({ ca: ownCa, api: publicCa.issue(undefined, { key: api.key }), endorsement: api.cert, source: 'acme' });
      const acme = await pgdb(['status', '--json'], env);
      assert.deepEqual([acme.code, acme.stderr], [0, '']);
      // The same, where the system's roots do not vouch for that certificate: the pinned CA holds.
      const sent = tokens();
      const unvouched = await pgdb(['status', '--json'], { ...env, NODE_EXTRA_CA_CERTS: undefined });
      assert.equal(unvouched.code, 1);
      assert.match(unvouched.stderr, /REFUSED: the certificate of .* is not issued by the CA pinned for it/);
      // Another key behind a certificate the system's roots verify (the databases' ACME certificate): refused.
      daemon.replaceTls({ ca: ownCa, api: publicCa.issue(), endorsement: api.cert, source: 'acme' });
      const database = await pgdb(['status', '--json'], env);
      assert.equal(database.code, 1);
      assert.match(database.stderr, /^error: REFUSED: .* presents another key than the API key pinned for it .*, and the pinned CA does not vouch for the new one/m);
      assert.equal(tokens(), sent, 'no token went to either');

      // A pin from before API keys were pinned (the CA only): the own CA's word for the key behind the ACME certificate.
      const config = JSON.parse(readFileSync(join(configHome, 'pgdb/config.json'), 'utf8'));
      delete config.pins[daemon.url].api_key;
      writeFileSync(join(configHome, 'pgdb/config.json'), JSON.stringify(config));
      daemon.replaceTls({ ca: ownCa, api: publicCa.issue(undefined, { key: api.key }), endorsement: api.cert, source: 'acme' });
      const legacy = await pgdb(['status', '--json'], env);
      assert.equal(legacy.code, 0, legacy.stderr);
      assert.match(legacy.stderr, new RegExp(`^pinned the API key ${keyOf(api.cert)} of .*the pinned CA vouches for it`, 'm'));
    } finally {
      await daemon.stop();
    }
  });

  it("trusts an operator's certificate through the system's roots at first contact and pins its key; databases verify with the own CA", async () => {
    // NODE_EXTRA_CA_CERTS adds the test CA to the roots node trusts: a stand-in for a public CA.
    const publicCa = new TestCa('pgdb test public CA');
    const original = publicCa.issue();
    const daemon = await new FakeDaemon('token', { ca: publicCa, api: original, source: 'operator' }).start();
    const configHome = mkdtempSync(join(tmpdir(), 'pgdb-operator-'));
    const env = { PGDB_SERVER_URL: daemon.url, PGDB_TOKEN: 'token', XDG_CONFIG_HOME: configHome, NODE_EXTRA_CA_CERTS: publicCa.certPath };
    try {
      const status = await pgdb(['status', '--json'], env);
      assert.equal(status.code, 0, status.stderr);
      const key = publicKeyFingerprint(new X509Certificate(original.cert));
      assert.equal(status.stderr, `pinned the API key ${key} of ${daemon.url} (verified by the system's roots on this first contact: compare it with api_key_fingerprint on the server) in pins["${daemon.url}"]\n`);
      assert.deepEqual(JSON.parse(readFileSync(join(configHome, 'pgdb/config.json'), 'utf8')).pins, { [daemon.url]: { api_key: key } }, 'the key, and no CA');
      const again = await pgdb(['status', '--json'], env);
      assert.deepEqual([again.code, again.stderr], [0, '']);

      // Another key for the same name, which the system's roots verify as well: refused, nothing sent.
      daemon.replaceTls({ ca: publicCa, api: publicCa.issue(), source: 'operator' });
      const requests = daemon.requests.length;
      const replaced = await pgdb(['status', '--json'], env);
      assert.equal(replaced.code, 1);
      assert.match(replaced.stderr, /^error: REFUSED: https:\/\/127\.0\.0\.1:\d+ presents another key than the API key pinned for it in pins\["https:\/\/127\.0\.0\.1:\d+"\] \(sha256:[0-9a-f]{64}\)\. /m);
      assert.match(replaced.stderr, /^hint: .*api_key_fingerprint in install\.sh's output.*PGDB_TLS_KEY_FILE.*removing pins\["https:/m);
      assert.deepEqual(daemon.requests.slice(requests).filter((r) => r.authorization !== undefined), [], 'no token sent');
      daemon.replaceTls({ ca: publicCa, api: original, source: 'operator' });

      // The databases carry the own CA's certificates (the operator's key stays with the API): that CA is saved.
      const ca = await pgdb(['ca', '--json'], env);
      assert.equal(ca.code, 0, ca.stderr);
      const saved = JSON.parse(ca.stdout);
      assert.deepEqual([saved.source, saved.fingerprint], ['operator', publicCa.fingerprint]);
      const deployed = await pgdb(['deploy', '--verify', '--json'], env);
      assert.equal(deployed.code, 0, deployed.stderr);
      const url = new URL(JSON.parse(deployed.stdout).DATABASE_URL);
      assert.deepEqual([url.searchParams.get('sslmode'), url.searchParams.get('sslrootcert')], ['verify-full', saved.path]);

      // The key set by hand, as install.sh prints it: no trust on first use, nothing learnt.
      const byHand = { ...env, PGDB_SERVER_URL: undefined, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-operator-')) };
      assert.equal((await pgdb(['config', 'set', 'server.op', daemon.url], byHand)).code, 0);
      const wrongKey = `sha256:${'0'.repeat(64)}`;
      assert.equal((await pgdb(['config', 'set', 'server.op.api_key', wrongKey], byHand)).code, 0);
      const before = daemon.requests.length;
      const wrong = await pgdb(['status', '--server', 'op', '--json'], byHand);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /REFUSED: .* presents another key than the API key pinned for it/);
      assert.deepEqual(daemon.requests.slice(before).filter((r) => r.authorization !== undefined), [], 'no token sent to a key other than the one set');
      // What `sha256sum` prints is taken as well.
      const set = await pgdb(['config', 'set', 'server.op.api_key', `${key.slice('sha256:'.length)}  -`], byHand);
      assert.equal(set.code, 0, set.stderr);
      assert.equal((await pgdb(['config', 'get', 'server.op.api_key'], byHand)).stdout, `${key}\n`);
      const right = await pgdb(['status', '--server', 'op', '--json'], byHand);
      assert.deepEqual([right.code, right.stderr], [0, ''], 'connected, and nothing pinned on first use');

      // Without that root, to a CLI that has pinned nothing, the same server is unknown, and a script is refused.
      const unknown = await pgdb(['status'], { ...env, NODE_EXTRA_CA_CERTS: undefined, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'pgdb-operator-')) });
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /presents a certificate authority pgdb does not trust yet/);
    } finally {
      await daemon.stop();
    }
  });
});
