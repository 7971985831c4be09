import { Global, Module, type DynamicModule } from '@nestjs/common';
import { DAEMON_CONFIG, type DaemonConfig } from './config.js';
import { ROOT_LOGGER, type Logger } from './logger.js';

/** Makes the validated configuration and the root logger injectable everywhere. */
@Global()
@Module({})
export class CommonModule {
  static forRoot(config: DaemonConfig, logger: Logger): DynamicModule {
    return {
      module: CommonModule,
      providers: [
        { provide: DAEMON_CONFIG, useValue: config },
        { provide: ROOT_LOGGER, useValue: logger },
      ],
      exports: [DAEMON_CONFIG, ROOT_LOGGER],
    };
  }
}
