/**
 * What `pgdb` runs (cli/bin/pgdb.cts loads it). A bare `pgdb --version` is
 * answered before the command line parser and the commands are even set up
 * (in the bundle their code is evaluated on first use); so is a bare
 * `pgdb --help` where the help the build prerendered is what yargs would
 * print (see ../src/help-page.ts). Anything else, `--version` with options
 * included, goes through the whole CLI.
 */
import { prerenderedHelpApplies } from '../src/help-page.js';

/** `pgdb --help` as yargs prints it in English, put here by cli/build/bundle.ts; tsc's output has none. */
declare const PGDB_HELP: string | undefined;

export async function run(args: readonly string[] = process.argv.slice(2)): Promise<void> {
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    const { cliVersion } = await import('../src/cli-version.js');
    process.stdout.write(`pgdb ${cliVersion()}\n`);
  } else if (typeof PGDB_HELP === 'string' && prerenderedHelpApplies(args, process.env, process.stdout.columns)) {
    process.stdout.write(PGDB_HELP);
  } else {
    const { main } = await import('../src/main.js');
    await main();
  }
}
