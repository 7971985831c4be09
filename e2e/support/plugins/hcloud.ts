/**
 * Stand-in for the `hcloud` provider plugin in tests (the real one cannot be
 * had here): the resource types infra/ uses, with check, diff, create, read,
 * update and delete, made of calls to the Hetzner Cloud API at HCLOUD_ENDPOINT
 * with HCLOUD_TOKEN, in the real API's shapes, as the real provider does.
 * Outputs use the SDK's names (node_modules/@pulumi/hcloud/*.d.ts).
 */
import { createHash } from 'node:crypto';
import { main, type Provider } from '@pulumi/pulumi/provider/index.js';
import { clean, diffResult, pluginVersion, reveal, typeOf } from './protocol.js';

type Json = Record<string, any>;

const endpoint = (process.env.HCLOUD_ENDPOINT || 'https://api.hetzner.cloud/v1').replace(/\/$/, '');

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const token = process.env.HCLOUD_TOKEN ?? '';
  if (token.length !== 64) {
    // The real provider's words (hcloud 1.32.0).
    throw new Error('could not validate provider configuration: entered token is invalid (must be exactly 64 characters long)');
  }
  const response = await fetch(`${endpoint}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'user-agent': 'pgdb-test-standin' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    // hcloud-go's Error(): "<message> (<code>, <correlation id>)".
    const error = new Error(`${data.error?.message ?? response.statusText} (${data.error?.code ?? response.status}, ${response.headers.get('x-correlation-id') ?? ''})`);
    (error as Error & { status: number }).status = response.status;
    throw error;
  }
  return data;
}

async function getOrGone(path: string): Promise<any | undefined> {
  try {
    return await api('GET', path);
  } catch (error) {
    if ((error as { status?: number }).status === 404) return undefined;
    throw error;
  }
}

async function waitFor(action: Json | undefined): Promise<void> {
  let current = action;
  while (current && current.status === 'running') {
    await new Promise((resolve) => setTimeout(resolve, 200));
    current = (await api('GET', `/actions/${current.id}`)).action;
  }
  if (current && current.status === 'error') throw new Error(`action ${current.command} failed: ${current.error?.message}`);
}

interface Kind {
  updatable: string[];
  replacing: string[];
  create(inputs: Json): Promise<{ id: string; outs: Json }>;
  read(id: string, state: Json): Promise<Json | undefined>;
  update(id: string, olds: Json, news: Json): Promise<Json>;
  delete(id: string, state: Json): Promise<void>;
  /** The inputs that would produce this state (what refresh compares). */
  inputsOf(outs: Json, state: Json): Json;
  /** The values as the provider compares them (a set is compared as a set); as they are by default. */
  canonical?(values: Json): Json;
}

// --- SshKey -------------------------------------------------------------------

const sshKeyOuts = (key: Json): Json => ({ name: key.name, publicKey: key.public_key, fingerprint: key.fingerprint, labels: key.labels });

const sshKey: Kind = {
  updatable: ['name', 'labels'],
  replacing: ['publicKey'],
  async create(inputs) {
    const { ssh_key } = await api('POST', '/ssh_keys', { name: inputs.name, public_key: inputs.publicKey, labels: inputs.labels ?? {} });
    return { id: String(ssh_key.id), outs: sshKeyOuts(ssh_key) };
  },
  async read(id) {
    const data = await getOrGone(`/ssh_keys/${id}`);
    return data && sshKeyOuts(data.ssh_key);
  },
  async update(id, _olds, news) {
    const { ssh_key } = await api('PUT', `/ssh_keys/${id}`, { name: news.name, labels: news.labels ?? {} });
    return sshKeyOuts(ssh_key);
  },
  async delete(id) {
    await api('DELETE', `/ssh_keys/${id}`);
  },
  inputsOf: (outs) => ({ name: outs.name, publicKey: outs.publicKey, labels: outs.labels }),
};

// --- Firewall ---------------------------------------------------------------------

const toApiRule = (rule: Json): Json => ({
  direction: rule.direction,
  protocol: rule.protocol,
  port: rule.port,
  source_ips: rule.sourceIps ?? [],
  destination_ips: rule.destinationIps ?? [],
  description: rule.description,
});

const fromApiRule = (rule: Json): Json => {
  const out: Json = { direction: rule.direction, protocol: rule.protocol, sourceIps: rule.source_ips, destinationIps: rule.destination_ips };
  if (rule.port !== null) out.port = rule.port;
  if (rule.description !== null) out.description = rule.description;
  return out;
};

/**
 * The rules as the real provider sends them: `rule` is a set in its schema,
 * so they go in the order of their hashes, not the program's.
 */
const inHashOrder = (rules: Json[]): Json[] =>
  rules
    .map((rule) => ({ rule, hash: createHash('sha256').update(JSON.stringify(rule)).digest('hex') }))
    .sort((a, b) => a.hash.localeCompare(b.hash))
    .map(({ rule }) => rule);

/** Rules (and their addresses) as sets: the order in which the program lists them is no change. */
const asRuleSet = (rules: Json[] | undefined): Json[] =>
  (rules ?? [])
    .map((rule) => ({ ...rule, sourceIps: [...(rule.sourceIps ?? [])].sort(), destinationIps: [...(rule.destinationIps ?? [])].sort() }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

const firewallOuts = (firewall: Json): Json => ({
  name: firewall.name,
  labels: firewall.labels,
  rules: firewall.rules.map(fromApiRule),
  applyTos: [],
});

const firewall: Kind = {
  updatable: ['name', 'labels', 'rules'],
  replacing: [],
  async create(inputs) {
    const { firewall: created, actions } = await api('POST', '/firewalls', {
      name: inputs.name,
      labels: inputs.labels ?? {},
      rules: inHashOrder((inputs.rules ?? []).map(toApiRule)),
    });
    for (const action of actions ?? []) await waitFor(action);
    return { id: String(created.id), outs: firewallOuts(created) };
  },
  async read(id) {
    const data = await getOrGone(`/firewalls/${id}`);
    return data && firewallOuts(data.firewall);
  },
  async update(id, olds, news) {
    if (JSON.stringify([olds.name, olds.labels]) !== JSON.stringify([news.name, news.labels ?? {}])) {
      await api('PUT', `/firewalls/${id}`, { name: news.name, labels: news.labels ?? {} });
    }
    const { actions } = await api('POST', `/firewalls/${id}/actions/set_rules`, { rules: inHashOrder((news.rules ?? []).map(toApiRule)) });
    for (const action of actions ?? []) await waitFor(action);
    return firewallOuts((await api('GET', `/firewalls/${id}`)).firewall);
  },
  async delete(id) {
    await api('DELETE', `/firewalls/${id}`);
  },
  inputsOf: (outs) => ({ name: outs.name, labels: outs.labels, rules: outs.rules }),
  canonical: (values) => ({ ...values, rules: asRuleSet(values.rules) }),
};

// --- Server ------------------------------------------------------------------------------

function serverOuts(server: Json, inputs: Json): Json {
  return {
    name: server.name,
    serverType: server.server_type.name,
    image: inputs.image ?? String(server.image?.id ?? ''),
    location: server.location?.name ?? server.datacenter.location.name,
    datacenter: server.datacenter.name,
    status: server.status,
    ipv4Address: server.public_net.ipv4?.ip ?? '',
    ipv6Network: server.public_net.ipv6?.ip ?? '',
    ipv6Address: server.public_net.ipv6 ? server.public_net.ipv6.ip.replace(/::\/64$/, '::1') : '',
    labels: server.labels,
    firewallIds: server.public_net.firewalls.map((f: Json) => f.id),
    sshKeys: inputs.sshKeys ?? [],
    publicNets: inputs.publicNets ?? [],
    backups: false,
    deleteProtection: server.protection.delete,
    rebuildProtection: server.protection.rebuild,
    primaryDiskSize: server.primary_disk_size,
    keepDisk: inputs.keepDisk ?? false,
    allowDeprecatedImages: inputs.allowDeprecatedImages ?? false,
    shutdownBeforeDeletion: inputs.shutdownBeforeDeletion ?? false,
    ignoreRemoteFirewallIds: inputs.ignoreRemoteFirewallIds ?? false,
  };
}

const server: Kind = {
  // As the real provider's schema: a new type is an update (power off, change_type), not a new server.
  updatable: ['name', 'labels', 'firewallIds', 'serverType', 'keepDisk'],
  replacing: ['image', 'location', 'sshKeys', 'publicNets', 'userData'],
  async create(inputs) {
    // As the real provider: look the type and the image up first.
    const types = (await api('GET', `/server_types?name=${encodeURIComponent(inputs.serverType)}`)).server_types;
    if (types.length === 0) throw new Error(`server type ${inputs.serverType} not found`);
    const images = (await api('GET', `/images?name=${encodeURIComponent(inputs.image)}&architecture=${types[0].architecture}&include_deprecated=true`)).images;
    if (images.length === 0) throw new Error(`image ${inputs.image} for architecture ${types[0].architecture} not found`);
    const net = (inputs.publicNets ?? [])[0] ?? {};
    const body = {
      name: inputs.name,
      server_type: inputs.serverType,
      image: String(images[0].id),
      location: inputs.location,
      ssh_keys: (inputs.sshKeys ?? []).map((key: string) => (/^\d+$/.test(key) ? Number(key) : key)),
      firewalls: (inputs.firewallIds ?? []).map((id: number) => ({ firewall: Number(id) })),
      public_net: { enable_ipv4: net.ipv4Enabled ?? true, enable_ipv6: net.ipv6Enabled ?? true },
      labels: inputs.labels ?? {},
      start_after_create: true,
      user_data: inputs.userData,
    };
    const created = await api('POST', '/servers', body);
    await waitFor(created.action);
    for (const action of created.next_actions ?? []) await waitFor(action);
    const { server: current } = await api('GET', `/servers/${created.server.id}`);
    return { id: String(current.id), outs: serverOuts(current, inputs) };
  },
  async read(id, state) {
    const data = await getOrGone(`/servers/${id}`);
    return data && serverOuts(data.server, state);
  },
  async update(id, olds, news) {
    if (olds.name !== news.name || JSON.stringify(olds.labels) !== JSON.stringify(news.labels ?? {})) {
      await api('PUT', `/servers/${id}`, { name: news.name, labels: news.labels ?? {} });
    }
    if (news.serverType !== olds.serverType) {
      // What the real provider does (terraform-provider-hcloud's server update): power the server
      // off when it runs, change its type (the disk grows unless keepDisk), and leave it off.
      const { server: current } = await api('GET', `/servers/${id}`);
      if (current.status === 'running') await waitFor((await api('POST', `/servers/${id}/actions/poweroff`, {})).action);
      await waitFor((await api('POST', `/servers/${id}/actions/change_type`, { server_type: news.serverType, upgrade_disk: !(news.keepDisk ?? false) })).action);
    }
    const before = new Set<number>((olds.firewallIds ?? []).map(Number));
    const after = new Set<number>((news.firewallIds ?? []).map(Number));
    for (const fid of after) {
      if (!before.has(fid)) {
        const { actions } = await api('POST', `/firewalls/${fid}/actions/apply_to_resources`, { apply_to: [{ type: 'server', server: { id: Number(id) } }] });
        for (const action of actions) await waitFor(action);
      }
    }
    for (const fid of before) {
      if (!after.has(fid)) {
        const { actions } = await api('POST', `/firewalls/${fid}/actions/remove_from_resources`, { remove_from: [{ type: 'server', server: { id: Number(id) } }] });
        for (const action of actions) await waitFor(action);
      }
    }
    return serverOuts((await api('GET', `/servers/${id}`)).server, news);
  },
  async delete(id) {
    const data = await api('DELETE', `/servers/${id}`);
    await waitFor(data.action);
  },
  inputsOf: (outs) => ({
    name: outs.name,
    serverType: outs.serverType,
    image: outs.image,
    location: outs.location,
    labels: outs.labels,
    firewallIds: outs.firewallIds,
    sshKeys: outs.sshKeys,
    publicNets: outs.publicNets,
  }),
};

// --- Volume ----------------------------------------------------------------------------

const volumeOuts = (volume: Json, inputs: Json): Json => ({
  name: volume.name,
  size: volume.size,
  location: volume.location.name,
  format: volume.format ?? inputs.format,
  linuxDevice: volume.linux_device,
  labels: volume.labels,
  serverId: volume.server ?? undefined,
  automount: inputs.automount ?? false,
  deleteProtection: volume.protection.delete,
});

const volume: Kind = {
  updatable: ['name', 'labels', 'size'],
  replacing: ['location', 'format'],
  async create(inputs) {
    const created = await api('POST', '/volumes', {
      name: inputs.name,
      size: inputs.size,
      location: inputs.location,
      format: inputs.format,
      labels: inputs.labels ?? {},
      automount: false,
    });
    await waitFor(created.action);
    return { id: String(created.volume.id), outs: volumeOuts(created.volume, inputs) };
  },
  async read(id, state) {
    const data = await getOrGone(`/volumes/${id}`);
    return data && volumeOuts(data.volume, state);
  },
  async update(id, olds, news) {
    if (olds.name !== news.name || JSON.stringify(olds.labels) !== JSON.stringify(news.labels ?? {})) {
      await api('PUT', `/volumes/${id}`, { name: news.name, labels: news.labels ?? {} });
    }
    if (Number(news.size) !== Number(olds.size)) {
      await waitFor((await api('POST', `/volumes/${id}/actions/resize`, { size: news.size })).action);
    }
    return volumeOuts((await api('GET', `/volumes/${id}`)).volume, news);
  },
  async delete(id) {
    await api('DELETE', `/volumes/${id}`);
  },
  inputsOf: (outs) => ({ name: outs.name, size: outs.size, location: outs.location, format: outs.format, labels: outs.labels }),
};

// --- VolumeAttachment (its ID is the volume's) ----------------------------------------------

const volumeAttachment: Kind = {
  updatable: ['automount'],
  replacing: ['serverId', 'volumeId'],
  async create(inputs) {
    const data = await api('POST', `/volumes/${inputs.volumeId}/actions/attach`, { server: Number(inputs.serverId), automount: inputs.automount ?? false });
    await waitFor(data.action);
    return { id: String(inputs.volumeId), outs: { serverId: Number(inputs.serverId), volumeId: Number(inputs.volumeId), automount: inputs.automount ?? false } };
  },
  async read(id, state) {
    const data = await getOrGone(`/volumes/${id}`);
    if (!data || data.volume.server === null) return undefined;
    return { serverId: data.volume.server, volumeId: Number(id), automount: state.automount ?? false };
  },
  async update(_id, _olds, news) {
    return { serverId: Number(news.serverId), volumeId: Number(news.volumeId), automount: news.automount ?? false };
  },
  async delete(id) {
    const data = await getOrGone(`/volumes/${id}`);
    if (!data || data.volume.server === null) return;
    await waitFor((await api('POST', `/volumes/${id}/actions/detach`, {})).action);
  },
  inputsOf: (outs) => ({ serverId: outs.serverId, volumeId: outs.volumeId, automount: outs.automount }),
};

const KINDS: Record<string, Kind> = {
  'hcloud:index/sshKey:SshKey': sshKey,
  'hcloud:index/firewall:Firewall': firewall,
  'hcloud:index/server:Server': server,
  'hcloud:index/volume:Volume': volume,
  'hcloud:index/volumeAttachment:VolumeAttachment': volumeAttachment,
};

function kind(urn: string): Kind {
  const found = KINDS[typeOf(urn)];
  if (!found) throw new Error(`the hcloud stand-in does not implement ${typeOf(urn)}`);
  return found;
}

const provider: Provider = {
  version: pluginVersion('@pulumi/hcloud'),
  async check(urn, _olds, news) {
    kind(urn);
    return { inputs: news };
  },
  async diff(_id, urn, olds, news) {
    const k = kind(urn);
    const canonical = k.canonical ?? ((values: Json) => values);
    return diffResult(canonical(reveal(olds)), canonical(reveal(news)), k.updatable, k.replacing);
  },
  async create(urn, inputs) {
    const { id, outs } = await kind(urn).create(reveal(inputs));
    return { id, outs: clean(outs) };
  },
  async read(id, urn, props) {
    const k = kind(urn);
    const outs = await k.read(id, reveal(props ?? {}));
    // An empty ID tells the engine the resource is gone.
    if (!outs) return { id: '', props: {} };
    return { id, props: clean(outs), inputs: clean(k.inputsOf(outs, props ?? {})) };
  },
  async update(id, urn, olds, news) {
    return { outs: clean(await kind(urn).update(id, reveal(olds), reveal(news))) };
  },
  async delete(id, urn, props) {
    await kind(urn).delete(id, reveal(props));
  },
};

await main(provider, process.argv.slice(2));
