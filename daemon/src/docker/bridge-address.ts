import { BlockList, isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/** The part of `docker network inspect` (or the Engine API's) that says where the host is on a bridge. */
export interface BridgeInspect {
  Id?: string;
  Driver?: string;
  Options?: Record<string, string>;
  IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string }> | null };
}

export type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

/**
 * The host's own addresses on a Docker bridge network.
 *
 * The IPAM `Gateway` field when the engine fills it in. Docker 20.10 (Debian
 * 12's docker.io) leaves it out for the default bridge: the address is then
 * read off the bridge's interface on this host (`com.docker.network.bridge.name`,
 * or `br-<first 12 of the id>` for a user bridge), keeping those inside the
 * network's subnets. Empty when neither tells.
 */
export function bridgeAddresses(inspect: BridgeInspect, interfaces: Interfaces = networkInterfaces()): string[] {
  const configs = inspect.IPAM?.Config ?? [];
  const gateways = configs.map((c) => c.Gateway).filter((g): g is string => Boolean(g) && isIP(g!) !== 0);
  if (gateways.length > 0) return gateways;
  const name = bridgeInterface(inspect);
  if (!name) return [];
  const subnets = new BlockList();
  let anySubnet = false;
  for (const { Subnet } of configs) {
    const [address, prefix] = (Subnet ?? '').split('/');
    const family = isIP(address);
    if (family === 0 || !prefix) continue;
    subnets.addSubnet(address, Number(prefix), family === 4 ? 'ipv4' : 'ipv6');
    anySubnet = true;
  }
  return (interfaces[name] ?? [])
    .filter((i) => !anySubnet || subnets.check(i.address, i.family === 'IPv4' ? 'ipv4' : 'ipv6'))
    .filter((i) => !(i.family === 'IPv6' && i.address.toLowerCase().startsWith('fe80:')))
    .map((i) => i.address);
}

/** The name of the bridge's interface on the host, when the network is a bridge. */
export function bridgeInterface(inspect: BridgeInspect): string | undefined {
  const named = inspect.Options?.['com.docker.network.bridge.name'];
  if (named) return named;
  if (inspect.Driver && inspect.Driver !== 'bridge') return undefined;
  return inspect.Id ? `br-${inspect.Id.slice(0, 12)}` : undefined;
}

/** The first IPv4 address (else any) of bridgeAddresses, or a clear error that says what was looked at. */
export function bridgeAddress(network: string, inspect: BridgeInspect, interfaces: Interfaces = networkInterfaces()): string {
  const addresses = bridgeAddresses(inspect, interfaces);
  const address = addresses.find((a) => isIP(a) === 4) ?? addresses[0];
  if (address) return address;
  const name = bridgeInterface(inspect);
  const subnets = (inspect.IPAM?.Config ?? []).map((c) => c.Subnet).filter(Boolean).join(', ') || 'none';
  throw new Error(
    `cannot find this host's address on Docker's "${network}" network: the engine reports no gateway (subnets: ${subnets}) ` +
      (name ? `and the interface ${name} has no address in them on this host` : 'and names no bridge interface'),
  );
}
