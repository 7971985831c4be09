/**
 * The CLI side of `pgdb infra` and of `config set <key> -`, in-process: flag
 * checks (exit 2 before any Pulumi code loads), stdin values, confirmations.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { runPgdb, tempConfigPath } from './testing/memory-context.js';

describe('pgdb config set <key> -', () => {
  it('reads the Hetzner token from standard input and stores it 0600, never echoing it', async () => {
    const configPath = await tempConfigPath();
    const token = 'h'.repeat(64);
    const run = await runPgdb(['config', 'set', 'hcloud.token', '-'], { environment: { configPath }, input: `${token}\n` });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `saved hcloud.token in ${configPath}\n`);
    assert.equal(JSON.parse(await readFile(configPath, 'utf8')).hcloud.token, token);
    assert.equal((await stat(configPath)).mode & 0o777, 0o600);
    const listed = await runPgdb(['config', 'list'], { environment: { configPath } });
    assert.match(listed.stdout, /^hcloud\.token\s+\(hidden\)$/m);
    assert.equal(`${run.stdout}${run.stderr}${listed.stdout}`.includes(token), false);
  });

  it('reads any value the same way, e.g. a server token', async () => {
    const configPath = await tempConfigPath();
    await runPgdb(['config', 'set', 'server.prod', 'http://203.0.113.10:8080'], { environment: { configPath } });
    const run = await runPgdb(['config', 'set', 'server.prod.token', '-'], { environment: { configPath }, input: 'secret-token-value' });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(await readFile(configPath, 'utf8')).servers.prod.token, 'secret-token-value');
  });

  it('refuses empty or multi-line input with a usage error', async () => {
    for (const input of ['', '\n', 'a\nb\n']) {
      const run = await runPgdb(['config', 'set', 'hcloud.token', '-'], { input });
      assert.equal(run.code, 2, JSON.stringify(input));
      assert.match(run.stderr, /^error: hcloud\.token: standard input must hold one non-empty line$/m);
    }
  });

  it('warns when HCLOUD_TOKEN will win over the stored token', async () => {
    const run = await runPgdb(['config', 'set', 'hcloud.token', '-'], {
      input: 'x'.repeat(64),
      environment: { infra: { hcloudToken: 'y'.repeat(64), cacheDir: '/nonexistent' } },
    });
    assert.equal(run.code, 0);
    assert.match(run.stderr, /^warning: HCLOUD_TOKEN is set and takes precedence/m);
  });
});

describe('pgdb infra flags', () => {
  const usage = async (args: string[], message: RegExp) => {
    const run = await runPgdb(['infra', ...args], { environment: { infra: { cacheDir: '/nonexistent' } } });
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
  };

  it('rejects bad flags with exit 2 before loading anything', async () => {
    await usage(['init', '--allow-api', '203.0.113.0/33'], /--allow-api "203\.0\.113\.0\/33" is not a CIDR/);
    await usage(['init', '--allow-ssh', 'example.com'], /--allow-ssh "example\.com" is not a CIDR/);
    await usage(['init', '--location', 'mars1'], /unknown location "mars1"/);
    await usage(['init', '--volume-size', '5'], /--volume-size must be a whole number of GB from 10 to 10240/);
    await usage(['init', '--name', 'Prod!'], /invalid stack name "Prod!"/);
    await usage(['init', '--type', 'CX 22'], /--type "CX 22" is not a Hetzner name/);
    await usage(['bootstrap', '--daemon-env', 'PGDB_TOKEN=x'], /--daemon-env PGDB_TOKEN is not accepted/);
    await usage(['init', '--nope'], /Unknown argument: nope/);
  });

  it('destroy asks on a terminal, and needs --yes elsewhere', async () => {
    const piped = await runPgdb(['infra', 'destroy', '--name', 'prod']);
    assert.equal(piped.code, 2);
    assert.match(piped.stderr, /^error: refusing to destroy the stack "prod" without --yes$/m);
    const typedWrong = await runPgdb(['infra', 'destroy', '--name', 'prod'], { typed: ['prdo'] });
    assert.equal(typedWrong.code, 1);
    assert.match(typedWrong.stderr, /Type the stack name to confirm: /);
    assert.match(typedWrong.stderr, /error: aborted: the name you typed does not match; nothing was removed$/m);
  });

  it('documents the defaults in --help', async () => {
    const run = await runPgdb(['infra', 'init', '--help']);
    assert.equal(run.code, 0);
    for (const text of ['[default: fsn1]', '[default: cx22]', '[default: debian-12]', '[default: 20]', '[default: 0.0.0.0/0 ::/0]', '[default: none]']) {
      assert.ok(run.stdout.includes(text), text);
    }
  });
});
