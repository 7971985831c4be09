/**
 * A Context for running the CLI in-process: captured output, a scripted
 * stdin that may pretend to be a terminal, a config file in a temp dir.
 */
import { mkdtemp } from 'node:fs/promises';
import { globalAgent as httpAgent } from 'node:http';
import { globalAgent as httpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import type { Environment } from '../config.js';
import type { Context } from '../context.js';
import { runCli } from '../main.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface MemoryOptions {
  environment?: Partial<Environment>;
  /** Lines typed on stdin; stdin and stderr claim to be a terminal when set. */
  typed?: string[];
  /** Piped into stdin (not a terminal) when `typed` is not set. */
  input?: string;
}

export async function tempConfigPath(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'pgdb-cli-')), 'pgdb', 'config.json');
}

/** Runs `pgdb <args>` in-process and returns its exit code and output. */
export async function runPgdb(args: string[], options: MemoryOptions = {}): Promise<Run> {
  // Each run starts as a pgdb process does: with no connection kept alive from an earlier one.
  httpAgent.destroy();
  httpsAgent.destroy();
  const stdout = capture();
  const stderr = capture();
  const terminal = options.typed !== undefined;
  const stdin = Object.assign(new PassThrough(), { isTTY: terminal });
  stdin.end(options.typed?.map((line) => `${line}\n`).join('') ?? options.input ?? '');
  const context: Context = {
    stdout: stdout.stream,
    stderr: Object.assign(stderr.stream, { isTTY: terminal }),
    stdin,
    environment: { configPath: await tempConfigPath(), ...options.environment },
  };
  const code = await runCli(args, context);
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}
