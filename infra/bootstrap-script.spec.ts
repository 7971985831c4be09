import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bootstrapScript } from './bootstrap-script.js';

const input = {
  device: '/dev/disk/by-id/scsi-0HC_Volume_42',
  archivePath: '/root/pgdb-release-abc.tar.gz',
  releaseId: 'abc',
  publicHost: '203.0.113.10',
  bindAddress: '203.0.113.10',
  postgresPorts: '15432-16431',
  daemonToken: 'a'.repeat(64),
  daemonEnv: { PGDB_DEFAULT_VERSION: '17' },
};

describe('infra bootstrap script', () => {
  it('mounts the volume for the data directory and Docker, then runs install.sh with the values inline', () => {
    const script = bootstrapScript(input);
    assert.match(script, /^dev=\/dev\/disk\/by-id\/scsi-0HC_Volume_42$/m);
    assert.match(script, /for pair in pgdb:\/var\/lib\/pgdb docker:\/var\/lib\/docker; do/);
    assert.match(script, /x-systemd\.requires-mounts-for=\$mnt/);
    const install = script.trim().split('\n').at(-1)!;
    assert.equal(
      install,
      `PGDB_TOKEN=${'a'.repeat(64)} PGDB_LISTEN=203.0.113.10:8080 PGDB_PUBLIC_HOST=203.0.113.10 PGDB_PORT_RANGE=15432-16431 PGDB_POSTGRES_BIND=203.0.113.10 PGDB_DEFAULT_VERSION=17 bash /opt/pgdb-src/abc/scripts/install.sh`,
    );
    assert.match(bootstrapScript({ ...input, bindAddress: '' }), /PGDB_LISTEN=:8080 PGDB_PUBLIC_HOST/);
  });

  it('refuses values that would not be one shell word', () => {
    assert.throws(() => bootstrapScript({ ...input, daemonToken: 'x; reboot' }), /PGDB_TOKEN is not one plain word/);
    assert.throws(() => bootstrapScript({ ...input, device: '/dev/$(id)' }), /device is not one plain word/);
  });
});
