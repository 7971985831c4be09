/**
 * The `pgdb` command line: global options, the commands, and how yargs'
 * usage errors become exit code 2.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { registerCommands } from './commands/index.js';
import type { GlobalOptions } from './commands/options.js';
import { processContext, type Context } from './context.js';
import { CliError, exitProcess, settle, UsageError, type ExitCode } from './errors.js';

const DESCRIPTION = 'PostgreSQL databases on a server you own, one command each.';
const EPILOGUE = [
  'Server: --server <alias|url>, else PGDB_SERVER_URL, else server.default from the config.',
  'Token: PGDB_TOKEN, else the token stored for that server (pgdb config set server.<alias>.token ...).',
  'Exit codes: 0 success, 1 failure, 2 usage error.',
].join('\n');

/** The `pgdb` process: runs the command line it was given and exits with its code. */
export async function main(): Promise<never> {
  const context = processContext();
  return exitProcess(await runCli(hideBin(process.argv), context), context.outputsInUse());
}

/** Parses `args`, runs the command, and returns its exit code. */
export async function runCli(args: string[], context: Context): Promise<ExitCode> {
  let verbose = false;
  // `pgdb --version [--server]` is `pgdb version`: a global --version would clash with deploy's.
  if (args[0] === '--version' || args[0] === '-V') args = ['version', ...args.slice(1)];
  const run = async () => {
    const parser = (await buildParser(context, args)).middleware((argv) => {
      verbose = argv.verbose;
    });
    await parser.parseAsync(args, {}, (_error, _argv, output) => {
      if (output) {
        context.stdout.write(`${output}\n`);
      }
    });
  };
  return settle(run, { stderr: () => context.stderr, isVerbose: () => verbose });
}

/** The parser for `args`, with the commands it can reach (see registerCommands). */
export async function buildParser(context: Context, args: readonly string[]): Promise<Argv<GlobalOptions>> {
  const parser = yargs()
    .scriptName('pgdb')
    .usage(`$0 <command> [options]\n\n${DESCRIPTION}`)
    .option('verbose', {
      type: 'boolean',
      default: false,
      global: true,
      describe: 'log requests and print error details on stderr',
    })
    // deploy has its own --version: the Postgres major version.
    .version(false)
    .help()
    .alias('help', 'h')
    .demandCommand(1, 'choose a command')
    .recommendCommands()
    .strict()
    .exitProcess(false)
    .fail(failUsage)
    .epilogue(EPILOGUE);
  renderNoHelpAheadOfHandlers(parser);
  return (await registerCommands(parser, context, args)).completion(
    'completion',
    'print a bash/zsh completion script: pgdb completion >> ~/.bashrc',
  );
}

/** The part of yargs' internals that renderNoHelpAheadOfHandlers() changes. */
interface YargsUsage {
  getInternalMethods(): { getUsageInstance(): { cacheHelpMessage(): void } };
}

/**
 * As a command's handler starts, yargs renders that command's whole help and
 * keeps it, in case help is shown while the handler runs. pgdb never shows
 * it then: usage errors come before a handler runs, and a handler's failure
 * is reported without help (settle()). Rendering it was the largest part of
 * yargs' own work in a command such as `pgdb status`, so it is not done
 * (main.spec.ts checks both: no help rendered for a command that runs, and
 * help still shown for a usage error).
 */
function renderNoHelpAheadOfHandlers(parser: Argv<GlobalOptions>): void {
  (parser as unknown as YargsUsage).getInternalMethods().getUsageInstance().cacheHelpMessage = () => undefined;
}

/**
 * yargs calls this for every usage problem, and for errors thrown by checks.
 * A CliError passes through; anything else is a usage error shown with the
 * help of the command it concerns.
 */
function failUsage(message: string, error: unknown, instance: Argv): never {
  if (error instanceof CliError) {
    throw error;
  }
  let help = '';
  instance.showHelp((text) => {
    help = text;
  });
  throw new UsageError(message, { help });
}
