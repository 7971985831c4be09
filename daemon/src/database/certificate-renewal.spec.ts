import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RELOAD_CONFIGURATION } from '../postgres/postgres-container.js';
import { isIssuedBy, notAfterOf } from '../tls/certificates.js';
import { FakeDocker } from '../testing/fake-docker.js';
import { testRecord } from '../testing/records.js';
import { createTestApp } from '../testing/test-app.js';
import { CertificateRenewal } from './certificate-renewal.js';
import { ReconcileService } from './reconcile.service.js';

/** The seeded records have no stanza: with backups on, the start would re-create their containers to add archiving. */
const NO_BACKUPS = { PGDB_BACKUP: 'off' };

const INSTANCE = 'abcdef012345';
const DAY = 24 * 60 * 60 * 1000;

describe('certificate renewal', () => {
  it('copies a new certificate into a running container and reloads Postgres, without re-creating it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-renewal-'));
    const soon = new Date(Date.now() + 10 * DAY).toISOString();
    const later = new Date(Date.now() + 200 * DAY).toISOString();
    const records = [testRecord('due', { tls_not_after: soon }), testRecord('fresh', { tls_not_after: later, host_port: 40051 })];
    writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: INSTANCE, items: records }), { mode: 0o600 });
    const docker = new FakeDocker();
    for (const r of records) {
      const labels = { 'pgdb.managed': 'true', 'pgdb.instance': INSTANCE, 'pgdb.name': r.name };
      docker.volumes.set(r.volume_name, labels);
      docker.seedContainer(r.container_id, r.volume_name, labels);
    }
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      // The pass at start has already renewed the due database.
      const renewal = t.app.get(CertificateRenewal);
      await renewal.renewDue();
      const container = docker.containers.get('id-due')!;
      const cert = container.files.get('/etc/pgdb/server.crt');
      assert.ok(cert, 'a certificate was copied into the container');
      assert.equal(cert.uid, 999);
      assert.equal(container.files.get('/etc/pgdb/server.key')?.mode, 0o600);
      assert.ok(isIssuedBy(cert.content, readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8')));
      assert.equal(docker.containers.size, 2, 'no container was re-created');
      assert.equal(docker.containers.get('id-fresh')!.files.get('/etc/pgdb/server.crt'), undefined, 'a fresh certificate is left alone');
      const reloads = t.probe.executed.filter((e) => e.statements.includes(RELOAD_CONFIGURATION));
      // In the maintenance database, which no tenant owns.
      assert.deepEqual(reloads.map((e) => [e.target.user, e.target.port, e.target.database]), [['pgdb_admin', 40050, 'postgres']]);
      const saved = JSON.parse(readFileSync(join(dataDir, 'registry.json'), 'utf8')).items.find((i: { name: string }) => i.name === 'due');
      assert.equal(saved.tls_not_after, notAfterOf(cert.content).toISOString());
      // Nothing is due any more.
      assert.equal(await renewal.renewDue(), 0);
    } finally {
      await t.close();
    }
  });

  it('leaves a stopped container for later and retries a failure at the next pass', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-renewal-'));
    const record = testRecord('sleeping', { tls_not_after: new Date(Date.now() + DAY).toISOString() });
    writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: INSTANCE, items: [record] }), { mode: 0o600 });
    const docker = new FakeDocker();
    const labels = { 'pgdb.managed': 'true', 'pgdb.instance': INSTANCE, 'pgdb.name': record.name };
    docker.volumes.set(record.volume_name, labels);
    docker.seedContainer(record.container_id, record.volume_name, labels);
    const t = await createTestApp({ dataDir, docker, env: NO_BACKUPS });
    try {
      // Down after the start's reconciliation (which starts a container that should run).
      await t.app.get(ReconcileService).ensureReconciled();
      docker.containers.get(record.container_id)!.running = false;
      const renewal = t.app.get(CertificateRenewal);
      assert.equal(await renewal.renewDue(), 0);
      docker.containers.get(record.container_id)!.running = true;
      assert.equal(await renewal.renewDue(), 1);
    } finally {
      await t.close();
    }
  });
});
