/**
 * The built `pgdb` executable: what it loads at start, and how it exits.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { closedPortUrl, fakeItem, FakeDaemon } from '../src/testing/fake-daemon.js';
import { TestCa } from '../src/testing/test-ca.js';

const BIN = fileURLToPath(new URL('./pgdb.js', import.meta.url));
const DIST = resolve(dirname(BIN), '../..');
const CONTRACT = 'daemon/src/contract/api.js';
const ALLOWED_PACKAGES = ['yargs', 'yargs/helpers'];
const STATIC_IMPORT = /^\s*(?:import|export)\s(?:[^'"]*?\sfrom\s)?['"]([^'"]+)['"]/gm;

/** Every module loaded before any code runs: static imports, followed transitively. */
function staticImports(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
      else if (!specifier.startsWith('node:')) packages.add(specifier);
    }
  };
  visit(entry);
  return { files: [...files].map((file) => relative(DIST, file)).sort(), packages: [...packages].sort() };
}


async function pgdb(args: string[], env: Record<string, string | undefined> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, XDG_CONFIG_HOME: '/nonexistent', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('pgdb executable', () => {
  it('loads only its own code, the contract and yargs at start (no daemon, Nest or Pulumi code)', () => {
    const { files, packages } = staticImports(BIN);
    assert.deepEqual(packages.filter((name) => !ALLOWED_PACKAGES.includes(name)), []);
    const foreign = files.filter((file) => !file.startsWith('cli/') && file !== CONTRACT);
    assert.deepEqual(foreign, []);
    assert.ok(files.includes(CONTRACT));
  });

  it('is a node script', () => {
    assert.ok(readFileSync(BIN, 'utf8').startsWith('#!/usr/bin/env node\n'));
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

  it("trusts an operator's certificate through the system's roots: no pin, sslrootcert=system", async () => {
    // NODE_EXTRA_CA_CERTS adds the test CA to the roots node trusts: a stand-in for a public CA.
    const publicCa = new TestCa('pgdb test public CA');
    const daemon = await new FakeDaemon('token', { ca: publicCa, api: publicCa.issue(), source: 'operator' }).start();
    const configHome = mkdtempSync(join(tmpdir(), 'pgdb-operator-'));
    const env = { PGDB_SERVER_URL: daemon.url, PGDB_TOKEN: 'token', XDG_CONFIG_HOME: configHome, NODE_EXTRA_CA_CERTS: publicCa.certPath };
    try {
      const status = await pgdb(['status', '--json'], env);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(status.stderr, '');
      assert.equal(existsSync(join(configHome, 'pgdb/config.json')), false, 'nothing pinned');

      const ca = await pgdb(['ca'], env);
      assert.deepEqual([ca.code, ca.stdout], [0, 'sslrootcert: system\n'], ca.stderr);
      const deployed = await pgdb(['deploy', '--verify', '--json'], env);
      assert.equal(deployed.code, 0, deployed.stderr);
      const url = new URL(JSON.parse(deployed.stdout).DATABASE_URL);
      assert.deepEqual([url.searchParams.get('sslmode'), url.searchParams.get('sslrootcert')], ['verify-full', 'system']);

      // Without that root the same server is unknown, and a script is refused.
      const unknown = await pgdb(['status'], { ...env, NODE_EXTRA_CA_CERTS: undefined });
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /presents a certificate authority pgdb does not trust yet/);
    } finally {
      await daemon.stop();
    }
  });
});
