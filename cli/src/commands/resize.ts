import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { CPUS_MAX, CPUS_MIN, MEMORY_MB_MAX, MEMORY_MB_MIN, SIZE_GB_MAX, SIZE_GB_MIN, type ResizeResponse } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface ResizeOptions extends GlobalOptions, ServerOptions {
  name: string;
  'memory-mb'?: number;
  cpus?: number;
  size?: number;
}

export function resizeCommand(context: Context): CommandModule<GlobalOptions, ResizeOptions> {
  return {
    command: 'resize <name>',
    describe: "change a database's memory and CPU limits (without a restart) or grow its volume, without touching its data",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('memory-mb', { alias: 'memory', type: 'number', requiresArg: true, describe: `the new memory limit in MiB, ${MEMORY_MB_MIN} or more` })
        .option('cpus', { type: 'number', requiresArg: true, describe: 'CPUs the database may use, e.g. 0.5 or 2; at most the server has' })
        .option('size', { type: 'number', requiresArg: true, describe: 'the new size of its volume in GiB; it grows, never shrinks' })
        .check((argv) => checkName(argv.name) && checkLimits(argv['memory-mb'], argv.cpus, argv.size))
        .example('$0 resize shop --memory-mb 2048', 'a 2 GiB limit')
        .example('$0 resize shop --cpus 1.5', 'one and a half CPUs')
        .example('$0 resize shop --size 20', 'a 20 GiB volume (online where the kernel allows, else Postgres restarts once)')
        .strict(),
    handler: (argv) => resize(context, argv),
  };
}

function checkLimits(memory: number | undefined, cpus: number | undefined, size: number | undefined): true {
  if (memory === undefined && cpus === undefined && size === undefined) throw new Error('give --memory-mb, --cpus, --size or several of them');
  if (memory !== undefined && !(Number.isInteger(memory) && memory >= MEMORY_MB_MIN && memory <= MEMORY_MB_MAX)) {
    throw new Error(`--memory-mb must be a whole number of MiB from ${MEMORY_MB_MIN} to ${MEMORY_MB_MAX}`);
  }
  if (cpus !== undefined && !(Number.isFinite(cpus) && cpus >= CPUS_MIN && cpus <= CPUS_MAX)) {
    throw new Error(`--cpus must be a number from ${CPUS_MIN} to the server's CPU count (e.g. 0.5 or 2)`);
  }
  if (size !== undefined && !(Number.isInteger(size) && size >= SIZE_GB_MIN && size <= SIZE_GB_MAX)) {
    throw new Error(`--size must be a whole number of GiB from ${SIZE_GB_MIN} to ${SIZE_GB_MAX}`);
  }
  return true;
}

async function resize(context: Context, argv: ArgumentsCamelCase<ResizeOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  const response = await client.resize(argv.name, { memory_mb: argv.memoryMb, cpus: argv.cpus, size_gb: argv.size });
  context.stdout.write(argv.json ? formatJson(response) : formatResize(response, argv.memoryMb !== undefined, argv.cpus !== undefined, argv.size !== undefined));
}

export function formatResize(response: ResizeResponse, memory: boolean, cpus: boolean, size = false): string {
  const lines: string[] = [];
  if (memory) {
    const before = response.previous_memory_mb === null ? '' : ` (was ${response.previous_memory_mb} MiB)`;
    lines.push(`${response.name}: memory limit ${response.memory_mb} MiB${before}\n`);
  }
  if (cpus) {
    const before = response.previous_cpus === null ? ' (was unlimited)' : ` (was ${response.previous_cpus})`;
    lines.push(`${response.name}: cpu limit ${response.cpus}${before}\n`);
  }
  if (size) {
    const how = !response.size_enforced
      ? '; recorded only: its volume predates size limits or the server has PGDB_SIZE_LIMITS=off'
      : response.restarted
        ? '; Postgres restarted to grow it (the kernel refused to grow it while mounted)'
        : '';
    lines.push(`${response.name}: size ${response.size_gb} GiB (was ${response.previous_size_gb} GiB)${how}\n`);
  }
  return lines.join('');
}
