/**
 * A fake Hetzner Cloud API (https://docs.hetzner.cloud) for tests: the calls
 * the hcloud provider makes for SSH keys, firewalls, servers, volumes and
 * their actions, with the real request and response shapes, the real
 * validation errors, and state kept in memory, so that refresh, update and
 * destroy see what create did.
 *
 * Servers are backed by a `Machines` implementation: in e2e/infra.e2e.ts each
 * one is a systemd container running sshd on a loopback address of its own,
 * which the API returns as the server's public IPv4. Without one (standalone,
 * by default), servers get loopback addresses and no machine.
 *
 * Standalone: node dist/e2e/support/fake-hcloud.js [--port N] [--token T]
 * prints its endpoint (for HCLOUD_ENDPOINT) on stdout.
 */
import { randomBytes, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface Machines {
  /** Brings up the machine for a new server; returns its public IPv4. */
  create(server: { id: number; name: string; authorizedKeys: string[] }): Promise<{ ipv4: string }>;
  remove(serverId: number): Promise<void>;
  createVolume(volume: { id: number; sizeGb: number; format: string | null }): Promise<void>;
  deleteVolume(volumeId: number): Promise<void>;
  attach(volumeId: number, serverId: number): Promise<void>;
  detach(volumeId: number, serverId: number): Promise<void>;
  /** Turns the machine off (`graceful`: an ACPI shutdown; else the power is cut) or on; optional. */
  power?(serverId: number, on: boolean, graceful?: boolean): Promise<void>;
}

/** Servers without machines: consecutive loopback addresses. */
export class NoMachines implements Machines {
  private next = 2;
  async create(): Promise<{ ipv4: string }> {
    return { ipv4: `127.0.0.${this.next++}` };
  }
  async remove(): Promise<void> {}
  async createVolume(): Promise<void> {}
  async deleteVolume(): Promise<void> {}
  async attach(): Promise<void> {}
  async detach(): Promise<void> {}
}

type Json = Record<string, unknown>;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Json = {},
  ) {
    super(message);
  }
}

const LOCATIONS: Json[] = [
  { id: 1, name: 'fsn1', description: 'Falkenstein DC Park 1', country: 'DE', city: 'Falkenstein', latitude: 50.47612, longitude: 12.370071, network_zone: 'eu-central' },
  { id: 2, name: 'nbg1', description: 'Nuremberg DC Park 1', country: 'DE', city: 'Nuremberg', latitude: 49.452102, longitude: 11.076665, network_zone: 'eu-central' },
  { id: 3, name: 'hel1', description: 'Helsinki DC Park 1', country: 'FI', city: 'Helsinki', latitude: 60.169855, longitude: 24.938379, network_zone: 'eu-central' },
  { id: 4, name: 'ash', description: 'Ashburn, VA', country: 'US', city: 'Ashburn, VA', latitude: 39.045821, longitude: -77.487073, network_zone: 'us-east' },
  { id: 5, name: 'hil', description: 'Hillsboro, OR', country: 'US', city: 'Hillsboro, OR', latitude: 45.54222, longitude: -122.951924, network_zone: 'us-west' },
  { id: 6, name: 'sin', description: 'Singapore', country: 'SG', city: 'Singapore', latitude: 1.283333, longitude: 103.833333, network_zone: 'ap-southeast' },
];

const SERVER_TYPES: Json[] = [
  serverType(22, 'cx22', 2, 4, 40, 'shared', 'x86'),
  serverType(23, 'cx32', 4, 8, 80, 'shared', 'x86'),
  serverType(25, 'cpx21', 3, 4, 80, 'shared', 'x86'),
  serverType(45, 'cax11', 2, 4, 40, 'shared', 'arm'),
];

function serverType(id: number, name: string, cores: number, memory: number, disk: number, cpu: string, architecture: string): Json {
  return {
    id,
    name,
    description: name.toUpperCase(),
    category: 'shared_vcpu',
    cores,
    memory,
    disk,
    deprecated: false,
    deprecation: null,
    prices: [],
    storage_type: 'local',
    cpu_type: cpu,
    architecture,
    locations: LOCATIONS.map((location) => ({ id: location.id, name: location.name, deprecation: null })),
  };
}

const IMAGES: Json[] = [
  image(114690387, 'debian-12', 'Debian 12', 'debian', '12', 'x86'),
  image(114690389, 'debian-12', 'Debian 12', 'debian', '12', 'arm'),
  image(161547269, 'ubuntu-24.04', 'Ubuntu 24.04', 'ubuntu', '24.04', 'x86'),
];

function image(id: number, name: string, description: string, flavor: string, version: string, architecture: string): Json {
  return {
    id,
    type: 'system',
    status: 'available',
    name,
    description,
    image_size: null,
    disk_size: 5,
    created: '2023-06-13T06:00:02+00:00',
    created_from: null,
    bound_to: null,
    os_flavor: flavor,
    os_version: version,
    rapid_deploy: true,
    protection: { delete: false },
    deprecated: null,
    deleted: null,
    labels: {},
    architecture,
  };
}

function datacenterOf(location: Json): Json {
  return {
    id: location.id,
    name: `${location.name}-dc${location.id === 1 ? 14 : 3}`,
    description: `${location.description} DC`,
    location,
    server_types: { supported: SERVER_TYPES.map((t) => t.id), available: SERVER_TYPES.map((t) => t.id), available_for_migration: [] },
  };
}

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, '+00:00');

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
}

export class FakeHcloud {
  readonly requests: RequestRecord[] = [];
  readonly sshKeys = new Map<number, Json>();
  readonly firewalls = new Map<number, Json>();
  readonly servers = new Map<number, Json>();
  readonly volumes = new Map<number, Json>();
  private readonly actions = new Map<number, Json>();
  private nextId = 1000 + Math.floor(Math.random() * 1000);
  private server?: Server;
  /** For HCLOUD_ENDPOINT: `http://127.0.0.1:<port>/v1`. */
  endpoint = '';

  constructor(
    readonly token: string,
    private readonly machines: Machines = new NoMachines(),
  ) {}

  async start(port = 0, host = '127.0.0.1'): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    this.endpoint = `http://${host}:${(this.server.address() as AddressInfo).port}/v1`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** Requests that changed something (anything but GET). */
  mutations(): RequestRecord[] {
    return this.requests.filter((r) => r.method !== 'GET');
  }

  private id(): number {
    return this.nextId++;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    let status = 200;
    let body: unknown;
    try {
      const auth = req.headers.authorization ?? '';
      if (auth !== `Bearer ${this.token}`) {
        throw new ApiError(401, 'unauthorized', 'unable to authenticate');
      }
      const raw = await readBody(req);
      let input: Json = {};
      if (raw) {
        try {
          input = JSON.parse(raw) as Json;
        } catch {
          throw new ApiError(400, 'json_error', 'invalid JSON');
        }
      }
      const path = url.pathname.replace(/^\/v1/, '').replace(/\/$/, '');
      [status, body] = await this.route(req.method ?? 'GET', path, url.searchParams, input);
    } catch (error) {
      if (error instanceof ApiError) {
        status = error.status;
        body = { error: { code: error.code, message: error.message, details: error.details } };
      } else {
        status = 500;
        body = { error: { code: 'server_error', message: (error as Error).message, details: {} } };
      }
    }
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, status });
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-correlation-id': randomBytes(8).toString('hex'),
      'ratelimit-limit': '3600',
      'ratelimit-remaining': '3599',
      'ratelimit-reset': String(Math.floor(Date.now() / 1000)),
    });
    res.end(status === 204 ? undefined : JSON.stringify(body));
  }

  private async route(method: string, path: string, query: URLSearchParams, input: Json): Promise<[number, unknown]> {
    const parts = path.split('/').filter(Boolean);
    const [collection, idText, actionsWord, action] = parts;
    const id = idText === undefined ? undefined : Number(idText);
    if (idText !== undefined && !Number.isInteger(id)) throw new ApiError(400, 'invalid_input', `invalid ${collection} id`);
    switch (collection) {
      case 'locations':
        return [200, listOf('locations', LOCATIONS.filter(byName(query)))];
      case 'datacenters':
        return [200, listOf('datacenters', LOCATIONS.map(datacenterOf))];
      case 'server_types':
        if (id !== undefined) return [200, { server_type: found(SERVER_TYPES.find((t) => t.id === id), 'server_type', id) }];
        return [200, listOf('server_types', SERVER_TYPES.filter(byName(query)))];
      case 'images': {
        if (id !== undefined) return [200, { image: found(IMAGES.find((i) => i.id === id), 'image', id) }];
        const arch = query.get('architecture');
        return [200, listOf('images', IMAGES.filter(byName(query)).filter((i) => !arch || i.architecture === arch))];
      }
      case 'actions': {
        if (id !== undefined) return [200, { action: found(this.actions.get(id), 'action', id) }];
        const ids = query.getAll('id').map(Number);
        return [200, listOf('actions', [...this.actions.values()].filter((a) => ids.length === 0 || ids.includes(a.id as number)))];
      }
      case 'ssh_keys':
        return this.sshKeyRoute(method, id, query, input);
      case 'firewalls':
        return this.firewallRoute(method, id, actionsWord === 'actions' ? action : undefined, query, input);
      case 'servers':
        return this.serverRoute(method, id, actionsWord === 'actions' ? action : undefined, query, input);
      case 'volumes':
        return this.volumeRoute(method, id, actionsWord === 'actions' ? action : undefined, query, input);
      default:
        throw new ApiError(404, 'not_found', 'not found');
    }
  }

  private newAction(command: string, resources: Array<{ id: number; type: string }>, status: 'success' | 'running' = 'success'): Json {
    const time = now();
    const running = status === 'running';
    const action: Json = { id: this.id(), command, status, progress: running ? 0 : 100, started: time, finished: running ? null : time, error: null, resources };
    this.actions.set(action.id as number, action);
    return { ...action };
  }

  /** Ends a running action, with an error or not. */
  private finish(action: Json, error?: string): void {
    const stored = this.actions.get(action.id as number);
    if (!stored) return;
    Object.assign(stored, { status: error ? 'error' : 'success', progress: 100, finished: now(), error: error ? { code: 'action_failed', message: error } : null });
  }

  // --- SSH keys ---------------------------------------------------------------

  private sshKeyRoute(method: string, id: number | undefined, query: URLSearchParams, input: Json): [number, unknown] {
    if (id === undefined && method === 'GET') {
      const fingerprint = query.get('fingerprint');
      return [200, listOf('ssh_keys', [...this.sshKeys.values()].filter(byName(query)).filter((k) => !fingerprint || k.fingerprint === fingerprint))];
    }
    if (id === undefined && method === 'POST') {
      const name = requireString(input, 'name');
      const publicKey = requireString(input, 'public_key');
      const parsed = /^(\S+) ([A-Za-z0-9+/]+={0,3})(?: .*)?$/.exec(publicKey.trim());
      if (!parsed) throw invalidField('public_key', 'invalid public key');
      const fingerprint = md5Fingerprint(parsed[2]);
      for (const key of this.sshKeys.values()) {
        if (key.name === name) throw new ApiError(409, 'uniqueness_error', 'SSH key with the same name already exists', { fields: [{ name: 'name' }] });
        if (key.fingerprint === fingerprint) throw new ApiError(409, 'uniqueness_error', 'SSH key with the same fingerprint already exists', { fields: [{ name: 'public_key' }] });
      }
      const key = { id: this.id(), name, fingerprint, public_key: publicKey, labels: labelsOf(input), created: now() };
      this.sshKeys.set(key.id, key);
      return [201, { ssh_key: key }];
    }
    const key = found(this.sshKeys.get(id!), 'ssh_key', id!);
    if (method === 'GET') return [200, { ssh_key: key }];
    if (method === 'PUT') {
      if (typeof input.name === 'string') key.name = input.name;
      if (input.labels !== undefined) key.labels = labelsOf(input);
      return [200, { ssh_key: key }];
    }
    if (method === 'DELETE') {
      this.sshKeys.delete(id!);
      return [204, undefined];
    }
    throw new ApiError(405, 'method_not_allowed', 'method not allowed');
  }

  // --- Firewalls ------------------------------------------------------------------

  private firewallRoute(method: string, id: number | undefined, action: string | undefined, query: URLSearchParams, input: Json): [number, unknown] {
    if (id === undefined && method === 'GET') return [200, listOf('firewalls', [...this.firewalls.values()].filter(byName(query)))];
    if (id === undefined && method === 'POST') {
      const name = requireString(input, 'name');
      if ([...this.firewalls.values()].some((f) => f.name === name)) throw new ApiError(409, 'uniqueness_error', 'firewall with the same name already exists', { fields: [{ name: 'name' }] });
      const firewall: Json = { id: this.id(), name, labels: labelsOf(input), created: now(), rules: checkRules(input.rules ?? []), applied_to: [] };
      this.firewalls.set(firewall.id as number, firewall);
      const actions = [this.newAction('set_firewall_rules', [{ id: firewall.id as number, type: 'firewall' }])];
      for (const target of (input.apply_to as Json[] | undefined) ?? []) actions.push(this.applyFirewall(firewall, target));
      return [201, { firewall, actions }];
    }
    const firewall = found(this.firewalls.get(id!), 'firewall', id!);
    if (action !== undefined) {
      if (method !== 'POST') throw new ApiError(405, 'method_not_allowed', 'method not allowed');
      switch (action) {
        case 'set_rules':
          firewall.rules = checkRules(input.rules ?? []);
          return [201, { actions: [this.newAction('set_firewall_rules', [{ id: id!, type: 'firewall' }])] }];
        case 'apply_to_resources':
          return [201, { actions: ((input.apply_to as Json[]) ?? []).map((target) => this.applyFirewall(firewall, target)) }];
        case 'remove_from_resources':
          return [201, { actions: ((input.remove_from as Json[]) ?? []).map((target) => this.removeFirewall(firewall, target)) }];
        default:
          throw new ApiError(404, 'not_found', `unknown action ${action}`);
      }
    }
    if (method === 'GET') return [200, { firewall }];
    if (method === 'PUT') {
      if (typeof input.name === 'string') firewall.name = input.name;
      if (input.labels !== undefined) firewall.labels = labelsOf(input);
      return [200, { firewall }];
    }
    if (method === 'DELETE') {
      if ((firewall.applied_to as Json[]).length > 0) throw new ApiError(422, 'resource_in_use', 'firewall is still in use');
      this.firewalls.delete(id!);
      return [204, undefined];
    }
    throw new ApiError(405, 'method_not_allowed', 'method not allowed');
  }

  private applyFirewall(firewall: Json, target: Json): Json {
    const serverId = Number((target.server as Json | undefined)?.id);
    const server = found(this.servers.get(serverId), 'server', serverId);
    const applied = firewall.applied_to as Json[];
    if (!applied.some((a) => (a.server as Json).id === serverId)) applied.push({ type: 'server', server: { id: serverId } });
    const firewalls = (server.public_net as Json).firewalls as Json[];
    if (!firewalls.some((f) => f.id === firewall.id)) firewalls.push({ id: firewall.id, status: 'applied' });
    return this.newAction('apply_firewall', [{ id: firewall.id as number, type: 'firewall' }, { id: serverId, type: 'server' }]);
  }

  private removeFirewall(firewall: Json, target: Json): Json {
    const serverId = Number((target.server as Json | undefined)?.id);
    firewall.applied_to = (firewall.applied_to as Json[]).filter((a) => (a.server as Json).id !== serverId);
    const server = this.servers.get(serverId);
    if (server) {
      const net = server.public_net as Json;
      net.firewalls = (net.firewalls as Json[]).filter((f) => f.id !== firewall.id);
    }
    return this.newAction('remove_firewall', [{ id: firewall.id as number, type: 'firewall' }, { id: serverId, type: 'server' }]);
  }

  // --- Servers -----------------------------------------------------------------------

  private async serverRoute(method: string, id: number | undefined, action: string | undefined, query: URLSearchParams, input: Json): Promise<[number, unknown]> {
    if (id === undefined && method === 'GET') return [200, listOf('servers', [...this.servers.values()].filter(byName(query)))];
    if (id === undefined && method === 'POST') return this.createServer(input);
    const server = found(this.servers.get(id!), 'server', id!);
    if (action !== undefined) {
      if (['poweron', 'poweroff', 'shutdown', 'reboot', 'reset'].includes(action)) {
        // As the real API: the action answers at once, running; the machine changes meanwhile.
        const off = action === 'poweroff' || action === 'shutdown';
        const result = this.newAction(action === 'poweron' ? 'start_server' : `${action}_server`, [{ id: id!, type: 'server' }], 'running');
        const change = async () => {
          if (action !== 'poweron') await this.machines.power?.(id!, false, action === 'shutdown' || action === 'reboot');
          if (!off) await this.machines.power?.(id!, true);
        };
        server.status = off ? 'stopping' : 'starting';
        change().then(
          () => {
            server.status = off ? 'off' : 'running';
            this.finish(result);
          },
          (error: Error) => this.finish(result, error.message),
        );
        return [201, { action: result }];
      }
      if (action === 'change_type') {
        // The real API: the server must be off; upgrade_disk grows the disk to the new type's (and then no smaller type fits).
        const type = SERVER_TYPES.find((t) => t.name === input.server_type || t.id === Number(input.server_type));
        if (!type) throw invalidField('server_type', 'server type not found');
        if (typeof input.upgrade_disk !== 'boolean') throw invalidField('upgrade_disk', 'is missing');
        if (server.status !== 'off') throw new ApiError(409, 'server_not_stopped', 'server must be stopped before changing its type');
        if ((type.architecture as string) !== ((server.server_type as Json).architecture as string)) throw new ApiError(422, 'invalid_server_type', 'the server type has another architecture');
        if ((type.disk as number) < (server.primary_disk_size as number)) throw new ApiError(422, 'invalid_server_type', 'the server\'s disk is larger than the server type\'s');
        server.server_type = type;
        if (input.upgrade_disk) server.primary_disk_size = type.disk;
        return [201, { action: this.newAction('change_server_type', [{ id: id!, type: 'server' }]) }];
      }
      throw new ApiError(404, 'not_found', `unknown action ${action}`);
    }
    if (method === 'GET') return [200, { server }];
    if (method === 'PUT') {
      if (typeof input.name === 'string') server.name = input.name;
      if (input.labels !== undefined) server.labels = labelsOf(input);
      return [200, { server }];
    }
    if (method === 'DELETE') {
      for (const firewall of this.firewalls.values()) {
        firewall.applied_to = (firewall.applied_to as Json[]).filter((a) => (a.server as Json).id !== id);
      }
      for (const volume of this.volumes.values()) {
        if (volume.server === id) {
          await this.machines.detach(volume.id as number, id!);
          volume.server = null;
        }
      }
      await this.machines.remove(id!);
      this.servers.delete(id!);
      return [200, { action: this.newAction('delete_server', [{ id: id!, type: 'server' }]) }];
    }
    throw new ApiError(405, 'method_not_allowed', 'method not allowed');
  }

  private async createServer(input: Json): Promise<[number, unknown]> {
    const name = requireString(input, 'name');
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$/.test(name)) throw invalidField('name', 'invalid hostname');
    const typeRef = input.server_type;
    const type = SERVER_TYPES.find((t) => t.name === typeRef || t.id === Number(typeRef));
    if (!type) throw invalidField('server_type', 'server type not found');
    const imageRef = input.image;
    const img = IMAGES.find((i) => (i.name === imageRef || i.id === Number(imageRef)) && i.architecture === type.architecture);
    if (!img) throw invalidField('image', 'image not found');
    const location = input.location === undefined ? LOCATIONS[0] : LOCATIONS.find((l) => l.name === input.location || l.id === Number(input.location));
    if (!location) throw invalidField('location', 'location not found');
    if ([...this.servers.values()].some((s) => s.name === name)) throw new ApiError(409, 'uniqueness_error', 'server name is already used', { fields: [{ name: 'name' }] });
    const keys = ((input.ssh_keys as Array<string | number> | undefined) ?? []).map((ref) => {
      const key = [...this.sshKeys.values()].find((k) => k.id === Number(ref) || k.name === ref);
      if (!key) throw invalidField('ssh_keys', `SSH key ${ref} not found`);
      return key;
    });
    const firewallIds = ((input.firewalls as Json[] | undefined) ?? []).map((f) => {
      const fid = Number(f.firewall);
      found(this.firewalls.get(fid), 'firewall', fid);
      return fid;
    });
    const publicNet = (input.public_net as Json | undefined) ?? {};
    const id = this.id();
    const { ipv4 } = await this.machines.create({ id, name, authorizedKeys: keys.map((k) => k.public_key as string) });
    const ipv6Net = `2001:db8:${(id % 0xffff).toString(16)}::/64`;
    const server: Json = {
      id,
      name,
      status: input.start_after_create === false ? 'off' : 'running',
      created: now(),
      public_net: {
        ipv4: publicNet.enable_ipv4 === false ? null : { id: this.id(), ip: ipv4, blocked: false, dns_ptr: `static.${ipv4}.clients.your-server.de` },
        ipv6: publicNet.enable_ipv6 === false ? null : { id: this.id(), ip: ipv6Net, blocked: false, dns_ptr: [] },
        floating_ips: [],
        firewalls: [],
      },
      private_net: [],
      server_type: type,
      datacenter: datacenterOf(location),
      location,
      image: img,
      iso: null,
      rescue_enabled: false,
      locked: false,
      backup_window: null,
      outgoing_traffic: 0,
      ingoing_traffic: 0,
      included_traffic: 21990232555520,
      protection: { delete: false, rebuild: false },
      labels: labelsOf(input),
      volumes: [],
      load_balancers: [],
      primary_disk_size: type.disk,
      placement_group: null,
    };
    this.servers.set(id, server);
    for (const fid of firewallIds) this.applyFirewall(this.firewalls.get(fid)!, { type: 'server', server: { id } });
    const action = this.newAction('create_server', [{ id, type: 'server' }]);
    return [201, { server, action, next_actions: [this.newAction('start_server', [{ id, type: 'server' }])], root_password: null }];
  }

  // --- Volumes -------------------------------------------------------------------------

  private async volumeRoute(method: string, id: number | undefined, action: string | undefined, query: URLSearchParams, input: Json): Promise<[number, unknown]> {
    if (id === undefined && method === 'GET') return [200, listOf('volumes', [...this.volumes.values()].filter(byName(query)))];
    if (id === undefined && method === 'POST') {
      const name = requireString(input, 'name');
      const size = Number(input.size);
      if (!Number.isInteger(size) || size < 10 || size > 10240) throw invalidField('size', 'size must be between 10 and 10240');
      if ([...this.volumes.values()].some((v) => v.name === name)) throw new ApiError(409, 'uniqueness_error', 'volume name is already used', { fields: [{ name: 'name' }] });
      let location: Json | undefined;
      let serverId: number | null = null;
      if (input.server !== undefined) {
        const server = found(this.servers.get(Number(input.server)), 'server', Number(input.server));
        location = server.location as Json;
        serverId = server.id as number;
      } else {
        location = LOCATIONS.find((l) => l.name === input.location || l.id === Number(input.location));
        if (!location) throw invalidField('location', 'location not found');
      }
      const format = input.format === undefined ? null : String(input.format);
      if (format !== null && !['ext4', 'xfs'].includes(format)) throw invalidField('format', 'format must be ext4 or xfs');
      const volumeId = this.id();
      const volume: Json = {
        id: volumeId,
        name,
        size,
        server: null,
        location,
        linux_device: `/dev/disk/by-id/scsi-0HC_Volume_${volumeId}`,
        protection: { delete: false },
        labels: labelsOf(input),
        status: 'available',
        format,
        created: now(),
      };
      await this.machines.createVolume({ id: volumeId, sizeGb: size, format });
      this.volumes.set(volumeId, volume);
      const next: Json[] = [];
      if (serverId !== null) next.push(await this.attach(volume, serverId));
      return [201, { volume, action: this.newAction('create_volume', [{ id: volumeId, type: 'volume' }]), next_actions: next }];
    }
    const volume = found(this.volumes.get(id!), 'volume', id!);
    if (action !== undefined) {
      if (method !== 'POST') throw new ApiError(405, 'method_not_allowed', 'method not allowed');
      switch (action) {
        case 'attach': {
          if (volume.server !== null) throw new ApiError(422, 'volume_already_attached', 'volume is already attached to a server');
          return [201, { action: await this.attach(volume, Number(input.server)) }];
        }
        case 'detach': {
          const serverId = volume.server as number | null;
          if (serverId !== null) {
            await this.machines.detach(id!, serverId);
            const server = this.servers.get(serverId);
            if (server) server.volumes = (server.volumes as number[]).filter((v) => v !== id);
          }
          volume.server = null;
          return [201, { action: this.newAction('detach_volume', [{ id: id!, type: 'volume' }]) }];
        }
        case 'resize': {
          const size = Number(input.size);
          if (!Number.isInteger(size) || size < (volume.size as number)) throw invalidField('size', 'volumes can only grow');
          volume.size = size;
          return [201, { action: this.newAction('resize_volume', [{ id: id!, type: 'volume' }]) }];
        }
        case 'change_protection':
          volume.protection = { delete: input.delete === true };
          return [201, { action: this.newAction('change_protection', [{ id: id!, type: 'volume' }]) }];
        default:
          throw new ApiError(404, 'not_found', `unknown action ${action}`);
      }
    }
    if (method === 'GET') return [200, { volume }];
    if (method === 'PUT') {
      if (typeof input.name === 'string') volume.name = input.name;
      if (input.labels !== undefined) volume.labels = labelsOf(input);
      return [200, { volume }];
    }
    if (method === 'DELETE') {
      if (volume.server !== null) throw new ApiError(423, 'locked', 'volume is attached to a server');
      await this.machines.deleteVolume(id!);
      this.volumes.delete(id!);
      return [204, undefined];
    }
    throw new ApiError(405, 'method_not_allowed', 'method not allowed');
  }

  private async attach(volume: Json, serverId: number): Promise<Json> {
    const server = found(this.servers.get(serverId), 'server', serverId);
    if ((server.location as Json).name !== (volume.location as Json).name) {
      throw new ApiError(422, 'invalid_input', 'server and volume must be in the same location');
    }
    await this.machines.attach(volume.id as number, serverId);
    volume.server = serverId;
    (server.volumes as number[]).push(volume.id as number);
    return this.newAction('attach_volume', [{ id: volume.id as number, type: 'volume' }, { id: serverId, type: 'server' }]);
  }
}

function listOf(key: string, items: unknown[]): Json {
  return { [key]: items, meta: { pagination: { page: 1, per_page: 50, previous_page: null, next_page: null, last_page: 1, total_entries: items.length } } };
}

function byName(query: URLSearchParams): (item: Json) => boolean {
  const name = query.get('name');
  return (item) => name === null || item.name === name;
}

function found(item: Json | undefined, kind: string, id: number): Json {
  if (!item) throw new ApiError(404, 'not_found', `${kind} with ID ${id} not found`);
  return item;
}

function requireString(input: Json, field: string): string {
  if (typeof input[field] !== 'string' || input[field] === '') throw invalidField(field, 'Missing data for required field.');
  return input[field] as string;
}

function invalidField(field: string, message: string): ApiError {
  return new ApiError(400, 'invalid_input', `invalid input in field '${field}'`, { fields: [{ name: field, messages: [message] }] });
}

function labelsOf(input: Json): Record<string, string> {
  const labels = (input.labels as Record<string, string> | undefined) ?? {};
  for (const [key, value] of Object.entries(labels)) {
    if (!/^([a-z0-9A-Z][a-z0-9A-Z._/-]{0,62})?$/.test(key) || typeof value !== 'string') throw invalidField('labels', `invalid label ${key}`);
  }
  return { ...labels };
}

const CIDR = /^[0-9a-fA-F.:]+\/\d{1,3}$/;

function checkRules(rules: unknown): Json[] {
  if (!Array.isArray(rules)) throw invalidField('rules', 'rules must be a list');
  return rules.map((rule: Json, index) => {
    if (rule.direction !== 'in' && rule.direction !== 'out') throw invalidField('rules', `rule ${index}: direction must be in or out`);
    if (!['tcp', 'udp', 'icmp', 'esp', 'gre'].includes(rule.protocol as string)) throw invalidField('rules', `rule ${index}: invalid protocol`);
    if ((rule.protocol === 'tcp' || rule.protocol === 'udp') && !/^(\d{1,5}(-\d{1,5})?|any)$/.test(String(rule.port ?? ''))) {
      throw invalidField('rules', `rule ${index}: port is required for tcp and udp`);
    }
    const sources = (rule.source_ips as string[] | undefined) ?? [];
    const destinations = (rule.destination_ips as string[] | undefined) ?? [];
    for (const cidr of [...sources, ...destinations]) if (!CIDR.test(cidr)) throw invalidField('rules', `rule ${index}: invalid CIDR ${cidr}`);
    if (rule.direction === 'in' && sources.length === 0) throw invalidField('rules', `rule ${index}: source_ips is required for direction in`);
    return {
      direction: rule.direction,
      protocol: rule.protocol,
      port: rule.port ?? null,
      source_ips: sources,
      destination_ips: destinations,
      description: rule.description ?? null,
    };
  });
}

function md5Fingerprint(base64: string): string {
  return createHash('md5').update(Buffer.from(base64, 'base64')).digest('hex').match(/../g)!.join(':');
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string) => {
    const index = process.argv.indexOf(name);
    return index === -1 ? undefined : process.argv[index + 1];
  };
  const token = arg('--token') ?? randomBytes(32).toString('hex');
  const fake = await new FakeHcloud(token).start(Number(arg('--port') ?? 0));
  process.stdout.write(`${JSON.stringify({ endpoint: fake.endpoint, token })}\n`);
  process.on('SIGTERM', () => void fake.stop().then(() => process.exit(0)));
}
