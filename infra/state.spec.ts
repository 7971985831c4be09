import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { removeStaleLocks, stackLocks, stateSettings } from './state.js';

describe('infra state', () => {
  it('keeps state in a file backend under the config directory, with a generated passphrase stored 0600', async () => {
    const configDir = await mkdtemp(join(tmpdir(), 'pgdb-state-'));
    const first = await stateSettings({ configDir });
    assert.equal(first.backendUrl, `file://${join(configDir, 'infra', 'state')}`);
    assert.equal(first.backendDir, join(configDir, 'infra', 'state'));
    assert.ok(first.passphrase && first.passphrase.length >= 40);
    assert.equal((await stat(join(configDir, 'infra', 'passphrase'))).mode & 0o777, 0o600);
    assert.equal((await stateSettings({ configDir })).passphrase, first.passphrase);
  });

  it('respects PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE, generating nothing', async () => {
    const configDir = await mkdtemp(join(tmpdir(), 'pgdb-state-'));
    const settings = await stateSettings({ configDir, backendUrl: 's3://bucket/pgdb', passphrase: 'mine' });
    assert.equal(settings.backendUrl, 's3://bucket/pgdb');
    assert.equal(settings.backendDir, undefined);
    assert.equal(settings.passphrase, 'mine');
    await assert.rejects(readFile(join(configDir, 'infra', 'passphrase')), { code: 'ENOENT' });
  });

  it('removes a lock left by a process of this machine that is gone, and leaves live ones', async () => {
    const backend = await mkdtemp(join(tmpdir(), 'pgdb-locks-'));
    const dir = join(backend, '.pulumi', 'locks', 'organization', 'pgdb', 'prod');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'dead.json'), JSON.stringify({ pid: 2 ** 22 + 12345, hostname: hostname(), username: 'u' }));
    await writeFile(join(dir, 'live.json'), JSON.stringify({ pid: process.pid, hostname: hostname(), username: 'u' }));
    await writeFile(join(dir, 'elsewhere.json'), JSON.stringify({ pid: 2 ** 22 + 12345, hostname: 'another-host', username: 'u' }));
    const removed = await removeStaleLocks(backend, 'prod');
    assert.deepEqual(removed.map((lock) => lock.path), [join(dir, 'dead.json')]);
    assert.deepEqual((await stackLocks(backend, 'prod')).map((lock) => lock.path).sort(), [join(dir, 'elsewhere.json'), join(dir, 'live.json')]);
  });
});
