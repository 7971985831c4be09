import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import {
  validateName,
  type DeployResponse,
  type DestroyResponse,
  type HealthResponse,
  type StatusResponse,
} from '../contract/api.js';
import { Public } from '../common/auth.guard.js';
import { DomainError } from '../common/errors.js';
import { DAEMON_VERSION } from '../common/version.js';
import { DeployDto } from './deploy.dto.js';
import { DeployService } from './deploy.service.js';
import { TLS_SERVICE, type TlsService } from '../tls/tls.service.js';

@Controller('v1')
export class DeployController {
  constructor(
    private readonly deployService: DeployService,
    @Inject(TLS_SERVICE) private readonly tls: TlsService,
  ) {}

  @Post('deploy')
  @HttpCode(201)
  deploy(@Body() body: DeployDto): Promise<DeployResponse> {
    return this.deployService.deploy(body);
  }

  @Get('status')
  status(@Query('show_secrets') showSecrets?: string): Promise<StatusResponse> {
    return this.deployService.status(parseFlag('show_secrets', showSecrets));
  }

  @Delete('db/:name')
  async destroy(@Param('name') name: string, @Query('keep_data') keepData?: string): Promise<DestroyResponse> {
    const problem = validateName(name);
    if (problem) throw new DomainError('INVALID_REQUEST', problem);
    await this.deployService.destroy(name, parseFlag('keep_data', keepData));
    return { ok: true };
  }

  @Public()
  @Get('health')
  async health(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthResponse> {
    const reachable = await this.deployService.dockerReachable();
    reply.status(reachable ? 200 : 503);
    return {
      status: reachable ? 'ok' : 'degraded',
      docker: reachable ? 'reachable' : 'unreachable',
      version: DAEMON_VERSION,
      tls: this.tls.summary(),
    };
  }

  /** The CA that signs the API's and the databases' certificates, for clients to pin. */
  @Public()
  @Get('ca')
  ca(@Res({ passthrough: true }) reply: FastifyReply): string {
    if (this.tls.source !== 'own-ca') {
      throw new DomainError('NOT_FOUND', "this server uses the operator's certificate, which the system's roots verify; there is no CA to pin");
    }
    reply.header('content-type', 'application/x-pem-file');
    return this.tls.caCertificate;
  }
}

function parseFlag(name: string, value: string | string[] | undefined): boolean {
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1' || value === '') return true;
  throw new DomainError('INVALID_REQUEST', `${name} must be true or false`);
}
