import { Module } from '@nestjs/common';
import { DOCKER_GATEWAY } from './docker.gateway.js';
import { DockerodeGateway } from './dockerode.gateway.js';

@Module({
  providers: [{ provide: DOCKER_GATEWAY, useClass: DockerodeGateway }],
  exports: [DOCKER_GATEWAY],
})
export class DockerModule {}
