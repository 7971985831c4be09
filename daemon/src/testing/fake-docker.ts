import { Readable } from 'node:stream';
import { DomainError } from '../common/errors.js';
import { bridgeAddress, type BridgeInspect, type HostAddresses } from '../docker/bridge-address.js';
import {
  ContainerGoneError,
  PortTakenError,
  OnlineGrowRefusedError,
  type ContainerFile,
  type ContainerSpec,
  type ContainerStatus,
  type DockerGateway,
  type ExecResult,
  type TaskSpec,
  type ExecStream,
  type IsolatedNetwork,
  type ManagedContainer,
  type ManagedVolume,
} from '../docker/docker.gateway.js';

interface FakeContainer {
  id: string;
  spec: ContainerSpec;
  running: boolean;
  files: Map<string, ContainerFile>;
}

/** An in-memory Docker engine for unit and contract tests. */
export class FakeDocker implements DockerGateway {
  readonly images = new Set<string>();
  readonly containers = new Map<string, FakeContainer>();
  readonly volumes = new Map<string, Record<string, string>>();
  readonly networks = new Map<string, Record<string, string>>();
  /** Enforced sizes (GiB) of the volumes created with one. */
  readonly volumeSizes = new Map<string, number>();
  /** Whether growing a mounted volume fails as it does without CAP_SYS_RESOURCE. */
  refuseOnlineGrow = false;
  /** Host ports something outside pgdb holds. */
  readonly foreignPorts = new Set<number>();
  reachable = true;
  /** The default bridge as `docker network inspect bridge` shows it (Docker 20.10 may leave out Gateway). */
  bridge: BridgeInspect = {
    Driver: 'bridge',
    Options: { 'com.docker.network.bridge.name': 'docker0' },
    IPAM: { Config: [{ Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' }] },
  };
  /** The host's own addresses (see hostAddresses): none by default. */
  host: HostAddresses = { interfaces: {}, localIpv4: [] };
  /** When set, runContainer fails with this error after creating nothing. */
  failRun: Error | undefined;
  private nextId = 1;

  /** Puts a running container in place, as an earlier daemon would have left it. */
  seedContainer(id: string, volumeName: string, labels: Record<string, string>): void {
    const spec: ContainerSpec = {
      containerName: `seeded-${id}`,
      image: 'postgres:17',
      volumeName,
      mountPath: '/var/lib/postgresql/data',
      bindAddress: '127.0.0.1',
      hostPort: 0,
      env: {},
      labels,
      healthcheck: [],
      containerPort: 5432,
      files: [],
      network: 'bridge',
      limits: { memoryBytes: 0, pidsLimit: 0, shmBytes: 0 },
      capabilities: [],
    };
    this.containers.set(id, { id, spec, running: true, files: new Map() });
  }

  async ping(): Promise<void> {
    this.check();
  }

  /** Labels of images the fake has; an image not listed has none (and is present). */
  readonly imageLabelsOf = new Map<string, Record<string, string>>();
  readonly builtImages: Array<{ tag: string; dockerfile: string }> = [];

  async imageLabels(image: string): Promise<Record<string, string> | null> {
    this.check();
    return this.imageLabelsOf.get(image) ?? { 'org.pgdb.pgbackrest': 'fake' };
  }

  async buildImage(tag: string, dockerfile: string): Promise<void> {
    this.check();
    this.builtImages.push({ tag, dockerfile });
    this.imageLabelsOf.set(tag, { 'org.pgdb.pgbackrest': 'built' });
  }

  async ensureImage(image: string): Promise<void> {
    this.check();
    if (!this.images.has(image)) throw new DomainError('IMAGE_UNAVAILABLE', `image ${image} could not be pulled`);
  }

  async createVolume(name: string, labels: Record<string, string>, options: { sizeGb?: number } = {}): Promise<void> {
    this.check();
    this.volumes.set(name, labels);
    if (options.sizeGb !== undefined) this.volumeSizes.set(name, options.sizeGb);
  }

  async volumeSize(name: string): Promise<number | undefined> {
    this.check();
    return this.volumeSizes.get(name);
  }

  async growVolume(name: string, sizeGb: number): Promise<void> {
    this.check();
    const size = this.volumeSizes.get(name);
    if (size === undefined) throw new Error(`volume ${name} has no size of its own to grow`);
    const mounted = [...this.containers.values()].some((c) => c.running && c.spec.volumeName === name);
    if (mounted && this.refuseOnlineGrow) throw new OnlineGrowRefusedError(`the kernel refused to grow ${name} while it is mounted (fake)`);
    this.volumeSizes.set(name, Math.max(size, sizeGb));
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<IsolatedNetwork> {
    this.check();
    this.networks.set(name, labels);
    return { name, subnets: ['172.30.0.0/16'], gateways: ['172.30.0.1'] };
  }

  async bridgeGateway(): Promise<string> {
    this.check();
    return bridgeAddress('bridge', this.bridge, this.host);
  }

  async runContainer(spec: ContainerSpec): Promise<string> {
    this.check();
    if (this.failRun) throw this.failRun;
    if (!this.volumes.has(spec.volumeName)) throw new Error(`no such volume ${spec.volumeName}`);
    if (!this.networks.has(spec.network)) throw new Error(`no such network ${spec.network}`);
    if (this.foreignPorts.has(spec.hostPort)) throw new PortTakenError(spec.hostPort);
    // As Docker's port allocator: a host port another running container publishes is taken.
    if ([...this.containers.values()].some((c) => c.running && c.spec.hostPort === spec.hostPort)) throw new PortTakenError(spec.hostPort);
    const id = `c${String(this.nextId++).padStart(63, '0')}`;
    this.containers.set(id, { id, spec, running: true, files: new Map(spec.files.map((f) => [f.path, f])) });
    return id;
  }

  async copyFiles(id: string, files: ContainerFile[]): Promise<void> {
    this.check();
    const container = this.containers.get(id);
    if (!container) throw new Error(`no such container ${id}`);
    for (const file of files) container.files.set(file.path, file);
  }

  /** Answers to exec, by the command joined with spaces; default exit 0 with no output. */
  readonly execAnswers = new Map<string, ExecResult>();
  readonly execs: string[][] = [];

  async stopContainer(id: string): Promise<void> {
    this.check();
    const container = this.containers.get(id);
    if (container) container.running = false;
  }

  /** Holders are containers that never run. */
  async createHolder(spec: { containerName: string; image: string; volumeName: string; mountPath: string; labels: Record<string, string> }): Promise<string> {
    this.check();
    const id = `h${String(this.nextId++).padStart(63, '0')}`;
    const full: ContainerSpec = {
      ...spec,
      bindAddress: '',
      hostPort: 0,
      containerPort: 0,
      env: {},
      healthcheck: [],
      files: [],
      network: 'none',
      limits: { memoryBytes: 0, pidsLimit: 0, shmBytes: 0 },
      capabilities: [],
    };
    this.containers.set(id, { id, spec: full, running: false, files: new Map() });
    return id;
  }

  async renameContainer(id: string, name: string): Promise<void> {
    this.check();
    const container = this.containers.get(id);
    if (!container) throw new Error(`no such container ${id}`);
    container.spec = { ...container.spec, containerName: name };
  }

  /** Task containers run: their specs, in order; they succeed with no output. */
  readonly tasks: TaskSpec[] = [];

  async runTask(spec: TaskSpec): Promise<ExecResult> {
    this.check();
    this.tasks.push(spec);
    return { exitCode: 0, stdout: '', stderr: '' };
  }

  async exec(id: string, command: string[]): Promise<ExecResult> {
    this.check();
    if (!this.containers.get(id)?.running) throw new Error(`container ${id} is not running`);
    this.execs.push(command);
    const answer = this.execAnswers.get(command.join(' '));
    if (answer) return answer;
    // `cat` of a file the daemon put there answers with it, as in a real container.
    const file = command[0] === 'cat' && command.length === 2 ? this.containers.get(id)!.files.get(command[1]) : undefined;
    if (file) return { exitCode: 0, stdout: file.content, stderr: '' };
    return { exitCode: 0, stdout: '', stderr: '' };
  }

  async startContainer(id: string): Promise<void> {
    this.check();
    const container = this.containers.get(id);
    if (!container) throw new Error(`no such container ${id}`);
    if (!container.running && this.foreignPorts.has(container.spec.hostPort)) throw new PortTakenError(container.spec.hostPort);
    container.running = true;
  }

  async containerStatus(id: string): Promise<ContainerStatus | null> {
    this.check();
    const container = this.containers.get(id);
    return container
      ? { running: container.running, exitCode: container.running ? null : 1, env: Object.entries(container.spec.env ?? {}).map(([k, v]) => `${k}=${v}`) }
      : null;
  }

  async containerLogs(): Promise<string> {
    this.check();
    return 'fake log line';
  }

  /** Lines each container's log holds, by id; `logStream` serves them (tail and since are recorded, not applied). */
  readonly logs = new Map<string, string[]>();
  readonly logRequests: Array<{ id: string; tail?: number; since?: number; follow: boolean }> = [];

  async logStream(id: string, options: { tail?: number; since?: number; follow: boolean }): Promise<Readable> {
    this.check();
    if (!this.containers.has(id)) throw new ContainerGoneError(id);
    this.logRequests.push({ id, ...options });
    return Readable.from((this.logs.get(id) ?? []).map((line) => Buffer.from(`${line}\n`)));
  }

  async updateMemory(id: string, memoryBytes: number): Promise<void> {
    this.check();
    const container = this.containers.get(id);
    if (!container) throw new ContainerGoneError(id);
    container.spec = { ...container.spec, limits: { ...container.spec.limits, memoryBytes } };
  }

  async updateCpus(id: string, nanoCpus: number): Promise<void> {
    this.check();
    const container = this.containers.get(id);
    if (!container) throw new ContainerGoneError(id);
    container.spec = { ...container.spec, limits: { ...container.spec.limits, nanoCpus } };
  }

  /** Answers to execStream by the command's first word: its stdout and exit; the stdin it was given is read to the end. */
  readonly streamAnswers = new Map<string, { stdout: Buffer; exitCode: number; stderr?: string }>();
  readonly streamedStdin: Buffer[] = [];

  async execStream(id: string, command: string[], options: { stdin?: Readable } = {}): Promise<ExecStream> {
    this.check();
    if (!this.containers.get(id)?.running) throw new ContainerGoneError(id);
    this.execs.push(command);
    const answer = this.streamAnswers.get(command[0]) ?? { stdout: Buffer.alloc(0), exitCode: 0 };
    const input = options.stdin;
    const read = input
      ? (async () => {
          const chunks: Buffer[] = [];
          for await (const chunk of input) chunks.push(chunk as Buffer);
          this.streamedStdin.push(Buffer.concat(chunks));
        })()
      : Promise.resolve();
    const stdout = Readable.from(answer.stdout.length > 0 ? [answer.stdout] : []);
    const done = Promise.all([read, new Promise((resolve) => stdout.once('end', resolve).once('close', resolve))]).then(() => ({
      exitCode: answer.exitCode,
      stdout: '',
      stderr: answer.stderr ?? '',
    }));
    return { stdout, done };
  }

  async removeContainer(id: string): Promise<void> {
    this.check();
    this.containers.delete(id);
  }

  async removeVolume(name: string): Promise<void> {
    this.check();
    if ([...this.containers.values()].some((c) => c.spec.volumeName === name)) {
      throw new Error(`volume ${name} is in use`);
    }
    this.volumes.delete(name);
    this.volumeSizes.delete(name);
  }

  async listContainers(labels: Record<string, string>): Promise<ManagedContainer[]> {
    this.check();
    return [...this.containers.values()]
      .filter((c) => matches(c.spec.labels, labels))
      .map((c) => ({
        id: c.id,
        name: c.spec.containerName,
        labels: c.spec.labels,
        state: c.running ? 'running' : 'stopped',
        health: c.running ? 'healthy' : 'none',
      }));
  }

  async listVolumes(labels: Record<string, string>): Promise<ManagedVolume[]> {
    this.check();
    return [...this.volumes.entries()]
      .filter(([, volumeLabels]) => matches(volumeLabels, labels))
      .map(([name, volumeLabels]) => ({ name, labels: volumeLabels, createdAt: null }));
  }

  async volumeUsage(): Promise<Map<string, number>> {
    this.check();
    return new Map([...this.volumes.keys()].map((name) => [name, 1024]));
  }

  private check(): void {
    if (!this.reachable) throw new DomainError('DOCKER_UNAVAILABLE', 'Docker engine unreachable (fake)');
  }
}

function matches(labels: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([key, value]) => labels[key] === value);
}
