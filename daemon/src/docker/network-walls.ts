/**
 * Network walls: the kernel's firewall around the databases' bridge, so that
 * a database container (even one whose tenant became a superuser) opens
 * nothing beyond its own database: no service of the host (sshd, the API,
 * another tenant's published port through the bridge's gateway, which
 * bypasses the cloud firewall and a DOCKER-USER rule on eth0), and, unless
 * PGDB_EGRESS=open, nothing outside the host. Only the backup gateway's port
 * stays open to them. Answers to connections made to a container (clients,
 * the daemon) pass as they always did.
 *
 * Two chains per daemon (its instance names them), replaced atomically with
 * `iptables-restore --noflush` each time the daemon starts (a reboot empties
 * them): PGDB-IN-<instance>, jumped to from INPUT for packets from the bridge
 * (what a container sends to the host itself), and PGDB-FWD-<instance>,
 * jumped to from DOCKER-USER (what a container sends through the host; Docker
 * keeps that chain's rules across its restarts), or from FORWARD when Docker
 * manages no iptables. The rules stay while the daemon is stopped: its
 * containers keep running. `scripts/install.sh --uninstall` removes them.
 */
import { execFile } from 'node:child_process';

/** What the walls let through, for one daemon's bridge. */
export interface WallSpec {
  /** Names the chains: the daemon's instance id (hex). */
  instance: string;
  /** The bridge's interface on the host (`br-<id>`). */
  bridge: string;
  /** Host addresses and ports that containers may open (the backup gateway). */
  allow: Array<{ address: string; port: number }>;
  /** `open`: containers may reach other hosts (PGDB_EGRESS=open); `closed` (the default): they may not. */
  egress: 'closed' | 'open';
}

export function chainNames(instance: string): { input: string; forward: string } {
  const id = instance.slice(0, 12);
  return { input: `PGDB-IN-${id}`, forward: `PGDB-FWD-${id}` };
}

/** The `iptables-restore --noflush` input that (re)defines both chains: declared chains are emptied first. */
export function restoreInput(spec: WallSpec): string {
  const { input, forward } = chainNames(spec.instance);
  const lines = [
    '*filter',
    `:${input} - [0:0]`,
    `:${forward} - [0:0]`,
    `-A ${input} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
    ...spec.allow.map(({ address, port }) => `-A ${input} -d ${address}/32 -p tcp -m tcp --dport ${port} -j RETURN`),
    `-A ${input} -p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${input} -j REJECT --reject-with icmp-port-unreachable`,
    `-A ${forward} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
    ...(spec.egress === 'open'
      ? []
      : [`-A ${forward} -p tcp -j REJECT --reject-with tcp-reset`, `-A ${forward} -j REJECT --reject-with icmp-port-unreachable`]),
    'COMMIT',
    '',
  ];
  return lines.join('\n');
}

/** The jump rules, each checked (`-C`) and inserted first (`-I ... 1`) when missing. */
export function jumps(spec: WallSpec, forwardFrom: 'DOCKER-USER' | 'FORWARD'): Array<{ chain: string; rule: string[] }> {
  const { input, forward } = chainNames(spec.instance);
  return [
    { chain: 'INPUT', rule: ['-i', spec.bridge, '-j', input] },
    { chain: forwardFrom, rule: ['-i', spec.bridge, '-j', forward] },
  ];
}

/**
 * The walls are IPv4 rules. pgdb makes its network without IPv6, so the
 * engine gives the containers no IPv6 address at all; a network of that name
 * made with IPv6 (by hand, or by an engine whose defaults turn it on) would
 * let a container past them, so the daemon refuses to put its walls up on it.
 */
export function ipv6Problem(network: string, inspect: { EnableIPv6?: boolean }): string | undefined {
  if (!inspect.EnableIPv6) return undefined;
  return (
    `network ${network} has IPv6, which the network walls (IPv4 rules) do not cover: make it again without IPv6 ` +
    '(disconnect its containers, docker network rm, docker network create without --ipv6, connect them again) ' +
    'or set PGDB_NETWORK_WALLS=off to run without walls'
  );
}

export type CommandRunner = (file: string, args: string[], input?: string) => Promise<{ code: number; output: string }>;

export const runCommand: CommandRunner = (file, args, input) =>
  new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as NodeJS.ErrnoException).code === 'number' ? Number((error as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}`.trim() || (error?.message ?? '') });
    });
    if (input !== undefined) child.stdin?.end(input);
  });

export class NetworkWalls {
  constructor(private readonly run: CommandRunner = runCommand) {}

  /** Why walls cannot be put up here (no iptables, no CAP_NET_ADMIN), or undefined. */
  async problem(): Promise<string | undefined> {
    const listed = await this.run('iptables', ['-w', '-S', 'INPUT']);
    if (listed.code !== 0) return `iptables cannot read the firewall (${listed.output || `exit ${listed.code}`}): install iptables and give pgdbd CAP_NET_ADMIN`;
    return undefined;
  }

  /** Puts up (or replaces) the walls of one bridge; idempotent. */
  async apply(spec: WallSpec): Promise<void> {
    const restored = await this.run('iptables-restore', ['-w', '--noflush'], restoreInput(spec));
    if (restored.code !== 0) throw new Error(`could not install the network walls (iptables-restore): ${restored.output}`);
    const dockerUser = await this.run('iptables', ['-w', '-S', 'DOCKER-USER']);
    for (const { chain, rule } of jumps(spec, dockerUser.code === 0 ? 'DOCKER-USER' : 'FORWARD')) {
      const present = await this.run('iptables', ['-w', '-C', chain, ...rule]);
      if (present.code === 0) continue;
      const inserted = await this.run('iptables', ['-w', '-I', chain, '1', ...rule]);
      if (inserted.code !== 0) throw new Error(`could not install the network walls (iptables -I ${chain}): ${inserted.output}`);
    }
  }

  /**
   * Puts the walls of one bridge up again if something took them down (a
   * flush of the firewall, a reload of firewalld, a restart of the engine):
   * checks the input chain's last REJECT and both jumps. True when it did.
   */
  async repair(spec: WallSpec): Promise<boolean> {
    const { input } = chainNames(spec.instance);
    const dockerUser = await this.run('iptables', ['-w', '-S', 'DOCKER-USER']);
    const rules = [
      { chain: input, rule: ['-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'] },
      ...jumps(spec, dockerUser.code === 0 ? 'DOCKER-USER' : 'FORWARD'),
    ];
    for (const { chain, rule } of rules) {
      if ((await this.run('iptables', ['-w', '-C', chain, ...rule])).code !== 0) {
        await this.apply(spec);
        return true;
      }
    }
    return false;
  }
}
