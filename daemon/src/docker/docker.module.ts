import { Module } from '@nestjs/common';
import { DOCKER_GATEWAY } from './docker.gateway.js';
import { DockerodeGateway } from './docker.service.js';

@Module({
  providers: [{ provide: DOCKER_GATEWAY, useClass: DockerodeGateway }],
  exports: [DOCKER_GATEWAY],
})
export class DockerModule {}
