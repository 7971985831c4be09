/**
 * Which servers the CLI talks to, and with which certificate: first-use
 * pinning, refusal of a changed CA, and no token over plain HTTP. Against a
 * fake daemon serving https with CAs made by openssl in the test.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { readConfig, writeConfig, type ConfigFile } from './config.js';
import { FakeDaemon } from './testing/fake-daemon.js';
import { runPgdb, tempConfigPath, type MemoryOptions, type Run } from './testing/memory-context.js';
import { TestCa, type KeyPair } from './testing/test-ca.js';
import { isLoopbackHost, normalizeFingerprint, publicKeyFingerprint } from './tls.js';

/** `sha256:<hex>` of a certificate's DER public key: what the CLI pins for the API. */
function keyOf(cert: string): string {
  return publicKeyFingerprint(new X509Certificate(cert));
}

const TOKEN = 'test-token-0123456789';

function assertRefused(run: Run, message: RegExp): void {
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, message);
}

/** No request that carried the token, nor any request to a route that needs it, reached the daemon. */
function assertNoTokenSent(daemon: FakeDaemon): void {
  assert.deepEqual(
    daemon.requests.filter((request) => request.authorization !== undefined || !['/v1/ca', '/v1/api-certificate', '/v1/health'].includes(request.url)),
    [],
  );
}

describe('https: pinning the server CA', () => {
  const ca = new TestCa('pgdb test CA one');
  const other = new TestCa('pgdb test CA two');
  let daemon: FakeDaemon;
  let configPath: string;
  /** The API's certificate the fake serves, from `ca`, marked as the API's. */
  let api: KeyPair;
  const pgdb = (args: string[], options: MemoryOptions = {}) =>
    runPgdb(args, { ...options, environment: { configPath, token: TOKEN, ...options.environment } });
  const config = (): Promise<ConfigFile> => readConfig(configPath);

  before(async () => {
    daemon = await new FakeDaemon(TOKEN, { ca, api: ca.issue() }).start();
  });
  after(() => daemon.stop());
  beforeEach(async () => {
    api = ca.issue();
    daemon.replaceTls({ ca, api });
    daemon.requests.length = 0;
    configPath = await tempConfigPath();
    await writeConfig(configPath, { servers: { prod: { url: daemon.url } } });
  });

  it('first use in a script: refuses, shows the fingerprint, names --trust-fingerprint and --ca-file, sends no token', async () => {
    const run = await pgdb(['status', '--server', 'prod']);
    assertRefused(run, new RegExp(`^error: ${daemon.url} presents a certificate authority pgdb does not trust yet \\(${ca.fingerprint}\\); nothing was sent$`, 'm'));
    assert.match(run.stderr, /^hint: .*--trust-fingerprint sha256:\.\.\. .*--ca-file <path>/m);
    assertNoTokenSent(daemon);
    assert.equal((await config()).servers.prod.ca_cert, undefined);
  });

  it('--trust-fingerprint pins the CA in the alias entry; later runs verify against it without the flag', async () => {
    const first = await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`^pinned the CA ${ca.fingerprint} of ${daemon.url} in server\\.prod \\(${configPath}\\)$`, 'm'));
    const entry = (await config()).servers.prod;
    assert.equal(entry.ca_fingerprint, ca.fingerprint);
    assert.equal(entry.ca_cert, ca.cert);
    assert.equal((await stat(configPath)).mode & 0o777, 0o600);

    const again = await pgdb(['status', '--server', 'prod', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr, '');
    assert.deepEqual(JSON.parse(again.stdout).items, []);
    assert.equal(daemon.requests.at(-1)?.authorization, `Bearer ${TOKEN}`);
  });

  it("accepts openssl's fingerprint format too", async () => {
    const openssl = `sha256 Fingerprint=${ca.fingerprint.slice(7).toUpperCase().match(/../g)!.join(':')}`;
    assert.equal(normalizeFingerprint(openssl), ca.fingerprint);
    const run = await pgdb(['status', '--server', 'prod', '--trust-fingerprint', openssl]);
    assert.equal(run.code, 0, run.stderr);
  });

  it('--trust-fingerprint that the server does not present: refused, nothing pinned, no token sent', async () => {
    const run = await pgdb(['status', '--server', 'prod', '--trust-fingerprint', other.fingerprint]);
    assertRefused(run, new RegExp(`presents the CA ${ca.fingerprint}, not the ${other.fingerprint} given with --trust-fingerprint`));
    assertNoTokenSent(daemon);
    assert.equal((await config()).servers.prod.ca_fingerprint, undefined);
  });

  it('a malformed --trust-fingerprint is a usage error', async () => {
    const run = await pgdb(['status', '--server', 'prod', '--trust-fingerprint', 'sha256:abc']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--trust-fingerprint must be sha256:<64 hex digits>/);
    assert.equal(daemon.connections > 0 && daemon.requests.length > 0, false);
  });

  it("--ca-file pins the file's CA once the server proves to chain to it; another CA's file is refused", async () => {
    const wrong = await pgdb(['status', '--server', 'prod', '--ca-file', other.certPath]);
    assertRefused(wrong, new RegExp(`is not issued by the CA in ${other.certPath} \\(${other.fingerprint}\\); nothing was sent and nothing was pinned`));
    assertNoTokenSent(daemon);
    assert.equal((await config()).servers.prod.ca_cert, undefined);

    const right = await pgdb(['status', '--server', 'prod', '--ca-file', ca.certPath]);
    assert.equal(right.code, 0, right.stderr);
    assert.equal((await config()).servers.prod.ca_fingerprint, ca.fingerprint);
  });

  it('on a terminal: shows the fingerprint and pins only when the user says yes', async () => {
    const no = await pgdb(['status', '--server', 'prod'], { typed: ['n'] });
    assertRefused(no, /error: not trusted: nothing was sent and nothing was pinned$/m);
    assert.match(no.stderr, new RegExp(`not seen before\\. Its fingerprint:\\n  ${ca.fingerprint}\\n`));
    assert.match(no.stderr, /Trust this CA for .* and pin it in server\.prod\? \[y\/N\] /);
    assertNoTokenSent(daemon);

    const yes = await pgdb(['status', '--server', 'prod'], { typed: ['y'] });
    assert.equal(yes.code, 0, yes.stderr);
    assert.equal((await config()).servers.prod.ca_fingerprint, ca.fingerprint);
  });

  it('never asks with --json, even on a terminal', async () => {
    const run = await pgdb(['status', '--server', 'prod', '--json'], { typed: ['y'] });
    assertRefused(run, /does not trust yet/);
    assert.doesNotMatch(run.stderr, /\[y\/N\]/);
  });

  it('a renewed certificate from the same CA is accepted: for the same key quietly, for a new key once the CA vouches for it', async () => {
    assert.equal((await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint])).code, 0);
    assert.equal((await config()).servers.prod.api_key, keyOf(api.cert));
    daemon.replaceTls({ ca, api: ca.issue(undefined, { key: api.key }) });
    const run = await pgdb(['status', '--server', 'prod']);
    assert.deepEqual([run.code, run.stderr], [0, '']);

    const rekeyed = ca.issue();
    daemon.replaceTls({ ca, api: rekeyed });
    const again = await pgdb(['status', '--server', 'prod']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`^pinned the API key ${keyOf(rekeyed.cert)} .*the pinned CA vouches for it; it replaces ${keyOf(api.cert)}`, 'm'));
    assert.equal((await config()).servers.prod.api_key, keyOf(rekeyed.cert));
  });

  it("the attack: a database's certificate from the same CA, served where the API answers, is refused at first use and later, and gets no token", async () => {
    const database = ca.issue(undefined, { database: true });
    daemon.replaceTls({ ca, api: database });
    const first = await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint]);
    assertRefused(first, /cannot be trusted: its certificate is one of the CA's but not the API's .*nothing was sent and nothing was pinned/);
    const fromFile = await pgdb(['status', '--server', 'prod', '--ca-file', ca.certPath]);
    assertRefused(fromFile, /is one of the CA's in .* but not the API's/);
    assertNoTokenSent(daemon);
    assert.equal((await config()).servers.prod.ca_cert, undefined);

    daemon.replaceTls({ ca, api });
    assert.equal((await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint])).code, 0);
    daemon.replaceTls({ ca, api: database });
    daemon.requests.length = 0;
    const later = await pgdb(['status', '--server', 'prod']);
    assertRefused(later, /^error: REFUSED: https:\/\/127\.0\.0\.1:\d+ presents another key than the API key pinned for it in server\.prod .*and the pinned CA does not vouch for the new one\. This may be an attack/m);
    assertNoTokenSent(daemon);
    assert.equal((await config()).servers.prod.api_key, keyOf(api.cert), 'the pin stays');

    // A pin from before API keys were pinned (the CA only): the mark decides, and then the key is pinned.
    const stored = await config();
    delete stored.servers.prod.api_key;
    await writeConfig(configPath, stored);
    const legacy = await pgdb(['status', '--server', 'prod']);
    assertRefused(legacy, /^error: REFUSED: .* presents a certificate of the CA pinned for it \(sha256:[0-9a-f]+\) that is not the API's/m);
    assertNoTokenSent(daemon);
    daemon.replaceTls({ ca, api });
    const upgraded = await pgdb(['status', '--server', 'prod']);
    assert.equal(upgraded.code, 0, upgraded.stderr);
    assert.match(upgraded.stderr, new RegExp(`^pinned the API key ${keyOf(api.cert)} of .* \\(marked as the API by the pinned CA\\) in server\\.prod$`, 'm'));
  });

  it('a changed CA is refused loudly, nothing is sent, and only a deliberate --trust-fingerprint re-pins', async () => {
    assert.equal((await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint])).code, 0);
    daemon.replaceTls({ ca: other, api: other.issue() });
    daemon.requests.length = 0;

    for (const args of [['status'], ['deploy', '--name', 'x'], ['destroy', 'x', '--yes'], ['ca']]) {
      const run = await pgdb([...args, '--server', 'prod']);
      assertRefused(run, new RegExp(`^error: REFUSED: the certificate of ${daemon.url} is not issued by the CA pinned for it in server\\.prod \\(${ca.fingerprint}\\)\\. This may be an attack`, 'm'));
      assert.match(run.stderr, /^hint: .*--trust-fingerprint sha256:<new>.*pgdb config unset server\.prod\.ca/m);
    }
    assert.deepEqual(daemon.requests, [], 'nothing at all reached the daemon');
    // On a terminal too: no question, the pin stands.
    assertRefused(await pgdb(['status', '--server', 'prod'], { typed: ['y'] }), /REFUSED/);
    assert.equal((await config()).servers.prod.ca_fingerprint, ca.fingerprint);

    const repinned = await pgdb(['status', '--server', 'prod', '--trust-fingerprint', other.fingerprint]);
    assert.equal(repinned.code, 0, repinned.stderr);
    assert.match(repinned.stderr, new RegExp(`pinned the CA ${other.fingerprint} .*, replacing ${ca.fingerprint}`));
    assert.equal((await pgdb(['status', '--server', 'prod'])).code, 0);
  });

  it('`config unset server.<alias>.ca` forgets the pin, and the next connection asks again', async () => {
    assert.equal((await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint])).code, 0);
    const list = await pgdb(['config', 'list']);
    assert.match(list.stdout, new RegExp(`^server\\.prod\\.ca\\s+${ca.fingerprint}$`, 'm'));
    assert.equal((await pgdb(['config', 'unset', 'server.prod.ca'])).code, 0);
    assert.deepEqual((await config()).servers.prod, { url: daemon.url });
    assertRefused(await pgdb(['status', '--server', 'prod']), /does not trust yet/);
  });

  it('a certificate that does not name the host is refused at first use, and later', async () => {
    daemon.replaceTls({ ca, api: ca.issue(['pgdb.example.com']) });
    const first = await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint]);
    assertRefused(first, /cannot be trusted: its certificate is not valid for 127\.0\.0\.1 \(it names DNS:pgdb\.example\.com\); nothing was sent and nothing was pinned/);
    assertNoTokenSent(daemon);

    daemon.replaceTls({ ca, api: ca.issue() });
    assert.equal((await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint])).code, 0);
    daemon.replaceTls({ ca, api: ca.issue(['pgdb.example.com']) });
    daemon.requests.length = 0;
    const later = await pgdb(['status', '--server', 'prod']);
    assertRefused(later, /^error: the certificate of https:\/\/127\.0\.0\.1:\d+ is not valid for "127\.0\.0\.1"; nothing was sent$/m);
    assert.deepEqual(daemon.requests, []);
  });

  it('a bare URL pins under "pins" by origin; an alias for the same origin uses that pin', async () => {
    const run = await pgdb(['status', '--trust-fingerprint', ca.fingerprint], { environment: { serverUrl: `${daemon.url}/` } });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`in pins\\["${daemon.url}"\\]`));
    const stored = await config();
    assert.deepEqual(stored.pins, { [daemon.url]: { ca_cert: ca.cert, ca_fingerprint: ca.fingerprint, api_key: keyOf(api.cert) } });
    assert.equal(stored.servers.prod.ca_cert, undefined);

    assert.equal((await pgdb(['status', '--server', daemon.url])).code, 0);
    const viaAlias = await pgdb(['status', '--server', 'prod', '--verbose']);
    assert.equal(viaAlias.code, 0, viaAlias.stderr);
    assert.match(viaAlias.stderr, new RegExp(`TLS: CA ${ca.fingerprint} pinned in pins\\["${daemon.url}"\\]`));
  });

  it('`config set server.<alias> <url>` to another address drops the pin; the same address keeps it', async () => {
    assert.equal((await pgdb(['status', '--server', 'prod', '--trust-fingerprint', ca.fingerprint])).code, 0);
    assert.equal((await pgdb(['config', 'set', 'server.prod', `${daemon.url}/`])).code, 0);
    assert.equal((await config()).servers.prod.ca_fingerprint, ca.fingerprint);
    assert.equal((await pgdb(['config', 'set', 'server.prod', 'https://127.0.0.1:1'])).code, 0);
    assert.deepEqual((await config()).servers.prod, { url: 'https://127.0.0.1:1' });
  });

  it('`config set server.<alias>.ca` is refused: pins come from connecting', async () => {
    const run = await pgdb(['config', 'set', 'server.prod.ca', ca.fingerprint]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /server\.prod\.ca is set by connecting, not by `config set`/);
  });
});

describe('pgdb ca and deploy --verify', () => {
  const ca = new TestCa('pgdb test CA for files');
  let daemon: FakeDaemon;
  let plain: FakeDaemon;
  let configPath: string;
  const pgdb = (args: string[]) => runPgdb(args, { environment: { configPath, token: TOKEN } });

  before(async () => {
    daemon = await new FakeDaemon(TOKEN, { ca, api: ca.issue() }).start();
    plain = await new FakeDaemon(TOKEN, { ca }).start();
  });
  after(() => Promise.all([daemon.stop(), plain.stop()]));
  beforeEach(async () => {
    configPath = await tempConfigPath();
    await writeConfig(configPath, { servers: { prod: { url: daemon.url }, local: { url: plain.url } } });
  });

  it('saves the pinned CA next to the config file and prints its path and fingerprint', async () => {
    const run = await pgdb(['ca', '--server', 'prod', '--trust-fingerprint', ca.fingerprint]);
    assert.equal(run.code, 0, run.stderr);
    const path = join(dirname(configPath), 'ca', 'prod.pem');
    assert.equal(run.stdout, `path: ${path}\nfingerprint: ${ca.fingerprint}\n`);
    assert.equal(await readFile(path, 'utf8'), ca.cert);
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    // `pgdb ca` needs no token, and sent none.
    assertNoTokenSent(daemon);
  });

  it('--out and --json', async () => {
    const out = join(dirname(configPath), 'elsewhere.pem');
    const run = await pgdb(['ca', '--server', 'prod', '--trust-fingerprint', ca.fingerprint, '--out', out, '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), {
      server: daemon.url,
      source: 'own-ca',
      path: out,
      fingerprint: ca.fingerprint,
      sslrootcert: out,
    });
    assert.equal(await readFile(out, 'utf8'), ca.cert);
  });

  it('over plain HTTP on loopback: fetches /v1/ca and checks it against the reported fingerprint', async () => {
    const run = await pgdb(['ca', '--server', 'local', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).fingerprint, ca.fingerprint);
  });

  it('deploy --verify prints a verify-full URL with the saved CA, in both output forms', async () => {
    const human = await pgdb(['deploy', '--server', 'prod', '--name', 'shop', '--verify', '--trust-fingerprint', ca.fingerprint]);
    assert.equal(human.code, 0, human.stderr);
    const path = join(dirname(configPath), 'ca', 'prod.pem');
    const line = /^DATABASE_URL: (.*)$/m.exec(human.stdout)?.[1] ?? '';
    const url = new URL(line);
    assert.equal(url.searchParams.get('sslmode'), 'verify-full');
    assert.equal(url.searchParams.get('sslrootcert'), path);
    assert.equal(await readFile(path, 'utf8'), ca.cert);

    const json = JSON.parse((await pgdb(['deploy', '--server', 'prod', '--name', 'shop-2', '--verify', '--json'])).stdout);
    assert.equal(new URL(json.DATABASE_URL).searchParams.get('sslrootcert'), path);
    assert.equal(new URL(json.DATABASE_URL).searchParams.get('sslmode'), 'verify-full');
  });

  it('deploy without --verify keeps the URL the daemon gave (sslmode=require)', async () => {
    const json = JSON.parse((await pgdb(['deploy', '--server', 'local', '--name', 'plain', '--json'])).stdout);
    assert.match(json.DATABASE_URL, /\?sslmode=require$/);
  });
});

describe('no token over plain HTTP', () => {
  let daemon: FakeDaemon;
  /** Names that reach this machine without being literal loopback addresses. */
  const aliases: string[] = ['0.0.0.0'];

  before(async () => {
    daemon = await new FakeDaemon(TOKEN).start();
    const name = hostname();
    const addresses = await lookup(name, { all: true }).catch(() => []);
    if (addresses.length > 0 && addresses.every(({ address }) => isLoopbackHost(address))) aliases.push(name);
  });
  after(() => daemon.stop());

  it('knows what loopback is', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '[::1]']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['0.0.0.0', '10.0.0.1', '128.0.0.1', 'localhost.example.com', '[::ffff:7f00:1]', 'vm', '127.0.0.1.nip.io']) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });

  it('refuses http:// to a name that is not literally loopback, opening no connection; --insecure goes ahead', async (t) => {
    t.diagnostic(`names that resolve to this machine: ${aliases.join(', ')}`);
    for (const host of aliases) {
      const url = `http://${host}:${daemon.port}`;
      const before = daemon.connections;
      const refused = await runPgdb(['status'], { environment: { serverUrl: url, token: TOKEN } });
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`^error: refusing to send the token to ${url} over plain HTTP: ${host} is not a loopback address; nothing was sent$`, 'm'));
      assert.match(refused.stderr, /^hint: .*https:\/\/.*pass --insecure/m);
      assert.equal(daemon.connections, before, `no connection to ${host}`);

      // The same name does reach the listener: the refusal above is what kept it away.
      const insecure = await runPgdb(['status', '--insecure'], { environment: { serverUrl: url, token: TOKEN } });
      assert.equal(insecure.code, 0, insecure.stderr);
      assert.match(insecure.stderr, /^warning: --insecure: talking to .* over plain HTTP/m);
      assert.ok(daemon.connections > before, `--insecure reached ${host}`);
    }
  });

  it('says so when the scheme does not match what the daemon speaks', async () => {
    const ca = new TestCa('pgdb test CA for schemes');
    const tlsDaemon = await new FakeDaemon(TOKEN, { ca, api: ca.issue() }).start();
    try {
      const httpsToPlain = await runPgdb(['status'], { environment: { serverUrl: daemon.url.replace('http:', 'https:'), token: TOKEN } });
      assertRefused(httpsToPlain, /^error: https:\/\/127\.0\.0\.1:\d+ does not answer over TLS \(https\)$/m);
      const plainToHttps = await runPgdb(['status'], { environment: { serverUrl: tlsDaemon.url.replace('https:', 'http:'), token: TOKEN } });
      assertRefused(plainToHttps, /^hint: .*if the daemon serves HTTPS, use https:\/\/$/m);
    } finally {
      await tlsDaemon.stop();
    }
  });

  it('plain HTTP to 127.0.0.1 needs no flag', async () => {
    const run = await runPgdb(['status', '--json'], { environment: { serverUrl: daemon.url, token: TOKEN } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
  });
});
