import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/** The part of `docker network inspect` (or the Engine API's) that says where the host is on a bridge. */
export interface BridgeInspect {
  Id?: string;
  Driver?: string;
  Options?: Record<string, string>;
  EnableIPv6?: boolean;
  IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string }> | null };
}

export type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

/** What this host knows of its own addresses. */
export interface HostAddresses {
  /** os.networkInterfaces(): only interfaces that are up and running (libuv leaves the others out). */
  interfaces: Interfaces;
  /** Every local IPv4 address of the kernel's routing table, whatever its link's state (/proc/net/fib_trie). */
  localIpv4: string[];
}

/** This host's addresses, read now. */
export function hostAddresses(): HostAddresses {
  let fibTrie = '';
  try {
    fibTrie = readFileSync('/proc/net/fib_trie', 'utf8');
  } catch {
    // Not Linux, or no /proc: the interfaces alone.
  }
  return { interfaces: networkInterfaces(), localIpv4: localIpv4Addresses(fibTrie) };
}

/**
 * The addresses /proc/net/fib_trie lists as `/32 host LOCAL` in its Local
 * table: the host's own IPv4 addresses, also those of an interface that is
 * down. Docker's default bridge, docker0, has no carrier while no container
 * is attached to it (pgdb's databases are on a network of their own), and
 * os.networkInterfaces() then leaves it out.
 */
export function localIpv4Addresses(fibTrie: string): string[] {
  const found = new Set<string>();
  let local = false;
  let last: string | undefined;
  for (const line of fibTrie.split('\n')) {
    if (/^\S/.test(line)) {
      local = line.startsWith('Local:');
      continue;
    }
    if (!local) continue;
    const leaf = /^\s+\|-- (\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (leaf) {
      last = leaf[1];
    } else if (last && /^\s+\/32 host LOCAL\s*$/.test(line)) {
      found.add(last);
    }
  }
  return [...found];
}

/**
 * The host's own addresses on a Docker bridge network: the IPAM `Gateway`
 * when the engine fills it in. Docker 20.10 (Debian 12's docker.io) leaves it
 * out for the default bridge; then the address of the bridge's interface
 * (`com.docker.network.bridge.name`, or `br-<first 12 of the id>` for a user
 * bridge) in the network's subnets, and failing that (the interface is down)
 * a local address of the host in those subnets. Empty when none tells.
 */
export function bridgeAddresses(inspect: BridgeInspect, known?: HostAddresses): string[] {
  const configs = inspect.IPAM?.Config ?? [];
  const gateways = configs.map((c) => c.Gateway).filter((g): g is string => Boolean(g) && isIP(g!) !== 0);
  if (gateways.length > 0) return gateways;
  // Only now: most engines give the gateway, and the host's addresses need not be read at all.
  const host = known ?? hostAddresses();
  const subnets = new BlockList();
  let anySubnet = false;
  for (const { Subnet } of configs) {
    const [address, prefix] = (Subnet ?? '').split('/');
    const family = isIP(address);
    if (family === 0 || !prefix) continue;
    subnets.addSubnet(address, Number(prefix), family === 4 ? 'ipv4' : 'ipv6');
    anySubnet = true;
  }
  const name = bridgeInterface(inspect);
  const onInterface = (name ? host.interfaces[name] ?? [] : [])
    .filter((i) => !anySubnet || subnets.check(i.address, i.family === 'IPv4' ? 'ipv4' : 'ipv6'))
    .filter((i) => !(i.family === 'IPv6' && i.address.toLowerCase().startsWith('fe80:')))
    .map((i) => i.address);
  if (onInterface.length > 0 || !anySubnet) return onInterface;
  return host.localIpv4.filter((address) => subnets.check(address, 'ipv4'));
}

/** The name of the bridge's interface on the host, when the network is a bridge. */
export function bridgeInterface(inspect: BridgeInspect): string | undefined {
  const named = inspect.Options?.['com.docker.network.bridge.name'];
  if (named) return named;
  if (inspect.Driver && inspect.Driver !== 'bridge') return undefined;
  return inspect.Id ? `br-${inspect.Id.slice(0, 12)}` : undefined;
}

/** The first IPv4 address (else any) of bridgeAddresses, or a clear error that says what was looked at. */
export function bridgeAddress(network: string, inspect: BridgeInspect, host?: HostAddresses): string {
  const addresses = bridgeAddresses(inspect, host);
  const address = addresses.find((a) => isIP(a) === 4) ?? addresses[0];
  if (address) return address;
  const name = bridgeInterface(inspect);
  const subnets = (inspect.IPAM?.Config ?? []).map((c) => c.Subnet).filter(Boolean).join(', ') || 'none';
  throw new Error(
    `cannot find this host's address on Docker's "${network}" network: the engine reports no gateway (subnets: ${subnets}), ` +
      `${name ? `the interface ${name} has no address in them` : 'it names no bridge interface'}, and no local address of this host is in them`,
  );
}
