import type { Readable } from 'node:stream';
import type { ContainerHealth, ContainerState } from '../../../contract/api.js';

/** The injection token for the Docker boundary; tests substitute a fake. */
export const DOCKER_GATEWAY = Symbol('DOCKER_GATEWAY');

export const LABELS = {
  managed: 'pgdb.managed',
  instance: 'pgdb.instance',
  name: 'pgdb.name',
  version: 'pgdb.postgres_version',
  /** On a never-started container that holds a kept volume, so that `docker volume prune` leaves it alone. */
  keeps: 'pgdb.keeps_volume',
  /** On that container: the name of the database whose volume it holds (a claimed standby's volume carries no name label). */
  keptFrom: 'pgdb.kept_from',
  /** On a warm-pool standby's container and volume (the standby's id); kept when a deploy claims it. */
  pool: 'pgdb.pool',
  /** On a database's container: the host address its port is published on (PGDB_POSTGRES_BIND when it was made). */
  bind: 'pgdb.bind',
} as const;

/** A file copied into a container (as a tar archive through the engine, so it can own it as any uid). */
export interface ContainerFile {
  /** Absolute path in the container; missing parent directories are created (root-owned, 0755). */
  path: string;
  content: string;
  mode: number;
  uid: number;
  gid: number;
}

/** One service container with one named volume and one published TCP port. */
export interface ContainerSpec {
  containerName: string;
  image: string;
  /** Arguments for the image's entrypoint; the image's CMD when absent. */
  command?: string[];
  volumeName: string;
  /** Where the volume is mounted in the container. */
  mountPath: string;
  bindAddress: string;
  hostPort: number;
  containerPort: number;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Command Docker runs to report health. */
  healthcheck: string[];
  /** Copied in after the container is created and before it starts. */
  files: ContainerFile[];
  /** The user-defined network the container joins (see ensureNetwork). */
  network: string;
  limits: {
    memoryBytes: number;
    pidsLimit: number;
    shmBytes: number;
    /** CPU time in billionths of a CPU (Docker's NanoCpus); no limit when absent. */
    nanoCpus?: number;
  };
  /** Every capability is dropped except these. */
  capabilities: string[];
  /** Host directories mounted into the container (the local backup repository). */
  binds?: BindMount[];
}

export interface BindMount {
  /** Absolute path on the host. */
  source: string;
  target: string;
  readOnly?: boolean;
}

/**
 * A short-lived container that runs one command to its end (a restore, a
 * repository listing): the image's entrypoint is replaced, nothing is
 * published, and it is removed afterwards whatever happened.
 */
export interface TaskSpec {
  containerName: string;
  image: string;
  /** The command, run instead of the image's entrypoint. */
  command: string[];
  /** uid[:gid] it runs as. */
  user: string;
  labels: Record<string, string>;
  volumes: Array<{ name: string; target: string }>;
  binds: BindMount[];
  files: ContainerFile[];
  /** 'none' unless the task needs the network (the backup gateway, for an S3 repository). */
  network: string;
  memoryBytes: number;
  /** The task is killed and removed after this long. */
  timeoutMs: number;
}

/** A bridge network on which containers cannot reach each other. */
export interface IsolatedNetwork {
  name: string;
  /** The network's subnets (CIDR), to recognise its containers' addresses. */
  subnets: string[];
  /** The host's own addresses on the network's bridge. */
  gateways: string[];
  /** The bridge's interface on the host (`br-<id>`), when the engine says. */
  bridge?: string;
}

export interface ManagedContainer {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: ContainerState;
  health: ContainerHealth;
  /** Where Postgres' port is published on the host, while the container runs (the engine lists no ports otherwise). */
  published?: string;
}

export interface ManagedVolume {
  name: string;
  labels: Record<string, string>;
  createdAt: string | null;
}

export interface ListOptions {
  cached?: boolean;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A command running in a container whose output is read as it is consumed (see execStream). */
export interface ExecStream {
  /** The command's stdout. Destroying it closes the connection to the engine. */
  stdout: Readable;
  /** Settles once the output has ended: the exit code, and the end of stderr (at most 64 KiB). */
  done: Promise<ExecResult>;
}

export interface ContainerStatus {
  running: boolean;
  exitCode: number | null;
  /** The environment the container was made with (`NAME=value`). */
  env: string[];
}

/** Everything pgdb asks of the Docker engine, and nothing more. */
export interface DockerGateway {
  /** Resolves when the engine answers; throws DOCKER_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  /** Pulls the image when it is not present locally. */
  ensureImage(image: string): Promise<void>;
  /** The labels of a local image; null when the engine does not have it. */
  imageLabels(image: string): Promise<Record<string, string> | null>;
  /** Builds `tag` from a Dockerfile alone (no other context files). */
  buildImage(tag: string, dockerfile: string): Promise<void>;
  /**
   * Creates a volume; with `sizeGb`, one whose file system holds at most that
   * many GiB (when the daemon enforces sizes: see VolumeDisks).
   */
  createVolume(name: string, labels: Record<string, string>, options?: { sizeGb?: number }): Promise<void>;
  /** The enforced size of a volume in GiB; undefined when it has none (sizes off, or a volume from before them). */
  volumeSize(name: string): Promise<number | undefined>;
  /**
   * Grows a sized volume's file system to `sizeGb` GiB, online when it is
   * mounted. Throws OnlineGrowRefusedError when the kernel refuses to grow it
   * while mounted: stop its container and call again.
   */
  growVolume(name: string, sizeGb: number): Promise<void>;
  /**
   * Creates the network if absent (inter-container traffic disabled) and
   * describes it; with PGDB_NETWORK_WALLS=on, puts up the firewall around
   * its bridge (see network-walls.ts), letting containers open only `allow`.
   */
  ensureNetwork(name: string, labels: Record<string, string>, allowPorts?: number[]): Promise<IsolatedNetwork>;
  /**
   * The host's address on the default bridge, which `host-gateway` stands for in containers.
   * Throws when the engine reports no gateway and the bridge's interface has no address.
   */
  bridgeGateway(): Promise<string>;
  /** Creates and starts the container; throws PortTakenError when the host port is in use. */
  runContainer(spec: ContainerSpec): Promise<string>;
  /** Replaces files in an existing container (running or not). */
  copyFiles(id: string, files: ContainerFile[]): Promise<void>;
  /** Starts a stopped container; starting a running one is no error. Throws PortTakenError when its host port is in use. */
  startContainer(id: string): Promise<void>;
  /** Stops a container, giving its main process `timeoutSeconds` after the stop signal; a stopped or missing one is no error. */
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  /** Creates a container that is never started and only holds a volume (see LABELS.keeps). */
  createHolder(spec: { containerName: string; image: string; volumeName: string; mountPath: string; labels: Record<string, string> }): Promise<string>;
  /** Gives a container another name (labels cannot change; names can). */
  renameContainer(id: string, name: string): Promise<void>;
  /**
   * Runs a command in a running container; never throws for a non-zero exit.
   * `timeoutMs` replaces the engine timeout for commands that take long (a backup).
   */
  exec(id: string, command: string[], options?: { user?: string; env?: Record<string, string>; stdin?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** Runs a task container to its end and removes it; its output is the log. Never throws for a non-zero exit. */
  runTask(spec: TaskSpec): Promise<ExecResult>;
  /**
   * Runs a command in a running container with its stdout as a stream
   * (backpressure reaches the command) and, when given, `stdin` piped in
   * (its end closes the command's stdin). `env` adds environment variables.
   * A missing container throws ContainerGoneError.
   */
  execStream(id: string, command: string[], options?: { user?: string; env?: Record<string, string>; stdin?: Readable }): Promise<ExecStream>;
  /** Null when the container does not exist. */
  containerStatus(id: string): Promise<ContainerStatus | null>;
  containerLogs(id: string, lines: number): Promise<string>;
  /**
   * The container's log (stdout and stderr merged) as a byte stream read as
   * it is consumed: `tail` lines of backlog (all when absent), from `since`
   * (Unix seconds), and with `follow` new lines until the container stops or
   * is removed, or the stream is destroyed. A missing container throws
   * ContainerGoneError.
   */
  logStream(id: string, options: { tail?: number; since?: number; follow: boolean }): Promise<Readable>;
  /** Changes a container's memory limit (swap kept equal: none on top), running or not. */
  updateMemory(id: string, memoryBytes: number): Promise<void>;
  /** Changes a container's CPU limit (NanoCpus; 0 removes it), running or not. */
  updateCpus(id: string, nanoCpus: number): Promise<void>;
  /** Removes the container if it exists. */
  removeContainer(id: string): Promise<void>;
  /** Removes the volume if it exists. */
  removeVolume(name: string): Promise<void>;
  /**
   * Containers (volumes) carrying every one of `labels`. With `cached`, the
   * answer may be a list kept since an earlier call, as long as the engine's
   * event stream has reported no change to them (see ListCache): for
   * reading (status), never for deciding what to remove.
   */
  listContainers(labels: Record<string, string>, options?: ListOptions): Promise<ManagedContainer[]>;
  listVolumes(labels: Record<string, string>, options?: ListOptions): Promise<ManagedVolume[]>;
  /** Bytes used per volume name, for volumes Docker has measured. */
  volumeUsage(): Promise<Map<string, number>>;
}

/** The kernel refused to grow a mounted volume for this daemon (it lacks CAP_SYS_RESOURCE); grow it unmounted. */
export class OnlineGrowRefusedError extends Error {}

/** The container asked for does not exist (Docker's 404). */
export class ContainerGoneError extends Error {
  constructor(readonly id: string) {
    super(`container ${id.slice(0, 12)} does not exist`);
    this.name = 'ContainerGoneError';
  }
}

/** The requested host port is held by something outside pgdb's registry. */
export class PortTakenError extends Error {
  constructor(readonly port: number) {
    super(`host port ${port} is already in use`);
    this.name = 'PortTakenError';
  }
}
