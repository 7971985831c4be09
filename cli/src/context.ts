/**
 * Everything a command touches outside itself, so tests can run the whole
 * CLI in-process with fake streams and a temporary config file.
 */
import { processEnvironment, type Environment } from './environment.js';

export interface Context {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  environment: Environment;
}

/** The running process's context, and which of its output streams a command has used. */
export interface ProcessContext extends Context {
  /** stdout, and stderr once anything asked for it: what is to be flushed before exit. */
  outputsInUse(): NodeJS.WriteStream[];
}

export function processContext(): ProcessContext {
  let stderrInUse = false;
  return {
    stdout: process.stdout,
    // stderr and stdin are made on first use, as Node makes them. Most
    // commands never write to stderr, and its stream costs a few
    // milliseconds to make for a pipe or a terminal. From a file or
    // /dev/null, stdin is a file stream, whose making loads fs/promises and readline.
    get stderr() {
      stderrInUse = true;
      return process.stderr;
    },
    get stdin() {
      return process.stdin;
    },
    environment: processEnvironment(),
    outputsInUse: () => (stderrInUse ? [process.stdout, process.stderr] : [process.stdout]),
  };
}
