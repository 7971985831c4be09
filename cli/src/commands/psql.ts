import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface PsqlOptions extends GlobalOptions, ServerOptions {
  name: string;
  '--'?: Array<string | number>;
}

const INSTALL_HINT =
  'install the PostgreSQL client: `sudo apt-get install postgresql-client` (Debian, Ubuntu), ' +
  '`sudo dnf install postgresql` (Fedora), `brew install libpq && brew link --force libpq` (macOS); ' +
  'or use the URL from `pgdb url <name>` with any client';

export function psqlCommand(context: Context): CommandModule<GlobalOptions, PsqlOptions> {
  return {
    command: 'psql <name>',
    describe: "open psql on a database (the local psql; the password goes through the environment, never the command line)",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .parserConfiguration({ 'populate--': true })
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .check((argv) => checkName(argv.name))
        .example('$0 psql shop', 'an interactive session')
        .example("$0 psql shop -- -c 'SELECT count(*) FROM orders'", 'anything after -- goes to psql')
        .strict(),
    handler: (argv) => psql(context, argv),
  };
}

async function psql(context: Context, argv: ArgumentsCamelCase<PsqlOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  const { database_url } = await client.url(argv.name);
  const { url, password } = splitPassword(database_url);
  const extra = (argv['--'] ?? []).map(String);
  const code = await run('psql', [url, ...extra], { ...process.env, PGPASSWORD: password });
  if (code !== 0) throw new CliError(`psql exited with code ${code}`);
}

/** The URL without its password, and the password (decoded), for PGPASSWORD. */
export function splitPassword(databaseUrl: string): { url: string; password: string } {
  const parsed = new URL(databaseUrl);
  const password = decodeURIComponent(parsed.password);
  parsed.password = '';
  return { url: parsed.toString(), password };
}

/** Runs psql on this terminal; Ctrl-C belongs to psql (it cancels the query), not to pgdb. */
async function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  // Loaded when psql runs; the bundle cannot import() (see cli/bin/pgdb.cts).
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const ignore = () => undefined;
    process.on('SIGINT', ignore);
    const child = spawn(file, args, { stdio: 'inherit', env });
    const done = () => process.removeListener('SIGINT', ignore);
    child.on('error', (error: NodeJS.ErrnoException) => {
      done();
      reject(
        error.code === 'ENOENT'
          ? new CliError('psql is not installed here (it is not on PATH)', { hint: INSTALL_HINT, cause: error })
          : new CliError(`could not run psql: ${error.message}`, { cause: error }),
      );
    });
    child.on('exit', (code, signal) => {
      done();
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}
