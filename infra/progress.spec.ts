import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProgressDisplay, summarizeChanges } from './progress.js';

const meta = (op: string, type: string, name: string) => ({ op, type, urn: `urn:pulumi:prod::pgdb::${type}::${name}` });

describe('infra progress', () => {
  it('shows changing resources with their elapsed time, not unchanged ones, the stack or providers', () => {
    const lines: string[] = [];
    let now = 0;
    const display = new ProgressDisplay((line) => lines.push(line), () => now);
    display.onEvent({ resourcePreEvent: { metadata: meta('create', 'pulumi:pulumi:Stack', 'pgdb-prod') } });
    display.onEvent({ resourcePreEvent: { metadata: meta('create', 'pulumi:providers:hcloud', 'default') } });
    display.onEvent({ resourcePreEvent: { metadata: meta('same', 'hcloud:index/sshKey:SshKey', 'ssh-key') } });
    display.onEvent({ resourcePreEvent: { metadata: meta('create', 'hcloud:index/server:Server', 'server') } });
    now = 12_340;
    display.onEvent({ resOutputsEvent: { metadata: meta('create', 'hcloud:index/server:Server', 'server') } });
    display.onEvent({ resourcePreEvent: { metadata: meta('update', 'hcloud:index/firewall:Firewall', 'firewall') } });
    now = 13_000;
    display.onEvent({ resOpFailedEvent: { metadata: meta('update', 'hcloud:index/firewall:Firewall', 'firewall') } });
    display.onEvent({ diagnosticEvent: { message: 'boom', severity: 'error' } });
    display.onEvent({ diagnosticEvent: { message: 'fyi', severity: 'info' } });
    assert.deepEqual(lines, [
      'creating Server server...',
      'created Server server (12.3 s)',
      'updating Firewall firewall...',
      'failed updating Firewall firewall (0.7 s)',
    ]);
    assert.deepEqual(display.errors, ['boom']);
    assert.deepEqual(display.failedAfterMs, [660]);
  });

  it('summarises the changes', () => {
    assert.equal(summarizeChanges({ create: 2, same: 3 }), '2 created, 3 unchanged');
    assert.equal(summarizeChanges({}), 'no changes');
  });
});
