import assert from 'node:assert/strict';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InfraError } from './failures.js';
import { findOnPath, pulumiCommand, PULUMI_VERSION } from './pulumi-cli.js';

describe('which Pulumi CLI runs the stack', () => {
  it('finds pulumi on PATH', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgdb-path-'));
    await writeFile(join(dir, 'pulumi'), '#!/bin/sh\necho v3.248.0\n');
    await chmod(join(dir, 'pulumi'), 0o755);
    assert.equal(findOnPath('pulumi', `/nonexistent:${dir}`), join(dir, 'pulumi'));
    assert.equal(findOnPath('pulumi', '/nonexistent'), undefined);
  });

  it('without pulumi and without a way to install it, says how to install it', async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'pgdb-cache-'));
    const lines: string[] = [];
    const failingInstall = async () => {
      throw new Error('getaddrinfo ENOTFOUND get.pulumi.com');
    };
    await assert.rejects(
      pulumiCommand({ path: '/nonexistent', cacheDir, log: (line) => lines.push(line) }, failingInstall),
      (error: InfraError) => {
        assert.ok(error instanceof InfraError);
        assert.match(error.message, new RegExp(`^no Pulumi CLI: none on PATH, and installing v${PULUMI_VERSION} failed \\(getaddrinfo ENOTFOUND get\\.pulumi\\.com\\)$`));
        assert.match(error.hint ?? '', /get\.pulumi\.com \| sh -s -- --version 3\.248\.0.*PGDB_PULUMI/);
        return true;
      },
    );
    assert.deepEqual(lines, [`installing the Pulumi CLI v${PULUMI_VERSION} under ${join(cacheDir, 'pulumi', `v${PULUMI_VERSION}`)} (once)`]);
  });

  it('refuses a PGDB_PULUMI that does not exist', async () => {
    await assert.rejects(pulumiCommand({ pulumiBinary: '/nonexistent/pulumi', cacheDir: tmpdir(), log: () => undefined }), /PGDB_PULUMI points at \/nonexistent\/pulumi/);
  });
});
