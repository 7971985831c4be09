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

export function processContext(): Context {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    // Made on first use, as Node makes it: from a file or /dev/null, stdin is a file stream, whose making loads fs/promises and readline.
    get stdin() {
      return process.stdin;
    },
    environment: processEnvironment(),
  };
}
