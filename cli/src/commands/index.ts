/**
 * The one place where the CLI's commands are registered. Each command's
 * module is imported when it is registered; in the bundle its code is then
 * evaluated only for a command line that can reach it.
 */
import type { Argv, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import type { GlobalOptions } from './options.js';

// yargs takes each command's own option types; the list holds them all.
type AnyCommand = CommandModule<GlobalOptions, any>;

/** Each command's name, as the first word of a command line, and how to make it; in the order `pgdb --help` lists them. */
const COMMANDS: ReadonlyArray<readonly [string, (context: Context) => Promise<AnyCommand>]> = [
  ['deploy', async (context) => (await import('./deploy.js')).deployCommand(context)],
  ['status', async (context) => (await import('./status.js')).statusCommand(context)],
  ['destroy', async (context) => (await import('./destroy.js')).destroyCommand(context)],
  ['info', async (context) => (await import('./info.js')).infoCommand(context)],
  ['url', async (context) => (await import('./url.js')).urlCommand(context)],
  ['logs', async (context) => (await import('./logs.js')).logsCommand(context)],
  ['psql', async (context) => (await import('./psql.js')).psqlCommand(context)],
  ['stop', async (context) => (await import('./lifecycle.js')).lifecycleCommand(context, 'stop')],
  ['start', async (context) => (await import('./lifecycle.js')).lifecycleCommand(context, 'start')],
  ['restart', async (context) => (await import('./lifecycle.js')).lifecycleCommand(context, 'restart')],
  ['credentials', async (context) => (await import('./credentials.js')).credentialsCommand(context)],
  ['resize', async (context) => (await import('./resize.js')).resizeCommand(context)],
  ['backup', async (context) => (await import('./backup.js')).backupCommand(context)],
  ['backups', async (context) => (await import('./backup.js')).backupsCommand(context)],
  ['restore', async (context) => (await import('./backup.js')).restoreCommand(context)],
  ['export', async (context) => (await import('./export.js')).exportCommand(context)],
  ['import', async (context) => (await import('./import.js')).importCommand(context)],
  ['upgrade', async (context) => (await import('./upgrade.js')).upgradeCommand(context)],
  ['version', async (context) => (await import('./version.js')).versionCommand(context)],
  ['ca', async (context) => (await import('./ca.js')).caCommand(context)],
  ['config', async (context) => (await import('./config.js')).configCommand(context)],
  ['infra', async (context) => (await import('./infra.js')).infraCommand(context)],
];

/** Every command's name. */
export const COMMAND_NAMES: readonly string[] = COMMANDS.map(([name]) => name);

/**
 * Registers the command that `args` starts with, and only that one (none
 * of the others could run, and yargs' help and errors for a command show
 * that command alone); every command when `args` starts with anything else:
 * an option, no command, a misspelt one (yargs suggests the closest), or
 * `completion`.
 */
export async function registerCommands(yargs: Argv<GlobalOptions>, context: Context, args: readonly string[]): Promise<Argv<GlobalOptions>> {
  const named = COMMANDS.filter(([name]) => name === args[0]);
  for (const [, make] of named.length > 0 ? named : COMMANDS) {
    yargs = yargs.command(await make(context));
  }
  return yargs;
}
