import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export type Env = Record<string, string | undefined>;

/** Runs a program with only PATH and `env`: nothing leaks in from the test's own environment. */
export async function run(file: string, args: string[], env: Env): Promise<Run> {
  try {
    const { stdout, stderr } = await promisify(execFile)(file, args, { env: { PATH: process.env.PATH, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
