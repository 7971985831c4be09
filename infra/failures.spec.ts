import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explainFailure, redact } from './failures.js';

const context = { stack: 'prod', secrets: ['s3cr3t-token-value'] };

describe('infra failures', () => {
  it('explains what the provider reports as one line with a hint', () => {
    const cases: Array<[string[], RegExp]> = [
      [['unable to authenticate (unauthorized, 5c4a1f)', 'update failed'], /^Hetzner Cloud rejected the API token \(401 unauthorized\)$/],
      [['invalid token: the token must be exactly 64 characters long'], /^the Hetzner Cloud API token is malformed/],
      [['server type cx999 not found'], /^unknown Hetzner server type "cx999"$/],
      [["invalid input in field 'server_type' (invalid_input, 1a2b)"], /^unknown Hetzner server type ""$/],
      [['image debian-99 for architecture x86 not found'], /^unknown Hetzner image "debian-99"$/],
      [['dial tcp 203.0.113.10:22: connect: connection refused (after 30 attempts)'], /^cannot reach SSH on 203\.0\.113\.10 port 22: connection refused \(after 30 attempts\)$/],
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

  it('never repeats a secret, in the message or the details', () => {
    const error = explainFailure(['Process exited with status 2: PGDB_TOKEN=s3cr3t-token-value bash install.sh', 'update failed', 'x'], context);
    assert.equal(`${error.message}${error.hint}${error.detail}`.includes('s3cr3t-token-value'), false);
    assert.equal(redact('a s3cr3t-token-value b', ['s3cr3t-token-value']), 'a [secret] b');
  });
});
