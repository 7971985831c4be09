#!/usr/bin/env node
/**
 * `pgdb`. A bare `pgdb --version` is answered before the command line
 * parser and the commands are even loaded (in the bundle they are chunks of
 * their own), so it costs little more than starting Node; anything else,
 * `--version` with options included, goes through the whole CLI.
 */
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { cliVersion } = await import('../src/cli-version.js');
  process.stdout.write(`pgdb ${cliVersion()}\n`);
} else {
  const { main } = await import('../src/main.js');
  await main();
}
