import { createReadStream } from 'node:fs';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { DUMP_MAGIC } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import { formatBytes, formatJson } from '../output.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface ImportOptions extends GlobalOptions, ServerOptions {
  name: string;
  file?: string;
  clean: boolean;
}

const CLEAR_LINE = '\r\x1b[2K';
const PROGRESS_INTERVAL_MS = 250;

export function importCommand(context: Context): CommandModule<GlobalOptions, ImportOptions> {
  return {
    command: 'import <name> [file]',
    describe: 'restore a pg_dump custom-format archive (from `pgdb export` or pg_dump -Fc) into a database, in one transaction',
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .positional('file', { type: 'string', describe: 'the archive [default: stdin]' })
        .option('clean', { type: 'boolean', default: false, describe: "drop the archive's objects first where they exist (pg_restore --clean --if-exists)" })
        .check((argv) => checkName(argv.name))
        .example('$0 import shop < shop.dump', 'into a database without those tables yet')
        .example('$0 import shop shop.dump --clean', 'replace the tables the archive has')
        .strict(),
    handler: (argv) => importDump(context, argv),
  };
}

async function importDump(context: Context, argv: ArgumentsCamelCase<ImportOptions>): Promise<void> {
  const source = argv.file === undefined ? context.stdin : await openArchive(argv.file);
  if (argv.file === undefined && context.stdin.isTTY) {
    throw new CliError('no archive on stdin', { hint: `pgdb import ${argv.name} < file.dump, or give the file: pgdb import ${argv.name} file.dump` });
  }
  const { client } = await connect(context, argv);
  const progress = progressLine(context.stderr, argv.name);
  let response;
  try {
    response = await client.importDump(argv.name, source, argv.clean, progress.update);
  } finally {
    progress.stop();
  }
  if (argv.json) context.stdout.write(formatJson(response));
  else context.stderr.write(`imported ${formatBytes(response.bytes)} into ${response.name} in ${response.seconds}s\n`);
}

/** Checks the file is a custom-format archive before anything is sent. */
async function openArchive(path: string): Promise<NodeJS.ReadableStream> {
  let handle;
  try {
    // node:fs/promises is loaded here, not when the commands are set up (`pgdb --help` needs none of it).
    handle = await process.getBuiltinModule('node:fs/promises').open(path, 'r');
  } catch (error) {
    throw new CliError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(DUMP_MAGIC.length), 0, DUMP_MAGIC.length, 0);
    if (buffer.subarray(0, bytesRead).toString('latin1') !== DUMP_MAGIC) {
      throw new CliError(`${path} is not a pg_dump custom-format archive`, { hint: 'make one with `pgdb export` or `pg_dump -Fc`; plain SQL goes through `pgdb psql`' });
    }
  } finally {
    await handle.close();
  }
  return createReadStream(path);
}

/** "importing into shop: 12.3 MiB sent, 4.1 MiB/s" on a terminal, redrawn at most 4 times a second; nothing elsewhere. */
function progressLine(stream: Context['stderr'], name: string): { update: (sent: number) => void; stop: () => void } {
  if (!stream.isTTY) return { update: () => undefined, stop: () => undefined };
  const started = Date.now();
  let last = 0;
  let drawn = false;
  return {
    update: (sent) => {
      const now = Date.now();
      if (now - last < PROGRESS_INTERVAL_MS) return;
      last = now;
      drawn = true;
      const rate = sent / Math.max(0.001, (now - started) / 1000);
      stream.write(`${CLEAR_LINE}importing into ${name}: ${formatBytes(sent)} sent, ${formatBytes(rate)}/s`);
    },
    stop: () => {
      if (drawn) stream.write(CLEAR_LINE);
    },
  };
}
