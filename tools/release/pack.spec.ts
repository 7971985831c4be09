import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildRelease, PACKAGE_ROOT, releaseRoot } from '../../infra/release.js';
import { cliPackageJson, stagePackage } from './pack.js';

describe('the CLI package (npm run pack:cli)', () => {
  it('names the pgdb executable alone, with no dependency but the optional Pulumi packages', async () => {
    const source = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8'));
    const pkg = cliPackageJson(source);
    assert.deepEqual(pkg.bin, { pgdb: 'dist/cli/bin/pgdb.cjs' });
    assert.equal(pkg.version, source.version);
    assert.equal('dependencies' in pkg || 'devDependencies' in pkg || 'scripts' in pkg, false);
    assert.deepEqual(Object.keys(pkg.optionalDependencies as object).sort(), ['@pulumi/command', '@pulumi/hcloud', '@pulumi/pulumi']);
  });

  it('carries the release in server/: bootstrap packs the same files with the same release id as from a checkout', async () => {
    const stage = await mkdtemp(join(tmpdir(), 'pgdb-cli-package-'));
    await stagePackage(PACKAGE_ROOT, stage);
    assert.equal(releaseRoot(stage), join(stage, 'server'));
    const cache = await mkdtemp(join(tmpdir(), 'pgdb-release-'));
    const packaged = await buildRelease(cache, releaseRoot(stage));
    const checkout = await buildRelease(cache, PACKAGE_ROOT);
    assert.deepEqual(packaged.files, checkout.files);
    assert.equal(packaged.id, checkout.id);
  });
});
