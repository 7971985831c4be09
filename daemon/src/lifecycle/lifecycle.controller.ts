import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
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
} from '../contract/api.js';
import { DomainError } from '../common/errors.js';
import { ResizeDto, RotateDto } from './lifecycle.dto.js';
import { LifecycleService } from './lifecycle.service.js';

@Controller('v1/db/:name')
export class LifecycleController {
  constructor(private readonly lifecycle: LifecycleService) {}

  @Get()
  info(@Param('name') name: string, @Query('show_secrets') showSecrets?: string): Promise<InfoResponse> {
    return this.lifecycle.info(checkName(name), flag('show_secrets', showSecrets));
  }

  @Get('url')
  url(@Param('name') name: string): Promise<UrlResponse> {
    return this.lifecycle.url(checkName(name));
  }

  /** text/plain, streamed; errors before the first byte are the usual JSON error. */
  @Get('logs')
  async logs(
    @Param('name') name: string,
    @Res() reply: FastifyReply,
    @Query('tail') tail?: string,
    @Query('since') since?: string,
    @Query('follow') follow?: string,
  ): Promise<void> {
    checkName(name);
    const lines = tail === undefined ? LOGS_TAIL_DEFAULT : one('tail', tail);
    const parsedTail = typeof lines === 'number' ? { lines } : parseTail(lines);
    if ('problem' in parsedTail) throw new DomainError('INVALID_REQUEST', parsedTail.problem);
    const parsedSince = since === undefined ? undefined : parseSince(one('since', since));
    if (parsedSince && 'problem' in parsedSince) throw new DomainError('INVALID_REQUEST', parsedSince.problem);
    const stream = await this.lifecycle.logs(name, {
      tail: parsedTail.lines,
      since: parsedSince?.seconds,
      follow: flag('follow', follow),
    });
    // Ends the stream (and Docker's) when the client goes away mid-follow.
    reply.raw.once('close', () => stream.destroy());
    await reply.header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store').send(stream);
  }

  @Post('stop')
  @HttpCode(200)
  stop(@Param('name') name: string): Promise<LifecycleResponse> {
    return this.run(name, 'stop');
  }

  @Post('start')
  @HttpCode(200)
  start(@Param('name') name: string): Promise<LifecycleResponse> {
    return this.run(name, 'start');
  }

  @Post('restart')
  @HttpCode(200)
  restart(@Param('name') name: string): Promise<LifecycleResponse> {
    return this.run(name, 'restart');
  }

  @Post('credentials/rotate')
  @HttpCode(200)
  rotate(@Param('name') name: string, @Body() body: RotateDto): Promise<RotateResponse> {
    return this.lifecycle.rotate(checkName(name), body.keep_sessions === true);
  }

  @Post('resize')
  @HttpCode(200)
  resize(@Param('name') name: string, @Body() body: ResizeDto): Promise<ResizeResponse> {
    return this.lifecycle.resize(checkName(name), body.memory_mb);
  }

  private run(name: string, action: LifecycleAction): Promise<LifecycleResponse> {
    return this.lifecycle.lifecycle(checkName(name), action);
  }
}

function checkName(name: string): string {
  const problem = validateName(name);
  if (problem) throw new DomainError('INVALID_REQUEST', problem);
  return name;
}

/** A query parameter given once; a repeated one is a mistake, not a list. */
function one(name: string, value: string | string[]): string {
  if (Array.isArray(value)) throw new DomainError('INVALID_REQUEST', `${name} may be given once`);
  return value;
}

function flag(name: string, value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  const text = one(name, value);
  if (text === 'true' || text === '1' || text === '') return true;
  if (text === 'false' || text === '0') return false;
  throw new DomainError('INVALID_REQUEST', `${name} must be true or false`);
}
