import type { ContainerHealth, ContainerState } from '../contract/api.js';

/** The injection token for the Docker boundary; tests substitute a fake. */
export const DOCKER_GATEWAY = Symbol('DOCKER_GATEWAY');

export const LABELS = {
  managed: 'pgdb.managed',
  instance: 'pgdb.instance',
  name: 'pgdb.name',
  version: 'pgdb.postgres_version',
} as const;

export interface PostgresContainerSpec {
  containerName: string;
  image: string;
  volumeName: string;
  /** Where the volume is mounted in the container; depends on the major version. */
  mountPath: string;
  bindAddress: string;
  hostPort: number;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Command Docker runs to report health, e.g. pg_isready. */
  healthcheck: string[];
}

export interface ManagedContainer {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: ContainerState;
  health: ContainerHealth;
}

export interface ManagedVolume {
  name: string;
  labels: Record<string, string>;
  createdAt: string | null;
}

export interface ContainerStatus {
  running: boolean;
  exitCode: number | null;
}

/** Everything pgdb asks of the Docker engine, and nothing more. */
export interface DockerGateway {
  /** Resolves when the engine answers; throws DOCKER_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  /** Pulls the image when it is not present locally. */
  ensureImage(image: string): Promise<void>;
  createVolume(name: string, labels: Record<string, string>): Promise<void>;
  /** Creates and starts the container; throws PortTakenError when the host port is in use. */
  runContainer(spec: PostgresContainerSpec): Promise<string>;
  /** Null when the container does not exist. */
  containerStatus(id: string): Promise<ContainerStatus | null>;
  containerLogs(id: string, lines: number): Promise<string>;
  /** Removes the container if it exists. */
  removeContainer(id: string): Promise<void>;
  /** Removes the volume if it exists. */
  removeVolume(name: string): Promise<void>;
  listContainers(labels: Record<string, string>): Promise<ManagedContainer[]>;
  listVolumes(labels: Record<string, string>): Promise<ManagedVolume[]>;
  /** Bytes used per volume name, for volumes Docker has measured. */
  volumeUsage(): Promise<Map<string, number>>;
}

/** The requested host port is held by something outside pgdb's registry. */
export class PortTakenError extends Error {
  constructor(readonly port: number) {
    super(`host port ${port} is already in use`);
    this.name = 'PortTakenError';
  }
}
