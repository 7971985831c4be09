/** The one place where the CLI's commands are registered. */
import type { Argv } from 'yargs';
import type { Context } from '../context.js';
import { backupCommand, backupsCommand, restoreCommand } from './backup.js';
import { caCommand } from './ca.js';
import { configCommand } from './config.js';
import { credentialsCommand } from './credentials.js';
import { deployCommand } from './deploy.js';
import { destroyCommand } from './destroy.js';
import { exportCommand } from './export.js';
import { importCommand } from './import.js';
import { infoCommand } from './info.js';
import { infraCommand } from './infra.js';
import { lifecycleCommand } from './lifecycle.js';
import { logsCommand } from './logs.js';
import type { GlobalOptions } from './options.js';
import { psqlCommand } from './psql.js';
import { resizeCommand } from './resize.js';
import { statusCommand } from './status.js';
import { upgradeCommand } from './upgrade.js';
import { urlCommand } from './url.js';
import { versionCommand } from './version.js';

export function registerCommands(yargs: Argv<GlobalOptions>, context: Context): Argv<GlobalOptions> {
  return yargs
    .command(deployCommand(context))
    .command(statusCommand(context))
    .command(destroyCommand(context))
    .command(infoCommand(context))
    .command(urlCommand(context))
    .command(logsCommand(context))
    .command(psqlCommand(context))
    .command(lifecycleCommand(context, 'stop'))
    .command(lifecycleCommand(context, 'start'))
    .command(lifecycleCommand(context, 'restart'))
    .command(credentialsCommand(context))
    .command(resizeCommand(context))
    .command(backupCommand(context))
    .command(backupsCommand(context))
    .command(restoreCommand(context))
    .command(exportCommand(context))
    .command(importCommand(context))
    .command(upgradeCommand(context))
    .command(versionCommand(context))
    .command(caCommand(context))
    .command(configCommand(context))
    .command(infraCommand(context));
}
