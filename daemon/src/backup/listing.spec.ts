import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupItem } from '../../../contract/api.js';
import { createLogger } from '../common/logger.js';
import type { DestroyedRecord } from '../registry/registry.types.js';
import { testRecord } from '../testing/records.js';
import { BackupListing, type Source } from './listing.js';

const identity = (stanza: string) => ({ stanza, cipher_pass: 'x'.repeat(43) });
const item = (label: string): BackupItem => ({
  label,
  type: 'full',
  started_at: '2026-12-01T00:00:00.000Z',
  finished_at: '2026-12-01T00:01:00.000Z',
  size_bytes: 1,
  repo_bytes: 1,
});

/** A listing whose registry holds `destroyed` and whose task containers list `backups` by stanza (a stanza mapped to an Error fails). */
function listing(destroyed: DestroyedRecord[], backups: Record<string, BackupItem[] | Error>): { listing: BackupListing; asked: string[] } {
  const registry = { destroyed: () => Promise.resolve(destroyed) };
  const built = new BackupListing(
    {} as never,
    {} as never,
    {} as never,
    registry as never,
    {} as never,
    {} as never,
    createLogger('silent'),
  );
  const asked: string[] = [];
  built.backupsOf = (source: Source) => {
    asked.push(source.identity.stanza);
    const listed = backups[source.identity.stanza] ?? [];
    return listed instanceof Error ? Promise.reject(listed) : Promise.resolve(listed);
  };
  return { listing: built, asked };
}

function gone(name: string, stanza: string, at: string, version = 15): DestroyedRecord {
  return { name, postgres_version: version, backup: identity(stanza), destroyed_at: at, size_gb: 1, memory_mb: 256 };
}

describe('BackupListing.olderCluster', () => {
  const record = testRecord('shop', {
    backup: identity('now'),
    previous: { container_id: 'c-old', volume_name: 'v-old', postgres_version: 15, admin_password: 'a', backup: identity('kept') },
  });
  const current: Source = { kind: 'running', name: 'shop', record, identity: record.backup!, version: 17, sizeGb: 1, memoryMb: 512 };

  it('asks the cluster an upgrade kept first, then the destroyed ones of that name, newest first, never the current stanza or another name', async () => {
    const destroyed = [
      gone('shop', 'oldest', '2026-11-01T00:00:00.000Z'),
      gone('other', 'not-mine', '2026-11-15T00:00:00.000Z'),
      gone('shop', 'now', '2026-11-20T00:00:00.000Z'),
      gone('shop', 'newer', '2026-11-25T00:00:00.000Z'),
    ];
    const { listing: built, asked } = listing(destroyed, {});
    assert.equal(await built.olderCluster('shop', current, () => false), undefined, 'none fits');
    assert.deepEqual(asked, ['kept', 'newer', 'oldest']);
  });

  it('answers with the first that fits, with its own version and backups, and asks no further', async () => {
    const { listing: built, asked } = listing([gone('shop', 'oldest', '2026-11-01T00:00:00.000Z', 14), gone('shop', 'newer', '2026-11-25T00:00:00.000Z', 16)], {
      kept: [item('20261101-000000F')],
      newer: [item('20261125-000000F')],
      oldest: [item('20261020-000000F')],
    });
    const found = await built.olderCluster('shop', current, (_, backups) => backups.some((b) => b.label === '20261125-000000F'));
    assert.equal(found?.source.identity.stanza, 'newer');
    assert.equal(found?.source.version, 16);
    assert.equal(found?.source.kind, 'destroyed');
    assert.deepEqual(found?.backups.map((b) => b.label), ['20261125-000000F']);
    assert.deepEqual(asked, ['kept', 'newer']);
  });

  it('takes a cluster whose backups cannot be listed as one without backups, and goes on to the next', async () => {
    const { listing: built, asked } = listing([gone('shop', 'oldest', '2026-11-01T00:00:00.000Z')], {
      kept: new Error('the repository does not answer'),
      oldest: [item('20261020-000000F')],
    });
    const found = await built.olderCluster('shop', current, (_, backups) => backups.length > 0);
    assert.equal(found?.source.identity.stanza, 'oldest');
    assert.deepEqual(asked, ['kept', 'oldest']);
  });
});
