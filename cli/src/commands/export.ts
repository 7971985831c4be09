import { createWriteStream } from 'node:fs';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import { formatBytes, formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface ExportOptions extends GlobalOptions, ServerOptions {
  name: string;
  output?: string;
}

export function exportCommand(context: Context): CommandModule<GlobalOptions, ExportOptions> {
  return {
    command: 'export <name>',
    describe: 'write a pg_dump custom-format archive of a database to stdout (or --output), for `pgdb import` or pg_restore',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('output', { alias: 'o', type: 'string', requiresArg: true, describe: 'write to this file (only once the dump is complete) instead of stdout' })
        .check((argv) => checkName(argv.name) && checkJson(argv.json, argv.output))
        .example('$0 export shop > shop.dump', 'the whole database, as pg_dump -Fc makes it')
        .example('$0 export shop -o shop.dump', 'the file appears only when the dump is complete')
        .strict(),
    handler: (argv) => exportDump(context, argv),
  };
}

function checkJson(json: boolean, output: string | undefined): true {
  if (json && output === undefined) throw new Error('--json needs --output: without it, stdout carries the dump');
  return true;
}

async function exportDump(context: Context, argv: ArgumentsCamelCase<ExportOptions>): Promise<void> {
  const toTerminal = argv.output === undefined && (context.stdout as { isTTY?: boolean }).isTTY === true;
  if (toTerminal) {
    throw new CliError('refusing to write a binary dump to the terminal', { hint: `redirect it: pgdb export ${argv.name} > ${argv.name}.dump, or use --output` });
  }
  const { client } = await connect(context, argv);
  if (argv.output === undefined) {
    await client.exportDump(argv.name, context.stdout);
    return;
  }
  // Written beside the target and renamed once complete: a failed export leaves no file that looks whole.
  // node:fs/promises is loaded here, not when the commands are set up (`pgdb --help` needs none of it).
  const { rename, rm } = process.getBuiltinModule('node:fs/promises');
  const partial = `${argv.output}.partial`;
  const file = createWriteStream(partial, { mode: 0o600 });
  let bytes: number;
  try {
    bytes = await client.exportDump(argv.name, file);
    await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
    await rename(partial, argv.output);
  } catch (error) {
    file.destroy();
    await rm(partial, { force: true });
    throw error;
  }
  const result = { name: argv.name, file: argv.output, bytes };
  if (argv.json) context.stdout.write(formatJson(result));
  else context.stderr.write(`exported ${argv.name} to ${argv.output} (${formatBytes(bytes)})\n`);
}
