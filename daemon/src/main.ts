#!/usr/bin/env node
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { configureApp, createAdapter } from './app.js';
import { AppModule } from './app.module.js';
import { ConfigError, loadConfig } from './common/config.js';
import { createLogger, NestPinoLogger } from './common/logger.js';

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
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, logger), createAdapter(logger), {
    logger: new NestPinoLogger(logger),
  });
  configureApp(app);
  await app.listen(config.listenPort, config.listenHost);
  logger.info(
    { listen: await app.getUrl(), dataDir: config.dataDir, publicHost: config.publicHost, versions: config.versions },
    'pgdbd ready',
  );
}

main().catch((error: Error) => {
  process.stderr.write(`pgdbd: failed to start: ${error.message}\n`);
  process.exit(1);
});
