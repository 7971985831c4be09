import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Alerts, webhookProblem, type AlertBody } from './alerts.js';

const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } } as never;

/** A receiver on loopback answering 500 to the first `failures` requests. */
async function receiver(failures: number) {
  const received: Array<{ status: number; body: AlertBody }> = [];
  let left = failures;
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => {
      const status = left > 0 ? 500 : 200;
      if (left > 0) left--;
      received.push({ status, body: JSON.parse(text) });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, close: () => server.close() };
}

describe('alerts', () => {
  it('posts each problem that appears and each that clears, once, matched by database and kind', async () => {
    const hook = await receiver(0);
    const alerts = new Alerts({ url: hook.url, server: 'db.example', backoffMs: 10 }, silent);
    alerts.observe([{ database: 'shop', kind: 'drill', problem: 'drill failed' }]);
    // The same problem in other words (another failed drill) is not sent again.
    alerts.observe([{ database: 'shop', kind: 'drill', problem: 'drill failed again' }]);
    alerts.observe([{ database: null, kind: 'docker', problem: 'docker down' }]);
    await alerts.settled();
    hook.close();
    assert.deepEqual(
      hook.received.map((r) => [r.body.event, r.body.database, r.body.problem, r.body.server]),
      [
        ['problem', 'shop', 'drill failed', 'db.example'],
        ['problem', null, 'docker down', 'db.example'],
        ['resolved', 'shop', 'drill failed again', 'db.example'],
      ],
    );
    assert.ok(hook.received.every((r) => !Number.isNaN(Date.parse(r.body.at))));
  });

  it('retries with backoff until the receiver takes it, and gives up after the attempts', async () => {
    const flaky = await receiver(2);
    const alerts = new Alerts({ url: flaky.url, server: 's', backoffMs: 10 }, silent);
    alerts.observe([{ database: 'a', kind: 'k', problem: 'p' }]);
    await alerts.settled();
    flaky.close();
    assert.deepEqual(flaky.received.map((r) => r.status), [500, 500, 200]);
    assert.equal(alerts.failed, 0);

    const down = await receiver(100);
    const givingUp = new Alerts({ url: down.url, server: 's', backoffMs: 5, attempts: 3 }, silent);
    givingUp.observe([{ database: 'a', kind: 'k', problem: 'p' }]);
    await givingUp.settled();
    down.close();
    assert.equal(down.received.length, 3);
    assert.equal(givingUp.failed, 1);
  });

  it('the first observation of an empty set sends nothing; without a URL nothing is sent', async () => {
    const hook = await receiver(0);
    const alerts = new Alerts({ url: hook.url, server: 's' }, silent);
    alerts.observe([]);
    await alerts.settled();
    hook.close();
    assert.equal(hook.received.length, 0);
    const none = new Alerts({ url: undefined, server: 's' }, silent);
    none.observe([{ database: 'a', kind: 'k', problem: 'p' }]);
    await none.settled();
  });

  it('accepts http and https URLs only, without credentials', () => {
    assert.equal(webhookProblem('https://hooks.example/abc?token=x'), undefined);
    assert.equal(webhookProblem('http://127.0.0.1:9000/hook'), undefined);
    assert.match(webhookProblem('ftp://x/y')!, /http or https/);
    assert.match(webhookProblem('hooks.example/abc')!, /http or https/);
    assert.match(webhookProblem('https://user:pw@hooks.example/')!, /must not carry a user or password/);
    assert.ok(!webhookProblem('not a url with-a-long-secret-token')!.includes('secret-token'));
  });
});
