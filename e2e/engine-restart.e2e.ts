/**
 * A restart of the machine's Docker engine (as after an upgrade of docker.io
 * or a reboot): every database comes back on its port with its data, and
 * pgdbd, which kept running, reports the engine again.
 *
 * It stops the engine every other test uses, and starts it again the way
 * the test suite started it (scripts/setup-docker.sh), also when the test
 * fails half-way (in after()), so the files that run after it find an engine.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { chainNames } from '../daemon/src/docker/network-walls.js';
import { bridgeAddressOf, docker, query, requireDockerAndImages, ROOT, TestDaemon } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { connects } from './support/walls.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

/**
 * Starts the engine as scripts/test.sh did. It outlives this test run, so it
 * must not inherit the run's environment (test.sh points TMPDIR at a
 * directory it deletes at the end, and runc keeps its exec state there:
 * every later `docker exec` would fail).
 */
function startEngine(): void {
  const { TMPDIR: _runTmp, ...env } = process.env;
  void _runTmp;
  execFileSync('bash', [join(ROOT, 'scripts/setup-docker.sh')], { stdio: 'ignore', env });
}

describe('a Docker engine restart', () => {
  let daemon: TestDaemon;
  let hostService: Server | undefined;

  before(async () => {
    requireDockerAndImages([15, 17]);
    daemon = await new TestDaemon({ portRange: ports.range(50) }).start();
  });
  after(async () => {
    // A failure between the stop and the start above must not leave the files after this one without an engine.
    if (spawnSync('pgrep', ['-x', 'dockerd']).status !== 0) startEngine();
    await new Promise((resolve) => (hostService ? hostService.close(resolve) : resolve(undefined)));
    await daemon?.destroyAll();
  });

  it('brings every database back on its port, with its data', async () => {
    const databases = [];
    for (const [name, version] of [['engine-a', 17], ['engine-b', 15]] as const) {
      const res = await daemon.api('POST', '/v1/deploy', { name, version });
      assert.equal(res.status, 201);
      await query(res.body.database_url, `CREATE TABLE t AS SELECT '${name}'::text AS who`);
      databases.push(res.body);
    }

    // The network walls, before: a host service on every address is closed to a database's container.
    hostService = createServer((socket) => socket.end('host service\n'));
    await new Promise<void>((resolve) => hostService!.listen(0, '0.0.0.0', resolve));
    const hostPort = (hostService.address() as AddressInfo).port;
    const container = daemon.record('engine-a').container_id;
    const [network] = Object.keys(JSON.parse(docker('inspect', container))[0].NetworkSettings.Networks);
    const gateway = bridgeAddressOf(network);
    assert.ok(connects(container, '127.0.0.1', 5432), 'positive control: the probe opens a connection inside the container');
    assert.equal(connects(container, gateway, hostPort), false, 'walls up before the restart');

    // Stop the engine as a service manager would (SIGTERM), wait until it is gone.
    spawnSync('pkill', ['-TERM', '-x', 'dockerd']);
    await eventually('dockerd to stop', 120_000, async () => (spawnSync('pgrep', ['-x', 'dockerd']).status === 0 ? undefined : true));
    const down = await daemon.api('GET', '/v1/health');
    assert.equal(down.status, 503);
    assert.equal(down.body.docker, 'unreachable');

    startEngine();
    await eventually('pgdbd to see the engine again', 120_000, async () => {
      const health = await daemon.api('GET', '/v1/health', undefined, null);
      if (health.status !== 200) throw new Error(JSON.stringify(health.body));
      return true;
    });
    for (const db of databases) {
      const rows = await eventually(`${db.name} to accept connections`, 120_000, () => query(db.database_url, 'SELECT who FROM t'));
      assert.deepEqual(rows, [{ who: db.name }]);
    }
    const items = (await daemon.api('GET', '/v1/status')).body.items;
    for (const db of databases) {
      const item = items.find((i: { name: string }) => i.name === db.name);
      assert.equal(item.host_port, db.port, 'same port');
      assert.equal(item.state, 'running');
    }
    // The walls outlive the engine's restart (its own chains are rebuilt; the jumps to pgdb's stay).
    const { input, forward } = chainNames(daemon.instanceId());
    assert.match(execFileSync('iptables', ['-w', '-S', 'INPUT'], { encoding: 'utf8' }), new RegExp(`-j ${input}$`, 'm'));
    assert.match(execFileSync('iptables', ['-w', '-S', 'DOCKER-USER'], { encoding: 'utf8' }), new RegExp(`-j ${forward}$`, 'm'));
    assert.ok(connects(container, '127.0.0.1', 5432), 'positive control, after the restart');
    assert.equal(connects(container, gateway, hostPort), false, 'walls up after the restart');
  });
});
