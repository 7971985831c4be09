import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { MEMORY_MB_MAX, MEMORY_MB_MIN } from '../../../daemon/src/contract/api.js';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface ResizeOptions extends GlobalOptions, ServerOptions {
  name: string;
  'memory-mb': number;
}

export function resizeCommand(context: Context): CommandModule<GlobalOptions, ResizeOptions> {
  return {
    command: 'resize <name>',
    describe: "change a database's memory limit, without a restart and without touching its data",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('memory-mb', { alias: 'memory', type: 'number', demandOption: true, requiresArg: true, describe: `the new memory limit in MiB, ${MEMORY_MB_MIN} or more` })
        .check((argv) => checkName(argv.name) && checkMemory(argv['memory-mb']))
        .example('$0 resize shop --memory-mb 2048', 'a 2 GiB limit')
        .strict(),
    handler: (argv) => resize(context, argv),
  };
}

function checkMemory(memory: number): true {
  if (!(Number.isInteger(memory) && memory >= MEMORY_MB_MIN && memory <= MEMORY_MB_MAX)) {
    throw new Error(`--memory-mb must be a whole number of MiB from ${MEMORY_MB_MIN} to ${MEMORY_MB_MAX}`);
  }
  return true;
}

async function resize(context: Context, argv: ArgumentsCamelCase<ResizeOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  const response = await client.resize(argv.name, argv.memoryMb);
  const before = response.previous_memory_mb === null ? '' : ` (was ${response.previous_memory_mb} MiB)`;
  context.stdout.write(argv.json ? formatJson(response) : `${response.name}: memory limit ${response.memory_mb} MiB${before}\n`);
}
