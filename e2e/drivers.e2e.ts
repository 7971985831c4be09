/**
 * The URL pgdb returns, in five more drivers: postgres.js, psycopg 3, asyncpg,
 * Go pgx and pgjdbc (node-postgres and psql are in e2e/acme.e2e.ts). One real
 * daemon gets an ACME certificate for 127.0.0.1 from Pebble (Let's Encrypt's
 * test ACME server, on loopback), one database is deployed, and each driver in
 * turn connects in its own process with the URL as is, then with the form
 * that verifies the chain, trusting Pebble's root the way that driver would
 * trust Let's Encrypt's (the system store through SSL_CERT_FILE for OpenSSL
 * and Go, NODE_EXTRA_CA_CERTS for Node, a Java trust store, or a root file).
 * The controls show what each form really checks: the URL as is connects
 * while nothing trusts Pebble's root (it encrypts without verifying), and the
 * verifying form refuses a trust store without that root.
 *
 * Needs scripts/build-driver-probes.sh (PGDB_TEST_DRIVERS),
 * scripts/build-pebble.sh (PGDB_TEST_PEBBLE), Docker and the test images.
 * The table of drivers in docs/security.md ("Certificates every driver
 * trusts") is what this file checks.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';
import { Pebble, pebbleBinary } from './support/pebble.js';
import { run } from './support/run.js';
import { testPorts } from './support/ports.js';
import { eventually } from './support/eventually.js';

const ports = testPorts(import.meta.url);

const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');
const PYTHON_PROBE = join(ROOT, 'e2e/drivers/probe.py');
const JAVA_PROBE = join(ROOT, 'e2e/drivers/Probe.java');
const POSTGRES_JS_PROBE = join(ROOT, 'dist/e2e/drivers/postgres-js.js');
const BUILD = 'run scripts/build-driver-probes.sh and export PGDB_TEST_DRIVERS=<the directory it prints>';

interface Probes {
  python: string;
  pgx: string;
  jdbcJar: string;
}

/** The probes from scripts/build-driver-probes.sh; fails (does not skip) when they are missing. */
function requireProbes(): Probes {
  const dir = process.env.PGDB_TEST_DRIVERS;
  if (!dir) throw new Error(`PGDB_TEST_DRIVERS is not set: ${BUILD}`);
  const probes = { python: join(dir, 'venv/bin/python'), pgx: join(dir, 'pgx-probe'), jdbcJar: join(dir, 'postgresql.jar') };
  for (const file of Object.values(probes)) {
    if (!existsSync(file)) throw new Error(`driver probe ${file} is missing: ${BUILD}`);
  }
  for (const tool of ['java', 'keytool']) {
    try {
      execFileSync(tool, tool === 'java' ? ['-version'] : ['-help'], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not on PATH: the pgjdbc probe needs a JDK 11 or newer (${BUILD})`);
    }
  }
  if (!existsSync(POSTGRES_JS_PROBE)) throw new Error(`${POSTGRES_JS_PROBE} is missing: run npm run build`);
  return probes;
}

function requirePebble(): string {
  const binary = pebbleBinary();
  if (!binary) throw new Error('PGDB_TEST_PEBBLE is not set: run scripts/build-pebble.sh and export PGDB_TEST_PEBBLE=<the path it prints>');
  return binary;
}

interface Seen {
  code: number;
  stdout: string;
  stderr: string;
  /** The probe's JSON line when it connected. */
  result?: { driver: string; one: number; ssl: boolean };
}

/**
 * Runs a probe in its own process with only PATH, an empty HOME (no
 * ~/.postgresql/root.crt) and `env`; 3 minutes at most (a JVM compiling the
 * probe is slow on a loaded machine).
 */
function probe(file: string, args: string[], env: Record<string, string>, home: string): Promise<Seen> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { PATH: process.env.PATH, HOME: home, ...env }, timeout: 180_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      const last = stdout.trim().split('\n').pop() ?? '';
      resolve({ code, stdout, stderr, result: code === 0 && last.startsWith('{') ? JSON.parse(last) : undefined });
    });
  });
}

/** Asserts that the probe connected over TLS and ran SELECT 1. */
function connected(seen: Seen, what: string): void {
  assert.equal(seen.code, 0, `${what}: exit ${seen.code}\n${seen.stderr}`);
  assert.equal(seen.result?.one, 1, `${what}: ${seen.stdout}`);
  assert.equal(seen.result?.ssl, true, `${what}: the session is not encrypted`);
}

/** Asserts that the probe was refused with an error matching `reason`. */
function refused(seen: Seen, reason: RegExp, what: string): void {
  assert.notEqual(seen.code, 0, `${what}: connected, but should have been refused: ${seen.stdout}`);
  assert.match(seen.stderr, reason, what);
}

/** `postgresql://user:password@host:port/db?sslmode=require` as pgjdbc takes it, the form docs/security.md gives. */
function jdbcUrl(url: string, extra: Record<string, string> = {}): string {
  const parsed = new URL(url);
  const params = new URLSearchParams({ user: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) });
  for (const [key, value] of parsed.searchParams) params.set(key, value);
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return `jdbc:postgresql://${parsed.host}${parsed.pathname}?${params}`;
}

function withParams(url: string, params: Record<string, string>): string {
  const parsed = new URL(url);
  for (const [key, value] of Object.entries(params)) parsed.searchParams.set(key, value);
  return parsed.toString();
}

describe('the deployed URL in postgres.js, psycopg 3, asyncpg, Go pgx and pgjdbc, with an ACME certificate (Pebble)', () => {
  const work = mkdtempSync(join(tmpdir(), 'pgdb-drivers-e2e-'));
  const home = join(work, 'home');
  /** Pebble's issuing root: what a system store holds for Let's Encrypt. */
  const rootFile = join(work, 'pebble-root.pem');
  /** A trust store without that root (the CA of Pebble's own HTTPS listener), for the controls. */
  const otherFile = join(work, 'other-ca.pem');
  const trustStore = join(work, 'truststore.p12');
  let probes: Probes;
  let pebble: Pebble;
  let daemon: TestDaemon;
  /** The URL the deploy returned, as is. */
  let url: string;
  /** What `pgdb url --verify` prints. */
  let verifyUrl: string;

  before(async () => {
    requireDockerAndImages([17]);
    probes = requireProbes();
    const binary = requirePebble();
    mkdirSync(home);
    const httpPort = await freePort();
    pebble = await new Pebble(binary, { httpPort }).start();
    writeFileSync(rootFile, pebble.root);
    writeFileSync(otherFile, pebble.listenerCaCertificate);
    writeFileSync(join(work, 'daemon-trust.pem'), pebble.trustBundle);
    execFileSync('keytool', [
      '-importcert', '-noprompt', '-alias', 'pebble-root', '-file', rootFile,
      '-keystore', trustStore, '-storetype', 'PKCS12', '-storepass', 'changeit',
    ], { stdio: 'pipe' });
    daemon = new TestDaemon({
      portRange: ports.range(20),
      env: {
        PGDB_TLS: 'acme',
        PGDB_ACME_DIRECTORY: pebble.directory,
        PGDB_ACME_HTTP_PORT: String(httpPort),
        PGDB_ACME_EMAIL: 'ops@example.com',
        NODE_EXTRA_CA_CERTS: join(work, 'daemon-trust.pem'),
      },
    });
    await daemon.start();
    await eventually('an ACME certificate', 120_000, async () => {
      const health = await daemon.api('GET', '/v1/health', undefined, null);
      if (health.body?.tls?.source === 'acme') return health;
      throw new Error(`health says ${JSON.stringify(health.body?.tls)}\n${daemon.logs()}`);
    });
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'drivers', size_gb: 1 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    url = deployed.body.database_url;
    assert.match(url, /^postgres:\/\/[^?]+\?sslmode=require$/);
    const printed = await run(process.execPath, [CLI, 'url', 'drivers', '--verify'], {
      XDG_CONFIG_HOME: join(work, 'config'),
      PGDB_TOKEN: daemon.token,
      PGDB_SERVER_URL: daemon.url,
    });
    assert.equal(printed.code, 0, printed.stderr);
    verifyUrl = printed.stdout.trim();
    assert.match(verifyUrl, /\?sslmode=verify-full&sslrootcert=system$/);
  });
  after(async () => {
    await daemon?.destroyAll();
    await pebble?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('postgres.js: the URL as is encrypts without verifying; for an IP address only the option ssl: { host } verifies (sslmode=verify-full checks the wrong name)', async () => {
    const node = (target: string, env: Record<string, string>, ssl?: object) =>
      probe(process.execPath, [POSTGRES_JS_PROBE, target, ...(ssl ? [JSON.stringify(ssl)] : [])], env, home);
    connected(await node(url, {}), 'postgres.js, the URL as is, nothing trusts the root');
    // postgres.js sends no server name for an IP address, so Node checks the certificate against "localhost".
    const full = withParams(url, { sslmode: 'verify-full' });
    refused(
      await node(full, { NODE_EXTRA_CA_CERTS: rootFile }),
      /Hostname\/IP does not match certificate's altnames/,
      'postgres.js, sslmode=verify-full, the root trusted',
    );
    const host = new URL(url).hostname;
    connected(await node(url, { NODE_EXTRA_CA_CERTS: rootFile }, { host }), 'postgres.js, ssl: { host }, the root trusted');
    refused(
      await node(url, { NODE_EXTRA_CA_CERTS: otherFile }, { host }),
      /unable to (get local issuer certificate|verify the first certificate)/,
      'postgres.js, ssl: { host }, the root not trusted',
    );
  });

  it('psycopg 3: the URL as is encrypts without verifying; the --verify URL verifies against the system store (SSL_CERT_FILE)', async () => {
    const psycopg = (target: string, env: Record<string, string>) => probe(probes.python, [PYTHON_PROBE, 'psycopg', target], env, home);
    connected(await psycopg(url, {}), 'psycopg, the URL as is, nothing trusts the root');
    connected(await psycopg(verifyUrl, { SSL_CERT_FILE: rootFile }), 'psycopg, the --verify URL, the root in the system store');
    refused(await psycopg(verifyUrl, { SSL_CERT_FILE: otherFile }), /certificate verify failed/, 'psycopg, the --verify URL, the root not in the system store');
  });

  it('asyncpg: the URL as is encrypts without verifying; sslmode=verify-full with sslrootcert=<bundle file> verifies; sslrootcert=system is not understood', async () => {
    const asyncpg = (target: string, env: Record<string, string> = {}) => probe(probes.python, [PYTHON_PROBE, 'asyncpg', target], env, home);
    connected(await asyncpg(url), 'asyncpg, the URL as is, nothing trusts the root');
    connected(await asyncpg(withParams(url, { sslmode: 'verify-full', sslrootcert: rootFile })), 'asyncpg, sslrootcert=<file with the root>');
    refused(await asyncpg(withParams(url, { sslmode: 'verify-full', sslrootcert: otherFile })), /certificate verify failed/, 'asyncpg, sslrootcert=<file without the root>');
    // asyncpg reads `system` as a file name, even with the root in the system store.
    refused(await asyncpg(verifyUrl, { SSL_CERT_FILE: rootFile }), /No such file or directory/, 'asyncpg, the --verify URL');
  });

  it('Go pgx: the URL as is encrypts without verifying; the --verify URL verifies against the system store (SSL_CERT_FILE)', async () => {
    const pgx = (target: string, env: Record<string, string>) => probe(probes.pgx, [target], env, home);
    connected(await pgx(url, {}), 'pgx, the URL as is, nothing trusts the root');
    connected(await pgx(verifyUrl, { SSL_CERT_FILE: rootFile }), 'pgx, the --verify URL, the root in the system store');
    refused(await pgx(verifyUrl, { SSL_CERT_FILE: otherFile }), /certificate signed by unknown authority/, 'pgx, the --verify URL, the root not in the system store');
  });

  it('pgjdbc: the JDBC form of the URL encrypts without verifying; sslmode=verify-full with DefaultJavaSSLFactory verifies against the Java trust store', async () => {
    const java = (target: string, options: string[] = []) =>
      probe('java', [`-Duser.home=${home}`, ...options, '-cp', probes.jdbcJar, JAVA_PROBE, target], {}, home);
    const asIs = jdbcUrl(url);
    assert.match(asIs, /^jdbc:postgresql:\/\/127\.0\.0\.1:\d+\/[^?]+\?user=[^&]+&password=[^&]+&sslmode=require$/);
    connected(await java(asIs), 'pgjdbc, the URL as is, nothing trusts the root');
    const full = jdbcUrl(url, { sslmode: 'verify-full', sslfactory: 'org.postgresql.ssl.DefaultJavaSSLFactory' });
    const store = [`-Djavax.net.ssl.trustStore=${trustStore}`, '-Djavax.net.ssl.trustStorePassword=changeit', '-Djavax.net.ssl.trustStoreType=PKCS12'];
    connected(await java(full, store), 'pgjdbc, verify-full with DefaultJavaSSLFactory, the root in the trust store');
    // The JVM's own trust store (cacerts) holds the public roots, not Pebble's.
    refused(await java(full), /PKIX path building failed/, 'pgjdbc, verify-full with DefaultJavaSSLFactory, the JVM default trust store');
    // Without that factory, pgjdbc's verify-full reads ~/.postgresql/root.crt only, not the JVM's trust store.
    refused(
      await java(jdbcUrl(url, { sslmode: 'verify-full' }), store),
      /Could not open SSL root certificate file/,
      'pgjdbc, verify-full without sslfactory, the root in the JVM trust store',
    );
  });
});
