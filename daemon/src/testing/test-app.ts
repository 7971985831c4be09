import 'reflect-metadata';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { APP_OPTIONS, configureApp, createAdapter } from '../app.js';
import { AppModule } from '../app.module.js';
import { loadConfig, type DaemonConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { DOCKER_GATEWAY } from '../docker/docker.gateway.js';
import { POSTGRES_CLIENT } from '../postgres/postgres.client.js';
import { TlsService } from '../tls/tls.service.js';
import { FakeDocker } from './fake-docker.js';
import { FakeProbe } from './fake-probe.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';

export interface TestApp {
  app: NestFastifyApplication;
  config: DaemonConfig;
  docker: FakeDocker;
  probe: FakeProbe;
  request(method: 'GET' | 'POST' | 'DELETE', url: string, options?: RequestOptions): Promise<TestResponse>;
  close(): Promise<void>;
}

export interface RequestOptions {
  body?: unknown;
  rawBody?: string | Buffer;
  contentType?: string;
  token?: string | null;
}

export interface TestResponse {
  status: number;
  body: any;
}

/** The real Nest/Fastify app with the Docker and Postgres boundaries replaced by fakes. */
export async function createTestApp(
  options: { env?: Record<string, string>; docker?: FakeDocker; dataDir?: string; probe?: FakeProbe } = {},
): Promise<TestApp> {
  const config = loadConfig({
    PGDB_TOKEN: TEST_TOKEN,
    PGDB_DATA_DIR: options.dataDir ?? mkdtempSync(join(tmpdir(), 'pgdb-test-')),
    PGDB_PUBLIC_HOST: 'db.example.test',
    PGDB_IMAGE_TEMPLATE: 'postgres:{major}',
    PGDB_POSTGRES_VERSIONS: '15,17',
    PGDB_PORT_RANGE: '40000-40099',
    PGDB_LOG_LEVEL: 'silent',
    PGDB_POOL: '0',
    // Contract tests state limits exactly; deploy.contract.spec checks the default CPU limit.
    PGDB_DEFAULT_CPUS: 'none',
    ...options.env,
  });
  const docker = options.docker ?? new FakeDocker();
  for (const major of config.versions) docker.images.add(`postgres:${major}`);
  const probe = options.probe ?? new FakeProbe();
  const logger = createLogger(config.logLevel);
  const tls = await TlsService.open(config, logger);
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot(config, logger, tls)] })
    .overrideProvider(DOCKER_GATEWAY)
    .useValue(docker)
    .overrideProvider(POSTGRES_CLIENT)
    .useValue(probe)
    .compile();
  const app = configureApp(moduleRef.createNestApplication<NestFastifyApplication>(createAdapter(logger), { ...APP_OPTIONS, logger: false }));
  await app.init();
  await app.getHttpAdapter().getInstance().ready();

  return {
    app,
    config,
    docker,
    probe,
    async request(method, url, { body, rawBody, contentType, token = TEST_TOKEN } = {}) {
      const headers: Record<string, string> = {};
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const payload = rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
      if (payload !== undefined) headers['content-type'] = contentType ?? 'application/json';
      const response = await app.getHttpAdapter().getInstance().inject({ method, url, headers, payload });
      return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : undefined };
    },
    close: () => app.close(),
  };
}
