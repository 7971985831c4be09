import { randomBytes } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import { DUMP_MAGIC, type ImportResponse } from '../../../contract/api.js';
import { DomainError } from '../common/errors.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { DOCKER_GATEWAY, type DockerGateway, type ExecResult } from '../docker/docker.gateway.js';
import { PostgresRuntime } from '../database/postgres-runtime.js';
import { containTenantRoles, dbnameArgument, literal, SOCKET_DIR } from '../postgres/postgres-container.js';
import type { RegistryRecord } from '../registry/registry.types.js';
import { Day2Service } from './day2.service.js';

/** An upload that sends nothing for this long is abandoned (and its restore rolled back). */
export const IMPORT_IDLE_MS = 60_000;

/** A running export: its first bytes, the rest, and how it ended. */
export interface DumpStream {
  first: Buffer;
  rest: Readable;
  /** Resolves once `rest` has ended and pg_dump has exited: true when it exited 0. */
  outcome: Promise<boolean>;
  /** Ends pg_dump (the client went away). */
  cancel(): void;
}

/**
 * `pgdb export` and `pgdb import`: pg_dump and pg_restore run inside the
 * database's own container (the client tools match the server's major),
 * connected over its unix socket as the tenant's role. Never as the daemon's
 * superuser: an archive is SQL written by whoever made it, and must not be
 * able to do more than the database's owner could.
 */
@Injectable()
export class TransferService {
  private readonly logger: Logger;

  constructor(
    @Inject(DOCKER_GATEWAY) private readonly docker: DockerGateway,
    private readonly runtime: PostgresRuntime,
    private readonly lifecycle: Day2Service,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'transfer' });
  }

  /**
   * Starts `pg_dump -Fc` and resolves once its first bytes are there, so a
   * failure before any output is an ordinary error answer (DUMP_FAILED). The
   * database's in-flight slot is held until the dump has ended.
   */
  export(name: string): Promise<DumpStream> {
    return new Promise<DumpStream>((resolve, reject) => {
      this.lifecycle
        .exclusive(name, async (record) => {
          await this.lifecycle.requireRunning(record);
          const tag = `pgdb-export-${randomBytes(4).toString('hex')}`;
          const started = Date.now();
          const exec = await this.docker.execStream(record.container_id, dumpCommand(record), { env: { PGAPPNAME: tag } });
          const first = await firstChunk(exec.stdout);
          if (!first) {
            const result = await exec.done;
            this.logger.error({ database: name, exitCode: result.exitCode, stderr: result.stderr }, 'export: pg_dump failed');
            throw new DomainError('DUMP_FAILED', `pg_dump of "${name}" failed: ${lastLines(result.stderr) || `exit code ${result.exitCode}`}`);
          }
          let bytes = first.length;
          const rest = exec.stdout.pipe(
            new Transform({
              transform(chunk: Buffer, _encoding, done) {
                bytes += chunk.length;
                done(null, chunk);
              },
            }),
          );
          rest.once('close', () => exec.stdout.destroy());
          const drained = new Promise<void>((done) => {
            rest.once('end', done);
            rest.once('close', done);
          });
          const outcome = Promise.all([exec.done, drained]).then(
            ([result]) => this.report('export', name, result, bytes, started),
            (error: Error) => {
              this.logger.error({ database: name, err: error.message }, 'export: the stream from Docker failed');
              return false;
            },
          );
          resolve({
            first,
            rest,
            outcome,
            cancel: () => {
              rest.destroy();
              void this.endSessions(record, tag);
            },
          });
          await outcome;
        })
        .catch(reject);
    });
  }

  /**
   * Restores a `pg_dump -Fc` archive from `body` in one transaction: an
   * archive that fails on any object, is cut short, or is no archive at all
   * leaves the database as it was.
   */
  async import(name: string, body: Readable, options: { clean: boolean }): Promise<ImportResponse> {
    return this.lifecycle.exclusive(name, async (record) => {
      await this.lifecycle.requireRunning(record);
      const started = Date.now();
      const head = await readHead(body, DUMP_MAGIC.length);
      if (head.toString('latin1') !== DUMP_MAGIC) {
        body.resume();
        throw new DomainError(
          'INVALID_REQUEST',
          head.length === 0
            ? 'the upload is empty; send a pg_dump custom-format archive (pgdb export, or pg_dump -Fc)'
            : 'the upload is not a pg_dump custom-format archive (it does not start with PGDMP); make one with `pgdb export` or `pg_dump -Fc` (plain SQL goes through `pgdb psql`)',
        );
      }
      const tag = `pgdb-import-${randomBytes(4).toString('hex')}`;
      const input = new PassThrough();
      let bytes = head.length;
      let abandoned: string | undefined;
      input.write(head);
      const idle = setTimeout(() => abandon('nothing arrived for 60 s'), IMPORT_IDLE_MS);
      const abandon = (why: string) => {
        if (abandoned) return;
        abandoned = why;
        clearTimeout(idle);
        // Not end(): an archive cut short must not look whole to pg_restore.
        input.destroy(new Error(why));
        void this.endSessions(record, tag);
      };
      body.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        idle.refresh();
      });
      body.once('aborted', () => abandon('the client went away'));
      body.once('error', (error) => abandon(`the upload failed (${error.message})`));
      body.once('end', () => clearTimeout(idle));
      body.pipe(input);
      let result: ExecResult;
      try {
        const exec = await this.docker.execStream(record.container_id, restoreCommand(record, options.clean), { env: { PGAPPNAME: tag }, stdin: input });
        exec.stdout.resume();
        result = await exec.done;
      } finally {
        clearTimeout(idle);
      }
      // What was not read is discarded, so the client can read the answer.
      body.resume();
      if (abandoned) {
        this.logger.warn({ database: name, bytes, reason: abandoned }, 'import abandoned; its transaction was rolled back');
        throw new DomainError('RESTORE_FAILED', `the import into "${name}" was abandoned (${abandoned}); nothing was changed`);
      }
      if (!this.report('import', name, result, bytes, started)) {
        throw new DomainError('RESTORE_FAILED', restoreFailure(name, result.stderr, result.exitCode));
      }
      // The archive ran as the tenant, so it could do no more than the tenant may; this says so again all the same.
      await this.runtime.client.execute(this.runtime.target(record, 'admin'), containTenantRoles());
      return { name, bytes, seconds: Math.round((Date.now() - started) / 100) / 10 };
    });
  }

  private report(kind: 'export' | 'import', name: string, result: ExecResult, bytes: number, started: number): boolean {
    const fields = { database: name, bytes, ms: Date.now() - started, exitCode: result.exitCode };
    if (result.exitCode === 0) {
      this.logger.info(fields, `${kind} finished`);
      return true;
    }
    this.logger.error({ ...fields, stderr: lastLines(result.stderr, 20) }, `${kind} failed`);
    return false;
  }

  /** Ends the sessions an abandoned export or import left (by their application_name). */
  private async endSessions(record: RegistryRecord, tag: string): Promise<void> {
    await this.runtime.client
      .query(this.runtime.target(record, 'admin'), `SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE application_name = ${literal(tag)}`)
      .catch((error: Error) => this.logger.warn({ database: record.name, err: error.message }, 'could not end the sessions of an abandoned transfer'));
  }
}

function dumpCommand(record: RegistryRecord): string[] {
  return ['pg_dump', '--format=custom', '--no-password', '-h', SOCKET_DIR, '-U', record.user, '-d', dbnameArgument(record.db)];
}

/**
 * One transaction, stopped at the first error. Owners and grants of the
 * source are not carried over: everything belongs to this database's role,
 * which is the one that runs the restore.
 */
function restoreCommand(record: RegistryRecord, clean: boolean): string[] {
  return [
    'pg_restore', '--single-transaction', '--exit-on-error', '--no-owner', '--no-privileges', '--no-password',
    ...(clean ? ['--clean', '--if-exists'] : []),
    '-h', SOCKET_DIR, '-U', record.user, '-d', dbnameArgument(record.db),
  ];
}

/**
 * pg_restore's error, said as which object failed and why:
 * "pg_restore: error: could not execute query: ERROR:  relation "t" already exists"
 * then "Command was: CREATE TABLE public.t (" (and, from some versions,
 * "pg_restore: from TOC entry 215; 1259 16390 TABLE t owner").
 */
export function restoreFailure(name: string, stderr: string, exitCode: number): string {
  const command = /^Command was: (.+)$/m.exec(stderr)?.[1]?.replace(/\s*\($/, '').trim();
  const entry = /from TOC entry \d+; \d+ \d+ (.+?)(?: \S+)?$/m.exec(stderr)?.[1] ?? (command ? command.slice(0, 160) : undefined);
  const error = /^(?:pg_restore: )?error: (.+)$/m.exec(stderr)?.[1]?.replace(/^could not execute query: /, '').replace(/\s+/g, ' ').trim();
  const what = error ?? (lastLines(stderr) || `pg_restore exited with code ${exitCode}`);
  const where = entry ? ` at ${entry}` : '';
  return `the import into "${name}" failed${where}: ${what}; nothing was changed (the restore ran in one transaction)`;
}

function lastLines(text: string, count = 3): string {
  return text.trim().split('\n').slice(-count).join(' | ');
}

/** The stream's first chunk, or undefined when it ends without one. */
function firstChunk(stream: Readable): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      resolve(chunk);
    };
    const onEnd = () => (cleanup(), resolve(undefined));
    const onError = (error: Error) => (cleanup(), reject(error));
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
  });
}

/** Reads up to `size` bytes from the start of `stream`; fewer only when it ends first. What is read beyond is put back. */
function readHead(stream: Readable, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const finish = () => {
      cleanup();
      const taken = head.subarray(0, size);
      if (head.length > size) stream.unshift(head.subarray(size));
      resolve(taken);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (head.length < size && (chunk = stream.read() as Buffer | null) !== null) head = Buffer.concat([head, chunk]);
      if (head.length >= size) finish();
    };
    const onError = (error: Error) => (cleanup(), reject(error));
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', finish);
      stream.off('error', onError);
    };
    stream.on('readable', onReadable);
    stream.once('end', finish);
    stream.once('error', onError);
  });
}
