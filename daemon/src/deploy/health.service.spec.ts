import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { BackupEvents } from '../database/backup-events.js';
import type { DaemonConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import type { TlsService } from '../tls/tls.service.js';
import type { DeployService } from './deploy.service.js';
import { HealthService } from './health.service.js';

/** A HealthService over fakes of its parts: Docker's answer, backup problems, the ACME problem. */
function healthWith(parts: { docker: boolean; acme?: string; backups?: () => Promise<Array<{ database: string; kind: string; problem: string }>> }, webhook?: string) {
  const events = new BackupEvents();
  if (parts.backups) events.report({ stateFor: () => undefined, problemEntries: parts.backups, location: () => null });
  let attempt: () => void = () => undefined;
  const tls = {
    acmeProblem: () => parts.acme,
    onAcmeAttempt: (listener: () => void) => {
      attempt = listener;
      return () => undefined;
    },
  } as unknown as TlsService;
  const config = { publicHost: '198.51.99.7', backup: { alertWebhook: webhook } } as unknown as DaemonConfig;
  const deploy = { dockerReachable: async () => parts.docker } as unknown as DeployService;
  const health = new HealthService(config, deploy, events, tls, createLogger('silent'));
  return { health, events, attempt: () => attempt() };
}

describe('HealthService: one problem set for health and alerts', () => {
  it('lists Docker, every backup problem and the ACME problem, each with its database (null: the server) and kind', async () => {
    const { health } = healthWith({
      docker: false,
      acme: 'ACME certificate for 198.51.99.7: the ACME directory https://acme.example/dir is unreachable: ECONNREFUSED; serving pgdb\'s own CA',
      backups: async () => [{ database: 'shop', kind: 'drill', problem: 'the restore drill of "shop" failed: x' }],
    });
    const { dockerReachable, entries } = await health.problems();
    assert.equal(dockerReachable, false);
    assert.deepEqual(
      entries.map((e) => [e.database, e.kind]),
      [[null, 'docker'], ['shop', 'drill'], [null, 'acme']],
    );
  });

  it('backup state that cannot be read is a problem of its own, not a failure of health', async () => {
    const { health } = healthWith({ docker: true, backups: async () => Promise.reject(new Error('registry locked')) });
    assert.deepEqual((await health.problems()).entries, [{ database: null, kind: 'backup-state', problem: 'backup state unavailable: registry locked' }]);
  });

  it('an ACME problem reaches the webhook when an ACME attempt ends, with backups off, and its end is sent as resolved', async () => {
    const bodies: any[] = [];
    const server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk) => (text += chunk));
      request.on('end', () => {
        bodies.push(JSON.parse(text));
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const parts: { docker: boolean; acme?: string } = { docker: true, acme: undefined };
      const { health, attempt } = healthWith(parts, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
      const problem = "ACME certificate for 198.51.99.7: PGDB_DOMAIN x.invalid does not resolve (ENOTFOUND); serving pgdb's own CA";
      health.onApplicationBootstrap();
      attempt();
      await health.checked();
      parts.acme = problem;
      attempt();
      await health.checked();
      parts.acme = undefined;
      attempt();
      await health.checked();
      await health.alerts.settled();
      health.onApplicationShutdown();
      assert.deepEqual(
        bodies.map((b) => [b.event, b.server, b.database, b.problem]),
        [
          ['problem', '198.51.99.7', null, problem],
          ['resolved', '198.51.99.7', null, problem],
        ],
      );
    } finally {
      server.close();
    }
  });
});
