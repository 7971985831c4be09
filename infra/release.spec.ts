import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildRelease, PACKAGE_ROOT, releaseRoot } from './release.js';

describe('infra release archive', () => {
  it('a checkout is its own release root', () => {
    assert.equal(releaseRoot(PACKAGE_ROOT), PACKAGE_ROOT);
  });

  it('packs what install.sh builds from, and only that, named by its content', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'pgdb-release-'));
    const release = await buildRelease(cache, PACKAGE_ROOT);
    assert.match(release.id, /^[0-9a-f]{16}$/);
    const listed = execFileSync('tar', ['-tzf', release.archive], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(listed, release.files);
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'scripts/install.sh', 'systemd/pgdbd.service', 'daemon/src/main.ts']) {
      assert.ok(listed.includes(needed), needed);
    }
    assert.deepEqual(listed.filter((file) => /^(cli|infra|e2e|node_modules|dist)\//.test(file) || file.endsWith('.spec.ts')), []);
    const again = await buildRelease(cache, PACKAGE_ROOT);
    assert.equal(again.id, release.id);
    assert.equal(again.archive, release.archive);
  });
});
