import { isIP } from 'node:net';
import { Readable, Writable, type Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import Docker from 'dockerode';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { DomainError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import {
  ContainerGoneError,
  PortTakenError,
  type ContainerFile,
  type ContainerSpec,
  type ContainerStatus,
  type DockerGateway,
  type ExecResult,
  type ExecStream,
  type IsolatedNetwork,
  type ListOptions,
  type ManagedContainer,
  type ManagedVolume,
  type TaskSpec,
} from './docker.gateway.js';
import { bridgeAddress, bridgeAddresses, bridgeInterface, type BridgeInspect } from './bridge-address.js';
import { ListCache } from './list-cache.js';
import { ipv6Problem, NetworkWalls, type WallSpec } from './network-walls.js';
import { VolumeDisks } from './volume-disks.js';
import { tarOf } from './tar.js';
import { callEngine, CallTrackingAgent, reason, statusOf } from './engine-calls.js';
import { EngineEvents } from './engine-events.js';
import { healthOf, isPortConflict, labelFilters, portIn, publishedOf, stateOf } from './engine-lists.js';
import { demultiplex, Frames, Tail } from './frames.js';

/** How often the network walls are checked (and put up again if something took them down). */
const WALLS_CHECK_MS = 15_000;

const NANOSECONDS_PER_SECOND = 1e9;
const VOLUME_IN_USE_RETRIES = 20;
const DF_ATTEMPTS = 5;
/** How much of a streamed command's stderr is kept (its end). */
const EXEC_STDERR_MAX_BYTES = 64 * 1024;
/** The health route must answer within 5 s even when the engine hangs. */
export const PING_TIMEOUT_MS = 3000;
/** A pull downloads image layers: far longer than an API call. */
const PULL_TIMEOUT_MS = 15 * 60_000;
/** The DockerGateway on a real engine through dockerode. The only module that imports it. */
@Injectable()
export class DockerodeGateway implements DockerGateway, OnModuleInit, OnApplicationShutdown {
  private readonly docker: Docker;
  private readonly logger: Logger;
  private readonly lists: ListCache;
  /** The engine's event stream, which keeps the cached lists honest. */
  private readonly events: EngineEvents;
  /** Sized volumes' disk images; undefined when sizes are not enforced (PGDB_SIZE_LIMITS=off). */
  private readonly disks: VolumeDisks | undefined;
  private readonly walls: NetworkWalls;
  private readonly wallSpecs = new Map<string, WallSpec>();
  private wallsTimer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(DAEMON_CONFIG) private readonly config: DaemonConfig,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    // docker-modem takes an `agent`; @types/dockerode does not list it.
    const options = { socketPath: config.dockerSocket, agent: new CallTrackingAgent() };
    this.docker = new Docker(options as Docker.DockerOptions);
    this.logger = logger.child({ module: 'docker' });
    this.disks = config.sizeLimits ? new VolumeDisks(config.sizeLimits, this.logger) : undefined;
    this.walls = new NetworkWalls();
    this.lists = new ListCache(config.statusCacheMs);
    this.events = new EngineEvents(
      () => this.call(() => this.docker.getEvents({ since: Math.floor(Date.now() / 1000) - 1, filters: { type: ['container', 'volume'] } })) as Promise<Readable>,
      this.lists,
      this.logger,
    );
  }

  onApplicationShutdown(): void {
    clearInterval(this.wallsTimer);
    this.events.close();
  }

  async ping(): Promise<void> {
    await this.call(() => this.docker.ping(), Math.min(PING_TIMEOUT_MS, this.config.dockerTimeoutMs));
  }

  async ensureImage(image: string): Promise<void> {
    const present = await this.call(() => this.docker.getImage(image).inspect()).then(
      () => true,
      (error) => (statusOf(error) === 404 ? false : Promise.reject(error)),
    );
    if (present) return;
    this.logger.info({ image }, 'pulling image');
    try {
      await this.call(async () => {
        const stream = await this.docker.pull(image);
        await new Promise<void>((resolve, reject) =>
          this.docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve())),
        );
      }, PULL_TIMEOUT_MS);
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw new DomainError(
        'IMAGE_UNAVAILABLE',
        `image ${image} is not on the server and could not be pulled (${reason(error)}); ` +
          'pull or load it with docker, or point PGDB_IMAGE_TEMPLATE at an image the server has',
      );
    }
  }

  async imageLabels(image: string): Promise<Record<string, string> | null> {
    return this.call(() => this.docker.getImage(image).inspect()).then(
      (info) => (info.Config?.Labels as Record<string, string> | null) ?? {},
      (error) => (statusOf(error) === 404 ? null : Promise.reject(error)),
    );
  }

  async buildImage(tag: string, dockerfile: string): Promise<void> {
    const context = await tarOf([{ path: '/Dockerfile', content: dockerfile, mode: 0o644, uid: 0, gid: 0 }]);
    this.logger.info({ image: tag }, 'building image');
    await this.call(async () => {
      const stream = await this.docker.buildImage(Readable.from([context]), { t: tag, forcerm: true });
      await new Promise<void>((resolve, reject) =>
        this.docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string; stream?: string }>) => {
          const failed = error?.message ?? output?.find((o) => o.error)?.error;
          if (!failed) return resolve();
          // What the failed step printed last says why (apt's "E: ..." lines), not Docker's exit code.
          // The engine colours a step's stderr (ANSI escapes), and a line may arrive in several
          // pieces: the pieces are joined before the colours go and the text is split into lines.
          const printed = (output ?? [])
            .map((o) => o.stream ?? '')
            .join('')
            .replace(/\u001b\[[0-9;]*m/g, '')
            .split('\n')
            .map((line) => line.trim())
            .filter(Boolean);
          const said = printed.filter((line) => /^(E:|ERROR|error)/.test(line)).slice(-2);
          this.logger.error({ image: tag, output: printed.slice(-20) }, 'building image failed');
          return reject(new Error([failed.trim(), ...said].join('; ')));
        }),
      );
    }, PULL_TIMEOUT_MS).catch((error) => {
      if (error instanceof DomainError) throw error;
      throw new DomainError('IMAGE_UNAVAILABLE', `building image ${tag} failed (${reason(error)}); see the daemon log`);
    });
  }

  async createVolume(name: string, labels: Record<string, string>, options: { sizeGb?: number } = {}): Promise<void> {
    if (!this.disks || options.sizeGb === undefined) {
      await this.changing(() => this.call(() => this.docker.createVolume({ Name: name, Labels: labels })));
      return;
    }
    const driverOptions = await this.disks.create(name, options.sizeGb);
    try {
      await this.changing(() =>
        this.call(() => this.docker.createVolume({ Name: name, Labels: labels, Driver: 'local', DriverOpts: { ...driverOptions } })),
      );
    } catch (error) {
      await this.disks.release(name).catch((cleanup: Error) => this.logger.warn({ volume: name, err: cleanup.message }, 'could not remove the disk of a volume Docker did not create'));
      throw error;
    }
  }

  async volumeSize(name: string): Promise<number | undefined> {
    return this.disks?.sizeOf(name);
  }

  async growVolume(name: string, sizeGb: number): Promise<void> {
    if (!this.disks || (await this.disks.sizeOf(name)) === undefined) throw new Error(`volume ${name} has no size of its own to grow`);
    await this.disks.grow(name, sizeGb);
  }

  /** Attaches the disks of sized volumes (after a reboot); run before anything starts a container. */
  async onModuleInit(): Promise<void> {
    await this.disks?.attachAll();
  }

  async ensureNetwork(name: string, labels: Record<string, string>, allowPorts: number[] = []): Promise<IsolatedNetwork> {
    let info = await this.call(() => this.docker.getNetwork(name).inspect()).catch((error) =>
      statusOf(error) === 404 ? undefined : Promise.reject(error),
    );
    if (!info) {
      await this.call(() =>
        this.docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: labels,
          // IPv4 only, whatever the engine's defaults: the walls are IPv4 rules, and without IPv6 on the
          // network the engine turns it off on the containers' interfaces (no address, not even link-local).
          EnableIPv6: false,
          // No traffic between containers on this bridge: a database cannot reach another.
          Options: { 'com.docker.network.bridge.enable_icc': 'false' },
        }),
      ).catch((error) => (statusOf(error) === 409 ? undefined : Promise.reject(error)));
      info = await this.call(() => this.docker.getNetwork(name).inspect());
    }
    const inspect = info as BridgeInspect;
    const network = {
      name,
      subnets: (inspect.IPAM?.Config ?? []).map((c) => c.Subnet).filter((s): s is string => Boolean(s)),
      gateways: bridgeAddresses(inspect),
      bridge: bridgeInterface(inspect),
    };
    if (this.config.networkWalls) {
      const ipv6 = ipv6Problem(name, inspect);
      if (ipv6) throw new Error(ipv6);
      if (!network.bridge) throw new Error(`network ${name} names no bridge interface; the network walls cannot be put up`);
      const address = network.gateways.find((a) => isIP(a) === 4);
      const spec: WallSpec = {
        instance: name.replace(/^pgdb-/, ''),
        bridge: network.bridge,
        allow: address ? allowPorts.map((port) => ({ address, port })) : [],
        egress: this.config.egress,
      };
      await this.walls.apply(spec);
      this.logger.info({ network: name, bridge: network.bridge, allow: allowPorts, egress: this.config.egress }, 'network walls up');
      this.watchWalls(name, spec);
    }
    return network;
  }

  /** Checks the walls every 15 s and puts them up again when something took them down. */
  private watchWalls(name: string, spec: WallSpec): void {
    this.wallSpecs.set(name, spec);
    this.wallsTimer ??= setInterval(() => {
      for (const [network, wall] of this.wallSpecs) {
        this.walls
          .repair(wall)
          .then((repaired) => repaired && this.logger.warn({ network }, 'the network walls were down (the firewall was flushed or reloaded); put them up again'))
          .catch((error: Error) => this.logger.error({ network, err: error.message }, 'could not check the network walls; checked again in 15 s'));
      }
    }, WALLS_CHECK_MS).unref();
  }

  async bridgeGateway(): Promise<string> {
    const info = (await this.call(() => this.docker.getNetwork('bridge').inspect())) as BridgeInspect;
    return bridgeAddress('bridge', info);
  }

  runContainer(spec: ContainerSpec): Promise<string> {
    return this.changing(() => this.createAndStart(spec));
  }

  private async createAndStart(spec: ContainerSpec): Promise<string> {
    const port = `${spec.containerPort}/tcp`;
    const container = await this.call(() =>
      this.docker.createContainer({
        name: spec.containerName,
        Image: spec.image,
        ...(spec.command ? { Cmd: spec.command } : {}),
        Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
        Labels: spec.labels,
        ExposedPorts: { [port]: {} },
        Healthcheck: {
          Test: ['CMD', ...spec.healthcheck],
          Interval: 10 * NANOSECONDS_PER_SECOND,
          Timeout: 5 * NANOSECONDS_PER_SECOND,
          Retries: 3,
          StartPeriod: 30 * NANOSECONDS_PER_SECOND,
        },
        HostConfig: {
          PortBindings: { [port]: [{ HostIp: spec.bindAddress, HostPort: String(spec.hostPort) }] },
          Mounts: [
            { Type: 'volume', Source: spec.volumeName, Target: spec.mountPath },
            ...(spec.binds ?? []).map((b) => ({ Type: 'bind' as const, Source: b.source, Target: b.target, ReadOnly: b.readOnly ?? false })),
          ],
          NetworkMode: spec.network,
          RestartPolicy: { Name: 'unless-stopped' },
          Memory: spec.limits.memoryBytes,
          // Equal to Memory: no swap on top of the limit.
          MemorySwap: spec.limits.memoryBytes,
          ...(spec.limits.nanoCpus ? { NanoCpus: spec.limits.nanoCpus } : {}),
          PidsLimit: spec.limits.pidsLimit,
          ShmSize: spec.limits.shmBytes,
          CapDrop: ['ALL'],
          CapAdd: spec.capabilities,
          SecurityOpt: ['no-new-privileges:true'],
          // A chatty database cannot fill the disk: at most 3 files of 10 MB.
          LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
        },
      }),
    );
    failpoint('deploy:container-created');
    try {
      if (spec.files.length > 0) await this.copyFiles(container.id, spec.files);
      await this.call(() => container.start());
    } catch (error) {
      await this.removeContainer(container.id);
      if (isPortConflict(error)) throw new PortTakenError(spec.hostPort);
      throw error;
    }
    return container.id;
  }

  async copyFiles(id: string, files: ContainerFile[]): Promise<void> {
    const archive = await tarOf(files);
    await this.call(() => this.docker.getContainer(id).putArchive(archive, { path: '/' }));
  }

  startContainer(id: string): Promise<void> {
    return this.changing(() => this.start(id));
  }

  private async start(id: string): Promise<void> {
    try {
      await this.call(() => this.docker.getContainer(id).start());
    } catch (error) {
      // 304: already running.
      if (statusOf(error) === 304) return;
      // "Bind for 127.0.0.1:15432 failed: port is already allocated": taken while the container was stopped.
      if (isPortConflict(error)) throw new PortTakenError(portIn(reason(error)));
      throw error;
    }
  }

  stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    return this.changing(() => this.stop(id, timeoutSeconds));
  }

  private async stop(id: string, timeoutSeconds: number): Promise<void> {
    try {
      // The engine answers once the grace period is over: that is not a hang.
      await this.call(() => this.docker.getContainer(id).stop({ t: timeoutSeconds }), timeoutSeconds * 1000 + this.config.dockerTimeoutMs);
    } catch (error) {
      // 304: already stopped. 404: gone.
      if (statusOf(error) === 304 || statusOf(error) === 404) return;
      throw error;
    }
  }

  async createHolder(spec: {
    containerName: string;
    image: string;
    volumeName: string;
    mountPath: string;
    labels: Record<string, string>;
  }): Promise<string> {
    const container = await this.changing(() => this.call(() =>
      this.docker.createContainer({
        name: spec.containerName,
        Image: spec.image,
        Entrypoint: ['true'],
        Labels: spec.labels,
        NetworkDisabled: true,
        HostConfig: { Mounts: [{ Type: 'volume', Source: spec.volumeName, Target: spec.mountPath }], NetworkMode: 'none' },
      }),
    ).catch(async (error) => {
      // 409: a holder of that name exists already (a retried destroy).
      if (statusOf(error) !== 409) throw error;
      return this.docker.getContainer(spec.containerName);
    }));
    return container.id;
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.changing(() => this.call(() => this.docker.getContainer(id).rename({ name })));
  }

  async runTask(spec: TaskSpec): Promise<ExecResult> {
    const container = await this.call(() =>
      this.docker.createContainer({
        name: spec.containerName,
        Image: spec.image,
        Entrypoint: spec.command.slice(0, 1),
        Cmd: spec.command.slice(1),
        User: spec.user,
        Labels: spec.labels,
        HostConfig: {
          Mounts: [
            ...spec.volumes.map((v) => ({ Type: 'volume' as const, Source: v.name, Target: v.target })),
            ...spec.binds.map((b) => ({ Type: 'bind' as const, Source: b.source, Target: b.target, ReadOnly: b.readOnly ?? false })),
          ],
          NetworkMode: spec.network,
          Memory: spec.memoryBytes,
          MemorySwap: spec.memoryBytes,
          PidsLimit: 512,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges:true'],
        },
      }),
    );
    try {
      if (spec.files.length > 0) await this.copyFiles(container.id, spec.files);
      await this.call(() => container.start());
      const result = (await this.call(() => container.wait(), spec.timeoutMs).catch(async (error) => {
        await this.call(() => container.kill()).catch(() => undefined);
        throw error;
      })) as { StatusCode: number };
      const output = await this.containerLogs(container.id, 1000).catch(() => '');
      return { exitCode: result.StatusCode, stdout: output, stderr: '' };
    } finally {
      // v: the anonymous volume Docker makes for the image's VOLUME when the task
      // mounts nothing there goes with it (named volumes are never removed by v).
      await this.changing(() => this.call(() => container.remove({ force: true, v: true }))).catch(() => undefined);
    }
  }

  async exec(id: string, command: string[], options: { user?: string; env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const exec = await this.call(() =>
      this.docker.getContainer(id).exec({
        Cmd: command,
        User: options.user ?? '',
        Env: Object.entries(options.env ?? {}).map(([key, value]) => `${key}=${value}`),
        AttachStdout: true,
        AttachStderr: true,
        AttachStdin: options.stdin !== undefined,
      }),
    );
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    // One deadline for the command's whole run, output included.
    await this.call(async () => {
      const stream = await exec.start({ hijack: true, stdin: options.stdin !== undefined });
      const collect = (target: Buffer[]) => new Writable({ write: (chunk, _encoding, done) => (target.push(chunk), done()) });
      this.docker.modem.demuxStream(stream, collect(stdout), collect(stderr));
      if (options.stdin !== undefined) stream.end(options.stdin);
      await new Promise<void>((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', reject);
      });
    }, options.timeoutMs);
    // The output can end a moment before the engine records the exit code
    // (inspect still says Running, ExitCode null): ask again briefly.
    let info = await this.call(() => exec.inspect());
    for (let attempt = 0; (info.Running || info.ExitCode === null) && attempt < 100; attempt++) {
      await sleep(20);
      info = await this.call(() => exec.inspect());
    }
    return {
      exitCode: info.ExitCode ?? -1,
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: Buffer.concat(stderr).toString('utf8'),
    };
  }

  async execStream(
    id: string,
    command: string[],
    options: { user?: string; env?: Record<string, string>; stdin?: Readable } = {},
  ): Promise<ExecStream> {
    const withStdin = options.stdin !== undefined;
    const exec = await this.call(() =>
      this.docker.getContainer(id).exec({
        Cmd: command,
        User: options.user ?? '',
        Env: Object.entries(options.env ?? {}).map(([key, value]) => `${key}=${value}`),
        AttachStdout: true,
        AttachStderr: true,
        AttachStdin: withStdin,
      }),
    ).catch((error) => Promise.reject(statusOf(error) === 404 ? new ContainerGoneError(id) : error));
    const stream = (await this.call(() => exec.start({ hijack: true, stdin: withStdin }))) as Duplex;
    const stderr = new Tail(EXEC_STDERR_MAX_BYTES);
    // Not modem.demuxStream: it ignores backpressure, and a dump would pile up in memory.
    const stdout = new Frames((chunk) => stderr.add(chunk));
    stream.pipe(stdout, { end: false });
    // The engine's stream ends when the command has exited and its output was read.
    const ended = new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      // `on`, not `once`: a second error must not go unhandled.
      stream.on('error', reject);
    });
    stdout.once('close', () => stream.destroy());
    if (options.stdin) {
      const input = options.stdin;
      input.on('error', () => stream.destroy());
      input.pipe(stream);
    }
    const done = ended.then(async () => {
      await new Promise<void>((resolve) => {
        if (stdout.destroyed) return resolve();
        stdout.once('close', resolve);
        stdout.once('finish', resolve);
        stdout.end();
      });
      let info = await this.call(() => exec.inspect());
      for (let attempt = 0; (info.Running || info.ExitCode === null) && attempt < 100; attempt++) {
        await sleep(20);
        info = await this.call(() => exec.inspect());
      }
      return { exitCode: info.ExitCode ?? -1, stdout: '', stderr: stderr.text() };
    });
    done.catch(() => undefined);
    return { stdout, done };
  }

  async containerStatus(id: string): Promise<ContainerStatus | null> {
    try {
      const info = await this.call(() => this.docker.getContainer(id).inspect());
      return { running: info.State.Running, exitCode: info.State.Running ? null : info.State.ExitCode, env: info.Config.Env ?? [] };
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw error;
    }
  }

  async containerLogs(id: string, lines: number): Promise<string> {
    const output = await this.call(() =>
      this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: lines, follow: false }),
    );
    return demultiplex(output as Buffer);
  }

  async logStream(id: string, options: { tail?: number; since?: number; follow: boolean }): Promise<Readable> {
    // Through the modem, not container.logs(): that buffers the whole answer unless following.
    const query: Record<string, unknown> = { stdout: true, stderr: true, follow: options.follow };
    if (options.tail !== undefined) query.tail = options.tail;
    if (options.since !== undefined) query.since = options.since;
    let raw: Readable;
    try {
      raw = await this.call(
        () =>
          new Promise<Readable>((resolve, reject) => {
            this.docker.modem.dial(
              {
                path: `/containers/${id}/logs?`,
                method: 'GET',
                isStream: true,
                statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
                options: query,
              },
              (error: unknown, stream: unknown) => (error ? reject(error) : resolve(stream as Readable)),
            );
          }),
      );
    } catch (error) {
      if (statusOf(error) === 404) throw new ContainerGoneError(id);
      throw error;
    }
    const frames = new Frames();
    raw.on('error', (error) => frames.destroy(error));
    frames.on('close', () => raw.destroy());
    return raw.pipe(frames);
  }

  async updateMemory(id: string, memoryBytes: number): Promise<void> {
    try {
      await this.call(() => this.docker.getContainer(id).update({ Memory: memoryBytes, MemorySwap: memoryBytes }));
    } catch (error) {
      if (statusOf(error) === 404) throw new ContainerGoneError(id);
      throw error;
    }
  }

  async updateCpus(id: string, nanoCpus: number): Promise<void> {
    try {
      await this.call(() => this.docker.getContainer(id).update({ NanoCpus: nanoCpus }));
    } catch (error) {
      if (statusOf(error) === 404) throw new ContainerGoneError(id);
      throw error;
    }
  }

  removeContainer(id: string): Promise<void> {
    return this.changing(() => this.remove(id));
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.call(() => this.docker.getContainer(id).remove({ force: true, v: false }));
    } catch (error) {
      // 404: already gone. 409: Docker is already removing it.
      if (statusOf(error) === 404 || statusOf(error) === 409) return;
      throw error;
    }
  }

  removeVolume(name: string): Promise<void> {
    return this.changing(() => this.removeVolumeNow(name));
  }

  private async removeVolumeNow(name: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.call(() => this.docker.getVolume(name).remove());
        break;
      } catch (error) {
        if (statusOf(error) === 404) break;
        // 409: still in use by a container Docker is removing; give it a moment.
        if (statusOf(error) !== 409 || attempt >= VOLUME_IN_USE_RETRIES) throw error;
        await sleep(250);
      }
    }
    // Gone from Docker (nothing mounts it): its disk, if it has one, goes too.
    await this.disks?.release(name);
  }

  listContainers(labels: Record<string, string>, options: ListOptions = {}): Promise<ManagedContainer[]> {
    if (!options.cached) return this.containersNow(labels);
    this.events.follow();
    return this.lists.get('containers', labels, () => this.containersNow(labels));
  }

  listVolumes(labels: Record<string, string>, options: ListOptions = {}): Promise<ManagedVolume[]> {
    if (!options.cached) return this.volumesNow(labels);
    this.events.follow();
    return this.lists.get('volumes', labels, () => this.volumesNow(labels));
  }

  private async containersNow(labels: Record<string, string>): Promise<ManagedContainer[]> {
    const containers = await this.call(() =>
      this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } }),
    );
    return containers.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      labels: c.Labels ?? {},
      state: stateOf(c.State),
      health: healthOf(c.Status),
      ...publishedOf(c.Ports),
    }));
  }

  private async volumesNow(labels: Record<string, string>): Promise<ManagedVolume[]> {
    const result = await this.call(() => this.docker.listVolumes({ filters: { label: labelFilters(labels) } }));
    return (result.Volumes ?? []).map((v) => ({
      name: v.Name,
      labels: v.Labels ?? {},
      createdAt: (v as { CreatedAt?: string }).CreatedAt ?? null,
    }));
  }

  /**
   * The engine computes usage for one caller at a time and refuses the
   * others ("a disk usage operation is already running"): retried. Callers
   * in this process share one measurement (VolumeUsage).
   */
  async volumeUsage(): Promise<Map<string, number>> {
    let usage;
    for (let attempt = 1; ; attempt++) {
      try {
        usage = await this.call(() => this.docker.df());
        break;
      } catch (error) {
        if (!/disk usage operation is already running/.test(reason(error)) || attempt >= DF_ATTEMPTS) throw error;
        await sleep(100 * attempt);
      }
    }
    const volumes = (usage?.Volumes ?? []) as Array<{ Name: string; UsageData?: { Size?: number } }>;
    const sizes = new Map(
      volumes
        .filter((v) => typeof v.UsageData?.Size === 'number' && v.UsageData.Size >= 0)
        .map((v) => [v.Name, v.UsageData!.Size!]),
    );
    // Docker neither measures nor lists a volume mounted from a device: its file system says.
    if (this.disks) {
      const listed = await this.call(() => this.docker.listVolumes());
      for (const volume of listed.Volumes ?? []) {
        if (sizes.has(volume.Name) || volume.Options?.device !== this.disks.linkPath(volume.Name)) continue;
        const used = await this.disks.usage(volume.Name, volume.Mountpoint).catch(() => undefined);
        if (used !== undefined) sizes.set(volume.Name, used);
      }
    }
    return sizes;
  }

  /** Runs a call that changes containers or volumes; kept lists are dropped once the engine has answered (or failed). */
  private async changing<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } finally {
      this.lists.changed();
    }
  }

  /**
   * Runs one engine call, turning a missing engine, or one that does not
   * answer within `timeoutMs` (PGDB_DOCKER_TIMEOUT_MS unless given), into
   * DOCKER_UNAVAILABLE; the connections the call opened are closed then. A
   * call that legitimately waits long (a pull, a stop with a grace period)
   * passes its own limit.
   */
  private call<T>(operation: () => Promise<T>, timeoutMs = this.config.dockerTimeoutMs): Promise<T> {
    return callEngine(this.config.dockerSocket, operation, timeoutMs);
  }
}
