#!/usr/bin/env node
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { APP_OPTIONS, configureApp, createAdapter } from './app.js';
import { AppModule } from './app.module.js';
import { ConfigError, loadConfig } from './common/config.js';
import { armFailpoints } from './common/failpoints.js';
import { createLogger, NestPinoLogger } from './common/logger.js';
import { PostgresRuntime } from './database/postgres-runtime.js';
import { NetworkWalls } from './docker/network-walls.js';
import { VolumeDisks } from './docker/volume-disks.js';
import { RegistryFileError } from './registry/registry.service.js';
import { TlsService, type SecureContextTarget } from './tls/tls.service.js';

/** sysexits' EX_CONFIG: systemd is told not to restart on it. */
const EXIT_CONFIG = 78;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`pgdbd: ${error.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const logger = createLogger(config.logLevel);
  if (config.failpoints.length > 0) {
    armFailpoints(config.failpoints);
    logger.warn({ failpoints: config.failpoints }, 'crash-test failpoints armed: this daemon will kill itself');
  }
  if (config.sizeLimits) {
    const problem = await VolumeDisks.problem();
    if (problem) {
      process.stderr.write(`pgdbd: PGDB_SIZE_LIMITS=on: ${problem}; or set PGDB_SIZE_LIMITS=off (database sizes are then recorded but not enforced)\n`);
      process.exit(EXIT_CONFIG);
    }
  }
  if (config.networkWalls) {
    const problem = await new NetworkWalls().problem();
    if (problem) {
      process.stderr.write(`pgdbd: PGDB_NETWORK_WALLS=on: ${problem}; or set PGDB_NETWORK_WALLS=off (database containers can then reach this host's services and the Internet)\n`);
      process.exit(EXIT_CONFIG);
    }
  }
  let tls: TlsService;
  try {
    tls = await TlsService.open(config, logger);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`pgdbd: ${error.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, logger, tls),
    createAdapter(logger, tls.apiCredentials()),
    { ...APP_OPTIONS, logger: new NestPinoLogger(logger) },
  );
  configureApp(app);
  // Databases cannot reach the API: connections from their network are closed at once.
  const runtime = app.get(PostgresRuntime);
  const server = app.getHttpServer();
  server.on('connection', (socket) => {
    if (runtime.isContainerAddress(socket.remoteAddress)) socket.destroy();
  });
  try {
    await app.listen(config.listenPort, config.listenHost);
  } catch (error) {
    // A damaged registry is the operator's to fix; restarting would not help.
    if (!(error instanceof RegistryFileError)) throw error;
    process.stderr.write(`pgdbd: ${error.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  // With `https`, Fastify's server is node's https.Server, which can swap its certificate live.
  tls.startRenewal(config.apiTls ? (server as unknown as SecureContextTarget) : undefined);
  logger.info(
    {
      listen: await app.getUrl(),
      dataDir: config.dataDir,
      publicHost: config.publicHost,
      versions: config.versions,
      tls: tls.summary(),
    },
    'pgdbd ready',
  );
}

main().catch((error: Error) => {
  process.stderr.write(`pgdbd: failed to start: ${error.message}\n`);
  process.exit(1);
});
