#!/usr/bin/env node
/**
 * `pgdb`. A bare `pgdb --version` is answered before the command line
 * parser and the commands are even loaded (in the bundle they are chunks of
 * their own), so it costs little more than starting Node; so is a bare
 * `pgdb --help` where the help the build prerendered is what yargs would
 * print (see ../src/help-page.ts). Anything else, `--version` with options
 * included, goes through the whole CLI.
 */
import { prerenderedHelpApplies } from '../src/help-page.js';

/** `pgdb --help` as yargs prints it in English, put here by cli/build/bundle.ts; tsc's output has none. */
declare const PGDB_HELP: string | undefined;

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { cliVersion } = await import('../src/cli-version.js');
  process.stdout.write(`pgdb ${cliVersion()}\n`);
} else if (typeof PGDB_HELP === 'string' && prerenderedHelpApplies(args, process.env, process.stdout.columns)) {
  process.stdout.write(PGDB_HELP);
} else {
  const { main } = await import('../src/main.js');
  await main();
}
