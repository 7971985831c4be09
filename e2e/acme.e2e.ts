/**
 * ACME certificates end to end: the real daemon gets a certificate for
 * 127.0.0.1 from a real ACME server (Pebble, on loopback) over http-01, and
 * serves it on the API and on every database. Clients trust Pebble's root
 * the way they trust Let's Encrypt's (NODE_EXTRA_CA_CERTS, sslrootcert,
 * SSL_CERT_FILE), so the URL pgdb returns verifies as is.
 *
 * Needs scripts/build-pebble.sh (PGDB_TEST_PEBBLE), Docker and the test images.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { eventually } from './support/eventually.js';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { freePort, requireDockerAndImages, ROOT, TEST_IMAGE_REPO, TestDaemon } from './support/daemon.js';
import { Pebble, pebbleBinary } from './support/pebble.js';
import { run, type Env } from './support/run.js';
import { publicKeyFingerprintOf as publicKeyFingerprint } from '../daemon/src/tls/certificates.js';
import { Impostor } from './support/impostor.js';
import { TcpRelay } from './support/tcp-relay.js';
import { WebhookReceiver } from './support/webhook-receiver.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const CLI = join(ROOT, 'dist/cli/bin/pgdb.cjs');
const PG_MODULE = pathToFileURL(join(ROOT, 'node_modules/pg/lib/index.js')).href;
const binary = pebbleBinary();
const skip = binary ? false : 'PGDB_TEST_PEBBLE is not set (scripts/build-pebble.sh builds Pebble)';

/** Waits for a line in the daemon's log: it comes through a pipe, possibly after the HTTP answer that followed it. */
function logShows(daemon: TestDaemon, pattern: RegExp): Promise<true> {
  return eventually(`${pattern} in the daemon's log`, 10_000, async () => (pattern.test(daemon.logs()) ? true : undefined));
}

async function health(daemon: TestDaemon): Promise<any> {
  const response = await daemon.api('GET', '/v1/health');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

/** Waits until the daemon serves an ACME certificate other than `previousNotAfter`; returns its health. */
function acmeServed(daemon: TestDaemon, timeoutMs: number, previousNotAfter?: string): Promise<any> {
  return eventually('the daemon to serve an ACME certificate', timeoutMs, async () => {
    const body = await health(daemon);
    return body.tls.source === 'acme' && body.tls.acme.not_after !== previousNotAfter ? body : undefined;
  });
}

/**
 * Whether a database's certificate expires with the ACME pair health reports
 * (`not_after` is the earlier of the API's and the databases'; the two are
 * ordered one after the other, seconds apart).
 */
function sameIssuance(validTo: string, notAfter: string): boolean {
  return Math.abs(Date.parse(validTo) - Date.parse(notAfter)) < 30_000;
}

/** The certificate chain a TLS server presents (leaf first), unverified. */
function presented(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(new X509Certificate(cert.raw));
    });
    socket.on('error', reject);
  });
}

/** The certificate a Postgres server presents (after its SSLRequest), unverified. */
async function postgresCertificate(url: string): Promise<X509Certificate> {
  const parsed = new URL(url);
  parsed.searchParams.delete('sslmode');
  const client = new pg.Client({ connectionString: parsed.toString(), ssl: { rejectUnauthorized: false } });
  await client.connect();
  try {
    const socket = (client as unknown as { connection: { stream: import('node:tls').TLSSocket } }).connection.stream;
    return new X509Certificate(socket.getPeerCertificate().raw);
  } finally {
    await client.end();
  }
}

/**
 * node-postgres in its own process, with `url` exactly as given (no ssl
 * option: `sslmode=require` makes it verify the chain and the host name) and
 * `extraCa` as NODE_EXTRA_CA_CERTS, the way a user adds a root.
 */
async function nodePostgres(url: string, extraCa: string | undefined): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = [
    `import pg from ${JSON.stringify(PG_MODULE)};`,
    'const client = new pg.Client({ connectionString: process.argv[1] });',
    'await client.connect();',
    "const { rows } = await client.query('SELECT 1 AS one');",
    'const socket = client.connection.stream;',
    'console.log(JSON.stringify({ one: rows[0].one, authorized: socket.authorized, issuer: socket.getPeerCertificate().issuer.CN }));',
    'await client.end();',
  ].join('\n');
  return run(process.execPath, ['--input-type=module', '-e', script, url], extraCa ? { NODE_EXTRA_CA_CERTS: extraCa } : {});
}

describe('ACME certificates from a real ACME server (Pebble)', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'pgdb-acme-e2e-'));
  const rootFile = join(work, 'pebble-root.pem');
  const bundleFile = join(work, 'trust.pem');
  const configHome = join(work, 'config');
  let pebble: Pebble;
  let httpPort: number;
  let daemon: TestDaemon;

  before(async () => {
    requireDockerAndImages([17]);
    httpPort = await freePort();
    pebble = await new Pebble(binary!, { httpPort }).start();
    writeFileSync(rootFile, pebble.root);
    writeFileSync(bundleFile, pebble.trustBundle);
    daemon = new TestDaemon({
      portRange: ports.range(20),
      public: true,
      apiRoots: () => [pebble.root],
      env: {
        PGDB_TLS: 'acme',
        PGDB_ACME_DIRECTORY: pebble.directory,
        PGDB_ACME_HTTP_PORT: String(httpPort),
        PGDB_ACME_EMAIL: 'ops@example.com',
        NODE_EXTRA_CA_CERTS: bundleFile,
      },
    });
    await daemon.start();
  });
  after(async () => {
    await daemon?.destroyAll();
    await pebble?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('obtains a shortlived certificate for its IP address and serves it on the API, without blocking start-up', async () => {
    const body = await acmeServed(daemon, 90_000);
    assert.equal(body.tls.acme.identifier, '127.0.0.1');
    assert.equal(body.tls.acme.profile, 'shortlived');
    assert.equal(body.tls.acme.state, 'issued');
    assert.equal(body.tls.acme.last_error, null);
    const lifetimeHours = (Date.parse(body.tls.acme.not_after) - Date.now()) / 3_600_000;
    assert.ok(lifetimeHours > 140 && lifetimeHours <= 144, `Pebble's shortlived profile is 6 days, got ${lifetimeHours} h`);
    const api = await presented(Number(new URL(daemon.url).port));
    assert.equal(new Date(api.validTo).toISOString(), new Date(body.tls.acme.not_after).toISOString(), 'the API serves the ACME certificate');
    assert.match(api.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  });

  it('a deploy returns a plain sslmode=require URL that node-postgres verifies as is, and psql verifies with the root', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'acme-issue', size_gb: 1 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const url: string = deployed.body.database_url;
    assert.match(url, /\?sslmode=require$/);

    const verified = await nodePostgres(url, rootFile);
    assert.equal(verified.code, 0, verified.stderr);
    const seen = JSON.parse(verified.stdout.trim().split('\n').pop()!);
    assert.deepEqual({ one: seen.one, authorized: seen.authorized }, { one: 1, authorized: true });
    assert.match(seen.issuer, /Pebble Intermediate/);
    // Control: without the root, node-postgres refuses the same URL, so the check above did verify.
    const untrusted = await nodePostgres(url, undefined);
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /unable to (get local issuer certificate|verify the first certificate)/);

    const psqlRequire = execFileSync('psql', [url, '-tAc', 'SELECT 1'], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(psqlRequire.trim(), '1');
    const full = `${url.replace('sslmode=require', 'sslmode=verify-full')}&sslrootcert=${encodeURIComponent(rootFile)}`;
    const psqlFull = execFileSync('psql', [full, '-tAc', 'SELECT 1'], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(psqlFull.trim(), '1');
  });

  it("databases carry the ACME certificate ordered for them, with a key that is not the API's: served by an impostor, it gets no token from a CLI that pinned the API", async () => {
    const body = await health(daemon);
    const apiPort = Number(new URL(daemon.url).port);
    assert.equal(publicKeyFingerprint((await presented(apiPort)).toString()), body.tls.api_key_fingerprint, "the API serves with the key health names");
    const publicRoutes = { '/v1/ca': daemon.caCertificate(), '/v1/api-certificate': await daemon.apiCertificate() };
    const impostor = new Impostor(daemon.record('acme-issue').container_id, publicRoutes);
    const { cert } = impostor.credentials();
    assert.match(new X509Certificate(cert).issuer, /Pebble Intermediate/, "the database's certificate is the ACME one");
    assert.notEqual(publicKeyFingerprint(cert), body.tls.api_key_fingerprint, "the database's key is not the API's");
    await impostor.start();
    const relay = await new TcpRelay(apiPort).start();
    try {
      const env: Env = {
        XDG_CONFIG_HOME: mkdtempSync(join(work, 'impostor-')),
        PGDB_TOKEN: daemon.token,
        PGDB_SERVER_URL: `https://127.0.0.1:${relay.port}`,
        NODE_EXTRA_CA_CERTS: rootFile,
      };
      const pinned = await run(process.execPath, [CLI, 'status', '--json'], env);
      assert.equal(pinned.code, 0, pinned.stderr);
      assert.match(pinned.stderr, new RegExp(`^pinned the API key ${body.tls.api_key_fingerprint} `, 'm'));
      // The same address now answers with the database's key, which the system's roots verify as well.
      relay.retarget(impostor.port);
      const refused = await run(process.execPath, [CLI, 'status', '--json'], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^error: REFUSED: https:\/\/127\.0\.0\.1:\d+ presents another key than the API key pinned for it/m);
      // With the own CA pinned as well (--trust-fingerprint, what install.sh prints): refused at first use.
      const fingerprint = `sha256:${new X509Certificate(daemon.caCertificate()).fingerprint256.replaceAll(':', '').toLowerCase()}`;
      const fresh = await run(process.execPath, [CLI, 'status', '--json', '--trust-fingerprint', fingerprint], { ...env, XDG_CONFIG_HOME: mkdtempSync(join(work, 'impostor-')) });
      assert.equal(fresh.code, 1);
      assert.match(fresh.stderr, /presents a certificate whose key its CA sha256:[0-9a-f]+ does not vouch for as the API's; nothing was sent/);
      assert.deepEqual(impostor.tokens(), [], 'no request with the token reached the impostor');
      assert.ok(impostor.seen.length > 0, 'the CLI did reach the impostor (without the token): the check above could have failed');
    } finally {
      await relay.stop();
      await impostor.stop();
    }
  });

  it('pgdb url --verify prints sslrootcert=system, which libpq 17 verifies with the root as the system store (SSL_CERT_FILE)', async () => {
    const env: Env = { XDG_CONFIG_HOME: configHome, PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url, NODE_EXTRA_CA_CERTS: rootFile };
    const printed = await run(process.execPath, [CLI, 'url', 'acme-issue', '--verify'], env);
    assert.equal(printed.code, 0, printed.stderr);
    const url = printed.stdout.trim();
    assert.match(url, /\?sslmode=verify-full&sslrootcert=system$/);
    // libpq 15 here predates sslrootcert=system; the test image's psql 17 has it.
    const out = execFileSync(
      'docker',
      [
        'run', '--rm', '--network', 'host', '--label', 'pgdb-e2e=acme',
        '-v', `${rootFile}:/pebble-root.pem:ro`, '-e', 'SSL_CERT_FILE=/pebble-root.pem',
        '--entrypoint', 'psql', `${TEST_IMAGE_REPO}:17`, url, '-tAc', 'SELECT 1',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(out.trim(), '1');
  });

  it('the CLI pins the own CA given with --trust-fingerprint for a fallback, and accepts the ACME chain only where the system roots verify it', async () => {
    const pinHome = join(work, 'pin-config');
    const fingerprint = `sha256:${new X509Certificate(daemon.caCertificate()).fingerprint256.replaceAll(':', '').toLowerCase()}`;
    const env: Env = { XDG_CONFIG_HOME: pinHome, PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url };
    const pinned = await run(process.execPath, [CLI, 'status', '--json', '--trust-fingerprint', fingerprint], { ...env, NODE_EXTRA_CA_CERTS: rootFile });
    assert.equal(pinned.code, 0, pinned.stderr);
    assert.match(pinned.stderr, new RegExp(`pinned the CA ${fingerprint}`));
    const again = await run(process.execPath, [CLI, 'status', '--json'], { ...env, NODE_EXTRA_CA_CERTS: rootFile });
    assert.equal(again.code, 0, again.stderr);
    // Where the system's roots do not vouch for the ACME chain, the pin holds: refused, nothing sent.
    const refused = await run(process.execPath, [CLI, 'status', '--json'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /REFUSED: the certificate of .* is not issued by the CA pinned for it/);
  });

  it('a restart uses the cached certificate at once and orders none', async () => {
    const before = (await health(daemon)).tls.acme.not_after;
    await daemon.restart();
    const body = await health(daemon);
    assert.equal(body.tls.source, 'acme', 'served from the first answer after the restart');
    assert.equal(body.tls.acme.not_after, before);
    await logShows(daemon, /using the cached ACME certificate/);
    assert.doesNotMatch(daemon.logs(), /obtained an ACME certificate/);
  });
});

/** A port held by a plain TCP listener (another program, as far as the daemon can tell); closed by the caller through `blockers`. */
async function hold(blockers: Server[]): Promise<number> {
  const port = await freePort();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(port, resolve));
  blockers.push(blocker);
  return port;
}

/** Whether anything accepts TCP connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

describe('ACME renewal and fallback with a certificate of a few minutes', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'pgdb-acme-renew-'));
  const bundleFile = join(work, 'trust.pem');
  let pebble: Pebble;
  let daemon: TestDaemon;
  let held: pg.Client | undefined;

  before(async () => {
    requireDockerAndImages([17]);
    const httpPort = await freePort();
    pebble = await new Pebble(binary!, {
      httpPort,
      profiles: { default: { description: 'default', validityPeriod: 7_776_000 }, minutes: { description: 'a few minutes', validityPeriod: 150 } },
    }).start();
    writeFileSync(bundleFile, pebble.trustBundle);
    daemon = new TestDaemon({
      portRange: ports.range(20),
      env: {
        PGDB_TLS: 'acme',
        PGDB_ACME_DIRECTORY: pebble.directory,
        PGDB_ACME_HTTP_PORT: String(httpPort),
        PGDB_ACME_PROFILE: 'minutes',
        NODE_EXTRA_CA_CERTS: bundleFile,
      },
    });
    await daemon.start();
  });
  after(async () => {
    await held?.end().catch(() => undefined);
    await daemon?.destroyAll();
    await pebble?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('renews at a third of the lifetime; an open connection survives and new connections see the new certificate', async () => {
    const first = await acmeServed(daemon, 90_000);
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'acme-renew', size_gb: 1 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const url: string = deployed.body.database_url;
    const parsed = new URL(url);
    parsed.searchParams.delete('sslmode');
    held = new pg.Client({ connectionString: parsed.toString(), ssl: { ca: pebble.root } });
    await held.connect();
    const pid = (await held.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const before = await postgresCertificate(url);
    assert.ok(sameIssuance(before.validTo, first.tls.acme.not_after), `${before.validTo} vs ${first.tls.acme.not_after}`);

    const renewed = await acmeServed(daemon, 180_000, first.tls.acme.not_after);
    assert.ok(Date.parse(first.tls.acme.renew_at) <= Date.parse(renewed.tls.acme.not_after));
    const after = await eventually('the database to serve the renewed certificate', 30_000, async () => {
      const cert = await postgresCertificate(url);
      return sameIssuance(cert.validTo, renewed.tls.acme.not_after) ? cert : undefined;
    });
    assert.notEqual(after.fingerprint256, before.fingerprint256);
    assert.equal((await held.query('SELECT pg_backend_pid() AS pid')).rows[0].pid, pid, 'the open connection survived the reload');
    await logShows(daemon, /renewed the ACME certificate/);
  });

  it('with the ACME server gone, it falls back to its own CA before expiry and says so', async () => {
    const current = await health(daemon);
    await pebble.stop();
    const fallen = await eventually('the fallback to the own CA', 200_000, async () => {
      const body = await health(daemon);
      return body.tls.source === 'own-ca' ? body : undefined;
    });
    assert.equal(fallen.tls.acme.state, 'fallback');
    assert.match(fallen.tls.acme.last_error, /unreachable/);
    assert.ok(Date.now() < Date.parse(current.tls.acme.not_after), 'fell back before the certificate expired');
    await logShows(daemon, /could not be renewed and expires soon/);
    // The database follows: its certificate is the own CA's again.
    const url = (await daemon.api('GET', '/v1/status?show_secrets=true')).body.items.find((i: any) => i.name === 'acme-renew').database_url;
    const cert = await eventually('the database to carry the own CA certificate', 30_000, async () => {
      const presentedCert = await postgresCertificate(url);
      return presentedCert.checkIssued(new X509Certificate(daemon.caCertificate())) ? presentedCert : undefined;
    });
    assert.ok(cert.verify(new X509Certificate(daemon.caCertificate()).publicKey));
    assert.equal((await held!.query('SELECT 1 AS one')).rows[0].one, 1, 'the open connection survived the fallback too');
  });
});

describe('ACME unreachable or misconfigured: the daemon keeps serving on its own CA', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'pgdb-acme-down-'));
  const bundleFile = join(work, 'trust.pem');
  let pebble: Pebble;
  let httpPort: number;
  let tlsPort: number;
  let relay: TcpRelay;
  const daemons: TestDaemon[] = [];
  const blockers: Server[] = [];

  before(async () => {
    requireDockerAndImages([17]);
    httpPort = await freePort();
    tlsPort = await freePort();
    pebble = await new Pebble(binary!, { httpPort, tlsPort }).start();
    writeFileSync(bundleFile, pebble.trustBundle);
    // The directory is reached through a relay that first leads nowhere: the ACME server is "down".
    relay = await new TcpRelay(await freePort()).start();
  });
  after(async () => {
    for (const daemon of daemons) await daemon.destroyAll();
    await relay?.stop();
    for (const blocker of blockers) blocker.close();
    await pebble?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  const acmeDaemon = (portRange: string, env: Record<string, string>) => {
    const daemon = new TestDaemon({
      portRange,
      env: { PGDB_TLS: 'acme', PGDB_ACME_HTTP_PORT: String(httpPort), PGDB_ACME_TLS_PORT: String(tlsPort), NODE_EXTRA_CA_CERTS: bundleFile, ...env },
    });
    daemons.push(daemon);
    return daemon;
  };

  it('starts on its own CA while the ACME server is down, says why in health, and switches when it comes up', async () => {
    // With a warm pool: a standby made on the own CA, claimed after the switch, must carry the ACME certificate.
    const daemon = acmeDaemon(ports.range(20), { PGDB_ACME_DIRECTORY: `https://127.0.0.1:${relay.port}/dir`, PGDB_POOL: '17:1' });
    await daemon.start();
    const down = await eventually('the first failed attempt in health', 30_000, async () => {
      const body = await health(daemon);
      return body.tls.acme.last_error ? body : undefined;
    });
    assert.equal(down.tls.source, 'own-ca');
    assert.equal(down.tls.acme.state, 'pending');
    assert.match(down.tls.acme.last_error, /the ACME directory https:\/\/127\.0\.0\.1:\d+\/dir is unreachable/);
    assert.ok(down.tls.acme.next_attempt_at);
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'acme-down', size_gb: 1 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const url: string = deployed.body.database_url;
    assert.ok((await postgresCertificate(url)).checkIssued(new X509Certificate(daemon.caCertificate())), 'own CA meanwhile');

    relay.retarget(pebble.port);
    const up = await acmeServed(daemon, 120_000);
    assert.equal(up.tls.acme.last_error, null);
    // The database that was deployed meanwhile gets the ACME certificate too.
    await eventually('the database to serve the ACME certificate', 30_000, async () => {
      const cert = await postgresCertificate(url);
      return sameIssuance(cert.validTo, up.tls.acme.not_after) ? cert : undefined;
    });
    await eventually('a ready standby', 60_000, async () => {
      const status = await daemon.api('GET', '/v1/status');
      return status.body.pool.find((p: { postgres_version: number }) => p.postgres_version === 17)?.ready >= 1 ? true : undefined;
    });
    const fromPool = await daemon.api('POST', '/v1/deploy', { name: 'acme-pooled' });
    assert.equal(fromPool.status, 201, JSON.stringify(fromPool.body));
    await logShows(daemon, /"database":"acme-pooled".*"pool":true.*database ready/);
    // That standby was made while the ACME server was down: it got the certificate when claimed.
    assert.match(daemon.logs(), /"database":"acme-pooled".*gave the claimed standby the current certificate/);
    const pooled = await postgresCertificate(fromPool.body.database_url);
    assert.ok(sameIssuance(pooled.validTo, up.tls.acme.not_after) && !pooled.checkIssued(new X509Certificate(daemon.caCertificate())), 'the claimed standby serves the ACME certificate');
  });

  it('a directory URL that is not ACME gives one clear error in health, and the daemon keeps serving', async () => {
    const daemon = acmeDaemon(ports.range(10), { PGDB_ACME_DIRECTORY: `${pebble.managementUrl}/roots/0`, PGDB_ACME_HTTP_PORT: String(await freePort()) });
    await daemon.start();
    const body = await eventually('the error in health', 30_000, async () => {
      const answer = await health(daemon);
      return answer.tls.acme.last_error ? answer : undefined;
    });
    assert.equal(body.tls.source, 'own-ca');
    assert.match(body.tls.acme.last_error, /is not an ACME directory .*check PGDB_ACME_DIRECTORY/);
    const status = await daemon.api('GET', '/v1/status');
    assert.equal(status.status, 200);
    assert.match(status.body.tls.acme.last_error, /is not an ACME directory/);
    await logShows(daemon, /is not an ACME directory/);
    const cli = await run(process.execPath, [CLI, 'status'], { XDG_CONFIG_HOME: join(work, 'config'), PGDB_TOKEN: daemon.token, PGDB_SERVER_URL: daemon.url });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /TLS: own CA served until the ACME certificate is issued; last ACME error: .* is not an ACME directory/);
  });

  it('the http-01 and tls-alpn-01 ports both held by other programs give one clear error in health, and the daemon keeps serving', async () => {
    const takenHttp = await hold(blockers);
    const takenTls = await hold(blockers);
    const daemon = acmeDaemon(ports.range(10), { PGDB_ACME_DIRECTORY: pebble.directory, PGDB_ACME_HTTP_PORT: String(takenHttp), PGDB_ACME_TLS_PORT: String(takenTls) });
    await daemon.start();
    const body = await eventually('the error in health', 30_000, async () => {
      const answer = await health(daemon);
      return answer.tls.acme.last_error ? answer : undefined;
    });
    assert.equal(body.tls.source, 'own-ca');
    assert.equal(
      body.tls.acme.last_error,
      `cannot listen on port ${takenHttp} for ACME http-01 challenges: another program holds it (a web server?), ` +
        `nor on port ${takenTls} for tls-alpn-01 challenges: another program holds it (a web server?); ` +
        'pgdbd needs one of them open to the ACME server (or set PGDB_TLS=own-ca)',
    );
    assert.deepEqual(body.problems, [`ACME certificate for 127.0.0.1: ${body.tls.acme.last_error}; serving pgdb's own CA`]);
    assert.equal((await daemon.api('GET', '/v1/status')).status, 200);
    await logShows(daemon, /cannot listen on port .*ACME issuance failed/);
  });
});

describe('tls-alpn-01 when the http-01 port is held, a domain that is not this host, and ACME alerts', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'pgdb-acme-alpn-'));
  const rootFile = join(work, 'pebble-root.pem');
  const bundleFile = join(work, 'trust.pem');
  const SECRET = 'acme-hook-5d81c2';
  let pebble: Pebble;
  let receiver: WebhookReceiver;
  const blockers: Server[] = [];
  const daemons: TestDaemon[] = [];

  before(async () => {
    requireDockerAndImages([17]);
    receiver = await new WebhookReceiver(SECRET).start();
  });
  after(async () => {
    for (const daemon of daemons) await daemon.destroyAll();
    for (const blocker of blockers) blocker.close();
    await receiver?.stop();
    await pebble?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('with port 80 held by another program it answers tls-alpn-01 on its TLS port, only while validating; the failure before that fired the webhook, and the success resolved it', async () => {
    const httpPort = await hold(blockers);
    const tlsPort = await hold(blockers);
    const tlsBlocker = blockers[blockers.length - 1];
    pebble = await new Pebble(binary!, { httpPort, tlsPort }).start();
    writeFileSync(rootFile, pebble.root);
    writeFileSync(bundleFile, pebble.trustBundle);
    const daemon = new TestDaemon({
      portRange: ports.range(20),
      env: {
        PGDB_TLS: 'acme',
        PGDB_ACME_DIRECTORY: pebble.directory,
        PGDB_ACME_HTTP_PORT: String(httpPort),
        PGDB_ACME_TLS_PORT: String(tlsPort),
        PGDB_ALERT_WEBHOOK: receiver.url,
        NODE_EXTRA_CA_CERTS: bundleFile,
      },
    });
    daemons.push(daemon);
    await daemon.start();

    // Both ports held: the failure is a health problem, and the webhook hears of it (backups are off: it is not theirs).
    const failed = await eventually('the error in health', 30_000, async () => {
      const answer = await health(daemon);
      return answer.tls.acme.last_error ? answer : undefined;
    });
    assert.match(failed.tls.acme.last_error, new RegExp(`nor on port ${tlsPort} for tls-alpn-01 challenges`));
    const problem = await eventually('the ACME problem at the webhook', 60_000, async () => receiver.about(null, 'problem').find((d) => d.status === 204));
    assert.equal(problem.path, `/hooks/${SECRET}`);
    assert.equal(problem.body.server, '127.0.0.1');
    assert.match(problem.body.problem, /^ACME certificate for 127\.0\.0\.1: cannot listen on port \d+ for ACME http-01 challenges: .*; serving pgdb's own CA$/);

    // The TLS port comes free; port 80 stays held: the next attempt validates over tls-alpn-01.
    await new Promise<void>((resolve) => tlsBlocker.close(() => resolve()));
    const issued = await acmeServed(daemon, 120_000);
    assert.equal(issued.tls.acme.last_error, null);
    assert.deepEqual(issued.problems, []);
    await logShows(daemon, new RegExp(`port ${httpPort} is unavailable for http-01: answering ACME tls-alpn-01 challenges on port ${tlsPort} while validating`));
    await logShows(daemon, /obtained an ACME certificate/);
    assert.doesNotMatch(daemon.logs(), /answering ACME http-01 challenges/);
    assert.equal(await listening(tlsPort), false, 'the tls-alpn-01 listener is closed once the order is done');
    const resolved = await eventually('the resolved event at the webhook', 60_000, async () => receiver.about(null, 'resolved').find((d) => d.status === 204));
    assert.match(resolved.body.problem, /^ACME certificate for 127\.0\.0\.1: /);
    assert.ok(!daemon.logs().includes(SECRET), "the webhook URL's secret path is never logged");

    // The certificate is the real thing: node-postgres verifies a database's URL as is.
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'acme-alpn', size_gb: 1 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const verified = await eventually('node-postgres to verify the ACME certificate', 30_000, async () => {
      const result = await nodePostgres(deployed.body.database_url, rootFile);
      return result.code === 0 ? result : undefined;
    });
    assert.match(verified.stdout, /"authorized":true/);
  });

  it('a PGDB_DOMAIN that does not resolve to this host gives one clear error in health, status, the log and the webhook, orders nothing, and the daemon keeps serving', async () => {
    const domain = 'pgdb-e2e-nowhere.invalid';
    const before = receiver.deliveries.length;
    const daemon = new TestDaemon({
      portRange: ports.range(20),
      env: {
        PGDB_TLS: 'acme',
        PGDB_DOMAIN: domain,
        PGDB_ACME_DIRECTORY: pebble.directory,
        PGDB_ACME_HTTP_PORT: String(await freePort()),
        PGDB_ACME_TLS_PORT: String(await freePort()),
        PGDB_ALERT_WEBHOOK: receiver.url,
        NODE_EXTRA_CA_CERTS: bundleFile,
      },
    });
    daemons.push(daemon);
    await daemon.start();
    const body = await eventually('the error in health', 30_000, async () => {
      const answer = await health(daemon);
      return answer.tls.acme.last_error ? answer : undefined;
    });
    assert.equal(body.tls.source, 'own-ca');
    assert.equal(body.tls.acme.identifier, domain);
    assert.match(body.tls.acme.last_error, /^PGDB_DOMAIN pgdb-e2e-nowhere\.invalid does not resolve \(ENOTFOUND\); point its DNS A or AAAA record at this host \(127\.0\.0\.1\)$/);
    assert.deepEqual(body.problems, [`ACME certificate for ${domain}: ${body.tls.acme.last_error}; serving pgdb's own CA`]);
    const status = await daemon.api('GET', '/v1/status');
    assert.equal(status.status, 200);
    assert.equal(status.body.tls.acme.last_error, body.tls.acme.last_error);
    await logShows(daemon, /PGDB_DOMAIN pgdb-e2e-nowhere\.invalid does not resolve/);
    assert.doesNotMatch(daemon.logs(), /answering ACME (http-01|tls-alpn-01) challenges|registering an account/, 'nothing was ordered');
    const alert = await eventually('the problem at the webhook', 60_000, async () =>
      receiver.deliveries.slice(before).find((d) => d.body?.server === domain && d.body?.event === 'problem' && d.status === 204),
    );
    assert.match(alert.body.problem, /PGDB_DOMAIN pgdb-e2e-nowhere\.invalid does not resolve/);
    assert.equal(alert.body.database, null);
    // Keeps serving on its own CA: a deploy works.
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'acme-domain', size_gb: 1 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
  });
});
