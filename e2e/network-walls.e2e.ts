/**
 * Network walls, with the real firewall: what a database container can open
 * on the host and beyond, before and after the daemon puts its walls up
 * (PGDB_NETWORK_WALLS, network-walls.ts). The same containers are tried
 * both ways, so each "refused" has its own positive control: with the walls
 * down, the same connection was made.
 *
 * The attacker is a tenant that runs programs in its container (as a
 * superuser tenant can, through COPY ... PROGRAM): here `docker exec` as the
 * container's postgres user, which is the same account.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chainNames } from '../daemon/src/docker/network-walls.js';
import { randomBytes } from 'node:crypto';
import { bridgeAddressOf, docker, query, requireDockerAndImages, TEST_IMAGE_REPO, TestDaemon } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { connects } from './support/walls.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(20);

/** Packets the REJECT rules of a chain have turned away so far. */
function rejected(chain: string): number {
  const listing = execFileSync('iptables', ['-w', '-L', chain, '-v', '-x', '-n'], { encoding: 'utf8' });
  return listing
    .split('\n')
    .filter((line) => /\bREJECT\b/.test(line))
    .reduce((sum, line) => sum + Number(line.trim().split(/\s+/)[0]), 0);
}

function jumpCount(chain: string, target: string): number {
  return execFileSync('iptables', ['-w', '-S', chain], { encoding: 'utf8' }).split('\n').filter((line) => line.endsWith(`-j ${target}`)).length;
}

describe('network walls', { timeout: 300_000 }, () => {
  let daemon: TestDaemon;
  let hostService: Server;
  let hostPort = 0;
  let a: { container: string; url: string };
  let b: { port: number; url: string };
  let gateway: string;
  /** Beyond the host: a container of this test's own, on a network of its own (reached through FORWARD, like the Internet). */
  const outside = { network: `pgdb-walls-e2e-${randomBytes(3).toString('hex')}`, container: '', address: '' };
  /** A client of the databases with an address of its own: a network namespace of this test's, with a veth pair (TEST-NET-2 addresses). */
  const tag = randomBytes(3).toString('hex');
  const client = { namespace: `pgdb-walls-${tag}`, hostLink: `pgdbw-${tag}`, hostSide: '198.51.100.1', address: '198.51.100.2' };

  before(async () => {
    requireDockerAndImages([17]);
    // A service of the host, listening on every address (as sshd or a monitoring agent would).
    hostService = createServer((socket) => socket.end('host service\n'));
    await new Promise<void>((resolve) => hostService.listen(0, '0.0.0.0', resolve));
    hostPort = (hostService.address() as { port: number }).port;
    // Walls down first: what a container could reach before them.
    daemon = await new TestDaemon({ portRange: PORT_RANGE, public: true, unset: ['PGDB_POSTGRES_BIND'], env: { PGDB_NETWORK_WALLS: 'off' } }).start();
    const deployedA = await daemon.api('POST', '/v1/deploy', { name: 'a' });
    const deployedB = await daemon.api('POST', '/v1/deploy', { name: 'b' });
    assert.equal(deployedA.status, 201, JSON.stringify(deployedA.body));
    assert.equal(deployedB.status, 201, JSON.stringify(deployedB.body));
    a = { container: daemon.record('a').container_id, url: deployedA.body.database_url };
    b = { port: daemon.record('b').host_port, url: deployedB.body.database_url };
    const [network] = Object.keys(JSON.parse(docker('inspect', a.container))[0].NetworkSettings.Networks);
    gateway = bridgeAddressOf(network);
    // With IPv6 (a unique-local subnet): the positive control of the IPv6 test.
    docker('network', 'create', '--label', 'pgdb.test=walls-e2e', '--ipv6', '--subnet', 'fd00:7067:6462::/64', outside.network);
    outside.container = docker('run', '-d', '--rm', '--label', 'pgdb.test=walls-e2e', '--network', outside.network, `${TEST_IMAGE_REPO}:17`, 'sleep', 'infinity');
    outside.address = JSON.parse(docker('inspect', outside.container))[0].NetworkSettings.Networks[outside.network].IPAddress;
    const ip = (...args: string[]) => execFileSync('ip', args);
    ip('netns', 'add', client.namespace);
    ip('link', 'add', client.hostLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.namespace);
    ip('addr', 'add', `${client.hostSide}/30`, 'dev', client.hostLink);
    ip('link', 'set', client.hostLink, 'up');
    ip('netns', 'exec', client.namespace, 'ip', 'addr', 'add', `${client.address}/30`, 'dev', 'eth0');
    ip('netns', 'exec', client.namespace, 'ip', 'link', 'set', 'eth0', 'up');
  });

  after(async () => {
    await daemon?.destroyAll();
    await new Promise((resolve) => hostService?.close(resolve));
    if (outside.container) docker('rm', '-f', outside.container);
    // Removing the namespace removes its end of the veth pair, and with it the host's end.
    spawnSync('ip', ['netns', 'del', client.namespace]);
    try {
      docker('network', 'rm', outside.network);
    } catch {
      // Never made.
    }
  });

  it('without walls (PGDB_NETWORK_WALLS=off) a container reaches a host service and another tenant\'s published port through the bridge\'s gateway', () => {
    assert.equal(connects(a.container, gateway, hostPort), true, 'the host service');
    assert.equal(connects(a.container, gateway, b.port), true, "b's published port");
  });

  it('with walls up, the same container reaches neither, nor the API, nor anything beyond the host; every database still serves its clients', async () => {
    await daemon.restart({ PGDB_NETWORK_WALLS: 'on' });
    const { input, forward } = chainNames(daemon.instanceId());
    assert.equal(connects(a.container, gateway, hostPort), false, 'the host service');
    assert.equal(connects(a.container, gateway, b.port), false, "b's published port");
    assert.equal(connects(a.container, gateway, Number(new URL(daemon.url).port)), false, 'the API');
    // Beyond the host: the walls, first in FORWARD (DOCKER-USER), turn the attempt away before anything else sees it.
    const before = rejected(forward);
    assert.equal(connects(a.container, outside.address, 5432), false, 'a host beyond this one');
    assert.ok(rejected(forward) > before, `${forward} turned the connection away`);
    assert.ok(rejected(input) > 0, `${input} turned the host's services away`);
    // The walls keep nothing from clients: both databases answer their URLs, from this host as from anywhere.
    assert.deepEqual(await query(a.url, 'SELECT 1 AS one'), [{ one: 1 }]);
    assert.deepEqual(await query(b.url, 'SELECT 1 AS one'), [{ one: 1 }]);
  });

  it('leave no IPv6 path around them: the network has no IPv6 and the container no IPv6 address, not even link-local', () => {
    const [network] = Object.keys(JSON.parse(docker('inspect', a.container))[0].NetworkSettings.Networks);
    assert.equal(JSON.parse(docker('network', 'inspect', network))[0].EnableIPv6, false);
    const addresses = (container: string) => docker('exec', container, 'cat', '/proc/net/if_inet6').split('\n').filter((line) => / eth0$/.test(line.trim()));
    assert.deepEqual(addresses(a.container), []);
    // Positive control: the same probe, in a container on a network with IPv6, lists its addresses.
    assert.ok(addresses(outside.container).some((line) => line.startsWith('fd007067')), 'the control container has an IPv6 address');
  });

  it('are put up again at each start without being doubled, and a new database is behind them too', async () => {
    await daemon.restart({ PGDB_NETWORK_WALLS: 'on' });
    const { input, forward } = chainNames(daemon.instanceId());
    assert.equal(jumpCount('INPUT', input), 1);
    assert.equal(jumpCount('DOCKER-USER', forward), 1);
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'c' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    assert.equal(connects(daemon.record('c').container_id, gateway, hostPort), false, 'the host service, from a new database');
    assert.deepEqual(await query(deployed.body.database_url, 'SELECT 1 AS one'), [{ one: 1 }]);
  });

  /**
   * `psql` as `user` to database b's published port from a network namespace the test made, joined to
   * this host by a veth pair of its own: a client with an address of its own, which Docker's DNAT keeps
   * as the source (a container on another Docker network would be masqueraded to the gateway).
   */
  function fromClient(user: string, password: string) {
    const url = `postgresql://${user}:${encodeURIComponent(password)}@${client.hostSide}:${b.port}/${daemon.record('b').db}?sslmode=require`;
    return spawnSync('ip', ['netns', 'exec', client.namespace, 'psql', url, '-XAtc', 'SELECT current_user'], { encoding: 'utf8' });
  }

  it("the daemon's superuser logs in only from where the daemon connects: from a client elsewhere, its password is refused and the tenant's is not", () => {
    const record = daemon.record('b');
    const tenant = fromClient(record.user, record.password);
    assert.deepEqual([tenant.status, tenant.stdout.trim()], [0, record.user], `positive control: a client there reaches the database (${tenant.stderr})`);
    const admin = fromClient('pgdb_admin', record.admin_password);
    assert.notEqual(admin.status, 0);
    assert.match(admin.stderr, new RegExp(`pg_hba.conf rejects connection for host "${client.address.replaceAll('.', '\\.')}", user "pgdb_admin"`));
  });

  it("an earlier release's pg_hba.conf (pgdb_admin from any address) is replaced at the next start", async () => {
    const record = daemon.record('b');
    const open = ['local all all trust', 'local replication all trust', 'hostssl all all all scram-sha-256', 'hostnossl all all all reject', ''].join('\n');
    execFileSync('docker', ['exec', '-i', record.container_id, 'sh', '-c', 'cat > /etc/pgdb/pg_hba.conf'], { input: open });
    docker('exec', record.container_id, 'psql', '-XAtq', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres', '-c', 'SELECT pg_catalog.pg_reload_conf()');
    const before = fromClient('pgdb_admin', record.admin_password);
    assert.deepEqual([before.status, before.stdout.trim()], [0, 'pgdb_admin'], `as an earlier release left it, the admin's password opens it from anywhere (${before.stderr})`);
    await daemon.restart({ PGDB_NETWORK_WALLS: 'on' });
    await eventually('the new pg_hba.conf', 60_000, async () => (fromClient('pgdb_admin', record.admin_password).status !== 0 ? true : undefined));
    assert.match(daemon.logs(), /"database":"b".*pg_hba.conf replaced/);
    assert.equal(fromClient(record.user, record.password).status, 0, 'the tenant still connects from there');
    assert.equal((await daemon.api('GET', '/v1/db/b')).status, 200, "and the daemon's own connections work");
  });

  it('come back within seconds when something flushes them while the daemon runs', async () => {
    const { input } = chainNames(daemon.instanceId());
    const container = daemon.record('a').container_id;
    const bridge = execFileSync('iptables', ['-w', '-S', 'INPUT'], { encoding: 'utf8' }).split('\n').find((line) => line.endsWith(`-j ${input}`))!;
    execFileSync('iptables', ['-w', ...bridge.replace(/^-A /, '-D ').split(' ')]);
    execFileSync('iptables', ['-w', '-F', input]);
    assert.equal(connects(container, gateway, hostPort), true, 'the walls are really down: the host service answers');
    await eventually('the walls to be put up again', 30_000, async () => (jumpCount('INPUT', input) === 1 && !connects(container, gateway, hostPort) ? true : undefined));
    assert.match(daemon.logs(), /the network walls were down \(the firewall was flushed or reloaded\); put them up again/);
  });
});
