import { imageFor, type DaemonConfig } from '../common/config.js';
import type { DockerGateway } from '../docker/docker.gateway.js';
import type { ImageNeeds } from './archiving.js';

/** The label that records which image a derived one was built from. */
const BASE_LABEL = 'org.pgdb.base';

/**
 * The image a database of each major runs: the configured one when it has
 * what archiving needs (labelled so, as pgdb's own images are) or archiving
 * is off; else an image derived from it on first use
 * (`pgdb-local/postgres:<major>`). Pulled or built once per run.
 */
export class DatabaseImages {
  private readonly images = new Map<number, Promise<string>>();

  constructor(
    private readonly config: DaemonConfig,
    private readonly docker: DockerGateway,
    private readonly needs: () => ImageNeeds | undefined,
  ) {}

  image(major: number): Promise<string> {
    let resolved = this.images.get(major);
    if (!resolved) {
      resolved = this.resolve(major).catch((error) => {
        this.images.delete(major);
        throw error;
      });
      this.images.set(major, resolved);
    }
    return resolved;
  }

  private async resolve(major: number): Promise<string> {
    const base = imageFor(this.config, major);
    await this.docker.ensureImage(base);
    const needs = this.needs();
    if (!needs) return base;
    const labels = await this.docker.imageLabels(base);
    if (labels && labels[needs.label]) return base;
    const derived = derivedImage(major);
    const existing = await this.docker.imageLabels(derived);
    if (existing && existing[BASE_LABEL] === base) return derived;
    await this.docker.buildImage(derived, derivedDockerfile(base, needs));
    return derived;
  }
}

export function derivedImage(major: number): string {
  return `pgdb-local/postgres:${major}`;
}

/** The base image plus what archiving needs. */
export function derivedDockerfile(base: string, needs: ImageNeeds): string {
  return [`FROM ${base}`, `RUN ${needs.install}`, `LABEL ${needs.label}="${needs.labelValue}" ${BASE_LABEL}="${base}"`, ''].join('\n');
}
