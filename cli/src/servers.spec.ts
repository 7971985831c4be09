import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { writeConfig, type ConfigFile, type Environment } from './config.js';
import { resolveServer } from './servers.js';
import { tempConfigPath } from './testing/memory-context.js';

const CONFIG: ConfigFile = {
  servers: {
    default: { url: 'http://default.example:8080', token: 'default-token' },
    prod: { url: 'https://prod.example', token: 'prod-token' },
    staging: { url: 'http://staging.example:8080' },
  },
};

async function environment(overrides: Partial<Environment> = {}): Promise<Environment> {
  const configPath = await tempConfigPath();
  await writeConfig(configPath, CONFIG);
  return { configPath, ...overrides };
}

describe('resolveServer', () => {
  it('uses server.default and its stored token by default', async () => {
    const server = await resolveServer(await environment(), undefined);
    assert.equal(server.url, 'http://default.example:8080');
    assert.equal(server.token, 'default-token');
    assert.equal(server.tokenSource, 'server.default.token');
  });

  it('selects a server by alias with --server', async () => {
    const server = await resolveServer(await environment(), 'prod');
    assert.deepEqual([server.url, server.token, server.urlSource], ['https://prod.example', 'prod-token', 'server.prod']);
  });

  it('prefers PGDB_TOKEN over a stored token', async () => {
    const server = await resolveServer(await environment({ token: 'env-token' }), 'prod');
    assert.deepEqual([server.token, server.tokenSource], ['env-token', 'PGDB_TOKEN']);
  });

  it('lets PGDB_SERVER_URL replace the default server, but not an explicit --server', async () => {
    const env = await environment({ serverUrl: 'http://env.example:9000/', token: 't' });
    assert.equal((await resolveServer(env, undefined)).url, 'http://env.example:9000');
    assert.equal((await resolveServer(env, 'prod')).url, 'https://prod.example');
  });

  it('accepts a literal URL for --server', async () => {
    const server = await resolveServer(await environment({ token: 't' }), 'http://10.1.2.3:8080');
    assert.deepEqual([server.url, server.urlSource], ['http://10.1.2.3:8080', '--server']);
  });

  it('sends a stored token only to the URL it was stored for', async () => {
    const env = await environment({ serverUrl: 'http://elsewhere.example:8080' });
    await assert.rejects(resolveServer(env, undefined), /no token for http:\/\/elsewhere\.example:8080/);
    const sameAsProd = await resolveServer(await environment(), 'https://prod.example/');
    assert.deepEqual([sameAsProd.token, sameAsProd.tokenSource], ['prod-token', 'server.prod.token']);
  });

  it('explains a missing token, an unknown alias and a missing default', async () => {
    await assert.rejects(resolveServer(await environment(), 'staging'), (error: Error & { hint?: string }) => {
      assert.match(error.message, /no token for http:\/\/staging\.example:8080/);
      assert.match(error.hint ?? '', /PGDB_TOKEN.*server\.staging\.token/);
      return true;
    });
    await assert.rejects(resolveServer(await environment({ token: 't' }), 'nope'), (error: Error & { hint?: string }) => {
      assert.equal(error.message, 'unknown server alias "nope"');
      assert.match(error.hint ?? '', /configured: default, prod, staging/);
      return true;
    });
    const empty: Environment = { configPath: await tempConfigPath(), token: 't' };
    await assert.rejects(resolveServer(empty, undefined), /no server configured/);
  });

  it('does not read the config file when the environment says everything', async () => {
    const configPath = await tempConfigPath();
    await mkdir(dirname(configPath), { recursive: true });
    await writeFile(configPath, 'corrupt');
    const env: Environment = { configPath, token: 't', serverUrl: 'http://a:1' };
    assert.equal((await resolveServer(env, undefined)).url, 'http://a:1');
    await assert.rejects(resolveServer({ ...env, token: undefined }, undefined), /is corrupt/);
  });
});
