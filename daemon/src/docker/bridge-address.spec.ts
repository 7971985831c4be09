/**
 * The host's address on a Docker bridge, on engines that fill in the IPAM
 * gateway and on those that do not (Debian 12's docker.io 20.10.24 leaves it
 * out for the default bridge: `"Config": [{"Subnet": "172.17.0.0/16"}]`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { NetworkInterfaceInfo } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { bridgeAddress, bridgeAddresses, localIpv4Addresses, type BridgeInspect, type HostAddresses } from './bridge-address.js';
import { DockerodeGateway } from './dockerode.gateway.js';

function v4(address: string, cidr: string): NetworkInterfaceInfo {
  return { address, cidr, family: 'IPv4', internal: false, mac: '02:42:00:00:00:01', netmask: '255.255.0.0' };
}
function v6(address: string): NetworkInterfaceInfo {
  return { address, cidr: `${address}/64`, family: 'IPv6', internal: false, mac: '02:42:00:00:00:01', netmask: 'ffff:ffff:ffff:ffff::', scopeid: 0 };
}

/** `docker network inspect bridge` on Debian 12's docker.io 20.10.24. */
const DEBIAN_BRIDGE: BridgeInspect = {
  Id: 'f3a1c2d4e5b6f3a1c2d4e5b6f3a1c2d4e5b6f3a1c2d4e5b6f3a1c2d4e5b6abcd',
  Driver: 'bridge',
  IPAM: { Config: [{ Subnet: '172.17.0.0/16' }] },
  Options: { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': 'docker0' },
};

/** /proc/net/fib_trie on a Debian 12 host with docker.io 20.10.24 and no container on docker0 (trimmed). */
const FIB_TRIE = `Main:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/31 1 0 0
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.1
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/31 1 0 0
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.1
              /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
     +-- 192.168.160.0/20 2 0 2
           |-- 192.168.160.1
              /32 host LOCAL
`;

const none: HostAddresses = { interfaces: {}, localIpv4: [] };

describe('the host address on a Docker bridge', () => {
  it('takes the IPAM gateway when the engine gives one, whatever the interfaces say', () => {
    const inspect: BridgeInspect = { ...DEBIAN_BRIDGE, IPAM: { Config: [{ Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' }] } };
    assert.deepEqual(bridgeAddresses(inspect, none), ['172.17.0.1']);
  });

  it("reads the default bridge's interface (docker0) when the engine gives no gateway, keeping only addresses in the bridge's subnets", () => {
    const interfaces = { docker0: [v4('172.17.0.1', '172.17.0.1/16'), v4('10.9.9.9', '10.9.9.9/8'), v6('fe80::42:ff:fe00:1')], eth0: [v4('203.0.113.10', '203.0.113.10/24')] };
    assert.deepEqual(bridgeAddresses(DEBIAN_BRIDGE, { interfaces, localIpv4: [] }), ['172.17.0.1']);
    assert.equal(bridgeAddress('bridge', DEBIAN_BRIDGE, { interfaces, localIpv4: [] }), '172.17.0.1');
  });

  it("reads the kernel's local addresses when docker0 is down (no container on it, so os.networkInterfaces() leaves it out)", () => {
    assert.deepEqual(localIpv4Addresses(FIB_TRIE), ['127.0.0.1', '172.17.0.1', '192.168.160.1'], 'the Local table only, /32 host LOCAL only');
    assert.equal(bridgeAddress('bridge', DEBIAN_BRIDGE, { interfaces: { eth0: [v4('203.0.113.10', '203.0.113.10/24')] }, localIpv4: localIpv4Addresses(FIB_TRIE) }), '172.17.0.1');
    assert.deepEqual(localIpv4Addresses(''), []);
  });

  it('finds a user bridge without a bridge name by its br-<id> interface', () => {
    const inspect: BridgeInspect = { Id: 'dd08598e44832bb52cc8ae7ff0006842546481b8e510f02c025fb99d0bbe6401', Driver: 'bridge', IPAM: { Config: [{ Subnet: '172.18.0.0/16' }] } };
    assert.deepEqual(bridgeAddresses(inspect, { interfaces: { 'br-dd08598e4483': [v4('172.18.0.1', '172.18.0.1/16')] }, localIpv4: [] }), ['172.18.0.1']);
  });

  it('prefers an IPv4 address when the bridge has both families', () => {
    const inspect: BridgeInspect = { ...DEBIAN_BRIDGE, IPAM: { Config: [{ Subnet: 'fd00:1::/64' }, { Subnet: '172.17.0.0/16' }] } };
    assert.equal(bridgeAddress('bridge', inspect, { interfaces: { docker0: [v6('fd00:1::1'), v4('172.17.0.1', '172.17.0.1/16')] }, localIpv4: [] }), '172.17.0.1');
  });

  it('fails with a message naming the network, its subnets and the interface instead of giving an empty address', () => {
    assert.throws(
      () => bridgeAddress('bridge', DEBIAN_BRIDGE, { interfaces: { eth0: [v4('203.0.113.10', '203.0.113.10/24')] }, localIpv4: ['203.0.113.10', '127.0.0.1'] }),
      /cannot find this host's address on Docker's "bridge" network: the engine reports no gateway \(subnets: 172\.17\.0\.0\/16\), the interface docker0 has no address in them, and no local address of this host is in them/,
    );
    assert.throws(() => bridgeAddress('macvlan', { Driver: 'macvlan', IPAM: { Config: [] } }, none), /subnets: none\), it names no bridge interface/);
  });
});

/** An engine that answers `GET /networks/bridge` with the given inspect body. */
class NetworkEngine {
  readonly dir = mkdtempSync(join(tmpdir(), 'pgdb-bridge-'));
  readonly path = join(this.dir, 'docker.sock');
  private server: Server | undefined;

  constructor(private readonly bridge: BridgeInspect) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.method === 'GET' && /\/networks\/bridge$/.test(req.url ?? '')) {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ Name: 'bridge', ...this.bridge }));
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"not here"}');
      }
    });
    await new Promise<void>((resolve) => this.server!.listen(this.path, resolve));
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function gateway(socket: string): DockerodeGateway {
  return new DockerodeGateway(loadConfig({ PGDB_TOKEN: 'test-token-0123456789abcdef', PGDB_DOCKER_SOCKET: socket }), createLogger('silent'));
}

describe("DockerodeGateway.bridgeGateway on an engine whose default bridge has no Gateway", () => {
  // The loopback interface stands in for docker0: every Linux host has it, with 127.0.0.1 in 127.0.0.0/8.
  const found = new NetworkEngine({ Driver: 'bridge', IPAM: { Config: [{ Subnet: '127.0.0.0/8' }] }, Options: { 'com.docker.network.bridge.name': 'lo' } });
  // TEST-NET-2: no address of this host is in it.
  const missing = new NetworkEngine({ Driver: 'bridge', IPAM: { Config: [{ Subnet: '198.51.100.0/24' }] }, Options: { 'com.docker.network.bridge.name': 'pgdb-absent0' } });
  before(async () => {
    await found.start();
    await missing.start();
  });
  after(async () => {
    await found.stop();
    await missing.stop();
  });

  it("answers with the address of the bridge's interface on this host", async () => {
    assert.equal(await gateway(found.path).bridgeGateway(), '127.0.0.1');
  });

  it('fails clearly when the interface has no address, instead of resolving to nothing', async () => {
    await assert.rejects(gateway(missing.path).bridgeGateway(), /no gateway \(subnets: 198\.51\.100\.0\/24\), the interface pgdb-absent0 has no address in them/);
  });
});
