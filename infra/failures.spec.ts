import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explainFailure, redact, withoutCommands } from './failures.js';

const context = { stack: 'prod', secrets: ['s3cr3t-token-value'] };

describe('infra failures', () => {
  it('explains what the provider reports as one line with a hint', () => {
    const cases: Array<[string[], RegExp]> = [
      [['unable to authenticate (unauthorized, 5c4a1f)', 'update failed'], /^Hetzner Cloud rejected the API token \(401 unauthorized\)$/],
      [['could not validate provider configuration: entered token is invalid (must be exactly 64 characters long)'], /^the Hetzner Cloud API token is malformed/],
      [['server type cx999 not found'], /^unknown Hetzner server type "cx999"$/],
      [["invalid input in field 'server_type' (invalid_input, 1a2b)"], /^unknown Hetzner server type ""$/],
      [['image debian-99 for architecture x86 not found'], /^unknown Hetzner image "debian-99"$/],
      [['after 30 failed attempts: dial tcp 203.0.113.10:22: connect: connection refused'], /^cannot reach SSH on 203\.0\.113\.10 port 22: connection refused \(30 attempts\)$/],
      [['dial tcp [2001:db8::1]:22: i/o timeout'], /^cannot reach SSH on \[2001:db8::1\] port 22: i\/o timeout$/],
      [
        ['after 30 failed attempts: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain'],
        /^the server refused the SSH key$/,
      ],
      [['error: the stack is currently locked by 1 lock(s)'], /^the stack "prod" is locked by another pgdb or pulumi run$/],
      [['Process exited with status 1\nstderr:\n[pgdb-install] ERROR: PGDB_TOKEN must be at least 16 characters'], /^install\.sh failed on the server: PGDB_TOKEN must be at least 16 characters$/],
      [
        ["Process exited with status 1\nstderr:\n[pgdb-bootstrap] ERROR: /var/lib/pgdb/backup.key on the server holds another backup key than --backup-key-file; a server's key is never overwritten, and nothing was changed"],
        /^\/var\/lib\/pgdb\/backup\.key on the server holds another backup key than --backup-key-file; .*nothing was changed$/,
      ],
      [['volume name is already used (uniqueness_error, 1)', 'update failed', 'Command failed with exit code 1: pulumi up\n 2 errored'], /^the Pulumi run failed: volume name is already used/],
    ];
    for (const [messages, expected] of cases) {
      const error = explainFailure(messages, context);
      assert.match(error.message, expected, messages.join(' | '));
      assert.ok(error.hint, `a hint for ${messages[0]}`);
      assert.equal(error.message.includes('\n'), false);
    }
  });

  it('says how many times and how long SSH was tried, as the command provider retries it', () => {
    const error = explainFailure(['after 30 failed attempts: dial tcp 127.0.0.7:22: connect: connection refused', 'update failed'], { ...context, failedAfterMs: 111_600 });
    assert.equal(error.message, 'cannot reach SSH on 127.0.0.7 port 22: connection refused (30 attempts in 1 min 52 s)');
    assert.match(explainFailure(['dial tcp 127.0.0.7:22: connect: connection refused'], { ...context, failedAfterMs: 4_200 }).message, /\(in 4 s\)$/);
  });

  it('never repeats a secret, in the message or the details', () => {
    const error = explainFailure(['Process exited with status 2: PGDB_TOKEN=s3cr3t-token-value bash install.sh', 'update failed', 'x'], context);
    assert.equal(`${error.message}${error.hint}${error.detail}`.includes('s3cr3t-token-value'), false);
    assert.equal(redact('a s3cr3t-token-value b', ['s3cr3t-token-value']), 'a [secret] b');
  });

  it('reads a failed remote command by its output, not by the script the provider quotes before it (which names every error it could print)', () => {
    // The command provider's shape: `<error>: running "<the command, Go-quoted>":\n<output>`.
    const script = 'set -eu\necho "[pgdb-bootstrap] ERROR: $key on the server holds another backup key than --backup-key-file" >&2\necho "[pgdb-install] ERROR: $1" >&2';
    const failure = `Process exited with status 1: running ${JSON.stringify(script)}:\n[pgdb-install] ERROR: Docker did not start`;
    const error = explainFailure([failure, 'update failed', 'x'], context);
    assert.equal(error.message, 'install.sh failed on the server: Docker did not start');
    assert.equal(error.detail?.includes('backup key'), false, 'the script is not in the details either');
    assert.equal(withoutCommands('x: running "a\\nb \\"c\\"":\nout'), 'x: running [the command]:\nout');
  });

  it('never repeats a secret in base64 or base64url, with or without the newline a file adds (how the bootstrap script carries them)', () => {
    const secret = 'S3-secret-key-0123456789';
    const forms = [secret, `${secret}\n`].flatMap((value) => [Buffer.from(value).toString('base64'), Buffer.from(value).toString('base64url')]);
    for (const form of [...forms, ...forms.map((f) => f.replace(/=+$/, ''))]) {
      const error = explainFailure([`Process exited with status 1: printf %s '${form}' | base64 -d`, 'update failed', 'x'], { stack: 'prod', secrets: [secret] });
      assert.equal(`${error.message}${error.hint}${error.detail}`.includes(form), false, form);
    }
    assert.equal(redact(`keep ${Buffer.from('other-value-1\n').toString('base64')}`, [secret]).includes('[secret]'), false, 'other values stay');
  });
});
