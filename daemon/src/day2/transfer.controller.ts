import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  EXPORT_COMPLETE,
  EXPORT_TRAILER,
  validateName,
  type ImportResponse,
  type UpgradeFinishResponse,
  type UpgradeResponse,
  type UpgradeRollbackResponse,
} from '../../../contract/api.js';
import { DomainError } from '../common/errors.js';
import { exemptFromRequestTimeout, STREAMED_BODY } from '../common/http-edge.js';
import { ImportQueryDto, UpgradeDto, UpgradeStepQueryDto } from './day2.dto.js';
import { ExportDocs, ImportDocs, UpgradeDocs, UpgradeFinishDocs, UpgradeRollbackDocs } from './day2.openapi.js';
import { TransferService } from './transfer.service.js';
import { UpgradeService } from './upgrade.service.js';

@Controller('v1/db/:name')
export class TransferController {
  constructor(
    private readonly transfer: TransferService,
    private readonly upgrades: UpgradeService,
  ) {}

  /**
   * `pg_dump -Fc`, streamed. A failure before the first byte is the usual
   * JSON error; after it, the connection is closed without the final chunk
   * and without the EXPORT_TRAILER trailer, so no client takes a cut dump
   * for a whole one.
   */
  @Get('export')
  @ExportDocs()
  async export(@Param('name') name: string, @Res() reply: FastifyReply): Promise<void> {
    const dump = await this.transfer.export(checkName(name));
    reply.hijack();
    const response = reply.raw;
    response.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename="${name}.dump"`,
      'cache-control': 'no-store',
      trailer: EXPORT_TRAILER,
    });
    response.once('close', () => {
      if (!response.writableFinished) dump.cancel();
    });
    response.write(dump.first);
    dump.rest.pipe(response, { end: false });
    if (await dump.outcome) {
      response.addTrailers({ [EXPORT_TRAILER]: EXPORT_COMPLETE });
      response.end();
    } else {
      response.destroy();
    }
  }

  @Post('upgrade')
  @HttpCode(200)
  @UpgradeDocs()
  upgrade(@Param('name') name: string, @Body() body: UpgradeDto): Promise<UpgradeResponse> {
    return this.upgrades.upgrade(checkName(name), body.version);
  }

  @Post('upgrade/finish')
  @HttpCode(200)
  @UpgradeFinishDocs()
  finishUpgrade(@Param('name') name: string, @Query() query: UpgradeStepQueryDto): Promise<UpgradeFinishResponse> {
    return this.upgrades.finish(checkName(name), query.delete_backups === 'true');
  }

  @Post('upgrade/rollback')
  @HttpCode(200)
  @UpgradeRollbackDocs()
  rollbackUpgrade(@Param('name') name: string, @Query() query: UpgradeStepQueryDto): Promise<UpgradeRollbackResponse> {
    return this.upgrades.rollback(checkName(name), query.delete_backups === 'true');
  }

  /** The body is the archive, read as it arrives and piped into pg_restore. */
  @Post('import')
  @HttpCode(200)
  @RouteConfig(STREAMED_BODY)
  @ImportDocs()
  import(@Param('name') name: string, @Query() query: ImportQueryDto, @Req() request: FastifyRequest): Promise<ImportResponse> {
    checkName(name);
    const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/octet-stream') {
      throw new DomainError('UNSUPPORTED_MEDIA_TYPE', 'send the archive as the body, with Content-Type: application/octet-stream');
    }
    exemptFromRequestTimeout(request.raw);
    return this.transfer.import(name, request.raw, { clean: query.clean === 'true' });
  }
}

function checkName(name: string): string {
  const problem = validateName(name);
  if (problem) throw new DomainError('INVALID_REQUEST', problem);
  return name;
}
