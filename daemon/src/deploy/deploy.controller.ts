import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
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

@Controller('v1')
export class DeployController {
  constructor(private readonly deployService: DeployService) {}

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
      tls: { source: 'own-ca', api: false, ca_fingerprint: '' },
    };
  }
}

function parseFlag(name: string, value: string | string[] | undefined): boolean {
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1' || value === '') return true;
  throw new DomainError('INVALID_REQUEST', `${name} must be true or false`);
}
