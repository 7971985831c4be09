import { Body, Controller, Get, Header, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import {
  LOGS_TAIL_DEFAULT,
  parseSince,
  parseTail,
  validateName,
  type InfoResponse,
  type LifecycleAction,
  type LifecycleResponse,
  type ResizeResponse,
  type RotateResponse,
  type UrlResponse,
} from '../../../contract/api.js';
import { DomainError } from '../common/errors.js';
import { InfoQueryDto, LogsQueryDto, ResizeDto, RotateDto } from './day2.dto.js';
import { InfoDocs, Day2Docs, LogsDocs, ResizeDocs, RotateDocs, UrlDocs } from './day2.openapi.js';
import { Day2Service } from './day2.service.js';

@Controller('v1/db/:name')
export class Day2Controller {
  constructor(private readonly day2: Day2Service) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  @InfoDocs()
  info(@Param('name') name: string, @Query() query: InfoQueryDto): Promise<InfoResponse> {
    return this.day2.info(checkName(name), query.show_secrets === 'true');
  }

  @Get('url')
  @Header('Cache-Control', 'no-store')
  @UrlDocs()
  url(@Param('name') name: string): Promise<UrlResponse> {
    return this.day2.url(checkName(name));
  }

  /** text/plain, streamed; errors before the first byte are the usual JSON error. */
  @Get('logs')
  @LogsDocs()
  async logs(@Param('name') name: string, @Query() query: LogsQueryDto, @Res() reply: FastifyReply): Promise<void> {
    checkName(name);
    const tail = query.tail === undefined ? { lines: LOGS_TAIL_DEFAULT } : parseTail(query.tail);
    if ('problem' in tail) throw new DomainError('INVALID_REQUEST', tail.problem);
    const since = query.since === undefined ? undefined : parseSince(query.since);
    if (since && 'problem' in since) throw new DomainError('INVALID_REQUEST', since.problem);
    const stream = await this.day2.logs(name, { tail: tail.lines, since: since?.seconds, follow: query.follow === 'true' });
    // Ends the stream (and Docker's) when the client goes away mid-follow.
    reply.raw.once('close', () => stream.destroy());
    await reply.header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store').send(stream);
  }

  @Post('stop')
  @HttpCode(200)
  @Day2Docs('stop')
  stop(@Param('name') name: string): Promise<LifecycleResponse> {
    return this.run(name, 'stop');
  }

  @Post('start')
  @HttpCode(200)
  @Day2Docs('start')
  start(@Param('name') name: string): Promise<LifecycleResponse> {
    return this.run(name, 'start');
  }

  @Post('restart')
  @HttpCode(200)
  @Day2Docs('restart')
  restart(@Param('name') name: string): Promise<LifecycleResponse> {
    return this.run(name, 'restart');
  }

  @Post('credentials/rotate')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @RotateDocs()
  rotate(@Param('name') name: string, @Body() body: RotateDto = {}): Promise<RotateResponse> {
    return this.day2.rotate(checkName(name), body.keep_sessions === true);
  }

  @Post('resize')
  @HttpCode(200)
  @ResizeDocs()
  resize(@Param('name') name: string, @Body() body: ResizeDto): Promise<ResizeResponse> {
    return this.day2.resize(checkName(name), { memoryMb: body.memory_mb, cpus: body.cpus, sizeGb: body.size_gb });
  }

  private run(name: string, action: LifecycleAction): Promise<LifecycleResponse> {
    return this.day2.lifecycle(checkName(name), action);
  }
}

function checkName(name: string): string {
  const problem = validateName(name);
  if (problem) throw new DomainError('INVALID_REQUEST', problem);
  return name;
}

