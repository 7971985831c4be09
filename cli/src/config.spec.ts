import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import {
  getValue,
  listEntries,
  parseKey,
  readConfig,
  setValue,
  unsetValue,
  writeConfig,
  type ConfigFile,
} from './config.js';
import { CliError, UsageError } from './errors.js';
import { runPgdb, tempConfigPath } from './testing/memory-context.js';
import { TestCa } from './testing/test-ca.js';

async function writeRaw(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

describe('config file', () => {
  it('reads a missing file as an empty config', async () => {
    assert.deepEqual(await readConfig(await tempConfigPath()), { servers: {} });
  });

  it('rejects a file that is not JSON, naming the path', async () => {
    const path = await tempConfigPath();
    await writeRaw(path, '{"servers": {');
    await assert.rejects(readConfig(path), (error: CliError) => {
      assert.match(error.message, new RegExp(`config file ${path} is corrupt: not valid JSON`));
      assert.match(error.hint ?? '', /will not overwrite it/);
      return true;
    });
  });

  it('rejects JSON of the wrong shape, saying what is wrong', async () => {
    const path = await tempConfigPath();
    await writeRaw(path, '{"servers": {"prod": {"url": 8080}}}');
    await assert.rejects(readConfig(path), /servers\.prod must be an object with a string "url"/);
    await writeRaw(path, '[]');
    await assert.rejects(readConfig(path), /the top level must be a JSON object/);
  });

  it('checks pinned CAs: their types, that the PEM parses and that it matches its fingerprint', async () => {
    const path = await tempConfigPath();
    const ca = new TestCa();
    const other = new TestCa('another CA');
    const cases: Array<[unknown, RegExp]> = [
      [{ servers: { prod: { url: 'https://a', ca_cert: 42 } } }, /servers\.prod\.ca_cert must be a string/],
      [{ servers: { prod: { url: 'https://a', ca_fingerprint: ['x'] } } }, /servers\.prod\.ca_fingerprint must be a string/],
      [{ servers: { prod: { url: 'https://a', ca_fingerprint: 'md5:00' } } }, /servers\.prod: ca_fingerprint is not sha256:/],
      [{ servers: { prod: { url: 'https://a', ca_cert: 'not a certificate' } } }, /servers\.prod: ca_cert is not a PEM certificate/],
      [{ servers: { prod: { url: 'https://a', ca_cert: ca.cert, ca_fingerprint: other.fingerprint } } }, /servers\.prod: ca_cert does not match ca_fingerprint/],
      [{ servers: {}, pins: [] }, /"pins" must be an object/],
      [{ servers: {}, pins: { 'https://a:1': { ca_cert: ca.cert } } }, /pins\["https:\/\/a:1"\] must be an object with string "ca_cert" and "ca_fingerprint"/],
      [{ servers: {}, pins: { 'https://a:1': { ca_cert: other.cert, ca_fingerprint: ca.fingerprint } } }, /pins\["https:\/\/a:1"\]: ca_cert does not match/],
    ];
    for (const [data, message] of cases) {
      await writeRaw(path, JSON.stringify(data));
      await assert.rejects(readConfig(path), message, JSON.stringify(data).slice(0, 80));
    }
    const good = { servers: { prod: { url: 'https://a', ca_cert: ca.cert, ca_fingerprint: ca.fingerprint } }, pins: { 'https://b:1': { ca_cert: other.cert, ca_fingerprint: other.fingerprint } } };
    await writeRaw(path, JSON.stringify(good));
    assert.deepEqual(await readConfig(path), good);
  });

  it('never overwrites a corrupt file: `config set` fails with exit 1 and leaves it as it was', async () => {
    const path = await tempConfigPath();
    await writeRaw(path, 'not json at all');
    const run = await runPgdb(['config', 'set', 'server.default', 'http://127.0.0.1:8080'], {
      environment: { configPath: path },
    });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: config file .* is corrupt/m);
    assert.equal(await readFile(path, 'utf8'), 'not json at all');
  });

  it('writes mode 0600 in a 0700 directory and leaves no temp file behind', async () => {
    const path = await tempConfigPath();
    await writeConfig(path, { servers: { default: { url: 'http://a:1', token: 't' } } });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(dirname(path))).mode & 0o777, 0o700);
    assert.deepEqual(await readdir(dirname(path)), ['config.json']);
    assert.deepEqual(await readConfig(path), { servers: { default: { url: 'http://a:1', token: 't' } } });
  });

  it('tightens an existing world-readable file to 0600 when it rewrites it', async () => {
    const path = await tempConfigPath();
    await writeRaw(path, '{"servers": {}}');
    await writeConfig(path, { servers: { default: { url: 'http://a:1', token: 't' } } });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  it('keeps keys it does not know when it rewrites the file', async () => {
    const path = await tempConfigPath();
    await writeRaw(path, '{"servers": {}, "future": {"x": 1}}');
    await writeConfig(path, setValue(await readConfig(path), parseKey('server.default'), 'http://a:1'));
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), {
      servers: { default: { url: 'http://a:1' } },
      future: { x: 1 },
    });
  });
});

describe('config keys', () => {
  it('parses server.<alias> and server.<alias>.token', () => {
    assert.deepEqual(parseKey('server.default'), { alias: 'default', field: 'url' });
    assert.deepEqual(parseKey('server.prod-2.token'), { alias: 'prod-2', field: 'token' });
    assert.deepEqual(parseKey('server.prod.ca'), { alias: 'prod', field: 'ca' });
  });

  it('rejects other keys as usage errors', () => {
    for (const key of ['server', 'server.', 'servers.prod', 'server.prod.password', 'server.a b', 'token']) {
      assert.throws(() => parseKey(key), UsageError, key);
    }
  });

  it('sets a URL, normalising it, and drops the token when the address changes (it was meant for the old server)', () => {
    const withToken: ConfigFile = { servers: { prod: { url: 'http://old:1', token: 't' } } };
    const config = setValue(withToken, parseKey('server.prod'), 'https://new.example:8443/');
    assert.deepEqual(config.servers.prod, { url: 'https://new.example:8443' });
    const samePlace = setValue(withToken, parseKey('server.prod'), 'http://old:1/');
    assert.deepEqual(samePlace.servers.prod, { url: 'http://old:1', token: 't' }, 'the same address keeps it');
  });

  it('rejects a URL that is not http(s)', () => {
    for (const url of ['127.0.0.1:8080', 'ftp://host', 'http://host/?x=1', '']) {
      assert.throws(() => setValue({ servers: {} }, parseKey('server.default'), url), /not a valid server URL/, url);
    }
  });

  it('needs a server URL before its token', () => {
    assert.throws(() => setValue({ servers: {} }, parseKey('server.prod.token'), 't'), /has no URL yet/);
  });

  it('gets, lists and unsets values', () => {
    const config: ConfigFile = { servers: { default: { url: 'http://a:1' }, prod: { url: 'http://b:2', token: 't' } } };
    assert.equal(getValue(config, parseKey('server.prod.token')), 't');
    assert.equal(getValue(config, parseKey('server.missing')), undefined);
    assert.deepEqual(listEntries(config), [
      ['server.default', 'http://a:1'],
      ['server.prod', 'http://b:2'],
      ['server.prod.token', 't'],
    ]);
    assert.deepEqual(unsetValue(config, parseKey('server.prod.token')).servers.prod, { url: 'http://b:2' });
    assert.deepEqual(Object.keys(unsetValue(config, parseKey('server.prod')).servers), ['default']);
  });

  it("pins an API key set by hand (server.<alias>.api_key), in pgdb's form or sha256sum's, and refuses anything else", () => {
    const hex = 'ab'.repeat(32);
    const config: ConfigFile = { servers: { prod: { url: 'https://b:2', token: 't' } } };
    const set = setValue(config, parseKey('server.prod.api_key'), `${hex}  -`);
    assert.deepEqual(set.servers.prod, { url: 'https://b:2', token: 't', api_key: `sha256:${hex}` });
    assert.equal(setValue(config, parseKey('server.prod.api_key'), `sha256:${hex}`).servers.prod.api_key, `sha256:${hex}`);
    assert.equal(getValue(set, parseKey('server.prod.api_key')), `sha256:${hex}`);
    assert.deepEqual(listEntries(set).at(-1), ['server.prod.api_key', `sha256:${hex}`]);
    assert.deepEqual(unsetValue(set, parseKey('server.prod.api_key')).servers.prod, { url: 'https://b:2', token: 't' });
    assert.throws(() => setValue(config, parseKey('server.prod.api_key'), 'sha256:abc'), (error: Error) => error instanceof UsageError && /must be sha256:<64 hex digits>/.test(error.message));
    assert.throws(() => setValue(config, parseKey('server.other.api_key'), `sha256:${hex}`), /has no URL yet/);
  });

  it('does not mistake Object.prototype members for servers', () => {
    assert.equal(getValue({ servers: {} }, parseKey('server.constructor')), undefined);
  });
});

describe('pgdb config', () => {
  it('sets, gets and lists, hiding tokens in the list', async () => {
    const environment = { configPath: await tempConfigPath() };
    assert.equal((await runPgdb(['config', 'set', 'server.default', 'http://10.0.0.1:8080/'], { environment })).code, 0);
    assert.equal((await runPgdb(['config', 'set', 'server.default.token', 's3cret'], { environment })).code, 0);

    const get = await runPgdb(['config', 'get', 'server.default'], { environment });
    assert.equal(get.stdout, 'http://10.0.0.1:8080\n');
    assert.equal((await runPgdb(['config', 'get', 'server.default.token'], { environment })).stdout, 's3cret\n');

    const list = await runPgdb(['config', 'list'], { environment });
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^server\.default\s+http:\/\/10\.0\.0\.1:8080$/m);
    assert.match(list.stdout, /^server\.default\.token\s+\(hidden/m);
    assert.doesNotMatch(list.stdout, /s3cret/);
    assert.equal((await runPgdb(['config', 'get'], { environment })).stdout, list.stdout);
  });

  it('fails with exit 1 on a key that is not set, and exit 2 on an unknown key', async () => {
    const environment = { configPath: await tempConfigPath() };
    const missing = await runPgdb(['config', 'get', 'server.prod'], { environment });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /error: server\.prod is not set/);
    assert.equal((await runPgdb(['config', 'set', 'server.a.b.c', 'x'], { environment })).code, 2);
  });

  it('unsets a stored token', async () => {
    const environment = { configPath: await tempConfigPath() };
    await runPgdb(['config', 'set', 'server.default', 'http://a:1'], { environment });
    await runPgdb(['config', 'set', 'server.default.token', 't'], { environment });
    assert.equal((await runPgdb(['config', 'unset', 'server.default.token'], { environment })).code, 0);
    assert.deepEqual(await readConfig(environment.configPath), { servers: { default: { url: 'http://a:1' } } });
  });

  it('says when PGDB_SERVER_URL replaces server.default', async () => {
    const run = await runPgdb(['config', 'list'], { environment: { serverUrl: 'http://env:1' } });
    assert.match(run.stdout, /^nothing stored in /);
    assert.match(run.stderr, /PGDB_SERVER_URL=http:\/\/env:1 replaces server\.default/);
  });
});
