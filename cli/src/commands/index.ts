/** The one place where the CLI's commands are registered. */
import type { Argv } from 'yargs';
import type { Context } from '../context.js';
import { caCommand } from './ca.js';
import { configCommand } from './config.js';
import { deployCommand } from './deploy.js';
import { destroyCommand } from './destroy.js';
import { infraCommand } from './infra.js';
import type { GlobalOptions } from './options.js';
import { statusCommand } from './status.js';

export function registerCommands(yargs: Argv<GlobalOptions>, context: Context): Argv<GlobalOptions> {
  return yargs
    .command(deployCommand(context))
    .command(statusCommand(context))
    .command(destroyCommand(context))
    .command(caCommand(context))
    .command(configCommand(context))
    .command(infraCommand(context));
}
