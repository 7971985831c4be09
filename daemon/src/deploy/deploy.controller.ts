import { Body, Controller, Delete, Get, Header, HttpCode, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  validateName,
  type DeployResponse,
  type DestroyResponse,
  type HealthResponse,
  type PublicHealthResponse,
  type StatusResponse,
} from '../../../contract/api.js';
import { isAuthenticated, Public } from '../common/auth.js';
import { DomainError } from '../common/errors.js';
import { DAEMON_VERSION } from '../common/version.js';
import { DeployDto, DestroyQueryDto, StatusQueryDto } from './deploy.dto.js';
import { ApiCertificateDocs, CaDocs, DeployDocs, DestroyDocs, HealthDocs, StatusDocs } from './deploy.openapi.js';
import { DeployService } from './deploy.service.js';
import { HealthService } from './health.service.js';
import { TLS_SERVICE, type TlsService } from '../tls/tls.service.js';

@Controller('v1')
export class DeployController {
  constructor(
    private readonly deployService: DeployService,
    private readonly healthService: HealthService,
    @Inject(TLS_SERVICE) private readonly tls: TlsService,
  ) {}

  @Post('deploy')
  @HttpCode(201)
  @Header('Cache-Control', 'no-store')
  @DeployDocs()
  deploy(@Body() body: DeployDto): Promise<DeployResponse> {
    return this.deployService.deploy(body);
  }

  @Get('status')
  @Header('Cache-Control', 'no-store')
  @StatusDocs()
  async status(@Query() query: StatusQueryDto): Promise<StatusResponse> {
    return { ...(await this.deployService.status(query.show_secrets === 'true')), tls: this.tls.summary() };
  }

  @Delete('db/:name')
  @DestroyDocs()
  async destroy(@Param('name') name: string, @Query() query: DestroyQueryDto): Promise<DestroyResponse> {
    const problem = validateName(name);
    if (problem) throw new DomainError('INVALID_REQUEST', problem);
    const backupsKept = await this.deployService.destroy(name, query.keep_data === 'true', query.delete_backups === 'true');
    return { ok: true, backups_kept: backupsKept };
  }

  @Public()
  @Get('health')
  @HealthDocs()
  async health(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<HealthResponse | PublicHealthResponse> {
    const { dockerReachable: reachable, entries } = await this.healthService.problems();
    const problems = entries.map((entry) => entry.problem);
    reply.status(reachable ? 200 : 503);
    const status = problems.length === 0 ? 'ok' : 'degraded';
    // Without the token: the verdict and how to verify the server; no database names, error text or version.
    if (!isAuthenticated(request)) return { status, tls: this.tls.summary() };
    return {
      status,
      problems,
      docker: reachable ? 'reachable' : 'unreachable',
      version: DAEMON_VERSION,
      tls: this.tls.summary(),
    };
  }

  /**
   * The CA that signs the API's and the databases' certificates, for clients to pin. With ACME it
   * signs those served before the first issuance and after a fallback; with the operator's
   * certificate on the API, the databases'.
   */
  @Public()
  @Get('ca')
  @CaDocs()
  ca(@Res({ passthrough: true }) reply: FastifyReply): string {
    reply.header('content-type', 'application/x-pem-file');
    return this.tls.caCertificate;
  }

  /** The own CA's certificate for the API's key: how a client pinned to the CA knows that key behind an ACME certificate. */
  @Public()
  @Get('api-certificate')
  @ApiCertificateDocs()
  apiCertificate(@Res({ passthrough: true }) reply: FastifyReply): string {
    const certificate = this.tls.apiEndorsement();
    if (certificate === undefined) {
      throw new DomainError('NOT_FOUND', "the API speaks plain HTTP or serves the operator's certificate: no CA of this daemon vouches for its key");
    }
    reply.header('content-type', 'application/x-pem-file');
    return certificate;
  }
}
