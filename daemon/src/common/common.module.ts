import { Global, Module, type DynamicModule } from '@nestjs/common';
import { DAEMON_CONFIG, type DaemonConfig } from './config.js';
import { ROOT_LOGGER, type Logger } from './logger.js';
import { TLS_SERVICE, type TlsService } from '../tls/tls.service.js';

/** Makes the validated configuration, the root logger and the certificates injectable everywhere. */
@Global()
@Module({})
export class CommonModule {
  static forRoot(config: DaemonConfig, logger: Logger, tls: TlsService): DynamicModule {
    return {
      module: CommonModule,
      providers: [
        { provide: DAEMON_CONFIG, useValue: config },
        { provide: ROOT_LOGGER, useValue: logger },
        { provide: TLS_SERVICE, useValue: tls },
      ],
      exports: [DAEMON_CONFIG, ROOT_LOGGER, TLS_SERVICE],
    };
  }
}
