import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainNames, ipv6Problem, NetworkWalls, restoreInput, type CommandRunner, type WallSpec } from './network-walls.js';

const SPEC: WallSpec = { instance: 'abcdef012345', bridge: 'br-0123456789ab', allow: [{ address: '172.25.0.1', port: 8433 }], egress: 'closed' };

/** A firewall that answers like iptables: -C fails for rules it does not hold, -S fails for chains it does not have. */
function fakeIptables(options: { dockerUser: boolean; held?: string[] } = { dockerUser: true }) {
  const calls: string[] = [];
  const held = new Set(options.held ?? []);
  const run: CommandRunner = async (file, args, input) => {
    calls.push([file, ...args].join(' ') + (input ? ` <<${input.split('\n').length} lines` : ''));
    if (file === 'iptables-restore') return { code: 0, output: '' };
    if (args[1] === '-S') return args[2] === 'DOCKER-USER' && !options.dockerUser ? { code: 1, output: 'No chain/target/match by that name.' } : { code: 0, output: '' };
    if (args[1] === '-C') return { code: held.has(args.slice(2).join(' ')) ? 0 : 1, output: '' };
    return { code: 0, output: '' };
  };
  return { calls, run };
}

describe('network walls', () => {
  it('name two chains per daemon, short enough for iptables (28 characters)', () => {
    const { input, forward } = chainNames('abcdef0123456789');
    assert.equal(input, 'PGDB-IN-abcdef012345');
    assert.equal(forward, 'PGDB-FWD-abcdef012345');
    assert.ok(forward.length <= 28);
  });

  it('let answers through, then only the allowed host ports, and reject the rest (TCP with a reset: a refused connection, not a hang)', () => {
    const rules = restoreInput(SPEC).split('\n');
    const input = rules.filter((r) => r.startsWith('-A PGDB-IN-'));
    assert.deepEqual(input, [
      '-A PGDB-IN-abcdef012345 -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN',
      '-A PGDB-IN-abcdef012345 -d 172.25.0.1/32 -p tcp -m tcp --dport 8433 -j RETURN',
      '-A PGDB-IN-abcdef012345 -p tcp -j REJECT --reject-with tcp-reset',
      '-A PGDB-IN-abcdef012345 -j REJECT --reject-with icmp-port-unreachable',
    ]);
    assert.deepEqual(rules.filter((r) => r.startsWith('-A PGDB-FWD-')).map((r) => r.split(' -j ')[1]), ['RETURN', 'REJECT --reject-with tcp-reset', 'REJECT --reject-with icmp-port-unreachable']);
    // Declaring the chains is what empties them in iptables-restore --noflush: the old rules go in the same commit.
    assert.deepEqual(rules.slice(0, 3), ['*filter', ':PGDB-IN-abcdef012345 - [0:0]', ':PGDB-FWD-abcdef012345 - [0:0]']);
    assert.equal(rules.at(-2), 'COMMIT');
  });

  it('with PGDB_EGRESS=open, keep the host closed and let containers out', () => {
    const rules = restoreInput({ ...SPEC, egress: 'open' }).split('\n');
    assert.deepEqual(rules.filter((r) => r.startsWith('-A PGDB-FWD-')), ['-A PGDB-FWD-abcdef012345 -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN']);
    assert.equal(rules.filter((r) => r.startsWith('-A PGDB-IN-') && r.includes('REJECT')).length, 2);
  });

  it('refuse a network with IPv6, which IPv4 rules would leave open, and say how to remedy it', () => {
    assert.equal(ipv6Problem('pgdb-abc', { EnableIPv6: false }), undefined);
    assert.equal(ipv6Problem('pgdb-abc', {}), undefined);
    const problem = ipv6Problem('pgdb-abc', { EnableIPv6: true });
    assert.match(problem ?? '', /network pgdb-abc has IPv6/);
    assert.match(problem ?? '', /PGDB_NETWORK_WALLS=off/);
  });

  it('insert the jumps first in INPUT and DOCKER-USER, once', async () => {
    const firewall = fakeIptables();
    await new NetworkWalls(firewall.run).apply(SPEC);
    assert.ok(firewall.calls.includes('iptables -w -I INPUT 1 -i br-0123456789ab -j PGDB-IN-abcdef012345'));
    assert.ok(firewall.calls.includes('iptables -w -I DOCKER-USER 1 -i br-0123456789ab -j PGDB-FWD-abcdef012345'));
    const again = fakeIptables({ dockerUser: true, held: ['INPUT -i br-0123456789ab -j PGDB-IN-abcdef012345', 'DOCKER-USER -i br-0123456789ab -j PGDB-FWD-abcdef012345'] });
    await new NetworkWalls(again.run).apply(SPEC);
    assert.equal(again.calls.filter((c) => c.includes(' -I ')).length, 0, again.calls.join('\n'));
  });

  it('jump from FORWARD when Docker manages no iptables (no DOCKER-USER chain)', async () => {
    const firewall = fakeIptables({ dockerUser: false });
    await new NetworkWalls(firewall.run).apply(SPEC);
    assert.ok(firewall.calls.includes('iptables -w -I FORWARD 1 -i br-0123456789ab -j PGDB-FWD-abcdef012345'));
  });

  it('put the walls up again only when something took a part of them down', async () => {
    const held = ['PGDB-IN-abcdef012345 -p tcp -j REJECT --reject-with tcp-reset', 'INPUT -i br-0123456789ab -j PGDB-IN-abcdef012345', 'DOCKER-USER -i br-0123456789ab -j PGDB-FWD-abcdef012345'];
    const intact = fakeIptables({ dockerUser: true, held });
    assert.equal(await new NetworkWalls(intact.run).repair(SPEC), false);
    assert.equal(intact.calls.filter((c) => c.startsWith('iptables-restore') || c.includes(' -I ')).length, 0, intact.calls.join('\n'));
    for (const gone of held) {
      const firewall = fakeIptables({ dockerUser: true, held: held.filter((rule) => rule !== gone) });
      assert.equal(await new NetworkWalls(firewall.run).repair(SPEC), true, gone);
      assert.ok(firewall.calls.some((c) => c.startsWith('iptables-restore')), gone);
    }
  });

  it('say what is missing when iptables cannot read the firewall', async () => {
    const denied: CommandRunner = async () => ({ code: 4, output: 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)' });
    assert.match((await new NetworkWalls(denied).problem())!, /Permission denied .*CAP_NET_ADMIN/);
    await assert.rejects(new NetworkWalls(denied).apply(SPEC), /could not install the network walls \(iptables-restore\): .*Permission denied/);
  });
});
